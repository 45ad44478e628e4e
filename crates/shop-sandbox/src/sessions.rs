//! Checkout sessions as Stripe keeps them: made (by the API or a payment
//! link), discounted, paid with a test card or a test bank account, settled
//! later for delayed methods, and expired.
//!
//! Stripe's test cards behave as on Stripe: 4242 4242 4242 4242 pays,
//! 4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient
//! funds; a number that fails the Luhn check is incorrect, and a real card
//! is refused in test mode.

use serde_json::{Value, json};

use super::objects::{self, new_id};
use super::state::State;
use super::{ApiError, tax};

/// Applies a promotion code's coupon to an open session: each line it
/// applies to (all, or the products of its `applies_to`), the totals, and
/// the breakdown `total_details.breakdown` shows.
pub fn apply_discount(state: &mut State, id: &str, promo: &Value) -> Result<(), ApiError> {
    let session = state.find("checkout.session", id, "session")?.clone();
    redeemable(state, promo, id)?;
    let coupon = &promo["coupon"];
    if coupon["percent_off"].as_f64().is_none() && coupon["currency"] != session["currency"] {
        return Err(ApiError::invalid(
            "discounts[0][promotion_code]",
            "This coupon's currency does not match the price's.",
        ));
    }
    let lines = eligible_lines(state, id, coupon);
    let taken = discounts(coupon, &lines);
    let discount: i64 = taken.iter().sum();
    if let Some(items) = state.line_items.get_mut(id) {
        for (item, off) in items.iter_mut().zip(&taken) {
            item["amount_discount"] = json!(off);
        }
    }
    retotal(state, id);
    let now = state.now();
    state.breakdowns.insert(
        id.to_owned(),
        json!({
            "discounts": [{
                "amount": discount,
                "discount": objects::discount(coupon, promo, id, now),
            }],
            "taxes": [],
        }),
    );
    Ok(())
}

/// Each line's subtotal where `coupon` applies to it (`applies_to`'s
/// products, or every line), `None` where it does not.
pub fn eligible_lines(state: &State, id: &str, coupon: &Value) -> Vec<Option<i64>> {
    let products = coupon["id"]
        .as_str()
        .and_then(|coupon| state.coupon_products.get(coupon));
    state
        .line_items
        .get(id)
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let applies = products.is_none_or(|products| {
                        item["price"]["product"]
                            .as_str()
                            .is_some_and(|product| products.iter().any(|known| known == product))
                    });
                    applies.then(|| item["amount_subtotal"].as_i64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a promotion code may still be redeemed on this session: not
/// past its `expires_at`, not used `max_redemptions` times, and its
/// coupon's `applies_to` naming the session's product. Checked when the
/// code is applied and again when the session completes.
pub fn redeemable(state: &State, promo: &Value, session: &str) -> Result<(), ApiError> {
    // A coupon applied directly has no code of its own.
    let param = if promo["id"].is_string() {
        "discounts[0][promotion_code]"
    } else {
        "discounts[0][coupon]"
    };
    // The code as it is now, not as the session saw it.
    let promo = state
        .get(promo["id"].as_str().unwrap_or_default())
        .unwrap_or(promo);
    super::coupons::coupon_valid(state, &promo["coupon"], param)?;
    if promo["expires_at"]
        .as_i64()
        .is_some_and(|at| at <= state.now())
    {
        return Err(ApiError::invalid(param, "This promotion code has expired."));
    }
    if let Some(max) = promo["max_redemptions"].as_i64()
        && promo["times_redeemed"].as_i64().unwrap_or(0) >= max
    {
        return Err(ApiError::invalid(
            param,
            "This promotion code has been redeemed the maximum number of times.",
        ));
    }
    let coupon = promo["coupon"]["id"].as_str().unwrap_or_default();
    if let Some(products) = state.coupon_products.get(coupon) {
        let sold = state.line_items.get(session).is_some_and(|items| {
            items.iter().any(|item| {
                item["price"]["product"]
                    .as_str()
                    .is_some_and(|product| products.iter().any(|known| known == product))
            })
        });
        if !sold {
            return Err(ApiError::invalid(
                param,
                "This promotion code cannot be applied to the items in this checkout.",
            ));
        }
    }
    Ok(())
}

/// Counts a redemption of the promotion code a session completed with.
pub fn redeemed(state: &mut State, session: &str) {
    let Some(discount) = state
        .breakdowns
        .get(session)
        .map(|breakdown| breakdown["discounts"][0]["discount"].clone())
    else {
        return;
    };
    let count = |object: &mut Value| {
        let times = object["times_redeemed"].as_i64().unwrap_or(0) + 1;
        object["times_redeemed"] = json!(times);
        times
    };
    if let Some(promo) = discount["promotion_code"].as_str() {
        state.update(promo, |promo| {
            count(promo);
        });
    }
    // The coupon counts every redemption, through any code or none: at its
    // `max_redemptions` it is no longer valid.
    if let Some(coupon) = discount["coupon"]["id"].as_str() {
        state.update(coupon, |coupon| {
            let times = count(coupon);
            if coupon["max_redemptions"]
                .as_i64()
                .is_some_and(|max| times >= max)
            {
                coupon["valid"] = json!(false);
            }
        });
    }
}

pub struct NewSession<'a> {
    pub success_url: Option<&'a str>,
    pub cancel_url: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub client_reference_id: Option<&'a str>,
    pub payment_link: Option<&'a str>,
    pub allow_promotion_codes: Option<bool>,
    pub metadata: Value,
    pub expires_at: i64,
    /// Tax, invoice and consent fields (see `tax::options`), or `null`.
    pub options: Value,
}

/// Makes a checkout session of `lines` (each a price and its quantity;
/// a payment link's session has one).
pub fn new_session(
    state: &mut State,
    base_url: &str,
    lines: &[(Value, i64)],
    new: NewSession<'_>,
) -> Value {
    let id = new_id("cs_test_");
    let url = format!("{base_url}/checkout/{id}");
    let now = state.now();
    let currency = lines
        .first()
        .and_then(|(price, _)| price["currency"].as_str())
        .unwrap_or("usd")
        .to_owned();
    let session = objects::checkout_session(objects::SessionParts {
        id: &id,
        url: &url,
        amount: lines
            .iter()
            .map(|(price, quantity)| objects::starting_amount(price) * quantity)
            .sum(),
        currency: &currency,
        success_url: new.success_url,
        cancel_url: new.cancel_url,
        customer_email: new.customer_email,
        client_reference_id: new.client_reference_id,
        payment_link: new.payment_link,
        allow_promotion_codes: new.allow_promotion_codes,
        metadata: new.metadata,
        now,
        expires_at: new.expires_at,
    });
    let mut session = session;
    tax::apply(&mut session, &new.options);
    if session["currency"] == "eur" {
        session["payment_method_types"] = json!(["card", "sepa_debit"]);
    }
    let items: Vec<Value> = lines
        .iter()
        .map(|(price, quantity)| {
            let product_name = price["product"]
                .as_str()
                .and_then(|product| state.get(product))
                .and_then(|product| product["name"].as_str())
                .unwrap_or("Product")
                .to_owned();
            objects::line_item(price, &product_name, *quantity)
        })
        .collect();
    state.line_items.insert(id, items);
    state.insert(session)
}

/// Sets a session's amounts from its lines' (each line's subtotal,
/// discount and tax; its total is the subtotal less the discount, plus an
/// exclusive tax), as Stripe sums them.
pub fn retotal(state: &mut State, id: &str) {
    let Some(items) = state.line_items.get_mut(id) else {
        return;
    };
    let (mut subtotal, mut discount, mut tax, mut total) = (0, 0, 0, 0);
    for item in items.iter_mut() {
        let line_subtotal = item["amount_subtotal"].as_i64().unwrap_or(0);
        let line_discount = item["amount_discount"].as_i64().unwrap_or(0);
        let line_tax = item["amount_tax"].as_i64().unwrap_or(0);
        let exclusive = item["price"]["tax_behavior"] != "inclusive";
        let line_total = line_subtotal - line_discount + if exclusive { line_tax } else { 0 };
        item["amount_total"] = json!(line_total);
        subtotal += line_subtotal;
        discount += line_discount;
        tax += line_tax;
        total += line_total;
    }
    state.update(id, |session| {
        session["amount_subtotal"] = json!(subtotal);
        session["amount_total"] = json!(total);
        session["total_details"]["amount_discount"] = json!(discount);
        session["total_details"]["amount_tax"] = json!(tax);
    });
}

/// What a coupon takes off each of `lines` (their subtotals; `None` for a
/// line it does not apply to): a percentage of each, or an amount shared
/// over them in proportion (the remainder on the last), never more than a
/// line's subtotal.
pub fn discounts(coupon: &Value, lines: &[Option<i64>]) -> Vec<i64> {
    if let Some(percent) = coupon["percent_off"].as_f64() {
        return lines
            .iter()
            .map(|line| {
                line.map_or(0, |amount| {
                    ((amount as f64) * percent / 100.0).round() as i64
                })
            })
            .collect();
    }
    let eligible: i64 = lines.iter().flatten().sum();
    let off = coupon["amount_off"].as_i64().unwrap_or(0).min(eligible);
    let last = lines.iter().rposition(Option::is_some);
    let mut left = off;
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let Some(amount) = line else {
                return 0;
            };
            let share = match Some(index) == last {
                true => left.min(*amount),
                false => (off * amount / eligible.max(1)).min(left),
            };
            left -= share;
            share
        })
        .collect()
}

/// Cards that pay, as in Stripe's test mode: number, brand and the
/// country that issued it (the basic cards are American; the
/// international ones are Stripe's cards by country). The country sets
/// Stripe's fee (`sandbox::fees`).
const PAYING_CARDS: &[(&str, &str, &str)] = &[
    ("4242424242424242", "visa", "US"),
    ("4000056655665556", "visa", "US"),
    ("5555555555554444", "mastercard", "US"),
    ("2223003122003222", "mastercard", "US"),
    ("5200828282828210", "mastercard", "US"),
    ("378282246310005", "amex", "US"),
    ("6011111111111117", "discover", "US"),
    ("3056930009020004", "diners", "US"),
    ("3566002020360505", "jcb", "US"),
    ("4000001240000000", "visa", "CA"),
    ("4000000760000002", "visa", "BR"),
    ("4000002760000016", "visa", "DE"),
    ("4000002500000003", "visa", "FR"),
    ("4000008260000000", "visa", "GB"),
];

/// Cards that are declined: number, decline code, message.
const DECLINING_CARDS: &[(&str, &str, &str, &str)] = &[
    (
        "4000000000000002",
        "card_declined",
        "generic_decline",
        "Your card was declined.",
    ),
    (
        "4000000000009995",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    (
        "4000000000009987",
        "card_declined",
        "lost_card",
        "Your card was declined.",
    ),
    (
        "4000000000009979",
        "card_declined",
        "stolen_card",
        "Your card was declined.",
    ),
    (
        "4000000000000069",
        "expired_card",
        "expired_card",
        "Your card has expired.",
    ),
    (
        "4000000000000127",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    (
        "4000000000000119",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
];

/// Marks an open session past its `expires_at` as expired.
pub fn expire_if_due(state: &mut State, id: &str, webhooks: i64) {
    let now = state.now();
    let due = state.get(id).is_some_and(|session| {
        session["status"] == "open" && session["expires_at"].as_i64().is_some_and(|at| at <= now)
    });
    if due && let Some(session) = state.update(id, |session| session["status"] = json!("expired")) {
        state.emit("checkout.session.expired", session, None, webhooks);
    }
}

fn card_error(code: &'static str, decline_code: Option<&'static str>, message: &str) -> ApiError {
    ApiError {
        status: 402,
        kind: "card_error",
        code: Some(code),
        message: message.to_owned(),
        param: Some("card[number]".into()),
        decline_code,
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// SEPA Direct Debit test accounts (Stripe's testing page): the payment is
/// `processing` at first, then succeeds or fails after the sandbox's
/// settlement delay.
const BANK_ACCOUNTS: &[(&str, bool)] = &[
    ("DE89370400440532013000", true),
    ("AT611904300234573201", true),
    ("DE62370400440532013001", false),
    ("AT861904300235473202", false),
];

/// What a buyer gives at checkout: the email, a test card number or IBAN,
/// and what the session asks beyond the payment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Payment<'a> {
    pub email: &'a str,
    pub method: &'a str,
    /// A key of [`tax::TEST_ADDRESSES`].
    pub address: Option<&'a str>,
    /// A business's VAT ID.
    pub tax_id: Option<&'a str>,
    /// The terms-of-service box ticked.
    pub accepted_terms: bool,
    /// The box for the seller's promotional mail ticked.
    pub promotions: bool,
    /// The answers to the session's custom fields, by key.
    pub custom_fields: &'a [(String, String)],
}

/// Pays session `id` as `payment` says: a test card number, or a test IBAN
/// (a delayed payment). A session whose total is zero needs none and
/// completes as `no_payment_required`. Computes the tax of the address
/// given, creates the payment intent and charge, completes the session,
/// issues its invoice when it asks for one, and emits Stripe's events.
pub fn complete(
    state: &mut State,
    webhooks: i64,
    base_url: &str,
    id: &str,
    payment: &Payment<'_>,
) -> Result<Value, ApiError> {
    complete_with(state, webhooks, base_url, id, payment, true)
}

/// [`complete`], optionally without events (bulk seeding for benchmarks).
pub fn complete_with(
    state: &mut State,
    webhooks: i64,
    base_url: &str,
    id: &str,
    payment: &Payment<'_>,
    events: bool,
) -> Result<Value, ApiError> {
    expire_if_due(state, id, webhooks);
    let session = state.find("checkout.session", id, "session")?.clone();
    match session["status"].as_str() {
        Some("open") => {}
        Some("complete") => {
            return Err(ApiError::invalid_request(
                "This Checkout Session is no longer active: it is already complete.",
                None,
            ));
        }
        _ => {
            return Err(ApiError::invalid_request(
                "This Checkout Session is no longer active: it has expired.",
                None,
            ));
        }
    }
    // A code applied when the session opened may have been used up (by
    // another session) or have expired since.
    if let Some(promo) = state.breakdowns.get(id).and_then(|breakdown| {
        let promo = breakdown["discounts"][0]["discount"]["promotion_code"].as_str()?;
        state.get(promo).cloned()
    }) {
        redeemable(state, &promo, id)?;
    }
    let email = payment.email.trim();
    if !super::rules::is_email(email) {
        return Err(ApiError::invalid(
            "customer_details[email]",
            "Your email address is invalid.",
        ));
    }
    let given = tax::given(
        &session,
        payment.address,
        payment.tax_id,
        (payment.accepted_terms, payment.promotions),
    )?;
    tax::compute(state, id, &given);
    retotal(state, id);
    let session = state.get(id).cloned().unwrap_or(session);
    let details = tax::customer_details(email, &given, state.account.tax_origin.as_deref());
    let consent = tax::consent(&session, &given);
    let answers = payment.custom_fields;
    let fields = super::fields::answered(&session["custom_fields"], |key| {
        answers
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    })?;
    let finish = move |session: &mut Value| {
        session["custom_fields"] = fields.clone();
        session["status"] = json!("complete");
        session["customer_details"] = details.clone();
        session["consent"] = consent.clone();
    };
    let amount = session["amount_total"].as_i64().unwrap_or(0);
    if amount == 0 {
        // A no-cost order (a 100 % discount): nothing to pay, no intent.
        let session = state
            .update(id, |session| {
                finish(session);
                session["payment_status"] = json!("no_payment_required");
            })
            .unwrap_or_default();
        redeemed(state, id);
        let session = with_invoice(state, base_url, session, events, webhooks);
        if events {
            state.emit(
                "checkout.session.completed",
                session.clone(),
                None,
                webhooks,
            );
        }
        return Ok(session);
    }
    let method = payment.method;
    let compact: String = method
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if compact.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return pay_by_debit(
            state,
            webhooks,
            id,
            &session,
            (email, &compact),
            events,
            finish,
        );
    }
    let number = compact;
    if number.len() < 12
        || number.len() > 19
        || !number.bytes().all(|b| b.is_ascii_digit())
        || !luhn(&number)
    {
        return Err(card_error(
            "incorrect_number",
            None,
            "Your card number is incorrect.",
        ));
    }
    if let Some((_, code, decline, message)) = DECLINING_CARDS.iter().find(|(n, ..)| *n == number) {
        return Err(card_error(code, Some(decline), message));
    }
    let Some(&(_, brand, country)) = PAYING_CARDS.iter().find(|(n, ..)| *n == number) else {
        return Err(card_error(
            "card_declined",
            Some("test_mode_live_card"),
            "Your card was declined. Your request was in test mode, but used a non test (live) card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
        ));
    };

    let now = state.now();
    let currency = session["currency"].as_str().unwrap_or("usd").to_owned();
    let intent_id = new_id("pi_");
    let charge_id = new_id("ch_");
    let last4 = &number[number.len() - 4..];
    let mut charge = objects::charge(&charge_id, amount, &currency, &intent_id, email, last4, now);
    charge["payment_method_details"] = objects::card_details(last4, brand, country);
    state.insert(charge);
    super::fees::charge_succeeded(state, &charge_id);
    let charge = state.get(&charge_id).cloned().unwrap_or_default();
    let intent = state.insert(objects::payment_intent(
        &intent_id, amount, &currency, &charge_id, email, now,
    ));
    let session = state
        .update(id, |session| {
            finish(session);
            session["payment_status"] = json!("paid");
            session["payment_intent"] = json!(intent_id);
        })
        .unwrap_or_default();
    redeemed(state, id);
    let session = with_invoice(state, base_url, session, events, webhooks);
    if events {
        state.emit("charge.succeeded", charge, None, webhooks);
        state.emit("payment_intent.succeeded", intent, None, webhooks);
        state.emit(
            "checkout.session.completed",
            session.clone(),
            None,
            webhooks,
        );
    }
    Ok(session)
}

/// Issues the invoice of a session that asks for one, paid, with Stripe's
/// events; returns the session pointing at it.
fn with_invoice(
    state: &mut State,
    base_url: &str,
    session: Value,
    events: bool,
    webhooks: i64,
) -> Value {
    let Some(invoice) = tax::invoice(state, base_url, &session) else {
        return session;
    };
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let session = state
        .update(&id, |session| session["invoice"] = invoice["id"].clone())
        .unwrap_or(session);
    if events {
        invoice_events(state, &session, webhooks);
    }
    session
}

/// `invoice.finalized` and `invoice.paid` of a session's invoice, if any.
fn invoice_events(state: &mut State, session: &Value, webhooks: i64) {
    let Some(invoice) = session["invoice"]
        .as_str()
        .and_then(|id| state.get(id))
        .cloned()
    else {
        return;
    };
    state.emit("invoice.finalized", invoice.clone(), None, webhooks);
    state.emit("invoice.paid", invoice, None, webhooks);
}

/// The pay-what-you-want range of an open session's price (minimum,
/// maximum), or `None` when its price is fixed.
pub fn custom_range(state: &State, id: &str) -> Option<(Option<i64>, Option<i64>)> {
    custom_range_of(state.line_items.get(id)?)
}

/// The same, from a session's line items.
pub fn custom_range_of(items: &[Value]) -> Option<(Option<i64>, Option<i64>)> {
    // Such a price is a session's only line.
    let [item] = items else {
        return None;
    };
    // In a currency option the buyer chose, that option's range.
    let custom = match item["currency"] == item["price"]["currency"] {
        true => &item["price"]["custom_unit_amount"],
        false => {
            let currency = item["currency"].as_str().unwrap_or_default();
            &item["price"]["currency_options"][currency]["custom_unit_amount"]
        }
    };
    custom
        .is_object()
        .then(|| (custom["minimum"].as_i64(), custom["maximum"].as_i64()))
}

/// The amount a buyer typed for a pay-what-you-want price, checked against
/// the price's minimum and maximum as Stripe's page checks it, and set on
/// the line and the session.
pub fn choose_amount(state: &mut State, id: &str, amount: i64) -> Result<(), ApiError> {
    let Some((minimum, maximum)) = custom_range(state, id) else {
        return Err(ApiError::invalid_request(
            "This Checkout Session's price is fixed: the customer cannot choose the amount.",
            None,
        ));
    };
    let currency = state
        .get(id)
        .and_then(|session| session["currency"].as_str())
        .unwrap_or("usd")
        .to_owned();
    if let Some(minimum) = minimum.filter(|minimum| amount < *minimum) {
        return Err(ApiError::invalid(
            "custom_unit_amount",
            &format!(
                "Enter an amount of {} or more.",
                super::rules::display(minimum, &currency)
            ),
        ));
    }
    if let Some(maximum) = maximum.filter(|maximum| amount > *maximum) {
        return Err(ApiError::invalid(
            "custom_unit_amount",
            &format!(
                "Enter an amount of {} or less.",
                super::rules::display(maximum, &currency)
            ),
        ));
    }
    if let Some(items) = state.line_items.get_mut(id)
        && let Some(item) = items.first_mut()
    {
        let discount = item["amount_discount"].as_i64().unwrap_or(0);
        item["amount_subtotal"] = json!(amount);
        item["amount_discount"] = json!(discount.min(amount));
    }
    retotal(state, id);
    Ok(())
}

/// A SEPA Direct Debit: the session completes unpaid, the payment is
/// `processing`, and it settles after the sandbox's delay.
fn pay_by_debit(
    state: &mut State,
    webhooks: i64,
    id: &str,
    session: &Value,
    payer: (&str, &str),
    events: bool,
    finish: impl FnOnce(&mut Value),
) -> Result<Value, ApiError> {
    let (email, iban) = payer;
    if session["currency"] != "eur" {
        return Err(ApiError::invalid(
            "payment_method_data[type]",
            "The payment method type `sepa_debit` is invalid. It needs a session in EUR.",
        ));
    }
    let Some(&(_, succeeds)) = BANK_ACCOUNTS.iter().find(|(account, _)| *account == iban) else {
        return Err(ApiError::invalid(
            "payment_method_data[sepa_debit][iban]",
            "The IBAN you entered is invalid. In test mode, use one of Stripe's test IBANs such as DE89370400440532013000.",
        ));
    };
    let now = state.now();
    let amount = session["amount_total"].as_i64().unwrap_or(0);
    let intent_id = new_id("pi_");
    let charge_id = new_id("py_");
    let last4 = &iban[iban.len() - 4..];
    let mut charge = objects::charge(&charge_id, amount, "eur", &intent_id, email, last4, now);
    charge["status"] = json!("pending");
    charge["paid"] = json!(false);
    charge["payment_method_details"] = objects::sepa_debit_details(iban);
    state.insert(charge);
    let mut intent = objects::payment_intent(&intent_id, amount, "eur", &charge_id, email, now);
    intent["status"] = json!("processing");
    intent["amount_received"] = json!(0);
    intent["payment_method_types"] = json!(["sepa_debit"]);
    let intent = state.insert(intent);
    let session = state
        .update(id, |session| {
            finish(session);
            session["payment_status"] = json!("unpaid");
            session["payment_intent"] = json!(intent_id);
        })
        .unwrap_or_default();
    redeemed(state, id);
    state.settlements.push(super::state::Settlement {
        session: id.to_owned(),
        due: now + state.async_payment_delay.unwrap_or(60),
        succeeds,
    });
    if events {
        state.emit("payment_intent.processing", intent, None, webhooks);
        state.emit(
            "checkout.session.completed",
            session.clone(),
            None,
            webhooks,
        );
    }
    Ok(session)
}

/// Settles the delayed payments that are due by the sandbox's clock, with
/// the events Stripe sends. Returns how many settled.
pub fn settle_due(state: &mut State, base_url: &str, webhooks: i64) -> usize {
    let now = state.now();
    let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.settlements)
        .into_iter()
        .partition(|settlement| settlement.due <= now);
    state.settlements = waiting;
    for settlement in &due {
        let Some(session) = state.get(&settlement.session).cloned() else {
            continue;
        };
        let intent_id = session["payment_intent"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let charge_id = state
            .get(&intent_id)
            .and_then(|intent| intent["latest_charge"].as_str())
            .unwrap_or_default()
            .to_owned();
        if settlement.succeeds {
            state.update(&charge_id, |charge| {
                charge["status"] = json!("succeeded");
                charge["paid"] = json!(true);
            });
            // The money arrives when the debit succeeds.
            super::fees::charge_succeeded(state, &charge_id);
            let charge = state.get(&charge_id).cloned().unwrap_or_default();
            let intent = state
                .update(&intent_id, |intent| {
                    intent["status"] = json!("succeeded");
                    intent["amount_received"] = intent["amount"].clone();
                })
                .unwrap_or_default();
            let session = state
                .update(&settlement.session, |session| {
                    session["payment_status"] = json!("paid");
                })
                .unwrap_or_default();
            state.emit("charge.succeeded", charge, None, webhooks);
            state.emit("payment_intent.succeeded", intent, None, webhooks);
            settle_refunds(state, &charge_id, true, webhooks);
            // "After the payment succeeds, Stripe generates the invoice":
            // a delayed payment's comes with the money.
            let session = with_invoice(state, base_url, session, false, webhooks);
            state.emit(
                "checkout.session.async_payment_succeeded",
                session.clone(),
                None,
                webhooks,
            );
            invoice_events(state, &session, webhooks);
        } else {
            let charge = state
                .update(&charge_id, |charge| {
                    charge["status"] = json!("failed");
                    charge["failure_code"] = json!("insufficient_funds");
                    charge["failure_message"] = json!(
                        "The customer's account has insufficient funds to cover this payment."
                    );
                    charge["outcome"]["type"] = json!("issuer_declined");
                    charge["outcome"]["network_status"] = json!("declined_by_network");
                })
                .unwrap_or_default();
            let intent = state
                .update(&intent_id, |intent| {
                    intent["status"] = json!("requires_payment_method");
                })
                .unwrap_or_default();
            state.emit("charge.failed", charge, None, webhooks);
            settle_refunds(state, &charge_id, false, webhooks);
            state.emit("payment_intent.payment_failed", intent, None, webhooks);
            state.emit(
                "checkout.session.async_payment_failed",
                session,
                None,
                webhooks,
            );
        }
    }
    due.len()
}

/// The refunds asked of a debit before it settled: they succeed with it
/// (the money leaves the balance then), or are canceled when it fails
/// (nothing was taken, so nothing is given back).
fn settle_refunds(state: &mut State, charge_id: &str, succeeded: bool, webhooks: i64) {
    let waiting: Vec<Value> = state
        .all("refund")
        .into_iter()
        .filter(|refund| refund["charge"] == charge_id && refund["status"] == "pending")
        .cloned()
        .collect();
    for refund in waiting {
        let id = refund["id"].as_str().unwrap_or_default().to_owned();
        let amount = refund["amount"].as_i64().unwrap_or(0);
        let transaction = succeeded.then(|| {
            let currency = refund["currency"].as_str().unwrap_or("eur").to_owned();
            super::fees::record(state, "refund", -amount, 0, &currency, &id)
        });
        let refund = state
            .update(&id, |refund| {
                refund["status"] = json!(if succeeded { "succeeded" } else { "canceled" });
                if let Some(transaction) = &transaction {
                    refund["balance_transaction"] = json!(transaction);
                }
            })
            .unwrap_or_default();
        if !succeeded {
            state.update(charge_id, |charge| {
                let left = charge["amount_refunded"].as_i64().unwrap_or(0) - amount;
                charge["amount_refunded"] = json!(left.max(0));
                charge["refunded"] = json!(false);
            });
        }
        state.emit("charge.refund.updated", refund.clone(), None, webhooks);
        state.emit("refund.updated", refund, None, webhooks);
    }
}

/// A code typed at checkout: found whatever its case, as Stripe finds it,
/// and applied to the session.
pub fn apply_promotion_code(state: &mut State, id: &str, code: &str) -> Result<(), ApiError> {
    let promo = state
        .all("promotion_code")
        .into_iter()
        .find(|promo| {
            promo["active"] == json!(true)
                && promo["code"]
                    .as_str()
                    .is_some_and(|known| known.eq_ignore_ascii_case(code))
        })
        .cloned()
        .ok_or_else(|| ApiError::invalid("promotion_code", "This code is invalid."))?;
    let session = state.find("checkout.session", id, "session")?.clone();
    if session["allow_promotion_codes"] != json!(true) {
        return Err(ApiError::invalid(
            "promotion_code",
            "This checkout does not take promotion codes.",
        ));
    }
    apply_discount(state, id, &promo)
}

/// The currency of a country, where the sandbox knows it: what Checkout
/// presents a buyer there when the price has it.
pub fn currency_of_country(country: &str) -> Option<&'static str> {
    const EURO: &[&str] = &[
        "AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT", "LU", "LV",
        "MT", "NL", "PT", "SI", "SK",
    ];
    const OTHERS: &[(&str, &str)] = &[
        ("US", "usd"),
        ("GB", "gbp"),
        ("JP", "jpy"),
        ("CA", "cad"),
        ("AU", "aud"),
        ("NZ", "nzd"),
        ("CH", "chf"),
        ("SE", "sek"),
        ("DK", "dkk"),
        ("NO", "nok"),
        ("PL", "pln"),
    ];
    if EURO.contains(&country) {
        return Some("eur");
    }
    OTHERS
        .iter()
        .find(|(known, _)| *known == country)
        .map(|(_, currency)| *currency)
}

/// The currencies the session's price sells in: its own, then its
/// `currency_options`.
pub fn currencies(state: &State, id: &str) -> Vec<String> {
    let Some(price) = session_price(state, id) else {
        return state
            .get(id)
            .and_then(|session| session["currency"].as_str())
            .map(|currency| vec![currency.to_owned()])
            .unwrap_or_default();
    };
    let mut currencies = vec![price["currency"].as_str().unwrap_or("usd").to_owned()];
    if let Some(options) = price["currency_options"].as_object() {
        currencies.extend(options.keys().cloned());
    }
    currencies
}

/// The price of a session's one line, as stored (with its currency
/// options). A session of several lines presents its own currency only
/// (the sandbox's simplification: Stripe presents another where every
/// line's price has it).
fn session_price(state: &State, id: &str) -> Option<Value> {
    let [item] = state.line_items.get(id)?.as_slice() else {
        return None;
    };
    state.get(item["price"]["id"].as_str()?).cloned()
}

/// The buyer pays in `currency` (the test checkout's currency selector,
/// or the currency of their country): where the session's price has it
/// (its own or a `currency_options` entry), the session, its line and its
/// amounts change to it, as Checkout presents manual currency prices; a
/// percentage off is taken again, an amount off must be in that currency.
/// A currency the price does not have is refused.
pub fn choose_currency(state: &mut State, id: &str, currency: &str) -> Result<(), ApiError> {
    let currency = currency.trim().to_ascii_lowercase();
    let session = state.find("checkout.session", id, "session")?.clone();
    if session["currency"] == currency.as_str() {
        return Ok(());
    }
    let price = session_price(state, id).unwrap_or(Value::Null);
    let option = if price["currency"] == currency.as_str() {
        price.clone()
    } else {
        price["currency_options"][&currency].clone()
    };
    if !option.is_object() {
        return Err(ApiError::invalid(
            "currency",
            &format!(
                "This Checkout Session's price has no {} option: it sells in {}.",
                currency.to_ascii_uppercase(),
                currencies(state, id).join(", ").to_ascii_uppercase()
            ),
        ));
    }
    let subtotal = option["unit_amount"]
        .as_i64()
        .or_else(|| option["custom_unit_amount"]["preset"].as_i64())
        .or_else(|| option["custom_unit_amount"]["minimum"].as_i64())
        .unwrap_or(0);
    let discount = match state.breakdowns.get(id) {
        None => 0,
        Some(breakdown) => {
            let coupon = &breakdown["discounts"][0]["discount"]["coupon"];
            match (
                coupon["percent_off"].as_f64(),
                coupon["amount_off"].as_i64(),
            ) {
                (Some(percent), _) => ((subtotal as f64) * percent / 100.0).round() as i64,
                (None, Some(off)) if coupon["currency"] == currency.as_str() => off.min(subtotal),
                _ => {
                    return Err(ApiError::invalid(
                        "currency",
                        "This Checkout Session's coupon takes an amount off in another currency.",
                    ));
                }
            }
        }
    };
    if let Some(breakdown) = state.breakdowns.get_mut(id) {
        breakdown["discounts"][0]["amount"] = json!(discount);
    }
    if let Some(item) = state
        .line_items
        .get_mut(id)
        .and_then(|items| items.first_mut())
    {
        item["currency"] = json!(currency);
        item["amount_subtotal"] = json!(subtotal);
        item["amount_discount"] = json!(discount);
        item["amount_total"] = json!(subtotal - discount);
    }
    state.update(id, |session| {
        session["currency"] = json!(currency);
        session["amount_subtotal"] = json!(subtotal);
        session["amount_total"] = json!(subtotal - discount);
        session["total_details"]["amount_discount"] = json!(discount);
        session["payment_method_types"] = match currency.as_str() {
            "eur" => json!(["card", "sepa_debit"]),
            _ => json!(["card"]),
        };
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coupon_is_shared_over_the_lines_it_applies_to() {
        let percent = json!({"percent_off": 10.0});
        assert_eq!(
            discounts(&percent, &[Some(2900), None, Some(755)]),
            [290, 0, 76]
        );
        // An amount off, in proportion, the remainder on the last line it
        // applies to; never more than the lines.
        let off = json!({"amount_off": 1000});
        assert_eq!(
            discounts(&off, &[Some(3000), Some(1000), None]),
            [750, 250, 0]
        );
        assert_eq!(discounts(&off, &[Some(2000), Some(1000)]), [666, 334]);
        assert_eq!(discounts(&off, &[Some(300), Some(200)]), [300, 200]);
        assert_eq!(discounts(&off, &[None]), [0]);
    }

    #[test]
    fn luhn_accepts_test_cards_and_refuses_typos() {
        for card in PAYING_CARDS
            .iter()
            .map(|(n, ..)| n)
            .chain(DECLINING_CARDS.iter().map(|(n, ..)| n))
        {
            assert!(luhn(card), "{card}");
        }
        assert!(!luhn("4242424242424241"));
    }
}

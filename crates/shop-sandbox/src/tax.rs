//! What a checkout asks beyond the payment, as Stripe documents it: Stripe
//! Tax (`automatic_tax`), the billing address, a business's tax ID, an
//! invoice (`invoice_creation`) and the buyer's consent to the terms
//! (`consent_collection`, `custom_text`).
//!
//! Stripe refuses tax until Stripe Tax is set up (a head office address in
//! the Dashboard) and consent until the account has a terms-of-service URL
//! (its public details); a fresh sandbox has neither, as a fresh account,
//! and the control surface sets them (`/_sandbox/settings`). Tax comes from
//! a small fixed table of the test addresses the checkout offers; it is not
//! any country's law.

use serde_json::{Value, json};

use super::ApiError;
use super::objects::new_id;
use super::params::{Params, leaf_bool, only_keys};
use super::registrations;
use super::state::State;

/// The parameters of this module, on payment links and Checkout Sessions.
pub const PARAMS: [&str; 7] = [
    "automatic_tax",
    "billing_address_collection",
    "consent_collection",
    "custom_fields",
    "custom_text",
    "invoice_creation",
    "tax_id_collection",
];

/// One test address of the checkout: its key, what the page shows, the
/// address Stripe records, and the rate of the table in basis points.
pub struct TestAddress {
    pub key: &'static str,
    pub label: &'static str,
    pub country: &'static str,
    pub state: Option<&'static str>,
    pub city: &'static str,
    pub line1: &'static str,
    pub postal_code: &'static str,
    pub rate: i64,
    /// The rate for e-books (`EBOOK_CODES`), where the law sets a reduced
    /// one.
    pub ebook_rate: i64,
    /// What the tax is called on the page and the invoice.
    pub name: &'static str,
}

/// The product tax codes the sandbox knows, from Stripe's list
/// (docs.stripe.com/tax/tax-codes); Stripe refuses a code not on its list.
pub const TAX_CODES: &[(&str, &str)] = &[
    ("txcd_00000000", "Nontaxable"),
    (
        "txcd_10000000",
        "General - Electronically Supplied Services",
    ),
    ("txcd_10202000", "Downloadable Software - Personal Use"),
    ("txcd_10301000", "Audiobook"),
    (
        "txcd_10302000",
        "Digital Books - downloaded - non subscription - with permanent rights",
    ),
    (
        "txcd_10302001",
        "Digital Books - downloaded - non subscription - with limited rights",
    ),
    (
        "txcd_10401100",
        "Digital Audio Works - Downloaded - Non Subscription - With Permanent Rights",
    ),
    ("txcd_99999999", "General - Tangible Goods"),
];

/// The name of a tax code the sandbox knows.
pub fn tax_code_name(id: &str) -> Option<&'static str> {
    TAX_CODES
        .iter()
        .find(|(code, _)| *code == id)
        .map(|(_, name)| *name)
}

/// A tax code as `GET /v1/tax_codes` shows it.
pub fn tax_code(id: &str) -> Option<Value> {
    tax_code_name(id)
        .map(|name| json!({"id": id, "object": "tax_code", "name": name, "description": name}))
}

/// `GET /v1/tax_codes`: the codes the sandbox knows, in Stripe's order (by
/// id), paged by `starting_after`, `ending_before` and `limit`.
pub fn list_tax_codes(params: &Params, url: &str) -> Result<Value, ApiError> {
    params.only(&["ending_before", "expand", "limit", "starting_after"])?;
    let limit = params.limit()?;
    let position = |param: &str| -> Result<Option<usize>, ApiError> {
        params
            .str(param)
            .map(|id| {
                TAX_CODES
                    .iter()
                    .position(|(code, _)| *code == id)
                    .ok_or_else(|| ApiError::no_such("tax_code", id, param))
            })
            .transpose()
    };
    let (start, end) = match (position("starting_after")?, position("ending_before")?) {
        (Some(after), _) => (after + 1, (after + 1 + limit).min(TAX_CODES.len())),
        (None, Some(before)) => (before.saturating_sub(limit), before),
        (None, None) => (0, limit.min(TAX_CODES.len())),
    };
    let data: Vec<Value> = TAX_CODES[start..end]
        .iter()
        .filter_map(|(code, _)| tax_code(code))
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "has_more": end < TAX_CODES.len(),
        "url": url,
    }))
}

/// The codes of e-books, taxed at `ebook_rate`.
const EBOOK_CODES: &[&str] = &["txcd_10302000", "txcd_10302001"];

/// The code the sandbox's account has as its preset (Stripe's Dashboard
/// asks for one when Stripe Tax is set up): what a product without its
/// own is taxed as.
pub const PRESET_CODE: &str = "txcd_10000000";

/// The sandbox's fixed table.
pub const TEST_ADDRESSES: &[TestAddress] = &[
    TestAddress {
        key: "DE",
        label: "Germany — Unter den Linden 1, 10117 Berlin",
        country: "DE",
        state: None,
        city: "Berlin",
        line1: "Unter den Linden 1",
        postal_code: "10117",
        rate: 1900,
        ebook_rate: 700,
        name: "VAT",
    },
    TestAddress {
        key: "FR",
        label: "France — 1 rue de Rivoli, 75001 Paris",
        country: "FR",
        state: None,
        city: "Paris",
        line1: "1 rue de Rivoli",
        postal_code: "75001",
        rate: 2000,
        ebook_rate: 550,
        name: "VAT",
    },
    TestAddress {
        key: "US-WA",
        label: "United States — 400 Broad St, Seattle, WA 98109",
        country: "US",
        state: Some("WA"),
        city: "Seattle",
        line1: "400 Broad St",
        postal_code: "98109",
        rate: 1025,
        ebook_rate: 1025,
        name: "Sales tax",
    },
    TestAddress {
        key: "US-OR",
        label: "United States — 1 SW Main St, Portland, OR 97204 (no sales tax)",
        country: "US",
        state: Some("OR"),
        city: "Portland",
        line1: "1 SW Main St",
        postal_code: "97204",
        rate: 0,
        ebook_rate: 0,
        name: "Sales tax",
    },
];

/// Reads and checks this module's parameters for a checkout of `price`:
/// the fields they set on a payment link or a session.
pub fn options(state: &State, params: &Params, price: &Value) -> Result<Value, ApiError> {
    let automatic = match params.get("automatic_tax") {
        None => false,
        Some(value) => {
            only_keys(value, "automatic_tax", &["enabled"])?;
            leaf_bool(value.get("enabled"), "automatic_tax[enabled]")?
                .ok_or_else(|| ApiError::missing("automatic_tax[enabled]"))?
        }
    };
    if automatic {
        if state.account.tax_origin.is_none() {
            return Err(ApiError::invalid(
                "automatic_tax[enabled]",
                "Stripe Tax has not been activated on your account. Please visit \
                 https://stripe.com/docs/tax/set-up to get started.",
            ));
        }
        if !matches!(
            price["tax_behavior"].as_str(),
            Some("exclusive" | "inclusive")
        ) {
            return Err(ApiError::invalid(
                "line_items[0][price]",
                &format!(
                    "The price `{}` has no `tax_behavior` and your tax settings have no default \
                     tax behavior: automatic tax needs one of them.",
                    price["id"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    let billing = match params.str("billing_address_collection") {
        None => "auto",
        Some(value @ ("auto" | "required")) => value,
        Some(other) => {
            return Err(ApiError::invalid(
                "billing_address_collection",
                &format!(
                    "Invalid billing_address_collection: must be one of auto or required ({other})"
                ),
            ));
        }
    };
    let enabled = |name: &str| -> Result<bool, ApiError> {
        match params.get(name) {
            None => Ok(false),
            Some(value) => {
                only_keys(value, name, &["enabled"])?;
                leaf_bool(value.get("enabled"), &format!("{name}[enabled]"))?
                    .ok_or_else(|| ApiError::missing(&format!("{name}[enabled]")))
            }
        }
    };
    let tax_ids = enabled("tax_id_collection")?;
    let invoices = enabled("invoice_creation")?;
    let consent = match params.get("consent_collection") {
        None => Value::Null,
        Some(value) => {
            only_keys(
                value,
                "consent_collection",
                &["terms_of_service", "promotions"],
            )?;
            let terms = match value["terms_of_service"].as_str() {
                None | Some("none") => "none",
                Some("required") => "required",
                Some(other) => {
                    return Err(ApiError::invalid(
                        "consent_collection[terms_of_service]",
                        &format!(
                            "Invalid consent_collection[terms_of_service]: must be one of none or required ({other})"
                        ),
                    ));
                }
            };
            let promotions = match value["promotions"].as_str() {
                None => Value::Null,
                Some(promotions @ ("auto" | "none")) => json!(promotions),
                Some(other) => {
                    return Err(ApiError::invalid(
                        "consent_collection[promotions]",
                        &format!(
                            "Invalid consent_collection[promotions]: must be one of auto or none ({other})"
                        ),
                    ));
                }
            };
            // Stripe: "Only available to US merchants" (its API reference
            // for `consent_collection.promotions`); the wording is ours.
            if promotions == "auto" && super::fees::account_country(state) != "US" {
                return Err(ApiError::invalid(
                    "consent_collection[promotions]",
                    "Collecting consent to promotional communications is only available to \
                     accounts in the United States.",
                ));
            }
            if terms == "required" && state.account.terms_of_service_url.is_none() {
                return Err(ApiError::invalid(
                    "consent_collection[terms_of_service]",
                    "You cannot collect consent to your terms of service unless a URL is set in \
                     the Stripe Dashboard. Update your public business details at \
                     https://dashboard.stripe.com/settings/public.",
                ));
            }
            json!({
                "payment_method_reuse_agreement": null,
                "promotions": promotions,
                "terms_of_service": terms,
            })
        }
    };
    let mut custom_text = super::objects::custom_text();
    if let Some(value) = params.get("custom_text") {
        let positions = [
            "after_submit",
            "shipping_address",
            "submit",
            "terms_of_service_acceptance",
        ];
        only_keys(value, "custom_text", &positions)?;
        for position in positions {
            let param = format!("custom_text[{position}]");
            match value.get(position) {
                None => {}
                Some(Value::String(empty)) if empty.is_empty() => {}
                Some(Value::Object(_)) => {
                    let message = value[position]["message"]
                        .as_str()
                        .ok_or_else(|| ApiError::missing(&format!("{param}[message]")))?;
                    if message.chars().count() > 1200 {
                        return Err(ApiError::invalid(
                            &format!("{param}[message]"),
                            "This value must be 1200 characters or fewer.",
                        ));
                    }
                    custom_text[position] = json!({ "message": message });
                }
                Some(_) => return Err(ApiError::invalid(&param, "Invalid hash")),
            }
        }
    }
    if custom_text["terms_of_service_acceptance"].is_object()
        && consent["terms_of_service"] != "required"
    {
        return Err(ApiError::invalid(
            "custom_text[terms_of_service_acceptance]",
            "custom_text[terms_of_service_acceptance] can only be set when \
             consent_collection[terms_of_service] is `required`.",
        ));
    }
    Ok(json!({
        "automatic_tax": {"enabled": automatic, "liability": null},
        "billing_address_collection": billing,
        "consent_collection": consent,
        "custom_fields": super::fields::parse(params.get("custom_fields"))?,
        "custom_text": custom_text,
        "invoice_creation": {"enabled": invoices, "invoice_data": invoice_data()},
        "tax_id_collection": {"enabled": tax_ids},
    }))
}

fn invoice_data() -> Value {
    json!({
        "account_tax_ids": null, "custom_fields": null, "description": null, "footer": null,
        "issuer": null, "metadata": {}, "rendering_options": null,
    })
}

/// Sets `options` (from [`options`], or a payment link's) on an object.
pub fn apply(object: &mut Value, options: &Value) {
    for key in PARAMS {
        if let Some(value) = options.get(key) {
            object[key] = value.clone();
        }
    }
    // A payment link's fields hold no answers; a session's each has one
    // (null until the buyer gives it).
    let session = object["object"] == "checkout.session";
    object["custom_fields"] = super::fields::shown_on(&object["custom_fields"], session);
    if object["object"] == "checkout.session" {
        // Open, with no address yet.
        let enabled = object["automatic_tax"]["enabled"] == json!(true);
        object["automatic_tax"]["status"] = if enabled {
            json!("requires_location_inputs")
        } else {
            Value::Null
        };
    }
}

/// Whether a session asks for an address: for tax, or when required.
pub fn needs_address(session: &Value) -> bool {
    session["automatic_tax"]["enabled"] == json!(true)
        || session["billing_address_collection"] == "required"
}

/// Whether the checkout shows the box for the seller's promotional mail:
/// asked (`consent_collection[promotions]=auto`) and, as Stripe decides
/// by the customer's locale ("US merchants and US customers"), a buyer
/// in the US (by the billing address, where the session asks for one).
pub fn offers_promotions(session: &Value, address: Option<&TestAddress>) -> bool {
    session["consent_collection"]["promotions"] == "auto"
        && address.is_none_or(|address| address.country == "US")
}

/// Whether a session requires the terms box ticked.
pub fn needs_consent(session: &Value) -> bool {
    session["consent_collection"]["terms_of_service"] == "required"
}

/// What the buyer gave beyond the payment, read and checked.
pub struct Given {
    pub address: Option<&'static TestAddress>,
    pub tax_id: Option<(&'static str, String)>,
    pub accepted_terms: bool,
    /// The box for the seller's promotional mail ticked.
    pub promotions: bool,
}

impl Given {
    /// Whether a business in another country than the account's head
    /// office gave its VAT ID: the reverse charge, no tax.
    pub fn reverse_charge(&self, origin: Option<&str>) -> bool {
        self.tax_id.is_some()
            && self
                .address
                .is_some_and(|address| Some(address.country) != origin)
    }
}

/// Checks what the buyer gave against what the session asks, as the
/// checkout page does before it takes a payment.
pub fn given(
    session: &Value,
    address: Option<&str>,
    tax_id: Option<&str>,
    (accepted_terms, promotions): (bool, bool),
) -> Result<Given, ApiError> {
    if needs_consent(session) && !accepted_terms {
        return Err(ApiError::invalid(
            "consent[terms_of_service]",
            "You must agree to the terms of service to continue.",
        ));
    }
    let address = match address.map(str::trim).filter(|key| !key.is_empty()) {
        None if needs_address(session) => {
            return Err(ApiError::invalid(
                "customer_details[address]",
                "Enter your billing address.",
            ));
        }
        None => None,
        Some(key) => Some(
            TEST_ADDRESSES
                .iter()
                .find(|address| address.key.eq_ignore_ascii_case(key))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "customer_details[address]",
                        &format!(
                            "The sandbox has no test address `{key}`: use one of {}.",
                            TEST_ADDRESSES
                                .iter()
                                .map(|address| address.key)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
        ),
    };
    let tax_id = match tax_id.map(str::trim).filter(|id| !id.is_empty()) {
        None => None,
        Some(_) if session["tax_id_collection"]["enabled"] != json!(true) => {
            return Err(ApiError::invalid(
                "customer_details[tax_ids]",
                "This Checkout Session does not collect tax IDs.",
            ));
        }
        Some(id) => Some(tax_id_of(id, address)?),
    };
    Ok(Given {
        address,
        tax_id,
        accepted_terms,
        promotions,
    })
}

/// A VAT ID's Stripe type and value: the country's prefix, then 2 to 13
/// letters and digits, in the country of the billing address.
fn tax_id_of(
    text: &str,
    address: Option<&TestAddress>,
) -> Result<(&'static str, String), ApiError> {
    let value: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let invalid = || ApiError::invalid("customer_details[tax_ids]", "Your tax ID is invalid.");
    let (prefix, rest) = value.split_at_checked(2).ok_or_else(invalid)?;
    // An EU VAT ID starts with its country's code (Greece's with `EL`).
    let country = if prefix == "EL" { "GR" } else { prefix };
    let kind = if prefix == "GB" {
        "gb_vat"
    } else if prefix != "GR" && registrations::EU_COUNTRIES.contains(&country) {
        "eu_vat"
    } else {
        return Err(invalid());
    };
    if !(2..=13).contains(&rest.len()) || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid());
    }
    if address.is_some_and(|address| address.country != country) {
        return Err(ApiError::invalid(
            "customer_details[tax_ids]",
            "The tax ID's country does not match the billing address.",
        ));
    }
    Ok((kind, value))
}

/// Computes the tax of an open session from what the buyer gave, as Stripe
/// Tax does when the address is entered: each line on its amount after
/// discounts, by its product's tax code, added (`exclusive`) or found
/// within it (`inclusive`) as its price says; nothing for a business in
/// another country that gave its VAT ID (the reverse charge). The
/// breakdown has one entry per rate; the caller sums the lines into the
/// session (`sessions::retotal`).
pub fn compute(state: &mut State, id: &str, given: &Given) {
    let Some(session) = state.get(id).cloned() else {
        return;
    };
    if session["automatic_tax"]["enabled"] != json!(true) {
        return;
    }
    let Some(address) = given.address else {
        return;
    };
    // Stripe Tax collects only where the account is registered; the
    // reverse charge is shown by a seller registered at home.
    let origin = state.account.tax_origin.as_deref();
    let collecting = registrations::collects(&state.account, address.country, address.state);
    let registered_at_home =
        origin.is_some_and(|origin| registrations::collects(&state.account, origin, None));
    let reverse = given.reverse_charge(origin) && registered_at_home;
    let items = state.line_items.get(id).cloned().unwrap_or_default();
    // Each line: its tax, its taxable amount, its rate (and the full rate
    // of its kind), and whether the tax is within its price.
    let mut taxed = Vec::new();
    for item in &items {
        let behavior = item["price"]["tax_behavior"]
            .as_str()
            .unwrap_or("exclusive")
            .to_owned();
        // The product's tax code, else the account's preset, decides the rate.
        let code = item["price"]["product"]
            .as_str()
            .and_then(|product| state.get(product))
            .and_then(|product| product["tax_code"].as_str())
            .unwrap_or(PRESET_CODE)
            .to_owned();
        let full = match EBOOK_CODES.contains(&code.as_str()) {
            true => address.ebook_rate,
            false => address.rate,
        };
        let full = if collecting { full } else { 0 };
        let rate = if reverse { 0 } else { full };
        // From the subtotal less discounts, not the total: a declined card
        // leaves the session open, and paying again must not tax the tax.
        let base = item["amount_subtotal"].as_i64().unwrap_or(0)
            - item["amount_discount"].as_i64().unwrap_or(0);
        let inclusive = behavior == "inclusive";
        let (tax, taxable) = match inclusive {
            true => {
                let net = rounded(base * 10_000, 10_000 + rate);
                (base - net, net)
            }
            false => (rounded(base * rate, 10_000), base),
        };
        taxed.push((tax, taxable, rate, full, inclusive));
    }
    if let Some(items) = state.line_items.get_mut(id) {
        for (item, (tax, ..)) in items.iter_mut().zip(&taxed) {
            item["amount_tax"] = json!(tax);
        }
    }
    state.update(id, |session| {
        session["automatic_tax"]["status"] = json!("complete");
    });
    let state_now = state.now();
    let mut entries: Vec<Value> = Vec::new();
    for (tax, taxable, rate, full, inclusive) in taxed {
        if let Some(entry) = entries.iter_mut().find(|entry| {
            entry["rate"]["effective_percentage"] == json!(rate as f64 / 100.0)
                && entry["rate"]["inclusive"] == json!(inclusive)
        }) {
            entry["amount"] = json!(entry["amount"].as_i64().unwrap_or(0) + tax);
            entry["taxable_amount"] =
                json!(entry["taxable_amount"].as_i64().unwrap_or(0) + taxable);
            continue;
        }
        entries.push(json!({
            "amount": tax,
            "rate": {
                "id": new_id("txr_"),
                "object": "tax_rate",
                "active": true,
                "country": address.country,
                "created": state_now,
                "description": null,
                "display_name": address.name,
                "effective_percentage": rate as f64 / 100.0,
                "inclusive": inclusive,
                "jurisdiction": address.state.unwrap_or(address.country),
                "livemode": false,
                "metadata": {},
                "percentage": full as f64 / 100.0,
                "state": address.state,
                "tax_type": if address.country == "US" { "sales_tax" } else { "vat" },
            },
            "taxability_reason": if reverse {
                "reverse_charge"
            } else if rate == 0 {
                "not_collecting"
            } else if rate < address.rate {
                "reduced_rated"
            } else {
                "standard_rated"
            },
            "taxable_amount": taxable,
        }));
    }
    let breakdown = state
        .breakdowns
        .entry(id.to_owned())
        .or_insert_with(|| json!({"discounts": [], "taxes": []}));
    breakdown["taxes"] = json!(entries);
}

/// `numerator / denominator` rounded half away from zero, for amounts.
fn rounded(numerator: i64, denominator: i64) -> i64 {
    (2 * numerator + denominator) / (2 * denominator)
}

/// The buyer's details a complete session shows, with what they gave.
pub fn customer_details(email: &str, given: &Given, origin: Option<&str>) -> Value {
    let mut details = super::objects::customer_details(email);
    if let Some(address) = given.address {
        details["address"] = json!({
            "city": address.city,
            "country": address.country,
            "line1": address.line1,
            "line2": null,
            "postal_code": address.postal_code,
            "state": address.state,
        });
    }
    if let Some((kind, value)) = &given.tax_id {
        details["tax_ids"] = json!([{ "type": kind, "value": value }]);
        if given.reverse_charge(origin) {
            details["tax_exempt"] = json!("reverse");
        }
    }
    details
}

/// The consent a complete session shows.
pub fn consent(session: &Value, given: &Given) -> Value {
    if session["consent_collection"].is_object() {
        json!({
            "promotions": match offers_promotions(session, given.address) {
                true if given.promotions => json!("opt_in"),
                true => json!("opt_out"),
                false => Value::Null,
            },
            "terms_of_service": if given.accepted_terms { json!("accepted") } else { Value::Null },
        })
    } else {
        Value::Null
    }
}

/// The paid invoice of a complete session that asked for one, numbered in
/// sequence, with its page on the sandbox.
pub fn invoice(state: &mut State, base_url: &str, session: &Value) -> Option<Value> {
    if session["invoice_creation"]["enabled"] != json!(true) {
        return None;
    }
    state.invoice_sequence += 1;
    let id = new_id("in_");
    let now = state.now();
    let session_id = session["id"].as_str().unwrap_or_default();
    let items = state
        .line_items
        .get(session_id)
        .cloned()
        .unwrap_or_default();
    let total = session["amount_total"].as_i64().unwrap_or(0);
    let tax = session["total_details"]["amount_tax"].as_i64().unwrap_or(0);
    let inclusive = items
        .first()
        .is_some_and(|item| item["price"]["tax_behavior"] == "inclusive");
    let currency = session["currency"].clone();
    let lines: Vec<Value> = items
        .iter()
        .map(|item| {
            json!({
                "id": new_id("il_"),
                "object": "line_item",
                "amount": item["amount_subtotal"],
                "currency": currency,
                "description": item["description"],
                "discountable": true,
                "discounts": [],
                "livemode": false,
                "metadata": {},
                "period": {"end": now, "start": now},
                "proration": false,
                "quantity": item["quantity"],
                "type": "invoiceitem",
            })
        })
        .collect();
    let details = &session["customer_details"];
    let rate = state
        .breakdowns
        .get(session_id)
        .and_then(|breakdown| breakdown["taxes"].get(0))
        .map(|tax| tax["rate"].clone());
    let total_tax_amounts: Vec<Value> = rate
        .into_iter()
        .map(|rate| json!({"amount": tax, "inclusive": inclusive, "tax_rate": rate["id"]}))
        .collect();
    Some(state.insert(json!({
        "id": id,
        "object": "invoice",
        "amount_due": total,
        "amount_paid": total,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": true,
        "automatic_tax": {"enabled": session["automatic_tax"]["enabled"], "liability": null, "status": null},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "customer_address": details["address"],
        "customer_email": details["email"],
        "customer_tax_exempt": details["tax_exempt"],
        "customer_tax_ids": details["tax_ids"],
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "hosted_invoice_url": format!("{base_url}/invoices/{id}"),
        "invoice_pdf": null,
        "issuer": {"type": "self"},
        "lines": {
            "object": "list", "data": lines, "has_more": false,
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "metadata": {},
        "number": format!("SANDBOX-{:04}", state.invoice_sequence),
        "paid": true,
        "paid_out_of_band": false,
        "payment_intent": session["payment_intent"],
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": "paid",
        "status_transitions": {
            "finalized_at": now, "marked_uncollectible_at": null, "paid_at": now, "voided_at": null,
        },
        "subtotal": if inclusive { total } else { total - tax },
        "tax": tax,
        "total": total,
        "total_tax_amounts": total_tax_amounts,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(rounded(2400 * 1900, 10_000), 456);
        assert_eq!(rounded(2400 * 10_000, 11_900), 2017);
        assert_eq!(rounded(5, 10), 1);
        assert_eq!(rounded(4, 10), 0);
    }

    #[test]
    fn vat_ids_need_a_known_prefix_and_the_address_country() {
        let germany = &TEST_ADDRESSES[0];
        assert_eq!(
            tax_id_of("de 123.456.789", Some(germany)).unwrap(),
            ("eu_vat", "DE123456789".to_owned())
        );
        assert!(tax_id_of("FR12345678901", Some(germany)).is_err());
        assert!(tax_id_of("XX123", None).is_err());
        assert!(tax_id_of("DE1", None).is_err());
    }
}

//! The sandbox's hosted pages: the test checkout a session's `url` opens,
//! the page a payment link's `url` opens, and what paying does.
//!
//! Stripe's test cards behave as on Stripe: 4242 4242 4242 4242 pays,
//! 4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient
//! funds; a number that fails the Luhn check is incorrect, and a real card
//! is refused in test mode.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::{Method, Response, StatusCode};

use super::api::{self, NewSession};
use super::objects::{self, new_id};
use super::state::State;
use super::{ApiError, Sandbox, plain};
use crate::html::escape;

/// Cards that pay, as in Stripe's test mode.
const PAYING_CARDS: &[&str] = &[
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
    "5200828282828210",
    "378282246310005",
    "6011111111111117",
    "3056930009020004",
    "3566002020360505",
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

/// Pays session `id` with `card` for `email`: creates the payment intent
/// and charge, completes the session, and emits the events Stripe would.
pub fn complete(
    state: &mut State,
    webhooks: i64,
    id: &str,
    email: &str,
    card: &str,
) -> Result<Value, ApiError> {
    complete_with(state, webhooks, id, email, card, true)
}

/// [`complete`], optionally without events (bulk seeding for benchmarks).
pub fn complete_with(
    state: &mut State,
    webhooks: i64,
    id: &str,
    email: &str,
    card: &str,
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
    let email = email.trim();
    if crate::store::settings::check_email(email).is_err() {
        return Err(ApiError::invalid(
            "customer_details[email]",
            "Your email address is invalid.",
        ));
    }
    let number: String = card
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
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
    if !PAYING_CARDS.contains(&number.as_str()) {
        return Err(card_error(
            "card_declined",
            Some("test_mode_live_card"),
            "Your card was declined. Your request was in test mode, but used a non test (live) card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
        ));
    }

    let now = state.now();
    let amount = session["amount_total"].as_i64().unwrap_or(0);
    let currency = session["currency"].as_str().unwrap_or("usd").to_owned();
    let intent_id = new_id("pi_");
    let charge_id = new_id("ch_");
    let last4 = &number[number.len() - 4..];
    let charge = state.insert(objects::charge(
        &charge_id, amount, &currency, &intent_id, email, last4, now,
    ));
    let intent = state.insert(objects::payment_intent(
        &intent_id, amount, &currency, &charge_id, email, now,
    ));
    let session = state
        .update(id, |session| {
            session["status"] = json!("complete");
            session["payment_status"] = json!("paid");
            session["payment_intent"] = json!(intent_id);
            session["customer_details"] = objects::customer_details(email);
        })
        .unwrap_or_default();
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

/// `GET` shows the test checkout of a session; `POST` pays it.
pub fn page(sandbox: &Arc<Sandbox>, method: &Method, id: &str, body: &[u8]) -> Response<Vec<u8>> {
    let webhooks = sandbox.webhooks();
    let mut state = sandbox.state();
    expire_if_due(&mut state, id, webhooks);
    let Some(session) = state
        .get(id)
        .filter(|value| value["object"] == "checkout.session")
        .cloned()
    else {
        return html(
            StatusCode::NOT_FOUND,
            &layout("Not found", "<p>There is no checkout session here.</p>"),
        );
    };
    let form = super::params::Params::parse(&String::from_utf8_lossy(body)).ok();
    if *method == Method::POST {
        let field = |name: &str| {
            form.as_ref()
                .and_then(|form| form.str(name))
                .unwrap_or("")
                .to_owned()
        };
        let (email, card) = (field("email"), field("card"));
        match complete(&mut state, webhooks, id, &email, &card) {
            Ok(session) => {
                sandbox.after_change(&mut state);
                return match session["success_url"].as_str() {
                    Some(url) => redirect(&url.replace("{CHECKOUT_SESSION_ID}", id)),
                    None => html(
                        StatusCode::OK,
                        &layout(
                            "Paid",
                            "<h1>Thank you</h1><p>Your payment went through.</p>",
                        ),
                    ),
                };
            }
            Err(error) => {
                sandbox.after_change(&mut state);
                let items = state.line_items.get(id).cloned().unwrap_or_default();
                return html(
                    StatusCode::PAYMENT_REQUIRED,
                    &checkout_form(&session, &items, &email, Some(&error.message)),
                );
            }
        }
    }
    match session["status"].as_str() {
        Some("open") => {
            let items = state.line_items.get(id).cloned().unwrap_or_default();
            let email = session["customer_email"].as_str().unwrap_or("").to_owned();
            html(
                StatusCode::OK,
                &checkout_form(&session, &items, &email, None),
            )
        }
        Some("complete") => html(
            StatusCode::OK,
            &layout(
                "Paid",
                "<h1>Already paid</h1><p>This checkout is complete.</p>",
            ),
        ),
        _ => html(
            StatusCode::GONE,
            &layout(
                "Expired",
                "<h1>This checkout has expired</h1><p>Start again from the shop.</p>",
            ),
        ),
    }
}

/// A payment link's URL: a new session for its price, then its checkout.
pub fn payment_link(sandbox: &Arc<Sandbox>, id: &str) -> Response<Vec<u8>> {
    let webhooks = sandbox.webhooks();
    let mut state = sandbox.state();
    let Some(link) = state
        .get(id)
        .filter(|value| value["object"] == "payment_link")
        .cloned()
    else {
        return html(
            StatusCode::NOT_FOUND,
            &layout("Not found", "<p>There is no payment link here.</p>"),
        );
    };
    if link["active"] != json!(true) {
        return html(
            StatusCode::GONE,
            &layout(
                "No longer available",
                "<h1>This link is no longer active</h1><p>Ask the seller for a new one.</p>",
            ),
        );
    }
    let price_id = state
        .payment_link_prices
        .get(id)
        .cloned()
        .unwrap_or_default();
    let Some(price) = state.get(&price_id).cloned() else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the payment link's price is missing",
        );
    };
    let success_url = link["after_completion"]["redirect"]["url"]
        .as_str()
        .map(str::to_owned);
    let context = api::Context {
        base_url: sandbox.base_url(),
        idempotency_key: None,
        webhooks,
    };
    let now = state.now();
    let session = api::new_session(
        &mut state,
        &context,
        &price,
        NewSession {
            success_url: success_url.as_deref(),
            cancel_url: None,
            customer_email: None,
            client_reference_id: None,
            payment_link: Some(id),
            allow_promotion_codes: link["allow_promotion_codes"].as_bool(),
            // Stripe copies a payment link's metadata onto its sessions.
            metadata: link["metadata"].clone(),
            expires_at: now + 24 * 3600,
        },
    );
    sandbox.after_change(&mut state);
    redirect(session["url"].as_str().unwrap_or("/"))
}

pub fn index(sandbox: &Arc<Sandbox>) -> Response<Vec<u8>> {
    let body = format!(
        "<h1>shop sandbox</h1>\
         <p>A local, Stripe-compatible API for <code>shop</code>. Point shop at it with\
         <code>SHOP_STRIPE_API_BASE={}</code> and any <code>STRIPE_SECRET_KEY</code> that starts with \
         <code>sk_test_</code>.</p>\
         <p>Test cards: <code>4242 4242 4242 4242</code> pays, <code>4000 0000 0000 0002</code> is declined, \
         <code>4000 0000 0000 9995</code> has insufficient funds.</p>",
        escape(sandbox.base_url())
    );
    html(StatusCode::OK, &layout("shop sandbox", &body))
}

fn checkout_form(session: &Value, items: &[Value], email: &str, error: Option<&str>) -> String {
    let id = session["id"].as_str().unwrap_or_default();
    let currency = session["currency"].as_str().unwrap_or("usd");
    let amount = session["amount_total"].as_i64().unwrap_or(0);
    let total = currency
        .parse::<crate::store::Currency>()
        .map(|currency| crate::store::Money { amount, currency }.to_string())
        .unwrap_or_else(|_| format!("{amount} {currency}"));
    let names: Vec<String> = items
        .iter()
        .map(|item| escape(item["description"].as_str().unwrap_or("Product")))
        .collect();
    let error = error
        .map(|message| {
            format!(
                "<p role=\"alert\" class=\"error\" id=\"error\">{}</p>",
                escape(message)
            )
        })
        .unwrap_or_default();
    let cancel = session["cancel_url"]
        .as_str()
        .map(|url| format!("<p><a href=\"{}\">Cancel and go back</a></p>", escape(url)))
        .unwrap_or_default();
    let body = format!(
        "<p class=\"badge\">Test mode: no real money moves</p>\
         <h1>{names}</h1>\
         <p class=\"total\">Pay <strong id=\"total\">{total}</strong></p>\
         {error}\
         <form method=\"post\" action=\"/checkout/{id}\">\
         <label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required value=\"{email}\">\
         <label for=\"card\">Card number</label>\
         <input id=\"card\" name=\"card\" inputmode=\"numeric\" autocomplete=\"cc-number\" required placeholder=\"4242 4242 4242 4242\">\
         <div class=\"row\"><div><label for=\"exp\">Expiry</label>\
         <input id=\"exp\" name=\"exp\" placeholder=\"MM / YY\" value=\"12 / 34\"></div>\
         <div><label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" placeholder=\"123\" value=\"123\"></div></div>\
         <button type=\"submit\" id=\"pay\">Pay {total}</button>\
         </form>{cancel}\
         <p class=\"hint\">4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined; \
         4000 0000 0000 9995 has insufficient funds.</p>",
        names = names.join(", "),
        id = escape(id),
        email = escape(email),
    );
    layout("Checkout", &body)
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · shop sandbox</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}\
         label{{display:block;margin-top:1rem;font-weight:600}}\
         input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\
         .row{{display:flex;gap:1rem}}.row>div{{flex:1}}\
         button{{margin-top:1.5rem;width:100%;padding:.75rem;font-size:1rem;background:#4b3fd6;color:#fff;border:0;border-radius:.3rem}}\
         .error{{color:#a00;font-weight:600}}.badge{{color:#8a5a00}}.hint{{color:#555;font-size:.9rem}}\
         </style></head><body><main>{body}</main></body></html>",
        title = escape(title),
    )
}

fn html(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(body.as_bytes().to_vec());
    *response.status_mut() = status;
    response.headers_mut().insert(
        "Content-Type",
        warp::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn redirect(location: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(Vec::new());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = warp::http::HeaderValue::from_str(location) {
        response.headers_mut().insert("Location", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_refuses_typos() {
        for card in PAYING_CARDS
            .iter()
            .chain(DECLINING_CARDS.iter().map(|(n, ..)| n))
        {
            assert!(luhn(card), "{card}");
        }
        assert!(!luhn("4242424242424241"));
    }
}

//! The sandbox's hosted pages: the test checkout a session's `url` opens,
//! the page a payment link's `url` opens, and the hosted invoice. What
//! paying does is `sessions`'.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::{Method, Response, StatusCode};

use super::sessions::{
    self, NewSession, Payment, apply_promotion_code, choose_amount, complete, custom_range,
    custom_range_of, expire_if_due,
};
use super::state::State;
use super::{ApiError, Sandbox, plain, tax};
use crate::html::escape;

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
        let (email, card, iban) = (field("email"), field("card"), field("iban"));
        if let Some(code) = form
            .as_ref()
            .and_then(|form| form.str("promotion_code"))
            .filter(|code| !code.trim().is_empty())
        {
            let applied = apply_promotion_code(&mut state, id, code.trim());
            sandbox.after_change(&mut state);
            let session = state.get(id).cloned().unwrap_or_default();
            let items = shown_items(&state, id);
            return match applied {
                Ok(()) => html(
                    StatusCode::OK,
                    &checkout_form(sandbox, &session, &items, &email, None),
                ),
                Err(error) => html(
                    StatusCode::BAD_REQUEST,
                    &checkout_form(sandbox, &session, &items, &email, Some(&error.message)),
                ),
            };
        }
        let method = if iban.trim().is_empty() { card } else { iban };
        let chosen = if custom_range(&state, id).is_some() {
            let currency = session["currency"].as_str().unwrap_or("usd");
            super::rules::parse_amount(field("amount").trim(), currency)
                .ok_or_else(|| ApiError::invalid("custom_unit_amount", "Enter an amount."))
                .and_then(|amount| choose_amount(&mut state, id, amount))
        } else {
            Ok(())
        };
        let (address, tax_id) = (field("address"), field("tax_id"));
        let payment = Payment {
            email: &email,
            method: &method,
            address: Some(address.as_str()),
            tax_id: Some(tax_id.as_str()),
            accepted_terms: field("terms") == "accepted",
        };
        let result =
            chosen.and_then(|()| complete(&mut state, webhooks, sandbox.base_url(), id, &payment));
        match result {
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
                let items = shown_items(&state, id);
                return html(
                    StatusCode::PAYMENT_REQUIRED,
                    &checkout_form(sandbox, &session, &items, &email, Some(&error.message)),
                );
            }
        }
    }
    match session["status"].as_str() {
        Some("open") => {
            let items = shown_items(&state, id);
            let email = session["customer_email"].as_str().unwrap_or("").to_owned();
            html(
                StatusCode::OK,
                &checkout_form(sandbox, &session, &items, &email, None),
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

/// What a payment link's URL may carry, as Stripe documents it ("Track a
/// payment link"): `client_reference_id` (letters, digits, `-` and `_`,
/// at most 200 characters), `prefilled_email`, and the UTM codes
/// `utm_source`, `utm_medium`, `utm_campaign`, `utm_term`, `utm_content`
/// (the same characters, at most 150), which Stripe hands on to the
/// redirect after payment. A value Stripe would not take is dropped
/// without a word, as Stripe drops it.
struct LinkParameters {
    client_reference_id: Option<String>,
    prefilled_email: Option<String>,
    utm: Vec<(String, String)>,
}

impl LinkParameters {
    fn parse(query: &str) -> LinkParameters {
        let plain = |value: &str, max: usize| {
            !value.is_empty()
                && value.len() <= max
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let mut found = LinkParameters {
            client_reference_id: None,
            prefilled_email: None,
            utm: Vec::new(),
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "client_reference_id" if plain(&value, 200) => {
                    found.client_reference_id = Some(value.into_owned());
                }
                "prefilled_email" if super::rules::is_email(&value) => {
                    found.prefilled_email = Some(value.into_owned());
                }
                "utm_source" | "utm_medium" | "utm_campaign" | "utm_term" | "utm_content"
                    if plain(&value, 150) =>
                {
                    found.utm.push((key.into_owned(), value.into_owned()));
                }
                _ => {}
            }
        }
        found
    }
}

/// A payment link's URL: a new session for its price, then its checkout.
pub fn payment_link(sandbox: &Arc<Sandbox>, id: &str, query: &str) -> Response<Vec<u8>> {
    let parameters = LinkParameters::parse(query);
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
        .map(|url| {
            // The UTM codes go on to the redirect after payment.
            let mut url = url.to_owned();
            for (key, value) in &parameters.utm {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("{key}={value}"));
            }
            url
        });
    let now = state.now();
    let session = sessions::new_session(
        &mut state,
        sandbox.base_url(),
        &price,
        NewSession {
            success_url: success_url.as_deref(),
            cancel_url: None,
            customer_email: parameters.prefilled_email.as_deref(),
            client_reference_id: parameters.client_reference_id.as_deref(),
            payment_link: Some(id),
            allow_promotion_codes: link["allow_promotion_codes"].as_bool(),
            // Stripe copies a payment link's metadata onto its sessions.
            metadata: link["metadata"].clone(),
            expires_at: now + 24 * 3600,
            // And what it asks beyond the payment.
            options: link.clone(),
        },
    );
    let total = session["amount_total"].as_i64().unwrap_or(0);
    let currency = session["currency"].as_str().unwrap_or_default();
    if total > 0
        && let Some(message) = super::rules::charge_refusal(total, currency)
    {
        // Stripe's page says the link cannot take payments.
        let id = session["id"].as_str().unwrap_or_default().to_owned();
        state.remove(&id);
        return html(
            StatusCode::BAD_REQUEST,
            &layout(
                "Something went wrong",
                &format!(
                    "<h1>This link cannot take payments</h1><p>{}</p>",
                    escape(&message)
                ),
            ),
        );
    }
    sandbox.after_change(&mut state);
    redirect(session["url"].as_str().unwrap_or("/"))
}

/// An invoice's hosted page: its number, seller, buyer, lines and tax.
pub fn invoice_page(sandbox: &Arc<Sandbox>, id: &str) -> Response<Vec<u8>> {
    let state = sandbox.state();
    let Some(invoice) = state.get(id).filter(|value| value["object"] == "invoice") else {
        return html(
            StatusCode::NOT_FOUND,
            &layout("Not found", "<p>There is no invoice here.</p>"),
        );
    };
    let currency = invoice["currency"].as_str().unwrap_or("usd");
    let money = |amount: &Value| {
        escape(&super::rules::display(
            amount.as_i64().unwrap_or(0),
            currency,
        ))
    };
    let address = &invoice["customer_address"];
    let buyer = [
        invoice["customer_email"].as_str(),
        address["line1"].as_str(),
        address["postal_code"].as_str(),
        address["city"].as_str(),
        address["country"].as_str(),
    ]
    .into_iter()
    .flatten()
    .map(escape)
    .collect::<Vec<_>>()
    .join("<br>");
    let tax_ids: Vec<String> = invoice["customer_tax_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| {
            format!(
                "<p>VAT ID {}</p>",
                escape(id["value"].as_str().unwrap_or(""))
            )
        })
        .collect();
    let reverse = if invoice["customer_tax_exempt"] == "reverse" {
        "<p id=\"reverse\">Reverse charge: the buyer accounts for the VAT.</p>"
    } else {
        ""
    };
    let lines: String = invoice["lines"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            format!(
                "<tr><td>{}</td><td class=\"amount\">{}</td></tr>",
                escape(line["description"].as_str().unwrap_or("Product")),
                money(&line["amount"]),
            )
        })
        .collect();
    let body = format!(
        "<p class=\"banner\" role=\"note\"><strong>TEST MODE</strong> · shop sandbox</p>\
         <h1>Invoice <span id=\"number\">{number}</span></h1>\
         <p id=\"seller\">{seller}</p><p id=\"buyer\">{buyer}</p>{tax_ids}{reverse}\
         <table class=\"summary\"><tbody>{lines}\
         <tr><td>Tax</td><td class=\"amount\" id=\"tax\">{tax}</td></tr></tbody>\
         <tfoot><tr><th scope=\"row\">Paid</th><td class=\"amount\" id=\"paid\">{paid}</td></tr></tfoot></table>",
        number = escape(invoice["number"].as_str().unwrap_or("")),
        seller = escape(
            sandbox
                .config
                .account_name
                .as_deref()
                .unwrap_or("Test account")
        ),
        tax_ids = tax_ids.concat(),
        tax = money(&invoice["tax"]),
        paid = money(&invoice["amount_paid"]),
    );
    html(StatusCode::OK, &layout("Invoice", &body))
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

/// A session's line items with each price's product in it (as Stripe's
/// page shows the product), for the page to say what tax code it is
/// taxed by.
fn shown_items(state: &State, id: &str) -> Vec<Value> {
    let mut items = state.line_items.get(id).cloned().unwrap_or_default();
    for item in &mut items {
        if let Some(product) = item["price"]["product"]
            .as_str()
            .and_then(|product| state.get(product))
        {
            item["price"]["product"] = product.clone();
        }
    }
    items
}

fn checkout_form(
    sandbox: &Sandbox,
    session: &Value,
    items: &[Value],
    email: &str,
    error: Option<&str>,
) -> String {
    let seller = sandbox
        .config
        .account_name
        .as_deref()
        .unwrap_or("Test account");
    let id = session["id"].as_str().unwrap_or_default();
    let currency = session["currency"].as_str().unwrap_or("usd");
    let amount = session["amount_total"].as_i64().unwrap_or(0);
    let discount = session["total_details"]["amount_discount"]
        .as_i64()
        .unwrap_or(0);
    let total = super::rules::display(amount, currency);
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
    let discounted = if discount > 0 {
        format!(
            "<p class=\"discount\" id=\"discount\">Discount −{}</p>",
            escape(&super::rules::display(discount, currency))
        )
    } else {
        String::new()
    };
    let promotion = if session["allow_promotion_codes"] == json!(true) && discount == 0 {
        promotion_form(id, email)
    } else {
        String::new()
    };
    let payment = payment_fields(amount, currency);
    let chosen = chosen_amount(items, currency);
    let asked = asked_fields(session);
    let summary = summary(session, items, currency, discount);
    let body = format!(
        "<p class=\"banner\" role=\"note\"><strong>TEST MODE</strong> · shop sandbox · no real money moves</p>\
         <p class=\"seller\" id=\"seller\">{seller}</p>\
         <h1>{names}</h1>{summary}{discounted}\
         <p class=\"total\">Pay <strong id=\"total\">{total}</strong></p>\
         {error}{promotion}\
         <form method=\"post\" action=\"/checkout/{id}\">\
         <label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required value=\"{email}\">\
         {chosen}{asked}{payment}\
         <button type=\"submit\" id=\"pay\">Pay {total}</button>\
         </form>{cancel}\
         <p class=\"hint\">4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined; \
         4000 0000 0000 9995 has insufficient funds. In EUR, IBAN DE89370400440532013000 pays \
         after a delay and DE62370400440532013001 fails after it.</p>",
        names = names.join(", "),
        id = escape(id),
        email = escape(email),
        seller = escape(seller),
    );
    layout("Checkout", &body)
}

/// The promotion code's own form, which posts back to the session.
fn promotion_form(id: &str, email: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/checkout/{id}\" class=\"promo\">\
         <input type=\"hidden\" name=\"email\" value=\"{email}\">\
         <label for=\"promotion_code\">Promotion code</label>\
         <input id=\"promotion_code\" name=\"promotion_code\" autocomplete=\"off\">\
         <button type=\"submit\" id=\"apply\">Apply</button></form>",
        id = escape(id),
        email = escape(email),
    )
}

/// A card (and in euros a bank account), or nothing to pay.
fn payment_fields(amount: i64, currency: &str) -> String {
    if amount == 0 {
        return "<p>Nothing to pay.</p>".to_owned();
    }
    let debit = if currency == "eur" {
        "<label for=\"iban\">or a bank account (IBAN, SEPA Direct Debit)</label>\
         <input id=\"iban\" name=\"iban\" autocomplete=\"off\" placeholder=\"DE89 3704 0044 0532 0130 00\">"
    } else {
        ""
    };
    format!(
        "<label for=\"card\">Card number</label>\
         <input id=\"card\" name=\"card\" inputmode=\"numeric\" autocomplete=\"cc-number\" placeholder=\"4242 4242 4242 4242\">\
         <div class=\"row\"><div><label for=\"exp\">Expiry</label>\
         <input id=\"exp\" name=\"exp\" placeholder=\"MM / YY\" value=\"12 / 34\"></div>\
         <div><label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" placeholder=\"123\" value=\"123\"></div></div>{debit}"
    )
}

/// The amount a buyer chooses, for a pay-what-you-want price.
fn chosen_amount(items: &[Value], currency: &str) -> String {
    let Some((minimum, _)) = custom_range_of(items) else {
        return String::new();
    };
    format!(
        "<label for=\"amount\">Amount you pay{}</label>\
         <input id=\"amount\" name=\"amount\" inputmode=\"decimal\" required value=\"{}\">",
        minimum
            .map(|minimum| format!(
                " (at least {})",
                escape(&super::rules::display(minimum, currency))
            ))
            .unwrap_or_default(),
        escape(&super::rules::decimal(
            items
                .first()
                .and_then(|item| item["amount_subtotal"].as_i64())
                .unwrap_or(0),
            currency
        )),
    )
}

/// The order summary: each line, the discount, how tax is figured (the
/// product's tax code), the total due.
fn summary(session: &Value, items: &[Value], currency: &str, discount: i64) -> String {
    let mut summary = String::from(
        "<table class=\"summary\" id=\"summary\"><caption>Order summary</caption><tbody>",
    );
    for item in items {
        let quantity = item["quantity"].as_i64().unwrap_or(1);
        let line = item["amount_subtotal"]
            .as_i64()
            .or_else(|| item["amount_total"].as_i64())
            .unwrap_or(0);
        summary.push_str(&format!(
            "<tr><td>{}{}</td><td class=\"amount\">{}</td></tr>",
            escape(item["description"].as_str().unwrap_or("Product")),
            if quantity == 1 {
                String::new()
            } else {
                format!(" × {quantity}")
            },
            escape(&super::rules::display(line, currency)),
        ));
    }
    if discount > 0 {
        summary.push_str(&format!(
            "<tr><td>Discount</td><td class=\"amount\">−{}</td></tr>",
            escape(&super::rules::display(discount, currency))
        ));
    }
    if session["automatic_tax"]["enabled"] == json!(true) {
        let inclusive = items
            .first()
            .is_some_and(|item| item["price"]["tax_behavior"] == "inclusive");
        // What the product is taxed as: its tax code, else the preset.
        let code = items
            .first()
            .and_then(|item| item["price"]["product"]["tax_code"].as_str())
            .unwrap_or(tax::PRESET_CODE);
        let name = tax::TAX_CODES
            .iter()
            .find(|(known, _)| *known == code)
            .map_or("", |(_, name)| name);
        summary.push_str(&format!(
            "<tr><td>Tax <span class=\"tax-code\" id=\"tax-code\">({} · {})</span></td>\
             <td class=\"amount\">{}, from your address</td></tr>",
            escape(code),
            escape(name),
            if inclusive { "included" } else { "added" },
        ));
    }
    let total = super::rules::display(session["amount_total"].as_i64().unwrap_or(0), currency);
    summary.push_str(&format!(
        "</tbody><tfoot><tr><th scope=\"row\">Total due</th><td class=\"amount\">{}</td></tr></tfoot></table>",
        escape(&total)
    ));
    summary
}

/// The address, tax ID and consent fields a session asks for.
fn asked_fields(session: &Value) -> String {
    let mut fields = String::new();
    if tax::needs_address(session) {
        fields.push_str(
            "<label for=\"address\">Billing address (test addresses)</label>\
             <select id=\"address\" name=\"address\" required><option value=\"\">Choose…</option>",
        );
        for address in tax::TEST_ADDRESSES {
            fields.push_str(&format!(
                "<option value=\"{}\">{}</option>",
                escape(address.key),
                escape(address.label)
            ));
        }
        fields.push_str("</select>");
    }
    if session["tax_id_collection"]["enabled"] == json!(true) {
        fields.push_str(
            "<label for=\"tax_id\">VAT ID, if you buy as a business (optional)</label>\
             <input id=\"tax_id\" name=\"tax_id\" autocomplete=\"off\" placeholder=\"DE123456789\">",
        );
    }
    if tax::needs_consent(session) {
        let text = session["custom_text"]["terms_of_service_acceptance"]["message"]
            .as_str()
            .map(crate::html::markdown)
            .unwrap_or_else(|| "<p>I agree to the terms of service.</p>".to_owned());
        fields.push_str(&format!(
            "<div class=\"consent\"><input type=\"checkbox\" id=\"terms\" name=\"terms\" \
             value=\"accepted\" required><label for=\"terms\">{text}</label></div>"
        ));
    }
    fields
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
         .error{{color:#a00;font-weight:600}}.hint{{color:#555;font-size:.9rem}}\
         .banner{{background:#ffe8a3;color:#5c3b00;font-weight:700;padding:.75rem 1rem;border-radius:.3rem;text-align:center;font-size:1.1rem;letter-spacing:.02em}}\
         .seller{{font-weight:600;color:#555;margin-bottom:0}}\
         table.summary{{width:100%;border-collapse:collapse;margin:1rem 0}}table.summary caption{{text-align:left;font-weight:600;padding-bottom:.3rem}}\
         table.summary td,table.summary th{{padding:.35rem 0;border-bottom:1px solid #ddd;text-align:left}}table.summary .amount{{text-align:right;white-space:nowrap}}\
         .promo{{display:flex;gap:.5rem;align-items:end}}.promo button{{width:auto;margin:0}}\
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

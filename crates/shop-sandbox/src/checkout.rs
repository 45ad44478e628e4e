//! The sandbox's hosted pages: the test checkout a session's `url` opens,
//! the page a payment link's `url` opens, and the hosted invoice. What
//! paying does is `sessions`'.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::{Method, Response, StatusCode};

use super::sessions::{
    self, NewSession, Payment, apply_promotion_code, choose_amount, choose_currency, complete,
    currencies, currency_of_country, custom_range, custom_range_of, expire_if_due,
};
use super::state::State;
use super::{ApiError, Sandbox, plain, tax};
use crate::pages;

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
            &pages::message("Not found", None, "There is no checkout session here."),
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
        // The currency selector: the page again, in the currency chosen.
        if field("step") == "currency" {
            let chosen = choose_currency(&mut state, id, &field("currency"));
            sandbox.after_change(&mut state);
            let session = state.get(id).cloned().unwrap_or_default();
            let items = shown_items(&state, id);
            let error = chosen.err().map(|error| error.message);
            return html(
                match error {
                    None => StatusCode::OK,
                    Some(_) => StatusCode::BAD_REQUEST,
                },
                &checkout_form(sandbox, &session, &items, &email, error.as_deref()),
            );
        }
        // Paying: in the currency the form names, else in the one of the
        // buyer's country where the price has it, as Checkout presents.
        let by_country = tax::TEST_ADDRESSES
            .iter()
            .find(|address| address.key.eq_ignore_ascii_case(field("address").trim()))
            .and_then(|address| currency_of_country(address.country))
            .filter(|currency| currencies(&state, id).iter().any(|c| c == currency));
        let presented = match field("currency") {
            currency if !currency.trim().is_empty() => choose_currency(&mut state, id, &currency),
            _ => by_country.map_or(Ok(()), |currency| choose_currency(&mut state, id, currency)),
        };
        let session = state.get(id).cloned().unwrap_or(session);
        let method = if iban.trim().is_empty() { card } else { iban };
        let chosen = if let Err(error) = presented {
            Err(error)
        } else if custom_range(&state, id).is_some() {
            let currency = session["currency"].as_str().unwrap_or("usd");
            super::rules::parse_amount(field("amount").trim(), currency)
                .ok_or_else(|| ApiError::invalid("custom_unit_amount", "Enter an amount."))
                .and_then(|amount| choose_amount(&mut state, id, amount))
        } else {
            Ok(())
        };
        let (address, tax_id) = (field("address"), field("tax_id"));
        // The custom fields' answers, each in its input `custom_<key>`.
        let answers: Vec<(String, String)> = session["custom_fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|custom| custom["key"].as_str())
            .map(|key| (key.to_owned(), field(&format!("custom_{key}"))))
            .collect();
        let payment = Payment {
            custom_fields: &answers,
            email: &email,
            method: &method,
            address: Some(address.as_str()),
            tax_id: Some(tax_id.as_str()),
            accepted_terms: field("terms") == "accepted",
            promotions: field("promotions") == "opt_in",
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
                        &pages::message("Paid", Some("Thank you"), "Your payment went through."),
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
            &pages::message("Paid", Some("Already paid"), "This checkout is complete."),
        ),
        _ => html(
            StatusCode::GONE,
            &pages::message(
                "Expired",
                Some("This checkout has expired"),
                "Start again from the shop.",
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
            &pages::message("Not found", None, "There is no payment link here."),
        );
    };
    if link["active"] != json!(true) {
        return html(
            StatusCode::GONE,
            &pages::message(
                "No longer available",
                Some("This link is no longer active"),
                "Ask the seller for a new one.",
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
        &[(price.clone(), 1)],
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
            &pages::message(
                "Something went wrong",
                Some("This link cannot take payments"),
                &message,
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
            &pages::message("Not found", None, "There is no invoice here."),
        );
    };
    let currency = invoice["currency"].as_str().unwrap_or("usd");
    let money = |amount: &Value| super::rules::display(amount.as_i64().unwrap_or(0), currency);
    let address = &invoice["customer_address"];
    let buyer: Vec<&str> = [
        invoice["customer_email"].as_str(),
        address["line1"].as_str(),
        address["postal_code"].as_str(),
        address["city"].as_str(),
        address["country"].as_str(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let tax_ids: Vec<&str> = invoice["customer_tax_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| id["value"].as_str().unwrap_or(""))
        .collect();
    let lines: Vec<Value> = invoice["lines"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            json!({
                "description": line["description"].as_str().unwrap_or("Product"),
                "amount": money(&line["amount"]),
            })
        })
        .collect();
    let seller = sandbox
        .config
        .account_name
        .as_deref()
        .unwrap_or("Test account");
    let page = pages::render(
        "invoice.html",
        json!({
            "title": "Invoice",
            "number": invoice["number"].as_str().unwrap_or(""),
            "seller": seller,
            "buyer": buyer,
            "tax_ids": tax_ids,
            "reverse": invoice["customer_tax_exempt"] == "reverse",
            "lines": lines,
            "tax": money(&invoice["tax"]),
            "paid": money(&invoice["amount_paid"]),
        }),
    );
    html(StatusCode::OK, &page)
}

pub fn index(sandbox: &Arc<Sandbox>) -> Response<Vec<u8>> {
    let page = pages::render(
        "index.html",
        json!({"title": "shop sandbox", "base_url": sandbox.base_url()}),
    );
    html(StatusCode::OK, &page)
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
    let currency = session["currency"].as_str().unwrap_or("usd");
    let display = |amount: i64| super::rules::display(amount, currency);
    let amount = session["amount_total"].as_i64().unwrap_or(0);
    let discount = session["total_details"]["amount_discount"]
        .as_i64()
        .unwrap_or(0);
    let names: Vec<&str> = items
        .iter()
        .map(|item| item["description"].as_str().unwrap_or("Product"))
        .collect();
    let lines: Vec<Value> = items
        .iter()
        .map(|item| {
            let line = item["amount_subtotal"]
                .as_i64()
                .or_else(|| item["amount_total"].as_i64())
                .unwrap_or(0);
            json!({
                "description": item["description"].as_str().unwrap_or("Product"),
                "quantity": item["quantity"].as_i64().unwrap_or(1),
                "amount": display(line),
            })
        })
        .collect();
    // What the product is taxed as: its tax code, else the preset.
    let tax = (session["automatic_tax"]["enabled"] == json!(true)).then(|| {
        let first = items.first();
        let code = first
            .and_then(|item| item["price"]["product"]["tax_code"].as_str())
            .unwrap_or(tax::PRESET_CODE);
        let name = tax::tax_code_name(code).unwrap_or_default();
        json!({
            "code": code,
            "name": name,
            "inclusive": first.is_some_and(|item| item["price"]["tax_behavior"] == "inclusive"),
        })
    });
    // A pay-what-you-want price: the amount the buyer chooses.
    let custom = custom_range_of(items).map(|(minimum, _)| {
        json!({
            "minimum": minimum.map(display),
            "value": super::rules::decimal(
                items
                    .first()
                    .and_then(|item| item["amount_subtotal"].as_i64())
                    .unwrap_or(0),
                currency,
            ),
        })
    });
    let addresses: Vec<Value> = tax::TEST_ADDRESSES
        .iter()
        .map(|address| json!({"key": address.key, "label": address.label}))
        .collect();
    let consent = tax::needs_consent(session).then(|| {
        pages::safe(
            session["custom_text"]["terms_of_service_acceptance"]["message"]
                .as_str()
                .map(crate::html::markdown)
                .unwrap_or_else(|| "<p>I agree to the terms of service.</p>".to_owned()),
        )
    });
    // Shown to every buyer the session may ask; counted only for one in
    // the US (`tax::offers_promotions`).
    let promotions = session["consent_collection"]["promotions"] == "auto";
    // The custom fields, as inputs (a dropdown as a select).
    let custom_fields: Vec<Value> = session["custom_fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|custom| {
            let kind = custom["type"].as_str().unwrap_or("text");
            json!({
                "key": custom["key"],
                "label": custom["label"]["custom"],
                "kind": kind,
                "optional": custom["optional"],
                "maximum": custom[kind]["maximum_length"],
                "options": custom["dropdown"]["options"],
            })
        })
        .collect();
    // A price in several currencies: the selector, as Checkout shows one.
    let price = items.first().map(|item| &item["price"]);
    let mut currencies: Vec<String> = price
        .and_then(|price| price["currency"].as_str())
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(options) = price.and_then(|price| price["currency_options"].as_object()) {
        currencies.extend(options.keys().cloned());
    }
    let currencies: Vec<Value> = match currencies.len() {
        0 | 1 => Vec::new(),
        _ => currencies
            .iter()
            .map(|code| {
                json!({
                    "code": code,
                    "name": code.to_ascii_uppercase(),
                    "selected": session["currency"] == code.as_str(),
                })
            })
            .collect(),
    };
    pages::render(
        "checkout.html",
        minijinja::context! {
            title => "Checkout",
            promotions,
            currencies,
            custom_fields,
            id => session["id"].as_str().unwrap_or_default(),
            seller,
            names => names.join(", "),
            items => lines,
            discount => (discount > 0).then(|| display(discount)),
            tax,
            total => display(amount),
            error,
            promotion_codes => session["allow_promotion_codes"] == json!(true) && discount == 0,
            email,
            custom,
            address => tax::needs_address(session),
            addresses,
            tax_id => session["tax_id_collection"]["enabled"] == json!(true),
            consent,
            pay => amount > 0,
            debit => currency == "eur",
            cancel => session["cancel_url"].as_str(),
        },
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

//! The sandbox's control surface for tests and demos, under `/_sandbox/`:
//! the clock, faults, paying a session without a browser, disputes, and
//! what was requested and delivered.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::{Method, Response, StatusCode};

use super::objects::{self, new_id};
use super::{Faults, Sandbox, fees, json_response, registrations, webhooks};

/// One arm per control endpoint: a route table reads best whole, so it
/// stays one function longer than 150 lines.
pub fn handle(
    sandbox: &Arc<Sandbox>,
    method: &Method,
    path: &[&str],
    _query: &str,
    body: &[u8],
) -> Response<Vec<u8>> {
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("the body is not JSON: {error}")}),
                );
            }
        }
    };
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    match path {
        [] | [""] if get => json_response(
            StatusCode::OK,
            &json!({
                "base_url": sandbox.base_url(),
                "now": sandbox.state().now(),
                "webhook_url": sandbox.config.webhook_url,
            }),
        ),
        ["clock"] if get => json_response(StatusCode::OK, &json!({"now": sandbox.state().now()})),
        ["clock"] if post => {
            let mut state = sandbox.state();
            let real = state.now() - state.clock_offset;
            if let Some(now) = input["now"].as_i64() {
                state.clock_offset = now - real;
            } else if let Some(seconds) = input["advance"].as_i64() {
                state.clock_offset += seconds;
            } else if input["reset"].as_bool() == Some(true) {
                state.clock_offset = 0;
            } else {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "give `now` (Unix seconds), `advance` (seconds) or `reset: true`"}),
                );
            }
            sandbox.after_change(&mut state);
            let now = state.now();
            drop(state);
            // What the new time makes due settles now.
            sandbox.settle();
            json_response(StatusCode::OK, &json!({"now": now}))
        }
        ["settings"] if post => {
            let mut state = sandbox.state();
            if let Some(delay) = input["async_payment_delay"].as_i64() {
                state.async_payment_delay = Some(delay.max(0));
            }
            if let Some(pending) = input["refunds_pending"].as_bool() {
                state.refunds_pending = pending;
            }
            // What an author sets in Stripe's Dashboard; `null` unsets.
            if let Some(origin) = input.get("tax_origin") {
                state.account.tax_origin = origin.as_str().map(str::to_ascii_uppercase);
            }
            if let Some(registrations) = input.get("tax_registrations") {
                let read: Result<Vec<String>, String> = match registrations.as_array() {
                    Some(list) => list
                        .iter()
                        .map(|r| registrations::parse(r.as_str().unwrap_or_default()))
                        .collect(),
                    None => Err(
                        "give `tax_registrations` as a list, such as [\"DE\", \"US-WA\"]".into(),
                    ),
                };
                match read {
                    Ok(list) => state.account.tax_registrations = list,
                    Err(error) => {
                        return json_response(StatusCode::BAD_REQUEST, &json!({"error": error}));
                    }
                }
            }
            if let Some(url) = input.get("terms_of_service_url") {
                state.account.terms_of_service_url = url.as_str().map(str::to_owned);
            }
            if let Some(country) = input.get("country") {
                state.account.country = country.as_str().map(str::to_ascii_uppercase);
            }
            if let Some(currency) = input.get("settle_in") {
                let currency = currency.as_str().map(str::to_ascii_lowercase);
                if currency
                    .as_deref()
                    .is_some_and(|code| super::fees::exchange_rate(code, "usd").is_none())
                {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "settle_in: a currency of the sandbox's table of rates"}),
                    );
                }
                state.account.settle_in = currency;
            }
            sandbox.after_change(&mut state);
            json_response(
                StatusCode::OK,
                &json!({
                    "async_payment_delay": state.async_payment_delay.unwrap_or(60),
                    "refunds_pending": state.refunds_pending,
                    "tax_origin": state.account.tax_origin,
                    "tax_registrations": state.account.tax_registrations,
                    "terms_of_service_url": state.account.terms_of_service_url,
                    "country": fees::account_country(&state),
                    "settle_in": state.account.settle_in,
                }),
            )
        }
        ["settle"] if post => {
            sandbox.settle();
            json_response(
                StatusCode::OK,
                &json!({"waiting": sandbox.state().settlements.len()}),
            )
        }
        ["refunds", id, outcome @ ("succeed" | "fail")] if post => {
            let webhooks = sandbox.webhooks();
            let mut state = sandbox.state();
            let Some(refund) = state.get(id).filter(|r| r["object"] == "refund").cloned() else {
                return json_response(StatusCode::NOT_FOUND, &json!({"error": "no such refund"}));
            };
            if refund["status"] != "pending" {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "only a pending refund settles; set `refunds_pending` first"}),
                );
            }
            let failed = *outcome == "fail";
            let amount = refund["amount"].as_i64().unwrap_or(0);
            let charge_id = refund["charge"].as_str().unwrap_or_default().to_owned();
            // A failed refund's money comes back to the balance.
            let returned = failed.then(|| {
                let currency = refund["currency"].as_str().unwrap_or("usd");
                fees::record(&mut state, "refund_failure", amount, 0, currency, id)
            });
            let refund = state
                .update(id, |refund| {
                    refund["status"] = json!(if failed { "failed" } else { "succeeded" });
                    if let Some(returned) = returned {
                        refund["failure_reason"] = json!("lost_or_stolen_card");
                        refund["failure_balance_transaction"] = json!(returned);
                    }
                })
                .unwrap_or_default();
            if failed {
                // The money goes back to the balance: the charge is
                // refunded that much less.
                state.update(&charge_id, |charge| {
                    let left = charge["amount_refunded"].as_i64().unwrap_or(0) - amount;
                    charge["amount_refunded"] = json!(left.max(0));
                    charge["refunded"] = json!(false);
                });
            }
            state.emit("charge.refund.updated", refund.clone(), None, webhooks);
            state.emit("refund.updated", refund.clone(), None, webhooks);
            sandbox.after_change(&mut state);
            json_response(StatusCode::OK, &refund)
        }
        ["faults"] if get => {
            let runtime = sandbox.runtime();
            let mut answer = json!(runtime.faults);
            answer["injected"] = json!(runtime.injected);
            json_response(StatusCode::OK, &answer)
        }
        ["faults"] if post => match serde_json::from_value::<Faults>(input) {
            Ok(faults) if (0.0..=1.0).contains(&faults.rate) => {
                sandbox.runtime().faults = faults.clone();
                json_response(StatusCode::OK, &json!(faults))
            }
            Ok(_) => json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "`rate` is a share between 0 and 1"}),
            ),
            Err(error) => json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": error.to_string()}),
            ),
        },
        ["faults"] if delete => {
            sandbox.runtime().faults = Faults::default();
            json_response(StatusCode::OK, &json!(Faults::default()))
        }
        ["checkout", "sessions", id, "complete"] if post => {
            // `{"custom_fields": {"key": "value"}}`: the custom fields' answers.
            let answers: Vec<(String, String)> = input["custom_fields"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect();
            let payment = super::sessions::Payment {
                email: input["email"].as_str().unwrap_or("buyer@example.com"),
                method: input["iban"]
                    .as_str()
                    .or(input["card"].as_str())
                    .unwrap_or("4242424242424242"),
                address: input["address"].as_str(),
                tax_id: input["tax_id"].as_str(),
                accepted_terms: input["accept_terms"].as_bool() == Some(true),
                promotions: input["accept_promotions"].as_bool() == Some(true),
                custom_fields: &answers,
            };
            let webhooks = sandbox.webhooks();
            let mut state = sandbox.state();
            // The currency the buyer pays in, then (pay what you want) the
            // amount they typed in it.
            let presented = match input["currency"].as_str() {
                Some(currency) => super::sessions::choose_currency(&mut state, id, currency),
                None => Ok(()),
            };
            let chosen = presented.and_then(|()| match input["amount"].as_i64() {
                Some(amount) => super::sessions::choose_amount(&mut state, id, amount),
                None => Ok(()),
            });
            let base_url = sandbox.base_url().to_owned();
            let result = chosen.and_then(|()| {
                super::sessions::complete(&mut state, webhooks, &base_url, id, &payment)
            });
            sandbox.after_change(&mut state);
            match result {
                Ok(session) => json_response(StatusCode::OK, &session),
                Err(error) => {
                    let (status, body) = error.to_response();
                    json_response(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                        &body,
                    )
                }
            }
        }
        ["disputes"] if post => {
            let webhooks = sandbox.webhooks();
            let mut state = sandbox.state();
            let charge_id = match (input["charge"].as_str(), input["payment_intent"].as_str()) {
                (Some(charge), _) => Some(charge.to_owned()),
                (None, Some(intent)) => state
                    .get(intent)
                    .and_then(|intent| intent["latest_charge"].as_str())
                    .map(str::to_owned),
                (None, None) => None,
            };
            let Some(charge) = charge_id
                .and_then(|id| state.get(&id).filter(|c| c["object"] == "charge").cloned())
            else {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "give the `charge` or `payment_intent` of a paid session"}),
                );
            };
            let reason = input["reason"].as_str().unwrap_or("fraudulent");
            let now = state.now();
            let dispute = state.insert(objects::dispute(&new_id("dp_"), &charge, reason, now));
            let charge_id = charge["id"].as_str().unwrap_or_default().to_owned();
            state.update(&charge_id, |charge| charge["disputed"] = json!(true));
            state.emit("charge.dispute.created", dispute.clone(), None, webhooks);
            sandbox.after_change(&mut state);
            json_response(StatusCode::OK, &dispute)
        }
        ["seed"] if post => seed(sandbox, &input),
        ["requests"] if get => json_response(StatusCode::OK, &super::log_json(sandbox)),
        ["requests"] if delete => {
            sandbox.runtime().log.clear();
            json_response(StatusCode::OK, &json!([]))
        }
        ["webhooks"] if get => json_response(StatusCode::OK, &sandbox.deliveries.to_json()),
        ["webhooks"] if post => delivery_faults(sandbox, &input),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such sandbox control"}),
        ),
    }
}

/// `POST /_sandbox/webhooks`: `{"down": true}`, the endpoint cannot be
/// reached until `false`; `{"hold": true}`, events are kept back until
/// `{"hold": false}` (or `{"release": "reverse"}`, newest first) lets them
/// go one after the other; `{"duplicate": true}`, each is delivered twice;
/// `{"delay_ms": 2000}`, each waits before its first attempt.
fn delivery_faults(sandbox: &Arc<Sandbox>, input: &Value) -> Response<Vec<u8>> {
    let known = ["down", "hold", "release", "duplicate", "delay_ms"];
    let unknown = match input.as_object() {
        Some(fields) if !fields.is_empty() => fields
            .keys()
            .find(|key| !known.contains(&key.as_str()))
            .cloned(),
        _ => Some(String::new()),
    };
    if let Some(key) = unknown {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!(
                "`{key}`: give `down`, `hold` or `duplicate` (true or false), `release` (\"order\" or \"reverse\") or `delay_ms`"
            )}),
        );
    }
    if let Some(down) = input["down"].as_bool() {
        sandbox.runtime().webhooks_down = down;
    }
    if let Some(duplicate) = input["duplicate"].as_bool() {
        sandbox.deliveries.faults().duplicate = duplicate;
    }
    if let Some(delay) = input["delay_ms"].as_u64() {
        sandbox.deliveries.faults().delay_ms = delay.min(60_000);
    }
    let mut released = 0;
    match (input["hold"].as_bool(), input["release"].as_str()) {
        (Some(true), _) => sandbox.deliveries.faults().hold = true,
        (Some(false), order) | (None, order @ Some(_)) => {
            released = webhooks::release(sandbox, order == Some("reverse"));
        }
        (None, None) => {}
    }
    let faults = sandbox.deliveries.faults();
    json_response(
        StatusCode::OK,
        &json!({
            "down": sandbox.webhooks_down(),
            "hold": faults.hold,
            "duplicate": faults.duplicate,
            "delay_ms": faults.delay_ms,
            "released": released,
        }),
    )
}

/// `POST /_sandbox/seed`: many paid sessions at once, for tests and
/// benchmarks. `{"price": "price_…", "count": 1000, "start": 1700000000,
/// "step": 600, "metadata": {"product": "guide", "version": "1.0.0"},
/// "events": false}`; buyer emails are `buyer<n>@example.com`.
fn seed(sandbox: &Arc<Sandbox>, input: &Value) -> Response<Vec<u8>> {
    let count = input["count"].as_u64().unwrap_or(1).min(1_000_000);
    let step = input["step"].as_i64().unwrap_or(60);
    let events = input["events"].as_bool().unwrap_or(true);
    let webhooks = sandbox.webhooks();
    let mut state = sandbox.state();
    let Some(price) = input["price"]
        .as_str()
        .and_then(|id| state.get(id))
        .filter(|p| p["object"] == "price")
        .cloned()
    else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "give the `price` to sell"}),
        );
    };
    let start = input["start"].as_i64().unwrap_or_else(|| state.now());
    let context = super::api::Context {
        base_url: sandbox.base_url(),
        idempotency_key: None,
        webhooks,
    };
    let metadata = if input["metadata"].is_object() {
        input["metadata"].clone()
    } else {
        json!({})
    };
    let mut ids = Vec::new();
    for index in 0..count {
        let created = start + index as i64 * step;
        state.frozen = Some(created);
        let session = super::sessions::new_session(
            &mut state,
            context.base_url,
            &[(price.clone(), 1)],
            super::sessions::NewSession {
                success_url: Some("http://127.0.0.1:9/thanks?session_id={CHECKOUT_SESSION_ID}"),
                cancel_url: None,
                customer_email: None,
                client_reference_id: None,
                payment_link: None,
                allow_promotion_codes: None,
                metadata: metadata.clone(),
                expires_at: created + 24 * 3600,
                options: Value::Null,
            },
        );
        let id = session["id"].as_str().unwrap_or_default().to_owned();
        let email = format!("buyer{index}@example.com");
        let payment = super::sessions::Payment {
            email: &email,
            method: "4242424242424242",
            ..Default::default()
        };
        if let Err(error) = super::sessions::complete_with(
            &mut state,
            webhooks,
            context.base_url,
            &id,
            &payment,
            events,
        ) {
            state.frozen = None;
            return json_response(StatusCode::BAD_REQUEST, &error.to_response().1);
        }
        if count <= 10_000 {
            ids.push(id);
        }
    }
    state.frozen = None;
    sandbox.after_change(&mut state);
    json_response(StatusCode::OK, &json!({"created": count, "ids": ids}))
}

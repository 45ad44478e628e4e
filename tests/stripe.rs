//! Stripe as it really is, through `shop serve` and the sandbox: no-cost
//! orders, `expires_at` judged by Stripe's own clock, events whose
//! nullable fields are null, the webhook endpoint's API version, and the
//! sandbox refusing what Stripe refuses (unknown API versions, idempotency
//! keys kept only as Stripe keeps them).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::served::Served;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A Stripe API request to the served sandbox, answered as JSON.
fn stripe(served: &Served, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let sandbox = served.sandbox();
    let encoded = form
        .iter()
        .fold(shop::stripe::Form::new(), |form, (key, value)| {
            form.field(*key, *value)
        })
        .encode();
    served.runtime.block_on(async {
        let request = sandbox
            .http()
            .request(method.clone(), format!("{}{path}", sandbox.url))
            .bearer_auth("sk_test_serve");
        let request = if method == Method::GET {
            request
        } else {
            request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encoded)
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    })
}

#[test]
fn a_free_copy_from_a_100_percent_code_is_delivered() {
    let served = Served::start();
    let (_, coupon) = stripe(
        &served,
        Method::POST,
        "/v1/coupons",
        &[("percent_off", "100")],
    );
    stripe(
        &served,
        Method::POST,
        "/v1/promotion_codes",
        &[
            ("coupon", coupon["id"].as_str().unwrap()),
            ("code", "REVIEW"),
        ],
    );
    let checkout = served
        .test
        .shop(&["--json", "checkout", "guide", "--promo", "review"])
        .success()
        .json();
    let url = checkout["url"].as_str().unwrap();
    // Nothing to pay: the buyer gives an address only.
    let form = shop::stripe::Form::new().field("email", "critic@example.com");
    let paid = served
        .runtime
        .block_on(
            served
                .http
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.encode())
                .send(),
        )
        .unwrap();
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let thanks = paid.headers()["location"].to_str().unwrap().to_owned();
    let session = thanks.rsplit('=').next().unwrap().to_owned();
    let found = served
        .runtime
        .block_on(served.sandbox().client().checkout_session(&session))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            found.payment_status.as_str(),
            found.amount_total,
            found.payment_intent_id()
        ),
        ("no_payment_required", Some(0), None)
    );
    let landed = served.thanks_page(&session);
    assert!(
        landed.contains("<strong id=\"amount\">0.00 USD</strong>"),
        "{landed}"
    );
    let page = crate::support::served::download_page_of(&landed);
    let file = served.get(&format!("{page}/guide.epub"));
    assert_eq!(file.status(), StatusCode::OK);
    served.wait_for("the receipt of the free copy", || {
        served
            .mail_queue()
            .iter()
            .any(|mail| mail.purchase.as_deref() == Some(session.as_str()))
    });
}

#[test]
fn a_checkout_expiry_survives_a_stripe_clock_a_little_ahead() {
    let served = Served::start();
    served
        .runtime
        .block_on(served.sandbox().set_clock(now() + 90));
    served
        .test
        .shop(&["checkout", "guide", "--expires", "30m"])
        .success();
    served
        .test
        .shop(&["checkout", "guide", "--expires", "24h"])
        .success();
}

#[test]
fn an_event_with_null_metadata_is_received() {
    let served = Served::start();
    let secret = served.sandbox().webhook_secret.clone();
    let event = json!({"id": "evt_test_null", "object": "event", "type": "checkout.session.completed",
        "created": now(), "data": {"object": {"id": "cs_test_null", "object": "checkout.session",
        "created": now(), "expires_at": now() + 60, "status": "complete", "payment_status": "paid",
        "metadata": null, "customer_details": null, "customer_email": null, "payment_intent": null,
        "payment_link": null, "amount_total": null, "currency": null, "total_details": null}}});
    let body = serde_json::to_vec(&event).unwrap();
    let signature = shop::stripe::webhook::sign(&body, &secret, now());
    let answer = served
        .runtime
        .block_on(
            served
                .http
                .post(format!("{}/stripe/webhook", served.url))
                .header("Stripe-Signature", signature)
                .body(body)
                .send(),
        )
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let recorded = served
        .runtime
        .block_on(served.state().event_recorded("evt_test_null"));
    assert!(recorded.unwrap());
}

#[test]
fn serve_warns_of_a_webhook_endpoint_in_another_api_version() {
    let mut served = Served::start();
    // The start-up check ends with every problem it found, or with the
    // word that there was none.
    served.wait_for("the start-up check", || {
        let log = served.log.lock().unwrap();
        log.contains("start-up check: the keys work") || log.contains("API version")
    });
    assert!(
        !served.log.lock().unwrap().contains("API version"),
        "{}",
        served.log.lock().unwrap()
    );
    let url = format!("{}/stripe/webhook", served.url);
    let (status, endpoint) = stripe(
        &served,
        Method::POST,
        "/v1/webhook_endpoints",
        &[
            ("url", &url),
            ("enabled_events[0]", "*"),
            ("api_version", "2023-10-16"),
        ],
    );
    assert_eq!(status, 200, "{endpoint}");
    served.stop_server();
    served.launch();
    let id = endpoint["id"].as_str().unwrap().to_owned();
    served.wait_for("the warning", || {
        served.log.lock().unwrap().contains(&format!(
            "the webhook endpoint `{id}` sends events in API version `2023-10-16`, but shop reads `2024-04-10`"
        ))
    });
    assert!(
        served
            .log
            .lock()
            .unwrap()
            .contains("--api-version 2024-04-10")
    );
}

#[test]
fn the_sandbox_refuses_versions_and_keeps_keys_as_stripe_does() {
    let served = Served::start();
    let sandbox = served.sandbox();
    let post = |key: &str, version: Option<&str>, form: &[(&str, &str)]| -> (u16, Value) {
        let encoded = form
            .iter()
            .fold(shop::stripe::Form::new(), |f, (k, v)| f.field(*k, *v))
            .encode();
        served.runtime.block_on(async {
            let mut request = sandbox
                .http()
                .post(format!("{}/v1/products", sandbox.url))
                .bearer_auth("sk_test_serve")
                .header("Idempotency-Key", key)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encoded);
            if let Some(version) = version {
                request = request.header("Stripe-Version", version);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry = response.headers().get("stripe-should-retry").cloned();
            assert!(retry.is_none(), "a refusal Stripe would not mark");
            (status, response.json().await.unwrap())
        })
    };
    let (status, body) = post("key-1", Some("1999-01-01"), &[("name", "Book")]);
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid Stripe API version: 1999-01-01"),
        "{body}"
    );
    // A request that fails validation leaves no result under its key.
    let (status, _) = post("key-2", Some("2024-04-10"), &[]);
    assert_eq!(status, 400);
    let (status, first) = post("key-2", Some("2024-04-10"), &[("name", "Book")]);
    assert_eq!(status, 200, "{first}");
    // A stored result is replayed for a day, then the key is forgotten.
    let (_, again) = post("key-2", None, &[("name", "Book")]);
    assert_eq!(again["id"], first["id"]);
    let (status, _) = post("key-2", None, &[("name", "Other")]);
    assert_eq!(status, 400);
    served.runtime.block_on(sandbox.control(
        Method::POST,
        "clock",
        json!({"advance": 86_400 + 60}),
    ));
    let (status, other) = post("key-2", None, &[("name", "Other")]);
    assert_eq!(status, 200, "{other}");
    assert_ne!(other["id"], first["id"]);
}

/// The client's encoder and the sandbox's decoder are written apart (the
/// sandbox is a crate of its own): what one writes, the other reads back,
/// nested keys, lists, metadata and characters that need escaping alike.
#[test]
fn what_the_client_encodes_the_sandbox_reads_back() {
    let form = shop::stripe::form::Form::new()
        .field("line_items[0][price]", "price_1")
        .field("line_items[0][quantity]", 1)
        .field("expand[]", "line_items")
        .field("expand[]", "payment_intent")
        .field("metadata[note]", "a & b = c; ü/ñ [x] 100%")
        .field(
            "success_url",
            "https://b.example/thanks?session_id={CHECKOUT_SESSION_ID}",
        );
    assert_eq!(
        shop_sandbox::form::decode(&form.encode()).unwrap(),
        serde_json::json!({
            "line_items": [{"price": "price_1", "quantity": "1"}],
            "expand": ["line_items", "payment_intent"],
            "metadata": {"note": "a & b = c; ü/ñ [x] 100%"},
            "success_url": "https://b.example/thanks?session_id={CHECKOUT_SESSION_ID}",
        })
    );
}

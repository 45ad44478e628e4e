//! The Stripe client against `shop sandbox`: create, list with pagination,
//! retrieve, refund, idempotent replay, faults, the test checkout and
//! webhooks, all over HTTP on loopback.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop::stripe::{
    Client, CreateCheckoutSession, CreatePaymentLink, CreatePrice, CreateProduct, IdempotencyKey,
    ListCheckoutSessions, StripeError,
};

use crate::harness::{Sandbox, quick_retries};

fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A product and price to sell.
async fn catalogue(client: &Client, slug: &str) -> String {
    let product = client
        .create_product(
            &CreateProduct {
                id: None,
                name: format!("Book {slug}"),
                metadata: metadata(&[("slug", slug)]),
                ..CreateProduct::default()
            },
            &IdempotencyKey::derived(&["product", slug]),
        )
        .await
        .unwrap();
    let price = client
        .create_price(
            &CreatePrice {
                product: product.id.clone(),
                unit_amount: 2900,
                custom_unit_amount: None,
                currency: "usd".into(),
                tax_behavior: None,
                currency_options: Vec::new(),
                metadata: metadata(&[]),
            },
            &IdempotencyKey::derived(&["price", slug]),
        )
        .await
        .unwrap();
    assert_eq!(price.unit_amount, Some(2900));
    assert_eq!(price.product, product.id);
    price.id
}

fn session_params(price: &str, slug: &str) -> CreateCheckoutSession {
    CreateCheckoutSession {
        price: price.to_owned(),
        success_url: "http://127.0.0.1:9/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: Some("http://127.0.0.1:9/cancelled".into()),
        metadata: metadata(&[("product", slug), ("version", "1.0.0")]),
        ..CreateCheckoutSession::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_retrieve_and_list_across_pages() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;

    sandbox.set_clock(1_700_000_000).await;
    let mut created = Vec::new();
    for index in 0..25 {
        sandbox.set_clock(1_700_000_000 + index * 60).await;
        let session = client
            .create_checkout_session(&session_params(&price, "guide"), &IdempotencyKey::random())
            .await
            .unwrap();
        assert!(session.id.starts_with("cs_test_"), "{}", session.id);
        assert_eq!(session.status.as_deref(), Some("open"));
        assert_eq!(session.amount_total, Some(2900));
        created.push(session.id);
    }

    // Newest first, every session once, over three pages of ten.
    let filter = ListCheckoutSessions {
        limit: Some(10),
        ..ListCheckoutSessions::default()
    };
    let listed: Vec<String> = client
        .checkout_sessions(&filter)
        .map_ok(|s| s.id)
        .try_collect()
        .await
        .unwrap();
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(listed, expected);
    let log = sandbox.control(Method::GET, "requests", json!({})).await;
    let pages = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/v1/checkout/sessions")
        .count();
    assert_eq!(pages, 3, "25 sessions in pages of 10 take 3 requests");

    // `created[gte]`: only the last five.
    let filter = ListCheckoutSessions {
        created_gte: Some(1_700_000_000 + 20 * 60),
        limit: Some(2),
        ..Default::default()
    };
    let recent: Vec<String> = client
        .checkout_sessions(&filter)
        .map_ok(|s| s.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(recent, expected[..5]);

    let one = client.checkout_session(&created[3]).await.unwrap().unwrap();
    assert_eq!(
        one.metadata.get("product").map(String::as_str),
        Some("guide")
    );
    assert_eq!(one.created, 1_700_000_000 + 3 * 60);
    assert!(
        client
            .checkout_session("cs_test_missing")
            .await
            .unwrap()
            .is_none()
    );

    let items: Vec<_> = client
        .checkout_session_line_items(&created[0])
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].amount_total, 2900);
    assert_eq!(items[0].description.as_deref(), Some("Book guide"));
    sandbox.stop().await;
}

/// A seed makes each session at the second it names, even when the real
/// clock ticks while it seeds (the sandbox once added that tick to the
/// sessions after it, and a sync test failed one run in many).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_sessions_are_made_at_their_own_second_across_a_real_tick() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let count = 2000;
    // Seeds start just before a real second ends, until one seeding has
    // spanned a tick (the first, unless seeding is faster than 30 ms).
    let mut crossed = None;
    for attempt in 0..10 {
        let into_second = wall().subsec_millis();
        if into_second < 970 {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(
                970 - into_second,
            )))
            .await;
        }
        let start = 1_900_000_000 + attempt * 100_000;
        let before = wall().as_secs();
        let answer = sandbox
            .control(
                Method::POST,
                "seed",
                json!({"price": price, "count": count, "start": start, "step": 7, "events": false}),
            )
            .await;
        assert_eq!(answer["created"], count);
        if wall().as_secs() != before {
            crossed = Some(start);
            break;
        }
    }
    let start = crossed.expect("no seeding of 2,000 sessions spanned a second in 10 tries");
    let filter = ListCheckoutSessions {
        created_gte: Some(start),
        created_lt: Some(start + 100_000),
        limit: Some(100),
        ..Default::default()
    };
    let mut created: Vec<i64> = client
        .checkout_sessions(&filter)
        .map_ok(|session| session.created)
        .try_collect()
        .await
        .unwrap();
    created.sort();
    let expected: Vec<i64> = (0..count).map(|index| start + index * 7).collect();
    let wrong = created
        .iter()
        .zip(&expected)
        .position(|(created, expected)| created != expected);
    assert_eq!(created.len(), expected.len());
    assert_eq!(
        wrong,
        None,
        "session {wrong:?} of {count}: {:?}",
        wrong.map(|index| (created[index], expected[index]))
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replay_gives_the_same_object_and_refuses_other_parameters() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let key = IdempotencyKey::derived(&["product", "guide"]);
    let params = CreateProduct {
        name: "Guide".into(),
        ..CreateProduct::default()
    };
    let first = client.create_product(&params, &key).await.unwrap();
    let again = client.create_product(&params, &key).await.unwrap();
    assert_eq!(first.id, again.id);

    let other = CreateProduct {
        name: "Another".into(),
        ..CreateProduct::default()
    };
    let error = client.create_product(&other, &key).await.unwrap_err();
    let message = shop::error::render(&error.into());
    assert!(
        message.contains("repeated `/v1/products` request with other parameters"),
        "{message}"
    );
    assert!(message.contains("hint:"), "{message}");

    // Our own id: a second create is refused as Stripe refuses it.
    let fixed = CreateProduct {
        id: Some("prod_shop_guide".into()),
        name: "Guide".into(),
        ..CreateProduct::default()
    };
    client
        .create_product(&fixed, &IdempotencyKey::random())
        .await
        .unwrap();
    let error = client
        .create_product(&fixed, &IdempotencyKey::random())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("resource_already_exists"));
    assert!(client.product("prod_shop_guide").await.unwrap().is_some());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_succeed_under_injected_faults_without_duplicates() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;
    for when in ["before", "after"] {
        sandbox
            .control(
                Method::POST,
                "faults",
                json!({"rate": 0.3, "status": 500, "when": when}),
            )
            .await;
        let mut ids = HashSet::new();
        for index in 0..20 {
            let key = IdempotencyKey::derived(&["session", when, &index.to_string()]);
            let session = client
                .create_checkout_session(&session_params(&price, "guide"), &key)
                .await
                .unwrap();
            ids.insert(session.id);
        }
        assert_eq!(ids.len(), 20);
        sandbox.control(Method::DELETE, "faults", json!({})).await;
    }
    // Faults after the work: each retried create was replayed, not redone.
    let all: Vec<_> = client
        .checkout_sessions(&ListCheckoutSessions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 40);
    let faults = sandbox.control(Method::GET, "faults", json!({})).await;
    assert!(
        faults["injected"].as_u64().unwrap() >= 4,
        "too few faults to prove retries: {faults}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_then_reported() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    sandbox
        .control(Method::POST, "faults", json!({"rate": 1.0, "status": 429}))
        .await;
    let error = client.product("prod_x").await.unwrap_err();
    let message = shop::error::render(&error.into());
    assert!(
        message.starts_with("Stripe is limiting the rate of requests after 10 attempts"),
        "{message}"
    );
    assert!(message.contains("hint: wait a minute"), "{message}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_that_is_down_gives_a_clean_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let key = shop::secret::Secret::new("STRIPE_SECRET_KEY", "sk_test_x").unwrap();
    let client = Client::new(&format!("http://{address}"), key)
        .unwrap()
        .with_retry(quick_retries());
    let error = client.product("prod_x").await.unwrap_err();
    assert!(
        matches!(error, StripeError::Unreachable { attempts: 10, .. }),
        "{error:?}"
    );
    let message = shop::error::render(&error.into());
    assert!(
        message.contains(&format!(
            "cannot reach Stripe at `http://{address}` after 10 attempts"
        )),
        "{message}"
    );
    assert!(
        message.contains("hint: check the network, or `SHOP_STRIPE_API_BASE`"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_checked_as_stripe_checks_them() {
    let sandbox = Sandbox::start().await;
    for key in ["sk_live_123", "pk_test_123", "garbage"] {
        let secret = shop::secret::Secret::new("STRIPE_SECRET_KEY", key).unwrap();
        let client = Client::new(&sandbox.url, secret).unwrap();
        let error = client.product("prod_x").await.unwrap_err();
        assert_eq!(error.status(), Some(401), "{key}");
        let message = error.to_string();
        assert!(
            message.starts_with("Stripe refused the API key in `STRIPE_SECRET_KEY`"),
            "{message}"
        );
        assert!(
            !message.contains(key),
            "the key leaked into the message: {message}"
        );
    }
    let missing = sandbox
        .http()
        .get(format!("{}/v1/products/prod_x", sandbox.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You did not provide an API key")
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_and_disputes_emit_their_events() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;
    let session = client
        .create_checkout_session(&session_params(&price, "guide"), &IdempotencyKey::random())
        .await
        .unwrap();
    let paid = sandbox
        .pay(&session.id, "ada@example.com", "4242 4242 4242 4242")
        .await;
    assert_eq!(paid["payment_status"], "paid");
    let session = client.checkout_session(&session.id).await.unwrap().unwrap();
    assert_eq!(session.email(), Some("ada@example.com"));
    let intent_id = session.payment_intent_id().unwrap().to_owned();
    let intent = client.payment_intent(&intent_id).await.unwrap().unwrap();
    assert_eq!((intent.amount, intent.status.as_str()), (2900, "succeeded"));

    let refund = client
        .create_refund(&intent_id, Some(900), &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(
        (refund.amount, refund.status.as_deref()),
        (900, Some("succeeded"))
    );
    let charge = client
        .charge(intent.latest_charge_id().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((charge.amount_refunded, charge.refunded), (900, false));
    let error = client
        .create_refund(&intent_id, Some(5000), &IdempotencyKey::random())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("amount_too_large"));
    client
        .create_refund(&intent_id, None, &IdempotencyKey::random())
        .await
        .unwrap();
    let error = client
        .create_refund(&intent_id, None, &IdempotencyKey::random())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("charge_already_refunded"));
    let refunds: Vec<_> = client.refunds(None).try_collect().await.unwrap();
    assert_eq!(
        refunds.iter().map(|r| r.amount).collect::<Vec<_>>(),
        [2000, 900]
    );

    let dispute = sandbox
        .control(
            Method::POST,
            "disputes",
            json!({"payment_intent": intent_id}),
        )
        .await;
    assert!(
        dispute["id"].as_str().unwrap().starts_with("dp_"),
        "{dispute}"
    );
    let disputes: Vec<_> = client.disputes(None).try_collect().await.unwrap();
    assert_eq!(disputes.len(), 1);
    assert_eq!(
        disputes[0].payment_intent.as_deref(),
        Some(intent_id.as_str())
    );

    let events: Vec<_> = client
        .events(
            &[
                "charge.refunded",
                "charge.dispute.created",
                "checkout.session.completed",
            ],
            None,
        )
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "charge.dispute.created",
            "charge.refunded",
            "charge.refunded",
            "checkout.session.completed"
        ]
    );
    assert_eq!(events[3].data.object["id"], session.id);
    let fetched = client.event(&events[0].id).await.unwrap().unwrap();
    assert_eq!(fetched.kind, "charge.dispute.created");
    sandbox.stop().await;
}

/// Follows the test checkout over HTTP: the page, then the form.
async fn checkout_with(sandbox: &Sandbox, url: &str, email: &str, card: &str) -> reqwest::Response {
    let page = sandbox.http().get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("name=\"card\"") && html.contains("Pay 29.00 USD"),
        "{html}"
    );
    let body = shop::stripe::Form::new()
        .field("email", email)
        .field("card", card)
        .field("exp", "12 / 34")
        .field("cvc", "123");
    sandbox
        .http()
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.encode())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_checkout_page_takes_stripes_test_cards() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;

    for (card, message) in [
        ("4000 0000 0000 0002", "Your card was declined."),
        ("4000000000009995", "Your card has insufficient funds."),
        ("4242 4242 4242 4241", "Your card number is incorrect."),
        ("4111 1111 1111 1111", "used a non test (live) card"),
    ] {
        let session = client
            .create_checkout_session(&session_params(&price, "guide"), &IdempotencyKey::random())
            .await
            .unwrap();
        let answer = checkout_with(
            &sandbox,
            session.url.as_deref().unwrap(),
            "ada@example.com",
            card,
        )
        .await;
        assert_eq!(answer.status(), StatusCode::PAYMENT_REQUIRED, "{card}");
        let html = answer.text().await.unwrap();
        assert!(html.contains(message), "{card}: {html}");
        let after = client.checkout_session(&session.id).await.unwrap().unwrap();
        assert_eq!(
            (after.status.as_deref(), after.payment_status.as_str()),
            (Some("open"), "unpaid")
        );
        assert!(after.payment_intent.is_none());
    }

    let session = client
        .create_checkout_session(&session_params(&price, "guide"), &IdempotencyKey::random())
        .await
        .unwrap();
    let answer = checkout_with(
        &sandbox,
        session.url.as_deref().unwrap(),
        "ada@example.com",
        "4242 4242 4242 4242",
    )
    .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let location = answer.headers()["location"].to_str().unwrap();
    assert_eq!(
        location,
        format!("http://127.0.0.1:9/thanks?session_id={}", session.id)
    );
    let after = client.checkout_session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status.as_deref(), after.payment_status.as_str()),
        (Some("complete"), "paid")
    );
    assert_eq!(after.email(), Some("ada@example.com"));
    let charge_events: Vec<_> = client
        .events(&["checkout.session.completed"], None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(charge_events.len(), 1);

    // Paying twice is refused; the page says it is paid.
    let again = sandbox
        .pay(&session.id, "ada@example.com", "4242424242424242")
        .await;
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already complete"),
        "{again}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_checkout_asks_custom_fields_as_stripe_does() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;
    let mut params = session_params(&price, "guide");
    params.options.custom_fields = vec![
        shop::stripe::CustomField {
            key: "giftemail".into(),
            label: "Their email address".into(),
            maximum_length: Some(255),
            minimum_length: None,
            optional: false,
        },
        shop::stripe::CustomField {
            key: "giftmessage".into(),
            label: "A message for them".into(),
            maximum_length: Some(20),
            minimum_length: None,
            optional: true,
        },
    ];
    let session = client
        .create_checkout_session(&params, &IdempotencyKey::random())
        .await
        .unwrap();
    let url = session.url.clone().unwrap();
    let html = sandbox
        .http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<label for=\"custom_giftemail\">Their email address</label>")
            && html.contains("name=\"custom_giftemail\" maxlength=\"255\" required")
            && html.contains("A message for them (optional)"),
        "{html}"
    );
    let post = |fields: &[(&str, &str)]| {
        let body = fields
            .iter()
            .fold(shop::stripe::Form::new(), |form, (k, v)| form.field(*k, *v));
        sandbox
            .http()
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.encode())
            .send()
    };
    let card = [
        ("email", "ada@example.com"),
        ("card", "4242 4242 4242 4242"),
    ];
    // The required field left empty, and a message over its length: the
    // page again, with what to fix; nothing paid.
    let missing = post(&card).await.unwrap();
    assert_eq!(missing.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("Their email address: this field is required.")
    );
    let long = [
        card[0],
        card[1],
        ("custom_giftemail", "eve@example.com"),
        ("custom_giftmessage", "far too long a message"),
    ];
    let refused = post(&long).await.unwrap();
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("A message for them: enter 1 to 20 characters.")
    );
    let open = client.checkout_session(&session.id).await.unwrap().unwrap();
    assert_eq!(open.status.as_deref(), Some("open"));
    let paid = post(&[
        card[0],
        card[1],
        ("custom_giftemail", "eve@example.com"),
        ("custom_giftmessage", "Happy reading"),
    ])
    .await
    .unwrap();
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let done = client.checkout_session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (
            done.custom_field("giftemail"),
            done.custom_field("giftmessage")
        ),
        (Some("eve@example.com"), Some("Happy reading"))
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_link_opens_a_checkout_that_redirects_as_configured() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;
    let link = client
        .create_payment_link(
            &CreatePaymentLink {
                price: price.clone(),
                redirect_url: "http://127.0.0.1:9/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                allow_promotion_codes: true,
                options: Default::default(),
                metadata: metadata(&[("product", "guide"), ("version", "1.0.0")]),
            },
            &IdempotencyKey::derived(&["link", "guide", "1.0.0"]),
        )
        .await
        .unwrap();
    assert!(link.id.starts_with("plink_") && link.active);
    let opened = sandbox.http().get(&link.url).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    let checkout = format!("{}{}", "", opened.headers()["location"].to_str().unwrap());
    let answer = checkout_with(&sandbox, &checkout, "grace@example.com", "4242424242424242").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let session_id = location.rsplit_once("session_id=").unwrap().1;
    let session = client.checkout_session(session_id).await.unwrap().unwrap();
    assert_eq!(session.payment_link.as_deref(), Some(link.id.as_str()));
    assert_eq!(
        session.metadata.get("version").map(String::as_str),
        Some("1.0.0")
    );
    assert_eq!(session.payment_status, "paid");

    let off = client
        .set_payment_link_active(&link.id, false)
        .await
        .unwrap();
    assert!(!off.active);
    let gone = sandbox.http().get(&link.url).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::GONE);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried() {
    // A receiver that fails its first request, then accepts.
    // (Stripe-Signature, body) of each accepted delivery.
    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Received = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let route = {
        let received = received.clone();
        let calls = calls.clone();
        use warp::Filter;
        warp::post()
            .and(warp::header::<String>("stripe-signature"))
            .and(warp::body::bytes())
            .map(move |signature: String, body: bytes::Bytes| {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                received.lock().unwrap().push((signature, body.to_vec()));
                warp::http::StatusCode::OK
            })
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );

    let sandbox = Sandbox::start_with(None, Some(format!("http://{address}/stripe/webhook"))).await;
    let client = sandbox.client();
    let price = catalogue(&client, "guide").await;
    let session = client
        .create_checkout_session(&session_params(&price, "guide"), &IdempotencyKey::random())
        .await
        .unwrap();
    sandbox
        .pay(&session.id, "ada@example.com", "4242424242424242")
        .await;

    // The first attempt failed: it is tried again a minute later by the
    // sandbox's clock (Stripe's back off), not at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let failed = loop {
        let deliveries = sandbox.control(Method::GET, "webhooks", json!({})).await;
        let failed = deliveries
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["delivered"] == false && d["attempts"] == 1)
            .cloned();
        if let Some(failed) = failed
            && received.lock().unwrap().len() == 2
        {
            break failed;
        }
        assert!(std::time::Instant::now() < deadline, "{deliveries}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let clock = sandbox.control(Method::GET, "clock", json!({})).await;
    let due = failed["next_attempt"].as_i64().unwrap();
    assert!(
        due - clock["now"].as_i64().unwrap() > 50,
        "{failed} {clock}"
    );
    sandbox
        .control(Method::POST, "clock", json!({"advance": 60}))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while received.lock().unwrap().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        3,
        "charge.succeeded, payment_intent.succeeded and checkout.session.completed"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut kinds = Vec::new();
    for (signature, body) in &received {
        shop::stripe::webhook::verify(body, signature, &sandbox.webhook_secret, now, 300).unwrap();
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        kinds.push(event["type"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "charge.succeeded",
            "checkout.session.completed",
            "payment_intent.succeeded"
        ]
    );
    let deliveries = sandbox.control(Method::GET, "webhooks", json!({})).await;
    let retried = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["attempts"].as_u64() == Some(2))
        .count();
    assert_eq!(retried, 1, "{deliveries}");
    sandbox.stop().await;
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sandbox.json");
    let sandbox = Sandbox::start_with(Some(data.clone()), None).await;
    let client = sandbox.client();
    let fixed = CreateProduct {
        id: Some("prod_guide".into()),
        name: "Guide".into(),
        ..CreateProduct::default()
    };
    client
        .create_product(&fixed, &IdempotencyKey::random())
        .await
        .unwrap();
    let price = client
        .create_price(
            &CreatePrice {
                product: "prod_guide".into(),
                unit_amount: 100,
                custom_unit_amount: None,
                currency: "eur".into(),
                tax_behavior: None,
                currency_options: Vec::new(),
                metadata: metadata(&[]),
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap()
        .id;
    sandbox.set_clock(1_800_000_000).await;
    sandbox.stop().await;

    let sandbox = Sandbox::start_with(Some(data), None).await;
    let client = sandbox.client();
    assert_eq!(
        client.product("prod_guide").await.unwrap().unwrap().name,
        "Guide"
    );
    let prices: Vec<_> = client.prices("prod_guide").try_collect().await.unwrap();
    assert_eq!(prices.len(), 1);
    assert_eq!(prices[0].id, price);
    let clock = sandbox.control(Method::GET, "clock", json!({})).await;
    assert!(
        (clock["now"].as_i64().unwrap() - 1_800_000_000).abs() < 60,
        "{clock}"
    );
    sandbox.stop().await;
}

#[test]
fn the_sandbox_command_serves_until_terminated() {
    use std::io::{BufRead, BufReader};
    let test = crate::harness::Test::new();
    let data = test.path().join("sandbox.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args([
            "sandbox",
            "--port",
            "0",
            "--json",
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--data",
        ])
        .arg(&data)
        .env_clear()
        .env("STRIPE_WEBHOOK_SECRET", "whsec_from_the_environment")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut announcement = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the sandbox exited early: {announcement}"
        );
        announcement.push_str(&line);
        if line.trim_end() == "}" {
            break;
        }
    }
    let announcement: serde_json::Value = serde_json::from_str(&announcement).unwrap();
    assert_eq!(announcement["webhook_secret"], "whsec_from_the_environment");
    let url = announcement["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let key = shop::secret::Secret::new("STRIPE_SECRET_KEY", "sk_test_process").unwrap();
        let client = Client::new(&url, key).unwrap();
        let product = CreateProduct {
            id: Some("prod_kept".into()),
            name: "Kept".into(),
            ..CreateProduct::default()
        };
        client
            .create_product(&product, &IdempotencyKey::random())
            .await
            .unwrap();
    });

    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "the sandbox did not stop cleanly on SIGTERM: {exit:?}"
    );
    let saved = std::fs::read_to_string(&data).unwrap();
    assert!(
        saved.contains("prod_kept"),
        "the data file lacks the product"
    );
    assert!(
        !saved.contains("whsec_from_the_environment"),
        "the data file holds the webhook secret"
    );
}

/// Started again with the same data and no secret in the environment, the
/// sandbox signs with the endpoint's secret it made the first time, so a
/// running `shop serve` keeps accepting its events.
#[test]
fn a_restarted_sandbox_keeps_its_webhook_secret() {
    use std::io::{BufRead, BufReader};
    let test = crate::harness::Test::new();
    let data = test.path().join("sandbox.json");
    let start = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
            .args([
                "sandbox",
                "--port",
                "0",
                "--json",
                "--webhook",
                "http://127.0.0.1:9/hook",
                "--data",
            ])
            .arg(&data)
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut announcement = String::new();
        while !announcement.trim_end().ends_with('}') {
            assert!(
                stdout.read_line(&mut announcement).unwrap() > 0,
                "{announcement}"
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let announcement: serde_json::Value = serde_json::from_str(&announcement).unwrap();
        announcement["webhook_secret"].as_str().unwrap().to_owned()
    };
    let first = start();
    assert!(first.starts_with("whsec_"), "{first}");
    assert_eq!(start(), first);
}

#[test]
fn the_sandbox_refuses_a_bad_webhook_url() {
    crate::harness::Test::new()
        .shop(&["sandbox", "--port", "0", "--webhook", "localhost:8080/hook"])
        .code(2)
        .stderr_has(&["`localhost:8080/hook` is not a webhook URL", "hint:"]);
}

/// A product of the catalogue's with a pay-what-you-want price, for the
/// cart's rules.
async fn chosen_price(client: &Client, product: &str) -> String {
    client
        .create_price(
            &CreatePrice {
                product: product.to_owned(),
                unit_amount: 0,
                custom_unit_amount: Some(shop::stripe::CustomUnitAmount {
                    minimum: Some(500),
                    maximum: None,
                    preset: Some(1200),
                }),
                currency: "usd".into(),
                tax_behavior: None,
                currency_options: Vec::new(),
                metadata: metadata(&[]),
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_several_lines_sums_them_and_keeps_each() {
    use shop::stripe::SessionLine;
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let guide = catalogue(&client, "guide").await;
    let atlas = catalogue(&client, "atlas").await;
    let (_, price) = sandbox
        .api(Method::GET, &format!("/v1/prices/{guide}"), &[])
        .await;
    let guide_product = price["product"].as_str().unwrap().to_owned();
    let cart = CreateCheckoutSession {
        lines: vec![
            SessionLine::Price(guide.clone()),
            SessionLine::Price(atlas.clone()),
            SessionLine::Amount {
                product: guide_product.clone(),
                currency: "usd".into(),
                unit_amount: 750,
                tax_behavior: None,
            },
        ],
        ..session_params("", "cart")
    };
    let session = client
        .create_checkout_session(&cart, &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(session.amount_total, Some(2900 + 2900 + 750));
    let lines: Vec<shop::stripe::LineItem> = client
        .checkout_session_line_items(&session.id)
        .try_collect()
        .await
        .unwrap();
    let amounts: Vec<i64> = lines.iter().map(|line| line.amount_total).collect();
    assert_eq!(amounts, [2900, 2900, 750]);
    // The inline price is made for the session: inactive, of the product.
    let inline = lines[2].price.as_ref().unwrap();
    assert_eq!(
        (inline.active, inline.product.as_str()),
        (false, guide_product.as_str())
    );
    // Paid whole, in one charge.
    let paid = sandbox
        .pay(&session.id, "ann@example.com", "4242424242424242")
        .await;
    assert_eq!(paid["amount_total"], 6550, "{paid}");

    // What Stripe refuses: a customer-chosen price beside another line,
    // two currencies, no quantity, and both a price and its data.
    let chosen = chosen_price(&client, &guide_product).await;
    let refused = client
        .create_checkout_session(
            &CreateCheckoutSession {
                lines: vec![
                    SessionLine::Price(chosen.clone()),
                    SessionLine::Price(atlas),
                ],
                ..session_params("", "cart")
            },
            &IdempotencyKey::random(),
        )
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("custom_unit_amount")),
        "{refused:?}"
    );
    // Alone, it sells as before.
    client
        .create_checkout_session(&session_params(&chosen, "guide"), &IdempotencyKey::random())
        .await
        .unwrap();
    let euros = client
        .create_checkout_session(
            &CreateCheckoutSession {
                lines: vec![
                    SessionLine::Price(guide.clone()),
                    SessionLine::Amount {
                        product: guide_product.clone(),
                        currency: "eur".into(),
                        unit_amount: 500,
                        tax_behavior: None,
                    },
                ],
                ..session_params("", "cart")
            },
            &IdempotencyKey::random(),
        )
        .await;
    assert!(euros.is_err(), "{euros:?}");
    for form in [
        "mode=payment&success_url=https://a.example&line_items[0][price]=PRICE",
        "mode=payment&success_url=https://a.example&line_items[0][price]=PRICE&line_items[0][quantity]=1\
         &line_items[0][price_data][currency]=usd",
    ] {
        let answer = sandbox
            .http()
            .post(format!("{}/v1/checkout/sessions", sandbox.url))
            .bearer_auth("sk_test_harness")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.replace("PRICE", &guide))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{form}");
    }
}

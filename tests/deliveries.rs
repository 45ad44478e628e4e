//! The server under the webhook deliveries Stripe documents but does not
//! promise to avoid: events out of order ("Stripe doesn't guarantee the
//! delivery of events in the order that they're generated"), the same
//! event twice, and an endpoint down for days while Stripe retries with
//! a back off (rehearsed on the sandbox's clock, not waited for).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::served::Served;

fn webhooks(served: &Served, body: Value) -> Value {
    served
        .runtime
        .block_on(served.sandbox().control(Method::POST, "webhooks", body))
}

/// The sandbox's record of each event sent to the server.
fn deliveries(served: &Served) -> Vec<Value> {
    let all = served
        .runtime
        .block_on(served.sandbox().control(Method::GET, "webhooks", json!({})));
    all.as_array().unwrap().clone()
}

fn delivery_of<'a>(deliveries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    deliveries.iter().filter(|d| d["type"] == kind).collect()
}

/// Pays the guide on the test checkout without opening the thanks page:
/// the server hears of the sale only by webhook. Returns the session.
fn pay_only(served: &Served, email: &str) -> String {
    let thanks = served.pay(&served.payment_link(), email);
    thanks.rsplit('=').next().unwrap().to_owned()
}

fn payment_intent(served: &Served, session: &str) -> String {
    let client = served.sandbox().client();
    served.runtime.block_on(async {
        let found = client.checkout_session(session).await.unwrap().unwrap();
        found.payment_intent_id().unwrap().to_owned()
    })
}

fn advance_clock(served: &Served, seconds: i64) {
    served.runtime.block_on(served.sandbox().control(
        Method::POST,
        "clock",
        json!({ "advance": seconds }),
    ));
}

/// The messages the server mailed to `email`.
fn mails_to(served: &Served, email: &str) -> usize {
    served
        .outbox()
        .iter()
        .filter(|message| message.contains(&format!("To: {email}")))
        .count()
}

/// A sale whose receipt is mailed after everything before it: once it is
/// out, what the server queued earlier is out too.
fn barrier(served: &Served, email: &str) {
    served.buy(email);
    served.wait_for("the barrier's receipt", || mails_to(served, email) == 1);
}

#[test]
fn a_refund_or_dispute_that_arrives_before_its_sale_keeps_the_downloads_closed() {
    let served = Served::start();
    // The server also reads Stripe's events on its own (its
    // reconciliation, which would see the sale whatever the webhooks'
    // order): here it cannot, so only the webhooks bring it news.
    served.runtime.block_on(served.sandbox().control(
        Method::POST,
        "faults",
        json!({"rate": 1.0, "status": 500, "path": "/v1/events", "method": "GET"}),
    ));
    // A purchase and what undoes it, their events held and let go newest
    // first: the refund or dispute reaches the server before the sale.
    let rehearse = |email: &str, undo: &dyn Fn(&str)| -> (String, String) {
        let before = served.log.lock().unwrap().len();
        let known = deliveries(&served).len() as u64;
        webhooks(&served, json!({"hold": true}));
        let session = pay_only(&served, email);
        undo(&session);
        let released = webhooks(&served, json!({"release": "reverse"}))["released"].clone();
        assert!(released.as_u64() > Some(2), "{released}");
        served.wait_for("every event to be answered", || {
            let all = deliveries(&served);
            json!(all.len() as u64 - known) == released
                && all.iter().all(|d| d["delivered"] == true)
        });
        let log = served.log.lock().unwrap()[before..].to_owned();
        (session, log)
    };
    let (refunded, log) = rehearse("ada@example.com", &|session| served.refund(session));
    let (disputed, log_of_dispute) = rehearse("bo@example.com", &|session| {
        let intent = payment_intent(&served, session);
        served.runtime.block_on(served.sandbox().control(
            Method::POST,
            "disputes",
            json!({ "payment_intent": intent }),
        ));
    });
    for (log, undone) in [
        (&log, "charge.refunded: downloads closed"),
        (&log_of_dispute, "charge.dispute.created: downloads closed"),
    ] {
        let at = |what: &str| {
            log.find(what)
                .unwrap_or_else(|| panic!("the log lacks {what}:\n{log}"))
        };
        assert!(at(undone) < at("(already refunded: no receipt)"), "{log}");
        assert_eq!(
            log.matches("checkout.session.completed").count(),
            1,
            "{log}"
        );
    }
    // Neither buyer gets a receipt, and their thanks pages say why.
    barrier(&served, "cy@example.com");
    assert_eq!(mails_to(&served, "ada@example.com"), 0);
    assert_eq!(mails_to(&served, "bo@example.com"), 0);
    for session in [&refunded, &disputed] {
        let page = served.body(served.get(&format!("/thanks?session_id={session}")));
        assert!(page.contains("This purchase was refunded"), "{page}");
        assert!(
            !page.contains("/d/") && !page.contains("&#x2f;d&#x2f;"),
            "{page}"
        );
    }
}

#[test]
fn every_event_delivered_twice_is_handled_once() {
    let served = Served::start();
    webhooks(&served, json!({"duplicate": true}));
    let kept = pay_only(&served, "ada@example.com");
    let refunded = pay_only(&served, "bo@example.com");
    served.refund(&refunded);
    let disputed = pay_only(&served, "cy@example.com");
    let intent = payment_intent(&served, &disputed);
    served.runtime.block_on(served.sandbox().control(
        Method::POST,
        "disputes",
        json!({ "payment_intent": intent }),
    ));
    served.wait_for("every event to be delivered twice", || {
        let all = deliveries(&served);
        delivery_of(&all, "checkout.session.completed").len() == 3
            && delivery_of(&all, "charge.refunded").len() == 1
            && delivery_of(&all, "charge.dispute.created").len() == 1
            && all.iter().all(|d| d["deliveries"] == 2)
    });
    // One receipt, for the sale that stands; the second copy of each event
    // changed nothing.
    barrier(&served, "dee@example.com");
    assert_eq!(mails_to(&served, "ada@example.com"), 1);
    // Each sale recorded once (by its first copy, or the server's own
    // reading of Stripe's events), whichever came first.
    let log = served.log.lock().unwrap().clone();
    for session in [&kept, &refunded, &disputed] {
        let sales = log
            .lines()
            .filter(|line| {
                line.contains("checkout.session.completed: sale of")
                    && line.contains(&format!("purchase={session}"))
            })
            .count();
        assert_eq!(sales, 1, "{session}: {log}");
    }
    assert_eq!(
        log.matches("charge.refunded: downloads closed").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("charge.dispute.created: downloads closed")
            .count(),
        1,
        "{log}"
    );
    let thanks = served.body(served.get(&format!("/thanks?session_id={kept}")));
    assert!(thanks.contains("Thank you!"), "{thanks}");
}

#[test]
fn an_endpoint_down_for_a_day_gets_the_refund_at_stripes_next_retry() {
    // The server cannot read Stripe's events on its own here: what closes
    // the downloads is the retry.
    let served = Served::start();
    served.runtime.block_on(served.sandbox().control(
        Method::POST,
        "faults",
        json!({"rate": 1.0, "status": 500, "path": "/v1/events", "method": "GET"}),
    ));
    let page = served.buy("ada@example.com");
    let file = format!("{page}/guide.epub");
    assert_eq!(served.get(&file).status(), StatusCode::OK);
    webhooks(&served, json!({"down": true}));
    served.refund(&served.session_of(&page));
    served.wait_for("the first attempt to fail", || {
        delivery_of(&deliveries(&served), "charge.refunded")
            .first()
            .is_some_and(|d| d["attempts"] == 1)
    });
    // A day passes on the sandbox's clock: every retry of that day fails.
    advance_clock(&served, 86_400);
    served.wait_for("the retries of the first day", || {
        delivery_of(&deliveries(&served), "charge.refunded")
            .first()
            .is_some_and(|d| d["attempts"] == 8)
    });
    let refund = delivery_of(&deliveries(&served), "charge.refunded")[0].clone();
    assert_eq!(refund["delivered"], false, "{refund}");
    assert_eq!(served.get(&file).status(), StatusCode::OK);
    // The endpoint is up again; the next retry, on the second day, arrives.
    webhooks(&served, json!({"down": false}));
    advance_clock(&served, 86_400);
    served.wait_for("the second day's retry to close the downloads", || {
        served.get(&file).status() == StatusCode::GONE
    });
    // The sandbox records the delivery once the server has answered it.
    served.wait_for("the delivery recorded", || {
        delivery_of(&deliveries(&served), "charge.refunded")[0]["delivered"] == true
    });
    let refund = delivery_of(&deliveries(&served), "charge.refunded")[0].clone();
    assert_eq!(
        (
            &refund["attempts"],
            &refund["delivered"],
            &refund["next_attempt"]
        ),
        (&json!(9), &json!(true), &Value::Null),
        "{refund}"
    );
}

#[test]
fn after_three_days_stripe_gives_up_and_the_server_reconciles() {
    let served = Served::start_with(&[("SHOP_RECONCILE_EVERY_SECONDS", "1")]);
    let page = served.buy("ada@example.com");
    let file = format!("{page}/guide.epub");
    webhooks(&served, json!({"down": true}));
    served.refund(&served.session_of(&page));
    // Three days on the sandbox's clock: ten attempts, then none.
    advance_clock(&served, 3 * 86_400);
    served.wait_for("Stripe to give up", || {
        delivery_of(&deliveries(&served), "charge.refunded")
            .first()
            .is_some_and(|d| d["attempts"] == 10 && d["next_attempt"].is_null())
    });
    let refund = delivery_of(&deliveries(&served), "charge.refunded")[0].clone();
    assert_eq!(refund["delivered"], false, "{refund}");
    // The server read the refund from Stripe's events on its own.
    served.wait_for("the reconciliation to close the downloads", || {
        served.get(&file).status() == StatusCode::GONE
    });
}

#[test]
fn a_delayed_payments_success_delivered_twice_mails_one_receipt() {
    let served = Served::start_with_store(&[], |test| {
        let settings = test
            .read("shop.toml")
            .replace("currency = \"usd\"", "currency = \"eur\"");
        test.write("shop.toml", &settings);
    });
    webhooks(&served, json!({"duplicate": true}));
    // A SEPA debit: complete now, paid when the bank pays (a minute on).
    let checkout = served.checkout_page(&served.payment_link());
    let paid = served.post_checkout(
        &checkout,
        &[
            ("email", "ada@example.com"),
            ("iban", "DE89370400440532013000"),
        ],
    );
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    advance_clock(&served, 120);
    served.wait_for("the success delivered twice", || {
        delivery_of(
            &deliveries(&served),
            "checkout.session.async_payment_succeeded",
        )
        .first()
        .is_some_and(|d| d["deliveries"] == 2)
    });
    barrier(&served, "bo@example.com");
    assert_eq!(mails_to(&served, "ada@example.com"), 1);
    let log = served.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("checkout.session.async_payment_succeeded: sale of")
            .count(),
        1,
        "{log}"
    );
}

//! `shop serve` as a real process against the sandbox: the buyer's path
//! from payment link to download, webhooks, download limits under
//! concurrency, tokens of every bad kind, key rotation, refunds, lost
//! links and a graceful shutdown mid-download. What no request sequence
//! may get is in `downloads.rs`.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::served::{Served, TOKEN_SECRET};

#[test]
fn the_buyers_path_from_payment_to_download() {
    let served = Served::start();
    assert_eq!(served.body(served.get("/healthz")), "ok\n");
    let page = served.buy("ada@example.com");
    let html = served.body(served.get(&page));
    for expected in [
        "The Field Guide",
        "Version <strong>1.0.0</strong>",
        "guide.pdf",
        "guide.epub",
        "9.4 MB",
        "5 of 5",
        &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&served.files[0])),
    ] {
        assert!(
            html.contains(expected),
            "the download page lacks {expected:?}:\n{html}"
        );
    }
    let file = served.get(&format!("{page}/guide.pdf"));
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(
        file.headers()["content-length"],
        served.files[0].len().to_string().as_str()
    );
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"guide.pdf\"")
    );
    let bytes = served.runtime.block_on(file.bytes()).unwrap();
    assert!(
        bytes.as_ref() == served.files[0].as_slice(),
        "the downloaded file differs"
    );
    assert!(served.body(served.get(&page)).contains("4 of 5"));

    // The webhook queued exactly one receipt for the purchase.
    let session = served.session_of(&page);
    served.wait_for("the receipt", || !served.queued("receipt").is_empty());
    let receipts: Vec<_> = served
        .mail_queue()
        .into_iter()
        .filter(|mail| mail.kind == "receipt")
        .map(|mail| (mail.recipient, mail.purchase))
        .collect();
    assert_eq!(receipts, [("ada@example.com".to_owned(), Some(session))]);

    // /buy sends the visitor to the version's payment link, carrying
    // where they came from; the session the link makes has it.
    let client = served.http.clone();
    let bought = served
        .runtime
        .block_on(
            client
                .get(format!(
                    "{}/buy/guide?utm_source=newsletter&utm_campaign=launch",
                    served.url
                ))
                .header("Referer", "https://blog.example/post?session=secret")
                .send(),
        )
        .unwrap();
    assert_eq!(bought.status(), StatusCode::SEE_OTHER);
    let location = bought.headers()["location"].to_str().unwrap().to_owned();
    let link = served.payment_link();
    assert!(
        location.starts_with(&format!("{link}?client_reference_id=shop1-")),
        "{location}"
    );
    let checkout = served.checkout_page(&location);
    let id = checkout.rsplit('/').next().unwrap().to_owned();
    let session = served
        .runtime
        .block_on(served.sandbox().client().checkout_session(&id))
        .unwrap()
        .unwrap();
    assert_eq!(
        shop::metadata::Attribution::of_session(&session),
        shop::metadata::Attribution {
            utm_source: Some("newsletter".into()),
            utm_campaign: Some("launch".into()),
            referrer: Some("https://blog.example".into()),
            ..Default::default()
        }
    );
    assert_eq!(
        session.metadata.get("version").map(String::as_str),
        Some("1.0.0")
    );
    assert_eq!(served.get("/buy/nope").status(), StatusCode::NOT_FOUND);

    // Unknown or foreign sessions and unknown pages: plain 404s.
    assert_eq!(
        served.get("/thanks?session_id=cs_test_nope").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        served.get(&format!("/thanks?session_id={id}")).status(),
        StatusCode::NOT_FOUND,
        "an unpaid session"
    );
    let missing = served.get("/nothing/here");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(!served.body(missing).contains("panicked"));
}

#[test]
fn the_download_limit_is_exact_even_under_concurrency() {
    let served = Served::start();
    let page = served.buy("grace@example.com");
    for _ in 0..5 {
        assert_eq!(
            served.get(&format!("{page}/guide.epub")).status(),
            StatusCode::OK
        );
    }
    let refused = served.get(&format!("{page}/guide.epub"));
    assert_eq!(refused.status(), StatusCode::GONE);
    assert!(served.body(refused).contains("No downloads left"));

    // 50 at once on a fresh file: exactly 5 get it.
    let url = format!("{}{page}/guide.pdf", served.url);
    let statuses: Vec<StatusCode> = served.runtime.block_on(async {
        let client = reqwest::Client::new();
        let requests = (0..50).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                let status = response.status();
                let _ = response.bytes().await;
                status
            })
        });
        let mut statuses = Vec::new();
        for request in requests.collect::<Vec<_>>() {
            statuses.push(request.await.unwrap());
        }
        statuses
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::GONE).count(),
        45
    );

    // Support grants more.
    let session = served.session_of(&page);
    served
        .test
        .shop(&["token", &session, "--grant", "2"])
        .success()
        .stderr_has(&["2 extra downloads"]);
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK
    );
}

#[test]
fn bad_tokens_get_plain_refusals() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let token = page.trim_start_matches("/d/").to_owned();
    let session = served.session_of(&page);
    let sign = |secret: &str, expires: i64| {
        let key =
            shop::tokens::Key::new(shop::secret::Secret::new("SHOP_TOKEN_SECRET", secret).unwrap());
        shop::tokens::sign(
            &key,
            &shop::tokens::Claims {
                purchase: session.clone(),
                expires,
            },
        )
    };
    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 3;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let cases = [
        (String::from_utf8(tampered).unwrap(), StatusCode::FORBIDDEN),
        (token[..token.len() - 5].to_owned(), StatusCode::FORBIDDEN),
        (
            sign("another secret, also more than 32 chars", 4_000_000_000),
            StatusCode::FORBIDDEN,
        ),
        (sign(TOKEN_SECRET, 1_000_000_000), StatusCode::GONE),
        ("garbage".to_owned(), StatusCode::FORBIDDEN),
        ("%00%ff".to_owned(), StatusCode::FORBIDDEN),
    ];
    for (bad, status) in cases {
        for path in [format!("/d/{bad}"), format!("/d/{bad}/guide.pdf")] {
            let response = served.get(&path);
            assert_eq!(response.status(), status, "{path}");
            let body = served.body(response);
            assert!(
                body.contains("/lost") && !body.contains("guide.pdf") && !body.contains(&session),
                "{body}"
            );
        }
    }
    // A genuine token for a file that does not exist.
    assert_eq!(
        served.get(&format!("{page}/secrets.txt")).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        served.get(&format!("{page}/..%2F..%2Fshop.toml")).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_rotated_key_keeps_old_links_working() {
    let mut served = Served::start();
    let page = served.buy("ada@example.com");
    served.stop_server();
    let new_secret = "the-new-token-secret-after-rotation-0001";
    served.test.env("SHOP_TOKEN_SECRET", new_secret);
    served.test.env("SHOP_TOKEN_SECRET_PREVIOUS", TOKEN_SECRET);
    served.launch();
    assert_eq!(served.get(&page).status(), StatusCode::OK);
    served.stop_server();
    served.test.env("SHOP_TOKEN_SECRET_PREVIOUS", "");
    served.launch();
    assert_eq!(served.get(&page).status(), StatusCode::FORBIDDEN);
}

#[test]
fn webhooks_are_verified_and_handled_once() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let session = served.session_of(&page);
    served.wait_for("the receipt", || !served.mail_queue().is_empty());
    let secret = served.sandbox().webhook_secret.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let event = json!({
        "id": "evt_test_replayed", "object": "event", "type": "checkout.session.completed", "created": now,
        "data": {"object": {"id": session, "object": "checkout.session", "created": now, "expires_at": now, "status": "complete",
            "payment_status": "paid", "customer_details": {"email": "ada@example.com"}, "metadata": {"product": "guide", "version": "1.0.0"},
            "payment_intent": "pi_x"}},
    });
    let body = serde_json::to_vec(&event).unwrap();
    let post = |signature: String, body: Vec<u8>| served.post_webhook(&signature, body);
    let good = shop::stripe::webhook::sign(&body, &secret, now);
    assert_eq!(post(good.clone(), body.clone()).status(), StatusCode::OK);
    assert_eq!(served.body(post(good, body.clone())), "already received\n");
    let stale = shop::stripe::webhook::sign(&body, &secret, now - 600);
    assert_eq!(post(stale, body.clone()).status(), StatusCode::BAD_REQUEST);
    let wrong = shop::stripe::webhook::sign(
        &body,
        &shop::secret::Secret::new("X", "whsec_wrong").unwrap(),
        now,
    );
    assert_eq!(post(wrong, body.clone()).status(), StatusCode::BAD_REQUEST);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        post(shop::stripe::webhook::sign(&body, &secret, now), tampered).status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(post(String::new(), body).status(), StatusCode::BAD_REQUEST);
    // One receipt, however often the purchase was announced.
    assert_eq!(served.queued("receipt").len(), 1);
}

#[test]
fn a_refund_closes_the_downloads() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK
    );
    served.refund(&served.session_of(&page));
    served.wait_for("the refund to close downloads", || {
        served.get(&format!("{page}/guide.epub")).status() == StatusCode::GONE
    });
    let page_html = served.body(served.get(&page));
    assert!(
        page_html.contains("This purchase was refunded"),
        "{page_html}"
    );
}

#[test]
fn lost_links_answer_the_same_for_anyone() {
    let served = Served::start();
    served.buy("known@example.com");
    let ask = |email: &str| served.ask_for_links(email);
    let known = ask("known@example.com");
    let unknown = ask("stranger@example.com");
    assert_eq!(known, unknown);
    assert_eq!(known.0, StatusCode::OK);
    // The answer comes first; the look-up and the mail follow.
    served.wait_for("the lost-link mail", || !served.queued("links").is_empty());
    assert_eq!(served.queued("links"), ["known@example.com"]);
    // Rate-limited per address, whoever asks.
    ask("known@example.com");
    ask("known@example.com");
    assert_eq!(ask("known@example.com").0, StatusCode::TOO_MANY_REQUESTS);
    served.wait_for("three lost-link mails", || {
        served.queued("links").len() == 3
    });
    assert_eq!(served.get("/lost").status(), StatusCode::OK);
}

#[test]
fn shutdown_lets_a_download_finish() {
    let mut served = Served::start();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    let mut response = served
        .runtime
        .block_on(served.http.get(&url).send())
        .unwrap();
    let first = served.runtime.block_on(response.chunk()).unwrap().unwrap();
    let status = {
        let child = served.server.as_ref().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
    };
    assert!(status.success());
    let mut received = first.to_vec();
    while let Some(chunk) = served.runtime.block_on(response.chunk()).unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert!(
        received == served.files[0],
        "the download was cut short by the shutdown ({} bytes)",
        received.len()
    );
    let exit = served.server.take().unwrap().wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    served.close_socket();
    assert!(
        served
            .runtime
            .block_on(served.http.get(&url).send())
            .is_err(),
        "the server still answers after shutting down"
    );
}

#[test]
fn support_mints_links_from_the_command_line() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let session = served.session_of(&page);
    let link = served
        .test
        .shop(&["token", &session])
        .success()
        .stdout()
        .trim()
        .to_owned();
    assert!(link.starts_with(&format!("{}/d/", served.url)), "{link}");
    assert_eq!(served.get(&link).status(), StatusCode::OK);
    served
        .test
        .shop(&["token", "cs_test_unknown"])
        .code(1)
        .stderr_has(&["there is no paid purchase `cs_test_unknown`"]);
    served.test.shop(&["token", "pi_123"]).code(1).stderr_has(&[
        "no purchase or grant matches `pi_123`",
        "hint: check it with `shop find`",
    ]);
}

/// `price = { minimum, suggested }`: a Stripe price with
/// `custom_unit_amount`, shown as such, and the amount the buyer chose
/// paid and recorded; below the minimum refused as Stripe's page refuses it.
#[test]
fn pay_what_you_want_takes_what_the_buyer_chooses_above_the_minimum() {
    let mut served = Served::start_with_store(&[], |test| {
        let text = test.read("products/guide.toml").replace(
            "price = \"29.00\"",
            "price = { minimum = \"5.00\", suggested = \"12.00\" }",
        );
        test.write("products/guide.toml", &text);
    });
    let field = |name: &str| {
        served
            .test
            .read("products/guide.toml")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = \"")))
            .unwrap()
            .trim_end_matches('"')
            .to_owned()
    };
    let client = served.sandbox().client();
    let prices: Vec<shop::stripe::Price> = served
        .runtime
        .block_on(futures_util::TryStreamExt::try_collect(
            client.prices(&field("stripe_product")),
        ))
        .unwrap();
    let price = prices
        .iter()
        .find(|p| p.id == field("stripe_price"))
        .unwrap();
    assert_eq!(price.unit_amount, None);
    let custom = price.custom_unit_amount.unwrap();
    assert_eq!((custom.minimum, custom.preset), (Some(500), Some(1200)));

    let front = served.get("/");
    let front = served.body(front);
    assert!(
        front.contains("Pay what you want, from 5.00 USD (suggested 12.00 USD)"),
        "{front}"
    );

    // The test checkout asks for the amount, starting from the suggestion.
    let opened = served.get(&field("payment_link_url"));
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    let checkout = opened.headers()["location"].to_str().unwrap().to_owned();
    let page = served.get(&checkout);
    let page = served.body(page);
    assert!(page.contains("id=\"amount\""), "{page}");
    assert!(page.contains("value=\"12.00\""), "{page}");
    let pay = |amount: &str| {
        served.post_checkout(
            &checkout,
            &[
                ("email", "reader@example.com"),
                ("amount", amount),
                ("card", "4242 4242 4242 4242"),
            ],
        )
    };
    let refused = pay("3.00");
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let refused = served.body(refused);
    assert!(
        refused.contains("Enter an amount of 5.00 USD or more."),
        "{refused}"
    );
    let paid = pay("20.00");
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let thanks = paid.headers()["location"].to_str().unwrap().to_owned();
    let thanks = served.get(&thanks);
    let thanks = served.body(thanks);
    assert!(thanks.contains("20.00 USD"), "{thanks}");

    served.test.shop(&["sync", "-q"]).success().stderr_is("");
    let month = std::fs::read_dir(served.test.root().join("store/purchases"))
        .or_else(|_| std::fs::read_dir(served.test.path().join("purchases")))
        .unwrap()
        .filter_map(|entry| entry.ok())
        .find(|entry| entry.file_name().to_string_lossy().ends_with(".jsonl"))
        .unwrap();
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(month.path()).unwrap().trim()).unwrap();
    assert_eq!(
        (line["amount"].clone(), line["currency"].clone()),
        (json!(2000), json!("usd"))
    );
    served.stop_server();
}

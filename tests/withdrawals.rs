//! The EU withdrawal function through the real server, the sandbox and the
//! mail outbox: the link on every page and receipt of a purchase, the
//! decision the law and the author's `[refunds]` give, one refund at
//! Stripe whatever the clicks, the mails, a refund that fails and is
//! asked for again, and `shop withdrawals`, `shop sync` and `shop report`
//! afterwards.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::served::{FILES, Served, TOKEN_SECRET};

/// The first `/withdraw/…` link in a page or a mail, as a path.
fn withdraw_link(text: &str, base: &str) -> String {
    let text = text.replace("&#x2f;", "/").replace(base, "");
    let start = text
        .find("/withdraw/")
        .unwrap_or_else(|| panic!("no withdrawal link in:\n{text}"));
    text[start..]
        .split(|c: char| c == '"' || c == '<' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// Confirms a withdrawal as the page's form does, from the page's origin.
fn confirm(served: &Served, link: &str, name: &str, reason: &str) -> (StatusCode, String) {
    served.post_form(link, &[("name", name), ("reason", reason)])
}

/// The messages to `email` whose text has `needle`.
fn mails(served: &Served, email: &str, needle: &str) -> Vec<String> {
    served
        .outbox()
        .into_iter()
        .filter(|mail| mail.contains(&format!("To: {email}")) && mail.contains(needle))
        .collect()
}

fn wait_for_mail(served: &Served, email: &str, needle: &str) -> String {
    let mut found = None;
    served.wait_for(needle, || {
        found = mails(served, email, needle).pop();
        found.is_some()
    });
    found.unwrap()
}

/// The refunds the sandbox made (each `POST /v1/refunds` it answered).
fn refunds_made(served: &Served) -> usize {
    served
        .runtime
        .block_on(served.sandbox().posted("/v1/refunds"))
        .len()
}

fn withdrawal(served: &Served, page: &str) -> shop::state::Withdrawal {
    let purchase = served.session_of(page);
    served
        .runtime
        .block_on(served.state().withdrawal(&purchase))
        .unwrap()
        .expect("the withdrawal is recorded")
}

#[test]
fn a_buyer_who_has_not_downloaded_withdraws_and_is_refunded_once() {
    let served = Served::start();
    let email = "ada@example.com";
    let page = served.buy(email);
    let order = shop::ledger::order_number(&served.session_of(&page));

    // The link is on the thank-you page, the download page, the library
    // and the receipt.
    let thanks = served.thanks_page(&served.session_of(&page));
    let link = withdraw_link(&thanks, &served.url);
    assert!(thanks.contains("Withdraw from this purchase"), "{thanks}");
    let downloads = served.body(served.get(&page));
    assert!(
        downloads.replace("&#x2f;", "/").contains("/withdraw/"),
        "{downloads}"
    );
    let library = served.body(served.get(&served.library_of(email)));
    assert!(
        library.replace("&#x2f;", "/").contains("/withdraw/"),
        "{library}"
    );
    let receipt = wait_for_mail(&served, email, "Your receipt");
    assert!(
        receipt.contains(&format!("{}/withdraw/", served.url)),
        "{receipt}"
    );

    // The first step says what is withdrawn from.
    let form = served.get(&link);
    assert_eq!(form.status(), StatusCode::OK);
    let form = served.body(form);
    for shown in [
        order.as_str(),
        email,
        "The Field Guide",
        "29.00",
        "name=\"name\"",
    ] {
        assert!(form.contains(shown), "{shown} is not on\n{form}");
    }

    // Confirmed twice (a double click): one refund at Stripe.
    let (status, first) = confirm(&served, &link, "Ada Lovelace", "Bought the wrong book");
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("data-decision=\"refund\""), "{first}");
    let (status, second) = confirm(&served, &link, "Ada Lovelace", "again");
    assert_eq!(status, StatusCode::OK);
    assert!(second.contains("data-decision=\"refund\""), "{second}");
    served.wait_for("the refund", || {
        withdrawal(&served, &page).refund_status.as_deref() == Some("succeeded")
    });
    assert_eq!(refunds_made(&served), 1);
    let kept = withdrawal(&served, &page);
    assert_eq!(
        (
            kept.name.as_str(),
            kept.reason.as_str(),
            kept.decision.as_str()
        ),
        ("Ada Lovelace", "Bought the wrong book", "refund")
    );

    // The downloads are closed; the buyer has the two mails.
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::GONE
    );
    let acknowledged = wait_for_mail(&served, email, "We received your withdrawal");
    for said in [
        order.as_str(),
        "Ada Lovelace",
        "Bought the wrong book",
        "refunded",
    ] {
        assert!(
            acknowledged.contains(said),
            "{said} is not in\n{acknowledged}"
        );
    }
    let refunded = wait_for_mail(&served, email, "has refunded your purchase");
    assert!(refunded.contains("29.00"), "{refunded}");
    assert_eq!(
        mails(&served, email, "We received your withdrawal").len(),
        1
    );
    // The page says so, asked again.
    let again = served.body(served.get(&link));
    assert!(again.contains("We have refunded"), "{again}");

    // The author sees it, and the ledger keeps it.
    let listed = served
        .test
        .shop(&["withdrawals", "--json"])
        .success()
        .json();
    assert_eq!(listed[0]["order"], order.as_str());
    assert_eq!(listed[0]["decision"], "refund");
    assert_eq!(listed[0]["refund_status"], "succeeded");
    assert_eq!(listed[0]["open"], false);
    served
        .test
        .shop(&["sync"])
        .success()
        .stdout_has(&["1 withdrawal;"]);
    let ledger = served.test.read("purchases/withdrawals.jsonl");
    let line: serde_json::Value = serde_json::from_str(ledger.lines().next().unwrap()).unwrap();
    assert_eq!(line["purchase"], served.session_of(&page).as_str());
    assert_eq!(line["reason"], "Bought the wrong book");
    assert_eq!(line["refund_status"], "succeeded");
    let report = served.test.shop(&["report"]).success().stdout();
    assert!(report.contains("WITHDRAWN"), "{report}");
    let row = report.lines().find(|l| l.starts_with("guide")).unwrap();
    assert!(row.contains("29.00 USD"), "{report}");
}

#[test]
fn a_buyer_who_waived_the_right_and_downloaded_is_told_it_has_ended() {
    let mut served = Served::prepare(&[], FILES, |_| {});
    let mut settings = served.test.read("shop.toml");
    settings.push_str("\n[consent]\nterms_url = \"https://books.example.com/terms\"\n");
    served.test.write("shop.toml", &settings);
    served.runtime.block_on(served.sandbox().control(
        Method::POST,
        "settings",
        json!({"terms_of_service_url": "https://books.example.com/terms"}),
    ));
    served.launch();
    let email = "ben@example.com";
    // A checkout of the store as it is now (the payment link was made
    // before `[consent]`): it asks for the box.
    let checkout = served
        .test
        .shop(&["checkout", "guide"])
        .success()
        .stdout()
        .trim()
        .to_owned();
    let paid = served.post_checkout(
        &checkout,
        &[
            ("email", email),
            ("card", "4242 4242 4242 4242"),
            ("terms", "accepted"),
        ],
    );
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let thanks = served.get(paid.headers()["location"].to_str().unwrap());
    let thanks = served.body(thanks);
    let page = crate::support::served::download_page_of(&thanks);
    let link = withdraw_link(&thanks, &served.url);
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK
    );
    let (status, answer) = confirm(&served, &link, "Ben", "");
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("data-decision=\"ended\""), "{answer}");
    assert!(
        answer.contains("Your right of withdrawal has ended"),
        "{answer}"
    );
    assert!(
        answer.contains("accepted that you thereby lose"),
        "{answer}"
    );
    // Recorded, acknowledged, nothing refunded, the downloads open.
    let kept = withdrawal(&served, &page);
    assert_eq!(kept.decision, "ended");
    assert!(kept.waived.is_some());
    let acknowledged = wait_for_mail(&served, email, "We received your withdrawal");
    assert!(acknowledged.contains("has ended"), "{acknowledged}");
    assert_eq!(refunds_made(&served), 0);
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK
    );
}

/// A purchase made `days` ago by the sandbox's clock, whose receipt (with
/// its withdrawal link) the server mails; returns that link.
fn bought_days_ago(served: &Served, email: &str, days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    served
        .runtime
        .block_on(served.sandbox().set_clock(now - days * 86_400));
    let checkout = served.checkout_page(&served.payment_link());
    let paid = served.post_checkout(
        &checkout,
        &[("email", email), ("card", "4242 4242 4242 4242")],
    );
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    served.runtime.block_on(served.sandbox().set_clock(now));
    withdraw_link(&wait_for_mail(served, email, "Your receipt"), &served.url)
}

#[test]
fn the_authors_policy_changes_the_outcome() {
    // The law alone: 20 days after buying, the right has ended.
    let served = Served::start();
    let link = bought_days_ago(&served, "late@example.com", 20);
    let (_, answer) = confirm(&served, &link, "Late", "");
    assert!(answer.contains("data-decision=\"late\""), "{answer}");
    assert!(answer.contains("20 days ago"), "{answer}");
    assert_eq!(refunds_made(&served), 0);
    drop(served);

    // A 30-day guarantee refunds it, downloaded or not.
    let served = Served::start_with_store(&[], |test| {
        let settings = test.read("shop.toml");
        test.write(
            "shop.toml",
            &format!("{settings}\n[refunds]\nself_service_days = 30\n"),
        );
    });
    let link = bought_days_ago(&served, "kept@example.com", 20);
    let (_, answer) = confirm(&served, &link, "Kept", "");
    assert!(answer.contains("data-decision=\"guarantee\""), "{answer}");
    assert!(answer.contains("30-day guarantee"), "{answer}");
    served.wait_for("the guarantee's refund", || refunds_made(&served) == 1);
    drop(served);

    // Review: the author decides; `shop refund` settles it.
    let served = Served::start_with_store(&[], |test| {
        let settings = test.read("shop.toml");
        test.write(
            "shop.toml",
            &format!("{settings}\n[refunds]\nreview = true\n"),
        );
    });
    let email = "asks@example.com";
    let page = served.buy(email);
    let thanks = served.thanks_page(&served.session_of(&page));
    let (_, answer) = confirm(&served, &withdraw_link(&thanks, &served.url), "Asks", "");
    assert!(answer.contains("data-decision=\"review\""), "{answer}");
    wait_for_mail(&served, email, "We received your withdrawal");
    assert_eq!(refunds_made(&served), 0);
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK,
        "a request under review closes nothing"
    );
    let order = shop::ledger::order_number(&served.session_of(&page));
    let open = served
        .test
        .shop(&["withdrawals", "--open"])
        .success()
        .stdout();
    assert!(
        open.contains(&order) && open.contains("waits for you"),
        "{open}"
    );
    served
        .test
        .shop(&["refund", &order])
        .success()
        .stderr_has(&["settled the buyer's withdrawal"]);
    assert_eq!(refunds_made(&served), 1);
    assert_eq!(
        withdrawal(&served, &page).refund_status.as_deref(),
        Some("succeeded")
    );
    served
        .test
        .shop(&["withdrawals", "--open"])
        .success()
        .stderr_has(&["no withdrawal waits for you"]);
}

#[test]
fn a_refund_that_fails_later_is_reported_told_and_asked_for_again() {
    let served = Served::start_with(&[("SHOP_MAIL_RETRY_SECONDS", "1")]);
    let email = "cy@example.com";
    let page = served.buy(email);
    let thanks = served.thanks_page(&served.session_of(&page));
    let control = |path: &str, body: serde_json::Value| {
        served
            .runtime
            .block_on(served.sandbox().control(Method::POST, path, body))
    };
    // Stripe holds the refund `pending`, then it fails (a closed card).
    control("settings", json!({"refunds_pending": true}));
    let (_, answer) = confirm(&served, &withdraw_link(&thanks, &served.url), "Cy", "");
    assert!(answer.contains("We are refunding"), "{answer}");
    served.wait_for("the pending refund", || {
        withdrawal(&served, &page).refund_status.as_deref() == Some("pending")
    });
    let first = withdrawal(&served, &page).refund.unwrap();
    control("settings", json!({"refunds_pending": false}));
    let failed = control(&format!("refunds/{first}/fail"), json!({}));
    assert_eq!(failed["status"], "failed");
    // Told to the buyer, logged for the author, asked for again with a
    // new request, which goes through.
    wait_for_mail(&served, email, "is delayed");
    served.wait_for("the second refund", || {
        withdrawal(&served, &page).refund_status.as_deref() == Some("succeeded")
    });
    let kept = withdrawal(&served, &page);
    assert_eq!(kept.refused, 1);
    assert_ne!(kept.refund.as_deref(), Some(first.as_str()));
    assert_eq!(refunds_made(&served), 2);
    wait_for_mail(&served, email, "has refunded your purchase");
    let log = served.log.lock().unwrap().clone();
    assert!(log.contains("did not go through"), "{log}");
    assert!(!log.contains(email), "the log names no buyer:\n{log}");
    let listed = served.test.shop(&["withdrawals"]).success().stdout();
    assert!(listed.contains("withdrawn: refunded"), "{listed}");
}

#[test]
fn withdrawal_links_are_refused_forged_expired_or_of_another_purpose() {
    let served = Served::start();
    let page = served.buy("dee@example.com");
    let thanks = served.thanks_page(&served.session_of(&page));
    let link = withdraw_link(&thanks, &served.url);
    let purchase = served.session_of(&page);
    let keys = shop::tokens::Key::new(
        shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
    );
    let sign = |subject: String, expires: i64| {
        shop::tokens::sign(
            &keys,
            &shop::tokens::Claims {
                purchase: subject,
                expires,
            },
        )
    };
    let download_token = page.trim_start_matches("/d/");
    let mut forged = link.clone();
    forged.push('x');
    for (case, path, status) in [
        (
            "a download token",
            format!("/withdraw/{download_token}"),
            StatusCode::FORBIDDEN,
        ),
        ("a forged token", forged, StatusCode::FORBIDDEN),
        (
            "an unsubscribe token",
            format!(
                "/withdraw/{}",
                sign(format!("unsubscribe:{purchase}"), i64::MAX / 2)
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "an expired token",
            format!("/withdraw/{}", sign(format!("withdraw:{purchase}"), 1_000)),
            StatusCode::GONE,
        ),
    ] {
        assert_eq!(served.get(&path).status(), status, "{case}");
        let (posted, _) = confirm(&served, &path, "Dee", "");
        assert_eq!(posted, status, "{case}, posted");
    }
    // From another site's page, the confirmation is refused.
    let (status, _) = served.post_form_from(&link, "https://evil.example", &[("name", "Dee")]);
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Without a name, the form comes back and nothing is recorded.
    let (status, answer) = confirm(&served, &link, "  ", "why");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("Please give your name"), "{answer}");
    assert!(answer.contains(">why</textarea>"), "{answer}");
    assert!(
        served
            .runtime
            .block_on(served.state().withdrawal(&purchase))
            .unwrap()
            .is_none()
    );
    // No token reaches the log.
    let log = served.log.lock().unwrap().clone();
    assert!(
        !log.contains(link.trim_start_matches("/withdraw/")),
        "{log}"
    );
}

//! Support as an author does it: a buyer writes with their address or the
//! order number on their receipt; `shop find` shows their purchases with
//! the downloads left, `shop token` mails a fresh link, `shop refund`
//! refunds at Stripe, closes the downloads and tells the buyer, once.

use reqwest::StatusCode;

use crate::support::served::Served;

/// The order number on a purchase's receipt, as the thank-you page shows it.
fn order_on_page(served: &Served, page: &str) -> String {
    shop::ledger::order_number(&served.session_of(page))
}

#[test]
fn support_finds_a_buyer_mails_their_link_and_refunds_them() {
    let served = Served::start();
    let first = served.buy("ada@example.com");
    let second = served.buy("ada@example.com");
    let bob = served.buy("bob@example.com");
    // A download, so that the downloads left say something.
    assert_eq!(
        served.get(&format!("{bob}/guide.epub")).status(),
        StatusCode::OK
    );
    let bob_order = order_on_page(&served, &bob);
    // The order number reads aloud: no I, L, O or U.
    assert!(!bob_order.contains(['I', 'L', 'O', 'U']), "{bob_order}");

    // Found before any sync (what the server has seen), by address, by
    // order number however typed, by id.
    let found = served
        .test
        .shop(&["find", "bob@example.com"])
        .success()
        .stdout();
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 2, "{found}");
    assert!(lines[0].starts_with("ORDER"), "{found}");
    for expected in [
        bob_order.as_str(),
        "bob@example.com",
        "guide 1.0.0",
        "paid (not synced)",
        "4 of 5",
    ] {
        assert!(
            lines[1].contains(expected),
            "{expected:?} is not in\n{found}"
        );
    }
    let typed = bob_order.to_lowercase().replace('-', " ").replace('1', "l");
    let json = served
        .test
        .shop(&["find", &typed, "--json"])
        .success()
        .json();
    assert_eq!(json[0]["id"], served.session_of(&bob));
    assert_eq!(json[0]["downloads_left"], "4 of 5");
    served.test.shop(&["sync"]).success();
    let found = served
        .test
        .shop(&["find", "ada@example.com"])
        .success()
        .stdout();
    assert_eq!(found.lines().count(), 3, "{found}");
    assert!(!found.contains("not synced"), "{found}");
    served
        .test
        .shop(&["find", "nobody@example.com"])
        .code(1)
        .stderr_has(&["no purchase or grant matches `nobody@example.com`", "hint:"]);

    // `shop token` by order number, mailed; by an address with two
    // purchases, refused with what to give instead.
    served
        .test
        .shop(&["token", &bob_order, "--mail"])
        .success()
        .stderr_has(&["mailed the link to bob@example.com"]);
    served.wait_for("the link mailed to Bob", || {
        served
            .outbox()
            .iter()
            .filter(|mail| mail.contains("To: bob@example.com") && mail.contains("Your receipt"))
            .count()
            == 2
    });
    let ada_orders = [
        order_on_page(&served, &first),
        order_on_page(&served, &second),
    ];
    let refused = served
        .test
        .shop(&["token", "ada@example.com"])
        .code(1)
        .stderr();
    assert!(
        refused.contains("`ada@example.com` has 2 purchases:"),
        "{refused}"
    );
    for order in &ada_orders {
        assert!(refused.contains(order.as_str()), "{refused}");
    }
    assert!(refused.contains("hint: give the order number"), "{refused}");

    // A refund: at Stripe, the downloads closed, the buyer told, once.
    served
        .test
        .shop(&["refund", &bob_order, "--reason", "Bought the wrong book"])
        .success()
        .stderr_has(&[
            &format!("refunded 29.00 USD of `{bob_order}` (guide 1.0.0) at Stripe"),
            "mailed bob@example.com a refund notice",
            "hint: the next `shop sync` records the refund in the ledger",
        ]);
    assert_eq!(
        served.get(&format!("{bob}/guide.pdf")).status(),
        StatusCode::GONE
    );
    served
        .test
        .shop(&["refund", &bob_order])
        .success()
        .never_shows("mailed");
    let notices: Vec<String> = served
        .outbox()
        .into_iter()
        .filter(|mail| mail.contains("Your refund from Test Books"))
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("Why: Bought the wrong book"),
        "{}",
        notices[0]
    );
    served
        .test
        .shop(&["sync"])
        .success()
        .stdout_has(&["0 new, 1 refunded"]);
    let found = served.test.shop(&["find", &bob_order]).success().stdout();
    assert!(
        found.contains("refunded") && found.contains("closed"),
        "{found}"
    );
}

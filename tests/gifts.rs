//! Gifts through the real server: the gift's payment link that `shop
//! release` makes, the test checkout's custom fields, the buyer's receipt
//! (no download link of theirs) and the recipient's gift (the message,
//! their own stamped copies and the notices of later versions), sent
//! again from the gift's page, dated gifts sent on their day, and an
//! address that is not one.

use reqwest::StatusCode;

use crate::support::books::first_page_text;
use crate::support::served::{Served, link, mails_to};

/// Waits for one more message to `email` holding `needle` than `before`;
/// returns the newest.
fn next_mail(served: &Served, email: &str, needle: &str, before: usize) -> String {
    let mut found = Vec::new();
    served.wait_for(&format!("a mail to {email} with {needle:?}"), || {
        found = mails_to(served, email, needle);
        found.len() > before
    });
    found.pop().unwrap()
}

/// A store that sells the guide (a stamped PDF) as a gift too.
fn gift_store() -> (Served, Vec<u8>) {
    let pdf = crate::support::books::pdf(2);
    let served = Served::start_selling(&[("guide.pdf", pdf.clone())], |test| {
        let settings = test.read("shop.toml");
        test.write("shop.toml", &format!("gifts = true\n{settings}"));
        let product = test.read("products/guide.toml");
        test.write("products/guide.toml", &format!("{product}stamp = true\n"));
    });
    (served, pdf)
}

/// Pays the gift's checkout of the guide (through `/buy/guide?gift`) as
/// `buyer`, answering its custom fields; returns the thanks address.
fn give(served: &Served, buyer: &str, answers: &[(&str, &str)]) -> String {
    let checkout = served.checkout_page("/buy/guide?gift");
    let mut fields = vec![("email", buyer), ("card", "4242 4242 4242 4242")];
    fields.extend(answers.iter().copied());
    let paid = served.post_checkout(&checkout, &fields);
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    paid.headers()["location"].to_str().unwrap().to_owned()
}

#[test]
fn a_gift_goes_to_its_recipient_who_holds_it_and_the_buyer_can_send_it_again() {
    let (served, _) = gift_store();
    // The release made the gift's link beside the plain one, asking the
    // three fields.
    let product = served.test.read("products/guide.toml");
    assert!(
        product.contains("gift_link = \"plink_") && product.contains("gift_link_url = \""),
        "{product}"
    );
    let links = served
        .runtime
        .block_on(served.sandbox().posted("/v1/payment_links"));
    assert_eq!(links.len(), 2, "{links:?}");
    let gift_link = links
        .iter()
        .find(|link| link["metadata"]["gift"] == "true")
        .expect("a gift's link");
    let keys: Vec<&str> = gift_link["custom_fields"]
        .as_object()
        .map(|fields| {
            fields
                .values()
                .map(|f| f["key"].as_str().unwrap())
                .collect()
        })
        .or_else(|| {
            gift_link["custom_fields"]
                .as_array()
                .map(|fields| fields.iter().map(|f| f["key"].as_str().unwrap()).collect())
        })
        .unwrap();
    assert_eq!(keys, ["giftrecipient", "giftmessage", "giftdate"]);
    // A re-run finds both links.
    served
        .test
        .shop(&[
            "release",
            "guide",
            "1.0.0",
            served.test.root().join("build/guide.pdf").to_str().unwrap(),
        ])
        .success()
        .stderr_has(&["gift's payment link `plink_"]);
    assert_eq!(
        served
            .runtime
            .block_on(served.sandbox().posted("/v1/payment_links"))
            .len(),
        2
    );

    let front = served.body(served.get("/"));
    assert!(front.contains("href=\"/buy/guide?gift\""), "{front}");
    let checkout = served.checkout_page("/buy/guide?gift");
    let page = served.body(served.get(&checkout));
    assert!(
        page.contains("Recipient&#x27;s email") || page.contains("Recipient's email"),
        "{page}"
    );

    let thanks = give(
        &served,
        "ann@example.com",
        &[
            ("custom_giftrecipient", "Bo@Example.org"),
            ("custom_giftmessage", "Happy birthday, Bo! <3"),
        ],
    );
    // The thanks page says where it went and offers the buyer no files.
    let landed = served.body(served.get(&thanks));
    assert!(
        landed.contains("Your gift") && landed.contains("bo@example.org"),
        "{landed}"
    );
    assert!(
        !landed.contains("/d/"),
        "no download link for the buyer: {landed}"
    );

    let receipt = next_mail(&served, "ann@example.com", "Thank you for giving", 0);
    assert!(!receipt.contains("/d/"), "{receipt}");
    assert!(receipt.contains("Happy birthday, Bo!"), "{receipt}");
    let gift = next_mail(&served, "bo@example.org", "is giving you a copy", 0);
    assert!(
        gift.contains("ann@example.com is giving you a copy of The Field Guide")
            && gift.contains("Happy birthday, Bo! <3")
            && gift.contains("Happy birthday, Bo! &lt;3"),
        "the message, in the text and escaped in the HTML: {gift}"
    );
    // The recipient's own link, and their own stamped copy.
    let page = link(&gift, &format!("{}/d/", served.url));
    let page = page.trim_start_matches(&served.url).to_owned();
    let copy = served.runtime.block_on(async {
        let response = served
            .http
            .get(format!("{}{page}/guide.pdf", served.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.unwrap().to_vec()
    });
    assert!(
        first_page_text(&copy).contains("bo@example.org"),
        "{}",
        first_page_text(&copy)
    );
    // The buyer asking for their links gets none: the purchase is Bo's.
    assert!(
        served
            .runtime
            .block_on(served.state().purchases_of("ann@example.com"))
            .unwrap()
            .is_empty()
    );

    // The gift's page, from the receipt: sent, and sent again on asking.
    let gift_page = link(&receipt, &format!("{}/gift/", served.url));
    let gift_page = gift_page.trim_start_matches(&served.url).to_owned();
    let shown = served.body(served.get(&gift_page));
    assert!(
        shown.contains("We sent it to them on") && shown.contains("Send it again"),
        "{shown}"
    );
    let (refused, _) =
        served.post_form_from(&gift_page, "https://elsewhere.example", &[("again", "1")]);
    assert_eq!(refused, StatusCode::FORBIDDEN);
    assert_eq!(served.queued("present").len(), 1);
    let (status, answer) = served.post_form_from(&gift_page, "null", &[("again", "1")]);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("again now"), "{answer}");
    next_mail(&served, "bo@example.org", "is giving you a copy", 1);
    assert_eq!(
        served.queued("present"),
        ["bo@example.org", "bo@example.org"]
    );
    // Twice an hour at most.
    served.post_form_from(&gift_page, "null", &[("again", "1")]);
    let (limited, _) = served.post_form_from(&gift_page, "null", &[("again", "1")]);
    assert_eq!(limited, StatusCode::TOO_MANY_REQUESTS);

    // The ledger: the recipient holds it, the buyer and message kept.
    served.test.shop(&["sync"]).success();
    let lines = served.test.ledger_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["email"], "bo@example.org");
    assert_eq!(lines[0]["gift_from"], "ann@example.com");
    assert_eq!(lines[0]["gift_message"], "Happy birthday, Bo! <3");
    assert!(lines[0].get("gift_on").is_none(), "{lines:?}");
    served
        .test
        .shop(&["report", "--csv"])
        .success()
        .stdout_has(&["gift_from,gift_to,gift_message,gift_on", "ann@example.com"]);
    // `shop find` finds it by either address.
    for who in ["ann@example.com", "bo@example.org"] {
        served
            .test
            .shop(&["find", who])
            .success()
            .stdout_has(&["bo@example.org"]);
    }
    // The author sends the gift's mail again from the command line.
    let before = mails_to(&served, "bo@example.org", "is giving you a copy").len();
    served
        .test
        .shop(&["token", "bo@example.org", "--mail"])
        .success()
        .stderr_has(&["the gift's mail again"]);
    assert_eq!(
        mails_to(&served, "bo@example.org", "is giving you a copy").len(),
        before + 1
    );

    // The next version's notice goes to the recipient, not the buyer.
    let build = served.test.root().join("build");
    std::fs::write(build.join("guide.pdf"), crate::support::books::pdf(3)).unwrap();
    let first_gift_link = served
        .test
        .read("products/guide.toml")
        .lines()
        .find_map(|line| line.strip_prefix("gift_link = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    served
        .test
        .shop(&[
            "release",
            "guide",
            "1.1.0",
            build.join("guide.pdf").to_str().unwrap(),
        ])
        .success();
    // 1.1.0 sells as a gift through a link of its own; 1.0.0's stops.
    let (_, old_link) = served.runtime.block_on(served.sandbox().api(
        reqwest::Method::GET,
        &format!("/v1/payment_links/{first_gift_link}"),
        &[],
    ));
    assert_eq!(old_link["active"], false, "{old_link}");
    assert_eq!(
        served
            .test
            .read("products/guide.toml")
            .matches("gift_link = ")
            .count(),
        2
    );
    let plan = served
        .test
        .shop(&["notify", "guide", "1.1.0", "--dry-run"])
        .success()
        .stdout();
    assert!(
        plan.contains("bo@example.org") && !plan.contains("ann@example.com"),
        "{plan}"
    );

    // The buyer withdraws, by the link in their receipt: the page and the
    // acknowledgement are theirs, not the recipient's; refunded, the
    // recipient's downloads close.
    let withdraw = link(&receipt, &format!("{}/withdraw/", served.url));
    let withdraw = withdraw.trim_start_matches(&served.url).to_owned();
    let form = served.body(served.get(&withdraw));
    assert!(
        form.contains("ann@example.com") && !form.contains("bo@example.org"),
        "{form}"
    );
    let (status, answer) = served.post_form_from(&withdraw, "null", &[("name", "Ann Example")]);
    assert_eq!(status, StatusCode::OK, "{answer}");
    next_mail(&served, "ann@example.com", "received your withdrawal", 0);
    next_mail(&served, "ann@example.com", "has refunded your purchase", 0);
    assert!(mails_to(&served, "bo@example.org", "withdrawal").is_empty());
    served.wait_for("the refund to close the recipient's downloads", || {
        served.get(&format!("{page}/guide.pdf")).status() == StatusCode::GONE
    });
}

#[test]
fn a_dated_gift_goes_on_its_day_and_an_address_that_is_not_one_stays_the_buyers() {
    let (mut served, _) = gift_store();
    // The sandbox's clock and the server's agree on today; the gift is
    // for three days on, at noon UTC.
    let now = time::OffsetDateTime::now_utc();
    let day = (now + time::Duration::days(3)).date();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let typed = day.format(&format).unwrap();
    let due = day.midnight().assume_utc().unix_timestamp() + 12 * 3600;
    let thanks = give(
        &served,
        "cy@example.com",
        &[
            ("custom_giftrecipient", "dee@example.net"),
            ("custom_giftdate", &typed),
        ],
    );
    let landed = served.body(served.get(&thanks));
    let human = format!("{} {} {}", day.day(), day.month(), day.year());
    assert!(landed.contains(&format!("on {human}")), "{landed}");
    let receipt = next_mail(&served, "cy@example.com", "Thank you for giving", 0);
    assert!(
        receipt.contains(&format!("We will send it to them on {human}")),
        "{receipt}"
    );
    // Queued for its day, not sent: the queue holds it unsent after the
    // receipt (queued at the same moment) went.
    let queue = served.mail_queue();
    let waiting: Vec<_> = queue.iter().filter(|mail| mail.kind == "present").collect();
    assert_eq!(waiting.len(), 1, "{queue:?}");
    assert!(waiting[0].sent.is_none(), "{queue:?}");
    assert_eq!(
        served.query("SELECT next_attempt FROM mail_queue WHERE kind = 'present'"),
        [[format!("Integer({due})")]]
    );
    assert!(mails_to(&served, "dee@example.net", "is giving you a copy").is_empty());
    // Its page says when, and offers nothing to send yet.
    let gift_page = link(&receipt, &format!("{}/gift/", served.url));
    let shown = served.body(served.get(gift_page.trim_start_matches(&served.url)));
    assert!(
        shown.contains(&format!("It goes to them on {human}")) && !shown.contains("Send it again"),
        "{shown}"
    );

    // An address that is not one: the copy stays the buyer's, and their
    // receipt says so with their own link.
    give(
        &served,
        "eli@example.com",
        &[("custom_giftrecipient", "my sister")],
    );
    let receipt = next_mail(&served, "eli@example.com", "Thank you for buying", 0);
    assert!(
        receipt.contains("\"my sister\" is not an email address") && receipt.contains("/d/"),
        "{receipt}"
    );
    served.test.shop(&["sync"]).success();
    let lines = served.test.ledger_lines();
    let kept = lines
        .iter()
        .find(|line| line["email"] == "eli@example.com")
        .expect("the buyer's line");
    assert_eq!(kept["gift_to"], "my sister");
    assert_eq!(kept["gift_from"], "eli@example.com");
    // And the dated one its day.
    let dated = lines
        .iter()
        .find(|line| line["email"] == "dee@example.net")
        .expect("the recipient's line");
    assert_eq!(dated["gift_on"], typed.as_str());
    assert_eq!(dated["gift_from"], "cy@example.com");

    // The server restarted on its day (the sandbox's clock moved there
    // too): the gift goes, by the server's clock.
    served.stop_server();
    served.test.env("SHOP_NOW", &(due + 60).to_string());
    served
        .runtime
        .block_on(served.sandbox().set_clock(due + 60));
    served.launch();
    let gift = next_mail(&served, "dee@example.net", "is giving you a copy", 0);
    assert!(gift.contains("cy@example.com is giving you"), "{gift}");
}

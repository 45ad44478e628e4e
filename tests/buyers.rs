//! The buyer's side as a reader meets it: the cover and a word on the
//! stamp on every page and receipt, times in their own zone, the version
//! they bought beside the one they download, pre-orders in the library,
//! and a refunded purchase that offers nothing.

use reqwest::StatusCode;

use crate::support::served::{Served, download_page_of};

/// A PNG's first bytes: enough for the check and the browser.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn page(served: &Served, path: &str) -> String {
    let response = served.get(path);
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    served.body(response).replace("&#x2f;", "/")
}

#[test]
fn pages_and_receipts_show_the_cover_the_stamp_and_times_in_the_readers_zone() {
    let served = Served::start_with_store(&[], |test| {
        std::fs::create_dir_all(test.path().join("covers")).unwrap();
        std::fs::write(test.path().join("covers/guide.png"), PNG).unwrap();
        let product = test.read("products/guide.toml");
        test.write(
            "products/guide.toml",
            &format!("{product}cover = \"covers/guide.png\"\nstamp = true\n"),
        );
        crate::release::commit_all(test.path(), "cover and stamp");
    });
    let thanks_at = served.pay(&served.payment_link(), "ada@example.com");
    let thanks = page(&served, thanks_at.trim_start_matches(&served.url));
    let stamped = "Your PDF and EPUB files carry your email address and order number";
    for shown in [
        "<img class=\"cover aside\" src=\"/cover/guide\"",
        stamped,
        "data-local>",
        "<script src=\"/local-time.js\" defer></script>",
    ] {
        assert!(
            thanks.contains(shown),
            "the thanks page lacks {shown}:\n{thanks}"
        );
    }
    // The link's end as a moment a script can show in the reader's zone.
    let at = thanks.find("<time datetime=\"").unwrap() + "<time datetime=\"".len();
    let moment = &thanks[at..at + 20];
    assert!(
        time::OffsetDateTime::parse(moment, &time::format_description::well_known::Rfc3339).is_ok(),
        "{moment}"
    );
    let downloads = page(&served, &download_page_of(&thanks));
    for shown in ["src=\"/cover/guide\"", stamped, "data-local>"] {
        assert!(
            downloads.contains(shown),
            "the download page lacks {shown}:\n{downloads}"
        );
    }
    let script = served.get("/local-time.js");
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(served.body(script).contains("time[data-local]"));

    // The receipt: the cover by its public address, the stamp in words,
    // the day of purchase as a day.
    served.wait_for("the receipt", || {
        served
            .outbox()
            .iter()
            .any(|m| m.contains("To: ada@example.com") && m.contains("Your receipt"))
    });
    let receipt = served
        .outbox()
        .into_iter()
        .find(|m| m.contains("To: ada@example.com") && m.contains("Your receipt"))
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(
        receipt.contains(&format!("src=\"{}/cover/guide\"", served.url)),
        "{receipt}"
    );
    assert!(receipt.contains(stamped), "{receipt}");
    let date = receipt
        .lines()
        .filter_map(|line| line.strip_prefix("Date: "))
        // Not the message's own `Date:` header: the receipt's line.
        .find(|date| !date.contains(':'))
        .unwrap_or_else(|| panic!("no day of purchase in\n{receipt}"));
    assert!(date.split(' ').count() == 3, "{date}");

    // The library, with the cover and the day.
    let library = page(&served, &served.library_of("ada@example.com"));
    assert!(library.contains("src=\"/cover/guide\""), "{library}");
    assert!(library.contains(&format!(" on {date} ")), "{library}");
}

#[test]
fn a_preorder_is_in_the_library_and_an_earlier_buyer_sees_what_they_bought() {
    let served = Served::start();
    // Ada buys 1.0.0; 1.1.0 comes out while her thanks page is fresh.
    let thanks_at = served.pay(&served.payment_link(), "ada@example.com");
    let build = served.test.root().join("build");
    std::fs::write(build.join("guide.pdf"), b"%PDF the fixed guide").unwrap();
    std::fs::write(build.join("guide.epub"), b"PK the fixed guide").unwrap();
    served
        .test
        .shop(&[
            "release",
            "guide",
            "1.1.0",
            build.join("guide.pdf").to_str().unwrap(),
            build.join("guide.epub").to_str().unwrap(),
        ])
        .success();
    served.wait_for("the server to read 1.1.0", || {
        served.body(served.get("/p/guide")).contains("1.1.0")
    });
    let thanks = page(&served, thanks_at.trim_start_matches(&served.url));
    assert!(
        thanks.contains("You bought <strong>The Field Guide</strong> (version 1.0.0)"),
        "{thanks}"
    );
    assert!(
        thanks.contains(
            "Your files are version <strong>1.1.0</strong>, the newest your purchase includes."
        ),
        "{thanks}"
    );

    // Bob pre-orders 2.0.0: his library says so, with the day.
    served
        .test
        .shop(&["preorder", "guide", "2.0.0", "--date", "2027-03-01"])
        .success();
    served.wait_for("the server to take pre-orders", || {
        served.body(served.get("/p/guide")).contains("2.0.0")
    });
    served.pay("/buy/guide?preorder", "bob@example.com");
    let library = page(&served, &served.library_of("bob@example.com"));
    for shown in [
        "<h2>The Field Guide</h2>",
        "Pre-ordered version 2.0.0 on ",
        "Not out yet: it is to come out on 1 March 2027.",
    ] {
        assert!(
            library.contains(shown),
            "the library lacks {shown}:\n{library}"
        );
    }
    assert!(!library.contains("We found no purchase"), "{library}");
}

#[test]
fn a_refunded_purchase_offers_nothing_even_before_its_webhook() {
    let served = Served::start();
    // The webhook endpoint is down: the server hears nothing of the refund.
    served.runtime.block_on(served.sandbox().control(
        reqwest::Method::POST,
        "webhooks",
        serde_json::json!({"down": true}),
    ));
    let thanks_at = served.pay(&served.payment_link(), "ada@example.com");
    let session = thanks_at.rsplit('=').next().unwrap().to_owned();
    let before = page(&served, thanks_at.trim_start_matches(&served.url));
    assert!(before.contains("Download guide.pdf"), "{before}");
    served.refund(&session);
    let after = page(&served, thanks_at.trim_start_matches(&served.url));
    for shown in [
        "<h1>This purchase was refunded</h1>",
        "Your payment for <strong>The Field Guide</strong> (version 1.0.0) was refunded, so its downloads are closed.",
    ] {
        assert!(
            after.contains(shown),
            "the thanks page lacks {shown}:\n{after}"
        );
    }
    for hidden in ["Download", "/d/", "Thank you!"] {
        assert!(
            !after.contains(hidden),
            "the thanks page still shows {hidden}:\n{after}"
        );
    }
}

#[test]
fn a_bank_debits_receipt_links_the_invoice_stripe_issues_when_the_money_arrives() {
    let served = Served::start_with_store(&[], |test| {
        let settings = test
            .read("shop.toml")
            .replace("currency = \"usd\"", "currency = \"eur\"")
            .replace("invoices = false", "invoices = true");
        assert!(settings.contains("invoices = true"), "{settings}");
        test.write("shop.toml", &settings);
    });
    // A SEPA debit: the checkout completes, the bank pays a minute later.
    let checkout = served.checkout_page(&served.payment_link());
    let paid = served.post_checkout(
        &checkout,
        &[
            ("email", "ada@example.com"),
            ("address", "DE"),
            ("iban", "DE89370400440532013000"),
        ],
    );
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let receipts = || -> Vec<String> {
        served
            .outbox()
            .into_iter()
            .filter(|m| m.contains("To: ada@example.com") && m.contains("Subject: Your receipt"))
            .collect()
    };
    assert!(receipts().is_empty(), "a receipt before the money");
    served.runtime.block_on(served.sandbox().control(
        reqwest::Method::POST,
        "clock",
        serde_json::json!({"advance": 120}),
    ));
    served.wait_for("the receipt once the bank paid", || !receipts().is_empty());
    let receipt = receipts().remove(0);
    let invoice = format!("Invoice: {}/invoices/in_", served.sandbox().url);
    assert!(receipt.contains(&invoice), "{receipt}");
    assert!(receipt.contains("View your invoice"), "{receipt}");
}

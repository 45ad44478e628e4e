//! Paid upgrades: `upgrade_discount` makes `shop notify` of a version the
//! update policy keeps from earlier buyers mail each of them a code of
//! their own (a Stripe promotion code: single-use, expiring, for this
//! product only), which the server applies to the new version's checkout;
//! the ledger marks the purchase as an upgrade.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::served::Served;

/// The parameters of the answered `POST path` requests, oldest first.
fn posted(served: &Served, path: &str) -> Vec<Value> {
    served.runtime.block_on(served.sandbox().posted(path))
}

/// The upgrade message to `email` in the outbox, and the code it gives.
fn offer_to(served: &Served, email: &str) -> Vec<(String, String)> {
    served
        .outbox()
        .into_iter()
        .filter(|text| text.contains(&format!("To: {email}")) && text.contains("50% off for you"))
        .map(|text| {
            let at = text.find("/buy/guide?upgrade=").expect("the upgrade link");
            let code: String = text[at + "/buy/guide?upgrade=".len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            (text, code)
        })
        .collect()
}

#[test]
fn an_upgrade_code_works_once_for_its_buyer_and_the_new_version_only() {
    let mut served = Served::start_with_store(&[], |test| {
        let product = test.read("products/guide.toml");
        test.write(
            "products/guide.toml",
            &format!(
                "{product}updates = \"same-major\"\nupgrade_discount = \"50%\"\nupgrade_days = 14\n"
            ),
        );
        test.write(
            "products/notes.toml",
            "name = \"Field Notes\"\nprice = \"9.00\"\nfiles = [\"notes.pdf\"]\n",
        );
    });
    let test = &served.test;
    let build = test.root().join("build");
    std::fs::write(build.join("notes.pdf"), b"%PDF-1.4 notes").unwrap();
    test.shop(&[
        "release",
        "notes",
        "1.0.0",
        build.join("notes.pdf").to_str().unwrap(),
    ])
    .success();
    served.buy("ada@example.com");
    served.buy("bob@example.com");
    // A new major version: sold on its own under `same-major`.
    std::fs::write(build.join("guide.pdf"), vec![7u8; 2000]).unwrap();
    std::fs::write(build.join("guide.epub"), b"PK the second edition").unwrap();
    test.shop(&[
        "release",
        "guide",
        "2.0.0",
        build.join("guide.pdf").to_str().unwrap(),
        build.join("guide.epub").to_str().unwrap(),
    ])
    .success();
    served.wait_for("the server to see 2.0.0", || {
        served.body(served.get("/")).contains("version 2.0.0")
    });
    test.shop(&["sync"]).success();
    test.shop(&["notify", "guide", "2.0.0", "--dry-run"])
        .success()
        .stdout_has(&[
            "ada@example.com  (bought 1.0.0, ",
            "  upgrade offer\n",
            "bob@example.com  (bought 1.0.0, ",
        ]);

    // Stopped after the first intent, before any message went: the
    // codes already exist at Stripe, and the next run uses them.
    served.test.env("SHOP_FAULT", "notify:intent");
    let stopped = served.test.shop(&["notify", "guide", "2.0.0"]);
    assert_eq!(stopped.output.status.code(), None, "{}", stopped.stderr());
    served.test.env("SHOP_FAULT", "");
    let test = &served.test;
    assert_eq!(posted(&served, "/v1/promotion_codes").len(), 2);
    test.shop(&["notify", "guide", "2.0.0"])
        .success()
        .stdout_has(&["sent 2 notices about The Field Guide 2.0.0"]);
    let coupons = posted(&served, "/v1/coupons");
    assert_eq!(coupons.len(), 1, "{coupons:?}");
    assert_eq!(coupons[0]["percent_off"], "50");
    assert_eq!(coupons[0]["duration"], "once");
    assert_eq!(
        coupons[0]["applies_to"]["products"],
        json!(["prod_shop_guide"])
    );
    let codes = posted(&served, "/v1/promotion_codes");
    assert_eq!(codes.len(), 2, "made once each, the stopped run's kept");
    for code in &codes {
        assert_eq!(code["coupon"], "shop-upgrade-guide-2.0.0-50");
        assert_eq!(code["max_redemptions"], "1");
        assert!(
            code["metadata"]["upgrade_from"]
                .as_str()
                .unwrap()
                .starts_with("cs_test_")
        );
    }
    let ada = offer_to(&served, "ada@example.com");
    let bob = offer_to(&served, "bob@example.com");
    assert_eq!((ada.len(), bob.len()), (1, 1), "one offer each");
    let (mail, ada_code) = &ada[0];
    let bob_code = &bob[0].1;
    assert!(
        ada_code.starts_with("UP") && ada_code.len() == 14,
        "{ada_code}"
    );
    assert_ne!(ada_code, bob_code);
    assert!(mail.contains("50% less: 14.50 USD"), "{mail}");
    let expires = codes
        .iter()
        .find(|code| code["code"] == ada_code.as_str())
        .map(|code| code["expires_at"].as_str().unwrap().parse::<i64>().unwrap())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (expires - now - 14 * 86_400).abs() < 300,
        "valid for 14 days"
    );

    // Ada upgrades through her link: half the price, her email already
    // filled in at checkout.
    let checkout = served.checkout_page(&format!("/buy/guide?upgrade={ada_code}"));
    let session = checkout.rsplit('/').next().unwrap().to_owned();
    let session = served
        .runtime
        .block_on(served.sandbox().client().checkout_session(&session))
        .unwrap()
        .unwrap();
    assert_eq!(session.customer_email.as_deref(), Some("ada@example.com"));
    let thanks = served.pay(&format!("/buy/guide?upgrade={ada_code}"), "ada@example.com");
    let page = served.body(served.get(&thanks));
    assert!(page.contains("14.50"), "{page}");
    // Her code works once.
    let again = served.get(&format!("/buy/guide?upgrade={ada_code}"));
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(
        served
            .body(again)
            .contains("This upgrade code does not work")
    );
    // Bob's code is for The Field Guide: Stripe refuses it on another product.
    test.shop(&["checkout", "notes", "--promo", bob_code])
        .code(1)
        .stderr_has(&["This promotion code cannot be applied to the items in this checkout."]);
    // A code nobody was given does nothing.
    assert_eq!(
        served.get("/buy/guide?upgrade=UP000000000000").status(),
        StatusCode::GONE
    );

    // The ledger marks the upgrade and what it cost.
    test.shop(&["sync"]).success();
    let ledger = std::fs::read_dir(test.path().join("purchases"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .collect::<String>();
    let lines: Vec<Value> = ledger
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let first = lines
        .iter()
        .find(|line| line["email"] == "ada@example.com" && line["version"] == "1.0.0")
        .unwrap();
    let upgrade = lines
        .iter()
        .find(|line| line["email"] == "ada@example.com" && line["version"] == "2.0.0")
        .unwrap();
    assert_eq!(upgrade["amount"], 1450);
    assert_eq!(upgrade["promotion_code"], ada_code.as_str());
    assert_eq!(upgrade["upgrade_from"], first["id"]);

    // Told once: a re-run mails nobody and makes no code (Ada, who has
    // 2.0.0 now, is not even counted; Bob was told).
    test.shop(&["notify", "guide", "2.0.0"])
        .success()
        .stderr_has(&["nobody to tell about The Field Guide 2.0.0 (1 already told, 0 opted out)"]);
    assert_eq!(posted(&served, "/v1/promotion_codes").len(), 2);
    assert_eq!(offer_to(&served, "ada@example.com").len(), 1);
}

//! Money as an accountant reads it: when a purchase was paid, Stripe's fee
//! and net from the charge's balance transaction, a report with fees and
//! totals, a CSV with every ledger field, and the product tax code that
//! gives an e-book its reduced rate.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Sandbox, Test};

const BOOK: &str =
    "name = \"Old Roads\"\nprice = \"24.00\"\ncurrency = \"eur\"\nfiles = [\"roads.pdf\"]\n";

/// A store with `product` (as `products/roads.toml`) released at the
/// sandbox, and the link buyers pay through.
fn released(test: &mut Test, sandbox: &Sandbox, product: &str) -> String {
    test.write("products/roads.toml", product);
    let build = test.root().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let file = build.join("roads.pdf");
    std::fs::write(&file, "%PDF-1.4 old roads").unwrap();
    crate::release::commit_all(test.path(), "old roads");
    test.env("SHOP_STRIPE_API_BASE", &sandbox.url);
    test.env("STRIPE_SECRET_KEY", "sk_test_money");
    test.env("SHOP_STRIPE_ATTEMPTS", "1");
    test.shop(&["release", "roads", "1.0.0", file.to_str().unwrap()])
        .success();
    test.read("products/roads.toml")
        .lines()
        .find_map(|line| line.strip_prefix("payment_link_url = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Opens `link`'s checkout page (its address and its text).
fn open(runtime: &tokio::runtime::Runtime, link: &str) -> (String, String) {
    runtime.block_on(async {
        let http = http();
        let opened = http.get(link).send().await.unwrap();
        assert_eq!(opened.status(), StatusCode::SEE_OTHER);
        let checkout = opened.headers()["location"].to_str().unwrap().to_owned();
        let page = http.get(&checkout).send().await.unwrap();
        (checkout, page.text().await.unwrap())
    })
}

/// Pays an open checkout page with `fields`.
fn pay(runtime: &tokio::runtime::Runtime, checkout: &str, fields: &[(&str, &str)]) {
    runtime.block_on(async {
        let mut form = shop::stripe::Form::new();
        for (name, value) in fields {
            form = form.field(*name, *value);
        }
        let paid = http()
            .post(checkout)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.encode())
            .send()
            .await
            .unwrap();
        let status = paid.status();
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{}",
            paid.text().await.unwrap()
        );
    });
}

#[test]
fn fees_and_the_day_of_payment_reach_the_ledger_and_the_report_adds_up() {
    let runtime = crate::harness::runtime();
    let sandbox = runtime.block_on(Sandbox::start());
    let control =
        |path: &str, body: Value| runtime.block_on(sandbox.control(Method::POST, path, body));
    // A German account: its fees are the EEA's.
    control("settings", json!({"country": "DE"}));
    let mut test = Test::store();
    let link = released(&mut test, &sandbox, BOOK);

    // A checkout opened on the last evening of November and paid after
    // midnight: the sale is December's, the session November's.
    control("clock", json!({"now": 1_764_539_400})); // 2025-11-30T21:50:00Z
    let (late, _) = open(&runtime, &link);
    control("clock", json!({"now": 1_764_547_200})); // 2025-12-01T00:00:00Z
    pay(
        &runtime,
        &late,
        &[
            ("email", "ada@example.com"),
            ("card", "4000 0027 6000 0016"),
        ],
    );
    // A French card, an American one and a British one, the same day.
    for (email, card) in [
        ("bo@example.com", "4000 0025 0000 0003"),
        ("cy@example.com", "4242 4242 4242 4242"),
        ("di@example.com", "4000 0082 6000 0000"),
    ] {
        let (checkout, _) = open(&runtime, &link);
        pay(&runtime, &checkout, &[("email", email), ("card", card)]);
    }
    // One is refunded in part: Stripe keeps its whole fee.
    let sessions = api(&runtime, &sandbox, "/v1/checkout/sessions?limit=100");
    let sessions = sessions["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 4);
    let intent_of = |email: &str| {
        sessions
            .iter()
            .find(|s| s["customer_details"]["email"] == email)
            .and_then(|s| s["payment_intent"].as_str())
            .unwrap()
            .to_owned()
    };
    runtime.block_on(async {
        sandbox
            .client()
            .create_refund(
                &intent_of("di@example.com"),
                Some(1000),
                &shop::stripe::IdempotencyKey::random(),
            )
            .await
            .unwrap();
    });
    test.shop(&["sync", "-q"]).success().stderr_is("");

    // Stripe's published pricing for an EEA account: 1.5 % + 25 c for EEA
    // cards, 2.5 % for UK cards, 3.25 % for the rest, rounded half up.
    let fee = |rate: i64| (2400 * rate + 5_000) / 10_000 + 25;
    let (eea, uk, other) = (fee(150), fee(250), fee(325));
    assert_eq!((eea, uk, other), (61, 85, 103));
    let lines = test.ledger_lines();
    let seen: Vec<_> = lines
        .iter()
        .map(|line| {
            (
                line["email"].as_str().unwrap(),
                line["created"].as_str().unwrap(),
                line["paid"].as_str().unwrap(),
                line["fee"].as_i64().unwrap(),
                line["net"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen[0],
        (
            "ada@example.com",
            "2025-11-30T21:50:00Z",
            "2025-12-01T00:00:00Z",
            eea,
            2400 - eea
        )
    );
    assert_eq!((seen[1].3, seen[2].3, seen[3].3), (eea, other, uk));
    assert!(lines.iter().all(|line| line.get("settled_in").is_none()));

    // The report sells in the month of payment, with the fees, and a
    // total row; NET is what stays: gross less refunds and fees.
    let report = test.shop(&["report", "--by", "month"]).success();
    let gross = 4 * 2400;
    let fees = 2 * eea + uk + other;
    assert_eq!(
        report.stdout(),
        format!(
            "MONTH    COUNT  GROSS      REFUNDED   FEES      NET\n\
             2025-12  4      96.00 EUR  10.00 EUR  {}  {}\n",
            money(fees),
            money(gross - 1000 - fees),
        )
    );
    let rows = test.shop(&["report", "--json"]).success().json();
    assert_eq!(rows[0]["fees"], fees);
    assert_eq!(rows[0]["net"], gross - 1000 - fees);
    // The sums are what the sandbox's balance moved: charges less fees,
    // less the refund.
    let net_of = |txn: &Value| {
        let id = txn.as_str().unwrap();
        api(
            &runtime,
            &sandbox,
            &format!("/v1/balance_transactions/{id}"),
        )["net"]
            .as_i64()
            .unwrap()
    };
    let mut balance = 0;
    for email in [
        "ada@example.com",
        "bo@example.com",
        "cy@example.com",
        "di@example.com",
    ] {
        let intent = api(
            &runtime,
            &sandbox,
            &format!("/v1/payment_intents/{}", intent_of(email)),
        );
        let charge = intent["latest_charge"].as_str().unwrap();
        balance += net_of(
            &api(&runtime, &sandbox, &format!("/v1/charges/{charge}"))["balance_transaction"],
        );
        let refunds = api(&runtime, &sandbox, &format!("/v1/refunds?charge={charge}"));
        for refund in refunds["data"].as_array().unwrap() {
            balance += net_of(&refund["balance_transaction"]);
        }
    }
    assert_eq!(balance, gross - 1000 - fees);

    // The CSV has the day of payment, the fee and the net of each.
    let csv = test.shop(&["report", "--csv"]).success().stdout();
    assert!(
        csv.lines().any(|line| line.contains(&format!(
            ",2025-11-30T21:50:00Z,2025-12-01T00:00:00Z,ada@example.com,roads,1.0.0,,paid,24.00,,0.00,EUR,{},{},"
            , money_units(eea), money_units(2400 - eea)
        ))),
        "{csv}"
    );
    runtime.block_on(sandbox.stop());
}

/// A GET of the sandbox's API, as Stripe's would answer it.
fn api(runtime: &tokio::runtime::Runtime, sandbox: &Sandbox, path: &str) -> Value {
    runtime.block_on(async {
        let answer = sandbox
            .http()
            .get(format!("{}{path}", sandbox.url))
            .bearer_auth("sk_test_money")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        answer.json().await.unwrap()
    })
}

fn money_units(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn money(cents: i64) -> String {
    format!("{} EUR", money_units(cents))
}

#[test]
fn a_tax_code_reaches_stripe_and_an_ebook_pays_the_reduced_rate() {
    let runtime = crate::harness::runtime();
    let sandbox = runtime.block_on(Sandbox::start());
    let control =
        |path: &str, body: Value| runtime.block_on(sandbox.control(Method::POST, path, body));
    control(
        "settings",
        json!({"tax_origin": "DE", "tax_registrations": ["DE", "FR"]}),
    );
    let mut test = Test::store();
    let settings = test
        .read("shop.toml")
        .replace("automatic = false", "automatic = true")
        .replace("prices = \"exclusive\"", "prices = \"inclusive\"");
    test.write("shop.toml", &settings);

    // A code that is not one is refused before anything reaches Stripe,
    // with where to find the right one.
    test.write(
        "products/roads.toml",
        &format!("{BOOK}tax_code = \"ebook\"\n"),
    );
    test.shop(&["products", "check"]).code(1).stderr_has(&[
        "`products/roads.toml` line 5, column 12: `ebook` is not a Stripe tax code: they are `txcd_` and eight digits",
        "hint: find the code in Stripe's list, https://docs.stripe.com/tax/tax-codes (e-books sold for download to keep are `txcd_10302000` there)",
    ]);

    // The e-book code, sent with the product; the checkout says what the
    // product is taxed as, and Germany's 7 % for e-books is within the
    // price.
    let link = released(
        &mut test,
        &sandbox,
        &format!("{BOOK}tax_code = \"txcd_10302000\"\n"),
    );
    let product = runtime
        .block_on(sandbox.posted("/v1/products"))
        .pop()
        .unwrap();
    assert_eq!(product["tax_code"], "txcd_10302000");
    let (checkout, page) = open(&runtime, &link);
    assert!(
        page.contains("(txcd_10302000 · Digital Books - downloaded - non subscription - with permanent rights)"),
        "{page}"
    );
    pay(
        &runtime,
        &checkout,
        &[
            ("email", "ada@example.com"),
            ("address", "DE"),
            ("card", "4242 4242 4242 4242"),
        ],
    );
    // 2400 holds 7 %: 2400 - 2400 / 1.07 = 157.
    let ebook_tax = 2400 - (2400 * 100 + 53) / 107;
    assert_eq!(ebook_tax, 157);

    // Without a code of its own, `[tax] default_code` applies; removing
    // both leaves the account's preset, the standard rate: the product
    // at Stripe follows at the next release.
    test.write("products/roads.toml", BOOK);
    let settings = test
        .read("shop.toml")
        .replace("[tax]\n", "[tax]\ndefault_code = \"txcd_10000000\"\n");
    test.write("shop.toml", &settings);
    crate::release::commit_all(test.path(), "general code");
    let file = test.root().join("build/roads.pdf");
    std::fs::write(&file, "%PDF-1.4 old roads, fixed").unwrap();
    test.shop(&["release", "roads", "1.0.1", file.to_str().unwrap()])
        .success()
        .stderr_has(&["updated Stripe product `prod_shop_roads` (name, description, cover, page and tax code as the store has them)"]);
    let product = api(
        &runtime,
        &sandbox,
        &format!("/v1/products/{}", product_id(&test)),
    );
    assert_eq!(product["tax_code"], "txcd_10000000");
    let link = test
        .read("products/roads.toml")
        .lines()
        .filter_map(|line| line.strip_prefix("payment_link_url = \""))
        .next_back()
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let (checkout, _) = open(&runtime, &link);
    pay(
        &runtime,
        &checkout,
        &[
            ("email", "bo@example.com"),
            ("address", "DE"),
            ("card", "4242 4242 4242 4242"),
        ],
    );
    let standard_tax = 2400 - (2400 * 100 + 59) / 119;
    assert_eq!(standard_tax, 383);

    test.shop(&["sync", "-q"]).success().stderr_is("");
    let taxes: Vec<_> = test
        .ledger_lines()
        .iter()
        .map(|line| {
            (
                line["email"].as_str().unwrap().to_owned(),
                line["tax"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        taxes,
        [
            ("ada@example.com".to_owned(), ebook_tax),
            ("bo@example.com".to_owned(), standard_tax)
        ]
    );
    // A code Stripe does not know is Stripe's to refuse, and nothing is
    // recorded.
    test.write(
        "products/roads.toml",
        &format!("{BOOK}tax_code = \"txcd_12345678\"\n"),
    );
    crate::release::commit_all(test.path(), "unknown code");
    let before = test.read("products/roads.toml");
    test.shop(&["release", "roads", "1.0.2", file.to_str().unwrap()])
        .code(1)
        .stderr_has(&["No such tax code: 'txcd_12345678'"]);
    assert_eq!(test.read("products/roads.toml"), before);
    runtime.block_on(sandbox.stop());
}

fn product_id(test: &Test) -> String {
    test.read("products/roads.toml")
        .lines()
        .find_map(|line| line.strip_prefix("stripe_product = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

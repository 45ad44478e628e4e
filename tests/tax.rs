//! Tax, invoices and the buyer's consent (`[tax]`, `[consent]`): what
//! `shop release` asks of Stripe, what Stripe refuses until the account is
//! set up, purchases on the test checkout from a German, a US and a French
//! business address, and what the ledger and `shop report --by country`
//! then say.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Sandbox, Test};

const CONSENT: &str = "\n[consent]\nterms_url = \"https://books.example.com/terms\"\n";

const PRODUCT: &str = "name = \"The Field Guide\"\nprice = \"29.00\"\nfiles = [\"guide.pdf\"]\n";

fn git_status(test: &Test) -> String {
    let out = std::process::Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(test.path())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Opens the payment link on the sandbox and pays its checkout page with
/// `fields` (real form posts), with each of `cards` in turn (the last
/// answer counts); returns the answer's status and body, and the page.
fn pay_with(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    link: &str,
    fields: &[(&str, &str)],
    cards: &[&str],
) -> (StatusCode, String, String) {
    runtime.block_on(async {
        let opened = http.get(link).send().await.unwrap();
        assert_eq!(opened.status(), StatusCode::SEE_OTHER);
        let checkout = opened.headers()["location"].to_str().unwrap().to_owned();
        let page = http
            .get(&checkout)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut answer = (StatusCode::OK, String::new());
        for card in cards {
            let mut form = shop::stripe::Form::new().field("card", card);
            for (name, value) in fields {
                form = form.field(*name, *value);
            }
            let paid = http
                .post(&checkout)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.encode())
                .send()
                .await
                .unwrap();
            answer = (paid.status(), paid.text().await.unwrap());
        }
        (answer.0, answer.1, page)
    })
}

fn pay(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    link: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    pay_with(runtime, http, link, fields, &["4242 4242 4242 4242"])
}

#[test]
fn tax_invoices_and_consent_go_through_stripe_into_the_ledger_and_report() {
    let runtime = crate::harness::runtime();
    let sandbox = runtime.block_on(Sandbox::start());
    let mut test = Test::store();
    // `shop init`'s own `[tax]`, switched on; its `[consent]`, uncommented.
    let settings = test
        .read("shop.toml")
        .replace("automatic = false", "automatic = true")
        .replace("tax_id_collection = false", "tax_id_collection = true")
        .replace("invoices = false", "invoices = true")
        + CONSENT;
    test.write("shop.toml", &settings);
    test.write("products/guide.toml", PRODUCT);
    let build = test.root().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let file = build.join("guide.pdf");
    std::fs::write(&file, "%PDF-1.4 the guide").unwrap();
    crate::release::commit_all(test.path(), "tax and consent");
    test.env("SHOP_STRIPE_API_BASE", &sandbox.url);
    test.env("STRIPE_SECRET_KEY", "sk_test_tax");
    test.env("SHOP_STRIPE_ATTEMPTS", "1");
    let release = ["release", "guide", "1.0.0", file.to_str().unwrap()];

    // A fresh account has not set up Stripe Tax: refused, with the way
    // out, and nothing recorded.
    test.shop(&release).code(1).stderr_has(&[
        "Stripe refused to compute tax on `/v1/payment_links`: Stripe Tax has not been activated on your account.",
        "\nhint: set up Stripe Tax in Stripe's Dashboard (Settings → Tax: your head office and where you are registered), or set `automatic = false` under `[tax]` in shop.toml\n",
    ]);
    assert_eq!(git_status(&test), "");
    let settings = |body: Value| runtime.block_on(sandbox.control(Method::POST, "settings", body));
    // Registered in Germany only: Stripe Tax collects nowhere else.
    settings(json!({"tax_origin": "DE", "tax_registrations": ["DE"]}));
    // Nor its terms of service.
    test.shop(&release).code(1).stderr_has(&[
        "Stripe refused to ask for consent to the terms on `/v1/payment_links`: You cannot collect consent to your terms of service unless a URL is set in the Stripe Dashboard.",
        "\nhint: set your terms of service URL in Stripe's Dashboard (Settings → Business → Public details), or remove `[consent]` from shop.toml\n",
    ]);
    assert_eq!(git_status(&test), "");
    settings(json!({"terms_of_service_url": "https://books.example.com/terms"}));
    test.shop(&release).success();

    // What Stripe was asked (the conformance test checks the same
    // parameters against Stripe's OpenAPI description).
    let posted = |path: &str| -> Value {
        runtime
            .block_on(sandbox.posted(path))
            .pop()
            .unwrap_or_else(|| panic!("no {path} answered"))
    };
    assert_eq!(posted("/v1/prices")["tax_behavior"], "exclusive");
    let link = posted("/v1/payment_links");
    assert_eq!(link["automatic_tax"], json!({"enabled": "true"}));
    assert_eq!(link["billing_address_collection"], "required");
    assert_eq!(link["tax_id_collection"], json!({"enabled": "true"}));
    assert_eq!(link["invoice_creation"], json!({"enabled": "true"}));
    assert_eq!(
        link["consent_collection"],
        json!({"terms_of_service": "required"})
    );
    assert_eq!(
        link["custom_text"]["terms_of_service_acceptance"]["message"],
        "I agree to the [terms of sale](https://books.example.com/terms). I ask for the download \
         to be available at once and understand that I thereby lose my right of withdrawal."
    );

    // A checkout made by shop itself (`shop checkout`, as the server's
    // `/buy/` makes them) asks the same.
    test.shop(&["checkout", "guide"]).success();
    let session = posted("/v1/checkout/sessions");
    for key in [
        "automatic_tax",
        "billing_address_collection",
        "tax_id_collection",
        "invoice_creation",
        "consent_collection",
        "custom_text",
    ] {
        assert_eq!(session[key], link[key], "{key}");
    }

    let product = test.read("products/guide.toml");
    let url = product
        .lines()
        .find_map(|line| line.strip_prefix("payment_link_url = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The box must be ticked.
    let (status, body, page) = pay(
        &runtime,
        &http,
        &url,
        &[("email", "ada@example.com"), ("address", "DE")],
    );
    assert!(
        page.contains("href=\"https://books.example.com/terms\""),
        "{page}"
    );
    assert!(
        page.contains("name=\"address\"") && page.contains("name=\"tax_id\""),
        "{page}"
    );
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(
        body.contains("You must agree to the terms of service to continue."),
        "{body}"
    );

    // Germany: 19 % added to 29.00, once, though a declined card came
    // first.
    let terms = ("terms", "accepted");
    let (status, ..) = pay_with(
        &runtime,
        &http,
        &url,
        &[("email", "ada@example.com"), ("address", "DE"), terms],
        &["4000 0000 0000 0002", "4242 4242 4242 4242"],
    );
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Washington, where the account is not registered: no tax, as
    // Stripe Tax collects only where registered.
    let (status, ..) = pay(
        &runtime,
        &http,
        &url,
        &[("email", "bo@example.com"), ("address", "US-WA"), terms],
    );
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A French business with its VAT ID: the reverse charge, no tax.
    let (status, ..) = pay(
        &runtime,
        &http,
        &url,
        &[
            ("email", "cy@example.com"),
            ("address", "FR"),
            ("tax_id", "FR 12345678901"),
            terms,
        ],
    );
    assert_eq!(status, StatusCode::SEE_OTHER);

    test.shop(&["sync", "-q"]).success().stderr_is("");
    assert_eq!(git_status(&test), "");
    let lines = test.ledger_lines();
    let seen: Vec<_> = lines
        .iter()
        .map(|line| {
            (
                line["email"].as_str().unwrap(),
                line["country"].as_str().unwrap(),
                line["amount"].as_i64().unwrap(),
                line["tax"].as_i64().unwrap(),
                line["tax_id"].as_str(),
                line["invoice"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ada@example.com", "DE", 3451, 551, None, "SANDBOX-0001"),
            ("bo@example.com", "US", 2900, 0, None, "SANDBOX-0002"),
            (
                "cy@example.com",
                "FR",
                2900,
                0,
                Some("FR12345678901"),
                "SANDBOX-0003"
            ),
        ]
    );
    assert_eq!(lines[2]["tax_id_type"], "eu_vat");
    for line in &lines {
        // Consent given, when the buyer paid: on or after the session opened.
        let accepted = line["terms_accepted"].as_str().unwrap();
        assert!(accepted >= line["created"].as_str().unwrap(), "{line}");
    }
    // The invoice's page says what the ledger says.
    let invoice = runtime.block_on(async {
        let url = lines[2]["invoice_url"].as_str().unwrap();
        http.get(url).send().await.unwrap().text().await.unwrap()
    });
    assert!(
        invoice.contains("SANDBOX-0003") && invoice.contains("Reverse charge"),
        "{invoice}"
    );

    let report = test
        .shop(&["report", "--by", "country", "--json"])
        .success()
        .json();
    let rows: Vec<_> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["group"].as_str().unwrap().to_owned(),
                row["gross"].as_i64().unwrap(),
                row["fees"].as_i64().unwrap(),
                row["tax"].as_i64().unwrap(),
                row["net"].as_i64().unwrap(),
            )
        })
        .collect();
    // The account is German (its Stripe Tax head office) and the test card
    // American: 3.25 % + 30 ¢ of what the buyer paid, tax included.
    let fee = |paid: i64| (paid * 325 + 5_000) / 10_000 + 30;
    assert_eq!((fee(3451), fee(2900)), (142, 124));
    assert_eq!(
        rows,
        [
            ("DE".to_owned(), 3451, 142, 551, 3451 - 142 - 551),
            ("FR".to_owned(), 2900, 124, 0, 2900 - 124),
            ("US".to_owned(), 2900, 124, 0, 2900 - 124),
        ]
    );
    let text = test.shop(&["report", "--by", "country"]).success().stdout();
    assert_eq!(
        text,
        "COUNTRY  COUNT  GROSS      REFUNDED  FEES      TAX       NET\n\
         DE       1      34.51 USD  0.00 USD  1.42 USD  5.51 USD  27.58 USD\n\
         FR       1      29.00 USD  0.00 USD  1.24 USD  0.00 USD  27.76 USD\n\
         US       1      29.00 USD  0.00 USD  1.24 USD  0.00 USD  27.76 USD\n\
         TOTAL    3      92.51 USD  0.00 USD  3.90 USD  5.51 USD  83.10 USD\n"
    );
    runtime.block_on(sandbox.stop());
}

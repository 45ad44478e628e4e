//! Prices in the buyer's currency: a product priced in EUR with USD, GBP
//! and JPY options, released as one Stripe price with `currency_options`
//! (reused while unchanged), shown to each visitor in their currency,
//! paid in each through the test checkout, settled into the account's
//! EUR at the sandbox's rates, and reported per currency and `--in eur`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::served::Served;

const GUIDE: &str = "name = \"The Field Guide\"\ncurrency = \"eur\"\nprice = \"24.00\"\n\
                     prices = { usd = \"26.00\", gbp = \"21.00\", jpy = \"3900\" }\n\
                     files = [\"guide.pdf\", \"guide.epub\"]\n";

/// The front page as a visitor with this `Accept-Language` sees it.
fn front_for(served: &Served, path: &str, languages: Option<&str>) -> (String, String) {
    served.runtime.block_on(async {
        let mut request = served.http.get(format!("{}{path}", served.url));
        if let Some(languages) = languages {
            request = request.header("Accept-Language", languages);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let vary = response.headers()["vary"].to_str().unwrap().to_owned();
        (vary, response.text().await.unwrap())
    })
}

/// The price a page shows first.
fn shown_price(page: &str) -> String {
    let start = page.find("<strong class=\"price\">").expect("a price") + 22;
    page[start..].split('<').next().unwrap().to_owned()
}

#[test]
fn a_book_in_four_currencies_sells_in_each_and_reports_in_the_accounts() {
    let served = Served::start_with_store(&[], |test| {
        test.write("products/guide.toml", GUIDE);
    });
    // One price at Stripe, with its options, as the release sent them.
    let record = served.test.read("products/guide.toml");
    let price_id = record
        .lines()
        .find_map(|line| line.strip_prefix("stripe_price = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let price: Value = served.runtime.block_on(async {
        served
            .sandbox()
            .http()
            .get(format!(
                "{}/v1/prices/{price_id}?expand[]=currency_options",
                served.sandbox().url
            ))
            .bearer_auth("sk_test_serve")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(
        (&price["currency"], &price["unit_amount"]),
        (&json!("eur"), &json!(2400))
    );
    let options = &price["currency_options"];
    assert_eq!(
        [
            &options["usd"]["unit_amount"],
            &options["gbp"]["unit_amount"],
            &options["jpy"]["unit_amount"]
        ],
        [&json!(2600), &json!(2100), &json!(3900)]
    );
    // A release with the same prices finds that price again.
    let build = served.test.root().join("build");
    let files: Vec<String> = ["guide.pdf", "guide.epub"]
        .iter()
        .map(|name| build.join(name).to_str().unwrap().to_owned())
        .collect();
    served
        .test
        .shop(&["release", "guide", "1.0.1", &files[0], &files[1]])
        .success()
        .stderr_has(&[&format!(
            "Stripe price `{price_id}` for 24.00 EUR (21.00 GBP, 3900 JPY, 26.00 USD) exists"
        )]);
    served
        .test
        .shop(&["products"])
        .success()
        .stdout_has(&["24.00 EUR (also 21.00 GBP, 3900 JPY, 26.00 USD)"]);

    // Each visitor sees the price in their currency, and the others beside.
    served.wait_for("the server to read 1.0.1", || {
        front_for(&served, "/", None).1.contains("version 1.0.1")
    });
    let (vary, page) = front_for(&served, "/", Some("en-GB,en;q=0.8"));
    assert_eq!(vary, "Accept-Language");
    assert_eq!(shown_price(&page), "21.00 GBP");
    assert!(
        page.contains("(also 24.00 EUR, 3900 JPY, 26.00 USD)"),
        "{page}"
    );
    assert_eq!(
        shown_price(&front_for(&served, "/", Some("ja-JP")).1),
        "3900 JPY"
    );
    assert_eq!(
        shown_price(&front_for(&served, "/", Some("de-DE")).1),
        "24.00 EUR"
    );
    // A region the product has no price for, or none: the main currency.
    assert_eq!(
        shown_price(&front_for(&served, "/", Some("pt-BR")).1),
        "24.00 EUR"
    );
    assert_eq!(shown_price(&front_for(&served, "/", None).1), "24.00 EUR");
    let (_, chosen) = front_for(&served, "/p/guide?currency=usd", Some("en-GB"));
    assert_eq!(shown_price(&chosen), "26.00 USD");

    // The account (German) settles in EUR: the rest converts at the
    // sandbox's rates, with Stripe's conversion fee.
    served.runtime.block_on(served.sandbox().control(
        reqwest::Method::POST,
        "settings",
        json!({"country": "DE", "settle_in": "eur"}),
    ));
    // A buyer in each currency, through the test checkout: two by its
    // currency selector, one by his address (in the US: USD), one as
    // the price stands.
    let link = served.payment_link();
    let checkout = served.checkout_page(&link);
    let page = served.body(served.get(&checkout));
    assert!(
        page.contains("name=\"currency\"") && page.contains(">JPY<"),
        "{page}"
    );
    let buyers = [
        ("gbp@example.com", vec![("currency", "gbp")]),
        ("jpy@example.com", vec![("currency", "jpy")]),
        ("usd@example.com", vec![("address", "US-WA")]),
        ("eur@example.com", vec![]),
    ];
    for (email, fields) in &buyers {
        let checkout = served.checkout_page(&link);
        let mut form = vec![("email", *email), ("card", "4242 4242 4242 4242")];
        form.extend(fields.iter().copied());
        let paid = served.post_checkout(&checkout, &form);
        assert_eq!(paid.status(), StatusCode::SEE_OTHER, "{email}");
    }
    // A currency the price does not have is refused at the checkout.
    let checkout = served.checkout_page(&link);
    let refused = served.post_checkout(
        &checkout,
        &[
            ("email", "chf@example.com"),
            ("card", "4242 4242 4242 4242"),
            ("currency", "chf"),
        ],
    );
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let refusal = served.runtime.block_on(refused.text()).unwrap();
    assert!(refusal.contains("has no CHF option"), "{refusal}");

    served.test.shop(&["sync"]).success();
    let lines = served.test.ledger_lines();
    let line = |email: &str| {
        lines
            .iter()
            .find(|line| line["email"] == email)
            .unwrap()
            .clone()
    };
    for (email, currency, amount) in [
        ("gbp@example.com", "gbp", 2100),
        ("jpy@example.com", "jpy", 3900),
        ("usd@example.com", "usd", 2600),
        ("eur@example.com", "eur", 2400),
    ] {
        let line = line(email);
        assert_eq!(
            (&line["currency"], &line["amount"]),
            (&json!(currency), &json!(amount)),
            "{line}"
        );
        let settled = if currency == "eur" {
            Value::Null
        } else {
            json!("eur")
        };
        assert_eq!(line["settled_in"], settled, "{line}");
    }

    // The report keeps currencies apart, a row each.
    let rows = served.test.shop(&["report", "--json"]).success().json();
    let currencies: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["currency"].as_str().unwrap())
        .collect();
    assert_eq!(currencies, ["eur", "gbp", "jpy", "usd"]);
    // `--in eur`: what reached the bank, at Stripe's own rates: each
    // converted purchase is its balance transaction (fee plus net).
    let reached: i64 = lines
        .iter()
        .map(|line| match line["currency"] == "eur" {
            true => line["amount"].as_i64().unwrap(),
            false => line["fee"].as_i64().unwrap() + line["net"].as_i64().unwrap(),
        })
        .sum();
    let fees: i64 = lines.iter().map(|line| line["fee"].as_i64().unwrap()).sum();
    let in_eur = served
        .test
        .shop(&["report", "--in", "eur", "--json"])
        .success()
        .json();
    assert_eq!(in_eur.as_array().unwrap().len(), 1, "{in_eur}");
    assert_eq!(
        (
            &in_eur[0]["currency"],
            &in_eur[0]["count"],
            &in_eur[0]["gross"],
            &in_eur[0]["fees"],
            &in_eur[0]["net"]
        ),
        (
            &json!("eur"),
            &json!(4),
            &json!(reached),
            &json!(fees),
            &json!(reached - fees)
        )
    );
    // The sandbox's table: 26.00 USD at 0.92 is 23.92 EUR, 3,900 JPY the same.
    assert_eq!(
        line("usd@example.com")["fee"].as_i64().unwrap()
            + line("usd@example.com")["net"].as_i64().unwrap(),
        2392
    );
    // No rate from Stripe to USD: refused, with what to do.
    served
        .test
        .shop(&["report", "--in", "usd"])
        .code(1)
        .stderr_has(&[
            "Stripe gave no rate to USD for",
            "hint: run `shop report` without `--in`",
        ]);
}

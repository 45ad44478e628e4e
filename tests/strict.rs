//! The sandbox as strict as Stripe, parameter by parameter: coupons and
//! codes with their limits, a coupon applied directly, expansions and
//! listings shop's tools read, and unknown nested parameters refused (a
//! typo the sandbox took would fail at release time in production).

use reqwest::Method;
use serde_json::json;

use crate::harness::Sandbox;

/// A product sold at 20.00 USD: its price.
async fn price(sandbox: &Sandbox) -> String {
    let (_, product) = sandbox
        .api(Method::POST, "/v1/products", &[("name", "Field Guide")])
        .await;
    let product = product["id"].as_str().unwrap().to_owned();
    let (_, price) = sandbox
        .api(
            Method::POST,
            "/v1/prices",
            &[
                ("product", &product),
                ("unit_amount", "2000"),
                ("currency", "usd"),
            ],
        )
        .await;
    price["id"].as_str().unwrap().to_owned()
}

async fn session(
    sandbox: &Sandbox,
    price: &str,
    extra: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut fields = vec![
        ("mode", "payment"),
        ("line_items[0][price]", price),
        ("line_items[0][quantity]", "1"),
        ("success_url", "http://127.0.0.1:9/thanks"),
    ];
    fields.extend_from_slice(extra);
    sandbox
        .api(Method::POST, "/v1/checkout/sessions", &fields)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupons_keep_their_date_and_count_across_every_code() {
    let sandbox = Sandbox::start().await;
    let price = price(&sandbox).await;
    let now = sandbox.control(Method::GET, "clock", json!({})).await["now"]
        .as_i64()
        .unwrap();
    let (status, refused) = sandbox
        .api(
            Method::POST,
            "/v1/coupons",
            &[("percent_off", "50"), ("redeem_by", &(now - 1).to_string())],
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["param"]),
        (400, &json!("redeem_by"))
    );
    let by = (now + 86_400).to_string();
    let (status, coupon) = sandbox
        .api(
            Method::POST,
            "/v1/coupons",
            &[
                ("percent_off", "50"),
                ("redeem_by", &by),
                ("max_redemptions", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{coupon}");
    assert_eq!(
        (&coupon["redeem_by"], &coupon["max_redemptions"]),
        (&json!(now + 86_400), &json!(1))
    );
    let coupon_id = coupon["id"].as_str().unwrap();

    // A code cannot outlive its coupon.
    let (status, refused) = sandbox
        .api(
            Method::POST,
            "/v1/promotion_codes",
            &[
                ("coupon", coupon_id),
                ("code", "LATE"),
                ("expires_at", &(now + 2 * 86_400).to_string()),
            ],
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["param"]),
        (400, &json!("expires_at")),
        "{refused}"
    );

    // The coupon itself, applied to a session: half off, once in all.
    let (status, first) = session(&sandbox, &price, &[("discounts[0][coupon]", coupon_id)]).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["amount_total"], 1000);
    let paid = sandbox
        .pay(
            first["id"].as_str().unwrap(),
            "ada@example.com",
            "4242424242424242",
        )
        .await;
    assert_eq!(paid["payment_status"], "paid", "{paid}");
    let (_, used) = sandbox
        .api(Method::GET, &format!("/v1/coupons/{coupon_id}"), &[])
        .await;
    assert_eq!(
        (&used["times_redeemed"], &used["valid"]),
        (&json!(1), &json!(false)),
        "{used}"
    );
    let (status, refused) = session(&sandbox, &price, &[("discounts[0][coupon]", coupon_id)]).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum number of times"),
        "{refused}"
    );
    // A coupon that does not exist is named as a coupon; both at once, or
    // a key of neither, is refused.
    let (_, refused) = session(&sandbox, &price, &[("discounts[0][coupon]", "NOPE")]).await;
    assert_eq!(
        refused["error"]["param"], "discounts[0][coupon]",
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No such coupon"),
        "{refused}"
    );
    let (status, refused) = session(
        &sandbox,
        &price,
        &[
            ("discounts[0][coupon]", coupon_id),
            ("discounts[0][promotion_code]", "promo_x"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = session(&sandbox, &price, &[("discounts[0][coupn]", coupon_id)]).await;
    assert_eq!(
        (status, &refused["error"]["param"]),
        (400, &json!("discounts[0][coupn]")),
        "{refused}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tax_codes_are_listed_as_stripe_lists_them_and_unknown_ones_refused() {
    let sandbox = Sandbox::start().await;
    let (status, first) = sandbox
        .api(Method::GET, "/v1/tax_codes", &[("limit", "2")])
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["has_more"], true, "{first}");
    let last = first["data"][1]["id"].as_str().unwrap().to_owned();
    let (_, rest) = sandbox
        .api(
            Method::GET,
            "/v1/tax_codes",
            &[("limit", "100"), ("starting_after", &last)],
        )
        .await;
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .map(|code| code["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"txcd_10302000"), "{ids:?}");
    assert_eq!(rest["has_more"], false, "{rest}");
    let (_, ebook) = sandbox
        .api(Method::GET, "/v1/tax_codes/txcd_10302000", &[])
        .await;
    assert!(
        ebook["name"].as_str().unwrap().starts_with("Digital Books"),
        "{ebook}"
    );
    let (status, _) = sandbox
        .api(Method::GET, "/v1/tax_codes/txcd_nope", &[])
        .await;
    assert_eq!(status, 404);
    // A product with a code Stripe does not know is refused.
    let (status, refused) = sandbox
        .api(
            Method::POST,
            "/v1/products",
            &[("name", "Guide"), ("tax_code", "txcd_12345678")],
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["param"]),
        (400, &json!("tax_code")),
        "{refused}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_shops_tools_read_is_listed_and_expanded_as_stripe_does() {
    let sandbox = Sandbox::start().await;
    let price = price(&sandbox).await;
    let (_, found) = sandbox
        .api(Method::GET, &format!("/v1/prices/{price}"), &[])
        .await;
    let product = found["product"].as_str().unwrap().to_owned();
    // `applies_to` only when expanded.
    let (_, coupon) = sandbox
        .api(
            Method::POST,
            "/v1/coupons",
            &[("percent_off", "10"), ("applies_to[products][0]", &product)],
        )
        .await;
    let id = coupon["id"].as_str().unwrap();
    assert!(coupon.get("applies_to").is_none(), "{coupon}");
    let (_, expanded) = sandbox
        .api(
            Method::GET,
            &format!("/v1/coupons/{id}"),
            &[("expand[]", "applies_to")],
        )
        .await;
    assert_eq!(
        expanded["applies_to"],
        json!({"products": [product]}),
        "{expanded}"
    );

    // A payment link's line items.
    let (status, link) = sandbox
        .api(
            Method::POST,
            "/v1/payment_links",
            &[
                ("line_items[0][price]", &price),
                ("line_items[0][quantity]", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{link}");
    let (status, items) = sandbox
        .api(
            Method::GET,
            &format!(
                "/v1/payment_links/{}/line_items",
                link["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{items}");
    assert_eq!(items["data"][0]["price"]["id"], json!(price), "{items}");
    assert_eq!(items["data"][0]["amount_total"], 2000, "{items}");

    // A typo under `after_completion` is refused, as Stripe refuses it.
    let (status, refused) = sandbox
        .api(
            Method::POST,
            "/v1/payment_links",
            &[
                ("line_items[0][price]", &price),
                ("line_items[0][quantity]", "1"),
                ("after_completion[type]", "redirect"),
                (
                    "after_completion[redirect][ur]",
                    "https://books.example/thanks",
                ),
            ],
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["error"]["param"], "after_completion[redirect][ur]",
        "{refused}"
    );

    // Sessions by their buyer's email; invoices listed.
    let (_, ada) = session(&sandbox, &price, &[("invoice_creation[enabled]", "true")]).await;
    let (_, bo) = session(&sandbox, &price, &[]).await;
    sandbox
        .pay(
            ada["id"].as_str().unwrap(),
            "ada@example.com",
            "4242424242424242",
        )
        .await;
    sandbox
        .pay(
            bo["id"].as_str().unwrap(),
            "bo@example.com",
            "4242424242424242",
        )
        .await;
    let (status, hers) = sandbox
        .api(
            Method::GET,
            "/v1/checkout/sessions",
            &[("customer_details[email]", "ada@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{hers}");
    let ids: Vec<_> = hers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ids, [ada["id"].clone()], "{hers}");
    let (status, invoices) = sandbox
        .api(Method::GET, "/v1/invoices", &[("limit", "10")])
        .await;
    assert_eq!(status, 200, "{invoices}");
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1, "{invoices}");
    assert_eq!(invoices["data"][0]["status"], "paid", "{invoices}");
    sandbox.stop().await;
}

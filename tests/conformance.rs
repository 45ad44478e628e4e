//! Conformance against Stripe's own OpenAPI description: every endpoint
//! the client calls exists; every request it sends (as the sandbox logged
//! it) has only parameters the spec defines, of the right types; every
//! object the sandbox answers has the spec's shape.
//!
//! The spec is `tests/data/stripe-openapi.json`: the part of Stripe's
//! `spec3.json` (API 2024-04-10) that shop's endpoints reach, extracted by
//! `scripts/stripe-spec-subset`, which records the source's SHA-256.
//! `SHOP_STRIPE_OPENAPI` may name the whole file instead.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::TryStreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use shop::stripe::{
    CreateCheckoutSession, CreatePaymentLink, CreatePrice, CreateProduct, IdempotencyKey,
    ListCheckoutSessions,
};

use crate::harness::Sandbox;

fn spec() -> &'static Value {
    static SPEC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::env::var_os("SHOP_STRIPE_OPENAPI")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/stripe-openapi.json")
            });
        let bytes = std::fs::read(&path).unwrap_or_else(|error| {
            panic!(
                "cannot read Stripe's OpenAPI spec at `{}`: {error}; set SHOP_STRIPE_OPENAPI",
                path.display()
            )
        });
        serde_json::from_slice(&bytes).expect("the spec is JSON")
    })
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            resolve(&spec()["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The spec path template a concrete path matches, preferring literals.
fn template_of(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut best: Option<(usize, String)> = None;
    for template in spec()["paths"].as_object().unwrap().keys() {
        let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literals = 0;
        let matches = parts.iter().zip(&segments).all(|(part, segment)| {
            if part.starts_with('{') {
                true
            } else {
                literals += 1;
                part == segment
            }
        });
        if matches && best.as_ref().is_none_or(|(count, _)| literals > *count) {
            best = Some((literals, template.clone()));
        }
    }
    best.map(|(_, template)| template)
}

/// Checks a form parameter (string leaves, nested objects and arrays).
fn check_param(schema: &Value, value: &Value, name: &str, errors: &mut Vec<String>) {
    let schema = resolve(schema);
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let fits = branches.iter().any(|branch| {
            let mut scratch = Vec::new();
            check_param(branch, value, name, &mut scratch);
            scratch.is_empty()
        });
        if !fits {
            errors.push(format!(
                "parameter `{name}` = {value} fits none of the spec's forms"
            ));
        }
        return;
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object");
    match value {
        Value::String(text) => {
            let fits = match kind {
                "string" => schema
                    .get("enum")
                    .and_then(Value::as_array)
                    .is_none_or(|values| values.iter().any(|v| v == text)),
                "integer" => text.parse::<i64>().is_ok(),
                "number" => text.parse::<f64>().is_ok(),
                "boolean" => text == "true" || text == "false",
                _ => false,
            };
            if !fits {
                errors.push(format!(
                    "parameter `{name}` = `{text}` is not a valid {kind}"
                ));
            }
        }
        Value::Object(map) => {
            if kind != "object" {
                errors.push(format!(
                    "parameter `{name}` is an object, the spec wants {kind}"
                ));
                return;
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, inner) in map {
                let child = format!("{name}[{key}]");
                match (
                    properties.and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(property), _) => check_param(property, inner, &child, errors),
                    (None, Some(extra)) if extra.is_object() => {
                        check_param(extra, inner, &child, errors)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    _ => errors.push(format!("parameter `{child}` is not in the spec")),
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let required = required.as_str().unwrap_or_default();
                if !map.contains_key(required) {
                    errors.push(format!(
                        "parameter `{name}[{required}]` is required by the spec"
                    ));
                }
            }
        }
        Value::Array(items) => {
            if kind != "array" {
                errors.push(format!(
                    "parameter `{name}` is a list, the spec wants {kind}"
                ));
                return;
            }
            for (index, item) in items.iter().enumerate() {
                check_param(&schema["items"], item, &format!("{name}[{index}]"), errors);
            }
        }
        other => errors.push(format!("parameter `{name}` = {other} is not form data")),
    }
}

/// Checks a response value against a schema: types, required fields,
/// enums, and no field the schema does not define.
fn check_value(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("`{at}` is null but not nullable"));
        }
        return;
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let mut best: Option<Vec<String>> = None;
        for branch in branches {
            let mut scratch = Vec::new();
            check_value(branch, value, at, &mut scratch);
            if scratch.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| scratch.len() < b.len()) {
                best = Some(scratch);
            }
        }
        errors.extend(best.unwrap_or_else(|| vec![format!("`{at}` fits no branch")]));
        return;
    }
    let kind = schema.get("type").and_then(Value::as_str);
    let fits = match (kind, value) {
        (Some("string"), Value::String(text)) => {
            if let Some(values) = schema.get("enum").and_then(Value::as_array)
                && !values.iter().any(|v| v == text)
            {
                errors.push(format!(
                    "`{at}` = `{text}` is not one of {}",
                    Value::Array(values.clone())
                ));
            }
            true
        }
        (Some("integer"), Value::Number(number)) => number.is_i64() || number.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("array"), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                check_value(&schema["items"], item, &format!("{at}[{index}]"), errors);
            }
            true
        }
        (Some("object") | None, Value::Object(map)) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, inner) in map {
                let child = format!("{at}.{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(property), _) => check_value(property, inner, &child, errors),
                    (None, Some(extra)) if extra.is_object() => {
                        check_value(extra, inner, &child, errors)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if properties.is_none() => {}
                    _ => errors.push(format!("`{child}` is not in the spec")),
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let required = required.as_str().unwrap_or_default();
                if !map.contains_key(required) {
                    errors.push(format!(
                        "`{at}.{required}` is required by the spec but missing"
                    ));
                }
            }
            true
        }
        _ => false,
    };
    if !fits {
        errors.push(format!(
            "`{at}` = {value} is not of type {}",
            kind.unwrap_or("object")
        ));
    }
}

/// Checks one logged request and its answer; returns what is wrong.
fn check_exchange(entry: &Value) -> Vec<String> {
    let method = entry["method"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let path = entry["path"].as_str().unwrap_or_default();
    let mut errors = Vec::new();
    let Some(template) = template_of(path) else {
        return vec![format!("{method} {path}: no such path in the spec")];
    };
    let operation = &spec()["paths"][&template][&method];
    if operation.is_null() {
        return vec![format!(
            "{method} {template}: no such operation in the spec"
        )];
    }
    let params = entry["params"].as_object().cloned().unwrap_or_default();
    if method == "get" {
        let declared = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (name, value) in &params {
            match declared
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == name.as_str())
            {
                Some(parameter) => check_param(&parameter["schema"], value, name, &mut errors),
                None => errors.push(format!("query parameter `{name}` is not in the spec")),
            }
        }
    } else {
        let schema =
            &operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
        check_param(schema, &Value::Object(params), "", &mut errors);
        for error in &mut errors {
            *error = error.replace("`[", "`").replacen(']', "", 1);
        }
    }
    let status = entry["status"].as_u64().unwrap_or(0);
    let responses = &operation["responses"];
    let response_schema = if status == 200 {
        &responses["200"]
    } else {
        &responses["default"]
    };
    let schema = &response_schema["content"]["application/json"]["schema"];
    check_value(schema, &entry["response"], "response", &mut errors);
    errors
        .into_iter()
        .map(|error| format!("{} {template} ({status}): {error}", method.to_uppercase()))
        .collect()
}

#[test]
fn every_endpoint_the_client_calls_is_in_the_spec() {
    for (method, template) in shop::stripe::ENDPOINTS {
        assert!(
            !spec()["paths"][template][method].is_null(),
            "{method} {template} is not an operation of Stripe's API"
        );
    }
    assert_eq!(
        spec()["info"]["version"],
        shop::stripe::API_VERSION,
        "the pinned Stripe-Version is not the spec's"
    );
}

#[test]
fn the_checker_catches_mismatches() {
    // The checks must be able to fail: a made-up parameter, a wrong type,
    // a missing required field and an unknown field are all caught.
    let bad_request = json!({
        "method": "POST", "path": "/v1/products", "status": 200,
        "params": {"name": "x", "colour": "red", "active": "maybe"},
        "response": {"id": "prod_1", "object": "product", "active": "yes", "surprise": 1},
    });
    let errors = check_exchange(&bad_request).join("\n");
    for expected in [
        "parameter `colour` is not in the spec",
        "parameter `active` = `maybe` is not a valid boolean",
        "`response.active` = \"yes\" is not of type boolean",
        "`response.surprise` is not in the spec",
        "`response.created` is required by the spec but missing",
    ] {
        assert!(errors.contains(expected), "lacks {expected:?} in\n{errors}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_and_answer_matches_the_spec() {
    let sandbox = Sandbox::start().await;
    let client = sandbox.client();
    let now = sandbox.control(Method::GET, "clock", json!({})).await["now"]
        .as_i64()
        .unwrap();
    let sold = catalogue(&client).await;
    let paid = checkouts(&sandbox, &client, &sold, now).await;
    tax_and_invoices(&sandbox, &client, &sold).await;
    free_and_delayed(&sandbox, &client, &sold).await;
    let intent = refunds_disputes_and_events(&sandbox, &client, &paid, now).await;
    strict_parameters(&sandbox, &sold, now).await;
    errors_of_stripes_shape(&client, &intent).await;
    every_exchange_matches(&sandbox).await;
    sandbox.stop().await;
}

/// What the scenario sells: a product, its price, a link to it.
struct Sold {
    product: String,
    price: String,
    link: String,
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A POST as the dashboard (not shop's client) makes it.
async fn stripe_post(sandbox: &Sandbox, path: &str, form: shop::stripe::Form) -> Value {
    sandbox
        .http()
        .post(format!("{}{path}", sandbox.url))
        .bearer_auth("sk_test_harness")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.encode())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Products (made, read, updated, cleared), prices (fixed and chosen), a
/// payment link (made, read, listed, turned off).
async fn catalogue(client: &shop::stripe::Client) -> Sold {
    // Every method of the client, with every optional parameter set.
    let product = client
        .create_product(
            &CreateProduct {
                id: Some("prod_shop_guide".into()),
                name: "Guide".into(),
                description: Some("A book".into()),
                images: vec!["https://books.example/cover/guide".into()],
                url: Some("https://books.example/p/guide".into()),
                tax_code: Some("txcd_10302000".into()),
                metadata: meta(&[("slug", "guide")]),
            },
            &IdempotencyKey::derived(&["product"]),
        )
        .await
        .unwrap();
    let read = client.product(&product.id).await.unwrap().unwrap();
    assert_eq!(read.tax_code.as_deref(), Some("txcd_10302000"));
    assert!(client.product("prod_missing").await.unwrap().is_none());
    // Updated with new text and image, then with none (cleared).
    let updated = client
        .update_product(
            &product.id,
            &CreateProduct {
                name: "Guide, second edition".into(),
                description: Some("A book, again".into()),
                images: vec!["https://books.example/cover/guide-2".into()],
                url: Some("https://books.example/p/guide".into()),
                ..CreateProduct::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.images, ["https://books.example/cover/guide-2"]);
    let cleared = client
        .update_product(
            &product.id,
            &CreateProduct {
                name: "Guide".into(),
                ..CreateProduct::default()
            },
        )
        .await
        .unwrap();
    assert!(cleared.images.is_empty() && cleared.description.is_none() && cleared.url.is_none());
    assert!(cleared.tax_code.is_none());
    let price = client
        .create_price(
            &CreatePrice {
                product: product.id.clone(),
                unit_amount: 2900,
                custom_unit_amount: None,
                currency: "eur".into(),
                tax_behavior: None,
                // Sold in three more currencies (manual currency prices).
                currency_options: [("usd", 3100), ("gbp", 2500), ("jpy", 4600)]
                    .map(|(currency, unit_amount)| shop::stripe::CurrencyOption {
                        currency: currency.into(),
                        unit_amount,
                        custom_unit_amount: None,
                    })
                    .to_vec(),
                metadata: meta(&[("version", "1.0.0")]),
            },
            &IdempotencyKey::derived(&["price"]),
        )
        .await
        .unwrap();
    // Pay what you want: the buyer chooses, from a minimum and a preset.
    let chosen = client
        .create_price(
            &CreatePrice {
                product: product.id.clone(),
                unit_amount: 0,
                custom_unit_amount: Some(shop::stripe::CustomUnitAmount {
                    minimum: Some(500),
                    maximum: None,
                    preset: Some(1200),
                }),
                currency: "eur".into(),
                tax_behavior: None,
                currency_options: vec![shop::stripe::CurrencyOption {
                    currency: "gbp".into(),
                    unit_amount: 0,
                    custom_unit_amount: Some(shop::stripe::CustomUnitAmount {
                        minimum: Some(400),
                        maximum: None,
                        preset: Some(1000),
                    }),
                }],
                metadata: meta(&[("version", "1.0.0")]),
            },
            &IdempotencyKey::derived(&["price", "chosen"]),
        )
        .await
        .unwrap();
    assert_eq!(chosen.unit_amount, None);
    assert_eq!(
        chosen
            .custom_unit_amount
            .map(|custom| (custom.minimum, custom.preset)),
        Some((Some(500), Some(1200)))
    );
    let _: Vec<_> = client.prices(&product.id).try_collect().await.unwrap();
    let link = client
        .create_payment_link(
            &CreatePaymentLink {
                price: price.id.clone(),
                redirect_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}"
                    .into(),
                allow_promotion_codes: true,
                options: Default::default(),
                metadata: meta(&[("product", "guide"), ("version", "1.0.0")]),
            },
            &IdempotencyKey::derived(&["link"]),
        )
        .await
        .unwrap();
    client.payment_link(&link.id).await.unwrap().unwrap();
    // A gift's link: its custom fields and mark, as `shop release` makes it.
    let gift_link = client
        .create_payment_link(
            &CreatePaymentLink {
                price: price.id.clone(),
                redirect_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}"
                    .into(),
                allow_promotion_codes: true,
                options: shop::stripe::CheckoutOptions {
                    custom_fields: shop::gift::fields(),
                    ..Default::default()
                },
                metadata: shop::gift::mark(meta(&[("product", "guide"), ("version", "1.0.0")])),
            },
            &IdempotencyKey::derived(&["link", "gift"]),
        )
        .await
        .unwrap();
    let active: Vec<_> = client.active_payment_links().try_collect().await.unwrap();
    assert_eq!(active.len(), 2);
    client
        .set_payment_link_active(&gift_link.id, false)
        .await
        .unwrap();
    client
        .set_payment_link_active(&link.id, false)
        .await
        .unwrap();
    Sold {
        product: product.id,
        price: price.id,
        link: link.id,
    }
}

/// Sessions paid with a card, a promotion code found by its code, an
/// upgrade's single-use code; listed and expanded. Returns the first,
/// paid session.
async fn checkouts(
    sandbox: &Sandbox,
    client: &shop::stripe::Client,
    sold: &Sold,
    now: i64,
) -> shop::stripe::CheckoutSession {
    // A cart: a price and an amount chosen before checkout, its lines read
    // back.
    let cart = client
        .create_checkout_session(
            &CreateCheckoutSession {
                lines: vec![
                    shop::stripe::SessionLine::Price(sold.price.clone()),
                    shop::stripe::SessionLine::Amount {
                        product: sold.product.clone(),
                        currency: "eur".into(),
                        unit_amount: 700,
                        tax_behavior: Some("exclusive".into()),
                    },
                ],
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                metadata: meta(&[("cart", "guide@1.0.0 guide@1.0.0")]),
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    let lines: Vec<shop::stripe::LineItem> = client
        .checkout_session_line_items(&cart.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines.len(), 2);
    let session = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: sold.price.clone(),
                lines: Vec::new(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                cancel_url: Some("https://books.example/".into()),
                customer_email: Some("ada@example.com".into()),
                client_reference_id: Some("ref-1".into()),
                expires_at: Some(now + 3600),
                promotion_code: None,
                allow_promotion_codes: true,
                options: Default::default(),
                metadata: meta(&[
                    ("product", "guide"),
                    ("version", "1.0.0"),
                    ("utm_source", "newsletter"),
                ]),
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    sandbox
        .pay(&session.id, "ada@example.com", "4242424242424242")
        .await;
    // A coupon and its promotion code (as the dashboard would make them), found by code.
    let coupon: serde_json::Value = stripe_post(
        sandbox,
        "/v1/coupons",
        shop::stripe::Form::new()
            .field("percent_off", 25)
            .field("name", "Launch"),
    )
    .await;
    stripe_post(
        sandbox,
        "/v1/promotion_codes",
        shop::stripe::Form::new()
            .field("coupon", coupon["id"].as_str().unwrap())
            .field("code", "LAUNCH"),
    )
    .await;
    let promotion = client.promotion_code("LAUNCH").await.unwrap().unwrap();
    let discounted = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: sold.price.clone(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                promotion_code: Some(promotion.id.clone()),
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    assert_eq!(discounted.amount_total, Some(2175));
    assert!(client.promotion_code("NOPE").await.unwrap().is_none());
    // An upgrade: a coupon for this product only, a single-use code that
    // expires, as `shop notify` makes them; used once, then refused.
    let upgrade = shop::stripe::CreateCoupon {
        id: "shop-upgrade-guide-2.0.0-50".into(),
        percent_off: 50,
        name: Some("Upgrade to 2.0.0".into()),
        products: vec![sold.product.clone()],
    };
    assert!(client.coupon(&upgrade.id).await.unwrap().is_none());
    client
        .create_coupon(&upgrade, &IdempotencyKey::derived(&["coupon"]))
        .await
        .unwrap();
    let coupon = client.coupon(&upgrade.id).await.unwrap().unwrap();
    assert_eq!(coupon.percent_off, Some(50.0));
    let code = client
        .create_promotion_code(
            &shop::stripe::CreatePromotionCode {
                coupon: coupon.id.clone(),
                code: "UP0123456789AB".into(),
                max_redemptions: Some(1),
                expires_at: Some(now + 30 * 86_400),
                metadata: meta(&[("upgrade_from", "cs_test_earlier")]),
            },
            &IdempotencyKey::derived(&["promotion_code"]),
        )
        .await
        .unwrap();
    assert!(code.usable(now) && !code.usable(now + 30 * 86_400));
    let upgrading = shop::stripe::CreateCheckoutSession {
        price: sold.price.clone(),
        success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
        promotion_code: Some(code.id.clone()),
        ..CreateCheckoutSession::default()
    };
    let upgraded = client
        .create_checkout_session(&upgrading, &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(upgraded.amount_total, Some(1450));
    sandbox
        .pay(&upgraded.id, "ada@example.com", "4242424242424242")
        .await;
    let used = client
        .promotion_code_by_id(&code.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((used.times_redeemed, used.usable(now)), (1, false));
    let again = client
        .create_checkout_session(&upgrading, &IdempotencyKey::random())
        .await;
    assert!(
        again
            .as_ref()
            .is_err_and(|error| error.to_string().contains("maximum number of times")),
        "{again:?}"
    );
    let paid = client.checkout_session(&session.id).await.unwrap().unwrap();
    let filter = ListCheckoutSessions {
        created_gte: Some(now - 10),
        created_lt: Some(now + 10),
        status: Some("complete".into()),
        payment_intent: paid.payment_intent_id().map(str::to_owned),
        limit: Some(5),
        expand: vec!["total_details.breakdown".into()],
    };
    let listed: Vec<_> = client
        .checkout_sessions(&filter)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    // A code typed (here: given) shows in the breakdown, by its id.
    sandbox
        .pay(&discounted.id, "ada@example.com", "4242424242424242")
        .await;
    let expanded = client
        .checkout_session_expanded(
            &discounted.id,
            &[
                "total_details.breakdown",
                "line_items",
                "payment_intent.latest_charge",
            ],
        )
        .await
        .unwrap()
        .unwrap();
    let code = expanded.promotion_code_id().unwrap().to_owned();
    assert_eq!(
        client
            .promotion_code_by_id(&code)
            .await
            .unwrap()
            .unwrap()
            .code,
        "LAUNCH"
    );
    let _: Vec<_> = client
        .checkout_session_line_items(&session.id)
        .try_collect()
        .await
        .unwrap();
    paid
}

/// Stripe Tax, a VAT ID, an invoice and consent, once the account is set up.
async fn tax_and_invoices(sandbox: &Sandbox, client: &shop::stripe::Client, sold: &Sold) {
    // Tax, a business's VAT ID, an invoice and the consent to the terms,
    // once the account has set up Stripe Tax and its terms.
    sandbox
        .control(
            Method::POST,
            "settings",
            json!({
                "tax_origin": "DE",
                "tax_registrations": ["DE", "FR"],
                "terms_of_service_url": "https://books.example/terms",
            }),
        )
        .await;
    let taxed_price = client
        .create_price(
            &CreatePrice {
                product: sold.product.clone(),
                unit_amount: 2900,
                currency: "eur".into(),
                tax_behavior: Some("inclusive".into()),
                ..CreatePrice::default()
            },
            &IdempotencyKey::derived(&["price", "taxed"]),
        )
        .await
        .unwrap();
    // The box for the seller's news is Stripe's for US accounts only.
    sandbox
        .control(Method::POST, "settings", json!({"country": "US"}))
        .await;
    let options = shop::stripe::CheckoutOptions {
        automatic_tax: true,
        billing_address: true,
        tax_id_collection: true,
        invoice_creation: true,
        terms_consent: Some("I agree to the [terms](https://books.example/terms).".into()),
        promotions_consent: true,
        custom_fields: Vec::new(),
    };
    client
        .create_payment_link(
            &CreatePaymentLink {
                price: taxed_price.id.clone(),
                redirect_url: "https://books.example/thanks".into(),
                options: options.clone(),
                ..CreatePaymentLink::default()
            },
            &IdempotencyKey::derived(&["link", "taxed"]),
        )
        .await
        .unwrap();
    let taxed = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: taxed_price.id.clone(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                options,
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    let answer = sandbox
        .control(
            Method::POST,
            &format!("checkout/sessions/{}/complete", taxed.id),
            json!({"email": "ada@example.com", "card": "4242424242424242", "address": "FR",
                   "tax_id": "FR12345678901", "accept_terms": true}),
        )
        .await;
    assert_eq!(answer["status"], "complete", "{answer}");
    sandbox
        .control(Method::POST, "settings", json!({"country": null}))
        .await;
    let taxed = client
        .checkout_session_expanded(
            &taxed.id,
            &["total_details.breakdown", "payment_intent", "invoice"],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(taxed.accepted_terms());
    assert_eq!(taxed.country(), Some("FR"));
    // The box for the seller's news is for US buyers: a French one is not
    // asked, and gives no answer.
    assert_eq!(taxed.promotions(), None);
    // Custom fields (a gift's recipient and message): asked, answered at
    // the checkout, read back from the session.
    // The fields shop's gifts ask (`shop::gift::fields`).
    let gift_fields = shop::gift::fields();
    let gift = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: taxed_price.id.clone(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                options: shop::stripe::CheckoutOptions {
                    custom_fields: gift_fields.clone(),
                    ..Default::default()
                },
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    // Required and left empty: refused, as the page refuses it.
    let refused = sandbox
        .control(
            Method::POST,
            &format!("checkout/sessions/{}/complete", gift.id),
            json!({"email": "ada@example.com", "card": "4242424242424242"}),
        )
        .await;
    assert!(refused["error"].is_object(), "{refused}");
    let answer = sandbox
        .control(
            Method::POST,
            &format!("checkout/sessions/{}/complete", gift.id),
            json!({"email": "ada@example.com", "card": "4242424242424242",
                   "custom_fields": {"giftrecipient": "eve@example.com", "giftdate": "2027-01-0"}}),
        )
        .await;
    // A day of nine characters is refused by the field's minimum.
    assert!(answer["error"].is_object(), "{answer}");
    let answer = sandbox
        .control(
            Method::POST,
            &format!("checkout/sessions/{}/complete", gift.id),
            json!({"email": "ada@example.com", "card": "4242424242424242",
                   "custom_fields": {"giftrecipient": "eve@example.com"}}),
        )
        .await;
    assert_eq!(answer["status"], "complete", "{answer}");
    let gift = client.checkout_session(&gift.id).await.unwrap().unwrap();
    assert_eq!(gift.custom_field("giftrecipient"), Some("eve@example.com"));
    assert_eq!(gift.custom_field("giftmessage"), None);
    // Stripe's limits: a fourth field is refused.
    let four = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: taxed_price.id.clone(),
                success_url: "https://books.example/thanks".into(),
                options: shop::stripe::CheckoutOptions {
                    custom_fields: ["a", "b", "c", "d"]
                        .map(|key| shop::stripe::CustomField {
                            key: key.into(),
                            ..gift_fields[0].clone()
                        })
                        .to_vec(),
                    ..Default::default()
                },
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await;
    assert!(four.is_err());
    let invoice = taxed.invoice.as_ref().and_then(|i| i.object()).unwrap();
    assert_eq!(invoice.number.as_deref(), Some("SANDBOX-0001"));
    let fetched = sandbox
        .http()
        .get(format!("{}/v1/invoices/{}", sandbox.url, invoice.id))
        .bearer_auth("sk_test_harness")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
}

/// A no-cost order, a bank debit settled later, webhook endpoints.
async fn free_and_delayed(sandbox: &Sandbox, client: &shop::stripe::Client, sold: &Sold) {
    // A 100 % code: a no-cost order, no payment intent.
    let free: serde_json::Value = stripe_post(
        sandbox,
        "/v1/coupons",
        shop::stripe::Form::new().field("percent_off", 100),
    )
    .await;
    stripe_post(
        sandbox,
        "/v1/promotion_codes",
        shop::stripe::Form::new()
            .field("coupon", free["id"].as_str().unwrap())
            .field("code", "REVIEW"),
    )
    .await;
    let review = client.promotion_code("review").await.unwrap().unwrap();
    let gift = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: sold.price.clone(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                promotion_code: Some(review.id.clone()),
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    let given = sandbox.pay(&gift.id, "critic@example.com", "").await;
    assert_eq!(given["payment_status"], "no_payment_required");
    // A bank debit: complete and unpaid, paid once it settles.
    let debit = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: sold.price.clone(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    sandbox
        .control(Method::POST, "settings", json!({"async_payment_delay": 0}))
        .await;
    let unpaid = sandbox
        .control(
            Method::POST,
            &format!("checkout/sessions/{}/complete", debit.id),
            json!({"email": "eve@example.com", "iban": "DE89370400440532013000"}),
        )
        .await;
    assert_eq!(unpaid["payment_status"], "unpaid");
    // Refunded before it settles: Stripe holds the refund pending until
    // the payment settles, and it succeeds with it.
    let early = client
        .create_refund(
            unpaid["payment_intent"].as_str().unwrap(),
            None,
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    assert_eq!(early.status.as_deref(), Some("pending"));
    // A debit that will fail: its refund is canceled with it.
    let failing = client
        .create_checkout_session(
            &CreateCheckoutSession {
                price: sold.price.clone(),
                success_url: "https://books.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                ..CreateCheckoutSession::default()
            },
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    let bounced = sandbox
        .control(
            Method::POST,
            &format!("checkout/sessions/{}/complete", failing.id),
            json!({"email": "ivo@example.com", "iban": "DE62370400440532013001"}),
        )
        .await;
    let doomed = client
        .create_refund(
            bounced["payment_intent"].as_str().unwrap(),
            None,
            &IdempotencyKey::random(),
        )
        .await
        .unwrap();
    assert_eq!(doomed.status.as_deref(), Some("pending"));
    sandbox.control(Method::POST, "settle", json!({})).await;
    let settled = client.checkout_session(&debit.id).await.unwrap().unwrap();
    assert_eq!(settled.payment_status, "paid");
    let refund_status = |id: &str| {
        let id = id.to_owned();
        async move {
            let refunds: Vec<_> = client.refunds(None).try_collect().await.unwrap();
            refunds
                .into_iter()
                .find(|refund| refund.id == id)
                .and_then(|refund| refund.status)
        }
    };
    assert_eq!(refund_status(&early.id).await.as_deref(), Some("succeeded"));
    assert_eq!(refund_status(&doomed.id).await.as_deref(), Some("canceled"));
    // Webhook endpoints as the dashboard makes them.
    stripe_post(
        sandbox,
        "/v1/webhook_endpoints",
        shop::stripe::Form::new()
            .field("url", "https://books.example/stripe/webhook")
            .field("enabled_events[0]", "checkout.session.completed")
            .field("api_version", "2024-04-10"),
    )
    .await;
    let endpoints: Vec<_> = client.webhook_endpoints().try_collect().await.unwrap();
    assert_eq!(endpoints[0].api_version.as_deref(), Some("2024-04-10"));
}

/// Refunds (one left pending, then failed), a dispute, the events they
/// make. Returns the refunded payment.
async fn refunds_disputes_and_events(
    sandbox: &Sandbox,
    client: &shop::stripe::Client,
    paid: &shop::stripe::CheckoutSession,
    now: i64,
) -> shop::stripe::PaymentIntent {
    let intent = client
        .payment_intent(paid.payment_intent_id().unwrap())
        .await
        .unwrap()
        .unwrap();
    client
        .charge(intent.latest_charge_id().unwrap())
        .await
        .unwrap()
        .unwrap();
    client
        .create_refund(&intent.id, Some(100), &IdempotencyKey::random())
        .await
        .unwrap();
    // A refund left pending, then failed.
    sandbox
        .control(Method::POST, "settings", json!({"refunds_pending": true}))
        .await;
    let pending = client
        .create_refund(&intent.id, Some(200), &IdempotencyKey::random())
        .await
        .unwrap();
    assert_eq!(pending.status.as_deref(), Some("pending"));
    sandbox
        .control(
            Method::POST,
            &format!("refunds/{}/fail", pending.id),
            json!({}),
        )
        .await;
    let of_charge: Vec<_> = client
        .refunds_of_charge(intent.latest_charge_id().unwrap())
        .try_collect()
        .await
        .unwrap();
    assert!(
        of_charge
            .iter()
            .any(|r| r.status.as_deref() == Some("failed"))
    );
    sandbox
        .control(
            Method::POST,
            "disputes",
            json!({"payment_intent": intent.id}),
        )
        .await;
    let _: Vec<_> = client.refunds(Some(now - 10)).try_collect().await.unwrap();
    let _: Vec<_> = client.disputes(Some(now - 10)).try_collect().await.unwrap();
    let events: Vec<_> = client
        .events(
            &["checkout.session.completed", "charge.refunded"],
            Some(now - 10),
        )
        .try_collect()
        .await
        .unwrap();
    client.event(&events[0].id).await.unwrap().unwrap();
    intent
}

/// What the strict sandbox takes as Stripe does: a coupon's date and
/// count, a coupon applied directly, an expansion, a link's line items,
/// invoices, sessions by their buyer's email.
async fn strict_parameters(sandbox: &Sandbox, sold: &Sold, now: i64) {
    let later = (now + 86_400).to_string();
    let (_, coupon) = sandbox
        .api(
            Method::POST,
            "/v1/coupons",
            &[
                ("percent_off", "20"),
                ("redeem_by", &later),
                ("max_redemptions", "5"),
            ],
        )
        .await;
    let coupon = coupon["id"].as_str().unwrap().to_owned();
    sandbox
        .api(
            Method::GET,
            &format!("/v1/coupons/{coupon}"),
            &[("expand[]", "applies_to")],
        )
        .await;
    sandbox
        .api(
            Method::POST,
            "/v1/checkout/sessions",
            &[
                ("mode", "payment"),
                ("line_items[0][price]", &sold.price),
                ("line_items[0][quantity]", "1"),
                ("success_url", "http://127.0.0.1:9/thanks"),
                ("discounts[0][coupon]", &coupon),
            ],
        )
        .await;
    sandbox
        .api(
            Method::GET,
            &format!("/v1/payment_links/{}/line_items", sold.link),
            &[],
        )
        .await;
    sandbox
        .api(Method::GET, "/v1/invoices", &[("limit", "3")])
        .await;
    sandbox
        .api(Method::GET, "/v1/tax_codes", &[("limit", "3")])
        .await;
    sandbox
        .api(Method::GET, "/v1/tax_codes/txcd_10302000", &[])
        .await;
    sandbox
        .api(
            Method::GET,
            "/v1/checkout/sessions",
            &[("customer_details[email]", "ada@example.com")],
        )
        .await;
}

/// Errors have Stripe's shape too.
async fn errors_of_stripes_shape(
    client: &shop::stripe::Client,
    intent: &shop::stripe::PaymentIntent,
) {
    let _ = client
        .create_product(
            &CreateProduct {
                name: "Other".into(),
                ..CreateProduct::default()
            },
            &IdempotencyKey::derived(&["product"]),
        )
        .await;
    let _ = client
        .create_refund(&intent.id, Some(1_000_000), &IdempotencyKey::random())
        .await;
}

/// Every request the sandbox logged has only the spec's parameters, every
/// answer and event object the spec's shape; every endpoint of the client
/// was called, and some answers were errors.
async fn every_exchange_matches(sandbox: &Sandbox) {
    let client = sandbox.client();
    let all_events: Vec<_> = client.events(&[], None).try_collect().await.unwrap();
    let log = sandbox.control(Method::GET, "requests", json!({})).await;
    let log = log.as_array().unwrap();
    assert!(
        log.len() >= 20,
        "the scenario made only {} requests",
        log.len()
    );
    let mut errors: Vec<String> = log.iter().flat_map(check_exchange).collect();

    // The scenario exercised every endpoint the client has.
    for (method, template) in shop::stripe::ENDPOINTS {
        let exercised = log.iter().any(|entry| {
            entry["method"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(method))
                && template_of(entry["path"].as_str().unwrap_or_default()).as_deref()
                    == Some(*template)
        });
        assert!(
            exercised,
            "the conformance scenario never calls {method} {template}"
        );
    }

    // Each event's object has the shape of its own type.
    for event in &all_events {
        let object = &event.data.object;
        let kind = object["object"].as_str().unwrap_or_default();
        let schema = json!({"$ref": format!("#/components/schemas/{kind}")});
        let mut found = Vec::new();
        check_value(
            &schema,
            object,
            &format!("{}.data.object", event.kind),
            &mut found,
        );
        errors.extend(found);
    }
    let statuses: Vec<u64> = log
        .iter()
        .filter_map(|entry| entry["status"].as_u64())
        .collect();
    assert!(
        statuses.contains(&404) && statuses.contains(&400),
        "the scenario made no error answers: {statuses:?}"
    );
    errors.sort();
    errors.dedup();
    assert!(
        errors.is_empty(),
        "{} mismatches with Stripe's spec:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

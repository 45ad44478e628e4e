//! Products and prices as Stripe makes and updates them: images, URL, tax
//! code, metadata, a currency's rules, pay-what-you-want amounts.

use super::ApiError;
use super::objects::{self, new_id};
use super::params::{Params, leaf_int};
use super::state::State;
use serde_json::{Value, json};

/// A product's `images`, as Stripe takes them: at most 8 URLs, each http(s)
/// and at most 2,048 characters; an empty value (on update) clears them.
fn product_images(params: &Params) -> Result<Option<Value>, ApiError> {
    let images: Vec<String> = match params.get("images") {
        None => return Ok(None),
        Some(Value::String(empty)) if empty.is_empty() => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid("images", "Invalid array"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::invalid("images", "Invalid array")),
    };
    if images.len() > 8 {
        return Err(ApiError::invalid(
            "images",
            "You may only specify up to 8 images for a product.",
        ));
    }
    for image in &images {
        if image.len() > 2048 || !(image.starts_with("https://") || image.starts_with("http://")) {
            return Err(ApiError::invalid("images", "Invalid URL"));
        }
    }
    Ok(Some(json!(images)))
}

/// A product's `url`: an http(s) URL; empty (on update) clears it.
fn product_url(params: &Params) -> Result<Option<Value>, ApiError> {
    match params.get("url").and_then(Value::as_str) {
        None => Ok(None),
        Some("") => Ok(Some(Value::Null)),
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(Some(json!(url)))
        }
        Some(_) => Err(ApiError::invalid("url", "Invalid URL")),
    }
}

/// A product's `tax_code`: one of the codes the sandbox knows
/// (`tax::TAX_CODES`), as Stripe accepts only codes of its list; an empty
/// value unsets it.
fn product_tax_code(params: &Params) -> Result<Option<Value>, ApiError> {
    match params.get("tax_code").and_then(Value::as_str) {
        None => Ok(None),
        Some("") => Ok(Some(Value::Null)),
        Some(code) if super::tax::tax_code_name(code).is_some() => Ok(Some(json!(code))),
        Some(code) => Err(ApiError::invalid(
            "tax_code",
            &format!("No such tax code: '{code}'"),
        )),
    }
}

pub(super) fn create_product(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    params.only(&[
        "active",
        "description",
        "id",
        "images",
        "metadata",
        "name",
        "tax_code",
        "url",
    ])?;
    let name = params.required_str("name")?;
    let metadata = params.metadata()?;
    let id = match params.str("id") {
        Some(id) => {
            if state.get(id).is_some() {
                return Err(ApiError::already_exists("Product"));
            }
            id.to_owned()
        }
        None => new_id("prod_"),
    };
    let images = product_images(params)?;
    let url = product_url(params)?;
    let tax_code = product_tax_code(params)?;
    let mut product = objects::product(&id, name, params.str("description"), metadata, state.now());
    if let Some(tax_code) = tax_code {
        product["tax_code"] = tax_code;
    }
    if let Some(active) = params.bool("active")? {
        product["active"] = json!(active);
    }
    if let Some(images) = images {
        product["images"] = images;
    }
    if let Some(url) = url {
        product["url"] = url;
    }
    Ok(state.insert(product))
}

pub(super) fn update_product(
    state: &mut State,
    params: &Params,
    id: &str,
) -> Result<Value, ApiError> {
    params.only(&[
        "active",
        "description",
        "images",
        "metadata",
        "name",
        "tax_code",
        "url",
    ])?;
    state.find("product", id, "id")?;
    let active = params.bool("active")?;
    let images = product_images(params)?;
    let url = product_url(params)?;
    let tax_code = product_tax_code(params)?;
    let metadata = params
        .get("metadata")
        .map(|_| params.metadata())
        .transpose()?;
    let now = state.now();
    let name = params.str("name").map(str::to_owned);
    // An empty description unsets it, as Stripe's empty values do.
    let description = params
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(state
        .update(id, |product| {
            if let Some(active) = active {
                product["active"] = json!(active);
            }
            if let Some(name) = name {
                product["name"] = json!(name);
            }
            if let Some(description) = description {
                // An empty value unsets, as Stripe's do.
                product["description"] = match description.as_str() {
                    "" => Value::Null,
                    _ => json!(description),
                };
            }
            if let Some(images) = images {
                product["images"] = images;
            }
            if let Some(url) = url {
                product["url"] = url;
            }
            if let Some(tax_code) = tax_code {
                product["tax_code"] = tax_code;
            }
            if let Some(metadata) = metadata {
                merge_metadata(&mut product["metadata"], metadata);
            }
            product["updated"] = json!(now);
        })
        .unwrap_or_default())
}

/// Stripe merges metadata on update; an empty value removes a key.
pub(super) fn merge_metadata(target: &mut Value, update: Value) {
    if let (Value::Object(target), Value::Object(update)) = (target, update) {
        for (key, value) in update {
            target.insert(key, value);
        }
    }
}

pub(super) fn currency_param(params: &Params) -> Result<String, ApiError> {
    let currency = params.required_str("currency")?.to_ascii_lowercase();
    if !super::rules::is_currency(&currency) {
        return Err(ApiError::invalid(
            "currency",
            &format!("Invalid currency: {currency}."),
        ));
    }
    Ok(currency)
}

pub(super) fn create_price(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    params.only(&[
        "active",
        "currency",
        "lookup_key",
        "metadata",
        "nickname",
        "product",
        "unit_amount",
        "custom_unit_amount",
        "currency_options",
        "tax_behavior",
    ])?;
    let product = params.required_str("product")?;
    let tax_behavior = match params.str("tax_behavior") {
        None => "unspecified",
        Some(behavior @ ("exclusive" | "inclusive" | "unspecified")) => behavior,
        Some(other) => {
            return Err(ApiError::invalid(
                "tax_behavior",
                &format!(
                    "Invalid tax_behavior: must be one of exclusive, inclusive, or unspecified ({other})"
                ),
            ));
        }
    };
    state.find("product", product, "product")?;
    let currency = currency_param(params)?;
    let custom = custom_unit_amount(
        params.get("custom_unit_amount"),
        "custom_unit_amount",
        &currency,
    )?;
    let amount = match (params.int("unit_amount")?, &custom) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "You may only specify one of these parameters: custom_unit_amount, unit_amount.",
                None,
            ));
        }
        (Some(amount), None) => amount,
        (None, Some(_)) => 0,
        (None, None) => return Err(ApiError::missing("unit_amount")),
    };
    if !(0..=99_999_999).contains(&amount) {
        return Err(ApiError::invalid(
            "unit_amount",
            "This value must be greater than or equal to 0 and less than or equal to 99999999.",
        ));
    }
    let options = currency_options(params, &currency, custom.is_some(), tax_behavior)?;
    let metadata = params.metadata()?;
    let mut price = objects::price(
        &new_id("price_"),
        product,
        amount,
        &currency,
        metadata,
        state.now(),
    );
    if let Some(active) = params.bool("active")? {
        price["active"] = json!(active);
    }
    if let Some(custom) = custom {
        price["unit_amount"] = Value::Null;
        price["unit_amount_decimal"] = Value::Null;
        price["custom_unit_amount"] = custom;
    }
    price["tax_behavior"] = json!(tax_behavior);
    if !options.is_empty() {
        price["currency_options"] = Value::Object(options);
    }
    price["lookup_key"] = json!(params.str("lookup_key"));
    price["nickname"] = json!(params.str("nickname"));
    Ok(shown_price(state.insert(price), false))
}

/// `currency_options[<currency>][unit_amount|custom_unit_amount|tax_behavior]`:
/// the price in other currencies (Stripe's multi-currency prices), each a
/// currency Stripe charges in other than the price's own, each of the
/// price's kind (a fixed amount, or the buyer's choice with its own
/// range), with the price's tax behavior. The wording of the refusals
/// Stripe's pages do not give is the sandbox's.
fn currency_options(
    params: &Params,
    main: &str,
    custom: bool,
    tax_behavior: &str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut options = serde_json::Map::new();
    let Some(given) = params.get("currency_options") else {
        return Ok(options);
    };
    let Value::Object(given) = given else {
        return Err(ApiError::invalid("currency_options", "Invalid hash"));
    };
    for (code, option) in given {
        let name = format!("currency_options[{code}]");
        let code = code.to_ascii_lowercase();
        if !super::rules::is_currency(&code) {
            return Err(ApiError::invalid(
                &name,
                &format!("Invalid currency: {code}."),
            ));
        }
        if code == main {
            return Err(ApiError::invalid(
                &name,
                &format!("The currency option {code} is the price's own currency."),
            ));
        }
        let Value::Object(fields) = option else {
            return Err(ApiError::invalid(&name, "Invalid hash"));
        };
        if let Some(unknown) = fields.keys().find(|key| {
            ![
                "unit_amount",
                "custom_unit_amount",
                "tax_behavior",
                "unit_amount_decimal",
                "tiers",
            ]
            .contains(&key.as_str())
        }) {
            return Err(ApiError::invalid_request(
                &format!("Received unknown parameter: {name}[{unknown}]"),
                Some(&format!("{name}[{unknown}]")),
            ));
        }
        let option_custom = custom_unit_amount(
            fields.get("custom_unit_amount"),
            &format!("{name}[custom_unit_amount]"),
            &code,
        )?;
        let amount = leaf_int(fields.get("unit_amount"), &format!("{name}[unit_amount]"))?;
        let (unit_amount, option_custom) = match (amount, option_custom, custom) {
            (Some(amount), None, false) => {
                if !(0..=99_999_999).contains(&amount) {
                    return Err(ApiError::invalid(
                        &format!("{name}[unit_amount]"),
                        "This value must be greater than or equal to 0 and less than or equal to 99999999.",
                    ));
                }
                (json!(amount), Value::Null)
            }
            (None, Some(chosen), true) => (Value::Null, chosen),
            (Some(_), Some(_), _) => {
                return Err(ApiError::invalid_request(
                    &format!(
                        "You may only specify one of these parameters: {name}[custom_unit_amount], {name}[unit_amount]."
                    ),
                    None,
                ));
            }
            (_, _, true) => {
                return Err(ApiError::invalid(
                    &format!("{name}[custom_unit_amount]"),
                    "Every currency option of a price whose customer chooses the amount needs a custom_unit_amount.",
                ));
            }
            (_, _, false) => return Err(ApiError::missing(&format!("{name}[unit_amount]"))),
        };
        let behavior = match fields.get("tax_behavior").and_then(Value::as_str) {
            None => tax_behavior,
            Some(behavior @ ("exclusive" | "inclusive" | "unspecified")) => {
                if behavior != tax_behavior && tax_behavior != "unspecified" {
                    return Err(ApiError::invalid(
                        &format!("{name}[tax_behavior]"),
                        "A currency option's tax_behavior must be the price's.",
                    ));
                }
                behavior
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    &format!("{name}[tax_behavior]"),
                    &format!(
                        "Invalid tax_behavior: must be one of exclusive, inclusive, or unspecified ({other})"
                    ),
                ));
            }
        };
        options.insert(
            code,
            json!({
                "custom_unit_amount": option_custom,
                "tax_behavior": behavior,
                "unit_amount": unit_amount,
                "unit_amount_decimal": unit_amount.as_i64().map(|amount| amount.to_string()),
            }),
        );
    }
    Ok(options)
}

/// A price as an answer shows it: `currency_options` only when asked
/// (`expand[]=currency_options`), as Stripe includes it.
pub(super) fn shown_price(mut price: Value, expanded: bool) -> Value {
    if !expanded && let Some(fields) = price.as_object_mut() {
        fields.remove("currency_options");
    }
    price
}

/// `custom_unit_amount[enabled|minimum|maximum|preset]` (named `name`),
/// checked as Stripe documents it: `enabled` required, a minimum at least
/// the currency's smallest charge, a preset between the minimum and
/// maximum.
fn custom_unit_amount(
    custom: Option<&Value>,
    name: &str,
    currency: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(custom) = custom else {
        return Ok(None);
    };
    let Value::Object(fields) = custom else {
        return Err(ApiError::invalid(name, "Invalid hash"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !["enabled", "minimum", "maximum", "preset"].contains(&key.as_str()))
    {
        return Err(ApiError::invalid_request(
            &format!("Received unknown parameter: {name}[{unknown}]"),
            Some(&format!("{name}[{unknown}]")),
        ));
    }
    let enabled = super::params::leaf_bool(fields.get("enabled"), &format!("{name}[enabled]"))?
        .ok_or_else(|| ApiError::missing(&format!("{name}[enabled]")))?;
    if !enabled {
        return Err(ApiError::invalid(
            &format!("{name}[enabled]"),
            &format!("{name}[enabled] must be true; to disable it, omit {name}."),
        ));
    }
    let minimum = leaf_int(fields.get("minimum"), &format!("{name}[minimum]"))?;
    let maximum = leaf_int(fields.get("maximum"), &format!("{name}[maximum]"))?;
    let preset = leaf_int(fields.get("preset"), &format!("{name}[preset]"))?;
    for (field, amount) in [
        ("minimum", minimum),
        ("maximum", maximum),
        ("preset", preset),
    ] {
        if let Some(amount) = amount
            && let Some(refusal) = super::rules::charge_refusal(amount, currency)
        {
            return Err(ApiError::invalid(&format!("{name}[{field}]"), &refusal));
        }
    }
    if let (Some(minimum), Some(maximum)) = (minimum, maximum)
        && minimum > maximum
    {
        return Err(ApiError::invalid(
            &format!("{name}[minimum]"),
            "The minimum must be less than or equal to the maximum.",
        ));
    }
    if let Some(preset) = preset
        && (minimum.is_some_and(|minimum| preset < minimum)
            || maximum.is_some_and(|maximum| preset > maximum))
    {
        return Err(ApiError::invalid(
            &format!("{name}[preset]"),
            "The preset must be between the minimum and the maximum.",
        ));
    }
    Ok(Some(
        json!({ "minimum": minimum, "maximum": maximum, "preset": preset }),
    ))
}

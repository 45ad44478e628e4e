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
    let custom = custom_unit_amount(params, &currency)?;
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
    price["lookup_key"] = json!(params.str("lookup_key"));
    price["nickname"] = json!(params.str("nickname"));
    Ok(state.insert(price))
}

/// `custom_unit_amount[enabled|minimum|maximum|preset]`, checked as
/// Stripe documents it: `enabled` required, a minimum at least the
/// currency's smallest charge, a preset between the minimum and maximum.
fn custom_unit_amount(params: &Params, currency: &str) -> Result<Option<Value>, ApiError> {
    let Some(custom) = params.get("custom_unit_amount") else {
        return Ok(None);
    };
    let Value::Object(fields) = custom else {
        return Err(ApiError::invalid("custom_unit_amount", "Invalid hash"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !["enabled", "minimum", "maximum", "preset"].contains(&key.as_str()))
    {
        return Err(ApiError::invalid_request(
            &format!("Received unknown parameter: custom_unit_amount[{unknown}]"),
            Some(&format!("custom_unit_amount[{unknown}]")),
        ));
    }
    let enabled = super::params::leaf_bool(fields.get("enabled"), "custom_unit_amount[enabled]")?
        .ok_or_else(|| ApiError::missing("custom_unit_amount[enabled]"))?;
    if !enabled {
        return Err(ApiError::invalid(
            "custom_unit_amount[enabled]",
            "custom_unit_amount[enabled] must be true; to disable it, omit custom_unit_amount.",
        ));
    }
    let minimum = leaf_int(fields.get("minimum"), "custom_unit_amount[minimum]")?;
    let maximum = leaf_int(fields.get("maximum"), "custom_unit_amount[maximum]")?;
    let preset = leaf_int(fields.get("preset"), "custom_unit_amount[preset]")?;
    for (name, amount) in [
        ("minimum", minimum),
        ("maximum", maximum),
        ("preset", preset),
    ] {
        if let Some(amount) = amount
            && let Some(refusal) = super::rules::charge_refusal(amount, currency)
        {
            return Err(ApiError::invalid(
                &format!("custom_unit_amount[{name}]"),
                &refusal,
            ));
        }
    }
    if let (Some(minimum), Some(maximum)) = (minimum, maximum)
        && minimum > maximum
    {
        return Err(ApiError::invalid(
            "custom_unit_amount[minimum]",
            "The minimum must be less than or equal to the maximum.",
        ));
    }
    if let Some(preset) = preset
        && (minimum.is_some_and(|minimum| preset < minimum)
            || maximum.is_some_and(|maximum| preset > maximum))
    {
        return Err(ApiError::invalid(
            "custom_unit_amount[preset]",
            "The preset must be between the minimum and the maximum.",
        ));
    }
    Ok(Some(
        json!({ "minimum": minimum, "maximum": maximum, "preset": preset }),
    ))
}

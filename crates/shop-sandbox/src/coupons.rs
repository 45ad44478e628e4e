//! Coupons and promotion codes as the API reference describes them.

use super::ApiError;
use super::catalog::currency_param;
use super::objects::{self, new_id};
use super::params::Params;
use super::state::State;
use serde_json::{Value, json};

pub(super) fn create_coupon(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    params.only(&[
        "amount_off",
        "applies_to",
        "currency",
        "duration",
        "id",
        "max_redemptions",
        "metadata",
        "name",
        "percent_off",
        "redeem_by",
    ])?;
    // "Date after which the coupon can no longer be redeemed", and how
    // many times in all, across every code and customer.
    let redeem_by = params.int("redeem_by")?;
    if redeem_by.is_some_and(|at| at <= state.now()) {
        return Err(ApiError::invalid(
            "redeem_by",
            "The `redeem_by` timestamp must be in the future.",
        ));
    }
    let max_redemptions = params.int("max_redemptions")?;
    if max_redemptions.is_some_and(|max| max < 1) {
        return Err(ApiError::invalid(
            "max_redemptions",
            "This value must be greater than or equal to 1.",
        ));
    }
    // A one-off payment takes a coupon of any duration; `repeating` needs
    // its months, which only subscriptions use: not modelled.
    let duration = params.str("duration").unwrap_or("once");
    if !["once", "forever"].contains(&duration) {
        return Err(ApiError::invalid(
            "duration",
            &format!(
                "Invalid duration: must be one of forever, once, or repeating (the sandbox takes `once` and `forever`); got {duration}"
            ),
        ));
    }
    // `applies_to[products][]`: the products the coupon discounts.
    let products: Option<Vec<String>> = match params.get("applies_to") {
        None => None,
        Some(applies) => {
            if let Some(unknown) = applies
                .as_object()
                .and_then(|fields| fields.keys().find(|key| *key != "products"))
            {
                return Err(ApiError::invalid(
                    &format!("applies_to[{unknown}]"),
                    &format!("Received unknown parameter: applies_to[{unknown}]"),
                ));
            }
            let listed = match &applies["products"] {
                Value::Array(items) => items.clone(),
                Value::Object(items) => items.values().cloned().collect(),
                _ => Vec::new(),
            };
            let mut products = Vec::new();
            for item in listed {
                let id = item.as_str().unwrap_or_default().to_owned();
                state.find("product", &id, "applies_to[products]")?;
                products.push(id);
            }
            Some(products)
        }
    };
    if let Some(id) = params.str("id")
        && state.get(id).is_some()
    {
        return Err(ApiError::already_exists("Coupon"));
    }
    let percent_off = match params.str("percent_off") {
        Some(text) => Some(
            text.parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .ok_or_else(|| ApiError::invalid("percent_off", "Invalid decimal"))?,
        ),
        None => None,
    };
    let amount_off = params.int("amount_off")?;
    let currency = if amount_off.is_some() {
        Some(currency_param(params)?)
    } else {
        None
    };
    if percent_off.is_some() == amount_off.is_some() {
        return Err(ApiError::invalid_request(
            "You must pass exactly one of `percent_off` or `amount_off`.",
            Some("percent_off"),
        ));
    }
    let id = params.str("id").map_or_else(|| new_id(""), str::to_owned);
    let mut coupon = objects::coupon(
        &id,
        percent_off,
        amount_off,
        currency.as_deref(),
        params.str("name"),
        params.metadata()?,
        state.now(),
    );
    coupon["duration"] = json!(duration);
    coupon["redeem_by"] = json!(redeem_by);
    coupon["max_redemptions"] = json!(max_redemptions);
    // Stripe shows `applies_to` only when expanded; it is kept apart.
    if let Some(products) = products {
        state.coupon_products.insert(id.clone(), products);
    }
    Ok(state.insert(coupon))
}

pub(super) fn create_promotion_code(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    params.only(&[
        "active",
        "code",
        "coupon",
        "expires_at",
        "max_redemptions",
        "metadata",
    ])?;
    let coupon = state
        .find("coupon", params.required_str("coupon")?, "coupon")?
        .clone();
    let max_redemptions = params.int("max_redemptions")?;
    if max_redemptions.is_some_and(|max| max < 1) {
        return Err(ApiError::invalid(
            "max_redemptions",
            "This value must be greater than or equal to 1.",
        ));
    }
    let expires_at = params.int("expires_at")?;
    if expires_at.is_some_and(|at| at <= state.now()) {
        return Err(ApiError::invalid(
            "expires_at",
            "The `expires_at` timestamp must be in the future.",
        ));
    }
    // "If the coupon has specified a redeems_by, then this value cannot be
    // after the coupon's redeems_by."
    if let (Some(at), Some(by)) = (expires_at, coupon["redeem_by"].as_i64())
        && at > by
    {
        return Err(ApiError::invalid(
            "expires_at",
            "The promotion code's `expires_at` cannot be after its coupon's `redeem_by`.",
        ));
    }
    if coupon["valid"] != json!(true) {
        return Err(ApiError::invalid(
            "coupon",
            "This coupon is no longer valid: it cannot be redeemed.",
        ));
    }
    let code = match params.str("code") {
        // Letters and digits; unique, whatever the case, among active codes.
        Some(code)
            if code.is_empty()
                || code.len() > 500
                || !code.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            return Err(ApiError::invalid(
                "code",
                "Promotion codes may contain only letters (a-z, A-Z) and digits (0-9).",
            ));
        }
        Some(code)
            if state.all("promotion_code").iter().any(|promo| {
                promo["active"] == json!(true)
                    && promo["code"]
                        .as_str()
                        .is_some_and(|known| known.eq_ignore_ascii_case(code))
            }) =>
        {
            return Err(ApiError::invalid(
                "code",
                &format!("An active promotion code with `code: {code}` already exists."),
            ));
        }
        Some(code) => code.to_owned(),
        None => new_id("")
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase(),
    };
    let active = params.bool("active")?.unwrap_or(true);
    let mut promo = objects::promotion_code(
        &new_id("promo_"),
        &code,
        coupon,
        active,
        params.metadata()?,
        state.now(),
    );
    promo["max_redemptions"] = json!(max_redemptions);
    promo["expires_at"] = json!(expires_at);
    Ok(state.insert(promo))
}

/// `GET /v1/coupons/{id}`: `applies_to` shows only when expanded.
pub(super) fn get_coupon(state: &State, params: &Params, id: &str) -> Result<Value, ApiError> {
    params.only(&["expand"])?;
    let mut coupon = state.find("coupon", id, "coupon")?.clone();
    for field in super::params::expansions(params, false)? {
        match field.as_str() {
            "applies_to" => {
                let products = state.coupon_products.get(id).cloned().unwrap_or_default();
                coupon["applies_to"] = json!({ "products": products });
            }
            other => {
                return Err(ApiError::invalid_request(
                    &format!("This property cannot be expanded ({other})."),
                    None,
                ));
            }
        }
    }
    Ok(coupon)
}

/// Whether a coupon may still be redeemed: before its `redeem_by`, and
/// not yet redeemed `max_redemptions` times (across all its codes).
pub(super) fn coupon_valid(state: &State, coupon: &Value, param: &str) -> Result<(), ApiError> {
    let coupon = state
        .get(coupon["id"].as_str().unwrap_or_default())
        .unwrap_or(coupon);
    if coupon["redeem_by"]
        .as_i64()
        .is_some_and(|by| by <= state.now())
    {
        return Err(ApiError::invalid(param, "This coupon has expired."));
    }
    if let Some(max) = coupon["max_redemptions"].as_i64()
        && coupon["times_redeemed"].as_i64().unwrap_or(0) >= max
    {
        return Err(ApiError::invalid(
            param,
            "This coupon has been redeemed the maximum number of times.",
        ));
    }
    Ok(())
}

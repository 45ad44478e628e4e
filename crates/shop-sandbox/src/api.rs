//! The sandbox's API endpoints: what Stripe does for each request `shop`
//! makes, with Stripe's validation and errors.

use super::catalog::{create_price, create_product, merge_metadata, update_product};
use super::coupons::{create_coupon, create_promotion_code};
use serde_json::{Value, json};

use warp::http::Method;

use super::ApiError;
use super::objects::{self, new_id};
use super::params::{Params, expansions, leaf_int, metadata, only_keys};
use super::sessions::{NewSession, apply_discount, new_session};
use super::state::State;

/// What a request's handler needs besides the state and its parameters.
#[derive(Debug)]
pub struct Context<'a> {
    /// The sandbox's URL, for hosted pages.
    pub base_url: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// Webhook endpoints events go to (0 or 1).
    pub webhooks: i64,
}

/// One arm per Stripe endpoint the sandbox answers: a route table reads
/// best whole, so it stays one function longer than 150 lines.
pub fn dispatch(
    state: &mut State,
    context: &Context<'_>,
    method: &Method,
    path: &str,
    params: &Params,
) -> Result<Value, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match segments.as_slice() {
        ["v1", "products"] if post => create_product(state, params),
        ["v1", "products"] if get => {
            params.only(&[
                "active",
                "created",
                "ending_before",
                "limit",
                "starting_after",
            ])?;
            let active = params.bool("active")?;
            state.list("product", params, path, |product| {
                active.is_none_or(|a| product["active"] == a)
            })
        }
        ["v1", "products", id] if get => state.find("product", id, "id").cloned(),
        ["v1", "products", id] if post => update_product(state, params, id),
        ["v1", "prices"] if post => create_price(state, params),
        ["v1", "prices"] if get => {
            params.only(&[
                "active",
                "created",
                "currency",
                "ending_before",
                "limit",
                "product",
                "starting_after",
                "type",
                "expand",
            ])?;
            let options = price_options_expanded(params, true)?;
            let active = params.bool("active")?;
            let product = params.str("product").map(str::to_owned);
            let currency = params.str("currency").map(str::to_owned);
            let mut list = state.list("price", params, path, |price| {
                active.is_none_or(|a| price["active"] == a)
                    && product.as_deref().is_none_or(|p| price["product"] == p)
                    && currency.as_deref().is_none_or(|c| price["currency"] == c)
            })?;
            if let Some(data) = list["data"].as_array_mut() {
                for price in data.iter_mut() {
                    *price = super::catalog::shown_price(price.take(), options);
                }
            }
            Ok(list)
        }
        ["v1", "prices", id] if get => {
            params.only(&["expand"])?;
            let options = price_options_expanded(params, false)?;
            let price = state.find("price", id, "price")?.clone();
            Ok(super::catalog::shown_price(price, options))
        }
        ["v1", "payment_links"] if post => create_payment_link(state, context, params),
        ["v1", "payment_links"] if get => {
            params.only(&["active", "ending_before", "limit", "starting_after"])?;
            let active = params.bool("active")?;
            state.list("payment_link", params, path, |link| {
                active.is_none_or(|a| link["active"] == a)
            })
        }
        ["v1", "payment_links", id] if get => {
            state.find("payment_link", id, "payment_link").cloned()
        }
        ["v1", "payment_links", id] if post => update_payment_link(state, params, id),
        ["v1", "payment_links", id, "line_items"] if get => {
            params.only(&["ending_before", "limit", "starting_after"])?;
            let link = state.find("payment_link", id, "payment_link")?;
            let price = state
                .payment_link_prices
                .get(link["id"].as_str().unwrap_or_default())
                .and_then(|price| state.get(price))
                .cloned()
                .unwrap_or_default();
            let name = price["product"]
                .as_str()
                .and_then(|product| state.get(product))
                .and_then(|product| product["name"].as_str())
                .unwrap_or("Product")
                .to_owned();
            let item = objects::line_item(&price, &name, 1);
            Ok(json!({"object": "list", "data": [item], "has_more": false, "url": path}))
        }
        ["v1", "checkout", "sessions"] if post => create_session(state, context, params),
        ["v1", "checkout", "sessions"] if get => {
            let mut list = list_sessions(state, context, params, path)?;
            let expand = expansions(params, true)?;
            if let Some(sessions) = list["data"].as_array_mut() {
                for session in sessions {
                    expand_session(state, session, &expand)?;
                }
            }
            Ok(list)
        }
        ["v1", "checkout", "sessions", id] if get => {
            params.only(&["expand"])?;
            super::sessions::expire_if_due(state, id, context.webhooks);
            let mut session = state.find("checkout.session", id, "session")?.clone();
            expand_session(state, &mut session, &expansions(params, false)?)?;
            Ok(session)
        }
        ["v1", "checkout", "sessions", id, "line_items"] if get => {
            params.only(&["ending_before", "limit", "starting_after"])?;
            state.find("checkout.session", id, "session")?;
            let items = state.line_items.get(*id).cloned().unwrap_or_default();
            Ok(json!({"object": "list", "data": items, "has_more": false, "url": path}))
        }
        ["v1", "checkout", "sessions", id, "expire"] if post => expire_session(state, context, id),
        ["v1", "payment_intents", id] if get => state.find("payment_intent", id, "intent").cloned(),
        ["v1", "charges", id] if get => state.find("charge", id, "charge").cloned(),
        ["v1", "balance_transactions", id] if get => state
            .find("balance_transaction", id, "balance_transaction")
            .cloned(),
        ["v1", "tax_codes"] if get => super::tax::list_tax_codes(params, path),
        ["v1", "tax_codes", id] if get => {
            params.only(&["expand"])?;
            super::tax::tax_code(id).ok_or_else(|| ApiError::no_such("tax_code", id, "id"))
        }
        ["v1", "invoices"] if get => {
            params.only(&[
                "created",
                "customer",
                "ending_before",
                "limit",
                "starting_after",
                "status",
            ])?;
            let status = params.str("status").map(str::to_owned);
            let customer = params.str("customer").map(str::to_owned);
            state.list("invoice", params, path, |invoice| {
                status.as_deref().is_none_or(|s| invoice["status"] == s)
                    && customer.as_deref().is_none_or(|c| invoice["customer"] == c)
            })
        }
        ["v1", "invoices", id] if get => state.find("invoice", id, "invoice").cloned(),
        ["v1", "refunds"] if post => create_refund(state, context, params),
        ["v1", "refunds"] if get => list_of_payment(state, "refund", params, path),
        ["v1", "refunds", id] if get => state.find("refund", id, "refund").cloned(),
        ["v1", "disputes"] if get => list_of_payment(state, "dispute", params, path),
        ["v1", "disputes", id] if get => state.find("dispute", id, "dispute").cloned(),
        ["v1", "events"] if get => {
            params.only(&[
                "created",
                "delivery_success",
                "ending_before",
                "limit",
                "starting_after",
                "type",
                "types",
            ])?;
            let kind = params.str("type").map(str::to_owned);
            let types: Option<Vec<String>> = match params.get("types") {
                Some(Value::Array(types)) => Some(
                    types
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect(),
                ),
                Some(_) => return Err(ApiError::invalid("types", "Invalid array")),
                None => None,
            };
            if kind.is_some() && types.is_some() {
                return Err(ApiError::invalid_request(
                    "You may only specify one of these parameters: type, types.",
                    Some("type"),
                ));
            }
            state.list("event", params, path, |event| {
                let event_type = event["type"].as_str().unwrap_or_default();
                kind.as_deref().is_none_or(|k| type_matches(k, event_type))
                    && types
                        .as_ref()
                        .is_none_or(|types| types.iter().any(|k| type_matches(k, event_type)))
            })
        }
        ["v1", "events", id] if get => state.find("event", id, "id").cloned(),
        ["v1", "coupons"] if post => create_coupon(state, params),
        ["v1", "coupons", id] if get => super::coupons::get_coupon(state, params, id),
        ["v1", "promotion_codes"] if post => create_promotion_code(state, params),
        ["v1", "promotion_codes"] if get => {
            params.only(&[
                "active",
                "code",
                "coupon",
                "created",
                "ending_before",
                "limit",
                "starting_after",
            ])?;
            let active = params.bool("active")?;
            let code = params.str("code").map(str::to_owned);
            // Codes are case-insensitive: `launch` finds `LAUNCH`.
            state.list("promotion_code", params, path, |promo| {
                active.is_none_or(|a| promo["active"] == a)
                    && code.as_deref().is_none_or(|c| {
                        promo["code"]
                            .as_str()
                            .is_some_and(|known| known.eq_ignore_ascii_case(c))
                    })
            })
        }
        ["v1", "promotion_codes", id] if get => {
            state.find("promotion_code", id, "promotion_code").cloned()
        }
        ["v1", "webhook_endpoints"] if post => create_webhook_endpoint(state, params),
        ["v1", "webhook_endpoints"] if get => {
            params.only(&["ending_before", "limit", "starting_after"])?;
            state.list("webhook_endpoint", params, path, |_| true)
        }
        ["v1", "webhook_endpoints", id] if get => state
            .find("webhook_endpoint", id, "webhook_endpoint")
            .cloned(),
        _ => Err(ApiError::unrecognized(method, path)),
    }
}

/// Refunds or disputes, optionally of one `charge` or `payment_intent`.
fn list_of_payment(
    state: &State,
    kind: &str,
    params: &Params,
    path: &str,
) -> Result<Value, ApiError> {
    params.only(&[
        "charge",
        "created",
        "ending_before",
        "limit",
        "payment_intent",
        "starting_after",
    ])?;
    let charge = params.str("charge").map(str::to_owned);
    let intent = params.str("payment_intent").map(str::to_owned);
    state.list(kind, params, path, |object| {
        charge.as_deref().is_none_or(|c| object["charge"] == c)
            && intent
                .as_deref()
                .is_none_or(|p| object["payment_intent"] == p)
    })
}

/// Event type filters take `*` as a wildcard: `charge.*`.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// A payment link's `line_items`: one line of one active price (the
/// sandbox's links sell one; Stripe's take up to 20). Returns the price.
fn line_items(state: &State, params: &Params) -> Result<Value, ApiError> {
    let items = match params.get("line_items") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(ApiError::invalid("line_items", "Invalid array")),
        None => return Err(ApiError::missing("line_items")),
    };
    if items.len() > 1 {
        return Err(ApiError::invalid(
            "line_items",
            "The sandbox's payment links sell one line item (shop's links sell one product).",
        ));
    }
    let (line, _) = line_item(state, &items[0], 0, false)?;
    match line {
        Line::Price(price) => Ok(price),
        Line::Inline(_) => unreachable!("a payment link's line takes no price_data"),
    }
}

/// The most line items a Checkout Session in payment mode takes.
const MOST_LINES: usize = 100;

/// A Checkout Session's `line_items`: up to 100 lines, each an active
/// `price` or an inline `price_data` (a product's, with its `currency`,
/// `unit_amount` and `tax_behavior`), and a `quantity`; every line in one
/// currency; a customer-chosen price (`custom_unit_amount`) only as the
/// session's one line ("Let customers decide what to pay": such a
/// Checkout Session has one line item). Returns each line's price (an
/// inline one not yet stored) and quantity, all checked before anything
/// is made.
fn session_lines(state: &State, params: &Params) -> Result<Vec<(Line, i64)>, ApiError> {
    let items = match params.get("line_items") {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        Some(Value::Object(indexed)) if !indexed.is_empty() => indexed.values().cloned().collect(),
        Some(_) => return Err(ApiError::invalid("line_items", "Invalid array")),
        None => return Err(ApiError::missing("line_items")),
    };
    if items.len() > MOST_LINES {
        return Err(ApiError::invalid(
            "line_items",
            "A Checkout Session in payment mode takes at most 100 line items.",
        ));
    }
    let mut lines = Vec::new();
    for (index, item) in items.iter().enumerate() {
        lines.push(line_item(state, item, index, true)?);
    }
    let currency = lines[0].0.price()["currency"].clone();
    for (index, (line, _)) in lines.iter().enumerate() {
        if line.price()["currency"] != currency {
            return Err(ApiError::invalid(
                &format!("line_items[{index}]"),
                "All line items must be in the same currency.",
            ));
        }
        if lines.len() > 1 && line.price()["custom_unit_amount"].is_object() {
            return Err(ApiError::invalid(
                &format!("line_items[{index}][price]"),
                "A price whose amount the customer chooses (custom_unit_amount) can only be the \
                 one line item of a Checkout Session.",
            ));
        }
    }
    Ok(lines)
}

/// A line's price: a stored one, or an inline one (`price_data`) to store
/// once the whole request is checked.
pub(super) enum Line {
    Price(Value),
    Inline(Value),
}

impl Line {
    pub(super) fn price(&self) -> &Value {
        match self {
            Line::Price(price) | Line::Inline(price) => price,
        }
    }
}

/// One line item (`line_items[index]`); `inline`: whether `price_data` is
/// taken (sessions, not payment links).
fn line_item(
    state: &State,
    item: &Value,
    index: usize,
    inline: bool,
) -> Result<(Line, i64), ApiError> {
    let name = format!("line_items[{index}]");
    let allowed: &[&str] = match inline {
        true => &["price", "price_data", "quantity"],
        false => &["price", "quantity"],
    };
    if let Value::Object(fields) = item {
        for key in fields.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError {
                    status: 400,
                    kind: "invalid_request_error",
                    code: Some("parameter_unknown"),
                    message: format!("Received unknown parameter: {name}[{key}]"),
                    param: Some(format!("{name}[{key}]")),
                    decline_code: None,
                });
            }
        }
    }
    let quantity = leaf_int(item.get("quantity"), &format!("{name}[quantity]"))?
        .ok_or_else(|| ApiError::missing(&format!("{name}[quantity]")))?;
    if !(1..=999_999).contains(&quantity) {
        return Err(ApiError::invalid(
            &format!("{name}[quantity]"),
            "Quantity must be between 1 and 999999.",
        ));
    }
    match (item.get("price"), item.get("price_data")) {
        (Some(_), Some(_)) => Err(ApiError::invalid_request(
            &format!(
                "You may only specify one of these parameters: {name}[price], {name}[price_data]."
            ),
            Some(&format!("{name}[price]")),
        )),
        (None, Some(data)) => Ok((Line::Inline(inline_price(state, data, &name)?), quantity)),
        (price, None) => {
            let price_id = price
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing(&format!("{name}[price]")))?;
            let price = state
                .find("price", price_id, &format!("{name}[price]"))?
                .clone();
            if price["active"] != json!(true) {
                return Err(ApiError::invalid(
                    &format!("{name}[price]"),
                    &format!(
                        "The price specified is inactive. This field only accepts active prices. ({price_id})"
                    ),
                ));
            }
            Ok((Line::Price(price), quantity))
        }
    }
}

/// `price_data` of a line: a one-time price of an existing product, made
/// for the session (inactive: it sells nowhere else).
fn inline_price(state: &State, data: &Value, name: &str) -> Result<Value, ApiError> {
    let inner = format!("{name}[price_data]");
    only_keys(
        data,
        &inner,
        &["currency", "product", "unit_amount", "tax_behavior"],
    )?;
    let product = data["product"]
        .as_str()
        .ok_or_else(|| ApiError::missing(&format!("{inner}[product]")))?;
    state.find("product", product, &format!("{inner}[product]"))?;
    let currency = data["currency"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ApiError::missing(&format!("{inner}[currency]")))?;
    if !super::rules::is_currency(&currency) {
        return Err(ApiError::invalid(
            &format!("{inner}[currency]"),
            &format!("Invalid currency: {currency}."),
        ));
    }
    let amount = leaf_int(data.get("unit_amount"), &format!("{inner}[unit_amount]"))?
        .ok_or_else(|| ApiError::missing(&format!("{inner}[unit_amount]")))?;
    if amount < 0 {
        return Err(ApiError::invalid(
            &format!("{inner}[unit_amount]"),
            "This value must be greater than or equal to 0.",
        ));
    }
    let behavior = match data["tax_behavior"].as_str() {
        None => "unspecified",
        Some(behavior @ ("exclusive" | "inclusive" | "unspecified")) => behavior,
        Some(other) => {
            return Err(ApiError::invalid(
                &format!("{inner}[tax_behavior]"),
                &format!(
                    "Invalid tax_behavior: must be one of exclusive, inclusive, or unspecified ({other})"
                ),
            ));
        }
    };
    let mut price = objects::price(
        &new_id("price_"),
        product,
        amount,
        &currency,
        json!({}),
        state.now(),
    );
    price["active"] = json!(false);
    price["tax_behavior"] = json!(behavior);
    Ok(price)
}

fn create_payment_link(
    state: &mut State,
    context: &Context<'_>,
    params: &Params,
) -> Result<Value, ApiError> {
    let mut allowed = vec![
        "after_completion",
        "allow_promotion_codes",
        "line_items",
        "metadata",
    ];
    allowed.extend(super::tax::PARAMS);
    params.only(&allowed)?;
    let price = line_items(state, params)?;
    let options = super::tax::options(state, params, &price)?;
    let redirect = match params.get("after_completion") {
        None => None,
        Some(after) => {
            only_keys(
                after,
                "after_completion",
                &["hosted_confirmation", "redirect", "type"],
            )?;
            if let Some(redirect) = after.get("redirect") {
                only_keys(redirect, "after_completion[redirect]", &["url"])?;
            }
            if let Some(confirmation) = after.get("hosted_confirmation") {
                only_keys(
                    confirmation,
                    "after_completion[hosted_confirmation]",
                    &["custom_message"],
                )?;
            }
            match after["type"].as_str() {
                Some("redirect") => Some(
                    after["redirect"]["url"]
                        .as_str()
                        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
                        .ok_or_else(|| ApiError::missing("after_completion[redirect][url]"))?
                        .to_owned(),
                ),
                Some("hosted_confirmation") => None,
                Some(other) => {
                    return Err(ApiError::invalid(
                        "after_completion[type]",
                        &format!(
                            "Invalid after_completion[type]: must be one of hosted_confirmation or redirect ({other})"
                        ),
                    ));
                }
                None => return Err(ApiError::missing("after_completion[type]")),
            }
        }
    };
    let id = new_id("plink_");
    let url = format!("{}/pay/{id}", context.base_url);
    let mut link = objects::payment_link(objects::PaymentLinkParts {
        id: &id,
        url: &url,
        currency: price["currency"].as_str().unwrap_or("usd"),
        redirect_url: redirect.as_deref(),
        allow_promotion_codes: params.bool("allow_promotion_codes")?.unwrap_or(false),
        metadata: params.metadata()?,
    });
    super::tax::apply(&mut link, &options);
    state
        .payment_link_prices
        .insert(id, price["id"].as_str().unwrap_or_default().to_owned());
    Ok(state.insert(link))
}

fn update_payment_link(state: &mut State, params: &Params, id: &str) -> Result<Value, ApiError> {
    params.only(&["active", "allow_promotion_codes", "metadata"])?;
    state.find("payment_link", id, "payment_link")?;
    let active = params.bool("active")?;
    let promotion_codes = params.bool("allow_promotion_codes")?;
    let metadata = params
        .get("metadata")
        .map(|_| params.metadata())
        .transpose()?;
    let link = state
        .update(id, |link| {
            if let Some(active) = active {
                link["active"] = json!(active);
            }
            if let Some(promotion_codes) = promotion_codes {
                link["allow_promotion_codes"] = json!(promotion_codes);
            }
            if let Some(metadata) = metadata {
                merge_metadata(&mut link["metadata"], metadata);
            }
        })
        .unwrap_or_default();
    Ok(link)
}

fn create_session(
    state: &mut State,
    context: &Context<'_>,
    params: &Params,
) -> Result<Value, ApiError> {
    let mut allowed = vec![
        "allow_promotion_codes",
        "cancel_url",
        "client_reference_id",
        "customer_email",
        "discounts",
        "expires_at",
        "line_items",
        "metadata",
        "mode",
        "success_url",
    ];
    allowed.extend(super::tax::PARAMS);
    params.only(&allowed)?;
    match params.str("mode") {
        Some("payment") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "mode",
                &format!("The sandbox supports `mode=payment` only, not `{other}`."),
            ));
        }
        None => return Err(ApiError::missing("mode")),
    }
    let success_url = params.required_str("success_url")?.to_owned();
    let lines = session_lines(state, params)?;
    let mut options = Value::Null;
    for (line, _) in &lines {
        options = super::tax::options(state, params, line.price())?;
    }
    let now = state.now();
    // Checked against the sandbox's own clock when the request arrives, as
    // Stripe checks it against its own: no slack.
    let expires_at = match params.int("expires_at")? {
        None => now + 24 * 3600,
        Some(at) if at >= now + 30 * 60 && at <= now + 24 * 3600 => at,
        Some(_) => {
            return Err(ApiError::invalid(
                "expires_at",
                "The `expires_at` timestamp must be at least 30 minutes and at most 24 hours from Checkout Session creation.",
            ));
        }
    };
    let allow_promotion_codes = params.bool("allow_promotion_codes")?;
    if params.get("discounts").is_some() && allow_promotion_codes.is_some() {
        return Err(ApiError::invalid_request(
            "You may only specify one of these parameters: allow_promotion_codes, discounts.",
            Some("discounts"),
        ));
    }
    let promotion = match params.get("discounts") {
        None => None,
        Some(discounts) => Some(discount_param(state, discounts)?),
    };
    if let Some(email) = params.str("customer_email")
        && !super::rules::is_email(email)
    {
        return Err(ApiError::invalid(
            "customer_email",
            &format!("Invalid email address: {email}"),
        ));
    }
    let client_reference_id = params.str("client_reference_id");
    if client_reference_id.is_some_and(|id| id.len() > 200) {
        return Err(ApiError::invalid(
            "client_reference_id",
            "client_reference_id must be at most 200 characters",
        ));
    }
    // Every check passed: an inline price is kept, as Stripe keeps it.
    let lines: Vec<(Value, i64)> = lines
        .into_iter()
        .map(|(line, quantity)| match line {
            Line::Price(price) => (price, quantity),
            Line::Inline(price) => (state.insert(price), quantity),
        })
        .collect();
    let session = new_session(
        state,
        context.base_url,
        &lines,
        NewSession {
            success_url: Some(&success_url),
            cancel_url: params.str("cancel_url"),
            customer_email: params.str("customer_email"),
            client_reference_id,
            payment_link: None,
            allow_promotion_codes,
            metadata: params.metadata()?,
            expires_at,
            options,
        },
    );
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    if let Some(promo) = promotion {
        apply_discount(state, &id, &promo)?;
    }
    let session = state.get(&id).cloned().unwrap_or(session);
    let total = session["amount_total"].as_i64().unwrap_or(0);
    let currency = session["currency"].as_str().unwrap_or_default().to_owned();
    // A total above zero must be one Stripe can charge; zero is a no-cost
    // order.
    if total > 0
        && let Some(message) = super::rules::charge_refusal(total, &currency)
    {
        state.remove(&id);
        return Err(ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("amount_too_small"),
            message,
            param: None,
            decline_code: None,
        });
    }
    Ok(session)
}

/// Expands what a Checkout Session allows: `line_items`,
/// `total_details.breakdown` (included only when asked), `payment_intent`
/// and `payment_intent.latest_charge`, `payment_link`.
/// Whether a price's `currency_options` were asked for (the only
/// expansion of a price shop reads; others are refused).
fn price_options_expanded(params: &Params, list: bool) -> Result<bool, ApiError> {
    let paths = expansions(params, list)?;
    match paths
        .iter()
        .find(|path| path.as_str() != "currency_options")
    {
        Some(other) => Err(ApiError::invalid_request(
            &format!("This property cannot be expanded ({other})."),
            Some("expand"),
        )),
        None => Ok(!paths.is_empty()),
    }
}

fn expand_session(state: &State, session: &mut Value, paths: &[String]) -> Result<(), ApiError> {
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    for path in paths {
        match path.as_str() {
            "line_items" => {
                let items = state.line_items.get(&id).cloned().unwrap_or_default();
                session["line_items"] = json!({
                    "object": "list", "data": items, "has_more": false,
                    "url": format!("/v1/checkout/sessions/{id}/line_items"),
                });
            }
            "total_details.breakdown" => {
                if session["total_details"].is_object() {
                    session["total_details"]["breakdown"] = state
                        .breakdowns
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| json!({"discounts": [], "taxes": []}));
                }
            }
            "payment_intent"
            | "payment_intent.latest_charge"
            | "payment_intent.latest_charge.balance_transaction" => {
                if let Some(intent) = session["payment_intent"]
                    .as_str()
                    .and_then(|i| state.get(i))
                {
                    let mut intent = intent.clone();
                    if path.contains(".latest_charge")
                        && let Some(charge) =
                            intent["latest_charge"].as_str().and_then(|c| state.get(c))
                    {
                        let mut charge = charge.clone();
                        if path.ends_with(".balance_transaction") {
                            super::fees::expanded(state, &mut charge);
                        }
                        intent["latest_charge"] = charge;
                    }
                    session["payment_intent"] = intent;
                }
            }
            "invoice" => {
                if let Some(invoice) = session["invoice"].as_str().and_then(|i| state.get(i)) {
                    session["invoice"] = invoice.clone();
                }
            }
            "payment_link" => {
                if let Some(link) = session["payment_link"].as_str().and_then(|l| state.get(l)) {
                    session["payment_link"] = link.clone();
                }
            }
            other => {
                return Err(ApiError::invalid_request(
                    &format!("This property cannot be expanded ({other})."),
                    Some("expand"),
                ));
            }
        }
    }
    Ok(())
}

fn create_webhook_endpoint(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    params.only(&[
        "api_version",
        "description",
        "enabled_events",
        "metadata",
        "url",
    ])?;
    let url = params.required_str("url")?.to_owned();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ApiError::invalid(
            "url",
            "Invalid URL: must be an absolute URL.",
        ));
    }
    let events: Vec<String> = match params.get("enabled_events") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => return Err(ApiError::missing("enabled_events")),
    };
    let version = params.str("api_version").map(str::to_owned);
    let id = new_id("we_");
    let mut endpoint =
        objects::webhook_endpoint(&id, &url, version.as_deref(), &events, state.now());
    endpoint["description"] = json!(params.str("description"));
    endpoint["metadata"] = params.metadata()?;
    let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
    state.webhook_secrets.insert(id, secret.clone());
    let mut answer = state.insert(endpoint);
    answer["secret"] = json!(secret);
    Ok(answer)
}

/// `discounts[0]`: a promotion code, or a coupon applied directly (one of
/// them); as a promotion code's shape, the coupon's without an `id`.
fn discount_param(state: &State, discounts: &Value) -> Result<Value, ApiError> {
    let first = match discounts {
        Value::Array(items) if items.len() == 1 => &items[0],
        _ => {
            return Err(ApiError::invalid(
                "discounts",
                "Checkout Sessions take one discount.",
            ));
        }
    };
    only_keys(first, "discounts[0]", &["coupon", "promotion_code"])?;
    match (first["promotion_code"].as_str(), first["coupon"].as_str()) {
        (Some(id), None) => {
            let promo = state
                .find("promotion_code", id, "discounts[0][promotion_code]")?
                .clone();
            if promo["active"] != json!(true) {
                return Err(ApiError::invalid(
                    "discounts[0][promotion_code]",
                    "This promotion code is inactive.",
                ));
            }
            Ok(promo)
        }
        (None, Some(id)) => {
            let coupon = state.find("coupon", id, "discounts[0][coupon]")?.clone();
            super::coupons::coupon_valid(state, &coupon, "discounts[0][coupon]")?;
            Ok(json!({ "coupon": coupon }))
        }
        _ => Err(ApiError::invalid_request(
            "You must pass exactly one of `discounts[0][coupon]` or `discounts[0][promotion_code]`.",
            Some("discounts[0]"),
        )),
    }
}

fn list_sessions(
    state: &mut State,
    context: &Context<'_>,
    params: &Params,
    path: &str,
) -> Result<Value, ApiError> {
    params.only(&[
        "created",
        "customer",
        "customer_details",
        "ending_before",
        "expand",
        "limit",
        "payment_intent",
        "payment_link",
        "starting_after",
        "status",
    ])?;
    // "Only return the Checkout Sessions for the Customer details
    // specified": their email, exactly as the buyer gave it.
    let email = match params.get("customer_details") {
        None => None,
        Some(details) => {
            only_keys(details, "customer_details", &["email"])?;
            Some(
                details["email"]
                    .as_str()
                    .ok_or_else(|| ApiError::missing("customer_details[email]"))?
                    .to_owned(),
            )
        }
    };
    let status = params.str("status").map(str::to_owned);
    if let Some(status) = &status
        && !["open", "complete", "expired"].contains(&status.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            &format!("Invalid status: must be one of complete, expired, or open ({status})"),
        ));
    }
    let intent = params.str("payment_intent").map(str::to_owned);
    let link = params.str("payment_link").map(str::to_owned);
    let _ = context;
    state.list("checkout.session", params, path, |session| {
        status.as_deref().is_none_or(|s| session["status"] == s)
            && intent
                .as_deref()
                .is_none_or(|p| session["payment_intent"] == p)
            && link.as_deref().is_none_or(|l| session["payment_link"] == l)
            && email
                .as_deref()
                .is_none_or(|e| session["customer_details"]["email"] == e)
    })
}

fn expire_session(state: &mut State, context: &Context<'_>, id: &str) -> Result<Value, ApiError> {
    let session = state.find("checkout.session", id, "session")?;
    if session["status"] != "open" {
        return Err(ApiError::invalid_request(
            &format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                session["status"].as_str().unwrap_or("unknown")
            ),
            None,
        ));
    }
    let session = state
        .update(id, |session| session["status"] = json!("expired"))
        .unwrap_or_default();
    state.emit(
        "checkout.session.expired",
        session.clone(),
        context.idempotency_key,
        context.webhooks,
    );
    Ok(session)
}

fn create_refund(
    state: &mut State,
    context: &Context<'_>,
    params: &Params,
) -> Result<Value, ApiError> {
    params.only(&["amount", "charge", "metadata", "payment_intent", "reason"])?;
    let charge_id = match (params.str("charge"), params.str("payment_intent")) {
        (Some(charge), _) => state.find("charge", charge, "charge")?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        (None, Some(intent)) => {
            let intent = state.find("payment_intent", intent, "payment_intent")?;
            intent["latest_charge"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
        (None, None) => {
            return Err(ApiError::invalid_request(
                "One of the following params should be provided for this request: payment_intent or charge.",
                None,
            ));
        }
    };
    let charge = state.find("charge", &charge_id, "charge")?.clone();
    // A charge the buyer's bank took back is settled through the dispute:
    // Stripe refuses to refund it.
    if charge["disputed"] == json!(true) {
        return Err(ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("charge_disputed"),
            message: format!("Charge {charge_id} has been charged back; cannot issue a refund."),
            param: None,
            decline_code: None,
        });
    }
    let captured = charge["amount_captured"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let remaining = captured - refunded;
    if remaining <= 0 {
        return Err(ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("charge_already_refunded"),
            message: format!("Charge {charge_id} has already been refunded."),
            param: None,
            decline_code: None,
        });
    }
    let amount = params.int("amount")?.unwrap_or(remaining);
    if amount <= 0 {
        return Err(ApiError::invalid("amount", "Invalid positive integer"));
    }
    if amount > remaining {
        return Err(ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("amount_too_large"),
            message: format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"
            ),
            param: Some("amount".into()),
            decline_code: None,
        });
    }
    if let Some(reason) = params.str("reason")
        && !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason)
    {
        return Err(ApiError::invalid(
            "reason",
            &format!("Invalid reason: {reason}"),
        ));
    }
    let now = state.now();
    let intent = charge["payment_intent"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut refund = objects::refund(
        &new_id("re_"),
        amount,
        charge["currency"].as_str().unwrap_or("usd"),
        &charge_id,
        &intent,
        now,
    );
    refund["metadata"] = metadata(params.get("metadata"))?;
    // A payment not settled yet (a SEPA debit still processing): Stripe
    // holds its refund `pending` until the payment settles, then it
    // succeeds, or is canceled if the payment fails (`settle_due`).
    let charge_pending = charge["status"] == "pending";
    if state.refunds_pending || charge_pending {
        refund["status"] = json!("pending");
    }
    refund["reason"] = json!(params.str("reason"));
    if !charge_pending {
        // The money leaves the balance at once; Stripe keeps its fee.
        refund["balance_transaction"] = json!(super::fees::record(
            state,
            "refund",
            -amount,
            0,
            charge["currency"].as_str().unwrap_or("usd"),
            refund["id"].as_str().unwrap_or_default(),
        ));
    }
    let refund = state.insert(refund);
    let charge = state
        .update(&charge_id, |charge| {
            let total = refunded + amount;
            charge["amount_refunded"] = json!(total);
            charge["refunded"] = json!(total >= captured);
        })
        .unwrap_or_default();
    state.emit(
        "refund.created",
        refund.clone(),
        context.idempotency_key,
        context.webhooks,
    );
    state.emit(
        "charge.refunded",
        charge,
        context.idempotency_key,
        context.webhooks,
    );
    Ok(refund)
}

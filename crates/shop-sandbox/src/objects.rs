//! Stripe-shaped JSON for the sandbox's objects, field for field as the
//! API version `shop` pins describes them: every field present, absent
//! values as `null`, so a client that works here works against Stripe.

use serde_json::{Value, json};

use super::rules::VERSION as API_VERSION;

/// A Stripe-style id: the prefix and 24 random letters and digits.
pub fn new_id(prefix: &str) -> String {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

pub fn product(
    id: &str,
    name: &str,
    description: Option<&str>,
    metadata: Value,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "product",
        "active": true,
        "created": now,
        "default_price": null,
        "description": description,
        "images": [],
        "livemode": false,
        "marketing_features": [],
        "metadata": metadata,
        "name": name,
        "package_dimensions": null,
        "shippable": null,
        "statement_descriptor": null,
        "tax_code": null,
        "unit_label": null,
        "updated": now,
        "url": null,
    })
}

pub fn price(
    id: &str,
    product: &str,
    unit_amount: i64,
    currency: &str,
    metadata: Value,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": null,
        "metadata": metadata,
        "nickname": null,
        "product": product,
        "recurring": null,
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount.to_string(),
    })
}

pub fn custom_text() -> Value {
    json!({
        "after_submit": null,
        "shipping_address": null,
        "submit": null,
        "terms_of_service_acceptance": null,
    })
}

pub struct PaymentLinkParts<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub currency: &'a str,
    pub redirect_url: Option<&'a str>,
    pub allow_promotion_codes: bool,
    pub metadata: Value,
}

pub fn payment_link(parts: PaymentLinkParts<'_>) -> Value {
    let after_completion = match parts.redirect_url {
        Some(url) => json!({"type": "redirect", "redirect": {"url": url}}),
        None => {
            json!({"type": "hosted_confirmation", "hosted_confirmation": {"custom_message": null}})
        }
    };
    json!({
        "id": parts.id,
        "object": "payment_link",
        "active": true,
        "after_completion": after_completion,
        "allow_promotion_codes": parts.allow_promotion_codes,
        "application": null,
        "application_fee_amount": null,
        "application_fee_percent": null,
        "automatic_tax": {"enabled": false, "liability": null},
        "billing_address_collection": "auto",
        "consent_collection": null,
        "currency": parts.currency,
        "custom_fields": [],
        "custom_text": custom_text(),
        "customer_creation": "if_required",
        "inactive_message": null,
        "invoice_creation": null,
        "livemode": false,
        "metadata": parts.metadata,
        "on_behalf_of": null,
        "payment_intent_data": null,
        "payment_method_collection": "always",
        "payment_method_types": null,
        "phone_number_collection": {"enabled": false},
        "restrictions": null,
        "shipping_address_collection": null,
        "shipping_options": [],
        "submit_type": "auto",
        "subscription_data": null,
        "tax_id_collection": {"enabled": false},
        "transfer_data": null,
        "url": parts.url,
    })
}

pub struct SessionParts<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub success_url: Option<&'a str>,
    pub cancel_url: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub client_reference_id: Option<&'a str>,
    pub payment_link: Option<&'a str>,
    pub allow_promotion_codes: Option<bool>,
    pub metadata: Value,
    pub now: i64,
    pub expires_at: i64,
}

pub fn checkout_session(parts: SessionParts<'_>) -> Value {
    json!({
        "id": parts.id,
        "object": "checkout.session",
        "after_expiration": null,
        "allow_promotion_codes": parts.allow_promotion_codes,
        "amount_subtotal": parts.amount,
        "amount_total": parts.amount,
        "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "billing_address_collection": null,
        "cancel_url": parts.cancel_url,
        "client_reference_id": parts.client_reference_id,
        "client_secret": null,
        "consent": null,
        "consent_collection": null,
        "created": parts.now,
        "currency": parts.currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": custom_text(),
        "customer": null,
        "customer_creation": "if_required",
        "customer_details": null,
        "customer_email": parts.customer_email,
        "expires_at": parts.expires_at,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": null,
        "metadata": parts.metadata,
        "mode": "payment",
        "payment_intent": null,
        "payment_link": parts.payment_link,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": false},
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_details": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": parts.success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": parts.url,
    })
}

pub fn customer_details(email: &str) -> Value {
    json!({
        "address": null,
        "email": email,
        "name": null,
        "phone": null,
        "tax_exempt": "none",
        "tax_ids": [],
    })
}

/// What one unit of `price` costs before the buyer chooses: its
/// `unit_amount`, or for a pay-what-you-want price its preset, else its
/// minimum.
pub fn starting_amount(price: &Value) -> i64 {
    let custom = &price["custom_unit_amount"];
    price["unit_amount"]
        .as_i64()
        .or_else(|| custom["preset"].as_i64())
        .or_else(|| custom["minimum"].as_i64())
        .unwrap_or(0)
}

pub fn line_item(price: &Value, product_name: &str, quantity: i64) -> Value {
    let amount = starting_amount(price) * quantity;
    json!({
        "id": new_id("li_"),
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price["currency"],
        "description": product_name,
        "price": price,
        "quantity": quantity,
    })
}

pub fn payment_intent(
    id: &str,
    amount: i64,
    currency: &str,
    charge: &str,
    email: &str,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic",
        "client_secret": format!("{id}_secret_{}", new_id("")),
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": null,
        "description": null,
        "invoice": null,
        "last_payment_error": null,
        "latest_charge": charge,
        "livemode": false,
        "metadata": {},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": null,
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": email,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null,
    })
}

pub fn charge(
    id: &str,
    amount: i64,
    currency: &str,
    payment_intent: &str,
    email: &str,
    last4: &str,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": null,
        "billing_details": {
            "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
            "email": email,
            "name": null,
            "phone": null,
        },
        "calculated_statement_descriptor": "SHOP SANDBOX",
        "captured": true,
        "created": now,
        "currency": currency,
        "customer": null,
        "description": null,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "invoice": null,
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": null,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": true,
        "payment_intent": payment_intent,
        "payment_method": null,
        "payment_method_details": card_details(last4, "visa", "US"),
        "receipt_email": email,
        "receipt_number": null,
        "receipt_url": null,
        "refunded": false,
        "review": null,
        "shipping": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null,
    })
}

/// What a charge says of the test card that paid it.
pub fn card_details(last4: &str, brand: &str, country: &str) -> Value {
    json!({
        "type": "card",
        "card": {
            "amount_authorized": null,
            "brand": brand,
            "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
            "country": country,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": null,
            "funding": "credit",
            "installments": null,
            "last4": last4,
            "mandate": null,
            "network": brand,
            "network_token": null,
            "three_d_secure": null,
            "wallet": null,
        },
    })
}

pub fn refund(
    id: &str,
    amount: i64,
    currency: &str,
    charge: &str,
    payment_intent: &str,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": null,
        "charge": charge,
        "created": now,
        "currency": currency,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": null,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    })
}

pub fn dispute(id: &str, charge: &Value, reason: &str, now: i64) -> Value {
    json!({
        "id": id,
        "object": "dispute",
        "amount": charge["amount"],
        "balance_transactions": [],
        "charge": charge["id"],
        "created": now,
        "currency": charge["currency"],
        "evidence": {},
        "evidence_details": {
            "due_by": now + 7 * 86_400,
            "has_evidence": false,
            "past_due": false,
            "submission_count": 0,
        },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "status": "needs_response",
    })
}

pub fn event(
    id: &str,
    kind: &str,
    object: Value,
    now: i64,
    pending_webhooks: i64,
    idempotency_key: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": pending_webhooks,
        "request": {"id": null, "idempotency_key": idempotency_key},
        "type": kind,
    })
}

/// Stripe's error body.
pub fn error(
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
    decline_code: Option<&str>,
) -> Value {
    let mut error = serde_json::Map::new();
    if let Some(code) = code {
        error.insert("code".into(), json!(code));
    }
    if let Some(decline_code) = decline_code {
        error.insert("decline_code".into(), json!(decline_code));
    }
    if let Some(code) = code {
        error.insert(
            "doc_url".into(),
            json!(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            )),
        );
    }
    error.insert("message".into(), json!(message));
    if let Some(param) = param {
        error.insert("param".into(), json!(param));
    }
    error.insert("type".into(), json!(kind));
    json!({"error": error})
}

pub fn coupon(
    id: &str,
    percent_off: Option<f64>,
    amount_off: Option<i64>,
    currency: Option<&str>,
    name: Option<&str>,
    metadata: Value,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": now,
        "currency": currency,
        "duration": "once",
        "duration_in_months": null,
        "livemode": false,
        "max_redemptions": null,
        "metadata": metadata,
        "name": name,
        "percent_off": percent_off,
        "redeem_by": null,
        "times_redeemed": 0,
        "valid": true,
    })
}

pub fn promotion_code(
    id: &str,
    code: &str,
    coupon: Value,
    active: bool,
    metadata: Value,
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "promotion_code",
        "active": active,
        "code": code,
        "coupon": coupon,
        "created": now,
        "customer": null,
        "expires_at": null,
        "livemode": false,
        "max_redemptions": null,
        "metadata": metadata,
        "restrictions": {"first_time_transaction": false, "minimum_amount": null, "minimum_amount_currency": null},
        "times_redeemed": 0,
    })
}

/// A discount a promotion code gave a session.
pub fn discount(coupon: &Value, promo: &Value, session: &str, now: i64) -> Value {
    json!({
        "id": new_id("di_"),
        "object": "discount",
        "checkout_session": session,
        "coupon": coupon,
        "customer": null,
        "end": null,
        "invoice": null,
        "invoice_item": null,
        "promotion_code": promo["id"],
        "start": now,
        "subscription": null,
        "subscription_item": null,
    })
}

/// A webhook endpoint; `secret` appears only in the answer that creates it.
pub fn webhook_endpoint(
    id: &str,
    url: &str,
    api_version: Option<&str>,
    events: &[String],
    now: i64,
) -> Value {
    json!({
        "id": id,
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": null,
        "created": now,
        "description": null,
        "enabled_events": events,
        "livemode": false,
        "metadata": {},
        "status": "enabled",
        "url": url,
    })
}

/// What a charge says of the test bank account that pays it.
pub fn sepa_debit_details(iban: &str) -> Value {
    json!({
        "type": "sepa_debit",
        "sepa_debit": {
            "bank_code": iban.get(4..12),
            "branch_code": null,
            "country": iban.get(..2),
            "fingerprint": null,
            "last4": iban.get(iban.len().saturating_sub(4)..),
            "mandate": null,
        },
    })
}

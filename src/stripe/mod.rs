//! Our own small, typed Stripe client, and webhook signatures.
//!
//! It covers what `shop` needs (products, prices, payment links, checkout
//! sessions, refunds, disputes, events), form-encoded with a pinned
//! `Stripe-Version`. Every creating request carries an [`IdempotencyKey`];
//! connection errors, 429 and 5xx are retried with exponential backoff and
//! jitter, bounded in attempts and time; lists are streams of objects. The
//! base URL is a parameter, so tests and `shop sandbox` stand in for Stripe.

pub mod form;
pub mod objects;
pub mod webhook;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

mod error;
mod params;

pub use error::{ApiFailure, StripeError};
pub use form::Form;
pub use objects::*;
pub use params::{
    CheckoutOptions, CreateCheckoutSession, CreateCoupon, CreatePaymentLink, CreatePrice,
    CreateProduct, CreatePromotionCode, CurrencyOption, CustomField, ListCheckoutSessions,
    SessionLine,
};

use crate::secret::Secret;
use crate::{net, retry};

/// The API version every request pins, so Stripe's answers keep their shape.
pub const API_VERSION: &str = "2024-04-10";

/// The endpoints this client calls, as (method, path template). The
/// conformance test checks each against Stripe's OpenAPI description.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("post", "/v1/products"),
    ("get", "/v1/products/{id}"),
    ("post", "/v1/products/{id}"),
    ("post", "/v1/prices"),
    ("get", "/v1/prices"),
    ("post", "/v1/payment_links"),
    ("get", "/v1/payment_links/{payment_link}"),
    ("post", "/v1/payment_links/{payment_link}"),
    ("get", "/v1/payment_links"),
    ("post", "/v1/checkout/sessions"),
    ("get", "/v1/checkout/sessions"),
    ("get", "/v1/checkout/sessions/{session}"),
    ("get", "/v1/checkout/sessions/{session}/line_items"),
    ("get", "/v1/payment_intents/{intent}"),
    ("get", "/v1/charges/{charge}"),
    ("post", "/v1/refunds"),
    ("get", "/v1/refunds"),
    ("get", "/v1/disputes"),
    ("get", "/v1/events"),
    ("get", "/v1/events/{id}"),
    ("post", "/v1/coupons"),
    ("get", "/v1/coupons/{coupon}"),
    ("post", "/v1/promotion_codes"),
    ("get", "/v1/promotion_codes"),
    ("get", "/v1/promotion_codes/{promotion_code}"),
    ("get", "/v1/webhook_endpoints"),
];

/// How hard to try before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Duration,
    /// Each attempt fails after this long (the client's own 80 s otherwise).
    pub attempt_timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            deadline: Duration::from_secs(60),
            attempt_timeout: None,
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempt` failed attempts.
    fn backoff(&self, attempt: u32) -> Duration {
        retry::Backoff::new(self.initial_delay, self.max_delay).delay(attempt)
    }
}

/// The `Idempotency-Key` of a creating request. Derived keys make a re-run
/// command find the object its earlier run created instead of making a
/// second one; random keys still make retries of one call safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A key derived from what is being created: the same parts always give
    /// the same key.
    pub fn derived(parts: &[&str]) -> IdempotencyKey {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        IdempotencyKey(format!("shop-{}", &hex::encode(hasher.finalize())[..40]))
    }

    /// A fresh key for a request that should happen once per call.
    pub fn random() -> IdempotencyKey {
        IdempotencyKey(format!("shop-{}", uuid::Uuid::new_v4()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Stripe client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Secret,
    retry: RetryPolicy,
}

impl Client {
    /// A client for the API at `base` (`https://api.stripe.com`, or the
    /// sandbox), authenticating with `key`.
    pub fn new(base: &str, key: Secret) -> Result<Client, StripeError> {
        net::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(80))
            .user_agent(concat!("shop/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| StripeError::Unreachable {
                base: base.to_owned(),
                attempts: 0,
                source,
            })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    // ---- products and prices

    pub async fn create_product(
        &self,
        params: &CreateProduct,
        key: &IdempotencyKey,
    ) -> Result<Product, StripeError> {
        let form = Form::new()
            .optional("id", params.id.as_deref())
            .field("name", &params.name)
            .optional("description", params.description.as_deref())
            .optional("url", params.url.as_deref())
            .optional("tax_code", params.tax_code.as_deref());
        let form = params
            .images
            .iter()
            .enumerate()
            .fold(form, |form, (index, image)| {
                form.field(format!("images[{index}]"), image)
            })
            .map("metadata", &params.metadata);
        self.post("/v1/products", form, Some(key)).await
    }

    /// Sets what buyers see of a product at Checkout: its name, plain-text
    /// description, images and page, and the tax code Stripe Tax rates it
    /// by (an empty description, no images or no code clears them, as
    /// Stripe's empty values do).
    pub async fn update_product(
        &self,
        id: &str,
        params: &CreateProduct,
    ) -> Result<Product, StripeError> {
        let form = Form::new()
            .field("name", &params.name)
            .field("description", params.description.as_deref().unwrap_or(""))
            .field("url", params.url.as_deref().unwrap_or(""))
            .field("tax_code", params.tax_code.as_deref().unwrap_or(""));
        let form = if params.images.is_empty() {
            form.field("images", "")
        } else {
            params
                .images
                .iter()
                .enumerate()
                .fold(form, |form, (index, image)| {
                    form.field(format!("images[{index}]"), image)
                })
        };
        self.post(
            &format!("/v1/products/{}", net::encode_component(id)),
            form,
            None,
        )
        .await
    }

    /// The product, or `None` if Stripe has no product with this id.
    pub async fn product(&self, id: &str) -> Result<Option<Product>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/products/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    pub async fn create_price(
        &self,
        params: &CreatePrice,
        key: &IdempotencyKey,
    ) -> Result<Price, StripeError> {
        let form = Form::new().field("product", &params.product);
        let form = match &params.custom_unit_amount {
            // The buyer chooses: Stripe takes no `unit_amount` with it.
            Some(custom) => form
                .field("custom_unit_amount[enabled]", "true")
                .optional("custom_unit_amount[minimum]", custom.minimum)
                .optional("custom_unit_amount[preset]", custom.preset),
            None => form.field("unit_amount", params.unit_amount),
        };
        let mut form = form
            .field("currency", &params.currency)
            .optional("tax_behavior", params.tax_behavior.as_deref())
            .map("metadata", &params.metadata);
        for option in &params.currency_options {
            let name = format!("currency_options[{}]", option.currency);
            form = match &option.custom_unit_amount {
                Some(custom) => form
                    .field(format!("{name}[custom_unit_amount][enabled]"), "true")
                    .optional(
                        format!("{name}[custom_unit_amount][minimum]"),
                        custom.minimum,
                    )
                    .optional(format!("{name}[custom_unit_amount][preset]"), custom.preset),
                None => form.field(format!("{name}[unit_amount]"), option.unit_amount),
            };
            form = form.optional(
                format!("{name}[tax_behavior]"),
                params.tax_behavior.as_deref(),
            );
        }
        self.post("/v1/prices", form, Some(key)).await
    }

    /// The active prices of a product, with their currency options (which
    /// Stripe includes only when asked).
    pub fn prices(&self, product: &str) -> BoxStream<'_, Result<Price, StripeError>> {
        let form = Form::new()
            .field("product", product)
            .field("active", "true")
            .field("expand[]", "data.currency_options");
        self.list("/v1/prices", form)
    }

    // ---- payment links

    pub async fn create_payment_link(
        &self,
        params: &CreatePaymentLink,
        key: &IdempotencyKey,
    ) -> Result<PaymentLink, StripeError> {
        let form = Form::new()
            .field("line_items[0][price]", &params.price)
            .field("line_items[0][quantity]", 1)
            .field("after_completion[type]", "redirect")
            .field("after_completion[redirect][url]", &params.redirect_url)
            .field("allow_promotion_codes", params.allow_promotion_codes)
            .map("metadata", &params.metadata);
        let form = params.options.add_to(form);
        self.post("/v1/payment_links", form, Some(key)).await
    }

    /// Active payment links, newest first.
    pub fn active_payment_links(&self) -> BoxStream<'_, Result<PaymentLink, StripeError>> {
        self.list(
            "/v1/payment_links",
            Form::new().field("active", "true").field("limit", 100),
        )
    }

    pub async fn payment_link(&self, id: &str) -> Result<Option<PaymentLink>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/payment_links/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    /// Turns a payment link on or off (off: its URL stops selling).
    pub async fn set_payment_link_active(
        &self,
        id: &str,
        active: bool,
    ) -> Result<PaymentLink, StripeError> {
        let form = Form::new().field("active", active);
        self.post(
            &format!("/v1/payment_links/{}", net::encode_component(id)),
            form,
            None,
        )
        .await
    }

    // ---- checkout sessions

    pub async fn create_checkout_session(
        &self,
        params: &CreateCheckoutSession,
        key: &IdempotencyKey,
    ) -> Result<CheckoutSession, StripeError> {
        let mut form = params
            .add_lines(Form::new().field("mode", "payment"))
            .field("success_url", &params.success_url)
            .optional("cancel_url", params.cancel_url.as_deref())
            .optional("customer_email", params.customer_email.as_deref())
            .optional("client_reference_id", params.client_reference_id.as_deref())
            .optional("expires_at", params.expires_at)
            .map("metadata", &params.metadata);
        match &params.promotion_code {
            Some(code) => form = form.field("discounts[0][promotion_code]", code),
            None if params.allow_promotion_codes => {
                form = form.field("allow_promotion_codes", true)
            }
            None => {}
        }
        let form = params.options.add_to(form);
        self.post("/v1/checkout/sessions", form, Some(key)).await
    }

    pub async fn checkout_session(&self, id: &str) -> Result<Option<CheckoutSession>, StripeError> {
        self.checkout_session_expanded(id, &[]).await
    }

    /// A session with these fields expanded (`total_details.breakdown`,
    /// `payment_intent`, ...).
    pub async fn checkout_session_expanded(
        &self,
        id: &str,
        expand: &[&str],
    ) -> Result<Option<CheckoutSession>, StripeError> {
        let mut query = Form::new();
        for (index, path) in expand.iter().enumerate() {
            query = query.field(format!("expand[{index}]"), path);
        }
        not_found_is_none(
            self.get(
                &format!("/v1/checkout/sessions/{}", net::encode_component(id)),
                query,
            )
            .await,
        )
    }

    /// Checkout sessions, newest first, as Stripe lists them.
    pub fn checkout_sessions(
        &self,
        filter: &ListCheckoutSessions,
    ) -> BoxStream<'_, Result<CheckoutSession, StripeError>> {
        let form = Form::new()
            .optional("created[gte]", filter.created_gte)
            .optional("created[lt]", filter.created_lt)
            .optional("status", filter.status.as_deref())
            .optional("payment_intent", filter.payment_intent.as_deref())
            .field("limit", filter.limit.unwrap_or(100));
        let form = filter
            .expand
            .iter()
            .enumerate()
            .fold(form, |form, (index, path)| {
                form.field(format!("expand[{index}]"), format!("data.{path}"))
            });
        self.list("/v1/checkout/sessions", form)
    }

    pub fn checkout_session_line_items<'a>(
        &'a self,
        session: &str,
    ) -> BoxStream<'a, Result<LineItem, StripeError>> {
        let path = format!(
            "/v1/checkout/sessions/{}/line_items",
            net::encode_component(session)
        );
        self.list_owned(path, Form::new().field("limit", 100))
    }

    pub async fn payment_intent(&self, id: &str) -> Result<Option<PaymentIntent>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/payment_intents/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    pub async fn charge(&self, id: &str) -> Result<Option<Charge>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/charges/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    // ---- refunds, disputes, events

    /// Refunds a payment, whole or `amount` of it.
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount: Option<i64>,
        key: &IdempotencyKey,
    ) -> Result<Refund, StripeError> {
        let form = Form::new()
            .field("payment_intent", payment_intent)
            .optional("amount", amount);
        self.post("/v1/refunds", form, Some(key)).await
    }

    /// Refunds the whole of a payment because its buyer asked
    /// (`requested_by_customer`), keeping the author's `note` with it.
    pub async fn refund_for_buyer(
        &self,
        payment_intent: &str,
        note: Option<&str>,
        key: &IdempotencyKey,
    ) -> Result<Refund, StripeError> {
        let mut form = Form::new()
            .field("payment_intent", payment_intent)
            .field("reason", "requested_by_customer");
        if let Some(note) = note {
            // Stripe keeps metadata values of up to 500 characters.
            form = form.field(
                "metadata[shop_note]",
                note.chars().take(500).collect::<String>(),
            );
        }
        self.post("/v1/refunds", form, Some(key)).await
    }

    /// The refunds of one charge.
    pub fn refunds_of_charge(&self, charge: &str) -> BoxStream<'_, Result<Refund, StripeError>> {
        self.list(
            "/v1/refunds",
            Form::new().field("charge", charge).field("limit", 100),
        )
    }

    pub fn refunds(&self, created_gte: Option<i64>) -> BoxStream<'_, Result<Refund, StripeError>> {
        self.list(
            "/v1/refunds",
            Form::new()
                .optional("created[gte]", created_gte)
                .field("limit", 100),
        )
    }

    pub fn disputes(
        &self,
        created_gte: Option<i64>,
    ) -> BoxStream<'_, Result<Dispute, StripeError>> {
        self.list(
            "/v1/disputes",
            Form::new()
                .optional("created[gte]", created_gte)
                .field("limit", 100),
        )
    }

    /// Events of these types (all when empty), newest first.
    pub fn events(
        &self,
        types: &[&str],
        created_gte: Option<i64>,
    ) -> BoxStream<'_, Result<Event, StripeError>> {
        let mut form = Form::new()
            .optional("created[gte]", created_gte)
            .field("limit", 100);
        for (index, kind) in types.iter().enumerate() {
            form = form.field(format!("types[{index}]"), kind);
        }
        self.list("/v1/events", form)
    }

    /// The active promotion code a buyer types, such as `LAUNCH`.
    pub async fn promotion_code(&self, code: &str) -> Result<Option<PromotionCode>, StripeError> {
        let query = Form::new()
            .field("code", code)
            .field("active", "true")
            .field("limit", 1);
        let page: List<PromotionCode> = self.get("/v1/promotion_codes", query).await?;
        Ok(page.data.into_iter().next())
    }

    /// A coupon by its id.
    pub async fn coupon(&self, id: &str) -> Result<Option<Coupon>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/coupons/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    /// A percentage off, once, for the given products only.
    pub async fn create_coupon(
        &self,
        params: &CreateCoupon,
        key: &IdempotencyKey,
    ) -> Result<Coupon, StripeError> {
        let mut form = Form::new()
            .field("id", &params.id)
            .field("percent_off", params.percent_off)
            .field("duration", "once")
            .optional("name", params.name.as_deref());
        for (index, product) in params.products.iter().enumerate() {
            form = form.field(format!("applies_to[products][{index}]"), product);
        }
        self.post("/v1/coupons", form, Some(key)).await
    }

    /// A promotion code for a coupon: the code a buyer types.
    pub async fn create_promotion_code(
        &self,
        params: &CreatePromotionCode,
        key: &IdempotencyKey,
    ) -> Result<PromotionCode, StripeError> {
        let form = Form::new()
            .field("coupon", &params.coupon)
            .field("code", &params.code)
            .optional("max_redemptions", params.max_redemptions)
            .optional("expires_at", params.expires_at)
            .map("metadata", &params.metadata);
        self.post("/v1/promotion_codes", form, Some(key)).await
    }

    /// A promotion code by its id (`promo_…`), as a discount names it.
    pub async fn promotion_code_by_id(
        &self,
        id: &str,
    ) -> Result<Option<PromotionCode>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/promotion_codes/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    /// The account's webhook endpoints.
    pub fn webhook_endpoints(&self) -> BoxStream<'_, Result<WebhookEndpoint, StripeError>> {
        self.list("/v1/webhook_endpoints", Form::new().field("limit", 100))
    }

    pub async fn event(&self, id: &str) -> Result<Option<Event>, StripeError> {
        not_found_is_none(
            self.get(
                &format!("/v1/events/{}", net::encode_component(id)),
                Form::new(),
            )
            .await,
        )
    }

    // ---- the transport

    async fn get<T: DeserializeOwned>(&self, path: &str, query: Form) -> Result<T, StripeError> {
        self.request(Method::GET, path, query, None).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Form,
        key: Option<&IdempotencyKey>,
    ) -> Result<T, StripeError> {
        self.request(Method::POST, path, body, key).await
    }

    fn list<'a, T: DeserializeOwned + Object + Send + 'a>(
        &'a self,
        path: &'static str,
        form: Form,
    ) -> BoxStream<'a, Result<T, StripeError>> {
        self.list_owned(path.to_owned(), form)
    }

    /// Pages through a list with `starting_after`, one page in memory at a time.
    fn list_owned<'a, T: DeserializeOwned + Object + Send + 'a>(
        &'a self,
        path: String,
        form: Form,
    ) -> BoxStream<'a, Result<T, StripeError>> {
        struct Pages<T> {
            buffer: VecDeque<T>,
            after: Option<String>,
            more: bool,
        }
        let start = Pages {
            buffer: VecDeque::new(),
            after: None,
            more: true,
        };
        Box::pin(futures_util::stream::try_unfold(start, move |mut pages| {
            let path = path.clone();
            let form = form.clone();
            async move {
                if pages.buffer.is_empty() && pages.more {
                    let query = form.optional("starting_after", pages.after.as_deref());
                    let page: List<T> = self.get(&path, query).await?;
                    pages.more = page.has_more && !page.data.is_empty();
                    pages.after = page.data.last().map(|item| item.id().to_owned());
                    pages.buffer.extend(page.data);
                }
                Ok(pages.buffer.pop_front().map(|item| (item, pages)))
            }
        }))
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Form,
        key: Option<&IdempotencyKey>,
    ) -> Result<T, StripeError> {
        let started = Instant::now();
        let url = format!("{}{path}", self.base);
        let encoded = form.encode();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let target = if method == Method::GET && !encoded.is_empty() {
                format!("{url}?{encoded}")
            } else {
                url.clone()
            };
            let mut request = self
                .http
                .request(method.clone(), target)
                .bearer_auth(self.key.expose())
                .header("Stripe-Version", API_VERSION);
            if let Some(timeout) = self.retry.attempt_timeout {
                request = request.timeout(timeout);
            }
            if method != Method::GET {
                request = request
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(encoded.clone());
                if let Some(key) = key {
                    request = request.header("Idempotency-Key", key.as_str());
                }
            }
            let (error, delay) = match request.send().await {
                Err(source) => {
                    let delay = self.retry.backoff(attempt);
                    (
                        StripeError::Unreachable {
                            base: self.base.clone(),
                            attempts: attempt,
                            source,
                        },
                        delay,
                    )
                }
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = match response.bytes().await {
                        Ok(body) => body,
                        Err(source) => {
                            let delay = self.retry.backoff(attempt);
                            let error = StripeError::Unreachable {
                                base: self.base.clone(),
                                attempts: attempt,
                                source,
                            };
                            if self.may_retry(attempt, started, delay) {
                                tokio::time::sleep(delay).await;
                                continue;
                            }
                            return Err(error);
                        }
                    };
                    if status.is_success() {
                        return serde_json::from_slice(&body).map_err(|source| {
                            StripeError::Decode {
                                path: path.to_owned(),
                                source,
                            }
                        });
                    }
                    let error = StripeError::from_response(status, &body, path, &self.key, attempt);
                    let should_retry = match headers
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                    {
                        Some("true") => true,
                        Some("false") => false,
                        _ => {
                            status == StatusCode::TOO_MANY_REQUESTS
                                || status.is_server_error()
                                || status == StatusCode::CONFLICT
                        }
                    };
                    if !should_retry {
                        return Err(error);
                    }
                    let retry_after = headers
                        .get("retry-after")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse::<u64>().ok())
                        .map(|seconds| Duration::from_secs(seconds).min(self.retry.max_delay));
                    (
                        error,
                        retry_after.unwrap_or_else(|| self.retry.backoff(attempt)),
                    )
                }
            };
            if !self.may_retry(attempt, started, delay) {
                return Err(error);
            }
            tracing::debug!(
                attempt,
                ?delay,
                "retrying Stripe request to {path}: {error}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn may_retry(&self, attempt: u32, started: Instant, delay: Duration) -> bool {
        attempt < self.retry.max_attempts && started.elapsed() + delay <= self.retry.deadline
    }
}

fn not_found_is_none<T>(result: Result<T, StripeError>) -> Result<Option<T>, StripeError> {
    match result {
        Ok(object) => Ok(Some(object)),
        Err(StripeError::Api(failure)) if failure.status == 404 => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_stable_and_distinct() {
        let a = IdempotencyKey::derived(&["price", "guide", "2900", "usd"]);
        assert_eq!(
            a,
            IdempotencyKey::derived(&["price", "guide", "2900", "usd"])
        );
        assert_ne!(
            a,
            IdempotencyKey::derived(&["price", "guide", "2900", "eur"])
        );
        // Lengths are part of the hash: no ambiguity from joining.
        assert_ne!(
            IdempotencyKey::derived(&["ab", "c"]),
            IdempotencyKey::derived(&["a", "bc"])
        );
        assert!(a.as_str().starts_with("shop-") && a.as_str().len() <= 255);
    }

    #[test]
    fn errors_say_what_to_do() {
        let key = Secret::new("STRIPE_SECRET_KEY", "sk_test_123456789").unwrap();
        let body = br#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****6789"}}"#;
        let error = crate::error::render(&anyhow::Error::new(StripeError::from_response(
            StatusCode::UNAUTHORIZED,
            body,
            "/v1/products",
            &key,
            1,
        )));
        assert!(
            error.starts_with("Stripe refused the API key in `STRIPE_SECRET_KEY`"),
            "{error}"
        );
        assert!(error.contains("hint: set `STRIPE_SECRET_KEY`"), "{error}");
        assert!(!error.contains("sk_test_123456789"), "{error}");

        let body = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#;
        let error =
            StripeError::from_response(StatusCode::PAYMENT_REQUIRED, body, "/v1/x", &key, 1)
                .to_string();
        assert!(
            error.contains("declined: Your card has insufficient funds. (`insufficient_funds`)"),
            "{error}"
        );

        let error =
            StripeError::from_response(StatusCode::BAD_GATEWAY, b"<html>", "/v1/x", &key, 6)
                .to_string();
        assert!(
            error.starts_with("Stripe failed (502) after 6 attempts"),
            "{error}"
        );
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(crate::net::encode_component("cs_test_abc"), "cs_test_abc");
        assert_eq!(crate::net::encode_component("../x?y"), "..%2Fx%3Fy");
    }
}

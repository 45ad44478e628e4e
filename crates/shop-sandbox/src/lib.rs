//! `shop sandbox`: a local, Stripe-compatible server for what `shop` uses.
//!
//! It answers the API (`/v1/...`) as Stripe does, down to error bodies,
//! idempotency and pagination; serves a hosted test-checkout page where
//! Stripe's test cards succeed or decline; records events and delivers them
//! signed to a webhook URL; and has a control surface (`/_sandbox/...`) for
//! tests: a settable clock, fault injection, completing a session without a
//! browser, and disputes.

// Stripe's Checkout Session, written as one `json!`, nests deeper than
// the macro's default recursion allows.
#![recursion_limit = "256"]

mod api;
mod catalog;
mod checkout;
mod control;
mod coupons;
mod fees;
mod fields;
pub mod form;
mod html;
mod objects;
mod pages;
mod params;
pub mod registrations;
mod rules;
mod sessions;
mod state;
mod tax;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, Method, Response, StatusCode};

pub use params::Params;
use state::{Replay, State};

/// A webhook endpoint's signing secret (`whsec_…`): shown only when asked,
/// never by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn new(secret: impl Into<String>) -> SigningSecret {
        SigningSecret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// How a sandbox runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where its objects are kept between runs; in memory only when `None`.
    pub data: Option<PathBuf>,
    /// A webhook endpoint to deliver events to (made once, then kept with
    /// the data), as an author would create it in Stripe's dashboard.
    pub webhook_url: Option<String>,
    /// Its signing secret, when the environment gives one; otherwise the
    /// endpoint's own (kept with `--data`, so a restart signs as before).
    pub webhook_secret: Option<SigningSecret>,
    /// The business name the test checkout shows, as Stripe shows the
    /// account's public business name.
    pub account_name: Option<String>,
    /// Stripe Tax set up, with its head office in this country (ISO code),
    /// as an author sets it in Stripe's Dashboard; unset, tax is refused.
    pub tax_origin: Option<String>,
    /// Where Stripe Tax collects (`registrations::parse`'s forms); none,
    /// and no checkout is taxed, as Stripe does.
    pub tax_registrations: Vec<String>,
    /// The account's terms of service (its public details); unset,
    /// consent to the terms is refused.
    pub terms_of_service_url: Option<String>,
    /// The account's country (ISO code), which sets Stripe's fees; unset,
    /// the Stripe Tax head office's, else the US.
    pub country: Option<String>,
}

/// Faults injected into API requests, for tests of retries.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Faults {
    /// The share of API requests (0.0 to 1.0) answered with `status`.
    #[serde(default)]
    pub rate: f64,
    /// 500 (the default), 429, 502, 503...
    #[serde(default)]
    pub status: Option<u16>,
    /// Added to every API request.
    #[serde(default)]
    pub latency_ms: u64,
    /// `before` (the default): the request is not carried out; `after`: it
    /// is, and its answer is lost.
    #[serde(default)]
    pub when: Option<String>,
    /// Only requests to this API path (`/v1/prices`) and method (`POST`).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    /// Stop after this many faults.
    #[serde(default)]
    pub count: Option<u64>,
}

/// One API request and its answer, kept for conformance tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub params: Value,
    pub status: u16,
    pub response: Value,
}

/// The most requests the log keeps (oldest dropped first).
const LOG_CAPACITY: usize = 20_000;

/// A running sandbox's shared state.
#[derive(Debug)]
pub struct Sandbox {
    pub(crate) config: Config,
    state: Mutex<State>,
    runtime: Mutex<Runtime>,
    /// The sandbox's own URL, for the `url` of sessions and payment links.
    base_url: String,
    deliveries: webhooks::Deliveries,
    /// The signing secret the environment gives the `--webhook` endpoint.
    secret_override: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct Runtime {
    faults: Faults,
    /// How many faults were injected since the sandbox started.
    injected: u64,
    log: std::collections::VecDeque<LoggedRequest>,
    /// The webhook endpoint cannot be reached (a server down, a mistyped
    /// URL): every delivery attempt fails until it is up again, and an
    /// event whose attempts run out is never delivered, as Stripe gives up.
    webhooks_down: bool,
}

impl Sandbox {
    /// A sandbox answering at `address`, with its saved state if any.
    pub fn new(config: Config, address: SocketAddr) -> std::io::Result<Arc<Sandbox>> {
        let mut state = match &config.data {
            Some(path) => State::load(path)?,
            None => State::default(),
        };
        if let Some(origin) = &config.tax_origin {
            state.account.tax_origin = Some(origin.to_ascii_uppercase());
        }
        if !config.tax_registrations.is_empty() {
            state.account.tax_registrations = config.tax_registrations.clone();
        }
        if let Some(url) = &config.terms_of_service_url {
            state.account.terms_of_service_url = Some(url.clone());
        }
        if let Some(country) = &config.country {
            state.account.country = Some(country.to_ascii_uppercase());
        }
        let mut secret_override = None;
        if let Some(url) = &config.webhook_url {
            let existing = state
                .all("webhook_endpoint")
                .into_iter()
                .find(|endpoint| endpoint["url"] == url.as_str())
                .and_then(|endpoint| endpoint["id"].as_str().map(str::to_owned));
            let id = match existing {
                Some(id) => id,
                None => {
                    let id = objects::new_id("we_");
                    let endpoint = objects::webhook_endpoint(
                        &id,
                        url,
                        Some(rules::VERSION),
                        &["*".to_owned()],
                        state.now(),
                    );
                    state.insert(endpoint);
                    id
                }
            };
            // A secret of its own is kept with the data; one from the
            // environment stays in memory (the environment gives it again).
            match &config.webhook_secret {
                Some(secret) => {
                    secret_override = Some((id, secret.expose().to_owned()));
                }
                None => {
                    state
                        .webhook_secrets
                        .entry(id)
                        .or_insert_with(|| format!("whsec_{}", uuid::Uuid::new_v4().simple()));
                }
            }
            if let Some(path) = &config.data {
                state.save(path)?;
            }
        }
        let deliveries = webhooks::Deliveries::default();
        Ok(Arc::new(Sandbox {
            base_url: format!("http://{address}"),
            state: Mutex::new(state),
            runtime: Mutex::new(Runtime::default()),
            deliveries,
            config,
            secret_override,
        }))
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How many webhook endpoints events go to.
    fn webhooks(&self) -> i64 {
        self.endpoints(&self.state()).len() as i64
    }

    /// The enabled webhook endpoints, URL and signing secret.
    fn endpoints(&self, state: &State) -> Vec<(String, String)> {
        state.endpoints(self.secret_override.as_ref())
    }

    /// The URL `--webhook` named, if any.
    pub fn webhook_url(&self) -> Option<&str> {
        self.config.webhook_url.as_deref()
    }

    /// The signing secret of the endpoint `--webhook` named, if any.
    pub fn webhook_secret(&self) -> Option<SigningSecret> {
        let url = self.config.webhook_url.as_ref()?;
        let state = self.state();
        self.endpoints(&state)
            .into_iter()
            .find(|(endpoint_url, _)| endpoint_url == url)
            .filter(|(_, secret)| !secret.is_empty())
            .map(|(_, secret)| SigningSecret::new(secret))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the webhook endpoint is down (`POST /_sandbox/webhooks`).
    pub(crate) fn webhooks_down(&self) -> bool {
        self.runtime().webhooks_down
    }

    fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Saves the state when it is kept in a file; delivers new events.
    fn after_change(self: &Arc<Self>, state: &mut State) {
        if let Some(path) = &self.config.data
            && let Err(error) = state.save(path)
        {
            tracing::error!("cannot save the sandbox to `{}`: {error}", path.display());
        }
        let events = std::mem::take(&mut state.pending_events);
        let now = state.now();
        for (url, secret) in self.endpoints(state) {
            for event in &events {
                webhooks::deliver(self, url.clone(), secret.clone(), event.clone(), now);
            }
        }
    }
}

/// Serves `sandbox` on `listener` until `shutdown` completes.
pub async fn serve(
    sandbox: Arc<Sandbox>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // Delayed payments settle by the sandbox's clock, requests or not.
    let settling = sandbox.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            settling.settle();
        }
    });
    warp::serve(routes(sandbox))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    ticker.abort();
}

impl Sandbox {
    /// Settles the delayed payments that are due, and delivers their
    /// events; tries again the deliveries whose retry is due.
    pub(crate) fn settle(self: &Arc<Self>) {
        let webhooks = self.webhooks();
        let mut state = self.state();
        if sessions::settle_due(&mut state, &self.base_url, webhooks) > 0 {
            self.after_change(&mut state);
        }
        let now = state.now();
        drop(state);
        webhooks::retry_due(self, now);
    }
}

/// Every route of the sandbox, as one warp filter.
pub fn routes(
    sandbox: Arc<Sandbox>,
) -> impl Filter<Extract = (Response<Vec<u8>>,), Error = std::convert::Infallible> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || sandbox.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes().or(warp::any().map(Bytes::new)).unify())
        .then(handle)
}

async fn handle(
    sandbox: Arc<Sandbox>,
    method: Method,
    path: warp::path::FullPath,
    query: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Vec<u8>> {
    let path = path.as_str().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", ..] => api_request(&sandbox, &method, &path, &query, &headers, &body).await,
        ["checkout", session] => checkout::page(&sandbox, &method, session, &body),
        ["pay", link] => checkout::payment_link(&sandbox, link, &query),
        ["invoices", invoice] => checkout::invoice_page(&sandbox, invoice),
        ["_sandbox", rest @ ..] => control::handle(&sandbox, &method, rest, &query, &body),
        [""] => checkout::index(&sandbox),
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn api_request(
    sandbox: &Arc<Sandbox>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response<Vec<u8>> {
    let request_id = objects::new_id("req_");
    let encoded = if *method == Method::GET || *method == Method::DELETE {
        query.to_owned()
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let fault = injected_fault(sandbox, method, path).await;
    if let Some(fault) = fault
        && !fault.after
    {
        // Refused before any work; the log still shows the request came.
        let params = Params::parse(&encoded)
            .map(|params| params.as_json().clone())
            .unwrap_or_else(|_| json!({}));
        let response = fault_body(fault.status);
        log_request(
            sandbox,
            LoggedRequest {
                method: method.to_string(),
                path: path.to_owned(),
                params,
                status: fault.status,
                response: response.clone(),
            },
        );
        return api_response(fault.status, &response, &request_id, &[]);
    }
    let outcome = authenticate(headers).and_then(|api_key| {
        check_version(headers)?;
        Ok((api_key, Params::parse(&encoded)?))
    });
    let (api_key, params) = match outcome {
        Ok(pair) => pair,
        Err(error) => {
            let (status, body) = error.to_response();
            return api_response(status, &body, &request_id, &[]);
        }
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty())
        .map(str::to_owned);
    let asked = Asked {
        api_key: &api_key,
        method,
        path,
        params: &params,
        idempotency_key: idempotency_key.as_deref(),
    };
    let (status, response, replayed) = answer(sandbox, &asked);
    let mut extra_headers: Vec<(&str, String)> = Vec::new();
    if replayed {
        extra_headers.push(("Idempotent-Replayed", "true".into()));
    }
    if let Some(key) = &idempotency_key {
        extra_headers.push(("Idempotency-Key", key.clone()));
    }
    log_request(
        sandbox,
        LoggedRequest {
            method: method.to_string(),
            path: path.to_owned(),
            params: params.as_json().clone(),
            status,
            response: response.clone(),
        },
    );
    match fault {
        // The work is done, and the client is told it failed.
        Some(fault) => api_response(
            fault.status,
            &fault_body(fault.status),
            &request_id,
            &extra_headers,
        ),
        None => api_response(status, &response, &request_id, &extra_headers),
    }
}

/// A failure the control surface asked for, on this request.
#[derive(Clone, Copy)]
struct Fault {
    status: u16,
    /// After the work is done (the client is told it failed), or before.
    after: bool,
}

/// Waits the latency asked for, and draws whether this request fails
/// (counting down a limited number of failures).
async fn injected_fault(sandbox: &Sandbox, method: &Method, path: &str) -> Option<Fault> {
    let faults = sandbox.runtime().faults.clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let targeted = faults.path.as_deref().is_none_or(|p| p == path)
        && faults
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
    if !targeted || faults.rate <= 0.0 || rand::random::<f64>() >= faults.rate {
        return None;
    }
    let mut runtime = sandbox.runtime();
    match &mut runtime.faults.count {
        Some(0) => return None,
        Some(left) => *left -= 1,
        None => {}
    }
    runtime.injected += 1;
    Some(Fault {
        status: faults.status.unwrap_or(500),
        after: faults.when.as_deref() == Some("after"),
    })
}

/// An authenticated API request, its parameters read.
struct Asked<'a> {
    api_key: &'a str,
    method: &'a Method,
    path: &'a str,
    params: &'a Params,
    idempotency_key: Option<&'a str>,
}

/// Runs the request once under the state's lock, or replays the answer
/// its idempotency key recorded (Stripe's rules: a key kept 24 hours,
/// refused with other parameters, not saved when validation failed).
/// Returns the status, the body, and whether it was a replay.
fn answer(sandbox: &Arc<Sandbox>, asked: &Asked<'_>) -> (u16, Value, bool) {
    let mut state = sandbox.state();
    let post = *asked.method == Method::POST;
    let replay_slot = match asked.idempotency_key {
        Some(key) if post => Some(format!("{}\u{0}{key}", asked.api_key)),
        _ => None,
    };
    let fingerprint = format!("{} {} {}", asked.method, asked.path, asked.params.as_json());
    let now = state.now();
    state
        .idempotency
        .retain(|_, replay| now - replay.at < 86_400);
    let replayed = replay_slot
        .as_ref()
        .and_then(|slot| state.idempotency.get(slot).cloned());
    match replayed {
        Some(replay) if replay.fingerprint == fingerprint => (replay.status, replay.body, true),
        Some(_) => {
            let key = asked.idempotency_key.unwrap_or_default();
            let (status, body) = ApiError {
                status: 400,
                kind: "idempotency_error",
                code: None,
                message: format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                ),
                param: None,
                decline_code: None,
            }
            .to_response();
            (status, body, false)
        }
        None => {
            let context = api::Context {
                base_url: &sandbox.base_url,
                idempotency_key: asked.idempotency_key,
                webhooks: sandbox.endpoints(&state).len() as i64,
            };
            let (status, body, validation) =
                match api::dispatch(&mut state, &context, asked.method, asked.path, asked.params) {
                    Ok(body) => (200, body, false),
                    Err(error) => {
                        let validation = error.is_validation();
                        let (status, body) = error.to_response();
                        (status, body, validation)
                    }
                };
            // "Results are only saved if an API endpoint started
            // executing": not when the parameters failed validation.
            if let Some(slot) = replay_slot
                && !validation
            {
                state.idempotency.insert(
                    slot,
                    Replay {
                        fingerprint,
                        status,
                        body: body.clone(),
                        at: now,
                    },
                );
            }
            if post {
                sandbox.after_change(&mut state);
            }
            (status, body, false)
        }
    }
}

fn log_request(sandbox: &Sandbox, request: LoggedRequest) {
    let mut runtime = sandbox.runtime();
    if runtime.log.len() >= LOG_CAPACITY {
        runtime.log.pop_front();
    }
    runtime.log.push_back(request);
}

fn fault_body(status: u16) -> Value {
    if status == 429 {
        objects::error(
            "invalid_request_error",
            Some("rate_limit"),
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            None,
            None,
        )
    } else {
        objects::error(
            "api_error",
            None,
            "An unknown error occurred on Stripe's end. Please try again (sandbox fault injection).",
            None,
            None,
        )
    }
}

/// The API version a request asks for: absent (the account's default) or
/// the one the sandbox answers in. Stripe refuses names it does not know;
/// a real version other than the sandbox's is refused too, since the
/// sandbox could not answer in its shapes.
fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(version) = headers.get("stripe-version") else {
        return Ok(());
    };
    let version = version.to_str().unwrap_or_default();
    if version == rules::VERSION {
        return Ok(());
    }
    Err(ApiError::invalid_request(
        &format!(
            "Invalid Stripe API version: {version}. The sandbox answers in {} only.",
            rules::VERSION
        ),
        None,
    ))
}

/// The API key of a request: `Authorization: Bearer sk_test_…` or HTTP
/// basic auth with the key as user name, as Stripe takes it.
fn authenticate(headers: &HeaderMap) -> Result<String, ApiError> {
    let header = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let key = if let Some(token) = header.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else if let Some(encoded) = header.strip_prefix("Basic ") {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|pair| pair.split(':').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    if key.is_empty() {
        return Err(ApiError {
            status: 401,
            kind: "invalid_request_error",
            code: None,
            message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.".into(),
            param: None,
            decline_code: None,
        });
    }
    let valid = ["sk_test_", "rk_test_"].iter().any(|prefix| {
        key.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    });
    if !valid {
        return Err(ApiError {
            status: 401,
            kind: "invalid_request_error",
            code: None,
            message: format!("Invalid API Key provided: {}", redact(&key)),
            param: None,
            decline_code: None,
        });
    }
    Ok(key)
}

/// A key as Stripe shows it in errors: its prefix and last four characters,
/// or only asterisks when it is too short to show any of it.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 {
        return "*".repeat(chars.len().min(24));
    }
    let prefix: String = match key.match_indices('_').nth(1) {
        Some((index, _)) if index < 10 => key[..=index].to_owned(),
        _ => String::new(),
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!(
        "{prefix}{}{tail}",
        "*".repeat(chars.len() - prefix.chars().count() - 4)
    )
}

fn api_response(
    status: u16,
    body: &Value,
    request_id: &str,
    extra: &[(&str, String)],
) -> Response<Vec<u8>> {
    let mut builder = Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Request-Id", request_id)
        .header("Stripe-Version", rules::VERSION);
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    bytes.push(b'\n');
    builder
        .body(bytes)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(format!("{text}\n").into_bytes());
    *response.status_mut() = status;
    response.headers_mut().insert(
        "Content-Type",
        warp::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    let mut response = Response::new(serde_json::to_vec_pretty(body).unwrap_or_default());
    *response.status_mut() = status;
    response.headers_mut().insert(
        "Content-Type",
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A Stripe API error, as the sandbox answers it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    pub decline_code: Option<&'static str>,
}

impl ApiError {
    /// Whether the request's parameters failed validation, before the
    /// endpoint began its work.
    pub fn is_validation(&self) -> bool {
        matches!(
            self.code,
            Some(
                "parameter_missing"
                    | "parameter_invalid"
                    | "parameter_unknown"
                    | "parameter_invalid_integer"
                    | "parameter_invalid_empty"
            )
        )
    }

    pub fn to_response(&self) -> (u16, Value) {
        let body = objects::error(
            self.kind,
            self.code,
            &self.message,
            self.param.as_deref(),
            self.decline_code,
        );
        (self.status, body)
    }

    pub fn missing(param: &str) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_missing"),
            message: format!("Missing required param: {param}."),
            param: Some(param.to_owned()),
            decline_code: None,
        }
    }

    pub fn invalid(param: &str, message: &str) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_invalid"),
            message: message.to_owned(),
            param: Some(param.to_owned()),
            decline_code: None,
        }
    }

    /// An object created with an `id` that is taken: "Product already
    /// exists." for `what` = `Product`.
    pub fn already_exists(what: &str) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("resource_already_exists"),
            message: format!("{what} already exists."),
            param: Some("id".to_owned()),
            decline_code: None,
        }
    }

    pub fn invalid_request(message: &str, param: Option<&str>) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            message: message.to_owned(),
            param: param.map(str::to_owned),
            decline_code: None,
        }
    }

    pub fn no_such(kind: &str, id: &str, param: &str) -> ApiError {
        ApiError {
            status: 404,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            message: format!("No such {kind}: '{id}'"),
            param: Some(param.to_owned()),
            decline_code: None,
        }
    }

    pub fn unrecognized(method: &Method, path: &str) -> ApiError {
        ApiError {
            status: 404,
            kind: "invalid_request_error",
            code: None,
            message: format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
            param: None,
            decline_code: None,
        }
    }
}

/// Starts a sandbox on `listener` in the background and returns it with a
/// handle that stops it: for tests and the demo.
pub async fn spawn(
    config: Config,
    listener: tokio::net::TcpListener,
) -> std::io::Result<(
    Arc<Sandbox>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let address = listener.local_addr()?;
    let sandbox = Sandbox::new(config, address)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(sandbox.clone(), listener, async move {
        let _ = stopped.await;
    }));
    Ok((sandbox, stop, task))
}

/// The request log, oldest first.
pub fn request_log(sandbox: &Sandbox) -> Vec<LoggedRequest> {
    sandbox.runtime().log.iter().cloned().collect()
}

pub(crate) fn log_json(sandbox: &Sandbox) -> Value {
    json!(request_log(sandbox))
}

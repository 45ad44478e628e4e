//! What went wrong talking to Stripe, as a person reads it: Stripe's own
//! error body mapped to a message that names the setting to change, and a
//! hint; never the API key.

use reqwest::StatusCode;

use crate::error;
use crate::error::Registered;
use crate::secret::Secret;

/// What went wrong talking to Stripe. Messages name the setting to change;
/// none carries the API key.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("{0}")]
    Api(Box<ApiFailure>),
    #[error(
        "cannot reach Stripe at `{base}`{}",
        if *attempts > 1 { format!(" after {attempts} attempts") } else { String::new() }
    )]
    Unreachable {
        base: String,
        attempts: u32,
        source: reqwest::Error,
    },
    #[error("Stripe's answer to `{path}` is not what shop expects")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
}

/// Stripe's answer to a request it refused.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    /// Stripe's error `type`: `invalid_request_error`, `card_error`, ...
    pub kind: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: String,
    pub param: Option<String>,
    /// The API path, for messages.
    pub path: String,
    /// The variable the API key came from, for messages.
    pub key_name: String,
    pub attempts: u32,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&api_message(self).0)
    }
}

inventory::submit!(Registered::of::<StripeError>());

impl error::Hint for StripeError {
    fn hint(&self) -> String {
        match self {
            StripeError::Api(failure) => api_message(failure).1,
            StripeError::Unreachable { .. } => {
                "check the network, or `SHOP_STRIPE_API_BASE` if it \
                 points at `shop sandbox` (is it running?)"
                    .into()
            }
            StripeError::Decode { .. } => {
                "this is a bug in shop; please report it with the command you ran".into()
            }
        }
    }
}

impl StripeError {
    pub(super) fn from_response(
        status: StatusCode,
        body: &[u8],
        path: &str,
        key: &Secret,
        attempts: u32,
    ) -> StripeError {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Body,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<String>,
            decline_code: Option<String>,
            message: Option<String>,
            param: Option<String>,
        }
        let parsed = serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|envelope| envelope.error);
        let (kind, code, decline_code, message, param) = match parsed {
            Some(body) => (
                body.kind,
                body.code,
                body.decline_code,
                body.message,
                body.param,
            ),
            None => (None, None, None, None, None),
        };
        // Stripe shows a redacted key in some messages; never let more of it
        // than that reach a log or a terminal.
        let message = message.map(|message| message.replace(key.expose(), "[redacted]"));
        StripeError::Api(Box::new(ApiFailure {
            status: status.as_u16(),
            kind: kind.unwrap_or_else(|| {
                if status.is_server_error() {
                    "api_error".into()
                } else {
                    "invalid_request_error".into()
                }
            }),
            code,
            decline_code,
            message: message.unwrap_or_else(|| format!("HTTP {status}")),
            param,
            path: path.to_owned(),
            key_name: key.name().to_owned(),
            attempts,
        }))
    }

    /// Stripe's error `code` (`resource_missing`, `card_declined`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            StripeError::Api(failure) => failure.code.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            StripeError::Api(failure) => Some(failure.status),
            _ => None,
        }
    }
}

/// What Stripe's refusal means, and what to do about it.
pub(super) fn api_message(failure: &ApiFailure) -> (String, String) {
    let ApiFailure {
        status,
        kind,
        message,
        path,
        key_name,
        attempts,
        ..
    } = failure;
    let (status, attempts) = (*status, *attempts);
    let kind = kind.as_str();
    let code = failure.code.as_deref();
    let decline_code = failure.decline_code.as_deref();
    let param = failure.param.as_deref();
    let tries = if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    };
    if status == 401 || kind == "authentication_error" {
        return (
            format!("Stripe refused the API key in `{key_name}`: {message}"),
            format!(
                "set `{key_name}` to a secret key from https://dashboard.stripe.com/apikeys \
                 (sk_test_… or sk_live_…); with `shop sandbox`, any sk_test_ key works"
            ),
        );
    }
    if status == 429 || kind == "rate_limit_error" || code == Some("rate_limit") {
        return (
            format!("Stripe is limiting the rate of requests{tries}: {message}"),
            "wait a minute and run the command again; it is safe to repeat".into(),
        );
    }
    match kind {
        "card_error" => (
            format!(
                "the card was declined: {message}{}",
                decline_code
                    .or(code)
                    .map(|code| format!(" (`{code}`)"))
                    .unwrap_or_default()
            ),
            "the buyer can try another card".into(),
        ),
        "idempotency_error" => (
            format!("Stripe refused a repeated `{path}` request with other parameters: {message}"),
            "the object was first created with other settings; undo the change to the \
             product file, or see what exists in Stripe's dashboard"
                .into(),
        ),
        _ if param == Some("automatic_tax[enabled]") => (
            format!("Stripe refused to compute tax on `{path}`: {message}"),
            "set up Stripe Tax in Stripe's Dashboard (Settings → Tax: your head office and where \
             you are registered), or set `automatic = false` under `[tax]` in shop.toml"
                .into(),
        ),
        _ if param == Some("consent_collection[terms_of_service]") => (
            format!("Stripe refused to ask for consent to the terms on `{path}`: {message}"),
            "set your terms of service URL in Stripe's Dashboard (Settings → Business → Public \
             details), or remove `[consent]` from shop.toml"
                .into(),
        ),
        _ if param == Some("consent_collection[promotions]") => (
            format!(
                "Stripe refused to ask buyers for their consent to news on `{path}`: {message}"
            ),
            "remove `checkout_consent` from `[audience]` in shop.toml: Stripe offers the box to \
             accounts in the US only; buyers elsewhere follow through the store's Follow forms"
                .into(),
        ),
        _ if status >= 500 || kind == "api_error" => (
            format!("Stripe failed ({status}){tries} on `{path}`: {message}"),
            "Stripe's status is at https://status.stripe.com; the command is safe to run again"
                .into(),
        ),
        _ => (
            format!(
                "Stripe refused `{path}` ({status}{}): {message}{}",
                code.map(|code| format!(", `{code}`")).unwrap_or_default(),
                param
                    .map(|param| format!(" (parameter `{param}`)"))
                    .unwrap_or_default(),
            ),
            format!(
                "check the setting behind {}; if it looks right, this is a bug in shop",
                param.map_or_else(|| "the request".to_owned(), |param| format!("`{param}`")),
            ),
        ),
    }
}

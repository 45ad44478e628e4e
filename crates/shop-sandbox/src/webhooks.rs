//! Delivering the sandbox's events to a webhook URL, signed as Stripe signs
//! them, with bounded retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::Sandbox;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Attempts per event before the sandbox gives up on it.
const ATTEMPTS: u32 = 8;

/// What happened to each event sent to the webhook.
#[derive(Debug, Default)]
pub struct Deliveries {
    log: Mutex<Vec<Delivery>>,
    client: std::sync::OnceLock<reqwest::Client>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub event: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub attempts: u32,
    /// The last HTTP status the endpoint answered, if it answered.
    pub status: Option<u16>,
    pub delivered: bool,
}

impl Deliveries {
    pub fn to_json(&self) -> Value {
        json!(
            *self
                .log
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        )
    }

    fn record(&self, delivery: Delivery) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match log.iter_mut().find(|known| known.event == delivery.event) {
            Some(known) => *known = delivery,
            None => log.push(delivery),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks) shop-sandbox")
                .build()
                .unwrap_or_default()
        })
    }
}

/// Sends `event` to `url` in the background until it is answered with 2xx
/// or the attempts run out.
pub fn deliver(sandbox: Arc<Sandbox>, url: String, secret: String, event: Value) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        let payload = serde_json::to_vec_pretty(&event).unwrap_or_default();
        let mut delay = Duration::from_millis(250);
        let mut delivery = Delivery {
            event: id.clone(),
            kind,
            attempts: 0,
            status: None,
            delivered: false,
        };
        while delivery.attempts < ATTEMPTS {
            delivery.attempts += 1;
            // Signed with the real time of sending, whatever the sandbox's
            // clock says, as the receiver checks it against its own.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs() as i64);
            if secret.is_empty() {
                break;
            }
            if sandbox.webhooks_down() {
                tracing::debug!("webhook delivery of {id} failed: the endpoint is down");
                sandbox.deliveries.record(delivery.clone());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
            let signature = sign(&payload, &secret, now);
            let result = sandbox
                .deliveries
                .client()
                .post(&url)
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Stripe-Signature", signature)
                .body(payload.clone())
                .send()
                .await;
            match result {
                Ok(response) => {
                    delivery.status = Some(response.status().as_u16());
                    if response.status().is_success() {
                        delivery.delivered = true;
                        break;
                    }
                }
                Err(error) => tracing::debug!("webhook delivery of {id} failed: {error}"),
            }
            sandbox.deliveries.record(delivery.clone());
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        if delivery.delivered {
            sandbox
                .state()
                .update(&id, |event| event["pending_webhooks"] = json!(0));
        } else {
            tracing::warn!(
                "gave up delivering {id} to {url} after {} attempts",
                delivery.attempts
            );
        }
        sandbox.deliveries.record(delivery);
    });
}

/// The `Stripe-Signature` header of `payload` sent at `timestamp`, as Stripe
/// signs: HMAC-SHA256 of `{timestamp}.{payload}` with the endpoint's secret,
/// in hex, as `t=…,v1=…`. Written here, apart from `shop`'s verifier, so
/// that a mistake in one is not matched by the other.
fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("t={timestamp},v1={signature}")
}

//! Delivering the sandbox's events to a webhook URL, signed as Stripe signs
//! them, retried as Stripe retries, and with the faults Stripe documents
//! and a receiver must bear: "Stripe doesn't guarantee the delivery of
//! events in the order that they're generated", and "webhook endpoints
//! might occasionally receive the same event more than once".
//!
//! An attempt that fails is tried again "for up to three days" with an
//! exponential back off, by the sandbox's clock ([`RETRY_AFTER`]), so that
//! a test or a rehearsal advances the clock to see an endpoint that was
//! down for days, rather than waiting. The control surface
//! (`POST /_sandbox/webhooks`) takes the endpoint down, holds events and
//! releases them in another order, sends each twice, or delays each.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Sandbox;

/// When each retry of a failed event is due, in seconds after its first
/// attempt. Stripe publishes no intervals, only "exponential back off"
/// for up to three days in live mode; these grow from a minute to the
/// third day, when the sandbox gives up as Stripe does.
pub const RETRY_AFTER: [i64; 9] = [
    60, 300, 1_800, 7_200, 18_000, 36_000, 86_400, 172_800, 259_200,
];

/// What happened to each event sent to the webhook, the retries due, and
/// the faults asked for.
#[derive(Debug, Default)]
pub struct Deliveries {
    log: Mutex<Vec<Delivery>>,
    client: std::sync::OnceLock<reqwest::Client>,
    retries: Mutex<Vec<Pending>>,
    faults: Mutex<DeliveryFaults>,
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
    /// How many times it was delivered (more than once when duplicated).
    pub deliveries: u32,
    /// When the next attempt is due, by the sandbox's clock; none once
    /// delivered, or given up.
    pub next_attempt: Option<i64>,
}

/// An event on its way to one endpoint.
#[derive(Debug, Clone)]
struct Pending {
    url: String,
    secret: String,
    event: Value,
    /// Its first attempt, by the sandbox's clock.
    first: i64,
    attempts: u32,
    /// A second delivery of an event already delivered.
    duplicate: bool,
}

/// The faults asked for on the control surface.
#[derive(Debug, Default)]
pub struct DeliveryFaults {
    /// Events are kept back, in the order made, until released.
    pub hold: bool,
    held: Vec<Pending>,
    /// Each event is delivered a second time once the first is answered.
    pub duplicate: bool,
    /// Each event's first attempt waits this long (real time).
    pub delay_ms: u64,
}

impl Deliveries {
    pub fn to_json(&self) -> Value {
        json!(*lock(&self.log))
    }

    /// The faults, to read or change.
    pub fn faults(&self) -> MutexGuard<'_, DeliveryFaults> {
        lock(&self.faults)
    }

    fn record(&self, delivery: &Delivery) {
        let mut log = lock(&self.log);
        match log.iter_mut().find(|known| known.event == delivery.event) {
            Some(known) => *known = delivery.clone(),
            None => log.push(delivery.clone()),
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `event` to `url`, made at `now` by the sandbox's clock: at once,
/// or kept while events are held.
pub fn deliver(sandbox: &Arc<Sandbox>, url: String, secret: String, event: Value, now: i64) {
    if secret.is_empty() {
        return;
    }
    let pending = Pending {
        url,
        secret,
        event,
        first: now,
        attempts: 0,
        duplicate: false,
    };
    let delay = {
        let mut faults = sandbox.deliveries.faults();
        if faults.hold {
            faults.held.push(pending);
            return;
        }
        faults.delay_ms
    };
    spawn(sandbox, vec![pending], Duration::from_millis(delay));
}

/// Releases the held events, in the order they were made or its reverse,
/// one after the other: each is answered (or fails) before the next goes.
pub fn release(sandbox: &Arc<Sandbox>, reverse: bool) -> usize {
    let mut held = {
        let mut faults = sandbox.deliveries.faults();
        faults.hold = false;
        std::mem::take(&mut faults.held)
    };
    if reverse {
        held.reverse();
    }
    let count = held.len();
    spawn(sandbox, held, Duration::ZERO);
    count
}

/// Tries again the events whose next attempt is due at `now`.
pub fn retry_due(sandbox: &Arc<Sandbox>, now: i64) {
    let due: Vec<Pending> = {
        let mut retries = lock(&sandbox.deliveries.retries);
        let (due, later) = std::mem::take(&mut *retries)
            .into_iter()
            .partition(|pending| next_attempt(pending).is_some_and(|at| at <= now));
        *retries = later;
        due
    };
    if !due.is_empty() {
        spawn(sandbox, due, Duration::ZERO);
    }
}

/// When a pending event's next attempt is due, if it has one left.
fn next_attempt(pending: &Pending) -> Option<i64> {
    let retry = (pending.attempts as usize).checked_sub(1)?;
    RETRY_AFTER.get(retry).map(|after| pending.first + after)
}

/// Attempts each of `batch` in turn, in the background, after `delay`.
fn spawn(sandbox: &Arc<Sandbox>, batch: Vec<Pending>, delay: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let sandbox = sandbox.clone();
    runtime.spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        for pending in batch {
            attempt(&sandbox, pending).await;
        }
    });
}

/// One attempt: delivered (and, when asked, delivered again), or kept for
/// its next retry, or given up after the last.
async fn attempt(sandbox: &Arc<Sandbox>, mut pending: Pending) {
    let id = pending.event["id"].as_str().unwrap_or_default().to_owned();
    let mut delivery = lock(&sandbox.deliveries.log)
        .iter()
        .find(|known| known.event == id)
        .cloned()
        .unwrap_or_else(|| Delivery {
            event: id.clone(),
            kind: pending.event["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            attempts: 0,
            status: None,
            delivered: false,
            deliveries: 0,
            next_attempt: None,
        });
    pending.attempts += 1;
    delivery.attempts += 1;
    let answered = if sandbox.webhooks_down() {
        tracing::debug!("webhook delivery of {id} failed: the endpoint is down");
        None
    } else {
        post(sandbox, &pending).await
    };
    delivery.status = answered.or(delivery.status);
    if answered.is_some_and(|status| (200..300).contains(&status)) {
        delivery.delivered = true;
        delivery.deliveries += 1;
        delivery.next_attempt = None;
        sandbox.deliveries.record(&delivery);
        sandbox
            .state()
            .update(&id, |event| event["pending_webhooks"] = json!(0));
        if !pending.duplicate && sandbox.deliveries.faults().duplicate {
            let again = Pending {
                attempts: 0,
                duplicate: true,
                ..pending
            };
            Box::pin(attempt(sandbox, again)).await;
        }
        return;
    }
    delivery.next_attempt = next_attempt(&pending);
    sandbox.deliveries.record(&delivery);
    if delivery.next_attempt.is_some() {
        lock(&sandbox.deliveries.retries).push(pending);
    } else {
        tracing::warn!(
            "gave up delivering {id} to {} after {} attempts",
            pending.url,
            pending.attempts
        );
    }
}

/// Posts the event, signed with the real time of sending (whatever the
/// sandbox's clock says, as the receiver checks it against its own);
/// returns the status the endpoint answered, if it answered.
async fn post(sandbox: &Sandbox, pending: &Pending) -> Option<u16> {
    let payload = serde_json::to_vec_pretty(&pending.event).unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let signature = sign(&payload, &pending.secret, now);
    let result = sandbox
        .deliveries
        .client()
        .post(&pending.url)
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Stripe-Signature", signature)
        .body(payload)
        .send()
        .await;
    match result {
        Ok(response) => Some(response.status().as_u16()),
        Err(error) => {
            tracing::debug!("webhook delivery to {} failed: {error}", pending.url);
            None
        }
    }
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

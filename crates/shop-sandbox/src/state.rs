//! The sandbox's objects, their order, its clock, and its persistence.
//!
//! Objects are Stripe-shaped JSON kept by id; each kind has an index ordered
//! by (created, sequence), so listing newest-first with `created` filters
//! and `starting_after` costs what the page costs, not what the store holds.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiError;
use super::params::Params;

/// What Stripe keeps in its Dashboard rather than the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Where the account is: what Stripe's fees are (`sandbox::fees`).
    #[serde(default)]
    pub country: Option<String>,
    /// The head office's country: Stripe Tax is set up.
    pub tax_origin: Option<String>,
    /// Where it is registered to collect tax (`registrations::parse`).
    #[serde(default)]
    pub tax_registrations: Vec<String>,
    /// The public business details' terms of service.
    pub terms_of_service_url: Option<String>,
    /// The one currency the account settles in (its bank account's);
    /// none: it settles each payment in the currency charged.
    #[serde(default)]
    pub settle_in: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Seconds added to the real time: the settable clock.
    pub clock_offset: i64,
    /// While set, the clock stands at this second: a seed makes each of its
    /// sessions at the second it names, however long the seeding takes.
    #[serde(skip)]
    pub frozen: Option<i64>,
    sequence: u64,
    objects: HashMap<String, Stored>,
    /// Line items by checkout session id.
    pub line_items: HashMap<String, Vec<Value>>,
    /// The price each payment link sells (Stripe keeps its line items apart).
    pub payment_link_prices: HashMap<String, String>,
    /// Replays by (API key, idempotency key).
    pub idempotency: HashMap<String, Replay>,
    /// Delayed payments (SEPA debits) waiting to succeed or fail.
    #[serde(default)]
    pub settlements: Vec<Settlement>,
    /// Seconds of the sandbox's clock before a delayed payment settles (a
    /// minute unless set on the control surface).
    #[serde(default)]
    pub async_payment_delay: Option<i64>,
    /// Whether new refunds start `pending` (settled from the control
    /// surface) rather than `succeeded` at once.
    #[serde(default)]
    pub refunds_pending: bool,
    /// The discounts of each session, for `total_details.breakdown`.
    #[serde(default)]
    pub breakdowns: HashMap<String, Value>,
    /// The products each coupon applies to (`applies_to[products]`), when
    /// it names them.
    #[serde(default)]
    pub coupon_products: HashMap<String, Vec<String>>,
    /// Each webhook endpoint's signing secret (the object shows it only
    /// when created), kept with the data so a restart signs as before.
    #[serde(default)]
    pub webhook_secrets: HashMap<String, String>,
    /// What the account set in Stripe's Dashboard: Stripe Tax, the terms.
    #[serde(default)]
    pub account: Account,
    /// The last invoice number given.
    #[serde(default)]
    pub invoice_sequence: u64,
    #[serde(skip)]
    index: HashMap<String, BTreeMap<(i64, u64), String>>,
    /// Events made by the current request, for the webhook to deliver.
    #[serde(skip)]
    pub pending_events: Vec<Value>,
}

/// A delayed payment: its session, when it settles, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settlement {
    pub session: String,
    pub due: i64,
    pub succeeds: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    kind: String,
    created: i64,
    sequence: u64,
    value: Value,
}

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replay {
    /// Method, path and parameters of the first request.
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
    /// When it was stored: Stripe keeps keys for 24 hours.
    #[serde(default)]
    pub at: i64,
}

impl State {
    /// The sandbox's now, in Unix seconds.
    pub fn now(&self) -> i64 {
        if let Some(frozen) = self.frozen {
            return frozen;
        }
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        real + self.clock_offset
    }

    /// Adds an object of `kind` (its `object` field) with its `id` and
    /// `created`.
    pub fn insert(&mut self, value: Value) -> Value {
        let id = value["id"].as_str().unwrap_or_default().to_owned();
        let kind = value["object"].as_str().unwrap_or_default().to_owned();
        let created = value["created"].as_i64().unwrap_or_else(|| self.now());
        self.sequence += 1;
        let sequence = self.sequence;
        self.index
            .entry(kind.clone())
            .or_default()
            .insert((created, sequence), id.clone());
        self.objects.insert(
            id,
            Stored {
                kind,
                created,
                sequence,
                value: value.clone(),
            },
        );
        value
    }

    /// Records an event about `object` (a snapshot as it is now).
    pub fn emit(
        &mut self,
        kind: &str,
        object: Value,
        idempotency_key: Option<&str>,
        webhooks: i64,
    ) {
        let now = self.now();
        let event = super::objects::event(
            &super::objects::new_id("evt_"),
            kind,
            object,
            now,
            webhooks,
            idempotency_key,
        );
        self.insert(event.clone());
        self.pending_events.push(event);
    }

    /// The enabled webhook endpoints: URL and signing secret.
    pub fn endpoints(&self, secret_override: Option<&(String, String)>) -> Vec<(String, String)> {
        self.all("webhook_endpoint")
            .into_iter()
            .filter(|endpoint| endpoint["status"] == "enabled")
            .filter_map(|endpoint| {
                let id = endpoint["id"].as_str()?;
                let url = endpoint["url"].as_str()?;
                let secret = match secret_override {
                    Some((overridden, secret)) if overridden == id => secret.clone(),
                    _ => self.webhook_secrets.get(id)?.clone(),
                };
                Some((url.to_owned(), secret))
            })
            .collect()
    }

    /// Every object of `kind`, oldest first.
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.index
            .get(kind)
            .map(|index| index.values().filter_map(|id| self.get(id)).collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id).map(|stored| &stored.value)
    }

    /// The object with this id and kind, or Stripe's `resource_missing`.
    pub fn find(&self, kind: &str, id: &str, param: &str) -> Result<&Value, ApiError> {
        match self.objects.get(id) {
            Some(stored) if stored.kind == kind => Ok(&stored.value),
            _ => Err(ApiError::no_such(kind, id, param)),
        }
    }

    /// Forgets an object (one a refused request had begun to make).
    pub fn remove(&mut self, id: &str) {
        if let Some(stored) = self.objects.remove(id)
            && let Some(index) = self.index.get_mut(&stored.kind)
        {
            index.remove(&(stored.created, stored.sequence));
        }
        self.line_items.remove(id);
        self.breakdowns.remove(id);
    }

    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut Value)) -> Option<Value> {
        let stored = self.objects.get_mut(id)?;
        change(&mut stored.value);
        Some(stored.value.clone())
    }

    /// Stripe's list: newest first, `limit` (1 to 100, default 10),
    /// `starting_after`, `ending_before`, `created` (a time, or
    /// `gt`/`gte`/`lt`/`lte`), and `filter` for the endpoint's own parameters.
    pub fn list(
        &self,
        kind: &str,
        params: &Params,
        url: &str,
        filter: impl Fn(&Value) -> bool,
    ) -> Result<Value, ApiError> {
        let limit = params.limit()?;
        let (mut lower, mut upper) = params.created_range()?;
        let cursor = |id: &str, param: &str| -> Result<(i64, u64), ApiError> {
            match self.objects.get(id) {
                Some(stored) if stored.kind == kind => Ok((stored.created, stored.sequence)),
                _ => Err(ApiError::no_such(kind, id, param)),
            }
        };
        let after = params
            .str("starting_after")
            .map(|id| cursor(id, "starting_after"))
            .transpose()?;
        let before = params
            .str("ending_before")
            .map(|id| cursor(id, "ending_before"))
            .transpose()?;
        if after.is_some() && before.is_some() {
            return Err(ApiError::invalid(
                "ending_before",
                "You may only specify one of these parameters: ending_before, starting_after.",
            ));
        }
        if let Some(key) = after {
            upper = tighter_upper(upper, Bound::Excluded(key));
        }
        if let Some(key) = before {
            lower = tighter_lower(lower, Bound::Excluded(key));
        }
        let empty = BTreeMap::new();
        let index = self.index.get(kind).unwrap_or(&empty);
        let valid = match (&lower, &upper) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a <= b
            }
            _ => true,
        };
        let mut data = Vec::new();
        let mut has_more = false;
        if valid {
            let range = index.range((lower, upper));
            let matching = range
                .filter_map(|(_, id)| self.get(id))
                .filter(|value| filter(value));
            // `ending_before` pages towards newer objects: the `limit`
            // oldest above the cursor, shown newest first.
            let picked: Vec<&Value> = if before.is_some() {
                let mut ascending: Vec<&Value> = matching.take(limit + 1).collect();
                has_more = ascending.len() > limit;
                ascending.truncate(limit);
                ascending.reverse();
                ascending
            } else {
                let mut descending: Vec<&Value> = Vec::with_capacity(limit + 1);
                let range = index.range((lower, upper)).rev();
                for value in range
                    .filter_map(|(_, id)| self.get(id))
                    .filter(|value| filter(value))
                {
                    descending.push(value);
                    if descending.len() > limit {
                        break;
                    }
                }
                has_more = descending.len() > limit;
                descending.truncate(limit);
                descending
            };
            data = picked.into_iter().cloned().collect();
        }
        Ok(json!({"object": "list", "data": data, "has_more": has_more, "url": url}))
    }

    /// Writes the state to `path` atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, path)
    }

    /// Reads a state saved by [`State::save`], or a new one if there is none.
    pub fn load(path: &Path) -> std::io::Result<State> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State::default());
            }
            Err(error) => return Err(error),
        };
        let mut state: State = serde_json::from_slice(&bytes)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
        for (id, stored) in &state.objects {
            state
                .index
                .entry(stored.kind.clone())
                .or_default()
                .insert((stored.created, stored.sequence), id.clone());
        }
        Ok(state)
    }
}

fn tighter_upper(current: Bound<(i64, u64)>, new: Bound<(i64, u64)>) -> Bound<(i64, u64)> {
    match (&current, &new) {
        (Bound::Unbounded, _) => new,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            if b < a || (b == a && matches!(new, Bound::Excluded(_))) {
                new
            } else {
                current
            }
        }
        (_, Bound::Unbounded) => current,
    }
}

fn tighter_lower(current: Bound<(i64, u64)>, new: Bound<(i64, u64)>) -> Bound<(i64, u64)> {
    match (&current, &new) {
        (Bound::Unbounded, _) => new,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            if b > a || (b == a && matches!(new, Bound::Excluded(_))) {
                new
            } else {
                current
            }
        }
        (_, Bound::Unbounded) => current,
    }
}

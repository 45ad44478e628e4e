//! Lost-link requests: answered at once, the same way for every address,
//! and looked up later, in batches on a schedule of their own.
//!
//! Whether an address bought anything must not show in the answer nor in
//! what the server does around it: a mail queued just after the answer is
//! a write the next request would wait behind, which tells a prober who
//! bought. So `/lost` only notes the address ([`Pending::note`], the same
//! for every address) and answers; every [`LOOK_UP_EVERY`] the server
//! takes all noted addresses at once, looks them up (the state, then one
//! read of the ledger for them all) and queues the links of those that
//! bought. The look-up's cost lands at its own time, not after anyone's
//! request. A server that stops looks up what it noted first.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::App;
use crate::{error, ledger};

/// How often noted addresses are looked up.
pub const LOOK_UP_EVERY: Duration = Duration::from_secs(5);

/// The most addresses noted between two look-ups: each client is limited,
/// so only a flood from very many clients fills it, and then the newest
/// are dropped (their answer was the same; they may ask again).
const MOST_PENDING: usize = 10_000;

/// The addresses asked for since the last look-up.
#[derive(Debug, Default)]
pub struct Pending(Mutex<Vec<String>>);

impl Pending {
    /// Notes a request for `email`'s links (lowercase).
    pub fn note(&self, email: String) {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() < MOST_PENDING {
            pending.push(email);
        } else {
            tracing::warn!("too many lost-link requests at once; dropped one");
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many addresses wait for the next look-up.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Looks up what was noted every `every`, until the task is dropped.
pub async fn run(app: Arc<App>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        look_up(&app).await;
    }
}

/// Looks up every noted address and queues the links of each that bought
/// something not refunded; returns how many were queued.
pub async fn look_up(app: &App) -> usize {
    let asked = app.lost.take();
    if asked.is_empty() {
        return 0;
    }
    // Each address once; each request granted one mail.
    let mut bought = HashSet::new();
    let mut unknown = HashSet::new();
    for email in &asked {
        if bought.contains(email) || unknown.contains(email) {
            continue;
        }
        match app.db.purchases_of(email).await {
            Ok(found) if !found.is_empty() => {
                bought.insert(email.clone());
            }
            Ok(_) => {
                unknown.insert(email.clone());
            }
            Err(error) => {
                tracing::error!("lost link: {}", error::one_line(&error));
            }
        }
    }
    // The rest from the ledger: one read for them all.
    if !unknown.is_empty() {
        let root = app.store().root.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let read = ledger::each(&root, |purchase| {
                let email = purchase.email.to_ascii_lowercase();
                if purchase.in_good_standing() && unknown.remove(&email) {
                    found.push(email);
                }
                Ok(())
            });
            if let Err(error) = read {
                tracing::error!("lost link: {}", error::one_line(&error));
            }
            found
        })
        .await
        .unwrap_or_default();
        bought.extend(found);
    }
    let now = app.now();
    let mut queued = 0;
    for email in asked.into_iter().filter(|email| bought.contains(email)) {
        match app.db.queue_links(&email, now).await {
            Ok(()) => queued += 1,
            Err(error) => {
                tracing::error!("cannot queue lost-link mail: {}", error::one_line(&error))
            }
        }
    }
    queued
}

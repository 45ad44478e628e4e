//! Webhooks are a fast path, not the truth. An event can be lost: Stripe
//! gives up on an endpoint after three days of failures, and a rotated
//! signing secret, a mistyped endpoint URL or a server down for a weekend
//! loses every event meanwhile. A refund whose event was lost must still
//! close its downloads. So the server reconciles on its own, at start and
//! every [`EVERY`]:
//!
//! - It reads from Stripe the events it acts on (`events::HANDLED`) created
//!   since it last looked (at start: the 30 days Stripe keeps events for),
//!   oldest first, and applies each as its webhook would have: each event
//!   once, by its id, whichever way it came. This is what Stripe advises
//!   for missed webhooks (list the events and process those not yet seen).
//! - It honours what `shop sync` wrote: every purchase the ledger says is
//!   refunded or disputed has its payment's downloads closed (read again
//!   only when the ledger's files changed).
//!
//! A buyer refunded while the server was down thus gets 410 within moments
//! of its start, with nothing for the author to do.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::TryStreamExt as _;

use super::App;
use crate::ledger::Status;
use crate::state::{Event, Recorded};
use crate::{error, ledger, stripe};

/// How often the server reconciles.
pub const EVERY: Duration = Duration::from_secs(300);

/// How far back the first look goes: Stripe keeps events for 30 days.
const FIRST_LOOK: i64 = 30 * 86_400;

/// How far before the last look's start the next one starts: events are
/// listed by when Stripe made them, by Stripe's clock, and one made in the
/// moment of the last look may not have been listed yet.
const OVERLAP: i64 = 120;

/// Where reconciliation stands.
#[derive(Debug, Default)]
pub struct Reconciler {
    /// Events created at or after this (Unix seconds) are read next.
    since: Mutex<Option<i64>>,
    /// The ledger's files as last read.
    ledger: Mutex<Option<Vec<LedgerFile>>>,
    /// The ledger's closed payments already recorded (`intent:reason`):
    /// a changed ledger costs a write only for what is new in it.
    recorded: Mutex<std::collections::HashSet<String>>,
}

/// A ledger file's name, length and modification time.
type LedgerFile = (PathBuf, u64, Option<std::time::SystemTime>);

/// What one reconciliation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Events applied that had not come by webhook.
    pub missed: usize,
    /// Payments the ledger closed that the state had not.
    pub closed_by_ledger: usize,
}

/// Reconciles at start and every `every`, until the task is dropped.
pub async fn run(app: std::sync::Arc<App>, every: Duration) {
    loop {
        match once(&app).await {
            Ok(done) if done != Reconciled::default() => tracing::info!(
                missed = done.missed,
                closed_by_ledger = done.closed_by_ledger,
                "reconciled with Stripe and the ledger"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                "cannot reconcile with Stripe (will try again): {}",
                error::one_line(error.as_ref())
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// One reconciliation: the ledger, then Stripe's events.
pub async fn once(app: &App) -> anyhow::Result<Reconciled> {
    let closed_by_ledger = from_ledger(app).await?;
    let missed = from_events(app).await?;
    Ok(Reconciled {
        missed,
        closed_by_ledger,
    })
}

/// Closes the payments the ledger says were refunded or disputed.
async fn from_ledger(app: &App) -> anyhow::Result<usize> {
    let root = app.store().root.clone();
    let files = ledger_files(&root);
    if app
        .reconciler
        .ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        == Some(&files)
    {
        return Ok(0);
    }
    let closed = tokio::task::spawn_blocking(move || {
        let mut closed = Vec::new();
        ledger::each(&root, |purchase| {
            if !purchase.in_good_standing()
                && let Some(intent) = purchase.payment_intent
            {
                closed.push((intent, purchase.status));
            }
            Ok(())
        })?;
        anyhow::Ok(closed)
    })
    .await??;
    let now = app.now();
    let mut newly = 0;
    for (intent, status) in closed {
        let reason = if status == Status::Disputed {
            "disputed"
        } else {
            "refunded"
        };
        // An event of its own per payment and status, so each is closed
        // once, whichever server reads the ledger first.
        let id = format!("ledger:{intent}:{reason}");
        if app
            .reconciler
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
        {
            continue;
        }
        let event = Event {
            id: &id,
            kind: "ledger",
            received: now,
        };
        if app
            .db
            .record_refund(&event, Some((&intent, reason)))
            .await?
            .is_new()
        {
            newly += 1;
        }
        app.reconciler
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
    }
    *app.reconciler
        .ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(files);
    Ok(newly)
}

/// The ledger's month files with their lengths and modification times.
fn ledger_files(root: &std::path::Path) -> Vec<LedgerFile> {
    let mut files: Vec<_> = std::fs::read_dir(root.join("purchases"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            Some((entry.path(), metadata.len(), metadata.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

/// Applies the events of [`super::events::HANDLED`] created since the last
/// look that were not applied yet.
async fn from_events(app: &App) -> anyhow::Result<usize> {
    let now = app.now();
    let since = app
        .reconciler
        .since
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(now - FIRST_LOOK);
    let mut events: Vec<stripe::Event> = app
        .stripe
        .events(&super::events::HANDLED, Some(since))
        .try_collect()
        .await?;
    // Listed newest first; applied in the order they happened.
    events.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let mut missed = 0;
    for event in &events {
        match super::events::apply(app, event, app.now()).await {
            Ok(Recorded::Again) => {}
            Ok(_) => missed += 1,
            Err(super::events::ApplyError::Malformed(what)) => {
                tracing::warn!(event = %event.id, "an event whose object is not a {what}");
            }
            Err(super::events::ApplyError::State(error)) => return Err(error.into()),
        }
    }
    // Everything made before the look began was listed.
    *app.reconciler
        .since
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((now - OVERLAP).max(since));
    Ok(missed)
}

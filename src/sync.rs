//! `shop sync`: Stripe's completed purchases, refunds and disputes into the
//! ledger, committed to git.
//!
//! An incremental sync lists sessions created since the newest one in the
//! ledger, less an overlap window for sessions that complete late, and the
//! refunds and disputes since then; it reads and rewrites only the months
//! they touch, so its cost grows with what is new. `--full` streams every
//! session, one month in memory at a time, and rebuilds every file; on an
//! unchanged account the bytes are identical and nothing is committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;

use crate::ledger::{self, Purchase, Staging};
use crate::store::Store;
use crate::stripe::{self, CheckoutSession, ListCheckoutSessions};

/// Sessions created this long before the ledger's newest are listed again:
/// a session may complete up to a day after it was created, and a delayed
/// payment method can take days to pay.
pub const OVERLAP_SECONDS: i64 = 7 * 86_400;

#[derive(Debug)]
pub struct Request<'a> {
    pub store: &'a Store,
    pub full: bool,
    /// List sessions created from this Unix time instead of the ledger's newest.
    pub since: Option<i64>,
    pub dry_run: bool,
}

/// What the sync found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    /// Completed sessions listed.
    pub seen: u64,
    /// Purchases new to the ledger.
    pub new: u64,
    /// Purchases that became refunded or disputed.
    pub refunded: u64,
    pub disputed: u64,
    /// Completed sessions of other integrations (no product of this store).
    pub foreign: u64,
    /// Completed sessions not paid yet (delayed payment methods).
    pub unpaid: u64,
    /// Ledger files changed (or that would change, in a dry run).
    pub files: Vec<String>,
    /// The commit made, if any.
    pub commit: Option<String>,
    pub dry_run: bool,
}

/// Progress while paging through Stripe.
pub trait Progress: Send + Sync {
    fn sessions(&self, seen: u64, kept: u64);
    fn finish(&self);
}

/// What a session is to the shop.
enum Kind {
    Ours(Box<Purchase>),
    Foreign,
    Unpaid,
}

/// The state of a charge: refunded amount, whether fully refunded, disputed.
#[derive(Debug, Clone, Copy, Default)]
struct ChargeState {
    refunded: i64,
    fully_refunded: bool,
    disputed: bool,
}

/// The product and version a session sells, if it is this store's: named
/// in its metadata, or through a payment link `shop release` recorded.
pub fn product_of(session: &CheckoutSession, store: &Store) -> Option<(String, String)> {
    let named = match (
        session.metadata.get("product"),
        session.metadata.get("version"),
    ) {
        (Some(product), Some(version)) => Some((product.clone(), version.clone())),
        _ => session.payment_link.as_ref().and_then(|link| {
            store.products.iter().find_map(|product| {
                product
                    .releases
                    .iter()
                    .find(|release| &release.payment_link == link)
                    .map(|release| (product.slug.clone(), release.version.to_string()))
            })
        }),
    };
    named.filter(|(product, _)| store.product(product).is_ok())
}

fn classify(session: &CheckoutSession, store: &Store) -> Kind {
    let Some((product, version)) = product_of(session, store) else {
        return Kind::Foreign;
    };
    if session.payment_status != "paid" {
        return Kind::Unpaid;
    }
    let attribution = |key: &str| {
        session
            .metadata
            .get(key)
            .filter(|value| !value.is_empty())
            .cloned()
    };
    Kind::Ours(Box::new(Purchase {
        id: session.id.clone(),
        created: ledger::timestamp(session.created),
        email: session.email().unwrap_or_default().to_owned(),
        product,
        version,
        amount: session.amount_total.unwrap_or(0),
        currency: session.currency.clone().unwrap_or_default(),
        payment_intent: session.payment_intent.clone(),
        status: "paid".into(),
        amount_refunded: None,
        utm_source: attribution("utm_source"),
        utm_medium: attribution("utm_medium"),
        utm_campaign: attribution("utm_campaign"),
        utm_term: attribution("utm_term"),
        utm_content: attribution("utm_content"),
        referrer: attribution("referrer"),
        promotion_code: attribution("promotion_code"),
    }))
}

/// Counts a listed session (seen, kept, foreign, unpaid; progress every
/// hundred) and returns its purchase if it is one of this store's.
fn tally(
    session: &CheckoutSession,
    store: &Store,
    outcome: &mut Outcome,
    kept: &mut u64,
    progress: &dyn Progress,
) -> Option<Box<Purchase>> {
    outcome.seen += 1;
    let purchase = match classify(session, store) {
        Kind::Ours(purchase) => {
            *kept += 1;
            Some(purchase)
        }
        Kind::Foreign => {
            outcome.foreign += 1;
            None
        }
        Kind::Unpaid => {
            outcome.unpaid += 1;
            None
        }
    };
    if outcome.seen.is_multiple_of(100) {
        progress.sessions(outcome.seen, *kept);
    }
    purchase
}

fn apply(purchase: &mut Purchase, state: ChargeState) {
    purchase.amount_refunded = (state.refunded > 0).then_some(state.refunded);
    purchase.status = if state.disputed {
        "disputed"
    } else if state.fully_refunded || state.refunded >= purchase.amount {
        "refunded"
    } else {
        "paid"
    }
    .into();
}

pub async fn run(
    request: &Request<'_>,
    stripe: &stripe::Client,
    progress: &dyn Progress,
) -> Result<Outcome, SyncError> {
    let root = &request.store.root;
    let mut outcome = Outcome {
        dry_run: request.dry_run,
        ..Outcome::default()
    };
    let mut staging = if request.dry_run {
        None
    } else {
        Some(Staging::new(root)?)
    };
    let mut changed_months: Vec<String> = Vec::new();
    let mut stage = |month: &str,
                     purchases: &mut Vec<Purchase>,
                     staging: &mut Option<Staging>|
     -> Result<(), SyncError> {
        let bytes = ledger::render(purchases);
        let current = std::fs::read(root.join(ledger::DIR).join(ledger::file_name(month)))
            .unwrap_or_default();
        if current != bytes {
            changed_months.push(month.to_owned());
            if let Some(staging) = staging {
                staging.stage(month, &bytes)?;
            }
        }
        Ok(())
    };

    if request.full {
        full(
            request,
            stripe,
            progress,
            &mut outcome,
            &mut staging,
            &mut stage,
        )
        .await?;
    } else {
        incremental(
            request,
            stripe,
            progress,
            &mut outcome,
            &mut staging,
            &mut stage,
        )
        .await?;
    }
    progress.finish();
    changed_months.sort();
    changed_months.dedup();

    let Some(staging) = staging else {
        // A dry run: count against what is on disk now.
        for month in &changed_months {
            outcome
                .files
                .push(format!("{}/{}", ledger::DIR, ledger::file_name(month)));
        }
        return Ok(outcome);
    };
    staging.commit()?;
    commit(root, &mut outcome)?;
    Ok(outcome)
}

async fn incremental(
    request: &Request<'_>,
    stripe: &stripe::Client,
    progress: &dyn Progress,
    outcome: &mut Outcome,
    staging: &mut Option<Staging>,
    stage: &mut impl FnMut(&str, &mut Vec<Purchase>, &mut Option<Staging>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let root = &request.store.root;
    let since = match request.since {
        Some(since) => Some(since),
        None => ledger::newest(root)?.map(|newest| newest.created_unix() - OVERLAP_SECONDS),
    };

    // New and re-listed purchases, by month.
    let mut fresh: BTreeMap<String, Vec<Purchase>> = BTreeMap::new();
    let mut by_intent: HashMap<String, (String, String)> = HashMap::new();
    let filter = ListCheckoutSessions {
        created_gte: since,
        status: Some("complete".into()),
        limit: Some(100),
        ..Default::default()
    };
    let mut sessions = stripe.checkout_sessions(&filter);
    let mut kept = 0;
    while let Some(session) = sessions.try_next().await? {
        let Some(purchase) = tally(&session, request.store, outcome, &mut kept, progress) else {
            continue;
        };
        if let Some(intent) = &purchase.payment_intent {
            by_intent.insert(
                intent.clone(),
                (purchase.month().to_owned(), purchase.id.clone()),
            );
        }
        fresh
            .entry(purchase.month().to_owned())
            .or_default()
            .push(*purchase);
    }
    drop(sessions);
    progress.sessions(outcome.seen, kept);

    // Refunds and disputes since then: the charge holds the cumulative state.
    let mut charges: Vec<String> = Vec::new();
    let mut refunds = stripe.refunds(since);
    while let Some(refund) = refunds.try_next().await? {
        if let Some(charge) = refund.charge {
            charges.push(charge);
        }
    }
    drop(refunds);
    let mut disputes = stripe.disputes(since);
    while let Some(dispute) = disputes.try_next().await? {
        charges.push(dispute.charge);
    }
    drop(disputes);
    let mut seen_charges = HashSet::new();
    let mut updates: BTreeMap<String, Vec<(String, ChargeState)>> = BTreeMap::new();
    for charge_id in charges {
        if !seen_charges.insert(charge_id.clone()) {
            continue;
        }
        let Some(charge) = stripe.charge(&charge_id).await? else {
            continue;
        };
        let Some(intent) = charge.payment_intent else {
            continue;
        };
        let state = ChargeState {
            refunded: charge.amount_refunded,
            fully_refunded: charge.refunded,
            disputed: charge.disputed,
        };
        let target = match by_intent.get(&intent) {
            Some(found) => Some(found.clone()),
            None => {
                let filter = ListCheckoutSessions {
                    payment_intent: Some(intent.clone()),
                    limit: Some(1),
                    ..Default::default()
                };
                stripe
                    .checkout_sessions(&filter)
                    .try_next()
                    .await?
                    .map(|session| {
                        (
                            ledger::timestamp(session.created)[..7].to_owned(),
                            session.id,
                        )
                    })
            }
        };
        if let Some((month, id)) = target {
            updates.entry(month).or_default().push((id, state));
        }
    }

    let months: std::collections::BTreeSet<String> =
        fresh.keys().chain(updates.keys()).cloned().collect();
    for month in months {
        let mut purchases = ledger::read_month(root, &month)?;
        let mut index: HashMap<String, usize> = purchases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        for purchase in fresh.remove(&month).unwrap_or_default() {
            match index.get(&purchase.id) {
                Some(&at) => {
                    // Stripe's data wins, but what sync learned of refunds stays.
                    let known = &purchases[at];
                    let (status, refunded) = (known.status.clone(), known.amount_refunded);
                    purchases[at] = Purchase {
                        status,
                        amount_refunded: refunded,
                        ..purchase
                    };
                }
                None => {
                    index.insert(purchase.id.clone(), purchases.len());
                    purchases.push(purchase);
                }
            }
        }
        for (id, state) in updates.remove(&month).unwrap_or_default() {
            if let Some(&at) = index.get(&id) {
                apply(&mut purchases[at], state);
            }
        }
        stage(&month, &mut purchases, staging)?;
    }
    Ok(())
}

async fn full(
    request: &Request<'_>,
    stripe: &stripe::Client,
    progress: &dyn Progress,
    outcome: &mut Outcome,
    staging: &mut Option<Staging>,
    stage: &mut impl FnMut(&str, &mut Vec<Purchase>, &mut Option<Staging>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let root = &request.store.root;
    // Refunds and disputes first: they are few, and every purchase needs them.
    let mut states: HashMap<String, ChargeState> = HashMap::new();
    let mut refunds = stripe.refunds(None);
    while let Some(refund) = refunds.try_next().await? {
        if let Some(intent) = refund.payment_intent {
            states.entry(intent).or_default().refunded += refund.amount;
        }
    }
    drop(refunds);
    let mut disputes = stripe.disputes(None);
    while let Some(dispute) = disputes.try_next().await? {
        if let Some(intent) = dispute.payment_intent {
            states.entry(intent).or_default().disputed = true;
        }
    }
    drop(disputes);

    // Sessions come newest first: a month is complete when the next begins.
    let mut months_seen = HashSet::new();
    let mut month = String::new();
    let mut purchases: Vec<Purchase> = Vec::new();
    let filter = ListCheckoutSessions {
        created_gte: request.since,
        status: Some("complete".into()),
        limit: Some(100),
        ..Default::default()
    };
    let mut sessions = stripe.checkout_sessions(&filter);
    let mut kept = 0;
    while let Some(session) = sessions.try_next().await? {
        let Some(mut purchase) = tally(&session, request.store, outcome, &mut kept, progress)
        else {
            continue;
        };
        if let Some(state) = purchase
            .payment_intent
            .as_ref()
            .and_then(|intent| states.get(intent))
        {
            apply(&mut purchase, *state);
        }
        if purchase.month() != month {
            if !purchases.is_empty() {
                stage(&month, &mut purchases, staging)?;
                purchases.clear();
            }
            month = purchase.month().to_owned();
            months_seen.insert(month.clone());
        }
        purchases.push(*purchase);
    }
    progress.sessions(outcome.seen, kept);
    if !purchases.is_empty() {
        stage(&month, &mut purchases, staging)?;
    }
    // Months with no purchase left in Stripe lose their file (only when the
    // rebuild covered all time).
    if request.since.is_none() {
        for existing in ledger::months(root)? {
            if !months_seen.contains(&existing) {
                if let Some(staging) = staging {
                    staging.remove(&existing);
                }
                let mut empty = Vec::new();
                stage(&existing, &mut empty, &mut None)?;
            }
        }
    }
    Ok(())
}

/// Commits every ledger file that differs from `HEAD` (this sync's, and any
/// an interrupted sync left), with the counts in the message.
fn commit(root: &Path, outcome: &mut Outcome) -> Result<(), SyncError> {
    let repo = crate::git::open(root)?;
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .pathspec(format!("{}/*.jsonl", ledger::DIR));
    let statuses = repo
        .statuses(Some(&mut options))
        .map_err(crate::git::GitError::from)?;
    let mut paths: Vec<PathBuf> = statuses
        .iter()
        .filter(|entry| !entry.status().contains(git2::Status::IGNORED))
        .filter_map(|entry| entry.path().ok().map(PathBuf::from))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        return Ok(());
    }
    let head_tree = repo.head().ok().and_then(|head| head.peel_to_tree().ok());
    let (mut new, mut refunded, mut disputed) = (0, 0, 0);
    for path in &paths {
        let before: Vec<Purchase> =
            match head_tree.as_ref().and_then(|tree| tree.get_path(path).ok()) {
                Some(entry) => {
                    let blob = repo
                        .find_blob(entry.id())
                        .map_err(crate::git::GitError::from)?;
                    ledger::parse_lines(std::io::Cursor::new(blob.content()), path)
                        .unwrap_or_default()
                }
                None => Vec::new(),
            };
        let after = ledger::parse_lines(
            std::io::BufReader::new(std::fs::File::open(root.join(path)).map_err(|source| {
                ledger::LedgerError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            })?),
            path,
        )
        .unwrap_or_default();
        let before: HashMap<&str, &Purchase> = before.iter().map(|p| (p.id.as_str(), p)).collect();
        for purchase in &after {
            match before.get(purchase.id.as_str()) {
                None => new += 1,
                Some(old) if old.status != purchase.status => match purchase.status.as_str() {
                    "refunded" => refunded += 1,
                    "disputed" => disputed += 1,
                    _ => {}
                },
                Some(_) => {}
            }
        }
    }
    let mut message = format!("sync: {new} new");
    if refunded > 0 {
        message.push_str(&format!(", {refunded} refunded"));
    }
    if disputed > 0 {
        message.push_str(&format!(", {disputed} disputed"));
    }
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let commit = crate::git::commit_paths(&repo, &path_refs, &message)?;
    outcome.new = new;
    outcome.refunded = refunded;
    outcome.disputed = disputed;
    outcome.files = paths
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    outcome.commit = commit.map(|oid| oid.to_string());
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Stripe(#[from] stripe::StripeError),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
}

impl crate::error::Hint for SyncError {
    fn hint(&self) -> String {
        match self {
            SyncError::Stripe(error) => error.hint(),
            SyncError::Ledger(error) => error.hint(),
            SyncError::Git(error) => error.hint(),
        }
    }
}

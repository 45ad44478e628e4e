//! `shop sync`: Stripe's completed purchases, refunds and disputes into the
//! ledger, committed to git.
//!
//! An incremental sync lists sessions created since the newest one in the
//! ledger, less an overlap window for sessions that complete late, and the
//! refunds and disputes since then; it reads and rewrites only the months
//! they touch, so its cost grows with what is new. `--full` streams every
//! session, one month in memory at a time, and rebuilds every file; on an
//! unchanged account the bytes are identical and nothing is committed.
//!
//! What is not final yet is remembered in `purchases/pending.jsonl` and
//! looked at again by every sync until it is: sessions complete but not
//! paid (a bank debit takes days; it may be paid long after the overlap
//! window), and charges with a refund still pending. Refunds count only
//! once `succeeded`, in both syncs, so they always agree.

mod incremental;

use incremental::incremental;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;

use crate::error::Registered;
use crate::git::GitError;
use crate::ledger::{self, Purchase, Staging, Status};
use crate::metadata::Attribution;
use crate::store::Store;
use crate::stripe::{self, CheckoutSession, ListCheckoutSessions};
use crate::{dates, error, gift, git, metadata};

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
    /// What only the server's state holds, for the ledger (none: no
    /// state here).
    pub from_state: Option<FromState>,
}

/// What the server's state holds that Stripe does not: the buyers'
/// withdrawals (`purchases/withdrawals.jsonl`) and the free samples given
/// (`purchases/samples.jsonl`).
#[derive(Debug, Default)]
pub struct FromState {
    pub withdrawals: Vec<ledger::Withdrawal>,
    pub samples: Vec<ledger::Purchase>,
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
    /// Withdrawals new to `purchases/withdrawals.jsonl`.
    pub withdrawals: usize,
    /// Free samples new to `purchases/samples.jsonl`.
    pub samples: usize,
}

/// Progress while paging through Stripe.
pub trait Progress: Send + Sync {
    fn sessions(&self, seen: u64, kept: u64);
    fn finish(&self);
}

/// What a session is to the shop.
enum Seen {
    Ours(Box<Purchase>),
    Foreign,
    Unpaid,
}

/// The state of a charge: the amount of its succeeded refunds, whether it
/// is disputed, and whether a refund of it is still pending.
#[derive(Debug, Clone, Copy, Default)]
struct ChargeState {
    refunded: i64,
    disputed: bool,
    refund_pending: bool,
}

/// The file of what is not final yet.
const PENDING: &str = "pending";

/// What a later sync must look at again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pending {
    /// Sessions of ours complete but not paid, and not failed.
    sessions: std::collections::BTreeSet<String>,
    /// Charges of ours with a refund neither succeeded nor failed.
    charges: std::collections::BTreeSet<String>,
}

impl Pending {
    fn read(root: &Path) -> Result<Pending, SyncError> {
        let path = root.join(ledger::DIR).join(ledger::file_name(PENDING));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Pending::default());
            }
            Err(source) => return Err(ledger::LedgerError::Io { path, source }.into()),
        };
        let mut pending = Pending::default();
        for (number, line) in text.lines().enumerate() {
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|error| ledger::LedgerError::Malformed {
                    path: path.clone(),
                    line: number + 1,
                    message: error.to_string(),
                })?;
            if let Some(id) = value["session"].as_str() {
                pending.sessions.insert(id.to_owned());
            } else if let Some(id) = value["charge"].as_str() {
                pending.charges.insert(id.to_owned());
            }
        }
        Ok(pending)
    }

    /// One line per session, then per charge, sorted: the same things give
    /// the same bytes.
    fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        for id in &self.sessions {
            out.push_str(&serde_json::json!({ "session": id }).to_string());
            out.push('\n');
        }
        for id in &self.charges {
            out.push_str(&serde_json::json!({ "charge": id }).to_string());
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// Whether an unpaid session's payment may still succeed: its intent is
/// processing (a bank debit) or waiting for the buyer.
async fn may_still_pay(
    session: &CheckoutSession,
    stripe: &stripe::Client,
) -> Result<bool, SyncError> {
    if session.status.as_deref() != Some("complete") || session.payment_status != "unpaid" {
        return Ok(false);
    }
    let Some(intent) = session.payment_intent_id() else {
        return Ok(false);
    };
    Ok(stripe
        .payment_intent(intent)
        .await?
        .is_some_and(|intent| matches!(intent.status.as_str(), "processing" | "requires_action")))
}

/// The code a buyer typed (or `shop checkout --promo` gave), by its text.
async fn promotion_code(
    session: &CheckoutSession,
    stripe: &stripe::Client,
    codes: &mut HashMap<String, Option<String>>,
) -> Result<Option<String>, SyncError> {
    let Some(id) = session.promotion_code_id() else {
        return Ok(None);
    };
    if let Some(known) = codes.get(id) {
        return Ok(known.clone());
    }
    let code = stripe
        .promotion_code_by_id(id)
        .await?
        .map(|promo| promo.code);
    codes.insert(id.to_owned(), code.clone());
    Ok(code)
}

/// The sessions' listing with what the ledger needs expanded.
fn session_filter(created_gte: Option<i64>) -> ListCheckoutSessions {
    ListCheckoutSessions {
        created_gte,
        status: Some("complete".into()),
        limit: Some(100),
        expand: EXPANDED.map(str::to_owned).to_vec(),
        ..Default::default()
    }
}

fn classify(session: &CheckoutSession, store: &Store) -> Seen {
    let Some((product, version)) = metadata::product_of(session, store) else {
        return Seen::Foreign;
    };
    if !session.is_fulfilled() {
        return Seen::Unpaid;
    }
    let attribution = |key: &str| {
        session
            .metadata
            .get(key)
            .filter(|value| !value.is_empty())
            .cloned()
    };
    let came_from = Attribution::of_session(session);
    Seen::Ours(Box::new(Purchase {
        id: session.id.clone(),
        created: dates::timestamp(session.created),
        // A gift is the recipient's.
        email: match gift::of_session(session) {
            Some(gift) => gift.holder().to_owned(),
            None => session.email().unwrap_or_default().to_owned(),
        },
        product,
        version,
        preorder: session
            .metadata
            .get(metadata::PREORDER_KEY)
            .is_some_and(|value| value == "true"),
        amount: session.amount_total.unwrap_or(0),
        currency: session.currency.clone().unwrap_or_default(),
        payment_intent: session.payment_intent_id().map(str::to_owned),
        status: Status::Paid,
        amount_refunded: None,
        utm_source: came_from.utm_source,
        utm_medium: came_from.utm_medium,
        utm_campaign: came_from.utm_campaign,
        utm_term: came_from.utm_term,
        utm_content: came_from.utm_content,
        referrer: came_from.referrer,
        promotion_code: attribution("promotion_code"),
        upgrade_from: attribution(metadata::UPGRADE_FROM),
        ..given(session)
    }))
}

/// A gift's fields (who paid, the message, the day), over what checkout
/// asked beyond the payment.
fn given(session: &CheckoutSession) -> Purchase {
    match gift::of_session(session) {
        Some(gift) => Purchase {
            gift_from: Some(gift.buyer.clone()),
            gift_to: (!gift.deliverable).then(|| gift.recipient.clone()),
            gift_message: Some(gift.message.clone()).filter(|message| !message.is_empty()),
            gift_on: gift.send_on.map(gift::day_text),
            ..checkout_details(session)
        },
        None => checkout_details(session),
    }
}

/// What checkout asked beyond the payment: the buyer's country, the tax,
/// a business's tax ID, the invoice, and when the terms were accepted.
fn checkout_details(session: &CheckoutSession) -> Purchase {
    let tax_id = session
        .customer_details
        .as_ref()
        .and_then(|details| details.tax_ids.first());
    let invoice = session
        .invoice
        .as_ref()
        .and_then(|invoice| invoice.object());
    // The intent is made when the buyer presses Pay, which the box must be
    // ticked for; a session with nothing to pay has none, and then only
    // its opening is known.
    let intent = session
        .payment_intent
        .as_ref()
        .and_then(|intent| intent.object());
    let accepted_at = intent.map_or(session.created, |intent| intent.created);
    let charge = intent
        .and_then(|intent| intent.latest_charge.as_ref())
        .and_then(|charge| charge.object());
    let balance = charge
        .and_then(|charge| charge.balance_transaction.as_ref())
        .and_then(|balance| balance.object());
    let currency = session.currency.as_deref().unwrap_or_default();
    Purchase {
        discount: session
            .total_details
            .as_ref()
            .map(|total| total.amount_discount)
            .filter(|discount| *discount > 0),
        paid: balance.map(|balance| balance.created).map(dates::timestamp),
        fee: balance.map(|balance| balance.fee),
        net: balance.map(|balance| balance.net),
        settled_in: balance
            .filter(|balance| !balance.currency.eq_ignore_ascii_case(currency))
            .map(|balance| balance.currency.clone()),
        country: session.country().map(str::to_owned),
        tax: session
            .automatic_tax
            .as_ref()
            .is_some_and(|tax| tax.enabled)
            .then(|| {
                session
                    .total_details
                    .as_ref()
                    .map_or(0, |total| total.amount_tax)
            }),
        tax_id: tax_id.map(|id| id.value.clone()),
        tax_id_type: tax_id.map(|id| id.kind.clone()),
        invoice: invoice.and_then(|invoice| invoice.number.clone()),
        invoice_url: invoice.and_then(|invoice| invoice.hosted_invoice_url.clone()),
        terms_accepted: session
            .accepted_terms()
            .then(|| dates::timestamp(accepted_at)),
        promotions: session.promotions().map(str::to_owned),
        ..Purchase::default()
    }
}

/// What the ledger needs expanded on each session.
/// What a session brings with it: the discounts and taxes, the payment
/// down to its balance transaction (when it was paid, Stripe's fee), the
/// invoice. A list's `data.` makes the balance transaction's path four
/// levels deep, the most Stripe expands.
const EXPANDED: [&str; 3] = [
    "total_details.breakdown",
    "payment_intent.latest_charge.balance_transaction",
    "invoice",
];

/// Counts a listed session (seen, kept, foreign, unpaid; progress every
/// hundred) and says what it is to the shop.
fn tally(
    session: &CheckoutSession,
    store: &Store,
    outcome: &mut Outcome,
    kept: &mut u64,
    progress: &dyn Progress,
) -> Seen {
    outcome.seen += 1;
    let kind = classify(session, store);
    match &kind {
        Seen::Ours(_) => *kept += 1,
        Seen::Foreign => outcome.foreign += 1,
        Seen::Unpaid => outcome.unpaid += 1,
    }
    if outcome.seen.is_multiple_of(100) {
        progress.sessions(outcome.seen, *kept);
    }
    kind
}

fn apply(purchase: &mut Purchase, state: ChargeState) {
    purchase.amount_refunded = (state.refunded > 0).then_some(state.refunded);
    purchase.status = if state.disputed {
        Status::Disputed
    } else if state.refunded > 0 && state.refunded >= purchase.amount {
        Status::Refunded
    } else {
        Status::Paid
    };
}

/// A charge's state from its own refunds: only succeeded ones count.
async fn charge_state(
    stripe: &stripe::Client,
    charge: &stripe::Charge,
) -> Result<ChargeState, SyncError> {
    let mut state = ChargeState {
        disputed: charge.disputed,
        ..ChargeState::default()
    };
    let mut refunds = stripe.refunds_of_charge(&charge.id);
    while let Some(refund) = refunds.try_next().await? {
        match refund.status.as_deref() {
            Some("succeeded") => state.refunded += refund.amount,
            Some("pending" | "requires_action") => state.refund_pending = true,
            _ => {}
        }
    }
    Ok(state)
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
    if let Some(fresh) = request.from_state.as_ref().map(|state| &state.withdrawals) {
        let known = ledger::read_withdrawals(root)?;
        let before = known.len();
        let wanted = ledger::render_withdrawals(known, fresh.clone());
        let path = root
            .join(ledger::DIR)
            .join(ledger::file_name(ledger::WITHDRAWALS));
        if std::fs::read(&path).unwrap_or_default() != wanted {
            outcome.withdrawals = wanted
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                .saturating_sub(before);
            changed_months.push(ledger::WITHDRAWALS.to_owned());
            if let Some(staging) = &mut staging {
                staging.stage(ledger::WITHDRAWALS, &wanted)?;
            }
        }
    }
    if let Some(fresh) = request.from_state.as_ref().map(|state| &state.samples) {
        let mut samples = ledger::read_samples(root)?;
        let before = samples.len();
        let known: std::collections::HashSet<String> =
            samples.iter().map(|sample| sample.id.clone()).collect();
        samples.extend(
            fresh
                .iter()
                .filter(|sample| !known.contains(&sample.id))
                .cloned(),
        );
        if samples.len() > before {
            outcome.samples = samples.len() - before;
            changed_months.push(ledger::SAMPLES.to_owned());
            if let Some(staging) = &mut staging {
                staging.stage(ledger::SAMPLES, &ledger::render(&mut samples))?;
            }
        }
    }
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

/// Stages the file of what is not final, when it changed (nothing
/// pending: no file).
fn stage_pending(
    root: &Path,
    pending: &Pending,
    staging: &mut Option<Staging>,
) -> Result<(), SyncError> {
    let Some(staging) = staging else {
        return Ok(());
    };
    let path = root.join(ledger::DIR).join(ledger::file_name(PENDING));
    let current = std::fs::read(&path).ok();
    let wanted = pending.render();
    if wanted.is_empty() {
        staging.remove(PENDING);
    } else if current.as_deref() != Some(&wanted[..]) {
        staging.stage(PENDING, &wanted)?;
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
    let mut pending = Pending::default();
    let mut codes = HashMap::new();
    // Refunds and disputes first: they are few, and every purchase needs them.
    let mut states: HashMap<String, ChargeState> = HashMap::new();
    let mut refunds = stripe.refunds(None);
    while let Some(refund) = refunds.try_next().await? {
        let Some(intent) = refund.payment_intent else {
            continue;
        };
        let state = states.entry(intent).or_default();
        match refund.status.as_deref() {
            Some("succeeded") => state.refunded += refund.amount,
            Some("pending" | "requires_action") => {
                state.refund_pending = true;
                if let Some(charge) = refund.charge {
                    pending.charges.insert(charge);
                }
            }
            _ => {}
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
    let mut sessions = stripe.checkout_sessions(&session_filter(request.since));
    let mut kept = 0;
    let mut waiting = Vec::new();
    while let Some(session) = sessions.try_next().await? {
        let mut purchase = match tally(&session, request.store, outcome, &mut kept, progress) {
            Seen::Ours(purchase) => purchase,
            Seen::Unpaid => {
                waiting.push(session);
                continue;
            }
            Seen::Foreign => continue,
        };
        if let Some(code) = promotion_code(&session, stripe, &mut codes).await? {
            purchase.promotion_code = Some(code);
        }
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
    drop(sessions);
    progress.sessions(outcome.seen, kept);
    if !purchases.is_empty() {
        stage(&month, &mut purchases, staging)?;
    }
    for session in waiting {
        if may_still_pay(&session, stripe).await? {
            pending.sessions.insert(session.id.clone());
        }
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
        stage_pending(root, &pending, staging)?;
    }
    Ok(())
}

/// Commits every ledger file that differs from `HEAD` (this sync's, and any
/// an interrupted sync left), with the counts in the message.
fn commit(root: &Path, outcome: &mut Outcome) -> Result<(), SyncError> {
    let repo = git::open(root)?;
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .pathspec(format!("{}/*.jsonl", ledger::DIR));
    let statuses = repo.statuses(Some(&mut options)).map_err(GitError::from)?;
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
    let months = paths.iter().filter(|path| {
        path.file_stem()
            .and_then(|stem| stem.to_str())
            .is_some_and(|stem| ![PENDING, ledger::WITHDRAWALS, ledger::SAMPLES].contains(&stem))
    });
    for path in months {
        let before: Vec<Purchase> =
            match head_tree.as_ref().and_then(|tree| tree.get_path(path).ok()) {
                Some(entry) => {
                    let blob = repo.find_blob(entry.id()).map_err(GitError::from)?;
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
    if outcome.withdrawals > 0 {
        message.push_str(&format!(
            ", {}",
            crate::store::count(outcome.withdrawals, "withdrawal")
        ));
    }
    if outcome.samples > 0 {
        message.push_str(&format!(
            ", {}",
            crate::store::count(outcome.samples, "free sample")
        ));
    }
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let commit = git::commit_paths(&repo, &path_refs, &message)?;
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
    Git(#[from] git::GitError),
}

inventory::submit!(Registered::of::<SyncError>());

impl error::Hint for SyncError {
    fn hint(&self) -> String {
        match self {
            SyncError::Stripe(error) => error.hint(),
            SyncError::Ledger(error) => error.hint(),
            SyncError::Git(error) => error.hint(),
        }
    }
}

//! An incremental sync: what Stripe has since the newest purchase (less an
//! overlap), the sessions and charges still pending, refunds and disputes
//! since then; then only the months touched are read, merged and staged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use futures_util::TryStreamExt;

use super::{
    ChargeState, EXPANDED, OVERLAP_SECONDS, Outcome, Pending, Progress, Request, Seen, SyncError,
    apply, charge_state, classify, may_still_pay, promotion_code, session_filter, stage_pending,
    tally,
};
use crate::dates;
use crate::ledger::{self, Purchase, Staging};
use crate::stripe::{self, ListCheckoutSessions};

pub(super) async fn incremental(
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
    let mut gathering = Gathering {
        request,
        stripe,
        pending: Pending::read(root)?,
        codes: HashMap::new(),
        gathered: Gathered::default(),
    };
    let listed = gathering.recent_sessions(since, progress, outcome).await?;
    gathering.late_payments(&listed).await?;
    gathering.refunds_and_disputes(since).await?;
    let Gathering {
        pending, gathered, ..
    } = gathering;
    merge_months(root, gathered, staging, stage)?;
    stage_pending(root, &pending, staging)?;
    Ok(())
}

/// What an incremental sync learns from Stripe before it reads a month of
/// the ledger.
#[derive(Default)]
struct Gathered {
    /// New and re-listed purchases, by month.
    fresh: BTreeMap<String, Vec<Purchase>>,
    /// Where the purchase of each payment intent is: its month and id.
    by_intent: HashMap<String, (String, String)>,
    /// What refunds and disputes made of purchases, by month.
    updates: BTreeMap<String, Vec<(String, ChargeState)>>,
}

impl Gathered {
    fn add(&mut self, purchase: Purchase) {
        if let Some(intent) = &purchase.payment_intent {
            self.by_intent.insert(
                intent.clone(),
                (purchase.month().to_owned(), purchase.id.clone()),
            );
        }
        self.fresh
            .entry(purchase.month().to_owned())
            .or_default()
            .push(purchase);
    }
}

/// An incremental sync asking Stripe, with what it keeps between the asks.
struct Gathering<'a> {
    request: &'a Request<'a>,
    stripe: &'a stripe::Client,
    /// Sessions and charges not final yet (`purchases/pending.jsonl`).
    pending: Pending,
    /// Promotion codes by id, each looked up once.
    codes: HashMap<String, Option<String>>,
    gathered: Gathered,
}

impl Gathering<'_> {
    /// New and re-listed purchases: the complete sessions since `since`.
    /// Returns the ids listed.
    async fn recent_sessions(
        &mut self,
        since: Option<i64>,
        progress: &dyn Progress,
        outcome: &mut Outcome,
    ) -> Result<HashSet<String>, SyncError> {
        let stripe = self.stripe;
        let mut listed = HashSet::new();
        let mut sessions = stripe.checkout_sessions(&session_filter(since));
        let mut kept = 0;
        let mut waiting = Vec::new();
        while let Some(session) = sessions.try_next().await? {
            listed.insert(session.id.clone());
            match tally(&session, self.request.store, outcome, &mut kept, progress) {
                Seen::Ours(mut purchase) => {
                    self.pending.sessions.remove(&session.id);
                    if let Some(code) = promotion_code(&session, stripe, &mut self.codes).await? {
                        purchase.promotion_code = Some(code);
                    }
                    self.gathered.add(*purchase);
                }
                Seen::Unpaid => waiting.push(session),
                Seen::Foreign => {}
            }
        }
        drop(sessions);
        progress.sessions(outcome.seen, kept);
        for session in waiting {
            if may_still_pay(&session, stripe).await? {
                self.pending.sessions.insert(session.id.clone());
            } else {
                self.pending.sessions.remove(&session.id);
            }
        }
        Ok(listed)
    }

    /// Sessions waiting for their money since before the window: paid now?
    /// A late payment may have been refunded before this sync: its charge
    /// is read whole.
    async fn late_payments(&mut self, listed: &HashSet<String>) -> Result<(), SyncError> {
        let stripe = self.stripe;
        let mut late: Vec<Purchase> = Vec::new();
        for id in self.pending.sessions.clone() {
            if listed.contains(&id) {
                continue;
            }
            let session = stripe.checkout_session_expanded(&id, &EXPANDED).await?;
            let Some(session) = session else {
                self.pending.sessions.remove(&id);
                continue;
            };
            match classify(&session, self.request.store) {
                Seen::Ours(mut purchase) => {
                    self.pending.sessions.remove(&id);
                    if let Some(code) = promotion_code(&session, stripe, &mut self.codes).await? {
                        purchase.promotion_code = Some(code);
                    }
                    late.push(*purchase);
                }
                Seen::Unpaid if may_still_pay(&session, stripe).await? => {}
                _ => {
                    self.pending.sessions.remove(&id);
                }
            }
        }
        for mut purchase in late {
            if let Some(intent) = &purchase.payment_intent
                && let Some(charge) = stripe
                    .payment_intent(intent)
                    .await?
                    .and_then(|intent| intent.latest_charge_id().map(str::to_owned))
                && let Some(charge) = stripe.charge(&charge).await?
            {
                let state = charge_state(stripe, &charge).await?;
                apply(&mut purchase, state);
                if state.refund_pending {
                    self.pending.charges.insert(charge.id.clone());
                }
            }
            // Not by its payment intent: its charge was just read whole.
            self.gathered
                .fresh
                .entry(purchase.month().to_owned())
                .or_default()
                .push(purchase);
        }
        Ok(())
    }

    /// Refunds and disputes since `since`, and charges with a refund
    /// pending: each charge's refunds give its state, and the purchase it
    /// belongs to is found by its payment intent.
    async fn refunds_and_disputes(&mut self, since: Option<i64>) -> Result<(), SyncError> {
        let stripe = self.stripe;
        let mut charges: Vec<String> = self.pending.charges.iter().cloned().collect();
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
        for charge_id in charges {
            if !seen_charges.insert(charge_id.clone()) {
                continue;
            }
            let Some(charge) = stripe.charge(&charge_id).await? else {
                self.pending.charges.remove(&charge_id);
                continue;
            };
            let state = charge_state(stripe, &charge).await?;
            if state.refund_pending {
                self.pending.charges.insert(charge_id.clone());
            } else {
                self.pending.charges.remove(&charge_id);
            }
            let Some(intent) = charge.payment_intent else {
                continue;
            };
            if let Some((month, id)) = self.purchase_of(&intent).await? {
                self.gathered
                    .updates
                    .entry(month)
                    .or_default()
                    .push((id, state));
            }
        }
        Ok(())
    }

    /// The month and id of a payment intent's purchase: one seen by this
    /// sync, else its session asked of Stripe.
    async fn purchase_of(&self, intent: &str) -> Result<Option<(String, String)>, SyncError> {
        if let Some(found) = self.gathered.by_intent.get(intent) {
            return Ok(Some(found.clone()));
        }
        let filter = ListCheckoutSessions {
            payment_intent: Some(intent.to_owned()),
            limit: Some(1),
            ..Default::default()
        };
        let session = self.stripe.checkout_sessions(&filter).try_next().await?;
        Ok(session.map(|session| {
            (
                dates::timestamp(session.created)[..7].to_owned(),
                session.id,
            )
        }))
    }
}

/// Each month with something new read once, merged and staged: Stripe's
/// data wins, but what sync learned of refunds stays.
fn merge_months(
    root: &Path,
    mut gathered: Gathered,
    staging: &mut Option<Staging>,
    stage: &mut impl FnMut(&str, &mut Vec<Purchase>, &mut Option<Staging>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let months: std::collections::BTreeSet<String> = gathered
        .fresh
        .keys()
        .chain(gathered.updates.keys())
        .cloned()
        .collect();
    for month in months {
        let mut purchases = ledger::read_month(root, &month)?;
        let mut index: HashMap<String, usize> = purchases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        for purchase in gathered.fresh.remove(&month).unwrap_or_default() {
            match index.get(&purchase.id) {
                Some(&at) => {
                    let known = &purchases[at];
                    let (status, refunded) = (known.status, known.amount_refunded);
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
        for (id, state) in gathered.updates.remove(&month).unwrap_or_default() {
            if let Some(&at) = index.get(&id) {
                apply(&mut purchases[at], state);
            }
        }
        stage(&month, &mut purchases, staging)?;
    }
    Ok(())
}

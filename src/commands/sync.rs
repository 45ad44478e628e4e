//! `shop sync`: copy Stripe's completed purchases into the git ledger.

use super::Context;
use crate::ledger::Status;
use crate::state::Entitlement;
use crate::sync::{self, Progress, Request};
use crate::{ledger, store};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Stripe is the system of record; purchases/*.jsonl is its durable, \
                        diffable copy. A sync that changes nothing makes no commit."
)]
pub struct Args {
    /// Rebuild the whole ledger from Stripe (byte-identical when nothing changed)
    #[arg(long, conflicts_with = "since")]
    pub full: bool,

    /// Look at sessions created on or after this day (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
    pub since: Option<time::Date>,

    /// Show what would change, and write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Then queue receipts for paid purchases of the last 30 days that never
    /// had one (webhooks missed); `shop serve` sends them
    #[arg(long)]
    pub receipts: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store_to_commit()?;
    let stripe = context.stripe()?;
    let request = Request {
        store: &store,
        full: args.full,
        since: args
            .since
            .map(|day| day.midnight().assume_utc().unix_timestamp()),
        dry_run: args.dry_run,
        from_state: super::from_state(&store)?,
    };
    let progress = Bar::new(context.output.quiet);
    let outcome = super::block_on(sync::run(&request, &stripe, &progress))??;
    if context.output.json {
        context.output.json(&serde_json::to_value(&outcome)?)?;
        return Ok(());
    }
    let mut summary = format!(
        "{} seen",
        store::count(outcome.seen as usize, "completed session")
    );
    if outcome.foreign > 0 {
        summary.push_str(&format!(
            "; {} of other integrations skipped (no product of this store in their metadata)",
            outcome.foreign
        ));
    }
    if outcome.unpaid > 0 {
        summary.push_str(&format!("; {} not paid yet", outcome.unpaid));
    }
    context.output.note(summary);
    if outcome.dry_run {
        if outcome.files.is_empty() {
            context.output.note("dry run: the ledger is up to date");
        } else {
            context.output.note(format!(
                "dry run: would change {}",
                outcome.files.join(", ")
            ));
        }
        return Ok(());
    }
    if args.receipts && !outcome.dry_run {
        let queued = queue_missing_receipts(&store)?;
        context.output.note(format!(
            "queued {} for `shop serve` to send",
            store::count(queued, "missing receipt")
        ));
    }
    if let Some(count) = save_followers(&store)? {
        context.output.note(format!(
            "kept {} in audience/followers.jsonl",
            store::count(count, "follower")
        ));
    }
    if let Some(days) = save_visits(&store)? {
        context.output.note(format!(
            "kept the visits of {} in {VISITS_FILE}",
            store::count(days, "day")
        ));
    }
    match &outcome.commit {
        Some(commit) => context.output.data(format!(
            "{} new, {} refunded, {} disputed{}; committed {}\n",
            outcome.new,
            outcome.refunded,
            outcome.disputed,
            [
                (outcome.withdrawals, "withdrawal"),
                (outcome.samples, "free sample")
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, noun)| format!(", {}", store::count(*n, noun)))
            .collect::<String>(),
            &commit[..commit.len().min(12)]
        ))?,
        None => context
            .output
            .note("the ledger is up to date; nothing to commit"),
    }
    Ok(())
}

/// The visits file in the store: the server's daily counts (`shop
/// report --funnel` reads them), in git, rebuilt from its state.
pub const VISITS_FILE: &str = "audience/visits.jsonl";

/// Writes and commits `audience/visits.jsonl` when the server's counts
/// differ from it; of how many days, when it did.
fn save_visits(store: &store::Store) -> anyhow::Result<Option<usize>> {
    let Some(db) = super::existing_state(store)? else {
        return Ok(None);
    };
    let visits = super::block_on(db.visits())??;
    let mut text = String::new();
    for visit in &visits {
        text.push_str(&serde_json::to_string(visit)?);
        text.push('\n');
    }
    let path = store.root.join(VISITS_FILE);
    if std::fs::read_to_string(&path).unwrap_or_default() == text {
        return Ok(None);
    }
    std::fs::create_dir_all(store.root.join("audience"))?;
    crate::atomic::replace(&path, text.as_bytes(), &store.root.join(".shop"))?;
    let days = visits
        .iter()
        .map(|visit| visit.day.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let repo = crate::git::open(&store.root)?;
    crate::git::commit_paths(
        &repo,
        &[std::path::Path::new(VISITS_FILE)],
        &format!("audience: the visits of {}", store::count(days, "day")),
    )?;
    Ok(Some(days))
}

/// The followers file in the store: the author's list, in git, rebuilt
/// from the server's state.
pub const FOLLOWERS_FILE: &str = "audience/followers.jsonl";

/// Writes and commits `audience/followers.jsonl` when the server's
/// followers differ from it; how many follow, when it did.
fn save_followers(store: &store::Store) -> anyhow::Result<Option<usize>> {
    let Some(db) = super::existing_state(store)? else {
        return Ok(None);
    };
    let followers = super::block_on(db.followers())??;
    let mut text = String::new();
    for follower in &followers {
        text.push_str(&serde_json::to_string(follower)?);
        text.push('\n');
    }
    let path = store.root.join(FOLLOWERS_FILE);
    if std::fs::read_to_string(&path).unwrap_or_default() == text {
        return Ok(None);
    }
    std::fs::create_dir_all(store.root.join("audience"))?;
    crate::atomic::replace(&path, text.as_bytes(), &store.root.join(".shop"))?;
    let following = followers.iter().filter(|f| f.following()).count();
    let repo = crate::git::open(&store.root)?;
    crate::git::commit_paths(
        &repo,
        &[std::path::Path::new(FOLLOWERS_FILE)],
        &format!("audience: {}", store::count(following, "follower")),
    )?;
    Ok(Some(following))
}

/// Queues a receipt for every paid purchase of the last 30 days that the
/// server's queue never held (it dedupes by purchase, so a receipt already
/// sent or queued is left alone). Returns how many were queued.
fn queue_missing_receipts(store: &store::Store) -> anyhow::Result<usize> {
    let now = super::now()?.unix_timestamp();
    let since = now - 30 * 86_400;
    let mut purchases = Vec::new();
    ledger::each(&store.root, |purchase| {
        if purchase.status == Status::Paid
            && purchase.created_unix() >= since
            && !purchase.email.is_empty()
        {
            purchases.push(purchase);
        }
        Ok(())
    })?;
    let db = super::open_state(store)?;
    let purchases = purchases.iter().map(Entitlement::from).collect();
    let queued = super::block_on(db.queue_receipts(purchases, now))??;
    Ok(queued)
}

/// A spinner with sessions seen, kept and the rate.
struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    fn new(quiet: bool) -> Bar {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
        };
        let style = indicatif::ProgressStyle::with_template(
            "  {spinner} sessions seen: {pos}, {msg} ({rate})",
        )
        .map(super::with_rate)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        Bar { bar }
    }
}

impl Progress for Bar {
    fn sessions(&self, seen: u64, kept: u64) {
        self.bar.set_position(seen);
        self.bar.set_message(format!("{kept} of this shop"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

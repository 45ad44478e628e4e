//! `shop sync`: copy Stripe's completed purchases into the git ledger.

use super::Context;

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

    /// Also send receipts that never went out (missed webhooks)
    #[arg(long)]
    pub receipts: bool,
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("sync")
}

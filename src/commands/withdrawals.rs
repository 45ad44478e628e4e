//! `shop withdrawals`: buyers' withdrawals and what became of them.

use super::Context;
use crate::printable::printable;
use crate::state::Withdrawal;
use crate::{dates, ledger};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    shop withdrawals\n  \
    shop withdrawals --open            # those that wait for the author\n  \
    shop withdrawals --json\n\n\
    Reads the server's state: every use of the withdrawal function (`/withdraw/…` on \
    each page and receipt of a purchase), what was decided, and the refund at Stripe. \
    Those under review (`[refunds] review = true`) and refunds that did not go through \
    are settled with `shop refund ORDER`. `shop sync` copies them into \
    `purchases/withdrawals.jsonl`.")]
pub struct Args {
    /// Only those that wait for the author: under review, or a refund
    /// that did not go through
    #[arg(long)]
    pub open: bool,
}

/// Whether the author has something to do about it.
fn open(withdrawal: &Withdrawal) -> bool {
    match withdrawal.decision.as_str() {
        "review" => withdrawal.refund_status.as_deref() != Some("succeeded"),
        "refund" | "guarantee" => withdrawal.refund_status.as_deref() == Some("failed"),
        _ => false,
    }
}

/// What became of it, in a few words.
fn outcome(withdrawal: &Withdrawal) -> String {
    let refund = match withdrawal.refund_status.as_deref() {
        Some("succeeded") => "refunded".to_owned(),
        Some("pending") => "refund pending".to_owned(),
        Some("canceled") => "refund canceled with its payment".to_owned(),
        Some("failed") => format!(
            "refund failed {}× ({})",
            withdrawal.refused,
            withdrawal
                .last_error
                .as_deref()
                .unwrap_or("no reason given")
        ),
        _ => "refund asked".to_owned(),
    };
    match withdrawal.decision.as_str() {
        "refund" => format!("withdrawn: {refund}"),
        "guarantee" => format!("guarantee: {refund}"),
        "review" if withdrawal.refund_status.is_some() => format!("reviewed: {refund}"),
        "review" => "waits for you: `shop refund` it, or write to the buyer".to_owned(),
        "ended" => "right ended (waiver and download)".to_owned(),
        "late" => "after the 14 days".to_owned(),
        "refunded-before" => "already refunded".to_owned(),
        _ => "nothing was paid".to_owned(),
    }
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    let withdrawals = match super::existing_state(&store)? {
        Some(db) => super::block_on(db.withdrawals())??,
        None => Vec::new(),
    };
    let shown: Vec<&Withdrawal> = withdrawals
        .iter()
        .filter(|withdrawal| !args.open || open(withdrawal))
        .collect();
    if context.output.json {
        let rows: Vec<serde_json::Value> = shown
            .iter()
            .map(|withdrawal| {
                let mut row =
                    serde_json::to_value(ledger::Withdrawal::from(*withdrawal)).unwrap_or_default();
                row["email"] = serde_json::json!(withdrawal.email);
                row["open"] = serde_json::json!(open(withdrawal));
                row["last_error"] = serde_json::json!(withdrawal.last_error);
                row
            })
            .collect();
        context.output.json(&serde_json::json!(rows))?;
        return Ok(());
    }
    if shown.is_empty() {
        context.output.note(if args.open {
            "no withdrawal waits for you"
        } else {
            "no buyer has withdrawn"
        });
        return Ok(());
    }
    let header = ["ORDER", "ASKED", "EMAIL", "DECISION", "OUTCOME"].map(String::from);
    let rows: Vec<[String; 5]> = shown
        .iter()
        .map(|withdrawal| {
            [
                ledger::order_number(&withdrawal.purchase),
                dates::timestamp(withdrawal.requested)[..10].to_owned(),
                printable(&withdrawal.email).into_owned(),
                withdrawal.decision.clone(),
                outcome(withdrawal),
            ]
        })
        .collect();
    context.output.data(super::table(&header, &rows))?;
    let waiting = shown.iter().filter(|withdrawal| open(withdrawal)).count();
    if waiting > 0 {
        context.output.note(format!(
            "hint: {waiting} wait for you; `shop refund ORDER` refunds one and tells the buyer"
        ));
    }
    Ok(())
}

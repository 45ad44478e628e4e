//! `shop report`: sales from the ledger, offline.

use super::Context;
use crate::ledger;
use crate::report::{self, Report};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads only purchases/*.jsonl: it works offline, and is as current as \
                        the last `shop sync`."
)]
pub struct Args {
    /// Group sales by this
    #[arg(long, value_enum, default_value_t = By::Product)]
    pub by: By,

    /// Only purchases made on or after this day (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
    pub since: Option<time::Date>,

    /// Export the purchases as CSV, for a spreadsheet
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Product,
    Version,
    Month,
    /// Where buyers came from (utm_source, referrer)
    Source,
    /// The promotion code used (free copies show as sales of 0)
    Code,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    let since = args.since.map(|day| day.to_string());
    let keep = |purchase: &ledger::Purchase| {
        since
            .as_deref()
            .is_none_or(|since| purchase.created.as_str() >= since)
    };
    if args.csv {
        // Streamed: one month of the ledger in memory, whatever its size.
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        out.write_all(report::CSV_HEADER.as_bytes())?;
        let mut written = Ok(());
        ledger::each(&store.root, |purchase| {
            if written.is_ok() && keep(&purchase) {
                written = out.write_all(report::csv_line(&purchase).as_bytes());
            }
            Ok(())
        })?;
        written?;
        out.flush()?;
        return Ok(());
    }
    let by = match args.by {
        By::Product => report::By::Product,
        By::Version => report::By::Version,
        By::Month => report::By::Month,
        By::Source => report::By::Source,
        By::Code => report::By::Code,
    };
    let mut totals = Report::default();
    let mut in_ledger = false;
    ledger::each(&store.root, |purchase| {
        in_ledger = true;
        if keep(&purchase) {
            totals.add(&purchase, by);
        }
        Ok(())
    })?;
    let rows = totals.rows();
    if context.output.json {
        context.output.json(&serde_json::to_value(&rows)?)?;
        return Ok(());
    }
    if rows.is_empty() {
        match (&since, in_ledger) {
            (Some(since), true) => context.output.note(format!(
                "no purchases since {since}\nhint: try an earlier `--since`, or none"
            )),
            _ => context.output.note(
                "no purchases in the ledger yet\nhint: run `shop sync` to copy them from Stripe",
            ),
        }
        return Ok(());
    }
    let heading = match args.by {
        By::Product => "PRODUCT",
        By::Version => "VERSION",
        By::Month => "MONTH",
        By::Source => "SOURCE",
        By::Code => "CODE",
    };
    let money = |row: &report::Row| {
        [
            row.group.clone(),
            row.count.to_string(),
            row.money(row.gross),
            row.money(row.refunded),
            row.money(row.net),
        ]
    };
    // Given copies get their own column when there are any.
    if rows.iter().any(|row| row.granted > 0) {
        let header = [heading, "COUNT", "GIVEN", "GROSS", "REFUNDED", "NET"].map(String::from);
        let table: Vec<[String; 6]> = rows
            .iter()
            .map(|row| {
                let [group, count, gross, refunded, net] = money(row);
                [group, count, row.granted.to_string(), gross, refunded, net]
            })
            .collect();
        context.output.data(super::table(&header, &table))?;
        return Ok(());
    }
    let header = [heading, "COUNT", "GROSS", "REFUNDED", "NET"].map(String::from);
    let table: Vec<[String; 5]> = rows.iter().map(money).collect();
    context.output.data(super::table(&header, &table))?;
    Ok(())
}

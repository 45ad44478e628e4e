//! `shop report`: sales from the ledger, offline.

use super::Context;
use crate::report::{self, Report};
use crate::{ledger, store};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads only purchases/*.jsonl: it works offline, and is as current as \
                        the last `shop sync`."
)]
pub struct Args {
    /// Group sales by this
    #[arg(long, value_enum, default_value_t = By::Product)]
    pub by: By,

    /// Only purchases paid on or after this day (YYYY-MM-DD, UTC)
    #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
    pub since: Option<time::Date>,

    /// Export the purchases as CSV, for a spreadsheet (with `--funnel`,
    /// the funnel's rows)
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,

    /// Visits to sales: the views of the store's pages, the checkouts
    /// started, the sales and their revenue, with the rates between (by
    /// product or source; visits as of the last `shop sync`)
    #[arg(long, conflicts_with = "in_currency")]
    pub funnel: bool,

    /// Write the business in pictures to this HTML file: sales and revenue
    /// per month, sales by country, visits to sales by source, refunds and
    /// copies given (one page, no script, opens offline)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["csv", "funnel", "in_currency"])]
    pub html: Option<std::path::PathBuf>,

    /// Draw the table's gross as bars in the terminal
    #[arg(long, conflicts_with_all = ["csv", "html"])]
    pub chart: bool,

    /// Every currency in this one, the account's: each purchase at the rate
    /// Stripe applied when it settled it (what reached the bank), never a
    /// rate from elsewhere
    #[arg(long = "in", value_name = "CURRENCY", value_parser = parse_currency)]
    pub in_currency: Option<store::Currency>,
}

fn parse_currency(text: &str) -> Result<store::Currency, String> {
    text.parse()
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
    /// The buyer's country, with the tax collected (`[tax]` in shop.toml)
    Country,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    if args.funnel {
        return funnel(context, &store, &args);
    }
    if let Some(path) = &args.html {
        return html(context, &store, &args, path);
    }
    let since = args.since.map(|day| day.to_string());
    let keep = |purchase: &ledger::Purchase| {
        since
            .as_deref()
            .is_none_or(|since| purchase.sold() >= since)
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
        By::Country => report::By::Country,
    };
    // Purchases refunded through the withdrawal function, counted apart.
    let withdrawn: std::collections::HashSet<String> = ledger::read_withdrawals(&store.root)?
        .into_iter()
        .filter(|withdrawal| {
            matches!(
                withdrawal.refund_status.as_deref(),
                Some("succeeded" | "pending")
            )
        })
        .map(|withdrawal| withdrawal.purchase)
        .collect();
    /// What one reader of the ledger's files counted.
    #[derive(Default)]
    struct Counted {
        totals: Report,
        in_ledger: bool,
        /// `--in`: purchases Stripe gave no rate for, by currency.
        unconverted: std::collections::BTreeMap<String, usize>,
        /// Where purchases in other currencies settled: what `--in` could take.
        settled_in: std::collections::BTreeSet<String>,
    }
    // The ledger's files read on a few threads, their sums added up.
    let parts = ledger::fold(&store.root, Counted::default, |counted, purchase| {
        counted.in_ledger = true;
        if let Some(currency) = &purchase.settled_in {
            counted.settled_in.insert(currency.clone());
        }
        let purchase = match args.in_currency {
            None => purchase,
            Some(into) => match report::in_currency(&purchase, into) {
                Some(converted) => converted,
                None => {
                    *counted
                        .unconverted
                        .entry(purchase.currency.clone())
                        .or_default() += 1;
                    return;
                }
            },
        };
        if keep(&purchase) {
            counted.totals.add(&purchase, by);
            if withdrawn.contains(&purchase.id) {
                counted.totals.withdrawn(&purchase, by);
            }
        }
    })?;
    let mut totals = Report::default();
    let mut in_ledger = false;
    let mut unconverted: std::collections::BTreeMap<String, usize> = Default::default();
    let mut settled_in: std::collections::BTreeSet<String> = Default::default();
    for part in parts {
        totals.merge(part.totals);
        in_ledger |= part.in_ledger;
        for (currency, count) in part.unconverted {
            *unconverted.entry(currency).or_default() += count;
        }
        settled_in.extend(part.settled_in);
    }
    if let (Some(into), false) = (args.in_currency, unconverted.is_empty()) {
        let counts: Vec<String> = unconverted
            .iter()
            .map(|(currency, count)| {
                format!(
                    "{} in {}",
                    store::count(*count, "purchase"),
                    currency.to_ascii_uppercase()
                )
            })
            .collect();
        return Err(crate::error::hinted(
            format!(
                "Stripe gave no rate to {into} for {}: they settled in their own currency, or \
                 their settlement is not in the ledger",
                store::and_list(&counts)
            ),
            "run `shop report` without `--in` (a row per currency), or `shop sync --full` to \
             record settlements; `--in` takes the currency your account settles in",
        ));
    }
    let rows = totals.rows();
    let sums = totals.totals();
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
    if args.chart {
        use std::io::IsTerminal as _;
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        // A scale per currency: amounts in two are not one length.
        let mut drawn = Vec::new();
        for sum in &sums {
            let bars: Vec<(String, f64, String)> = rows
                .iter()
                .filter(|row| row.currency == sum.currency)
                .map(|row| {
                    (
                        crate::printable::printable(&row.group).to_string(),
                        row.gross as f64,
                        row.money(row.gross),
                    )
                })
                .collect();
            drawn.push(crate::charts::terminal_bars(&bars, 40, colour));
        }
        context.output.data(drawn.join("\n"))?;
        return Ok(());
    }
    let heading = match args.by {
        By::Product => "PRODUCT",
        By::Version => "VERSION",
        By::Month => "MONTH",
        By::Source => "SOURCE",
        By::Code => "CODE",
        By::Country => "COUNTRY",
    };
    // Given copies, samples and tax get their own columns when there are any.
    let given = rows.iter().any(|row| row.granted > 0);
    let samples = rows.iter().any(|row| row.samples > 0);
    let withdrawals = rows.iter().any(|row| row.withdrawn > 0);
    let taxed = args.by == By::Country || rows.iter().any(|row| row.tax != 0);
    let mut header = vec![heading, "COUNT"];
    header.extend(given.then_some("GIVEN"));
    header.extend(samples.then_some("SAMPLES"));
    header.extend(["GROSS", "REFUNDED"]);
    header.extend(withdrawals.then_some("WITHDRAWN"));
    header.push("FEES");
    header.extend(taxed.then_some("TAX"));
    header.push("NET");
    let cells = |row: &report::Row, group: String| {
        let mut cells = vec![group, row.count.to_string()];
        cells.extend(given.then(|| row.granted.to_string()));
        cells.extend(samples.then(|| row.samples.to_string()));
        cells.extend([row.money(row.gross), row.money(row.refunded)]);
        cells.extend(withdrawals.then(|| row.withdrawn.to_string()));
        cells.push(row.money(row.fees));
        cells.extend(taxed.then(|| row.money(row.tax)));
        cells.push(row.money(row.net));
        cells
    };
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| cells(row, row.group.clone()))
        .collect();
    // A total for each currency with more than one row to add.
    table.extend(
        sums.iter()
            .filter(|sum| {
                rows.iter()
                    .filter(|row| row.currency == sum.currency)
                    .count()
                    > 1
            })
            .map(|sum| cells(sum, "TOTAL".to_owned())),
    );
    let header: Vec<String> = header.into_iter().map(String::from).collect();
    context.output.data(super::table(&header, &table))?;
    let unknown: u64 = sums.iter().map(|sum| sum.fees_unknown).sum();
    if unknown > 0 && settled_in.len() == 1 {
        let into = settled_in
            .iter()
            .next()
            .map(|code| code.to_ascii_uppercase());
        let into = into.unwrap_or_default();
        context.output.note(format!(
            "the fees of {} are in {into}, where they settled: NET leaves them out\n\
             hint: `shop report --in {}` gives every purchase in {into}, at the rates Stripe applied",
            store::count(unknown as usize, "purchase"),
            into.to_ascii_lowercase()
        ));
    } else if unknown > 0 {
        context.output.note(format!(
            "the fees of {} are not known in their currency: NET leaves them out\n\
             hint: `shop sync --full` records the fees of purchases synced before shop read them",
            store::count(unknown as usize, "purchase")
        ));
    }
    Ok(())
}

/// `shop report --funnel`.
fn funnel(context: &Context, store: &store::Store, args: &Args) -> anyhow::Result<()> {
    use crate::funnel;
    let by = match args.by {
        By::Product => funnel::By::Product,
        By::Source => funnel::By::Source,
        other => {
            return Err(super::UsageError::new(
                format!(
                    "`--funnel` groups by product or source, not `{}`",
                    format!("{other:?}").to_ascii_lowercase()
                ),
                "give `--by product` (the default) or `--by source`",
            )
            .into());
        }
    };
    let since = args.since.map(|day| day.to_string());
    let make = || funnel::Funnel::new(by, since.as_deref());
    let (mut counted, visits) =
        fold_visits(store, make, |funnel, day, kind, product, source, count| {
            funnel.visit(day, kind, product, source, count)
        })?;
    for part in ledger::fold(&store.root, make, |funnel, purchase| {
        funnel.purchase(&purchase)
    })? {
        counted.merge(part);
    }
    let rows = counted.rows();
    if context.output.json {
        context.output.json(&serde_json::to_value(&rows)?)?;
        return Ok(());
    }
    let percent = |rate: Option<f64>| {
        rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.1}%", rate * 100.0))
    };
    let revenue = |row: &funnel::Row| {
        let amounts: Vec<String> = row
            .revenue
            .iter()
            .map(|(currency, amount)| crate::store::money::display_amount(*amount, currency))
            .collect();
        match amounts.is_empty() {
            true => "0".to_owned(),
            false => amounts.join(" + "),
        }
    };
    if args.csv {
        let mut text = String::from(
            "group,views,checkouts,sales,revenue,checkout_rate,sale_rate,conversion\n",
        );
        for row in &rows {
            let rate =
                |rate: Option<f64>| rate.map_or_else(String::new, |rate| format!("{rate:.4}"));
            text.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                report::csv_field(&row.group),
                row.views,
                row.checkouts,
                row.sales,
                report::csv_field(&revenue(row)),
                rate(row.checkout_rate),
                rate(row.sale_rate),
                rate(row.conversion)
            ));
        }
        context.output.data(text)?;
        return Ok(());
    }
    if rows.is_empty() {
        context.output.note(
            "no visits or sales yet\nhint: `shop sync` brings the server's counts of visits and the sales",
        );
        return Ok(());
    }
    let header: Vec<String> = [
        match by {
            funnel::By::Product => "PRODUCT",
            funnel::By::Source => "SOURCE",
        },
        "VIEWS",
        "CHECKOUTS",
        "SALES",
        "REVENUE",
        "VIEW→CHECKOUT",
        "CHECKOUT→SALE",
        "VIEW→SALE",
    ]
    .map(String::from)
    .to_vec();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                crate::printable::printable(&row.group).to_string(),
                row.views.to_string(),
                row.checkouts.to_string(),
                row.sales.to_string(),
                revenue(row),
                percent(row.checkout_rate),
                percent(row.sale_rate),
                percent(row.conversion),
            ]
        })
        .collect();
    context.output.data(super::table(&header, &table))?;
    if visits == 0 {
        context.output.note(format!(
            "no visits in {} yet\nhint: `shop sync` brings the server's counts",
            super::sync::VISITS_FILE
        ));
    }
    Ok(())
}

/// Folds each day's count of visits `shop sync` kept (day, kind,
/// product, source, count) into accumulators made by `make`, the file
/// read in pieces that a few threads parse at once; returns them merged
/// into one, and how many lines there were (none before the first sync).
fn fold_visits(
    store: &store::Store,
    make: impl Fn() -> crate::funnel::Funnel + Sync,
    add: impl Fn(&mut crate::funnel::Funnel, &str, &str, &str, &str, u64) + Sync,
) -> anyhow::Result<(crate::funnel::Funnel, usize)> {
    type T = crate::funnel::Funnel;
    use std::borrow::Cow;
    use std::io::Read as _;
    /// A line as written, its texts borrowed where they need no unescaping.
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        day: Cow<'a, str>,
        #[serde(borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        product: Cow<'a, str>,
        #[serde(borrow)]
        source: Cow<'a, str>,
        count: u64,
    }
    /// A piece of whole lines, and the number of the line before it.
    type Piece = (usize, Vec<u8>);
    const PIECE: usize = 4 << 20;
    let path = store.root.join(super::sync::VISITS_FILE);
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((make(), 0)),
        Err(error) => return Err(error.into()),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4);
    // At most two pieces wait: memory stays a few pieces, whatever the file.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Piece>(2);
    let receiver = std::sync::Mutex::new(receiver);
    let parse = |(before, bytes): Piece, folded: &mut T| -> anyhow::Result<usize> {
        let text = std::str::from_utf8(&bytes)?;
        let mut lines = 0;
        for (index, text) in text.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let line: Line<'_> = serde_json::from_str(text).map_err(|error| {
                crate::error::hinted(
                    format!(
                        "line {} of `{}` is not a day's visits: {error}",
                        before + index + 1,
                        super::sync::VISITS_FILE
                    ),
                    "restore it from git (`git checkout audience/visits.jsonl`); `shop sync` writes it again from the server's state",
                )
            })?;
            add(
                folded,
                &line.day,
                &line.kind,
                &line.product,
                &line.source,
                line.count,
            );
            lines += 1;
        }
        Ok(lines)
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<(T, usize)> {
                    let (mut folded, mut lines) = (make(), 0);
                    let mut failed = None;
                    loop {
                        let piece = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(piece) = piece else {
                            return match failed {
                                Some(error) => Err(error),
                                None => Ok((folded, lines)),
                            };
                        };
                        // After a bad line the rest is only drained, so that
                        // the reader is never left waiting.
                        if failed.is_none() {
                            match parse(piece, &mut folded) {
                                Ok(counted) => lines += counted,
                                Err(error) => failed = Some(error),
                            }
                        }
                    }
                })
            })
            .collect();
        // Pieces of whole lines: the bytes after a piece's last newline
        // start the next.
        let mut carried: Vec<u8> = Vec::new();
        let mut before = 0;
        let read: anyhow::Result<()> = (|| {
            loop {
                let mut piece = std::mem::take(&mut carried);
                let start = piece.len();
                piece.resize(start + PIECE, 0);
                let got = file.read(&mut piece[start..])?;
                piece.truncate(start + got);
                if got == 0 {
                    if !piece.is_empty() {
                        let _ = sender.send((before, piece));
                    }
                    return Ok(());
                }
                if let Some(end) = piece.iter().rposition(|byte| *byte == b'\n') {
                    carried = piece.split_off(end + 1);
                    let lines = piece.iter().filter(|byte| **byte == b'\n').count();
                    if sender.send((before, piece)).is_err() {
                        return Ok(());
                    }
                    before += lines;
                } else {
                    carried = piece;
                }
            }
        })();
        drop(sender);
        let mut merged = make();
        let mut lines = 0;
        let mut failure = read.err();
        for worker in workers {
            match worker.join().expect("a reader of visits panicked") {
                Ok((folded, counted)) => {
                    merged.merge(folded);
                    lines += counted;
                }
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok((merged, lines)),
        }
    })
}

/// `shop report --html FILE`.
fn html(
    context: &Context,
    store: &store::Store,
    args: &Args,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let since = args.since.map(|day| day.to_string());
    let make = || crate::funnel::Funnel::new(crate::funnel::By::Source, since.as_deref());
    let (mut funnel, _) = fold_visits(store, make, |funnel, day, kind, product, source, count| {
        funnel.visit(day, kind, product, source, count)
    })?;
    let mut business = crate::charts::Business::new(since.as_deref());
    let parts = ledger::fold(
        &store.root,
        || (make(), crate::charts::Business::new(since.as_deref())),
        |(funnel, business), purchase| {
            funnel.purchase(&purchase);
            business.add(&purchase);
        },
    )?;
    for (part, counted) in parts {
        funnel.merge(part);
        business.merge(counted);
    }
    let charts = business.charts(&funnel.rows());
    let note = format!(
        "From the ledger{} and the visits counted, as of the last shop sync.",
        since
            .as_deref()
            .map(|since| format!(" since {since}"))
            .unwrap_or_default()
    );
    let page = crate::charts::page(
        &format!("{}: the business", store.settings.name),
        &note,
        &charts,
    )
    .map_err(|message| anyhow::anyhow!("a chart could not be drawn: {message}"))?;
    std::fs::write(path, page).map_err(|error| {
        crate::error::hinted(
            format!("cannot write `{}`: {error}", path.display()),
            "give a file in a folder you can write to, such as `--html report.html`",
        )
    })?;
    context.output.note(format!(
        "wrote {} charts to {}",
        charts.len(),
        path.display()
    ));
    Ok(())
}

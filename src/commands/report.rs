//! `shop report`: sales from the ledger, offline.

use super::Context;

#[derive(Debug, clap::Args)]
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
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("report")
}

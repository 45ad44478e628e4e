//! `shop token`: support tools for a purchase's download link.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The purchase: its Checkout Session id (cs_...)
    #[arg(value_name = "PURCHASE-ID")]
    pub purchase: String,

    /// Add this many downloads to each of the purchase's files
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub grant: Option<u32>,
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("token")
}

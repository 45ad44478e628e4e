//! `shop checkout`: a one-off Stripe Checkout Session for a released version.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The product's slug
    pub slug: String,

    /// The version to sell [default: the latest release]
    #[arg(long, value_parser = super::parse_version)]
    pub version: Option<semver::Version>,

    /// Prefill the buyer's email address
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// How long the link stays open: 30m to 24h, as Stripe allows
    #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
    pub expires: u64,

    /// A Stripe promotion code to apply
    #[arg(long, value_name = "CODE")]
    pub promo: Option<String>,
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("checkout")
}

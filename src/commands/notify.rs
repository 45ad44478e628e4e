//! `shop notify`: email every entitled buyer a link to a new version.

use super::Context;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each buyer is emailed once per version, even across crashes and re-runs: \
                        sent notices are recorded in notices/<slug>-<version>.jsonl."
)]
pub struct Args {
    /// The product's slug
    pub slug: String,

    /// The released version to tell buyers about
    #[arg(value_parser = super::parse_version)]
    pub version: semver::Version,

    /// List who would be emailed, and send nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Email only this buyer (repeat for more)
    #[arg(long, value_name = "EMAIL")]
    pub only: Vec<String>,

    /// At most this many messages per second
    #[arg(long, value_name = "N/s", default_value = "10/s", value_parser = parse_rate)]
    pub rate: u32,
}

fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<u32>() {
        Ok(rate @ 1..=10_000) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate; write messages per second, such as `10/s`"
        )),
    }
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("notify")
}

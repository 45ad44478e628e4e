//! `shop release`: publish a new version of a product.

use std::path::PathBuf;

use super::Context;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every step can be run again: a release that failed half-way is finished \
                        by running the same command, without a second price, payment link, \
                        GitHub release or asset."
)]
pub struct Args {
    /// The product's slug (its file name under products/, without .toml)
    pub slug: String,

    /// The new version, greater than the last one released (semver: 1.2.0)
    #[arg(value_parser = super::parse_version)]
    pub version: semver::Version,

    /// The product's files, named as its `files` list says
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Release notes for the GitHub release [default: the store's git log
    /// since the previous release]
    #[arg(long, value_name = "FILE")]
    pub notes: Option<PathBuf>,

    /// Show every step that would be taken, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Then email every entitled buyer, as `shop notify` does
    #[arg(long)]
    pub notify: bool,
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("release")
}

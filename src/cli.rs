//! The command line: the clap [`Cli`] and its [`Command`] enum, nothing else.
//!
//! Each subcommand's own flags live beside its handler in `commands/`; this
//! file only names them. `///` comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// Sell digital files from a git repository.
///
/// A store is a git repository with `shop.toml` and `products/*.toml`. Stripe
/// takes the money; the files live as assets of GitHub releases in a private
/// repository (or in a local directory); purchases are copied into a ledger
/// under `purchases/` that git keeps.
#[derive(Debug, Parser)]
#[command(name = "shop", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The store to work on [default: the nearest folder up from here with a shop.toml]
    #[arg(long, global = true, env = "SHOP_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Print only data and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more about what is happening (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print data as JSON, for scripts
    #[arg(long, global = true)]
    pub json: bool,

    /// Public base URL of `shop serve` [default: `base_url` in shop.toml]
    #[arg(long, global = true, env = "SHOP_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Private GitHub repository for release assets, as OWNER/NAME
    /// [default: `github.repository` in shop.toml]
    #[arg(
        long,
        global = true,
        env = "SHOP_GITHUB_REPOSITORY",
        value_name = "OWNER/NAME"
    )]
    pub github_repository: Option<String>,

    /// How mail is sent: file, smtp or sendmail [default: `mail.transport` in shop.toml]
    #[arg(
        long,
        global = true,
        env = "SHOP_MAIL_TRANSPORT",
        value_name = "TRANSPORT"
    )]
    pub mail_transport: Option<String>,

    /// Base URL of Stripe's API (point it at `shop sandbox`)
    #[arg(
        long,
        global = true,
        env = "SHOP_STRIPE_API_BASE",
        value_name = "URL",
        default_value = "https://api.stripe.com",
        hide_short_help = true
    )]
    pub stripe_api_base: String,

    /// Attempts per Stripe request before giving up (retries on connection
    /// errors, 429 and 5xx)
    #[arg(
        long,
        global = true,
        env = "SHOP_STRIPE_ATTEMPTS",
        value_name = "N",
        default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(1..=20),
        hide_short_help = true
    )]
    pub stripe_attempts: u32,

    /// Base URL of GitHub's REST API
    #[arg(
        long,
        global = true,
        env = "SHOP_GITHUB_API_BASE",
        value_name = "URL",
        default_value = "https://api.github.com",
        hide_short_help = true
    )]
    pub github_api_base: String,

    /// Base URL of GitHub's uploads host
    #[arg(
        long,
        global = true,
        env = "SHOP_GITHUB_UPLOADS_BASE",
        value_name = "URL",
        default_value = "https://uploads.github.com",
        hide_short_help = true
    )]
    pub github_uploads_base: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new store: a git repository with shop.toml and an example product
    Init(commands::init::Args),
    /// List the catalogue, or check the whole store
    Products(commands::products::Args),
    /// Publish a new version of a product: Stripe price and payment link, release assets
    Release(commands::release::Args),
    /// Sell a coming version before its files are ready; `shop release` delivers it
    Preorder(commands::release::PreorderArgs),
    /// Make a one-off Stripe Checkout link for a released version
    Checkout(commands::checkout::Args),
    /// Copy Stripe's completed purchases, refunds and disputes into the ledger
    Sync(commands::sync::Args),
    /// Email every entitled buyer a link to a new version, once each
    Notify(commands::notify::Args),
    /// Run the web server: checkout landing, Stripe webhooks, download links
    Serve(commands::serve::Args),
    /// Run a local Stripe-compatible server with a test-checkout page
    Sandbox(commands::sandbox::Args),
    /// Sales from the ledger: count, gross, refunded and net
    Report(commands::report::Args),
    /// Give a copy without a payment (a review copy, a prize), and mail its link
    Grant(commands::grant::Args),
    /// Mint a fresh download link for a purchase (and mail it), or grant more downloads
    Token(commands::token::Args),
    /// Find a buyer's purchases by email, order number or id, with downloads left
    Find(commands::find::Args),
    /// Refund a purchase at Stripe, close its downloads and tell the buyer
    Refund(commands::refund::Args),
    /// Find whose stamped copy a PDF or EPUB is
    Trace(commands::trace::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(commands::completions::Args),
    /// Print the manual page (roff)
    Man(commands::completions::ManArgs),
}

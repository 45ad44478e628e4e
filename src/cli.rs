//! The command line: the clap [`Cli`] and its [`Command`] enum, nothing else.
//!
//! Each subcommand's own flags live beside its handler in `commands/`; this
//! file only names them. `///` comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;

use crate::commands;
use crate::commands::completions::{next_versions, released_versions, slugs};

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
    /// Buyers' withdrawals (the EU withdrawal function) and their refunds
    Withdrawals(commands::withdrawals::Args),
    /// Mail a post to followers and buyers, once each, and publish it
    Post(commands::post::Args),
    /// Followers: list, export as CSV, or import a list with consent
    Followers(commands::followers::Args),
    /// Find whose stamped copy a PDF or EPUB is
    Trace(commands::trace::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(commands::completions::Args),
    /// Print the manual page (roff)
    Man(commands::completions::ManArgs),
}

/// What each subcommand's help ends with: how it is used.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "init",
        "shop init books --name \"Old Roads Press\" --currency eur\n  \
         cd books && shop products check",
    ),
    (
        "products",
        "shop products            # the catalogue: versions on sale, pre-orders, prices\n  \
         shop products check      # every problem of shop.toml and products/*.toml at once",
    ),
    (
        "release",
        "shop release old-roads 1.0.0 build/old-roads.pdf build/old-roads.epub\n  \
         shop release old-roads 1.0.1 build/*.pdf build/*.epub --notify   # a fix, and tell buyers\n  \
         shop release old-roads 1.1.0 build/* --dry-run                    # see every step first",
    ),
    (
        "preorder",
        "shop preorder old-roads 2.0.0 --date 2027-03-01 --price 19.00\n  \
         shop release old-roads 2.0.0 build/*     # the day it is out: pre-order buyers get their link",
    ),
    (
        "checkout",
        "shop checkout old-roads --email ada@example.com --expires 2h\n  \
         shop checkout old-roads --promo LAUNCH",
    ),
    (
        "sync",
        "shop sync                # purchases, refunds and disputes since the last sync\n  \
         shop sync --full         # the whole ledger again, with Stripe's fees of older purchases",
    ),
    (
        "notify",
        "shop notify old-roads 1.0.1 --dry-run     # who would be told\n  \
         shop notify old-roads 1.0.1 --rate 5/s",
    ),
    (
        "serve",
        "shop serve --listen 127.0.0.1:8080       # base_url in shop.toml must reach this port\n  \
         SHOP_STATE_URL=postgres://… shop serve   # several servers, one state",
    ),
    (
        "sandbox",
        "shop sandbox --webhook http://127.0.0.1:8080/stripe/webhook\n  \
         export SHOP_STRIPE_API_BASE=http://127.0.0.1:4111 STRIPE_SECRET_KEY=sk_test_local",
    ),
    (
        "report",
        "shop report --by month\n  \
         shop report --since 2026-01-01 --csv > 2026.csv",
    ),
    (
        "grant",
        "shop grant reviewer@example.com old-roads --note \"review copy\"",
    ),
    (
        "token",
        "shop token ada@example.com --mail        # her receipt again, with a fresh link\n  \
         shop token 7K2QM-9XWAB --grant 3         # three more downloads of each file",
    ),
    (
        "find",
        "shop find ada@example.com\n  \
         shop find 7k2qm9xwab --json              # an order number however it was typed",
    ),
    (
        "refund",
        "shop refund 7K2QM-9XWAB --reason \"bought twice\"",
    ),
    (
        "post",
        "shop post news.md --dry-run\n  \
         shop post news.md --to all",
    ),
    (
        "followers",
        "shop followers --csv > followers.csv\n  \
         shop followers import list.csv --consent \"signed up at the fair, 2026-10-03\"",
    ),
    (
        "withdrawals",
        "shop withdrawals --open                  # under review, or a refund that failed",
    ),
    ("trace", "shop trace found-online.pdf"),
    (
        "completions",
        "source <(shop completions bash)          # in ~/.bashrc: slugs and versions complete too\n  \
         shop completions fish > ~/.config/fish/completions/shop.fish",
    ),
    (
        "man",
        "shop man release                         # through man(1) at a terminal\n  \
         shop man --dir /usr/local/share/man/man1",
    ),
];

/// The command line as `shop` parses, completes and documents it: the
/// derive's definition, with an example section in each subcommand's help,
/// the global options listed once (in `shop --help`, each subcommand's
/// help pointing there) and product slugs and versions completed from the
/// store.
pub fn command() -> clap::Command {
    // Hidden where clap would list them under every subcommand; listed
    // once, under their heading, at the end of `shop --help`.
    let mut globals = String::from("Global options (for every subcommand):\n");
    let root = Cli::command().mut_args(|arg| {
        if !arg.is_global_set() {
            return arg;
        }
        let long = arg.get_long().unwrap_or_default();
        let mut name = match arg.get_short() {
            Some(short) => format!("-{short}, --{long}"),
            None => format!("    --{long}"),
        };
        if arg.get_action().takes_values()
            && let Some(value) = arg.get_value_names().and_then(|names| names.first())
        {
            name.push_str(&format!(" <{value}>"));
        }
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let env = arg
            .get_env()
            .map(|env| format!(" [env: {}]", env.to_string_lossy()))
            .unwrap_or_default();
        globals.push_str(&format!("  {name}\n          {help}{env}\n"));
        arg.hide(true)
    });
    let root = root.after_help(globals.trim_end().to_owned());
    root.mut_subcommands(|sub| {
        let mut after = sub
            .get_after_help()
            .map(|text| format!("{text}\n\n"))
            .unwrap_or_default();
        if let Some((_, examples)) = EXAMPLES.iter().find(|(name, _)| *name == sub.get_name()) {
            after.push_str(&format!("Examples:\n  {examples}\n\n"));
        }
        after.push_str(
            "Global options (--store, --json, -q, -v, --base-url, …): see `shop --help`.",
        );
        // In place: `mut_arg` would move a positional to the end.
        let new_version = matches!(sub.get_name(), "release" | "preorder");
        sub.mut_args(|arg| match arg.get_id().as_str() {
            "slug" => arg.add(ArgValueCompleter::new(slugs)),
            "version" if new_version => arg.add(ArgValueCompleter::new(next_versions)),
            "version" => arg.add(ArgValueCompleter::new(released_versions)),
            _ => arg,
        })
        .after_help(after)
    })
}

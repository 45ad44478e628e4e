//! `shop release`: publish a new version of a product.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::ResultExt as _;

use super::Context;
use crate::release::{self, Files, Reporter, Request};

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

    /// The product's files, named as its `files` list says (none for a
    /// bundle, which gives its products' files)
    #[arg(value_name = "FILE")]
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

/// `shop preorder`: sell a version before its files are ready.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The version sells through its own payment link (and /buy/<slug>); each \
                        purchase is recorded in the ledger as a pre-order and gets a receipt \
                        saying the files will follow. `shop release <slug> <version> <files>` \
                        then puts the files out and mails every pre-order buyer their link, \
                        once. Nothing is tagged until then."
)]
pub struct PreorderArgs {
    /// The product's slug (its file name under products/, without .toml)
    pub slug: String,

    /// The coming version, greater than the last one released (semver: 2.0.0)
    #[arg(value_parser = super::parse_version)]
    pub version: semver::Version,

    /// What the version will bring, in Markdown, shown on the product's page
    #[arg(long, value_name = "FILE")]
    pub notes: Option<PathBuf>,

    /// The day the version is to come out, shown on the pages and in the
    /// pre-order receipt (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
    pub date: Option<time::Date>,

    /// A launch price for pre-orders (such as `19.00`), replaced by the
    /// product's price when the version is released [default: the
    /// product's price]
    #[arg(long, value_name = "PRICE")]
    pub price: Option<String>,

    /// Show every step that would be taken, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    publish(
        context,
        Publish {
            slug: &args.slug,
            version: &args.version,
            files: args.files.clone(),
            notes: args.notes.as_deref(),
            dry_run: args.dry_run,
            notify: args.notify,
            preorder: false,
            out: None,
            price: None,
        },
    )
}

pub fn preorder(context: &Context, args: PreorderArgs) -> anyhow::Result<()> {
    publish(
        context,
        Publish {
            slug: &args.slug,
            version: &args.version,
            files: Vec::new(),
            notes: args.notes.as_deref(),
            dry_run: args.dry_run,
            notify: false,
            preorder: true,
            out: args.date,
            price: args.price.as_deref(),
        },
    )
}

/// What `shop release` and `shop preorder` were asked.
struct Publish<'a> {
    slug: &'a str,
    version: &'a semver::Version,
    files: Vec<PathBuf>,
    notes: Option<&'a std::path::Path>,
    dry_run: bool,
    notify: bool,
    preorder: bool,
    out: Option<time::Date>,
    price: Option<&'a str>,
}

fn publish(context: &Context, asked: Publish<'_>) -> anyhow::Result<()> {
    let store = context.open_store_to_commit()?;
    let bundle = store.product(asked.slug).is_ok_and(|p| p.is_bundle());
    if bundle && asked.notify {
        return Err(super::notify::bundle_notice(asked.slug));
    }
    // No files at all: said before any secret is asked for.
    if let Ok(product) = store.product(asked.slug)
        && asked.files.is_empty()
        && !asked.preorder
        && !bundle
    {
        return Err(release::ReleaseError::MissingFiles {
            slug: product.slug.clone(),
            missing: product.files.clone(),
        }
        .into());
    }
    let notes = match asked.notes {
        Some(path) => Some(std::fs::read_to_string(path).context_hint(
            format!("cannot read the release notes `{}`", path.display()),
            "give a readable text file to `--notes`",
        )?),
        None => None,
    };
    // A launch price is in the product's currency, by its rules.
    let price = match (asked.price, store.product(asked.slug)) {
        (Some(text), Ok(product)) => Some(
            crate::store::Money::parse(text, product.price.currency).map_err(|message| {
                crate::error::hinted(
                    format!("`--price`: {message}"),
                    format!(
                        "write the pre-order's price as a decimal in {}, such as `--price 19.00`",
                        product.price.currency.code().to_ascii_uppercase()
                    ),
                )
            })?,
        ),
        _ => None,
    };
    let stripe = context.stripe()?;
    let request = Request {
        store: &store,
        slug: asked.slug,
        version: asked.version.clone(),
        files: asked.files,
        notes,
        today: super::now()?.date(),
        dry_run: asked.dry_run,
        preorder: asked.preorder,
        out: asked.out,
        price,
    };
    let reporter = Arc::new(TerminalReporter::new(context.output.quiet));
    let outcome = super::block_on(async {
        // octocrab's client needs the runtime to exist when it is built.
        let files = match &store.settings.github_repository {
            // A pre-order and a bundle send no files.
            Some(repository) if !asked.preorder && !bundle => {
                let waiting = reporter.clone();
                let on_wait: crate::github::OnWait =
                    Arc::new(move |what, until| waiting.waiting(what, until));
                Files::GitHub(Box::new(
                    context
                        .github(repository)?
                        .with_patience(crate::github::Patience::default(), Some(on_wait)),
                ))
            }
            _ => Files::Local(crate::store::local_files_dir(&store.root)),
        };
        anyhow::Ok(release::run(&request, &stripe, &files, reporter.as_ref()).await?)
    })??;

    // Test builds: stopped after the record, before any mail.
    crate::fault::point("release:recorded");
    let json = context.output.json;
    if !json {
        print_outcome(context, &outcome)?;
    }
    let tell = |audience| {
        super::notify::notify_version(
            context,
            asked.slug,
            asked.version,
            &super::notify::Options::after_release(outcome.dry_run, audience, !json),
        )
    };
    // The files of a pre-ordered version are out: each pre-order buyer
    // gets their link, once (a re-run, or one after a crash, mails only
    // those not yet told).
    let delivered = if asked.preorder
        || !crate::notify::has_preorders(&store.root, asked.slug, asked.version)?
    {
        None
    } else {
        Some(tell(crate::notify::Audience::Preorders)?)
    };
    let notified = if asked.notify {
        Some(tell(crate::notify::Audience::Updates)?)
    } else {
        None
    };
    if json {
        let mut answer = serde_json::to_value(&outcome)?;
        answer["delivered"] = serde_json::to_value(&delivered)?;
        answer["notified"] = serde_json::to_value(&notified)?;
        context.output.json(&answer)?;
    }
    Ok(())
}

fn print_outcome(context: &Context, outcome: &release::Outcome) -> anyhow::Result<()> {
    if outcome.dry_run {
        context.output.note("dry run: nothing was changed");
        return Ok(());
    }
    let (done, state) = if outcome.preorder {
        ("opened pre-orders of", "on pre-order")
    } else {
        ("released", "released")
    };
    let summary = if outcome.created.is_empty() {
        format!(
            "{} {} was already {state}; nothing was created",
            outcome.product, outcome.version
        )
    } else {
        format!(
            "{done} {} {} ({})",
            outcome.product,
            outcome.version,
            outcome.created.join(", ")
        )
    };
    context.output.note(summary);
    context
        .output
        .data(format!("{}\n", outcome.payment_link_url))?;
    Ok(())
}

/// Steps as lines on stderr; uploads as indicatif progress bars.
struct TerminalReporter {
    quiet: bool,
    bars: Mutex<Vec<(String, indicatif::ProgressBar)>>,
}

impl TerminalReporter {
    fn new(quiet: bool) -> Self {
        TerminalReporter {
            quiet,
            bars: Mutex::new(Vec::new()),
        }
    }
}

impl Reporter for TerminalReporter {
    fn step(&self, text: &str) {
        if !self.quiet {
            eprintln!("  {text}");
        }
    }

    fn upload(&self, name: &str, size: u64) -> Arc<dyn Fn(u64) + Send + Sync> {
        let bar = if self.quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::with_draw_target(
                Some(size),
                indicatif::ProgressDrawTarget::stderr(),
            )
        };
        let style = indicatif::ProgressStyle::with_template(
            "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("sending {name}"));
        if let Ok(mut bars) = self.bars.lock() {
            bars.push((name.to_owned(), bar.clone()));
        }
        Arc::new(move |bytes| bar.inc(bytes))
    }

    fn upload_done(&self, name: &str, done: &str) {
        if let Ok(mut bars) = self.bars.lock()
            && let Some(index) = bars.iter().position(|(bar_name, _)| bar_name == name)
        {
            let (_, bar) = bars.remove(index);
            bar.finish_and_clear();
        }
        self.step(done);
    }

    /// Said on the upload's bar when one is showing, so the bar does not
    /// look stuck; as a step line otherwise.
    fn waiting(&self, what: &str, until: std::time::SystemTime) {
        let until = crate::dates::human_time(
            until
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs() as i64),
        );
        let text = format!("waiting for GitHub's rate limit until {until} to {what}");
        if let Ok(bars) = self.bars.lock()
            && let Some((name, bar)) = bars.last()
        {
            bar.set_message(format!("sending {name} ({text})"));
            return;
        }
        self.step(&text);
    }
}

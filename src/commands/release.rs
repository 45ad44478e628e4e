//! `shop release`: publish a new version of a product.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Context, notify};
use crate::error::{self, ResultExt as _};
use crate::notify::{Audience, has_preorders};
use crate::release::{self, Files, Reporter, Request};
use crate::store::{self, Money, Product, SETTINGS_FILE, Store};
use crate::{dates, fault, git, github};

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

    /// What changed, in Markdown: the product page, update notices and the
    /// GitHub release show it [default: notes/<slug>/<version>.md in the
    /// store, if there is one; else none]
    #[arg(long, value_name = "FILE")]
    pub notes: Option<PathBuf>,

    /// Show every step that would be taken, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Then email every entitled buyer, as `shop notify` does
    #[arg(long)]
    pub notify: bool,

    /// Commit the store's files the product uses (its cover, shop.toml,
    /// its notes file) with the release, where they have changes
    #[arg(long)]
    pub commit_all: bool,
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

    /// Commit the store's files the product uses (its cover, shop.toml,
    /// its notes file) with the pre-order, where they have changes
    #[arg(long)]
    pub commit_all: bool,
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
            commit_all: args.commit_all,
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
            commit_all: args.commit_all,
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
    commit_all: bool,
}

fn publish(context: &Context, asked: Publish<'_>) -> anyhow::Result<()> {
    let store = context.open_store_to_commit()?;
    let product = store.product(asked.slug).ok();
    let bundle = product.is_some_and(Product::is_bundle);
    if bundle && asked.notify {
        return Err(notify::bundle_notice(asked.slug));
    }
    // No files at all: said before any secret is asked for.
    if let Some(product) = product
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
    let notes = Notes::read(&store, &asked)?;
    let also_commit = also_commit(context, &store, &asked, &notes)?;
    let price = match (asked.price, product) {
        (Some(text), Some(product)) => Some(launch_price(text, product)?),
        _ => None,
    };
    // A free product sells nothing: no Stripe key is asked for.
    let stripe = match product.is_some_and(|product| product.free) {
        true => None,
        false => Some(context.stripe()?),
    };
    let request = Request {
        store: &store,
        slug: asked.slug,
        version: asked.version.clone(),
        files: asked.files,
        notes: notes.text,
        today: super::now()?.date(),
        dry_run: asked.dry_run,
        preorder: asked.preorder,
        out: asked.out,
        price,
        also_commit,
    };
    let reporter = Arc::new(TerminalReporter::new(context.output.quiet));
    let outcome = super::block_on(async {
        // octocrab's client needs the runtime to exist when it is built;
        // a pre-order and a bundle send no files.
        let files = files(context, &store, asked.preorder || bundle, &reporter)?;
        anyhow::Ok(release::run(&request, stripe.as_ref(), &files, reporter.as_ref()).await?)
    })??;

    // Test builds: stopped after the record, before any mail.
    fault::point("release:recorded");
    if notes.missing && !bundle {
        context.output.note(format!(
            "note: no release notes for {} {}: the product page and notices show none\n\
             hint: write them in `{}` (or give `--notes FILE`) before the next version",
            asked.slug,
            asked.version,
            notes.in_store.display()
        ));
    }
    let json = context.output.json;
    if !json {
        // What to share: the payment link, or a free product's page.
        let share = match outcome.payment_link_url.is_empty() {
            true => format!("{}/p/{}", store.settings.base_url, outcome.product),
            false => outcome.payment_link_url.clone(),
        };
        print_outcome(context, &outcome, &share)?;
    }
    let tell = |audience| {
        notify::notify_version(
            context,
            asked.slug,
            asked.version,
            &notify::Options::after_release(outcome.dry_run, audience, !json),
        )
    };
    // The files of a pre-ordered version are out: each pre-order buyer
    // gets their link, once (a re-run, or one after a crash, mails only
    // those not yet told).
    let delivered = if asked.preorder || !has_preorders(&store.root, asked.slug, asked.version)? {
        None
    } else {
        Some(tell(Audience::Preorders)?)
    };
    let notified = if asked.notify {
        Some(tell(Audience::Updates)?)
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

/// The notes the author wrote: `--notes`, else the store's
/// `notes/<slug>/<version>.md`; never the git log.
struct Notes {
    /// As the product file keeps them: without the file's last newline
    /// (a file of blank lines is no notes).
    text: Option<String>,
    missing: bool,
    /// Where the store keeps this version's notes.
    in_store: PathBuf,
}

impl Notes {
    fn read(store: &Store, asked: &Publish<'_>) -> anyhow::Result<Notes> {
        let in_store = PathBuf::from("notes")
            .join(asked.slug)
            .join(format!("{}.md", asked.version));
        let text = match asked.notes {
            Some(path) => Some(std::fs::read_to_string(path).context_hint(
                format!("cannot read the release notes `{}`", path.display()),
                "give a readable text file to `--notes`",
            )?),
            None => match std::fs::read_to_string(store.root.join(&in_store)) {
                Ok(text) => Some(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    return Err(error::hinted(
                        format!("cannot read `{}`: {error}", in_store.display()),
                        "make the notes file readable, or give `--notes FILE`",
                    ));
                }
            },
        };
        let text = text
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        Ok(Notes {
            missing: text.is_none(),
            text,
            in_store,
        })
    }
}

/// The store's files the product uses, committed or said not to be: a
/// clone of the store (another server) has only what is committed. With
/// `--commit-all` the release commits them; without, a warning names them.
fn also_commit(
    context: &Context,
    store: &Store,
    asked: &Publish<'_>,
    notes: &Notes,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut used = vec![PathBuf::from(SETTINGS_FILE)];
    if let Ok(product) = store.product(asked.slug) {
        used.extend(product.cover.iter().map(PathBuf::from));
    }
    if asked.notes.is_none() && store.root.join(&notes.in_store).exists() {
        used.push(notes.in_store.clone());
    }
    let uncommitted = git::open(&store.root)
        .map(|repo| git::uncommitted(&repo, &used))
        .unwrap_or_default();
    if uncommitted.is_empty() || asked.commit_all {
        return Ok(uncommitted);
    }
    let names: Vec<String> = uncommitted
        .iter()
        .map(|path| format!("`{}`", path.display()))
        .collect();
    context.output.note(format!(
        "warning: {} {} changes not committed, and the release commits only the product file: \
         a clone of the store (another server) will not have them\n\
         hint: commit them, or run again with `--commit-all` to commit them with the release",
        names.join(", "),
        if names.len() == 1 { "has" } else { "have" }
    ));
    Ok(Vec::new())
}

/// A launch price is in the product's currency, by its rules.
fn launch_price(text: &str, product: &Product) -> anyhow::Result<Money> {
    Money::parse(text, product.price.currency).map_err(|message| {
        error::hinted(
            format!("`--price`: {message}"),
            format!(
                "write the pre-order's price as a decimal in {}, such as `--price 19.00`",
                product.price.currency.code().to_ascii_uppercase()
            ),
        )
    })
}

/// Where the release puts its files: the GitHub repository the settings
/// name (told to wait out its rate limits aloud), else the local folder.
fn files(
    context: &Context,
    store: &Store,
    no_files: bool,
    reporter: &Arc<TerminalReporter>,
) -> anyhow::Result<Files> {
    Ok(match &store.settings.github_repository {
        Some(repository) if !no_files => {
            let waiting = reporter.clone();
            let on_wait: github::OnWait = Arc::new(move |what, until| waiting.waiting(what, until));
            Files::GitHub(Box::new(
                context
                    .github(repository)?
                    .with_patience(github::Patience::default(), Some(on_wait)),
            ))
        }
        _ => Files::Local(store::local_files_dir(&store.root)),
    })
}

fn print_outcome(context: &Context, outcome: &release::Outcome, share: &str) -> anyhow::Result<()> {
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
    context.output.data(format!("{share}\n"))?;
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
        let until = dates::human_time(
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

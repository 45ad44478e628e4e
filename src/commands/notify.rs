//! `shop notify`: email every entitled buyer a link to a new version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Context;
use crate::ledger;
use crate::mail::{Mailer, Templates};
use crate::notify::{self, Progress, Sending};
use crate::printable::printable;
use crate::store::{Product, Store, count};
use crate::tokens::Key as TokenKey;
use crate::{error, sync};

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

    /// Record the notices in doubt (with the mail server when a run was
    /// killed) as sent, instead of sending them again
    #[arg(long)]
    pub skip_in_doubt: bool,

    /// Mail the pre-order buyers of this version their download link
    /// instead (what `shop release` does when a pre-ordered version is out)
    #[arg(long)]
    pub preorders: bool,

    /// Do not bring the purchases made since the last `shop sync` into the
    /// ledger first (their buyers are then not told)
    #[arg(long)]
    pub no_sync: bool,
}

pub(super) fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<u32>() {
        Ok(rate @ 1..=10_000) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate; write messages per second, such as `10/s`"
        )),
    }
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    notify_version(
        context,
        &args.slug,
        &args.version,
        &Options {
            dry_run: args.dry_run,
            only: &args.only,
            rate: args.rate,
            skip_in_doubt: args.skip_in_doubt,
            audience: if args.preorders {
                notify::Audience::Preorders
            } else {
                notify::Audience::Updates
            },
            print: true,
            sync: !args.no_sync,
        },
    )
    .map(drop)
}

/// How `notify_version` runs.
pub(crate) struct Options<'a> {
    pub dry_run: bool,
    pub only: &'a [String],
    pub rate: u32,
    pub skip_in_doubt: bool,
    pub audience: notify::Audience,
    /// Print what was done (or would be); `shop release --json` puts it
    /// in its own answer instead.
    pub print: bool,
    /// Bring Stripe's newest purchases into the ledger first.
    pub sync: bool,
}

/// What a run did: as many sent, and as many skipped.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Told {
    pub sent: usize,
    pub already_told: usize,
    pub opted_out: usize,
    /// Only in a dry run: who would be emailed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_email: Option<Vec<notify::Recipient>>,
}

impl Options<'_> {
    /// What `shop release` uses: `--notify`'s notices, and the delivery to
    /// a pre-order's buyers.
    pub(crate) fn after_release(
        dry_run: bool,
        audience: notify::Audience,
        print: bool,
    ) -> Options<'static> {
        Options {
            dry_run,
            only: &[],
            rate: 10,
            skip_in_doubt: false,
            audience,
            print,
            sync: true,
        }
    }
}

/// A sync inside `notify`: its own lines say what it did.
struct Quiet;

impl sync::Progress for Quiet {
    fn sessions(&self, _seen: u64, _kept: u64) {}
    fn finish(&self) {}
}

/// Brings the purchases made since the last `shop sync` into the ledger,
/// so that nobody who bought is left out (in a dry run, only counts them);
/// without a Stripe key, says what that leaves out.
fn sync_first(context: &Context, store: &Store, dry_run: bool) -> anyhow::Result<()> {
    let stripe = match context.stripe() {
        Ok(stripe) => stripe,
        Err(_) => {
            context.output.note(
                "warning: `STRIPE_SECRET_KEY` is not set, so purchases made since the last `shop sync` are not in the ledger and their buyers are not told\n\
                 hint: set the key (notify then syncs first), or run `shop sync` before `shop notify`",
            );
            return Ok(());
        }
    };
    let request = sync::Request {
        store,
        full: false,
        since: None,
        dry_run,
        from_state: super::from_state(store)?,
    };
    let synced = super::block_on(sync::run(&request, &stripe, &Quiet))??;
    if dry_run && !synced.files.is_empty() {
        context.output.note(format!(
            "the ledger is behind Stripe (a sync would change {}): the real run syncs first, and tells the buyers since the last `shop sync` too",
            synced.files.join(", ")
        ));
    } else if synced.new > 0 {
        context.output.note(format!(
            "synced first: {} new in the ledger",
            count(synced.new as usize, "purchase")
        ));
    }
    Ok(())
}

fn clock() -> i64 {
    super::now().map_or(0, |now| now.unix_timestamp())
}

/// Notifies the buyers of `slug` entitled to `version` (also `shop release --notify`).
/// Why a bundle is not notified itself.
pub(crate) fn bundle_notice(slug: &str) -> anyhow::Error {
    error::hinted(
        format!("`{slug}` is a bundle: its buyers hear of each product's new versions"),
        "notify the product that changed, `shop notify <product> <version>`: it reaches bundle buyers too",
    )
}

pub(crate) fn notify_version(
    context: &Context,
    slug: &str,
    version: &semver::Version,
    options: &Options<'_>,
) -> anyhow::Result<Told> {
    let store = context.open_store_to_commit()?;
    let product = store.product(slug)?;
    check_out(product, version)?;
    // Templates and keys are checked before anything is sent.
    let templates = Templates::load(&store.root)?;
    let keys = super::token_keys()?;
    if options.sync {
        sync_first(context, &store, options.dry_run)?;
    }
    let (opt_outs, withdrawn) = match super::existing_state(&store)? {
        Some(db) => {
            let withdrawn = super::block_on(db.withdrawals())??
                .into_iter()
                .filter(|withdrawal| {
                    crate::withdrawal::refunding(&withdrawal.decision)
                        || withdrawal.refund_status.as_deref() == Some("succeeded")
                })
                .map(|withdrawal| withdrawal.purchase)
                .collect();
            (super::block_on(db.opt_outs())??, withdrawn)
        }
        None => Default::default(),
    };
    let plan = notify::plan(
        &store,
        product,
        version,
        options.audience,
        &opt_outs,
        &withdrawn,
        options.only,
    )?;
    if let Some(address) = plan.unknown.first() {
        return Err(error::hinted(
            format!(
                "`{}` has no purchase that {} {version} reaches",
                printable(address),
                product.name
            ),
            "check the address (`shop report --csv` lists every buyer); a purchase made moments ago reaches the ledger with `shop sync`",
        ));
    }
    let mut told = Told {
        sent: 0,
        already_told: plan.already_told,
        opted_out: plan.opted_out,
        would_email: None,
    };
    let words = Words::new(options.audience, &plan);
    if options.dry_run {
        if options.print {
            print_plan(context, product, version, &plan, &words)?;
        } else {
            told.would_email = Some(plan.recipients.clone());
        }
        return Ok(told);
    }
    if !plan.in_doubt.is_empty() {
        note_in_doubt(context, plan.in_doubt.len(), options.skip_in_doubt);
    }
    let nobody = plan.recipients.is_empty();
    if !nobody {
        let mailing = Mailing {
            store: &store,
            product,
            version,
            templates: &templates,
            key: &keys[0],
        };
        told.sent = send_plan(context, &mailing, &plan, options)?;
    }
    if options.print && context.output.json {
        context.output.json(&serde_json::to_value(&told)?)?;
    } else if options.print && nobody {
        context.output.note(format!(
            "nobody to tell {} {} {version} ({})",
            words.about, product.name, words.skipped
        ));
    } else if options.print {
        context.output.data(format!(
            "sent {} {} {} {version} ({})\n",
            count(told.sent, words.noun),
            words.about,
            product.name,
            words.skipped
        ))?;
    }
    Ok(told)
}

/// Refuses a version whose files are not out: none released, or on
/// pre-order; and a bundle, whose buyers hear of its products.
fn check_out(product: &Product, version: &semver::Version) -> anyhow::Result<()> {
    let slug = &product.slug;
    if product.is_bundle() {
        return Err(bundle_notice(slug));
    }
    match product.release(version) {
        None => Err(error::hinted(
            format!("`{slug}` has no release `{version}`"),
            format!("release it first with `shop release {slug} {version} <files>`"),
        )),
        Some(release) if release.preorder => Err(error::hinted(
            format!("`{slug}` {version} is on pre-order: its files are not out yet"),
            format!(
                "`shop release {slug} {version} <files>` puts them out and mails every pre-order buyer their link"
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// How a run's summary names what it sends, and whom it skipped.
struct Words {
    noun: &'static str,
    about: &'static str,
    skipped: String,
}

impl Words {
    fn new(audience: notify::Audience, plan: &notify::Plan) -> Words {
        let (noun, about) = match audience {
            notify::Audience::Updates => ("notice", "about"),
            notify::Audience::Preorders => ("download link", "of pre-ordered"),
        };
        Words {
            noun,
            about,
            skipped: format!(
                "{} already told, {} opted out",
                plan.already_told, plan.opted_out
            ),
        }
    }
}

/// `--dry-run`: who would be emailed, one line each (or the plan as JSON).
fn print_plan(
    context: &Context,
    product: &Product,
    version: &semver::Version,
    plan: &notify::Plan,
    words: &Words,
) -> anyhow::Result<()> {
    if context.output.json {
        context.output.json(&serde_json::to_value(plan)?)?;
        return Ok(());
    }
    let mut lines = String::new();
    for recipient in &plan.recipients {
        lines.push_str(&format!(
            "{}  ({} {}, {}){}\n",
            printable(&recipient.email),
            if ledger::is_given(&recipient.purchase) {
                "given"
            } else {
                "bought"
            },
            recipient.bought,
            recipient.purchase,
            if recipient.upgrade {
                "  upgrade offer"
            } else {
                ""
            }
        ));
    }
    context.output.data(lines)?;
    context.output.note(format!(
        "dry run: would email {} {} {} {version} ({})",
        count(plan.recipients.len(), "buyer"),
        words.about,
        product.name,
        words.skipped
    ));
    Ok(())
}

fn note_in_doubt(context: &Context, in_doubt: usize, skip_in_doubt: bool) {
    context.output.note(format!(
        "{} in doubt: a run was stopped while the mail server had {}; {}",
        count(in_doubt, "notice"),
        if in_doubt == 1 { "it" } else { "them" },
        if skip_in_doubt {
            "recording them as sent (--skip-in-doubt)"
        } else {
            "sending them again with the same Message-ID (--skip-in-doubt records them as sent instead)"
        }
    ));
}

/// What every message of one run is made from.
struct Mailing<'a> {
    store: &'a Store,
    product: &'a Product,
    version: &'a semver::Version,
    templates: &'a Templates,
    key: &'a TokenKey,
}

/// Sends the plan's messages at the rate asked, stopping cleanly on Ctrl-C
/// or SIGTERM; returns how many went out.
fn send_plan(
    context: &Context,
    mailing: &Mailing<'_>,
    plan: &notify::Plan,
    options: &Options<'_>,
) -> anyhow::Result<usize> {
    let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
    let upgrades = if plan.recipients.iter().any(|recipient| recipient.upgrade) {
        Some(context.stripe()?)
    } else {
        None
    };
    let progress = Bar::new(context.output.quiet, plan.recipients.len() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = super::block_on(async {
        // Ctrl-C or SIGTERM: finish the messages in flight, record them, stop.
        let flag = stop.clone();
        tokio::spawn(async move {
            super::shutdown_signal().await;
            flag.store(true, Ordering::SeqCst);
        });
        let mailer = Mailer::new(&mailing.store.settings, &mailing.store.root, password)?;
        // Each upgrade offer's code exists at Stripe before any mail names it.
        let offers = match upgrades {
            Some(stripe) => {
                notify::prepare_offers(
                    &stripe,
                    mailing.product,
                    mailing.version,
                    plan,
                    mailing.key,
                    clock(),
                )
                .await?
            }
            None => Default::default(),
        };
        let sending = Sending {
            store: mailing.store,
            product: mailing.product,
            version: mailing.version,
            audience: options.audience,
            offers: &offers,
            key: mailing.key,
            mailer: &mailer,
            templates: mailing.templates,
            rate: options.rate,
            now: clock,
            stop: &stop,
            skip_in_doubt: options.skip_in_doubt,
        };
        anyhow::Ok(notify::send(&sending, plan, &progress).await?)
    })??;
    progress.bar.finish_and_clear();
    Ok(sent)
}

/// A run's progress at the terminal (`shop post` shows the same).
pub(super) struct Bar {
    pub(super) bar: indicatif::ProgressBar,
}

impl Bar {
    pub(super) fn new(quiet: bool, total: u64) -> Bar {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            )
        };
        let style = indicatif::ProgressStyle::with_template(
            "  sending [{bar:30}] {pos}/{len} ({rate}, ETA {eta})",
        )
        .map(super::with_rate)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Bar { bar }
    }
}

impl Progress for Bar {
    fn sent(&self, done: u64, _total: u64) {
        self.bar.set_position(done);
    }
}

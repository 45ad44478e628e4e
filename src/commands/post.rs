//! `shop post`: a letter to followers and buyers, once each, kept in
//! `posts/` and published on the store.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Context;
use super::notify::Bar;
use crate::mail::{Mailer, Templates};
use crate::notify::{self, Delivery};
use crate::post::{self, Letter, PostError, To};
use crate::printable::printable;
use crate::store::count;

/// `1 address`, `2 addresses`.
fn addresses(n: usize) -> String {
    if n == 1 {
        "1 address".to_owned()
    } else {
        format!("{n} addresses")
    }
}
use crate::{dates, git};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    shop post news.md --dry-run              # who would get it\n  \
    shop post news.md --to all --rate 5/s\n  \
    shop post thanks.md --to buyers:old-roads --private\n\n\
    The file is Markdown after a front matter (`---`, `subject: …`, and optionally \
    `slug:`, `date:`, `private: true`, `---`). It is kept as `posts/<date>-<slug>.md`, \
    each message sent is recorded in `posts/<date>-<slug>.jsonl` as it goes, and both \
    are committed: run it again after a stop and it sends only what was not sent. \
    Followers are those who confirmed (`/follow`); buyers hear posts as `[audience] \
    buyers` in shop.toml says (`opt-in`: those who follow). Addresses that stopped \
    mail are skipped. Unless private, the post is on the store at `/posts/<slug>` and \
    in `/feed.xml`.")]
pub struct Args {
    /// The post: Markdown with a front matter
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Whom to send it to: followers, buyers, buyers:<slug> or all
    #[arg(long, value_name = "AUDIENCE", default_value = "followers", value_parser = |text: &str| text.parse::<To>())]
    pub to: To,

    /// Not on the store's pages or feed: mailed only
    #[arg(long)]
    pub private: bool,

    /// List who would get it; send nothing, write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// At most this many messages per second
    #[arg(long, value_name = "N/s", default_value = "10/s", value_parser = super::notify::parse_rate)]
    pub rate: u32,

    /// Record the messages in doubt after a killed run as sent instead of
    /// sending them again
    #[arg(long)]
    pub skip_in_doubt: bool,
}

fn clock() -> i64 {
    super::now().map_or(0, |now| now.unix_timestamp())
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store_to_commit()?;
    let text = std::fs::read_to_string(&args.file).map_err(|source| PostError::Io {
        path: args.file.clone(),
        source,
    })?;
    let today = dates::timestamp(clock())[..10].to_owned();
    let mut asked = post::parse(&args.file.display().to_string(), &text, &today)?;
    asked.private |= args.private;
    // The same post again (a run after a stop) keeps its first date.
    let post = match post::find(&store.root, &asked.slug)? {
        Some(kept) if kept.body == asked.body && kept.subject == asked.subject => kept,
        Some(_) => {
            return Err(PostError::SlugTaken {
                slug: asked.slug.clone(),
                existing: PathBuf::from(post::DIR).join(format!("{}.md", asked.id())),
            }
            .into());
        }
        None => asked,
    };
    let templates = Templates::load(&store.root)?;
    let keys = super::token_keys()?;
    let (followers, opt_outs) = match super::existing_state(&store)? {
        Some(db) => (
            super::block_on(db.followers())??,
            super::block_on(db.opt_outs())??,
        ),
        None => Default::default(),
    };
    let records = post::records_path(&store.root, &post);
    let intents = post::intents_path(&store.root, &post);
    let told: HashSet<String> = notify::sent_at(&records)?
        .into_iter()
        .map(|message| message.email.to_ascii_lowercase())
        .collect();
    let mut plan = post::plan(&store, &followers, &opt_outs, &told, &args.to)?;
    plan.in_doubt = notify::in_doubt_at(&intents, &told)?
        .into_iter()
        .filter(|email| plan.recipients.iter().any(|r| &r.email == email))
        .collect();
    let skipped = format!(
        "{} already sent, {} opted out",
        plan.already_told, plan.opted_out
    );
    if args.dry_run {
        if context.output.json {
            context.output.json(&serde_json::to_value(&plan)?)?;
            return Ok(());
        }
        let lines: String = plan
            .recipients
            .iter()
            .map(|recipient| {
                let who = if recipient
                    .purchase
                    .starts_with(crate::state::FOLLOWER_PREFIX)
                {
                    "follower"
                } else {
                    "buyer"
                };
                format!("{}  ({who})\n", printable(&recipient.email))
            })
            .collect();
        context.output.data(lines)?;
        context.output.note(format!(
            "dry run: would send “{}” to {} ({skipped})",
            post.subject,
            addresses(plan.recipients.len())
        ));
        return Ok(());
    }
    if !plan.in_doubt.is_empty() {
        context.output.note(format!(
            "{} in doubt: a run was stopped while the mail server had them; {}",
            count(plan.in_doubt.len(), "message"),
            if args.skip_in_doubt {
                "recording them as sent (--skip-in-doubt)"
            } else {
                "sending them again with the same Message-ID (--skip-in-doubt records them as sent instead)"
            }
        ));
    }
    // The post is in the store before any message names its page.
    let file = store.root.join(post::DIR).join(format!("{}.md", post.id()));
    if !file.exists() {
        std::fs::create_dir_all(file.parent().unwrap_or(&store.root))?;
        crate::atomic::replace(&file, post.text().as_bytes(), &store.root.join(".shop"))?;
    }
    let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
    let progress = Bar::new(context.output.quiet, plan.recipients.len() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, outcome) = super::block_on(async {
        let flag = stop.clone();
        tokio::spawn(async move {
            super::shutdown_signal().await;
            flag.store(true, Ordering::SeqCst);
        });
        let mailer = Mailer::new(&store.settings, &store.root, password)?;
        let letter = Letter {
            store: &store,
            post: &post,
            key: &keys[0],
            templates: &templates,
            now: clock,
        };
        let delivery = Delivery {
            mailer: &mailer,
            rate: args.rate,
            now: clock,
            stop: &stop,
            skip_in_doubt: args.skip_in_doubt,
            records: &records,
            intents: &intents,
        };
        anyhow::Ok(notify::deliver(&letter, &delivery, &plan, &progress).await?)
    })??;
    progress.bar.finish_and_clear();
    let repo = git::open(&store.root)?;
    let relative_md = PathBuf::from(post::DIR).join(format!("{}.md", post.id()));
    let relative_records = PathBuf::from(post::DIR).join(format!("{}.jsonl", post.id()));
    let mut paths = vec![relative_md.as_path()];
    if records.exists() {
        paths.push(relative_records.as_path());
    }
    let total = notify::sent_at(&records)?.len();
    git::commit_paths(
        &repo,
        &paths,
        &format!("post: {}, {} sent ({total} in all)", post.id(), tally.sent),
    )?;
    let sent = notify::finish(&stop, &plan, &tally, outcome)?;
    context.output.note(format!(
        "sent “{}” to {} ({skipped}){}",
        post.subject,
        addresses(sent),
        post.url(&store.settings.base_url)
            .map(|url| format!("; on the store at {url}"))
            .unwrap_or_default()
    ));
    Ok(())
}

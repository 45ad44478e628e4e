//! `shop grant`: a copy given without a payment (a review copy, a prize,
//! a reader helped by support), recorded in the ledger and mailed once.
//!
//! The grant is committed before its mail is sent, and marked mailed (a
//! second commit) once the mail server accepted it: a run stopped in
//! between leaves a grant not yet mailed, which the same command run again
//! mails, rather than giving a second copy.

use super::Context;
use crate::ledger::{self, Purchase};
use crate::mail::{Kind, Templates};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The grant is recorded in purchases/grants.jsonl (committed) and counted \
                        apart by `shop report`; the reader hears of new versions as a buyer \
                        would, under the product's update policy."
)]
pub struct Args {
    /// The reader's email address
    pub email: String,

    /// The product's slug
    pub slug: String,

    /// The version to give (the latest by default)
    #[arg(long, value_parser = super::parse_version)]
    pub version: Option<semver::Version>,

    /// Why it was given, for your records (kept in the ledger, never mailed)
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,

    /// Give another copy even though this address already has one of this version
    #[arg(long)]
    pub again: bool,

    /// Record the grant and print its link, but send no mail
    #[arg(long)]
    pub no_mail: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    // Inside the runtime from the start: the SMTP transport is made, used
    // and dropped there.
    super::block_on(give(context, args))?
}

async fn give(context: &Context, args: Args) -> anyhow::Result<()> {
    crate::store::settings::check_email(&args.email).map_err(|message| {
        super::UsageError::new(
            message,
            "give the reader's address, such as `shop grant ada@example.com guide`",
        )
    })?;
    if let Some(note) = &args.note
        && note.contains(['\n', '\r'])
    {
        return Err(super::UsageError::new(
            "`--note` has more than one line",
            "write the note on one line",
        )
        .into());
    }
    let store = context.open_store()?;
    let product = store.product(&args.slug)?;
    let release = match (&args.version, product.on_sale()) {
        // A pre-order's files are not out: the newest version that is.
        (None, Some(out)) => out,
        (version, _) => super::chosen_release(product, version.as_ref())?,
    };
    if release.preorder {
        return Err(crate::error::hinted(
            format!(
                "`{}` {} is on pre-order: its files are not out yet",
                product.slug, release.version
            ),
            "give a version that is out with `--version`, or give this one once `shop release` has put its files out",
        ));
    }
    let version = release.version.to_string();
    // Everything that can refuse is checked before anything is written.
    let keys = super::token_keys()?;
    let templates = Templates::load(&store.root)?;
    let mailer = if args.no_mail {
        None
    } else {
        let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
        Some(crate::mail::Mailer::new(
            &store.settings,
            &store.root,
            password,
        )?)
    };
    let now = super::now()?.unix_timestamp();
    let mut grants = ledger::read_grants(&store.root)?;
    let repo = crate::git::open(&store.root)?;

    let same = |grant: &Purchase| {
        grant.is_grant()
            && grant.email.eq_ignore_ascii_case(&args.email)
            && grant.product == product.slug
            && grant.version == version
    };
    let existing = grants
        .iter()
        .find(|grant| same(grant) && (grant.mailed.is_some() || args.no_mail));
    let unmailed = grants
        .iter()
        .find(|grant| same(grant) && grant.mailed.is_none());
    let grant = match (existing, unmailed) {
        (Some(existing), _) if !args.again => {
            return Err(crate::error::hinted(
                format!(
                    "`{}` already has a copy of `{}` {version} (grant `{}`{})",
                    args.email,
                    product.slug,
                    existing.id,
                    existing
                        .mailed
                        .as_ref()
                        .map_or_else(String::new, |at| format!(", mailed {at}")),
                ),
                format!(
                    "to mail the link again, run `shop token {} --mail`; to give another copy, add `--again`",
                    existing.id
                ),
            ));
        }
        // Recorded, never mailed (a run stopped after its commit): mail it now.
        (None, Some(unmailed)) if !args.again => unmailed.clone(),
        _ => {
            let grant = Purchase::granted(
                crate::dates::timestamp(now),
                &args.email,
                &product.slug,
                &version,
                product.price.currency.code(),
                args.note.clone(),
            );
            grants.push(grant.clone());
            save(
                &store.root,
                &repo,
                &mut grants,
                &format!("grant: {} {version}", product.slug),
            )?;
            grant
        }
    };
    crate::fault::point("grant:recorded");

    let expires = now + store.settings.link_lifetime as i64;
    let link = crate::tokens::link(&store.settings.base_url, &keys[0], &grant.id, expires);
    if let Some(mailer) = &mailer {
        let settings = &store.settings;
        let mut values = crate::mail::shop_values(settings, &grant.email);
        values.extend([
            ("product", product.name.clone()),
            ("version", version.clone()),
            ("link", link.clone()),
            ("expires", crate::dates::human_time(expires)),
            ("limit", product.download_limit.to_string()),
            ("order", ledger::order_number(&grant.id)),
            ("lost", format!("{}/lost", settings.base_url)),
        ]);
        values.extend(crate::mail::product_values(&store, product, &version));
        let rendered = templates.render(Kind::Gift, &values)?;
        let from = &settings.mail.from;
        let message = crate::mail::compose(
            from,
            &grant.email,
            &rendered,
            &crate::mail::message_id(&format!("gift.{}", grant.id), from),
            None,
        )?;
        mailer.send(message).await?;
        if let Some(recorded) = grants.iter_mut().find(|g| g.id == grant.id) {
            recorded.mailed = Some(crate::dates::timestamp(super::now()?.unix_timestamp()));
        }
        save(
            &store.root,
            &repo,
            &mut grants,
            &format!("grant: mailed {}", grant.id),
        )?;
    }

    let mailed = mailer.is_some();
    if context.output.json {
        context.output.json(&serde_json::json!({
            "grant": grant.id,
            "product": product.slug,
            "version": version,
            "mailed": mailed,
            "link": link,
            "expires": crate::dates::timestamp(expires),
        }))?;
        return Ok(());
    }
    context.output.note(format!(
        "gave `{}` {version} to `{}` (grant `{}`){}; the link, valid until {}:",
        product.slug,
        crate::printable::printable(&grant.email),
        grant.id,
        if mailed { ", mailed" } else { ", not mailed" },
        crate::dates::timestamp(expires),
    ));
    context.output.data(format!("{link}\n"))?;
    Ok(())
}

/// Writes the grants file and commits it (with nothing else).
fn save(
    root: &std::path::Path,
    repo: &git2::Repository,
    grants: &mut [Purchase],
    message: &str,
) -> anyhow::Result<()> {
    let path = ledger::write_grants(root, grants)?;
    crate::git::commit_paths(repo, &[path.as_path()], message)?;
    Ok(())
}

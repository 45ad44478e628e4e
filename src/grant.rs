//! A copy given without a payment (a review copy, a prize, a reader helped
//! by support): recorded in the store's `purchases/grants.jsonl` and mailed
//! once.
//!
//! The grant is committed before its mail is sent, and marked mailed (a
//! second commit) once the mail server accepted it: a run stopped in
//! between leaves a grant not yet mailed, which the same grant asked again
//! mails, rather than giving a second copy.

use crate::ledger::{self, Purchase};
use crate::mail::{Kind, Mailer, Templates};
use crate::store::{Product, Release, Store};
use crate::tokens::Key;
use crate::{dates, error, fault, git, mail, tokens};

/// What is given, to whom.
#[derive(Debug)]
pub struct Request<'a> {
    pub email: &'a str,
    /// A release whose files are out.
    pub release: &'a Release,
    /// Why, for the author's records (kept in the ledger, never mailed).
    pub note: Option<String>,
    /// Another copy, though this address has one of this version.
    pub again: bool,
}

/// What was given.
#[derive(Debug)]
pub struct Given {
    pub grant: Purchase,
    /// The download link, signed with the newest key.
    pub link: String,
    /// When the link stops working (Unix time).
    pub expires: i64,
    pub mailed: bool,
}

/// Records the grant (or finds one recorded and not yet mailed), mails its
/// link when a mailer is given, and marks it mailed. `now` is asked at
/// each moment recorded.
pub async fn give(
    store: &Store,
    product: &Product,
    request: Request<'_>,
    key: &Key,
    templates: &Templates,
    mailer: Option<&Mailer>,
    now: impl Fn() -> anyhow::Result<i64>,
) -> anyhow::Result<Given> {
    if request.release.preorder {
        return Err(error::hinted(
            format!(
                "`{}` {} is on pre-order: its files are not out yet",
                product.slug, request.release.version
            ),
            "give a version that is out with `--version`, or give this one once `shop release` has put its files out",
        ));
    }
    let version = request.release.version.to_string();
    let no_mail = mailer.is_none();
    let now_at_start = now()?;
    let mut grants = ledger::read_grants(&store.root)?;
    let repo = git::open(&store.root)?;

    let same = |grant: &Purchase| {
        grant.is_grant()
            && grant.email.eq_ignore_ascii_case(request.email)
            && grant.product == product.slug
            && grant.version == version
    };
    let existing = grants
        .iter()
        .find(|grant| same(grant) && (grant.mailed.is_some() || no_mail));
    let unmailed = grants
        .iter()
        .find(|grant| same(grant) && grant.mailed.is_none());
    let grant = match (existing, unmailed) {
        (Some(existing), _) if !request.again => {
            return Err(error::hinted(
                format!(
                    "`{}` already has a copy of `{}` {version} (grant `{}`{})",
                    request.email,
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
        (None, Some(unmailed)) if !request.again => unmailed.clone(),
        _ => {
            let grant = Purchase::granted(
                dates::timestamp(now_at_start),
                request.email,
                &product.slug,
                &version,
                product.price.currency.code(),
                request.note.clone(),
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
    fault::point("grant:recorded");

    let expires = now_at_start + store.settings.link_lifetime as i64;
    let link = tokens::link(&store.settings.base_url, key, &grant.id, expires);
    if let Some(mailer) = mailer {
        let settings = &store.settings;
        let values = mail::Access {
            store,
            product,
            version: &version,
            email: &grant.email,
            purchase: &grant.id,
            link: &link,
            expires,
        }
        .values();
        let rendered = templates.render(Kind::Gift, &values)?;
        let from = &settings.mail.from;
        let message = mail::compose(
            from,
            &grant.email,
            &rendered,
            &mail::message_id(&format!("gift.{}", grant.id), from),
            None,
        )?;
        mailer.send(message).await?;
        if let Some(recorded) = grants.iter_mut().find(|g| g.id == grant.id) {
            recorded.mailed = Some(dates::timestamp(now()?));
        }
        save(
            &store.root,
            &repo,
            &mut grants,
            &format!("grant: mailed {}", grant.id),
        )?;
    }

    Ok(Given {
        grant,
        link,
        expires,
        mailed: mailer.is_some(),
    })
}

/// Writes the grants file and commits it (with nothing else).
fn save(
    root: &std::path::Path,
    repo: &git2::Repository,
    grants: &mut [Purchase],
    message: &str,
) -> anyhow::Result<()> {
    let path = ledger::write_grants(root, grants)?;
    git::commit_paths(repo, &[path.as_path()], message)?;
    Ok(())
}

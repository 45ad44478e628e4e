//! The buyer's library: everything an address bought, by a signed,
//! expiring link.

use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::access::{held, link_query};
use super::answers::{invalid_link, log_unavailable, refuse, render};
use crate::server::{App, views};
use crate::state::{Entitlement, FileKey};
use crate::store::Product;
use crate::tokens::{self, TokenError};
use crate::{dates, ledger};

/// What a library token's claim starts with (a purchase's is `cs_`).
pub const LIBRARY_PREFIX: &str = "lib_";

/// A purchase of a library, as the state keeps it, or (bought before the
/// server kept this one) as the ledger says: `held` is (product, version,
/// created).
pub(super) async fn entitlement(
    app: &App,
    id: &str,
    email: &str,
    held: (&str, &str, i64),
) -> Result<Entitlement, Answer> {
    let (product, version, created) = held;
    match app.db.purchase(id).await {
        Ok(Some(known)) => Ok((*known).clone()),
        Ok(None) => Ok(Entitlement {
            id: id.to_owned(),
            email: email.to_owned(),
            product: product.to_owned(),
            version: version.to_owned(),
            payment_intent: None,
            created,
            paid: None,
            gift: None,
        }),
        Err(error) => Err(log_unavailable(app, &error)),
    }
}

/// A library's token (its subject `purpose` then `lib_…`: the page's, or
/// the OPDS feed's `opds:lib_…`) verified, with the address it is for; or
/// the refusal page (`expired` says what to do about an expired one).
pub(super) async fn library_of(
    app: &App,
    token: &str,
    purpose: &str,
    expired: (&str, &str),
) -> Result<(tokens::Claims, String), Answer> {
    let claims = match tokens::verify(&app.keys, token, app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Invalid) => return Err(invalid_link(app)),
        Err(TokenError::Expired { .. }) => {
            return Err(refuse(app, StatusCode::GONE, expired.0, expired.1));
        }
    };
    let Some(id) = claims
        .purchase
        .strip_prefix(purpose)
        .and_then(|library| library.strip_prefix(LIBRARY_PREFIX))
    else {
        return Err(invalid_link(app));
    };
    match app.db.library_email(id).await {
        Ok(Some(email)) => Ok((claims, email)),
        Ok(None) => Err(invalid_link(app)),
        Err(error) => Err(log_unavailable(app, &error)),
    }
}

/// The buyer's library: everything an address bought, reached only by the
/// signed, expiring link that `/lost` mails.
pub async fn library(token: String, app: Arc<App>) -> Answer {
    let expired = (
        "This link has expired",
        "Library links stop working after a while. Ask for a new one below.",
    );
    let (claims, email) = match library_of(&app, &token, "", expired).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let purchases = match app.purchases_by(&email).await {
        Ok(found) => found,
        Err(error) => return log_unavailable(&app, error.as_ref()),
    };
    let feeds_from = match app.db.reader(&email).await {
        Ok(reader) => reader.feeds_from,
        Err(error) => return log_unavailable(&app, &error),
    };
    let store = app.store();
    let mut items = Vec::with_capacity(purchases.len());
    for (id, (slug, version, created)) in &purchases {
        let Ok(bought) = store.product(slug) else {
            continue;
        };
        let purchase = match entitlement(&app, id, &email, (slug, version, *created)).await {
            Ok(purchase) => purchase,
            Err(page) => return page,
        };
        let refunded = match app.db.revoked(&purchase).await {
            Ok(revoked) => revoked,
            Err(error) => return log_unavailable(&app, &error),
        };
        let cover = |product: &Product| {
            product
                .cover
                .as_ref()
                .map(|_| format!("/cover/{}", product.slug))
        };
        // A pre-order not out yet: a line with its day, no files.
        if let Some(waiting) = bought.waiting_preorder(version) {
            items.push(views::LibraryItem {
                product: bought.name.clone(),
                bundle: None,
                bought: version.clone(),
                date: dates::human_day(*created),
                order: ledger::order_number(id),
                refunded,
                preorder: true,
                out: waiting.out.map(dates::human_date),
                cover: cover(bought),
                newest: String::new(),
                left: String::new(),
                href: String::new(),
                others: Vec::new(),
                withdraw: app.withdraw_link(&purchase, refunded),
            });
            continue;
        }
        // A bundle's purchase: a line per product it gives.
        for held in held(&store, &purchase) {
            let Some(newest) = held.releases.last().copied() else {
                continue;
            };
            let product = held.product;
            let newest_version = newest.version.to_string();
            let mut fewest: Option<(u32, u32)> = None;
            for asset in &newest.assets {
                let key = FileKey::new(&purchase, &product.slug, &newest_version, &asset.name);
                let (usage, extra) = match app.db.usage(&key).await {
                    Ok(found) => found,
                    Err(error) => return log_unavailable(&app, &error),
                };
                let allowed = product.download_limit + extra;
                let left = usage.left(allowed, asset.size);
                if fewest.is_none_or(|(fewest, _)| left < fewest) {
                    fewest = Some((left, allowed));
                }
            }
            let link = app.link(id);
            let page = link.strip_prefix(&store.settings.base_url).unwrap_or(&link);
            let href = format!("{page}{}", link_query(&purchase, product, None));
            // Every earlier edition the purchase holds, newest first.
            let others = held
                .releases
                .iter()
                .rev()
                .skip(1)
                .map(|release| {
                    let version = release.version.to_string();
                    views::OtherVersion {
                        href: format!("{page}{}", link_query(&purchase, product, Some(&version))),
                        version,
                        notes: release
                            .notes
                            .as_deref()
                            .map(|notes| views::safe(crate::html::markdown(notes))),
                    }
                })
                .collect();
            items.push(views::LibraryItem {
                product: product.name.clone(),
                bundle: bought.is_bundle().then(|| bought.name.clone()),
                bought: held.bought,
                date: dates::human_day(*created),
                order: ledger::order_number(id),
                refunded,
                preorder: false,
                out: None,
                cover: cover(product),
                newest: newest_version,
                left: fewest.map_or_else(String::new, |(left, allowed)| {
                    format!("{left} of {allowed} downloads left")
                }),
                href,
                others,
                withdraw: app.withdraw_link(&purchase, refunded),
            });
        }
    }
    let context = views::LibraryPage {
        shop: store.settings.name.clone(),
        email,
        expires: dates::human_time(claims.expires),
        expires_at: dates::timestamp(claims.expires),
        items,
        stop_feed: format!("/library/{token}/feed"),
        // Issued after the last address the reader stopped.
        opds: tokens::opds_link(
            &store.settings.base_url,
            &app.keys[0],
            &claims.purchase,
            app.now().max(feeds_from + 1),
        ),
    };
    // The page's address holds its token: no `Referer` carries it (its
    // form arrives with `Origin: null`, see `from_elsewhere_to_token`).
    render(
        &app,
        StatusCode::OK,
        "Your library",
        "library.html",
        minijinja::Value::from_serialize(&context),
    )
}

/// `POST /library/<token>/feed`: the reader stops their feed's address
/// (shared by mistake, a device given away): every address issued up to
/// now is refused, and the library shows a new one.
pub async fn stop_feed(
    token: String,
    app: Arc<App>,
    origin: Option<String>,
    referer: Option<String>,
) -> Answer {
    if let Some(refused) =
        super::lost::from_elsewhere_to_token(&app, origin.as_deref(), referer.as_deref())
    {
        return refused;
    }
    let expired = (
        "This link has expired",
        "Library links stop working after a while. Ask for a new one below.",
    );
    let email = match library_of(&app, &token, "", expired).await {
        Ok((_, email)) => email,
        Err(page) => return page,
    };
    if let Err(error) = app.db.revoke_feeds(&email, app.now()).await {
        return log_unavailable(&app, &error);
    }
    tracing::info!("a reader stopped their feed's address");
    super::answers::redirect(StatusCode::SEE_OTHER, &format!("/library/{token}#opds"))
}

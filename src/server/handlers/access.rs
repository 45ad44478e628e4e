//! Who may see what: a verified token's purchase (from the state, or
//! Stripe for links minted elsewhere) and the products and releases it
//! holds.

use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::answers::{invalid_link, log_unavailable, refunded, refuse, view};
use crate::server::App;
use crate::server::events::fulfilled_purchase;
use crate::state::Entitlement;
use crate::store::{Product, Release};
use crate::tokens::{self, TokenError};
use crate::{dates, ledger, store};

/// The purchase a token of one purpose names (its subject `prefix` and
/// the purchase's id: a withdrawal's, a gift's page), or the refusal page:
/// a forged or other purpose's token is an invalid link, an expired one
/// says to write in about `about` ("this purchase", "this gift").
pub(super) async fn purchase_of_purpose(
    app: &App,
    token: &str,
    prefix: &str,
    about: &str,
) -> Result<Arc<Entitlement>, Answer> {
    let claims = match tokens::verify(&app.keys, token, app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Invalid) => return Err(invalid_link(app)),
        Err(TokenError::Expired { .. }) => {
            return Err(refuse(
                app,
                StatusCode::GONE,
                "This link has expired",
                &format!("Write to us about {about}."),
            ));
        }
    };
    let Some(id) = claims.purchase.strip_prefix(prefix) else {
        return Err(invalid_link(app));
    };
    match purchase(app, id).await? {
        Some(found) => Ok(found),
        None => Err(invalid_link(app)),
    }
}

/// The purchase of a verified token: from the database, or else from
/// Stripe (a link minted by `shop token` or `shop notify`), remembered.
pub(super) async fn purchase(app: &App, id: &str) -> Result<Option<Arc<Entitlement>>, Answer> {
    if let Some(purchase) = app
        .db
        .purchase(id)
        .await
        .map_err(|error| log_unavailable(app, &error))?
    {
        return Ok(Some(purchase));
    }
    if ledger::is_given(id) {
        return given(app, id).await;
    }
    let session = match app.stripe.checkout_session(id).await {
        Ok(Some(session)) => session,
        Ok(None) => return Ok(None),
        Err(error) => return Err(log_unavailable(app, &error)),
    };
    let Some(purchase) = fulfilled_purchase(app, &session) else {
        return Ok(None);
    };
    app.db
        .upsert_purchase(purchase.clone(), app.now())
        .await
        .map_err(|error| log_unavailable(app, &error))?;
    Ok(Some(Arc::new(purchase)))
}

/// A copy given by `shop grant`, or a free sample a state moved or lost
/// no longer has, from the store's ledger (Stripe knows nothing of them),
/// kept in the database once found.
async fn given(app: &App, id: &str) -> Result<Option<Arc<Entitlement>>, Answer> {
    let root = app.store().root.clone();
    let read = match id.starts_with(ledger::GRANT_PREFIX) {
        true => ledger::read_grants,
        false => ledger::read_samples,
    };
    let grants = tokio::task::spawn_blocking(move || read(&root))
        .await
        .map_err(|error| log_unavailable(app, &error))?
        .map_err(|error| log_unavailable(app, &error))?;
    let Some(grant) = grants
        .into_iter()
        .find(|grant| grant.id == id && (grant.is_grant() || grant.is_sample()))
    else {
        return Ok(None);
    };
    let purchase = Entitlement::from(&grant);
    app.db
        .upsert_purchase(purchase.clone(), app.now())
        .await
        .map_err(|error| log_unavailable(app, &error))?;
    Ok(Some(Arc::new(purchase)))
}

/// One product a purchase gives (its own, or one of a bundle's) and what
/// of it the buyer may download.
pub(super) struct Held<'a> {
    pub(super) product: &'a Product,
    /// The version bought (for a bundle's product, the one the bundle gave).
    pub(super) bought: String,
    /// Oldest first.
    pub(super) releases: Vec<&'a Release>,
}

/// Every product a purchase gives, in the bundle's order.
pub(super) fn held<'a>(store: &'a store::Store, purchase: &Entitlement) -> Vec<Held<'a>> {
    store
        .holdings(&purchase.product, &purchase.version)
        .into_iter()
        .map(|holding| Held {
            product: holding.product,
            bought: holding.bought.to_string(),
            releases: holding.product.entitled(&holding.bought),
        })
        .collect()
}

/// The query of a link to a file or page of `product` at `version` (the
/// newest: none), naming the product only for a bundle's purchase.
pub(super) fn link_query(
    purchase: &Entitlement,
    product: &Product,
    version: Option<&str>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if purchase.product != product.slug {
        query.append_pair("product", &product.slug);
    }
    if let Some(version) = version {
        query.append_pair("version", version);
    }
    match query.finish() {
        query if query.is_empty() => query,
        query => format!("?{query}"),
    }
}

/// The page of a purchase whose files are not out yet.
pub(super) fn preordered_page(
    app: &App,
    purchase: &Entitlement,
    product: &Product,
    release: &Release,
) -> Answer {
    view(
        app,
        StatusCode::OK,
        &product.name,
        "preordered.html",
        minijinja::context! {
            product => product.name,
            version => release.version.to_string(),
            out => release.out.map(dates::human_date),
            withdraw => app.withdraw_link(purchase, false),
        },
    )
}

/// Checks a token and finds its purchase and product, or the refusal page.
/// `check_revoked` is false where the caller checks it itself (charging a
/// download does, in the same transaction).
pub(super) async fn authorize(
    app: &App,
    token: &str,
    check_revoked: bool,
) -> Result<(tokens::Claims, Arc<Entitlement>, Arc<store::Store>), Answer> {
    let claims = match tokens::verify(&app.keys, token, app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Invalid) => return Err(invalid_link(app)),
        Err(TokenError::Expired { .. }) => {
            return Err(refuse(
                app,
                StatusCode::GONE,
                "This link has expired",
                "Download links stop working after a while, so they cannot be shared for ever. Ask for a new one below.",
            ));
        }
    };
    if !claims.purchase.starts_with("cs_") && !ledger::is_given(&claims.purchase) {
        return Err(invalid_link(app));
    }
    let Some(purchase) = purchase(app, &claims.purchase).await? else {
        return Err(invalid_link(app));
    };
    let store = app.store();
    if store.product(&purchase.product).is_err() {
        return Err(refuse(
            app,
            StatusCode::GONE,
            "This product is no longer available",
            "Write to us and we will sort it out.",
        ));
    };
    if check_revoked {
        match app.db.revoked(&purchase).await {
            Ok(false) => {}
            Ok(true) => return Err(refunded(app)),
            Err(error) => return Err(log_unavailable(app, &error)),
        }
    }
    Ok((claims, purchase, store))
}

//! Buying: `/buy/<slug>` to the payment link or an upgrade's session, and
//! the thanks page a paid (or refunded) session returns to.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::access::{held, link_query, purchase};
use super::answers::{
    html, log_unavailable, not_found, redirect, refuse, render, same_origin_referrer, too_many,
    unavailable, view, within_limits,
};
use crate::metadata::Attribution;
use crate::server::client::ClientKey;
use crate::server::events::{fulfilled_purchase, ours};
use crate::server::{App, views};
use crate::stamp::Format;
use crate::state::Quota;
use crate::store::{Product, StampMode, money};
use crate::stripe::{CheckoutSession, IdempotencyKey};
use crate::{checkout, dates, ledger, metadata, net, store};

/// `GET /buy/<slug>`: the checkout of the version on sale. A plain Buy goes
/// to the version's payment link (`?gift`: its gift's link), with where the visitor came from in its
/// `client_reference_id` (which Stripe copies onto the Checkout Session the
/// link makes): no call to Stripe, nothing to limit, the same cost as any
/// page. Only an upgrade code (`?upgrade=CODE`) needs a session of its own
/// ([`upgrade_checkout`]).
pub async fn buy(
    slug: String,
    app: Arc<App>,
    client: ClientKey,
    query: HashMap<String, String>,
    referer: Option<String>,
    user_agent: Option<String>,
) -> Answer {
    let store = app.store();
    let Some(product) = store.product(&slug).ok() else {
        return not_found(&app);
    };
    if product.free {
        // Nothing to pay: its page asks for the address.
        return redirect(StatusCode::SEE_OTHER, &format!("/p/{slug}"));
    }
    app.visits.count(
        app.now(),
        crate::server::visits::Kind::Checkout,
        &product.slug,
        &query,
        referer.as_deref(),
        user_agent.as_deref(),
        &store.settings.base_url,
    );
    let came_from = Attribution::of_visit(&query, referer.as_deref(), &store.settings.base_url);
    if let Some(code) = query.get("upgrade") {
        return upgrade_checkout(&app, client, &slug, code, &came_from).await;
    }
    // The version on sale (or a first edition's pre-order); `?preorder`:
    // the next version's pre-order, beside it.
    let release = match query.contains_key("preorder") {
        true => product.preorder(),
        false => product.on_sale().or_else(|| product.preorder()),
    };
    let Some(release) = release else {
        return view(
            &app,
            StatusCode::NOT_FOUND,
            "Not for sale yet",
            "not-for-sale.html",
            minijinja::context! {
                product => product.name,
                preorder => query.contains_key("preorder"),
            },
        );
    };
    // `?gift`: the gift's payment link, which asks for the recipient.
    let link = match query.contains_key("gift") {
        true => &release.gift_link_url,
        false => &release.payment_link_url,
    };
    if link.is_empty() {
        return match query.contains_key("gift") {
            true => refuse(
                &app,
                StatusCode::NOT_FOUND,
                "Not sold as a gift",
                "This product cannot be given as a gift here. Buy it for yourself, or write to us.",
            ),
            false => unavailable(&app),
        };
    }
    let location = match came_from.to_reference() {
        Some(reference) => format!("{link}?client_reference_id={reference}"),
        None => link.clone(),
    };
    redirect(StatusCode::SEE_OTHER, &location)
}

/// `/buy/<slug>?upgrade=CODE`: a buyer's own upgrade code (`shop notify`),
/// applied to the checkout of the version it is for, and the session
/// marked as an upgrade. The code names the version: a server whose store
/// has not yet read that release (the mail went out the moment it was
/// made) reads the store again first. Each costs calls to Stripe: limited
/// per client (`[serve] checkout_limit`) and by the server's fair share
/// of Stripe.
async fn upgrade_checkout(
    app: &Arc<App>,
    client: ClientKey,
    slug: &str,
    code: &str,
    came_from: &metadata::Attribution,
) -> Answer {
    let key = format!("checkout:{client}");
    let quota = Quota::of(app.store().settings.serve.limits.checkout);
    match within_limits(app, &[(key.as_str(), quota)]).await {
        Ok(true) => {}
        Ok(false) => return too_many(app, 60),
        Err(answer) => return answer,
    }
    if !app.stripe_call(client) {
        return too_many(app, 5);
    }
    let offer = if code.len() <= 40 && code.chars().all(|c| c.is_ascii_alphanumeric()) {
        match app.stripe_quick.promotion_code(code).await {
            Ok(found) => found,
            Err(error) => return log_unavailable(app, &error),
        }
    } else {
        None
    };
    let does_not_work = || {
        refuse(
            app,
            StatusCode::GONE,
            "This upgrade code does not work",
            "It has been used, it has expired, or it is for another version. Write to us and we will sort it out.",
        )
    };
    let Some(offer) = offer.filter(|offer| {
        offer.usable(app.now()) && offer.metadata.get("product").map(String::as_str) == Some(slug)
    }) else {
        return does_not_work();
    };
    let Some(version) = offer
        .metadata
        .get("version")
        .and_then(|version| semver::Version::parse(version).ok())
    else {
        return does_not_work();
    };
    let released = |store: &store::Store| {
        store
            .product(slug)
            .ok()
            .and_then(|product| product.release(&version))
            .is_some_and(|release| !release.preorder)
    };
    if !released(&app.store()) {
        app.refresh_store();
    }
    let store = app.store();
    let Some((product, release)) = store.product(slug).ok().and_then(|product| {
        product
            .release(&version)
            .filter(|release| !release.preorder)
            .map(|release| (product, release))
    }) else {
        return does_not_work();
    };
    // As the version's payment link marks it, so the ledger knows a
    // pre-order; and where the buyer came from.
    let mut params = checkout::session(&store.settings, product, release);
    params.client_reference_id = Some(uuid::Uuid::new_v4().simple().to_string());
    // Stripe takes a code given or a field to type one, not both.
    params.allow_promotion_codes = false;
    params.promotion_code = Some(offer.id);
    came_from.write_metadata(&mut params.metadata);
    params
        .metadata
        .insert("promotion_code".to_owned(), offer.code.clone());
    // The checkout asks for the email shop knows: the earlier purchase's.
    if let Some(from) = offer.metadata.get(metadata::UPGRADE_FROM) {
        params
            .metadata
            .insert(metadata::UPGRADE_FROM.to_owned(), from.clone());
        if let Ok(Some(earlier)) = purchase(app, from).await {
            params.customer_email = Some(earlier.email.clone()).filter(|email| !email.is_empty());
        }
    }
    match app
        .stripe_quick
        .create_checkout_session(&params, &IdempotencyKey::random())
        .await
    {
        Ok(session) => match session.url {
            Some(url) => redirect(StatusCode::SEE_OTHER, &url),
            None => unavailable(app),
        },
        Err(error) => log_unavailable(app, &error),
    }
}

pub async fn thanks(app: Arc<App>, client: ClientKey, query: HashMap<String, String>) -> Answer {
    let not_found = || {
        html(
            &app,
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>We could not find that purchase</h1><p>If you paid, your link is on its way by email.</p>",
        )
    };
    let Some(id) = query
        .get("session_id")
        .filter(|id| id.starts_with("cs_") && id.len() < 256)
    else {
        return not_found();
    };
    let key = format!("thanks:{client}");
    let quota = Quota::of(app.store().settings.serve.limits.thanks);
    match within_limits(&app, &[(key.as_str(), quota)]).await {
        Ok(true) => {}
        Ok(false) => return too_many(&app, 60),
        Err(answer) => return answer,
    }
    if !app.stripe_call(client) {
        return too_many(&app, 5);
    }
    // One call with a short deadline: a visitor waits on it. The charge
    // comes with it, to see a refund the server has not heard of yet.
    let session = match app
        .stripe_quick
        .checkout_session_expanded(id, &["payment_intent.latest_charge"])
        .await
    {
        Ok(Some(session)) => session,
        Ok(None) => return not_found(),
        Err(error) => return log_unavailable(&app, &error),
    };
    if ours(&app, &session).is_none() || session.status.as_deref() != Some("complete") {
        return not_found();
    }
    let Some(purchase) = fulfilled_purchase(&app, &session) else {
        return html(
            &app,
            StatusCode::OK,
            "Thank you",
            "<h1>Thank you!</h1><p>Your payment is on its way. As soon as it clears, your download link will come by email.</p>",
        );
    };
    let now = app.now();
    let window = app.store().settings.serve.thanks_window as i64;
    // A Checkout Session is paid at most a day after it was created.
    if now - session.created > 86_400 + window {
        return redirect(StatusCode::SEE_OTHER, "/lost?expired=1");
    }
    let revoked = match app.db.revoked(&purchase).await {
        Ok(revoked) => revoked || charge_revoked(&session),
        Err(error) => return log_unavailable(&app, &error),
    };
    let seen = match app.db.upsert_purchase(purchase, now).await {
        Ok(seen) => seen,
        Err(error) => return log_unavailable(&app, &error),
    };
    if now - seen > window {
        // An old thanks address is no permanent link: ask by email.
        return redirect(StatusCode::SEE_OTHER, "/lost?expired=1");
    }
    thanks_page(&app, &session, revoked)
}

/// Whether the session's charge (when expanded) was refunded in full or
/// disputed: what closes downloads.
fn charge_revoked(session: &CheckoutSession) -> bool {
    session
        .payment_intent
        .as_ref()
        .and_then(|intent| intent.object())
        .and_then(|intent| intent.latest_charge.as_ref())
        .and_then(|charge| charge.object())
        .is_some_and(|charge| charge.refunded || charge.disputed)
}

/// Whether any of these files of `product` is stamped with the buyer's
/// email when downloaded.
pub(super) fn stamps_any<'a>(
    store: &store::Store,
    product: &Product,
    mut files: impl Iterator<Item = &'a str>,
) -> bool {
    store.stamping(product) != StampMode::Off && files.any(|name| Format::of(name).is_some())
}

/// The thank-you page: what was bought, what it cost, where the receipt
/// went, and the files as large buttons.
fn thanks_page(app: &App, session: &CheckoutSession, refunded: bool) -> Answer {
    let Some(purchase) = fulfilled_purchase(app, session) else {
        return not_found(app);
    };
    let store = app.store();
    let Ok(bought) = store.product(&purchase.product) else {
        return unavailable(app);
    };
    let waiting = bought.waiting_preorder(&purchase.version);
    // A gift's files are its recipient's: no link of them here.
    let gift = purchase.gift.as_ref().filter(|gift| gift.deliverable);
    let link = match gift {
        Some(_) => String::new(),
        None => app.link(&session.id),
    };
    let page = link
        .strip_prefix(&store.settings.base_url)
        .unwrap_or(&link)
        .to_owned();
    // Each product's newest files (one product, unless a bundle).
    let mut files: Vec<views::FileLink> = Vec::new();
    let mut limits = Vec::new();
    let mut stamped = false;
    let held = held(&store, &purchase);
    for held in held
        .iter()
        .filter(|_| waiting.is_none() && !refunded && gift.is_none())
    {
        let Some(newest) = held.releases.last() else {
            continue;
        };
        limits.push(held.product.download_limit);
        stamped |= stamps_any(
            &store,
            held.product,
            newest.assets.iter().map(|asset| asset.name.as_str()),
        );
        let query = link_query(&purchase, held.product, None);
        files.extend(newest.assets.iter().map(|asset| views::FileLink {
            name: asset.name.clone(),
            product: bought.is_bundle().then(|| held.product.name.clone()),
            href: format!("{page}/{}{query}", net::encode_component(&asset.name)),
            size: views::human_size(asset.size),
            sha256: asset.sha256.clone(),
        }));
    }
    let version = match (waiting, held.as_slice()) {
        (Some(release), _) => release.version.to_string(),
        _ if bought.is_bundle() => purchase.version.clone(),
        (None, [one]) => match one.releases.last() {
            Some(newest) => newest.version.to_string(),
            None => return unavailable(app),
        },
        (None, _) => return unavailable(app),
    };
    limits.dedup();
    let paid = purchase.paid.as_ref();
    let money = |amount: i64, currency: &str| money::display_amount(amount, currency);
    let expires = app.now() + store.settings.link_lifetime as i64;
    let context = views::ThanksPage {
        product: bought.name.clone(),
        bought: purchase.version.clone(),
        version,
        refunded,
        cover: bought
            .cover
            .as_ref()
            .map(|_| format!("/cover/{}", bought.slug)),
        stamped,
        amount: paid.map(|paid| money(paid.amount, &paid.currency)),
        discount: paid
            .filter(|paid| paid.discount > 0)
            .map(|paid| money(paid.discount, &paid.currency)),
        tax: paid
            .filter(|paid| paid.tax > 0)
            .map(|paid| money(paid.tax, &paid.currency)),
        order: ledger::order_number(&session.id),
        // The receipt went to the buyer.
        email: gift.map_or_else(|| purchase.email.clone(), |gift| gift.buyer.clone()),
        preorder: waiting.is_some(),
        out: waiting
            .and_then(|release| release.out)
            .map(dates::human_date),
        files,
        // One limit for all the files, or none to state (a bundle's
        // products may differ: the download page shows each).
        limit: match limits.as_slice() {
            [one] => Some(*one),
            _ => None,
        },
        page,
        expires: dates::human_time(expires),
        expires_at: dates::timestamp(expires),
        withdraw: app.withdraw_link(&purchase, refunded),
        gift: gift.map(|gift| views::GiftNote {
            recipient: gift.recipient.clone(),
            send_on: gift.send_on.map(dates::human_date),
        }),
    };
    // The Follow form posts from here (see `same_origin_referrer`).
    same_origin_referrer(render(
        app,
        StatusCode::OK,
        "Thank you",
        "thanks.html",
        minijinja::Value::from_serialize(&context),
    ))
}

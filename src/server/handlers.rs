//! The server's handlers: one function per route, each returning a whole
//! response. Errors become plain pages with the right status, never a
//! stack trace or a hint of what exists.
//!
//! Logs: one line at `info` per sale, download, refund and webhook
//! outcome, naming the purchase; never a token of any kind, never a
//! buyer's address.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use warp::http::{HeaderValue, Method, Response, StatusCode, header};
use warp::reply::Reply;

use super::client::ClientKey;
use super::range::{self, Span};
use super::{App, Chosen, Files, pages};
use crate::github::Download;
use crate::state::{self, Charge, Entitlement, FileKey, Quota};
use crate::store::{Asset, Product, Release};
use crate::stripe::{CheckoutSession, CreateCheckoutSession, IdempotencyKey};
use crate::tokens::{self, TokenError};

pub(super) type Answer = warp::reply::Response;

/// Lost-link mails one address may be sent an hour, whoever asks: what
/// keeps a stranger from filling a buyer's inbox. (How often one client
/// may ask is `[serve] lost_limit`; nothing is counted for everyone
/// together, so no stranger can spend what a buyer needs.)
const LOST_PER_ADDRESS: Quota = Quota::per_hour(3);
/// What a visitor is told to wait when a service behind the shop fails.
const RETRY_AFTER_SECONDS: u32 = 30;

pub fn text(status: StatusCode, text: &str) -> Answer {
    let mut response = Response::new(format!("{text}\n").into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `GET /healthz`: `ok` while the server answers; with `?deep=1`, also
/// whether Stripe and GitHub accept the server's keys and its state
/// answers (503 and one line per problem when not).
pub async fn healthz(app: Arc<App>, query: HashMap<String, String>) -> Answer {
    if query.get("deep").is_none_or(|deep| deep == "0") {
        return text(StatusCode::OK, "ok");
    }
    let problems = app.problems().await;
    if problems.is_empty() {
        text(StatusCode::OK, "ok")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, &problems.join("\n"))
    }
}

/// A page no search engine indexes (the default: downloads, thanks, the
/// library, lost links, refusals).
fn html(app: &App, status: StatusCode, title: &str, body: &str) -> Answer {
    page(app, status, title, body, &super::views::Meta::default())
}

/// A page inside the layout, with what it tells search engines.
fn page(
    app: &App,
    status: StatusCode,
    title: &str,
    body: &str,
    meta: &super::views::Meta,
) -> Answer {
    let store = app.store();
    let settings = &store.settings;
    let page = app
        .views
        .page(&settings.name, &settings.support_email, title, body, meta)
        .unwrap_or_else(|error| {
            // Checked at start: only a bug gets here. The body still shows.
            tracing::error!("{}", crate::error::one_line(&error));
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>{}</title>{body}",
                pages::escape(title)
            )
        });
    let mut response = warp::reply::html(page).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// Headers every answer carries, files and redirects included: no
/// sniffing, no framing, and no referrer where a token may be in the URL.
pub fn secured(mut response: Answer) -> Answer {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// A page whose own URL holds no token: its forms may carry their origin
/// (with `no-referrer`, a browser sends `Origin: null` even to the page's
/// own server, and the origin check of `/lost` would refuse it).
fn same_origin_referrer(mut response: Answer) -> Answer {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn redirect(status: StatusCode, location: &str) -> Answer {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// "Try again shortly": a service behind the shop failed, nothing was used.
fn unavailable(app: &App) -> Answer {
    let mut response = html(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<h1>Something went wrong on our side</h1><p>Nothing was used up. Please try again in a minute. If it keeps happening, write to us.</p>",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

fn log_unavailable(app: &App, error: &(dyn std::error::Error + 'static)) -> Answer {
    tracing::error!("{}", crate::error::one_line(error));
    unavailable(app)
}

/// Whether one more request fits every `(key, quota)` (counted if it does,
/// by every server sharing the state); a state that cannot be reached is
/// the answer 503.
async fn within_limits(app: &App, checks: &[(&str, Quota)]) -> Result<bool, Answer> {
    app.db
        .allow(checks, app.now())
        .await
        .map_err(|error| log_unavailable(app, &error))
}

fn too_many(app: &App, seconds: u64) -> Answer {
    let mut response = html(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        "Please wait",
        "<h1>Please wait a little</h1><p>We have had many requests from your network. Try again in a few minutes.</p>",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A page whose body is the view `name` (a template) with `context`.
pub(super) fn render(
    app: &App,
    status: StatusCode,
    title: &str,
    name: &str,
    context: minijinja::Value,
) -> Answer {
    render_with(
        app,
        status,
        title,
        name,
        context,
        &super::views::Meta::default(),
    )
}

fn render_with(
    app: &App,
    status: StatusCode,
    title: &str,
    name: &str,
    context: minijinja::Value,
    meta: &super::views::Meta,
) -> Answer {
    match app.views.render(name, context) {
        Ok(body) => page(app, status, title, &body, meta),
        Err(error) => {
            tracing::error!("{}", crate::error::one_line(&error));
            html(
                app,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<h1>Something went wrong</h1><p>This page could not be shown. Please try again later.</p>",
            )
        }
    }
}

/// A page made to be found and shared (the store front, a product's): the
/// view `name` with `context`, and `meta` for search engines and previews.
pub(super) fn public(
    app: &App,
    title: &str,
    name: &str,
    context: minijinja::Value,
    meta: &super::views::Meta,
) -> Answer {
    render_with(app, StatusCode::OK, title, name, context, meta)
}

pub(super) fn not_found(app: &App) -> Answer {
    html(
        app,
        StatusCode::NOT_FOUND,
        "Not found",
        "<h1>Not found</h1><p>There is nothing here.</p>",
    )
}

pub fn rejection(app: &App, rejection: &warp::Rejection) -> Answer {
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "too large");
    }
    if rejection.find::<warp::reject::InvalidQuery>().is_some()
        || rejection.find::<warp::reject::InvalidHeader>().is_some()
        || rejection.find::<warp::reject::LengthRequired>().is_some()
    {
        return text(StatusCode::BAD_REQUEST, "bad request");
    }
    not_found(app)
}

fn refuse(app: &App, status: StatusCode, title: &str, text: &str) -> Answer {
    html(app, status, title, &pages::refusal(title, text))
}

fn invalid_link(app: &App) -> Answer {
    refuse(
        app,
        StatusCode::FORBIDDEN,
        "This link is not valid",
        "Check that you copied the whole link from your email.",
    )
}

fn refunded(app: &App) -> Answer {
    refuse(
        app,
        StatusCode::GONE,
        "This purchase was refunded",
        "Its downloads are closed. If you think this is a mistake, write to us.",
    )
}

fn exhausted(app: &App) -> Answer {
    refuse(
        app,
        StatusCode::GONE,
        "No downloads left",
        "This file has been downloaded as many times as the purchase allows. Write to us if you need more.",
    )
}

/// The product and version a session sells, if it is one of ours.
pub(super) fn ours(app: &App, session: &CheckoutSession) -> Option<(String, String)> {
    crate::metadata::product_of(session, &app.store())
}

/// The purchase a session is, if it is one of ours and fulfilled.
pub(super) fn fulfilled_purchase(app: &App, session: &CheckoutSession) -> Option<Entitlement> {
    let (product, version) = ours(app, session)?;
    session.is_fulfilled().then(|| Entitlement {
        id: session.id.clone(),
        email: session.email().unwrap_or_default().to_owned(),
        product,
        version,
        payment_intent: session.payment_intent_id().map(str::to_owned),
        created: session.created,
        paid: session.currency.as_ref().map(|currency| state::Paid {
            amount: session.amount_total.unwrap_or(0),
            currency: currency.clone(),
            discount: session
                .total_details
                .as_ref()
                .map_or(0, |details| details.amount_discount),
            tax: session
                .total_details
                .as_ref()
                .map_or(0, |details| details.amount_tax),
        }),
    })
}

/// The purchase of a verified token: from the database, or else from
/// Stripe (a link minted by `shop token` or `shop notify`), remembered.
async fn purchase(app: &App, id: &str) -> Result<Option<Arc<Entitlement>>, Answer> {
    if let Some(purchase) = app
        .db
        .purchase(id)
        .await
        .map_err(|error| log_unavailable(app, &error))?
    {
        return Ok(Some(purchase));
    }
    if id.starts_with(crate::ledger::GRANT_PREFIX) {
        return granted(app, id).await;
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

/// A copy given by `shop grant`, from the store's ledger (Stripe knows
/// nothing of it), kept in the database once found.
async fn granted(app: &App, id: &str) -> Result<Option<Arc<Entitlement>>, Answer> {
    let root = app.store().root.clone();
    let grants = tokio::task::spawn_blocking(move || crate::ledger::read_grants(&root))
        .await
        .map_err(|error| log_unavailable(app, &error))?
        .map_err(|error| log_unavailable(app, &error))?;
    let Some(grant) = grants
        .into_iter()
        .find(|grant| grant.id == id && grant.is_grant())
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

/// The releases of `product` that a buyer of version `bought` may
/// download, oldest first: a pre-order's files are not out.
fn entitled<'a>(product: &'a Product, bought: &semver::Version) -> Vec<&'a Release> {
    product
        .releases
        .iter()
        .filter(|release| !release.preorder && product.updates.entitles(bought, &release.version))
        .collect()
}

/// One product a purchase gives (its own, or one of a bundle's) and what
/// of it the buyer may download.
struct Held<'a> {
    product: &'a Product,
    /// The version bought (for a bundle's product, the one the bundle gave).
    bought: String,
    /// Oldest first.
    releases: Vec<&'a Release>,
}

/// Every product a purchase gives, in the bundle's order.
fn held<'a>(store: &'a crate::store::Store, purchase: &Entitlement) -> Vec<Held<'a>> {
    store
        .holdings(&purchase.product, &purchase.version)
        .into_iter()
        .map(|holding| Held {
            product: holding.product,
            bought: holding.bought.to_string(),
            releases: entitled(holding.product, &holding.bought),
        })
        .collect()
}

/// The query of a link to a file or page of `product` at `version` (the
/// newest: none), naming the product only for a bundle's purchase.
fn link_query(purchase: &Entitlement, product: &Product, version: Option<&str>) -> String {
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

/// The pre-order a purchase is waiting on, if its version's files are not
/// out yet.
pub(super) fn waiting_preorder<'a>(product: &'a Product, bought: &str) -> Option<&'a Release> {
    let bought = semver::Version::parse(bought).ok()?;
    product.release(&bought).filter(|release| release.preorder)
}

/// The page of a purchase whose files are not out yet.
fn preordered_page(app: &App, product: &Product, release: &Release) -> Answer {
    html(
        app,
        StatusCode::OK,
        &product.name,
        &format!(
            "<h1>{}</h1><p id=\"preorder\">You pre-ordered version <strong>{}</strong>. It is not out yet{}: \
             the day it is, we will email you a link to download your files.</p>",
            pages::escape(&product.name),
            pages::escape(&release.version.to_string()),
            release
                .out
                .map(|day| format!(" (it is to come out on {})", crate::dates::human_date(day)))
                .unwrap_or_default(),
        ),
    )
}

/// Checks a token and finds its purchase and product, or the refusal page.
/// `check_revoked` is false where the caller checks it itself (charging a
/// download does, in the same transaction).
async fn authorize(
    app: &App,
    token: &str,
    check_revoked: bool,
) -> Result<(tokens::Claims, Arc<Entitlement>, Arc<crate::store::Store>), Answer> {
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
    if !claims.purchase.starts_with("cs_")
        && !claims.purchase.starts_with(crate::ledger::GRANT_PREFIX)
    {
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

// ---- buying

/// `GET /buy/<slug>`: the checkout of the version on sale. A plain Buy goes
/// to the version's payment link, with where the visitor came from in its
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
) -> Answer {
    let store = app.store();
    let Some(product) = store.product(&slug).ok() else {
        return not_found(&app);
    };
    let came_from = crate::metadata::Attribution::of_visit(
        &query,
        referer.as_deref(),
        &store.settings.base_url,
    );
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
        return html(
            &app,
            StatusCode::NOT_FOUND,
            "Not for sale yet",
            &format!(
                "<h1>{} is not {} yet</h1>",
                pages::escape(&product.name),
                if query.contains_key("preorder") {
                    "taking pre-orders"
                } else {
                    "for sale"
                }
            ),
        );
    };
    if release.payment_link_url.is_empty() {
        return unavailable(&app);
    }
    let location = match came_from.to_reference() {
        Some(reference) => format!(
            "{}?client_reference_id={reference}",
            release.payment_link_url
        ),
        None => release.payment_link_url.clone(),
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
    came_from: &crate::metadata::Attribution,
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
    let released = |store: &crate::store::Store| {
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
    let version = version.to_string();
    // As the version's payment link marks it, so the ledger knows a
    // pre-order.
    let mut metadata = crate::metadata::link_metadata(&product.slug, &version, release.preorder);
    came_from.write_metadata(&mut metadata);
    metadata.insert("promotion_code".to_owned(), offer.code.clone());
    // The checkout asks for the email shop knows: the earlier purchase's.
    let mut customer_email = None;
    if let Some(from) = offer.metadata.get(crate::notify::UPGRADE_FROM) {
        metadata.insert(crate::notify::UPGRADE_FROM.to_owned(), from.clone());
        if let Ok(Some(earlier)) = purchase(app, from).await {
            customer_email = Some(earlier.email.clone()).filter(|email| !email.is_empty());
        }
    }
    let base = &store.settings.base_url;
    let params = CreateCheckoutSession {
        price: release.stripe_price.clone(),
        success_url: format!("{base}/thanks?session_id={{CHECKOUT_SESSION_ID}}"),
        cancel_url: Some(format!("{base}/")),
        client_reference_id: Some(uuid::Uuid::new_v4().simple().to_string()),
        // Stripe takes a code given or a field to type one, not both.
        allow_promotion_codes: false,
        promotion_code: Some(offer.id),
        customer_email,
        options: store.settings.checkout_options(),
        metadata,
        ..CreateCheckoutSession::default()
    };
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
fn stamps_any<'a>(
    store: &crate::store::Store,
    product: &Product,
    mut files: impl Iterator<Item = &'a str>,
) -> bool {
    store.stamping(product) != crate::store::product::StampMode::Off
        && files.any(|name| crate::stamp::Format::of(name).is_some())
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
    let waiting = waiting_preorder(bought, &purchase.version);
    let link = app.link(&session.id);
    let page = link
        .strip_prefix(&store.settings.base_url)
        .unwrap_or(&link)
        .to_owned();
    // Each product's newest files (one product, unless a bundle).
    let mut files: Vec<super::views::FileLink> = Vec::new();
    let mut limits = Vec::new();
    let mut stamped = false;
    let held = held(&store, &purchase);
    for held in held.iter().filter(|_| waiting.is_none() && !refunded) {
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
        files.extend(newest.assets.iter().map(|asset| super::views::FileLink {
            name: asset.name.clone(),
            product: bought.is_bundle().then(|| held.product.name.clone()),
            href: format!(
                "{page}/{}{query}",
                crate::net::encode_component(&asset.name)
            ),
            size: pages::human_size(asset.size),
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
    let money = |amount: i64, currency: &str| crate::store::money::display_amount(amount, currency);
    let expires = app.now() + store.settings.link_lifetime as i64;
    let context = super::views::ThanksPage {
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
        order: crate::ledger::order_number(&session.id),
        email: purchase.email.clone(),
        preorder: waiting.is_some(),
        out: waiting
            .and_then(|release| release.out)
            .map(crate::dates::human_date),
        files,
        // One limit for all the files, or none to state (a bundle's
        // products may differ: the download page shows each).
        limit: match limits.as_slice() {
            [one] => Some(*one),
            _ => None,
        },
        page,
        expires: crate::dates::human_time(expires),
        expires_at: crate::dates::timestamp(expires),
    };
    render(
        app,
        StatusCode::OK,
        "Thank you",
        "thanks.html",
        minijinja::Value::from_serialize(&context),
    )
}

// ---- webhooks

pub async fn webhook(app: Arc<App>, signature: Option<String>, body: Bytes) -> Answer {
    let Some(secret) = &app.webhook_secret else {
        tracing::error!("a webhook came, but STRIPE_WEBHOOK_SECRET is not set");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks are not configured",
        );
    };
    let now = app.now();
    if let Err(error) = crate::stripe::webhook::verify(
        &body,
        signature.as_deref().unwrap_or(""),
        secret,
        now,
        crate::stripe::webhook::TOLERANCE_SECONDS,
    ) {
        tracing::warn!("refused a webhook: {}", crate::error::one_line(&error));
        return text(StatusCode::BAD_REQUEST, "invalid signature");
    }
    let Ok(event) = serde_json::from_slice::<crate::stripe::Event>(&body) else {
        return text(StatusCode::BAD_REQUEST, "not an event");
    };
    match super::events::apply(&app, &event, now).await {
        Ok(Some(())) => text(StatusCode::OK, "received"),
        Ok(None) => text(StatusCode::OK, "already received"),
        Err(super::events::ApplyError::Malformed(what)) => {
            text(StatusCode::BAD_REQUEST, &format!("not a {what}"))
        }
        Err(super::events::ApplyError::State(error)) => {
            // Not recorded: Stripe will send it again.
            tracing::error!(
                event = %event.id,
                "cannot record webhook event: {}",
                crate::error::one_line(&error)
            );
            text(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

// ---- downloads

/// The product and release a request names (`?product=`, `?version=`),
/// among those the purchase may download; without a version, the newest.
/// A bundle's purchase must name the product. The error is the page to
/// answer with.
#[allow(clippy::result_large_err)]
fn chosen_release<'a>(
    app: &App,
    store: &'a crate::store::Store,
    purchase: &Entitlement,
    chosen: &Chosen,
) -> Result<(Held<'a>, &'a Release), Answer> {
    let mut held = held(store, purchase);
    let index = match &chosen.product {
        Some(slug) => held.iter().position(|h| &h.product.slug == slug),
        None if held.len() == 1 => Some(0),
        None => None,
    };
    let Some(held) = index.map(|index| held.swap_remove(index)) else {
        return Err(refuse(
            app,
            StatusCode::NOT_FOUND,
            "No such product",
            "This purchase does not include that product.",
        ));
    };
    let release = match &chosen.version {
        Some(version) => held
            .releases
            .iter()
            .find(|r| r.version.to_string() == *version)
            .copied(),
        None => held.releases.last().copied(),
    };
    match release {
        Some(release) => Ok((held, release)),
        None => Err(refuse(
            app,
            StatusCode::NOT_FOUND,
            "No such version",
            "This purchase does not include that version.",
        )),
    }
}

pub async fn download_page(token: String, app: Arc<App>, chosen: Chosen) -> Answer {
    let (claims, purchase, store) = match authorize(&app, &token, true).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Ok(bought) = store.product(&purchase.product) else {
        return unavailable(&app);
    };
    if chosen.version.is_none()
        && let Some(waiting) = waiting_preorder(bought, &purchase.version)
    {
        return preordered_page(&app, bought, waiting);
    }
    let expires = crate::dates::html_time(claims.expires);
    // A bundle's page: each product's newest files, each under its own limit.
    if bought.is_bundle() && chosen.product.is_none() {
        let mut body = format!(
            "<h1>{}</h1><p>Your bundle, version <strong>{}</strong>. This link works until <strong>{expires}</strong>.</p>",
            pages::escape(&bought.name),
            pages::escape(&purchase.version),
        );
        for held in held(&store, &purchase) {
            let Some(newest) = held.releases.last().copied() else {
                continue;
            };
            match files_section(&app, &token, &purchase, &held, newest, None).await {
                Ok(section) => body.push_str(&section),
                Err(page) => return page,
            }
        }
        body.push_str(pages::LOST_NOTE);
        return html(&app, StatusCode::OK, &bought.name, &body);
    }
    let (held, shown) = match chosen_release(&app, &store, &purchase, &chosen) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let mut body = match files_section(&app, &token, &purchase, &held, shown, Some(&expires)).await
    {
        Ok(section) => section,
        Err(page) => return page,
    };
    body.push_str(pages::LOST_NOTE);
    html(&app, StatusCode::OK, &held.product.name, &body)
}

/// The files of one product of a purchase at `shown`, with what each has
/// left, and links to the other versions it may download. With `expires`
/// it is the page's heading; without, a section of a bundle's page.
#[allow(clippy::result_large_err)]
async fn files_section(
    app: &App,
    token: &str,
    purchase: &Entitlement,
    held: &Held<'_>,
    shown: &Release,
    expires: Option<&str>,
) -> Result<String, Answer> {
    let product = held.product;
    let version = shown.version.to_string();
    let latest = held
        .releases
        .last()
        .is_some_and(|r| r.version == shown.version);
    let mut files = Vec::new();
    for asset in &shown.assets {
        let key = FileKey::new(purchase, &product.slug, &version, &asset.name);
        let (usage, extra) = app
            .db
            .usage(&key)
            .await
            .map_err(|error| log_unavailable(app, &error))?;
        let allowed = product.download_limit + extra;
        let query = link_query(purchase, product, (!latest).then_some(version.as_str()));
        let href = format!(
            "/d/{token}/{}{query}",
            crate::net::encode_component(&asset.name)
        );
        // A stamped copy once made: its own size and checksum.
        let (size, sha256) = app
            .copies
            .known(&purchase.id, product, shown, asset)
            .unwrap_or_else(|| (asset.size, asset.sha256.clone()));
        files.push(pages::FileRow {
            name: asset.name.clone(),
            size,
            sha256,
            left: usage.left(allowed, size),
            allowed,
            href,
        });
    }
    let others: Vec<(String, String)> = held
        .releases
        .iter()
        .filter(|r| r.version != shown.version)
        .rev()
        .map(|r| {
            let version = r.version.to_string();
            let query = link_query(purchase, product, Some(&version));
            (version, format!("/d/{token}{query}"))
        })
        .collect();
    let store = app.store();
    Ok(pages::downloads(&pages::Downloads {
        product,
        shown,
        bought: &held.bought,
        files: &files,
        others: &others,
        expires,
        stamped: stamps_any(
            &store,
            product,
            shown.assets.iter().map(|asset| asset.name.as_str()),
        ),
    }))
}

/// The entity tag of a released file: its hash never changes.
fn etag(asset: &Asset) -> String {
    format!("\"{}\"", &asset.sha256[..asset.sha256.len().min(32)])
}

pub async fn download(
    token: String,
    file: String,
    method: Method,
    app: Arc<App>,
    chosen: Chosen,
    range: Option<String>,
    if_range: Option<String>,
) -> Answer {
    let head = method == Method::HEAD;
    // A GET is charged in one transaction that also checks revocation.
    let (_, purchase, store) = match authorize(&app, &token, head).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (held, release) = match chosen_release(&app, &store, &purchase, &chosen) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let product = held.product;
    // Names with spaces or any letter arrive percent-encoded.
    let name = percent_encoding::percent_decode_str(&file).decode_utf8();
    let Some(asset) = name
        .ok()
        .and_then(|name| release.assets.iter().find(|asset| asset.name == name))
    else {
        return refuse(
            &app,
            StatusCode::NOT_FOUND,
            "No such file",
            "This purchase has no file of that name.",
        );
    };
    let version = release.version.to_string();
    let key = FileKey::new(&purchase, &product.slug, &version, &asset.name);
    let limit = product.download_limit;
    if let Some(licence) = licence(&app, &store, product, &purchase, &asset.name) {
        return stamped_download(
            &app, product, release, asset, key, licence, head, range, if_range,
        )
        .await;
    }
    let span = range::requested(
        range.as_deref(),
        if_range.as_deref(),
        &etag(asset),
        asset.size,
    );
    if span == Span::Unsatisfiable {
        return unsatisfiable(asset.size);
    }
    let (start, length) = span.bounds(asset.size);
    if head {
        // What a GET would get, without using anything. A redirect's URL is
        // a credential: HEAD describes the file instead.
        let (usage, extra) = match app.db.usage(&key).await {
            Ok(found) => found,
            Err(error) => return log_unavailable(&app, &error),
        };
        let allowed = limit + extra;
        // On GitHub a whole file is a redirect, a range streamed.
        let admitted = match (&app.files_from, span) {
            (Files::GitHub { .. }, Span::Whole) => {
                crate::downloads::admit_redirect(usage, allowed, asset.size)
            }
            _ => crate::downloads::admit_stream(usage, allowed, asset.size, start, length),
        };
        if !admitted {
            return exhausted(&app);
        }
        return file_headers(Response::new(Bytes::new().into()), asset, span);
    }
    match &app.files_from {
        Files::GitHub { client } => {
            let Some(id) = asset.github_asset_id else {
                return log_unavailable(
                    &app,
                    &std::io::Error::other("the release records no GitHub asset id"),
                );
            };
            let from = OnGitHub {
                client,
                id,
                asset,
                key,
                limit,
            };
            match span {
                Span::Whole => redirect_to_github(&app, from, &purchase.id, &version).await,
                _ => stream_from_github(&app, from, span).await,
            }
        }
        Files::Local(dir) => {
            let path = dir.join(&product.slug).join(&version).join(&asset.name);
            let meter = match charge_stream(&app, key, limit, asset.size, start, length).await {
                Ok(meter) => meter,
                Err(answer) => return answer,
            };
            let body = match app.cached_file(&path, asset.size).await {
                Some(bytes) => memory_chunks(bytes, start, length),
                None => match open_at(&path, start).await {
                    Ok(file) => Box::pin(crate::file_stream::chunks(file, length, CHUNK)) as Chunks,
                    Err(error) => {
                        // Nothing went out: the meter gives it all back.
                        drop(meter);
                        return log_unavailable(&app, &error);
                    }
                },
            };
            let body = Metered { body, meter };
            file_headers(warp::reply::stream(body).into_response(), asset, span)
        }
    }
}

/// A file of a release on GitHub, as a download asks for it.
struct OnGitHub<'a> {
    client: &'a crate::github::GitHub,
    id: u64,
    asset: &'a Asset,
    key: FileKey,
    limit: u32,
}

/// The whole file: a 302 to GitHub's short-lived URL (no bytes through
/// the server), counted as one whole download once there is a URL to give.
async fn redirect_to_github(
    app: &Arc<App>,
    from: OnGitHub<'_>,
    purchase: &str,
    version: &str,
) -> Answer {
    let OnGitHub {
        client,
        id,
        asset,
        key,
        limit,
    } = from;
    // A link that is used up is told so without asking GitHub (whose rate
    // limit is shared by every buyer).
    match app.db.redirects_used_up(&key, limit, asset.size).await {
        Ok(true) => return exhausted(app),
        Ok(false) => {}
        Err(error) => return log_unavailable(app, &error),
    }
    // The URL first: a download is counted only when there is one to give;
    // if GitHub fails, nothing is counted.
    let link = match app.cached_link(id) {
        Some(url) => Download::Redirect { url, expires: None },
        None => match asset_download(client, id).await {
            Ok(Download::Redirect { url, expires }) => {
                app.cache_link(id, &url, expires);
                Download::Redirect { url, expires }
            }
            Ok(body) => body,
            Err(error) => return github_unavailable(app, &error),
        },
    };
    let charged = app
        .db
        .charge_redirect(key, limit, asset.size, app.now())
        .await;
    match (charged, link) {
        (Ok(Charge::Admitted), Download::Redirect { url, .. }) => {
            tracing::info!(%purchase, file = %asset.name, %version, "download (redirect)");
            redirect(StatusCode::FOUND, &url)
        }
        (Ok(Charge::Admitted), Download::Body { response, .. }) => {
            // GitHub sent the bytes: streamed through, never held.
            tracing::info!(%purchase, file = %asset.name, %version, "download (through)");
            let stream = response
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other));
            file_headers(
                warp::reply::stream(stream).into_response(),
                asset,
                Span::Whole,
            )
        }
        (Ok(Charge::Exhausted), _) => exhausted(app),
        (Ok(Charge::Revoked), _) => refunded(app),
        (Err(error), _) => log_unavailable(app, &error),
    }
}

/// A range of the file (a resume, a download manager's part): a redirect
/// would hand out the whole file again, so the range is streamed from
/// GitHub's CDN through the server and counted by the bytes sent, as a
/// local file is. Charged before the CDN is asked; what does not reach
/// the buyer, GitHub failing included, is given back.
async fn stream_from_github(app: &Arc<App>, from: OnGitHub<'_>, span: Span) -> Answer {
    let OnGitHub {
        client,
        id,
        asset,
        key,
        limit,
    } = from;
    let (start, length) = span.bounds(asset.size);
    let meter = match charge_stream(app, key, limit, asset.size, start, length).await {
        Ok(meter) => meter,
        Err(answer) => return answer,
    };
    let (response, skip) = match app.cached_link(id) {
        Some(url) => match client.cdn_range(&url, start, length).await {
            Ok(ranged) => (ranged.response, ranged.skip),
            Err(error) => return github_unavailable(app, &error),
        },
        None => match asset_download(client, id).await {
            Ok(Download::Redirect { url, expires }) => {
                app.cache_link(id, &url, expires);
                match client.cdn_range(&url, start, length).await {
                    Ok(ranged) => (ranged.response, ranged.skip),
                    Err(error) => return github_unavailable(app, &error),
                }
            }
            // GitHub sent the whole file itself: its part is cut out.
            Ok(Download::Body { response, .. }) => (response, start),
            Err(error) => return github_unavailable(app, &error),
        },
    };
    let body = Metered {
        body: Box::pin(part_of(response.bytes_stream(), skip, length)),
        meter,
    };
    file_headers(warp::reply::stream(body).into_response(), asset, span)
}

/// `length` bytes of `stream` after its first `skip`.
fn part_of(
    stream: impl Stream<Item = reqwest::Result<Bytes>> + Send + Sync + 'static,
    skip: u64,
    length: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static {
    stream
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .scan((skip, length), |(skip, left), chunk| {
            if *left == 0 {
                return std::future::ready(None);
            }
            let chunk = chunk.map(|mut bytes| {
                let dropped = (*skip).min(bytes.len() as u64);
                *skip -= dropped;
                let mut bytes = bytes.split_off(dropped as usize);
                bytes.truncate((*left).min(bytes.len() as u64) as usize);
                *left -= bytes.len() as u64;
                bytes
            });
            std::future::ready(Some(chunk))
        })
        .filter(|chunk| std::future::ready(!matches!(chunk, Ok(bytes) if bytes.is_empty())))
}

/// The answer to a range outside a file of `size` bytes.
fn unsatisfiable(size: u64) -> Answer {
    let mut response = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// What a buyer's copy of `file` says, when the product stamps it.
fn licence(
    app: &App,
    store: &crate::store::Store,
    product: &Product,
    purchase: &Entitlement,
    file: &str,
) -> Option<crate::stamp::Licence> {
    use crate::store::product::StampMode;
    let mode = store.stamping(product);
    if mode == StampMode::Off || crate::stamp::Format::of(file).is_none() {
        return None;
    }
    let date = crate::dates::timestamp(purchase.created);
    Some(crate::stamp::Licence {
        text: crate::stamp::line(
            &store.settings.stamp.text,
            &purchase.email,
            "",
            &crate::ledger::order_number(&purchase.id),
            date.get(..10).unwrap_or(&date),
        ),
        mark: crate::tokens::stamp_mark(&app.keys[0], &purchase.id),
        every_page: mode == StampMode::EveryPage,
    })
}

/// A stamped file: the buyer's own copy, made on the first download and
/// streamed like any streamed file (bytes counted, ranges, resumes).
#[allow(clippy::too_many_arguments)]
async fn stamped_download(
    app: &Arc<App>,
    product: &Product,
    release: &Release,
    asset: &Asset,
    key: FileKey,
    licence: crate::stamp::Licence,
    head: bool,
    range: Option<String>,
    if_range: Option<String>,
) -> Answer {
    use super::stamped::{Part, Source};
    let source = match &app.files_from {
        Files::Local(dir) => Source::Local(
            dir.join(&product.slug)
                .join(release.version.to_string())
                .join(&asset.name),
        ),
        Files::GitHub { client } => Source::GitHub(client),
    };
    let copy = match app
        .copies
        .copy(source, &key.purchase, product, release, asset, licence)
        .await
    {
        Ok(copy) => copy,
        Err(message) => return log_unavailable(app, &std::io::Error::other(message)),
    };
    let tag = format!("\"{}\"", &copy.sha256[..32]);
    let span = range::requested(range.as_deref(), if_range.as_deref(), &tag, copy.size);
    if span == Span::Unsatisfiable {
        return unsatisfiable(copy.size);
    }
    let (start, length) = span.bounds(copy.size);
    let limit = product.download_limit;
    if head {
        let (usage, extra) = match app.db.usage(&key).await {
            Ok(found) => found,
            Err(error) => return log_unavailable(app, &error),
        };
        if !crate::downloads::admit_stream(usage, limit + extra, copy.size, start, length) {
            return exhausted(app);
        }
        return headers_of(
            Response::new(Bytes::new().into()),
            &asset.name,
            copy.size,
            &tag,
            span,
        );
    }
    let meter = match charge_stream(app, key, limit, copy.size, start, length).await {
        Ok(meter) => meter,
        Err(answer) => return answer,
    };
    // The parts that hold [start, start + length), each from its offset.
    let mut body: Chunks = Box::pin(futures_util::stream::empty());
    let (mut offset, mut left) = (start, length);
    for part in &copy.parts {
        let part_size = match part {
            Part::File(_, size) => *size,
            Part::Memory(bytes) => bytes.len() as u64,
        };
        if left == 0 {
            break;
        }
        if offset >= part_size {
            offset -= part_size;
            continue;
        }
        let take = left.min(part_size - offset);
        let chunks = match part {
            Part::Memory(bytes) => memory_chunks(bytes.clone(), offset, take),
            Part::File(path, _) => match open_at(path, offset).await {
                Ok(file) => Box::pin(crate::file_stream::chunks(file, take, CHUNK)) as Chunks,
                Err(error) => {
                    drop(meter);
                    return log_unavailable(app, &error);
                }
            },
        };
        body = Box::pin(body.chain(chunks));
        left -= take;
        offset = 0;
    }
    let body = Metered { body, meter };
    headers_of(
        warp::reply::stream(body).into_response(),
        &asset.name,
        copy.size,
        &tag,
        span,
    )
}

/// Asks GitHub where an asset is, trying once more after a moment when
/// GitHub failed on its side or could not be reached (not when it limits
/// the rate: the buyer is told when to come back instead).
async fn asset_download(
    client: &crate::github::GitHub,
    id: u64,
) -> Result<Download, crate::github::GitHubError> {
    use crate::github::GitHubError;
    match client.asset_download(id).await {
        Err(GitHubError::Unreachable { .. }) | Err(GitHubError::Api { status: 500.., .. }) => {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            client.asset_download(id).await
        }
        other => other,
    }
}

/// GitHub could not give a file: nothing was counted; the buyer is told
/// when to try again (GitHub's own time for a rate limit).
fn github_unavailable(app: &App, error: &crate::github::GitHubError) -> Answer {
    let mut response = log_unavailable(app, error);
    if let Some(until) = error.retry_at() {
        let seconds = until
            .duration_since(std::time::SystemTime::now())
            .map_or(1, |wait| wait.as_secs().max(1));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Bytes per chunk of a streamed answer: large enough that hyper writes
/// few times per file; what a broken download is charged beyond what
/// arrived is at most about this plus the sockets' buffers.
const CHUNK: usize = 1024 * 1024;

type Chunks = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync>>;

/// A file held in memory, as chunks (so that what is sent can be counted).
fn memory_chunks(bytes: Bytes, start: u64, length: u64) -> Chunks {
    let end = (start + length) as usize;
    let chunks: Vec<std::io::Result<Bytes>> = (start as usize..end)
        .step_by(CHUNK)
        .map(|at| Ok(bytes.slice(at..(at + CHUNK).min(end))))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// Opens a file the server streams at byte `start`: only a regular file
/// under the store's `.shop/` (local files, originals, stamped copies),
/// never what a symlink there points at.
async fn open_at(path: &std::path::Path, start: u64) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let shop = path
            .ancestors()
            .find(|dir| dir.file_name().is_some_and(|name| name == ".shop"))
            .ok_or_else(|| std::io::Error::other("a served file is not under `.shop/`"))?;
        if !crate::store::disk::is_within(shop, &path)? {
            return Err(std::io::Error::other(format!(
                "`{}` is not a regular file of `.shop/` (a symlink?): not served",
                path.display()
            )));
        }
        let mut file = std::fs::File::open(path)?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))?;
        }
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Charges a streamed answer of `length` bytes from `start` of a file of
/// `size` bytes, before its first byte leaves: its meter (which gives back
/// what is not sent), or the refusal to answer with.
async fn charge_stream(
    app: &Arc<App>,
    key: FileKey,
    limit: u32,
    size: u64,
    start: u64,
    length: u64,
) -> Result<Meter, Answer> {
    match app
        .db
        .charge_stream(key.clone(), limit, size, start, length)
        .await
    {
        Ok(Charge::Admitted) => Ok(Meter {
            app: app.clone(),
            key,
            length,
            sent: 0,
        }),
        Ok(Charge::Exhausted) => Err(exhausted(app)),
        Ok(Charge::Revoked) => Err(refunded(app)),
        Err(error) => Err(log_unavailable(app, &error)),
    }
}

/// What a streamed answer was charged and has sent: on drop (the answer
/// finished, broke or was never sent) the rest is given back.
struct Meter {
    app: Arc<App>,
    key: FileKey,
    length: u64,
    sent: u64,
}

impl Drop for Meter {
    fn drop(&mut self) {
        let unsent = self.length.saturating_sub(self.sent);
        tracing::info!(
            purchase = %self.key.purchase,
            file = %self.key.file,
            version = %self.key.version,
            "download: {} of {} bytes sent",
            self.sent,
            self.length
        );
        if unsent == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (app, key) = (self.app.clone(), self.key.clone());
        runtime.spawn(async move {
            let purchase = key.purchase.clone();
            if let Err(error) = app.db.refund_stream(key, unsent).await {
                tracing::error!(
                    %purchase,
                    "cannot give back {unsent} unsent bytes: {}",
                    crate::error::one_line(&error)
                );
            }
        });
    }
}

/// A file's chunks, counted as they are handed to the connection.
struct Metered {
    body: Chunks,
    meter: Meter,
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.body.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.meter.sent += chunk.len() as u64;
        }
        polled
    }
}

/// The headers of a file answer (its length, type, name and range): the
/// same for GET and HEAD.
fn file_headers(response: Answer, asset: &Asset, span: Span) -> Answer {
    headers_of(response, &asset.name, asset.size, &etag(asset), span)
}

/// The headers of a file of `size` bytes named `name`.
fn headers_of(mut response: Answer, name: &str, size: u64, tag: &str, span: Span) -> Answer {
    let (start, length) = span.bounds(size);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::store::content_type(name)),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        ascii.replace(['"', '\\'], "_"),
        crate::net::encode_component(name)
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Span::Part { end, .. } = span {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}

// ---- unsubscribing from notices

/// Whom an unsubscribe token is for: a purchase (the links mailed now), or
/// an address (links mailed before they named the purchase).
fn unsubscribe_subject(app: &App, token: &str) -> Option<String> {
    tokens::verify(&app.keys, token, app.now())
        .ok()
        .and_then(|claims| {
            claims
                .purchase
                .strip_prefix(crate::tokens::UNSUBSCRIBE)
                .map(str::to_owned)
        })
}

/// A page with a button: mail scanners that open links unsubscribe nobody.
pub async fn unsubscribe_page(token: String, app: Arc<App>) -> Answer {
    if unsubscribe_subject(&app, &token).is_none() {
        return invalid_link(&app);
    }
    html(
        &app,
        StatusCode::OK,
        "Stop update notices?",
        &pages::unsubscribe_form(),
    )
}

/// The button's POST, or a mail client's RFC 8058 one-click POST.
pub async fn unsubscribe(token: String, app: Arc<App>) -> Answer {
    let Some(subject) = unsubscribe_subject(&app, &token) else {
        return invalid_link(&app);
    };
    let email = if subject.contains('@') {
        subject
    } else {
        match purchase(&app, &subject).await {
            Ok(Some(purchase)) => purchase.email.clone(),
            Ok(None) => return invalid_link(&app),
            Err(page) => return page,
        }
    };
    if let Err(error) = app.db.opt_out(&email, app.now()).await {
        return log_unavailable(&app, &error);
    }
    tracing::info!("a buyer stopped update notices");
    html(
        &app,
        StatusCode::OK,
        "Unsubscribed",
        "<h1>You will get no more update notices</h1><p>Receipts and the links you ask for still come. Changed your mind? Write to us.</p>",
    )
}

// ---- lost links

pub async fn lost_form(app: Arc<App>, query: HashMap<String, String>) -> Answer {
    let note = query.contains_key("expired").then_some(
        "The page after buying opens your downloads only for a while. Enter your address and we will email your links.",
    );
    same_origin_referrer(html(
        &app,
        StatusCode::OK,
        "Lost your link?",
        &pages::lost_form(note),
    ))
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// Whether a POST comes from the shop's own pages: a browser names the
/// page's origin in `Origin` (or else `Referer`); a request without either
/// is not a browser's, which no origin check could stop anyway.
fn same_origin(base_url: &str, origin: Option<&str>, referer: Option<&str>) -> bool {
    let ours = origin_of(base_url).unwrap_or(base_url);
    match (origin, referer) {
        (Some(origin), _) => origin.trim_end_matches('/').eq_ignore_ascii_case(ours),
        (None, Some(referer)) => origin_of(referer).is_some_and(|o| o.eq_ignore_ascii_case(ours)),
        (None, None) => true,
    }
}

pub async fn lost(
    app: Arc<App>,
    client: ClientKey,
    origin: Option<String>,
    referer: Option<String>,
    form: HashMap<String, String>,
) -> Answer {
    if !same_origin(
        &app.store().settings.base_url,
        origin.as_deref(),
        referer.as_deref(),
    ) {
        return text(
            StatusCode::FORBIDDEN,
            "this form only works on its own page",
        );
    }
    let email = form
        .get("email")
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if crate::store::settings::check_email(&email).is_err() {
        return same_origin_referrer(html(
            &app,
            StatusCode::BAD_REQUEST,
            "Lost your link?",
            &pages::lost_form(Some("Please enter the email address you bought with.")),
        ));
    }
    let (by_address, by_client) = (format!("lost:{email}"), format!("lost-client:{client}"));
    let checks = [
        (by_address.as_str(), LOST_PER_ADDRESS),
        (
            by_client.as_str(),
            Quota::of(app.store().settings.serve.limits.lost),
        ),
    ];
    let allowed = match within_limits(&app, &checks).await {
        Ok(allowed) => allowed,
        Err(answer) => return answer,
    };
    if !allowed {
        return html(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "Please wait",
            "<h1>Please wait a while</h1><p>We have had several requests for this address or from your network. Try again in an hour.</p>",
        );
    }
    // Noted, not looked up: the same work now whether or not the address
    // bought anything; the look-up comes on its own schedule (`lost`).
    app.lost.note(email);
    same_origin_referrer(html(
        &app,
        StatusCode::OK,
        "Check your email",
        "<h1>Check your email</h1><p>If that address bought anything here, we have sent fresh download links to it. They should arrive within a few minutes.</p>",
    ))
}

/// What a library token's claim starts with (a purchase's is `cs_`).
pub const LIBRARY_PREFIX: &str = "lib_";

/// The buyer's library: everything an address bought, reached only by the
/// signed, expiring link that `/lost` mails.
pub async fn library(token: String, app: Arc<App>) -> Answer {
    let claims = match tokens::verify(&app.keys, &token, app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Invalid) => return invalid_link(&app),
        Err(TokenError::Expired { .. }) => {
            return refuse(
                &app,
                StatusCode::GONE,
                "This link has expired",
                "Library links stop working after a while. Ask for a new one below.",
            );
        }
    };
    let Some(id) = claims.purchase.strip_prefix(LIBRARY_PREFIX) else {
        return invalid_link(&app);
    };
    let email = match app.db.library_email(id).await {
        Ok(Some(email)) => email,
        Ok(None) => return invalid_link(&app),
        Err(error) => return log_unavailable(&app, &error),
    };
    let purchases = match app.purchases_by(&email).await {
        Ok(found) => found,
        Err(error) => return log_unavailable(&app, error.as_ref()),
    };
    let store = app.store();
    let mut items = Vec::with_capacity(purchases.len());
    for (id, (slug, version, created)) in &purchases {
        let Ok(bought) = store.product(slug) else {
            continue;
        };
        let purchase = match app.db.purchase(id).await {
            Ok(Some(known)) => (*known).clone(),
            Ok(None) => Entitlement {
                id: id.clone(),
                email: email.clone(),
                product: slug.clone(),
                version: version.clone(),
                payment_intent: None,
                created: *created,
                paid: None,
            },
            Err(error) => return log_unavailable(&app, &error),
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
        if let Some(waiting) = waiting_preorder(bought, version) {
            items.push(super::views::LibraryItem {
                product: bought.name.clone(),
                bundle: None,
                bought: version.clone(),
                date: crate::dates::human_day(*created),
                order: crate::ledger::order_number(id),
                refunded,
                preorder: true,
                out: waiting.out.map(crate::dates::human_date),
                cover: cover(bought),
                newest: String::new(),
                left: String::new(),
                href: String::new(),
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
            let href = format!(
                "{}{}",
                link.strip_prefix(&store.settings.base_url).unwrap_or(&link),
                link_query(&purchase, product, None)
            );
            items.push(super::views::LibraryItem {
                product: product.name.clone(),
                bundle: bought.is_bundle().then(|| bought.name.clone()),
                bought: held.bought,
                date: crate::dates::human_day(*created),
                order: crate::ledger::order_number(id),
                refunded,
                preorder: false,
                out: None,
                cover: cover(product),
                newest: newest_version,
                left: fewest.map_or_else(String::new, |(left, allowed)| {
                    format!("{left} of {allowed} downloads left")
                }),
                href,
            });
        }
    }
    let context = super::views::LibraryPage {
        shop: store.settings.name.clone(),
        email,
        expires: crate::dates::human_time(claims.expires),
        expires_at: crate::dates::timestamp(claims.expires),
        items,
    };
    same_origin_referrer(render(
        &app,
        StatusCode::OK,
        "Your library",
        "library.html",
        minijinja::Value::from_serialize(&context),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shops_own_pages_may_post() {
        let base = "https://books.example";
        assert!(same_origin(base, Some("https://books.example"), None));
        assert!(same_origin(base, None, Some("https://books.example/lost")));
        assert!(same_origin(base, None, None));
        assert!(!same_origin(base, Some("https://evil.example"), None));
        assert!(!same_origin(base, Some("null"), None));
        assert!(!same_origin(
            base,
            None,
            Some("https://books.example.evil.example/")
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8080",
            Some("http://127.0.0.1:9090"),
            None
        ));
    }
}

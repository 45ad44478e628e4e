//! The server's handlers: one function per route, each returning a whole
//! response. Errors become plain pages with the right status, never a
//! stack trace or a hint of what exists.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warp::http::{HeaderValue, Response, StatusCode, header};
use warp::reply::Reply;

use super::{App, Delivery, pages};
use crate::state::{self, Count, Purchase};
use crate::store::{Product, Release};
use crate::stripe::{CheckoutSession, CreateCheckoutSession, IdempotencyKey};
use crate::tokens::{self, TokenError};

type Reply_ = warp::reply::Response;

pub fn text(status: StatusCode, text: &str) -> Reply_ {
    let mut response = Response::new(format!("{text}\n").into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn html(app: &App, status: StatusCode, title: &str, body: &str) -> Reply_ {
    let store = app.store();
    let settings = &store.settings;
    let mut response = warp::reply::html(pages::page(
        &app.layout,
        &settings.name,
        &settings.support_email,
        title,
        body,
    ))
    .into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("Referrer-Policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "Content-Security-Policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    response
}

fn redirect(status: StatusCode, location: &str) -> Reply_ {
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

fn unavailable(app: &App) -> Reply_ {
    html(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<h1>Something went wrong on our side</h1><p>Please try again in a minute. If it keeps happening, write to us.</p>",
    )
}

pub fn rejection(app: &App, rejection: &warp::Rejection) -> Reply_ {
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "too large");
    }
    if rejection.find::<warp::reject::InvalidQuery>().is_some()
        || rejection.find::<warp::reject::InvalidHeader>().is_some()
    {
        return text(StatusCode::BAD_REQUEST, "bad request");
    }
    html(
        app,
        StatusCode::NOT_FOUND,
        "Not found",
        "<h1>Not found</h1><p>There is nothing here.</p>",
    )
}

/// The product and version a session sells, if it is one of ours.
fn ours(app: &App, session: &CheckoutSession) -> Option<(String, String)> {
    crate::sync::product_of(session, &app.store())
}

/// The purchase a session is, if it is one of ours and paid.
fn paid_purchase(app: &App, session: &CheckoutSession) -> Option<Purchase> {
    let (product, version) = ours(app, session)?;
    (session.payment_status == "paid").then(|| Purchase {
        id: session.id.clone(),
        email: session.email().unwrap_or_default().to_owned(),
        product,
        version,
        payment_intent: session.payment_intent.clone(),
        created: session.created,
    })
}

/// The purchase of a verified token: from the database, or else from
/// Stripe (a link minted by `shop token` or `shop notify`), remembered.
async fn purchase(app: &App, id: &str) -> Result<Option<Purchase>, Reply_> {
    if let Some(purchase) = app
        .db
        .purchase(id)
        .map_err(|error| log_unavailable(app, &error))?
    {
        return Ok(Some(purchase));
    }
    let session = match app.stripe.checkout_session(id).await {
        Ok(Some(session)) => session,
        Ok(None) => return Ok(None),
        Err(error) => return Err(log_unavailable(app, &error)),
    };
    let Some(purchase) = paid_purchase(app, &session) else {
        return Ok(None);
    };
    app.db
        .upsert_purchase(purchase.clone())
        .await
        .map_err(|error| log_unavailable(app, &error))?;
    Ok(Some(purchase))
}

fn log_unavailable(app: &App, error: &(dyn std::error::Error + 'static)) -> Reply_ {
    tracing::error!("{}", crate::error::one_line(error));
    unavailable(app)
}

/// The releases a purchase may download, oldest first.
fn entitled<'a>(product: &'a Product, bought: &str) -> Vec<&'a Release> {
    let Ok(bought) = semver::Version::parse(bought) else {
        return Vec::new();
    };
    product
        .releases
        .iter()
        .filter(|release| product.updates.entitles(&bought, &release.version))
        .collect()
}

/// Checks a token and finds its purchase and product, or the refusal page.
/// `check_revoked` is false where the caller checks it itself (counting a
/// download does, in the same transaction).
async fn authorize(
    app: &App,
    token: &str,
    check_revoked: bool,
) -> Result<(tokens::Claims, Purchase, Arc<crate::store::Store>), Reply_> {
    let claims = match tokens::verify(&app.keys, token, app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Invalid) => {
            return Err(refuse(
                app,
                StatusCode::FORBIDDEN,
                "This link is not valid",
                "Check that you copied the whole link from your email.",
            ));
        }
        Err(TokenError::Expired { .. }) => {
            return Err(refuse(
                app,
                StatusCode::GONE,
                "This link has expired",
                "Download links stop working after a while, so they cannot be shared for ever. Ask for a new one below.",
            ));
        }
    };
    if !claims.purchase.starts_with("cs_") {
        return Err(refuse(
            app,
            StatusCode::FORBIDDEN,
            "This link is not valid",
            "Check that you copied the whole link from your email.",
        ));
    }
    let purchase = match purchase(app, &claims.purchase).await? {
        Some(purchase) => purchase,
        None => {
            return Err(refuse(
                app,
                StatusCode::FORBIDDEN,
                "This link is not valid",
                "Check that you copied the whole link from your email.",
            ));
        }
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
    let revoked = if check_revoked {
        app.db.revoked(&purchase)
    } else {
        Ok(false)
    };
    match revoked {
        Ok(false) => {}
        Ok(true) => {
            return Err(refuse(
                app,
                StatusCode::GONE,
                "This purchase was refunded",
                "Its downloads are closed. If you think this is a mistake, write to us.",
            ));
        }
        Err(error) => return Err(log_unavailable(app, &error)),
    }
    Ok((claims, purchase, store))
}

fn refuse(app: &App, status: StatusCode, title: &str, text: &str) -> Reply_ {
    html(app, status, title, &pages::refusal(title, text))
}

// ---- buying

pub async fn buy(
    slug: String,
    app: Arc<App>,
    query: HashMap<String, String>,
    referer: Option<String>,
) -> Reply_ {
    let store = app.store();
    let Some(product) = store.product(&slug).ok() else {
        return html(
            &app,
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>Not found</h1><p>There is nothing here.</p>",
        );
    };
    let Some(release) = product.latest() else {
        return html(
            &app,
            StatusCode::NOT_FOUND,
            "Not for sale yet",
            &format!(
                "<h1>{} is not for sale yet</h1>",
                pages::escape(&product.name)
            ),
        );
    };
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("product".to_owned(), product.slug.clone());
    metadata.insert("version".to_owned(), release.version.to_string());
    for key in [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ] {
        if let Some(value) = query.get(key).filter(|value| !value.is_empty()) {
            metadata.insert(key.to_owned(), value.chars().take(200).collect());
        }
    }
    if let Some(referer) = referer.filter(|r| !r.starts_with(&app.store().settings.base_url)) {
        metadata.insert("referrer".to_owned(), referer.chars().take(500).collect());
    }
    let base = &app.store().settings.base_url;
    let params = CreateCheckoutSession {
        price: release.stripe_price.clone(),
        success_url: format!("{base}/thanks?session_id={{CHECKOUT_SESSION_ID}}"),
        cancel_url: Some(format!("{base}/")),
        client_reference_id: Some(uuid::Uuid::new_v4().simple().to_string()),
        allow_promotion_codes: product.promotion_codes,
        metadata,
        ..CreateCheckoutSession::default()
    };
    match app
        .stripe
        .create_checkout_session(&params, &IdempotencyKey::random())
        .await
    {
        Ok(session) => match session.url {
            Some(url) => redirect(StatusCode::SEE_OTHER, &url),
            None => unavailable(&app),
        },
        Err(error) => log_unavailable(&app, &error),
    }
}

pub async fn thanks(app: Arc<App>, query: HashMap<String, String>) -> Reply_ {
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
    let session = match app.stripe.checkout_session(id).await {
        Ok(Some(session)) => session,
        Ok(None) => return not_found(),
        Err(error) => return log_unavailable(&app, &error),
    };
    if ours(&app, &session).is_none() {
        return not_found();
    }
    if session.status.as_deref() != Some("complete") {
        return not_found();
    }
    if session.payment_status != "paid" {
        return html(
            &app,
            StatusCode::OK,
            "Thank you",
            "<h1>Thank you!</h1><p>Your payment is on its way. As soon as it clears, your download link will come by email.</p>",
        );
    }
    let Some(purchase) = paid_purchase(&app, &session) else {
        return not_found();
    };
    if let Err(error) = app.db.upsert_purchase(purchase).await {
        return log_unavailable(&app, &error);
    }
    let link = app.link(&session.id);
    let path = link
        .strip_prefix(&app.store().settings.base_url)
        .unwrap_or(&link)
        .to_owned();
    redirect(StatusCode::SEE_OTHER, &path)
}

// ---- webhooks

pub async fn webhook(app: Arc<App>, signature: Option<String>, body: Bytes) -> Reply_ {
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
        tracing::warn!(
            "refused a webhook: {}",
            error.to_string().lines().next().unwrap_or_default()
        );
        return text(StatusCode::BAD_REQUEST, "invalid signature");
    }
    let Ok(event) = serde_json::from_slice::<crate::stripe::Event>(&body) else {
        return text(StatusCode::BAD_REQUEST, "not an event");
    };
    let object = event.data.object.clone();
    let result = match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let Ok(session) = serde_json::from_value::<CheckoutSession>(object) else {
                return text(StatusCode::BAD_REQUEST, "not a checkout session");
            };
            let purchase = paid_purchase(&app, &session);
            app.db
                .handle_event(&event.id, &event.kind, now, move |connection| {
                    if let Some(purchase) = purchase {
                        state::insert_purchase(connection, &purchase)?;
                        if !purchase.email.is_empty() {
                            let dedupe = format!("receipt:{}", purchase.id);
                            state::queue_mail(
                                connection,
                                "receipt",
                                &purchase.email,
                                Some(&purchase.id),
                                Some(&dedupe),
                                now,
                            )?;
                        }
                    }
                    Ok(())
                })
                .await
        }
        "charge.refunded" | "charge.dispute.created" => {
            let intent = object["payment_intent"].as_str().map(str::to_owned);
            let fully_refunded = object["refunded"].as_bool() == Some(true);
            let reason = if event.kind == "charge.refunded" {
                "refunded"
            } else {
                "disputed"
            };
            let revoke = reason == "disputed" || fully_refunded;
            app.db
                .handle_event(&event.id, &event.kind, now, move |connection| {
                    if let (true, Some(intent)) = (revoke, intent) {
                        state::revoke(connection, &intent, reason, now)?;
                    }
                    Ok(())
                })
                .await
        }
        _ => {
            app.db
                .handle_event(&event.id, &event.kind, now, |_| Ok(()))
                .await
        }
    };
    match result {
        Ok(Some(())) => text(StatusCode::OK, "received"),
        Ok(None) => text(StatusCode::OK, "already received"),
        Err(error) => {
            // Not recorded: Stripe will send it again.
            tracing::error!(
                "cannot record webhook event: {}",
                crate::error::one_line(&error)
            );
            text(StatusCode::INTERNAL_SERVER_ERROR, "try again")
        }
    }
}

// ---- downloads

/// The purchase's product, the releases it may download (oldest first),
/// and the one asked for: `?version=`, or else the newest. The error is
/// the page to answer with, built once on a path that ends the request.
#[allow(clippy::result_large_err)]
fn chosen_release<'a>(
    app: &App,
    store: &'a crate::store::Store,
    purchase: &Purchase,
    query: &HashMap<String, String>,
) -> Result<(&'a Product, Vec<&'a Release>, &'a Release), Reply_> {
    let Ok(product) = store.product(&purchase.product) else {
        return Err(unavailable(app));
    };
    let releases = entitled(product, &purchase.version);
    let chosen = match query.get("version") {
        Some(version) => releases
            .iter()
            .find(|r| r.version.to_string() == *version)
            .copied(),
        None => releases.last().copied(),
    };
    match chosen {
        Some(release) => Ok((product, releases, release)),
        None => Err(refuse(
            app,
            StatusCode::NOT_FOUND,
            "No such version",
            "This purchase does not include that version.",
        )),
    }
}

pub async fn download_page(token: String, app: Arc<App>, query: HashMap<String, String>) -> Reply_ {
    let (claims, purchase, store) = match authorize(&app, &token, true).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (product, releases, shown) = match chosen_release(&app, &store, &purchase, &query) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let version = shown.version.to_string();
    let latest = releases.last().is_some_and(|r| r.version == shown.version);
    let mut files = Vec::new();
    for asset in &shown.assets {
        let (used, allowed) =
            match app
                .db
                .downloads(&purchase, &version, &asset.name, product.download_limit)
            {
                Ok(counts) => counts,
                Err(error) => return log_unavailable(&app, &error),
            };
        let href = if latest {
            format!(
                "/d/{token}/{}",
                crate::stripe::form::encode_component(&asset.name)
            )
        } else {
            format!(
                "/d/{token}/{}?version={version}",
                crate::stripe::form::encode_component(&asset.name)
            )
        };
        files.push(pages::FileRow {
            name: asset.name.clone(),
            size: asset.size,
            sha256: asset.sha256.clone(),
            used,
            allowed,
            href,
        });
    }
    let others: Vec<(String, String)> = releases
        .iter()
        .filter(|r| r.version != shown.version)
        .rev()
        .map(|r| {
            (
                r.version.to_string(),
                format!("/d/{token}?version={}", r.version),
            )
        })
        .collect();
    let expires = crate::ledger::human_time(claims.expires);
    let body = pages::downloads(product, shown, &purchase.version, &files, &others, &expires);
    html(&app, StatusCode::OK, &product.name, &body)
}

/// A single `bytes=` range of a file of `size` bytes: (start, end inclusive).
fn parse_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: serve the whole file
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => suffix
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| (size.saturating_sub(n), size.saturating_sub(1))),
        (start, "") => start
            .parse::<u64>()
            .ok()
            .map(|s| (s, size.saturating_sub(1))),
        (start, end) => match (start.parse::<u64>(), end.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(size.saturating_sub(1)))),
            _ => None,
        },
    };
    Some(match range {
        Some((start, end)) if start < size && start <= end => Ok((start, end)),
        _ => Err(()),
    })
}

pub async fn download(
    token: String,
    file: String,
    app: Arc<App>,
    query: HashMap<String, String>,
    range: Option<String>,
) -> Reply_ {
    // A resume is not counted, so it checks revocation here.
    let resuming = range
        .as_deref()
        .is_some_and(|header| !header.trim().starts_with("bytes=0-"));
    let (_, purchase, store) = match authorize(&app, &token, resuming).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (product, _, release) = match chosen_release(&app, &store, &purchase, &query) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(asset) = release.assets.iter().find(|asset| asset.name == file) else {
        return refuse(
            &app,
            StatusCode::NOT_FOUND,
            "No such file",
            "This purchase has no file of that name.",
        );
    };
    let version = release.version.to_string();

    // A resumed download (a range not from the start) was counted when it began.
    let range = match (
        &app.delivery,
        range
            .as_deref()
            .and_then(|header| parse_range(header, asset.size)),
    ) {
        (Delivery::Local(_), Some(Err(()))) => {
            let mut response = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", asset.size)) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
        (Delivery::Local(_), Some(Ok(range))) => Some(range),
        _ => None,
    };
    let resumed = range.is_some_and(|(start, _)| start > 0);
    if resumed {
        match app
            .db
            .downloads(&purchase, &version, &asset.name, product.download_limit)
        {
            Ok((used, _)) if used > 0 => {}
            Ok(_) => {
                return refuse(
                    &app,
                    StatusCode::GONE,
                    "Start the download from the beginning",
                    "This download was never started, so it cannot be resumed.",
                );
            }
            Err(error) => return log_unavailable(&app, &error),
        }
    } else {
        match app
            .db
            .count_download(&purchase, &version, &asset.name, product.download_limit)
            .await
        {
            Ok(Count::Counted { .. }) => {}
            Ok(Count::Exhausted) => {
                return refuse(
                    &app,
                    StatusCode::GONE,
                    "No downloads left",
                    "This file has been downloaded as many times as the purchase allows. Write to us if you need more.",
                );
            }
            Ok(Count::Revoked) => {
                return refuse(
                    &app,
                    StatusCode::GONE,
                    "This purchase was refunded",
                    "Its downloads are closed. If you think this is a mistake, write to us.",
                );
            }
            Err(error) => return log_unavailable(&app, &error),
        }
    }

    match &app.delivery {
        Delivery::GitHub { client, api_base } => {
            let Some(id) = asset.github_asset_id else {
                return log_unavailable(
                    &app,
                    &std::io::Error::other("the release records no GitHub asset id"),
                );
            };
            let url = match app.cached_link(id) {
                Some(url) => url,
                None => match client.asset_download_url(id, api_base).await {
                    Ok(url) => {
                        app.cache_link(id, &url);
                        url
                    }
                    Err(error) => return log_unavailable(&app, &error),
                },
            };
            redirect(StatusCode::FOUND, &url)
        }
        Delivery::Local(dir) => {
            let path = dir.join(&product.slug).join(&version).join(&asset.name);
            let result = match app.cached_file(&path, asset.size).await {
                Some(bytes) => Ok(file_response(bytes, &asset.name, asset.size, range)),
                None => stream_file(&path, &asset.name, asset.size, range).await,
            };
            result.unwrap_or_else(|error| log_unavailable(&app, &error))
        }
    }
}

/// Bytes per chunk streamed from a local file.
const CHUNK: usize = 256 * 1024;

async fn stream_file(
    path: &std::path::Path,
    name: &str,
    size: u64,
    range: Option<(u64, u64)>,
) -> std::io::Result<Reply_> {
    use std::io::Seek;
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let path = path.to_owned();
    let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let mut file = std::fs::File::open(path)?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))?;
        }
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)??;
    let stream = crate::file_stream::chunks(file, length, CHUNK);
    let response = warp::reply::stream(stream).into_response();
    Ok(with_file_headers(response, name, size, length, range))
}

/// A file held in memory (a small, popular one), or a range of it.
fn file_response(bytes: Bytes, name: &str, size: u64, range: Option<(u64, u64)>) -> Reply_ {
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let body = if size == 0 {
        Bytes::new()
    } else {
        bytes.slice(start as usize..=end as usize)
    };
    let length = body.len() as u64;
    with_file_headers(Response::new(body.into()), name, size, length, range)
}

fn with_file_headers(
    mut response: Reply_,
    name: &str,
    size: u64,
    length: u64,
    range: Option<(u64, u64)>,
) -> Reply_ {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::github::content_type(name)),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        name.replace(['"', '\\'], "_"),
        crate::stripe::form::encode_component(name)
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some((start, end)) = range {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}

// ---- unsubscribing from notices

pub async fn unsubscribe(token: String, app: Arc<App>) -> Reply_ {
    let email = tokens::verify(&app.keys, &token, app.now())
        .ok()
        .and_then(|claims| {
            claims
                .purchase
                .strip_prefix(super::UNSUBSCRIBE)
                .map(str::to_owned)
        });
    let Some(email) = email else {
        return refuse(
            &app,
            StatusCode::FORBIDDEN,
            "This link is not valid",
            "Check that you copied the whole link from your email.",
        );
    };
    if let Err(error) = app.db.opt_out(&email, app.now()).await {
        return log_unavailable(&app, &error);
    }
    html(
        &app,
        StatusCode::OK,
        "Unsubscribed",
        "<h1>You will get no more update notices</h1><p>Receipts and the links you ask for still come. Changed your mind? Write to us.</p>",
    )
}

// ---- lost links

pub async fn lost_form(app: Arc<App>) -> Reply_ {
    html(
        &app,
        StatusCode::OK,
        "Lost your link?",
        &pages::lost_form(None),
    )
}

pub async fn lost(
    app: Arc<App>,
    client: Option<std::net::SocketAddr>,
    form: HashMap<String, String>,
) -> Reply_ {
    let email = form
        .get("email")
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if crate::store::settings::check_email(&email).is_err() {
        return html(
            &app,
            StatusCode::BAD_REQUEST,
            "Lost your link?",
            &pages::lost_form(Some("Please enter the email address you bought with.")),
        );
    }
    let allowed = {
        let mut limiter = app.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let client_key = client
            .map(|address| address.ip().to_string())
            .unwrap_or_default();
        limiter.allow(&format!("email:{email}"), 3, Duration::from_secs(3600))
            && limiter.allow(
                &format!("client:{client_key}"),
                20,
                Duration::from_secs(3600),
            )
    };
    if !allowed {
        return html(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "Please wait",
            "<h1>Please wait a while</h1><p>We have had several requests for this address or from your network. Try again in an hour.</p>",
        );
    }
    let mut known = app
        .db
        .purchases_of(&email)
        .map(|found| !found.is_empty())
        .unwrap_or(false);
    if !known {
        let _ = crate::ledger::each(&app.store().root, |purchase| {
            if purchase.email.eq_ignore_ascii_case(&email) && purchase.status == "paid" {
                known = true;
            }
            Ok(())
        });
    }
    if known {
        let now = app.now();
        let recipient = email.clone();
        if let Err(error) = app
            .db
            .write(move |connection| {
                state::queue_mail(connection, "links", &recipient, None, None, now)
            })
            .await
        {
            tracing::error!(
                "cannot queue lost-link mail: {}",
                crate::error::one_line(&error)
            );
        }
    }
    // The same answer whether or not the address bought anything.
    html(
        &app,
        StatusCode::OK,
        "Check your email",
        "<h1>Check your email</h1><p>If that address bought anything here, we have sent fresh download links to it. They should arrive within a few minutes.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_single_and_within_the_file() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=500-", 1000), Some(Ok((500, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=900-5000", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}

//! The download page and the counted download of one file: ranges,
//! local files, GitHub's (redirected or streamed), and stamped copies.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use warp::http::{HeaderValue, Method, Response, StatusCode, header};
use warp::reply::Reply;

use super::Answer;
use super::access::{Held, authorize, held, link_query, preordered_page};
use super::answers::{
    exhausted, log_unavailable, redirect, refunded, refuse, text, unavailable, view,
};
use super::checkout::stamps_any;
use super::meter::{CHUNK, Chunks, Metered, charge_stream, memory_chunks, open_at};
use crate::downloads::{self, Ask};
use crate::github::Download;
use crate::server::range::{self, Span};
use crate::server::views::{
    self, BundleHeading, DownloadSection, DownloadsPage, FileRow, OtherVersion,
};
use crate::server::{App, Chosen, Files, local_file, stamped};
use crate::state::{Charge, Entitlement, FileKey};
use crate::store::{Asset, Product, Release};
use crate::{dates, file_stream, github, net, stamp, store};

/// The product and release a request names (`?product=`, `?version=`),
/// among those the purchase may download; without a version, the newest.
/// A bundle's purchase must name the product. The error is the page to
/// answer with.
#[allow(clippy::result_large_err)]
pub(super) fn chosen_release<'a>(
    app: &App,
    store: &'a store::Store,
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
        && let Some(waiting) = bought.waiting_preorder(&purchase.version)
    {
        return preordered_page(&app, &purchase, bought, waiting);
    }
    let expires = dates::html_time(claims.expires);
    // A bundle's page: each product's newest files, each under its own limit.
    let (title, bundle, sections) = if bought.is_bundle() && chosen.product.is_none() {
        let mut sections = Vec::new();
        for held in held(&store, &purchase) {
            let Some(newest) = held.releases.last().copied() else {
                continue;
            };
            match files_section(&app, &token, &purchase, &held, newest).await {
                Ok(section) => sections.push(section),
                Err(page) => return page,
            }
        }
        let bundle = BundleHeading {
            name: bought.name.clone(),
            version: purchase.version.clone(),
        };
        (&bought.name, Some(bundle), sections)
    } else {
        let (held, shown) = match chosen_release(&app, &store, &purchase, &chosen) {
            Ok(found) => found,
            Err(page) => return page,
        };
        match files_section(&app, &token, &purchase, &held, shown).await {
            Ok(section) => (&held.product.name, None, vec![section]),
            Err(page) => return page,
        }
    };
    let kindle = match app.db.reader(&purchase.email).await {
        Ok(reader) => reader.kindle.unwrap_or_default(),
        Err(error) => return log_unavailable(&app, &error),
    };
    let page = DownloadsPage {
        kindle,
        sender: store.settings.mail.from.clone(),
        bundle,
        expires: views::safe(expires),
        sections,
        // The page opens only while the purchase stands (`authorize`).
        withdraw: app.withdraw_link(&purchase, false),
    };
    view(
        &app,
        StatusCode::OK,
        title,
        "downloads.html",
        minijinja::Value::from_serialize(&page),
    )
}

/// The files of one product of a purchase at `shown`, with what each has
/// left, and links to the other versions it may download.
#[allow(clippy::result_large_err)]
async fn files_section(
    app: &App,
    token: &str,
    purchase: &Entitlement,
    held: &Held<'_>,
    shown: &Release,
) -> Result<DownloadSection, Answer> {
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
        let href = format!("/d/{token}/{}{query}", net::encode_component(&asset.name));
        // A stamped copy once made: its own size and checksum.
        let (size, sha256) = app
            .copies
            .known(&purchase.id, product, shown, asset)
            .unwrap_or_else(|| (asset.size, asset.sha256.clone()));
        files.push(FileRow {
            name: asset.name.clone(),
            size: views::human_size(size),
            sha256,
            left: usage.left(allowed, size),
            allowed,
            href,
        });
    }
    let others = held
        .releases
        .iter()
        .filter(|r| r.version != shown.version)
        .rev()
        .map(|r| {
            let version = r.version.to_string();
            let query = link_query(purchase, product, Some(&version));
            OtherVersion {
                href: format!("/d/{token}{query}"),
                version,
                notes: r
                    .notes
                    .as_deref()
                    .map(|notes| views::safe(crate::html::markdown(notes))),
            }
        })
        .collect();
    let store = app.store();
    // "Download all": a version of several files, each with a download left.
    let all = (files.len() > 1 && files.iter().all(|file| file.left > 0)).then(|| {
        let query = link_query(purchase, product, (!latest).then_some(version.as_str()));
        format!("/zip/{token}{query}")
    });
    // Send to Kindle: a version with an EPUB that has a download left.
    let to_kindle = files
        .iter()
        .any(|file| file.name.to_ascii_lowercase().ends_with(".epub") && file.left > 0)
        .then(|| {
            let query = link_query(purchase, product, (!latest).then_some(version.as_str()));
            format!("/kindle/{token}{query}")
        });
    Ok(DownloadSection {
        to_kindle,
        all,
        slug: product.slug.clone(),
        name: product.name.clone(),
        cover: product.cover.is_some(),
        version,
        bought: held.bought.clone(),
        allowed: files
            .first()
            .map_or(product.download_limit, |file| file.allowed),
        files,
        stamped: stamps_any(
            &store,
            product,
            shown.assets.iter().map(|asset| asset.name.as_str()),
        ),
        others,
    })
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
    if let Some(licence) = stamped::licence(&app.keys[0], &store, product, &purchase, &asset.name) {
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
        // On GitHub a whole file is a redirect, a range streamed.
        let ask = match (&app.files_from, span) {
            (Files::GitHub { .. }, Span::Whole) => Ask::Redirect {
                limit,
                size: asset.size,
                now: app.now(),
            },
            _ => Ask::Stream {
                limit,
                size: asset.size,
                start,
                length,
            },
        };
        return match would_admit(&app, &key, ask).await {
            Ok(true) => file_headers(Response::new(Bytes::new().into()), asset, span),
            Ok(false) => exhausted(&app),
            Err(answer) => answer,
        };
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
            let path = local_file(dir, &product.slug, &version, &asset.name);
            let meter = match charge_stream(&app, key, limit, asset.size, start, length).await {
                Ok(meter) => meter,
                Err(answer) => return answer,
            };
            let body = match app.cached_file(&path, asset.size).await {
                Some(bytes) => memory_chunks(bytes, start, length),
                None => match open_at(&path, start).await {
                    Ok(file) => Box::pin(file_stream::chunks(file, length, CHUNK)) as Chunks,
                    Err(error) => {
                        // Nothing went out: the meter gives it all back.
                        drop(meter);
                        return log_unavailable(&app, &error);
                    }
                },
            };
            let body = Metered::new(body, meter);
            file_headers(warp::reply::stream(body).into_response(), asset, span)
        }
    }
}

/// A file of a release on GitHub, as a download asks for it.
struct OnGitHub<'a> {
    client: &'a github::GitHub,
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
    let body = Metered::new(
        Box::pin(part_of(response.bytes_stream(), skip, length)),
        meter,
    );
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

/// What a GET would get, for a HEAD: the download rule on a copy of the
/// file's standing, nothing charged. (A refund closes the download before
/// this, in `authorize`.)
async fn would_admit(app: &App, key: &FileKey, ask: Ask) -> Result<bool, Answer> {
    let (usage, extra) = app
        .db
        .usage(key)
        .await
        .map_err(|error| log_unavailable(app, &error))?;
    let mut copy = downloads::Standing {
        usage,
        extra,
        ..Default::default()
    };
    Ok(downloads::apply(&mut copy, ask).charge == Charge::Admitted)
}

/// The answer to a range outside a file of `size` bytes.
fn unsatisfiable(size: u64) -> Answer {
    let mut response = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
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
    licence: stamp::Licence,
    head: bool,
    range: Option<String>,
    if_range: Option<String>,
) -> Answer {
    let copy = match stamped::buyer_copy(app, &key.purchase, product, release, asset, licence).await
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
        let ask = Ask::Stream {
            limit,
            size: copy.size,
            start,
            length,
        };
        match would_admit(app, &key, ask).await {
            Ok(true) => {}
            Ok(false) => return exhausted(app),
            Err(answer) => return answer,
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
    let body = match copy_chunks(&copy, start, length).await {
        Ok(body) => body,
        Err(error) => {
            drop(meter);
            return log_unavailable(app, &error);
        }
    };
    let body = Metered::new(body, meter);
    headers_of(
        warp::reply::stream(body).into_response(),
        &asset.name,
        copy.size,
        &tag,
        span,
    )
}

/// The bytes `[start, start + length)` of a stamped copy, from the parts
/// that hold them, each from its offset.
async fn copy_chunks(
    copy: &crate::server::stamped::Copy,
    start: u64,
    length: u64,
) -> std::io::Result<Chunks> {
    use crate::server::stamped::Part;
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
            Part::File(path, _) => Box::pin(file_stream::chunks(
                open_at(path, offset).await?,
                take,
                CHUNK,
            )) as Chunks,
        };
        body = Box::pin(body.chain(chunks));
        left -= take;
        offset = 0;
    }
    Ok(body)
}

/// Where one file of "Download all" comes from.
enum Whole {
    /// The buyer's stamped copy.
    Copy(Arc<crate::server::stamped::Copy>),
    Local(std::path::PathBuf),
    GitHub(u64),
}

/// `GET /zip/<token>`: every file of a version (`?version=`, `?product=`
/// as the page's links name them) as one ZIP, streamed as it is made,
/// each file counted as a whole download of that file (its bytes metered
/// as they leave, so a broken download gives back what did not go), the
/// stamped copies where the product stamps. Refused before the first byte
/// when any file has no download left.
pub async fn download_all(token: String, app: Arc<App>, chosen: Chosen) -> Answer {
    use crate::server::zipped;
    // Revocation is checked by each file's charge, in its transaction.
    let (_, purchase, store) = match authorize(&app, &token, false).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (held, release) = match chosen_release(&app, &store, &purchase, &chosen) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let product = held.product;
    let version = release.version.to_string();
    let mut wholes = Vec::new();
    for asset in &release.assets {
        let whole = match (
            stamped::licence(&app.keys[0], &store, product, &purchase, &asset.name),
            &app.files_from,
        ) {
            (Some(licence), _) => {
                match stamped::buyer_copy(&app, &purchase.id, product, release, asset, licence)
                    .await
                {
                    Ok(copy) => Whole::Copy(copy),
                    Err(message) => return log_unavailable(&app, &std::io::Error::other(message)),
                }
            }
            (None, Files::Local(dir)) => {
                Whole::Local(local_file(dir, &product.slug, &version, &asset.name))
            }
            (None, Files::GitHub { .. }) => match asset.github_asset_id {
                Some(id) => Whole::GitHub(id),
                None => {
                    return log_unavailable(
                        &app,
                        &std::io::Error::other("the release records no GitHub asset id"),
                    );
                }
            },
        };
        let size = match &whole {
            Whole::Copy(copy) => copy.size,
            _ => asset.size,
        };
        wholes.push((asset, whole, size));
    }
    let sizes: Vec<(&str, u64)> = wholes
        .iter()
        .map(|(asset, _, size)| (asset.name.as_str(), *size))
        .collect();
    let Some(length) = zipped::fits(&sizes) else {
        return refuse(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large for one ZIP",
            "These files together are over 4 GB: download them one by one.",
        );
    };
    // Every file charged before the first byte: one refused, none sent
    // (the others' meters give everything back).
    let mut meters = Vec::new();
    for (asset, _, size) in &wholes {
        let key = FileKey::new(&purchase, &product.slug, &version, &asset.name);
        match charge_stream(&app, key, product.download_limit, *size, 0, *size).await {
            Ok(meter) => meters.push(meter),
            Err(answer) => return answer,
        }
    }
    let mut entries = Vec::new();
    for ((asset, whole, size), meter) in wholes.into_iter().zip(meters) {
        let body: std::io::Result<Chunks> = match whole {
            Whole::Copy(copy) => copy_chunks(&copy, 0, size).await,
            Whole::Local(path) => match app.cached_file(&path, size).await {
                Some(bytes) => Ok(memory_chunks(bytes, 0, size)),
                None => open_at(&path, 0)
                    .await
                    .map(|file| Box::pin(file_stream::chunks(file, size, CHUNK)) as Chunks),
            },
            Whole::GitHub(id) => match &app.files_from {
                Files::GitHub { client } => github_whole(&app, client, id, size).await,
                Files::Local(_) => Err(std::io::Error::other("files are not on GitHub")),
            },
        };
        match body {
            Ok(body) => entries.push(zipped::Entry {
                name: asset.name.clone(),
                size,
                body: Box::pin(Metered::new(body, meter)),
            }),
            Err(error) => return log_unavailable(&app, &error),
        }
    }
    tracing::info!(purchase = %purchase.id, %version, files = entries.len(), "download (all, as a ZIP)");
    let mut response = warp::reply::stream(zipped::archive(entries, release.date)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{version}.zip\"",
        product.slug
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A whole file from GitHub, through the server (its CDN's URL, or the
/// bytes GitHub sends itself).
async fn github_whole(
    app: &App,
    client: &github::GitHub,
    id: u64,
    size: u64,
) -> std::io::Result<Chunks> {
    let failed = |error: github::GitHubError| std::io::Error::other(error.to_string());
    let response = match app.cached_link(id) {
        Some(url) => {
            client
                .cdn_range(&url, 0, size)
                .await
                .map_err(failed)?
                .response
        }
        None => match asset_download(client, id).await.map_err(failed)? {
            Download::Redirect { url, expires } => {
                app.cache_link(id, &url, expires);
                client
                    .cdn_range(&url, 0, size)
                    .await
                    .map_err(failed)?
                    .response
            }
            Download::Body { response, .. } => response,
        },
    };
    Ok(Box::pin(
        response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    ))
}

/// Asks GitHub where an asset is, trying once more after a moment when
/// GitHub failed on its side or could not be reached (not when it limits
/// the rate: the buyer is told when to come back instead).
async fn asset_download(client: &github::GitHub, id: u64) -> Result<Download, github::GitHubError> {
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
fn github_unavailable(app: &App, error: &github::GitHubError) -> Answer {
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
        HeaderValue::from_static(net::content_type(name)),
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
        net::encode_component(name)
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

//! A local GitHub for tests and benchmarks: the REST API for releases and
//! release assets, faithful to GitHub's shapes, on two loopback listeners
//! (the API host and the uploads host, as GitHub has), with fault injection.
//!
//! Routes: `GET /repos/{o}/{r}` (with the token's `permissions`), `GET
//! …/immutable-releases`, `GET /repos/{o}/{r}/releases`, `GET
//! …/releases/tags/{tag}`, `POST …/releases`, `PATCH …/releases/{id}`,
//! `GET …/releases/{id}/assets`, `GET|DELETE …/releases/assets/{id}` (with
//! `Accept: application/octet-stream`, a 302 to a short-lived URL), and on
//! the uploads host `POST …/releases/{id}/assets?name=`, which streams the
//! body (never holding more than a chunk of a large file).
//!
//! It behaves as GitHub does where shop has been caught out before (from
//! GitHub's docs and its users' reports): asset names are renamed by its
//! own rule ([`github_name`]); a 422 carries its reasons in `errors[]`; an
//! asset over 2 GiB is refused from its `Content-Length`, before the body;
//! a broken upload leaves a `starter` asset; drafts are not found by tag,
//! only listed; in a repository with immutable releases a published
//! release takes no asset; rate limits answer 403 or 429 with GitHub's
//! headers; a token that cannot see the private repository gets 404; the
//! CDN URL expires and refuses a request that carries `Authorization`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::http::{Response, StatusCode};

/// Bodies up to this size are kept, so downloads can be checked.
const KEEP_BYTES: u64 = 16 * 1024 * 1024;

/// GitHub's largest release asset.
pub const MAX_ASSET: u64 = 2 * 1024 * 1024 * 1024;

/// A refusal for the next request (either host, the CDN aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The secondary rate limit: 403, a message that says so, and
    /// `retry-after` when given.
    Secondary { retry_after: Option<u64> },
    /// The primary rate limit: 403 with `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset` this many seconds ahead.
    Primary { reset_in: u64 },
    /// 429 Too Many Requests with `retry-after`.
    TooMany { retry_after: u64 },
    /// A 502 from GitHub's front (a transient failure).
    BadGateway,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Cannot see the (private) repository: 404 everywhere.
    None,
    Read,
    Write,
}

#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Refuse the next requests, one refusal each, in order...
    pub refusals: Vec<Refusal>,
    /// ...of those whose `METHOD path` contains this, when set.
    pub refusals_for: Option<String>,
    /// Answer asset downloads with a 200 and the bytes, not a 302.
    pub download_bodies: bool,
    /// Create the next release, then answer 500 (the answer is lost).
    pub lose_create_release: bool,
    /// Stop the next upload after this many bytes with a 502, leaving a
    /// `starter` asset as GitHub does.
    pub break_upload_after: Option<u64>,
    /// Take the next upload whole, then answer 500.
    pub lose_upload_answer: bool,
    /// Sleep this long per 256 KiB received (a slow upload).
    pub upload_delay_ms: u64,
}

#[derive(Debug, Clone)]
pub struct StoredAsset {
    pub id: u64,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub state: String,
    pub content_type: String,
    pub bytes: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct StoredRelease {
    pub id: u64,
    pub tag: String,
    pub name: String,
    pub body: String,
    pub draft: bool,
    /// Published while the repository had immutable releases on.
    pub immutable: bool,
    pub assets: Vec<StoredAsset>,
}

#[derive(Debug)]
pub struct State {
    pub releases: Vec<StoredRelease>,
    pub faults: Faults,
    /// The repository's "immutable releases" setting.
    pub immutable_releases: bool,
    /// Tokens besides the owner's, and what each may do.
    pub tokens: HashMap<String, Permission>,
    /// How long a CDN URL lives.
    pub cdn_lifetime: u64,
    /// Each request to the API or uploads host: when, method and path.
    pub requests: Vec<(std::time::Instant, String)>,
    /// How many times each kind of request came.
    pub counts: HashMap<&'static str, u64>,
    /// Each finished upload: name, bytes, seconds from the request's
    /// arrival to its last byte (for benchmarks).
    pub uploads: Vec<(String, u64, f64)>,
}

impl Default for State {
    fn default() -> State {
        State {
            releases: Vec::new(),
            faults: Faults::default(),
            immutable_releases: false,
            tokens: HashMap::new(),
            cdn_lifetime: 300,
            requests: Vec::new(),
            counts: HashMap::new(),
            uploads: Vec::new(),
        }
    }
}

/// The name GitHub keeps for an upload named `name`, by this stand-in's
/// own reading of GitHub's docs ("GitHub renames asset filenames that have
/// special characters, non-alphanumeric characters, and leading or trailing
/// periods") and of what users report: accented Latin letters lose their
/// accent, any other character than letters, digits, `-`, `_` and `.`
/// becomes `.`, repeated dots become one, and dots at either end go.
pub fn github_name(name: &str) -> String {
    const ACCENTS: &[(&str, char)] = &[
        ("a", 'à'),
        ("a", 'á'),
        ("a", 'â'),
        ("a", 'ä'),
        ("a", 'ã'),
        ("a", 'å'),
        ("c", 'ç'),
        ("e", 'è'),
        ("e", 'é'),
        ("e", 'ê'),
        ("e", 'ë'),
        ("i", 'í'),
        ("i", 'ï'),
        ("i", 'î'),
        ("n", 'ñ'),
        ("o", 'ó'),
        ("o", 'ö'),
        ("o", 'ô'),
        ("u", 'ú'),
        ("u", 'ü'),
        ("u", 'û'),
        ("E", 'É'),
        ("A", 'Ä'),
        ("O", 'Ö'),
        ("U", 'Ü'),
        ("ss", 'ß'),
        ("ae", 'æ'),
        ("oe", 'ø'),
    ];
    let mut out = String::new();
    for c in name.chars() {
        match ACCENTS.iter().find(|(_, accented)| *accented == c) {
            Some((plain, _)) => out.push_str(plain),
            None if c.is_ascii_alphanumeric() || "-_.".contains(c) => out.push(c),
            None => out.push('.'),
        }
    }
    while out.contains("..") {
        out = out.replace("..", ".");
    }
    out.trim_matches('.').to_owned()
}

pub struct GitHubServer {
    pub api_url: String,
    pub uploads_url: String,
    pub owner: String,
    pub repo: String,
    pub token: String,
    pub state: Arc<Mutex<State>>,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

struct Shared {
    api_url: String,
    uploads_url: String,
    owner: String,
    repo: String,
    token: String,
    state: Arc<Mutex<State>>,
    next_id: AtomicU64,
}

impl GitHubServer {
    /// Starts both hosts on free loopback ports for `owner/repo`.
    pub async fn start(owner: &str, repo: &str, token: &str) -> GitHubServer {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uploads = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}", api.local_addr().unwrap());
        let uploads_url = format!("http://{}", uploads.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::new(Shared {
            api_url: api_url.clone(),
            uploads_url: uploads_url.clone(),
            owner: owner.into(),
            repo: repo.into(),
            token: token.into(),
            state: state.clone(),
            next_id: AtomicU64::new(1000),
        });
        let mut stop = Vec::new();
        for (listener, uploads_host) in [(api, false), (uploads, true)] {
            let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
            stop.push(sender);
            let routes = routes(shared.clone(), uploads_host);
            tokio::spawn(
                warp::serve(routes)
                    .incoming(listener)
                    .graceful(async {
                        let _ = receiver.await;
                    })
                    .run(),
            );
        }
        GitHubServer {
            api_url,
            uploads_url,
            owner: owner.into(),
            repo: repo.into(),
            token: token.into(),
            state,
            stop,
        }
    }

    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().unwrap().faults = faults;
    }

    /// Turns the repository's immutable-releases setting on or off.
    pub fn set_immutable_releases(&self, on: bool) {
        self.state.lock().unwrap().immutable_releases = on;
    }

    /// Lets `token` in with `permission`.
    pub fn add_token(&self, token: &str, permission: Permission) {
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.to_owned(), permission);
    }

    pub fn set_cdn_lifetime(&self, seconds: u64) {
        self.state.lock().unwrap().cdn_lifetime = seconds;
    }

    /// The requests so far: when, and `METHOD path`.
    pub fn requests(&self) -> Vec<(std::time::Instant, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn releases(&self) -> Vec<StoredRelease> {
        self.state.lock().unwrap().releases.clone()
    }

    pub fn count(&self, what: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        for sender in self.stop.drain(..) {
            let _ = sender.send(());
        }
    }
}

fn timestamp() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The account that uploads, as GitHub describes a user.
fn user() -> Value {
    let api = "https://api.github.com/users/shop-bot";
    json!({
        "login": "shop-bot", "id": 1, "node_id": "U_1", "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
        "gravatar_id": "", "url": api, "html_url": "https://github.com/shop-bot",
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"), "type": "User", "user_view_type": "public", "site_admin": false,
    })
}

fn json_reply(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    let mut response = Response::new(serde_json::to_vec(body).unwrap());
    *response.status_mut() = status;
    response.headers_mut().insert(
        "Content-Type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    response.headers_mut().insert(
        "X-GitHub-Api-Version-Selected",
        "2022-11-28".parse().unwrap(),
    );
    response
}

fn message(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    json_reply(
        status,
        &json!({
            "message": text,
            "documentation_url": "https://docs.github.com/rest/releases",
            "status": status.as_u16().to_string(),
        }),
    )
}

impl Shared {
    fn repo_path(&self) -> String {
        format!("repos/{}/{}", self.owner, self.repo)
    }

    fn asset_json(&self, asset: &StoredAsset) -> Value {
        let now = timestamp();
        json!({
            "url": format!("{}/{}/releases/assets/{}", self.api_url, self.repo_path(), asset.id),
            "browser_download_url": format!("https://github.com/{}/{}/releases/download/x/{}", self.owner, self.repo, asset.name),
            "id": asset.id,
            "node_id": format!("RA_{}", asset.id),
            "name": asset.name,
            "label": "",
            "state": asset.state,
            "content_type": asset.content_type,
            "size": asset.size,
            "digest": if asset.state == "uploaded" { json!(format!("sha256:{}", asset.sha256)) } else { Value::Null },
            "download_count": 0,
            "created_at": now,
            "updated_at": now,
            "uploader": user(),
        })
    }

    fn release_json(&self, release: &StoredRelease) -> Value {
        let now = timestamp();
        let base = format!(
            "{}/{}/releases/{}",
            self.api_url,
            self.repo_path(),
            release.id
        );
        json!({
            "url": base,
            "html_url": format!("https://github.com/{}/{}/releases/tag/{}", self.owner, self.repo, release.tag),
            "assets_url": format!("{base}/assets"),
            "upload_url": format!("{}/{}/releases/{}/assets{{?name,label}}", self.uploads_url, self.repo_path(), release.id),
            "tarball_url": format!("{}/{}/tarball/{}", self.api_url, self.repo_path(), release.tag),
            "zipball_url": format!("{}/{}/zipball/{}", self.api_url, self.repo_path(), release.tag),
            "id": release.id,
            "node_id": format!("RE_{}", release.id),
            "tag_name": release.tag,
            "target_commitish": "main",
            "name": release.name,
            "body": release.body,
            "draft": release.draft,
            "immutable": release.immutable,
            "prerelease": false,
            "created_at": now,
            "published_at": if release.draft { Value::Null } else { json!(now) },
            "author": user(),
            "assets": release.assets.iter().map(|asset| self.asset_json(asset)).collect::<Vec<_>>(),
        })
    }

    /// What the request's token may do; `None` without a known token.
    fn permission(&self, header: Option<&str>) -> Option<Permission> {
        let header = header?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("token "))
            .unwrap_or("");
        if token == self.token {
            return Some(Permission::Write);
        }
        self.state.lock().unwrap().tokens.get(token).copied()
    }

    fn repository_json(&self, permission: Permission) -> Value {
        let push = permission == Permission::Write;
        json!({
            "id": 1296269, "node_id": "R_1", "name": self.repo,
            "full_name": format!("{}/{}", self.owner, self.repo),
            "owner": user(), "private": true,
            "html_url": format!("https://github.com/{}/{}", self.owner, self.repo),
            "description": null, "fork": false,
            "url": format!("{}/{}", self.api_url, self.repo_path()),
            "default_branch": "main", "visibility": "private",
            "permissions": {"admin": push, "maintain": push, "push": push, "triage": push, "pull": true},
        })
    }

    fn count(&self, what: &'static str) {
        *self.state.lock().unwrap().counts.entry(what).or_default() += 1;
    }
}

fn routes(
    shared: Arc<Shared>,
    uploads_host: bool,
) -> impl Filter<Extract = (Response<Vec<u8>>,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || shared.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("accept"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("range"))
        .and(warp::body::stream())
        .then(
            move |shared: Arc<Shared>,
                  method,
                  path: warp::path::FullPath,
                  query: String,
                  auth: Option<String>,
                  accept: Option<String>,
                  length: Option<u64>,
                  content_type: Option<String>,
                  range: Option<String>,
                  body| async move {
                handle(
                    shared,
                    uploads_host,
                    method,
                    path.as_str().to_owned(),
                    query,
                    Headers {
                        auth,
                        accept,
                        length,
                        content_type,
                        range,
                    },
                    body,
                )
                .await
            },
        )
}

/// The request headers the local GitHub reads.
struct Headers {
    auth: Option<String>,
    accept: Option<String>,
    length: Option<u64>,
    content_type: Option<String>,
    range: Option<String>,
}

async fn handle(
    shared: Arc<Shared>,
    uploads_host: bool,
    method: warp::http::Method,
    path: String,
    query: String,
    headers: Headers,
    body: impl futures_util::Stream<Item = Result<impl warp::Buf, warp::Error>> + Unpin,
) -> Response<Vec<u8>> {
    let Headers {
        auth,
        accept,
        length,
        content_type,
        range,
    } = headers;
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The short-lived download URL needs no token, like GitHub's CDN,
    // and refuses one (its signature is the only authorization it takes).
    if let ["_cdn", id] = segments.as_slice() {
        return cdn(&shared, id, &query, auth.is_some(), range.as_deref());
    }
    if let ["_uploads"] = segments.as_slice() {
        let uploads = shared.state.lock().unwrap().uploads.clone();
        let rows: Vec<Value> = uploads
            .iter()
            .map(|(name, bytes, seconds)| json!({"name": name, "bytes": bytes, "seconds": seconds}))
            .collect();
        return json_reply(StatusCode::OK, &Value::Array(rows));
    }
    {
        let mut state = shared.state.lock().unwrap();
        state
            .requests
            .push((std::time::Instant::now(), format!("{method} {path}")));
        let applies = state
            .faults
            .refusals_for
            .as_ref()
            .is_none_or(|part| format!("{method} {path}").contains(part.as_str()));
        if applies && !state.faults.refusals.is_empty() {
            let refusal = state.faults.refusals.remove(0);
            return refuse(refusal);
        }
    }
    let Some(permission) = shared.permission(auth.as_deref()) else {
        return message(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let Some(rest) =
        segments.strip_prefix(&["repos", shared.owner.as_str(), shared.repo.as_str()][..])
    else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    // A private repository is invisible to a token without access.
    if permission == Permission::None {
        return message(StatusCode::NOT_FOUND, "Not Found");
    }
    if permission == Permission::Read && method != warp::http::Method::GET {
        return message(
            StatusCode::FORBIDDEN,
            "Resource not accessible by personal access token",
        );
    }
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = method == warp::http::Method::GET;
    let post = method == warp::http::Method::POST;
    let patch = method == warp::http::Method::PATCH;
    let delete = method == warp::http::Method::DELETE;
    if uploads_host {
        return match rest {
            ["releases", id, "assets"] if post => {
                upload(&shared, id, &params, length, content_type, body).await
            }
            _ => message(StatusCode::NOT_FOUND, "Not Found"),
        };
    }
    match rest {
        [] if get => {
            shared.count("get_repository");
            json_reply(StatusCode::OK, &shared.repository_json(permission))
        }
        ["immutable-releases"] if get => {
            shared.count("get_immutable_releases");
            if shared.state.lock().unwrap().immutable_releases {
                json_reply(
                    StatusCode::OK,
                    &json!({"enabled": true, "enforced_by_owner": false}),
                )
            } else {
                message(StatusCode::NOT_FOUND, "Not Found")
            }
        }
        ["releases", id] if patch => update_release(&shared, id, body).await,
        ["releases"] if get => {
            shared.count("list_releases");
            let releases = shared.state.lock().unwrap().releases.clone();
            let page = page_of(&releases, &params);
            json_reply(
                StatusCode::OK,
                &Value::Array(page.iter().rev().map(|r| shared.release_json(r)).collect()),
            )
        }
        ["releases"] if post => create_release(&shared, body).await,
        ["releases", "tags", tag] => {
            shared.count("get_release_by_tag");
            let state = shared.state.lock().unwrap();
            // Drafts have no tag yet: they are only listed.
            match state
                .releases
                .iter()
                .find(|release| release.tag == *tag && !release.draft)
            {
                Some(release) => json_reply(StatusCode::OK, &shared.release_json(release)),
                None => message(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        ["releases", "assets", id] if get => {
            shared.count("get_asset");
            let id: u64 = id.parse().unwrap_or(0);
            let state = shared.state.lock().unwrap();
            let Some(asset) = state
                .releases
                .iter()
                .flat_map(|r| &r.assets)
                .find(|a| a.id == id)
            else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            if accept.as_deref() == Some("application/octet-stream") {
                if state.faults.download_bodies {
                    let mut response = Response::new(asset.bytes.clone().unwrap_or_default());
                    response
                        .headers_mut()
                        .insert("Content-Type", "application/octet-stream".parse().unwrap());
                    return response;
                }
                // As GitHub's CDN: an Azure-style SAS URL whose `se` says
                // when it stops working.
                let expires = time::OffsetDateTime::now_utc()
                    + time::Duration::seconds(state.cdn_lifetime as i64);
                let se = expires
                    .replace_nanosecond(0)
                    .unwrap()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
                    .replace(':', "%3A");
                let location = format!(
                    "{}/_cdn/{id}?sp=r&sv=2018-11-09&sr=b&se={se}&sig=sig{id}x{}",
                    shared.api_url,
                    expires.unix_timestamp()
                );
                let mut response = Response::new(Vec::new());
                *response.status_mut() = StatusCode::FOUND;
                response
                    .headers_mut()
                    .insert("Location", location.parse().unwrap());
                return response;
            }
            json_reply(StatusCode::OK, &shared.asset_json(asset))
        }
        ["releases", "assets", id] if delete => {
            shared.count("delete_asset");
            let id: u64 = id.parse().unwrap_or(0);
            let mut state = shared.state.lock().unwrap();
            for release in &mut state.releases {
                if let Some(index) = release.assets.iter().position(|a| a.id == id) {
                    if release.immutable {
                        return message(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Cannot delete assets from an immutable release",
                        );
                    }
                    release.assets.remove(index);
                    let mut response = Response::new(Vec::new());
                    *response.status_mut() = StatusCode::NO_CONTENT;
                    return response;
                }
            }
            message(StatusCode::NOT_FOUND, "Not Found")
        }
        ["releases", id, "assets"] if get => {
            shared.count("list_assets");
            let id: u64 = id.parse().unwrap_or(0);
            let state = shared.state.lock().unwrap();
            match state.releases.iter().find(|r| r.id == id) {
                Some(release) => {
                    let page = page_of(&release.assets, &params);
                    json_reply(
                        StatusCode::OK,
                        &Value::Array(page.iter().map(|a| shared.asset_json(a)).collect()),
                    )
                }
                None => message(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn refuse(refusal: Refusal) -> Response<Vec<u8>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut response = match refusal {
        Refusal::Secondary { .. } => message(
            StatusCode::FORBIDDEN,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
        ),
        Refusal::Primary { .. } => message(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
        ),
        Refusal::TooMany { .. } => message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        Refusal::BadGateway => {
            let mut response =
                Response::new(b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let headers = response.headers_mut();
    let (remaining, reset, retry_after) = match refusal {
        Refusal::Secondary { retry_after } => (4000, now + 3600, retry_after),
        Refusal::Primary { reset_in } => (0, now + reset_in as i64, None),
        Refusal::TooMany { retry_after } => (4000, now + 3600, Some(retry_after)),
        Refusal::BadGateway => unreachable!(),
    };
    headers.insert("x-ratelimit-limit", "5000".parse().unwrap());
    headers.insert(
        "x-ratelimit-remaining",
        remaining.to_string().parse().unwrap(),
    );
    headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
    headers.insert("x-ratelimit-resource", "core".parse().unwrap());
    if let Some(seconds) = retry_after {
        headers.insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

fn validation_failed(errors: Value, docs: &str) -> Response<Vec<u8>> {
    json_reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": format!("https://docs.github.com/rest/releases/{docs}"),
            "status": "422",
        }),
    )
}

/// `PATCH …/releases/{id}`: publishing a draft makes its tag, and in a
/// repository with immutable releases makes it immutable.
async fn update_release(
    shared: &Shared,
    id: &str,
    body: impl futures_util::Stream<Item = Result<impl warp::Buf, warp::Error>> + Unpin,
) -> Response<Vec<u8>> {
    shared.count("update_release");
    let input: Value = match serde_json::from_slice(&read_all(body).await) {
        Ok(value) => value,
        Err(_) => return message(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
    };
    let id: u64 = id.parse().unwrap_or(0);
    let mut state = shared.state.lock().unwrap();
    let immutable_setting = state.immutable_releases;
    let Some(release) = state.releases.iter_mut().find(|r| r.id == id) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    if release.immutable {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Cannot modify an immutable release",
        );
    }
    if input["draft"] == json!(false) && release.draft {
        release.draft = false;
        release.immutable = immutable_setting;
    }
    if let Some(body) = input["body"].as_str() {
        release.body = body.to_owned();
    }
    let release = release.clone();
    json_reply(StatusCode::OK, &shared.release_json(&release))
}

fn page_of<'a, T>(items: &'a [T], params: &HashMap<String, String>) -> &'a [T] {
    let per_page: usize = params
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = params
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    &items[start..end]
}

async fn read_all(
    mut body: impl futures_util::Stream<Item = Result<impl warp::Buf, warp::Error>> + Unpin,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(Ok(mut chunk)) = body.next().await {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
    }
    bytes
}

async fn create_release(
    shared: &Shared,
    body: impl futures_util::Stream<Item = Result<impl warp::Buf, warp::Error>> + Unpin,
) -> Response<Vec<u8>> {
    shared.count("create_release");
    let input: Value = match serde_json::from_slice(&read_all(body).await) {
        Ok(value) => value,
        Err(_) => return message(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
    };
    let docs = "releases#create-a-release";
    let Some(tag) = input["tag_name"].as_str().filter(|tag| !tag.is_empty()) else {
        return validation_failed(
            json!([{"resource": "Release", "code": "missing_field", "field": "tag_name"}]),
            docs,
        );
    };
    let mut state = shared.state.lock().unwrap();
    // Drafts do not hold their tag: only a published release does.
    if state
        .releases
        .iter()
        .any(|release| release.tag == tag && !release.draft)
    {
        return validation_failed(
            json!([{"resource": "Release", "code": "already_exists", "field": "tag_name"}]),
            docs,
        );
    }
    let draft = input["draft"].as_bool().unwrap_or(false);
    let release = StoredRelease {
        id: shared.next_id.fetch_add(1, Ordering::SeqCst),
        tag: tag.to_owned(),
        name: input["name"].as_str().unwrap_or(tag).to_owned(),
        body: input["body"].as_str().unwrap_or_default().to_owned(),
        draft,
        immutable: !draft && state.immutable_releases,
        assets: Vec::new(),
    };
    state.releases.push(release.clone());
    if std::mem::take(&mut state.faults.lose_create_release) {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error");
    }
    let mut response = json_reply(StatusCode::CREATED, &shared.release_json(&release));
    response.headers_mut().insert(
        "Location",
        format!(
            "{}/{}/releases/{}",
            shared.api_url,
            shared.repo_path(),
            release.id
        )
        .parse()
        .unwrap(),
    );
    response
}

async fn upload(
    shared: &Shared,
    release_id: &str,
    params: &HashMap<String, String>,
    length: Option<u64>,
    content_type: Option<String>,
    mut body: impl futures_util::Stream<Item = Result<impl warp::Buf, warp::Error>> + Unpin,
) -> Response<Vec<u8>> {
    shared.count("upload");
    let release_id: u64 = release_id.parse().unwrap_or(0);
    let docs = "assets#upload-a-release-asset";
    let Some(name) = params.get("name").filter(|name| !name.is_empty()) else {
        return validation_failed(
            json!([{"resource": "ReleaseAsset", "code": "missing_field", "field": "name"}]),
            docs,
        );
    };
    let name = github_name(name);
    let Some(length) = length else {
        return message(StatusCode::LENGTH_REQUIRED, "Content-Length required");
    };
    // Answered from the header, before any byte of the body is read.
    if length > MAX_ASSET {
        return validation_failed(
            json!([{"resource": "ReleaseAsset", "code": "custom", "field": "size",
                    "message": "size must be less than or equal to 2147483648"}]),
            docs,
        );
    }
    let faults = {
        let mut state = shared.state.lock().unwrap();
        let Some(release) = state.releases.iter().find(|r| r.id == release_id) else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        if release.immutable {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Cannot upload assets to an immutable release.",
            );
        }
        if release.assets.iter().any(|asset| asset.name == name) {
            return validation_failed(
                json!([{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]),
                docs,
            );
        }
        let faults = state.faults.clone();
        state.faults.break_upload_after = None;
        state.faults.lose_upload_answer = false;
        faults
    };
    let started = std::time::Instant::now();
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
    let mut asset = StoredAsset {
        id,
        name,
        size: 0,
        sha256: String::new(),
        state: "starter".into(),
        content_type,
        bytes: None,
    };
    let mut hasher = Sha256::new();
    let mut kept = (length <= KEEP_BYTES).then(Vec::new);
    let mut received = 0u64;
    let mut since_delay = 0u64;
    while let Some(chunk) = body.next().await {
        let Ok(mut chunk) = chunk else { break };
        while chunk.has_remaining() {
            let part = chunk.chunk();
            hasher.update(part);
            if let Some(kept) = &mut kept {
                kept.extend_from_slice(part);
            }
            let len = part.len();
            received += len as u64;
            since_delay += len as u64;
            chunk.advance(len);
        }
        if faults.upload_delay_ms > 0 && since_delay >= 256 * 1024 {
            since_delay = 0;
            tokio::time::sleep(std::time::Duration::from_millis(faults.upload_delay_ms)).await;
        }
        if let Some(limit) = faults.break_upload_after
            && received >= limit
        {
            asset.size = received;
            shared
                .state
                .lock()
                .unwrap()
                .releases
                .iter_mut()
                .find(|r| r.id == release_id)
                .unwrap()
                .assets
                .push(asset);
            return message(StatusCode::BAD_GATEWAY, "Bad Gateway");
        }
    }
    asset.size = received;
    if received != length {
        // The connection ended early: GitHub keeps a `starter` asset.
        shared
            .state
            .lock()
            .unwrap()
            .releases
            .iter_mut()
            .find(|r| r.id == release_id)
            .unwrap()
            .assets
            .push(asset);
        return message(
            StatusCode::BAD_REQUEST,
            "Body does not match Content-Length",
        );
    }
    shared.state.lock().unwrap().uploads.push((
        asset.name.clone(),
        received,
        started.elapsed().as_secs_f64(),
    ));
    asset.state = "uploaded".into();
    asset.sha256 = hex::encode(hasher.finalize());
    asset.bytes = kept;
    let json = shared.asset_json(&asset);
    if let Some(release) = shared
        .state
        .lock()
        .unwrap()
        .releases
        .iter_mut()
        .find(|r| r.id == release_id)
    {
        release.assets.push(asset);
    }
    if faults.lose_upload_answer {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error");
    }
    json_reply(StatusCode::CREATED, &json)
}

/// The CDN behind a release asset's short-lived URL. As the blob store
/// behind it, it serves one byte range (`Range: bytes=a-b`, `a-` or `-n`)
/// as 206 with `Content-Range`, answers 416 for a range that starts past
/// the end, and ignores a header it does not take (several ranges, or not
/// bytes): the whole file, 200.
/// One byte range of a file of `size` bytes: `Some(Ok((first, last)))`,
/// `Some(Err(()))` when it starts past the end, `None` when the header is
/// not one byte range (the blob store then sends the whole file).
fn byte_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 {
            return Some(Err(()));
        }
        return Some(Ok((size.saturating_sub(suffix), size.checked_sub(1)?)));
    }
    let first: u64 = first.parse().ok()?;
    let last = match last {
        "" => size.saturating_sub(1),
        last => last.parse::<u64>().ok()?.min(size.saturating_sub(1)),
    };
    if first >= size {
        return Some(Err(()));
    }
    (first <= last).then_some(Ok((first, last)))
}

fn cdn(
    shared: &Shared,
    id: &str,
    query: &str,
    authorization: bool,
    range: Option<&str>,
) -> Response<Vec<u8>> {
    let id: u64 = id.parse().unwrap_or(0);
    if authorization {
        let mut response = Response::new(
            b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified</Message></Error>"
                .to_vec(),
        );
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    }
    let expires: i64 = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="))
        .and_then(|value| value.rsplit_once('x'))
        .and_then(|(_, at)| at.parse().ok())
        .unwrap_or(0);
    if expires < time::OffsetDateTime::now_utc().unix_timestamp()
        || !query.contains(&format!("sig=sig{id}x{expires}"))
    {
        let mut response = Response::new(
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                .to_vec(),
        );
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    let mut state = shared.state.lock().unwrap();
    let found = state
        .releases
        .iter()
        .flat_map(|r| &r.assets)
        .find(|a| a.id == id)
        .and_then(|a| a.bytes.clone());
    match found {
        Some(bytes) => {
            let size = bytes.len() as u64;
            let span = range.and_then(|range| byte_range(range, size));
            *state.counts.entry("cdn").or_default() += 1;
            if span.is_some() {
                *state.counts.entry("cdn range").or_default() += 1;
            }
            let mut response = match span {
                Some(Err(())) => {
                    let mut response = Response::new(Vec::new());
                    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                    response
                        .headers_mut()
                        .insert("Content-Range", format!("bytes */{size}").parse().unwrap());
                    return response;
                }
                Some(Ok((start, end))) => {
                    let mut response = Response::new(bytes[start as usize..=end as usize].to_vec());
                    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                    response.headers_mut().insert(
                        "Content-Range",
                        format!("bytes {start}-{end}/{size}").parse().unwrap(),
                    );
                    response
                }
                None => Response::new(bytes),
            };
            response
                .headers_mut()
                .insert("Content-Type", "application/octet-stream".parse().unwrap());
            response
                .headers_mut()
                .insert("Accept-Ranges", "bytes".parse().unwrap());
            response
        }
        None => {
            let mut response = Response::new(Vec::new());
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

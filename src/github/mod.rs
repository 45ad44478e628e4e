//! Releases and their assets in the private GitHub repository that holds
//! the paid files, as GitHub really behaves.
//!
//! Requests go through octocrab's raw calls (its automatic retries are
//! off: they re-send POSTs and ignore `Retry-After`), so that every answer's
//! headers are seen: a rate-limited request (a 429, or a 403 that says so)
//! was not carried out, and is sent again once GitHub's `Retry-After` or
//! `x-ratelimit-reset` has passed, within a bounded wait that the caller is
//! told of. A request whose answer was lost is never sent blindly again: a
//! re-run finds what it made. Uploads are streamed from disk with reqwest
//! (octocrab's `upload_asset` holds the whole file in memory), so memory
//! stays flat and progress follows the bytes. Both hosts are parameters
//! (`SHOP_GITHUB_API_BASE`, `SHOP_GITHUB_UPLOADS_BASE`), so tests run
//! against a local server.
//!
//! GitHub renames asset names ([`stored_name`]): what a release records is
//! the name GitHub keeps, and its asset id.

mod error;
mod wire;

pub use error::GitHubError;
use error::unreachable;
pub use wire::url_expiry;
use wire::{first_line, github_message, rate_limited, read_in_chunks, upload_target};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::retry::Backoff;
use crate::secret::Secret;
use crate::{net, retry};

/// GitHub's largest release asset.
pub const MAX_ASSET_SIZE: u64 = 2 * 1024 * 1024 * 1024;

/// The API version every request pins.
const API_VERSION: &str = "2022-11-28";

/// The wait before an idempotent request that failed on the way or on
/// GitHub's side (5xx) is sent again.
const RETRY: retry::Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));

/// A release as `shop` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub id: u64,
    pub tag: String,
    pub draft: bool,
    /// Published in a repository with immutable releases: its assets and
    /// tag can no longer change.
    pub immutable: bool,
    /// GitHub's template, such as `https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}`.
    pub upload_url: String,
    pub assets: Vec<Asset>,
}

/// A release asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub id: u64,
    /// The name GitHub stores, which may differ from the one sent.
    pub name: String,
    pub size: u64,
    /// `uploaded`, or `starter` for an upload that never finished.
    pub state: String,
    /// GitHub's `sha256:<hex>` digest, when it gives one.
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
struct RawAsset {
    id: u64,
    name: String,
    size: u64,
    state: String,
    #[serde(default)]
    digest: Option<String>,
}

impl From<RawAsset> for Asset {
    fn from(raw: RawAsset) -> Asset {
        Asset {
            id: raw.id,
            name: raw.name,
            size: raw.size,
            state: raw.state,
            sha256: raw
                .digest
                .as_deref()
                .and_then(|digest| digest.strip_prefix("sha256:"))
                .map(str::to_owned),
        }
    }
}

#[derive(Deserialize)]
struct RawRelease {
    id: u64,
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    immutable: bool,
    upload_url: String,
}

/// What the token may do with the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub private: bool,
    /// Whether the token may write (create releases and upload assets).
    pub push: bool,
}

/// Where a buyer gets an asset's bytes.
#[derive(Debug)]
pub enum Download {
    /// GitHub's short-lived URL, and when it stops working if it says.
    Redirect {
        url: String,
        expires: Option<SystemTime>,
    },
    /// GitHub answered with the bytes themselves (its description allows a
    /// 200): to be streamed through.
    Body {
        length: Option<u64>,
        response: reqwest::Response,
    },
}

/// How long a command may wait for a rate limit before giving up.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub max_wait: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            max_wait: Duration::from_secs(15 * 60),
        }
    }
}

/// Told when a request waits for a rate limit: what, and until when.
pub type OnWait = Arc<dyn Fn(&str, SystemTime) + Send + Sync>;

/// A client for one repository.
#[derive(Clone)]
pub struct GitHub {
    octocrab: Octocrab,
    http: reqwest::Client,
    owner: String,
    repo: String,
    token: Secret,
    api_base: String,
    uploads_base: String,
    patience: Patience,
    on_wait: Option<OnWait>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("repository", &self.repository())
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// The name GitHub keeps for an asset uploaded as `name`: letters with
/// accents lose them (`é` → `e`, `æ` → `ae`), every run of other
/// characters than ASCII letters, digits, `-`, `_` and `.` becomes one `.`,
/// runs of dots become one, and leading and trailing dots go (GitHub's
/// docs: it "renames asset filenames that have special characters,
/// non-alphanumeric characters, and leading or trailing periods"; the
/// cases are those users have observed).
pub fn stored_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            out.push(c);
        } else if c.is_alphabetic() {
            let ascii = deunicode::deunicode_char(c).unwrap_or(".");
            if ascii.chars().all(|a| a.is_ascii_alphanumeric()) && !ascii.is_empty() {
                // A lower-case letter stays lower-case (deunicode spells `ŋ` `NG`).
                if c.is_lowercase() {
                    out.push_str(&ascii.to_ascii_lowercase());
                } else {
                    out.push_str(ascii);
                }
            } else {
                out.push('.');
            }
        } else {
            out.push('.');
        }
    }
    let mut collapsed = String::with_capacity(out.len());
    for c in out.chars() {
        if c == '.' && collapsed.ends_with('.') {
            continue;
        }
        collapsed.push(c);
    }
    collapsed.trim_matches('.').to_owned()
}

impl GitHub {
    /// A client for `repository` (`owner/name`) at these hosts. Call it
    /// inside a tokio runtime: octocrab's client starts a task when built.
    pub fn new(
        repository: &str,
        token: Secret,
        api_base: &str,
        uploads_base: &str,
    ) -> Result<GitHub, GitHubError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GitHubError::Setup(
                "the GitHub client was built outside an async runtime (a bug in shop)".into(),
            ));
        }
        net::install_crypto_provider();
        let (owner, repo) = repository
            .split_once('/')
            .ok_or_else(|| GitHubError::Setup(format!("`{repository}` is not `owner/name`")))?;
        let octocrab = Octocrab::builder()
            .personal_token(token.expose().to_owned())
            .base_uri(api_base.trim_end_matches('/'))
            .and_then(|builder| builder.upload_uri(uploads_base.trim_end_matches('/')))
            .and_then(|builder| builder.build())
            .map_err(|error| {
                GitHubError::Setup(format!(
                    "cannot set up the GitHub client for `{api_base}`: {error}"
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("shop/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                GitHubError::Setup(format!("cannot set up the HTTP client: {error}"))
            })?;
        Ok(GitHub {
            octocrab,
            http,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            token,
            api_base: api_base.trim_end_matches('/').to_owned(),
            uploads_base: uploads_base.trim_end_matches('/').to_owned(),
            patience: Patience::default(),
            on_wait: None,
        })
    }

    /// How long to wait for rate limits, and whom to tell.
    pub fn with_patience(mut self, patience: Patience, on_wait: Option<OnWait>) -> GitHub {
        self.patience = patience;
        self.on_wait = on_wait;
        self
    }

    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/repos/{}/{}{path}", self.api_base, self.owner, self.repo)
    }

    /// Sends a request; waits out rate limits (the request was refused, so
    /// sending it again is safe, POSTs too) and retries an idempotent one
    /// that failed on GitHub's side. Answers with anything else as it is.
    async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, http::HeaderMap, Bytes), GitHubError> {
        let idempotent = method != reqwest::Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "X-GitHub-Api-Version",
                http::HeaderValue::from_static(API_VERSION),
            );
            headers.insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/vnd.github+json"),
            );
            let sent = match method.as_str() {
                "GET" => self.octocrab._get_with_headers(url, Some(headers)).await,
                "POST" => self.octocrab._post(url, body).await,
                "PATCH" => self.octocrab._patch(url, body).await,
                "DELETE" => self.octocrab._delete(url, body).await,
                other => {
                    return Err(GitHubError::Setup(format!(
                        "unsupported method {other} (a bug in shop)"
                    )));
                }
            };
            let response = match sent {
                Ok(response) => response,
                Err(error) if idempotent && attempt < 3 => {
                    tracing::debug!("GitHub request to {what} failed, retrying: {error}");
                    tokio::time::sleep(RETRY.delay(attempt)).await;
                    continue;
                }
                Err(error) => {
                    return Err(GitHubError::Unreachable {
                        what: what.to_owned(),
                        reason: first_line(&error.to_string()).to_owned(),
                    });
                }
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            if let Some(until) = rate_limited(status, &headers, &body, SystemTime::now()) {
                let wait = until
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                if wait > self.patience.max_wait || attempt >= 4 {
                    return Err(GitHubError::RateLimited {
                        what: what.to_owned(),
                        until,
                    });
                }
                if let Some(on_wait) = &self.on_wait {
                    on_wait(what, until);
                }
                tracing::info!("GitHub's rate limit: waiting {wait:?} to {what}");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status >= 500 && idempotent && attempt < 3 {
                tokio::time::sleep(RETRY.delay(attempt)).await;
                continue;
            }
            return Ok((status, headers, body));
        }
    }

    /// Checks the answer of `what`; decodes it when it succeeded.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        status: u16,
        body: &[u8],
    ) -> Result<T, GitHubError> {
        if !(200..300).contains(&status) {
            return Err(self.refusal(what, status, body));
        }
        serde_json::from_slice(body).map_err(|error| {
            GitHubError::Setup(format!(
                "GitHub's answer to {what} is not what shop expects: {error}"
            ))
        })
    }

    fn refusal(&self, what: &str, status: u16, body: &[u8]) -> GitHubError {
        let (message, reasons) = github_message(body);
        GitHubError::Api {
            what: what.to_owned(),
            status,
            message,
            reasons,
            repository: self.repository(),
        }
    }

    /// What the token may do with the repository. A private repository
    /// answers 404 to a token that cannot see it.
    pub async fn access(&self) -> Result<Access, GitHubError> {
        #[derive(Deserialize)]
        struct Repository {
            #[serde(default)]
            private: bool,
            #[serde(default)]
            permissions: Option<Permissions>,
        }
        #[derive(Deserialize)]
        struct Permissions {
            #[serde(default)]
            push: bool,
        }
        let what = "read the repository";
        let (status, _, body) = self
            .send(what, reqwest::Method::GET, &self.url(""), None)
            .await?;
        let repository: Repository = self.decode(what, status, &body)?;
        Ok(Access {
            private: repository.private,
            push: repository.permissions.is_some_and(|p| p.push),
        })
    }

    /// Whether the repository makes published releases immutable.
    pub async fn immutable_releases(&self) -> Result<bool, GitHubError> {
        let what = "read the repository's immutable-releases setting";
        let (status, _, body) = self
            .send(
                what,
                reqwest::Method::GET,
                &self.url("/immutable-releases"),
                None,
            )
            .await?;
        if status == 404 {
            return Ok(false);
        }
        let setting: Value = self.decode(what, status, &body)?;
        Ok(setting["enabled"].as_bool().unwrap_or(false))
    }

    /// The release with this tag, published or a draft (drafts are not
    /// found by tag: they are listed).
    pub async fn release_by_tag(&self, tag: &str) -> Result<Option<Release>, GitHubError> {
        let what = "look up the release";
        let url = self.url(&format!("/releases/tags/{}", net::encode_component(tag)));
        let (status, _, body) = self.send(what, reqwest::Method::GET, &url, None).await?;
        if status != 404 {
            let raw: RawRelease = self.decode(what, status, &body)?;
            return Ok(Some(self.release_from(raw).await?));
        }
        let mut page = 1;
        loop {
            let url = self.url(&format!("/releases?per_page=100&page={page}"));
            let (status, _, body) = self
                .send("list the releases", reqwest::Method::GET, &url, None)
                .await?;
            let releases: Vec<RawRelease> = self.decode("list the releases", status, &body)?;
            let count = releases.len();
            if let Some(raw) = releases.into_iter().find(|r| r.tag_name == tag) {
                return Ok(Some(self.release_from(raw).await?));
            }
            if count < 100 {
                return Ok(None);
            }
            page += 1;
        }
    }

    /// Creates a draft release with this tag: assets are uploaded to it,
    /// then it is published (which works whether or not the repository's
    /// releases are immutable).
    pub async fn create_draft(
        &self,
        tag: &str,
        name: &str,
        body: &str,
    ) -> Result<Release, GitHubError> {
        let what = "create the release";
        let request = json!({"tag_name": tag, "name": name, "body": body, "draft": true, "prerelease": false});
        let (status, _, answer) = self
            .send(
                what,
                reqwest::Method::POST,
                &self.url("/releases"),
                Some(&request),
            )
            .await?;
        let raw: RawRelease = self.decode(what, status, &answer)?;
        self.release_from(raw).await
    }

    /// Publishes a draft: the tag is made, and in a repository with
    /// immutable releases its assets are final.
    pub async fn publish(&self, release: u64) -> Result<Release, GitHubError> {
        let what = "publish the release";
        let (status, _, answer) = self
            .send(
                what,
                reqwest::Method::PATCH,
                &self.url(&format!("/releases/{release}")),
                Some(&json!({"draft": false})),
            )
            .await?;
        let raw: RawRelease = self.decode(what, status, &answer)?;
        self.release_from(raw).await
    }

    async fn release_from(&self, raw: RawRelease) -> Result<Release, GitHubError> {
        Ok(Release {
            id: raw.id,
            tag: raw.tag_name,
            draft: raw.draft,
            immutable: raw.immutable,
            upload_url: raw.upload_url,
            assets: self.assets(raw.id).await?,
        })
    }

    /// Every asset of a release.
    pub async fn assets(&self, release: u64) -> Result<Vec<Asset>, GitHubError> {
        let what = "list the release's assets";
        let mut assets = Vec::new();
        let mut page = 1u32;
        loop {
            let url = self.url(&format!(
                "/releases/{release}/assets?per_page=100&page={page}"
            ));
            let (status, _, body) = self.send(what, reqwest::Method::GET, &url, None).await?;
            let listed: Vec<RawAsset> = self.decode(what, status, &body)?;
            let count = listed.len();
            assets.extend(listed.into_iter().map(Asset::from));
            if count < 100 {
                return Ok(assets);
            }
            page += 1;
        }
    }

    pub async fn delete_asset(&self, id: u64) -> Result<(), GitHubError> {
        let what = "delete an asset";
        let (status, _, body) = self
            .send(
                what,
                reqwest::Method::DELETE,
                &self.url(&format!("/releases/assets/{id}")),
                None,
            )
            .await?;
        if status == 204 || status == 404 {
            return Ok(());
        }
        Err(self.refusal(what, status, &body))
    }

    /// Streams the file at `path` as asset `name` of `release`, calling
    /// `progress` with each chunk's length as it is sent. A rate-limited
    /// upload is sent again (GitHub took none of it).
    pub async fn upload_asset(
        &self,
        release: &Release,
        path: &Path,
        name: &str,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Asset, GitHubError> {
        let what = format!("upload `{name}`");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (size, chunks) = read_in_chunks(path)?;
            let report = progress.clone();
            let stream = chunks.map(move |chunk| {
                if let Ok(bytes) = &chunk {
                    report(bytes.len() as u64);
                }
                chunk
            });
            let url = upload_target(&self.uploads_base, &release.upload_url, name);
            let response = self
                .http
                .post(&url)
                .bearer_auth(self.token.expose())
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", API_VERSION)
                .header("Content-Type", net::content_type(name))
                .header("Content-Length", size)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
                .map_err(|error| GitHubError::Unreachable {
                    what: what.clone(),
                    reason: error.to_string(),
                })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            if let Some(until) = rate_limited(status, &headers, &body, SystemTime::now()) {
                let wait = until
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                if wait > self.patience.max_wait || attempt >= 4 {
                    return Err(GitHubError::RateLimited { what, until });
                }
                if let Some(on_wait) = &self.on_wait {
                    on_wait(&what, until);
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let raw: RawAsset = self.decode(&what, status, &body)?;
            return Ok(Asset::from(raw));
        }
    }

    /// Where a buyer gets asset `asset`: GitHub's short-lived URL (the
    /// `Location` of its 302, not followed), or its bytes when it answers
    /// with them. Rate limits are not waited for here: a buyer is waiting.
    /// Fetches an asset's bytes from the short-lived URL GitHub gave (no
    /// token: the URL is the credential, and the CDN refuses one).
    pub async fn fetch_url(&self, url: &str) -> Result<reqwest::Response, GitHubError> {
        let what = "fetch a release asset";
        let response = self.http.get(url).send().await.map_err(unreachable(what))?;
        if !response.status().is_success() {
            return Err(GitHubError::Unreachable {
                what: what.into(),
                reason: format!("the file's URL answered {}", response.status()),
            });
        }
        Ok(response)
    }

    pub async fn asset_download(&self, asset: u64) -> Result<Download, GitHubError> {
        let what = "fetch an asset's download link";
        let url = self.url(&format!("/releases/assets/{asset}"));
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/octet-stream")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(unreachable(what))?;
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
        {
            return Ok(Download::Redirect {
                url: location.to_owned(),
                expires: url_expiry(location),
            });
        }
        if status.is_success() {
            return Ok(Download::Body {
                length: response.content_length(),
                response,
            });
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        if let Some(until) = rate_limited(status.as_u16(), &headers, &body, SystemTime::now()) {
            return Err(GitHubError::RateLimited {
                what: what.into(),
                until,
            });
        }
        Err(self.refusal(what, status.as_u16(), &body))
    }
}

impl GitHub {
    /// `length` bytes from `start` of the file at `url`, GitHub's
    /// short-lived download URL (its CDN takes no token). The CDN answers a
    /// byte range with 206; should it send the whole file (200), the
    /// answer says how many bytes to skip.
    pub async fn cdn_range(
        &self,
        url: &str,
        start: u64,
        length: u64,
    ) -> Result<Ranged, GitHubError> {
        let what = "fetch part of an asset from its download link";
        let last = start + length.max(1) - 1;
        let response = self
            .http
            .get(url)
            .header("Range", format!("bytes={start}-{last}"))
            .send()
            .await
            .map_err(unreachable(what))?;
        let status = response.status().as_u16();
        let ranged = response
            .headers()
            .get("content-range")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with(&format!("bytes {start}-{last}/")));
        match status {
            206 if ranged => Ok(Ranged { response, skip: 0 }),
            200 => Ok(Ranged {
                response,
                skip: start,
            }),
            _ => {
                let body = response.bytes().await.unwrap_or_default();
                Err(self.refusal(what, status, &body))
            }
        }
    }
}

/// A part of an asset from the CDN: its answer, after `skip` bytes.
#[derive(Debug)]
pub struct Ranged {
    pub response: reqwest::Response,
    pub skip: u64,
}

#[cfg(test)]
mod tests {
    use super::error::unix;
    use super::*;

    #[test]
    fn upload_targets_use_the_template_path_on_the_configured_host() {
        assert_eq!(
            upload_target(
                "http://127.0.0.1:2",
                "https://uploads.github.com/repos/o/r/releases/7/assets{?name,label}",
                "my book.pdf"
            ),
            "http://127.0.0.1:2/repos/o/r/releases/7/assets?name=my%20book.pdf"
        );
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(crate::net::content_type("a.EPUB"), "application/epub+zip");
        assert_eq!(
            crate::net::content_type("noext"),
            "application/octet-stream"
        );
    }

    /// The cases users have seen GitHub rename.
    #[test]
    fn names_are_predicted_as_github_stores_them() {
        for (sent, stored) in [
            ("my book.pdf", "my.book.pdf"),
            (
                "tobwen-1.1.0-1~buster_amd64.deb",
                "tobwen-1.1.0-1.buster_amd64.deb",
            ),
            (
                "app-v1.3.0-(15-5)-6064eac.apk",
                "app-v1.3.0-.15-5.-6064eac.apk",
            ),
            ("a5_ð_æ_©_ŋ.txt", "a5_d_ae_._ng.txt"),
            ("Café.epub", "Cafe.epub"),
            (".hidden.", "hidden"),
            ("guide.pdf", "guide.pdf"),
        ] {
            assert_eq!(stored_name(sent), stored, "{sent}");
        }
    }

    #[test]
    fn url_expiries_are_read() {
        let azure = "https://release-assets.githubusercontent.com/x?sp=r&se=2025-10-01T12%3A05%3A00Z&sig=abc";
        assert_eq!(unix(url_expiry(azure).unwrap()), 1_759_320_300);
        let amz = "https://objects.githubusercontent.com/x?X-Amz-Date=20251001T120000Z&X-Amz-Expires=300&X-Amz-Signature=s";
        assert_eq!(unix(url_expiry(amz).unwrap()), 1_759_320_300);
        assert_eq!(url_expiry("https://example.com/file"), None);
    }

    #[test]
    fn rate_limits_are_read_from_the_answer() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_759_320_000);
        let mut headers = http::HeaderMap::new();
        assert!(
            rate_limited(
                403,
                &headers,
                b"{\"message\":\"Resource not accessible\"}",
                now
            )
            .is_none()
        );
        headers.insert("retry-after", http::HeaderValue::from_static("30"));
        let until = rate_limited(429, &headers, b"", now).unwrap();
        assert_eq!(until, now + Duration::from_secs(30));
        let secondary = rate_limited(
            403,
            &http::HeaderMap::new(),
            b"{\"message\":\"You have exceeded a secondary rate limit\"}",
            now,
        );
        assert_eq!(secondary, Some(now + Duration::from_secs(60)));
    }
}

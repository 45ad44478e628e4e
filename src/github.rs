//! Releases and their assets in the private GitHub repository that holds
//! the paid files.
//!
//! Look-ups, creation and deletion go through octocrab; uploads are
//! streamed from disk with reqwest (octocrab's `upload_asset` holds the
//! whole file in memory), so memory stays flat and progress follows the
//! bytes. Both hosts are parameters (`SHOP_GITHUB_API_BASE`,
//! `SHOP_GITHUB_UPLOADS_BASE`), so tests run against a local server.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use octocrab::Octocrab;

use crate::secret::Secret;

/// A release as `shop` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub id: u64,
    pub tag: String,
    /// GitHub's template, such as `https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}`.
    pub upload_url: String,
    pub assets: Vec<Asset>,
}

/// A release asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub id: u64,
    pub name: String,
    pub size: u64,
    /// `uploaded`, or `starter` for an upload that never finished.
    pub state: String,
    /// GitHub's `sha256:<hex>` digest, when it gives one.
    pub sha256: Option<String>,
}

impl Asset {
    fn from_model(asset: &octocrab::models::repos::Asset) -> Asset {
        Asset {
            id: asset.id.into_inner(),
            name: asset.name.clone(),
            size: u64::try_from(asset.size).unwrap_or(0),
            state: asset.state.clone(),
            sha256: asset
                .digest
                .as_deref()
                .and_then(|digest| digest.strip_prefix("sha256:"))
                .map(str::to_owned),
        }
    }
}

/// A client for one repository.
#[derive(Debug, Clone)]
pub struct GitHub {
    octocrab: Octocrab,
    http: reqwest::Client,
    owner: String,
    repo: String,
    token: Secret,
    uploads_base: String,
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
        crate::stripe::install_crypto_provider();
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
            uploads_base: uploads_base.trim_end_matches('/').to_owned(),
        })
    }

    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// The release with this tag, or `None`.
    pub async fn release_by_tag(&self, tag: &str) -> Result<Option<Release>, GitHubError> {
        match self
            .octocrab
            .repos(&self.owner, &self.repo)
            .releases()
            .get_by_tag(tag)
            .await
        {
            Ok(release) => Ok(Some(self.release_from(&release).await?)),
            Err(error) if status_of(&error) == Some(404) => Ok(None),
            Err(error) => Err(self.error("look up the release", &error)),
        }
    }

    /// Creates a published release with this tag.
    pub async fn create_release(
        &self,
        tag: &str,
        name: &str,
        body: &str,
    ) -> Result<Release, GitHubError> {
        let release = self
            .octocrab
            .repos(&self.owner, &self.repo)
            .releases()
            .create(tag)
            .name(name)
            .body(body)
            .draft(false)
            .prerelease(false)
            .send()
            .await
            .map_err(|error| self.error("create the release", &error))?;
        self.release_from(&release).await
    }

    async fn release_from(
        &self,
        release: &octocrab::models::repos::Release,
    ) -> Result<Release, GitHubError> {
        Ok(Release {
            id: release.id.into_inner(),
            tag: release.tag_name.clone(),
            upload_url: release.upload_url.clone(),
            assets: self.assets(release.id.into_inner()).await?,
        })
    }

    /// Every asset of a release.
    pub async fn assets(&self, release: u64) -> Result<Vec<Asset>, GitHubError> {
        let mut assets = Vec::new();
        let mut page = 1u32;
        loop {
            let listed = self
                .octocrab
                .repos(&self.owner, &self.repo)
                .releases()
                .assets(release)
                .per_page(100u8)
                .page(page)
                .send()
                .await
                .map_err(|error| self.error("list the release's assets", &error))?;
            let count = listed.items.len();
            assets.extend(listed.items.iter().map(Asset::from_model));
            if count < 100 {
                return Ok(assets);
            }
            page += 1;
        }
    }

    pub async fn delete_asset(&self, id: u64) -> Result<(), GitHubError> {
        self.octocrab
            .repos(&self.owner, &self.repo)
            .release_assets()
            .delete(id)
            .await
            .map_err(|error| self.error("delete an asset", &error))
    }

    /// Streams the file at `path` as asset `name` of `release`, calling
    /// `progress` with each chunk's length as it is sent.
    pub async fn upload_asset(
        &self,
        release: &Release,
        path: &Path,
        name: &str,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Asset, GitHubError> {
        let (size, chunks) = read_in_chunks(path)?;
        let stream = chunks.map(move |chunk| {
            if let Ok(bytes) = &chunk {
                progress(bytes.len() as u64);
            }
            chunk
        });
        let url = upload_target(&self.uploads_base, &release.upload_url, name);
        let response = self
            .http
            .post(&url)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("Content-Type", content_type(name))
            .header("Content-Length", size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|source| GitHubError::Unreachable {
                what: "upload an asset".into(),
                source,
            })?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(GitHubError::Api {
                what: format!("upload `{name}`"),
                status: status.as_u16(),
                message: github_message(&body),
                repository: self.repository(),
            });
        }
        let asset: octocrab::models::repos::Asset =
            serde_json::from_slice(&body).map_err(|error| {
                GitHubError::Setup(format!(
                    "GitHub's answer to the upload is not an asset: {error}"
                ))
            })?;
        Ok(Asset::from_model(&asset))
    }

    /// The short-lived URL GitHub gives for downloading a private asset
    /// (the `Location` of its 302), without following it.
    pub async fn asset_download_url(
        &self,
        asset: u64,
        api_base: &str,
    ) -> Result<String, GitHubError> {
        let url = format!(
            "{}/repos/{}/{}/releases/assets/{asset}",
            api_base.trim_end_matches('/'),
            self.owner,
            self.repo
        );
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/octet-stream")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|source| GitHubError::Unreachable {
                what: "fetch an asset's link".into(),
                source,
            })?;
        let status = response.status();
        match response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
        {
            Some(location) if status.is_redirection() => Ok(location.to_owned()),
            _ => Err(GitHubError::Api {
                what: "fetch an asset's download link".into(),
                status: status.as_u16(),
                message: github_message(&response.bytes().await.unwrap_or_default()),
                repository: self.repository(),
            }),
        }
    }

    fn error(&self, what: &str, error: &octocrab::Error) -> GitHubError {
        match error {
            octocrab::Error::GitHub { source, .. } => GitHubError::Api {
                what: what.to_owned(),
                status: source.status_code.as_u16(),
                message: source.message.clone(),
                repository: self.repository(),
            },
            other => GitHubError::Setup(format!(
                "cannot {what} in `{}`: {}",
                self.repository(),
                first_line(&other.to_string())
            )),
        }
    }
}

fn status_of(error: &octocrab::Error) -> Option<u16> {
    match error {
        octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
        _ => None,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

fn github_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// The upload URL for `name`: the path of GitHub's `upload_url` template,
/// on the configured uploads host.
fn upload_target(uploads_base: &str, template: &str, name: &str) -> String {
    let without_template = template.split('{').next().unwrap_or(template);
    let path = without_template
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|index| &rest[index..]))
        .unwrap_or(without_template);
    format!(
        "{uploads_base}{path}?name={}",
        crate::stripe::form::encode_component(name)
    )
}

/// Bytes per chunk read from disk and sent.
const UPLOAD_CHUNK: usize = 1024 * 1024;

/// Opens `path`: its size, and its bytes as a stream.
fn read_in_chunks(
    path: &Path,
) -> Result<
    (
        u64,
        impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static,
    ),
    GitHubError,
> {
    let file = std::fs::File::open(path).map_err(|source| GitHubError::File {
        path: path.to_owned(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| GitHubError::File {
            path: path.to_owned(),
            source,
        })?
        .len();
    Ok((size, crate::file_stream::chunks(file, size, UPLOAD_CHUNK)))
}

/// The media type of a book file, by extension.
pub fn content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "epub" => "application/epub+zip",
        "mobi" | "azw3" => "application/x-mobipocket-ebook",
        "zip" => "application/zip",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "mp3" => "audio/mpeg",
        "m4b" => "audio/mp4",
        "mp4" => "video/mp4",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("{0}")]
    Setup(String),
    #[error("GitHub refused to {what} in `{repository}` ({status}): {message}")]
    Api {
        what: String,
        status: u16,
        message: String,
        repository: String,
    },
    #[error("cannot reach GitHub to {what}")]
    Unreachable {
        what: String,
        source: reqwest::Error,
    },
    #[error("cannot read `{}`", path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl crate::error::Hint for GitHubError {
    fn hint(&self) -> String {
        match self {
            GitHubError::Setup(_) => {
                "check `SHOP_GITHUB_API_BASE`, `SHOP_GITHUB_UPLOADS_BASE` and \
                 `github.repository` in shop.toml"
                    .into()
            }
            GitHubError::Api {
                status, repository, ..
            } => match status {
                401 => "set `GITHUB_TOKEN` to a token that can write releases (a fine-grained \
                        token with \"Contents: read and write\" on the repository)"
                    .into(),
                403 => format!(
                    "the token in `GITHUB_TOKEN` lacks permission on `{repository}`, or GitHub's \
                     rate limit was hit; check the token's repository access"
                ),
                404 => format!(
                    "check that `{repository}` exists and that the token in `GITHUB_TOKEN` can see \
                     it (private repositories answer 404 to tokens without access)"
                ),
                422 => format!(
                    "GitHub refused the request; if `{repository}` is empty, give it a first \
                     commit (a README) so releases can be tagged"
                ),
                _ => "running the same command again finishes the job without duplicates".into(),
            },
            GitHubError::Unreachable { .. } => "check the network, or `SHOP_GITHUB_API_BASE` and \
                 `SHOP_GITHUB_UPLOADS_BASE`; running the same command again finishes the job"
                .into(),
            GitHubError::File { .. } => "give readable files".into(),
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(content_type("a.EPUB"), "application/epub+zip");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}

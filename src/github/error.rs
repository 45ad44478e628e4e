//! What went wrong talking to GitHub, named for the person: the request,
//! the repository, GitHub's message and reasons, and what to do.

use crate::error::Registered;
use crate::{dates, error};
use std::time::SystemTime;

/// GitHub (or its CDN) could not be reached to do `what`.
pub(super) fn unreachable(what: &str) -> impl FnOnce(reqwest::Error) -> GitHubError + '_ {
    move |error| GitHubError::Unreachable {
        what: what.to_owned(),
        reason: error::one_line(&error),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("{0}")]
    Setup(String),
    #[error(
        "GitHub refused to {what} in `{repository}` ({status}): {message}{}",
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) }
    )]
    Api {
        what: String,
        status: u16,
        message: String,
        /// GitHub's reasons, from `errors[]`.
        reasons: Vec<String>,
        repository: String,
    },
    #[error("GitHub's rate limit stops shop from being able to {what} until {}", dates::human_time(unix(*until)))]
    RateLimited { what: String, until: SystemTime },
    #[error("cannot reach GitHub to {what}: {reason}")]
    Unreachable { what: String, reason: String },
    #[error("cannot read `{}`", path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub(super) fn unix(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl GitHubError {
    /// For a rate limit: when to try again.
    pub fn retry_at(&self) -> Option<SystemTime> {
        match self {
            GitHubError::RateLimited { until, .. } => Some(*until),
            _ => None,
        }
    }
}

inventory::submit!(Registered::of::<GitHubError>());

impl error::Hint for GitHubError {
    fn hint(&self) -> String {
        match self {
            GitHubError::Setup(_) => {
                "check `SHOP_GITHUB_API_BASE`, `SHOP_GITHUB_UPLOADS_BASE` and \
                 `github.repository` in shop.toml"
                    .into()
            }
            GitHubError::Api {
                status,
                repository,
                reasons,
                ..
            } => match status {
                401 => "set `GITHUB_TOKEN` to a token that can write releases (a fine-grained \
                        token with \"Contents: read and write\" on the repository)"
                    .into(),
                403 => format!(
                    "the token in `GITHUB_TOKEN` lacks permission on `{repository}`; give it \
                     \"Contents: read and write\" there"
                ),
                404 => format!(
                    "check that `{repository}` exists and that the token in `GITHUB_TOKEN` can see \
                     it (private repositories answer 404 to tokens without access)"
                ),
                422 if reasons.iter().any(|r| r.contains("size")) => {
                    "GitHub keeps assets under 2 GiB; split the file or compress it".into()
                }
                422 if reasons.iter().any(|r| r.contains("already exists")) => {
                    "it was made by an earlier run; run the same command again to finish the job"
                        .into()
                }
                422 => format!(
                    "GitHub refused the request for the reason above; if `{repository}` is empty, \
                     give it a first commit (a README) so releases can be tagged"
                ),
                _ => "running the same command again finishes the job without duplicates".into(),
            },
            GitHubError::RateLimited { .. } => {
                "wait until then and run the same command again: it finishes the job".into()
            }
            GitHubError::Unreachable { .. } => "check the network, or `SHOP_GITHUB_API_BASE` and \
                 `SHOP_GITHUB_UPLOADS_BASE`; running the same command again finishes the job"
                .into(),
            GitHubError::File { .. } => "give readable files".into(),
        }
    }
}

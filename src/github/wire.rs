//! GitHub's answers read closely (a rate limit in any of its forms, a
//! download URL's expiry, the message and reasons of a refusal) and its
//! uploads' URLs and chunks.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::error::GitHubError;
use crate::{file_stream, net};

/// When a rate-limited answer says to try again, if it is one: a 429, or a
/// 403 with `x-ratelimit-remaining: 0` (the primary limit) or a
/// `retry-after` or a message naming the secondary limit. GitHub's docs:
/// wait `retry-after` seconds, else until `x-ratelimit-reset`, else at
/// least a minute.
pub(super) fn rate_limited(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Option<SystemTime> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let secondary = String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains("rate limit");
    if !(status == 429 || (status == 403 && (exhausted || retry_after.is_some() || secondary))) {
        return None;
    }
    if let Some(seconds) = retry_after {
        return Some(now + Duration::from_secs(seconds));
    }
    if exhausted
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
        return Some(at.max(now) + Duration::from_secs(1));
    }
    Some(now + Duration::from_secs(60))
}

/// When a signed download URL stops working, if it says: `se=` (an
/// Azure-style expiry, RFC 3339), `X-Amz-Date` with `X-Amz-Expires`, or
/// `expires=` (Unix seconds).
pub fn url_expiry(url: &str) -> Option<SystemTime> {
    let parsed = url::Url::parse(url).ok()?;
    let query: std::collections::HashMap<String, String> =
        parsed.query_pairs().into_owned().collect();
    let unix = |seconds: i64| {
        u64::try_from(seconds)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
    };
    if let Some(expiry) = query.get("se") {
        let at =
            time::OffsetDateTime::parse(expiry, &time::format_description::well_known::Rfc3339)
                .ok()?;
        return unix(at.unix_timestamp());
    }
    if let (Some(date), Some(seconds)) = (query.get("X-Amz-Date"), query.get("X-Amz-Expires")) {
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let at = time::PrimitiveDateTime::parse(date, format)
            .ok()?
            .assume_utc();
        return unix(at.unix_timestamp() + seconds.parse::<i64>().ok()?);
    }
    query
        .get("expires")
        .and_then(|seconds| seconds.parse::<i64>().ok())
        .and_then(unix)
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// GitHub's message and the reasons in its `errors[]`.
pub(super) fn github_message(body: &[u8]) -> (String, Vec<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (
            String::from_utf8_lossy(body).chars().take(200).collect(),
            Vec::new(),
        );
    };
    let message = value["message"].as_str().unwrap_or_default().to_owned();
    let reasons = value["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|error| match error {
            Value::String(text) => text.clone(),
            _ => match (error["message"].as_str(), error["code"].as_str()) {
                (Some(message), _) => message.to_owned(),
                (None, Some(code)) => format!(
                    "{} `{}` {}",
                    error["resource"].as_str().unwrap_or("request"),
                    error["field"].as_str().unwrap_or("?"),
                    code.replace('_', " ")
                ),
                (None, None) => error.to_string(),
            },
        })
        .collect();
    (message, reasons)
}

/// The upload URL for `name`: the path of GitHub's `upload_url` template,
/// on the configured uploads host.
pub(super) fn upload_target(uploads_base: &str, template: &str, name: &str) -> String {
    let without_template = template.split('{').next().unwrap_or(template);
    let path = without_template
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|index| &rest[index..]))
        .unwrap_or(without_template);
    format!("{uploads_base}{path}?name={}", net::encode_component(name))
}

/// Bytes per chunk read from disk and sent.
const UPLOAD_CHUNK: usize = 1024 * 1024;

/// Opens `path`: its size, and its bytes as a stream.
pub(super) fn read_in_chunks(
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
    Ok((size, file_stream::chunks(file, size, UPLOAD_CHUNK)))
}

//! `shop notify`: tell every buyer entitled to a new version, once each.
//!
//! Who is entitled comes from the ledger (paid purchases of an earlier
//! version that the product's update policy covers), one notice per email
//! address. Who was told is `notices/<slug>-<version>.jsonl`: a line is
//! appended and fsynced as soon as the mail transport accepts a message,
//! and a run skips everyone listed there, so a re-run or a run after a
//! crash sends only what was not sent.
//!
//! Before a message is handed to the mail server, its intent is appended
//! and fsynced to `.shop/notify/<slug>-<version>.jsonl` (local, not
//! committed); a refusal is appended there too. A notice with an intent
//! but neither an acceptance nor a refusal was with the mail server when
//! the run was killed: it is *in doubt* (at most as many as were in flight).
//! The next run names them and sends them again with the same `Message-ID`
//! (which lets mail systems drop the copy), or, with `--skip-in-doubt`,
//! records them as sent. Every other way a run stops (an error, Ctrl-C,
//! SIGTERM) first waits for the messages in flight and records each one
//! the server accepted, so that nothing is sent twice on those paths.

mod plan;
mod send;

pub use plan::{Offer, has_preorders, plan, prepare_offers, upgrade_coupon_id};
pub use send::{Composed, Composer, Delivery, Progress, Sending, Tally, deliver, finish, send};

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Registered;
use crate::{error, git, ledger, mail, stripe};

/// Messages in flight at once.
const CONCURRENCY: usize = 8;

/// The notices folder.
pub const DIR: &str = "notices";

/// One sent notice, as `notices/<slug>-<version>.jsonl` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub purchase: String,
    pub email: String,
    pub sent: String,
    pub message_id: String,
    /// Recorded without knowing: the notice was in doubt, and the author
    /// chose `--skip-in-doubt`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assumed: bool,
}

/// A line of the intents file: a notice about to be handed to the mail
/// server, or (`refused`) one the server did not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Intent {
    message_id: String,
    purchase: String,
    email: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    refused: bool,
}

/// Whom a run tells, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Buyers of earlier versions that the update policy covers: an
    /// update notice, unless they opted out.
    Updates,
    /// Buyers of a pre-order of this very version, now that its files are
    /// out: their download link (what they paid for, so opt-outs do not
    /// apply).
    Preorders,
}

/// A buyer to tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub email: String,
    pub purchase: String,
    /// The version they bought.
    pub bought: String,
    /// Not carried to this version by the update policy: offered a paid
    /// upgrade (the product's `upgrade_discount`) instead of a notice.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub upgrade: bool,
}

/// Who will be told, and who not and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub recipients: Vec<Recipient>,
    pub already_told: usize,
    pub opted_out: usize,
    /// Recipients (also in `recipients`) whose notice a killed run handed
    /// to the mail server without learning whether it was accepted.
    pub in_doubt: Vec<String>,
    /// Addresses of `--only` that no purchase reaching this version has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

pub fn notices_path(root: &Path, slug: &str, version: &semver::Version) -> PathBuf {
    root.join(DIR).join(format!("{slug}-{version}.jsonl"))
}

/// Where the intents of this version's notices are kept (local state).
pub fn intents_path(root: &Path, slug: &str, version: &semver::Version) -> PathBuf {
    root.join(".shop")
        .join("notify")
        .join(format!("{slug}-{version}.jsonl"))
}

/// The addresses whose notice was handed over and neither accepted nor
/// refused, lower-cased.
fn in_doubt(
    root: &Path,
    slug: &str,
    version: &semver::Version,
    told: &HashSet<String>,
) -> Result<HashSet<String>, NotifyError> {
    in_doubt_at(&intents_path(root, slug, version), told)
}

/// The addresses of the intents file at `path` whose message was handed
/// over and neither accepted nor refused, lower-cased, less `told`.
pub fn in_doubt_at(path: &Path, told: &HashSet<String>) -> Result<HashSet<String>, NotifyError> {
    let path = path.to_owned();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(source) => return Err(NotifyError::Io { path, source }),
    };
    let mut open = HashMap::new();
    // A line cut short by a crash is ignored: its message was not handed over.
    for intent in text
        .lines()
        .filter_map(|line| serde_json::from_str::<Intent>(line).ok())
    {
        if intent.refused {
            open.remove(&intent.message_id);
        } else {
            open.insert(intent.message_id, intent.email.to_ascii_lowercase());
        }
    }
    Ok(open
        .into_values()
        .filter(|email| !told.contains(email))
        .collect())
}

/// Appends `value` as a line to `file` and waits until it is on disk.
fn append_synced(
    file: &mut std::fs::File,
    path: &Path,
    value: &impl Serialize,
) -> Result<(), NotifyError> {
    append(file, path, value)?;
    sync(file, path)
}

/// Appends a line, not yet on the disk: [`sync`] after a batch of them.
fn append(
    file: &mut std::fs::File,
    path: &Path,
    value: &impl Serialize,
) -> Result<(), NotifyError> {
    let mut line = serde_json::to_vec(value).map_err(|error| NotifyError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(error),
    })?;
    line.push(b'\n');
    file.write_all(&line).map_err(|source| NotifyError::Io {
        path: path.to_owned(),
        source,
    })
}

fn sync(file: &std::fs::File, path: &Path) -> Result<(), NotifyError> {
    file.sync_data().map_err(|source| NotifyError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Opens `path` for appending, making its folder.
fn open_append(path: &Path) -> Result<std::fs::File, NotifyError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| NotifyError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| NotifyError::Io {
            path: path.to_owned(),
            source,
        })
}

/// The notices already sent for this version.
pub fn sent(
    root: &Path,
    slug: &str,
    version: &semver::Version,
) -> Result<Vec<Notice>, NotifyError> {
    sent_at(&notices_path(root, slug, version))
}

/// The messages a record file (`notices/…`, `posts/…`) says were sent.
pub fn sent_at(path: &Path) -> Result<Vec<Notice>, NotifyError> {
    let path = path.to_owned();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(NotifyError::Io { path, source }),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        // A line cut short by a crash is ignored: that buyer is told again.
        .filter_map(|line| serde_json::from_str(line).ok())
        .map(Ok)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read or write `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error("{failed} notices could not be sent ({sent} were); for example {example}")]
    Unsent {
        sent: usize,
        failed: usize,
        example: String,
    },
    #[error("no upgrade code was made for `{email}`")]
    NoOffer { email: String },
    #[error(transparent)]
    Stripe(#[from] stripe::StripeError),
    #[error("interrupted after {sent} notices; {left} not sent yet")]
    Interrupted { sent: usize, left: usize },
}

inventory::submit!(Registered::of::<NotifyError>());

impl error::Hint for NotifyError {
    fn hint(&self) -> String {
        match self {
            NotifyError::Io { .. } => {
                "check the permissions of `notices/` and the disk space; the same `shop notify` \
                 then sends only what was not sent"
                    .into()
            }
            NotifyError::Ledger(error) => error.hint(),
            NotifyError::Mail(error) => error.hint(),
            NotifyError::Git(error) => error.hint(),
            NotifyError::Unsent { .. } => "fix the mail settings and run the same `shop notify` \
                 again: it sends only what was not sent"
                .into(),
            NotifyError::Interrupted { .. } => {
                "run the same `shop notify` again: it sends only what was not sent".into()
            }
            NotifyError::NoOffer { .. } => {
                "run the same `shop notify` again: it makes the missing upgrade codes first".into()
            }
            NotifyError::Stripe(error) => error.hint(),
        }
    }
}

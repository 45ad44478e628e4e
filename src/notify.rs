//! `shop notify`: tell every buyer entitled to a new version, once each.
//!
//! Who is entitled comes from the ledger (paid purchases of an earlier
//! version that the product's update policy covers), one notice per email
//! address. Who was told is `notices/<slug>-<version>.jsonl`: a line is
//! appended and fsynced as soon as the mail transport accepts a message,
//! and a run skips everyone listed there, so a re-run or a run after a
//! crash sends only what was not sent. (A crash in the instant between the
//! transport accepting a message and its line reaching the disk would send
//! that one notice again on the next run.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mail::{self, Kind, Mailer, Templates};
use crate::store::{Product, Store};
use crate::tokens::{Claims, Key};

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
}

/// A buyer to tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub email: String,
    pub purchase: String,
    /// The version they bought.
    pub bought: String,
}

/// Who will be told, and who not and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub recipients: Vec<Recipient>,
    pub already_told: usize,
    pub opted_out: usize,
}

pub fn notices_path(root: &Path, slug: &str, version: &semver::Version) -> PathBuf {
    root.join(DIR).join(format!("{slug}-{version}.jsonl"))
}

/// The notices already sent for this version.
pub fn sent(
    root: &Path,
    slug: &str,
    version: &semver::Version,
) -> Result<Vec<Notice>, NotifyError> {
    let path = notices_path(root, slug, version);
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

/// Every buyer entitled to `version`, less those told and those who opted out.
pub fn plan(
    store: &Store,
    product: &Product,
    version: &semver::Version,
    opt_outs: &HashSet<String>,
    only: &[String],
) -> Result<Plan, NotifyError> {
    let told: HashSet<String> = sent(&store.root, &product.slug, version)?
        .into_iter()
        .map(|notice| notice.email.to_ascii_lowercase())
        .collect();
    // The newest entitled purchase of each address.
    let mut latest: BTreeMap<String, (String, i64, Recipient)> = BTreeMap::new();
    crate::ledger::each(&store.root, |purchase| {
        if purchase.product != product.slug || purchase.status != "paid" {
            return Ok(());
        }
        let Ok(bought) = semver::Version::parse(&purchase.version) else {
            return Ok(());
        };
        if bought >= *version || !product.updates.entitles(&bought, version) {
            return Ok(());
        }
        let email = purchase.email.to_ascii_lowercase();
        if email.is_empty()
            || (!only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&email)))
        {
            return Ok(());
        }
        let created = purchase.created_unix();
        let recipient = Recipient {
            email: email.clone(),
            purchase: purchase.id.clone(),
            bought: purchase.version.clone(),
        };
        match latest.get(&email) {
            Some((_, known, _)) if *known >= created => {}
            _ => {
                latest.insert(email, (purchase.id, created, recipient));
            }
        }
        Ok(())
    })?;
    let mut plan = Plan::default();
    for (email, (_, _, recipient)) in latest {
        if told.contains(&email) {
            plan.already_told += 1;
        } else if opt_outs.contains(&email) {
            plan.opted_out += 1;
        } else {
            plan.recipients.push(recipient);
        }
    }
    Ok(plan)
}

/// What to send with.
#[derive(Debug)]
pub struct Sending<'a> {
    pub store: &'a Store,
    pub product: &'a Product,
    pub version: &'a semver::Version,
    pub key: &'a Key,
    pub mailer: &'a Mailer,
    pub templates: &'a Templates,
    /// At most this many messages per second.
    pub rate: u32,
    pub now: fn() -> i64,
    /// Set on Ctrl-C or SIGTERM: the message in flight finishes and is
    /// recorded, and no other starts.
    pub stop: &'a std::sync::atomic::AtomicBool,
}

/// Progress while sending.
pub trait Progress: Send + Sync {
    fn sent(&self, done: u64, total: u64);
}

/// Sends the plan's notices, recording each as it is accepted, then commits
/// the notices file. Returns how many were sent.
pub async fn send(
    sending: &Sending<'_>,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<usize, NotifyError> {
    let Sending {
        store,
        product,
        version,
        key,
        mailer,
        templates,
        rate,
        now,
        stop,
    } = sending;
    let path = notices_path(&store.root, &product.slug, version);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| NotifyError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| NotifyError::Io {
            path: path.clone(),
            source,
        })?;
    let settings = &store.settings;
    let gap = Duration::from_secs_f64(1.0 / f64::from((*rate).max(1)));
    let mut next = tokio::time::Instant::now();
    let mut count = 0;
    let mut failures: HashMap<String, String> = HashMap::new();
    let mut interrupted = false;
    // Up to CONCURRENCY messages in flight (the SMTP pool holds as many
    // connections); each is recorded, in order of acceptance, by this task.
    let compose = |recipient: &Recipient| -> Result<(lettre::Message, String, i64), NotifyError> {
        let at = now();
        let expires = at + settings.link_lifetime as i64;
        let claims = Claims {
            purchase: recipient.purchase.clone(),
            expires,
        };
        let link = format!(
            "{}/d/{}",
            settings.base_url,
            crate::tokens::sign(key, &claims)
        );
        let unsubscribe =
            crate::server::unsubscribe_link(&settings.base_url, key, &recipient.email, at);
        let values: BTreeMap<&str, String> = [
            ("shop", settings.name.clone()),
            ("support", settings.support_email.clone()),
            ("base_url", settings.base_url.clone()),
            ("product", product.name.clone()),
            ("version", version.to_string()),
            ("bought", recipient.bought.clone()),
            ("link", link),
            ("expires", crate::ledger::human_time(expires)),
            ("email", recipient.email.clone()),
            ("unsubscribe", unsubscribe.clone()),
        ]
        .into_iter()
        .collect();
        let rendered = templates.render(Kind::Notice, &values);
        let message_id = mail::message_id(
            &format!("notice.{}.{version}.{}", product.slug, recipient.purchase),
            &settings.mail.from,
        );
        let message = mail::compose(
            &settings.mail.from,
            &recipient.email,
            &rendered,
            &message_id,
            Some(&unsubscribe),
        )?;
        Ok((message, message_id, at))
    };
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut queue = plan.recipients.iter();
    let mut done = 0u64;
    loop {
        while in_flight.len() < CONCURRENCY && !interrupted {
            let Some(recipient) = queue.next() else { break };
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            tokio::time::sleep_until(next).await;
            next += gap;
            let (message, message_id, at) = compose(recipient)?;
            in_flight.push(async move { (recipient, message_id, at, mailer.send(message).await) });
        }
        let Some((recipient, message_id, at, result)) =
            futures_util::StreamExt::next(&mut in_flight).await
        else {
            break;
        };
        match result {
            Ok(()) => {
                let notice = Notice {
                    purchase: recipient.purchase.clone(),
                    email: recipient.email.clone(),
                    sent: crate::ledger::timestamp(at),
                    message_id,
                };
                let mut line = serde_json::to_vec(&notice).map_err(|error| NotifyError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(error),
                })?;
                line.push(b'\n');
                file.write_all(&line)
                    .and_then(|()| file.sync_data())
                    .map_err(|source| NotifyError::Io {
                        path: path.clone(),
                        source,
                    })?;
                count += 1;
            }
            Err(error) => {
                failures.insert(recipient.email.clone(), error.to_string());
            }
        }
        done += 1;
        progress.sent(done, plan.recipients.len() as u64);
    }
    drop(file);
    if count > 0 {
        let repo = crate::git::open(&store.root)?;
        let relative = PathBuf::from(DIR).join(format!("{}-{version}.jsonl", product.slug));
        let total = sent(&store.root, &product.slug, version)?.len();
        crate::git::commit_paths(
            &repo,
            &[relative.as_path()],
            &format!(
                "notify: {} {version}, {count} sent ({total} in all)",
                product.slug
            ),
        )?;
    }
    if interrupted {
        return Err(NotifyError::Interrupted {
            sent: count,
            left: plan.recipients.len() - count - failures.len(),
        });
    }
    if !failures.is_empty() {
        let (email, error) = failures
            .iter()
            .next()
            .map(|(e, m)| (e.clone(), m.clone()))
            .unwrap_or_default();
        return Err(NotifyError::Unsent {
            sent: count,
            failed: failures.len(),
            example: format!("`{email}`: {}", error.lines().next().unwrap_or_default()),
        });
    }
    Ok(count)
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read or write `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error("{failed} notices could not be sent ({sent} were); for example {example}")]
    Unsent {
        sent: usize,
        failed: usize,
        example: String,
    },
    #[error("interrupted after {sent} notices; {left} not sent yet")]
    Interrupted { sent: usize, left: usize },
}

impl crate::error::Hint for NotifyError {
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
        }
    }
}

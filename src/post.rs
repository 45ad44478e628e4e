//! `shop post`: a letter from the author to their audience (followers,
//! and buyers who agreed to hear), sent once to each address with the
//! durability of `shop notify` (its sending loop: an intent fsynced before
//! each message, in doubt after a kill, a re-run sends only what was not
//! sent), recorded in `posts/<date>-<slug>.jsonl`, and published on the
//! store as `/posts/<slug>` unless private.
//!
//! A post is a Markdown file with a front matter of `key: value` lines
//! between `---` lines: `subject` (required), `slug`, `date`
//! (`YYYY-MM-DD`), `private` (`true`). `shop post` copies it into
//! `posts/<date>-<slug>.md` with the date filled in, so the same post run
//! again is found by its slug, whatever the day.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::Registered;
use crate::mail::{self, Kind, Templates};
use crate::notify::{Composed, Composer, NotifyError, Plan, Recipient};
use crate::state::Follower;
use crate::store::{AudienceBuyers, Store};
use crate::tokens::Key;
use crate::{error, html, ledger, tokens};

/// The posts folder.
pub const DIR: &str = "posts";

/// A post, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub slug: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub subject: String,
    pub private: bool,
    /// The Markdown after the front matter.
    pub body: String,
}

impl Post {
    /// The post's name in `posts/` (without `.md` or `.jsonl`).
    pub fn id(&self) -> String {
        format!("{}-{}", self.date, self.slug)
    }

    /// Its file, front matter and all, as `shop post` keeps it.
    pub fn text(&self) -> String {
        let mut text = format!(
            "---\nsubject: {}\nslug: {}\ndate: {}\n",
            self.subject, self.slug, self.date
        );
        if self.private {
            text.push_str("private: true\n");
        }
        text.push_str("---\n");
        text.push_str(&self.body);
        text
    }

    /// Its address on the store, when public.
    pub fn url(&self, base_url: &str) -> Option<String> {
        (!self.private).then(|| format!("{base_url}/posts/{}", self.slug))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("`{file}` has no front matter with a `subject`")]
    NoSubject { file: String },
    #[error("`{file}`: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read or write `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a different post `{slug}` was sent before (`{}`)", existing.display())]
    SlugTaken { slug: String, existing: PathBuf },
}

inventory::submit!(Registered::of::<PostError>());

impl error::Hint for PostError {
    fn hint(&self) -> String {
        match self {
            PostError::NoSubject { .. } => {
                "begin the file with `---`, a line `subject: …`, and `---`".into()
            }
            PostError::Invalid { .. } => {
                "front matter keys are `subject`, `slug` (letters, digits, dashes), `date` \
                 (YYYY-MM-DD) and `private` (true or false)"
                    .into()
            }
            PostError::Io { .. } => "check the file's path and the permissions of `posts/`".into(),
            PostError::SlugTaken { .. } => {
                "give this post a `slug:` of its own in its front matter".into()
            }
        }
    }
}

/// Reads a post from `text` (the file `file`, whose stem is the slug
/// unless the front matter names one), dated `today` unless it says.
pub fn parse(file: &str, text: &str, today: &str) -> Result<Post, PostError> {
    let invalid = |message: String| PostError::Invalid {
        file: file.to_owned(),
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return Err(PostError::NoSubject {
            file: file.to_owned(),
        });
    };
    let Some(end) = rest.find("\n---") else {
        return Err(PostError::NoSubject {
            file: file.to_owned(),
        });
    };
    let (front, body) = rest.split_at(end);
    let body = body["\n---".len()..]
        .trim_start_matches(['\r', '\n'])
        .to_owned();
    let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
    for line in front.lines().filter(|line| !line.trim().is_empty()) {
        let Some((key, value)) = line.split_once(':') else {
            return Err(invalid(format!("`{}` is not `key: value`", line.trim())));
        };
        let key = key.trim();
        if !["subject", "slug", "date", "private"].contains(&key) {
            return Err(invalid(format!("`{key}` is not a front matter key")));
        }
        keys.insert(key, value.trim().trim_matches('"'));
    }
    let subject = keys
        .get("subject")
        .filter(|subject| !subject.is_empty())
        .ok_or_else(|| PostError::NoSubject {
            file: file.to_owned(),
        })?;
    let stem = Path::new(file)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("post");
    let slug = keys
        .get("slug")
        .copied()
        .unwrap_or(stem)
        .to_ascii_lowercase();
    if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(format!(
            "`{slug}` is not a slug (letters, digits and dashes)"
        )));
    }
    let date = keys.get("date").copied().unwrap_or(today);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if time::Date::parse(date, &format).is_err() {
        return Err(invalid(format!("`{date}` is not a date (YYYY-MM-DD)")));
    }
    let private = match keys.get("private").copied() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(invalid(format!("`private: {other}` is not true or false"))),
    };
    Ok(Post {
        slug,
        date: date.to_owned(),
        subject: (*subject).to_owned(),
        private,
        body,
    })
}

/// The posts in `posts/`, newest first (`private` ones only if asked).
pub fn all(root: &Path, with_private: bool) -> Result<Vec<Post>, PostError> {
    let dir = root.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PostError::Io { path: dir, source }),
    };
    let mut posts = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| PostError::Io {
            path: path.clone(),
            source,
        })?;
        let name = path.display().to_string();
        let post = parse(&name, &text, "1970-01-01")?;
        if with_private || !post.private {
            posts.push(post);
        }
    }
    posts.sort_by(|a, b| (&b.date, &b.slug).cmp(&(&a.date, &a.slug)));
    Ok(posts)
}

/// The post of this slug already in `posts/`, if any (a run again).
pub fn find(root: &Path, slug: &str) -> Result<Option<Post>, PostError> {
    Ok(all(root, true)?.into_iter().find(|post| post.slug == slug))
}

/// The record of a post's messages (committed) and of its intents (local).
pub fn records_path(root: &Path, post: &Post) -> PathBuf {
    root.join(DIR).join(format!("{}.jsonl", post.id()))
}

pub fn intents_path(root: &Path, post: &Post) -> PathBuf {
    root.join(".shop")
        .join(DIR)
        .join(format!("{}.jsonl", post.id()))
}

/// Whom a post goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    Followers,
    /// Buyers (of one product, or of any), as `[audience] buyers` allows.
    Buyers(Option<String>),
    All,
}

impl std::str::FromStr for To {
    type Err = String;

    fn from_str(text: &str) -> Result<To, String> {
        match text {
            "followers" => Ok(To::Followers),
            "buyers" => Ok(To::Buyers(None)),
            "all" => Ok(To::All),
            other => match other.strip_prefix("buyers:") {
                Some(slug) if !slug.is_empty() => Ok(To::Buyers(Some(slug.to_owned()))),
                _ => Err(format!(
                    "`{other}` is not an audience: followers, buyers, buyers:<slug> or all"
                )),
            },
        }
    }
}

/// The recipients of a post: each address once (a buyer who also follows
/// gets one message, as a follower), less those it was sent to
/// (`sent`, lower case), those who opted out of mail, and buyers who did
/// not agree to hear (`[audience] buyers`).
pub fn plan(
    store: &Store,
    followers: &[Follower],
    opt_outs: &HashSet<String>,
    sent: &HashSet<String>,
    to: &To,
) -> Result<Plan, ledger::LedgerError> {
    let mut plan = Plan::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut consider = |email: &str, purchase: &str, plan: &mut Plan| {
        let email = email.to_ascii_lowercase();
        if email.is_empty() || !seen.insert(email.clone()) {
            return;
        }
        if sent.contains(&email) {
            plan.already_told += 1;
        } else if opt_outs.contains(&email) {
            plan.opted_out += 1;
        } else {
            plan.recipients.push(Recipient {
                email,
                purchase: purchase.to_owned(),
                bought: String::new(),
                upgrade: false,
            });
        }
    };
    if matches!(to, To::Followers | To::All) {
        for follower in followers.iter().filter(|follower| follower.following()) {
            consider(&follower.email, &follower.id, &mut plan);
        }
    }
    let buyers = match to {
        To::Buyers(only) => Some(only.as_deref()),
        To::All => Some(None),
        To::Followers => None,
    };
    if let Some(only) = buyers {
        // Under opt-in, a buyer hears only by following (the form on
        // every page, and on the thanks page: their confirmed address) or
        // by ticking checkout's box for the author's news
        // (`checkout_consent`). A free sample is not a purchase: its
        // reader hears only by following.
        let following: HashSet<String> = followers
            .iter()
            .filter(|follower| follower.following())
            .map(|follower| follower.email.clone())
            .collect();
        let policy = store.settings.audience.buyers;
        ledger::each(&store.root, |purchase| {
            let agreed = match policy {
                AudienceBuyers::All => true,
                AudienceBuyers::OptIn => {
                    following.contains(&purchase.email.to_ascii_lowercase())
                        || purchase.promotions.as_deref() == Some("opt_in")
                }
                AudienceBuyers::None => false,
            };
            if agreed
                && purchase.in_good_standing()
                && !purchase.is_sample()
                && only.is_none_or(|slug| slug == purchase.product)
            {
                consider(&purchase.email, &purchase.id, &mut plan);
            }
            Ok(())
        })?;
    }
    Ok(plan)
}

/// A post's messages.
#[derive(Debug)]
pub struct Letter<'a> {
    pub store: &'a Store,
    pub post: &'a Post,
    pub key: &'a Key,
    pub templates: &'a Templates,
    pub now: fn() -> i64,
}

impl Letter<'_> {
    /// The list the post's messages belong to (`List-Id`).
    fn list_id(&self) -> String {
        let host = self
            .store
            .settings
            .base_url
            .split("://")
            .nth(1)
            .unwrap_or("localhost")
            .split(['/', ':'])
            .next()
            .unwrap_or("localhost")
            .to_owned();
        format!("posts.{host}")
    }
}

impl Composer for Letter<'_> {
    fn compose(&self, recipient: &Recipient) -> Result<Composed, NotifyError> {
        let settings = &self.store.settings;
        let at = (self.now)();
        let unsubscribe =
            tokens::unsubscribe_link(&settings.base_url, self.key, &recipient.purchase, at);
        let mut values = mail::shop_values(settings, &recipient.email);
        values.extend([
            ("subject", self.post.subject.clone()),
            ("body", self.post.body.trim_end().to_owned()),
            ("url", self.post.url(&settings.base_url).unwrap_or_default()),
            ("unsubscribe", unsubscribe.clone()),
        ]);
        let html = BTreeMap::from([("body", html::markdown(&self.post.body))]);
        let rendered = self
            .templates
            .render_with_html(Kind::Post, &values, &html)?;
        let message_id = self.message_id(recipient);
        let message = mail::compose_to_list(
            &settings.mail.from,
            &recipient.email,
            &rendered,
            &message_id,
            &unsubscribe,
            &self.list_id(),
        )?;
        Ok((message, message_id, at))
    }

    fn message_id(&self, recipient: &Recipient) -> String {
        mail::message_id(
            &format!("post.{}.{}", self.post.id(), recipient.purchase),
            &self.store.settings.mail.from,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_matter_gives_the_subject_slug_date_and_privacy() {
        let post = parse(
            "drafts/News.md",
            "---\nsubject: A new book\ndate: 2026-12-01\n---\n\nIt is **out**.\n",
            "2026-12-07",
        )
        .unwrap();
        assert_eq!(
            (post.slug.as_str(), post.date.as_str(), post.private),
            ("news", "2026-12-01", false)
        );
        assert_eq!(post.body, "It is **out**.\n");
        // Kept as written, it reads back the same.
        assert_eq!(parse("x.md", &post.text(), "2030-01-01").unwrap(), post);
        let private = parse(
            "a.md",
            "---\nsubject: Just you\nslug: thanks\nprivate: true\n---\nHi",
            "2026-12-07",
        )
        .unwrap();
        assert_eq!((private.slug.as_str(), private.private), ("thanks", true));
        assert_eq!(private.url("https://b.example"), None);
        for (text, wanted) in [
            ("No front matter.", "no front matter with a `subject`"),
            (
                "---\nslug: x\n---\nbody",
                "no front matter with a `subject`",
            ),
            (
                "---\nsubject: s\ntitle: t\n---\n",
                "`title` is not a front matter key",
            ),
            ("---\nsubject: s\nslug: a b\n---\n", "`a b` is not a slug"),
            (
                "---\nsubject: s\ndate: 7 Dec\n---\n",
                "`7 Dec` is not a date",
            ),
        ] {
            let error = parse("p.md", text, "2026-12-07").unwrap_err().to_string();
            assert!(error.contains(wanted), "{text:?}: {error}");
        }
    }
}

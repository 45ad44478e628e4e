//! Telling them: each message composed, its intent made durable before it
//! is handed over, its acceptance or refusal recorded right after, under a
//! rate and a bound on messages in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::plan::Offer;
use super::{
    Audience, CONCURRENCY, DIR, Intent, Notice, NotifyError, Plan, Recipient, append,
    append_synced, intents_path, notices_path, open_append, sent, sync,
};
use crate::mail::{self, Kind, Mailer, Templates};
use crate::store::{Product, Store, money};
use crate::tokens::Key;
use crate::{dates, fault, git, html, ledger, tokens};

/// What to send with.
#[derive(Debug)]
pub struct Sending<'a> {
    pub store: &'a Store,
    pub product: &'a Product,
    pub version: &'a semver::Version,
    pub audience: Audience,
    /// The upgrade offers of the plan's upgrade recipients, by purchase.
    pub offers: &'a HashMap<String, Offer>,
    pub key: &'a Key,
    pub mailer: &'a Mailer,
    pub templates: &'a Templates,
    /// At most this many messages per second.
    pub rate: u32,
    pub now: fn() -> i64,
    /// Set on Ctrl-C or SIGTERM: the messages in flight finish and are
    /// recorded, and no other starts.
    pub stop: &'a std::sync::atomic::AtomicBool,
    /// Record the notices in doubt as sent instead of sending them again.
    pub skip_in_doubt: bool,
}

/// How each message of a run reads: a version's notices and deliveries
/// ([`Sending`]), or a post (`crate::post`).
pub trait Composer: Sync {
    /// The message of one recipient, its `Message-ID`, and when it was made.
    fn compose(&self, recipient: &Recipient) -> Result<Composed, NotifyError>;
    /// A message's `Message-ID`: the same for every attempt at it, so that
    /// a copy sent again after a crash can be recognised.
    fn message_id(&self, recipient: &Recipient) -> String;
}

/// How a run sends, whatever its messages: the transport, the pace, and
/// where each intent and each acceptance is recorded.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub mailer: &'a Mailer,
    /// At most this many messages per second.
    pub rate: u32,
    pub now: fn() -> i64,
    /// Set on Ctrl-C or SIGTERM: the messages in flight finish and are
    /// recorded, and no other starts.
    pub stop: &'a std::sync::atomic::AtomicBool,
    /// Record the messages in doubt as sent instead of sending them again.
    pub skip_in_doubt: bool,
    /// The record of messages sent (committed), and of intents (local).
    pub records: &'a Path,
    pub intents: &'a Path,
}

/// Progress while sending.
pub trait Progress: Send + Sync {
    fn sent(&self, done: u64, total: u64);
}

/// What a run of [`deliver`] did.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub assumed: usize,
    failures: Vec<(String, String)>,
}

/// Sends the plan's notices, recording each intent before it goes and each
/// acceptance as it comes, then commits the notices file. Returns how many
/// were sent.
pub async fn send(
    sending: &Sending<'_>,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<usize, NotifyError> {
    let Sending {
        store,
        product,
        version,
        ..
    } = sending;
    let path = notices_path(&store.root, &product.slug, version);
    let intents_at = intents_path(&store.root, &product.slug, version);
    let delivery = Delivery {
        mailer: sending.mailer,
        rate: sending.rate,
        now: sending.now,
        stop: sending.stop,
        skip_in_doubt: sending.skip_in_doubt,
        records: &path,
        intents: &intents_at,
    };
    let (tally, outcome) = deliver(sending, &delivery, plan, progress).await?;
    if tally.sent + tally.assumed > 0 {
        let repo = git::open(&store.root)?;
        let relative = PathBuf::from(DIR).join(format!("{}-{version}.jsonl", product.slug));
        let total = sent(&store.root, &product.slug, version)?.len();
        git::commit_paths(
            &repo,
            &[relative.as_path()],
            &format!(
                "{}: {} {version}, {} sent ({total} in all)",
                match sending.audience {
                    Audience::Updates => "notify",
                    Audience::Preorders => "deliver pre-orders",
                },
                product.slug,
                tally.sent
            ),
        )?;
    }
    finish(sending.stop, plan, &tally, outcome)
}

/// Sends the plan's messages under `delivery`, recording each intent
/// before it goes and each acceptance as it comes (the caller commits the
/// record). Returns what was done, and how the loop ended.
pub async fn deliver(
    composer: &dyn Composer,
    delivery: &Delivery<'_>,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<(Tally, Result<(), NotifyError>), NotifyError> {
    let mut notices = open_append(delivery.records)?;
    let mut intents = open_append(delivery.intents)?;
    let mut tally = Tally::default();
    let mut files = Files {
        notices: &mut notices,
        notices_path: delivery.records,
        intents: &mut intents,
        intents_path: delivery.intents,
    };
    let outcome = send_all(composer, delivery, plan, progress, &mut files, &mut tally).await;
    Ok((tally, outcome))
}

/// How a run ended, as its caller reports it: the count sent, or why not all.
pub fn finish(
    stop: &std::sync::atomic::AtomicBool,
    plan: &Plan,
    tally: &Tally,
    outcome: Result<(), NotifyError>,
) -> Result<usize, NotifyError> {
    outcome?;
    let count = tally.sent;
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        let left = plan
            .recipients
            .len()
            .saturating_sub(count + tally.assumed + tally.failures.len());
        if left > 0 {
            return Err(NotifyError::Interrupted { sent: count, left });
        }
    }
    if let Some((email, error)) = tally.failures.first() {
        return Err(NotifyError::Unsent {
            sent: count,
            failed: tally.failures.len(),
            example: format!("`{email}`: {}", error.lines().next().unwrap_or_default()),
        });
    }
    Ok(count)
}

/// The two files a run appends to.
struct Files<'a> {
    notices: &'a mut std::fs::File,
    notices_path: &'a Path,
    intents: &'a mut std::fs::File,
    intents_path: &'a Path,
}

/// The sending loop: up to [`CONCURRENCY`] messages in flight (the SMTP
/// pool holds as many connections), started no faster than the rate and
/// driven while it waits. On an error or a stop, nothing new starts and
/// the messages in flight are waited for and recorded before it returns.
async fn send_all(
    composer: &dyn Composer,
    delivery: &Delivery<'_>,
    plan: &Plan,
    progress: &dyn Progress,
    files: &mut Files<'_>,
    tally: &mut Tally,
) -> Result<(), NotifyError> {
    use futures_util::StreamExt as _;
    let total = plan.recipients.len() as u64;
    let queue = assume_in_doubt(composer, delivery, plan, files, tally)?;
    let mut done = tally.assumed as u64;
    if done > 0 {
        progress.sent(done, total);
    }
    let mut queue = queue.into_iter().peekable();
    let mut pace = Pace::new(delivery.rate);
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut failed: Option<NotifyError> = None;
    loop {
        let stopping = failed.is_some() || delivery.stop.load(Ordering::SeqCst);
        let may_start = !stopping && in_flight.len() < CONCURRENCY && queue.peek().is_some();
        if !may_start && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            // The next messages whose turn under the rate has come, as many
            // as there are free places.
            () = tokio::time::sleep_until(pace.next), if may_start => {
                let room = CONCURRENCY - in_flight.len();
                let (batch, outcome) = start_batch(composer, files, &mut queue, &mut pace, room);
                for (recipient, message, message_id, at) in batch {
                    fault::point("notify:intent");
                    let mailer = delivery.mailer;
                    in_flight.push(async move {
                        (recipient, message_id, at, mailer.send(message).await)
                    });
                }
                if let Err(error) = outcome {
                    failed = Some(error);
                }
            }
            // Messages the server answered, this one and any other already
            // answered: recorded at once, one fsync per file for them all.
            Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                let mut answered = vec![first];
                while let Some(Some(more)) = futures_util::FutureExt::now_or_never(in_flight.next()) {
                    answered.push(more);
                }
                done += answered.len() as u64;
                if let Err(error) = record_answers(answered, files, tally) {
                    failed.get_or_insert(error);
                }
                progress.sent(done, total);
            }
        }
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// With `--skip-in-doubt`, the notices in doubt are recorded as sent (and
/// durable) without a message; the rest are returned, to be sent.
fn assume_in_doubt<'p>(
    composer: &dyn Composer,
    delivery: &Delivery<'_>,
    plan: &'p Plan,
    files: &mut Files<'_>,
    tally: &mut Tally,
) -> Result<Vec<&'p Recipient>, NotifyError> {
    if !delivery.skip_in_doubt {
        return Ok(plan.recipients.iter().collect());
    }
    let doubtful: HashSet<&str> = plan.in_doubt.iter().map(String::as_str).collect();
    let mut queue = Vec::with_capacity(plan.recipients.len());
    for recipient in &plan.recipients {
        if doubtful.contains(recipient.email.as_str()) {
            let notice = Notice {
                purchase: recipient.purchase.clone(),
                email: recipient.email.clone(),
                sent: dates::timestamp((delivery.now)()),
                message_id: composer.message_id(recipient),
                assumed: true,
            };
            append_synced(files.notices, files.notices_path, &notice)?;
            tally.assumed += 1;
        } else {
            queue.push(recipient);
        }
    }
    Ok(queue)
}

/// When the next message may start: a gap after the last one's turn.
struct Pace {
    gap: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(rate: u32) -> Pace {
        Pace {
            gap: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))),
            next: tokio::time::Instant::now(),
        }
    }

    /// Takes a turn if one has come. One that waited for a free place
    /// takes one turn owed, not a burst.
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if self.next > now {
            return false;
        }
        self.next = self.next.max(now.checked_sub(self.gap).unwrap_or(now)) + self.gap;
        true
    }
}

/// A message composed and its intent written: ready for the mail server.
type Started<'p> = (&'p Recipient, lettre::Message, String, i64);

/// Composes up to `room` messages whose turn has come and writes their
/// intents, made durable with one fsync for all before any is handed to
/// the mail server. Those composed before one that could not be are
/// returned all the same (their intents are written), with the error.
fn start_batch<'p>(
    composer: &dyn Composer,
    files: &mut Files<'_>,
    queue: &mut std::iter::Peekable<std::vec::IntoIter<&'p Recipient>>,
    pace: &mut Pace,
    room: usize,
) -> (Vec<Started<'p>>, Result<(), NotifyError>) {
    let mut batch = Vec::new();
    let mut composed = Ok(());
    while batch.len() < room && queue.peek().is_some() && pace.take() {
        let Some(recipient) = queue.next() else { break };
        let started = composer
            .compose(recipient)
            .and_then(|(message, message_id, at)| {
                let intent = Intent {
                    message_id: message_id.clone(),
                    purchase: recipient.purchase.clone(),
                    email: recipient.email.clone(),
                    refused: false,
                };
                append(files.intents, files.intents_path, &intent)?;
                Ok((recipient, message, message_id, at))
            });
        match started {
            Ok(started) => batch.push(started),
            Err(error) => {
                composed = Err(error);
                break;
            }
        }
    }
    match sync(files.intents, files.intents_path) {
        Ok(()) => (batch, composed),
        Err(error) => (Vec::new(), Err(error)),
    }
}

/// Records the mail server's answers: a notice for each accepted message,
/// a refusal for each refused one, one fsync per file for them all.
fn record_answers(
    answered: Vec<(&Recipient, String, i64, Result<(), mail::MailError>)>,
    files: &mut Files<'_>,
    tally: &mut Tally,
) -> Result<(), NotifyError> {
    let (mut notices, mut refusals) = (false, false);
    let mut recorded = Ok(());
    for (recipient, message_id, at, result) in answered {
        let written = match result {
            Ok(()) => {
                fault::point("notify:accepted");
                let notice = Notice {
                    purchase: recipient.purchase.clone(),
                    email: recipient.email.clone(),
                    sent: dates::timestamp(at),
                    message_id,
                    assumed: false,
                };
                notices = true;
                append(files.notices, files.notices_path, &notice).map(|()| tally.sent += 1)
            }
            Err(error) => {
                tally
                    .failures
                    .push((recipient.email.clone(), error.to_string()));
                let refusal = Intent {
                    message_id,
                    purchase: recipient.purchase.clone(),
                    email: recipient.email.clone(),
                    refused: true,
                };
                refusals = true;
                append(files.intents, files.intents_path, &refusal)
            }
        };
        recorded = recorded.and(written);
    }
    if notices {
        recorded = recorded.and_then(|()| sync(files.notices, files.notices_path));
    }
    if refusals {
        recorded = recorded.and_then(|()| sync(files.intents, files.intents_path));
    }
    recorded
}

/// A message for one recipient: its text, its `Message-ID`, and when its
/// link was made (Unix time).
pub type Composed = (lettre::Message, String, i64);

impl Composer for Sending<'_> {
    fn compose(&self, recipient: &Recipient) -> Result<Composed, NotifyError> {
        compose(self, recipient)
    }

    fn message_id(&self, recipient: &Recipient) -> String {
        message_id(
            self.product,
            self.version,
            recipient,
            &self.store.settings.mail.from,
        )
    }
}

/// The message of one recipient: a pre-order's delivery, or a notice of
/// the new version (with an upgrade offer where the policy leaves the
/// buyer out).
fn compose(sending: &Sending<'_>, recipient: &Recipient) -> Result<Composed, NotifyError> {
    let settings = &sending.store.settings;
    let at = (sending.now)();
    let expires = at + settings.link_lifetime as i64;
    let link = tokens::link(
        &settings.base_url,
        sending.key,
        &recipient.purchase,
        expires,
    );
    let message_id = message_id(
        sending.product,
        sending.version,
        recipient,
        &settings.mail.from,
    );
    let composed = match sending.audience {
        Audience::Preorders => compose_delivery(sending, recipient, link, expires, &message_id),
        Audience::Updates => compose_notice(sending, recipient, link, expires, at, &message_id),
    };
    composed.map(|message| (message, message_id, at))
}

/// A pre-order's delivery: the files are out.
fn compose_delivery(
    sending: &Sending<'_>,
    recipient: &Recipient,
    link: String,
    expires: i64,
    message_id: &str,
) -> Result<lettre::Message, NotifyError> {
    let Sending {
        store,
        product,
        version,
        templates,
        ..
    } = sending;
    let settings = &store.settings;
    let values = mail::Access {
        store,
        product,
        version: &version.to_string(),
        email: &recipient.email,
        purchase: &recipient.purchase,
        link: &link,
        expires,
    }
    .values();
    let rendered = templates.render(Kind::Delivery, &values)?;
    let message = mail::compose(
        &settings.mail.from,
        &recipient.email,
        &rendered,
        message_id,
        None,
    )?;
    Ok(message)
}

/// A notice of the new version, with what changed since the buyer's and,
/// for a buyer the policy leaves out, the upgrade offer.
fn compose_notice(
    sending: &Sending<'_>,
    recipient: &Recipient,
    link: String,
    expires: i64,
    at: i64,
    message_id: &str,
) -> Result<lettre::Message, NotifyError> {
    let Sending {
        store,
        product,
        version,
        offers,
        key,
        templates,
        ..
    } = sending;
    let settings = &store.settings;
    let unsubscribe = tokens::unsubscribe_link(&settings.base_url, key, &recipient.purchase, at);
    let mut values = mail::shop_values(settings, &recipient.email);
    let (notes_text, notes_html) = notes_since(product, &recipient.bought, version);
    let offer = recipient
        .upgrade
        .then(|| offers.get(&recipient.purchase))
        .flatten();
    if recipient.upgrade && offer.is_none() {
        return Err(NotifyError::NoOffer {
            email: recipient.email.clone(),
        });
    }
    if let (Some(offer), Some(upgrade)) = (offer, product.upgrade) {
        // Stripe rounds a percentage off to the nearest minor unit.
        let off = (product.price.amount * i64::from(upgrade.percent_off) + 50) / 100;
        let price = product.price.amount - off;
        values.extend([
            ("code", offer.code.clone()),
            ("discount", format!("{}%", upgrade.percent_off)),
            (
                "price",
                money::display_amount(price, product.price.currency.code()),
            ),
            (
                "until",
                offer
                    .expires_at
                    .map_or_else(|| "it is used".to_owned(), dates::human_time),
            ),
            (
                "upgrade",
                format!(
                    "{}/buy/{}?upgrade={}",
                    settings.base_url, product.slug, offer.code
                ),
            ),
        ]);
    }
    values.extend([
        ("product", product.name.clone()),
        ("version", version.to_string()),
        ("bought", recipient.bought.clone()),
        ("link", link),
        ("expires", dates::human_time(expires)),
        ("unsubscribe", unsubscribe.clone()),
        ("notes", notes_text),
        (
            "given",
            if ledger::is_given(&recipient.purchase) {
                "yes"
            } else {
                ""
            }
            .to_owned(),
        ),
    ]);
    let [cover, ..] = mail::product_values(store, product, &version.to_string());
    values.extend([cover]);
    let html = BTreeMap::from([("notes", notes_html)]);
    let kind = if offer.is_some() {
        Kind::Upgrade
    } else {
        Kind::Notice
    };
    let rendered = templates.render_with_html(kind, &values, &html)?;
    let message = mail::compose(
        &settings.mail.from,
        &recipient.email,
        &rendered,
        message_id,
        Some(&unsubscribe),
    )?;
    Ok(message)
}

/// What changed since the buyer's version, up to `version`: the notes of
/// each release in between, oldest first, as text (Markdown) and as HTML.
pub(super) fn notes_since(
    product: &Product,
    bought: &str,
    version: &semver::Version,
) -> (String, String) {
    let bought = semver::Version::parse(bought).ok();
    let (mut text, mut html) = (String::new(), String::new());
    for release in &product.releases {
        let newer = bought
            .as_ref()
            .is_none_or(|bought| &release.version > bought);
        let Some(notes) = release
            .notes
            .as_deref()
            .filter(|_| newer && &release.version <= version)
        else {
            continue;
        };
        text.push_str(&format!(
            "What's new in {} ({}):\n\n{notes}\n\n",
            release.version, release.date
        ));
        html.push_str(&format!(
            "<h2 style=\"margin:20px 0 8px;font-size:17px;\">What's new in {} <span class=\"muted\" style=\"color:#555555;font-weight:400;\">· {}</span></h2>{}",
            html::escape(&release.version.to_string()),
            release.date,
            html::markdown(notes)
        ));
    }
    (text.trim_end().to_owned(), html)
}

/// A notice's `Message-ID`: the same for every attempt at the same notice,
/// so that a copy sent again after a crash can be recognised.
pub(super) fn message_id(
    product: &Product,
    version: &semver::Version,
    recipient: &Recipient,
    from: &str,
) -> String {
    mail::message_id(
        &format!("notice.{}.{version}.{}", product.slug, recipient.purchase),
        from,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, notes: Option<&str>) -> String {
        let notes = notes.map_or(String::new(), |notes| format!("notes = {notes:?}\n"));
        format!(
            "[[release]]\nversion = \"{version}\"\ndate = 2026-0{minor}-01\ntag = \"guide-v{version}\"\n\
             stripe_product = \"prod_1\"\nstripe_price = \"price_{minor}\"\npayment_link = \"plink_{minor}\"\n\
             payment_link_url = \"https://pay.example/{minor}\"\n{notes}",
            minor = version.split('.').nth(1).unwrap().parse::<u32>().unwrap() + 1,
        )
    }

    #[test]
    fn a_notice_carries_the_notes_of_every_version_since_the_buyers() {
        let text = format!(
            "name = \"Guide\"\nprice = \"10.00\"\nfiles = [\"guide.pdf\"]\n\n{}{}{}{}",
            release("1.0.0", Some("First edition.")),
            release("1.1.0", Some("New chapter on **rivers**.")),
            release("1.2.0", Some("Fixed the maps.")),
            release("1.3.0", Some("Not out yet for this notice.")),
        );
        let product =
            crate::store::product::parse("guide", "products/guide.toml", &text, None).unwrap();
        let version = semver::Version::new(1, 2, 0);
        let (text, html) = notes_since(&product, "1.0.0", &version);
        assert_eq!(
            text,
            "What's new in 1.1.0 (2026-02-01):\n\nNew chapter on **rivers**.\n\n\
             What's new in 1.2.0 (2026-03-01):\n\nFixed the maps."
        );
        assert!(html.contains("<strong>rivers</strong>"), "{html}");
        assert!(!html.contains("First edition") && !html.contains("Not out yet"));
        // A buyer of 1.1 reads only what 1.2 changed.
        let (text, _) = notes_since(&product, "1.1.0", &version);
        assert_eq!(text, "What's new in 1.2.0 (2026-03-01):\n\nFixed the maps.");
    }
}

//! Sending what the mail queue holds: receipts, lost-link messages and a
//! withdrawal's mails, marked sent only once the transport accepted them,
//! retried with backoff otherwise; and what else the server owes others
//! the same way: a withdrawal's refund at Stripe (`withdraw::refund`).
//! The queue lives in the database, so it survives restarts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{App, to_recipient};
use crate::mail::{self, Kind, Mailer, Templates};
use crate::retry::Backoff;
use crate::state::QueuedMail;
use crate::{dates, error, html, ledger, tokens};

/// The longest a failed message waits before its next attempt.
const MAIL_RETRY_MAX: Duration = Duration::from_secs(3600);

/// Sends due mail every `interval` until the task is dropped; a failed
/// message waits `retry` (doubling each time, up to an hour) before its
/// next attempt.
pub async fn run(
    app: Arc<App>,
    mailer: Mailer,
    templates: Templates,
    interval: Duration,
    retry: Duration,
) {
    loop {
        match send_due(&app, &mailer, &templates, retry).await {
            Ok(sent) if sent > 0 => tracing::info!(sent, "mail sent"),
            Ok(_) => {}
            Err(error) => tracing::error!("mail queue: {}", error::one_line(error.as_ref())),
        }
        // Every `interval`, or at once when a refund is due.
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = app.outbox_wake.notified() => {}
        }
    }
}

/// Sends every message that is due; returns how many went out.
pub async fn send_due(
    app: &App,
    mailer: &Mailer,
    templates: &Templates,
    retry: Duration,
) -> anyhow::Result<usize> {
    let now = app.now();
    let mut sent = 0;
    for queued in app.db.claim_mail(now, 100).await? {
        let outcome = if queued.kind == "refund" {
            match &queued.purchase {
                Some(purchase) => super::withdraw::refund(app, purchase).await,
                None => Ok(()),
            }
        } else {
            match compose(app, templates, &queued).await {
                Ok(Some(message)) => mailer.send(message).await.map_err(anyhow::Error::from),
                Ok(None) => Ok(()), // nothing left to send it about (a purchase now unknown)
                Err(error) => Err(error),
            }
        };
        match outcome {
            Ok(()) => {
                app.db.mail_sent(queued.id, app.now()).await?;
                sent += 1;
            }
            Err(error) => {
                tracing::warn!(
                    id = queued.id,
                    "mail not sent, will retry: {}",
                    error::one_line(error.as_ref())
                );
                app.db
                    .mail_failed(
                        queued.id,
                        app.now(),
                        error.to_string(),
                        Backoff::new(retry, MAIL_RETRY_MAX),
                    )
                    .await?;
            }
        }
    }
    Ok(sent)
}

fn base_values(app: &App, email: &str) -> BTreeMap<&'static str, String> {
    mail::shop_values(&app.store().settings, email)
}

async fn compose(
    app: &App,
    templates: &Templates,
    queued: &QueuedMail,
) -> anyhow::Result<Option<lettre::Message>> {
    let from = &app.store().settings.mail.from;
    match queued.kind.as_str() {
        "receipt" => {
            let Some(id) = &queued.purchase else {
                return Ok(None);
            };
            let Some(purchase) = app.db.purchase(id).await? else {
                return Ok(None);
            };
            if app.db.revoked(&purchase).await? {
                // Refunded before its receipt went out: none is owed.
                tracing::info!(purchase = %purchase.id, "receipt dropped: the purchase was refunded");
                return Ok(None);
            }
            let store = app.store();
            let Ok(product) = store.product(&purchase.product) else {
                return Ok(None);
            };
            let id = mail::message_id(&format!("receipt.{}", purchase.id), from);
            // A pre-order's files are not out: its receipt promises the
            // link, which `shop release` mails.
            if let Some(waiting) = product.waiting_preorder(&purchase.version) {
                let mut values = app.paid_values(&store, product, &purchase, &queued.recipient);
                // When it comes out, if the author said (`shop preorder --date`).
                values.insert(
                    "out",
                    waiting.out.map(dates::human_date).unwrap_or_default(),
                );
                values.extend(withdraw_values(app, &purchase.id));
                let rendered = templates.render(Kind::Preorder, &values)?;
                return to_recipient(from, queued, &rendered, &id);
            }
            if purchase.id.starts_with(ledger::SAMPLE_PREFIX) {
                return sample_mail(app, templates, queued, &purchase).await;
            }
            let mut values = app.access_values(&store, product, &purchase, &queued.recipient);
            values.insert("date", dates::human_day(purchase.created));
            values.insert("paid", purchase.paid_text());
            values.insert("invoice", app.invoice_url(&purchase.id).await);
            values.extend(withdraw_values(app, &purchase.id));
            // A gift whose recipient's address was not one stayed the buyer's.
            let unusable = match purchase.id.starts_with("cs_") {
                true => app.db.gift(&purchase.id).await?,
                false => None,
            };
            values.insert(
                "unusable",
                unusable
                    .filter(|state| !state.gift.deliverable)
                    .map(|state| state.gift.recipient)
                    .unwrap_or_default(),
            );
            let rendered = templates.render(Kind::Receipt, &values)?;
            to_recipient(from, queued, &rendered, &id)
        }
        "links" => {
            let purchases = app.purchases_by(&queued.recipient).await?;
            if purchases.is_empty() {
                return Ok(None);
            }
            let (mut text, mut html) = (String::new(), String::from("<ul>"));
            for (id, (slug, version, _)) in &purchases {
                let name = app
                    .store()
                    .product(slug)
                    .map_or(slug.clone(), |p| p.name.clone());
                let link = app.link(id);
                text.push_str(&format!("- {name} {version}: {link}\n"));
                html.push_str(&format!(
                    "<li><a href=\"{}\">{} {}</a></li>",
                    html::escape(&link),
                    html::escape(&name),
                    html::escape(version)
                ));
            }
            html.push_str("</ul>");
            let mut values = base_values(app, &queued.recipient);
            values.insert("library", app.library_link(&queued.recipient).await?);
            values.insert("links", text);
            let html = BTreeMap::from([("links", html)]);
            let rendered = templates.render_with_html(Kind::Links, &values, &html)?;
            let id = mail::message_id(&format!("links.{}.{}", queued.id, queued.created), from);
            to_recipient(from, queued, &rendered, &id)
        }
        "follow" => {
            let Some(id) = &queued.purchase else {
                return Ok(None);
            };
            let mut values = base_values(app, &queued.recipient);
            values.insert(
                "confirm",
                tokens::follow_link(&app.store().settings.base_url, &app.keys[0], id, app.now()),
            );
            let rendered = templates.render(Kind::Follow, &values)?;
            let message_id = mail::message_id(&format!("follow.{id}"), from);
            to_recipient(from, queued, &rendered, &message_id)
        }
        "kindle" => super::kindle::compose(app, queued).await,
        crate::state::GIFT_MAIL | crate::state::GIFT_RECEIPT => {
            super::gifts::compose(app, templates, queued).await
        }
        "withdrawal" | "refunded" | "refund-delayed" => {
            withdrawal_mail(app, templates, queued).await
        }
        _ => Ok(None),
    }
}

/// A free sample's mail: its download link and, when the reader asked
/// for news too and has not confirmed yet, the link that confirms.
async fn sample_mail(
    app: &App,
    templates: &Templates,
    queued: &QueuedMail,
    sample: &crate::state::Entitlement,
) -> anyhow::Result<Option<lettre::Message>> {
    let store = app.store();
    let Ok(product) = store.product(&sample.product) else {
        return Ok(None);
    };
    let from = &store.settings.mail.from;
    let follower = crate::state::sample_follower(&sample.id);
    let confirm = match app.db.follower(&follower).await? {
        Some(asked) if asked.confirmed.is_none() => {
            tokens::follow_link(&store.settings.base_url, &app.keys[0], &follower, app.now())
        }
        _ => String::new(),
    };
    let mut values = app.access_values(&store, product, sample, &queued.recipient);
    values.insert("confirm", confirm);
    let rendered = templates.render(Kind::Sample, &values)?;
    let id = mail::message_id(&format!("sample.{}", sample.id), from);
    to_recipient(from, queued, &rendered, &id)
}

fn withdraw_values(app: &App, purchase: &str) -> [(&'static str, String); 2] {
    mail::withdraw_values(&app.store().settings, &app.keys[0], purchase, app.now())
}

/// A withdrawal's mails: its acknowledgement, its refund's confirmation,
/// and the news that the refund is delayed.
async fn withdrawal_mail(
    app: &App,
    templates: &Templates,
    queued: &QueuedMail,
) -> anyhow::Result<Option<lettre::Message>> {
    let Some(id) = &queued.purchase else {
        return Ok(None);
    };
    let (Some(withdrawal), Some(purchase)) =
        (app.db.withdrawal(id).await?, app.db.purchase(id).await?)
    else {
        return Ok(None);
    };
    let store = app.store();
    let settings = &store.settings;
    let name = store
        .product(&purchase.product)
        .map_or_else(|_| purchase.product.clone(), |product| product.name.clone());
    let amount = purchase.amount_text();
    let mut values = base_values(app, &queued.recipient);
    values.extend([
        ("product", name),
        ("version", purchase.version.clone()),
        ("order", ledger::order_number(&purchase.id)),
        ("amount", amount),
    ]);
    let kind = match queued.kind.as_str() {
        "withdrawal" => {
            values.extend([
                ("date", dates::human_day(purchase.created)),
                ("requested", dates::human_time(withdrawal.requested)),
                ("name", withdrawal.name.clone()),
                ("reason", withdrawal.reason.clone()),
                ("decision", withdrawal.decision.clone()),
                (
                    "waived",
                    withdrawal.waived.map(dates::human_day).unwrap_or_default(),
                ),
                (
                    "days",
                    ((withdrawal.requested - purchase.created) / 86_400).to_string(),
                ),
                (
                    "guarantee_days",
                    settings
                        .refunds
                        .self_service_days
                        .map(|days| days.to_string())
                        .unwrap_or_default(),
                ),
            ]);
            Kind::Withdrawal
        }
        "refunded" => {
            values.insert("reason", "You withdrew from the purchase.".into());
            Kind::Refund
        }
        _ => Kind::RefundDelayed,
    };
    let rendered = templates.render(kind, &values)?;
    let message_id = mail::message_id(
        &format!("{}.{}", queued.kind, purchase.id),
        &settings.mail.from,
    );
    to_recipient(&settings.mail.from, queued, &rendered, &message_id)
}

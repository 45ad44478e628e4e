//! A gift bought for someone, on the server's side: the mails (the
//! buyer's receipt, which holds no download link, and the recipient's
//! gift with the message and their own link, on its day), composed by the
//! outbox from the state's `gifts` row.

use super::{App, to_recipient};
use crate::mail::{self, Kind, Templates};
use crate::state::{GIFT_MAIL, QueuedMail};
use crate::{dates, tokens};

/// The buyer's page of their gift (`/gift/<token>`), whole.
pub fn page_link(app: &App, purchase: &str) -> String {
    format!(
        "{}{}",
        app.store().settings.base_url,
        tokens::gift_path(&app.keys[0], purchase, app.now())
    )
}

/// A gift's receipt (to the buyer) or its mail (to the recipient), as
/// `queued.kind` says.
pub async fn compose(
    app: &App,
    templates: &Templates,
    queued: &QueuedMail,
) -> anyhow::Result<Option<lettre::Message>> {
    let Some(id) = &queued.purchase else {
        return Ok(None);
    };
    let (Some(purchase), Some(gift)) = (app.db.purchase(id).await?, app.db.gift(id).await?) else {
        return Ok(None);
    };
    if app.db.revoked(&purchase).await? {
        // Refunded before it went: nothing is owed.
        tracing::info!(purchase = %purchase.id, kind = %queued.kind, "gift mail dropped: the purchase was refunded");
        return Ok(None);
    }
    let store = app.store();
    let Ok(product) = store.product(&purchase.product) else {
        return Ok(None);
    };
    let from = &store.settings.mail.from;
    let gift = gift.gift;
    if queued.kind == GIFT_MAIL {
        let mut values = app.access_values(&store, product, &purchase, &queued.recipient);
        values.insert("giver", gift.buyer.clone());
        values.insert("message", gift.message.clone());
        let rendered = templates.render(Kind::Present, &values)?;
        // Each sending its own id: one sent again is a new message.
        let message_id = mail::message_id(&format!("gift.{}.{}", purchase.id, queued.id), from);
        return to_recipient(from, queued, &rendered, &message_id);
    }
    let mut values = app.paid_values(&store, product, &purchase, &queued.recipient);
    values.insert("invoice", app.invoice_url(&purchase.id).await);
    values.extend(mail::withdraw_values(
        &store.settings,
        &app.keys[0],
        &purchase.id,
        app.now(),
    ));
    values.insert("recipient", gift.recipient.clone());
    values.insert("message", gift.message.clone());
    values.insert(
        "send_on",
        gift.send_on.map(dates::human_date).unwrap_or_default(),
    );
    values.insert("unread_day", gift.unread_day.clone().unwrap_or_default());
    values.insert("gift", page_link(app, &purchase.id));
    let rendered = templates.render(Kind::GiftReceipt, &values)?;
    let message_id = mail::message_id(&format!("receipt.{}", purchase.id), from);
    to_recipient(from, queued, &rendered, &message_id)
}

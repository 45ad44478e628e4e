//! The statements several operations (and the writer) share: a purchase's
//! row and what is queued with it, a revocation, and what a file of a
//! purchase has used.

use rusqlite::{Connection, OptionalExtension, params};

use crate::downloads::Usage;
use crate::state::{Entitlement, FileKey, GIFT_MAIL, GIFT_RECEIPT, Paid};

/// Records a purchase first seen at `now` (inside a write).
pub(super) fn insert_purchase(
    connection: &Connection,
    purchase: &Entitlement,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO purchases (id, email, product, version, payment_intent, created, seen, amount, currency, discount, tax)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET email = excluded.email, payment_intent = excluded.payment_intent,
             seen = COALESCE(purchases.seen, excluded.seen),
             amount = COALESCE(excluded.amount, purchases.amount),
             currency = COALESCE(excluded.currency, purchases.currency),
             discount = MAX(purchases.discount, excluded.discount), tax = MAX(purchases.tax, excluded.tax)",
        params![
            purchase.id,
            purchase.email,
            purchase.product,
            purchase.version,
            purchase.payment_intent,
            purchase.created,
            now,
            purchase.paid.as_ref().map(|paid| paid.amount),
            purchase.paid.as_ref().map(|paid| paid.currency.as_str()),
            purchase.paid.as_ref().map_or(0, |paid| paid.discount),
            purchase.paid.as_ref().map_or(0, |paid| paid.tax),
        ],
    )?;
    Ok(())
}

/// Records a purchase and queues its receipt once per purchase, unless
/// its payment is revoked (`None`); `Some(queued now)` otherwise (inside a
/// write).
pub(super) fn queue_receipt(
    connection: &Connection,
    purchase: &Entitlement,
    now: i64,
) -> rusqlite::Result<Option<bool>> {
    insert_purchase(connection, purchase, now)?;
    if is_revoked(connection, purchase.payment_intent.as_deref())? {
        return Ok(None);
    }
    if purchase.email.is_empty() {
        return Ok(Some(false));
    }
    let dedupe = format!("receipt:{}", purchase.id);
    let purchase_id = Some(purchase.id.as_str());
    let Some(gift) = &purchase.gift else {
        return queue_mail(
            connection,
            "receipt",
            &purchase.email,
            purchase_id,
            Some(&dedupe),
            now,
        )
        .map(Some);
    };
    // A gift: the buyer's receipt now, the recipient's mail on its day.
    connection.execute(
        "INSERT OR IGNORE INTO gifts (purchase, buyer, recipient, deliverable, message, send_at, send_on, unread_day)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            purchase.id,
            gift.buyer,
            gift.recipient,
            gift.deliverable,
            gift.message,
            gift.send_at,
            gift.send_on.map(crate::gift::day_text),
            gift.unread_day,
        ],
    )?;
    if !gift.deliverable {
        // The purchase stayed the buyer's: their receipt has their link.
        return queue_mail(
            connection,
            "receipt",
            &gift.buyer,
            purchase_id,
            Some(&dedupe),
            now,
        )
        .map(Some);
    }
    let queued = queue_mail(
        connection,
        GIFT_RECEIPT,
        &gift.buyer,
        purchase_id,
        Some(&dedupe),
        now,
    )?;
    connection.execute(
        "INSERT OR IGNORE INTO mail_queue (kind, recipient, purchase, dedupe, created, next_attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            GIFT_MAIL,
            purchase.email,
            purchase.id,
            format!("{GIFT_MAIL}:{}", purchase.id),
            now,
            gift.send_at
        ],
    )?;
    Ok(Some(queued))
}

/// A gift's row (`gifts`), by its purchase.
pub(super) fn gift_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<crate::gift::Gift> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Ok(crate::gift::Gift {
        buyer: row.get(0)?,
        recipient: row.get(1)?,
        deliverable: row.get(2)?,
        message: row.get(3)?,
        send_at: row.get(4)?,
        send_on: row
            .get::<_, Option<String>>(5)?
            .and_then(|day| time::Date::parse(&day, &format).ok()),
        unread_day: row.get(6)?,
    })
}

/// Queues a message once per `dedupe` key (inside a write).
pub(super) fn queue_mail(
    connection: &Connection,
    kind: &str,
    recipient: &str,
    purchase: Option<&str>,
    dedupe: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    let inserted = connection.execute(
        "INSERT OR IGNORE INTO mail_queue (kind, recipient, purchase, dedupe, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind, recipient, purchase, dedupe, now],
    )?;
    Ok(inserted > 0)
}

/// Revokes a payment's downloads (inside a write).
pub(super) fn revoke(
    connection: &Connection,
    payment_intent: &str,
    reason: &str,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT OR IGNORE INTO revoked (payment_intent, reason, at) VALUES (?1, ?2, ?3)",
        params![payment_intent, reason, now],
    )?;
    Ok(())
}

pub(super) fn purchase_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entitlement> {
    Ok(Entitlement {
        id: row.get(0)?,
        email: row.get(1)?,
        product: row.get(2)?,
        version: row.get(3)?,
        payment_intent: row.get(4)?,
        created: row.get(5)?,
        paid: match (
            row.get::<_, Option<i64>>(6)?,
            row.get::<_, Option<String>>(7)?,
        ) {
            (Some(amount), Some(currency)) => Some(Paid {
                amount,
                currency,
                discount: row.get(8)?,
                tax: row.get(9)?,
            }),
            _ => None,
        },
        gift: None,
    })
}

pub(super) fn seen(connection: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    connection
        .query_row("SELECT seen FROM purchases WHERE id = ?1", [id], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()
        .map(Option::flatten)
}

/// Whether a payment is refunded or disputed (inside a read or a write).
pub(super) fn is_revoked(connection: &Connection, intent: Option<&str>) -> rusqlite::Result<bool> {
    let Some(intent) = intent else {
        return Ok(false);
    };
    connection
        .prepare_cached("SELECT 1 FROM revoked WHERE payment_intent = ?1")?
        .query_row([intent], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

pub(super) fn extra(connection: &Connection, purchase: &str) -> rusqlite::Result<u32> {
    connection
        .prepare_cached("SELECT extra FROM grants WHERE purchase = ?1")?
        .query_row([purchase], |row| row.get(0))
        .optional()
        .map(|extra| extra.unwrap_or(0))
}

pub(super) fn usage(connection: &Connection, key: &FileKey) -> rusqlite::Result<Usage> {
    connection
        .prepare_cached(
            "SELECT bytes, count FROM downloads WHERE purchase = ?1 AND product = ?2 AND version = ?3 AND file = ?4",
        )?
        .query_row(params![key.purchase, key.product, key.version, key.file], |row| {
            Ok(Usage {
                bytes: row.get::<_, i64>(0)?.max(0) as u64,
                whole: row.get(1)?,
            })
        })
        .optional()
        .map(Option::unwrap_or_default)
}

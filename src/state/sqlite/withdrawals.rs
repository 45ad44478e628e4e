//! Withdrawals in SQLite: each request once, and its refund's course.

use rusqlite::{Connection, OptionalExtension, params};

use super::Sqlite;
use super::rows::{queue_mail, revoke};
use crate::state::{StateError, Withdrawal};

const COLUMNS: &str = "purchase, email, payment_intent, requested, name, reason, decision, \
     waived, refund, refund_status, refused, last_error, settled";

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Withdrawal> {
    Ok(Withdrawal {
        purchase: row.get(0)?,
        email: row.get(1)?,
        payment_intent: row.get(2)?,
        requested: row.get(3)?,
        name: row.get(4)?,
        reason: row.get(5)?,
        decision: row.get(6)?,
        waived: row.get(7)?,
        refund: row.get(8)?,
        refund_status: row.get(9)?,
        refused: row.get(10)?,
        last_error: row.get(11)?,
        settled: row.get(12)?,
    })
}

fn find(connection: &Connection, purchase: &str) -> rusqlite::Result<Option<Withdrawal>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM withdrawals WHERE purchase = ?1"),
            [purchase],
            row,
        )
        .optional()
}

/// Queues the refund at Stripe of a withdrawal, due at `due`: the `n`th
/// request (each has its own dedupe key, so each retry is queued once).
fn queue_refund(
    connection: &Connection,
    withdrawal: &Withdrawal,
    n: i64,
    now: i64,
    due: i64,
) -> rusqlite::Result<()> {
    let dedupe = format!("refund:{}:{n}", withdrawal.purchase);
    connection.execute(
        "INSERT OR IGNORE INTO mail_queue (kind, recipient, purchase, dedupe, created, next_attempt)
         VALUES ('refund', ?1, ?2, ?3, ?4, ?5)",
        params![withdrawal.email, withdrawal.purchase, dedupe, now, due],
    )?;
    Ok(())
}

impl Sqlite {
    pub async fn request_withdrawal(
        &self,
        withdrawal: Withdrawal,
        refund: bool,
    ) -> Result<(Withdrawal, bool), StateError> {
        self.write(move |connection| {
            let w = &withdrawal;
            let inserted = connection.execute(
                &format!(
                    "INSERT OR IGNORE INTO withdrawals ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, 0, NULL, NULL)"
                ),
                params![
                    w.purchase,
                    w.email,
                    w.payment_intent,
                    w.requested,
                    w.name,
                    w.reason,
                    w.decision,
                    w.waived
                ],
            )? == 1;
            if inserted {
                let dedupe = format!("withdrawal:{}", w.purchase);
                queue_mail(
                    connection,
                    "withdrawal",
                    &w.email,
                    Some(&w.purchase),
                    Some(&dedupe),
                    w.requested,
                )?;
                if refund {
                    if let Some(intent) = &w.payment_intent {
                        revoke(connection, intent, "refunded", w.requested)?;
                    }
                    queue_refund(connection, w, 0, w.requested, w.requested)?;
                }
            }
            let kept = find(connection, &w.purchase)?.unwrap_or_else(|| withdrawal.clone());
            Ok((kept, inserted))
        })
        .await
    }

    pub async fn withdrawal(&self, purchase: String) -> Result<Option<Withdrawal>, StateError> {
        self.read(|connection| find(connection, &purchase))
    }

    pub async fn withdrawals(&self) -> Result<Vec<Withdrawal>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM withdrawals ORDER BY requested, purchase"
            ))?;
            let rows = statement.query_map([], row)?;
            rows.collect()
        })
    }

    pub async fn withdrawal_of_payment(
        &self,
        payment_intent: String,
    ) -> Result<Option<Withdrawal>, StateError> {
        self.read(|connection| {
            connection
                .query_row(
                    &format!("SELECT {COLUMNS} FROM withdrawals WHERE payment_intent = ?1"),
                    [payment_intent],
                    row,
                )
                .optional()
        })
    }

    pub async fn refund_made(
        &self,
        purchase: String,
        refund: String,
        status: String,
        now: i64,
        mail: bool,
    ) -> Result<(), StateError> {
        self.write(move |connection| {
            let Some(before) = find(connection, &purchase)? else {
                return Ok(());
            };
            let succeeded = status == "succeeded";
            connection.execute(
                "UPDATE withdrawals SET refund = ?2, refund_status = ?3,
                     settled = CASE WHEN ?4 THEN COALESCE(settled, ?5) ELSE settled END
                 WHERE purchase = ?1",
                params![purchase, refund, status, succeeded, now],
            )?;
            if succeeded && mail {
                let dedupe = format!("refunded:{purchase}");
                queue_mail(
                    connection,
                    "refunded",
                    &before.email,
                    Some(&purchase),
                    Some(&dedupe),
                    now,
                )?;
            }
            Ok(())
        })
        .await
    }

    pub async fn refund_refused(
        &self,
        purchase: String,
        refund: Option<String>,
        error: String,
        now: i64,
        retry_at: Option<i64>,
    ) -> Result<(), StateError> {
        self.write(move |connection| {
            let Some(before) = find(connection, &purchase)? else {
                return Ok(());
            };
            if refund.is_some()
                && before.refund == refund
                && before.refund_status.as_deref() == Some("failed")
            {
                return Ok(());
            }
            connection.execute(
                "UPDATE withdrawals SET refused = refused + 1, refund_status = 'failed',
                     last_error = ?2, refund = COALESCE(?3, refund)
                 WHERE purchase = ?1",
                params![purchase, error, refund],
            )?;
            if let Some(due) = retry_at {
                queue_refund(connection, &before, before.refused + 1, now, due)?;
            }
            let dedupe = format!("refund-delayed:{purchase}");
            queue_mail(
                connection,
                "refund-delayed",
                &before.email,
                Some(&purchase),
                Some(&dedupe),
                now,
            )?;
            Ok(())
        })
        .await
    }

    pub async fn downloaded(&self, purchase: String) -> Result<bool, StateError> {
        self.read(|connection| {
            connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM downloads
                                WHERE purchase = ?1 AND (count > 0 OR bytes > 0))",
                [purchase],
                |row| row.get(0),
            )
        })
    }
}

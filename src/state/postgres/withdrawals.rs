//! Withdrawals in PostgreSQL: each request once, and its refund's course
//! (the same as the SQLite back end's, statement for statement).

use deadpool_postgres::Transaction;

use super::Postgres;
use crate::state::{StateError, Withdrawal};

const COLUMNS: &str = "purchase, email, payment_intent, requested, name, reason, decision, \
     waived, refund, refund_status, refused, last_error, settled";

fn row(row: &tokio_postgres::Row) -> Withdrawal {
    Withdrawal {
        purchase: row.get(0),
        email: row.get(1),
        payment_intent: row.get(2),
        requested: row.get(3),
        name: row.get(4),
        reason: row.get(5),
        decision: row.get(6),
        waived: row.get(7),
        refund: row.get(8),
        refund_status: row.get(9),
        refused: row.get(10),
        last_error: row.get(11),
        settled: row.get(12),
    }
}

async fn find(tx: &Transaction<'_>, purchase: &str) -> Result<Option<Withdrawal>, StateError> {
    Ok(tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM withdrawals WHERE purchase = $1 FOR UPDATE"),
            &[&purchase],
        )
        .await?
        .as_ref()
        .map(row))
}

async fn queue(
    tx: &Transaction<'_>,
    kind: &str,
    withdrawal: &Withdrawal,
    dedupe: &str,
    now: i64,
    due: i64,
) -> Result<(), StateError> {
    tx.execute(
        "INSERT INTO mail_queue (kind, recipient, purchase, dedupe, created, next_attempt)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe) DO NOTHING",
        &[
            &kind,
            &withdrawal.email,
            &withdrawal.purchase,
            &dedupe,
            &now,
            &due,
        ],
    )
    .await?;
    Ok(())
}

impl Postgres {
    pub async fn request_withdrawal(
        &self,
        withdrawal: Withdrawal,
        refund: bool,
    ) -> Result<(Withdrawal, bool), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let w = &withdrawal;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO withdrawals ({COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, 0, NULL, NULL)
                     ON CONFLICT (purchase) DO NOTHING"
                ),
                &[
                    &w.purchase,
                    &w.email,
                    &w.payment_intent,
                    &w.requested,
                    &w.name,
                    &w.reason,
                    &w.decision,
                    &w.waived,
                ],
            )
            .await?
            == 1;
        if inserted {
            let dedupe = format!("withdrawal:{}", w.purchase);
            queue(&tx, "withdrawal", w, &dedupe, w.requested, 0).await?;
            if refund {
                if let Some(intent) = &w.payment_intent {
                    tx.execute(
                        "INSERT INTO revoked (payment_intent, reason, at) VALUES ($1, 'refunded', $2)
                         ON CONFLICT (payment_intent) DO NOTHING",
                        &[intent, &w.requested],
                    )
                    .await?;
                }
                let dedupe = format!("refund:{}:0", w.purchase);
                queue(&tx, "refund", w, &dedupe, w.requested, w.requested).await?;
            }
        }
        let kept = find(&tx, &w.purchase)
            .await?
            .unwrap_or_else(|| withdrawal.clone());
        tx.commit().await?;
        Ok((kept, inserted))
    }

    pub async fn withdrawal(&self, purchase: String) -> Result<Option<Withdrawal>, StateError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM withdrawals WHERE purchase = $1"),
                &[&purchase],
            )
            .await?;
        Ok(rows.first().map(row))
    }

    pub async fn withdrawals(&self) -> Result<Vec<Withdrawal>, StateError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM withdrawals ORDER BY requested, purchase"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn withdrawal_of_payment(
        &self,
        payment_intent: String,
    ) -> Result<Option<Withdrawal>, StateError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM withdrawals WHERE payment_intent = $1"),
                &[&payment_intent],
            )
            .await?;
        Ok(rows.first().map(row))
    }

    pub async fn refund_made(
        &self,
        purchase: String,
        refund: String,
        status: String,
        now: i64,
        mail: bool,
    ) -> Result<(), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(before) = find(&tx, &purchase).await? else {
            return Ok(());
        };
        let succeeded = status == "succeeded";
        tx.execute(
            "UPDATE withdrawals SET refund = $2, refund_status = $3,
                 settled = CASE WHEN $4 THEN COALESCE(settled, $5) ELSE settled END
             WHERE purchase = $1",
            &[&purchase, &refund, &status, &succeeded, &now],
        )
        .await?;
        if succeeded && mail {
            let dedupe = format!("refunded:{purchase}");
            queue(&tx, "refunded", &before, &dedupe, now, 0).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn refund_refused(
        &self,
        purchase: String,
        refund: Option<String>,
        error: String,
        now: i64,
        retry_at: Option<i64>,
    ) -> Result<(), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(before) = find(&tx, &purchase).await? else {
            return Ok(());
        };
        if refund.is_some()
            && before.refund == refund
            && before.refund_status.as_deref() == Some("failed")
        {
            return Ok(());
        }
        tx.execute(
            "UPDATE withdrawals SET refused = refused + 1, refund_status = 'failed',
                 last_error = $2, refund = COALESCE($3, refund)
             WHERE purchase = $1",
            &[&purchase, &error, &refund],
        )
        .await?;
        if let Some(due) = retry_at {
            let dedupe = format!("refund:{purchase}:{}", before.refused + 1);
            queue(&tx, "refund", &before, &dedupe, now, due).await?;
        }
        let dedupe = format!("refund-delayed:{purchase}");
        queue(&tx, "refund-delayed", &before, &dedupe, now, 0).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn downloaded(&self, purchase: String) -> Result<bool, StateError> {
        let rows = self
            .query(
                "SELECT EXISTS (SELECT 1 FROM downloads
                                WHERE purchase = $1 AND (count > 0 OR bytes > 0))",
                &[&purchase],
            )
            .await?;
        Ok(rows[0].get(0))
    }
}

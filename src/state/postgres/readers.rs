//! What a reader asked of their devices, in PostgreSQL (the same as the
//! SQLite back end's).

use super::Postgres;
use crate::state::{Reader, StateError};

impl Postgres {
    pub async fn reader(&self, email: String) -> Result<Reader, StateError> {
        let rows = self
            .query(
                "SELECT kindle, feeds_from FROM readers WHERE email = $1",
                &[&email],
            )
            .await?;
        Ok(rows
            .first()
            .map(|row| Reader {
                kindle: row.get(0),
                feeds_from: row.get(1),
            })
            .unwrap_or_default())
    }

    pub async fn send_to_kindle(
        &self,
        email: String,
        kindle: String,
        reference: String,
        now: i64,
    ) -> Result<(), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO readers (email, kindle, feeds_from) VALUES ($1, $2, 0)
             ON CONFLICT (email) DO UPDATE SET kindle = excluded.kindle",
            &[&email, &kindle],
        )
        .await?;
        tx.execute(
            "INSERT INTO mail_queue (kind, recipient, purchase, created) VALUES ('kindle', $1, $2, $3)",
            &[&kindle, &reference, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_feeds(&self, email: String, now: i64) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO readers (email, kindle, feeds_from) VALUES ($1, NULL, $2)
             ON CONFLICT (email) DO UPDATE SET feeds_from = excluded.feeds_from",
            &[&email, &now],
        )
        .await?;
        Ok(())
    }
}

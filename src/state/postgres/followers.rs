//! Followers in PostgreSQL (the same as the SQLite back end's).

use super::Postgres;
use crate::state::{Follower, StateError};

const COLUMNS: &str = "id, email, asked, confirmed, left_at, source, consent";

fn row(row: &tokio_postgres::Row) -> Follower {
    Follower {
        id: row.get(0),
        email: row.get(1),
        asked: row.get(2),
        confirmed: row.get(3),
        left: row.get(4),
        source: row.get(5),
        consent: row.get(6),
    }
}

impl Postgres {
    pub async fn request_follow(
        &self,
        asked: Follower,
        mail: bool,
    ) -> Result<Option<String>, StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let known = tx
            .query_opt(
                &format!("SELECT {COLUMNS} FROM followers WHERE email = $1 FOR UPDATE"),
                &[&asked.email],
            )
            .await?;
        if known
            .as_ref()
            .map(row)
            .is_some_and(|known| known.following())
        {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO followers (email, id, asked, confirmed, left_at, source, consent)
             VALUES ($1, $2, $3, NULL, NULL, $4, $5)
             ON CONFLICT (email) DO UPDATE SET id = excluded.id, asked = excluded.asked,
                 source = excluded.source, consent = excluded.consent",
            &[
                &asked.email,
                &asked.id,
                &asked.asked,
                &asked.source,
                &asked.consent,
            ],
        )
        .await?;
        if mail {
            let dedupe = format!("follow:{}", asked.id);
            tx.execute(
                "INSERT INTO mail_queue (kind, recipient, purchase, dedupe, created)
                 VALUES ('follow', $1, $2, $3, $4) ON CONFLICT (dedupe) DO NOTHING",
                &[&asked.email, &asked.id, &dedupe, &asked.asked],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(asked.id))
    }

    pub async fn confirm_follower(
        &self,
        id: String,
        now: i64,
    ) -> Result<Option<String>, StateError> {
        self.execute(
            "UPDATE followers SET confirmed = $2, left_at = NULL
             WHERE id = $1 AND (confirmed IS NULL OR left_at IS NOT NULL)",
            &[&id, &now],
        )
        .await?;
        Ok(self.follower(id).await?.map(|follower| follower.email))
    }

    pub async fn unfollow(&self, id: String, now: i64) -> Result<Option<String>, StateError> {
        self.execute(
            "UPDATE followers SET left_at = $2 WHERE id = $1 AND left_at IS NULL",
            &[&id, &now],
        )
        .await?;
        Ok(self.follower(id).await?.map(|follower| follower.email))
    }

    pub async fn follower(&self, id: String) -> Result<Option<Follower>, StateError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM followers WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(rows.first().map(row))
    }

    pub async fn followers(&self) -> Result<Vec<Follower>, StateError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM followers ORDER BY asked, email"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn import_followers(&self, followers: Vec<Follower>) -> Result<usize, StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut added = 0;
        for follower in &followers {
            added += tx
                .execute(
                    "INSERT INTO followers (email, id, asked, confirmed, left_at, source, consent)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[
                        &follower.email,
                        &follower.id,
                        &follower.asked,
                        &follower.confirmed,
                        &follower.left,
                        &follower.source,
                        &follower.consent,
                    ],
                )
                .await? as usize;
        }
        tx.commit().await?;
        Ok(added)
    }
}

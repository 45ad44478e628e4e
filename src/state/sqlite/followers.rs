//! Followers in SQLite: one row an address, confirmed by its own link.

use rusqlite::{Connection, OptionalExtension, params};

use super::Sqlite;
use super::rows::queue_mail;
use crate::state::{Follower, StateError};

const COLUMNS: &str = "id, email, asked, confirmed, left_at, source, consent";

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Follower> {
    Ok(Follower {
        id: row.get(0)?,
        email: row.get(1)?,
        asked: row.get(2)?,
        confirmed: row.get(3)?,
        left: row.get(4)?,
        source: row.get(5)?,
        consent: row.get(6)?,
    })
}

fn by(connection: &Connection, column: &str, value: &str) -> rusqlite::Result<Option<Follower>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM followers WHERE {column} = ?1"),
            [value],
            row,
        )
        .optional()
}

impl Sqlite {
    pub async fn request_follow(
        &self,
        asked: Follower,
        mail: bool,
    ) -> Result<Option<String>, StateError> {
        self.write(move |connection| {
            if by(connection, "email", &asked.email)?.is_some_and(|known| known.following()) {
                return Ok(None);
            }
            connection.execute(
                "INSERT INTO followers (email, id, asked, confirmed, left_at, source, consent)
                 VALUES (?1, ?2, ?3, NULL, NULL, ?4, ?5)
                 ON CONFLICT (email) DO UPDATE SET id = excluded.id, asked = excluded.asked,
                     source = excluded.source, consent = excluded.consent",
                params![
                    asked.email,
                    asked.id,
                    asked.asked,
                    asked.source,
                    asked.consent
                ],
            )?;
            if mail {
                let dedupe = format!("follow:{}", asked.id);
                queue_mail(
                    connection,
                    "follow",
                    &asked.email,
                    Some(&asked.id),
                    Some(&dedupe),
                    asked.asked,
                )?;
            }
            Ok(Some(asked.id))
        })
        .await
    }

    pub async fn confirm_follower(
        &self,
        id: String,
        now: i64,
    ) -> Result<Option<String>, StateError> {
        self.write(move |connection| {
            connection.execute(
                "UPDATE followers SET confirmed = ?2, left_at = NULL
                 WHERE id = ?1 AND (confirmed IS NULL OR left_at IS NOT NULL)",
                params![id, now],
            )?;
            Ok(by(connection, "id", &id)?.map(|follower| follower.email))
        })
        .await
    }

    pub async fn unfollow(&self, id: String, now: i64) -> Result<Option<String>, StateError> {
        self.write(move |connection| {
            connection.execute(
                "UPDATE followers SET left_at = ?2 WHERE id = ?1 AND left_at IS NULL",
                params![id, now],
            )?;
            Ok(by(connection, "id", &id)?.map(|follower| follower.email))
        })
        .await
    }

    pub async fn follower(&self, id: String) -> Result<Option<Follower>, StateError> {
        self.read(|connection| by(connection, "id", &id))
    }

    pub async fn followers(&self) -> Result<Vec<Follower>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COLUMNS} FROM followers ORDER BY asked, email"
            ))?;
            let rows = statement.query_map([], row)?;
            rows.collect()
        })
    }

    pub async fn import_followers(&self, followers: Vec<Follower>) -> Result<usize, StateError> {
        self.write(move |connection| {
            let mut added = 0;
            for follower in &followers {
                added += connection.execute(
                    "INSERT OR IGNORE INTO followers
                         (email, id, asked, confirmed, left_at, source, consent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        follower.email,
                        follower.id,
                        follower.asked,
                        follower.confirmed,
                        follower.left,
                        follower.source,
                        follower.consent
                    ],
                )?;
            }
            Ok(added)
        })
        .await
    }
}

//! What a reader asked of their devices, in SQLite: the Kindle address
//! their EPUBs go to, and from when their OPDS feeds' addresses hold.

use rusqlite::{OptionalExtension, params};

use super::Sqlite;
use super::rows::queue_mail;
use crate::state::{Reader, StateError};

impl Sqlite {
    pub async fn reader(&self, email: String) -> Result<Reader, StateError> {
        self.read(move |connection| {
            Ok(connection
                .query_row(
                    "SELECT kindle, feeds_from FROM readers WHERE email = ?1",
                    [&email],
                    |row| {
                        Ok(Reader {
                            kindle: row.get(0)?,
                            feeds_from: row.get(1)?,
                        })
                    },
                )
                .optional()?
                .unwrap_or_default())
        })
    }

    pub async fn send_to_kindle(
        &self,
        email: String,
        kindle: String,
        reference: String,
        now: i64,
    ) -> Result<(), StateError> {
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO readers (email, kindle, feeds_from) VALUES (?1, ?2, 0)
                 ON CONFLICT (email) DO UPDATE SET kindle = excluded.kindle",
                params![email, kindle],
            )?;
            queue_mail(connection, "kindle", &kindle, Some(&reference), None, now)?;
            Ok(())
        })
        .await
    }

    pub async fn revoke_feeds(&self, email: String, now: i64) -> Result<(), StateError> {
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO readers (email, kindle, feeds_from) VALUES (?1, NULL, ?2)
                 ON CONFLICT (email) DO UPDATE SET feeds_from = excluded.feeds_from",
                params![email, now],
            )?;
            Ok(())
        })
        .await
    }
}

//! A server's state read whole, for `shop serve --migrate-state-to`.

use std::path::Path;

use rusqlite::Connection;

use crate::state::StateError;

/// The tables of the state and their columns, as both back ends have
/// them (what `shop serve --migrate-state-to` copies).
pub(in crate::state) const TABLES: &[(&str, &str)] = &[
    (
        "purchases",
        "id, email, product, version, payment_intent, created, seen, amount, currency, discount, tax",
    ),
    (
        "downloads",
        "purchase, product, version, file, count, bytes, last_redirect, continuations",
    ),
    ("grants", "purchase, extra"),
    ("revoked", "payment_intent, reason, at"),
    ("events", "id, type, received"),
    (
        "mail_queue",
        "id, kind, recipient, purchase, dedupe, created, sent, attempts, last_error, next_attempt",
    ),
    ("opt_outs", "email, at"),
    ("libraries", "id, email, created"),
    (
        "withdrawals",
        "purchase, email, payment_intent, requested, name, reason, decision, waived, refund, \
         refund_status, refused, last_error, settled",
    ),
    (
        "followers",
        "email, id, asked, confirmed, left_at, source, consent",
    ),
    ("readers", "email, kindle, feeds_from"),
    (
        "gifts",
        "purchase, buyer, recipient, deliverable, message, send_at, send_on, unread_day",
    ),
    ("visits", "day, kind, product, source, count"),
];

/// A table's rows, each value an integer, a text or nothing.
pub(in crate::state) type Rows = Vec<Vec<rusqlite::types::Value>>;

/// A state as read for `shop serve --migrate-state-to`.
pub(in crate::state) struct Export {
    /// Each of [`TABLES`], with its rows.
    pub tables: Vec<(&'static str, Rows)>,
    /// The rate limits' hits: each a key's digest and when (Unix seconds).
    /// PostgreSQL keeps them otherwise (a row per key), so they are not one
    /// of [`TABLES`].
    pub rate_hits: Vec<(String, i64)>,
}

/// Every row of every table, read in one transaction (one moment's state).
pub(in crate::state) fn export(path: &Path) -> Result<Export, StateError> {
    let error = |source| StateError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let mut connection = Connection::open(path).map_err(error)?;
    connection
        .execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(error)?;
    let transaction = connection.transaction().map_err(error)?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, columns) in TABLES {
        let mut statement = transaction
            .prepare(&format!("SELECT {columns} FROM {table}"))
            .map_err(error)?;
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| (0..width).map(|index| row.get(index)).collect())
            .map_err(error)?
            .collect::<rusqlite::Result<Rows>>()
            .map_err(error)?;
        tables.push((*table, rows));
    }
    let rate_hits = transaction
        .prepare("SELECT key, at FROM rate_hits ORDER BY key, at")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, i64)>>>()
        })
        .map_err(error)?;
    Ok(Export { tables, rate_hits })
}

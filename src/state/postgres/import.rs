//! Moving a server's state from SQLite (`--migrate-state-to`): every table
//! copied in one transaction and checked before it commits.

use tokio_postgres::types::ToSql;

use super::Postgres;
use crate::state::{StateError, sqlite};

impl Postgres {
    /// Writes a SQLite state (from [`crate::state::sqlite::export`]) into this
    /// empty database in one transaction, checking before it commits that
    /// every table holds the same rows, the downloads the same counts and
    /// the rate limits the same hits.
    pub(in crate::state) async fn import(
        &self,
        state: sqlite::Export,
    ) -> Result<Vec<(&'static str, usize)>, StateError> {
        let sqlite::Export { tables, rate_hits } = state;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let every_table = sqlite::TABLES
            .iter()
            .map(|(table, _)| *table)
            .chain(["rate_limits"]);
        for table in every_table {
            let rows: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await?
                .get(0);
            if rows > 0 {
                return Err(StateError::NotEmpty { table });
            }
        }
        let mut moved = Vec::with_capacity(tables.len());
        for ((table, rows), (_, columns)) in tables.iter().zip(sqlite::TABLES) {
            let width = columns.split(',').count();
            let placeholders: Vec<String> = (1..=width).map(|index| format!("${index}")).collect();
            let statement = tx
                .prepare(&format!(
                    "INSERT INTO {table} ({columns}) VALUES ({})",
                    placeholders.join(", ")
                ))
                .await?;
            for row in rows {
                let values: Vec<Value> = row
                    .iter()
                    .zip(statement.params())
                    .map(|(value, kind)| Value::of(value, kind))
                    .collect();
                let params: Vec<&(dyn ToSql + Sync)> = values
                    .iter()
                    .map(|value| value as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&statement, &params).await?;
            }
            let found: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await?
                .get(0);
            if found != rows.len() as i64 {
                return Err(StateError::Mismatch {
                    table,
                    expected: format!("{} rows", rows.len()),
                    found: format!("{found} rows"),
                });
            }
            moved.push((*table, rows.len()));
        }
        // What every file has used, summed, as SQLite has it.
        let downloads = &tables[1].1;
        let sum = |index: usize| -> i64 {
            downloads
                .iter()
                .map(|row| match row[index] {
                    rusqlite::types::Value::Integer(value) => value,
                    _ => 0,
                })
                .sum()
        };
        let expected = format!("{} downloads and {} bytes", sum(4), sum(5));
        let row = tx
            .query_one(
                "SELECT COALESCE(SUM(count), 0)::BIGINT, COALESCE(SUM(bytes), 0)::BIGINT FROM downloads",
                &[],
            )
            .await?;
        let found = format!(
            "{} downloads and {} bytes",
            row.get::<_, i64>(0),
            row.get::<_, i64>(1)
        );
        if found != expected {
            return Err(StateError::Mismatch {
                table: "downloads",
                expected,
                found,
            });
        }
        // A key's hits in one row, as `allow` keeps them.
        let (keys, hits): (Vec<String>, Vec<i64>) = rate_hits.into_iter().unzip();
        tx.execute(
            "INSERT INTO rate_limits (key, hits, last)
             SELECT h.key, array_agg(h.at ORDER BY h.at), MAX(h.at)
             FROM unnest($1::text[], $2::bigint[]) AS h (key, at) GROUP BY h.key",
            &[&keys, &hits],
        )
        .await?;
        let found: i64 = tx
            .query_one(
                "SELECT COALESCE(SUM(cardinality(hits)), 0)::BIGINT FROM rate_limits",
                &[],
            )
            .await?
            .get(0);
        if found != hits.len() as i64 {
            return Err(StateError::Mismatch {
                table: "rate_limits",
                expected: format!("{} hits", hits.len()),
                found: format!("{found} hits"),
            });
        }
        moved.push(("rate_hits", hits.len()));
        // New messages are numbered after the moved ones.
        tx.execute(
            "SELECT setval('mail_queue_id_seq', GREATEST((SELECT MAX(id) FROM mail_queue), 0) + 1, false)",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(moved)
    }
}

/// A SQLite value as the PostgreSQL column it goes to wants it.
#[derive(Debug)]
enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
}

impl Value {
    fn of(value: &rusqlite::types::Value, kind: &tokio_postgres::types::Type) -> Value {
        use rusqlite::types::Value as Sqlite;
        if *kind == tokio_postgres::types::Type::INT8 {
            return Value::Integer(match value {
                Sqlite::Integer(value) => Some(*value),
                Sqlite::Real(value) => Some(*value as i64),
                Sqlite::Text(text) => text.parse().ok(),
                Sqlite::Null | Sqlite::Blob(_) => None,
            });
        }
        Value::Text(match value {
            Sqlite::Integer(value) => Some(value.to_string()),
            Sqlite::Real(value) => Some(value.to_string()),
            Sqlite::Text(text) => Some(text.clone()),
            Sqlite::Blob(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Sqlite::Null => None,
        })
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        kind: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Integer(value) => value.to_sql(kind, out),
            Value::Text(value) => value.to_sql(kind, out),
        }
    }

    fn accepts(kind: &tokio_postgres::types::Type) -> bool {
        <Option<i64> as ToSql>::accepts(kind) || <Option<String> as ToSql>::accepts(kind)
    }

    tokio_postgres::types::to_sql_checked!();
}

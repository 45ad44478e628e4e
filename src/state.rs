//! The server's embedded database (SQLite in WAL mode under `.shop/`):
//! purchases seen, download counts, grants, revocations, webhook events
//! seen, and the outgoing mail queue.
//!
//! Every write goes through one writer thread that runs whatever writes are
//! waiting in a single transaction (each in its own savepoint) and answers
//! them only after that transaction is durably committed: a download is
//! counted on disk before its redirect or first byte leaves, and many
//! concurrent downloads share one fsync. The single writer also makes the
//! download limit exact under any concurrency.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// Most writes committed together.
const BATCH: usize = 512;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS purchases (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    payment_intent TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS purchases_email ON purchases (email);
CREATE INDEX IF NOT EXISTS purchases_payment_intent ON purchases (payment_intent);
CREATE TABLE IF NOT EXISTS downloads (
    purchase TEXT NOT NULL,
    version TEXT NOT NULL,
    file TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (purchase, version, file)
);
CREATE TABLE IF NOT EXISTS grants (
    purchase TEXT PRIMARY KEY,
    extra INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    payment_intent TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    received INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mail_queue (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    purchase TEXT,
    dedupe TEXT UNIQUE,
    created INTEGER NOT NULL,
    sent INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS opt_outs (
    email TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
";

/// A purchase the server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub id: String,
    pub email: String,
    pub product: String,
    pub version: String,
    pub payment_intent: Option<String>,
    pub created: i64,
}

/// What counting a download found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Counted; this many downloads of the file are left.
    Counted {
        left: u32,
    },
    Exhausted,
    Revoked,
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: runs on the writer's connection, returns whether it succeeded
/// (its savepoint is kept or rolled back) and how to answer after commit.
/// Runs a write; says whether it succeeded and how to answer after commit.
type Run = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

struct Job {
    run: Run,
    /// A single statement, or reads then one statement: nothing to roll
    /// back on failure, so it needs no savepoint of its own.
    atomic: bool,
}

/// The database: one writer thread, one reading connection.
pub struct Db {
    path: PathBuf,
    writer: std::sync::mpsc::Sender<Job>,
    reader: Mutex<Connection>,
    /// Purchases never change once known; keep them off the database's path.
    purchases: std::sync::RwLock<std::collections::HashMap<String, Purchase>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, StateError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StateError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let error = |source: rusqlite::Error| StateError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let writer = Connection::open(path).map_err(error)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(error)?;
        writer.execute_batch(SCHEMA).map_err(error)?;
        // Databases made before mail was sent lack the retry column.
        let has_next_attempt: bool = writer
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('mail_queue') WHERE name = 'next_attempt'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(error)?
            > 0;
        if !has_next_attempt {
            writer
                .execute_batch(
                    "ALTER TABLE mail_queue ADD COLUMN next_attempt INTEGER NOT NULL DEFAULT 0",
                )
                .map_err(error)?;
        }
        let reader = Connection::open(path).map_err(error)?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = true;")
            .map_err(error)?;
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("shop-db-writer".into())
            .spawn(move || write_loop(writer, receiver))
            .map_err(|source| StateError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Db {
            path: path.to_owned(),
            writer: sender,
            reader: Mutex::new(reader),
            purchases: Default::default(),
        })
    }

    /// Runs `write` in the next committed batch; answers after the commit.
    pub async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        self.submit(write, false).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        atomic: bool,
    ) -> Result<T, StateError> {
        let (sender, receiver) = tokio::sync::oneshot::channel::<Result<T, String>>();
        let run = Box::new(move |connection: &Connection| {
            let result = write(connection).map_err(|error| error.to_string());
            let succeeded = result.is_ok();
            let reply: Reply = Box::new(move |committed: Result<(), String>| {
                let _ = sender.send(committed.and(result));
            });
            (succeeded, reply)
        });
        let job = Job { run, atomic };
        self.writer.send(job).map_err(|_| StateError::Closed)?;
        match receiver.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(StateError::Write {
                path: self.path.clone(),
                message,
            }),
            Err(_) => Err(StateError::Closed),
        }
    }

    /// Runs a read on the reading connection.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let connection = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(&connection).map_err(|source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    // ---- purchases

    pub async fn upsert_purchase(&self, purchase: Purchase) -> Result<(), StateError> {
        self.purchases
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&purchase.id);
        self.write(move |connection| insert_purchase(connection, &purchase))
            .await
    }

    pub fn purchase(&self, id: &str) -> Result<Option<Purchase>, StateError> {
        if let Some(known) = self
            .purchases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(Some(known.clone()));
        }
        let found = self.read(|connection| {
            connection
                .query_row(
                    "SELECT id, email, product, version, payment_intent, created FROM purchases WHERE id = ?1",
                    [id],
                    purchase_row,
                )
                .optional()
        })?;
        if let Some(purchase) = &found {
            self.purchases
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(purchase.id.clone(), purchase.clone());
        }
        Ok(found)
    }

    pub fn purchases_of(&self, email: &str) -> Result<Vec<Purchase>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, email, product, version, payment_intent, created FROM purchases
                 WHERE email = ?1 COLLATE NOCASE ORDER BY created",
            )?;
            let rows = statement.query_map([email], purchase_row)?;
            rows.collect()
        })
    }

    // ---- downloads

    /// Counts one download of `file` of `version` if the limit (plus any
    /// grant) allows and the purchase is not revoked.
    pub async fn count_download(
        &self,
        purchase: &Purchase,
        version: &str,
        file: &str,
        limit: u32,
    ) -> Result<Count, StateError> {
        let (id, intent, version, file) = (
            purchase.id.clone(),
            purchase.payment_intent.clone(),
            version.to_owned(),
            file.to_owned(),
        );
        self.submit(
            move |connection| {
            // One statement for what counting needs to know: it runs on the
            // writer, the one place every download passes through.
            let (revoked, extra, used): (bool, u32, u32) = connection
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM revoked WHERE payment_intent = ?1),
                            COALESCE((SELECT extra FROM grants WHERE purchase = ?2), 0),
                            COALESCE((SELECT count FROM downloads WHERE purchase = ?2 AND version = ?3 AND file = ?4), 0)",
                )?
                .query_row(params![intent, id, version, file], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            if revoked {
                return Ok(Count::Revoked);
            }
            let allowed = limit + extra;
            if used >= allowed {
                return Ok(Count::Exhausted);
            }
            connection.prepare_cached(
                "INSERT INTO downloads (purchase, version, file, count) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (purchase, version, file) DO UPDATE SET count = count + 1",
            )?
            .execute(params![id, version, file])?;
            Ok(Count::Counted {
                left: allowed - used - 1,
            })
        },
            true,
        )
        .await
    }

    /// Downloads used and allowed of each file, for the download page.
    pub fn downloads(
        &self,
        purchase: &Purchase,
        version: &str,
        file: &str,
        limit: u32,
    ) -> Result<(u32, u32), StateError> {
        self.read(|connection| {
            let allowed = limit + extra(connection, &purchase.id)?;
            Ok((used(connection, &purchase.id, version, file)?, allowed))
        })
    }

    pub fn revoked(&self, purchase: &Purchase) -> Result<bool, StateError> {
        self.read(|connection| is_revoked(connection, purchase.payment_intent.as_deref()))
    }

    /// Adds `extra` downloads to every file of a purchase.
    pub async fn grant(&self, purchase: &str, extra: u32) -> Result<u32, StateError> {
        let purchase = purchase.to_owned();
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO grants (purchase, extra) VALUES (?1, ?2)
                 ON CONFLICT (purchase) DO UPDATE SET extra = extra + excluded.extra",
                params![purchase, extra],
            )?;
            self::extra(connection, &purchase)
        })
        .await
    }

    // ---- webhook events

    /// Records event `id` and runs `act` in the same transaction, once per
    /// id. Returns false (and does nothing) for an event already recorded.
    pub async fn handle_event<T: Send + 'static>(
        &self,
        id: &str,
        kind: &str,
        now: i64,
        act: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Option<T>, StateError> {
        let (id, kind) = (id.to_owned(), kind.to_owned());
        self.write(move |connection| {
            let inserted = connection.execute(
                "INSERT OR IGNORE INTO events (id, type, received) VALUES (?1, ?2, ?3)",
                params![id, kind, now],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
            act(connection).map(Some)
        })
        .await
    }

    /// Marks a message sent: only after the transport accepted it.
    pub async fn mail_sent(&self, id: i64, now: i64) -> Result<(), StateError> {
        self.write(move |connection| {
            connection.execute(
                "UPDATE mail_queue SET sent = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Records a failed attempt; the next one waits longer each time
    /// (`base_seconds`, doubling, at most an hour).
    pub async fn mail_failed(
        &self,
        id: i64,
        now: i64,
        error: String,
        base_seconds: i64,
    ) -> Result<(), StateError> {
        self.write(move |connection| {
            connection.execute(
                "UPDATE mail_queue SET attempts = attempts + 1, last_error = ?3,
                 next_attempt = ?2 + MIN(3600, ?4 * (1 << MIN(attempts, 7))) WHERE id = ?1",
                params![id, now, error, base_seconds],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that `email` wants no more update notices.
    pub async fn opt_out(&self, email: &str, now: i64) -> Result<(), StateError> {
        let email = email.to_ascii_lowercase();
        self.write(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO opt_outs (email, at) VALUES (?1, ?2)",
                params![email, now],
            )?;
            Ok(())
        })
        .await
    }

    pub fn opt_outs(&self) -> Result<std::collections::HashSet<String>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare("SELECT email FROM opt_outs")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            rows.collect()
        })
    }

    pub fn events_seen(&self) -> Result<i64, StateError> {
        self.read(|connection| {
            connection.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        })
    }

    /// Unsent messages whose next attempt is due, oldest first.
    pub fn due_mail(&self, now: i64, limit: u32) -> Result<Vec<QueuedMail>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, kind, recipient, purchase, created FROM mail_queue
                 WHERE sent IS NULL AND next_attempt <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = statement.query_map(params![now, limit], |row| {
                Ok(QueuedMail {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    recipient: row.get(2)?,
                    purchase: row.get(3)?,
                    created: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// A message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: i64,
    /// `receipt` or `links`.
    pub kind: String,
    pub recipient: String,
    pub purchase: Option<String>,
    pub created: i64,
}

/// Records a purchase (inside a write).
pub fn insert_purchase(connection: &Connection, purchase: &Purchase) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO purchases (id, email, product, version, payment_intent, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET email = excluded.email, payment_intent = excluded.payment_intent",
        params![purchase.id, purchase.email, purchase.product, purchase.version, purchase.payment_intent, purchase.created],
    )?;
    Ok(())
}

/// Queues a message once per `dedupe` key (inside a write).
pub fn queue_mail(
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
pub fn revoke(
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

fn purchase_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Purchase> {
    Ok(Purchase {
        id: row.get(0)?,
        email: row.get(1)?,
        product: row.get(2)?,
        version: row.get(3)?,
        payment_intent: row.get(4)?,
        created: row.get(5)?,
    })
}

fn is_revoked(connection: &Connection, intent: Option<&str>) -> rusqlite::Result<bool> {
    let Some(intent) = intent else {
        return Ok(false);
    };
    connection
        .query_row(
            "SELECT 1 FROM revoked WHERE payment_intent = ?1",
            [intent],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
}

fn extra(connection: &Connection, purchase: &str) -> rusqlite::Result<u32> {
    connection
        .query_row(
            "SELECT extra FROM grants WHERE purchase = ?1",
            [purchase],
            |row| row.get(0),
        )
        .optional()
        .map(|extra| extra.unwrap_or(0))
}

fn used(
    connection: &Connection,
    purchase: &str,
    version: &str,
    file: &str,
) -> rusqlite::Result<u32> {
    connection
        .prepare_cached(
            "SELECT count FROM downloads WHERE purchase = ?1 AND version = ?2 AND file = ?3",
        )?
        .query_row(params![purchase, version, file], |row| row.get(0))
        .optional()
        .map(|count| count.unwrap_or(0))
}

/// The writer: waits for a write, takes every other waiting write, runs
/// them in one transaction, commits, then answers them all.
fn write_loop(mut connection: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let mut transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in batch.drain(..) {
                if job.atomic {
                    let (_, reply) = (job.run)(&transaction);
                    replies.push(reply);
                    continue;
                }
                let mut savepoint = transaction.savepoint()?;
                let (succeeded, reply) = (job.run)(&savepoint);
                replies.push(reply);
                // A failed write leaves nothing behind; the others commit.
                savepoint.set_drop_behavior(if succeeded {
                    rusqlite::DropBehavior::Commit
                } else {
                    rusqlite::DropBehavior::Rollback
                });
                drop(savepoint);
            }
            transaction.commit()
        })();
        let committed = outcome.map_err(|error| error.to_string());
        for reply in replies {
            reply(committed.clone());
        }
        // Jobs never run when the transaction could not begin: answer them.
        for job in batch {
            drop(job);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the server's database `{}`", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot write to the server's database `{}`: {message}", path.display())]
    Write { path: PathBuf, message: String },
    #[error("cannot create `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the server's database writer has stopped")]
    Closed,
}

impl crate::error::Hint for StateError {
    fn hint(&self) -> String {
        match self {
            StateError::Sqlite { .. } => {
                "check that `.shop/` is writable, and that no other program holds the file".into()
            }
            StateError::Write { .. } => "check the disk space and permissions of `.shop/`".into(),
            StateError::Io { .. } => "check that the store's folder is writable".into(),
            StateError::Closed => "restart `shop serve`".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase() -> Purchase {
        Purchase {
            id: "cs_test_1".into(),
            email: "ada@example.com".into(),
            product: "guide".into(),
            version: "1.0.0".into(),
            payment_intent: Some("pi_1".into()),
            created: 1,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_limit_is_exact_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let db = std::sync::Arc::new(Db::open(&dir.path().join("state.db")).unwrap());
        db.upsert_purchase(purchase()).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.count_download(&purchase(), "1.0.0", "guide.pdf", 5)
                    .await
                    .unwrap()
            }));
        }
        let mut counted = 0;
        for task in tasks {
            if let Count::Counted { .. } = task.await.unwrap() {
                counted += 1;
            }
        }
        assert_eq!(counted, 5);
        assert_eq!(
            db.downloads(&purchase(), "1.0.0", "guide.pdf", 5).unwrap(),
            (5, 5)
        );
        assert_eq!(db.grant("cs_test_1", 2).await.unwrap(), 2);
        assert_eq!(
            db.count_download(&purchase(), "1.0.0", "guide.pdf", 5)
                .await
                .unwrap(),
            Count::Counted { left: 1 }
        );
        // Another file, another version: counted apart.
        assert_eq!(
            db.count_download(&purchase(), "1.1.0", "guide.pdf", 5)
                .await
                .unwrap(),
            Count::Counted { left: 6 }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_are_handled_once_and_revocations_stick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let db = Db::open(&path).unwrap();
        db.upsert_purchase(purchase()).await.unwrap();
        let first = db
            .handle_event("evt_1", "charge.refunded", 5, |c| {
                revoke(c, "pi_1", "refunded", 5)
            })
            .await
            .unwrap();
        let again = db
            .handle_event("evt_1", "charge.refunded", 6, |_| Ok(()))
            .await
            .unwrap();
        assert_eq!((first, again), (Some(()), None));
        assert!(db.revoked(&purchase()).unwrap());
        assert_eq!(
            db.count_download(&purchase(), "1.0.0", "guide.pdf", 5)
                .await
                .unwrap(),
            Count::Revoked
        );
        drop(db);
        // Durable: a new server sees the same.
        let db = Db::open(&path).unwrap();
        assert_eq!(db.events_seen().unwrap(), 1);
        assert!(db.revoked(&purchase()).unwrap());
    }
}

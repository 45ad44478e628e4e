//! The SQLite back end (WAL mode, `.shop/state.db`): one server.
//!
//! Every write goes through one writer thread that runs whatever writes are
//! waiting in a single transaction (each that can fail half-way in its own
//! savepoint) and answers them only after that transaction is committed:
//! a download is counted before its redirect or first byte leaves, and many
//! concurrent downloads share one commit. A batch with anything besides
//! download charges in it (a purchase, an event, a queued mail) is fsynced
//! before it is answered; a batch of charges only is written to the log
//! without waiting for the disk (`synchronous = NORMAL` for that commit),
//! so that a killed server keeps every count and only a power loss can
//! forget the last moment's counts, which gives a buyer a download back
//! and never takes one away. The next fsynced commit or checkpoint makes
//! them durable too. The single
//! writer also makes the download rule (`crate::downloads`) exact under any
//! concurrency: each charge reads and updates the usage in one step.
//!
//! Reads use a small pool of their own connections (WAL lets them run
//! beside the writer). Point reads by key are microseconds and run where
//! they are called; reads that walk a table (`read_blocking`) go to tokio's
//! blocking threads. The schema is versioned (`PRAGMA user_version`) and
//! migrated forward at open.
//!
//! Here the operations; beside them `writer` (the writer thread and what
//! it knows), `schema` (the migrations), `rows` (statements operations
//! share) and `export` (the state read whole, to move it).

mod export;
mod followers;
mod readers;
mod rows;
mod schema;
mod withdrawals;
mod writer;

pub(super) use export::{Export, TABLES, export};
use rows::{
    extra, gift_row, insert_purchase, is_revoked, purchase_row, queue_mail, queue_receipt, revoke,
    seen, usage,
};
pub use schema::SCHEMA_VERSION;
use schema::migrate;
use writer::{Job, JobKind, Known, KnownFile, Reply, checkpoint_loop, write_loop};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Charge, Entitlement, Event, FileKey, GIFT_MAIL, GiftState, MailState, QueuedMail, StateError,
    VisitCount, limits,
};
use crate::downloads::{self, Ask, Usage};
use crate::retry;

/// Reading connections.
const READERS: usize = 4;

/// The database: one writer thread, a few reading connections.
pub struct Sqlite {
    path: PathBuf,
    writer: std::sync::mpsc::Sender<Job>,
    readers: Vec<Mutex<Connection>>,
    /// Purchases never change once known; keep them off the database's path.
    purchases: std::sync::RwLock<std::collections::HashMap<String, Arc<Entitlement>>>,
    /// Files whose redirects the writer found used up.
    used_up: super::UsedUp,
    /// Dropped with the database: the checkpoint thread then ends.
    _checkpoints: std::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Sqlite {
    /// Opens (or creates) the database at `path`, migrating its schema.
    pub fn open(path: &Path) -> Result<Sqlite, StateError> {
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
        let mut writer = Connection::open(path).map_err(error)?;
        // Checkpoints run on their own thread (below), not in a commit that
        // downloads wait for.
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 PRAGMA wal_autocheckpoint = 0;",
            )
            .map_err(error)?;
        migrate(&mut writer).map_err(error)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open(path).map_err(error)?;
            reader
                .execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = true;")
                .map_err(error)?;
            readers.push(Mutex::new(reader));
        }
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let spawn_error = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        std::thread::Builder::new()
            .name("shop-db-writer".into())
            .spawn(move || write_loop(writer, receiver))
            .map_err(spawn_error)?;
        let checkpointer = Connection::open(path).map_err(error)?;
        checkpointer
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(error)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("shop-db-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, stopped))
            .map_err(spawn_error)?;
        Ok(Sqlite {
            path: path.to_owned(),
            writer: sender,
            readers,
            purchases: Default::default(),
            used_up: Default::default(),
            _checkpoints: stop,
        })
    }

    /// Runs `write` in the next committed batch; answers after the commit.
    pub async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        self.submit(move |connection, _| write(connection), JobKind::Other)
            .await
    }

    async fn submit<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection, &mut Known) -> rusqlite::Result<T> + Send + 'static,
        kind: JobKind,
    ) -> Result<T, StateError> {
        let (sender, receiver) = tokio::sync::oneshot::channel::<Result<T, String>>();
        let run = Box::new(move |connection: &Connection, standing: &mut Known| {
            let result = write(connection, standing).map_err(|error| error.to_string());
            let succeeded = result.is_ok();
            let reply: Reply = Box::new(move |committed: Result<(), String>| {
                let _ = sender.send(committed.and(result));
            });
            (succeeded, reply)
        });
        let job = Job { run, kind };
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

    /// Runs a short read (a lookup by key) on a reading connection.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        // The first free connection, or wait for one chosen by thread.
        let connection = self
            .readers
            .iter()
            .find_map(|reader| reader.try_lock().ok())
            .unwrap_or_else(|| {
                let index = thread_index() % self.readers.len();
                self.readers[index]
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            });
        read(&connection).map_err(|source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs a read that walks a table on tokio's blocking threads.
    pub async fn read_blocking<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read(read))
            .await
            .map_err(|_| StateError::Closed)?
    }

    // ---- purchases

    /// Records a purchase (its email and payment may have changed), noting
    /// when the server first saw it.
    pub async fn upsert_purchase(
        &self,
        purchase: Entitlement,
        now: i64,
    ) -> Result<i64, StateError> {
        self.purchases
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&purchase.id);
        self.write(move |connection| {
            insert_purchase(connection, &purchase, now)?;
            seen(connection, &purchase.id).map(|seen| seen.unwrap_or(now))
        })
        .await
    }

    pub async fn purchase(&self, id: &str) -> Result<Option<Arc<Entitlement>>, StateError> {
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
                    "SELECT id, email, product, version, payment_intent, created, amount, currency, discount, tax FROM purchases WHERE id = ?1",
                    [id],
                    purchase_row,
                )
                .optional()
        })?;
        Ok(found.map(|purchase| {
            let purchase = Arc::new(purchase);
            self.purchases
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(purchase.id.clone(), purchase.clone());
            purchase
        }))
    }

    /// When the server first saw purchase `id` (Unix seconds), if it has.
    pub async fn seen(&self, id: &str) -> Result<Option<i64>, StateError> {
        self.read(|connection| seen(connection, id))
    }

    /// Every purchase the server knows, for `shop trace`.
    pub async fn purchases_starting(&self, prefix: String) -> Result<Vec<Entitlement>, StateError> {
        self.read(move |connection| {
            let mut statement = connection.prepare(
                "SELECT id, email, product, version, payment_intent, created, amount, currency, discount, tax
                 FROM purchases WHERE id >= ?1 AND (?2 = '' OR id < ?2)",
            )?;
            let rows = statement.query_map(params![prefix, super::after_prefix(&prefix)], purchase_row)?;
            rows.collect()
        })
    }

    pub async fn new_library(&self, id: &str, email: &str, now: i64) -> Result<(), StateError> {
        let (id, email) = (id.to_owned(), email.to_owned());
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO libraries (id, email, created) VALUES (?1, ?2, ?3)",
                params![id, email, now],
            )?;
            Ok(())
        })
        .await
    }

    /// The address a library was made for.
    pub async fn library_email(&self, id: &str) -> Result<Option<String>, StateError> {
        self.read(|connection| {
            connection
                .query_row("SELECT email FROM libraries WHERE id = ?1", [id], |row| {
                    row.get(0)
                })
                .optional()
        })
    }

    /// The purchases of `email` that are not refunded or disputed.
    pub async fn purchases_of(
        self: &std::sync::Arc<Self>,
        email: &str,
    ) -> Result<Vec<Entitlement>, StateError> {
        let email = email.to_owned();
        self.read_blocking(move |connection| {
            let mut statement = connection.prepare(
                "SELECT id, email, product, version, payment_intent, created, amount, currency, discount, tax FROM purchases
                 WHERE email = ?1 COLLATE NOCASE
                   AND NOT EXISTS (SELECT 1 FROM revoked WHERE revoked.payment_intent = purchases.payment_intent)
                 ORDER BY created",
            )?;
            let rows = statement.query_map([email], purchase_row)?;
            rows.collect()
        })
        .await
    }

    // ---- downloads

    /// What a file of a purchase has used, and the grant on top of the limit.
    pub async fn usage(&self, key: &FileKey) -> Result<(Usage, u32), StateError> {
        self.read(|connection| Ok((usage(connection, key)?, extra(connection, &key.purchase)?)))
    }

    /// This server's files found used up (see [`super::Db::redirects_used_up`]).
    pub(super) fn used_up(&self) -> &super::UsedUp {
        &self.used_up
    }

    /// One ask of the download rule, decided and written by the writer: the
    /// file's standing from what the writer knows, [`downloads::apply`],
    /// then one statement when it changed.
    pub(super) async fn charge(&self, key: FileKey, ask: Ask) -> Result<Charge, StateError> {
        let used_up = self.used_up.clone();
        self.submit(
            move |connection, known| {
                let file = known.file(connection, &key)?;
                let mut standing = downloads::Standing {
                    usage: file.usage,
                    last_redirect: file.last_redirect,
                    extra: 0,
                    revoked: false,
                };
                // A refund gives bytes back whatever the payment's state.
                if !matches!(ask, Ask::Refund { .. }) {
                    standing.revoked = known.is_revoked(connection, key.payment_intent.as_deref())?;
                    standing.extra = known.extra(connection, &key.purchase)?;
                }
                let decision = downloads::apply(&mut standing, ask);
                if decision.changed {
                    connection
                        .prepare_cached(
                            "INSERT INTO downloads (purchase, product, version, file, bytes, count, last_redirect)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                             ON CONFLICT (purchase, product, version, file) DO UPDATE
                             SET bytes = excluded.bytes, count = excluded.count,
                                 last_redirect = excluded.last_redirect",
                        )?
                        .execute(params![
                            key.purchase,
                            key.product,
                            key.version,
                            key.file,
                            standing.usage.bytes as i64,
                            standing.usage.whole,
                            standing.last_redirect
                        ])?;
                    let file = KnownFile {
                        usage: standing.usage,
                        last_redirect: standing.last_redirect,
                    };
                    known.set_file(&key, file);
                }
                if decision.used_up {
                    used_up.add([key.clone()]);
                }
                Ok(decision.charge)
            },
            JobKind::Charge,
        )
        .await
    }

    pub async fn is_revoked(&self, payment_intent: &str) -> Result<bool, StateError> {
        self.read(|connection| is_revoked(connection, Some(payment_intent)))
    }

    /// Reopens the downloads of a refunded or disputed payment.
    pub async fn reinstate(&self, payment_intent: &str) -> Result<(), StateError> {
        let intent = payment_intent.to_owned();
        self.write(move |connection| {
            connection.execute("DELETE FROM revoked WHERE payment_intent = ?1", [intent])?;
            Ok(())
        })
        .await
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
    /// id. Returns `None` (and does nothing) for an event already recorded.
    async fn handle_event<T: Send + 'static>(
        &self,
        event: &Event<'_>,
        act: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Option<T>, StateError> {
        let (id, kind, now) = (event.id.to_owned(), event.kind.to_owned(), event.received);
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

    pub async fn record_sale(
        &self,
        event: &Event<'_>,
        purchase: Option<Entitlement>,
    ) -> Result<Option<bool>, StateError> {
        let now = event.received;
        self.handle_event(event, move |connection| {
            let Some(purchase) = purchase else {
                return Ok(false);
            };
            // A refund may have come first: no receipt for it.
            Ok(queue_receipt(connection, &purchase, now)?.is_none())
        })
        .await
    }

    pub async fn record_refund(
        &self,
        event: &Event<'_>,
        revoke: Option<(&str, &'static str)>,
    ) -> Result<Option<()>, StateError> {
        let now = event.received;
        let revoke = revoke.map(|(intent, reason)| (intent.to_owned(), reason));
        self.handle_event(event, move |connection| {
            if let Some((intent, reason)) = revoke {
                self::revoke(connection, &intent, reason, now)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn add_visits(&self, counts: Vec<VisitCount>) -> Result<(), StateError> {
        self.write(move |connection| {
            let mut statement = connection.prepare_cached(
                "INSERT INTO visits (day, kind, product, source, count) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (day, kind, product, source) DO UPDATE SET count = count + excluded.count",
            )?;
            for count in &counts {
                statement.execute(params![
                    count.day,
                    count.kind,
                    count.product,
                    count.source,
                    count.count as i64
                ])?;
            }
            Ok(())
        })
        .await
    }

    pub async fn visits(&self) -> Result<Vec<VisitCount>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT day, kind, product, source, count FROM visits
                 ORDER BY day, kind, product, source",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(VisitCount {
                    day: row.get(0)?,
                    kind: row.get(1)?,
                    product: row.get(2)?,
                    source: row.get(3)?,
                    count: row.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    pub async fn gift(&self, id: &str) -> Result<Option<GiftState>, StateError> {
        let id = id.to_owned();
        self.read(move |connection| {
            let Some(gift) = connection
                .query_row(
                    "SELECT buyer, recipient, deliverable, message, send_at, send_on, unread_day
                     FROM gifts WHERE purchase = ?1",
                    [&id],
                    gift_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let (sent, waiting) = connection.query_row(
                "SELECT MAX(sent), COUNT(*) FILTER (WHERE sent IS NULL) FROM mail_queue
                 WHERE purchase = ?1 AND kind = ?2",
                params![id, GIFT_MAIL],
                |row| Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, i64>(1)?)),
            )?;
            Ok(Some(GiftState {
                gift,
                sent,
                waiting: waiting > 0,
            }))
        })
    }

    pub async fn resend_gift(&self, id: &str, now: i64) -> Result<bool, StateError> {
        let id = id.to_owned();
        self.write(move |connection| {
            let waiting: i64 = connection.query_row(
                "SELECT COUNT(*) FROM mail_queue WHERE purchase = ?1 AND kind = ?2 AND sent IS NULL",
                params![id, GIFT_MAIL],
                |row| row.get(0),
            )?;
            if waiting > 0 {
                return Ok(false);
            }
            let inserted = connection.execute(
                "INSERT OR IGNORE INTO mail_queue (kind, recipient, purchase, dedupe, created)
                 SELECT ?1, purchases.email, purchases.id, ?2, ?3
                 FROM purchases JOIN gifts ON gifts.purchase = purchases.id
                 WHERE purchases.id = ?4 AND gifts.deliverable = 1",
                params![GIFT_MAIL, format!("{GIFT_MAIL}:{id}:{now}"), now, id],
            )?;
            Ok(inserted > 0)
        })
        .await
    }

    pub async fn queue_links(&self, email: &str, now: i64) -> Result<(), StateError> {
        let email = email.to_owned();
        self.write(move |connection| {
            queue_mail(connection, "links", &email, None, None, now).map(drop)
        })
        .await
    }

    pub async fn queue_receipts(
        &self,
        purchases: Vec<Entitlement>,
        now: i64,
    ) -> Result<usize, StateError> {
        self.write(move |connection| {
            let mut queued = 0;
            for purchase in &purchases {
                if queue_receipt(connection, purchase, now)? == Some(true) {
                    queued += 1;
                }
            }
            Ok(queued)
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
        backoff: retry::Backoff,
    ) -> Result<(), StateError> {
        self.write(move |connection| {
            let failures: u32 = connection.query_row(
                "SELECT attempts + 1 FROM mail_queue WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )?;
            let wait = backoff.ceiling(failures).as_secs().max(1) as i64;
            connection.execute(
                "UPDATE mail_queue SET attempts = ?4, last_error = ?3, next_attempt = ?2 + ?5
                 WHERE id = ?1",
                params![id, now, error, failures, wait],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn opt_out(&self, email: &str, now: i64) -> Result<(), StateError> {
        let email = email.to_owned();
        self.write(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO opt_outs (email, at) VALUES (?1, ?2)",
                params![email, now],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn opt_outs(&self) -> Result<std::collections::HashSet<String>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare("SELECT email FROM opt_outs")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            rows.collect()
        })
    }

    pub async fn reachable(&self) -> Result<(), StateError> {
        self.read(|connection| connection.query_row("SELECT 1", [], |_| Ok(())))
    }

    pub async fn event_recorded(&self, id: &str) -> Result<bool, StateError> {
        let id = id.to_owned();
        self.read(move |connection| {
            connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE id = ?1)",
                [&id],
                |row| row.get(0),
            )
        })
    }

    pub async fn mail_queue(&self) -> Result<Vec<MailState>, StateError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT kind, recipient, purchase, attempts, sent FROM mail_queue ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(MailState {
                    kind: row.get(0)?,
                    recipient: row.get(1)?,
                    purchase: row.get(2)?,
                    attempts: row.get(3)?,
                    sent: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    pub async fn events_seen(&self) -> Result<i64, StateError> {
        self.read(|connection| {
            connection.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        })
    }

    /// Counts one request against every check if it fits them all (see
    /// [`Db::allow`](super::Db::allow)); forgets stale keys when `prune`.
    pub(super) async fn allow(
        &self,
        checks: Vec<limits::Check>,
        now: i64,
        prune: bool,
    ) -> Result<bool, StateError> {
        self.submit(
            move |connection, _| {
                if prune {
                    connection
                        .prepare_cached("DELETE FROM rate_hits WHERE at <= ?1")?
                        .execute([now - limits::LONGEST])?;
                }
                let mut hits = connection
                    .prepare_cached("SELECT at FROM rate_hits WHERE key = ?1 AND at > ?2")?;
                for check in &checks {
                    let found = hits
                        .query_map(params![check.key, check.since], |row| row.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()?;
                    if !limits::fits(check, &found).1 {
                        return Ok(false);
                    }
                }
                for check in &checks {
                    connection
                        .prepare_cached("DELETE FROM rate_hits WHERE key = ?1 AND at <= ?2")?
                        .execute(params![check.key, check.since])?;
                    connection
                        .prepare_cached("INSERT INTO rate_hits (key, at) VALUES (?1, ?2)")?
                        .execute(params![check.key, now])?;
                }
                Ok(true)
            },
            JobKind::Count,
        )
        .await
    }

    /// Unsent messages whose next attempt is due, oldest first. One server
    /// sends from a SQLite state, so nothing needs claiming: a message it
    /// was sending when it stopped is sent again when it starts.
    pub async fn claim_mail(
        self: &std::sync::Arc<Self>,
        now: i64,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StateError> {
        self.read_blocking(move |connection| {
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
        .await
    }
}

/// A small number per thread, to spread waits over the readers.
fn thread_index() -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    hasher.finish() as usize
}

#[cfg(test)]
mod tests {
    use super::schema::MIGRATIONS;
    use super::*;

    fn purchase() -> Entitlement {
        Entitlement {
            id: "cs_test_1".into(),
            email: "ada@example.com".into(),
            product: "guide".into(),
            version: "1.0.0".into(),
            payment_intent: Some("pi_1".into()),
            created: 1,
            paid: None,
            gift: None,
        }
    }

    fn key(version: &str) -> FileKey {
        FileKey::new(&purchase(), "guide", version, "guide.pdf")
    }

    /// The writer remembers what charges decide on; a grant written by
    /// another process (`shop token --grant`) is still seen at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_from_another_process_is_seen_by_the_next_charge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let db = Sqlite::open(&path).unwrap();
        assert_eq!(
            db.charge(
                key("1.0.0"),
                Ask::Redirect {
                    limit: 1,
                    size: 1000,
                    now: 10
                }
            )
            .await
            .unwrap(),
            Charge::Admitted
        );
        assert_eq!(
            db.charge(
                key("1.0.0"),
                Ask::Redirect {
                    limit: 1,
                    size: 1000,
                    now: 11
                }
            )
            .await
            .unwrap(),
            Charge::Exhausted
        );
        let other = Connection::open(&path).unwrap();
        other
            .execute(
                "INSERT INTO grants (purchase, extra) VALUES ('cs_test_1', 1)",
                [],
            )
            .unwrap();
        other
            .execute("INSERT INTO revoked (payment_intent, reason, at) VALUES ('pi_other', 'refunded', 1)", [])
            .unwrap();
        assert_eq!(
            db.charge(
                key("1.0.0"),
                Ask::Redirect {
                    limit: 1,
                    size: 1000,
                    now: 12
                }
            )
            .await
            .unwrap(),
            Charge::Admitted
        );
    }

    /// A database made by the first release (no versions, no retry column,
    /// counts by download) opens with its counts kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_database_is_migrated_with_its_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(MIGRATIONS[0]).unwrap();
            old.execute(
                "INSERT INTO purchases (id, email, product, version, payment_intent, created)
                 VALUES ('cs_test_1', 'ada@example.com', 'guide', '1.0.0', 'pi_1', 1)",
                [],
            )
            .unwrap();
            old.execute(
                "INSERT INTO downloads (purchase, version, file, count) VALUES ('cs_test_1', '1.0.0', 'guide.pdf', 4)",
                [],
            )
            .unwrap();
        }
        let db = Sqlite::open(&path).unwrap();
        let version: i64 = db
            .read(|c| c.query_row("PRAGMA user_version", [], |row| row.get(0)))
            .unwrap();
        assert_eq!(version as usize, SCHEMA_VERSION);
        let (usage, _) = db.usage(&key("1.0.0")).await.unwrap();
        assert_eq!(usage.left(5, 1000), 1);
        assert_eq!(
            db.charge(
                key("1.0.0"),
                Ask::Stream {
                    limit: 5,
                    size: 1000,
                    start: 0,
                    length: 1000
                }
            )
            .await
            .unwrap(),
            Charge::Admitted
        );
        assert_eq!(
            db.charge(
                key("1.0.0"),
                Ask::Stream {
                    limit: 5,
                    size: 1000,
                    start: 0,
                    length: 1000
                }
            )
            .await
            .unwrap(),
            Charge::Exhausted
        );
        drop(db);
        // Opening again runs nothing twice.
        Sqlite::open(&path).unwrap();
    }
}

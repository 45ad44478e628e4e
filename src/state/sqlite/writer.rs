//! The writer: one thread owns the write connection and runs every write
//! in batches, each batch one transaction (each write in a savepoint, but a
//! charge, which needs none); what it knows of downloads ([`Known`]) lets a
//! charge be one statement.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{extra, is_revoked};
use crate::downloads::Usage;
use crate::state::FileKey;

/// Most writes committed together.
const BATCH: usize = 512;

pub(super) type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Runs a write; says whether it succeeded and how to answer after commit.
type Run = Box<dyn FnOnce(&Connection, &mut Known) -> (bool, Reply) + Send>;

pub(super) struct Job {
    pub(super) run: Run,
    pub(super) kind: JobKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind {
    /// A charge: reads then one statement, nothing to roll back on failure
    /// (no savepoint), and it keeps [`Known`] up to date itself.
    Charge,
    /// A rate limit's count: it changes nothing a charge decides on, and
    /// like a charge it need not outlive a power loss.
    Count,
    /// Any other write: it may change what a charge decides on, so the
    /// writer forgets what it knew.
    Other,
}

/// What the writer knows of downloads, so that a charge needs one
/// statement rather than a read and a write. It stays exact: a write of
/// another kind empties it, as does a batch that fails to commit, and so
/// does a commit by any other connection (`shop token --grant` from the
/// command line), which `PRAGMA data_version` reveals at the start of each
/// batch, once the batch holds the write lock.
#[derive(Debug, Default)]
pub(super) struct Known {
    files: std::collections::HashMap<(String, String, String, String), KnownFile>,
    grants: std::collections::HashMap<String, u32>,
    revoked: std::collections::HashMap<String, bool>,
    data_version: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct KnownFile {
    pub(super) usage: Usage,
    pub(super) last_redirect: Option<i64>,
}

/// Entries kept before the writer starts afresh.
const STANDING_MAX: usize = 100_000;

impl Known {
    /// Forgets everything if another connection committed since the last
    /// look (inside a write transaction, so none can commit meanwhile).
    fn check_version(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        let version: i64 = connection
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        if self.data_version != Some(version) {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.files.clear();
        self.grants.clear();
        self.revoked.clear();
    }

    pub(super) fn file(
        &mut self,
        connection: &Connection,
        key: &FileKey,
    ) -> rusqlite::Result<KnownFile> {
        let id = key.id();
        if let Some(found) = self.files.get(&id) {
            return Ok(*found);
        }
        if self.files.len() > STANDING_MAX {
            self.clear();
        }
        let found = connection
            .prepare_cached(
                "SELECT bytes, count, last_redirect FROM downloads
                 WHERE purchase = ?1 AND product = ?2 AND version = ?3 AND file = ?4",
            )?
            .query_row(
                params![key.purchase, key.product, key.version, key.file],
                |row| {
                    Ok(KnownFile {
                        usage: Usage {
                            bytes: row.get::<_, i64>(0)?.max(0) as u64,
                            whole: row.get(1)?,
                        },
                        last_redirect: row.get(2)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        self.files.insert(id, found);
        Ok(found)
    }

    pub(super) fn set_file(&mut self, key: &FileKey, standing: KnownFile) {
        self.files.insert(key.id(), standing);
    }

    pub(super) fn extra(
        &mut self,
        connection: &Connection,
        purchase: &str,
    ) -> rusqlite::Result<u32> {
        if let Some(extra) = self.grants.get(purchase) {
            return Ok(*extra);
        }
        let extra = extra(connection, purchase)?;
        self.grants.insert(purchase.to_owned(), extra);
        Ok(extra)
    }

    pub(super) fn is_revoked(
        &mut self,
        connection: &Connection,
        intent: Option<&str>,
    ) -> rusqlite::Result<bool> {
        let Some(intent) = intent else {
            return Ok(false);
        };
        if let Some(revoked) = self.revoked.get(intent) {
            return Ok(*revoked);
        }
        let revoked = is_revoked(connection, Some(intent))?;
        self.revoked.insert(intent.to_owned(), revoked);
        Ok(revoked)
    }
}

/// Moves the write-ahead log into the database once a second, beside the
/// writer (a passive checkpoint never blocks it), until the database is
/// dropped.
pub(super) fn checkpoint_loop(connection: Connection, stop: std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stop.recv_timeout(std::time::Duration::from_secs(1))
    {
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!("cannot checkpoint the server's database: {error}");
        }
    }
}

/// The next write: a busy server sends the next one within microseconds
/// of a commit, so the writer looks again a few times, giving up its turn
/// in between, before it sleeps (a sleep and a wake-up per commit cost more
/// than the commit itself).
fn next_job(jobs: &std::sync::mpsc::Receiver<Job>) -> Option<Job> {
    for _ in 0..SPINS {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
        }
    }
    jobs.recv().ok()
}

/// How many times the writer looks for a write before it sleeps.
const SPINS: usize = 64;

/// How a commit waits for the disk (SQLite's `PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Synchronous {
    /// The log is fsynced at each commit.
    Full,
    /// The log is written at each commit and fsynced at checkpoints and
    /// at the next FULL commit: safe against a killed process, not against
    /// a power loss.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "PRAGMA synchronous = FULL;",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
        }
    }
}

/// The writer: waits for a write, takes every other waiting write, runs
/// them in one transaction, commits, then answers them all.
pub(super) fn write_loop(mut connection: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    let mut standing = Known::default();
    let mut synchronous = Synchronous::Full;
    while let Some(first) = next_job(&jobs) {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let wanted = if batch.iter().all(|job| job.kind != JobKind::Other) {
            Synchronous::Normal
        } else {
            Synchronous::Full
        };
        if wanted != synchronous {
            match connection.execute_batch(wanted.pragma()) {
                Ok(()) => synchronous = wanted,
                // Staying on FULL is always safe; NORMAL is only faster.
                Err(error) => tracing::warn!("cannot set the database's sync mode: {error}"),
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let mut transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            standing.check_version(&transaction)?;
            for job in batch.drain(..) {
                if job.kind == JobKind::Charge {
                    let (_, reply) = (job.run)(&transaction, &mut standing);
                    replies.push(reply);
                    continue;
                }
                if job.kind == JobKind::Other {
                    standing.clear();
                }
                let mut savepoint = transaction.savepoint()?;
                let (succeeded, reply) = (job.run)(&savepoint, &mut standing);
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
        if committed.is_err() {
            // What the cache learned was rolled back with the batch.
            standing.clear();
        }
        for reply in replies {
            reply(committed.clone());
        }
        // Jobs never run when the transaction could not begin: answer them.
        for job in batch {
            drop(job);
        }
    }
}

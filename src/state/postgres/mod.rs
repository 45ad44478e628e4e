//! The PostgreSQL back end: several servers share one database.
//!
//! Every operation is one transaction on a pooled connection. A download
//! charge locks its file's row (an `INSERT … ON CONFLICT DO UPDATE …
//! RETURNING` takes the lock and reads the row in one statement), decides
//! by the same rule as the SQLite back end, writes and commits before the
//! download leaves: two servers charging the same file wait on each other's
//! row lock, so the limit stays exact across them. Charges commit as every
//! other write does (the database's `synchronous_commit`, on unless its
//! owner turned it off): a count is on disk before its download leaves, so
//! a crash of PostgreSQL or of its machine forgets none. (They used to
//! commit with `synchronous_commit = off`, thought to be what SQLite's
//! unsynced charges are; but PostgreSQL then keeps the last commits in its
//! own memory for up to three `wal_writer_delay`s, and a database stopped
//! as a crash stops it forgot the count committed just before:
//! `postgres::a_database_that_stops_and_comes_back_costs_no_buyer_a_download`.
//! It cost 10 to 20% of the PostgreSQL 302s of `scripts/bench serve`.)
//!
//! A webhook event is recorded in the transaction that acts on it; a
//! second server handling the same event at that moment waits on the
//! first one's insert and then finds it recorded. Mail is claimed with
//! `FOR UPDATE SKIP LOCKED`, its next attempt moved a lease ahead, so that
//! each message is taken by one server, and a server that dies mid-send
//! leaves it to another once the lease runs out.
//!
//! The schema is versioned in the table `shop_schema` and migrated at start
//! under an advisory lock, so that servers starting together migrate once.
//! TLS when the URL asks for it (`sslmode=require`, see [`parse_url`]),
//! the server's certificate and name always verified; none otherwise, for a
//! database on the same machine or a private network.
//!
//! Here the operations; beside them `url` (the URL and TLS), `schema` (the
//! migrations), `charger` (downloads' charges in batches) and `import`
//! (a SQLite state moved in).

mod charger;
mod followers;
mod import;
mod readers;
mod schema;
mod url;
mod withdrawals;

use charger::{ChargeJob, charge_loop, release, whole};
pub use schema::SCHEMA_VERSION;
use schema::{MIGRATION_LOCK, MIGRATIONS};
use url::tls_config;
pub use url::{Target, parse_url};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    Charge, Entitlement, Event, FileKey, GIFT_MAIL, GIFT_RECEIPT, GiftState, MAIL_LEASE, MailState,
    Paid, QueuedMail, StateError, VisitCount, limits,
};
use crate::downloads::{Ask, Usage};
use crate::retry;
use crate::secret::Secret;

/// Connections per server.
const POOL_SIZE: usize = 16;

/// How long a request waits for a connection, or for one to be made.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pool of connections to one database.
pub struct Postgres {
    pool: Pool,
    /// Where this server's charges go: one task that commits every
    /// waiting charge in one transaction (see [`charge_loop`]).
    charger: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<ChargeJob>>,
    /// Files this server's charges found used up: only these need a read
    /// before GitHub is asked for a URL (as in the SQLite back end).
    used_up: super::UsedUp,
    /// Purchases lately read, with when.
    purchases: std::sync::RwLock<
        std::collections::HashMap<String, (std::sync::Arc<Entitlement>, std::time::Instant)>,
    >,
}

/// How long a server trusts a purchase it read.
const PURCHASE_MEMORY: std::time::Duration = std::time::Duration::from_secs(10);

/// Purchases remembered before the server starts afresh.
const PURCHASES_REMEMBERED: usize = 100_000;

impl std::fmt::Debug for Postgres {
    /// Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("connections", &self.pool.status().size)
            .finish_non_exhaustive()
    }
}

impl From<tokio_postgres::Error> for StateError {
    fn from(source: tokio_postgres::Error) -> StateError {
        StateError::Postgres {
            what: "a query failed",
            source: Box::new(source),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StateError {
    /// The driver's own error when there is one, not the pool's wrapping.
    fn from(error: deadpool_postgres::PoolError) -> StateError {
        use deadpool_postgres::PoolError;
        match error {
            // The driver's kind of error is private: its message says TLS.
            PoolError::Backend(source)
                if source
                    .to_string()
                    .starts_with("error performing TLS handshake") =>
            {
                StateError::TlsRefused {
                    source: Box::new(source),
                }
            }
            PoolError::Backend(source) => StateError::Postgres {
                what: "no connection",
                source: Box::new(source),
            },
            PoolError::Timeout(_) => StateError::Postgres {
                what: "no connection",
                source: format!("none within {} s", CONNECT_TIMEOUT.as_secs()).into(),
            },
            other => StateError::Postgres {
                what: "no connection",
                source: Box::new(other),
            },
        }
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

const PURCHASE_COLUMNS: &str =
    "id, email, product, version, payment_intent, created, amount, currency, discount, tax";

impl Postgres {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn connect(url: &Secret) -> Result<Postgres, StateError> {
        let Target { mut config, tls } = parse_url(url)?;
        config.application_name("shop serve");
        config.connect_timeout(CONNECT_TIMEOUT);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            None => Manager::from_config(config, NoTls, manager_config),
            Some(roots) => Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&roots)?),
                manager_config,
            ),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|source| StateError::Postgres {
                what: "cannot make a connection pool",
                source: Box::new(source),
            })?;
        let db = Postgres {
            pool,
            charger: std::sync::OnceLock::new(),
            used_up: Default::default(),
            purchases: Default::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS shop_schema (version BIGINT NOT NULL)")
            .await?;
        let found: Option<i64> = tx
            .query_opt("SELECT version FROM shop_schema", &[])
            .await?
            .map(|row| row.get(0));
        let version = match found {
            Some(version) => version,
            None => {
                tx.execute("INSERT INTO shop_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        let known = SCHEMA_VERSION as i64;
        if version > known {
            return Err(StateError::NewerSchema {
                found: version,
                known,
            });
        }
        for step in &MIGRATIONS[version as usize..] {
            tx.batch_execute(step).await?;
        }
        tx.execute("UPDATE shop_schema SET version = $1", &[&known])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The schema version of the database (for tests and `--migrate-state-to`).
    pub async fn schema_version(&self) -> Result<i64, StateError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT version FROM shop_schema", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Runs one statement on its own (autocommit), returning the rows.
    async fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, StateError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StateError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    // ---- purchases

    pub async fn upsert_purchase(
        &self,
        purchase: Entitlement,
        now: i64,
    ) -> Result<i64, StateError> {
        self.purchases
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&purchase.id);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let seen = insert_purchase(&tx, &purchase, now).await?;
        tx.commit().await?;
        Ok(seen)
    }

    /// A purchase, remembered for [`PURCHASE_MEMORY`]: every download asks
    /// for its purchase, and another server's change to one (a new email)
    /// is seen that much later.
    pub async fn purchase(
        &self,
        id: &str,
    ) -> Result<Option<std::sync::Arc<Entitlement>>, StateError> {
        if let Some((purchase, at)) = self
            .purchases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            && at.elapsed() < PURCHASE_MEMORY
        {
            return Ok(Some(purchase.clone()));
        }
        let sql = format!("SELECT {PURCHASE_COLUMNS} FROM purchases WHERE id = $1");
        let rows = self.query(&sql, &[&id]).await?;
        let found = rows
            .first()
            .map(|row| std::sync::Arc::new(purchase_row(row)));
        if let Some(purchase) = &found {
            let mut purchases = self.purchases.write().unwrap_or_else(|p| p.into_inner());
            if purchases.len() >= PURCHASES_REMEMBERED {
                purchases.clear();
            }
            purchases.insert(id.to_owned(), (purchase.clone(), std::time::Instant::now()));
        }
        Ok(found)
    }

    pub async fn seen(&self, id: &str) -> Result<Option<i64>, StateError> {
        let rows = self
            .query("SELECT seen FROM purchases WHERE id = $1", &[&id])
            .await?;
        Ok(rows.first().and_then(|row| row.get(0)))
    }

    pub async fn purchases_starting(&self, prefix: String) -> Result<Vec<Entitlement>, StateError> {
        let sql = format!(
            "SELECT {PURCHASE_COLUMNS} FROM purchases
             WHERE id >= $1 AND ($2 = '' OR id < $2) ORDER BY created, id"
        );
        let rows = self
            .query(&sql, &[&prefix, &super::after_prefix(&prefix)])
            .await?;
        Ok(rows.iter().map(purchase_row).collect())
    }

    pub async fn new_library(&self, id: &str, email: &str, now: i64) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO libraries (id, email, created) VALUES ($1, $2, $3)",
            &[&id, &email, &now],
        )
        .await?;
        Ok(())
    }

    pub async fn library_email(&self, id: &str) -> Result<Option<String>, StateError> {
        let rows = self
            .query("SELECT email FROM libraries WHERE id = $1", &[&id])
            .await?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    pub async fn purchases_of(&self, email: &str) -> Result<Vec<Entitlement>, StateError> {
        let sql = format!(
            "SELECT {PURCHASE_COLUMNS} FROM purchases
             WHERE lower(email) = lower($1)
               AND NOT EXISTS (SELECT 1 FROM revoked WHERE revoked.payment_intent = purchases.payment_intent)
             ORDER BY created, id"
        );
        let rows = self.query(&sql, &[&email]).await?;
        Ok(rows.iter().map(purchase_row).collect())
    }

    // ---- downloads

    pub async fn usage(&self, key: &FileKey) -> Result<(Usage, u32), StateError> {
        let rows = self
            .query(
                "SELECT (SELECT bytes FROM downloads WHERE purchase = $1 AND product = $2 AND version = $3 AND file = $4),
                        (SELECT count FROM downloads WHERE purchase = $1 AND product = $2 AND version = $3 AND file = $4),
                        (SELECT extra FROM grants WHERE purchase = $1)",
                &[&key.purchase, &key.product, &key.version, &key.file],
            )
            .await?;
        let row = &rows[0];
        let usage = Usage {
            bytes: row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64,
            whole: whole(row.get::<_, Option<i64>>(1).unwrap_or(0)),
        };
        Ok((usage, whole(row.get::<_, Option<i64>>(2).unwrap_or(0))))
    }

    /// This server's files found used up (see [`super::Db::redirects_used_up`]).
    pub(super) fn used_up(&self) -> &super::UsedUp {
        &self.used_up
    }

    /// Hands a charge to this server's charger (started on the runtime of
    /// the first charge) and waits for its commit.
    pub(super) async fn charge(&self, key: FileKey, ask: Ask) -> Result<Charge, StateError> {
        let charger = self.charger.get_or_init(|| {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(charge_loop(
                self.pool.clone(),
                receiver,
                self.used_up.clone(),
            ));
            sender
        });
        let (reply, answer) = tokio::sync::oneshot::channel();
        charger
            .send(ChargeJob { key, ask, reply })
            .map_err(|_| StateError::Closed)?;
        match answer.await {
            Ok(Ok(charge)) => Ok(charge),
            Ok(Err(message)) => Err(StateError::Postgres {
                what: "a charge failed",
                source: message.into(),
            }),
            Err(_) => Err(StateError::Closed),
        }
    }

    pub async fn is_revoked(&self, payment_intent: &str) -> Result<bool, StateError> {
        let rows = self
            .query(
                "SELECT 1 FROM revoked WHERE payment_intent = $1",
                &[&payment_intent],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub async fn reinstate(&self, payment_intent: &str) -> Result<(), StateError> {
        self.execute(
            "DELETE FROM revoked WHERE payment_intent = $1",
            &[&payment_intent],
        )
        .await?;
        Ok(())
    }

    pub async fn grant(&self, purchase: &str, extra: u32) -> Result<u32, StateError> {
        let rows = self
            .query(
                "INSERT INTO grants (purchase, extra) VALUES ($1, $2)
                 ON CONFLICT (purchase) DO UPDATE SET extra = grants.extra + excluded.extra
                 RETURNING extra",
                &[&purchase, &i64::from(extra)],
            )
            .await?;
        Ok(whole(rows[0].get(0)))
    }

    // ---- webhook events

    /// Records the event in `tx`; false if it was recorded before (by this
    /// server or another), once the transaction that recorded it is over.
    async fn record(tx: &Transaction<'_>, event: &Event<'_>) -> Result<bool, StateError> {
        let statement = tx
            .prepare_cached(
                "INSERT INTO events (id, type, received) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let inserted = tx
            .execute(&statement, &[&event.id, &event.kind, &event.received])
            .await?;
        Ok(inserted == 1)
    }

    pub async fn record_sale(
        &self,
        event: &Event<'_>,
        purchase: Option<Entitlement>,
    ) -> Result<Option<bool>, StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if !Self::record(&tx, event).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut revoked = false;
        if let Some(purchase) = purchase {
            revoked = queue_receipt(&tx, &purchase, event.received)
                .await?
                .is_none();
        }
        tx.commit().await?;
        Ok(Some(revoked))
    }

    pub async fn record_refund(
        &self,
        event: &Event<'_>,
        revoke: Option<(&str, &'static str)>,
    ) -> Result<Option<()>, StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if !Self::record(&tx, event).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        if let Some((intent, reason)) = revoke {
            tx.execute(
                "INSERT INTO revoked (payment_intent, reason, at) VALUES ($1, $2, $3)
                 ON CONFLICT (payment_intent) DO NOTHING",
                &[&intent, &reason, &event.received],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(()))
    }

    pub async fn reachable(&self) -> Result<(), StateError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    pub async fn event_recorded(&self, id: &str) -> Result<bool, StateError> {
        let rows = self
            .query("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)", &[&id])
            .await?;
        Ok(rows[0].get(0))
    }

    pub async fn mail_queue(&self) -> Result<Vec<MailState>, StateError> {
        let rows = self
            .query(
                "SELECT kind, recipient, purchase, attempts, sent FROM mail_queue ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| MailState {
                kind: row.get(0),
                recipient: row.get(1),
                purchase: row.get(2),
                attempts: row.get(3),
                sent: row.get(4),
            })
            .collect())
    }

    pub async fn events_seen(&self) -> Result<i64, StateError> {
        let rows = self.query("SELECT COUNT(*) FROM events", &[]).await?;
        Ok(rows[0].get(0))
    }

    // ---- mail

    pub async fn add_visits(&self, counts: Vec<VisitCount>) -> Result<(), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO visits (day, kind, product, source, count) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (day, kind, product, source) DO UPDATE SET count = visits.count + excluded.count",
            )
            .await?;
        // One order of keys for every server: no two lock each other.
        let mut counts = counts;
        counts.sort();
        for count in &counts {
            tx.execute(
                &statement,
                &[
                    &count.day,
                    &count.kind,
                    &count.product,
                    &count.source,
                    &(count.count as i64),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn visits(&self) -> Result<Vec<VisitCount>, StateError> {
        let rows = self
            .query(
                "SELECT day, kind, product, source, count FROM visits
                 ORDER BY day, kind, product, source",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| VisitCount {
                day: row.get(0),
                kind: row.get(1),
                product: row.get(2),
                source: row.get(3),
                count: row.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    pub async fn gift(&self, id: &str) -> Result<Option<GiftState>, StateError> {
        let rows = self
            .query(
                "SELECT buyer, recipient, deliverable, message, send_at, send_on, unread_day
                 FROM gifts WHERE purchase = $1",
                &[&id],
            )
            .await?;
        let Some(gift) = rows.first().map(gift_row) else {
            return Ok(None);
        };
        let rows = self
            .query(
                "SELECT MAX(sent), COUNT(*) FILTER (WHERE sent IS NULL) FROM mail_queue
                 WHERE purchase = $1 AND kind = $2",
                &[&id, &GIFT_MAIL],
            )
            .await?;
        let (sent, waiting) = rows.first().map_or((None, 0), |row| {
            (row.get::<_, Option<i64>>(0), row.get::<_, i64>(1))
        });
        Ok(Some(GiftState {
            gift,
            sent,
            waiting: waiting > 0,
        }))
    }

    pub async fn resend_gift(&self, id: &str, now: i64) -> Result<bool, StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One at a time per purchase: its gift's row is locked.
        let deliverable = tx
            .query_opt(
                "SELECT deliverable FROM gifts WHERE purchase = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .is_some_and(|row| row.get::<_, i64>(0) != 0);
        let waiting = tx
            .query_one(
                "SELECT COUNT(*) FROM mail_queue WHERE purchase = $1 AND kind = $2 AND sent IS NULL",
                &[&id, &GIFT_MAIL],
            )
            .await?
            .get::<_, i64>(0);
        if !deliverable || waiting > 0 {
            return Ok(false);
        }
        let inserted = tx
            .execute(
                "INSERT INTO mail_queue (kind, recipient, purchase, dedupe, created)
                 SELECT $1, email, id, $2, $3 FROM purchases WHERE id = $4
                 ON CONFLICT (dedupe) DO NOTHING",
                &[&GIFT_MAIL, &format!("{GIFT_MAIL}:{id}:{now}"), &now, &id],
            )
            .await?;
        tx.commit().await?;
        Ok(inserted > 0)
    }

    pub async fn queue_links(&self, email: &str, now: i64) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO mail_queue (kind, recipient, created) VALUES ('links', $1, $2)",
            &[&email, &now],
        )
        .await?;
        Ok(())
    }

    pub async fn queue_receipts(
        &self,
        purchases: Vec<Entitlement>,
        now: i64,
    ) -> Result<usize, StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut queued = 0;
        for purchase in &purchases {
            if queue_receipt(&tx, purchase, now).await? == Some(true) {
                queued += 1;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    pub async fn claim_mail(&self, now: i64, limit: u32) -> Result<Vec<QueuedMail>, StateError> {
        let rows = self
            .query(
                "UPDATE mail_queue SET next_attempt = $1 + $3
                 WHERE id IN (SELECT id FROM mail_queue
                              WHERE sent IS NULL AND next_attempt <= $1
                              ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, recipient, purchase, created",
                &[&now, &i64::from(limit), &MAIL_LEASE],
            )
            .await?;
        let mut claimed: Vec<QueuedMail> = rows
            .iter()
            .map(|row| QueuedMail {
                id: row.get(0),
                kind: row.get(1),
                recipient: row.get(2),
                purchase: row.get(3),
                created: row.get(4),
            })
            .collect();
        claimed.sort_by_key(|mail| mail.id);
        Ok(claimed)
    }

    pub async fn mail_sent(&self, id: i64, now: i64) -> Result<(), StateError> {
        self.execute(
            "UPDATE mail_queue SET sent = $2 WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        Ok(())
    }

    pub async fn mail_failed(
        &self,
        id: i64,
        now: i64,
        error: String,
        backoff: retry::Backoff,
    ) -> Result<(), StateError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let failures: i64 = tx
            .query_one(
                "UPDATE mail_queue SET attempts = attempts + 1, last_error = $2
                 WHERE id = $1 RETURNING attempts",
                &[&id, &error],
            )
            .await?
            .get(0);
        let wait = backoff.ceiling(whole(failures)).as_secs().max(1) as i64;
        tx.execute(
            "UPDATE mail_queue SET next_attempt = $2 WHERE id = $1",
            &[&id, &(now + wait)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn opt_out(&self, email: &str, now: i64) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO opt_outs (email, at) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING",
            &[&email, &now],
        )
        .await?;
        Ok(())
    }

    pub async fn opt_outs(&self) -> Result<std::collections::HashSet<String>, StateError> {
        let rows = self.query("SELECT email FROM opt_outs", &[]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    // ---- rate limits

    /// Counts one request against every check if it fits them all (see
    /// [`Db::allow`](super::Db::allow)); forgets stale keys when `prune`.
    /// Each key's row is locked (in the checks' order, the same on every
    /// server) until the commit, so two servers count one after the other.
    pub(super) async fn allow(
        &self,
        checks: Vec<limits::Check>,
        now: i64,
        prune: bool,
    ) -> Result<bool, StateError> {
        let client = self.pool.get().await?;
        let result = allow_on(&client, &checks, now, prune).await;
        release(client, &result);
        result
    }
}

/// One rate-limit check in one transaction of two round trips: the rows
/// locked and read, then written (if the request fits) and committed.
async fn allow_on(
    client: &deadpool_postgres::Client,
    checks: &[limits::Check],
    now: i64,
    prune: bool,
) -> Result<bool, StateError> {
    let lock = client
        .prepare_cached(
            "INSERT INTO rate_limits AS r (key)
             SELECT k.key FROM unnest($1::text[]) WITH ORDINALITY AS k (key, n) ORDER BY k.n
             ON CONFLICT (key) DO UPDATE SET last = r.last
             RETURNING r.key, r.hits",
        )
        .await?;
    let write = client
        .prepare_cached(
            "UPDATE rate_limits AS r SET hits = w.hits::bigint[], last = $3
             FROM unnest($1::text[], $2::text[]) AS w (key, hits) WHERE r.key = w.key",
        )
        .await?;
    // After the commit, on its own, and never waiting on a row another
    // server holds (that could deadlock with its own check).
    let forget = client
        .prepare_cached(
            "DELETE FROM rate_limits WHERE key IN
                 (SELECT key FROM rate_limits WHERE last <= $1 FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    let keys: Vec<&str> = checks.iter().map(|check| check.key.as_str()).collect();
    // A crash of the database may forget the last moment's hits: a few
    // more requests let through, nothing anyone paid for.
    let (_, rows) = futures_util::future::try_join(
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
        client.query(&lock, &[&keys]),
    )
    .await?;
    let found: std::collections::HashMap<String, Vec<i64>> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    let mut kept = Vec::with_capacity(checks.len());
    let mut allowed = true;
    for check in checks {
        let hits = found.get(&check.key).map(Vec::as_slice).unwrap_or_default();
        let (mut hits, fits) = limits::fits(check, hits);
        allowed &= fits;
        hits.push(now);
        // PostgreSQL's array literal, cast back in the statement.
        let list: Vec<String> = hits.iter().map(i64::to_string).collect();
        kept.push(format!("{{{}}}", list.join(",")));
    }
    if !allowed {
        client.batch_execute("ROLLBACK").await?;
        return Ok(false);
    }
    let stale = now - limits::LONGEST;
    let forget_stale = async {
        if prune {
            client.execute(&forget, &[&stale]).await?;
        }
        Ok(())
    };
    futures_util::future::try_join3(
        client.execute(&write, &[&keys, &kept, &now]),
        client.batch_execute("COMMIT"),
        forget_stale,
    )
    .await?;
    Ok(true)
}

/// Records a purchase first seen at `now`; returns when it was first seen.
async fn insert_purchase(
    tx: &Transaction<'_>,
    purchase: &Entitlement,
    now: i64,
) -> Result<i64, StateError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO purchases (id, email, product, version, payment_intent, created, seen, amount, currency, discount, tax)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, payment_intent = excluded.payment_intent,
                 seen = COALESCE(purchases.seen, excluded.seen),
                 amount = COALESCE(excluded.amount, purchases.amount),
                 currency = COALESCE(excluded.currency, purchases.currency),
                 discount = GREATEST(purchases.discount, excluded.discount),
                 tax = GREATEST(purchases.tax, excluded.tax)
             RETURNING seen",
        )
        .await?;
    let paid = purchase.paid.as_ref();
    let row = tx
        .query_one(
            &statement,
            &[
                &purchase.id,
                &purchase.email,
                &purchase.product,
                &purchase.version,
                &purchase.payment_intent,
                &purchase.created,
                &now,
                &paid.map(|paid| paid.amount),
                &paid.map(|paid| paid.currency.as_str()),
                &paid.map_or(0, |paid| paid.discount),
                &paid.map_or(0, |paid| paid.tax),
            ],
        )
        .await?;
    Ok(row.get::<_, Option<i64>>(0).unwrap_or(now))
}

/// Records a purchase and queues its receipt once per purchase, unless its
/// payment is revoked (`None`); `Some(queued now)` otherwise.
async fn queue_receipt(
    tx: &Transaction<'_>,
    purchase: &Entitlement,
    now: i64,
) -> Result<Option<bool>, StateError> {
    insert_purchase(tx, purchase, now).await?;
    if let Some(intent) = &purchase.payment_intent {
        let revoked = tx
            .query_opt("SELECT 1 FROM revoked WHERE payment_intent = $1", &[intent])
            .await?;
        if revoked.is_some() {
            return Ok(None);
        }
    }
    if purchase.email.is_empty() {
        return Ok(Some(false));
    }
    let dedupe = format!("receipt:{}", purchase.id);
    let statement = tx
        .prepare_cached(
            "INSERT INTO mail_queue (kind, recipient, purchase, dedupe, created, next_attempt)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe) DO NOTHING",
        )
        .await?;
    let Some(gift) = &purchase.gift else {
        let inserted = tx
            .execute(
                &statement,
                &[
                    &"receipt",
                    &purchase.email,
                    &purchase.id,
                    &dedupe,
                    &now,
                    &0i64,
                ],
            )
            .await?;
        return Ok(Some(inserted == 1));
    };
    // A gift: the buyer's receipt now, the recipient's mail on its day.
    tx.execute(
        "INSERT INTO gifts (purchase, buyer, recipient, deliverable, message, send_at, send_on, unread_day)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (purchase) DO NOTHING",
        &[
            &purchase.id,
            &gift.buyer,
            &gift.recipient,
            &i64::from(gift.deliverable),
            &gift.message,
            &gift.send_at,
            &gift.send_on.map(crate::gift::day_text),
            &gift.unread_day,
        ],
    )
    .await?;
    // An address that was not one: the purchase stayed the buyer's, and
    // their receipt has their link.
    let kind = match gift.deliverable {
        true => GIFT_RECEIPT,
        false => "receipt",
    };
    let inserted = tx
        .execute(
            &statement,
            &[&kind, &gift.buyer, &purchase.id, &dedupe, &now, &0i64],
        )
        .await?;
    if gift.deliverable {
        tx.execute(
            &statement,
            &[
                &GIFT_MAIL,
                &purchase.email,
                &purchase.id,
                &format!("{GIFT_MAIL}:{}", purchase.id),
                &now,
                &gift.send_at,
            ],
        )
        .await?;
    }
    Ok(Some(inserted == 1))
}

fn gift_row(row: &tokio_postgres::Row) -> crate::gift::Gift {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    crate::gift::Gift {
        buyer: row.get(0),
        recipient: row.get(1),
        deliverable: row.get::<_, i64>(2) != 0,
        message: row.get(3),
        send_at: row.get(4),
        send_on: row
            .get::<_, Option<String>>(5)
            .and_then(|day| time::Date::parse(&day, &format).ok()),
        unread_day: row.get(6),
    }
}

fn purchase_row(row: &tokio_postgres::Row) -> Entitlement {
    Entitlement {
        id: row.get(0),
        email: row.get(1),
        product: row.get(2),
        version: row.get(3),
        payment_intent: row.get(4),
        created: row.get(5),
        paid: match (
            row.get::<_, Option<i64>>(6),
            row.get::<_, Option<String>>(7),
        ) {
            (Some(amount), Some(currency)) => Some(Paid {
                amount,
                currency,
                discount: row.get(8),
                tax: row.get(9),
            }),
            _ => None,
        },
        gift: None,
    }
}

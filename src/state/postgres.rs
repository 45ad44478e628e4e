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

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    Charge, Entitlement, Event, FileKey, MAIL_LEASE, Paid, QueuedMail, StateError, limits,
};
use crate::downloads::{self, Ask, Standing, Usage};
use crate::secret::Secret;

/// Connections per server.
const POOL_SIZE: usize = 16;

/// How long a request waits for a connection, or for one to be made.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The advisory lock that migrations hold ("shop" in ASCII).
const MIGRATION_LOCK: i64 = 0x73686f70;

/// The schema, one step per version: `shop_schema.version` says how many
/// have run. The first step is the SQLite schema as of its fifth version;
/// the second, the rate limits' counts (a row per key, its recent hits in
/// an array, so that the row's lock serializes a key's checks).
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE purchases (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        product TEXT NOT NULL,
        version TEXT NOT NULL,
        payment_intent TEXT,
        created BIGINT NOT NULL,
        seen BIGINT,
        amount BIGINT,
        currency TEXT,
        discount BIGINT NOT NULL DEFAULT 0,
        tax BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX purchases_email ON purchases (lower(email));
    CREATE INDEX purchases_payment_intent ON purchases (payment_intent);
    CREATE TABLE downloads (
        purchase TEXT NOT NULL,
        product TEXT NOT NULL,
        version TEXT NOT NULL,
        file TEXT NOT NULL,
        count BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        last_redirect BIGINT,
        continuations BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (purchase, product, version, file)
    );
    CREATE TABLE grants (
        purchase TEXT PRIMARY KEY,
        extra BIGINT NOT NULL
    );
    CREATE TABLE revoked (
        payment_intent TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        received BIGINT NOT NULL
    );
    CREATE TABLE mail_queue (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        purchase TEXT,
        dedupe TEXT UNIQUE,
        created BIGINT NOT NULL,
        sent BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX mail_queue_due ON mail_queue (next_attempt, id) WHERE sent IS NULL;
    CREATE TABLE opt_outs (
        email TEXT PRIMARY KEY,
        at BIGINT NOT NULL
    );
    CREATE TABLE libraries (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        created BIGINT NOT NULL
    );",
    "
    CREATE TABLE rate_limits (
        key TEXT PRIMARY KEY,
        hits BIGINT[] NOT NULL DEFAULT '{}',
        last BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX rate_limits_last ON rate_limits (last);",
];

/// The schema version this build migrates a PostgreSQL database to.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

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

/// Where the database is, and whether the way there is TLS.
pub struct Target {
    config: tokio_postgres::Config,
    /// Whose certificates a server must prove itself with, when the URL
    /// asks for TLS. Read when connecting, not here: the URL is read once to
    /// check it before anything starts, and again to connect.
    tls: Option<Roots>,
}

/// The authorities a TLS connection trusts.
#[derive(Debug)]
enum Roots {
    /// The system's (`rustls-native-certs`).
    System,
    /// Those in a PEM file (`sslrootcert=PATH`).
    File(String),
}

impl std::fmt::Debug for Target {
    /// Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads a PostgreSQL URL (`postgres://…`, or `key=value` pairs), with
/// libpq's TLS options: `sslmode=require` (or `verify-ca`, `verify-full`)
/// and `sslmode=prefer` connect over TLS, and `sslrootcert=PATH` names the
/// PEM file of the authorities a server's certificate must come from (the
/// system's, without it or with `sslrootcert=system`; `sslrootcert` alone
/// means `verify-full`). Every TLS connection verifies the certificate and
/// the host name, as libpq's `verify-full`: a server that cannot prove it
/// is the one named is refused, whatever the mode. Without `sslmode` (or
/// with `disable`), no TLS, as before this was built: Debian's own server
/// offers TLS with a certificate no authority signed, and a store that
/// reached it in the clear would otherwise stop reaching it.
pub fn parse_url(url: &Secret) -> Result<Target, StateError> {
    let not_postgres = || StateError::NotPostgres {
        name: url.name().to_owned(),
    };
    let text = url.expose();
    let is_url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    let (config, tls) = if is_url {
        // tokio-postgres knows neither `sslrootcert` nor the `verify-*`
        // modes: they are taken out here, the other parameters handed over
        // byte for byte (it decodes `%XX` and not `+`, so no form decoder
        // may touch them).
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let mut kept: Vec<&str> = Vec::new();
        let (mut mode, mut roots) = (None, None);
        let decode = |value: &str| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|value| value.into_owned())
                .map_err(|_| not_postgres())
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(decode(value)?),
                Some(("sslrootcert", value)) => roots = Some(decode(value)?),
                Some((key @ ("sslcert" | "sslkey" | "sslpassword" | "sslcrl"), _)) => {
                    return Err(StateError::TlsSettings {
                        message: format!("`{key}` is not supported (no client certificates)"),
                    });
                }
                _ => kept.push(pair),
            }
        }
        let (driver_mode, tls) = match (mode.as_deref(), &roots) {
            (None, None) | (Some("disable"), _) => ("disable", false),
            (Some("prefer" | "allow"), _) => ("prefer", true),
            (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => {
                ("require", true)
            }
            (Some(other), _) => {
                return Err(StateError::TlsSettings {
                    message: format!("`sslmode={other}` is not a mode PostgreSQL knows"),
                });
            }
        };
        let sslmode = format!("sslmode={driver_mode}");
        kept.push(&sslmode);
        let config = format!("{base}?{}", kept.join("&"))
            .parse::<tokio_postgres::Config>()
            .map_err(|_| not_postgres())?;
        let roots = match roots.as_deref() {
            None | Some("system") => Roots::System,
            Some(path) => Roots::File(path.to_owned()),
        };
        (config, tls.then_some(roots))
    } else {
        let config = text
            .parse::<tokio_postgres::Config>()
            .map_err(|_| not_postgres())?;
        let tls = config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
        (config, tls.then_some(Roots::System))
    };
    Ok(Target { config, tls })
}

/// A TLS client that trusts the authorities of `roots`.
fn tls_config(roots: &Roots) -> Result<rustls::ClientConfig, StateError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::System => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // One certificate the system holds and rustls cannot read
                // leaves the others usable.
                let _ = store.add(cert);
            }
        }
        Roots::File(path) => {
            let unreadable = |why: String| StateError::TlsSettings {
                message: format!("cannot read the certificates in `{path}`: {why}"),
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|error| unreadable(error.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|error| unreadable(error.to_string()))?;
                store
                    .add(cert)
                    .map_err(|error| unreadable(error.to_string()))?;
            }
            if store.is_empty() {
                return Err(unreadable("it holds no certificate".into()));
            }
        }
    }
    crate::net::install_crypto_provider();
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth())
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

    pub async fn all_purchases(&self) -> Result<Vec<Entitlement>, StateError> {
        let sql = format!("SELECT {PURCHASE_COLUMNS} FROM purchases ORDER BY created, id");
        let rows = self.query(&sql, &[]).await?;
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

    pub async fn events_seen(&self) -> Result<i64, StateError> {
        let rows = self.query("SELECT COUNT(*) FROM events", &[]).await?;
        Ok(rows[0].get(0))
    }

    // ---- mail

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
        backoff: crate::retry::Backoff,
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

impl Postgres {
    /// Writes a SQLite state (from [`super::sqlite::export`]) into this
    /// empty database in one transaction, checking before it commits that
    /// every table holds the same rows, the downloads the same counts and
    /// the rate limits the same hits.
    pub(super) async fn import(
        &self,
        state: super::sqlite::Export,
    ) -> Result<Vec<(&'static str, usize)>, StateError> {
        let super::sqlite::Export { tables, rate_hits } = state;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let every_table = super::sqlite::TABLES
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
        for ((table, rows), (_, columns)) in tables.iter().zip(super::sqlite::TABLES) {
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

/// A count kept as BIGINT, read back as the `u32` the download rule uses.
fn whole(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A charge waiting for the charger.
struct ChargeJob {
    key: FileKey,
    ask: Ask,
    reply: tokio::sync::oneshot::Sender<Result<Charge, String>>,
}

/// Most charges committed together.
const BATCH: usize = 256;

/// The charger: waits for a charge, takes every other waiting one, runs
/// them in one transaction, commits, then answers them all (as SQLite's
/// writer does). A busy file is locked once per batch rather than once per
/// download, so many downloads of one file share one commit; servers
/// sharing the database each lock a batch's files in one order, so they
/// wait on each other and never deadlock. One batch at a time: with four
/// at the database at once, waiting on each other's row locks, one server
/// made about half as many 302s a second (`scripts/bench serve`).
///
/// A batch takes two round trips (its files locked and read, then written
/// and committed), and the next batch's first travels with this one's
/// second: while a batch is decided, the charges that came meanwhile wait,
/// and their transaction begins, on the same connection, right after this
/// one commits, without waiting for this server to hear of the commit.
async fn charge_loop(
    pool: Pool,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<ChargeJob>,
    used_up: super::UsedUp,
) {
    // A batch whose files are locked, on the connection that locked them.
    let mut held: Option<(deadpool_postgres::Object, Statements, Vec<ChargeJob>, Files)> = None;
    loop {
        let (client, statements, batch, files) = match held.take() {
            Some(held) => held,
            None => {
                let Some(first) = jobs.recv().await else {
                    return;
                };
                let batch = waiting(first, &mut jobs);
                let client = match pool.get().await {
                    Ok(client) => client,
                    Err(error) => {
                        fail(batch, &crate::error::one_line(&StateError::from(error)));
                        continue;
                    }
                };
                let locked = async {
                    let statements = Statements::prepare(&client).await?;
                    let files = lock_files(&client, &statements, &batch).await?;
                    Ok::<_, StateError>((statements, files))
                };
                match locked.await {
                    Ok((statements, files)) => (client, statements, batch, files),
                    Err(error) => {
                        close(client);
                        fail(batch, &crate::error::one_line(&error));
                        continue;
                    }
                }
            }
        };
        let decided = decide_batch(&batch, files);
        let next = jobs.try_recv().ok().map(|first| waiting(first, &mut jobs));
        let commit = async {
            match write_files(&client, &statements, &decided.writes).await {
                Ok(()) => {
                    used_up.add(decided.exhausted);
                    for (job, charge) in batch.into_iter().zip(decided.charges) {
                        let _ = job.reply.send(Ok(charge));
                    }
                    Ok(())
                }
                Err(error) => {
                    let message = crate::error::one_line(&error);
                    fail(batch, &message);
                    Err(message)
                }
            }
        };
        let Some(next) = next else {
            if commit.await.is_err() {
                close(client);
            }
            continue;
        };
        // Polled in this order, so sent in this order: the commit, then
        // the next batch's lock.
        let lock = lock_files(&client, &statements, &next);
        let (committed, locked) = futures_util::future::join(commit, lock).await;
        match (committed, locked) {
            (Ok(()), Ok(files)) => held = Some((client, statements, next, files)),
            // The next batch is not charged after one that failed: the
            // connection may be in any state.
            (Err(message), _) => {
                close(client);
                fail(next, &message);
            }
            (Ok(()), Err(error)) => {
                close(client);
                fail(next, &crate::error::one_line(&error));
            }
        }
    }
}

/// `first` and every other charge waiting, up to [`BATCH`].
fn waiting(
    first: ChargeJob,
    jobs: &mut tokio::sync::mpsc::UnboundedReceiver<ChargeJob>,
) -> Vec<ChargeJob> {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// Answers every charge of `batch` with the error `message`: nothing of it
/// was used.
fn fail(batch: Vec<ChargeJob>, message: &str) {
    for job in batch {
        let _ = job.reply.send(Err(message.to_owned()));
    }
}

/// The files' ids as the columns `LOCK_FILES` and `WRITE_FILES` unnest:
/// purchases, products, versions and file names, in the ids' order.
fn key_columns<'a>(
    ids: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a str)>,
) -> [Vec<&'a str>; 4] {
    let mut columns: [Vec<&str>; 4] = Default::default();
    for (purchase, product, version, file) in ids {
        columns[0].push(purchase);
        columns[1].push(product);
        columns[2].push(version);
        columns[3].push(file);
    }
    columns
}

/// Gives a connection back to the pool after a pipelined transaction, or,
/// if it failed (the transaction may still be open), closes it.
fn release<T>(client: deadpool_postgres::Object, result: &Result<T, StateError>) {
    if result.is_err() {
        close(client);
    }
}

/// Closes a connection rather than giving it back to the pool (which would
/// hand on whatever transaction it has open).
fn close(client: deadpool_postgres::Object) {
    drop(deadpool_postgres::Object::take(client));
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

/// A batch's files as locked and read, in their ids' order (the order
/// they were locked and are written in): each file's id, its standing,
/// and whether a charge changed it.
type Files = Vec<(Id, Standing, bool)>;

/// A file's id, as read back from the database ([`FileKey::id`]).
type Id = (String, String, String, String);

/// An id, borrowed: ordered as [`FileKey::parts`] is.
fn parts(id: &Id) -> (&str, &str, &str, &str) {
    (&id.0, &id.1, &id.2, &id.3)
}

/// Where the file of `key` is in `files`, found without copying its id
/// (this runs for every charge).
fn file_of(files: &Files, key: &FileKey) -> Option<usize> {
    files
        .binary_search_by(|(id, ..)| parts(id).cmp(&key.parts()))
        .ok()
}

/// The charger's statements, prepared on a connection before any request
/// of a batch is made: tokio-postgres runs requests in the order they are
/// first polled, so [`write_files`] and [`lock_files`] await nothing
/// before their requests are sent. (A `prepare_cached` of its own in
/// `write_files`, a round trip the first time on a connection, let the
/// next batch's lock through before this one's write: two servers gave
/// 11 downloads of a limit of 5.)
struct Statements {
    lock: tokio_postgres::Statement,
    revoked: tokio_postgres::Statement,
    write: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(client: &deadpool_postgres::Client) -> Result<Statements, StateError> {
        Ok(Statements {
            lock: client.prepare_cached(LOCK_FILES).await?,
            revoked: client
                .prepare_cached("SELECT payment_intent FROM revoked WHERE payment_intent = ANY($1)")
                .await?,
            write: client.prepare_cached(WRITE_FILES).await?,
        })
    }
}

/// Begins a batch's transaction and locks and reads its files, in one
/// round trip: tokio-postgres pipelines requests made together, in the
/// order they are made. Files are locked in their keys' order (one
/// statement, `ORDER BY`), the order every server uses. One statement for
/// all the files rather than one each: with downloads spread over 64
/// purchases, a statement per file (pipelined too) made about a third as
/// many 302s a second, and the same on one busy file (`scripts/bench
/// serve`).
async fn lock_files(
    client: &deadpool_postgres::Client,
    statements: &Statements,
    batch: &[ChargeJob],
) -> Result<Files, StateError> {
    let mut keys: Vec<&FileKey> = batch.iter().map(|job| &job.key).collect();
    keys.sort_by(|a, b| a.parts().cmp(&b.parts()));
    keys.dedup_by(|a, b| a.parts() == b.parts());
    let [purchases, products, versions, names] = key_columns(keys.iter().map(|key| key.parts()));
    let intents: Vec<&str> = keys
        .iter()
        .filter_map(|key| key.payment_intent.as_deref())
        .collect();
    // Committed as every other write is, on disk before the downloads
    // leave (see the module's comment).
    let (_, rows, revoked) = futures_util::future::try_join3(
        client.batch_execute("BEGIN"),
        client.query(
            &statements.lock,
            &[&purchases, &products, &versions, &names],
        ),
        client.query(&statements.revoked, &[&intents]),
    )
    .await?;
    let revoked: std::collections::HashSet<String> = revoked.iter().map(|row| row.get(0)).collect();
    let mut files: Files = rows
        .iter()
        .map(|row| {
            let id = (row.get(0), row.get(1), row.get(2), row.get(3));
            let file = Standing {
                usage: Usage {
                    bytes: row.get::<_, i64>(4).max(0) as u64,
                    whole: whole(row.get(5)),
                },
                last_redirect: row.get(6),
                extra: whole(row.get(7)),
                revoked: false,
            };
            (id, file, false)
        })
        .collect();
    files.sort_by(|(a, ..), (b, ..)| a.cmp(b));
    for key in &keys {
        let at = file_of(&files, key).ok_or_else(|| StateError::Postgres {
            what: "a locked download did not come back",
            source: "no row returned for a file of the batch".into(),
        })?;
        files[at].1.revoked = key
            .payment_intent
            .as_ref()
            .is_some_and(|intent| revoked.contains(intent));
    }
    Ok(files)
}

/// What a batch decided: each charge's answer, the files whose redirects
/// are now used up, and the files' new standings.
struct Decided {
    charges: Vec<Charge>,
    exhausted: Vec<FileKey>,
    writes: Vec<(Id, Standing)>,
}

/// Runs a batch's charges in order by the download rule, each on what the
/// ones before left of its file.
fn decide_batch(batch: &[ChargeJob], mut files: Files) -> Decided {
    let mut charges = Vec::with_capacity(batch.len());
    let mut exhausted = Vec::new();
    for ChargeJob { key, ask, .. } in batch {
        let at = file_of(&files, key).unwrap_or_else(|| unreachable!("every key was locked"));
        let (_, file, changed) = &mut files[at];
        let decision = downloads::apply(file, *ask);
        *changed |= decision.changed;
        if decision.used_up {
            exhausted.push(key.clone());
        }
        charges.push(decision.charge);
    }
    // Written in the order they were locked.
    let writes = files
        .into_iter()
        .filter(|(_, _, changed)| *changed)
        .map(|(id, file, _)| (id, file))
        .collect();
    Decided {
        charges,
        exhausted,
        writes,
    }
}

/// Writes a batch's files and commits, in one round trip.
async fn write_files(
    client: &deadpool_postgres::Client,
    statements: &Statements,
    writes: &[(Id, Standing)],
) -> Result<(), StateError> {
    let [purchases, products, versions, names] =
        key_columns(writes.iter().map(|(id, _)| parts(id)));
    let bytes: Vec<i64> = writes
        .iter()
        .map(|(_, file)| file.usage.bytes as i64)
        .collect();
    let counts: Vec<i64> = writes
        .iter()
        .map(|(_, file)| i64::from(file.usage.whole))
        .collect();
    let redirects: Vec<Option<i64>> = writes.iter().map(|(_, file)| file.last_redirect).collect();
    // An UPDATE that fails turns the COMMIT into a rollback, and its error
    // is the one returned.
    futures_util::future::try_join(
        client.execute(
            &statements.write,
            &[
                &purchases, &products, &versions, &names, &bytes, &counts, &redirects,
            ],
        ),
        client.batch_execute("COMMIT"),
    )
    .await?;
    Ok(())
}

/// Locks the rows of files (making those that are new, at zero) until the
/// transaction ends, in the order given, and reads each with its
/// purchase's grant.
const LOCK_FILES: &str = "
    INSERT INTO downloads AS d (purchase, product, version, file)
    SELECT k.purchase, k.product, k.version, k.file
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
        WITH ORDINALITY AS k (purchase, product, version, file, n)
    ORDER BY k.n
    ON CONFLICT (purchase, product, version, file) DO UPDATE SET count = d.count
    RETURNING d.purchase, d.product, d.version, d.file, d.bytes, d.count,
        d.last_redirect,
        COALESCE((SELECT extra FROM grants WHERE grants.purchase = d.purchase), 0)";

/// Writes files' standings after a batch of charges.
const WRITE_FILES: &str = "
    UPDATE downloads AS d
    SET bytes = w.bytes, count = w.count, last_redirect = w.last_redirect
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
            $6::bigint[], $7::bigint[])
        AS w (purchase, product, version, file, bytes, count, last_redirect)
    WHERE d.purchase = w.purchase AND d.product = w.product AND d.version = w.version
        AND d.file = w.file";

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
            "INSERT INTO mail_queue (kind, recipient, purchase, dedupe, created)
             VALUES ('receipt', $1, $2, $3, $4) ON CONFLICT (dedupe) DO NOTHING",
        )
        .await?;
    let inserted = tx
        .execute(&statement, &[&purchase.email, &purchase.id, &dedupe, &now])
        .await?;
    Ok(Some(inserted == 1))
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::SslMode;

    fn target(url: &str) -> Target {
        parse_url(&Secret::new("SHOP_STATE_URL", url).unwrap()).unwrap()
    }

    #[test]
    fn a_url_reaches_the_driver_as_written_but_for_its_tls_options() {
        let plain = target(
            "postgres://shop:p%40ss@db.internal:5433/shop\
             ?options=-c%20statement_timeout%3D5s&application_name=a+b",
        );
        assert_eq!(plain.config.get_options(), Some("-c statement_timeout=5s"));
        assert_eq!(plain.config.get_application_name(), Some("a+b"));
        assert_eq!(plain.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(plain.config.get_ports(), [5433]);
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        assert!(plain.tls.is_none());

        let verified =
            target("postgres://shop@db.internal/shop?sslmode=verify-full&connect_timeout=3");
        assert_eq!(verified.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            verified.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert!(verified.tls.is_some());

        let preferred = target("postgres://shop@db.internal/shop?sslmode=prefer");
        assert_eq!(preferred.config.get_ssl_mode(), SslMode::Prefer);
        assert!(preferred.tls.is_some());
        assert!(
            target("postgres://shop@db.internal/shop?sslmode=disable")
                .tls
                .is_none()
        );

        let client_certificate = parse_url(
            &Secret::new(
                "SHOP_STATE_URL",
                "postgres://shop@db.internal/shop?sslmode=require&sslcert=/etc/shop.crt",
            )
            .unwrap(),
        );
        assert!(matches!(
            client_certificate,
            Err(StateError::TlsSettings { message }) if message.starts_with("`sslcert`")
        ));

        // `key=value` pairs: TLS when they require it.
        assert!(
            target("host=db.internal user=shop sslmode=require")
                .tls
                .is_some()
        );
        assert!(target("host=db.internal user=shop").tls.is_none());
    }
}

//! The server's state: purchases seen, download usage, grants,
//! revocations, webhook events seen, opt-outs, libraries, the outgoing
//! mail queue and the rate limits' counts, behind one interface ([`Db`]) with two back ends:
//!
//! - SQLite under `.shop/state.db`, the default: one server, fast, nothing
//!   to run beside it ([`sqlite`]).
//! - PostgreSQL, named by `SHOP_STATE_URL` or `[serve] state` in
//!   `shop.toml`: several servers share one database, for an author who
//!   cannot be down ([`postgres`]).
//!
//! Both decide downloads by the same rule (`crate::downloads`) on the same
//! numbers, exactly under any concurrency: SQLite through its single
//! writer, PostgreSQL by locking the file's row for the length of a charge.
//! Both record each webhook event once, in the transaction that acts on
//! it, and version their schemas, migrated forward at start.

use std::path::PathBuf;
use std::sync::Arc;

use crate::downloads::Usage;
use crate::secret::Secret;

pub mod limits;
pub mod postgres;
pub mod sqlite;

pub use limits::Quota;
pub use sqlite::SCHEMA_VERSION;

/// What the server keeps of a purchase or a grant: enough to let its
/// links download and to write its receipt. (The ledger's
/// [`crate::ledger::Purchase`] is the author's full record of it.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub id: String,
    pub email: String,
    pub product: String,
    pub version: String,
    pub payment_intent: Option<String>,
    pub created: i64,
    /// What was paid, when the server learned it from Stripe (purchases
    /// seen before it kept this have none).
    pub paid: Option<Paid>,
}

impl From<&crate::ledger::Purchase> for Entitlement {
    /// A ledger line as the server keeps it (the ledger records no
    /// discount amount).
    fn from(purchase: &crate::ledger::Purchase) -> Entitlement {
        Entitlement {
            id: purchase.id.clone(),
            email: purchase.email.clone(),
            product: purchase.product.clone(),
            version: purchase.version.clone(),
            payment_intent: purchase.payment_intent.clone(),
            created: purchase.created_unix(),
            paid: Some(Paid {
                amount: purchase.amount,
                currency: purchase.currency.clone(),
                discount: 0,
                tax: purchase.tax.unwrap_or(0),
            }),
        }
    }
}

/// What a purchase cost, in minor units of `currency` (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub amount: i64,
    pub currency: String,
    pub discount: i64,
    pub tax: i64,
}

/// One file of one version of a purchase: what downloads are counted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub purchase: String,
    pub payment_intent: Option<String>,
    /// The file's product: the purchase's own, or one of a bundle's.
    pub product: String,
    pub version: String,
    pub file: String,
}

impl FileKey {
    pub fn new(purchase: &Entitlement, product: &str, version: &str, file: &str) -> FileKey {
        FileKey {
            purchase: purchase.id.clone(),
            payment_intent: purchase.payment_intent.clone(),
            product: product.to_owned(),
            version: version.to_owned(),
            file: file.to_owned(),
        }
    }

    /// [`FileKey::id`], borrowed: to order and find files without copies.
    pub(crate) fn parts(&self) -> (&str, &str, &str, &str) {
        (&self.purchase, &self.product, &self.version, &self.file)
    }

    /// What a file's standing is kept under.
    pub(crate) fn id(&self) -> (String, String, String, String) {
        (
            self.purchase.clone(),
            self.product.clone(),
            self.version.clone(),
            self.file.clone(),
        )
    }
}

use crate::downloads::Ask;
/// What charging a download found (the download rule's answer).
pub use crate::downloads::Charge;

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
    /// The URL is never part of the message: it may hold a password.
    #[error("cannot use the server's PostgreSQL database ({what})")]
    Postgres {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("`{name}` is not a PostgreSQL URL")]
    NotPostgres { name: String },
    #[error("cannot use the PostgreSQL URL's TLS settings: {message}")]
    TlsSettings { message: String },
    #[error("the PostgreSQL server did not prove itself over TLS")]
    TlsRefused {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "the PostgreSQL database has schema version {found}, newer than this `shop` knows ({known})"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("there is no state to move: `{}` does not exist", path.display())]
    NothingToMove { path: PathBuf },
    #[error("the PostgreSQL database already holds a state: its `{table}` is not empty")]
    NotEmpty { table: &'static str },
    #[error("the copy of `{table}` does not match: {expected} in SQLite, {found} in PostgreSQL")]
    Mismatch {
        table: &'static str,
        expected: String,
        found: String,
    },
}

inventory::submit!(crate::error::Registered::of::<StateError>());

impl crate::error::Hint for StateError {
    fn hint(&self) -> String {
        match self {
            StateError::Sqlite { .. } => {
                "check that `.shop/` is writable, and that no other program holds the file".into()
            }
            StateError::Write { .. } => "check the disk space and permissions of `.shop/`".into(),
            StateError::Io { .. } => "check that the store's folder is writable".into(),
            StateError::Closed => "restart `shop serve`".into(),
            StateError::Postgres { .. } => {
                "check that PostgreSQL is running and that `SHOP_STATE_URL` names a database \
                 this user may create tables in"
                    .into()
            }
            StateError::NotPostgres { .. } => {
                "write it as `postgres://USER@HOST:PORT/DATABASE` (the password in \
                 `SHOP_STATE_URL`, never in `shop.toml`)"
                    .into()
            }
            StateError::TlsSettings { .. } => {
                "write `?sslmode=require` in the URL, and `&sslrootcert=/path/to/ca.pem` \
                 for a server whose certificate no public authority signed"
                    .into()
            }
            StateError::TlsRefused { .. } => {
                "check that the server has TLS on, that its certificate names the host in the \
                 URL, and that `sslrootcert=` names the authority that signed it"
                    .into()
            }
            StateError::NothingToMove { .. } => {
                "run this in the store whose server kept its state in SQLite".into()
            }
            StateError::NotEmpty { .. } => {
                "move into an empty database (`createdb shop`), or keep using the one that has the state".into()
            }
            StateError::Mismatch { .. } => {
                "nothing was committed; stop every `shop serve` of this store and run it again".into()
            }
            StateError::NewerSchema { .. } => {
                "another server runs a newer `shop`: upgrade this one to the same version".into()
            }
        }
    }
}

/// Files whose redirects this server's charges found used up: only these
/// need a look at the state before GitHub is asked for a URL. It may hold a
/// file a grant has since reopened (the look says so), never miss one the
/// charges refused or used up.
#[derive(Debug, Default, Clone)]
pub(crate) struct UsedUp(Arc<std::sync::Mutex<std::collections::HashSet<FileKey>>>);

impl UsedUp {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<FileKey>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add(&self, keys: impl IntoIterator<Item = FileKey>) {
        self.set().extend(keys);
    }

    fn contains(&self, key: &FileKey) -> bool {
        self.set().contains(key)
    }

    fn remove(&self, key: &FileKey) {
        self.set().remove(key);
    }
}

/// Where a store's state is kept.
#[derive(Debug)]
pub enum Location {
    /// `.shop/state.db` in the store.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (a secret: it may hold a password).
    Postgres(Secret),
}

/// The state, in whichever back end keeps it. Every operation is one
/// transaction; a charge says whether a download may go out, after the
/// count is committed.
#[derive(Debug)]
pub struct Db {
    backend: Backend,
    /// When this server last forgot stale rate-limit keys (in periods).
    pruned: std::sync::atomic::AtomicI64,
}

#[derive(Debug)]
enum Backend {
    Sqlite(Arc<sqlite::Sqlite>),
    Postgres(postgres::Postgres),
}

/// Runs the same call on whichever back end this is.
macro_rules! either {
    ($self:ident, $db:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($db) => $call,
            Backend::Postgres($db) => $call,
        }
    };
}

impl Db {
    /// Opens the state at `location`, creating and migrating its schema.
    pub async fn open(location: &Location) -> Result<Db, StateError> {
        match location {
            Location::Sqlite(path) => Db::sqlite(path),
            Location::Postgres(url) => Ok(Db {
                backend: Backend::Postgres(postgres::Postgres::connect(url).await?),
                pruned: Default::default(),
            }),
        }
    }

    /// Opens (or creates) the SQLite state at `path`.
    pub fn sqlite(path: &std::path::Path) -> Result<Db, StateError> {
        Ok(Db {
            backend: Backend::Sqlite(Arc::new(sqlite::Sqlite::open(path)?)),
            pruned: Default::default(),
        })
    }

    // ---- purchases

    /// Records a purchase (its email and payment may have changed); returns
    /// when the server first saw it.
    pub async fn upsert_purchase(
        &self,
        purchase: Entitlement,
        now: i64,
    ) -> Result<i64, StateError> {
        either!(self, db => db.upsert_purchase(purchase, now).await)
    }

    pub async fn purchase(&self, id: &str) -> Result<Option<Arc<Entitlement>>, StateError> {
        either!(self, db => db.purchase(id).await)
    }

    /// When the server first saw purchase `id` (Unix seconds), if it has.
    pub async fn seen(&self, id: &str) -> Result<Option<i64>, StateError> {
        either!(self, db => db.seen(id).await)
    }

    /// Every purchase the server knows, for `shop trace`.
    pub async fn all_purchases(&self) -> Result<Vec<Entitlement>, StateError> {
        either!(self, db => db.all_purchases().await)
    }

    /// Records a library (the page of everything `email` bought) and
    /// returns its id, for a signed link.
    pub async fn new_library(&self, email: &str, now: i64) -> Result<String, StateError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        either!(self, db => db.new_library(&id, email, now).await)?;
        Ok(id)
    }

    /// The address a library was made for.
    pub async fn library_email(&self, id: &str) -> Result<Option<String>, StateError> {
        either!(self, db => db.library_email(id).await)
    }

    /// The purchases of `email` (any case) that are not refunded or
    /// disputed, oldest first.
    pub async fn purchases_of(&self, email: &str) -> Result<Vec<Entitlement>, StateError> {
        either!(self, db => db.purchases_of(email).await)
    }

    // ---- downloads

    /// What a file of a purchase has used, and the grant on top of the limit.
    pub async fn usage(&self, key: &FileKey) -> Result<(Usage, u32), StateError> {
        either!(self, db => db.usage(key).await)
    }

    /// Whether a redirect to this file would be refused as used up; cheap
    /// for a file not known to be used up.
    pub async fn redirects_used_up(
        &self,
        key: &FileKey,
        limit: u32,
        size: u64,
    ) -> Result<bool, StateError> {
        let used_up = either!(self, db => db.used_up());
        if !used_up.contains(key) {
            return Ok(false);
        }
        let (usage, extra) = self.usage(key).await?;
        let exhausted = !crate::downloads::admit_redirect(usage, limit + extra, size);
        if !exhausted {
            // Reopened by a grant.
            used_up.remove(key);
        }
        Ok(exhausted)
    }

    /// Charges a streamed request of `length` bytes from byte `start` of a
    /// file of `size` bytes, if the download rule admits it.
    pub async fn charge_stream(
        &self,
        key: FileKey,
        limit: u32,
        size: u64,
        start: u64,
        length: u64,
    ) -> Result<Charge, StateError> {
        let ask = Ask::Stream {
            limit,
            size,
            start,
            length,
        };
        self.charge(key, ask).await
    }

    /// Gives back `bytes` a streamed request was charged but did not send.
    pub async fn refund_stream(&self, key: FileKey, bytes: u64) -> Result<(), StateError> {
        self.charge(key, Ask::Refund { bytes }).await.map(drop)
    }

    /// Counts a redirect to a file of `size` bytes: one whole download.
    pub async fn charge_redirect(
        &self,
        key: FileKey,
        limit: u32,
        size: u64,
        now: i64,
    ) -> Result<Charge, StateError> {
        self.charge(key, Ask::Redirect { limit, size, now }).await
    }

    /// One ask of the download rule ([`crate::downloads::apply`]), decided
    /// and written by the back end's writer.
    async fn charge(&self, key: FileKey, ask: Ask) -> Result<Charge, StateError> {
        either!(self, db => db.charge(key, ask).await)
    }

    pub async fn revoked(&self, purchase: &Entitlement) -> Result<bool, StateError> {
        self.is_revoked(purchase.payment_intent.as_deref()).await
    }

    /// Whether a payment is refunded or disputed.
    pub async fn is_revoked(&self, payment_intent: Option<&str>) -> Result<bool, StateError> {
        let Some(intent) = payment_intent else {
            return Ok(false);
        };
        either!(self, db => db.is_revoked(intent).await)
    }

    /// Reopens the downloads of a refunded or disputed payment.
    pub async fn reinstate(&self, payment_intent: &str) -> Result<(), StateError> {
        either!(self, db => db.reinstate(payment_intent).await)
    }

    /// Adds `extra` downloads to every file of a purchase; returns the
    /// purchase's grant in all.
    pub async fn grant(&self, purchase: &str, extra: u32) -> Result<u32, StateError> {
        either!(self, db => db.grant(purchase, extra).await)
    }

    // ---- webhook events: each recorded once, with what it does

    /// A paid sale (or `None`: an event of a sale not ours or not paid):
    /// records the purchase and queues its receipt, unless a refund came
    /// first. `None` for an event already recorded; else whether the
    /// payment was already revoked.
    pub async fn record_sale(
        &self,
        event: &Event<'_>,
        purchase: Option<Entitlement>,
    ) -> Result<Option<bool>, StateError> {
        either!(self, db => db.record_sale(event, purchase).await)
    }

    /// A refund or dispute: closes the downloads of `revoke`'s payment
    /// (`None`: a partial refund, which leaves them open).
    pub async fn record_refund(
        &self,
        event: &Event<'_>,
        revoke: Option<(&str, &'static str)>,
    ) -> Result<Option<()>, StateError> {
        either!(self, db => db.record_refund(event, revoke).await)
    }

    /// Any other event: recorded, nothing else.
    pub async fn record_event(&self, event: &Event<'_>) -> Result<Option<()>, StateError> {
        either!(self, db => db.record_refund(event, None).await)
    }

    pub async fn events_seen(&self) -> Result<i64, StateError> {
        either!(self, db => db.events_seen().await)
    }

    /// Whether the state answers a query (for `/healthz?deep=1`).
    pub async fn reachable(&self) -> Result<(), StateError> {
        either!(self, db => db.reachable().await)
    }

    // ---- mail

    /// Queues the links of everything `email` bought.
    pub async fn queue_links(&self, email: &str, now: i64) -> Result<(), StateError> {
        either!(self, db => db.queue_links(email, now).await)
    }

    /// Records purchases the server may not have seen and queues each
    /// one's receipt, once per purchase (`shop sync` after a webhook
    /// outage). Returns how many receipts were queued.
    pub async fn queue_receipts(
        &self,
        purchases: Vec<Entitlement>,
        now: i64,
    ) -> Result<usize, StateError> {
        either!(self, db => db.queue_receipts(purchases, now).await)
    }

    /// Takes up to `limit` unsent messages whose next attempt is due,
    /// oldest first, for this server to send: no other server sending from
    /// the same state takes them for [`MAIL_LEASE`] seconds.
    pub async fn claim_mail(&self, now: i64, limit: u32) -> Result<Vec<QueuedMail>, StateError> {
        either!(self, db => db.claim_mail(now, limit).await)
    }

    /// Marks a message sent: only after the transport accepted it.
    pub async fn mail_sent(&self, id: i64, now: i64) -> Result<(), StateError> {
        either!(self, db => db.mail_sent(id, now).await)
    }

    /// Records a failed attempt; the next one waits by `backoff`.
    pub async fn mail_failed(
        &self,
        id: i64,
        now: i64,
        error: String,
        backoff: crate::retry::Backoff,
    ) -> Result<(), StateError> {
        either!(self, db => db.mail_failed(id, now, error.clone(), backoff).await)
    }

    /// Records that `email` wants no more update notices.
    pub async fn opt_out(&self, email: &str, now: i64) -> Result<(), StateError> {
        either!(self, db => db.opt_out(&email.to_ascii_lowercase(), now).await)
    }

    /// The addresses (lowercase) that want no update notices.
    pub async fn opt_outs(&self) -> Result<std::collections::HashSet<String>, StateError> {
        either!(self, db => db.opt_outs().await)
    }

    // ---- rate limits

    /// Whether one more request at `now` fits every `(key, quota)`; if it
    /// does, it is counted against each, and if not, against none. Every
    /// server sharing the state counts together.
    pub async fn allow(&self, checks: &[(&str, Quota)], now: i64) -> Result<bool, StateError> {
        let mut checks: Vec<limits::Check> = checks
            .iter()
            .map(|(key, quota)| limits::Check::new(key, *quota, now))
            .collect();
        // One order for every server's locks.
        checks.sort_by(|a, b| a.key.cmp(&b.key));
        let prune = limits::prune_due(&self.pruned, now);
        either!(self, db => db.allow(checks.clone(), now, prune).await)
    }
}

/// Copies the SQLite state at `from` into the empty PostgreSQL database at
/// `to`, in one transaction that commits only if every table's rows and
/// every download count read back equal to the SQLite ones. Returns each
/// table with its rows. The servers of the store should be stopped: what
/// they write meanwhile stays in SQLite.
pub async fn move_to_postgres(
    from: &std::path::Path,
    to: &Secret,
) -> Result<Vec<(&'static str, usize)>, StateError> {
    if !from.exists() {
        return Err(StateError::NothingToMove {
            path: from.to_owned(),
        });
    }
    // Brought to the newest schema first, so the columns are the same.
    drop(sqlite::Sqlite::open(from)?);
    let path = from.to_owned();
    let state = tokio::task::spawn_blocking(move || sqlite::export(&path))
        .await
        .map_err(|_| StateError::Closed)??;
    postgres::Postgres::connect(to).await?.import(state).await
}

/// A webhook event, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub received: i64,
}

/// How long a server that took a message to send keeps others off it: a
/// server that dies mid-send leaves its messages to the others after this.
pub const MAIL_LEASE: i64 = 300;

/// Every test here runs on both back ends: `<test>::sqlite` and
/// `<test>::postgres` (a PostgreSQL server of its own, in a temporary
/// folder).
#[cfg(test)]
mod tests {
    use super::*;

    /// A state to open as often as a test wants (a second server, or the
    /// same one after a restart).
    struct Fixture {
        location: Location,
        _dir: Option<tempfile::TempDir>,
        _cluster: Option<pg_cluster::Cluster>,
    }

    impl Fixture {
        fn sqlite() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            Fixture {
                location: Location::Sqlite(dir.path().join("state.db")),
                _dir: Some(dir),
                _cluster: None,
            }
        }

        fn postgres() -> Fixture {
            let cluster = pg_cluster::Cluster::start(false).unwrap();
            let url = Secret::new("SHOP_STATE_URL", cluster.url("postgres")).unwrap();
            Fixture {
                location: Location::Postgres(url),
                _dir: None,
                _cluster: Some(cluster),
            }
        }

        async fn open(&self) -> Db {
            Db::open(&self.location).await.unwrap()
        }
    }

    /// Writes `$body` once per back end, with `$fixture` bound.
    macro_rules! on_both {
        ($(#[$doc:meta])* $name:ident, |$fixture:ident| $body:block) => {
            $(#[$doc])*
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let $fixture = Fixture::sqlite();
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let $fixture = Fixture::postgres();
                    $body
                }
            }
        };
    }

    fn purchase() -> Entitlement {
        Entitlement {
            id: "cs_test_1".into(),
            email: "Ada@Example.com".into(),
            product: "guide".into(),
            version: "1.0.0".into(),
            payment_intent: Some("pi_1".into()),
            created: 1,
            paid: Some(Paid {
                amount: 2400,
                currency: "eur".into(),
                discount: 0,
                tax: 400,
            }),
        }
    }

    fn key(version: &str) -> FileKey {
        FileKey::new(&purchase(), "guide", version, "guide.pdf")
    }

    fn event(id: &str) -> Event<'_> {
        Event {
            id,
            kind: "checkout.session.completed",
            received: 5,
        }
    }

    on_both!(
        /// A bundle's purchase gives two products that both have
        /// `book.pdf`: each is counted on its own.
        files_of_two_products_in_one_purchase_are_counted_apart,
        |fixture| {
            let db = fixture.open().await;
            let bundle = Entitlement {
                product: "box-set".into(),
                ..purchase()
            };
            let novel = FileKey::new(&bundle, "novel", "1.0.0", "book.pdf");
            let workbook = FileKey::new(&bundle, "workbook", "1.0.0", "book.pdf");
            for _ in 0..2 {
                let charged = db.charge_redirect(novel.clone(), 2, 100, 1).await;
                assert_eq!(charged.unwrap(), Charge::Admitted);
            }
            let again = db.charge_redirect(novel.clone(), 2, 100, 1).await;
            assert_eq!(again.unwrap(), Charge::Exhausted);
            assert!(db.redirects_used_up(&novel, 2, 100).await.unwrap());
            let other = db.charge_redirect(workbook.clone(), 2, 100, 1).await;
            assert_eq!(other.unwrap(), Charge::Admitted);
            assert!(!db.redirects_used_up(&workbook, 2, 100).await.unwrap());
            assert_eq!(db.usage(&novel).await.unwrap().0.whole, 2);
            assert_eq!(db.usage(&workbook).await.unwrap().0.whole, 1);
        }
    );

    on_both!(
        /// Fifty charges at once, streams and redirects mixed, through two
        /// handles on one state (two servers): exactly the limit.
        the_limit_is_exact_under_concurrency,
        |fixture| {
            let servers = [Arc::new(fixture.open().await), Arc::new(fixture.open().await)];
            servers[0].upsert_purchase(purchase(), 10).await.unwrap();
            let mut tasks = Vec::new();
            for index in 0..50 {
                let db = servers[index % 2].clone();
                tasks.push(tokio::spawn(async move {
                    if index % 4 < 2 {
                        db.charge_stream(key("1.0.0"), 5, 1000, 0, 1000).await
                    } else {
                        db.charge_redirect(key("1.0.0"), 5, 1000, 10).await
                    }
                    .unwrap()
                }));
            }
            let mut admitted = 0;
            for task in tasks {
                if task.await.unwrap() == Charge::Admitted {
                    admitted += 1;
                }
            }
            assert_eq!(admitted, 5);
            let db = &servers[1];
            let (usage, extra) = db.usage(&key("1.0.0")).await.unwrap();
            assert_eq!((usage.left(5 + extra, 1000), extra), (0, 0));
            assert_eq!(db.grant("cs_test_1", 2).await.unwrap(), 2);
            assert_eq!(db.grant("cs_test_1", 1).await.unwrap(), 3);
            let charged = db.charge_stream(key("1.0.0"), 5, 1000, 0, 1000).await;
            assert_eq!(charged.unwrap(), Charge::Admitted);
            // Another version: counted apart.
            let charged = db.charge_stream(key("1.1.0"), 5, 1000, 0, 1000).await;
            assert_eq!(charged.unwrap(), Charge::Admitted);
            let (usage, _) = db.usage(&key("1.1.0")).await.unwrap();
            assert_eq!(usage.left(8, 1000), 7);
        }
    );

    on_both!(
        unsent_bytes_are_given_back_and_redirects_count_whole,
        |fixture| {
            let db = fixture.open().await;
            for _ in 0..5 {
                let charged = db.charge_stream(key("1.0.0"), 5, 1000, 0, 1000).await;
                assert_eq!(charged.unwrap(), Charge::Admitted);
            }
            // The fifth broke at byte 400.
            db.refund_stream(key("1.0.0"), 600).await.unwrap();
            assert_eq!(db.usage(&key("1.0.0")).await.unwrap().0.bytes, 4400);
            let rest = db.charge_stream(key("1.0.0"), 5, 1000, 400, 600).await;
            assert_eq!(rest.unwrap(), Charge::Admitted);
            let sixth = db.charge_stream(key("1.0.0"), 5, 1000, 0, 1000).await;
            assert_eq!(sixth.unwrap(), Charge::Exhausted);

            // Redirects and streamed bytes count against one budget.
            let other = key("2.0.0");
            let first = db.charge_redirect(other.clone(), 2, 1000, 100).await;
            assert_eq!(first.unwrap(), Charge::Admitted);
            let part = db.charge_stream(other.clone(), 2, 1000, 500, 500).await;
            assert_eq!(part.unwrap(), Charge::Admitted);
            let second = db.charge_redirect(other.clone(), 2, 1000, 160).await;
            assert_eq!(second.unwrap(), Charge::Exhausted);
            // The rest of a download under way still fits the one file of
            // slack; a fresh one does not.
            let rest = db.charge_stream(other.clone(), 2, 1000, 500, 500).await;
            assert_eq!(rest.unwrap(), Charge::Admitted);
            let fresh = db.charge_stream(other.clone(), 2, 1000, 0, 1000).await;
            assert_eq!(fresh.unwrap(), Charge::Exhausted);
        }
    );

    on_both!(
        /// One event delivered to two servers at once: one purchase, one
        /// receipt; a refund closes the downloads for good.
        events_are_handled_once_and_revocations_stick,
        |fixture| {
            let servers = [Arc::new(fixture.open().await), Arc::new(fixture.open().await)];
            let mut tasks = Vec::new();
            for db in &servers {
                let db = db.clone();
                tasks.push(tokio::spawn(async move {
                    db.record_sale(&event("evt_sale"), Some(purchase())).await.unwrap()
                }));
            }
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            outcomes.sort();
            assert_eq!(outcomes, [None, Some(false)]);
            let db = &servers[0];
            assert_eq!(db.seen("cs_test_1").await.unwrap(), Some(5));
            // Seen once: a later sighting keeps the first time.
            assert_eq!(db.upsert_purchase(purchase(), 90).await.unwrap(), 5);
            let queued = db.claim_mail(10, 100).await.unwrap();
            let kinds: Vec<_> = queued.iter().map(|mail| (mail.kind.as_str(), mail.purchase.as_deref())).collect();
            assert_eq!(kinds, [("receipt", Some("cs_test_1"))]);
            assert_eq!(db.purchase("cs_test_1").await.unwrap().unwrap().as_ref(), &purchase());
            // `shop sync` after the webhook: the receipt is not queued twice.
            assert_eq!(db.queue_receipts(vec![purchase()], 20).await.unwrap(), 0);

            let refund = Event { id: "evt_refund", kind: "charge.refunded", received: 30 };
            let first = db.record_refund(&refund, Some(("pi_1", "refunded"))).await.unwrap();
            let again = servers[1].record_refund(&refund, Some(("pi_1", "refunded"))).await.unwrap();
            assert_eq!((first, again), (Some(()), None));
            assert!(db.revoked(&purchase()).await.unwrap());
            let charged = servers[1].charge_stream(key("1.0.0"), 5, 1000, 0, 1000).await;
            assert_eq!(charged.unwrap(), Charge::Revoked);
            let other = Event { id: "evt_other", kind: "customer.created", received: 31 };
            assert_eq!(db.record_event(&other).await.unwrap(), Some(()));
            assert!(db.purchases_of("ada@example.com").await.unwrap().is_empty());
            drop(servers);
            // Durable: a new server sees the same.
            let db = fixture.open().await;
            assert_eq!(db.events_seen().await.unwrap(), 3);
            assert!(db.revoked(&purchase()).await.unwrap());
            db.reinstate("pi_1").await.unwrap();
            assert!(!db.revoked(&purchase()).await.unwrap());
            assert_eq!(db.purchases_of("ADA@example.COM").await.unwrap(), [purchase()]);
        }
    );

    on_both!(
        /// A sale refunded before its webhook came: recorded, no receipt.
        a_sale_refunded_first_gets_no_receipt,
        |fixture| {
            let db = fixture.open().await;
            let refund = Event { id: "evt_refund", kind: "charge.refunded", received: 4 };
            db.record_refund(&refund, Some(("pi_1", "refunded"))).await.unwrap();
            let sale = db.record_sale(&event("evt_sale"), Some(purchase())).await;
            assert_eq!(sale.unwrap(), Some(true));
            assert!(db.claim_mail(10, 100).await.unwrap().is_empty());
            assert!(db.purchase("cs_test_1").await.unwrap().is_some());
        }
    );

    on_both!(libraries_opt_outs_links_and_failed_mail, |fixture| {
        let db = fixture.open().await;
        let id = db.new_library("ada@example.com", 1).await.unwrap();
        assert_eq!(
            db.library_email(&id).await.unwrap().as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(db.library_email("nope").await.unwrap(), None);
        db.opt_out("Ada@Example.com", 2).await.unwrap();
        db.opt_out("ada@example.com", 3).await.unwrap();
        let expected: std::collections::HashSet<String> = ["ada@example.com".to_owned()].into();
        assert_eq!(db.opt_outs().await.unwrap(), expected);
        db.queue_links("bob@example.com", 4).await.unwrap();
        let queued = db.claim_mail(4, 10).await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (queued[0].kind.as_str(), queued[0].recipient.as_str()),
            ("links", "bob@example.com")
        );
        let backoff = crate::retry::Backoff {
            initial: std::time::Duration::from_secs(30),
            max: std::time::Duration::from_secs(3600),
        };
        db.mail_failed(queued[0].id, 100, "refused".into(), backoff)
            .await
            .unwrap();
        // Not due again before its wait, due after it.
        assert!(db.claim_mail(100, 10).await.unwrap().is_empty());
        let later = 100 + backoff.ceiling(1).as_secs() as i64;
        let due = db.claim_mail(later, 10).await.unwrap();
        assert_eq!(
            due.iter().map(|mail| mail.id).collect::<Vec<_>>(),
            [queued[0].id]
        );
        db.mail_sent(queued[0].id, later).await.unwrap();
        assert!(db.claim_mail(later + 10_000, 10).await.unwrap().is_empty());
        assert_eq!(db.all_purchases().await.unwrap(), []);
    });

    on_both!(
        /// Rate limits count every server together, take all keys or none,
        /// let a key in again once its window has passed, stay exact under
        /// concurrency and outlive a restart.
        rate_limits_are_shared_all_or_none_and_exact,
        |fixture| {
            let servers = [Arc::new(fixture.open().await), Arc::new(fixture.open().await)];
            let (tight, loose) = (Quota::per_hour(2), Quota::per_hour(3));
            let ask = |server: usize, key: &'static str, now: i64| {
                let db = servers[server].clone();
                async move { db.allow(&[(key, tight), ("all", loose)], now).await.unwrap() }
            };
            assert!(ask(0, "a", 100).await);
            assert!(ask(1, "a", 101).await);
            assert!(!ask(0, "a", 102).await);
            // The refusal of `a` cost `all` nothing.
            assert!(ask(1, "b", 103).await);
            assert!(!ask(0, "c", 104).await);
            // An hour after the first two: `all` has room for two again,
            // and a third once the hit at 103 is an hour old.
            assert!(ask(1, "c", 3_701).await);
            assert!(ask(0, "a", 3_702).await);
            assert!(ask(1, "d", 3_703).await);
            assert!(!ask(0, "e", 3_704).await);
            // Forty at once through both servers: exactly the quota.
            let burst = Quota::per_minute(7);
            let mut tasks = Vec::new();
            for index in 0..40 {
                let db = servers[index % 2].clone();
                tasks.push(tokio::spawn(async move {
                    db.allow(&[("burst", burst)], 5_000).await.unwrap()
                }));
            }
            let mut allowed = 0;
            for task in tasks {
                allowed += usize::from(task.await.unwrap());
            }
            assert_eq!(allowed, 7);
            drop(servers);
            let restarted = fixture.open().await;
            assert!(!restarted.allow(&[("burst", burst)], 5_030).await.unwrap());
            assert!(restarted.allow(&[("burst", burst)], 5_061).await.unwrap());
        }
    );

    /// Two servers on one PostgreSQL take each due message once; one that
    /// stops mid-send leaves its messages to the other after the lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_servers_claim_each_message_once() {
        let fixture = Fixture::postgres();
        let servers = [
            Arc::new(fixture.open().await),
            Arc::new(fixture.open().await),
        ];
        let purchases: Vec<Entitlement> = (0..40)
            .map(|index| Entitlement {
                id: format!("cs_test_{index}"),
                payment_intent: Some(format!("pi_{index}")),
                ..purchase()
            })
            .collect();
        assert_eq!(servers[0].queue_receipts(purchases, 1).await.unwrap(), 40);
        let mut tasks = Vec::new();
        for round in 0..8 {
            let db = servers[round % 2].clone();
            tasks.push(tokio::spawn(
                async move { db.claim_mail(10, 7).await.unwrap() },
            ));
        }
        let mut claimed = Vec::new();
        for task in tasks {
            claimed.extend(task.await.unwrap().into_iter().map(|mail| mail.id));
        }
        claimed.sort();
        let before = claimed.len();
        claimed.dedup();
        assert_eq!((before, claimed.len()), (40, 40));
        // Nobody marked them sent: taken again only once the lease is out.
        assert!(
            servers[1]
                .claim_mail(10 + MAIL_LEASE - 1, 100)
                .await
                .unwrap()
                .is_empty()
        );
        let again = servers[1].claim_mail(10 + MAIL_LEASE, 100).await.unwrap();
        assert_eq!(again.len(), 40);
    }

    /// A database migrated by a newer `shop` is not touched by this one;
    /// servers starting together migrate once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_schema_is_versioned() {
        let fixture = Fixture::postgres();
        let (first, second) = tokio::join!(fixture.open(), fixture.open());
        let Backend::Postgres(pg) = &first.backend else {
            unreachable!("a PostgreSQL fixture")
        };
        assert_eq!(
            pg.schema_version().await.unwrap(),
            postgres::SCHEMA_VERSION as i64
        );
        drop(second);
        let Location::Postgres(url) = &fixture.location else {
            unreachable!("a PostgreSQL fixture")
        };
        let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute("UPDATE shop_schema SET version = 99", &[])
            .await
            .unwrap();
        let refused = Db::open(&fixture.location).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "the PostgreSQL database has schema version 99, newer than this `shop` knows ({})",
                postgres::SCHEMA_VERSION
            )
        );
    }
}

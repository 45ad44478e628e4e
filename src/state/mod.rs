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
use crate::store::money;

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
    /// A gift (`email` then is the recipient's): given when a sale is
    /// recorded, which keeps it beside the purchase; a purchase read back
    /// leaves it out ([`Db::gift`] reads it).
    pub gift: Option<crate::gift::Gift>,
}

impl Entitlement {
    /// The amount paid (`24.00 EUR`), as a refund gives it back.
    pub fn amount_text(&self) -> String {
        match &self.paid {
            Some(paid) => money::display_amount(paid.amount, &paid.currency),
            None => self.paid_text(),
        }
    }

    /// What its receipt says was paid, with any discount and tax in it.
    pub fn paid_text(&self) -> String {
        match &self.paid {
            Some(paid) => {
                money::describe_payment(paid.amount, &paid.currency, paid.discount, paid.tax)
            }
            None => "see Stripe's receipt".into(),
        }
    }
}

impl Entitlement {
    /// A free sample as the ledger keeps it: nothing paid, in the
    /// product's `currency`, status `sample`.
    pub fn as_sample(&self, currency: &str) -> ledger::Purchase {
        ledger::Purchase {
            id: self.id.clone(),
            created: crate::dates::timestamp(self.created),
            email: self.email.clone(),
            product: self.product.clone(),
            version: self.version.clone(),
            amount: 0,
            currency: currency.to_owned(),
            status: ledger::Status::Sample,
            ..ledger::Purchase::default()
        }
    }
}

impl From<&ledger::Purchase> for Entitlement {
    /// A ledger line as the server keeps it (the ledger records no
    /// discount amount).
    fn from(purchase: &ledger::Purchase) -> Entitlement {
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
            gift: crate::gift::of_ledger(purchase),
        }
    }
}

/// Visits of one day, kind, product and source, counted (what `shop
/// serve` keeps of a visit: no address, no user agent, no cookie).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct VisitCount {
    /// `2026-12-07` (UTC).
    pub day: String,
    /// `view` (the store front or a product's page) or `checkout` (a
    /// `/buy` started).
    pub kind: String,
    /// The product's slug; empty for the store front.
    pub product: String,
    /// `utm_source`, else the referring site's host, else `direct`.
    pub source: String,
    pub count: u64,
}

/// The mail queue's kind of a gift's mail to its recipient.
pub const GIFT_MAIL: &str = "present";

/// The mail queue's kind of a gift's receipt to its buyer.
pub const GIFT_RECEIPT: &str = "gift_receipt";

/// A gift and how its mail to the recipient stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftState {
    pub gift: crate::gift::Gift,
    /// When its mail was last accepted by the mail server, if it was.
    pub sent: Option<i64>,
    /// Whether a mail of it is queued and not sent (its day to come, or
    /// being retried).
    pub waiting: bool,
}

/// What a purchase cost, in minor units of `currency` (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub amount: i64,
    pub currency: String,
    pub discount: i64,
    pub tax: i64,
}

/// A buyer's use of the withdrawal function (`/withdraw/<token>`), as the
/// state keeps it: the request, what was decided, and the refund's course
/// at Stripe. One per purchase: asking again finds this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub purchase: String,
    pub email: String,
    pub payment_intent: Option<String>,
    /// When the buyer confirmed it (Unix seconds).
    pub requested: i64,
    /// The name the buyer gave, and their reason (may be empty).
    pub name: String,
    pub reason: String,
    /// What was decided: [`crate::withdrawal::Decision::word`].
    pub decision: String,
    /// When the buyer accepted the waiver, for a right that had ended.
    pub waived: Option<i64>,
    /// The refund at Stripe, once made, and its status there (`pending`,
    /// `succeeded`, `failed`, `canceled`).
    pub refund: Option<String>,
    pub refund_status: Option<String>,
    /// Refunds Stripe refused or failed so far: each retry is a new
    /// request with a new idempotency key.
    pub refused: i64,
    pub last_error: Option<String>,
    /// When the refund succeeded.
    pub settled: Option<i64>,
}

/// Someone who asked for the author's news (`/follow`, a free sample, or
/// an import), as the state keeps them: counted once they confirmed, by
/// the link mailed to them (double opt-in), until they leave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Follower {
    /// The id their links carry (`fl_…`): never the address.
    pub id: String,
    /// Lower case.
    pub email: String,
    /// When they asked, confirmed, and left (Unix seconds).
    pub asked: i64,
    pub confirmed: Option<i64>,
    pub left: Option<i64>,
    /// Where they asked: `front`, `product:<slug>`, `import`.
    pub source: String,
    /// What they agreed to, in the words they were shown.
    pub consent: String,
}

/// The follower a free sample's mail asks to confirm: the sample's id
/// with [`FOLLOWER_PREFIX`].
pub fn sample_follower(sample: &str) -> String {
    let suffix = sample.strip_prefix(ledger::SAMPLE_PREFIX).unwrap_or(sample);
    format!("{FOLLOWER_PREFIX}{suffix}")
}

impl Follower {
    /// A request to follow, not yet confirmed.
    fn asked(id: String, email: &str, source: &str, consent: &str, now: i64) -> Follower {
        Follower {
            id,
            email: email.to_ascii_lowercase(),
            asked: now,
            confirmed: None,
            left: None,
            source: source.to_owned(),
            consent: consent.to_owned(),
        }
    }

    /// Whether posts go to them.
    pub fn following(&self) -> bool {
        self.confirmed.is_some() && self.left.is_none()
    }
}

/// What a reader asked of their devices: the Kindle address their EPUBs
/// go to (remembered for the next time), and the moment up to which
/// their OPDS feeds' addresses were stopped (none: 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reader {
    pub kindle: Option<String>,
    pub feeds_from: i64,
}

/// The first key after every key that starts with `prefix` (its last
/// character moved one up), for a range query on an index; empty for an
/// empty prefix. Ids are ASCII.
fn after_prefix(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// The start of a follower's id.
pub const FOLLOWER_PREFIX: &str = "fl_";

impl From<&Withdrawal> for ledger::Withdrawal {
    /// A withdrawal as the ledger keeps it (the address is the purchase's).
    fn from(withdrawal: &Withdrawal) -> ledger::Withdrawal {
        ledger::Withdrawal {
            purchase: withdrawal.purchase.clone(),
            order: ledger::order_number(&withdrawal.purchase),
            requested: crate::dates::timestamp(withdrawal.requested),
            decision: withdrawal.decision.clone(),
            waived: withdrawal.waived.map(crate::dates::timestamp),
            name: withdrawal.name.clone(),
            reason: withdrawal.reason.clone(),
            refund: withdrawal.refund.clone().filter(|id| !id.is_empty()),
            refund_status: withdrawal.refund_status.clone(),
            refused: withdrawal.refused,
        }
    }
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
use crate::error::Registered;
use crate::{downloads, error, ledger, retry};

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

/// A message of the mail queue as it stands: what `shop serve` has sent,
/// is sending, or tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailState {
    /// `receipt` or `links`.
    pub kind: String,
    pub recipient: String,
    pub purchase: Option<String>,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When it went, if it has (Unix seconds).
    pub sent: Option<i64>,
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

inventory::submit!(Registered::of::<StateError>());

impl error::Hint for StateError {
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

/// What recording a webhook event did. Each event is recorded once, by
/// whichever server gets it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Recorded {
    /// Recorded before (here or by another server): nothing was done.
    Again,
    /// Recorded now, and done.
    Now,
    /// A sale recorded now whose payment was already refunded or disputed
    /// (the refund's event came first): no receipt is owed.
    NowRevoked,
}

impl Recorded {
    /// From a back end's answer: `None` when seen before, else whether the
    /// payment was already revoked.
    fn of(seen: Option<bool>) -> Recorded {
        match seen {
            None => Recorded::Again,
            Some(false) => Recorded::Now,
            Some(true) => Recorded::NowRevoked,
        }
    }

    /// Whether this was the first time.
    pub fn is_new(self) -> bool {
        self != Recorded::Again
    }
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
        self.purchases_starting("").await
    }

    /// The purchases whose id starts with `prefix` (such as the free
    /// samples' `sm_`), read by the key's order rather than whole.
    pub async fn purchases_starting(&self, prefix: &str) -> Result<Vec<Entitlement>, StateError> {
        let prefix = prefix.to_owned();
        either!(self, db => db.purchases_starting(prefix.clone()).await)
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
        let exhausted = !downloads::admit_redirect(usage, limit + extra, size);
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
    /// first.
    pub async fn record_sale(
        &self,
        event: &Event<'_>,
        purchase: Option<Entitlement>,
    ) -> Result<Recorded, StateError> {
        either!(self, db => db.record_sale(event, purchase).await).map(Recorded::of)
    }

    /// A refund or dispute: closes the downloads of `revoke`'s payment
    /// (`None`: a partial refund, which leaves them open).
    pub async fn record_refund(
        &self,
        event: &Event<'_>,
        revoke: Option<(&str, &'static str)>,
    ) -> Result<Recorded, StateError> {
        either!(self, db => db.record_refund(event, revoke).await)
            .map(|seen| Recorded::of(seen.map(|()| false)))
    }

    /// Any other event: recorded, nothing else.
    pub async fn record_event(&self, event: &Event<'_>) -> Result<Recorded, StateError> {
        self.record_refund(event, None).await
    }

    pub async fn events_seen(&self) -> Result<i64, StateError> {
        either!(self, db => db.events_seen().await)
    }

    /// Whether the webhook event `id` was recorded.
    pub async fn event_recorded(&self, id: &str) -> Result<bool, StateError> {
        either!(self, db => db.event_recorded(id).await)
    }

    /// Every message of the mail queue, oldest first.
    pub async fn mail_queue(&self) -> Result<Vec<MailState>, StateError> {
        either!(self, db => db.mail_queue().await)
    }

    // ---- followers

    /// Records a request to follow and queues its confirmation mail;
    /// `None` when the address already follows (nothing is mailed). A new
    /// request of an address that asked before gets a new id.
    pub async fn request_follow(
        &self,
        email: &str,
        source: &str,
        consent: &str,
        now: i64,
    ) -> Result<Option<String>, StateError> {
        let id = format!("{FOLLOWER_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let asked = Follower::asked(id, email, source, consent, now);
        either!(self, db => db.request_follow(asked, true).await)
    }

    /// Records a free sample given to `sample.email` and queues its mail
    /// (the download link), once; with `follow`, first a request to follow
    /// whose confirmation link rides in that mail (the follower's id is
    /// the sample's with [`FOLLOWER_PREFIX`]). Returns whether it is new.
    pub async fn give_sample(
        &self,
        sample: Entitlement,
        follow: Option<(&str, &str)>,
        now: i64,
    ) -> Result<bool, StateError> {
        if let Some((source, consent)) = follow {
            let id = sample_follower(&sample.id);
            let asked = Follower::asked(id, &sample.email, source, consent, now);
            either!(self, db => db.request_follow(asked, false).await)?;
        }
        Ok(self.queue_receipts(vec![sample], now).await? > 0)
    }

    /// Confirms the follower `id` (the link in their mail); their address.
    pub async fn confirm_follower(&self, id: &str, now: i64) -> Result<Option<String>, StateError> {
        either!(self, db => db.confirm_follower(id.to_owned(), now).await)
    }

    /// The follower `id` leaves (their unsubscribe link); their address.
    pub async fn unfollow(&self, id: &str, now: i64) -> Result<Option<String>, StateError> {
        either!(self, db => db.unfollow(id.to_owned(), now).await)
    }

    pub async fn follower(&self, id: &str) -> Result<Option<Follower>, StateError> {
        either!(self, db => db.follower(id.to_owned()).await)
    }

    /// Every follower, confirmed or not, oldest first.
    pub async fn followers(&self) -> Result<Vec<Follower>, StateError> {
        either!(self, db => db.followers().await)
    }

    /// Adds followers an author brings (confirmed, with their consent);
    /// an address already known is left as it is. Returns how many were added.
    pub async fn import_followers(&self, followers: Vec<Follower>) -> Result<usize, StateError> {
        either!(self, db => db.import_followers(followers).await)
    }

    // ---- readers' devices

    /// What `email` asked of their devices.
    pub async fn reader(&self, email: &str) -> Result<Reader, StateError> {
        let email = email.to_ascii_lowercase();
        either!(self, db => db.reader(email.clone()).await)
    }

    /// Remembers `kindle` as `email`'s Kindle address and queues the mail
    /// `reference` names (`kindle` kind: the EPUB as an attachment), in
    /// one transaction.
    pub async fn send_to_kindle(
        &self,
        email: &str,
        kindle: &str,
        reference: &str,
        now: i64,
    ) -> Result<(), StateError> {
        let (email, kindle, reference) = (
            email.to_ascii_lowercase(),
            kindle.to_ascii_lowercase(),
            reference.to_owned(),
        );
        either!(self, db => db.send_to_kindle(email.clone(), kindle.clone(), reference.clone(), now).await)
    }

    /// Stops every OPDS feed address of `email` issued up to `now`.
    pub async fn revoke_feeds(&self, email: &str, now: i64) -> Result<(), StateError> {
        let email = email.to_ascii_lowercase();
        either!(self, db => db.revoke_feeds(email.clone(), now).await)
    }

    // ---- withdrawals

    /// Records a withdrawal once per purchase, with the acknowledgement
    /// mail; one that `refund`s also closes the payment's downloads and
    /// queues the refund at Stripe, in the same transaction. Returns the
    /// withdrawal as kept (an earlier one, if the buyer asked before) and
    /// whether it is new.
    pub async fn request_withdrawal(
        &self,
        withdrawal: Withdrawal,
        refund: bool,
    ) -> Result<(Withdrawal, bool), StateError> {
        either!(self, db => db.request_withdrawal(withdrawal, refund).await)
    }

    pub async fn withdrawal(&self, purchase: &str) -> Result<Option<Withdrawal>, StateError> {
        either!(self, db => db.withdrawal(purchase.to_owned()).await)
    }

    /// Every withdrawal, oldest first.
    pub async fn withdrawals(&self) -> Result<Vec<Withdrawal>, StateError> {
        either!(self, db => db.withdrawals().await)
    }

    /// The withdrawal whose refund is of this payment.
    pub async fn withdrawal_of_payment(
        &self,
        payment_intent: &str,
    ) -> Result<Option<Withdrawal>, StateError> {
        either!(self, db => db.withdrawal_of_payment(payment_intent.to_owned()).await)
    }

    /// Records the refund Stripe made (or settled) for a withdrawal; the
    /// first time it has `succeeded`, the buyer's refund mail is queued
    /// (unless `mail` is false: `shop refund` sends its own).
    pub async fn refund_made(
        &self,
        purchase: &str,
        refund: &str,
        status: &str,
        now: i64,
        mail: bool,
    ) -> Result<(), StateError> {
        let (purchase, refund, status) =
            (purchase.to_owned(), refund.to_owned(), status.to_owned());
        either!(self, db => db.refund_made(purchase, refund, status, now, mail).await)
    }

    /// Records that Stripe refused a withdrawal's refund, or that `refund`
    /// failed: it is asked for again at `retry_at` (none: no more) with a
    /// new request, and the buyer is told (once) that it is delayed. The
    /// same failed refund told twice counts once.
    pub async fn refund_refused(
        &self,
        purchase: &str,
        refund: Option<&str>,
        error: &str,
        now: i64,
        retry_at: Option<i64>,
    ) -> Result<(), StateError> {
        let (purchase, error) = (purchase.to_owned(), error.to_owned());
        let refund = refund.map(str::to_owned);
        either!(self, db => db.refund_refused(purchase, refund, error, now, retry_at).await)
    }

    /// Whether any file of a purchase has been downloaded (a byte sent or
    /// a redirect counted): performance has begun.
    pub async fn downloaded(&self, purchase: &str) -> Result<bool, StateError> {
        either!(self, db => db.downloaded(purchase.to_owned()).await)
    }

    /// Whether the state answers a query (for `/healthz?deep=1`).
    pub async fn reachable(&self) -> Result<(), StateError> {
        either!(self, db => db.reachable().await)
    }

    // ---- mail

    /// Adds counted visits to the state's counters (one upsert per key).
    pub async fn add_visits(&self, counts: Vec<VisitCount>) -> Result<(), StateError> {
        if counts.is_empty() {
            return Ok(());
        }
        either!(self, db => db.add_visits(counts).await)
    }

    /// Every visit counter, by day, kind, product and source.
    pub async fn visits(&self) -> Result<Vec<VisitCount>, StateError> {
        either!(self, db => db.visits().await)
    }

    /// A gift bought with purchase `id`, and how its mail stands.
    pub async fn gift(&self, id: &str) -> Result<Option<GiftState>, StateError> {
        either!(self, db => db.gift(id).await)
    }

    /// Queues the gift of purchase `id` to its recipient again (a mail
    /// bounced or lost), unless one is waiting to go. Returns whether one
    /// was queued.
    pub async fn resend_gift(&self, id: &str, now: i64) -> Result<bool, StateError> {
        either!(self, db => db.resend_gift(id, now).await)
    }

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
        backoff: retry::Backoff,
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
mod tests;

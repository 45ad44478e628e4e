//! `shop serve`: where buyers land after paying, Stripe's webhooks, and
//! signed, counted download links.
//!
//! [`routes`] (`routes.rs`) builds the warp filter from an [`App`]; [`serve`] runs it on a
//! listener (through `connection`, which times connections out) until a
//! shutdown signal, letting in-flight downloads finish. Handlers live in
//! `handlers/` (a file per family of routes), pages in `pages.rs` and
//! `views.rs`, the client's address and the key its limits count under in
//! `client.rs`, the parsing of `Range` in `range.rs`.

mod budget;
pub mod client;
pub mod connection;
mod events;
mod front;
mod gifts;
mod handlers;
pub mod kindle;
pub mod lost;
pub mod outbox;
mod posts;
mod range;
pub mod reconcile;
mod routes;
pub mod stamped;
pub mod views;
pub mod visits;
pub mod withdraw;
mod zipped;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::github::GitHub;
use crate::secret::Secret;
use crate::state::Db;
use crate::store::Store;
use crate::stripe;
use crate::tokens::Key;

use crate::store::{Overrides, disk};
use crate::stripe::webhook;
use crate::{error, ledger, state, store, tokens};
pub use connection::{Admission, Timeouts};
pub use routes::{Chosen, routes};

/// Where the files buyers download come from.
#[derive(Debug)]
pub enum Files {
    /// A 302 to the short-lived URL GitHub gives for a private asset.
    GitHub { client: Box<GitHub> },
    /// Streamed from `<dir>/<slug>/<version>/<file>`.
    Local(PathBuf),
}

/// Where a local release keeps `file` of `product` at `version`.
pub fn local_file(dir: &std::path::Path, product: &str, version: &str, file: &str) -> PathBuf {
    dir.join(product).join(version).join(file)
}

/// Everything the server needs, built by `commands::serve`.
pub struct App {
    /// The store as last read: reloaded when its files change (a release
    /// made while the server runs).
    store: std::sync::RwLock<Arc<Store>>,
    store_stamp: Mutex<Stamp>,
    pub stripe: stripe::Client,
    /// Stripe for requests a visitor waits on: one attempt, a short
    /// deadline, so that a slow Stripe costs a visitor seconds, not minutes.
    pub stripe_quick: stripe::Client,
    /// The first key signs; all verify (the previous one after a rotation).
    pub keys: Vec<Key>,
    pub webhook_secret: Option<Secret>,
    pub db: Arc<Db>,
    pub files_from: Files,
    /// The pages built from templates (store front, thanks, library).
    pub views: views::Views,
    /// Buyers' stamped copies.
    pub copies: stamped::Copies,
    /// Unix seconds now.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Flags and environment over shop.toml, for reloading the store.
    pub overrides: store::Overrides,
    links: Mutex<HashMap<u64, (String, Instant)>>,
    /// The last deep health check: when, and what it found.
    health: tokio::sync::Mutex<Option<(Instant, Vec<String>)>>,
    files: Mutex<FileCache>,
    /// The calls to Stripe visitors may cause, shared fairly.
    stripe_budget: budget::Budget,
    /// Lost-link requests waiting for their look-up.
    pub lost: lost::Pending,
    /// How far the server has read what webhooks may have missed.
    reconciler: reconcile::Reconciler,
    /// Wakes the outbox at once (a withdrawal's refund is due).
    pub outbox_wake: tokio::sync::Notify,
    /// The first wait before a refund Stripe refused is asked for again
    /// (doubling after each refusal).
    pub refund_retry: Duration,
    /// Visits counted since the last write (`visits`).
    pub visits: visits::Counter,
    started: Instant,
}

/// Small local files kept in memory once read: released files never change
/// (a release writes them once, by rename), and serving from memory spares
/// a trip to the blocking pool per download.
#[derive(Debug, Default)]
struct FileCache {
    entries: HashMap<PathBuf, bytes::Bytes>,
    order: std::collections::VecDeque<PathBuf>,
    total: usize,
}

/// Files up to this size are cached...
const CACHED_FILE_MAX: u64 = 8 * 1024 * 1024;
/// ...within this much memory in all.
const CACHE_BUDGET: usize = 64 * 1024 * 1024;

/// How long an asset's URL from GitHub is reused when it does not say how
/// long it lives (GitHub's have lived five minutes).
const LINK_REUSE: Duration = Duration::from_secs(240);
/// How long before its expiry a URL stops being handed out.
const LINK_MARGIN: Duration = Duration::from_secs(60);

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store().root)
            .field("files_from", &self.files_from)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(
        store: Store,
        stripe: stripe::Client,
        keys: Vec<Key>,
        webhook_secret: Option<Secret>,
        db: Db,
        files_from: Files,
        views: views::Views,
    ) -> App {
        let stamp = Stamp::of(&store.root);
        let copies = stamped::Copies::new(&store.root, store.settings.serve.stamped_cache);
        let stripe_quick = stripe.clone().with_retry(stripe::RetryPolicy {
            max_attempts: 1,
            attempt_timeout: Some(Duration::from_secs(5)),
            ..stripe::RetryPolicy::default()
        });
        App {
            store: std::sync::RwLock::new(Arc::new(store)),
            store_stamp: Mutex::new(stamp),
            stripe,
            stripe_quick,
            keys,
            webhook_secret,
            db: Arc::new(db),
            files_from,
            copies,
            views,
            clock: Arc::new(system_now),
            overrides: Overrides::default(),
            links: Mutex::new(HashMap::new()),
            health: tokio::sync::Mutex::new(None),
            files: Mutex::new(FileCache::default()),
            stripe_budget: budget::Budget::new(budget::DEFAULT_PER_SECOND),
            lost: lost::Pending::default(),
            reconciler: reconcile::Reconciler::default(),
            outbox_wake: tokio::sync::Notify::new(),
            refund_retry: Duration::from_secs(30),
            visits: visits::Counter::default(),
            started: Instant::now(),
        }
    }

    /// Whether a visitor's request may call Stripe now (see `budget`).
    pub fn stripe_call(&self, client: client::ClientKey) -> bool {
        self.stripe_budget
            .take(client, self.started.elapsed().as_secs())
    }

    /// The store as it is now.
    pub fn store(&self) -> Arc<Store> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the store again if its files changed since it was last read; a
    /// store that no longer loads keeps the old one (and says why).
    pub fn refresh_store(&self) {
        let root = self.store().root.clone();
        let stamp = Stamp::of(&root);
        let mut known = self.store_stamp.lock().unwrap_or_else(|p| p.into_inner());
        if *known == stamp {
            return;
        }
        let overrides = self.overrides.clone();
        match Store::open(&root, &overrides) {
            Ok(store) => {
                *self.store.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
                *known = stamp;
                tracing::info!("reloaded the store");
            }
            Err(error) => tracing::error!(
                "the store changed but does not load; serving the previous one: {}",
                error::one_line(&error)
            ),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The address of a sale's invoice, when the store asks Stripe for
    /// invoices: Stripe issues it once the payment succeeds (for a bank
    /// debit, days after the checkout), and the receipt goes when it has.
    /// Empty when there is none, or Stripe cannot be asked now: the
    /// receipt, with its download link, does not wait (Stripe mails the
    /// invoice as well).
    pub async fn invoice_url(&self, purchase: &str) -> String {
        if !self.store().settings.tax.invoices || !purchase.starts_with("cs_") {
            return String::new();
        }
        match self
            .stripe
            .checkout_session_expanded(purchase, &["invoice"])
            .await
        {
            Ok(session) => session
                .and_then(|session| session.invoice)
                .and_then(|invoice| invoice.object().cloned())
                .and_then(|invoice| invoice.hosted_invoice_url)
                .unwrap_or_default(),
            Err(error) => {
                tracing::warn!(
                    purchase = %purchase,
                    "the receipt goes without its invoice: {}",
                    error::one_line(&error)
                );
                String::new()
            }
        }
    }

    /// What a message that hands over `purchase`'s files to `email` says
    /// of them (`mail::Access`), with a fresh download link.
    pub fn access_values(
        &self,
        store: &Store,
        product: &store::Product,
        purchase: &state::Entitlement,
        email: &str,
    ) -> std::collections::BTreeMap<&'static str, String> {
        let link = self.link(&purchase.id);
        crate::mail::Access {
            store,
            product,
            version: &purchase.version,
            email,
            purchase: &purchase.id,
            link: &link,
            expires: self.now() + store.settings.link_lifetime as i64,
        }
        .values()
    }

    /// What a receipt to `email` says of a paid `purchase` without its
    /// link: the product, version, order, date, amount paid and the
    /// product's cover, contents and stamp.
    pub fn paid_values(
        &self,
        store: &Store,
        product: &store::Product,
        purchase: &state::Entitlement,
        email: &str,
    ) -> std::collections::BTreeMap<&'static str, String> {
        let mut values = crate::mail::shop_values(&store.settings, email);
        values.insert("product", product.name.clone());
        values.insert("version", purchase.version.clone());
        values.insert("order", ledger::order_number(&purchase.id));
        values.insert("date", crate::dates::human_day(purchase.created));
        values.insert("paid", purchase.paid_text());
        values.extend(crate::mail::product_values(
            store,
            product,
            &purchase.version,
        ));
        values
    }

    /// A signed download link for a purchase, valid for the shop's lifetime.
    pub fn link(&self, purchase: &str) -> String {
        let store = self.store();
        tokens::link(
            &store.settings.base_url,
            &self.keys[0],
            purchase,
            self.now() + store.settings.link_lifetime as i64,
        )
    }

    /// The withdrawal function's link of a purchase, for its pages: none
    /// for a copy nobody paid for (a grant, a 100% code) or one refunded.
    pub fn withdraw_link(
        &self,
        purchase: &state::Entitlement,
        refunded: bool,
    ) -> Option<views::WithdrawLink> {
        (purchase.payment_intent.is_some() && !refunded).then(|| views::WithdrawLink {
            href: tokens::withdraw_path(&self.keys[0], &purchase.id, self.now()),
            text: self.store().settings.refunds.link_text.clone(),
        })
    }

    /// A signed, expiring link to the library of `email`: the page of
    /// everything it bought.
    pub async fn library_link(&self, email: &str) -> Result<String, state::StateError> {
        let now = self.now();
        let id = self.db.new_library(email, now).await?;
        let claims = tokens::Claims {
            purchase: format!("{}{id}", handlers::LIBRARY_PREFIX),
            expires: now + self.store().settings.link_lifetime as i64,
        };
        Ok(format!(
            "{}/library/{}",
            self.store().settings.base_url,
            tokens::sign(&self.keys[0], &claims)
        ))
    }

    /// What `email` bought and still has (not refunded or disputed), by
    /// Checkout Session id: the purchases the server knows and the
    /// ledger's, read on a blocking thread. Values are (product, version,
    /// created).
    pub async fn purchases_by(
        &self,
        email: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, (String, String, i64)>> {
        let mut found = std::collections::BTreeMap::new();
        for purchase in self.db.purchases_of(email).await? {
            found.insert(
                purchase.id,
                (purchase.product, purchase.version, purchase.created),
            );
        }
        let (root, email) = (self.store().root.clone(), email.to_owned());
        let paid = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<ledger::Purchase>> {
            let mut paid = Vec::new();
            ledger::each(&root, |purchase| {
                if purchase.email.eq_ignore_ascii_case(&email) && purchase.in_good_standing() {
                    paid.push(purchase);
                }
                Ok(())
            })?;
            Ok(paid)
        })
        .await??;
        let mut ledger = Vec::with_capacity(paid.len());
        for purchase in paid {
            if !self
                .db
                .is_revoked(purchase.payment_intent.as_deref())
                .await?
            {
                ledger.push(purchase);
            }
        }
        for purchase in ledger {
            let created = purchase.created_unix();
            found
                .entry(purchase.id)
                .or_insert((purchase.product, purchase.version, created));
        }
        Ok(found)
    }

    /// A short-lived asset URL that still has time to run.
    fn cached_link(&self, asset: u64) -> Option<String> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .get(&asset)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(url, _)| url.clone())
    }

    /// Keeps a URL for its real lifetime less a margin (a buyer sent to it
    /// must have time to start), or [`LINK_REUSE`] when it does not say.
    fn cache_link(&self, asset: u64, url: &str, expires: Option<std::time::SystemTime>) {
        let lifetime = match expires {
            Some(at) => at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .saturating_sub(LINK_MARGIN),
            None => LINK_REUSE,
        };
        if lifetime.is_zero() {
            return;
        }
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        links.retain(|_, (_, until)| now < *until);
        links.insert(asset, (url.to_owned(), now + lifetime));
    }

    /// The bytes of a small file from memory, reading it once; `None` for a
    /// file too large to keep (it is streamed) or one that cannot be read.
    async fn cached_file(&self, path: &std::path::Path, size: u64) -> Option<bytes::Bytes> {
        if size > CACHED_FILE_MAX {
            return None;
        }
        if let Some(bytes) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .get(path)
        {
            return Some(bytes.clone());
        }
        let owned = path.to_owned();
        // Only a regular file of the local files folder, never what a
        // symlink points at: such a file is left to `open_at`, which
        // refuses it.
        let bytes = tokio::task::spawn_blocking(move || {
            let dir = owned
                .ancestors()
                .find(|dir| dir.file_name().is_some_and(|name| name == ".shop"))
                .ok_or_else(|| std::io::Error::other("not under `.shop/`"))?;
            if !disk::is_within(dir, &owned)? {
                return Err(std::io::Error::other("not a regular file of `.shop/`"));
            }
            std::fs::read(owned)
        })
        .await
        .ok()?
        .ok()?;
        if bytes.len() as u64 != size {
            return None;
        }
        let bytes = bytes::Bytes::from(bytes);
        let mut cache = self.files.lock().unwrap_or_else(|p| p.into_inner());
        while cache.total + bytes.len() > CACHE_BUDGET {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(evicted) = cache.entries.remove(&oldest) {
                cache.total -= evicted.len();
            }
        }
        if cache
            .entries
            .insert(path.to_owned(), bytes.clone())
            .is_none()
        {
            cache.total += bytes.len();
            cache.order.push_back(path.to_owned());
        }
        Some(bytes)
    }
}

/// What is wrong with how Stripe sends this server its events: no endpoint
/// for `<base_url>/stripe/webhook`, or one whose API version is not the one
/// shop reads (the version decides the shape of every event). Each
/// finding is a message and its fix.
pub async fn webhook_endpoint_problems(
    stripe: &stripe::Client,
    base_url: &str,
) -> Result<Vec<(String, String)>, stripe::StripeError> {
    use futures_util::TryStreamExt as _;
    let url = format!("{base_url}/stripe/webhook");
    let endpoints: Vec<stripe::WebhookEndpoint> = stripe.webhook_endpoints().try_collect().await?;
    let create = format!(
        "create it with the API version shop reads: `stripe webhook_endpoints create \
         --url {url} --api-version {} -d \"enabled_events[]=checkout.session.completed\" \
         -d \"enabled_events[]=checkout.session.async_payment_succeeded\" \
         -d \"enabled_events[]=charge.refunded\" -d \"enabled_events[]=charge.dispute.created\"`, \
         then set STRIPE_WEBHOOK_SECRET to its signing secret",
        stripe::API_VERSION
    );
    let ours: Vec<&stripe::WebhookEndpoint> = endpoints
        .iter()
        .filter(|endpoint| endpoint.url == url && endpoint.status == "enabled")
        .collect();
    if ours.is_empty() {
        return Ok(vec![(
            format!("no enabled webhook endpoint of this Stripe account sends events to `{url}`"),
            create,
        )]);
    }
    Ok(ours
        .into_iter()
        .filter(|endpoint| endpoint.api_version.as_deref() != Some(stripe::API_VERSION))
        .map(|endpoint| {
            (
                format!(
                    "the webhook endpoint `{}` sends events in API version `{}`, but shop reads `{}`",
                    endpoint.id,
                    endpoint.api_version.as_deref().unwrap_or("the account's default"),
                    stripe::API_VERSION
                ),
                format!("a version cannot be changed: {create}, and delete the old endpoint"),
            )
        })
        .collect())
}

/// How long a deep health check's finding is reused: the check costs a
/// request to Stripe and one to GitHub, and `/healthz?deep=1` is public.
const HEALTH_REUSE: Duration = Duration::from_secs(30);

impl App {
    /// What stops buyers from being served, checked against the services
    /// themselves: the Stripe key can read (and Stripe sends this server's
    /// events), and the GitHub token can read the repository of the files.
    /// Each finding is one line with its fix; none holds a secret. Then
    /// whether the state answers, asked afresh each time (one query of
    /// its own database, not a request to another service).
    pub async fn problems(&self) -> Vec<String> {
        let mut found = self.service_problems().await;
        if let Err(error) = self.db.reachable().await {
            found.push(finding(
                "the server's state cannot be reached, so no download can be counted",
                &error,
            ));
        }
        found
    }

    /// The Stripe key's and GitHub token's problems, reused for
    /// [`HEALTH_REUSE`].
    async fn service_problems(&self) -> Vec<String> {
        let mut health = self.health.lock().await;
        if let Some((at, found)) = &*health
            && at.elapsed() < HEALTH_REUSE
        {
            return found.clone();
        }
        let mut found = Vec::new();
        let base_url = self.store().settings.base_url.clone();
        match webhook_endpoint_problems(&self.stripe_quick, &base_url).await {
            Ok(problems) => found.extend(
                problems
                    .into_iter()
                    .map(|(problem, fix)| format!("{problem} (hint: {fix})")),
            ),
            Err(error) => found.push(finding("the Stripe key cannot read this account", &error)),
        }
        if let Files::GitHub { client } = &self.files_from
            && let Err(error) = client.access().await
        {
            found.push(finding(
                &format!(
                    "`GITHUB_TOKEN` cannot read `{}`, so no download from there can be served",
                    client.repository()
                ),
                &error,
            ));
        }
        *health = Some((Instant::now(), found.clone()));
        found
    }
}

/// A health check's finding: what is wrong, the error on one line, and its
/// fix.
fn finding<E>(problem: &str, error: &E) -> String
where
    E: std::error::Error + error::Hint + 'static,
{
    format!(
        "{problem}: {} (hint: {})",
        error::one_line(error),
        error.hint()
    )
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// When the store's files last changed: shop.toml and products/*.toml.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Stamp(Vec<(PathBuf, Option<std::time::SystemTime>, u64)>);

impl Stamp {
    fn of(root: &std::path::Path) -> Stamp {
        let mut files = vec![root.join(store::SETTINGS_FILE)];
        if let Ok(entries) = std::fs::read_dir(root.join(store::PRODUCTS_DIR)) {
            files.extend(entries.flatten().map(|entry| entry.path()));
        }
        files.sort();
        Stamp(
            files
                .into_iter()
                .map(|path| {
                    let metadata = std::fs::metadata(&path).ok();
                    let modified = metadata.as_ref().and_then(|m| m.modified().ok());
                    let len = metadata.map_or(0, |m| m.len());
                    (path, modified, len)
                })
                .collect(),
        )
    }
}

/// Serves `app` on `listener` until `shutdown` completes; in-flight
/// requests (downloads among them) finish first.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    timeouts: Timeouts,
    admission: Admission,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    connection::serve(
        listener,
        warp::service(routes(app)),
        timeouts,
        admission,
        shutdown,
    )
    .await;
}

/// Binds `address` with `TCP_NODELAY` (small responses go out at once).
pub async fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests;

/// The message of `rendered` to a queued mail's recipient (the outbox's
/// and a gift's mails).
fn to_recipient(
    from: &str,
    queued: &state::QueuedMail,
    rendered: &crate::mail::Rendered,
    message_id: &str,
) -> anyhow::Result<Option<lettre::Message>> {
    Ok(Some(crate::mail::compose(
        from,
        &queued.recipient,
        rendered,
        message_id,
        None,
    )?))
}

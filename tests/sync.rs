//! `shop sync` and `shop report` against the sandbox with its settable
//! clock: months of purchases over many pages, refunds and a dispute,
//! sessions of other integrations, repeated and full syncs that change
//! nothing, and a sync killed at random points that ends as one
//! uninterrupted sync would.

use futures_util::TryStreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use shop::stripe::{CreateCheckoutSession, CreatePrice, CreateProduct, IdempotencyKey};

use crate::harness::{Sandbox, Test};

/// 2026-08-01T00:00:00Z.
const AUGUST: i64 = 1_785_542_400;
const DAY: i64 = 86_400;

struct Shop {
    runtime: tokio::runtime::Runtime,
    sandbox: Option<Sandbox>,
    prices: Vec<String>,
}

impl Shop {
    /// A sandbox selling `guide` (29.00 USD) and `atlas` (15.00 EUR).
    fn new() -> Shop {
        let runtime = crate::harness::runtime();
        let sandbox = runtime.block_on(Sandbox::start());
        let client = sandbox.client();
        let prices = runtime.block_on(async {
            let mut prices = Vec::new();
            for (slug, amount, currency) in [("guide", 2900, "usd"), ("atlas", 1500, "eur")] {
                let product = CreateProduct {
                    id: Some(format!("prod_shop_{slug}")),
                    name: slug.into(),
                    ..CreateProduct::default()
                };
                client
                    .create_product(&product, &IdempotencyKey::random())
                    .await
                    .unwrap();
                let price = CreatePrice {
                    product: format!("prod_shop_{slug}"),
                    unit_amount: amount,
                    custom_unit_amount: None,
                    currency: currency.into(),
                    tax_behavior: None,
                    currency_options: Vec::new(),
                    metadata: Default::default(),
                };
                prices.push(
                    client
                        .create_price(&price, &IdempotencyKey::random())
                        .await
                        .unwrap()
                        .id,
                );
            }
            prices
        });
        Shop {
            runtime,
            sandbox: Some(sandbox),
            prices,
        }
    }

    fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().unwrap()
    }

    fn control(&self, method: Method, path: &str, body: Value) -> Value {
        self.runtime
            .block_on(self.sandbox().control(method, path, body))
    }

    /// `count` paid sessions from `start`, `step` seconds apart.
    fn seed(
        &self,
        price: usize,
        count: u64,
        start: i64,
        step: i64,
        metadata: Value,
    ) -> Vec<String> {
        let answer = self.control(
            Method::POST,
            "seed",
            json!({"price": self.prices[price], "count": count, "start": start, "step": step, "metadata": metadata, "events": false}),
        );
        answer["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect()
    }

    fn payment_intent(&self, session: &str) -> String {
        let client = self.sandbox().client();
        let session = self
            .runtime
            .block_on(client.checkout_session(session))
            .unwrap()
            .unwrap();
        session.payment_intent_id().unwrap().to_owned()
    }

    fn refund(&self, session: &str, amount: Option<i64>) {
        let intent = self.payment_intent(session);
        let client = self.sandbox().client();
        self.runtime
            .block_on(client.create_refund(&intent, amount, &IdempotencyKey::random()))
            .unwrap();
    }

    fn dispute(&self, session: &str) {
        let intent = self.payment_intent(session);
        self.control(Method::POST, "disputes", json!({"payment_intent": intent}));
    }

    /// A store of these two products, pointed at the sandbox.
    fn store(&self) -> Test {
        let mut test = Test::store();
        test.write(
            "products/guide.toml",
            "name = \"Guide\"\nprice = \"29.00\"\nfiles = [\"guide.pdf\"]\n",
        );
        test.write(
            "products/atlas.toml",
            "name = \"Atlas\"\nprice = \"15.00\"\ncurrency = \"eur\"\nfiles = [\"atlas.epub\"]\n",
        );
        test.env("SHOP_STRIPE_API_BASE", &self.sandbox().url);
        test.env("STRIPE_SECRET_KEY", "sk_test_sync");
        test
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if let Some(sandbox) = self.sandbox.take() {
            self.runtime.block_on(sandbox.stop());
        }
    }
}

fn head(path: &std::path::Path) -> (git2::Oid, String) {
    let repo = git2::Repository::open(path).unwrap();
    let commit = repo.head().unwrap().peel_to_commit().unwrap();
    (commit.id(), commit.message().unwrap().to_owned())
}

/// Every ledger file of a store, by name.
fn ledger(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(path.join("purchases"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_str().unwrap().ends_with(".jsonl"))
        .map(|entry| {
            (
                entry.file_name().into_string().unwrap(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The one ledger line of purchase `id`.
fn the_line(path: &std::path::Path, id: &str) -> Value {
    let found: Vec<Value> = lines(path)
        .into_iter()
        .filter(|line| line["id"] == id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "`{id}` is not in the ledger once: {found:?}"
    );
    found.into_iter().next().unwrap()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    ledger(path)
        .iter()
        .flat_map(|(_, bytes)| {
            String::from_utf8(bytes.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[test]
fn months_of_purchases_refunds_and_disputes_reach_the_ledger() {
    let shop = Shop::new();
    let guide = shop.seed(
        0,
        120,
        AUGUST,
        DAY / 2,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    let atlas = shop.seed(
        1,
        80,
        AUGUST + 45 * DAY,
        DAY,
        json!({"product": "atlas", "version": "2.0.0", "utm_source": "newsletter"}),
    );
    shop.seed(0, 15, AUGUST + 10 * DAY, DAY, json!({}));
    shop.seed(
        0,
        5,
        AUGUST + 11 * DAY,
        DAY,
        json!({"product": "someone-elses", "version": "1"}),
    );
    // A session still open is not a purchase.
    let client = shop.sandbox().client();
    shop.runtime
        .block_on(
            client.create_checkout_session(
                &CreateCheckoutSession {
                    price: shop.prices[0].clone(),
                    success_url: "http://127.0.0.1:9/t".into(),
                    metadata: [
                        ("product".to_owned(), "guide".to_owned()),
                        ("version".to_owned(), "1.0.0".to_owned()),
                    ]
                    .into(),
                    ..Default::default()
                },
                &IdempotencyKey::random(),
            ),
        )
        .unwrap();
    // Refunds come after the purchases, as in Stripe's own time.
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 125 * DAY));
    shop.refund(&guide[3], None);
    shop.refund(&guide[7], Some(900));
    shop.refund(&atlas[10], None);
    shop.dispute(&guide[50]);

    let store = shop.store();
    store
        .shop(&["sync"])
        .success()
        .stderr_has(&[
            "220 completed sessions seen",
            "20 of other integrations skipped",
        ])
        .stdout_has(&["200 new, 0 refunded, 0 disputed; committed"]);
    let (_, message) = head(store.path());
    assert_eq!(message, "sync: 200 new");

    let files: Vec<String> = ledger(store.path())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        files,
        [
            "2026-08.jsonl",
            "2026-09.jsonl",
            "2026-10.jsonl",
            "2026-11.jsonl",
            "2026-12.jsonl"
        ]
    );
    let all = lines(store.path());
    assert_eq!(all.len(), 200);
    let by_id = |id: &str| all.iter().find(|line| line["id"] == id).unwrap().clone();
    assert_eq!(by_id(&guide[3])["status"], "refunded");
    assert_eq!(
        (
            by_id(&guide[7])["status"].clone(),
            by_id(&guide[7])["amount_refunded"].clone()
        ),
        (json!("paid"), json!(900))
    );
    assert_eq!(by_id(&atlas[10])["status"], "refunded");
    assert_eq!(by_id(&guide[50])["status"], "disputed");
    let first = by_id(&guide[0]);
    assert_eq!(first["created"], "2026-08-01T00:00:00Z");
    assert_eq!(
        (
            first["email"].clone(),
            first["amount"].clone(),
            first["currency"].clone()
        ),
        (json!("buyer0@example.com"), json!(2900), json!("usd"))
    );
    assert_eq!(by_id(&atlas[0])["utm_source"], "newsletter");
    let keys: Vec<String> = first.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "id",
            "created",
            "paid",
            "email",
            "product",
            "version",
            "amount",
            "currency",
            "payment_intent",
            "status",
            "fee",
            "net"
        ]
    );
    for (_, bytes) in ledger(store.path()) {
        let text = String::from_utf8(bytes).unwrap();
        let order: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["created"].as_str().unwrap().to_owned(),
                    v["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    // Again: nothing new, no commit.
    let before = head(store.path()).0;
    store
        .shop(&["sync"])
        .success()
        .stderr_has(&["the ledger is up to date; nothing to commit"]);
    assert_eq!(head(store.path()).0, before);

    // A full rebuild of an unchanged account: the same bytes, no commit.
    let bytes = ledger(store.path());
    store
        .shop(&["sync", "--full"])
        .success()
        .stderr_has(&["nothing to commit"]);
    assert_eq!(ledger(store.path()), bytes);
    assert_eq!(head(store.path()).0, before);

    // Later: new purchases and a refund of an old one; only what is new is listed.
    shop.control(Method::DELETE, "requests", json!({}));
    let later = shop.seed(
        0,
        5,
        AUGUST + 130 * DAY,
        3600,
        json!({"product": "guide", "version": "1.1.0"}),
    );
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 131 * DAY));
    shop.refund(&guide[20], None);
    store
        .shop(&["sync"])
        .success()
        .stdout_has(&["5 new, 1 refunded, 0 disputed"]);
    assert_eq!(head(store.path()).1, "sync: 5 new, 1 refunded");
    let log = shop.control(Method::GET, "requests", json!({}));
    let listing = log
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/v1/checkout/sessions" && r["params"]["status"] == "complete")
        .unwrap()
        .clone();
    let since: i64 = listing["params"]["created"]["gte"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        since,
        AUGUST + 45 * DAY + 79 * DAY - 7 * DAY,
        "the incremental sync lists from the newest purchase less the overlap"
    );
    let all = lines(store.path());
    assert_eq!(all.len(), 205);
    assert!(all.iter().any(|l| l["id"] == later[4].as_str()));
    assert_eq!(
        all.iter().find(|l| l["id"] == guide[20].as_str()).unwrap()["status"],
        "refunded"
    );

    // And --full still agrees with the incremental ledger.
    let bytes = ledger(store.path());
    store.shop(&["sync", "--full"]).success();
    assert_eq!(ledger(store.path()), bytes);

    // The dry run writes nothing.
    shop.seed(
        0,
        2,
        AUGUST + 131 * DAY,
        60,
        json!({"product": "guide", "version": "1.1.0"}),
    );
    let head_before = head(store.path()).0;
    store
        .shop(&["sync", "--dry-run"])
        .success()
        .stderr_has(&["dry run: would change purchases/2026-12.jsonl"]);
    assert_eq!(ledger(store.path()), bytes);
    assert_eq!(head(store.path()).0, head_before);
}

#[test]
fn the_report_reads_the_ledger() {
    let shop = Shop::new();
    let guide = shop.seed(
        0,
        10,
        AUGUST,
        DAY,
        json!({"product": "guide", "version": "1.0.0", "utm_source": "mastodon"}),
    );
    shop.seed(0, 4, AUGUST + 40 * DAY, DAY, json!({"product": "guide", "version": "1.1.0", "referrer": "https://www.example.org/review"}));
    shop.seed(
        1,
        3,
        AUGUST + 5 * DAY,
        DAY,
        json!({"product": "atlas", "version": "2.0.0"}),
    );
    shop.refund(&guide[0], None);
    shop.refund(&guide[1], Some(1000));
    let store = shop.store();
    store
        .shop(&["report"])
        .success()
        .stderr_has(&["no purchases in the ledger yet"]);
    store.shop(&["sync", "-q"]).success().stderr_is("");
    store
        .shop(&["report", "--since", "2030-01-01"])
        .success()
        .stderr_has(&[
            "no purchases since 2030-01-01",
            "hint: try an earlier `--since`",
        ]);

    // Stripe's fees by its published pricing for a US account and the
    // US test card: 2.9 % rounded, plus 30 ¢ (25 euro cents in EUR); a
    // refund gives no fee back.
    let guide_fee = (2900 * 29 + 500) / 1000 + 30;
    let atlas_fee = (1500 * 29 + 500) / 1000 + 25;
    assert_eq!((guide_fee, atlas_fee), (114, 69));
    let rows = store.shop(&["report", "--json"]).success().json();
    assert_eq!(
        rows,
        json!([
            {"group": "atlas", "currency": "eur", "count": 3, "granted": 0, "samples": 0, "gross": 4500, "refunded": 0,
             "withdrawn": 0, "fees": 3 * atlas_fee, "tax": 0, "net": 4500 - 3 * atlas_fee, "fees_unknown": 0},
            {"group": "guide", "currency": "usd", "count": 14, "granted": 0, "samples": 0, "gross": 40600, "refunded": 3900,
             "withdrawn": 0, "fees": 14 * guide_fee, "tax": 0, "net": 40600 - 3900 - 14 * guide_fee, "fees_unknown": 0},
        ])
    );
    let table = store.shop(&["report"]).success().stdout();
    assert_eq!(
        table,
        "PRODUCT  COUNT  GROSS       REFUNDED   FEES       NET\n\
         atlas    3      45.00 EUR   0.00 EUR   2.07 EUR   42.93 EUR\n\
         guide    14     406.00 USD  39.00 USD  15.96 USD  351.04 USD\n",
    );
    let months = store
        .shop(&["report", "--by", "month", "--json"])
        .success()
        .json();
    let groups: Vec<&str> = months
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["2026-08", "2026-08", "2026-09"]);
    // By month, USD has two rows: their total follows.
    let by_month = store.shop(&["report", "--by", "month"]).success().stdout();
    assert!(
        by_month.ends_with("TOTAL    14     406.00 USD  39.00 USD  15.96 USD  351.04 USD\n"),
        "{by_month}"
    );
    let sources = store
        .shop(&["report", "--by", "source", "--json"])
        .success()
        .json();
    let sources: Vec<(&str, u64)> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        sources,
        [("direct", 3), ("example.org", 4), ("mastodon", 10)]
    );
    let since = store
        .shop(&["report", "--since", "2026-09-01", "--json"])
        .success()
        .json();
    assert_eq!(since[0]["count"], 4);

    let csv = store.shop(&["report", "--csv"]).success().stdout();
    let csv_lines: Vec<&str> = csv.lines().collect();
    assert_eq!(csv_lines.len(), 18);
    assert!(csv_lines[0].starts_with(
        "id,created,paid,email,product,version,preorder,status,amount,discount,refunded,currency,fee,net,"
    ));
    assert!(
        csv.contains(",guide,1.0.0,,refunded,29.00,,29.00,USD,1.14,27.86,,"),
        "{csv}"
    );
}

#[test]
fn a_sync_killed_at_random_points_ends_as_one_uninterrupted_sync() {
    let shop = Shop::new();
    let guide = shop.seed(
        0,
        1500,
        AUGUST,
        3 * 3600,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    shop.seed(
        1,
        500,
        AUGUST + 20 * DAY,
        9 * 3600,
        json!({"product": "atlas", "version": "2.0.0"}),
    );
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 190 * DAY));
    for session in guide.iter().step_by(97) {
        shop.refund(session, None);
    }
    shop.dispute(&guide[5]);

    // The reference: one sync that nothing interrupts.
    let reference = shop.store();
    reference.shop(&["sync", "-q"]).success().stderr_is("");
    let expected = ledger(reference.path());
    assert_eq!(
        expected
            .iter()
            .map(|(_, b)| b.iter().filter(|&&c| c == b'\n').count())
            .sum::<usize>(),
        2000
    );

    // Slow Stripe down so a sync takes a while, then kill it again and again.
    shop.control(Method::POST, "faults", json!({"latency_ms": 15}));
    let store = shop.store();
    for delay_ms in [40u64, 150, 300, 450, 600, 800, 950, 1100, 1250] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
        command
            .args(["sync", "-q"])
            .current_dir(store.path())
            .env_clear();
        for (key, value) in store.environment() {
            command.env(key, value);
        }
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
    }
    shop.control(Method::DELETE, "faults", json!({}));
    // And, in a fresh store, killed for certain while it writes the
    // ledger: the third month file moved into purchases/, the rest not,
    // nothing committed.
    let mut fresh = shop.store();
    fresh.env("SHOP_FAULT", "sync:moved@3");
    let stopped = fresh.shop(&["sync", "-q"]);
    assert_eq!(stopped.output.status.code(), None, "{}", stopped.stderr());
    fresh.env("SHOP_FAULT", "");
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain", "purchases/"])
        .current_dir(fresh.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).lines().count(),
        3,
        "three month files written, uncommitted, when the kill landed"
    );
    fresh.shop(&["sync", "-q"]).success().stderr_is("");
    assert_eq!(ledger(fresh.path()), expected);
    store.shop(&["sync", "-q"]).success().stderr_is("");
    assert_eq!(
        ledger(store.path()),
        expected,
        "the ledger after interrupted syncs differs from one uninterrupted sync"
    );

    // Git is sound and holds exactly the ledger on disk.
    let fsck = std::process::Command::new("git")
        .args(["fsck", "--strict"])
        .current_dir(store.path())
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "git fsck: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    let repo = git2::Repository::open(store.path()).unwrap();
    let dirty: Vec<String> = repo
        .statuses(None)
        .unwrap()
        .iter()
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .filter(|p| p.starts_with("purchases/"))
        .collect();
    assert!(dirty.is_empty(), "uncommitted ledger files: {dirty:?}");
    let messages: Vec<String> = {
        let mut walk = repo.revwalk().unwrap();
        walk.push_head().unwrap();
        walk.map(|oid| {
            repo.find_commit(oid.unwrap())
                .unwrap()
                .summary()
                .unwrap()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
    };
    assert!(
        messages
            .iter()
            .all(|m| m.starts_with("sync:") || m.starts_with("shop init")),
        "{messages:?}"
    );
    let client = shop.sandbox().client();
    let _: Vec<_> = shop
        .runtime
        .block_on(client.refunds(None).try_collect::<Vec<_>>())
        .unwrap();
}

#[test]
fn sync_needs_a_key_and_a_reachable_stripe() {
    let shop = Shop::new();
    let mut store = shop.store();
    store.env("STRIPE_SECRET_KEY", "");
    store.shop(&["sync"]).code(1).stderr_has(&[
        "`STRIPE_SECRET_KEY` is not set",
        "hint: export STRIPE_SECRET_KEY",
    ]);
    let mut store = shop.store();
    store.env("SHOP_STRIPE_API_BASE", "http://127.0.0.1:9");
    store.env("SHOP_STRIPE_ATTEMPTS", "2");
    store.shop(&["sync"]).code(1).stderr_has(&[
        "cannot reach Stripe at `http://127.0.0.1:9` after 2 attempts",
        "hint:",
    ]);
    assert!(ledger(store.path()).is_empty());
}

#[test]
fn missed_receipts_are_queued_once() {
    let shop = Shop::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    shop.seed(
        0,
        3,
        now - 2 * DAY,
        60,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    shop.seed(
        0,
        2,
        now - 60 * DAY,
        60,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    let store = shop.store();
    store
        .shop(&["sync", "--receipts"])
        .success()
        .stderr_has(&["queued 3 missing receipts for `shop serve` to send"]);
    store
        .shop(&["sync", "--receipts"])
        .success()
        .stderr_has(&["queued 0 missing receipts"]);
    let connection = rusqlite::Connection::open(store.path().join(".shop/state.db")).unwrap();
    let queued: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM mail_queue WHERE kind = 'receipt' AND sent IS NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(queued, 3);
}

impl Shop {
    /// An open session of `product` at `price` (index), codes allowed.
    fn session(&self, price: usize, product: &str) -> String {
        self.session_with(price, product, Default::default())
    }

    /// A session of `product` at price `price`, asking what `options` ask.
    fn session_with(
        &self,
        price: usize,
        product: &str,
        options: shop::stripe::CheckoutOptions,
    ) -> String {
        let client = self.sandbox().client();
        self.runtime
            .block_on(
                client.create_checkout_session(
                    &CreateCheckoutSession {
                        price: self.prices[price].clone(),
                        success_url: "http://127.0.0.1:9/t".into(),
                        allow_promotion_codes: true,
                        options,
                        metadata: [
                            ("product".to_owned(), product.to_owned()),
                            ("version".to_owned(), "1.0.0".to_owned()),
                        ]
                        .into(),
                        ..Default::default()
                    },
                    &IdempotencyKey::random(),
                ),
            )
            .unwrap()
            .id
    }

    /// A shop in August whose bank debits settle `days` later.
    fn debits_in(days: i64) -> Shop {
        let shop = Shop::new();
        shop.runtime.block_on(shop.sandbox().set_clock(AUGUST));
        shop.control(
            Method::POST,
            "settings",
            json!({"async_payment_delay": days * DAY}),
        );
        shop
    }

    /// Pays a session from the control surface: a card, or an IBAN.
    fn pay(&self, session: &str, method: (&str, &str)) -> Value {
        let (field, value) = method;
        self.control(
            Method::POST,
            &format!("checkout/sessions/{session}/complete"),
            json!({"email": "reader@example.com", field: value}),
        )
    }

    /// Posts the test checkout's form of `session`, as a browser would.
    fn post_checkout(&self, session: &str, fields: &[(&str, &str)]) -> reqwest::StatusCode {
        let form = fields
            .iter()
            .fold(shop::stripe::Form::new(), |form, (key, value)| {
                form.field(*key, *value)
            });
        let response = self
            .runtime
            .block_on(
                self.sandbox()
                    .http()
                    .post(format!("{}/checkout/{session}", self.sandbox().url))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send(),
            )
            .unwrap();
        response.status()
    }

    /// A coupon of `percent` off and its promotion code.
    fn promotion(&self, percent: u32, code: &str) {
        let post = |path: &str, form: shop::stripe::Form| {
            self.runtime.block_on(async {
                self.sandbox()
                    .http()
                    .post(format!("{}{path}", self.sandbox().url))
                    .bearer_auth("sk_test_sync")
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            })
        };
        let coupon = post(
            "/v1/coupons",
            shop::stripe::Form::new().field("percent_off", percent),
        );
        post(
            "/v1/promotion_codes",
            shop::stripe::Form::new()
                .field("coupon", coupon["id"].as_str().unwrap())
                .field("code", code),
        );
    }
}

/// `sync --full` in a clone of the store changes nothing: incremental
/// syncs gave the same bytes.
fn assert_full_sync_agrees(store: &Test) {
    let before = ledger(store.path());
    store.shop(&["sync", "--full"]).success();
    assert_eq!(
        ledger(store.path()),
        before,
        "a full sync disagrees with the incremental ones"
    );
}

#[test]
fn a_bank_debit_paid_ten_days_later_is_synced_incrementally() {
    let shop = Shop::debits_in(10);
    let debit = shop.session(1, "atlas");
    let unpaid = shop.pay(&debit, ("iban", "DE89370400440532013000"));
    assert_eq!(unpaid["payment_status"], "unpaid");
    let store = shop.store();
    store.shop(&["sync"]).success();
    assert!(
        lines(store.path())
            .iter()
            .all(|line| line["id"] != debit.as_str())
    );
    assert!(store.read("purchases/pending.jsonl").contains(&debit));

    // Other sales go on; the newest moves the window past the debit.
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 9 * DAY));
    shop.seed(
        0,
        3,
        AUGUST + 9 * DAY,
        60,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    store.shop(&["sync"]).success();
    // Day 10: the bank pays.
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 10 * DAY + 60));
    store.shop(&["sync"]).success().stdout_has(&["1 new"]);
    let paid = [the_line(store.path(), &debit)];
    assert_eq!(paid[0]["amount"], 1500);
    assert_eq!(paid[0]["status"], "paid");
    assert!(!store.path().join("purchases/pending.jsonl").exists());
    assert_full_sync_agrees(&store);

    // A debit that fails leaves nothing behind.
    let failing = shop.session(1, "atlas");
    shop.pay(&failing, ("iban", "DE62370400440532013001"));
    store.shop(&["sync"]).success();
    assert!(store.read("purchases/pending.jsonl").contains(&failing));
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 21 * DAY));
    store.shop(&["sync"]).success();
    assert!(!store.path().join("purchases/pending.jsonl").exists());
    assert!(
        lines(store.path())
            .iter()
            .all(|line| line["id"] != failing.as_str())
    );
    assert_full_sync_agrees(&store);
}

#[test]
fn a_bank_debit_gets_its_invoice_when_the_money_arrives() {
    let shop = Shop::debits_in(3);
    let client = shop.sandbox().client();
    let debit = shop.session_with(
        1,
        "atlas",
        shop::stripe::CheckoutOptions {
            invoice_creation: true,
            ..Default::default()
        },
    );
    // Stripe issues the post-payment invoice once the payment succeeds:
    // none while the bank has not paid.
    let unpaid = shop.pay(&debit, ("iban", "DE89370400440532013000"));
    assert_eq!(unpaid["payment_status"], "unpaid");
    assert_eq!(unpaid["invoice"], Value::Null, "{unpaid}");
    let store = shop.store();
    store.shop(&["sync"]).success();
    assert!(store.read("purchases/pending.jsonl").contains(&debit));

    // Day 3: the bank pays, and the invoice comes with the money.
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 3 * DAY + 60));
    store.shop(&["sync"]).success().stdout_has(&["1 new"]);
    let paid = [the_line(store.path(), &debit)];
    assert_eq!(paid[0]["invoice"], "SANDBOX-0001", "{}", paid[0]);
    assert!(
        paid[0]["invoice_url"]
            .as_str()
            .is_some_and(|url| url.starts_with(&shop.sandbox().url)),
        "{}",
        paid[0]
    );
    // Its events follow the payment's, as Stripe's do.
    let kinds: Vec<String> = shop.runtime.block_on(async {
        let events: Vec<_> = client
            .events(&[], Some(AUGUST + 3 * DAY))
            .try_collect()
            .await
            .unwrap();
        events.into_iter().rev().map(|event| event.kind).collect()
    });
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap_or(usize::MAX);
    assert!(
        at("checkout.session.async_payment_succeeded") < at("invoice.finalized")
            && at("invoice.finalized") < at("invoice.paid")
            && at("invoice.paid") < usize::MAX,
        "{kinds:?}"
    );
    assert_full_sync_agrees(&store);
}

#[test]
fn a_failed_refund_counts_in_neither_sync() {
    let shop = Shop::new();
    shop.runtime.block_on(shop.sandbox().set_clock(AUGUST));
    let sale = shop.seed(
        0,
        1,
        AUGUST,
        60,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    shop.control(Method::POST, "settings", json!({"refunds_pending": true}));
    let intent = shop.payment_intent(&sale[0]);
    let client = shop.sandbox().client();
    let refund = shop
        .runtime
        .block_on(client.create_refund(&intent, None, &IdempotencyKey::random()))
        .unwrap();
    let store = shop.store();
    store.shop(&["sync"]).success();
    assert_eq!(lines(store.path())[0]["status"], "paid");
    assert!(store.read("purchases/pending.jsonl").contains("\"charge\""));
    shop.control(
        Method::POST,
        &format!("refunds/{}/fail", refund.id),
        json!({}),
    );
    store.shop(&["sync"]).success();
    let line = lines(store.path())[0].clone();
    assert_eq!(
        (line["status"].clone(), line.get("amount_refunded")),
        (json!("paid"), None)
    );
    assert!(!store.path().join("purchases/pending.jsonl").exists());
    assert_full_sync_agrees(&store);

    // One that succeeds counts in both.
    let refund = shop
        .runtime
        .block_on(client.create_refund(&intent, Some(900), &IdempotencyKey::random()))
        .unwrap();
    shop.control(
        Method::POST,
        &format!("refunds/{}/succeed", refund.id),
        json!({}),
    );
    store.shop(&["sync"]).success();
    assert_eq!(lines(store.path())[0]["amount_refunded"], 900);
    assert_full_sync_agrees(&store);
}

#[test]
fn codes_buyers_type_and_free_copies_reach_the_ledger() {
    let shop = Shop::new();
    shop.promotion(25, "LAUNCH");
    shop.promotion(100, "REVIEW");
    // Typed at checkout in any case, as buyers type them.
    let discounted = shop.session(0, "guide");
    assert_eq!(
        shop.post_checkout(
            &discounted,
            &[("email", "ada@example.com"), ("promotion_code", "launch")]
        ),
        reqwest::StatusCode::OK
    );
    assert_eq!(
        shop.post_checkout(
            &discounted,
            &[("email", "ada@example.com"), ("card", "4242424242424242")]
        ),
        reqwest::StatusCode::SEE_OTHER
    );
    let free = shop.session(0, "guide");
    shop.post_checkout(
        &free,
        &[
            ("email", "critic@example.com"),
            ("promotion_code", "Review"),
        ],
    );
    assert_eq!(
        shop.post_checkout(&free, &[("email", "critic@example.com")]),
        reqwest::StatusCode::SEE_OTHER
    );
    let store = shop.store();
    store.shop(&["sync"]).success().stdout_has(&["2 new"]);
    let found = lines(store.path());
    let line = |id: &str| found.iter().find(|line| line["id"] == id).unwrap().clone();
    assert_eq!(
        (
            line(&discounted)["amount"].clone(),
            line(&discounted)["promotion_code"].clone()
        ),
        (json!(2175), json!("LAUNCH"))
    );
    assert_eq!(
        (
            line(&free)["amount"].clone(),
            line(&free)["promotion_code"].clone(),
            line(&free)["status"].clone()
        ),
        (json!(0), json!("REVIEW"), json!("paid"))
    );
    assert_full_sync_agrees(&store);
    store
        .shop(&["report", "--by", "code"])
        .success()
        .stdout_has(&["LAUNCH", "21.75", "REVIEW", "0.00"]);
}

/// Random histories (sales by card and by bank debit, debits paid or
/// failed days later, refunds succeeded, failed or left pending, disputes,
/// clock jumps) synced incrementally at random moments give the ledger one
/// `sync --full` gives, byte for byte.
#[test]
fn incremental_syncs_at_random_moments_equal_one_full_sync() {
    use rand::{RngExt as _, SeedableRng};
    for seed in 0..4u64 {
        let mut random = rand::rngs::StdRng::seed_from_u64(seed);
        let shop = Shop::new();
        let client = shop.sandbox().client();
        let mut now = AUGUST;
        shop.runtime.block_on(shop.sandbox().set_clock(now));
        let store = shop.store();
        let mut sessions: Vec<String> = Vec::new();
        let mut pending_refunds: Vec<String> = Vec::new();
        for _ in 0..30 {
            match random.random_range(0..9) {
                0 | 1 => {
                    let (price, product) = if random.random_bool(0.5) {
                        (0, "guide")
                    } else {
                        (1, "atlas")
                    };
                    let session = shop.session(price, product);
                    shop.pay(&session, ("card", "4242424242424242"));
                    sessions.push(session);
                }
                2 => {
                    let delay = random.random_range(1..12) * DAY;
                    shop.control(
                        Method::POST,
                        "settings",
                        json!({"async_payment_delay": delay}),
                    );
                    let session = shop.session(1, "atlas");
                    let iban = if random.random_bool(0.7) {
                        "DE89370400440532013000"
                    } else {
                        "DE62370400440532013001"
                    };
                    shop.pay(&session, ("iban", iban));
                    sessions.push(session);
                }
                3 => {
                    now += random.random_range(0..5 * DAY);
                    shop.runtime.block_on(shop.sandbox().set_clock(now));
                }
                4 | 5 if !sessions.is_empty() => {
                    let session = &sessions[random.random_range(0..sessions.len())];
                    let found = shop
                        .runtime
                        .block_on(client.checkout_session(session))
                        .unwrap()
                        .unwrap();
                    if found.payment_status != "paid" {
                        continue;
                    }
                    let pending = random.random_bool(0.4);
                    shop.control(
                        Method::POST,
                        "settings",
                        json!({"refunds_pending": pending}),
                    );
                    let amount = random.random_bool(0.5).then_some(500);
                    if let Ok(refund) = shop.runtime.block_on(client.create_refund(
                        found.payment_intent_id().unwrap(),
                        amount,
                        &IdempotencyKey::random(),
                    )) && pending
                    {
                        pending_refunds.push(refund.id);
                    }
                }
                6 if !pending_refunds.is_empty() => {
                    let refund =
                        pending_refunds.remove(random.random_range(0..pending_refunds.len()));
                    let outcome = if random.random_bool(0.5) {
                        "succeed"
                    } else {
                        "fail"
                    };
                    shop.control(
                        Method::POST,
                        &format!("refunds/{refund}/{outcome}"),
                        json!({}),
                    );
                }
                7 if !sessions.is_empty() => {
                    let session = &sessions[random.random_range(0..sessions.len())];
                    let found = shop
                        .runtime
                        .block_on(client.checkout_session(session))
                        .unwrap()
                        .unwrap();
                    if found.payment_status == "paid" {
                        shop.dispute(session);
                    }
                }
                _ => {
                    store.shop(&["-q", "sync"]).success().stderr_is("");
                }
            }
            // Each step takes a little sandbox time, as requests do.
            now += 60;
            shop.runtime.block_on(shop.sandbox().set_clock(now));
        }
        store.shop(&["-q", "sync"]).success().stderr_is("");
        let fresh = shop.store();
        fresh
            .shop(&["-q", "sync", "--full"])
            .success()
            .stderr_is("");
        assert_eq!(
            ledger(store.path()),
            ledger(fresh.path()),
            "seed {seed}: incremental syncs and a full sync disagree"
        );
    }
}

/// Runs git in `path` as an author would (with a name and address).
fn git(path: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Author",
            "-c",
            "user.email=author@example.com",
        ])
        .args(args)
        .current_dir(path)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_sync_stopped_at_each_crash_point_leaves_git_consistent() {
    let shop = Shop::new();
    shop.seed(
        0,
        60,
        AUGUST,
        DAY,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 70 * DAY));
    let reference = shop.store();
    reference.shop(&["sync", "-q"]).success().stderr_is("");
    let expected = ledger(reference.path());
    assert!(expected.len() >= 2, "the seed spans fewer than two months");

    for point in ["git:commit-written", "git:index-written", "git:head-moved"] {
        let mut store = shop.store();
        git(store.path(), &["add", "products"]);
        git(store.path(), &["commit", "-q", "-m", "the products"]);
        store.env("SHOP_FAULT", point);
        let stopped = store.shop(&["sync", "-q"]);
        assert_eq!(
            stopped.output.status.code(),
            None,
            "{point}: the sync was not stopped there\n{}",
            stopped.stderr()
        );
        // The author's next ordinary commit deletes nothing of the ledger.
        let text = store.read("products/guide.toml");
        store.write("products/guide.toml", &format!("{text}# a new line\n"));
        git(store.path(), &["add", "products/guide.toml"]);
        git(store.path(), &["commit", "-q", "-m", "the author's edit"]);
        let changed = git(
            store.path(),
            &["show", "--name-status", "--format=", "HEAD"],
        );
        assert!(
            !changed.lines().any(|line| line.starts_with('D')),
            "{point}: the author's commit deletes files:\n{changed}"
        );
        // A re-run finishes; git agrees with the disk; the ledger is whole.
        store.env("SHOP_FAULT", "");
        store.shop(&["sync", "-q"]).success().stderr_is("");
        let status = git(store.path(), &["status", "--porcelain"]);
        assert_eq!(status, "", "{point}: git status after the re-run");
        assert_eq!(ledger(store.path()), expected, "{point}");
        let tracked = git(store.path(), &["ls-files", "purchases/*.jsonl"]);
        assert_eq!(
            tracked.lines().count(),
            expected.len(),
            "{point}: {tracked}"
        );
    }
}

#[test]
fn an_index_left_behind_head_is_repaired_and_said_once() {
    let shop = Shop::new();
    shop.seed(
        0,
        45,
        AUGUST,
        DAY,
        json!({"product": "guide", "version": "1.0.0"}),
    );
    shop.runtime
        .block_on(shop.sandbox().set_clock(AUGUST + 50 * DAY));
    let store = shop.store();
    store.shop(&["sync", "-q"]).success().stderr_is("");
    // As an older shop could leave it: HEAD has the ledger, the index not.
    git(store.path(), &["read-tree", "HEAD~1"]);
    let status = git(store.path(), &["status", "--porcelain"]);
    assert!(status.contains("D  purchases/"), "{status}");
    store
        .shop(&["sync"])
        .success()
        .stderr_has(&["repaired git's index for 2 files that lagged behind shop's last commit"]);
    assert_eq!(
        git(store.path(), &["status", "--porcelain", "--", "purchases"]),
        ""
    );
    // Said once: the next run finds nothing to repair.
    let again = store.shop(&["sync"]).success();
    assert!(!again.stderr().contains("repaired"), "{}", again.stderr());
}

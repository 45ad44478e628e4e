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
        gift: None,
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
    /// Visits add up per key across writes; a gift's row and its two
    /// mails (the buyer's receipt now, the recipient's on its day).
    visits_add_up_and_a_gift_is_kept_with_its_mails,
    |fixture| {
        let db = fixture.open().await;
        let visit = |source: &str, count: u64| crate::state::VisitCount {
            day: "2026-12-07".into(),
            kind: "view".into(),
            product: "guide".into(),
            source: source.into(),
            count,
        };
        db.add_visits(vec![visit("direct", 2), visit("news", 1)]).await.unwrap();
        db.add_visits(vec![visit("direct", 3)]).await.unwrap();
        assert_eq!(
            db.visits().await.unwrap(),
            [visit("direct", 5), visit("news", 1)]
        );
        let gift = crate::gift::Gift {
            buyer: "ann@example.com".into(),
            recipient: "ada@example.com".into(),
            deliverable: true,
            message: "For you".into(),
            send_on: None,
            send_at: 1_000,
            unread_day: None,
        };
        let given = Entitlement {
            email: gift.recipient.clone(),
            gift: Some(gift.clone()),
            ..purchase()
        };
        assert_eq!(db.queue_receipts(vec![given], 20).await.unwrap(), 1);
        let queued: Vec<(String, String)> = db
            .mail_queue()
            .await
            .unwrap()
            .into_iter()
            .map(|mail| (mail.kind, mail.recipient))
            .collect();
        assert_eq!(
            queued,
            [
                ("gift_receipt".to_owned(), "ann@example.com".to_owned()),
                ("present".to_owned(), "ada@example.com".to_owned())
            ]
        );
        let kept = db.gift("cs_test_1").await.unwrap().unwrap();
        assert_eq!((kept.gift, kept.sent, kept.waiting), (gift, None, true));
        // Not sent again while one waits.
        assert!(!db.resend_gift("cs_test_1", 30).await.unwrap());
    }
);

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
        assert_eq!(outcomes, [Recorded::Again, Recorded::Now]);
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
        assert_eq!((first, again), (Recorded::Now, Recorded::Again));
        assert!(db.revoked(&purchase()).await.unwrap());
        let charged = servers[1].charge_stream(key("1.0.0"), 5, 1000, 0, 1000).await;
        assert_eq!(charged.unwrap(), Charge::Revoked);
        let other = Event { id: "evt_other", kind: "customer.created", received: 31 };
        assert_eq!(db.record_event(&other).await.unwrap(), Recorded::Now);
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
        assert_eq!(sale.unwrap(), Recorded::NowRevoked);
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

on_both!(
    /// A withdrawal is kept once per purchase, whatever the clicks: one
    /// acknowledgement, one refund queued, the downloads closed in the
    /// same transaction; a failed refund told twice counts once; the
    /// refund mail goes once.
    withdrawals_are_kept_once_with_their_refund,
    |fixture| {
        let db = fixture.open().await;
        db.upsert_purchase(purchase(), 100).await.unwrap();
        let asked = Withdrawal {
            purchase: "cs_test_1".into(),
            email: "ada@example.com".into(),
            payment_intent: Some("pi_1".into()),
            requested: 200,
            name: "Ada".into(),
            reason: "twice".into(),
            decision: "refund".into(),
            waived: None,
            refund: None,
            refund_status: None,
            refused: 0,
            last_error: None,
            settled: None,
        };
        let (kept, new) = db.request_withdrawal(asked.clone(), true).await.unwrap();
        assert!(new);
        assert_eq!(kept, asked);
        let again = Withdrawal {
            name: "Someone else".into(),
            ..asked.clone()
        };
        let (kept, new) = db.request_withdrawal(again, true).await.unwrap();
        assert!(!new);
        assert_eq!(kept.name, "Ada", "the first request stands");
        assert!(db.is_revoked(Some("pi_1")).await.unwrap());
        let kinds = |queue: Vec<MailState>| -> Vec<String> {
            queue.into_iter().map(|mail| mail.kind).collect()
        };
        assert_eq!(kinds(db.mail_queue().await.unwrap()), ["withdrawal", "refund"]);

        // Stripe's refund fails, and is told twice: one retry queued.
        db.refund_made("cs_test_1", "re_1", "pending", 210, true).await.unwrap();
        for _ in 0..2 {
            db.refund_refused("cs_test_1", Some("re_1"), "failed", 220, Some(230))
                .await
                .unwrap();
        }
        let kept = db.withdrawal("cs_test_1").await.unwrap().unwrap();
        assert_eq!((kept.refused, kept.refund_status.as_deref()), (1, Some("failed")));
        assert_eq!(
            kinds(db.mail_queue().await.unwrap()),
            ["withdrawal", "refund", "refund", "refund-delayed"]
        );
        // The retry succeeds; told twice, the buyer is mailed once.
        for _ in 0..2 {
            db.refund_made("cs_test_1", "re_2", "succeeded", 240, true).await.unwrap();
        }
        let kept = db.withdrawal_of_payment("pi_1").await.unwrap().unwrap();
        assert_eq!(
            (kept.refund.as_deref(), kept.settled),
            (Some("re_2"), Some(240))
        );
        assert_eq!(
            kinds(db.mail_queue().await.unwrap()),
            ["withdrawal", "refund", "refund", "refund-delayed", "refunded"]
        );
        assert_eq!(db.withdrawals().await.unwrap().len(), 1);
        assert!(!db.downloaded("cs_test_1").await.unwrap());
    }
);

on_both!(
    /// Following is double opt-in: counted only once confirmed, asked
    /// again only when not following, left by its own link; a list
    /// brought in keeps what is known.
    followers_confirm_and_leave,
    |fixture| {
        let db = fixture.open().await;
        let id = db
            .request_follow("Ann@Example.com", "front", "asked", 10)
            .await
            .unwrap()
            .expect("a confirmation to mail");
        let kinds: Vec<String> = db
            .mail_queue()
            .await
            .unwrap()
            .into_iter()
            .map(|mail| mail.kind)
            .collect();
        assert_eq!(kinds, ["follow"]);
        assert!(!db.follower(&id).await.unwrap().unwrap().following());
        assert_eq!(
            db.confirm_follower(&id, 20).await.unwrap().as_deref(),
            Some("ann@example.com")
        );
        assert!(db.follower(&id).await.unwrap().unwrap().following());
        // Following already: nothing to mail.
        assert_eq!(db.request_follow("ann@example.com", "front", "asked", 30).await.unwrap(), None);
        assert_eq!(db.unfollow(&id, 40).await.unwrap().as_deref(), Some("ann@example.com"));
        assert!(!db.follower(&id).await.unwrap().unwrap().following());
        // Back again: a new link, the old one no longer confirms.
        let again = db
            .request_follow("ann@example.com", "product:guide", "asked", 50)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(again, id);
        assert_eq!(db.confirm_follower(&id, 60).await.unwrap(), None);
        let imported = Follower {
            id: "fl_imported".into(),
            email: "ben@example.com".into(),
            asked: 1,
            confirmed: Some(1),
            left: None,
            source: "import".into(),
            consent: "fair".into(),
        };
        let known = Follower {
            id: "fl_other".into(),
            email: "ann@example.com".into(),
            ..imported.clone()
        };
        assert_eq!(db.import_followers(vec![imported, known]).await.unwrap(), 1);
        let all = db.followers().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].email, "ben@example.com");
        assert_eq!(all[1].id, again);
    }
);

on_both!(
    /// A reader's devices: the Kindle address is remembered with the mail
    /// it sends, in one step; stopping the feeds records the moment.
    readers_remember_their_kindle_and_stop_their_feeds,
    |fixture| {
        let db = fixture.open().await;
        assert_eq!(db.reader("ann@example.com").await.unwrap(), Reader::default());
        db.send_to_kindle("Ann@Example.com", "Ann@Kindle.com", "cs_test_1\nguide\n1.0.0\nguide.epub", 10)
            .await
            .unwrap();
        let queued = db.mail_queue().await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!((queued[0].kind.as_str(), queued[0].recipient.as_str()), ("kindle", "ann@kindle.com"));
        db.revoke_feeds("ann@example.com", 20).await.unwrap();
        db.send_to_kindle("ann@example.com", "ann@free.kindle.com", "ref", 30)
            .await
            .unwrap();
        assert_eq!(
            db.reader("ann@example.com").await.unwrap(),
            Reader {
                kindle: Some("ann@free.kindle.com".into()),
                feeds_from: 20,
            }
        );
    }
);

on_both!(
    /// Purchases by the start of their id: the free samples apart from
    /// the sales, every one for an empty prefix.
    purchases_are_read_by_the_start_of_their_id,
    |fixture| {
        let db = fixture.open().await;
        for id in ["cs_test_1", "sm_1", "sm_2", "sn_1"] {
            let mut held = purchase();
            held.id = id.into();
            db.upsert_purchase(held, 10).await.unwrap();
        }
        let ids = |found: Vec<Entitlement>| {
            let mut ids: Vec<String> = found.into_iter().map(|held| held.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(db.purchases_starting("sm_").await.unwrap()), ["sm_1", "sm_2"]);
        assert_eq!(ids(db.all_purchases().await.unwrap()).len(), 4);
    }
);

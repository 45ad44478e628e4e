//! Several `shop serve` on one PostgreSQL: the download limit, webhooks
//! and mail hold across them. Each test starts a PostgreSQL server of its
//! own in a temporary folder (`pg_cluster`).

use pg_cluster::Cluster;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::served::Served;

/// A store served from PostgreSQL; the server stops before the database.
struct OnPostgres {
    served: Served,
    cluster: Cluster,
}

impl OnPostgres {
    fn start(prepare: impl FnOnce(&crate::harness::Test)) -> OnPostgres {
        let cluster = Cluster::start(false).unwrap();
        let served =
            Served::start_with_store(&[("SHOP_STATE_URL", &cluster.url("postgres"))], prepare);
        assert!(
            served.log.lock().unwrap().contains("state in PostgreSQL"),
            "{}",
            served.log.lock().unwrap()
        );
        OnPostgres { served, cluster }
    }

    /// Rows of a query on the shared database, each value as text.
    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let url = self.cluster.url("postgres");
        self.served.runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let rows = client.simple_query(sql).await.unwrap();
            rows.into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|index| row.get(index).map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
    }

    fn count(&self, sql: &str) -> i64 {
        self.query(sql)[0][0].as_deref().unwrap().parse().unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `count` GETs of `path` at once, every other one to the second server.
fn split_downloads(on: &OnPostgres, urls: [&str; 2], path: &str, count: usize) -> Vec<StatusCode> {
    on.served.runtime.block_on(async {
        let client = reqwest::Client::new();
        let requests: Vec<_> = (0..count)
            .map(|index| {
                let url = format!("{}{path}", urls[index % 2]);
                let client = client.clone();
                tokio::spawn(async move {
                    let response = client.get(url).send().await.unwrap();
                    let status = response.status();
                    let _ = response.bytes().await;
                    status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for request in requests {
            statuses.push(request.await.unwrap());
        }
        statuses
    })
}

#[test]
fn two_servers_on_one_postgres_give_exactly_the_limit() {
    let on = OnPostgres::start(|_| {});
    let page = on.served.buy("grace@example.com");
    let other = on.served.another_server(&[]);
    assert!(other.log.lock().unwrap().contains("state in PostgreSQL"));
    let urls = [on.served.url.as_str(), other.url.as_str()];
    // 50 at once on the large file (streamed), 200 at once on the small
    // one, split across the two servers: 5 each, no more.
    for (file, count) in [("guide.pdf", 50), ("guide.epub", 200)] {
        let statuses = split_downloads(&on, urls, &format!("{page}/{file}"), count);
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let gone = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
        assert_eq!((ok, gone), (5, count - 5), "{file}: {statuses:?}");
    }
    let counted = on.query("SELECT file, count, bytes FROM downloads ORDER BY file");
    let pdf = (9 * 1024 * 1024 + 17) * 5;
    assert_eq!(
        counted,
        [
            [
                Some("guide.epub".to_owned()),
                Some("0".into()),
                Some("5000".into())
            ],
            [
                Some("guide.pdf".to_owned()),
                Some("0".into()),
                Some(pdf.to_string())
            ],
        ]
    );
    // Either server's download page says nothing is left.
    let shown = on.served.body(
        on.served
            .runtime
            .block_on(reqwest::get(format!("{}{page}", other.url)))
            .unwrap(),
    );
    assert_eq!(shown.matches("data-left=\"0\"").count(), 2, "{shown}");
    // A grant made from the command line reaches both.
    let session = on.served.session_of(&page);
    on.served
        .test
        .shop(&["token", &session, "--grant", "1"])
        .success()
        .stderr_has(&["1 extra download"]);
    let statuses = split_downloads(&on, urls, &format!("{page}/guide.epub"), 20);
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
}

#[test]
fn a_database_that_stops_and_comes_back_costs_no_buyer_a_download() {
    let on = OnPostgres::start(|_| {});
    let page = on.served.buy("ada@example.com");
    let file = format!("{page}/guide.epub");
    assert_eq!(on.served.get(&file).status(), StatusCode::OK);
    // The database stops at once (a crash, a failover): "try again",
    // nothing used.
    on.cluster.stop().unwrap();
    for _ in 0..3 {
        let down = on.served.get(&file);
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.headers().contains_key("retry-after"));
        assert!(on.served.body(down).contains("Nothing was used up"));
    }
    // The server answers, and its deep health check says what is wrong.
    assert_eq!(on.served.get("/healthz").status(), StatusCode::OK);
    let deep = on.served.get("/healthz?deep=1");
    assert_eq!(deep.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = on.served.body(deep);
    assert!(
        text.starts_with("the server's state cannot be reached, so no download can be counted: ")
            && text.contains("(hint: check that PostgreSQL is running"),
        "{text}"
    );
    // Back: the same server carries on by itself, with no download lost
    // or given twice.
    on.cluster.start_again().unwrap();
    let mut statuses = Vec::new();
    on.served
        .wait_for("a download once the database is back", || {
            statuses.push(on.served.get(&file).status());
            statuses.last() == Some(&StatusCode::OK)
        });
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|status| *status == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    for _ in 0..3 {
        assert_eq!(on.served.get(&file).status(), StatusCode::OK);
    }
    assert_eq!(on.served.get(&file).status(), StatusCode::GONE);
    // Five whole copies of 1,000 bytes.
    assert_eq!(
        on.count("SELECT bytes FROM downloads WHERE file = 'guide.epub'"),
        5000
    );
}

#[test]
fn rate_limits_count_every_server_together_and_outlive_a_restart() {
    let on = OnPostgres::start(|_| {});
    let other = on.served.another_server(&[]);
    // Three requests an hour for one address, whichever server takes them.
    let statuses: Vec<StatusCode> = (0..6)
        .map(|index| {
            let base = [on.served.url.as_str(), other.url.as_str()][index % 2];
            on.served.ask_for_links_at(base, "ada@example.com").0
        })
        .collect();
    let (ok, many) = (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(statuses, [ok, ok, ok, many, many, many]);
    // A server started afterwards (a restart) remembers.
    let third = on.served.another_server(&[]);
    let (status, page) = on.served.ask_for_links_at(&third.url, "ada@example.com");
    assert_eq!(status, many, "{page}");
    // Another address is still welcome.
    let (status, _) = on.served.ask_for_links_at(&third.url, "grace@example.com");
    assert_eq!(status, ok);
    // The state keeps digests of the keys, never the address.
    let keys = on.query("SELECT key, cardinality(hits) FROM rate_limits ORDER BY key");
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().all(|row| {
            let key = row[0].as_deref().unwrap();
            key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
        }),
        "{keys:?}"
    );
    // Ada's address, the one client's and Grace's: 3, 4 and 1 hits (no
    // key counts everyone together).
    let mut hits: Vec<&str> = keys.iter().map(|row| row[1].as_deref().unwrap()).collect();
    hits.sort();
    assert_eq!(hits, ["1", "3", "4"], "{keys:?}");
}

#[test]
fn one_webhook_delivered_to_both_servers_at_once_makes_one_purchase_and_one_receipt() {
    let on = OnPostgres::start(|_| {});
    let other = on.served.another_server(&[]);
    let secret = on.served.sandbox().webhook_secret.clone();
    let event = json!({"id": "evt_test_twice", "object": "event", "type": "checkout.session.completed",
        "created": now(),
        "data": {"object": {"id": "cs_test_twice", "object": "checkout.session", "created": now(),
            "expires_at": now() + 3600, "status": "complete", "payment_status": "paid",
            "customer_details": {"email": "twice@example.com"},
            "metadata": {"product": "guide", "version": "1.0.0"}, "payment_intent": "pi_test_twice"}}});
    let body = serde_json::to_vec(&event).unwrap();
    let answers: Vec<(StatusCode, String)> = on.served.runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut sent = Vec::new();
        for url in [&on.served.url, &other.url] {
            let signature = shop::stripe::webhook::sign(&body, &secret, now());
            let request = client
                .post(format!("{url}/stripe/webhook"))
                .header("Stripe-Signature", signature)
                .body(body.clone());
            sent.push(tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status(), response.text().await.unwrap())
            }));
        }
        let mut answers = Vec::new();
        for answer in sent {
            answers.push(answer.await.unwrap());
        }
        answers
    });
    let mut bodies: Vec<&str> = answers.iter().map(|(_, body)| body.trim()).collect();
    bodies.sort();
    assert_eq!(bodies, ["already received", "received"], "{answers:?}");
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK));
    assert_eq!(
        on.count("SELECT COUNT(*) FROM purchases WHERE id = 'cs_test_twice'"),
        1
    );
    assert_eq!(
        on.count("SELECT COUNT(*) FROM events WHERE id = 'evt_test_twice'"),
        1
    );
    // One receipt, sent by one of the two.
    // Marked sent after its copy is in the outbox, by the one server that
    // claimed it: from here the outbox holds every copy there will be.
    on.served.wait_for("the receipt", || {
        on.count(
            "SELECT COUNT(*) FROM mail_queue WHERE purchase = 'cs_test_twice' AND sent IS NOT NULL",
        ) == 1
    });
    let receipts: Vec<String> = on
        .served
        .outbox()
        .into_iter()
        .filter(|message| message.contains("twice@example.com"))
        .collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(
        on.count("SELECT COUNT(*) FROM mail_queue WHERE purchase = 'cs_test_twice'"),
        1
    );
}

/// An SMTP server that takes connections and never answers: a send
/// through it hangs until the server sending it dies.
fn black_hole() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn a_server_killed_while_sending_leaves_every_receipt_to_another_once() {
    let (hole, port) = black_hole();
    let on = OnPostgres::start(|test| {
        let settings = test
            .read("shop.toml")
            .replace("transport = \"file\"", "transport = \"smtp\"")
            .replace(
                "host = \"\"\nport = 587",
                &format!("host = \"127.0.0.1\"\nport = {port}"),
            )
            .replace("security = \"starttls\"", "security = \"none\"");
        assert!(settings.contains(&format!("port = {port}")), "{settings}");
        test.write("shop.toml", &settings);
    });
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        on.served.buy(email);
    }
    // The first server took the three receipts and hangs sending them.
    on.served.wait_for("the receipts to be taken", || {
        on.count("SELECT COUNT(*) FROM mail_queue WHERE kind = 'receipt' AND next_attempt > 0 AND sent IS NULL") == 3
    });
    assert!(hole.accept().is_ok());
    // The store now mails through its outbox folder (for the other
    // servers, which read `shop.toml` as they start).
    let settings = on
        .served
        .test
        .read("shop.toml")
        .replace("transport = \"smtp\"", "transport = \"file\"");
    on.served.test.write("shop.toml", &settings);
    // A second server at the same time leaves them alone: they are taken.
    // It sends what it queues itself (mail is claimed oldest first), and
    // nothing else.
    let second = on.served.another_server(&[]);
    let (status, _) = on.served.ask_for_links_at(&second.url, "a@example.com");
    assert_eq!(status, StatusCode::OK);
    on.served.wait_for("the second server's own mail", || {
        !on.served.outbox().is_empty()
    });
    let outbox = on.served.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert!(!outbox[0].contains("Subject: Your receipt"), "{outbox:?}");
    drop(second);
    let mut served = on;
    served.served.kill_server();
    // Once the lease has run out, another server sends each one once.
    let later = (now() + shop::state::MAIL_LEASE + 60).to_string();
    let third = served.served.another_server(&[("SHOP_NOW", &later)]);
    // Each marked sent once its copy is in the outbox: then no other copy
    // can come.
    served.served.wait_for("three receipts", || {
        served.count("SELECT COUNT(*) FROM mail_queue WHERE kind = 'receipt' AND sent IS NOT NULL")
            == 3
    });
    let outbox = served.served.outbox();
    let mut recipients: Vec<&str> = outbox
        .iter()
        .filter(|message| message.contains("Subject: Your receipt"))
        .filter_map(|message| message.lines().find_map(|line| line.strip_prefix("To: ")))
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["a@example.com", "b@example.com", "c@example.com"],
        "{outbox:?}"
    );
    assert_eq!(
        served.count("SELECT COUNT(*) FROM mail_queue WHERE kind = 'receipt' AND sent IS NOT NULL"),
        3
    );
    drop(third);
}

#[test]
fn a_sqlite_state_moves_to_postgres_with_every_count() {
    let mut served = Served::start();
    let page = served.buy("ada@example.com");
    for _ in 0..3 {
        assert_eq!(
            served.get(&format!("{page}/guide.epub")).status(),
            StatusCode::OK
        );
    }
    let session = served.session_of(&page);
    served
        .test
        .shop(&["token", &session, "--grant", "2"])
        .success();
    served.wait_for("the receipt", || served.outbox().len() == 1);
    // A view of the store front, counted (and written at the stop).
    assert_eq!(served.get("/").status(), StatusCode::OK);
    // An address's three asks for lost links this hour (its limit).
    for _ in 0..3 {
        let (status, _) = served.ask_for_links("nobody@example.com");
        assert_eq!(status, StatusCode::OK);
    }
    served.stop_server();
    let cluster = Cluster::start(false).unwrap();
    let url = cluster.url("postgres");
    let events = served.query("SELECT COUNT(*) FROM events")[0][0].clone();
    let events = events
        .trim_start_matches("Integer(")
        .trim_end_matches(')')
        .to_owned();
    served.test.shop(&["serve", "--migrate-state-to", &url]).success().stderr_is(&format!(
        "moved the server's state into PostgreSQL and checked it: purchases 1, downloads 1, grants 1, revoked 0, events {events}, mail_queue 1, opt_outs 0, libraries 0, withdrawals 0, followers 0, readers 0, gifts 0, visits 1, rate_hits 7\n\
         hint: start every server with that URL in `SHOP_STATE_URL` (or `[serve] state` in `shop.toml` without its password); `[TMP]/store/.shop/state.db` stays as it was\n"
    ));
    // Without a URL, the one in `SHOP_STATE_URL`, and there is none yet.
    served.test.shop(&["serve", "--migrate-state-to"]).code(1).stderr_is(
        "error: `--migrate-state-to` names no database, and neither `SHOP_STATE_URL` nor `[serve] state` does\n\
         hint: set `SHOP_STATE_URL` to the database's URL (safer for a password than the command line, which `ps` shows), or give it after `--migrate-state-to`\n",
    );
    // Moved once: a second run (to the database of `SHOP_STATE_URL`)
    // finds the state there and changes nothing.
    served.test.env("SHOP_STATE_URL", &url);
    served.test.shop(&["serve", "--migrate-state-to"]).code(1).stderr_is(
        "error: the PostgreSQL database already holds a state: its `purchases` is not empty\n\
         hint: move into an empty database (`createdb shop`), or keep using the one that has the state\n",
    );
    // A server on PostgreSQL carries on from the same counts: 3 of 5
    // used, 2 granted, so 4 more and no fifth.
    served.launch();
    for _ in 0..4 {
        assert_eq!(
            served.get(&format!("{page}/guide.epub")).status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::GONE
    );
    assert!(served.log.lock().unwrap().contains("state in PostgreSQL"));
    // The rate limits counted on: no fourth ask for that address.
    let (status, _) = served.ask_for_links("nobody@example.com");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The receipt was sent before the move: not again after it. What the
    // server queues now goes out (oldest first), and only that.
    let (status, _) = served.ask_for_links("ada@example.com");
    assert_eq!(status, StatusCode::OK);
    served.wait_for("the links mail", || served.outbox().len() >= 2);
    let receipts = served
        .outbox()
        .into_iter()
        .filter(|message| message.contains("Subject: Your receipt"))
        .count();
    assert_eq!(receipts, 1);
}

/// A store whose server would keep its state at `url`, with the other
/// secrets `shop serve` needs.
fn store_with_state(url: &str) -> crate::harness::Test {
    let mut test = crate::harness::Test::store();
    test.env("STRIPE_SECRET_KEY", "sk_test_state");
    test.env("STRIPE_WEBHOOK_SECRET", "whsec_state");
    test.env("SHOP_TOKEN_SECRET", crate::support::served::TOKEN_SECRET);
    test.env("SHOP_STATE_URL", url);
    test
}

#[test]
fn a_bad_or_unreachable_state_url_stops_the_server_without_showing_it() {
    let mut test = store_with_state("mysql://shop:hunter2@127.0.0.1/shop");
    test.shop(&["serve", "--listen", "127.0.0.1:0"])
        .code(1)
        .stderr_is(
            "error: `SHOP_STATE_URL` is not a PostgreSQL URL\n\
             hint: write it as `postgres://USER@HOST:PORT/DATABASE` (the password in `SHOP_STATE_URL`, never in `shop.toml`)\n",
        );
    // Nothing listens on port 1 of this machine.
    test.env("SHOP_STATE_URL", "postgres://shop:hunter2@127.0.0.1:1/shop");
    test.env("SHOP_LOG", "warn");
    test.shop(&["serve", "--listen", "127.0.0.1:0"])
        .code(1)
        .stderr_is(
            "error: cannot use the server's PostgreSQL database (no connection): error connecting to server: Connection refused (os error 111)\n\
             hint: check that PostgreSQL is running and that `SHOP_STATE_URL` names a database this user may create tables in\n",
        )
        .never_shows("hunter2");
}

/// A certificate authority of the test's own, and a certificate it signed
/// for `localhost` only: (the authority's certificate, the server's
/// certificate, the server's key), PEM.
fn authority_and_localhost() -> (String, String, String) {
    let mut authority = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    authority
        .distinguished_name
        .push(rcgen::DnType::CommonName, "shop test authority");
    let authority =
        rcgen::CertifiedIssuer::self_signed(authority, rcgen::KeyPair::generate().unwrap())
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &authority)
        .unwrap();
    (authority.pem(), server.pem(), key.serialize_pem())
}

/// `sslmode=require` talks TLS to the server, and only to a server whose
/// certificate an authority the URL trusts signed for the host it names;
/// never falling back to the clear.
#[test]
fn a_state_url_with_sslmode_require_talks_tls_to_a_verified_server_only() {
    let (authority, cert, key) = authority_and_localhost();
    let port = crate::harness::free_port();
    let cluster = Cluster::start_tls(port, &cert, &key).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let roots = folder.path().join("authority.pem");
    std::fs::write(&roots, &authority).unwrap();
    let url = |host: &str, query: &str| {
        format!("postgres://postgres:hunter2@{host}:{port}/postgres?{query}")
    };

    // Verified: the server runs, and each of its connections is encrypted.
    let verified = url(
        "localhost",
        &format!("sslmode=require&sslrootcert={}", roots.display()),
    );
    let served = Served::start_with_store(&[("SHOP_STATE_URL", &verified)], |_| {});
    let on = OnPostgres { served, cluster };
    let sessions = "FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                    WHERE application_name = 'shop serve'";
    assert!(on.count(&format!("SELECT count(*) {sessions} AND ssl")) >= 1);
    assert_eq!(
        on.count(&format!("SELECT count(*) {sessions} AND NOT ssl")),
        0
    );

    let refused = |url: &str, parts: &[&str]| {
        store_with_state(url)
            .shop(&["serve", "--listen", "127.0.0.1:0"])
            .code(1)
            .stderr_has(parts)
            .never_shows("hunter2");
    };
    let hint = "hint: check that the server has TLS on, that its certificate names the host";
    // The system's authorities did not sign the server's certificate.
    refused(
        &url("localhost", "sslmode=require"),
        &["did not prove itself over TLS", "UnknownIssuer", hint],
    );
    // The certificate names `localhost`, not the address.
    refused(
        &url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", roots.display()),
        ),
        &[
            "did not prove itself over TLS",
            "certificate not valid for name \"127.0.0.1\"",
            hint,
        ],
    );
    // An authority file that is not one.
    let garbage = folder.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    refused(
        &url(
            "localhost",
            &format!("sslmode=require&sslrootcert={}", garbage.display()),
        ),
        &["holds no certificate", "hint: write `?sslmode=require`"],
    );
    refused(
        &url("localhost", "sslmode=sometimes"),
        &["`sslmode=sometimes` is not a mode PostgreSQL knows"],
    );

    // A server without TLS is refused, not talked to in the clear.
    let plain_port = crate::harness::free_port();
    let _plain = Cluster::start_on(Some(plain_port), false).unwrap();
    refused(
        &format!(
            "postgres://postgres@localhost:{plain_port}/postgres?sslmode=require&sslrootcert={}",
            roots.display()
        ),
        &[
            "did not prove itself over TLS",
            "does not support TLS",
            hint,
        ],
    );
}

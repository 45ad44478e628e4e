//! `shop serve` as a real process against the sandbox: the buyer's path
//! from payment link to download, webhooks, download limits under
//! concurrency, tokens of every bad kind, key rotation, refunds, lost
//! links, ranges and a graceful shutdown mid-download.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Sandbox, Test};

const TOKEN_SECRET: &str = "test-token-secret-0123456789abcdef0123";

const PRODUCT: &str = "name = \"The Field Guide\"\nprice = \"29.00\"\nfiles = [\"guide.pdf\", \"guide.epub\"]\ndownload_limit = 5\n";

struct Served {
    runtime: tokio::runtime::Runtime,
    sandbox: Option<Sandbox>,
    test: Test,
    server: Option<Child>,
    url: String,
    http: reqwest::Client,
    files: Vec<Vec<u8>>,
}

impl Served {
    /// A store with `guide` 1.0.0 released to local files, a sandbox that
    /// delivers webhooks to the server, and `shop serve` running.
    fn start() -> Served {
        Served::start_with(&[])
    }

    fn start_with(extra_env: &[(&str, &str)]) -> Served {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let sandbox = runtime.block_on(Sandbox::start_with(
            None,
            Some(format!("{url}/stripe/webhook")),
        ));
        let mut test = Test::store();
        test.write("products/guide.toml", PRODUCT);
        test.env("SHOP_STRIPE_API_BASE", &sandbox.url);
        test.env("STRIPE_SECRET_KEY", "sk_test_serve");
        test.env("STRIPE_WEBHOOK_SECRET", sandbox.webhook_secret.expose());
        test.env("SHOP_TOKEN_SECRET", TOKEN_SECRET);
        test.env("SHOP_BASE_URL", &url);
        for (key, value) in extra_env {
            test.env(key, value);
        }
        let build = test.root().join("build");
        std::fs::create_dir_all(&build).unwrap();
        let mut files = Vec::new();
        let mut args = vec!["release".to_owned(), "guide".to_owned(), "1.0.0".to_owned()];
        for (name, size) in [("guide.pdf", 3 * 1024 * 1024 + 17), ("guide.epub", 1000)] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(build.join(name), &bytes).unwrap();
            files.push(bytes);
            args.push(build.join(name).to_str().unwrap().to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        test.shop(&args).success();
        shop::stripe::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut served = Served {
            runtime,
            sandbox: Some(sandbox),
            test,
            server: None,
            url,
            http,
            files,
        };
        served.launch();
        served
    }

    fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().unwrap()
    }

    /// Starts `shop serve` and waits until it answers.
    fn launch(&mut self) {
        let address = self.url.trim_start_matches("http://").to_owned();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
        command
            .args(["serve", "--listen", &address])
            .current_dir(self.test.path())
            .env_clear();
        for (key, value) in self.test.environment() {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening on") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "shop serve did not start"
            );
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        self.server = Some(child);
    }

    fn stop_server(&mut self) -> std::process::ExitStatus {
        let mut child = self.server.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    fn get(&self, path: &str) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        self.runtime.block_on(self.http.get(url).send()).unwrap()
    }

    fn body(&self, response: reqwest::Response) -> String {
        self.runtime.block_on(response.text()).unwrap()
    }

    /// Buys the guide through the payment link and the test checkout, and
    /// follows the thanks page; returns the download page's path.
    fn buy(&self, email: &str) -> String {
        let text = self.test.read("products/guide.toml");
        let link = text
            .lines()
            .find_map(|l| l.strip_prefix("payment_link_url = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let opened = self.get(&link);
        assert_eq!(opened.status(), StatusCode::SEE_OTHER);
        let checkout = format!(
            "{}{}",
            self.sandbox().url,
            opened.headers()["location"]
                .to_str()
                .unwrap()
                .trim_start_matches(&self.sandbox().url)
        );
        let form = shop::stripe::Form::new()
            .field("email", email)
            .field("card", "4242 4242 4242 4242");
        let paid = self
            .runtime
            .block_on(
                self.http
                    .post(&checkout)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send(),
            )
            .unwrap();
        assert_eq!(paid.status(), StatusCode::SEE_OTHER);
        let thanks = paid.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            thanks.starts_with(&format!("{}/thanks?session_id=cs_test_", self.url)),
            "{thanks}"
        );
        let landed = self.get(&thanks);
        assert_eq!(
            landed.status(),
            StatusCode::SEE_OTHER,
            "{}",
            self.body(landed)
        );
        let page = landed.headers()["location"].to_str().unwrap().to_owned();
        assert!(page.starts_with("/d/"), "{page}");
        page
    }

    fn session_of(&self, page: &str) -> String {
        let token = page.trim_start_matches("/d/");
        let keys = [shop::tokens::Key::new(
            shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
        )];
        shop::tokens::verify(&keys, token, 0).unwrap().purchase
    }

    /// Rows of a table of the server's database.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let connection = rusqlite::Connection::open_with_flags(
            self.test.path().join(".shop/state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut statement = connection.prepare(sql).unwrap();
        let columns = statement.column_count();
        statement
            .query_map([], |row| {
                (0..columns)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(sandbox) = self.sandbox.take() {
            self.runtime.block_on(sandbox.stop());
        }
    }
}

#[test]
fn the_buyers_path_from_payment_to_download() {
    let served = Served::start();
    assert_eq!(served.body(served.get("/healthz")), "ok\n");
    let page = served.buy("ada@example.com");
    let html = served.body(served.get(&page));
    for expected in [
        "The Field Guide",
        "Version <strong>1.0.0</strong>",
        "guide.pdf",
        "guide.epub",
        "3.1 MB",
        "5 of 5",
        "sha256 ",
    ] {
        assert!(
            html.contains(expected),
            "the download page lacks {expected:?}:\n{html}"
        );
    }
    let file = served.get(&format!("{page}/guide.pdf"));
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(
        file.headers()["content-length"],
        served.files[0].len().to_string().as_str()
    );
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"guide.pdf\"")
    );
    let bytes = served.runtime.block_on(file.bytes()).unwrap();
    assert!(
        bytes.as_ref() == served.files[0].as_slice(),
        "the downloaded file differs"
    );
    assert!(served.body(served.get(&page)).contains("4 of 5"));

    // The webhook queued exactly one receipt for the purchase.
    let session = served.session_of(&page);
    served.wait_for("the receipt", || {
        !served
            .query("SELECT recipient FROM mail_queue WHERE kind = 'receipt'")
            .is_empty()
    });
    let receipts =
        served.query("SELECT recipient, purchase FROM mail_queue WHERE kind = 'receipt'");
    assert_eq!(
        receipts,
        [[
            format!(
                "{:?}",
                rusqlite::types::Value::Text("ada@example.com".into())
            ),
            format!("{:?}", rusqlite::types::Value::Text(session))
        ]]
    );

    // /buy makes a session carrying the visitor's attribution.
    let client = served.http.clone();
    let bought = served
        .runtime
        .block_on(
            client
                .get(format!(
                    "{}/buy/guide?utm_source=newsletter&utm_campaign=launch",
                    served.url
                ))
                .header("Referer", "https://blog.example/post")
                .send(),
        )
        .unwrap();
    assert_eq!(bought.status(), StatusCode::SEE_OTHER);
    let location = bought.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let session = served
        .runtime
        .block_on(served.sandbox().client().checkout_session(&id))
        .unwrap()
        .unwrap();
    assert_eq!(
        session.metadata.get("utm_campaign").map(String::as_str),
        Some("launch")
    );
    assert_eq!(
        session.metadata.get("referrer").map(String::as_str),
        Some("https://blog.example/post")
    );
    assert_eq!(
        session.metadata.get("version").map(String::as_str),
        Some("1.0.0")
    );
    assert_eq!(served.get("/buy/nope").status(), StatusCode::NOT_FOUND);

    // Unknown or foreign sessions and unknown pages: plain 404s.
    assert_eq!(
        served.get("/thanks?session_id=cs_test_nope").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        served.get(&format!("/thanks?session_id={id}")).status(),
        StatusCode::NOT_FOUND,
        "an unpaid session"
    );
    let missing = served.get("/nothing/here");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(!served.body(missing).contains("panicked"));
}

#[test]
fn the_download_limit_is_exact_even_under_concurrency() {
    let served = Served::start();
    let page = served.buy("grace@example.com");
    for _ in 0..5 {
        assert_eq!(
            served.get(&format!("{page}/guide.epub")).status(),
            StatusCode::OK
        );
    }
    let refused = served.get(&format!("{page}/guide.epub"));
    assert_eq!(refused.status(), StatusCode::GONE);
    assert!(served.body(refused).contains("No downloads left"));

    // 50 at once on a fresh file: exactly 5 get it.
    let url = format!("{}{page}/guide.pdf", served.url);
    let statuses: Vec<StatusCode> = served.runtime.block_on(async {
        let client = reqwest::Client::new();
        let requests = (0..50).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                let status = response.status();
                let _ = response.bytes().await;
                status
            })
        });
        let mut statuses = Vec::new();
        for request in requests.collect::<Vec<_>>() {
            statuses.push(request.await.unwrap());
        }
        statuses
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::GONE).count(),
        45
    );

    // Support grants more.
    let session = served.session_of(&page);
    served
        .test
        .shop(&["token", &session, "--grant", "2"])
        .success()
        .stderr_has(&["2 extra downloads"]);
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK
    );
}

#[test]
fn bad_tokens_get_plain_refusals() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let token = page.trim_start_matches("/d/").to_owned();
    let session = served.session_of(&page);
    let sign = |secret: &str, expires: i64| {
        let key =
            shop::tokens::Key::new(shop::secret::Secret::new("SHOP_TOKEN_SECRET", secret).unwrap());
        shop::tokens::sign(
            &key,
            &shop::tokens::Claims {
                purchase: session.clone(),
                expires,
            },
        )
    };
    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 3;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let cases = [
        (String::from_utf8(tampered).unwrap(), StatusCode::FORBIDDEN),
        (token[..token.len() - 5].to_owned(), StatusCode::FORBIDDEN),
        (
            sign("another secret, also more than 32 chars", 4_000_000_000),
            StatusCode::FORBIDDEN,
        ),
        (sign(TOKEN_SECRET, 1_000_000_000), StatusCode::GONE),
        ("garbage".to_owned(), StatusCode::FORBIDDEN),
        ("%00%ff".to_owned(), StatusCode::FORBIDDEN),
    ];
    for (bad, status) in cases {
        for path in [format!("/d/{bad}"), format!("/d/{bad}/guide.pdf")] {
            let response = served.get(&path);
            assert_eq!(response.status(), status, "{path}");
            let body = served.body(response);
            assert!(
                body.contains("/lost") && !body.contains("guide.pdf") && !body.contains(&session),
                "{body}"
            );
        }
    }
    // A genuine token for a file that does not exist.
    assert_eq!(
        served.get(&format!("{page}/secrets.txt")).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        served.get(&format!("{page}/..%2F..%2Fshop.toml")).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_rotated_key_keeps_old_links_working() {
    let mut served = Served::start();
    let page = served.buy("ada@example.com");
    served.stop_server();
    let new_secret = "the-new-token-secret-after-rotation-0001";
    served.test.env("SHOP_TOKEN_SECRET", new_secret);
    served.test.env("SHOP_TOKEN_SECRET_PREVIOUS", TOKEN_SECRET);
    served.launch();
    assert_eq!(served.get(&page).status(), StatusCode::OK);
    served.stop_server();
    served.test.env("SHOP_TOKEN_SECRET_PREVIOUS", "");
    served.launch();
    assert_eq!(served.get(&page).status(), StatusCode::FORBIDDEN);
}

#[test]
fn webhooks_are_verified_and_handled_once() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let session = served.session_of(&page);
    served.wait_for("the receipt", || {
        !served.query("SELECT id FROM mail_queue").is_empty()
    });
    let secret = served.sandbox().webhook_secret.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let event = json!({
        "id": "evt_test_replayed", "object": "event", "type": "checkout.session.completed", "created": now,
        "data": {"object": {"id": session, "object": "checkout.session", "created": now, "expires_at": now, "status": "complete",
            "payment_status": "paid", "customer_details": {"email": "ada@example.com"}, "metadata": {"product": "guide", "version": "1.0.0"},
            "payment_intent": "pi_x"}},
    });
    let body = serde_json::to_vec(&event).unwrap();
    let post = |signature: String, body: Vec<u8>| {
        served
            .runtime
            .block_on(
                served
                    .http
                    .post(format!("{}/stripe/webhook", served.url))
                    .header("Stripe-Signature", signature)
                    .body(body)
                    .send(),
            )
            .unwrap()
    };
    let good = shop::stripe::webhook::sign(&body, &secret, now);
    assert_eq!(post(good.clone(), body.clone()).status(), StatusCode::OK);
    assert_eq!(served.body(post(good, body.clone())), "already received\n");
    let stale = shop::stripe::webhook::sign(&body, &secret, now - 600);
    assert_eq!(post(stale, body.clone()).status(), StatusCode::BAD_REQUEST);
    let wrong = shop::stripe::webhook::sign(
        &body,
        &shop::secret::Secret::new("X", "whsec_wrong").unwrap(),
        now,
    );
    assert_eq!(post(wrong, body.clone()).status(), StatusCode::BAD_REQUEST);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        post(shop::stripe::webhook::sign(&body, &secret, now), tampered).status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(post(String::new(), body).status(), StatusCode::BAD_REQUEST);
    // One receipt, however often the purchase was announced.
    assert_eq!(
        served
            .query("SELECT id FROM mail_queue WHERE kind = 'receipt'")
            .len(),
        1
    );
}

#[test]
fn a_refund_closes_the_downloads() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    assert_eq!(
        served.get(&format!("{page}/guide.epub")).status(),
        StatusCode::OK
    );
    let session = served.session_of(&page);
    let client = served.sandbox().client();
    served.runtime.block_on(async {
        let session = client.checkout_session(&session).await.unwrap().unwrap();
        client
            .create_refund(
                session.payment_intent.as_deref().unwrap(),
                None,
                &shop::stripe::IdempotencyKey::random(),
            )
            .await
            .unwrap();
    });
    served.wait_for("the refund to close downloads", || {
        served.get(&format!("{page}/guide.epub")).status() == StatusCode::GONE
    });
    let page_html = served.body(served.get(&page));
    assert!(
        page_html.contains("This purchase was refunded"),
        "{page_html}"
    );
}

#[test]
fn lost_links_answer_the_same_for_anyone() {
    let served = Served::start();
    served.buy("known@example.com");
    let ask = |email: &str| {
        let form = shop::stripe::Form::new().field("email", email);
        let response = served
            .runtime
            .block_on(
                served
                    .http
                    .post(format!("{}/lost", served.url))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send(),
            )
            .unwrap();
        (response.status(), served.body(response))
    };
    let known = ask("known@example.com");
    let unknown = ask("stranger@example.com");
    assert_eq!(known, unknown);
    assert_eq!(known.0, StatusCode::OK);
    let queued = served.query("SELECT recipient FROM mail_queue WHERE kind = 'links'");
    assert_eq!(queued.len(), 1);
    assert!(queued[0][0].contains("known@example.com"));
    // Rate-limited per address, whoever asks.
    ask("known@example.com");
    ask("known@example.com");
    assert_eq!(ask("known@example.com").0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        served
            .query("SELECT recipient FROM mail_queue WHERE kind = 'links'")
            .len(),
        3
    );
    assert_eq!(served.get("/lost").status(), StatusCode::OK);
}

#[test]
fn ranges_resume_without_counting_again() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    let range = |value: &str| {
        served
            .runtime
            .block_on(served.http.get(&url).header("Range", value).send())
            .unwrap()
    };
    let resumed_first = range("bytes=100-");
    assert_eq!(
        resumed_first.status(),
        StatusCode::GONE,
        "a resume of a download never started"
    );
    let start = range("bytes=0-99");
    assert_eq!(start.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        start.headers()["content-range"],
        format!("bytes 0-99/{}", served.files[0].len()).as_str()
    );
    assert_eq!(
        served.runtime.block_on(start.bytes()).unwrap().as_ref(),
        &served.files[0][..100]
    );
    let rest = range("bytes=100-");
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        served.runtime.block_on(rest.bytes()).unwrap().as_ref(),
        &served.files[0][100..]
    );
    assert!(
        served.body(served.get(&page)).contains("4 of 5"),
        "the resume was counted"
    );
    assert_eq!(
        range("bytes=99999999-").status(),
        StatusCode::RANGE_NOT_SATISFIABLE
    );
}

#[test]
fn shutdown_lets_a_download_finish() {
    let mut served = Served::start();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    let mut response = served
        .runtime
        .block_on(served.http.get(&url).send())
        .unwrap();
    let first = served.runtime.block_on(response.chunk()).unwrap().unwrap();
    let status = {
        let child = served.server.as_ref().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
    };
    assert!(status.success());
    let mut received = first.to_vec();
    while let Some(chunk) = served.runtime.block_on(response.chunk()).unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert!(
        received == served.files[0],
        "the download was cut short by the shutdown ({} bytes)",
        received.len()
    );
    let exit = served.server.take().unwrap().wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        served
            .runtime
            .block_on(served.http.get(&url).send())
            .is_err(),
        "the server still answers after shutting down"
    );
}

#[test]
fn support_mints_links_from_the_command_line() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let session = served.session_of(&page);
    let link = served
        .test
        .shop(&["token", &session])
        .success()
        .stdout()
        .trim()
        .to_owned();
    assert!(link.starts_with(&format!("{}/d/", served.url)), "{link}");
    assert_eq!(served.get(&link).status(), StatusCode::OK);
    served
        .test
        .shop(&["token", "cs_test_unknown"])
        .code(1)
        .stderr_has(&["there is no paid purchase `cs_test_unknown`"]);
    served
        .test
        .shop(&["token", "pi_123"])
        .code(2)
        .stderr_has(&["is not a purchase id"]);
}

//! A store with a released product, a sandbox delivering webhooks, and
//! `shop serve` running as a real process: the fixture of the server's
//! tests and the browser test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;

use crate::harness::{Sandbox, Test};
use crate::support::github::GitHubServer;

pub const TOKEN_SECRET: &str = "test-token-secret-0123456789abcdef0123";

pub const PRODUCT: &str = "name = \"The Field Guide\"\nprice = \"29.00\"\nfiles = [\"guide.pdf\", \"guide.epub\"]\ndownload_limit = 5\n";

/// The files of the default product: a large one (streamed from disk) and
/// a small one (kept in memory by the server).
pub const FILES: &[(&str, usize)] = &[("guide.pdf", 9 * 1024 * 1024 + 17), ("guide.epub", 1000)];

pub struct Served {
    pub runtime: tokio::runtime::Runtime,
    pub sandbox: Option<Sandbox>,
    /// The local GitHub the files are on, when they are.
    pub github: Option<GitHubServer>,
    pub test: Test,
    pub server: Option<Child>,
    /// The server's socket, bound here once and handed to each launch as
    /// descriptor 3 (socket activation), so the port is never free for
    /// another test to take.
    listener: Option<std::net::TcpListener>,
    pub url: String,
    pub http: reqwest::Client,
    pub files: Vec<Vec<u8>>,
    /// Arguments given to `shop serve` after `--listen`.
    pub serve_args: Vec<String>,
    /// A command line run in front of `shop serve` (such as a shell that
    /// lowers a limit first), or empty.
    pub wrapper: Vec<String>,
    /// Everything `shop serve` wrote to stderr, across launches.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
    /// The PostgreSQL server keeping the state, when the tests run with
    /// `SHOP_TEST_STATE=postgres` (stopped after the server, in `drop`).
    /// The server's state as the tests read it, opened once (and closed
    /// before the PostgreSQL that may keep it stops: fields drop in order).
    state: std::sync::OnceLock<shop::state::Db>,
    cluster: Option<pg_cluster::Cluster>,
}

/// Whether the server's tests keep its state in PostgreSQL rather than
/// SQLite: `SHOP_TEST_STATE=postgres` (`scripts/ci` runs the tests of the
/// server's state a second time so).
pub fn on_postgres() -> bool {
    std::env::var("SHOP_TEST_STATE").is_ok_and(|state| state == "postgres")
}

impl Served {
    /// A store with `guide` 1.0.0 released to local files, a sandbox that
    /// delivers webhooks to the server, and `shop serve` running.
    pub fn start() -> Served {
        Served::start_with(&[])
    }

    pub fn start_with(extra_env: &[(&str, &str)]) -> Served {
        Served::start_with_store(extra_env, |_| {})
    }

    /// [`Served::start_with`], with `prepare` changing the store first.
    pub fn start_with_store(extra_env: &[(&str, &str)], prepare: impl FnOnce(&Test)) -> Served {
        let mut served = Served::prepare(extra_env, FILES, prepare);
        served.launch();
        served
    }

    /// A store with a product of these files released, and a sandbox, but
    /// no server yet: set [`Served::serve_args`] or [`Served::wrapper`],
    /// then [`Served::launch`].
    pub fn prepare(
        extra_env: &[(&str, &str)],
        files: &[(&str, usize)],
        prepare: impl FnOnce(&Test),
    ) -> Served {
        Served::build(extra_env, files, prepare, false, None)
    }

    /// A store selling these real files (name, bytes), with `prepare`
    /// changing the store first; the server running.
    pub fn start_selling(books: &[(&str, Vec<u8>)], prepare: impl FnOnce(&Test)) -> Served {
        let files: Vec<(&str, usize)> = books
            .iter()
            .map(|(name, bytes)| (*name, bytes.len()))
            .collect();
        let contents = books.iter().map(|(_, bytes)| bytes.clone()).collect();
        let mut served = Served::build(&[], &files, prepare, false, Some(contents));
        served.launch();
        served
    }

    /// [`Served::prepare`] with the files released to a local GitHub
    /// (`author/book-assets`, token `ghs_serve`), which serves them.
    pub fn prepare_on_github(files: &[(&str, usize)]) -> Served {
        Served::build(&[], files, |_| {}, true, None)
    }

    /// A fresh store (`shop init`) changed by `prepare`, with a sandbox
    /// and the environment to reach it, and nothing released: the
    /// scenario releases through the real binary, then
    /// [`Served::launch`]es.
    pub fn unreleased(prepare: impl FnOnce(&Test)) -> Served {
        Served::build_with(&[], &[], prepare, false, None, false)
    }

    fn build(
        extra_env: &[(&str, &str)],
        files: &[(&str, usize)],
        prepare: impl FnOnce(&Test),
        on_github: bool,
        given: Option<Vec<Vec<u8>>>,
    ) -> Served {
        Served::build_with(extra_env, files, prepare, on_github, given, true)
    }

    fn build_with(
        extra_env: &[(&str, &str)],
        files: &[(&str, usize)],
        prepare: impl FnOnce(&Test),
        on_github: bool,
        given: Option<Vec<Vec<u8>>>,
        release_guide: bool,
    ) -> Served {
        let runtime = crate::harness::runtime();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let sandbox = runtime.block_on(Sandbox::start_with(
            None,
            Some(format!("{url}/stripe/webhook")),
        ));
        let mut test = Test::store();
        let names: Vec<String> = files.iter().map(|(name, _)| format!("{name:?}")).collect();
        if release_guide {
            test.write(
                "products/guide.toml",
                &PRODUCT.replace(
                    "[\"guide.pdf\", \"guide.epub\"]",
                    &format!("[{}]", names.join(", ")),
                ),
            );
        }
        prepare(&test);
        test.env("SHOP_STRIPE_API_BASE", &sandbox.url);
        test.env("STRIPE_SECRET_KEY", "sk_test_serve");
        test.env("STRIPE_WEBHOOK_SECRET", sandbox.webhook_secret.expose());
        test.env("SHOP_TOKEN_SECRET", TOKEN_SECRET);
        test.env("SHOP_BASE_URL", &url);
        // Lost-link requests looked up every second, not every five.
        test.env("SHOP_LOST_EVERY_SECONDS", "1");
        // Visits written at the stop only (a test of them says otherwise),
        // so that what `shop sync` finds does not hang on a timer.
        test.env("SHOP_VISITS_EVERY_SECONDS", "86400");
        let own_state = extra_env.iter().any(|(key, _)| *key == "SHOP_STATE_URL");
        let cluster =
            (on_postgres() && !own_state).then(|| pg_cluster::Cluster::start(false).unwrap());
        if let Some(cluster) = &cluster {
            test.env("SHOP_STATE_URL", &cluster.url("postgres"));
        }
        for (key, value) in extra_env {
            test.env(key, value);
        }
        let github = on_github.then(|| {
            let github =
                runtime.block_on(GitHubServer::start("author", "book-assets", "ghs_serve"));
            test.env("SHOP_GITHUB_REPOSITORY", &github.repository());
            test.env("GITHUB_TOKEN", &github.token);
            test.env("SHOP_GITHUB_API_BASE", &github.api_url);
            test.env("SHOP_GITHUB_UPLOADS_BASE", &github.uploads_url);
            github
        });
        let build = test.root().join("build");
        std::fs::create_dir_all(&build).unwrap();
        let mut contents = Vec::new();
        let mut args = vec!["release".to_owned(), "guide".to_owned(), "1.0.0".to_owned()];
        for (index, &(name, size)) in files.iter().enumerate() {
            let bytes: Vec<u8> = match &given {
                Some(given) => given[index].clone(),
                None => (0..size).map(|i| (i * 7 % 251) as u8).collect(),
            };
            std::fs::write(build.join(name), &bytes).unwrap();
            contents.push(bytes);
            args.push(build.join(name).to_str().unwrap().to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if release_guide {
            test.shop(&args).success();
        }
        shop::net::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Served {
            runtime,
            sandbox: Some(sandbox),
            github,
            test,
            server: None,
            listener: Some(listener),
            url,
            http,
            files: contents,
            serve_args: Vec::new(),
            wrapper: Vec::new(),
            log: Default::default(),
            log_reader: None,
            cluster,
            state: std::sync::OnceLock::new(),
        }
    }

    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().unwrap()
    }

    /// Starts `shop serve` and waits until it answers.
    pub fn launch(&mut self) {
        let address = self.url.trim_start_matches("http://").to_owned();
        let listener = self.listener.as_ref().expect("the socket is open");
        let (child, reader) = self.spawn_serve(listener, &address, &[], self.log.clone());
        self.log_reader = Some(reader);
        self.server = Some(child);
        if self.cluster.is_some() {
            let log = self.log.lock().unwrap();
            assert!(log.contains("state in PostgreSQL"), "{log}");
        }
    }

    /// Another `shop serve` of the same store and environment (plus `env`)
    /// on a socket of its own: a second server behind a load balancer.
    pub fn another_server(&self, env: &[(&str, &str)]) -> Another {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (child, reader) = self.spawn_serve(&listener, &address, env, log.clone());
        Another {
            url: format!("http://{address}"),
            child: Some(child),
            log,
            reader: Some(reader),
        }
    }

    /// Runs `shop serve` on `listener` (as systemd passes one: `--listen`
    /// gives way), waits until it says it listens, and keeps reading its
    /// log into `log` so it never blocks on a full pipe.
    fn spawn_serve(
        &self,
        listener: &std::net::TcpListener,
        address: &str,
        env: &[(&str, &str)],
        log: std::sync::Arc<std::sync::Mutex<String>>,
    ) -> (Child, std::thread::JoinHandle<()>) {
        let shop = env!("CARGO_BIN_EXE_shop");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(shop);
                command
            }
            None => Command::new(shop),
        };
        command
            .args(["serve", "--listen", address])
            .args(&self.serve_args)
            .current_dir(self.test.path())
            .env_clear();
        for (key, value) in self.test.environment() {
            command.env(key, value);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let socket = std::os::fd::OwnedFd::from(listener.try_clone().unwrap());
        command_fds::CommandFdExt::fd_mappings(
            &mut command,
            vec![command_fds::FdMapping {
                parent_fd: socket,
                child_fd: 3,
            }],
        )
        .unwrap();
        command.env("LISTEN_FDS", "1");
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
                "shop serve did not start:\n{}",
                log.lock().unwrap()
            );
            log.lock().unwrap().push_str(&line);
        }
        let reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        (child, reader)
    }

    /// Closes the fixture's copy of the server's socket (as systemd does
    /// when its socket unit stops): once the server is gone too, nothing
    /// takes connections there.
    pub fn close_socket(&mut self) {
        self.listener = None;
    }

    pub fn stop_server(&mut self) -> std::process::ExitStatus {
        let mut child = self.server.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        if let Some(reader) = self.log_reader.take() {
            reader.join().unwrap();
        }
        status
    }

    /// Kills the server with SIGKILL: no shutdown, nothing flushed.
    pub fn kill_server(&mut self) {
        let mut child = self.server.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(reader) = self.log_reader.take() {
            reader.join().unwrap();
        }
    }

    pub fn get(&self, path: &str) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        self.runtime.block_on(self.http.get(url).send()).unwrap()
    }

    pub fn body(&self, response: reqwest::Response) -> String {
        self.runtime.block_on(response.text()).unwrap()
    }

    /// Buys the guide through the payment link and the test checkout, and
    /// follows the thanks page; returns the download page's path.
    pub fn buy(&self, email: &str) -> String {
        let text = self.test.read("products/guide.toml");
        let link = text
            .lines()
            .find_map(|l| l.strip_prefix("payment_link_url = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let thanks = self.pay(&link, email);
        let landed = self.get(&thanks);
        assert_eq!(landed.status(), StatusCode::OK);
        download_page_of(&self.body(landed))
    }

    /// The payment link of the guide's newest release.
    pub fn payment_link(&self) -> String {
        self.test
            .read("products/guide.toml")
            .lines()
            .filter_map(|line| line.strip_prefix("payment_link_url = \""))
            .next_back()
            .expect("a released guide")
            .trim_end_matches('"')
            .to_owned()
    }

    /// POSTs `body` to the server's webhook with this `Stripe-Signature`.
    pub fn post_webhook(&self, signature: &str, body: Vec<u8>) -> reqwest::Response {
        self.runtime
            .block_on(
                self.http
                    .post(format!("{}/stripe/webhook", self.url))
                    .header("Stripe-Signature", signature)
                    .body(body)
                    .send(),
            )
            .unwrap()
    }

    /// Refunds the purchase of the Checkout Session `session` at the
    /// sandbox, in full.
    pub fn refund(&self, session: &str) {
        let client = self.sandbox().client();
        self.runtime.block_on(async {
            let found = client.checkout_session(session).await.unwrap().unwrap();
            client
                .create_refund(
                    found.payment_intent_id().unwrap(),
                    None,
                    &shop::stripe::IdempotencyKey::random(),
                )
                .await
                .unwrap();
        });
    }

    /// The sandbox's test checkout page that `link` (a payment link, or
    /// the server's `/buy/<slug>`, which sends the buyer to one) opens.
    pub fn checkout_page(&self, link: &str) -> String {
        let mut at = link.to_owned();
        for _ in 0..3 {
            let opened = self.get(&at);
            assert_eq!(opened.status(), StatusCode::SEE_OTHER, "{at}");
            let location = opened.headers()["location"].to_str().unwrap();
            let location = match location.strip_prefix('/') {
                Some(path) => format!("{}/{path}", self.sandbox().url),
                None => location.to_owned(),
            };
            if location.starts_with(&format!("{}/checkout/", self.sandbox().url)) {
                return location;
            }
            at = location;
        }
        panic!("{link} does not lead to a checkout page");
    }

    /// Opens `link` (a payment link, or the server's `/buy/<slug>`) and
    /// pays its test checkout page with a good card; returns the thanks
    /// address Stripe sends the buyer to.
    pub fn pay(&self, link: &str, email: &str) -> String {
        let checkout = self.checkout_page(link);
        let paid = self.post_checkout(
            &checkout,
            &[("email", email), ("card", "4242 4242 4242 4242")],
        );
        assert_eq!(paid.status(), StatusCode::SEE_OTHER);
        let thanks = paid.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            thanks.starts_with(&format!("{}/thanks?session_id=cs_test_", self.url)),
            "{thanks}"
        );
        thanks
    }

    /// Posts the test checkout page `checkout` with `fields`, as a browser
    /// does; the sandbox's answer.
    pub fn post_checkout(&self, checkout: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let form = fields
            .iter()
            .fold(shop::stripe::Form::new(), |form, (name, value)| {
                form.field(*name, *value)
            });
        self.runtime
            .block_on(
                self.http
                    .post(checkout)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send(),
            )
            .unwrap()
    }

    /// Asks `/lost` for `email`'s links, as the form does; the answer's
    /// status and page.
    pub fn ask_for_links(&self, email: &str) -> (StatusCode, String) {
        self.ask_for_links_at(&self.url, email)
    }

    /// The same, of the server at `base` (another server of this store).
    pub fn ask_for_links_at(&self, base: &str, email: &str) -> (StatusCode, String) {
        let form = shop::stripe::Form::new().field("email", email);
        let response = self
            .runtime
            .block_on(
                self.http
                    .post(format!("{base}/lost"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send(),
            )
            .unwrap();
        (response.status(), self.body(response))
    }

    /// POSTs `fields` to `path` as a form of the store's own page does
    /// (its origin named); the answer's status and body.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        self.post_form_from(path, &self.url, fields)
    }

    /// The same, from a page of `origin`.
    pub fn post_form_from(
        &self,
        path: &str,
        origin: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let form = fields
            .iter()
            .fold(shop::stripe::Form::new(), |form, (key, value)| {
                form.field(*key, *value)
            });
        let response = self
            .runtime
            .block_on(
                self.http
                    .post(format!("{}{path}", self.url))
                    .header("Origin", origin)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.encode())
                    .send(),
            )
            .unwrap();
        (response.status(), self.body(response))
    }

    /// The path of the library `email` is mailed after asking `/lost`.
    pub fn library_of(&self, email: &str) -> String {
        assert_eq!(self.ask_for_links(email).0, StatusCode::OK);
        let mut library = String::new();
        self.wait_for("the library mail", || {
            let found = self
                .outbox()
                .into_iter()
                .filter(|m| m.contains(&format!("To: {email}")))
                .find_map(|m| Some(m[m.find(&format!("{}/library/", self.url))?..].to_owned()));
            if let Some(found) = found {
                library = found
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_start_matches(&self.url)
                    .to_owned();
            }
            !library.is_empty()
        });
        library
    }

    /// The thank-you page, as a buyer lands on it after paying.
    pub fn thanks_page(&self, session: &str) -> String {
        let landed = self.get(&format!("/thanks?session_id={session}"));
        assert_eq!(landed.status(), StatusCode::OK);
        self.body(landed)
    }

    pub fn session_of(&self, page: &str) -> String {
        let token = page.trim_start_matches("/d/");
        let keys = [shop::tokens::Key::new(
            shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
        )];
        shop::tokens::verify(&keys, token, 0).unwrap().purchase
    }

    /// The server's state, read through `shop::state` as the server keeps
    /// it (SQLite in the store, or the test's PostgreSQL).
    pub fn state(&self) -> &shop::state::Db {
        self.state.get_or_init(|| {
            let location = match &self.cluster {
                Some(cluster) => shop::state::Location::Postgres(
                    shop::secret::Secret::new("SHOP_STATE_URL", cluster.url("postgres")).unwrap(),
                ),
                None => shop::state::Location::Sqlite(self.test.path().join(".shop/state.db")),
            };
            self.runtime
                .block_on(shop::state::Db::open(&location))
                .unwrap()
        })
    }

    /// The mail queue as the server's state holds it.
    pub fn mail_queue(&self) -> Vec<shop::state::MailState> {
        let state = self.state();
        self.runtime.block_on(state.mail_queue()).unwrap()
    }

    /// What the server counted of `file` of `product` at `version` for
    /// the purchase of the download page `page`.
    pub fn usage(
        &self,
        page: &str,
        product: &str,
        version: &str,
        file: &str,
    ) -> shop::downloads::Usage {
        let state = self.state();
        let purchase = self
            .runtime
            .block_on(state.purchase(&self.session_of(page)))
            .unwrap()
            .expect("the page's purchase is in the state");
        let key = shop::state::FileKey::new(&purchase, product, version, file);
        self.runtime.block_on(state.usage(&key)).unwrap().0
    }

    /// Recipients of the queued messages of `kind`, oldest first.
    pub fn queued(&self, kind: &str) -> Vec<String> {
        self.mail_queue()
            .into_iter()
            .filter(|mail| mail.kind == kind)
            .map(|mail| mail.recipient)
            .collect()
    }

    /// Rows of a table of the server's database, each value as rusqlite
    /// shows it (`Integer(5)`, `Text("a")`, `Null`), whichever keeps it.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        if let Some(cluster) = &self.cluster {
            return self
                .runtime
                .block_on(query_postgres(&cluster.url("postgres"), sql));
        }
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

    /// The messages in the outbox (`.shop/outbox`), oldest first, with
    /// quoted-printable soft breaks and `=3D` undone so links can be read.
    pub fn outbox(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.test.path().join(".shop/outbox")) else {
            return Vec::new();
        };
        let mut found: Vec<(std::time::SystemTime, String, String)> = entries
            .flatten()
            .filter_map(|entry| {
                let text = std::fs::read_to_string(entry.path()).ok()?;
                let text = text
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((
                    modified,
                    entry.file_name().to_string_lossy().into_owned(),
                    text,
                ))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, _, text)| text).collect()
    }

    pub fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
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

/// Rows of a query on a PostgreSQL database, shown as [`Served::query`]
/// shows SQLite's.
async fn query_postgres(url: &str, sql: &str) -> Vec<Vec<String>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let show = |value: Option<&str>| match value {
        None => "Null".to_owned(),
        Some(number) if number.parse::<i64>().is_ok() => format!("Integer({number})"),
        Some(text) => format!("Text({text:?})"),
    };
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|index| show(row.get(index))).collect())
            }
            _ => None,
        })
        .collect()
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
        if let Some(github) = self.github.take() {
            github.stop();
        }
    }
}

/// The download page a thank-you page links to.
pub fn download_page_of(thanks: &str) -> String {
    // minijinja escapes `/` in attribute values.
    let thanks = &thanks.replace("&#x2f;", "/");
    let start = thanks
        .find("href=\"/d/")
        .unwrap_or_else(|| panic!("no download page on the thanks page:\n{thanks}"))
        + "href=\"".len();
    let rest = &thanks[start..];
    let token_end = rest[3..].find(['/', '"', '?']).unwrap() + 3;
    rest[..token_end].to_owned()
}

/// A second `shop serve` of a [`Served`] store; killed when dropped.
pub struct Another {
    pub url: String,
    child: Option<Child>,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Another {
    /// Kills it with SIGKILL: no shutdown, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Another {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first link in `text` that starts with `prefix`.
pub fn link(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in\n{text}"));
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .next()
        .unwrap()
        .to_owned()
}

/// The messages in the outbox to `email` holding `needle`.
pub fn mails_to(served: &Served, email: &str, needle: &str) -> Vec<String> {
    served
        .outbox()
        .into_iter()
        .filter(|mail| mail.contains(&format!("To: {email}")) && mail.contains(needle))
        .collect()
}

//! A fluent harness that runs the real `shop` binary in a temporary
//! directory with a clean environment, in the manner of just's `Test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory to run `shop` in, with its own environment.
pub struct Test {
    dir: tempfile::TempDir,
    /// Where `shop` runs: the store, once made.
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

impl Test {
    /// An empty temporary directory.
    pub fn new() -> Test {
        let dir = tempfile::Builder::new()
            .prefix("shop-test")
            .tempdir()
            .expect("temporary directory");
        let cwd = dir.path().to_owned();
        Test {
            dir,
            cwd,
            env: Vec::new(),
        }
    }

    /// A temporary directory holding a fresh store made by `shop init`.
    pub fn store() -> Test {
        let mut test = Test::new();
        test.shop(&["init", "store", "--name", "Test Books"])
            .success();
        test.cwd = test.dir.path().join("store");
        test
    }

    /// The directory `shop` runs in.
    pub fn path(&self) -> &Path {
        &self.cwd
    }

    /// The temporary directory itself, above the store.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Test {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The variables set for runs, for spawning `shop` by hand.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut environment = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".to_owned(), self.dir.path().display().to_string()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ];
        environment.extend(self.env.iter().cloned());
        environment
    }

    /// Writes `text` to `relative` under the working directory.
    pub fn write(&self, relative: &str, text: &str) -> &Test {
        let path = self.cwd.join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        std::fs::write(&path, text).expect("write file");
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.cwd.join(relative)).expect("read file")
    }

    /// The lines of the ledger's month files (`purchases/YYYY-MM.jsonl`),
    /// as JSON, by email.
    pub fn ledger_lines(&self) -> Vec<serde_json::Value> {
        let mut lines: Vec<serde_json::Value> = std::fs::read_dir(self.path().join("purchases"))
            .unwrap()
            .flatten()
            .filter(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.starts_with("20") && name.ends_with(".jsonl")
            })
            .flat_map(|entry| {
                std::fs::read_to_string(entry.path())
                    .unwrap()
                    .lines()
                    .map(|line| serde_json::from_str(line).unwrap())
                    .collect::<Vec<serde_json::Value>>()
            })
            .collect();
        lines.sort_by_key(|line| line["email"].as_str().unwrap_or_default().to_owned());
        lines
    }

    /// Runs `shop` with `args` in the working directory.
    pub fn shop(&self, args: &[&str]) -> Run {
        self.shop_from(".", args)
    }

    /// Runs `shop` from `relative`, a folder under the store.
    pub fn shop_from(&self, relative: &str, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
        command
            .args(args)
            .current_dir(self.cwd.join(relative))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // git reads no configuration of the person running the tests.
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let output = command.output().expect("run shop");
        Run {
            args: args.join(" "),
            output,
            root: self.dir.path().to_owned(),
        }
    }
}

/// The outcome of one run of `shop`.
pub struct Run {
    args: String,
    pub output: Output,
    /// The test's temporary directory, shown as `[TMP]` in [`Run::stderr_is`].
    root: PathBuf,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "`shop {}` exited with {:?}\n--- stdout\n{}--- stderr\n{}",
            self.args,
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts exit code 0.
    pub fn success(self) -> Run {
        assert!(self.output.status.success(), "{}", self.describe());
        self.no_panic()
    }

    /// Asserts this exit code.
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.output.status.code(), Some(code), "{}", self.describe());
        self.no_panic()
    }

    /// Asserts stderr holds each of `parts`.
    pub fn stderr_has(self, parts: &[&str]) -> Run {
        let stderr = self.stderr();
        for part in parts {
            assert!(
                stderr.contains(part),
                "stderr lacks {part:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts the whole of stderr, with the test's temporary directory
    /// written `[TMP]`; a mismatch shows both, line by line.
    pub fn stderr_is(self, expected: &str) -> Run {
        let actual = self.stderr();
        self.whole("stderr", &actual, expected)
    }

    /// Asserts the whole of stdout, as [`Run::stderr_is`] does stderr.
    pub fn stdout_is(self, expected: &str) -> Run {
        let actual = self.stdout();
        self.whole("stdout", &actual, expected)
    }

    fn whole(self, which: &str, actual: &str, expected: &str) -> Run {
        let root = self.root.display().to_string();
        let actual = actual.replace(&root, "[TMP]");
        if actual != expected {
            let mut diff = String::new();
            let (left, right): (Vec<&str>, Vec<&str>) =
                (expected.lines().collect(), actual.lines().collect());
            for index in 0..left.len().max(right.len()) {
                match (left.get(index), right.get(index)) {
                    (Some(a), Some(b)) if a == b => diff.push_str(&format!("  {a}\n")),
                    (a, b) => {
                        if let Some(a) = a {
                            diff.push_str(&format!("- {a}\n"));
                        }
                        if let Some(b) = b {
                            diff.push_str(&format!("+ {b}\n"));
                        }
                    }
                }
            }
            panic!(
                "{which} differs (- expected, + actual):\n{diff}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts stdout holds each of `parts`.
    pub fn stdout_has(self, parts: &[&str]) -> Run {
        let stdout = self.stdout();
        for part in parts {
            assert!(
                stdout.contains(part),
                "stdout lacks {part:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts neither output holds `text`.
    pub fn never_shows(self, text: &str) -> Run {
        assert!(
            !self.stdout().contains(text) && !self.stderr().contains(text),
            "{}",
            self.describe()
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|error| panic!("{error}\n{}", self.describe()))
    }

    fn no_panic(self) -> Run {
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
            "{}",
            self.describe()
        );
        self
    }
}

/// A sandbox running in this test's runtime on a free loopback port.
pub struct Sandbox {
    pub url: String,
    pub webhook_secret: shop::secret::Secret,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
}

impl Sandbox {
    pub async fn start() -> Sandbox {
        Sandbox::start_with(None, None).await
    }

    /// A sandbox keeping its state in `data`, delivering to `webhook_url`.
    pub async fn start_with(data: Option<PathBuf>, webhook_url: Option<String>) -> Sandbox {
        let webhook_secret =
            shop::secret::Secret::new("STRIPE_WEBHOOK_SECRET", "whsec_test_harness").unwrap();
        let config = shop_sandbox::Config {
            data,
            webhook_url,
            webhook_secret: Some(shop_sandbox::SigningSecret::new(webhook_secret.expose())),
            account_name: Some("Harness Books".into()),
            tax_origin: None,
            tax_registrations: Vec::new(),
            terms_of_service_url: None,
            country: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let (sandbox, stop, task) = shop_sandbox::spawn(config, listener)
            .await
            .expect("start sandbox");
        shop::net::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Sandbox {
            url: sandbox.base_url().to_owned(),
            webhook_secret,
            stop: Some(stop),
            task: Some(task),
            http,
        }
    }

    /// A client with the sandbox's key and quick retries.
    pub fn client(&self) -> shop::stripe::Client {
        let key = shop::secret::Secret::new("STRIPE_SECRET_KEY", "sk_test_harness").unwrap();
        shop::stripe::Client::new(&self.url, key)
            .unwrap()
            .with_retry(quick_retries())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A control request (`/_sandbox/...`) with a JSON body.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let response = self
            .http
            .request(method, format!("{}/_sandbox/{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("sandbox control");
        response.json().await.expect("sandbox control answers JSON")
    }

    pub async fn set_clock(&self, now: i64) {
        let answer = self
            .control(
                reqwest::Method::POST,
                "clock",
                serde_json::json!({"now": now}),
            )
            .await;
        assert_eq!(answer["now"], now);
    }

    /// The parameters of every `POST path` the sandbox answered with 200,
    /// oldest first (its request log).
    pub async fn posted(&self, path: &str) -> Vec<serde_json::Value> {
        let log = self
            .control(reqwest::Method::GET, "requests", serde_json::json!({}))
            .await;
        log.as_array()
            .expect("the request log is a list")
            .iter()
            .filter(|entry| {
                entry["method"] == "POST" && entry["path"] == path && entry["status"] == 200
            })
            .map(|entry| entry["params"].clone())
            .collect()
    }

    /// A raw API request, as any Stripe library sends it: `fields` as the
    /// form body of a POST, or the query of a GET. Returns the status and
    /// the answer.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let form = fields
            .iter()
            .fold(shop::stripe::Form::new(), |form, (key, value)| {
                form.field(*key, *value)
            })
            .encode();
        let request = if method == reqwest::Method::GET {
            self.http
                .get(format!("{}{path}?{form}", self.url))
                .bearer_auth("sk_test_harness")
        } else {
            self.http
                .request(method, format!("{}{path}", self.url))
                .bearer_auth("sk_test_harness")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form)
        };
        let response = request.send().await.expect("sandbox API");
        let status = response.status().as_u16();
        (status, response.json().await.expect("the API answers JSON"))
    }

    /// Pays a session without a browser.
    pub async fn pay(&self, session: &str, email: &str, card: &str) -> serde_json::Value {
        self.control(
            reqwest::Method::POST,
            &format!("checkout/sessions/{session}/complete"),
            serde_json::json!({"email": email, "card": card}),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

/// A loopback port free a moment ago, for a server that cannot be handed
/// a bound listener (another process may take it between).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The runtime of a test that drives the sandbox or servers in-process:
/// two worker threads, as CI has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Retries fast enough for tests, still bounded.
pub fn quick_retries() -> shop::stripe::RetryPolicy {
    shop::stripe::RetryPolicy {
        max_attempts: 10,
        initial_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(50),
        deadline: std::time::Duration::from_secs(10),
        ..shop::stripe::RetryPolicy::default()
    }
}

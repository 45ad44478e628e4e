//! The buyer's path in a real headless Chromium (Debian's `chromium`),
//! driven over WebDriver by `chromedriver`: the payment link, the sandbox's
//! test checkout, the thanks redirect, the download page, a download.
//! `scripts/ci` installs both packages.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::served::Served;

/// The key WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser<'a> {
    served: &'a Served,
    driver: Child,
    base: String,
    session: String,
}

impl<'a> Browser<'a> {
    fn start(
        served: &'a Served,
        downloads: &std::path::Path,
        profile: &std::path::Path,
    ) -> Browser<'a> {
        let missing = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
            .iter()
            .any(|path| !std::path::Path::new(path).exists());
        assert!(
            !missing,
            "this test needs Debian's chromium and chromium-driver: `apt-get install chromium chromium-driver` (scripts/ci does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            served,
            driver,
            base,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display())],
                "prefs": {"download.default_directory": downloads.display().to_string(), "download.prompt_for_download": false},
            },
        }}});
        let answer = browser
            .call("POST", "/session", Some(capabilities))
            .expect("a Chromium session");
        browser.session = answer["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let client = reqwest::Client::new();
        let request = match method {
            "GET" => client.get(url),
            "DELETE" => client.delete(url),
            _ => client.post(url).json(&body.unwrap_or(json!({}))),
        };
        let outcome = self.served.runtime.block_on(async {
            let response = request
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            response.json::<Value>().await.map_err(|e| e.to_string())
        })?;
        if outcome["value"]["error"].is_string() {
            return Err(outcome["value"].to_string());
        }
        Ok(outcome["value"].clone())
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    fn open(&self, url: &str) {
        self.session("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let found = self.session(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session("POST", &format!("/element/{element}/clear"), None);
        self.session(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.session("POST", &format!("/element/{element}/click"), None);
    }

    fn url(&self) -> String {
        self.session("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn source(&self) -> String {
        self.session("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut(&Browser<'_>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let png = self.session("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn a_buyer_pays_and_downloads_in_a_real_browser() {
    let served = Served::start();
    let downloads = served.test.root().join("downloads");
    let profile = served.test.root().join("chromium-profile");
    std::fs::create_dir_all(&downloads).unwrap();
    let browser = Browser::start(&served, &downloads, &profile);

    let text = served.test.read("products/guide.toml");
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("payment_link_url = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    browser.open(&link);
    browser.wait_until("the test checkout", |b| {
        b.url().contains("/checkout/cs_test_")
    });
    assert!(browser.source().contains("Pay 29.00 USD"));

    // A declined card first: the page says so, nothing is paid.
    browser.type_into("#email", "reader@example.com");
    browser.type_into("#card", "4000 0000 0000 0002");
    browser.click("#pay");
    browser.wait_until("the decline", |b| {
        b.source().contains("Your card was declined.")
    });

    browser.type_into("#card", "4242 4242 4242 4242");
    browser.click("#pay");
    browser.wait_until("the download page", |b| {
        b.url().starts_with(&format!("{}/d/", served.url))
    });
    let page = browser.source();
    assert!(
        page.contains("The Field Guide") && page.contains("guide.epub") && page.contains("5 of 5"),
        "{page}"
    );
    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    browser.screenshot(&screenshots.join("download-page.png"));

    browser.click("a[href$='/guide.epub']");
    let file = downloads.join("guide.epub");
    browser.wait_until("the downloaded file", |_| {
        std::fs::read(&file).is_ok_and(|bytes| bytes == served.files[1])
    });
    let page_url = browser.url();
    browser.open(&page_url);
    browser.wait_until("the count to show", |b| b.source().contains("4 of 5"));
}

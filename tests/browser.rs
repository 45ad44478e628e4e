//! The buyer's path in a real headless Chromium (Debian's `chromium`),
//! driven over WebDriver by `chromedriver`: the store front, a product's
//! page, Buy, the sandbox's test checkout, the thank-you page, a download,
//! the library reached by email; at a desktop and a phone's width, with
//! axe-core's accessibility rules run on every page. `scripts/setup`
//! installs the browser, its driver and axe-core.

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
            // A reader far from UTC: pages show times in their zone.
            .env("TZ", "Pacific/Auckland")
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

    /// Runs a script in the page and returns its value.
    fn script(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn resize(&self, width: u32, height: u32) {
        self.session(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// axe-core's serious and critical violations on the current page.
    fn accessibility_violations(&self, axe: &str) -> Vec<String> {
        self.script(axe);
        let found = self.session(
            "POST",
            "/execute/async",
            Some(json!({"script": "const done = arguments[arguments.length - 1];\
                axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
                  .filter(v => v.impact === 'serious' || v.impact === 'critical')\
                  .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
                .catch(e => done(['axe failed: ' + e]));", "args": []})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// Checks the page as a buyer sees it: accessible, nothing wider than
    /// the window, and saved as a screenshot to look at.
    fn check_page(&self, axe: &str, name: &str) {
        let violations = self.accessibility_violations(axe);
        assert!(
            violations.is_empty(),
            "{name} at {}: {violations:#?}",
            self.url()
        );
        let overflow = self.script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        );
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{name} is {overflow} px wider than the window"
        );
        let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        self.screenshot(&screenshots.join(format!("{name}.png")));
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

/// A 6×8 PNG: the cover of the product under test.
const COVER: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x08, 0x08, 0x02, 0x00, 0x00, 0x00, 0x55, 0xa4, 0x19,
    0x6f, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf0, 0xb6, 0xbf, 0x86,
    0x86, 0x18, 0x06, 0x83, 0x10, 0x00, 0x7f, 0xa5, 0x42, 0x01, 0xee, 0x63, 0xcd, 0x1f, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The store under test: an introduction, a product with a Markdown
/// description and a cover, a second version with release notes, and a
/// product not released yet.
fn shop_with_a_front() -> Served {
    let served = Served::start_with_store(&[], |test| {
        let settings = test.read("shop.toml");
        test.write(
            "shop.toml",
            &format!("about = \"Field guides for *curious* walkers.\"\ngifts = true\n{settings}"),
        );
        let product = test.read("products/guide.toml");
        test.write(
            "products/guide.toml",
            &format!(
                "{product}description = \"\"\"\nA guide to **every path** in the valley.\n\n<script>document.title = 'owned'</script>\n\"\"\"\ncover = \"covers/guide.png\"\n"
            ),
        );
        std::fs::create_dir_all(test.path().join("covers")).unwrap();
        std::fs::write(test.path().join("covers/guide.png"), COVER).unwrap();
        test.write(
            "products/atlas.toml",
            "name = \"The Unreleased Atlas\"\nprice = \"10.00\"\nfiles = [\"atlas.pdf\"]\n",
        );
    });
    let build = served.test.root().join("build");
    let notes = served.test.root().join("notes.md");
    std::fs::write(&notes, "Two new walks and **fixed** maps.\n").unwrap();
    served
        .test
        .shop(&[
            "release",
            "guide",
            "1.1.0",
            "--notes",
            notes.to_str().unwrap(),
            build.join("guide.pdf").to_str().unwrap(),
            build.join("guide.epub").to_str().unwrap(),
        ])
        .success();
    // The next edition on pre-order, beside 1.1.0.
    served
        .test
        .shop(&[
            "preorder",
            "guide",
            "2.0.0",
            "--date",
            "2027-03-01",
            "--price",
            "19.00",
        ])
        .success();
    // A free sample beside them: an address instead of a Buy.
    served.test.write(
        "products/sampler.toml",
        "name = \"A Sampler of Walks\"\nprice = \"free\"\nfiles = [\"sampler.pdf\"]\n",
    );
    let sampler = build.join("sampler.pdf");
    std::fs::write(&sampler, b"%PDF-1.4 three walks").unwrap();
    served
        .test
        .shop(&["release", "sampler", "1.0.0", sampler.to_str().unwrap()])
        .success();
    // The server picks a release up within seconds.
    served.wait_for(
        "the server to see 1.1.0, the pre-order and the sample",
        || {
            let front = served.body(served.get("/"));
            front.contains("version 1.1.0")
                && front.contains("Version 2.0.0 is coming")
                && front.contains("sample-email-sampler")
        },
    );
    served
}

/// The newest file in the outbox holding `needle`, decoded enough to read
/// its links.
fn mail_with(served: &Served, needle: &str) -> Option<String> {
    served
        .outbox()
        .into_iter()
        .rfind(|text| text.contains(needle))
}

#[test]
fn a_buyer_finds_pays_downloads_and_comes_back_in_a_real_browser() {
    let mut served = shop_with_a_front();
    let axe_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/axe/node_modules/axe-core/axe.min.js"
    );
    let axe = std::fs::read_to_string(axe_path)
        .expect("axe-core is installed by scripts/setup (npm ci --prefix tests/axe)");
    let downloads = served.test.root().join("downloads");
    let profile = served.test.root().join("chromium-profile");
    std::fs::create_dir_all(&downloads).unwrap();
    let browser = Browser::start(&served, &downloads, &profile);

    for (width, height, buyer) in [(1280, 900, "desk"), (390, 844, "phone")] {
        let email = format!("{buyer}@example.com");
        browser.resize(width, height);
        let name = |page: &str| format!("{page}-{width}");

        // The store front: the shop, its text, the released product only.
        browser.open(&format!("{}/", served.url));
        browser.wait_until("the store front", |b| {
            b.source().contains("The Field Guide")
        });
        let front = browser.source();
        for shown in [
            "<h1>Test Books</h1>",
            "<em>curious</em>",
            "<strong>every path</strong>",
            "29.00 USD",
            "version 1.1.0",
            "PDF, EPUB",
        ] {
            assert!(
                front.contains(shown),
                "the store front lacks {shown}:\n{front}"
            );
        }
        assert!(!front.contains("Unreleased Atlas"), "{front}");
        assert!(!front.contains("<script>document.title"), "{front}");
        assert_ne!(browser.script("return document.title;"), json!("owned"));
        let cover = browser.script(
            "const img = document.querySelector('img.cover'); return img && img.complete ? img.naturalWidth : 0;",
        );
        assert_eq!(cover, json!(6), "the cover did not load");
        // The edition on sale (to buy, or to give) and the next one's
        // pre-order, side by side; and what search engines and link
        // previews read.
        let buttons = browser.script(
            "return [...document.querySelectorAll('a.button')].map(a => a.getAttribute('href'));",
        );
        assert_eq!(
            buttons,
            json!(["/buy/guide", "/buy/guide?gift", "/buy/guide?preorder"])
        );
        let meta = browser.script(
            "return [document.title, !!document.querySelector('meta[name=robots]'), \
             document.querySelector('meta[property=\"og:title\"]').content];",
        );
        assert_eq!(meta, json!(["Test Books", false, "Test Books"]));
        browser.check_page(&axe, &name("front"));

        // The product's page: every version's notes and the update policy.
        browser.click("a[href='/p/guide']");
        browser.wait_until("the product page", |b| b.url().ends_with("/p/guide"));
        let product = browser.source();
        for shown in [
            "Version 1.1.0",
            "Version 1.0.0",
            "Two new walks and <strong>fixed</strong> maps.",
            "every later 1.x version, free",
        ] {
            assert!(
                product.contains(shown),
                "the product page lacks {shown}:\n{product}"
            );
        }
        let preview = browser.script(
            "return [!!document.querySelector('meta[name=robots]'), \
             document.querySelector('meta[property=\"og:type\"]').content];",
        );
        assert_eq!(preview, json!([false, "product"]));
        browser.check_page(&axe, &name("product"));

        // Buy: the test checkout names the seller and sums up the order.
        browser.click("a[href='/buy/guide']");
        browser.wait_until("the test checkout", |b| {
            b.url().contains("/checkout/cs_test_")
        });
        let checkout = browser.source();
        for shown in [
            "TEST MODE",
            "Harness Books",
            "Order summary",
            "The Field Guide",
            "Pay 29.00 USD",
        ] {
            assert!(
                checkout.contains(shown),
                "the checkout lacks {shown}:\n{checkout}"
            );
        }
        browser.check_page(&axe, &name("checkout"));
        // A declined card first: the page says so, nothing is paid.
        browser.type_into("#email", &email);
        browser.type_into("#card", "4000 0000 0000 0002");
        browser.click("#pay");
        browser.wait_until("the decline", |b| {
            b.source().contains("Your card was declined.")
        });
        browser.type_into("#card", "4242 4242 4242 4242");
        browser.click("#pay");

        // The thank-you page.
        browser.wait_until("the thank-you page", |b| {
            b.url().starts_with(&format!("{}/thanks", served.url))
        });
        let thanks = browser.source();
        // A buyer's page is no one else's: never indexed, nothing to preview.
        let private = browser.script(
            "return [document.querySelector('meta[name=robots]').content, \
             !!document.querySelector('meta[property^=\"og:\"]')];",
        );
        assert_eq!(private, json!(["noindex", false]));
        let session = browser.url().rsplit('=').next().unwrap().to_owned();
        let order = &shop::ledger::order_number(&session);
        for shown in [
            "Thank you!".to_owned(),
            "The Field Guide".to_owned(),
            "<strong id=\"amount\">29.00 USD</strong>".to_owned(),
            format!("<dd id=\"order\">{order}</dd>"),
            format!("<strong id=\"email\">{email}</strong>"),
            "Download guide.epub".to_owned(),
            "File sizes and checksums".to_owned(),
        ] {
            assert!(
                thanks.contains(&shown),
                "the thank-you page lacks {shown}:\n{thanks}"
            );
        }
        // The link's end, shown in the reader's zone by the page's script;
        // the moment itself kept in `datetime`.
        browser.wait_until("the time in the reader's zone", |b| {
            b.script("return document.querySelector('time[data-local]').title;") != json!("")
        });
        let shown = browser.script(
            "const t = document.querySelector('time[data-local]'); \
             return [t.textContent, t.dateTime, Intl.DateTimeFormat().resolvedOptions().timeZone];",
        );
        assert_eq!(shown[2], "Pacific/Auckland");
        let (local, moment) = (shown[0].as_str().unwrap(), shown[1].as_str().unwrap());
        assert!(moment.ends_with('Z'), "{moment}");
        assert!(!local.contains("UTC") && !local.is_empty(), "{local}");
        assert!(
            thanks.contains(&format!("datetime=\"{moment}\"")),
            "{thanks}"
        );
        browser.check_page(&axe, &name("thanks"));
        let file = downloads.join("guide.epub");
        let _ = std::fs::remove_file(&file);
        browser.click("a.button[href$='/guide.epub']");
        browser.wait_until("the downloaded file", |_| {
            std::fs::read(&file).is_ok_and(|bytes| bytes == served.files[1])
        });

        // Back later: the library, by email.
        browser.open(&format!("{}/lost", served.url));
        browser.wait_until("the lost form", |b| {
            b.source().contains("Email me my links")
        });
        browser.check_page(&axe, &name("lost"));
        browser.type_into("#email", &email);
        browser.click("button[type='submit']");
        browser.wait_until("the answer", |b| b.source().contains("Check your email"));
        let mut mail = None;
        served.wait_for("the library mail", || {
            mail = mail_with(&served, &format!("To: {email}")).filter(|m| m.contains("/library/"));
            mail.is_some()
        });
        let mail = mail.unwrap();
        let start = mail.find(&format!("{}/library/", served.url)).unwrap();
        let library = mail[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .unwrap()
            .to_owned();
        browser.open(&library);
        browser.wait_until("the library", |b| b.source().contains("Your library"));
        let page = browser.source();
        for shown in [
            email.clone(),
            "The Field Guide".to_owned(),
            "Bought version 1.1.0".to_owned(),
            order.to_owned(),
            "4 of 5 downloads left".to_owned(),
        ] {
            assert!(page.contains(&shown), "the library lacks {shown}:\n{page}");
        }
        browser.check_page(&axe, &name("library"));
        browser.click("a.button[href^='/d/']");
        browser.wait_until("the download page", |b| b.url().contains("/d/"));
        assert!(browser.source().contains("4 of 5"));
        browser.check_page(&axe, &name("download-page"));

        // The withdrawal function from the download page: its first step
        // and its answer, each checked as every page is.
        browser.click("p.withdraw a");
        browser.wait_until("the withdrawal form", |b| {
            b.source().contains("Confirm my withdrawal")
        });
        assert!(browser.source().contains(order), "{}", browser.source());
        browser.check_page(&axe, &name("withdraw"));
        browser.type_into("#name", "Ada Lovelace");
        browser.click("button[type='submit']");
        browser.wait_until("the outcome", |b| b.source().contains("data-decision"));
        assert!(
            browser.source().contains("You have withdrawn"),
            "{}",
            browser.source()
        );
        browser.check_page(&axe, &name("withdrawn"));

        // Following from the front page, confirmed by the mailed link's
        // button; then the posts' archive.
        browser.open(&format!("{}/", served.url));
        browser.wait_until("the follow form", |b| b.source().contains("follow-email"));
        browser.type_into("#follow-email", "reader@example.com");
        browser.click("form.follow button[type='submit']");
        browser.wait_until("the answer", |b| b.source().contains("Check your email"));
        browser.check_page(&axe, &name("follow"));
        let mut mail = None;
        served.wait_for("the confirmation mail", || {
            mail = mail_with(&served, "To: reader@example.com")
                .filter(|m| m.contains("/follow/confirm/"));
            mail.is_some()
        });
        let mail = mail.unwrap();
        let start = mail
            .find(&format!("{}/follow/confirm/", served.url))
            .unwrap();
        let confirm = mail[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .unwrap()
            .to_owned();
        browser.open(&confirm);
        browser.wait_until("the confirmation", |b| b.source().contains("Yes, follow"));
        browser.check_page(&axe, &name("follow-confirm"));
        browser.click("button[type='submit']");
        browser.wait_until("following", |b| b.source().contains("You follow"));
        browser.check_page(&axe, &name("followed"));
        browser.open(&format!("{}/posts", served.url));
        browser.wait_until("the posts", |b| b.source().contains("<h1>Posts</h1>"));
        browser.check_page(&axe, &name("posts"));

        // The free sample from its card on the front page, news ticked.
        browser.open(&format!("{}/", served.url));
        browser.wait_until("the sample's form", |b| {
            b.source().contains("sample-email-sampler")
        });
        browser.type_into("#sample-email-sampler", "walker@example.com");
        browser.click("form.sample input[name='follow']");
        browser.click("form.sample button[type='submit']");
        browser.wait_until("the answer", |b| b.source().contains("Check your email"));
        browser.check_page(&axe, &name("sample"));
        served.wait_for("the sample's mail", || {
            mail_with(&served, "To: walker@example.com")
                .is_some_and(|m| m.contains("/d/") && m.contains("/follow/confirm/"))
        });

        // A gift from the product page: the checkout asks for the
        // recipient; the thanks page and the gift's page offer no files.
        browser.open(&format!("{}/p/guide", served.url));
        browser.click("a[href='/buy/guide?gift']");
        browser.wait_until("the gift's checkout", |b| b.source().contains("Recipient"));
        browser.type_into("#email", "giver@example.com");
        browser.type_into("#card", "4242 4242 4242 4242");
        browser.type_into("#custom_giftrecipient", "friend@example.org");
        browser.type_into("#custom_giftmessage", "For your walks.");
        browser.click("#pay");
        browser.wait_until("the gift's thank-you page", |b| {
            b.source().contains("Your gift")
        });
        let thanks = browser.source();
        assert!(
            thanks.contains("friend@example.org") && !thanks.contains("/d/"),
            "{thanks}"
        );
        browser.check_page(&axe, &name("gift-thanks"));
        let mut receipt = String::new();
        served.wait_for("the gift's receipt", || {
            receipt = mail_with(&served, "Thank you for giving").unwrap_or_default();
            receipt.contains("/gift/")
        });
        let start = receipt.find(&format!("{}/gift/", served.url)).unwrap();
        let page: String = receipt[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
            .collect();
        browser.open(&page);
        browser.wait_until("the gift's page", |b| b.source().contains("Your gift of"));
        browser.check_page(&axe, &name("gift"));
    }
    drop(browser);

    // The business in pictures, from this run's sales and visits (written
    // at the server's stop), opened as a file: it needs nothing else.
    served.stop_server();
    served.test.shop(&["sync"]).success();
    let report = served.test.root().join("business.html");
    served
        .test
        .shop(&["report", "--html", report.to_str().unwrap()])
        .success();
    let browser = Browser::start(&served, &downloads, &profile);
    browser.open(&format!("file://{}", report.display()));
    browser.wait_until("the report", |b| b.source().contains("the business"));
    let drawn = browser.script("return document.querySelectorAll('svg[role=img]').length;");
    assert_eq!(drawn, json!(5));
    // Visits of this run's pages were counted: the front's views.
    let views = browser.script(
        "return [...document.querySelectorAll('table')][3].querySelector('tbody td').textContent;",
    );
    assert_ne!(views, json!("0"), "{views}");
    browser.check_page(&axe, "report");
}

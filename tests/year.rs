//! An author's year, through the real binary, the sandbox, `shop serve`
//! and the mail outbox: a store of three products and a bundle, launch
//! and buyers through the front page, a pre-order of the next edition
//! beside the edition on sale, a fix of the older line told to its
//! buyers only, the new edition delivered and offered as an upgrade, a
//! grant, a refund, support, and the money at the end equal to what the
//! sandbox's balance moved. Every step's text is checked whole, with what
//! changes from run to run (ids, ports, hashes, today) named.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Run;
use crate::support::books;
use crate::support::served::Served;

const SETTINGS_NAME: &str = "name = \"Old Roads Press\"";

const OLD_ROADS: &str = r#"name = "Old Roads"
description = "Walks along the **drove roads** of the north."
cover = "covers/old-roads.png"
price = "24.00"
files = ["old-roads.pdf", "old-roads.epub"]
updates = "same-major"
upgrade_discount = "50%"
stamp = true
tax_code = "txcd_10302000"
"#;

const WORKBOOK: &str = r#"name = "The Walker's Workbook"
price = { minimum = "5.00", suggested = "12.00" }
files = ["workbook.pdf"]
"#;

/// A free sample: a chapter for an address.
const FIRST_WALK: &str = r#"name = "The First Walk"
price = "free"
files = ["first-walk.pdf"]
stamp = true
"#;

const ATLAS: &str = r#"name = "Atlas of the Roads"
price = "9.00"
prices = { gbp = "8.00" }
files = ["atlas.pdf"]
"#;

const COMPLETE: &str = r#"name = "The Complete Roads"
price = "30.00"
bundle = ["old-roads", "workbook"]
"#;

/// A PNG's first bytes: what the check and the pages need of a cover.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

struct Year {
    served: Served,
    /// Today, as pages and mail say it and as files do.
    today: String,
    today_iso: String,
}

impl Year {
    /// Text with what differs between runs named: the temporary folder,
    /// the server's and the sandbox's addresses, Stripe's ids, commit
    /// hashes, order numbers and today.
    fn scrub(&self, text: &str) -> String {
        let mut text = text
            .replace(&self.served.url, "[SERVER]")
            .replace(&self.served.sandbox().url, "[STRIPE]")
            .replace(&self.served.test.root().display().to_string(), "[TMP]")
            .replace(&self.today, "[TODAY]");
        text = scrub_run(&text, "[SERVER]/d/", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
        });
        // Times (`2026-12-14T11:01:30Z`) before days.
        text = scrub_times(&text)
            .replace(&self.today_iso, "[TODAY]")
            .replace(&self.today_iso[..7], "[MONTH]");
        for prefix in [
            "cs_test_", "price_", "plink_", "pi_", "ch_", "re_", "promo_", "gr_", "txn_", "sm_",
        ] {
            text = scrub_ids(&text, prefix);
        }
        scrub_words(&text)
    }

    fn shop(&self, args: &[&str]) -> Run {
        self.served.test.shop(args)
    }

    /// Runs `args`, which must succeed, and checks its stdout and stderr
    /// whole, scrubbed.
    fn step(&self, args: &[&str], stdout: &str, stderr: &str) -> Run {
        let run = self.shop(args).success();
        assert_eq!(
            (self.scrub(&run.stdout()), self.scrub(&run.stderr())),
            (stdout.to_owned(), stderr.to_owned()),
            "`shop {}`",
            args.join(" ")
        );
        run
    }

    /// Opens `path` (the front page's Buy, a payment link) and pays its
    /// test checkout with `fields`; the thanks page's address.
    fn pay(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let checkout = self.served.checkout_page(path);
        let paid = self.served.post_checkout(&checkout, fields);
        assert_eq!(paid.status(), StatusCode::SEE_OTHER, "{path}");
        paid.headers()["location"].to_str().unwrap().to_owned()
    }

    fn page(&self, path: &str) -> String {
        let response = self.served.get(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        self.served.body(response).replace("&#x2f;", "/")
    }

    /// The messages in the outbox to `email`, oldest first.
    fn mail_to(&self, email: &str) -> Vec<String> {
        self.served
            .outbox()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {email}")))
            .collect()
    }

    fn wait_for_mail(&self, email: &str, subject: &str) -> String {
        let mut found = None;
        self.served.wait_for(&format!("{subject} to {email}"), || {
            found = self
                .mail_to(email)
                .into_iter()
                .find(|m| m.contains(&format!("Subject: {subject}")));
            found.is_some()
        });
        found.unwrap()
    }

    /// A GET of the sandbox's API.
    fn stripe(&self, path: &str) -> Value {
        let sandbox = self.served.sandbox();
        self.served.runtime.block_on(async {
            let answer = sandbox
                .http()
                .get(format!("{}{path}", sandbox.url))
                .bearer_auth("sk_test_serve")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            answer.json().await.unwrap()
        })
    }
}

/// `prefix` followed by letters and digits, as `prefix…`.
fn scrub_ids(text: &str, prefix: &str) -> String {
    scrub_run(text, prefix, |c| c.is_ascii_alphanumeric())
}

/// RFC 3339 times in UTC as `[TIME]`.
fn scrub_times(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let candidate = bytes.get(at..at + 20);
        let is_time = candidate.is_some_and(|c| {
            c.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                10 => *b == b'T',
                13 | 16 => *b == b':',
                19 => *b == b'Z',
                _ => b.is_ascii_digit(),
            })
        });
        if is_time {
            out.push_str("[TIME]");
            at += 20;
        } else {
            let c = text[at..].chars().next().unwrap();
            out.push(c);
            at += c.len_utf8();
        }
    }
    out
}

/// `prefix` followed by a run of characters `keep` takes, as `prefix…`.
fn scrub_run(text: &str, prefix: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let boundary = at == 0
            || prefix.starts_with('[')
            || !rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric());
        out.push_str(&rest[..at + prefix.len()]);
        let tail = &rest[at + prefix.len()..];
        let length = tail.find(|c: char| !keep(c)).unwrap_or(tail.len());
        if boundary && length > 0 {
            out.push('…');
            rest = &tail[length..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Commit hashes (7 to 40 hexadecimal digits with a letter and a digit)
/// as `[HASH]`, order numbers (`7K2QM-9XWAB`) as `[ORDER]`.
fn scrub_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex = (7..=40).contains(&word.len())
            && word
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_digit())
            && word.chars().any(|c| c.is_ascii_alphabetic());
        let order = word.len() == 11
            && word.as_bytes()[5] == b'-'
            && word
                .chars()
                .enumerate()
                .all(|(i, c)| i == 5 || c.is_ascii_digit() || c.is_ascii_uppercase());
        if hex {
            out.push_str("[HASH]");
        } else if order {
            out.push_str("[ORDER]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn an_authors_year() {
    // ---- A store: `shop init`, three products and a bundle, a cover.
    let served = Served::unreleased(|test| {
        let settings = test
            .read("shop.toml")
            .replace("name = \"Test Books\"", SETTINGS_NAME)
            .replace("currency = \"usd\"", "currency = \"eur\"");
        test.write("shop.toml", &settings);
        std::fs::remove_file(test.path().join("products/example-book.toml")).unwrap();
        test.write("products/old-roads.toml", OLD_ROADS);
        test.write("products/workbook.toml", WORKBOOK);
        test.write("products/atlas.toml", ATLAS);
        test.write("products/complete.toml", COMPLETE);
        std::fs::create_dir_all(test.path().join("covers")).unwrap();
        std::fs::write(test.path().join("covers/old-roads.png"), PNG).unwrap();
        crate::release::commit_all(test.path(), "Old Roads Press");
    });
    let today = time::OffsetDateTime::now_utc().date();
    // (A run across midnight UTC would see two days: the checks name
    // today's once, at the start.)
    let mut year = Year {
        today: shop::dates::human_date(today),
        today_iso: today.to_string(),
        served,
    };
    // The account is German: the EEA's fees, and it settles in EUR.
    year.served.runtime.block_on(year.served.sandbox().control(
        reqwest::Method::POST,
        "settings",
        json!({"country": "DE", "settle_in": "eur"}),
    ));
    let build = year.served.test.root().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = build.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let pdf = file("old-roads.pdf", &books::pdf(6));
    let epub = file("old-roads.epub", &books::epub());
    let workbook = file("workbook.pdf", &books::pdf(2));
    let atlas = file("atlas.pdf", b"%PDF-1.4 maps");

    let state = if crate::support::served::on_postgres() {
        "set    "
    } else {
        "not set"
    };
    year.step(
        &["products", "check"],
        &format!(
            "`[TMP]/store`: 4 products (0 released), settings and products valid\n\
         secrets in the environment:\n\
         \x20 STRIPE_SECRET_KEY      set      (for release, checkout, sync, serve)\n\
         \x20 STRIPE_WEBHOOK_SECRET  set      (for serve)\n\
         \x20 SHOP_TOKEN_SECRET      set      (for serve, notify, token)\n\
         \x20 GITHUB_TOKEN           not set  (for release and serve, with a GitHub repository)\n\
         \x20 SHOP_SMTP_PASSWORD     not set  (for mail by smtp)\n\
         \x20 SHOP_STATE_URL         {state}  (for serve on PostgreSQL)\n"
        ),
        "",
    );

    // ---- 1.0.0 of each; the bundle of what is out.
    let released = |slug: &str, price: &str, files: &[(&str, usize)]| {
        let mut steps = format!(
            "  created Stripe product `prod_shop_{slug}`\n\
             \x20 created Stripe price `price_…` for {price}\n\
             \x20 created payment link `plink_…`\n"
        );
        for (name, size) in files {
            steps.push_str(&format!(
                "  copied `{name}` ({size} bytes) to the local files folder\n"
            ));
        }
        let locals: Vec<String> = files
            .iter()
            .map(|(name, _)| format!(", local file {name}"))
            .collect();
        format!(
            "{steps}  recorded the release in products/{slug}.toml\n\
             \x20 committed and tagged `{slug}-v1.0.0`\n\
             note: no release notes for {slug} 1.0.0: the product page and notices show none\n\
             hint: write them in `notes/{slug}/1.0.0.md` (or give `--notes FILE`) before the next version\n\
             released {slug} 1.0.0 (product prod_shop_{slug}, price price_…, payment link plink_…{})\n",
            locals.concat()
        )
    };
    let link = "[STRIPE]/pay/plink_…\n";
    year.step(
        &["release", "old-roads", "1.0.0", &pdf, &epub],
        link,
        &released(
            "old-roads",
            "24.00 EUR",
            &[("old-roads.pdf", 3446), ("old-roads.epub", 2159)],
        ),
    );
    year.step(
        &["release", "workbook", "1.0.0", &workbook],
        link,
        &released(
            "workbook",
            "pay what you want, from 5.00 EUR",
            &[("workbook.pdf", 1544)],
        ),
    );
    year.step(
        &["release", "atlas", "1.0.0", &atlas],
        link,
        &released("atlas", "9.00 EUR (8.00 GBP)", &[("atlas.pdf", 13)]),
    );
    year.step(
        &["release", "complete", "1.0.0"],
        link,
        "  created Stripe product `prod_shop_complete`\n\
         \x20 created Stripe price `price_…` for 30.00 EUR\n\
         \x20 created payment link `plink_…`\n\
         \x20 a bundle of `old-roads` 1.0.0, `workbook` 1.0.0\n\
         \x20 recorded the release in products/complete.toml\n\
         \x20 committed and tagged `complete-v1.0.0`\n\
         released complete 1.0.0 (product prod_shop_complete, price price_…, payment link plink_…)\n",
    );
    let catalogue = |old_roads: &str| {
        format!(
            "SLUG       NAME                                                PRICE                     ON SALE{pad}  PAYMENT LINK\n\
             atlas      Atlas of the Roads                                  9.00 EUR (also 8.00 GBP)  1.0.0{pad}    [STRIPE]/pay/plink_…\n\
             complete   The Complete Roads (bundle of old-roads, workbook)  30.00 EUR                 1.0.0{pad}    [STRIPE]/pay/plink_…\n\
             old-roads  Old Roads                                           24.00 EUR                 {old_roads}\n\
             workbook   The Walker's Workbook                               from 5.00 EUR             1.0.0{pad}    [STRIPE]/pay/plink_…\n",
            pad = " ".repeat(if old_roads.contains("pre-order") {
                18
            } else {
                0
            }),
        )
    };
    year.step(
        &["products"],
        &catalogue("1.0.0    [STRIPE]/pay/plink_…"),
        "",
    );

    // ---- Launch: buyers through the front page, each with a card of
    // their country (the account is German: EEA cards cost least).
    year.served.launch();
    let front = year.page("/");
    for slug in ["old-roads", "workbook", "atlas", "complete"] {
        assert!(front.contains(&format!("href=\"/buy/{slug}\"")), "{front}");
    }
    let german = ("card", "4000 0027 6000 0016");
    let american = ("card", "4242 4242 4242 4242");
    // Launch day's webhooks come twice (Stripe may send an event more than
    // once): each sale is recorded, and mailed, once.
    let webhooks = |body: serde_json::Value| {
        year.served.runtime.block_on(year.served.sandbox().control(
            reqwest::Method::POST,
            "webhooks",
            body,
        ))
    };
    webhooks(json!({"duplicate": true}));
    let ada = year.pay("/buy/old-roads", &[("email", "ada@example.com"), german]);
    let bo = year.pay(
        "/buy/workbook",
        &[("email", "bo@example.com"), american, ("amount", "15.00")],
    );
    let cy = year.pay(
        "/buy/complete",
        &[("email", "cy@example.com"), ("card", "4000 0025 0000 0003")],
    );
    // Gil came from a post: the Buy carries where from.
    year.pay(
        "/buy/atlas?utm_source=mastodon",
        &[
            ("email", "gil@example.com"),
            ("card", "4000 0082 6000 0000"),
        ],
    );
    let lead = |thanks: &str| {
        let page = year.page(thanks.trim_start_matches(&year.served.url));
        let at = page.find("<p class=\"lead\"").unwrap();
        let end = page[at..].find("</p>").unwrap() + at + 4;
        page[at..end].to_owned()
    };
    assert_eq!(
        lead(&ada),
        "<p class=\"lead\">You bought <strong>Old Roads</strong> (version 1.0.0) for <strong id=\"amount\">24.00 EUR</strong>.</p>"
    );
    assert_eq!(
        lead(&cy),
        "<p class=\"lead\">You bought <strong>The Complete Roads</strong> (version 1.0.0) for <strong id=\"amount\">30.00 EUR</strong>.</p>"
    );
    assert_eq!(
        lead(&bo),
        "<p class=\"lead\">You bought <strong>The Walker&#x27;s Workbook</strong> (version 1.0.0) for <strong id=\"amount\">15.00 EUR</strong>.</p>"
    );
    // The bundle's receipt says what it holds; the book's carries the stamp.
    let receipt = year.wait_for_mail("cy@example.com", "Your receipt");
    assert!(
        receipt.contains("Contains: Old Roads 1.0.0 and The Walker's Workbook 1.0.0"),
        "{receipt}"
    );
    assert!(
        receipt.contains("Your PDF and EPUB files carry your email address"),
        "{receipt}"
    );
    year.served
        .wait_for("every launch-day event delivered twice", || {
            let deliveries = year.served.runtime.block_on(year.served.sandbox().control(
                reqwest::Method::GET,
                "webhooks",
                json!({}),
            ));
            let sales: Vec<_> = deliveries
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["type"] == "checkout.session.completed")
                .collect();
            sales.len() == 4 && sales.iter().all(|d| d["deliveries"] == 2)
        });
    let log = year.served.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("checkout.session.completed: sale of").count(),
        4,
        "{log}"
    );
    webhooks(json!({"duplicate": false}));

    // ---- The next edition on pre-order, at a launch price and with its
    // day, while 1.0.0 sells: a buyer of each on the same day.
    year.served.test.write(
        "notes/old-roads/2.0.0.md",
        "The second edition: **twelve** new walks.\n",
    );
    year.step(
        &[
            "preorder",
            "old-roads",
            "2.0.0",
            "--date",
            "2027-03-01",
            "--price",
            "19.00",
            "--commit-all",
        ],
        link,
        "  Stripe product `prod_shop_old-roads` exists\n\
         \x20 created Stripe price `price_…` for 19.00 EUR\n\
         \x20 created payment link `plink_…`\n\
         \x20 no files yet: a pre-order\n\
         \x20 recorded the release in products/old-roads.toml\n\
         \x20 committed the pre-order\n\
         opened pre-orders of old-roads 2.0.0 (price price_…, payment link plink_…)\n",
    );
    year.served
        .wait_for("both Buy buttons on the front page", || {
            let front = year.page("/");
            front.contains("href=\"/buy/old-roads\"")
                && front.contains("href=\"/buy/old-roads?preorder\"")
        });
    let dan = year.pay("/buy/old-roads", &[("email", "dan@example.com"), american]);
    let eve = year.pay(
        "/buy/old-roads?preorder",
        &[("email", "eve@example.com"), german],
    );
    assert_eq!(
        lead(&dan),
        "<p class=\"lead\">You bought <strong>Old Roads</strong> (version 1.0.0) for <strong id=\"amount\">24.00 EUR</strong>.</p>"
    );
    assert_eq!(
        lead(&eve),
        "<p class=\"lead\">You pre-ordered <strong>Old Roads</strong> (version 2.0.0) for <strong id=\"amount\">19.00 EUR</strong>.</p>"
    );
    let eve_library = year.page(&year.served.library_of("eve@example.com"));
    assert!(
        eve_library.contains("Not out yet: it is to come out on 1 March 2027.")
            && eve_library.contains("/withdraw/"),
        "{eve_library}"
    );
    // Hal pre-orders too, and withdraws before the release (the EU
    // withdrawal function, on the thanks page as on every page of a
    // purchase): nothing was delivered, so the right stands whatever was
    // ticked; refunded at once, told twice (the receipt of the
    // withdrawal, the refund), and never delivered at the release.
    let hal = year.pay(
        "/buy/old-roads?preorder",
        &[("email", "hal@example.com"), german],
    );
    let hal_thanks = year.page(hal.trim_start_matches(&year.served.url));
    let receipt = year.wait_for_mail("hal@example.com", "Your pre-order from Old Roads Press");
    assert!(receipt.contains("/withdraw/"), "{receipt}");
    // The pre-order's own page (what its download link opens until the
    // release) has the link too.
    let hal_session = hal.split("session_id=").nth(1).unwrap();
    let key = shop::tokens::Key::new(
        shop::secret::Secret::new("SHOP_TOKEN_SECRET", crate::support::served::TOKEN_SECRET)
            .unwrap(),
    );
    let tomorrow = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86_400;
    let hal_page = shop::tokens::link("", &key, hal_session, tomorrow);
    let preordered = year.page(&hal_page);
    assert!(
        preordered.contains("You pre-ordered version") && preordered.contains("/withdraw/"),
        "{preordered}"
    );
    let at = hal_thanks.find("/withdraw/").expect("the withdrawal link");
    let withdraw = hal_thanks[at..].split('"').next().unwrap().to_owned();
    assert!(
        year.page(&withdraw).contains("Old Roads, version 2.0.0"),
        "the first step says what is withdrawn from"
    );
    let (status, outcome) = year.served.post_form(&withdraw, &[("name", "Hal Reader")]);
    assert_eq!(status, StatusCode::OK);
    assert!(outcome.contains("data-decision=\"refund\""), "{outcome}");
    year.wait_for_mail("hal@example.com", "We received your withdrawal");
    year.wait_for_mail("hal@example.com", "Your refund from Old Roads Press");
    year.step(
        &["withdrawals"],
        "ORDER        ASKED       EMAIL            DECISION  OUTCOME\n\
         [ORDER]  [TODAY]  hal@example.com  refund    withdrawn: refunded\n",
        "",
    );
    year.step(
        &["products"],
        &catalogue(
            "1.0.0, 2.0.0 on pre-order  [STRIPE]/pay/plink_… (pre-order: [STRIPE]/pay/plink_…)",
        ),
        "",
    );

    // ---- A review copy.
    year.step(
        &["grant", "fay@example.com", "old-roads", "--note", "review copy"],
        "[SERVER]/d/…\n",
        "gave `old-roads` 1.0.0 to `fay@example.com` (grant `gr_…`), mailed; the link, valid until [TIME]:\n",
    );

    // ---- A fix of the 1.x line while 2.0.0 is on pre-order: released,
    // and told to 1.x's buyers only (not the pre-order's).
    year.served.test.write(
        "notes/old-roads/1.1.0.md",
        "Corrected the map of the **Corpse Road**.\n",
    );
    let pdf = file("old-roads.pdf", &books::pdf(7));
    year.step(
        &["release", "old-roads", "1.1.0", &pdf, &epub, "--commit-all"],
        link,
        "  Stripe product `prod_shop_old-roads` exists\n\
         \x20 Stripe price `price_…` for 24.00 EUR exists\n\
         \x20 created payment link `plink_…`\n\
         \x20 copied `old-roads.pdf` (3922 bytes) to the local files folder\n\
         \x20 copied `old-roads.epub` (2159 bytes) to the local files folder\n\
         \x20 recorded the release in products/old-roads.toml\n\
         \x20 committed and tagged `old-roads-v1.1.0`\n\
         \x20 turned off the payment link of 1.0.0 (`plink_…`)\n\
         released old-roads 1.1.0 (payment link plink_…, local file old-roads.pdf, local file old-roads.epub)\n",
    );
    year.step(
        &["notify", "old-roads", "1.1.0", "--dry-run"],
        "fay@example.com  (given 1.0.0, gr_…)\n",
        "the ledger is behind Stripe (a sync would change purchases/[MONTH].jsonl, \
         purchases/withdrawals.jsonl): the real run syncs first, and tells the buyers since the last `shop sync` too\n\
         dry run: would email 1 buyer about Old Roads 1.1.0 (0 already told, 0 opted out)\n",
    );
    year.step(
        &["notify", "old-roads", "1.1.0"],
        "sent 4 notices about Old Roads 1.1.0 (0 already told, 0 opted out)\n",
        "synced first: 7 purchases new in the ledger\n",
    );
    for email in [
        "ada@example.com",
        "cy@example.com",
        "dan@example.com",
        "fay@example.com",
    ] {
        let notice = year.wait_for_mail(email, "Old Roads 1.1.0 is out");
        assert!(notice.contains("Corrected the map of the"), "{notice}");
    }
    assert!(
        year.wait_for_mail("fay@example.com", "Old Roads 1.1.0 is out")
            .contains("You were given Old Roads 1.0.0")
    );
    assert!(
        year.mail_to("eve@example.com")
            .iter()
            .all(|m| !m.contains("1.1.0")),
        "the pre-order's buyer is not told of 1.1.0"
    );

    // ---- The second edition: the pre-order delivered; 1.x's readers
    // offered the upgrade (the policy gives them 1.x only).
    let pdf = file("old-roads.pdf", &books::pdf(9));
    let epub = file("old-roads.epub", &books::epub_padded(100));
    year.step(
        &["release", "old-roads", "2.0.0", &pdf, &epub],
        "[STRIPE]/pay/plink_…\n\
         sent 1 download link of pre-ordered Old Roads 2.0.0 (0 already told, 0 opted out)\n",
        "  Stripe product `prod_shop_old-roads` exists\n\
         \x20 Stripe price `price_…` for 24.00 EUR exists\n\
         \x20 created payment link `plink_…`\n\
         \x20 copied `old-roads.pdf` (4874 bytes) to the local files folder\n\
         \x20 copied `old-roads.epub` (2384 bytes) to the local files folder\n\
         \x20 turned off the pre-order link of 2.0.0 (`plink_…`)\n\
         \x20 the ledger has every pre-order\n\
         \x20 recorded the release in products/old-roads.toml\n\
         \x20 committed and tagged `old-roads-v2.0.0`\n\
         \x20 turned off the payment link of 1.1.0 (`plink_…`)\n\
         \x20 note: bundle `complete` still gives old-roads 1.0.0; to sell 2.0.0 in it, release a new version of the bundle\n\
         released old-roads 2.0.0 (payment link plink_…, local file old-roads.pdf, local file old-roads.epub)\n",
    );
    let delivery = year.wait_for_mail("eve@example.com", "Old Roads 2.0.0 is out: your download");
    // Eve's reading app follows her library's OPDS feed: the new edition
    // is in it, with a link per file.
    let eve_library = year.page(&year.served.library_of("eve@example.com"));
    let at = eve_library
        .find("<code id=\"opds\">")
        .expect("the feed's address")
        + 16;
    let opds = eve_library[at..].split('<').next().unwrap().to_owned();
    // (Once the server has read the release: it reads the store again
    // within moments of a change.)
    year.served.wait_for("the new edition in Eve's feed", || {
        let feed = year.page(opds.trim_start_matches(&year.served.url));
        feed.contains("<title>Old Roads</title>")
            && feed.contains("rel=\"http://opds-spec.org/acquisition\"")
            && feed.contains("type=\"application/epub+zip\"")
    });
    assert!(
        year.mail_to("hal@example.com")
            .iter()
            .all(|m| !m.contains("your download")),
        "a pre-order withdrawn from is not delivered"
    );
    // Eve takes the edition whole (one ZIP of her stamped copies, each
    // file one download), and sends the EPUB to her Kindle.
    let at = delivery.find("/d/").expect("the download link");
    let eve_page = delivery[at..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned();
    let page = year.page(&eve_page).replace("&#x2f;", "/");
    let link = "id=\"download-all\" href=\"";
    let start = page.find(link).expect("Download all") + link.len();
    let all = page[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let zip = year.served.runtime.block_on(async {
        let response = year
            .served
            .http
            .get(format!("{}{all}", year.served.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.unwrap().to_vec()
    });
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a ZIP");
    let mut names: Vec<&str> = archive.file_names().collect();
    names.sort_unstable();
    assert_eq!(names, ["old-roads.epub", "old-roads.pdf"]);
    let form = "class=\"kindle\" method=\"post\" action=\"";
    let start = page.find(form).expect("Send to Kindle") + form.len();
    let action = page[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let (status, sent) = year
        .served
        .post_form(&action, &[("address", "eve@kindle.com")]);
    assert_eq!(status, StatusCode::OK);
    assert!(sent.contains("On its way to your Kindle"), "{sent}");
    year.wait_for_mail("eve@kindle.com", "Old Roads 2.0.0");
    year.step(
        &["notify", "old-roads", "2.0.0", "--dry-run"],
        "ada@example.com  (bought 1.0.0, cs_test_…)  upgrade offer\n\
         cy@example.com  (bought 1.0.0, cs_test_…)  upgrade offer\n\
         dan@example.com  (bought 1.0.0, cs_test_…)  upgrade offer\n\
         fay@example.com  (given 1.0.0, gr_…)  upgrade offer\n",
        "dry run: would email 4 buyers about Old Roads 2.0.0 (0 already told, 0 opted out)\n",
    );
    year.step(
        &["notify", "old-roads", "2.0.0"],
        "sent 4 notices about Old Roads 2.0.0 (0 already told, 0 opted out)\n",
        "",
    );
    // Ada's library: every edition she holds (1.1.0, and 1.0.0 as she
    // bought it), not the second edition her policy leaves out.
    let ada_library = year.page(&year.served.library_of("ada@example.com"));
    assert!(
        ada_library.contains("Newest version for you: <strong>1.1.0</strong>")
            && ada_library.contains("Earlier editions you own:")
            && ada_library.contains("version 1.0.0<span")
            && !ada_library.contains("version 2.0.0"),
        "{ada_library}"
    );
    let offer = year.wait_for_mail("ada@example.com", "Old Roads 2.0.0: 50% off for you");
    assert!(offer.contains("<strong>12.00 EUR</strong>"), "{offer}");
    assert!(
        year.wait_for_mail("fay@example.com", "Old Roads 2.0.0: 50% off for you")
            .contains("You were given Old Roads 1.0.0")
    );
    year.step(
        &["products"],
        &catalogue("2.0.0    [STRIPE]/pay/plink_…"),
        "",
    );

    // ---- Support: a refund, a buyer found, a link mailed again.
    let order_of = |thanks: &str| {
        let page = year.page(thanks.trim_start_matches(&year.served.url));
        let at = page.find("<dd id=\"order\">").unwrap() + "<dd id=\"order\">".len();
        page[at..at + 11].to_owned()
    };
    let dan_order = order_of(&dan);
    year.step(
        &["refund", &dan_order.to_lowercase().replace('-', ""), "--reason", "bought twice"],
        "",
        "refunded 24.00 EUR of `[ORDER]` (old-roads 1.0.0) at Stripe (`re_…`); its downloads are closed\n\
         mailed dan@example.com a refund notice\n\
         hint: the next `shop sync` records the refund in the ledger\n",
    );
    year.wait_for_mail("dan@example.com", "Your refund from Old Roads Press");
    assert!(
        lead(&dan).contains("was refunded, so its downloads are closed."),
        "{}",
        lead(&dan)
    );
    year.step(
        &["find", "ada@example.com"],
        "ORDER        DATE        EMAIL            PRODUCT          STATUS  LEFT    ID\n\
         [ORDER]  [TODAY]  ada@example.com  old-roads 1.0.0  paid    5 of 5  cs_test_…\n",
        "",
    );
    year.step(
        &["token", "ada@example.com", "--mail"],
        "[SERVER]/d/…\n",
        "mailed the link to ada@example.com (their receipt again)\nvalid until [TIME]:\n",
    );
    let again: Vec<String> = year
        .mail_to("ada@example.com")
        .into_iter()
        .filter(|m| m.contains("Subject: Your receipt"))
        .collect();
    assert_eq!(again.len(), 2, "the receipt, and the receipt again");

    // ---- An audience of her own: a reader follows from the front page
    // (double opt-in: the mailed link, then its button), Ada too; a post
    // goes to each once, never to buyers who do not follow, and is on the
    // store and in its feed beside the releases.
    let send_form = |path: &str, fields: &[(&str, &str)]| {
        let (status, body) = year.served.post_form(path, fields);
        assert_eq!(status, StatusCode::OK, "{path}");
        body
    };
    for email in ["ivy@example.com", "ada@example.com"] {
        let form = [("email", email), ("source", "front")];
        assert!(send_form("/follow", &form).contains("Check your email"));
        let mail = year.wait_for_mail(email, "Confirm you want news from Old Roads Press");
        let at = mail
            .find("/follow/confirm/")
            .expect("the confirmation link");
        let confirm = mail[at..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .unwrap()
            .to_owned();
        assert!(send_form(&confirm, &[]).contains("You follow"));
    }
    // A free chapter for an address (no Stripe object, no sale): Jo asks
    // on the front page and ticks the box for news; the chapter's link
    // and the confirmation come in one mail, and Jo follows by its button.
    year.served
        .test
        .write("products/first-walk.toml", FIRST_WALK);
    let chapter = file("first-walk.pdf", &books::pdf(2));
    year.step(
        &["release", "first-walk", "1.0.0", &chapter],
        "[SERVER]/p/first-walk\n",
        "  free: no Stripe product, price or payment link\n\
         \x20 copied `first-walk.pdf` (1544 bytes) to the local files folder\n\
         \x20 recorded the release in products/first-walk.toml\n\
         \x20 committed and tagged `first-walk-v1.0.0`\n\
         note: no release notes for first-walk 1.0.0: the product page and notices show none\n\
         hint: write them in `notes/first-walk/1.0.0.md` (or give `--notes FILE`) before the next version\n\
         released first-walk 1.0.0 (local file first-walk.pdf)\n",
    );
    year.served
        .wait_for("the free chapter on the front page", || {
            year.page("/").contains("action=\"/sample/first-walk\"")
        });
    let form = [("email", "jo@example.com"), ("follow", "yes")];
    assert!(send_form("/sample/first-walk", &form).contains("Check your email"));
    let mail = year.wait_for_mail(
        "jo@example.com",
        "The First Walk, free from Old Roads Press",
    );
    let link_in = |mail: &str, path: &str| {
        let at = mail.find(path).expect(path);
        mail[at..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .unwrap()
            .to_owned()
    };
    let chapter_page = year.page(&link_in(&mail, "/d/"));
    assert!(chapter_page.contains("first-walk.pdf"), "{chapter_page}");
    assert!(send_form(&link_in(&mail, "/follow/confirm/"), &[]).contains("You follow"));

    year.served.test.write(
        "news.md",
        "---\nsubject: Walks for the winter\nslug: winter\n---\nThree **winter** walks from the second edition.\n",
    );
    year.step(
        &["post", "news.md", "--to", "all"],
        "",
        "sent “Walks for the winter” to 3 addresses (0 already sent, 0 opted out); \
         on the store at [SERVER]/posts/winter\n",
    );
    for email in ["ivy@example.com", "ada@example.com", "jo@example.com"] {
        year.wait_for_mail(email, "Walks for the winter");
    }
    assert!(
        year.mail_to("bo@example.com")
            .iter()
            .all(|m| !m.contains("Walks for the winter")),
        "a buyer who does not follow hears no post"
    );
    let feed = year.page("/feed.xml");
    assert!(
        feed.contains("<title>Walks for the winter</title>")
            && feed.contains("<title>Old Roads 2.0.0</title>"),
        "{feed}"
    );

    // ---- The money: the ledger and the report, to the cent what the
    // sandbox's balance moved.
    year.step(
        &["sync"],
        "0 new, 1 refunded, 0 disputed, 1 free sample; committed [HASH]\n",
        "7 completed sessions seen\nkept 3 followers in audience/followers.jsonl\n",
    );
    year.step(
        &["report"],
        "PRODUCT     COUNT  GIVEN  SAMPLES  GROSS       REFUNDED   WITHDRAWN  FEES      NET\n\
         atlas       1      0      0        9.00 EUR    0.00 EUR   0          0.48 EUR  8.52 EUR\n\
         complete    1      0      0        30.00 EUR   0.00 EUR   0          0.70 EUR  29.30 EUR\n\
         first-walk  0      0      1        0.00 EUR    0.00 EUR   0          0.00 EUR  0.00 EUR\n\
         old-roads   4      1      0        86.00 EUR   43.00 EUR  1          2.72 EUR  40.28 EUR\n\
         workbook    1      0      0        15.00 EUR   0.00 EUR   0          0.74 EUR  14.26 EUR\n\
         TOTAL       7      1      1        140.00 EUR  43.00 EUR  1          4.64 EUR  92.36 EUR\n",
        "",
    );
    // Stripe's published pricing for a German account: EEA cards 1.5 %,
    // UK cards 2.5 %, the rest 3.25 %, each plus 25 cents, rounded half up.
    let fee = |cents: i64, rate: i64| (cents * rate + 5_000) / 10_000 + 25;
    let fees = fee(2400, 150) // ada, German card
        + fee(1500, 325) // bo, American card
        + fee(3000, 150) // cy, French card
        + fee(900, 250) // gil, British card
        + fee(2400, 325) // dan, American card
        + fee(1900, 150) // eve, German card, the launch price
        + fee(1900, 150); // hal, the same, withdrawn (Stripe keeps its fee)
    assert_eq!(fees, 464);
    // What the balance moved: each charge less its fee, less the refund.
    let mut balance = 0;
    let sessions = year.stripe("/v1/checkout/sessions?limit=100");
    for session in sessions["data"].as_array().unwrap() {
        let intent = session["payment_intent"].as_str().unwrap();
        let intent = year.stripe(&format!("/v1/payment_intents/{intent}"));
        let charge = intent["latest_charge"].as_str().unwrap();
        let charge = year.stripe(&format!("/v1/charges/{charge}"));
        let txn = charge["balance_transaction"].as_str().unwrap();
        balance += year.stripe(&format!("/v1/balance_transactions/{txn}"))["net"]
            .as_i64()
            .unwrap();
        let refunds = year.stripe(&format!(
            "/v1/refunds?charge={}",
            charge["id"].as_str().unwrap()
        ));
        for refund in refunds["data"].as_array().unwrap() {
            let txn = refund["balance_transaction"].as_str().unwrap();
            balance += year.stripe(&format!("/v1/balance_transactions/{txn}"))["net"]
                .as_i64()
                .unwrap();
        }
    }
    assert_eq!(balance, 14_000 - 2_400 - 1_900 - fees);
    let totals = year.shop(&["report", "--json"]).success().json();
    let sum = |key: &str| -> i64 {
        totals
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row[key].as_i64().unwrap())
            .sum()
    };
    assert_eq!((sum("fees"), sum("net")), (fees, balance));
    year.step(
        &["report", "--by", "source"],
        "SOURCE    COUNT  GIVEN  SAMPLES  GROSS       REFUNDED   WITHDRAWN  FEES      NET\n\
         direct    6      1      1        131.00 EUR  43.00 EUR  1          4.16 EUR  83.84 EUR\n\
         mastodon  1      0      0        9.00 EUR    0.00 EUR   0          0.48 EUR  8.52 EUR\n\
         TOTAL     7      1      1        140.00 EUR  43.00 EUR  1          4.64 EUR  92.36 EUR\n",
        "",
    );
    year.step(
        &["report", "--by", "month"],
        "MONTH    COUNT  GIVEN  SAMPLES  GROSS       REFUNDED   WITHDRAWN  FEES      NET\n\
         [MONTH]  7      1      1        140.00 EUR  43.00 EUR  1          4.64 EUR  92.36 EUR\n",
        "",
    );

    // ---- A reader in London: the Atlas in pounds (its price's GBP
    // option, shown to her browser's en-GB), settled into the account's
    // EUR at Stripe's rate; the report keeps the pounds apart, and
    // `--in eur` adds what reached the bank.
    let london = year.served.runtime.block_on(async {
        year.served
            .http
            .get(format!("{}/p/atlas", year.served.url))
            .header("Accept-Language", "en-GB")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        london.contains("<strong class=\"price\">8.00 GBP</strong> <span class=\"others\">(also 9.00 EUR)</span>"),
        "{london}"
    );
    year.pay(
        "/buy/atlas",
        &[
            ("email", "kim@example.com"),
            ("card", "4000 0082 6000 0000"),
            ("currency", "gbp"),
        ],
    );
    year.wait_for_mail("kim@example.com", "Your receipt");
    year.step(
        &["sync"],
        "1 new, 0 refunded, 0 disputed; committed [HASH]\n",
        "8 completed sessions seen\n",
    );
    year.step(
        &["report"],
        "PRODUCT     COUNT  GIVEN  SAMPLES  GROSS       REFUNDED   WITHDRAWN  FEES      NET\n\
         atlas       1      0      0        9.00 EUR    0.00 EUR   0          0.48 EUR  8.52 EUR\n\
         atlas       1      0      0        8.00 GBP    0.00 GBP   0          0.00 GBP  8.00 GBP\n\
         complete    1      0      0        30.00 EUR   0.00 EUR   0          0.70 EUR  29.30 EUR\n\
         first-walk  0      0      1        0.00 EUR    0.00 EUR   0          0.00 EUR  0.00 EUR\n\
         old-roads   4      1      0        86.00 EUR   43.00 EUR  1          2.72 EUR  40.28 EUR\n\
         workbook    1      0      0        15.00 EUR   0.00 EUR   0          0.74 EUR  14.26 EUR\n\
         TOTAL       7      1      1        140.00 EUR  43.00 EUR  1          4.64 EUR  92.36 EUR\n",
        "the fees of 1 purchase are in EUR, where they settled: NET leaves them out\n\
         hint: `shop report --in eur` gives every purchase in EUR, at the rates Stripe applied\n",
    );
    // 8.00 GBP at the sandbox's 0.92/0.79 is 9.32 EUR; its fee, a UK card
    // on a German account: 2.5 % (0.23) + 0.25, and 2 % for converting
    // (0.19): 0.67 EUR.
    year.step(
        &["report", "--in", "eur"],
        "PRODUCT     COUNT  GIVEN  SAMPLES  GROSS       REFUNDED   WITHDRAWN  FEES      NET\n\
         atlas       2      0      0        18.32 EUR   0.00 EUR   0          1.15 EUR  17.17 EUR\n\
         complete    1      0      0        30.00 EUR   0.00 EUR   0          0.70 EUR  29.30 EUR\n\
         first-walk  0      0      1        0.00 EUR    0.00 EUR   0          0.00 EUR  0.00 EUR\n\
         old-roads   4      1      0        86.00 EUR   43.00 EUR  1          2.72 EUR  40.28 EUR\n\
         workbook    1      0      0        15.00 EUR   0.00 EUR   0          0.74 EUR  14.26 EUR\n\
         TOTAL       8      1      1        149.32 EUR  43.00 EUR  1          5.31 EUR  101.01 EUR\n",
        "",
    );

    // ---- The holidays: the author sells gifts (`gifts = true`); a
    // re-run of the Atlas's release adds its gift's link. Lu gives the
    // Atlas to Max with a message: Lu's receipt has no download link,
    // Max's gift has his own, and the ledger keeps who gave it.
    let settings = year.served.test.read("shop.toml");
    year.served
        .test
        .write("shop.toml", &format!("gifts = true\n{settings}"));
    year.step(
        &["release", "atlas", "1.0.0", &atlas, "--commit-all"],
        "[STRIPE]/pay/plink_…\n",
        "  Stripe product `prod_shop_atlas` exists\n\
         \x20 Stripe price `price_…` for 9.00 EUR (8.00 GBP) exists\n\
         \x20 payment link `plink_…` exists\n\
         \x20 created gift's payment link `plink_…`\n\
         \x20 `atlas.pdf` is in the local files folder\n\
         \x20 recorded the release in products/atlas.toml\n\
         \x20 committed and tagged `atlas-v1.0.0`\n\
         note: no release notes for atlas 1.0.0: the product page and notices show none\n\
         hint: write them in `notes/atlas/1.0.0.md` (or give `--notes FILE`) before the next version\n\
         released atlas 1.0.0 (gift's payment link plink_…)\n",
    );
    year.served.wait_for("the Atlas's gift on its page", || {
        year.served
            .body(year.served.get("/p/atlas"))
            .contains("href=\"/buy/atlas?gift\"")
    });
    let thanks = year.pay(
        "/buy/atlas?gift",
        &[
            ("email", "lu@example.com"),
            ("card", "4000 0027 6000 0016"),
            ("custom_giftrecipient", "max@example.org"),
            ("custom_giftmessage", "For the road, Max. Lu"),
        ],
    );
    let landed = year.page(thanks.trim_start_matches(&year.served.url));
    assert!(
        landed.contains("We have sent it to <strong>max@example.org</strong>")
            && !landed.contains("/d/"),
        "{landed}"
    );
    let receipt = year.wait_for_mail("lu@example.com", "Your receipt from");
    assert!(
        !receipt.contains("/d/") && receipt.contains("/gift/"),
        "{receipt}"
    );
    let gift = year.wait_for_mail("max@example.org", "A gift for you: Atlas of the Roads");
    assert!(gift.contains("For the road, Max. Lu"), "{gift}");
    let page = gift[gift.find("/d/").expect("Max's own link")..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap()
        .to_owned();
    assert!(year.page(&page).contains("atlas.pdf"));
    year.step(
        &["sync"],
        "1 new, 0 refunded, 0 disputed; committed [HASH]\n",
        "9 completed sessions seen\n",
    );
    let lines = year.served.test.ledger_lines();
    let given = lines
        .iter()
        .find(|line| line["gift_from"] == "lu@example.com")
        .expect("the gift's line");
    assert_eq!(given["email"], "max@example.org");
    assert_eq!(given["gift_message"], "For the road, Max. Lu");

    // ---- Visits to sales: the server counted each view of the store's
    // pages and each checkout started (by day, product and source, no one
    // tracked), written at its stop; `shop sync` keeps them in git, and
    // the funnel shows Gil's post: one checkout started, one sale.
    year.served.stop_server();
    year.step(
        &["sync"],
        "",
        "9 completed sessions seen\n\
         kept the visits of 1 day in audience/visits.jsonl\n\
         the ledger is up to date; nothing to commit\n",
    );
    let funnel = year
        .shop(&["--json", "report", "--funnel", "--by", "source"])
        .success()
        .json();
    let mastodon = funnel
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == "mastodon")
        .expect("Gil's source");
    assert_eq!(
        (
            &mastodon["views"],
            &mastodon["checkouts"],
            &mastodon["sales"],
            &mastodon["revenue"]
        ),
        (&json!(0), &json!(1), &json!(1), &json!({"eur": 900}))
    );
    let by_product = year
        .shop(&["--json", "report", "--funnel"])
        .success()
        .json();
    let atlas = by_product
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == "atlas")
        .unwrap();
    // Gil, Kim and Lu's gift: three sales, in two currencies; each began
    // at a Buy (or a gift's) the server counted.
    assert_eq!(atlas["sales"], 3);
    assert_eq!(atlas["revenue"], json!({"eur": 1800, "gbp": 800}));
    assert!(atlas["checkouts"].as_u64().unwrap() >= 3, "{atlas}");
    assert!(atlas["views"].as_u64().unwrap() >= 1, "{atlas}");
}

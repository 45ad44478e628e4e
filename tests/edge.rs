//! The server at the open internet's edge: no request costs it much more
//! than it costs the client, no budget shared by strangers can be spent
//! by a few of them, and nothing keeps a refunded download open. Each test
//! runs the real `shop serve` and speaks HTTP to it from real loopback
//! addresses.

use std::io::{Read as _, Write as _};
use std::net::IpAddr;

use reqwest::StatusCode;

use crate::support::served::{FILES, Served};

/// An HTTP client whose requests come from `address` (any of 127.0.0.0/8
/// is this machine), following no redirects.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn post_webhook(served: &Served, signature: &str, body: Vec<u8>) -> StatusCode {
    served.post_webhook(signature, body).status()
}

#[test]
fn a_forged_webhook_is_refused_before_it_costs_a_mac_per_signature() {
    let served = Served::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Larger than any event Stripe sends: refused before it is read (the
    // head alone is sent, and answered).
    let mut stream =
        std::net::TcpStream::connect(served.url.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "POST /stripe/webhook HTTP/1.1\r\nHost: shop\r\nContent-Length: {}\r\n\
         Stripe-Signature: t={now},v1=00\r\n\r\n",
        1024 * 1024
    )
    .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
    // 950 signatures in the header, or nine: refused for the header alone.
    let body = vec![b'x'; 200 * 1024];
    for count in [950, 9] {
        let forged = format!("t={now}{}", ",v1=00".repeat(count));
        assert_eq!(
            post_webhook(&served, &forged, body.clone()),
            StatusCode::BAD_REQUEST
        );
    }
    // A stale one is refused for its age, whatever it signs.
    let stale = format!("t={}{}", now - 3_600, ",v1=00".repeat(8));
    assert_eq!(post_webhook(&served, &stale, body), StatusCode::BAD_REQUEST);
    for reason in [
        "header is longer than Stripe's",
        "more `v1` signatures than Stripe sends",
        "outside the tolerance",
    ] {
        served.wait_for(reason, || served.log.lock().unwrap().contains(reason));
    }
    // Stripe's own deliveries still come through.
    let page = served.buy("ada@example.com");
    assert!(page.starts_with("/d/"));
    served.wait_for("the receipt", || !served.queued("receipt").is_empty());
}

#[test]
fn a_hundred_addresses_cannot_stop_a_sale_or_a_lost_link() {
    let served = Served::start();
    // 101 addresses, each clicking Buy six times and asking for lost
    // links twenty times: within what each may do, and more than a cap
    // for everyone together would have allowed.
    let mut buys = 0;
    let mut asks = 0;
    served.runtime.block_on(async {
        for n in 0..101u32 {
            let client = client_from(&format!("127.0.1.{}", n + 1));
            for _ in 0..6 {
                let answer = client
                    .get(format!("{}/buy/guide", served.url))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), StatusCode::SEE_OTHER);
                buys += 1;
            }
            if n < 26 {
                for i in 0..20 {
                    let form =
                        shop::stripe::Form::new().field("email", format!("x{n}-{i}@example.com"));
                    let answer = client
                        .post(format!("{}/lost", served.url))
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(form.encode())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), StatusCode::OK, "address {n}, ask {i}");
                    asks += 1;
                }
            }
        }
    });
    assert_eq!((buys, asks), (606, 520));
    // Three buyers from fresh addresses buy, land on their thank-you page,
    // and one asks for a lost link.
    for n in 0..3 {
        let email = format!("fresh{n}@example.com");
        let thanks = served.pay("/buy/guide", &email);
        let client = client_from(&format!("127.0.2.{}", n + 1));
        let landed = served.runtime.block_on(client.get(&thanks).send()).unwrap();
        assert_eq!(landed.status(), StatusCode::OK, "buyer {n}");
    }
    let (status, _) = served.ask_for_links("fresh0@example.com");
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_thousand_buys_from_one_address_all_reach_checkout() {
    // Launch day: everyone behind one mobile carrier's address, and a
    // buyer who goes back and forth, press Buy: each goes to the payment
    // link, none is refused.
    let served = Served::start();
    let link = served.payment_link();
    let client = client_from("127.0.3.1");
    let landed: Vec<(StatusCode, String)> = served.runtime.block_on(async {
        let mut landed = Vec::new();
        for _ in 0..1000 {
            let answer = client
                .get(format!("{}/buy/guide", served.url))
                .send()
                .await
                .unwrap();
            let location = answer
                .headers()
                .get("location")
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            landed.push((answer.status(), location));
        }
        landed
    });
    let refused = landed
        .iter()
        .filter(|(status, location)| {
            *status != StatusCode::SEE_OTHER || !location.starts_with(&link)
        })
        .count();
    assert_eq!(
        refused,
        0,
        "{:?}",
        landed.iter().find(|(s, _)| *s != StatusCode::SEE_OTHER)
    );
}

#[test]
fn an_ipv6_client_is_its_network_of_64_bits() {
    let mut served = Served::prepare(&[], FILES, |test| {
        let settings = test.read("shop.toml").replace(
            "trusted_proxies = []",
            "trusted_proxies = [\"127.0.0.1\"]\nlost_limit = \"5/hour\"",
        );
        test.write("shop.toml", &settings);
    });
    served.launch();
    let ask = |from: &str, n: u32| {
        let form = shop::stripe::Form::new().field("email", format!("v6-{n}@example.com"));
        served
            .runtime
            .block_on(
                served
                    .http
                    .post(format!("{}/lost", served.url))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header("X-Forwarded-For", from)
                    .body(form.encode())
                    .send(),
            )
            .unwrap()
            .status()
    };
    // Five addresses of one /64 are one client: five asks in all.
    for n in 1..=5 {
        assert_eq!(ask(&format!("2001:db8:1:2::{n:x}"), n), StatusCode::OK);
    }
    assert_eq!(
        ask("2001:db8:1:2:ffff:ffff:ffff:ffff", 6),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The next /64 is another client.
    assert_eq!(ask("2001:db8:1:3::1", 7), StatusCode::OK);
}

/// Refunds `page`'s purchase at the sandbox.
fn refund(served: &Served, page: &str) {
    served.refund(&served.session_of(page));
}

fn webhooks_down(served: &Served, down: bool) {
    served.runtime.block_on(served.sandbox().control(
        reqwest::Method::POST,
        "webhooks",
        serde_json::json!({ "down": down }),
    ));
}

#[test]
fn a_refund_whose_webhook_is_lost_closes_the_downloads_at_the_next_start() {
    // Reconciling only at start here: the restart is what must close them.
    let mut served = Served::start_with(&[("SHOP_RECONCILE_EVERY_SECONDS", "3600")]);
    let page = served.buy("ada@example.com");
    let file = format!("{page}/guide.epub");
    assert_eq!(served.get(&file).status(), StatusCode::OK);
    // Stripe cannot reach the server (down for the weekend, a rotated
    // secret, a mistyped endpoint), and a refund is made meanwhile.
    webhooks_down(&served, true);
    refund(&served, &page);
    let deliveries = |served: &Served| {
        served.runtime.block_on(served.sandbox().control(
            reqwest::Method::GET,
            "webhooks",
            serde_json::json!({}),
        ))
    };
    served.wait_for("the refund's delivery to fail", || {
        deliveries(&served)
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["type"] == "charge.refunded" && d["attempts"].as_u64() > Some(0))
    });
    // The event never arrived: the download is still open...
    assert_eq!(served.get(&file).status(), StatusCode::OK);
    // ...until the server starts again and reads what it missed.
    served.stop_server();
    served.launch();
    served.wait_for("the restarted server to close the downloads", || {
        served.get(&file).status() == StatusCode::GONE
    });
    let delivered = deliveries(&served);
    assert!(
        delivered
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["type"] != "charge.refunded" || d["delivered"] == false),
        "{delivered}"
    );
    served.wait_for("the reconciliation's log line", || {
        served
            .log
            .lock()
            .unwrap()
            .contains("reconciled with Stripe and the ledger")
    });
}

#[test]
fn what_shop_sync_wrote_closes_the_downloads_without_a_webhook() {
    let served = Served::start_with(&[("SHOP_RECONCILE_EVERY_SECONDS", "1")]);
    // No event reaches the server by webhook, nor by asking Stripe.
    webhooks_down(&served, true);
    served.runtime.block_on(served.sandbox().control(
        reqwest::Method::POST,
        "faults",
        serde_json::json!({"rate": 1.0, "status": 500, "path": "/v1/events", "method": "GET"}),
    ));
    let page = served.buy("grace@example.com");
    let file = format!("{page}/guide.epub");
    assert_eq!(served.get(&file).status(), StatusCode::OK);
    // `shop sync` records the refund in the ledger (it reads refunds, not
    // events), and the server honours the ledger.
    refund(&served, &page);
    served.test.shop(&["sync"]).success();
    let ledger = std::fs::read_dir(served.test.path().join("purchases"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .collect::<String>();
    assert!(ledger.contains("\"status\":\"refunded\""), "{ledger}");
    served.wait_for("the ledger to close the downloads", || {
        served.get(&file).status() == StatusCode::GONE
    });
}

#[test]
fn on_github_resumes_are_streamed_and_counted_never_a_new_whole_file() {
    let size = 3000;
    let mut served = Served::prepare_on_github(&[("guide.pdf", size), ("guide.epub", 1000)]);
    served.launch();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    // The attack that once got 20 whole-file URLs out of a limit of 5:
    // a GET and three resumes from byte 1, eight times over.
    let (mut urls, mut streamed) = (0u64, 0u64);
    for _ in 0..8 {
        for range in [None, Some("bytes=1-"), Some("bytes=1-"), Some("bytes=1-")] {
            let mut request = served.http.get(&url);
            if let Some(range) = range {
                request = request.header("Range", range);
            }
            let response = served.runtime.block_on(request.send()).unwrap();
            match response.status() {
                StatusCode::FOUND => urls += 1,
                StatusCode::PARTIAL_CONTENT => {
                    assert_eq!(
                        response.headers()["content-range"],
                        format!("bytes 1-{}/{size}", size - 1).as_str()
                    );
                    let body = served.runtime.block_on(response.bytes()).unwrap();
                    assert_eq!(&body[..], &served.files[0][1..]);
                    streamed += body.len() as u64;
                }
                StatusCode::GONE => {}
                other => panic!("{other} for {range:?}"),
            }
        }
    }
    let size = size as u64;
    // At most the limit's whole-file URLs, and with the bytes streamed at
    // most one file of slack beyond it.
    assert!(urls <= 5, "{urls} whole-file URLs");
    assert!(
        urls * size + streamed <= 6 * size,
        "{urls} URLs, {streamed} bytes"
    );
    assert!(urls >= 1 && streamed > 0, "{urls} URLs, {streamed} bytes");
    // The ranges came from GitHub's CDN through the server.
    let github = served.github.as_ref().unwrap();
    assert!(github.count("cdn range") >= 1);
    // A resume costs its bytes, not a whole download.
    let page = served.buy("grace@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    let response = served
        .runtime
        .block_on(served.http.get(&url).header("Range", "bytes=1000-").send())
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let body = served.runtime.block_on(response.bytes()).unwrap();
    assert_eq!(&body[..], &served.files[0][1000..]);
    // Five whole downloads are still there after one resume's 2000 bytes.
    let mut whole = 0;
    for _ in 0..6 {
        let response = served
            .runtime
            .block_on(served.http.get(&url).send())
            .unwrap();
        if response.status() == StatusCode::FOUND {
            whole += 1;
        }
    }
    assert_eq!(
        whole, 4,
        "2000 bytes of 3000 leave four whole downloads of five"
    );
}

#[test]
fn a_stamped_copy_dropped_from_the_disk_is_made_again() {
    let epub = crate::support::books::epub_padded(700 * 1024);
    let served = Served::start_selling(&[("guide.epub", epub)], |test| {
        let product = test.read("products/guide.toml");
        test.write("products/guide.toml", &format!("{product}stamp = true\n"));
        let settings = test
            .read("shop.toml")
            .replace("[serve]\n", "[serve]\nstamped_cache = \"1 MiB\"\n");
        test.write("shop.toml", &settings);
    });
    let stamped = || {
        std::fs::read_dir(served.test.path().join(".shop/stamped"))
            .unwrap()
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "epub"))
            .count()
    };
    let download = |page: &str| {
        let response = served.get(&format!("{page}/guide.epub"));
        assert_eq!(response.status(), StatusCode::OK);
        served.runtime.block_on(response.bytes()).unwrap()
    };
    let ada = served.buy("ada@example.com");
    let first = download(&ada);
    // A second buyer's copy: the two do not fit in 1 MiB, so Ada's goes.
    let grace = served.buy("grace@example.com");
    download(&grace);
    assert_eq!(stamped(), 1);
    // Ada's next download makes her copy again: the same copy.
    assert_eq!(download(&ada), first);
    assert_eq!(stamped(), 1);
}

#[test]
fn a_shop_name_with_a_comma_or_a_colon_still_sends_mail() {
    let test = crate::harness::Test::new();
    test.shop(&["init", "store", "--name", "Books, Inc.: Old Roads"])
        .success();
    let settings = test.read("store/shop.toml");
    assert!(
        settings.contains(r#"from = '"Books, Inc.: Old Roads" <help@example.com>'"#),
        "{settings}"
    );
    test.shop(&["--store", "store", "products", "check"])
        .success();
    // Written by hand without the quotes, it is refused before any mail.
    test.write(
        "store/shop.toml",
        &settings.replace(
            r#"from = '"Books, Inc.: Old Roads" <help@example.com>'"#,
            r#"from = "Books, Inc. <help@example.com>""#,
        ),
    );
    test.shop(&["--store", "store", "products", "check"])
        .code(1)
        .stderr_has(&[
            "`Books, Inc. <help@example.com>` is not a sender mail can carry",
            "hint: write `Name <address>`",
            "`\"Books, Inc.\" <books@example.com>`",
        ]);

    // A server of such a shop sends its receipts.
    let served = Served::start_with_store(&[], |test| {
        let settings = test
            .read("shop.toml")
            .replace("name = \"Test Books\"", "name = \"Books, Inc.: Old Roads\"");
        let settings: String = settings
            .lines()
            .filter(|line| !line.starts_with("from = "))
            .map(|line| format!("{line}\n"))
            .collect();
        test.write("shop.toml", &settings);
    });
    served.buy("ada@example.com");
    served.wait_for("the receipt", || {
        served
            .outbox()
            .iter()
            .any(|mail| mail.contains("To: ada@example.com"))
    });
    // The name, as mail carries one with a comma and a colon.
    use base64::Engine as _;
    let name = base64::engine::general_purpose::STANDARD.encode("Books, Inc.: Old Roads");
    let outbox = served.outbox();
    assert!(
        outbox
            .iter()
            .any(|mail| mail.contains(&format!("From: =?utf-8?b?{name}?= <help@example.com>"))),
        "{outbox:?}"
    );
}

#[test]
fn nothing_outside_the_store_is_served_as_a_cover() {
    let served = Served::start_with_store(&[], |test| {
        let product = test.read("products/guide.toml");
        test.write(
            "products/guide.toml",
            &format!("{product}cover = \"covers/guide.png\"\n"),
        );
        std::fs::create_dir_all(test.path().join("covers")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", test.path().join("covers/guide.png")).unwrap();
    });
    let answer = served.get("/cover/guide");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert!(!served.body(answer).contains("root:"));
    // Nor a paid file, nor an endless one.
    for target in [
        served
            .test
            .path()
            .join(".shop/files/guide/1.0.0/guide.epub"),
        std::path::PathBuf::from("/dev/zero"),
    ] {
        let link = served.test.path().join("covers/guide.png");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(
            served.get("/cover/guide").status(),
            StatusCode::NOT_FOUND,
            "{}",
            target.display()
        );
    }
    // The check says so, with what to do.
    served
        .test
        .shop(&["products", "check"])
        .code(1)
        .stderr_has(&[
            "`guide`: the cover `",
            "covers/guide.png` leads outside the store",
            "hint: put the file itself in the store (a copy, not a symlink)",
        ]);
    // A real image is served; one whose bytes are not its name's type is
    // refused by the check.
    let link = served.test.path().join("covers/guide.png");
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, b"\x89PNG\r\n\x1a\n0000").unwrap();
    assert_eq!(served.get("/cover/guide").status(), StatusCode::OK);
    std::fs::write(&link, b"just text").unwrap();
    served
        .test
        .shop(&["products", "check"])
        .code(1)
        .stderr_has(&["is named as image/png but its bytes are no image shop knows"]);
}

/// 1,100 connections from one client to a server that may open 1,024
/// files, each with a request answered and kept alive (as a client that
/// asks once every 20 seconds would); then a request from another client.
/// Returns how many of the 1,100 the server kept open, how many it closed
/// after answering (to make room), and the other client's answer.
fn flood_with_keep_alives(per_client: Option<u32>) -> (usize, usize, StatusCode) {
    // This process holds the attacker's 1,100 sockets.
    rlimit::increase_nofile_limit(8192).unwrap();
    let mut served = Served::prepare(&[], FILES, |test| {
        if let Some(count) = per_client {
            let settings = test.read("shop.toml").replace(
                "[serve]\n",
                &format!("[serve]\nconnections_per_client = {count}\n"),
            );
            test.write("shop.toml", &settings);
        }
    });
    served.wrapper = ["sh", "-c", "ulimit -n 1024 && exec \"$0\" \"$@\""]
        .map(String::from)
        .to_vec();
    served.launch();
    let address = served.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..1100 {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n");
        held.push(stream);
    }
    let answer = served
        .runtime
        .block_on(async {
            let other = reqwest::Client::builder()
                .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .unwrap();
            other.get(format!("{}/healthz", served.url)).send().await
        })
        .unwrap();
    let mut kept = 0;
    let mut closed_after = 0;
    for stream in &mut held {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 12];
        if matches!(stream.read(&mut buffer), Ok(n) if n > 0) {
            assert_eq!(&buffer, b"HTTP/1.1 200");
            // Still open after its answer: not closed to make room.
            stream
                .set_read_timeout(Some(std::time::Duration::from_millis(1)))
                .unwrap();
            let mut rest = [0u8; 4096];
            let mut open = true;
            loop {
                match stream.read(&mut rest) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
            kept += usize::from(open);
            closed_after += usize::from(!open);
        }
    }
    (kept, closed_after, answer.status())
}

#[test]
fn a_thousand_keep_alive_connections_from_one_client_leave_room_for_others() {
    // One client holds its share, 256 connections; the rest were closed at
    // once, and another client is answered.
    assert_eq!(flood_with_keep_alives(None), (256, 0, StatusCode::OK));
}

#[test]
fn a_full_server_closes_idle_connections_of_the_heaviest_client_for_a_newcomer() {
    // No share per client here: the server fills up to its descriptors less
    // a reserve (1,024 - 64), then closes the idle connections of the
    // client holding the most to take a newcomer in.
    let (kept, closed, status) = flood_with_keep_alives(Some(5000));
    assert_eq!(status, StatusCode::OK);
    assert!(closed > 0, "none closed to make room");
    // Within the descriptors: at most half the reserve closing at a time.
    let most = 1024 - shop::server::connection::RESERVE;
    assert!(
        kept <= most + shop::server::connection::RESERVE / 2,
        "{kept} kept"
    );
}

#[test]
fn templates_that_fail_or_drop_what_a_page_must_show_stop_the_check_and_the_start() {
    let mut test = crate::harness::Test::store();
    test.env("STRIPE_SECRET_KEY", "sk_test_templates");
    test.env("SHOP_TOKEN_SECRET", crate::support::served::TOKEN_SECRET);
    std::fs::create_dir_all(test.path().join("templates/mail")).unwrap();
    let cases = [
        (
            "templates/front.html",
            "<h1>{{ shop }}</h1>{{ nosuchthing.deep }}",
            "the page template `templates/front.html`",
        ),
        (
            "templates/page.html",
            "<title>{{ title }}</title><p>{{ shop }} {{ support }}</p>",
            "it does not show the page's `body`",
        ),
        (
            "templates/thanks.html",
            "<h1>Thank you!</h1><p>{{ order }}</p>",
            "it does not show the download of each file",
        ),
        (
            "templates/mail/notice.txt",
            "Subject: {{ product }} {{ version }}\n\nGet it: {{ link }}\n",
            "the message does not show `{{ unsubscribe }}`",
        ),
        (
            "templates/front.html",
            "{% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}",
            "the page template `templates/front.html`",
        ),
    ];
    for (file, text, expected) in cases {
        test.write(file, text);
        test.shop(&["products", "check"])
            .code(1)
            .stderr_has(&[expected, "hint: "]);
        test.shop(&["serve", "--listen", "127.0.0.1:0"])
            .code(1)
            .stderr_has(&[expected]);
        std::fs::remove_file(test.path().join(file)).unwrap();
    }
    test.shop(&["products", "check"]).success();
}

#[test]
fn what_visitors_wrote_never_reaches_the_terminal_as_escapes() {
    let test = crate::harness::Test::store();
    // A visitor's UTM source, as `/buy/guide?utm_source=…` carries it into
    // the ledger: it clears the screen and writes the clipboard.
    let source = "news\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7}letter";
    let line = serde_json::json!({"id": "cs_test_esc", "created": "2026-11-02T10:00:00Z",
        "email": "ada@example.com", "product": "example-book", "version": "1.0.0",
        "amount": 2900, "currency": "usd", "payment_intent": "pi_esc", "status": "paid",
        "utm_source": source});
    test.write("purchases/2026-11.jsonl", &format!("{line}\n"));
    for args in [&["report", "--by", "source"][..], &["report", "--csv"][..]] {
        let run = test.shop(args).success();
        let out = run.stdout();
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(
            out.contains("news\\u{1b}[2J\\u{1b}]52;c;ZXZpbA==\\u{7}letter"),
            "{out}"
        );
    }
}

/// Releases `guide` `version` in a served store (new bytes each time).
fn release_guide(served: &Served, version: &str, extra: &[&str]) {
    let build = served.test.root().join("build");
    std::fs::write(
        build.join("guide.pdf"),
        format!("%PDF {version}").repeat(100),
    )
    .unwrap();
    std::fs::write(build.join("guide.epub"), format!("PK {version}")).unwrap();
    let (pdf, epub) = (build.join("guide.pdf"), build.join("guide.epub"));
    let mut args = vec![
        "release",
        "guide",
        version,
        pdf.to_str().unwrap(),
        epub.to_str().unwrap(),
    ];
    args.extend(extra);
    served.test.shop(&args).success();
}

#[test]
fn notify_tells_the_buyers_since_the_last_sync_too() {
    let served = Served::start();
    // Ada buys; nobody runs `shop sync`.
    served.buy("ada@example.com");
    release_guide(&served, "1.1.0", &[]);
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--dry-run"])
        .success()
        .stderr_has(&[
            "the ledger is behind Stripe (a sync would change purchases/",
            "the real run syncs first, and tells the buyers since the last `shop sync` too",
            "dry run: would email 0 buyers",
        ]);
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--only", "nobody@example.com"])
        .code(1)
        .stderr_has(&[
            "synced first: 1 purchase new in the ledger",
            "`nobody@example.com` has no purchase that The Field Guide 1.1.0 reaches",
            "hint: check the address",
        ]);
    served
        .test
        .shop(&["notify", "guide", "1.1.0"])
        .success()
        .stdout_has(&["sent 1 notice about The Field Guide 1.1.0"]);
    served.wait_for("the notice", || {
        served.outbox().iter().any(|mail| {
            mail.contains("To: ada@example.com") && mail.contains("The Field Guide 1.1.0 is out")
        })
    });
}

#[test]
fn an_upgrade_link_works_the_moment_it_is_mailed() {
    // A server that reads the store again only much later.
    let served = Served::start_with_store(&[("SHOP_STORE_WATCH_SECONDS", "3600")], |test| {
        let product = test.read("products/guide.toml");
        test.write(
            "products/guide.toml",
            &format!("{product}updates = \"same-major\"\nupgrade_discount = \"50%\"\n"),
        );
    });
    served.buy("ada@example.com");
    release_guide(&served, "2.0.0", &["--notify"]);
    let mail = served
        .outbox()
        .into_iter()
        .find(|text| text.contains("To: ada@example.com") && text.contains("?upgrade="))
        .expect("the upgrade offer");
    let at = mail.find("/buy/guide?upgrade=").unwrap();
    let link: String = mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/?=".contains(*c))
        .collect();
    // The server still sells 1.0.0, yet the code opens 2.0.0's checkout.
    assert!(served.body(served.get("/")).contains("version 1.0.0"));
    let checkout = served.checkout_page(&link);
    let id = checkout.rsplit('/').next().unwrap().to_owned();
    let session = served
        .runtime
        .block_on(served.sandbox().client().checkout_session(&id))
        .unwrap()
        .unwrap();
    assert_eq!(
        session.metadata.get("version").map(String::as_str),
        Some("2.0.0")
    );
}

#[test]
fn a_killed_grant_leaves_nothing_for_git_to_commit() {
    let mut served = Served::start();
    served.test.env("SHOP_FAULT", "atomic:written");
    let killed = served
        .test
        .shop(&["grant", "ada@example.com", "guide", "--no-mail"])
        .stderr_has(&["SHOP_FAULT: stopped at `atomic:written`"]);
    assert!(!killed.output.status.success());
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(served.test.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(!status.contains("tmp"), "{status}");
    // The grant, run again, is made.
    served.test.env("SHOP_FAULT", "");
    served
        .test
        .shop(&["grant", "ada@example.com", "guide", "--no-mail"])
        .success();
}

//! The first promise of a download link, tried as an attacker and as a new
//! buyer would: whatever mix of GET, HEAD and `Range` one purchase sends,
//! it gets at most its limit's worth of a file; an honest download that
//! broke resumes for free; links end; the server cannot be held by idle
//! connections; and nothing the server logs can be replayed.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rand::{RngExt as _, SeedableRng};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::served::{FILES, Served, TOKEN_SECRET, download_page_of};

/// Sends a request and reads its whole body.
fn fetch(
    served: &Served,
    method: Method,
    url: &str,
    range: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    served.runtime.block_on(async {
        let mut request = served.http.request(method, url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.bytes().await.unwrap().to_vec())
    })
}

/// `n of 5` left for file `name`, as the download page says.
fn left(served: &Served, page: &str, name: &str) -> String {
    let html = served.body(served.get(page));
    let row = html
        .split("<tr>")
        .find(|row| row.contains(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{html}"));
    let start = row.find("data-left=\"").unwrap() + "data-left=\"".len();
    let cell = &row[start..];
    let text = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
    text.to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn ranges_cannot_rebuild_a_file_past_the_limit() {
    let served = Served::start();
    let page = served.buy("mallory@example.com");
    // The large file is streamed from disk, the small one from memory.
    for (index, (name, size)) in FILES.iter().enumerate() {
        let url = format!("{}{page}/{name}", served.url);
        let (status, _, first) = fetch(&served, Method::GET, &url, Some("bytes=0-0"));
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        let mut received = first.len();
        let mut copies = 0;
        for _ in 0..20 {
            let (status, headers, body) = fetch(&served, Method::GET, &url, Some("bytes=1-"));
            if status == StatusCode::GONE {
                break;
            }
            assert_eq!(status, StatusCode::PARTIAL_CONTENT);
            assert_eq!(
                headers["content-range"],
                format!("bytes 1-{}/{size}", size - 1).as_str()
            );
            assert!(body == served.files[index][1..], "a range differs");
            received += body.len();
            copies += 1;
        }
        // Five copies and the one file of slack a resume may use, no more.
        assert!(
            received <= 6 * size,
            "{name}: {received} bytes of a {size}-byte file"
        );
        assert!(copies >= 5, "{name}: only {copies} ranges were served");
        let (status, _, _) = fetch(&served, Method::GET, &url, None);
        assert_eq!(status, StatusCode::GONE, "{name}");
        assert_eq!(left(&served, &page, name), "0 of 5");
    }
}

#[test]
fn head_never_counts_and_answers_as_get_would() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    let size = served.files[0].len();
    for _ in 0..3 {
        let (status, headers, body) = fetch(&served, Method::HEAD, &url, None);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-length"], size.to_string().as_str());
        assert_eq!(headers["accept-ranges"], "bytes");
        assert!(headers.contains_key("etag"));
        assert!(body.is_empty());
    }
    let (status, headers, _) = fetch(&served, Method::HEAD, &url, Some("bytes=100-"));
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-length"], (size - 100).to_string().as_str());
    assert_eq!(left(&served, &page, "guide.pdf"), "5 of 5");
    let (_, get_headers, _) = fetch(&served, Method::GET, &url, None);
    let (_, head_headers, _) = fetch(&served, Method::HEAD, &url, None);
    for name in [
        "content-length",
        "content-type",
        "content-disposition",
        "etag",
        "accept-ranges",
    ] {
        assert_eq!(get_headers[name], head_headers[name], "{name}");
    }
    for _ in 0..4 {
        fetch(&served, Method::GET, &url, None);
    }
    let (status, _, _) = fetch(&served, Method::HEAD, &url, None);
    assert_eq!(status, StatusCode::GONE);
}

#[test]
fn a_killed_server_keeps_every_download_it_answered() {
    let mut served = Served::start();
    let page = served.buy("ada@example.com");
    for (name, _) in FILES {
        let url = format!("{}{page}/{name}", served.url);
        for _ in 0..3 {
            let (status, _, _) = fetch(&served, Method::GET, &url, None);
            assert_eq!(status, StatusCode::OK, "{name}");
        }
    }
    // No shutdown: what was answered must already be in the database.
    served.kill_server();
    served.launch();
    for (name, _) in FILES {
        assert_eq!(left(&served, &page, name), "2 of 5", "{name}");
    }
}

/// Reads `take` bytes of a download, then drops the connection.
fn broken_download(served: &Served, url: &str, take: usize) -> Vec<u8> {
    let address = served.url.trim_start_matches("http://");
    let path = url.trim_start_matches(&served.url);
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut body = vec![0u8; take];
    stream.read_exact(&mut body).unwrap();
    drop(stream);
    body
}

#[test]
fn a_broken_download_resumes_for_free_even_the_last() {
    // Large enough that what sits in socket buffers when a download breaks
    // (charged: the server cannot know it never arrived) is a small part.
    let mut served = Served::prepare(
        &[],
        &[("guide.pdf", 64 << 20), ("guide.epub", 1000)],
        |_| {},
    );
    served.launch();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/guide.pdf", served.url);
    let file = &served.files[0];
    let size = file.len() as u64;
    let charged = || -> u64 { served.usage(&page, "guide", "1.0.0", "guide.pdf").bytes };
    for copy in 1..=5 {
        let head = broken_download(&served, &url, 1024 * 1024);
        // The unsent rest is given back (what sat in buffers is not).
        served.wait_for("the unsent bytes to be given back", || {
            charged() < (copy - 1) * size + size / 2
        });
        let (status, _, rest) = fetch(
            &served,
            Method::GET,
            &url,
            Some(&format!("bytes={}-", head.len())),
        );
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "copy {copy}");
        let mut whole = head;
        whole.extend_from_slice(&rest);
        assert!(whole == *file, "copy {copy} differs when put together");
        assert_eq!(
            left(&served, &page, "guide.pdf"),
            format!("{} of 5", 5 - copy)
        );
    }
    let (status, _, _) = fetch(&served, Method::GET, &url, None);
    assert_eq!(status, StatusCode::GONE);
}

#[test]
fn no_random_sequence_of_requests_beats_the_limit() {
    let served = Served::start();
    let page = served.buy("eve@example.com");
    let url = format!("{}{page}/guide.epub", served.url);
    let size = served.files[1].len();
    let mut random = rand::rngs::StdRng::seed_from_u64(11);
    let mut received = 0;
    for _ in 0..80 {
        let range = match random.random_range(0..4) {
            0 => None,
            1 => Some(format!("bytes={}-", random.random_range(0..size + 10))),
            2 => {
                let start = random.random_range(0..size);
                Some(format!(
                    "bytes={start}-{}",
                    start + random.random_range(0..size)
                ))
            }
            _ => Some(format!("bytes=-{}", random.random_range(1..size * 2))),
        };
        let method = if random.random_bool(0.2) {
            Method::HEAD
        } else {
            Method::GET
        };
        let (status, _, body) = fetch(&served, method, &url, range.as_deref());
        assert!(
            [
                StatusCode::OK,
                StatusCode::PARTIAL_CONTENT,
                StatusCode::GONE,
                StatusCode::RANGE_NOT_SATISFIABLE
            ]
            .contains(&status),
            "{status}"
        );
        if status.is_success() {
            received += body.len();
        }
    }
    assert!(
        received <= 6 * size,
        "{received} bytes of a {size}-byte file"
    );
}

#[test]
fn files_named_with_spaces_and_letters_of_any_language_download() {
    let mut served = Served::prepare(&[], &[("my book.pdf", 2000), ("Café.epub", 1500)], |_| {});
    served.launch();
    let page = served.buy("ada@example.com");
    // minijinja escapes `/` in attribute values.
    let html = served.body(served.get(&page)).replace("&#x2f;", "/");
    for (index, (name, encoded)) in [
        ("my book.pdf", "my%20book.pdf"),
        ("Café.epub", "Caf%C3%A9.epub"),
    ]
    .into_iter()
    .enumerate()
    {
        let href = format!("{page}/{encoded}");
        assert!(html.contains(&href), "the page lacks {href}:\n{html}");
        let (status, headers, body) =
            fetch(&served, Method::GET, &format!("{}{href}", served.url), None);
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(body == served.files[index], "{name} differs");
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.ends_with(&format!("filename*=UTF-8''{encoded}")),
            "{disposition}"
        );
    }
}

#[test]
fn an_old_thanks_address_asks_for_an_email_instead() {
    let mut served = Served::start();
    let text = served.test.read("products/guide.toml");
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("payment_link_url = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let page = served.buy("ada@example.com");
    let session = served.session_of(&page);
    let thanks = format!("/thanks?session_id={session}");
    // Within the hour, the thanks page opens the downloads again.
    let again = served.thanks_page(&session);
    assert!(download_page_of(&again).starts_with("/d/"));
    let _ = link;
    served.stop_server();
    served.test.env("SHOP_NOW", &(now() + 2 * 3600).to_string());
    served.launch();
    let later = served.get(&thanks);
    assert_eq!(later.status(), StatusCode::SEE_OTHER);
    assert_eq!(later.headers()["location"], "/lost?expired=1");
    let form = served.body(served.get("/lost?expired=1"));
    assert!(form.contains("Enter your address"), "{form}");
}

#[test]
fn unsubscribing_takes_a_button_not_a_visit() {
    let served = Served::start();
    let key = shop::tokens::Key::new(
        shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
    );
    let page = served.buy("ada@example.com");
    let link = shop::tokens::unsubscribe_link(&served.url, &key, &served.session_of(&page), now());
    // The link is opaque: its token names the purchase, not the address.
    let token = link.rsplit('/').next().unwrap();
    let payload = token.split('.').next().unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&payload).contains("ada"),
        "{}",
        String::from_utf8_lossy(&payload)
    );
    // A mail scanner following the link unsubscribes nobody.
    for _ in 0..3 {
        let visit = served.get(&link);
        assert_eq!(visit.status(), StatusCode::OK);
        let html = served.body(visit);
        assert!(html.contains("<form method=\"post\">"), "{html}");
    }
    let opt_outs = || {
        let mut all: Vec<String> = served
            .runtime
            .block_on(served.state().opt_outs())
            .unwrap()
            .into_iter()
            .collect();
        all.sort();
        all
    };
    assert!(opt_outs().is_empty());
    // The button, or a mail client's RFC 8058 one-click POST.
    let posted = served
        .runtime
        .block_on(
            served
                .http
                .post(&link)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send(),
        )
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(opt_outs(), ["ada@example.com"]);
    // A link mailed before links named the purchase (it named the
    // address) still works.
    let before = shop::tokens::sign(
        &key,
        &shop::tokens::Claims {
            purchase: format!("{}grace@example.com", shop::tokens::UNSUBSCRIBE),
            expires: now() + 3600,
        },
    );
    let posted = served
        .runtime
        .block_on(
            served
                .http
                .post(format!("{}/unsubscribe/{before}", served.url))
                .send(),
        )
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(opt_outs().len(), 2);
}

/// Asks `/lost` for `email` as `client` (behind the proxy), with `origin`:
/// the answer's status and page.
fn ask_lost(
    served: &Served,
    email: &str,
    client: &str,
    origin: Option<&str>,
) -> (StatusCode, String) {
    let form = shop::stripe::Form::new().field("email", email);
    let mut request = served
        .http
        .post(format!("{}/lost", served.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", client)
        .body(form.encode());
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    let response = served.runtime.block_on(request.send()).unwrap();
    let status = response.status();
    (status, served.body(response))
}

#[test]
fn lost_is_same_origin_tells_nobody_who_bought_and_limits_real_clients() {
    // Look-ups on a schedule longer than the test: what a request does is
    // all that happens while the server runs.
    let mut served = Served::prepare(&[("SHOP_LOST_EVERY_SECONDS", "3600")], FILES, |test| {
        let settings = test.read("shop.toml").replace(
            "trusted_proxies = []",
            "trusted_proxies = [\"127.0.0.1\"]\nlost_limit = \"20/hour\"",
        );
        test.write("shop.toml", &settings);
        // Forty buyers in the ledger.
        let lines: Vec<String> = (0..40)
            .map(|i| {
                json!({"id": format!("cs_test_ledger{i:02}"), "created": "2026-11-02T10:00:00Z",
                    "email": format!("buyer{i}@example.com"), "product": "guide", "version": "1.0.0",
                    "amount": 2900, "currency": "usd", "payment_intent": format!("pi_ledger{i}"),
                    "status": "paid"})
                .to_string()
            })
            .collect();
        test.write("purchases/2026-11.jsonl", &(lines.join("\n") + "\n"));
    });
    served.launch();
    let base = served.url.clone();
    let queued = |served: &Served| served.queued("links").len();
    // Another site's form posting here mails nobody.
    let (status, _) = ask_lost(
        &served,
        "buyer0@example.com",
        "198.51.100.1",
        Some("https://evil.example"),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Known and unknown addresses get the same page, and a request does
    // the same work for both: it looks nothing up and queues nothing.
    let mut pages = std::collections::BTreeSet::new();
    for i in 0..30 {
        for (email, client) in [
            (format!("buyer{i}@example.com"), format!("203.0.113.{i}")),
            (
                format!("nobody{i}@example.com"),
                format!("203.0.113.{}", 100 + i),
            ),
        ] {
            let (status, page) = ask_lost(&served, &email, &client, Some(&base));
            assert_eq!(status, StatusCode::OK);
            pages.insert(page);
        }
    }
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(queued(&served), 0);

    // The limit is per real client: one behind the proxy is stopped,
    // another is not.
    for i in 0..20 {
        let (status, _) = ask_lost(
            &served,
            &format!("someone{i}@example.com"),
            "1.2.3.4, 198.51.100.50",
            Some(&base),
        );
        assert_eq!(status, StatusCode::OK, "request {i}");
    }
    let (status, _) = ask_lost(
        &served,
        "someone-else@example.com",
        "5.6.7.8, 198.51.100.50",
        Some(&base),
    );
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = ask_lost(&served, "buyer39@example.com", "198.51.100.51", Some(&base));
    assert_eq!(status, StatusCode::OK);

    // The look-up comes later (here: when the server stops), and mails
    // exactly the addresses that bought.
    assert_eq!(queued(&served), 0);
    served.stop_server();
    let mut mailed = served.queued("links");
    mailed.sort();
    let mut expected: Vec<String> = (0..30)
        .chain([39])
        .map(|i| format!("buyer{i}@example.com"))
        .collect();
    expected.sort();
    assert_eq!(mailed, expected);
}

#[test]
fn idle_and_slow_connections_cannot_hold_the_server() {
    let mut served = Served::prepare(&[], FILES, |_| {});
    served.wrapper = ["sh", "-c", "ulimit -n 64 && exec \"$0\" \"$@\""]
        .map(String::from)
        .to_vec();
    served.serve_args = ["--header-timeout", "1s", "--idle-timeout", "2s"]
        .map(String::from)
        .to_vec();
    served.launch();
    let address = served.url.trim_start_matches("http://").to_owned();
    // More connections than the server has descriptors: silent ones, and
    // ones that send half a request line.
    let mut idle = Vec::new();
    for index in 0..120 {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        if index % 3 == 0 {
            stream.write_all(b"GET /d/").unwrap();
        }
        idle.push(stream);
    }
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = format!("{}/healthz", served.url);
    let answer = served
        .runtime
        .block_on(async { client.get(url).send().await });
    assert!(
        answer.as_ref().is_ok_and(|a| a.status() == StatusCode::OK),
        "{answer:?} after {:?}",
        started.elapsed()
    );
    // The silent ones were closed.
    let mut first = idle.remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buffer = [0u8; 16];
    assert!(matches!(first.read(&mut buffer), Ok(0) | Err(_)));
    served.stop_server();
    assert!(
        served.log.lock().unwrap().contains("open-file limit: 64"),
        "{}",
        served.log.lock().unwrap()
    );
}

#[test]
fn logs_hold_no_token_and_no_address_at_any_level() {
    let served = Served::start_with(&[("SHOP_LOG", "trace")]);
    let mut served = served;
    let page = served.buy("ada@example.com");
    let token = page.trim_start_matches("/d/").to_owned();
    fetch(
        &served,
        Method::GET,
        &format!("{}{page}/guide.epub", served.url),
        None,
    );
    fetch(
        &served,
        Method::HEAD,
        &format!("{}{page}/guide.pdf", served.url),
        None,
    );
    served.get(&format!("{page}/nothing.txt"));
    let key = shop::tokens::Key::new(
        shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
    );
    let unsubscribe =
        shop::tokens::unsubscribe_link(&served.url, &key, &served.session_of(&page), now());
    served.get(&unsubscribe);
    served
        .runtime
        .block_on(served.http.post(&unsubscribe).send())
        .unwrap();
    ask_lost(&served, "ada@example.com", "198.51.100.9", None);
    served.wait_for("the lost-link mail", || !served.queued("links").is_empty());
    served.stop_server();
    let log = served.log.lock().unwrap().clone();
    let unsubscribe_token = unsubscribe.rsplit('/').next().unwrap();
    for secret in [
        token.as_str(),
        unsubscribe_token,
        "ada@example.com",
        "ada%40example.com",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is no terminal"
    );
    // The shop working, line by line, with the purchase named.
    let session = served.session_of(&page);
    assert!(
        log.lines()
            .any(|line| line.contains("download") && line.contains(&session)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("sale of `guide` 1.0.0") && line.contains(&session)),
        "{log}"
    );
}

#[test]
fn a_refund_that_comes_before_the_sale_sends_no_receipt() {
    let served = Served::start();
    let secret = served.sandbox().webhook_secret.clone();
    let post = |event: serde_json::Value| {
        let body = serde_json::to_vec(&event).unwrap();
        let signature = shop::stripe::webhook::sign(&body, &secret, now());
        let response = served
            .runtime
            .block_on(
                served
                    .http
                    .post(format!("{}/stripe/webhook", served.url))
                    .header("Stripe-Signature", signature)
                    .body(body)
                    .send(),
            )
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    };
    post(
        json!({"id": "evt_test_refund_first", "object": "event", "type": "charge.refunded", "created": now(),
        "data": {"object": {"id": "ch_test_early", "object": "charge", "payment_intent": "pi_test_early",
            "refunded": true, "disputed": false, "amount": 2900, "amount_refunded": 2900, "currency": "usd"}}}),
    );
    post(
        json!({"id": "evt_test_sale_second", "object": "event", "type": "checkout.session.completed", "created": now(),
        "data": {"object": {"id": "cs_test_early", "object": "checkout.session", "created": now(),
            "expires_at": now() + 3600, "status": "complete", "payment_status": "paid",
            "customer_details": {"email": "early@example.com"},
            "metadata": {"product": "guide", "version": "1.0.0"}, "payment_intent": "pi_test_early"}}}),
    );
    let state = served.state();
    let early = served.runtime.block_on(state.purchase("cs_test_early"));
    assert!(early.unwrap().is_some());
    assert!(
        served
            .mail_queue()
            .iter()
            .all(|mail| mail.purchase.as_deref() != Some("cs_test_early"))
    );
}

#[test]
fn support_cannot_mint_a_link_for_a_refund_by_accident() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    let session = served.session_of(&page);
    served.refund(&session);
    served.wait_for("the refund to close downloads", || {
        served.get(&format!("{page}/guide.epub")).status() == StatusCode::GONE
    });
    served
        .test
        .shop(&["token", &session])
        .code(1)
        .stderr_is(&format!(
            "error: the purchase `{session}` is refunded or disputed\n\
         hint: its downloads are closed; pass `--force` to reopen them and mint a link anyway\n"
        ));
    let link = served
        .test
        .shop(&["token", &session, "--force"])
        .success()
        .stdout();
    assert_eq!(served.get(link.trim()).status(), StatusCode::OK);
}

#[test]
fn every_answer_refuses_framing_and_sniffing() {
    let served = Served::start();
    let page = served.buy("ada@example.com");
    for path in [
        page.clone(),
        format!("{page}/guide.epub"),
        "/lost".to_owned(),
        "/nothing".to_owned(),
        "/healthz".to_owned(),
    ] {
        let response = served.get(&path);
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    let page_headers = served.get(&page);
    assert_eq!(page_headers.headers()["referrer-policy"], "no-referrer");
}

#[test]
fn anonymous_visitors_cannot_make_the_server_hammer_stripe() {
    let served = Served::start();
    let sessions_made = || {
        let requests =
            served
                .runtime
                .block_on(served.sandbox().control(Method::GET, "requests", json!({})));
        requests
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/v1/checkout/sessions")
            .count()
    };
    let before = sessions_made();
    // A Buy costs the server nothing: every click goes to the payment
    // link, none is refused, and none makes a session at Stripe.
    let link = served.payment_link();
    for _ in 0..50 {
        let answer = served.get("/buy/guide");
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        assert_eq!(answer.headers()["location"], link.as_str());
    }
    assert_eq!(sessions_made(), before);

    // Stripe rate-limiting every call: one call, a 503 that says when to
    // come back.
    served.runtime.block_on(served.sandbox().control(
        Method::POST,
        "faults",
        json!({"rate": 1.0, "status": 429}),
    ));
    let answer = served.get("/thanks?session_id=cs_test_random");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers().contains_key("retry-after"));
    let requests =
        served
            .runtime
            .block_on(served.sandbox().control(Method::GET, "requests", json!({})));
    let calls = requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("cs_test_random"))
        })
        .count();
    assert_eq!(calls, 1);
}

/// Follows a 302 to GitHub's CDN and reads the file there.
fn from_cdn(served: &Served, location: &str) -> Vec<u8> {
    served.runtime.block_on(async {
        let response = served.http.get(location).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the CDN refused {location}"
        );
        response.bytes().await.unwrap().to_vec()
    })
}

#[test]
fn a_failing_github_costs_no_download_and_says_when_to_come_back() {
    use crate::support::github::{Faults, Refusal};
    let mut served = Served::prepare_on_github(&[("my book.pdf", 3000), ("guide.epub", 1000)]);
    served.launch();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/my%20book.pdf", served.url);
    let github = served.github.as_ref().unwrap();
    let asset_requests = Some("/releases/assets/".to_owned());

    // GitHub's secondary limit, its 429, its primary limit, and two 502s
    // in a row (the one quick retry fails too): nothing is counted, and
    // the buyer is told when to come back.
    for (refusals, retry_after) in [
        (
            vec![Refusal::Secondary {
                retry_after: Some(30),
            }],
            Some(30),
        ),
        (vec![Refusal::TooMany { retry_after: 2 }], Some(2)),
        (vec![Refusal::Primary { reset_in: 120 }], Some(121)),
        (vec![Refusal::BadGateway, Refusal::BadGateway], None),
    ] {
        github.set_faults(Faults {
            refusals,
            refusals_for: asset_requests.clone(),
            ..Faults::default()
        });
        let (status, headers, _) = fetch(&served, Method::GET, &url, None);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let told: Option<u64> = headers
            .get("retry-after")
            .map(|value| value.to_str().unwrap().parse().unwrap());
        match (retry_after, told) {
            (Some(expected), Some(told)) => assert!(
                told <= expected && told + 3 >= expected,
                "Retry-After {told}, GitHub said {expected}"
            ),
            (None, _) => {}
            (Some(expected), None) => panic!("no Retry-After; GitHub said {expected}"),
        }
        assert_eq!(left(&served, &page, "my book.pdf"), "5 of 5");
    }
    // One 502 is retried at once: the buyer does not see it.
    github.set_faults(Faults {
        refusals: vec![Refusal::BadGateway],
        refusals_for: asset_requests.clone(),
        ..Faults::default()
    });
    let (status, headers, _) = fetch(&served, Method::GET, &url, None);
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        from_cdn(&served, headers["location"].to_str().unwrap()),
        served.files[0]
    );
    assert_eq!(left(&served, &page, "my book.pdf"), "4 of 5");

    // GitHub healthy again: the other four downloads work, then no more.
    github.set_faults(Faults::default());
    for _ in 0..4 {
        let (status, headers, _) = fetch(&served, Method::GET, &url, None);
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(
            from_cdn(&served, headers["location"].to_str().unwrap()),
            served.files[0]
        );
    }
    let asked = github.count("get_asset");
    let (status, _, _) = fetch(&served, Method::GET, &url, None);
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        github.count("get_asset"),
        asked,
        "a used-up link asked GitHub"
    );
    // A grant reopens it.
    let session = served.session_of(&page);
    served
        .test
        .shop(&["token", &session, "--grant", "1"])
        .success();
    let (status, _, _) = fetch(&served, Method::GET, &url, None);
    assert_eq!(status, StatusCode::FOUND, "a granted download was refused");
}

#[test]
fn github_urls_are_reused_for_their_lifetime_and_bodies_stream_through() {
    use crate::support::github::Faults;
    let mut served = Served::prepare_on_github(&[("my book.pdf", 3000), ("guide.epub", 1000)]);
    served.launch();
    let page = served.buy("ada@example.com");
    let url = format!("{}{page}/my%20book.pdf", served.url);
    let github = served.github.as_ref().unwrap();

    // GitHub's URLs live five minutes: one is asked for and given twice.
    let before = github.count("get_asset");
    let first = fetch(&served, Method::GET, &url, None).1["location"].clone();
    let second = fetch(&served, Method::GET, &url, None).1["location"].clone();
    assert_eq!(first, second);
    assert_eq!(github.count("get_asset"), before + 1);

    // A URL that lives less than the margin a buyer needs is not reused.
    let page = served.buy("grace@example.com");
    let url = format!("{}{page}/guide.epub", served.url);
    github.set_cdn_lifetime(30);
    let before = github.count("get_asset");
    for _ in 0..2 {
        let (status, headers, _) = fetch(&served, Method::GET, &url, None);
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(
            from_cdn(&served, headers["location"].to_str().unwrap()),
            served.files[1]
        );
    }
    assert_eq!(github.count("get_asset"), before + 2);

    // GitHub's CDN refuses a request that carries a token.
    let (_, headers, _) = fetch(&served, Method::GET, &url, None);
    let refused = served.runtime.block_on(async {
        served
            .http
            .get(headers["location"].to_str().unwrap())
            .bearer_auth("ghs_serve")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(refused, StatusCode::BAD_REQUEST);

    // When GitHub answers with the bytes (the epub's URL is not cached),
    // they are streamed through, and counted.
    github.set_faults(Faults {
        download_bodies: true,
        ..Faults::default()
    });
    let page = served.buy("lin@example.com");
    let url = format!("{}{page}/guide.epub", served.url);
    let (status, headers, body) = fetch(&served, Method::GET, &url, None);
    assert_eq!(status, StatusCode::OK);
    assert!(body == served.files[1]);
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.ends_with("filename*=UTF-8''guide.epub"),
        "{disposition}"
    );
    assert_eq!(left(&served, &page, "guide.epub"), "4 of 5");
}

#[test]
fn a_github_token_that_cannot_read_is_reported_at_start_and_by_the_deep_health_check() {
    let mut served = Served::prepare_on_github(&[("guide.pdf", 3000)]);
    served.test.env("GITHUB_TOKEN", "ghp_expired");
    served.launch();
    assert_eq!(served.get("/healthz").status(), StatusCode::OK);
    let deep = served.get("/healthz?deep=1");
    assert_eq!(deep.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = served.body(deep);
    assert!(
        text.contains("`GITHUB_TOKEN` cannot read `author/book-assets`"),
        "{text}"
    );
    assert!(!text.contains("ghp_expired"), "{text}");
    served.wait_for("the start-up check's warning", || {
        served
            .log
            .lock()
            .unwrap()
            .contains("`GITHUB_TOKEN` cannot read `author/book-assets`")
    });

    // With the right token, the deep check is clean.
    let mut served = Served::prepare_on_github(&[("guide.pdf", 3000)]);
    served.launch();
    let deep = served.get("/healthz?deep=1");
    let status = deep.status();
    assert_eq!(status, StatusCode::OK, "{}", served.body(deep));
}

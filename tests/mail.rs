//! Mail through a real SMTP server process (Python's aiosmtpd, installed by
//! scripts/setup) on loopback: receipts sent by `shop serve`, also after
//! the mail server was down; update notices by `shop notify`, once each,
//! across a kill and a re-run, honouring the update policy and opt-outs;
//! templates overridden and broken.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::Test;
use crate::support::served::{Served, TOKEN_SECRET};

/// An aiosmtpd server storing every message in a maildir.
struct SmtpServer {
    process: Option<Child>,
    port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> SmtpServer {
        let mut server = SmtpServer {
            process: None,
            port,
            maildir: maildir.to_owned(),
        };
        server.resume();
        server
    }

    fn resume(&mut self) {
        let process = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/setup installs it)");
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start (is it installed? scripts/setup installs it)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message received, decoded enough to read.
    fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(folder)) else {
                continue;
            };
            for entry in entries {
                let raw = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                messages.push(decode_quoted_printable(&raw));
            }
        }
        messages
    }

    fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} messages arrived, not {count}",
                messages.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(
                std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_settings(test: &Test, port: u16) {
    let settings = test.read("shop.toml").replace("transport = \"file\"", "transport = \"smtp\"").replace(
        "host = \"\"\nport = 587\n# \"starttls\" (port 587), \"tls\" (port 465) or \"none\" (a server on this machine).\nsecurity = \"starttls\"",
        &format!("host = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\""),
    );
    assert!(settings.contains(&format!("port = {port}")), "{settings}");
    test.write("shop.toml", &settings);
}

/// The first link in a message that starts with `prefix`.
fn link(message: &str, prefix: &str) -> String {
    let start = message
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in\n{message}"));
    message[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn receipts_survive_a_mail_server_that_was_down_and_notices_go_once() {
    let port = free_port();
    let served = Served::start_with_store(&[("SHOP_MAIL_RETRY_SECONDS", "1")], |test| {
        smtp_settings(test, port)
    });
    // The mail server is down when the purchase happens.
    let page = served.buy("ada@example.com");
    served.wait_for("a failed attempt", || {
        served
            .query("SELECT attempts FROM mail_queue WHERE kind = 'receipt'")
            .first()
            .is_some_and(|row| row[0] != "Integer(0)")
    });
    // It comes up: the queued receipt is delivered, and nothing is lost.
    let maildir = served.test.root().join("maildir");
    let smtp = SmtpServer::start(port, &maildir);
    let messages = smtp.wait_for(1);
    let receipt = &messages[0];
    assert_eq!(header(receipt, "To"), Some("ada@example.com"));
    assert_eq!(
        header(receipt, "Subject"),
        Some("Your copy of The Field Guide")
    );
    assert!(
        header(receipt, "Message-ID").is_some_and(|id| id.starts_with("<receipt.cs_test_")),
        "{receipt}"
    );
    assert!(
        receipt.contains("Content-Type: text/plain") && receipt.contains("Content-Type: text/html"),
        "{receipt}"
    );
    let download = link(receipt, &format!("{}/d/", served.url));
    assert_eq!(
        served.get(&download).status(),
        StatusCode::OK,
        "the receipt's link does not work"
    );
    served.wait_for("the receipt to be marked sent", || {
        served
            .query("SELECT sent FROM mail_queue WHERE sent IS NULL")
            .is_empty()
    });
    let _ = page;

    // Version 1.1.0: one notice to the buyer, with a working link and an unsubscribe link.
    let build = served.test.root().join("build");
    let files: Vec<String> = ["guide.pdf", "guide.epub"]
        .iter()
        .map(|n| build.join(n).to_str().unwrap().to_owned())
        .collect();
    served
        .test
        .shop(&["release", "guide", "1.1.0", &files[0], &files[1]])
        .success();
    served.test.shop(&["sync", "-q"]).success();
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--dry-run"])
        .success()
        .stdout_has(&["ada@example.com  (bought 1.0.0"]);
    served
        .test
        .shop(&["notify", "guide", "1.1.0"])
        .success()
        .stdout_has(&["sent 1 notice about The Field Guide 1.1.0"]);
    let messages = smtp.wait_for(2);
    let notice = messages
        .iter()
        .find(|m| header(m, "Subject") == Some("The Field Guide 1.1.0 is out"))
        .unwrap();
    let unsubscribe = header(notice, "List-Unsubscribe")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    assert!(
        unsubscribe.starts_with(&format!("{}/unsubscribe/", served.url)),
        "{unsubscribe}"
    );
    let download = link(notice, &format!("{}/d/", served.url));
    // The running server picks up the release within seconds.
    served.wait_for("the server to serve 1.1.0", || {
        served
            .body(served.get(&download))
            .contains("Version <strong>1.1.0</strong>")
    });
    // Again: nobody left to tell; the notice is in git.
    served
        .test
        .shop(&["notify", "guide", "1.1.0"])
        .success()
        .stderr_has(&["nobody to tell", "1 already told"]);
    assert!(
        served
            .test
            .read("notices/guide-1.1.0.jsonl")
            .contains("\"email\":\"ada@example.com\"")
    );

    // The buyer opts out with the one-click POST (RFC 8058): the next
    // version's notice skips them.
    let opted_out = served
        .runtime
        .block_on(
            served
                .http
                .post(&unsubscribe)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send(),
        )
        .unwrap();
    assert_eq!(opted_out.status(), StatusCode::OK);
    served
        .test
        .shop(&["release", "guide", "1.2.0", &files[0], &files[1]])
        .success();
    served
        .test
        .shop(&["notify", "guide", "1.2.0"])
        .success()
        .stderr_has(&["nobody to tell", "1 opted out"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.messages().len(), 2);
    let _ = TOKEN_SECRET;
}

/// Messages per recipient among those with this subject.
fn per_recipient(messages: &[String], subject: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for message in messages
        .iter()
        .filter(|m| header(m, "Subject") == Some(subject))
    {
        *counts
            .entry(header(message, "To").unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn notices_follow_the_policy_and_go_once_across_a_kill() {
    let port = free_port();
    let served = Served::start_with_store(&[], |test| smtp_settings(test, port));
    let smtp = SmtpServer::start(port, &served.test.root().join("maildir"));
    let price = served
        .test
        .read("products/guide.toml")
        .lines()
        .find_map(|l| l.strip_prefix("stripe_price = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let seed = |count: u64, version: &str, start: i64| {
        let body = serde_json::json!({"price": price, "count": count, "start": start, "step": 60, "events": false,
            "metadata": {"product": "guide", "version": version}});
        served.runtime.block_on(
            served
                .sandbox()
                .control(reqwest::Method::POST, "seed", body),
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let buyers = seed(30, "1.0.0", now - 3 * 86_400);
    seed(3, "0.9.0", now - 4 * 86_400);
    // A refunded buyer is not told.
    let refunded = buyers["ids"][4].as_str().unwrap().to_owned();
    let client = served.sandbox().client();
    served.runtime.block_on(async {
        let session = client.checkout_session(&refunded).await.unwrap().unwrap();
        client
            .create_refund(
                session.payment_intent.as_deref().unwrap(),
                None,
                &shop::stripe::IdempotencyKey::random(),
            )
            .await
            .unwrap();
    });
    served.test.shop(&["sync", "-q"]).success();
    let build = served.test.root().join("build");
    let files: Vec<String> = ["guide.pdf", "guide.epub"]
        .iter()
        .map(|n| build.join(n).to_str().unwrap().to_owned())
        .collect();
    served
        .test
        .shop(&["release", "guide", "1.1.0", &files[0], &files[1]])
        .success();

    // Stopped part-way, then run again: every entitled buyer exactly once.
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    command
        .args(["notify", "guide", "1.1.0", "--rate", "20/s"])
        .current_dir(served.test.path())
        .env_clear();
    for (key, value) in served.test.environment() {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // Stopped as Ctrl-C or a service manager stops it: the message in flight
    // is finished and recorded.
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an interrupted notify reports it");
    let partial = per_recipient(&smtp.messages(), "The Field Guide 1.1.0 is out").len();
    assert!(
        partial > 0 && partial < 29,
        "the kill did not land part-way ({partial} sent)"
    );
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"])
        .success()
        .stdout_has(&[&format!("sent {} notices", 29 - partial)]);
    std::thread::sleep(Duration::from_millis(300));
    let counts = per_recipient(&smtp.messages(), "The Field Guide 1.1.0 is out");
    assert_eq!(counts.len(), 29, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "someone got two notices: {counts:?}"
    );
    assert!(
        !counts.contains_key("buyer4@example.com"),
        "the refunded buyer was told"
    );
    let git = std::process::Command::new("git")
        .args(["log", "-1", "--format=%s"])
        .current_dir(served.test.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&git.stdout).starts_with("notify: guide 1.1.0"),
        "{}",
        String::from_utf8_lossy(&git.stdout)
    );

    // A broken template stops the run before anything is sent; a good one is used.
    served
        .test
        .shop(&["release", "guide", "2.0.0", &files[0], &files[1]])
        .success();
    served
        .test
        .shop(&["release", "guide", "2.1.0", &files[0], &files[1]])
        .success();
    served.test.write(
        "templates/mail/notice.txt",
        "Subject: New: {{product}} {{version}}\n\nHi {{email}},\n{{linkk}}\n",
    );
    let before = smtp.messages().len();
    served
        .test
        .shop(&["notify", "guide", "2.1.0"])
        .code(1)
        .stderr_has(&[
            "`templates/mail/notice.txt` line 4: `{{linkk}}` is not a placeholder",
            "hint:",
        ]);
    served.test.write(
        "templates/mail/notice.txt",
        "Subject: New: {{product}} {{version}}\n\nHi {{email}},\n{{link}}\n",
    );
    // Same major only: buyers of 1.x are not entitled to 2.1.0.
    served
        .test
        .shop(&["notify", "guide", "2.1.0"])
        .success()
        .stderr_has(&["nobody to tell"]);
    assert_eq!(smtp.messages().len(), before);
    let policy = served.test.read("products/guide.toml").replacen(
        "download_limit = 5\n",
        "download_limit = 5\nupdates = \"all\"\n",
        1,
    );
    served.test.write("products/guide.toml", &policy);
    served
        .test
        .shop(&["notify", "guide", "2.1.0", "--only", "buyer7@example.com"])
        .success()
        .stdout_has(&["sent 1 notice"]);
    let messages = smtp.wait_for(before + 1);
    let custom = messages
        .iter()
        .find(|m| header(m, "Subject") == Some("New: The Field Guide 2.1.0"))
        .unwrap();
    assert!(custom.contains("Hi buyer7@example.com,"), "{custom}");
    let all = served
        .test
        .shop(&["notify", "guide", "2.1.0", "--dry-run"])
        .success()
        .stdout();
    // Under `all`, every paid buyer is entitled: 29 addresses (the 0.9.0
    // buyers share theirs with 1.0.0 buyers), less the one already told.
    assert_eq!(all.lines().count(), 28, "{all}");
    assert!(
        !all.contains("buyer4@") && !all.contains("buyer7@"),
        "{all}"
    );
}

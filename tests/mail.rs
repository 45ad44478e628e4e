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
use crate::support::served::Served;

/// An aiosmtpd server storing every message in a maildir.
struct SmtpServer {
    process: Option<Child>,
    port: u16,
    maildir: PathBuf,
    /// The command line that runs it.
    command: Vec<String>,
}

/// An aiosmtpd server that takes `limit` messages, then answers every
/// other one `451` (as a provider's sending quota does) until the file
/// `gate` exists.
const REFUSING_SERVER: &str = r#"
import os, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

port, maildir, limit, gate = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]

class Refusing(Mailbox):
    taken = 0
    async def handle_DATA(self, server, session, envelope):
        if Refusing.taken >= limit and not os.path.exists(gate):
            return "451 4.7.1 Sending quota exceeded, try again later"
        Refusing.taken += 1
        return await super().handle_DATA(server, session, envelope)

Controller(Refusing(maildir), hostname="127.0.0.1", port=port).start()
threading.Event().wait()
"#;

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> SmtpServer {
        let command = [
            "python3",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
            maildir.to_str().unwrap(),
        ];
        SmtpServer::run(port, maildir, &command)
    }

    /// [`REFUSING_SERVER`] on `port`.
    fn refusing_after(port: u16, maildir: &Path, limit: u32, gate: &Path) -> SmtpServer {
        let script = maildir.with_extension("py");
        std::fs::write(&script, REFUSING_SERVER).unwrap();
        let command = [
            "python3",
            script.to_str().unwrap(),
            &port.to_string(),
            maildir.to_str().unwrap(),
            &limit.to_string(),
            gate.to_str().unwrap(),
        ];
        SmtpServer::run(port, maildir, &command)
    }

    fn run(port: u16, maildir: &Path, command: &[&str]) -> SmtpServer {
        let mut server = SmtpServer {
            process: None,
            port,
            maildir: maildir.to_owned(),
            command: command.iter().map(|part| (*part).to_owned()).collect(),
        };
        server.resume();
        server
    }

    fn resume(&mut self) {
        let process = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/setup installs it)");
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

    /// Waits until `count` messages with `subject` have arrived. (aiosmtpd's
    /// maildir handler stores a message before it answers `250`: once a
    /// `shop` run has ended, everything it sent is here, no wait needed.)
    fn wait_for_subject(&self, subject: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let arrived: usize = per_recipient(&self.messages(), subject).values().sum();
            if arrived >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{arrived} messages `{subject}` arrived, not {count}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
    let port = crate::harness::free_port();
    let served = Served::start_with_store(&[("SHOP_MAIL_RETRY_SECONDS", "1")], |test| {
        smtp_settings(test, port)
    });
    // The mail server is down when the purchase happens; the buyer's
    // download page works all the same.
    let page = served.buy("ada@example.com");
    assert_eq!(served.get(&page).status(), StatusCode::OK);
    served.wait_for("a failed attempt", || {
        served
            .mail_queue()
            .iter()
            .any(|mail| mail.kind == "receipt" && mail.attempts > 0)
    });
    // It comes up: the queued receipt is delivered, and nothing is lost.
    let maildir = served.test.root().join("maildir");
    let smtp = SmtpServer::start(port, &maildir);
    let messages = smtp.wait_for(1);
    let receipt = &messages[0];
    assert_eq!(header(receipt, "To"), Some("ada@example.com"));
    assert_eq!(
        header(receipt, "Subject"),
        Some("Your receipt from Test Books: The Field Guide 1.0.0")
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
        served.mail_queue().iter().all(|mail| mail.sent.is_some())
    });

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
    served.test.shop(&["sync", "-q"]).success().stderr_is("");
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
    assert_eq!(smtp.messages().len(), 2);
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
    let port = crate::harness::free_port();
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
    served.refund(&refunded);
    served.test.shop(&["sync", "-q"]).success().stderr_is("");
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
    let errors = served.test.root().join("notify.stderr");
    let mut child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    // Some notices out, most still to go (20 a second); a run that ends
    // before is a failure, shown with what it said.
    let deadline = Instant::now() + Duration::from_secs(20);
    while per_recipient(&smtp.messages(), "The Field Guide 1.1.0 is out")
        .values()
        .sum::<usize>()
        < 3
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "notify ended ({status}) before its third notice:\n{}",
                std::fs::read_to_string(&errors).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no third notice in 20 s:\n{}",
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
            "`templates/mail/notice.txt` line 4: `linkk` is not a value of this message",
            "hint:",
        ]);
    // A notice must say how to stop notices.
    served.test.write(
        "templates/mail/notice.txt",
        "Subject: New: {{product}} {{version}}\n\nHi {{email}},\n{{link}}\n",
    );
    served
        .test
        .shop(&["notify", "guide", "2.1.0"])
        .code(1)
        .stderr_has(&[
            "`templates/mail/notice.txt` line 1: the message does not show `{{ unsubscribe }}`",
            "hint:",
        ]);
    served.test.write(
        "templates/mail/notice.txt",
        "Subject: New: {{product}} {{version}}\n\nHi {{email}},\n{{link}}\nStop: {{unsubscribe}}\n",
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

/// A store whose `guide` 1.0.0 has `buyers` buyers in the ledger and 1.1.0
/// released, mail going to SMTP on `port`; the release's files.
fn released_to(buyers: u64, port: u16) -> (Served, Vec<String>) {
    let served = Served::start_with_store(&[], |test| smtp_settings(test, port));
    let price = served
        .test
        .read("products/guide.toml")
        .lines()
        .find_map(|l| l.strip_prefix("stripe_price = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = serde_json::json!({"price": price, "count": buyers, "start": now - 3 * 86_400, "step": 60,
        "events": false, "metadata": {"product": "guide", "version": "1.0.0"}});
    served.runtime.block_on(
        served
            .sandbox()
            .control(reqwest::Method::POST, "seed", body),
    );
    served.test.shop(&["sync", "-q"]).success().stderr_is("");
    let build = served.test.root().join("build");
    let files: Vec<String> = ["guide.pdf", "guide.epub"]
        .iter()
        .map(|n| build.join(n).to_str().unwrap().to_owned())
        .collect();
    served
        .test
        .shop(&["release", "guide", "1.1.0", &files[0], &files[1]])
        .success();
    (served, files)
}

/// The `Message-ID`s each recipient got with `subject`.
fn message_ids(
    messages: &[String],
    subject: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut ids = std::collections::BTreeMap::<String, Vec<String>>::new();
    for message in messages
        .iter()
        .filter(|m| header(m, "Subject") == Some(subject))
    {
        ids.entry(header(message, "To").unwrap_or_default().to_owned())
            .or_default()
            .push(header(message, "Message-ID").unwrap_or_default().to_owned());
    }
    ids
}

/// The number `shop notify` gives for notices in doubt, if it names any.
fn in_doubt(stderr: &str) -> Option<usize> {
    let line = stderr.lines().find(|line| line.contains(" in doubt: "))?;
    line.split_whitespace().next()?.parse().ok()
}

#[test]
fn a_mail_server_that_refuses_after_fifty_gets_every_notice_once_when_it_recovers() {
    let port = crate::harness::free_port();
    let (served, _) = released_to(60, port);
    let gate = served.test.root().join("open");
    let smtp = SmtpServer::refusing_after(port, &served.test.root().join("maildir"), 50, &gate);
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"])
        .code(1)
        .stderr_has(&[
            "10 notices could not be sent (50 were)",
            "Sending quota exceeded",
            "hint:",
        ]);
    std::fs::write(&gate, "").unwrap();
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"])
        .success()
        .stdout_has(&["sent 10 notices"]);
    let counts = per_recipient(&smtp.messages(), "The Field Guide 1.1.0 is out");
    assert_eq!(counts.len(), 60, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[test]
fn an_error_mid_run_waits_for_the_messages_in_flight_and_records_them() {
    let port = crate::harness::free_port();
    let (served, _) = released_to(40, port);
    let smtp = SmtpServer::start(port, &served.test.root().join("maildir"));
    // One buyer's address cannot be written into a message: the run stops
    // there, with others in flight.
    let month = std::fs::read_dir(served.test.path().join("purchases"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .unwrap();
    let ledger = std::fs::read_to_string(&month).unwrap();
    assert!(ledger.contains("\"buyer20@example.com\""));
    std::fs::write(
        &month,
        ledger.replace("\"buyer20@example.com\"", "\"buyer20@@example.com\""),
    )
    .unwrap();
    // (`--no-sync`: a sync would put Stripe's address back first.)
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s", "--no-sync"])
        .code(1)
        .stderr_has(&["`buyer20@@example.com` is not a mail address", "hint:"]);
    std::fs::write(&month, &ledger).unwrap();
    let rerun = served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"])
        .success();
    assert_eq!(in_doubt(&rerun.stderr()), None, "{}", rerun.stderr());
    let counts = per_recipient(&smtp.messages(), "The Field Guide 1.1.0 is out");
    assert_eq!(counts.len(), 40, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "notices sent twice: {counts:?}"
    );
}

#[test]
fn notices_in_doubt_after_a_crash_are_named_and_sent_again_with_the_same_message_id() {
    let port = crate::harness::free_port();
    let (mut served, files) = released_to(40, port);
    let smtp = SmtpServer::start(port, &served.test.root().join("maildir"));
    let subject = "The Field Guide 1.1.0 is out";

    // Stopped dead the instant the mail server accepted the tenth message,
    // before shop could write it down.
    served.test.env("SHOP_FAULT", "notify:accepted@10");
    let stopped = served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"]);
    assert_eq!(stopped.output.status.code(), None, "{}", stopped.stderr());
    served.test.env("SHOP_FAULT", "");
    let rerun = served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"])
        .success();
    let doubtful = in_doubt(&rerun.stderr()).expect("no notice in doubt was named");
    assert!(
        (1..=8).contains(&doubtful),
        "{doubtful} in doubt, with 8 in flight at most"
    );
    assert!(
        rerun
            .stderr()
            .contains("sending them again with the same Message-ID")
    );
    let ids = message_ids(&smtp.messages(), subject);
    assert_eq!(ids.len(), 40, "{ids:?}");
    let twice: Vec<&Vec<String>> = ids.values().filter(|ids| ids.len() > 1).collect();
    assert!(twice.len() <= doubtful, "{twice:?}");
    for copies in &twice {
        assert_eq!(copies.len(), 2, "{copies:?}");
        assert_eq!(copies[0], copies[1], "a copy has another Message-ID");
    }
    assert!(ids.values().all(|ids| ids.len() <= 2));

    // Killed for real during another version's run: what is in doubt is
    // named, at most the concurrency, and with --skip-in-doubt recorded
    // as sent rather than sent again.
    served
        .test
        .shop(&["release", "guide", "1.2.0", &files[0], &files[1]])
        .success();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    command
        .args(["notify", "guide", "1.2.0", "--rate", "40/s"])
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
    smtp.wait_for_subject("The Field Guide 1.2.0 is out", 5);
    child.kill().unwrap();
    child.wait().unwrap();
    let before = message_ids(&smtp.messages(), "The Field Guide 1.2.0 is out");
    assert!(
        !before.is_empty() && before.len() < 40,
        "the kill did not land part-way ({} sent)",
        before.len()
    );
    let rerun = served
        .test
        .shop(&[
            "notify",
            "guide",
            "1.2.0",
            "--rate",
            "1000/s",
            "--skip-in-doubt",
        ])
        .success();
    let doubtful = in_doubt(&rerun.stderr()).unwrap_or(0);
    assert!(doubtful <= 8, "{doubtful} in doubt");
    if doubtful > 0 {
        assert!(
            rerun.stderr().contains("recording them as sent"),
            "{}",
            rerun.stderr()
        );
    }
    let ids = message_ids(&smtp.messages(), "The Field Guide 1.2.0 is out");
    assert!(ids.values().all(|ids| ids.len() == 1), "{ids:?}");
    assert!(
        ids.len() + doubtful >= 40,
        "{} told, {doubtful} in doubt",
        ids.len()
    );
}

#[test]
fn a_grant_is_committed_mailed_once_downloads_and_hears_of_updates() {
    let port = crate::harness::free_port();
    let (mut served, files) = released_to(2, port);
    let smtp = SmtpServer::start(port, &served.test.root().join("maildir"));
    let store = served.test.path().to_owned();
    let git_log = |count: &str| {
        let out = Command::new("git")
            .args(["log", "-n", count, "--format=%s"])
            .current_dir(&store)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // Stopped right after the grant was committed: no mail yet.
    let give = [
        "grant",
        "reviewer@example.com",
        "guide",
        "--version",
        "1.0.0",
    ];
    served.test.env("SHOP_FAULT", "grant:recorded");
    let stopped = served
        .test
        .shop(&[&give[..], &["--note", "review copy, Valley Journal"]].concat());
    assert_eq!(
        stopped.output.status.code(),
        None,
        "not stopped: {}",
        stopped.stderr()
    );
    served.test.env("SHOP_FAULT", "");
    assert!(
        smtp.messages().is_empty(),
        "mailed before the grant was safe"
    );
    assert_eq!(git_log("1"), "grant: guide 1.0.0\n", "{}", stopped.stderr());
    // Run again: the same grant is mailed, not a second one made.
    let given = served
        .test
        .shop(&[&give[..], &["--json"]].concat())
        .success()
        .json();
    let id = given["grant"].as_str().unwrap().to_owned();
    assert!(id.starts_with("gr_"), "{given}");
    assert_eq!(given["mailed"], true, "{given}");
    let grants = served.test.read("purchases/grants.jsonl");
    assert_eq!(grants.lines().count(), 1, "{grants}");
    let grant: serde_json::Value = serde_json::from_str(grants.trim()).unwrap();
    assert_eq!(grant["id"], id.as_str());
    assert_eq!(grant["status"], "granted");
    assert_eq!(grant["amount"], 0);
    assert_eq!(grant["note"], "review copy, Valley Journal");
    assert!(grant["mailed"].is_string(), "{grant}");
    assert_eq!(
        git_log("2"),
        format!("grant: mailed {id}\ngrant: guide 1.0.0\n")
    );
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(served.test.path())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("purchases/"),
        "the ledger is left uncommitted"
    );

    // One mail, whose link downloads the files the grant entitles to.
    let messages = smtp.wait_for(1);
    assert_eq!(messages.len(), 1);
    let message = messages[0].clone();
    assert_eq!(header(&message, "To"), Some("reviewer@example.com"));
    let subject = header(&message, "Subject").unwrap_or_default();
    assert!(
        subject.starts_with("The Field Guide from ") && subject.ends_with(", for you"),
        "{subject}"
    );
    assert!(
        !message.contains("Valley Journal"),
        "the author's note was mailed"
    );
    let page_link = link(&message, &format!("{}/d/", served.url));
    let page = served.get(&page_link);
    assert_eq!(page.status(), StatusCode::OK);
    let page = served.body(page);
    assert!(page.contains("guide.pdf"), "{page}");
    let file = served.get(&format!("{page_link}/guide.pdf"));
    assert_eq!(file.status(), StatusCode::OK);
    let bytes = served.runtime.block_on(file.bytes()).unwrap();
    assert_eq!(&bytes[..], &std::fs::read(&files[0]).unwrap()[..]);

    // Given once: asking again is refused, and says how to resend.
    served.test.shop(&give).code(1).stderr_has(&[
        &format!("`reviewer@example.com` already has a copy of `guide` 1.0.0 (grant `{id}`"),
        &format!("hint: to mail the link again, run `shop token {id} --mail`"),
    ]);
    assert_eq!(served.test.read("purchases/grants.jsonl"), grants);

    // A grant hears of updates as a buyer does, and a later sync keeps it.
    served
        .test
        .shop(&["sync", "-q", "--full"])
        .success()
        .stderr_is("");
    assert_eq!(served.test.read("purchases/grants.jsonl"), grants);
    served
        .test
        .shop(&["notify", "guide", "1.1.0", "--rate", "1000/s"])
        .success()
        .stdout_has(&["sent 3 notices"]);
    let told = per_recipient(&smtp.messages(), "The Field Guide 1.1.0 is out");
    assert_eq!(told.get("reviewer@example.com"), Some(&1), "{told:?}");
    // The notice says the copy was given, not bought; a buyer's says
    // bought.
    let notices: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| header(m, "Subject") == Some("The Field Guide 1.1.0 is out"))
        .collect();
    let to = |email: &str| {
        notices
            .iter()
            .find(|m| header(m, "To") == Some(email))
            .unwrap_or_else(|| panic!("no notice to {email}"))
            .clone()
    };
    assert!(
        to("reviewer@example.com").contains("You were given The Field Guide 1.0.0"),
        "{}",
        to("reviewer@example.com")
    );
    let buyer = notices
        .iter()
        .find(|m| header(m, "To") != Some("reviewer@example.com"))
        .unwrap();
    assert!(
        buyer.contains("You bought The Field Guide 1.0.0"),
        "{buyer}"
    );
    // Nobody left to tell: `--json` still answers in JSON.
    let again = served
        .test
        .shop(&["notify", "guide", "1.1.0", "--json"])
        .success()
        .json();
    assert_eq!(
        (again["sent"].clone(), again["already_told"].clone()),
        (serde_json::json!(0), serde_json::json!(3)),
        "{again}"
    );

    // Counted apart: no money.
    let report = served.test.shop(&["report", "--json"]).success().json();
    assert_eq!(report[0]["count"], 2, "{report}");
    assert_eq!(report[0]["granted"], 1, "{report}");
    let text = served.test.shop(&["report"]).success().stdout();
    assert!(text.lines().next().unwrap().contains("GIVEN"), "{text}");
    served.stop_server();
}

#[test]
fn a_post_killed_mid_run_reaches_each_follower_once_by_a_real_mail_server() {
    let port = crate::harness::free_port();
    let mut served = Served::start_with_store(&[], |test| smtp_settings(test, port));
    let smtp = SmtpServer::start(port, &served.test.root().join("maildir"));
    let mut list = String::from("email\n");
    for n in 0..30 {
        list.push_str(&format!("reader{n}@example.com\n"));
    }
    served.test.write("list.csv", &list);
    served
        .test
        .shop(&[
            "followers",
            "import",
            "list.csv",
            "--consent",
            "came to a reading",
        ])
        .success();
    served.test.write(
        "news.md",
        "---\nsubject: A reading in Leeds\nslug: leeds\n---\nCome along.\n",
    );
    let subject = "A reading in Leeds";
    // Stopped dead the instant the mail server accepted the tenth message.
    served.test.env("SHOP_FAULT", "notify:accepted@10");
    let stopped = served.test.shop(&["post", "news.md", "--rate", "1000/s"]);
    assert_eq!(stopped.output.status.code(), None, "{}", stopped.stderr());
    served.test.env("SHOP_FAULT", "");
    let rerun = served
        .test
        .shop(&["post", "news.md", "--rate", "1000/s"])
        .success();
    let doubtful = in_doubt(&rerun.stderr()).expect("no message in doubt was named");
    assert!((1..=8).contains(&doubtful), "{doubtful} in doubt");
    let ids = message_ids(&smtp.messages(), subject);
    assert_eq!(ids.len(), 30, "{ids:?}");
    let twice: Vec<&Vec<String>> = ids.values().filter(|ids| ids.len() > 1).collect();
    assert!(twice.len() <= doubtful, "{twice:?}");
    for copies in &twice {
        assert_eq!(copies.len(), 2, "{copies:?}");
        assert_eq!(copies[0], copies[1], "a copy has another Message-ID");
    }
    // Each message is a list's, with its one-click way out.
    let message = smtp
        .messages()
        .into_iter()
        .find(|m| header(m, "Subject") == Some(subject))
        .unwrap();
    assert!(header(&message, "List-Id").is_some_and(|id| id.starts_with("<posts.")));
    assert_eq!(
        header(&message, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    // A third run sends nothing.
    served
        .test
        .shop(&["post", "news.md"])
        .success()
        .stderr_has(&["to 0 addresses (30 already sent, 0 opted out)"]);
    assert_eq!(message_ids(&smtp.messages(), subject).len(), 30);
}

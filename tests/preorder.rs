//! Pre-orders: `shop preorder` sells a version before its files exist;
//! its buyers are in the ledger; `shop release` of the version turns the
//! pre-order link off and mails each of them their link, once, also when
//! the release is stopped between its record and the mail and run again.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::served::Served;

fn git(served: &Served, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(served.test.path())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The download links (`<base>/d/<token>`) a message carries.
fn links_in(served: &Served, mail: &str) -> Vec<String> {
    let start = format!("{}/d/", served.url);
    let mut links: Vec<String> = mail
        .match_indices(&start)
        .map(|(at, _)| {
            mail[at..]
                .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    links.dedup();
    links
}

/// The messages in the outbox whose subject is `subject`, for `email`.
fn mails(served: &Served, subject: &str, email: &str) -> Vec<String> {
    served
        .outbox()
        .into_iter()
        .filter(|text| text.contains(subject) && text.contains(&format!("To: {email}")))
        .collect()
}

/// The ledger's lines, as JSON.
fn ledger(served: &Served) -> Vec<Value> {
    let dir = served.test.path().join("purchases");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".jsonl") && name != "grants.jsonl" {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            lines.extend(text.lines().map(|line| serde_json::from_str(line).unwrap()));
        }
    }
    lines
}

#[test]
fn a_preorder_sells_first_and_is_delivered_on_release_once() {
    let mut served = Served::start();
    let test = &served.test;

    // Pre-orders open: a payment link marked as one, the version recorded
    // without files, committed, not tagged.
    let opened = test
        .shop(&["preorder", "guide", "2.0.0", "--json"])
        .success();
    let opened = opened.json();
    assert_eq!(opened["preorder"], true, "{opened}");
    assert_eq!(opened["assets"], json!([]), "{opened}");
    let preorder_link = opened["payment_link_url"].as_str().unwrap().to_owned();
    let link_params = served
        .runtime
        .block_on(served.sandbox().posted("/v1/payment_links"))
        .pop()
        .unwrap();
    assert_eq!(
        link_params["metadata"],
        json!({"product": "guide", "version": "2.0.0", "preorder": "true"})
    );
    let product = test.read("products/guide.toml");
    let entry = &product[product.find("version = \"2.0.0\"").unwrap()..];
    assert!(entry.contains("preorder = true"), "{product}");
    assert!(!entry.contains("[[release.assets]]"), "{product}");
    assert_eq!(
        git(&served, &["log", "-1", "--format=%s"]),
        "preorder guide 2.0.0\n"
    );
    assert_eq!(git(&served, &["tag", "--list", "guide-v2.0.0"]), "");
    assert_eq!(git(&served, &["status", "--porcelain"]), "");
    // Again: nothing new.
    test.shop(&["preorder", "guide", "2.0.0"])
        .success()
        .stderr_has(&["guide 2.0.0 was already on pre-order; nothing was created"]);
    // Nobody is told of files that do not exist.
    test.shop(&["notify", "guide", "2.0.0"]).code(1).stderr_has(&[
        "`guide` 2.0.0 is on pre-order: its files are not out yet",
        "\nhint: `shop release guide 2.0.0 <files>` puts them out and mails every pre-order buyer their link\n",
    ]);

    // The store front takes pre-orders of 2.0.0 beside 1.0.0, on sale.
    served.wait_for("the store front to offer the pre-order", || {
        served.body(served.get("/")).contains("Pre-order")
    });
    let front = served.body(served.get("/p/guide"));
    assert!(front.contains("version 1.0.0"), "{front}");
    assert!(front.contains("href=\"/buy/guide\""), "{front}");
    assert!(front.contains("Version 2.0.0 is coming"), "{front}");
    assert!(front.contains("href=\"/buy/guide?preorder\""), "{front}");
    assert!(front.contains("on pre-order since"), "{front}");

    // Two pre-orders: one through the payment link, one through the
    // server's own checkout, which marks the session the same way.
    let thanks = served.pay(&preorder_link, "ada@example.com");
    let page = served.body(served.get(&thanks));
    assert!(page.contains("You pre-ordered"), "{page}");
    assert!(page.contains("id=\"preorder\""), "{page}");
    assert!(
        !page.contains("/d/"),
        "no download before the files: {page}"
    );
    served.pay("/buy/guide?preorder", "grace@example.com");
    served.wait_for("the pre-order receipts", || {
        mails(&served, "Your pre-order from", "ada@example.com").len() == 1
            && mails(&served, "Your pre-order from", "grace@example.com").len() == 1
    });
    let receipt = &mails(&served, "Your pre-order from", "ada@example.com")[0];
    assert!(
        receipt.contains("Version 2.0.0 is not out yet"),
        "{receipt}"
    );
    assert!(links_in(&served, receipt).is_empty(), "{receipt}");
    // A link minted for the pre-order shows what is coming, not files.
    let session = thanks.split("session_id=").nth(1).unwrap().to_owned();
    let minted = test.shop(&["token", &session]).success().stdout();
    let token_page = served.body(served.get(minted.trim()));
    assert!(
        token_page.contains("You pre-ordered version <strong>2.0.0</strong>"),
        "{token_page}"
    );

    // The files are out. The release is stopped after its record and
    // commit, before any mail: nothing is mailed, but the ledger already
    // holds both pre-orders (brought in before the record).
    let build = test.root().join("build");
    std::fs::write(build.join("guide.pdf"), b"%PDF-1.4 the second edition").unwrap();
    std::fs::write(build.join("guide.epub"), b"PK the second edition").unwrap();
    let pdf = build.join("guide.pdf").to_str().unwrap().to_owned();
    let epub = build.join("guide.epub").to_str().unwrap().to_owned();
    let release = ["release", "guide", "2.0.0", pdf.as_str(), epub.as_str()];
    served.test.env("SHOP_FAULT", "release:recorded");
    let stopped = served.test.shop(&release);
    assert_eq!(stopped.output.status.code(), None, "{}", stopped.stderr());
    served.test.env("SHOP_FAULT", "");
    let test = &served.test;
    assert!(
        mails(&served, "is out: your download", "ada@example.com").is_empty(),
        "nothing mailed before the crash point"
    );
    let lines = ledger(&served);
    let preorders: Vec<&Value> = lines
        .iter()
        .filter(|line| line["version"] == "2.0.0")
        .collect();
    assert_eq!(preorders.len(), 2, "{preorders:?}");
    assert!(
        preorders.iter().all(|line| line["preorder"] == true),
        "{preorders:?}"
    );
    assert_eq!(
        git(&served, &["tag", "--list", "guide-v2.0.0"]),
        "guide-v2.0.0\n"
    );
    // The pre-order link sells no more.
    let closed = served.get(&preorder_link);
    assert_eq!(
        closed.status(),
        StatusCode::GONE,
        "the pre-order link is off"
    );

    // The server picks the release up within seconds.
    served.wait_for("the server to see 2.0.0 out", || {
        !served.body(served.get("/")).contains("Pre-order")
    });

    // Run again: each pre-order buyer gets their link, once.
    test.shop(&release)
        .success()
        .stdout_has(&["sent 2 download links of pre-ordered The Field Guide 2.0.0"]);
    for email in ["ada@example.com", "grace@example.com"] {
        let delivered = mails(
            &served,
            "The Field Guide 2.0.0 is out: your download",
            email,
        );
        assert_eq!(delivered.len(), 1, "{email}");
        let links = links_in(&served, &delivered[0]);
        assert_eq!(links.len(), 1, "{links:?}");
        let page = served.body(served.get(&links[0]));
        assert!(page.contains("guide.pdf"), "{page}");
        let file = served.get(&format!("{}/guide.pdf", links[0]));
        assert_eq!(file.status(), StatusCode::OK);
        let bytes = served.runtime.block_on(file.bytes()).unwrap();
        assert_eq!(&bytes[..], b"%PDF-1.4 the second edition");
    }
    let notices = test.read("notices/guide-2.0.0.jsonl");
    assert_eq!(notices.lines().count(), 2, "{notices}");
    let product = test.read("products/guide.toml");
    assert!(!product.contains("preorder"), "{product}");
    assert_eq!(git(&served, &["status", "--porcelain"]), "");

    // A re-run, and a buyer after the release (a plain receipt with the
    // link), mail no pre-order buyer again.
    let link = product
        .lines()
        .filter_map(|l| l.strip_prefix("payment_link_url = \""))
        .next_back()
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    assert_ne!(link, preorder_link);
    let thanks = served.pay(&link, "lin@example.com");
    let page = served.body(served.get(&thanks));
    assert!(page.contains("Download guide.pdf"), "{page}");
    served.wait_for("the plain receipt", || {
        mails(&served, "Your receipt from", "lin@example.com").len() == 1
    });
    test.shop(&release).success();
    for email in ["ada@example.com", "grace@example.com", "lin@example.com"] {
        let count = mails(&served, "is out: your download", email).len();
        assert_eq!(count, usize::from(email != "lin@example.com"), "{email}");
    }
    assert_eq!(test.read("notices/guide-2.0.0.jsonl"), notices);
    served.stop_server();
}

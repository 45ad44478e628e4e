//! `shop release` and `shop checkout` against the sandbox and the local
//! GitHub server: the whole release, re-runs that create nothing, releases
//! interrupted at each step (faults, and the process killed) that finish
//! without duplicates, and checks that fail before anything is touched.

use futures_util::TryStreamExt;
use serde_json::json;

use crate::harness::{Sandbox, Test};
use crate::support::github::{Faults, GitHubServer};

/// 2026-11-23T12:00:00Z: the time of every release here, for `shop` and the sandbox.
const NOW: i64 = 1_795_435_200;

const PRODUCT: &str = "# The author's own comment, kept by every release.\n\
name = \"The Field Guide\"\n\
price = \"29.00\"   # launch price\n\
files = [\"guide.pdf\", \"guide.epub\"]\n\
promotion_codes = true\n";

/// A store with the product, the files to release beside it, a sandbox
/// and, when asked, a GitHub server; all on loopback.
struct Release {
    runtime: tokio::runtime::Runtime,
    test: Test,
    sandbox: Option<Sandbox>,
    github: Option<GitHubServer>,
}

impl Release {
    fn new(with_github: bool) -> Release {
        let runtime = crate::harness::runtime();
        let sandbox = runtime.block_on(Sandbox::start());
        runtime.block_on(sandbox.set_clock(NOW));
        let github = with_github.then(|| {
            runtime.block_on(GitHubServer::start(
                "author",
                "book-assets",
                "ghs_test_token",
            ))
        });
        let mut test = Test::store();
        test.write("products/guide.toml", PRODUCT);
        commit_all(test.path(), "add the guide");
        test.env("SHOP_STRIPE_API_BASE", &sandbox.url);
        test.env("STRIPE_SECRET_KEY", "sk_test_release");
        test.env("SHOP_NOW", &NOW.to_string());
        test.env("SHOP_STRIPE_ATTEMPTS", "1");
        if let Some(github) = &github {
            test.env("SHOP_GITHUB_REPOSITORY", &github.repository());
            test.env("GITHUB_TOKEN", &github.token);
            test.env("SHOP_GITHUB_API_BASE", &github.api_url);
            test.env("SHOP_GITHUB_UPLOADS_BASE", &github.uploads_url);
        }
        Release {
            runtime,
            test,
            sandbox: Some(sandbox),
            github,
        }
    }

    fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().unwrap()
    }

    /// Writes the version's files outside the store; returns their paths.
    fn files(&self, version: &str, size: usize) -> Vec<String> {
        let dir = self.test.root().join("build").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        ["guide.pdf", "guide.epub"]
            .iter()
            .map(|name| {
                let path = dir.join(name);
                let content: Vec<u8> = format!("{name} {version} ")
                    .bytes()
                    .cycle()
                    .take(size)
                    .collect();
                std::fs::write(&path, content).unwrap();
                path.to_str().unwrap().to_owned()
            })
            .collect()
    }

    fn release(&self, version: &str, files: &[String]) -> crate::harness::Run {
        let mut args = vec!["release", "guide", version];
        args.extend(files.iter().map(String::as_str));
        self.test.shop(&args)
    }

    /// Stripe as the sandbox has it: (products, active prices of ours,
    /// active payment links).
    fn stripe_state(&self) -> (usize, usize, Vec<shop::stripe::PaymentLink>) {
        let client = self.sandbox().client();
        self.runtime.block_on(async {
            let products = client
                .product("prod_shop_guide")
                .await
                .unwrap()
                .into_iter()
                .count();
            let prices: Vec<_> = client
                .prices("prod_shop_guide")
                .try_collect()
                .await
                .unwrap();
            let links: Vec<_> = client.active_payment_links().try_collect().await.unwrap();
            (products, prices.len(), links)
        })
    }

    fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        self.runtime
            .block_on(self.sandbox().control(method, path, body))
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(sandbox) = self.sandbox.take() {
            self.runtime.block_on(sandbox.stop());
        }
        if let Some(github) = self.github.take() {
            github.stop();
        }
    }
}

pub(crate) fn commit_all(path: &std::path::Path, message: &str) {
    let repo = git2::Repository::open(path).unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    let signature = git2::Signature::now("Author", "author@example.com").unwrap();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &[&parent],
    )
    .unwrap();
}

fn head(path: &std::path::Path) -> (git2::Oid, String) {
    let repo = git2::Repository::open(path).unwrap();
    let commit = repo.head().unwrap().peel_to_commit().unwrap();
    (
        commit.id(),
        commit.summary().unwrap().unwrap_or_default().to_owned(),
    )
}

fn tag_target(path: &std::path::Path, tag: &str) -> Option<git2::Oid> {
    let repo = git2::Repository::open(path).unwrap();
    let object = repo.revparse_single(&format!("refs/tags/{tag}")).ok()?;
    Some(object.peel_to_commit().unwrap().id())
}

#[test]
fn a_release_records_commits_tags_and_reruns_create_nothing() {
    let release = Release::new(false);
    let files = release.files("1.0.0", 1000);
    let run = release.release("1.0.0", &files).success();
    let url = run.stdout().trim().to_owned();
    assert!(
        url.starts_with(&format!("{}/pay/plink_", release.sandbox().url)),
        "{url}"
    );
    run.stderr_has(&[
        "created Stripe product `prod_shop_guide`",
        "created payment link",
        "committed and tagged `guide-v1.0.0`",
    ]);

    // The author's text is kept; the release is appended.
    let text = release.test.read("products/guide.toml");
    assert!(text.starts_with(PRODUCT), "{text}");
    assert!(
        text.contains(
            "[[release]]\nversion = \"1.0.0\"\ndate = 2026-11-23\ntag = \"guide-v1.0.0\""
        ),
        "{text}"
    );
    assert!(
        text.contains("[[release.assets]]\nname = \"guide.pdf\"\nsize = 1000\nsha256 = \""),
        "{text}"
    );
    let listing = release.test.shop(&["products", "--json"]).success().json();
    let guide = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == "guide")
        .unwrap()
        .clone();
    assert_eq!(
        (
            guide["latest_version"].clone(),
            guide["payment_link"].clone()
        ),
        (json!("1.0.0"), json!(url))
    );

    let (commit, summary) = head(release.test.path());
    assert_eq!(summary, "release guide 1.0.0");
    assert_eq!(
        tag_target(release.test.path(), "guide-v1.0.0"),
        Some(commit)
    );
    let repo = git2::Repository::open(release.test.path()).unwrap();
    assert!(
        repo.statuses(None)
            .unwrap()
            .iter()
            .all(|s| !s.path().unwrap().starts_with("products/"))
    );
    assert_copied(&release, "1.0.0", &files[0]);

    let (products, prices, links) = release.stripe_state();
    assert_eq!((products, prices, links.len()), (1, 1, 1));
    assert_eq!(
        links[0].metadata.get("version").map(String::as_str),
        Some("1.0.0")
    );

    // The same release again: nothing new anywhere.
    release
        .release("1.0.0", &files)
        .success()
        .stderr_has(&["was already released; nothing was created"]);
    assert_eq!(head(release.test.path()).0, commit);
    let (_, prices, links) = release.stripe_state();
    assert_eq!((prices, links.len()), (1, 1));

    // A new version reuses the price and turns the old link off.
    let files = release.files("1.1.0", 2000);
    release
        .release("1.1.0", &files)
        .success()
        .stderr_has(&["exists", "turned off the payment link of 1.0.0"]);
    let (_, prices, links) = release.stripe_state();
    assert_eq!(prices, 1);
    assert_eq!(links.len(), 1);
    assert_eq!(
        links[0].metadata.get("version").map(String::as_str),
        Some("1.1.0")
    );

    release.release("1.0.5", &files).code(1).stderr_has(&[
        "version `1.0.5` is not newer than the latest release of its line, `1.1.0`",
        "hint:",
    ]);
    // A released version's files never change.
    let other = release.files("1.0.0-other", 999);
    release
        .release("1.1.0", &other)
        .code(1)
        .stderr_has(&["version `1.1.0` was released with another `guide.pdf`"]);
}

#[test]
fn bad_files_are_refused_before_anything_is_touched() {
    let release = Release::new(false);
    let files = release.files("1.0.0", 100);
    release
        .test
        .shop(&["release", "guide", "1.0.0", &files[0]])
        .code(1)
        .stderr_has(&["the release of `guide` lacks `guide.epub`", "hint:"]);
    let stray = release.test.root().join("notes.txt");
    std::fs::write(&stray, "x").unwrap();
    release
        .test
        .shop(&[
            "release",
            "guide",
            "1.0.0",
            &files[0],
            &files[1],
            stray.to_str().unwrap(),
        ])
        .code(1)
        .stderr_has(&[
            "`notes.txt` is not one of the files of `guide` (`guide.pdf` and `guide.epub`)",
        ]);
    std::fs::write(&files[1], "").unwrap();
    release
        .release("1.0.0", &files)
        .code(1)
        .stderr_has(&["guide.epub` is empty"]);
    release
        .test
        .shop(&["release", "nope", "1.0.0", &files[0]])
        .code(1)
        .stderr_has(&["there is no product `nope`"]);

    // A paid file inside the store that git tracks is refused.
    release.test.write("guide.pdf", "paid bytes");
    release.test.write("guide.epub", "paid bytes");
    commit_all(release.test.path(), "oops, the book");
    let inside: Vec<String> = ["guide.pdf", "guide.epub"]
        .iter()
        .map(|n| release.test.path().join(n).to_str().unwrap().to_owned())
        .collect();
    release.release("1.0.0", &inside).code(1).stderr_has(&[
        "`guide.pdf` is tracked by the store's git repository",
        "git rm --cached",
    ]);

    let log = release.control(reqwest::Method::GET, "requests", json!({}));
    assert_eq!(
        log.as_array().unwrap().len(),
        0,
        "Stripe was called before the files were checked: {log}"
    );
}

#[test]
fn a_dry_run_changes_nothing() {
    let release = Release::new(true);
    let files = release.files("1.0.0", 100);
    let before = head(release.test.path());
    let run = release
        .test
        .shop(&[
            "release",
            "guide",
            "1.0.0",
            &files[0],
            &files[1],
            "--dry-run",
        ])
        .success();
    run.stderr_has(&[
        "would create Stripe product",
        "would create a Stripe price for 29.00 USD",
        "would create a payment link",
        "would create GitHub release `guide-v1.0.0`",
        "would upload `guide.pdf` (100 bytes)",
        "dry run: nothing was changed",
    ]);
    assert_eq!(head(release.test.path()), before);
    assert_eq!(release.test.read("products/guide.toml"), PRODUCT);
    let log = release.control(reqwest::Method::GET, "requests", json!({}));
    assert!(
        log.as_array().unwrap().iter().all(|r| r["method"] == "GET"),
        "a dry run wrote to Stripe: {log}"
    );
    assert!(release.github.as_ref().unwrap().releases().is_empty());
}

/// What every finished release of 1.0.0 must look like, however it got there.
fn assert_finished(release: &Release, files: &[String]) {
    let (products, prices, links) = release.stripe_state();
    assert_eq!(
        (products, prices, links.len()),
        (1, 1, 1),
        "Stripe objects after the release"
    );
    let github = release.github.as_ref().unwrap();
    let releases = github.releases();
    assert_eq!(releases.len(), 1, "GitHub releases");
    let assets = &releases[0].assets;
    assert_eq!(assets.len(), 2, "{assets:?}");
    for asset in assets {
        assert_eq!(asset.state, "uploaded", "{asset:?}");
    }
    let text = release.test.read("products/guide.toml");
    assert_eq!(text.matches("[[release]]").count(), 1, "{text}");
    for asset in assets {
        let local = files.iter().find(|f| f.ends_with(&asset.name)).unwrap();
        assert_eq!(asset.size, std::fs::metadata(local).unwrap().len());
        assert!(
            text.contains(&format!("github_asset_id = {}", asset.id)),
            "{text}"
        );
        assert!(text.contains(&asset.sha256), "{text}");
    }
    assert_eq!(
        tag_target(release.test.path(), "guide-v1.0.0"),
        Some(head(release.test.path()).0)
    );
    assert!(text.contains(&links[0].url), "{text}");
}

#[test]
fn a_github_release_uploads_every_file_once() {
    let release = Release::new(true);
    let files = release.files("1.0.0", 300_000);
    release.release("1.0.0", &files).success().stderr_has(&[
        "created GitHub release `guide-v1.0.0` in `author/book-assets` as a draft",
        "published GitHub release `guide-v1.0.0`",
        "uploaded `guide.pdf`",
    ]);
    assert_finished(&release, &files);
    release
        .release("1.0.0", &files)
        .success()
        .stderr_has(&["nothing was created", "asset `guide.pdf` is uploaded"]);
    let github = release.github.as_ref().unwrap();
    assert_eq!(
        (github.count("create_release"), github.count("upload")),
        (1, 2)
    );
    assert_finished(&release, &files);

    // Without notes the GitHub release says what it is, never the
    // store's git log (the author's, not the buyers').
    let body = &github.releases()[0].body;
    assert_eq!(body, "The Field Guide 1.0.0");

    // The asset endpoint gives a short-lived URL that serves the file.
    let asset = github.releases()[0].assets[0].clone();
    let bytes = release.runtime.block_on(async {
        let token = shop::secret::Secret::new("GITHUB_TOKEN", &github.token).unwrap();
        let client = shop::github::GitHub::new(
            &github.repository(),
            token,
            &github.api_url,
            &github.uploads_url,
        )
        .unwrap();
        let shop::github::Download::Redirect { url, expires } =
            client.asset_download(asset.id).await.unwrap()
        else {
            panic!("GitHub answered an asset download with its bytes, not a redirect")
        };
        // The URL says when it ends: about five minutes from now.
        let left = expires
            .unwrap()
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(left.as_secs() > 240 && left.as_secs() <= 300, "{left:?}");
        reqwest::get(&url).await.unwrap().bytes().await.unwrap()
    });
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(files.iter().find(|f| f.ends_with(&asset.name)).unwrap()).unwrap()
    );
}

#[test]
fn release_notes_come_from_a_file_when_given() {
    let release = Release::new(true);
    let files = release.files("1.0.0", 100);
    let notes = release.test.root().join("NOTES.md");
    std::fs::write(&notes, "Fixed every typo in chapter 3.\n").unwrap();
    let mut args = vec![
        "release",
        "guide",
        "1.0.0",
        "--notes",
        notes.to_str().unwrap(),
    ];
    args.extend(files.iter().map(String::as_str));
    release.test.shop(&args).success();
    assert_eq!(
        release.github.as_ref().unwrap().releases()[0].body,
        // As the product file keeps them: without the file's last newline.
        "Fixed every typo in chapter 3."
    );
    let missing = release.test.root().join("missing.md");
    let mut args = vec![
        "release",
        "guide",
        "1.0.1",
        "--notes",
        missing.to_str().unwrap(),
    ];
    args.extend(files.iter().map(String::as_str));
    release
        .test
        .shop(&args)
        .code(1)
        .stderr_has(&["cannot read the release notes", "hint:"]);
}

#[test]
fn releases_interrupted_at_each_step_finish_without_duplicates() {
    enum Fault {
        Stripe(&'static str),
        GitHub(Faults),
    }
    let cases = [
        (
            "the product's answer is lost",
            Fault::Stripe("/v1/products"),
        ),
        ("the price's answer is lost", Fault::Stripe("/v1/prices")),
        (
            "the payment link's answer is lost",
            Fault::Stripe("/v1/payment_links"),
        ),
        (
            "GitHub's release answer is lost",
            Fault::GitHub(Faults {
                lose_create_release: true,
                ..Faults::default()
            }),
        ),
        (
            "an upload breaks half-way",
            Fault::GitHub(Faults {
                break_upload_after: Some(100_000),
                ..Faults::default()
            }),
        ),
        (
            "an upload's answer is lost",
            Fault::GitHub(Faults {
                lose_upload_answer: true,
                ..Faults::default()
            }),
        ),
    ];
    for (what, fault) in cases {
        let release = Release::new(true);
        let files = release.files("1.0.0", 300_000);
        match fault {
            Fault::Stripe(path) => {
                release.control(reqwest::Method::POST, "faults", json!({"rate": 1.0, "when": "after", "path": path, "method": "POST", "count": 1}));
            }
            Fault::GitHub(faults) => release.github.as_ref().unwrap().set_faults(faults),
        }
        let failed = release.release("1.0.0", &files);
        assert_eq!(
            failed.output.status.code(),
            Some(1),
            "{what}: the interrupted release did not fail\n{}",
            failed.stderr()
        );
        assert!(
            failed.stderr().contains("hint:"),
            "{what}: {}",
            failed.stderr()
        );
        release.release("1.0.0", &files).success();
        assert_finished(&release, &files);
    }
}

#[test]
fn a_release_killed_repeatedly_finishes_on_the_last_run() {
    let release = Release::new(true);
    let files = release.files("1.0.0", 3 * 1024 * 1024);
    release.github.as_ref().unwrap().set_faults(Faults {
        upload_delay_ms: 20,
        ..Faults::default()
    });
    for (run, delay_ms) in [150, 400, 900, 1500].into_iter().enumerate() {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
        command
            .args(["release", "guide", "1.0.0"])
            .args(&files)
            .current_dir(release.test.path())
            .env_clear();
        for (key, value) in release.test.environment() {
            command.env(key, value);
        }
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        if run == 0 {
            let text = release.test.read("products/guide.toml");
            assert!(
                !text.contains("[[release]]"),
                "the first run finished before it was killed"
            );
        }
    }
    release
        .github
        .as_ref()
        .unwrap()
        .set_faults(Faults::default());
    release.release("1.0.0", &files).success();
    assert_finished(&release, &files);
    let github = release.github.as_ref().unwrap();
    assert_eq!(github.count("create_release"), 1);
}

#[test]
fn checkout_makes_a_session_for_a_released_version() {
    let release = Release::new(false);
    release
        .test
        .shop(&["checkout", "guide"])
        .code(1)
        .stderr_has(&[
            "`guide` has not been released yet",
            "hint: run `shop release guide",
        ]);
    let files = release.files("1.0.0", 100);
    release.release("1.0.0", &files).success();
    let run = release
        .test
        .shop(&[
            "checkout",
            "guide",
            "--email",
            "ada@example.com",
            "--expires",
            "1h",
            "--json",
        ])
        .success();
    let answer = run.json();
    let session_id = answer["id"].as_str().unwrap().to_owned();
    assert!(
        answer["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/checkout/cs_test_", release.sandbox().url))
    );
    let client = release.sandbox().client();
    let session = release
        .runtime
        .block_on(client.checkout_session(&session_id))
        .unwrap()
        .unwrap();
    assert_eq!(
        session.metadata.get("product").map(String::as_str),
        Some("guide")
    );
    assert_eq!(
        session.metadata.get("version").map(String::as_str),
        Some("1.0.0")
    );
    assert_eq!(session.customer_email.as_deref(), Some("ada@example.com"));
    assert_eq!(session.expires_at, NOW + 3600);

    // A promotion code, as made in Stripe's dashboard, discounts the session.
    let sandbox = release.sandbox();
    let http = sandbox.http();
    let coupon: serde_json::Value = release.runtime.block_on(async {
        http.post(format!("{}/v1/coupons", sandbox.url))
            .bearer_auth("sk_test_release")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("amount_off=500&currency=usd")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    release.runtime.block_on(async {
        http.post(format!("{}/v1/promotion_codes", sandbox.url))
            .bearer_auth("sk_test_release")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "coupon={}&code=LAUNCH",
                coupon["id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
    });
    let promo = release
        .test
        .shop(&["checkout", "guide", "--promo", "LAUNCH", "--json"])
        .success()
        .json();
    assert_eq!(promo["amount_total"], 2400);
    let session = release
        .runtime
        .block_on(client.checkout_session(promo["id"].as_str().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(
        session.metadata.get("promotion_code").map(String::as_str),
        Some("LAUNCH")
    );
    release
        .test
        .shop(&["checkout", "guide", "--promo", "NOPE"])
        .code(1)
        .stderr_has(&["there is no active promotion code `NOPE`", "hint:"]);

    release
        .test
        .shop(&["checkout", "guide", "--version", "2.0.0"])
        .code(1)
        .stderr_has(&["`guide` has no release `2.0.0`", "`1.0.0`"]);
    release
        .test
        .shop(&["checkout", "guide", "--expires", "10m"])
        .code(2)
        .stderr_has(&["between 30m and 24h"]);
    release
        .test
        .shop(&["checkout", "guide", "--email", "nobody"])
        .code(2)
        .stderr_has(&["`nobody` is not an email address"]);
}

/// Writes these files for `version` outside the store; returns their paths.
/// The local files folder holds `file` (a path) of `version`, byte for byte.
fn assert_copied(release: &Release, version: &str, file: &str) {
    let name = std::path::Path::new(file).file_name().unwrap();
    let copied = release
        .test
        .path()
        .join(".shop/files/guide")
        .join(version)
        .join(name);
    assert_eq!(std::fs::read(copied).unwrap(), std::fs::read(file).unwrap());
}

fn files_named(release: &Release, version: &str, names: &[&str], size: usize) -> Vec<String> {
    let dir = release.test.root().join("build").join(version);
    std::fs::create_dir_all(&dir).unwrap();
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let content: Vec<u8> = format!("{name} {version} ")
                .bytes()
                .cycle()
                .take(size)
                .collect();
            std::fs::write(&path, content).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn names_github_renames_are_released_rereleased_and_finished() {
    let release = Release::new(true);
    release.test.write(
        "products/guide.toml",
        &PRODUCT.replace("\"guide.pdf\"", "\"my book.pdf\""),
    );
    commit_all(release.test.path(), "a file name with a space");
    let github = release.github.as_ref().unwrap();
    let files = files_named(&release, "1.0.0", &["my book.pdf", "guide.epub"], 300_000);
    let first = release.release("1.0.0", &files);
    first
        .success()
        .stderr_has(&["GitHub keeps `my book.pdf` as `my.book.pdf`"]);
    let text = release.test.read("products/guide.toml");
    assert!(text.contains("name = \"my book.pdf\""), "{text}");
    assert!(text.contains("github_name = \"my.book.pdf\""), "{text}");
    // Run again: everything is found under GitHub's name; nothing is made.
    release
        .release("1.0.0", &files)
        .success()
        .stderr_has(&["nothing was created", "asset `my book.pdf` is uploaded"]);
    assert_eq!(github.count("upload"), 2);

    // A new version whose upload breaks half-way leaves a `starter` asset
    // under GitHub's name; the re-run replaces it and finishes.
    let files = files_named(&release, "1.1.0", &["my book.pdf", "guide.epub"], 300_000);
    github.set_faults(Faults {
        break_upload_after: Some(100_000),
        ..Faults::default()
    });
    release.release("1.1.0", &files).code(1);
    let broken = github
        .releases()
        .into_iter()
        .find(|r| r.tag == "guide-v1.1.0")
        .unwrap();
    assert!(broken.draft, "a broken release was published: {broken:?}");
    assert_eq!(
        broken
            .assets
            .iter()
            .map(|a| (a.name.as_str(), a.state.as_str()))
            .collect::<Vec<_>>(),
        [("my.book.pdf", "starter")]
    );
    release.release("1.1.0", &files).success();
    let finished = github
        .releases()
        .into_iter()
        .find(|r| r.tag == "guide-v1.1.0")
        .unwrap();
    assert!(!finished.draft);
    let mut names: Vec<(String, String)> = finished
        .assets
        .iter()
        .map(|a| (a.name.clone(), a.state.clone()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("guide.epub".to_owned(), "uploaded".to_owned()),
            ("my.book.pdf".to_owned(), "uploaded".to_owned())
        ]
    );
    assert_eq!(github.count("delete_asset"), 1);
}

#[test]
fn a_repository_with_immutable_releases_gets_a_whole_release() {
    let release = Release::new(true);
    let github = release.github.as_ref().unwrap();
    github.set_immutable_releases(true);
    let files = release.files("1.0.0", 300_000);
    release.release("1.0.0", &files).success().stderr_has(&[
        "immutable releases",
        "as a draft",
        "published GitHub release `guide-v1.0.0`",
    ]);
    let releases = github.releases();
    assert!(releases[0].immutable && !releases[0].draft, "{releases:?}");
    assert_finished(&release, &files);
    // A re-run finds it whole and touches nothing.
    release
        .release("1.0.0", &files)
        .success()
        .stderr_has(&["nothing was created"]);
    assert_eq!(github.count("upload"), 2);
    assert_eq!(github.count("update_release"), 1);
}

#[test]
fn a_rate_limited_request_waits_once_as_github_says() {
    use crate::support::github::Refusal;
    let release = Release::new(true);
    let github = release.github.as_ref().unwrap();
    github.set_faults(Faults {
        refusals: vec![Refusal::TooMany { retry_after: 2 }],
        refusals_for: Some("POST /repos/author/book-assets/releases".into()),
        ..Faults::default()
    });
    let files = release.files("1.0.0", 300_000);
    release
        .release("1.0.0", &files)
        .success()
        .stderr_has(&["waiting for GitHub's rate limit"]);
    let posts: Vec<std::time::Instant> = github
        .requests()
        .into_iter()
        .filter(|(_, what)| what == "POST /repos/author/book-assets/releases")
        .map(|(at, _)| at)
        .collect();
    assert_eq!(
        posts.len(),
        2,
        "the refused request was not sent exactly once more"
    );
    let waited = posts[1] - posts[0];
    assert!(
        waited >= std::time::Duration::from_secs(2) && waited < std::time::Duration::from_secs(5),
        "waited {waited:?} for `Retry-After: 2`"
    );
    assert_eq!(github.count("create_release"), 1);

    // A secondary limit on an upload is waited for too.
    let release = Release::new(true);
    let github = release.github.as_ref().unwrap();
    github.set_faults(Faults {
        refusals: vec![Refusal::Secondary {
            retry_after: Some(1),
        }],
        refusals_for: Some("/assets".into()),
        ..Faults::default()
    });
    release
        .release("1.0.0", &release.files("1.0.0", 300_000))
        .success();
    assert_eq!(github.count("upload"), 2);
}

#[test]
fn files_github_cannot_take_and_tokens_that_cannot_write_are_refused_before_anything_exists() {
    use crate::support::github::Permission;
    let mut release = Release::new(true);
    let files = release.files("1.0.0", 1000);
    // A sparse file one byte over GitHub's 2 GiB.
    std::fs::File::options()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(2 * 1024 * 1024 * 1024 + 1)
        .unwrap();
    release.release("1.0.0", &files).code(1).stderr_has(&[
        "is 2147483649 bytes; GitHub keeps release assets under 2 GiB",
        "hint: split or compress the file",
    ]);
    assert_nothing_made(&release);

    let files = release.files("1.0.0", 1000);
    let mut cases = vec![
        ("ghp_wrong", "Bad credentials"),
        (
            "ghp_read",
            "can read `author/book-assets` but not write releases there",
        ),
        ("ghp_none", "private repositories answer 404"),
    ];
    let github = release.github.as_ref().unwrap();
    github.add_token("ghp_read", Permission::Read);
    github.add_token("ghp_none", Permission::None);
    for (token, problem) in cases.drain(..) {
        // The last value set wins.
        release.test.env("GITHUB_TOKEN", token);
        release
            .release("1.0.0", &files)
            .code(1)
            .stderr_has(&[problem, "hint:"]);
        assert_nothing_made(&release);
    }
}

fn assert_nothing_made(release: &Release) {
    let (products, prices, links) = release.stripe_state();
    assert_eq!(
        (products, prices, links.len()),
        (0, 0, 0),
        "Stripe objects were made"
    );
    let github = release.github.as_ref().unwrap();
    assert!(github.releases().is_empty(), "a GitHub release was made");
    assert_eq!(github.count("upload"), 0);
}

/// Runs git in `path` as an author would (with a name and address).
fn git(path: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Author",
            "-c",
            "user.email=author@example.com",
        ])
        .args(args)
        .current_dir(path)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_release_stopped_at_each_crash_point_leaves_git_consistent() {
    for point in ["git:commit-written", "git:index-written", "git:head-moved"] {
        let mut release = Release::new(false);
        let files = release.files("1.0.0", 1000);
        release.test.env("SHOP_FAULT", point);
        let stopped = release.release("1.0.0", &files);
        assert_eq!(
            stopped.output.status.code(),
            None,
            "{point}: the release was not stopped there\n{}",
            stopped.stderr()
        );
        // The author's next ordinary commit deletes nothing.
        release.test.write("notes.md", "to do\n");
        git(release.test.path(), &["add", "notes.md"]);
        git(
            release.test.path(),
            &["commit", "-q", "-m", "the author's notes"],
        );
        let changed = git(
            release.test.path(),
            &["show", "--name-status", "--format=", "HEAD"],
        );
        assert!(
            !changed.lines().any(|line| line.starts_with('D')),
            "{point}: the author's commit deletes files:\n{changed}"
        );
        release.test.env("SHOP_FAULT", "");
        release.release("1.0.0", &files).success();
        assert_eq!(
            git(
                release.test.path(),
                &["status", "--porcelain", "--", "products"]
            ),
            "",
            "{point}"
        );
        let recorded = git(
            release.test.path(),
            &["show", "guide-v1.0.0:products/guide.toml"],
        );
        assert_eq!(
            recorded.matches("[[release]]").count(),
            1,
            "{point}: {recorded}"
        );
        let (products, prices, links) = release.stripe_state();
        assert_eq!((products, prices, links.len()), (1, 1, 1), "{point}");
    }
}

#[test]
fn a_release_into_the_local_folder_shows_its_progress_on_a_terminal() {
    let release = Release::new(false);
    let files = release.files("1.0.0", 3 * 1024 * 1024);
    // On a terminal (util-linux's `script` gives one), as an author runs it.
    let mut line = format!("{} release guide 1.0.0", env!("CARGO_BIN_EXE_shop"));
    for file in &files {
        line.push_str(&format!(" '{file}'"));
    }
    let mut command = std::process::Command::new("script");
    command
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .current_dir(release.test.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("TERM", "xterm")
        .env("COLUMNS", "120");
    for (key, value) in release.test.environment() {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("sending guide.pdf"),
        "no progress bar:\n{shown}"
    );
    assert!(
        shown.contains("copied `guide.pdf` (3145728 bytes) to the local files folder"),
        "{shown}"
    );
    assert_copied(&release, "1.0.0", &files[0]);
}

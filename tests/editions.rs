//! Editions as authors have them: the store sells the newest released
//! version and, beside it, takes pre-orders of the next one (with a date
//! and a launch price of its own); a fix of an older line (1.1.0 once 2.0.0
//! exists) is released, tagged and told to its line's buyers without
//! taking the store front from the newer line.

use reqwest::StatusCode;

use crate::support::served::Served;

/// Releases `guide` `version` with new bytes, through the real binary.
fn release(served: &Served, version: &str) -> crate::harness::Run {
    let build = served.test.root().join("build");
    std::fs::write(
        build.join("guide.pdf"),
        format!("%PDF {version} ").repeat(200),
    )
    .unwrap();
    std::fs::write(build.join("guide.epub"), format!("PK {version}")).unwrap();
    let (pdf, epub) = (build.join("guide.pdf"), build.join("guide.epub"));
    served.test.shop(&[
        "release",
        "guide",
        version,
        pdf.to_str().unwrap(),
        epub.to_str().unwrap(),
    ])
}

/// The version a Checkout Session sells, from its metadata.
fn version_sold(served: &Served, checkout: &str) -> String {
    let id = checkout.rsplit('/').next().unwrap();
    let session = served
        .runtime
        .block_on(served.sandbox().client().checkout_session(id))
        .unwrap()
        .unwrap();
    session.metadata["version"].clone()
}

#[test]
fn a_preorder_sells_beside_the_edition_on_sale_and_an_older_line_gets_its_fix() {
    let served = Served::start();
    // 2.0.0 on pre-order, out on a day said, at a launch price.
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
        .success()
        .stderr_has(&["for 19.00 USD"]);
    served
        .test
        .shop(&["preorder", "guide", "2.1.0", "--price", "19,00"])
        .code(1)
        .stderr_has(&[
            "`--price`:",
            "hint: write the pre-order's price as a decimal in USD",
        ]);
    served.wait_for("the pre-order on the store front", || {
        served
            .body(served.get("/"))
            .contains("Version 2.0.0 is coming")
    });
    let front = served.body(served.get("/p/guide"));
    for expected in [
        "29.00 USD</strong> · version 1.0.0",
        "Version 2.0.0 is coming on 1 March 2027: <strong>19.00 USD</strong> to pre-order",
        "href=\"/buy/guide\"",
        "href=\"/buy/guide?preorder\"",
    ] {
        assert!(front.contains(expected), "{expected:?} is not on\n{front}");
    }
    let listed = served.test.shop(&["products"]).success().stdout();
    assert!(listed.contains("1.0.0, 2.0.0 on pre-order"), "{listed}");

    // On the same day, one reader buys the edition on sale, another
    // pre-orders the next one.
    assert_eq!(
        version_sold(&served, &served.checkout_page("/buy/guide")),
        "1.0.0"
    );
    assert_eq!(
        version_sold(&served, &served.checkout_page("/buy/guide?preorder")),
        "2.0.0"
    );
    let ada = served.buy("ada@example.com");
    assert!(ada.starts_with("/d/"));
    let thanks = served.pay("/buy/guide?preorder", "bob@example.com");
    let page = served.body(served.get(&thanks));
    assert!(page.contains("it is to come out on 1 March 2027"), "{page}");
    // `shop checkout` sells the edition on sale unless told.
    let checkout = served
        .test
        .shop(&["checkout", "guide", "--json"])
        .success()
        .json();
    assert_eq!(checkout["version"], "1.0.0", "{checkout}");

    // A fix of the 1.x line while 2.0.0 waits: it is the edition on sale.
    release(&served, "1.1.0").success();
    served
        .test
        .shop(&["notify", "guide", "1.1.0"])
        .success()
        .stdout_has(&["sent 1 notice about The Field Guide 1.1.0"]);
    served.wait_for("the notice to Ada", || {
        served
            .outbox()
            .iter()
            .any(|mail| mail.contains("To: ada@example.com") && mail.contains("1.1.0 is out"))
    });
    assert!(
        !served
            .outbox()
            .iter()
            .any(|mail| mail.contains("To: bob@example.com") && mail.contains("1.1.0 is out")),
        "a pre-order of 2.0.0 is not told of 1.1.0"
    );

    // 2.0.0 comes out at the product's price; then a fix of the 1.x line
    // is still taken, and sells nothing.
    release(&served, "2.0.0")
        .success()
        .stderr_has(&["for 29.00 USD"]);
    release(&served, "1.2.0")
        .success()
        .stderr_has(&["1.2.0 fixes an older line: its payment link does not sell"]);
    release(&served, "1.1.5")
        .code(1)
        .stderr_has(&["version `1.1.5` is not newer than the latest release of its line, `1.2.0`"]);
    served.wait_for("2.0.0 on the store front", || {
        served
            .body(served.get("/p/guide"))
            .contains("· version 2.0.0")
    });
    assert_eq!(
        version_sold(&served, &served.checkout_page("/buy/guide")),
        "2.0.0"
    );
    let nothing = served.get("/buy/guide?preorder");
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);
    // Ada (1.x) can download 1.2.0, her line's newest.
    let html = served.body(served.get(&ada));
    assert!(html.contains("Version <strong>1.2.0</strong>"), "{html}");
    let tags = std::process::Command::new("git")
        .args(["tag", "--list", "guide-v*"])
        .current_dir(served.test.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tags.stdout),
        "guide-v1.0.0\nguide-v1.1.0\nguide-v1.2.0\nguide-v2.0.0\n"
    );
}

#[test]
fn sales_pages_are_made_to_be_found_and_shared_and_private_ones_are_not() {
    let served = Served::start_with_store(&[], |test| {
        let product = test.read("products/guide.toml");
        test.write(
            "products/guide.toml",
            &format!(
                "{product}description = \"A walk along the **drove roads**, with maps.\"\ncover = \"covers/guide.png\"\n"
            ),
        );
        std::fs::create_dir_all(test.path().join("covers")).unwrap();
        std::fs::write(
            test.path().join("covers/guide.png"),
            b"\x89PNG\r\n\x1a\n0000",
        )
        .unwrap();
    });
    let base = served.url.clone();
    let front = served.body(served.get("/"));
    assert!(!front.contains("noindex"), "{front}");
    assert!(front.contains("<title>Test Books</title>"), "{front}");
    assert!(
        front.contains(&format!(
            "<link rel=\"canonical\" href=\"{}\">",
            minijinja::HtmlEscape(&format!("{base}/"))
        )),
        "{front}"
    );
    let product = served.body(served.get("/p/guide"));
    for expected in [
        "<meta name=\"description\" content=\"A walk along the drove roads, with maps.\">",
        "<meta property=\"og:type\" content=\"product\">",
        "<meta property=\"og:title\" content=\"The Field Guide\">",
        "<meta name=\"twitter:card\" content=\"summary_large_image\">",
        &format!(
            "<meta property=\"og:image\" content=\"{}\">",
            minijinja::HtmlEscape(&format!("{base}/cover/guide"))
        ),
    ] {
        assert!(
            product.contains(expected),
            "{expected:?} is not on\n{product}"
        );
    }
    // What belongs to a buyer is never indexed.
    let page = served.buy("ada@example.com");
    for private in [page.as_str(), "/lost", "/nothing"] {
        let html = served.body(served.get(private));
        assert!(
            html.contains("<meta name=\"robots\" content=\"noindex\">"),
            "{private}: {html}"
        );
        assert!(!html.contains("og:"), "{private}: {html}");
    }
    let robots = served.body(served.get("/robots.txt"));
    assert!(robots.contains("Disallow: /d/\n"), "{robots}");
    assert!(
        robots.contains(&format!("Sitemap: {base}/sitemap.xml\n")),
        "{robots}"
    );
    let sitemap = served.body(served.get("/sitemap.xml"));
    assert!(
        sitemap.contains(&format!("<loc>{base}/p/guide</loc>")),
        "{sitemap}"
    );

    // Stripe's Checkout shows plain text, the cover and the page, kept up
    // to date by the next release.
    let stripe_product = |served: &Served| {
        served
            .runtime
            .block_on(served.sandbox().client().product("prod_shop_guide"))
            .unwrap()
            .unwrap()
    };
    let shown = stripe_product(&served);
    assert_eq!(
        shown.description.as_deref(),
        Some("A walk along the drove roads, with maps.")
    );
    assert_eq!(shown.images, [format!("{base}/cover/guide")]);
    assert_eq!(shown.url, Some(format!("{base}/p/guide")));
    let product = served.test.read("products/guide.toml");
    served.test.write(
        "products/guide.toml",
        &product.replace("with maps.", "with maps and *stories*."),
    );
    release(&served, "1.1.0")
        .success()
        .stderr_has(&["updated Stripe product `prod_shop_guide`"]);
    assert_eq!(
        stripe_product(&served).description.as_deref(),
        Some("A walk along the drove roads, with maps and stories.")
    );
}

#[test]
fn release_notes_are_the_authors_and_what_a_release_uses_is_committed() {
    let served = Served::start();
    // The first release (by the harness) had no notes: its page shows
    // none, and certainly not the store's git log.
    let page = served.body(served.get("/p/guide"));
    assert!(!page.contains("shop init"), "{page}");
    // Released again with the same bytes: said.
    let build = served.test.root().join("build");
    let (pdf, epub) = (build.join("guide.pdf"), build.join("guide.epub"));
    let args = |version: &'static str| {
        vec![
            "release".to_owned(),
            "guide".to_owned(),
            version.to_owned(),
            pdf.to_str().unwrap().to_owned(),
            epub.to_str().unwrap().to_owned(),
        ]
    };
    let same = args("1.0.1");
    let same: Vec<&str> = same.iter().map(String::as_str).collect();
    served.test.shop(&same).success().stderr_has(&[
        "warning: every file is byte for byte 1.0.0's: buyers told of 1.0.1 would get the same files again",
        "note: no release notes for guide 1.0.1: the product page and notices show none\nhint: write them in `notes/guide/1.0.1.md`",
    ]);
    // Notes in the store, and a new cover not yet committed.
    served.test.write(
        "notes/guide/1.1.0.md",
        "Two new walks and **fixed** maps.\n",
    );
    let product = served.test.read("products/guide.toml");
    served.test.write(
        "products/guide.toml",
        &product.replacen(
            "download_limit = 5\n",
            "download_limit = 5\ncover = \"covers/guide.png\"\n",
            1,
        ),
    );
    std::fs::create_dir_all(served.test.path().join("covers")).unwrap();
    std::fs::write(
        served.test.path().join("covers/guide.png"),
        b"\x89PNG\r\n\x1a\n0000",
    )
    .unwrap();
    release(&served, "1.1.0").success().stderr_has(&[
        "warning: `covers/guide.png`, `notes/guide/1.1.0.md` have changes not committed",
        "hint: commit them, or run again with `--commit-all`",
    ]);
    served.wait_for("the notes on the product page", || {
        served
            .body(served.get("/p/guide"))
            .contains("Two new walks and <strong>fixed</strong> maps.")
    });
    // With --commit-all they go into the release's commit.
    served
        .test
        .write("notes/guide/1.2.0.md", "A chapter on the old inns.\n");
    let build = served.test.root().join("build");
    std::fs::write(build.join("guide.pdf"), "%PDF 1.2.0 ".repeat(200)).unwrap();
    std::fs::write(build.join("guide.epub"), "PK 1.2.0").unwrap();
    served
        .test
        .shop(&[
            "release",
            "guide",
            "1.2.0",
            "--commit-all",
            build.join("guide.pdf").to_str().unwrap(),
            build.join("guide.epub").to_str().unwrap(),
        ])
        .success();
    let show = std::process::Command::new("git")
        .args(["show", "--stat", "--format=%s", "HEAD"])
        .current_dir(served.test.path())
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    for path in [
        "covers/guide.png",
        "notes/guide/1.2.0.md",
        "products/guide.toml",
    ] {
        assert!(show.contains(path), "{path} is not in\n{show}");
    }
    assert!(show.starts_with("release guide 1.2.0"), "{show}");
}

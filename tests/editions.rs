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

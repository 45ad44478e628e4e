//! Bundles: a product file with `bundle = [...]` and a price of its own,
//! released without files, sells each listed product at the version its
//! release records. The buyer's pages list every product's files, each
//! counted under its own product and limit (two products' `guide.pdf`
//! apart), and `shop notify` of a product reaches bundle buyers.

use reqwest::StatusCode;

use crate::support::served::{Served, download_page_of};

const GUIDE: &[u8] = b"the field guide, first edition";
const WORKBOOK: &[u8] = b"the workbook: exercises for every chapter";

/// GET `path` and its status and body.
fn fetch(served: &Served, path: &str) -> (StatusCode, Vec<u8>) {
    let response = served.get(path);
    let status = response.status();
    (
        status,
        served.runtime.block_on(response.bytes()).unwrap().to_vec(),
    )
}

fn text(served: &Served, path: &str) -> String {
    let (status, body) = fetch(served, path);
    let body = String::from_utf8(body).unwrap().replace("&#x2f;", "/");
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// The payment link URL `shop release` recorded last in a product file.
fn link_of(served: &Served, slug: &str) -> String {
    let text = served.test.read(&format!("products/{slug}.toml"));
    let link = text
        .lines()
        .filter_map(|l| l.strip_prefix("payment_link_url = \""))
        .next_back()
        .unwrap();
    link.trim_end_matches('"').to_owned()
}

#[test]
fn a_bundle_gives_each_products_files_under_its_own_limit_and_updates() {
    let served = Served::start_selling(&[("guide.pdf", GUIDE.to_vec())], |test| {
        // Another product with a file of the same name and its own limit.
        test.write(
            "products/workbook.toml",
            "name = \"The Workbook\"\nprice = \"12.00\"\nfiles = [\"guide.pdf\"]\ndownload_limit = 2\n",
        );
        test.write(
            "products/box.toml",
            "name = \"The Box Set\"\nprice = \"35.00\"\nbundle = [\"guide\", \"workbook\"]\n",
        );
    });
    let test = &served.test;
    let links_before = served
        .runtime
        .block_on(served.sandbox().posted("/v1/payment_links"))
        .len();

    // Nothing of the bundle can be sold before each product is out.
    test.shop(&["release", "box", "1.0.0"]).code(1).stderr_is(
        "error: bundle `box` lists `workbook`, which has no release out yet\n\
         hint: release `workbook` first with `shop release workbook <version> <files>`\n",
    );
    let build = test.root().join("build").join("workbook");
    std::fs::create_dir_all(&build).unwrap();
    let workbook_file = build.join("guide.pdf");
    std::fs::write(&workbook_file, WORKBOOK).unwrap();
    test.shop(&[
        "release",
        "workbook",
        "1.0.0",
        workbook_file.to_str().unwrap(),
    ])
    .success();
    // A bundle has no files of its own.
    test.shop(&["release", "box", "1.0.0", workbook_file.to_str().unwrap()])
        .code(1)
        .stderr_has(&[
            "error: `box` is a bundle: it has no files of its own, and `",
            "hint: release it without files, `shop release box <version>`: it gives its products' files\n",
        ]);
    let links = served
        .runtime
        .block_on(served.sandbox().posted("/v1/payment_links"));
    assert_eq!(links.len(), links_before + 1, "only the workbook's link");

    let released = test.shop(&["release", "box", "1.0.0", "--json"]).success();
    let outcome = released.json();
    assert_eq!(
        outcome["contains"],
        serde_json::json!({"guide": "1.0.0", "workbook": "1.0.0"})
    );
    assert!(outcome["assets"].as_array().unwrap().is_empty());
    let recorded = test.read("products/box.toml");
    assert!(
        recorded.contains("contains = { guide = \"1.0.0\", workbook = \"1.0.0\" }"),
        "{recorded}"
    );
    let link = served
        .runtime
        .block_on(served.sandbox().posted("/v1/payment_links"))
        .pop()
        .unwrap();
    assert_eq!(link["metadata"]["product"], "box");
    assert_eq!(link["metadata"]["version"], "1.0.0");
    let again = test.shop(&["release", "box", "1.0.0", "--json"]).success();
    assert_eq!(again.json()["created"], serde_json::json!([]));
    test.shop(&["products", "check"]).success();

    // The store front says what the bundle holds.
    served.wait_for("the server to see the bundle", || {
        served.body(served.get("/")).contains("The Box Set")
    });
    let front = text(&served, "/p/box");
    assert!(
        front.contains("Includes <a href=\"/p/guide\">The Field Guide</a> 1.0.0, <a href=\"/p/workbook\">The Workbook</a> 1.0.0."),
        "{front}"
    );

    // A buyer of the bundle: both products' files, each of its own product.
    let thanks_url = served.pay(&link_of(&served, "box"), "cy@example.com");
    let thanks = text(&served, thanks_url.trim_start_matches(&served.url));
    assert!(
        thanks.contains("You bought <strong>The Box Set</strong> (version 1.0.0)"),
        "{thanks}"
    );
    assert!(
        thanks.contains("Download guide.pdf <span class=\"from\">(The Field Guide)</span>"),
        "{thanks}"
    );
    assert!(
        thanks.contains("Download guide.pdf <span class=\"from\">(The Workbook)</span>"),
        "{thanks}"
    );
    assert!(
        thanks.contains("Your download page shows how many times"),
        "{thanks}"
    );
    let page = download_page_of(&thanks);
    let bundle_page = text(&served, &page);
    assert!(
        bundle_page.contains("<h2>The Field Guide</h2>"),
        "{bundle_page}"
    );
    assert!(
        bundle_page.contains("<h2>The Workbook</h2>"),
        "{bundle_page}"
    );
    assert!(
        bundle_page.contains(">5 of 5<") && bundle_page.contains(">2 of 2<"),
        "{bundle_page}"
    );
    assert!(
        bundle_page.contains(&format!("{page}/guide.pdf?product=workbook")),
        "{bundle_page}"
    );

    // Each file is its own product's bytes, counted under its own limit.
    let workbook_url = format!("{page}/guide.pdf?product=workbook");
    let guide_url = format!("{page}/guide.pdf?product=guide");
    for _ in 0..2 {
        assert_eq!(
            fetch(&served, &workbook_url),
            (StatusCode::OK, WORKBOOK.to_vec())
        );
    }
    assert_eq!(
        fetch(&served, &workbook_url).0,
        StatusCode::GONE,
        "the workbook's limit is 2"
    );
    assert_eq!(fetch(&served, &guide_url), (StatusCode::OK, GUIDE.to_vec()));
    // A bundle's file must name its product; a product it lacks is refused.
    assert_eq!(
        fetch(&served, &format!("{page}/guide.pdf")).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fetch(&served, &format!("{page}/guide.pdf?product=nothing")).0,
        StatusCode::NOT_FOUND
    );
    // Streamed from the local folder: counted in bytes sent.
    let bytes = |product: &str| served.usage(&page, product, "1.0.0", "guide.pdf").bytes;
    assert_eq!(
        (bytes("guide"), bytes("workbook")),
        (GUIDE.len() as u64, 2 * WORKBOOK.len() as u64)
    );
    let after = text(&served, &page);
    assert!(
        after.contains(">4 of 5<") && after.contains(">0 of 2<"),
        "{after}"
    );

    // The receipt names the bundle; the ledger records it.
    served.wait_for("the receipt", || {
        served
            .outbox()
            .iter()
            .any(|m| m.contains("To: cy@example.com") && m.contains("The Box Set 1.0.0"))
    });
    // It says what the bundle holds.
    let receipt = served
        .outbox()
        .into_iter()
        .find(|m| m.contains("To: cy@example.com") && m.contains("The Box Set 1.0.0"))
        .unwrap();
    assert!(
        receipt.contains("Contains: The Field Guide 1.0.0 and The Workbook 1.0.0"),
        "{receipt}"
    );
    test.shop(&["sync"]).success();
    let ledger: String = std::fs::read_dir(test.path().join("purchases"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert!(ledger.contains("\"product\":\"box\""), "{ledger}");
    // The report counts the sale under the bundle, at its own price.
    let report = test.shop(&["report", "--json"]).success().json();
    let rows = report.as_array().unwrap();
    let bundle = rows.iter().find(|row| row["group"] == "box");
    let bundle = bundle.unwrap_or_else(|| panic!("no bundle row: {report}"));
    // Less Stripe's fee for a US card: 2.9 % (101.5 rounds to 102) + 30 ¢.
    assert_eq!(
        (bundle["count"].clone(), bundle["net"].clone()),
        (serde_json::json!(1), serde_json::json!(3500 - 132)),
        "{report}"
    );

    // A bundle is not notified itself; its products' updates reach its buyers.
    test.shop(&["notify", "box", "1.0.0"]).code(1).stderr_is(
        "error: `box` is a bundle: its buyers hear of each product's new versions\n\
         hint: notify the product that changed, `shop notify <product> <version>`: it reaches bundle buyers too\n",
    );
    std::fs::write(&workbook_file, b"the workbook, with answers").unwrap();
    test.shop(&[
        "release",
        "workbook",
        "1.1.0",
        workbook_file.to_str().unwrap(),
    ])
    .success();
    test.shop(&["notify", "workbook", "1.1.0", "--dry-run"])
        .success()
        .stdout_has(&["cy@example.com  (bought 1.0.0, "]);
    test.shop(&["notify", "workbook", "1.1.0"])
        .success()
        .stdout_has(&["sent 1 notice about The Workbook 1.1.0"]);
    served.wait_for("the server to see workbook 1.1.0", || {
        served
            .body(served.get(&page))
            .contains("Version <strong>1.1.0</strong> (you bought 1.0.0)")
    });
    assert_eq!(
        fetch(&served, &workbook_url),
        (StatusCode::OK, b"the workbook, with answers".to_vec()),
        "a new version's file starts its own count"
    );
    // A new major of a product is not in the bundle under `same-major`:
    // the release says how to sell it there.
    std::fs::write(&workbook_file, b"the workbook, second edition").unwrap();
    test.shop(&["release", "workbook", "2.0.0", workbook_file.to_str().unwrap()])
        .success()
        .stderr_has(&["note: bundle `box` still gives workbook 1.0.0; to sell 2.0.0 in it, release a new version of the bundle"]);

    // The library lists each product of the bundle.
    let library = served.library_of("cy@example.com");
    let shelf = text(&served, &library);
    for shown in [
        "<h2>The Field Guide</h2>",
        "<h2>The Workbook</h2>",
        "Bought in The Box Set, version 1.0.0",
        "Newest version for you: <strong>1.1.0</strong>",
        "?product=workbook",
    ] {
        assert!(shelf.contains(shown), "the library lacks {shown}:\n{shelf}");
    }
}

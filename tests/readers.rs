//! Readers' devices: a buyer's library as an OPDS 1.2 acquisition feed
//! that their reading app follows, through the real server.

use reqwest::StatusCode;

use crate::support::served::{Served, TOKEN_SECRET};

/// The OPDS feed's address a library page shows.
fn opds_of(library: &str) -> String {
    let library = library.replace("&#x2f;", "/");
    let start = library
        .find("<code id=\"opds\">")
        .expect("the feed's address")
        + 16;
    library[start..].split('<').next().unwrap().to_owned()
}

#[test]
fn a_library_is_an_opds_feed_whose_links_download_and_a_refund_empties_it() {
    let served = Served::start();
    let email = "ann@example.com";
    let page = served.buy(email);
    // The download page helps choose the file.
    let downloads = served.body(served.get(&page));
    assert!(
        downloads.contains("Which file?") && downloads.contains("Send to Kindle"),
        "{downloads}"
    );
    let library = served.body(served.get(&served.library_of(email)));
    let address = opds_of(&library);
    assert!(
        address.starts_with(&format!("{}/opds/", served.url)),
        "{address}"
    );
    let fetched = served.get(&address);
    assert_eq!(fetched.status(), StatusCode::OK);
    // OPDS 1.2, 2.3: an acquisition feed says so in its media type.
    assert_eq!(
        fetched.headers()["content-type"],
        "application/atom+xml;profile=opds-catalog;kind=acquisition"
    );
    let xml = served.body(fetched);
    let feed = feed_rs::parser::parse(xml.as_bytes()).expect("valid Atom");
    // The catalogue's own links (OPDS 1.2, 3: `self` and `start`, typed).
    for rel in ["self", "start"] {
        let link = feed
            .links
            .iter()
            .find(|link| link.rel.as_deref() == Some(rel))
            .unwrap_or_else(|| panic!("no {rel} link"));
        assert_eq!(
            link.media_type.as_deref(),
            Some("application/atom+xml;profile=opds-catalog;kind=acquisition")
        );
    }
    assert_eq!(feed.entries.len(), 1, "{xml}");
    let book = &feed.entries[0];
    assert_eq!(book.title.as_ref().unwrap().content, "The Field Guide");
    assert!(!book.id.is_empty() && !book.authors.is_empty());
    // OPDS 1.2, 5.4: an acquisition link per file, with its media type.
    let acquisitions: Vec<(&str, &str)> = book
        .links
        .iter()
        .filter(|link| link.rel.as_deref() == Some("http://opds-spec.org/acquisition"))
        .map(|link| {
            (
                link.href.as_str(),
                link.media_type.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    let types: Vec<&str> = acquisitions.iter().map(|(_, kind)| *kind).collect();
    assert_eq!(types, ["application/pdf", "application/epub+zip"]);
    // A link downloads the buyer's file, counted as any download.
    let (epub, _) = acquisitions[1];
    let downloaded = served.get(epub);
    assert_eq!(downloaded.status(), StatusCode::OK);
    let bytes = served.runtime.block_on(downloaded.bytes()).unwrap();
    assert_eq!(&bytes[..], &served.files[1][..]);
    assert_eq!(
        served.usage(&page, "guide", "1.0.0", "guide.epub").bytes,
        served.files[1].len() as u64
    );

    // A token of another purpose, or a forged one, is refused.
    let keys = shop::tokens::Key::new(
        shop::secret::Secret::new("SHOP_TOKEN_SECRET", TOKEN_SECRET).unwrap(),
    );
    let library_token = served
        .library_of(email)
        .trim_start_matches("/library/")
        .to_owned();
    assert_eq!(
        served.get(&format!("/opds/{library_token}")).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        served.get(&format!("{address}x")).status(),
        StatusCode::FORBIDDEN
    );
    let claims = shop::tokens::verify(&[keys], address.rsplit('/').next().unwrap(), 0).unwrap();
    assert!(claims.purchase.starts_with("opds:lib_"), "{claims:?}");

    // Refunded: the feed empties (what a reading app shows next).
    served.refund(&served.session_of(&page));
    served.wait_for("the refund to empty the feed", || {
        let xml = served.body(served.get(&address));
        feed_rs::parser::parse(xml.as_bytes()).is_ok_and(|feed| feed.entries.is_empty())
    });
}

/// A body fetched whole, with its status and headers.
fn fetch(served: &Served, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    served.runtime.block_on(async {
        let response = served
            .http
            .get(format!("{}{path}", served.url))
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.bytes().await.unwrap().to_vec())
    })
}

#[test]
fn download_all_is_one_zip_of_the_buyers_copies_counting_each_file_once() {
    let (pdf, epub) = (crate::support::books::pdf(3), crate::support::books::epub());
    let served = Served::start_selling(
        &[("guide.pdf", pdf.clone()), ("guide.epub", epub.clone())],
        |test| {
            let product = test.read("products/guide.toml");
            test.write(
                "products/guide.toml",
                &format!("{}stamp = true\n", product.replace("download_limit = 5", "download_limit = 2")),
            );
        },
    );
    let page = served.buy("zoe@example.com");
    let html = served.body(served.get(&page)).replace("&#x2f;", "/");
    let start = html.find("id=\"download-all\" href=\"").expect("the Download all link") + 24;
    let all = html[start..].split('"').next().unwrap().to_owned();
    assert!(all.starts_with("/zip/"), "{all}");

    let (status, headers, zip) = fetch(&served, &all);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(headers["content-length"], zip.len().to_string().as_str());
    assert_eq!(headers["content-disposition"], "attachment; filename=\"guide-1.0.0.zip\"");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a ZIP");
    let mut names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    names.sort();
    assert_eq!(names, ["guide.epub", "guide.pdf"]);
    let mut unpacked = std::collections::HashMap::new();
    for name in &names {
        let mut file = archive.by_name(name).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        unpacked.insert(name.clone(), bytes);
    }
    // The buyer's stamped copies, not the originals: the same bytes a
    // download of each file gives.
    let (_, _, own_pdf) = fetch(&served, &format!("{page}/guide.pdf"));
    assert_eq!(unpacked["guide.pdf"], own_pdf);
    assert!(own_pdf.len() > pdf.len() && own_pdf.starts_with(&pdf));
    assert_ne!(unpacked["guide.epub"], epub, "stamped");
    // Each file counted once by the ZIP (the PDF once more by its own
    // download): bytes as sent.
    let used = |file: &str| served.usage(&page, "guide", "1.0.0", file).bytes;
    assert_eq!(used("guide.epub"), unpacked["guide.epub"].len() as u64);
    assert_eq!(used("guide.pdf"), 2 * own_pdf.len() as u64);

    // The PDF has no download left (2 of 2): the ZIP is refused before a
    // byte goes, and the EPUB keeps its second download.
    let (status, _, _) = fetch(&served, &all);
    assert_eq!(status, StatusCode::GONE);
    served.wait_for("the refused ZIP to give back what it charged", || {
        used("guide.epub") == unpacked["guide.epub"].len() as u64
    });
    let html = served.body(served.get(&page));
    assert!(!html.contains("download-all"), "no link once a file is used up");
}

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
                &format!(
                    "{}stamp = true\n",
                    product.replace("download_limit = 5", "download_limit = 2")
                ),
            );
        },
    );
    let page = served.buy("zoe@example.com");
    let html = served.body(served.get(&page)).replace("&#x2f;", "/");
    let link = "id=\"download-all\" href=\"";
    let start = html.find(link).expect("the Download all link") + link.len();
    let all = html[start..].split('"').next().unwrap().to_owned();
    assert!(all.starts_with("/zip/"), "{all}");

    let (status, headers, zip) = fetch(&served, &all);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(headers["content-length"], zip.len().to_string().as_str());
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"guide-1.0.0.zip\""
    );
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
    assert!(
        !html.contains("download-all"),
        "no link once a file is used up"
    );
}

/// The outbox's messages as written (not decoded), oldest first.
fn raw_outbox(served: &Served) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(served.test.path().join(".shop/outbox")) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            Some((entry.metadata().ok()?.modified().ok()?, text))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, text)| text).collect()
}

/// The bytes of a message's attachment (base64, as lettre writes it).
fn attachment(message: &str) -> Vec<u8> {
    use base64::Engine as _;
    let at = message
        .find("Content-Disposition: attachment")
        .expect("an attachment");
    let body = &message[at..];
    let start = body.find("\r\n\r\n").unwrap() + 4;
    let end = body[start..].find("\r\n--").unwrap() + start;
    let encoded: String = body[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap()
}

#[test]
fn send_to_kindle_mails_the_buyers_epub_once_counted_and_remembers_the_address() {
    let epub = crate::support::books::epub();
    let served = Served::start_selling(
        &[
            ("guide.pdf", crate::support::books::pdf(2)),
            ("guide.epub", epub.clone()),
        ],
        |test| {
            let product = test.read("products/guide.toml");
            test.write("products/guide.toml", &format!("{product}stamp = true\n"));
        },
    );
    let page = served.buy("yan@example.com");
    let opened = served.get(&page);
    assert_eq!(opened.status(), StatusCode::OK);
    let html = served.body(opened).replace("&#x2f;", "/");
    // The form, and what Amazon asks: the store's address approved.
    assert!(
        html.contains("Send to Kindle") && html.contains("to your Kindle's approved list"),
        "{html}"
    );
    let form = "class=\"kindle\" method=\"post\" action=\"";
    let start = html.find(form).unwrap() + form.len();
    let action = html[start..].split('"').next().unwrap().to_owned();
    assert!(action.starts_with("/kindle/"), "{action}");

    // Not a Kindle's address: refused, nothing queued, nothing counted.
    let (status, refused) = served.post_form(&action, &[("address", "yan@example.com")]);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("@kindle.com"), "{refused}");
    assert!(served.queued("kindle").is_empty());

    // Posted from another site's page: refused.
    let (status, _) = served.post_form_from(
        &action,
        "https://elsewhere.example",
        &[("address", "yan_42@kindle.com")],
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    // From the download page itself, which keeps its address out of
    // `Referer`: a browser names no origin (`null`).
    let (status, sent) =
        served.post_form_from(&action, "null", &[("address", "Yan_42@Kindle.com")]);
    assert_eq!(status, StatusCode::OK);
    assert!(sent.contains("On its way to your Kindle"), "{sent}");
    assert_eq!(served.queued("kindle"), ["yan_42@kindle.com"]);
    let mut mail = String::new();
    served.wait_for("the Kindle mail", || {
        mail = raw_outbox(&served)
            .into_iter()
            .find(|mail| mail.contains("To: yan_42@kindle.com"))
            .unwrap_or_default();
        !mail.is_empty()
    });
    assert!(
        mail.contains("Content-Type: application/epub+zip"),
        "{mail}"
    );
    let sent_bytes = attachment(&mail);
    // One download of the EPUB, of the buyer's own (stamped) copy.
    let epub_used = served.usage(&page, "guide", "1.0.0", "guide.epub").bytes;
    assert_eq!(epub_used, sent_bytes.len() as u64);
    let copy = served.runtime.block_on(async {
        let response = served
            .http
            .get(format!("{}{page}/guide.epub", served.url))
            .send()
            .await
            .unwrap();
        response.bytes().await.unwrap().to_vec()
    });
    assert_eq!(sent_bytes, copy);
    assert_ne!(copy, epub, "stamped");
    // Remembered on the download page for the next time.
    let html = served.body(served.get(&page));
    assert!(html.contains("value=\"yan_42@kindle.com\""), "{html}");
}

#[test]
fn a_reader_stops_their_feeds_address_and_the_library_shows_a_new_one() {
    let served = Served::start();
    let email = "vic@example.com";
    served.buy(email);
    let library_path = served.library_of(email);
    let library = served.body(served.get(&library_path));
    let old = opds_of(&library);
    assert_eq!(served.get(&old).status(), StatusCode::OK);
    // The page's address holds its token: it keeps it out of `Referer`,
    // and its form arrives as a browser sends it then, `Origin: null`.
    assert_eq!(
        served.get(&library_path).headers()["referrer-policy"],
        "no-referrer"
    );
    let path = library_path.trim_start_matches(&served.url).to_owned();
    let (status, _) = served.post_form_from(&format!("{path}/feed"), "null", &[]);
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(served.get(&old).status(), StatusCode::GONE);
    let fresh = opds_of(&served.body(served.get(&library_path)));
    assert_ne!(fresh, old);
    assert_eq!(served.get(&fresh).status(), StatusCode::OK);
    // From another site: refused.
    let (refused, _) =
        served.post_form_from(&format!("{path}/feed"), "https://elsewhere.example", &[]);
    assert_eq!(refused, StatusCode::FORBIDDEN);
    assert_eq!(served.get(&fresh).status(), StatusCode::OK);
}

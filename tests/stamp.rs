//! Stamped copies, checked with the tools readers' software trusts:
//! `qpdf --check`, `pdftotext` and `epubcheck` (Debian's packages, which
//! `scripts/setup` installs), on books made by the tests.

use std::path::Path;
use std::process::Command;

use crate::support::books;

fn licence() -> shop::stamp::Licence {
    shop::stamp::Licence {
        text: "Licensed to ada@example.com · order NilK0Vl · 2026-12-05".into(),
        mark: "shop-0123456789abcdef0123".into(),
        every_page: false,
    }
}

/// Runs a tool; its stdout, or a failure with everything it said.
/// Debian's `epubcheck` is a jar, run by Java.
fn tool(program: &str, args: &[&str]) -> String {
    let mut command = if program == "epubcheck" {
        let mut java = Command::new("java");
        java.args(["-jar", "/usr/share/java/epubcheck.jar"]);
        java
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("`{program}` (scripts/setup installs it): {error}"));
    assert!(
        output.status.success(),
        "`{program} {}` failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_stamped_pdf_keeps_everything_and_its_mark_survives_cuts_and_resaves() {
    let dir = tempfile::tempdir().unwrap();
    for (name, original) in [
        ("plain", books::pdf(120)),
        // The same book as qpdf writes it with object and cross-reference
        // streams: the update must follow it.
        ("streams", {
            let plain = dir.path().join("in.pdf");
            std::fs::write(&plain, books::pdf(120)).unwrap();
            let out = dir.path().join("streams-in.pdf");
            tool(
                "qpdf",
                &["--object-streams=generate", path(&plain), path(&out)],
            );
            std::fs::read(out).unwrap()
        }),
    ] {
        let tail = shop::stamp::pdf_tail(original.clone(), "guide.pdf", &licence()).unwrap();
        assert!(
            tail.len() < 64 * 1024,
            "{name}: a tail of {} bytes",
            tail.len()
        );
        let copy = [original.clone(), tail].concat();
        let file = dir.path().join(format!("{name}.pdf"));
        std::fs::write(&file, &copy).unwrap();
        let check = tool("qpdf", &["--check", path(&file)]);
        assert!(
            check.contains("No syntax or stream encoding errors"),
            "{name}: {check}"
        );
        let first = tool("pdftotext", &["-f", "1", "-l", "1", path(&file), "-"]);
        assert!(
            first.contains("Licensed to ada@example.com"),
            "{name}: {first}"
        );
        assert!(
            first.contains("Chapter 1 - page 1"),
            "{name}: the page's own text is gone"
        );
        let second = tool("pdftotext", &["-f", "2", "-l", "2", path(&file), "-"]);
        assert!(!second.contains("Licensed to"), "{name}: {second}");
        assert_eq!(
            books::outline_and_links(&copy),
            books::outline_and_links(&original),
            "{name}: the outline or the links changed"
        );
        assert_eq!(books::outline_and_links(&original), (12, 119));
        let info = tool("qpdf", &["--json", "--json-key=pages", path(&file)]);
        assert!(info.contains("\"pages\""), "{name}");
        assert_eq!(shop::stamp::pdf_marks(&copy), vec![licence().mark]);

        // The visible line's page cut off, and the file re-saved: the mark stays.
        let cut = dir.path().join(format!("{name}-cut.pdf"));
        tool(
            "qpdf",
            &[path(&file), "--pages", ".", "2-z", "--", path(&cut)],
        );
        let resaved = dir.path().join(format!("{name}-resaved.pdf"));
        tool(
            "qpdf",
            &[
                "--object-streams=generate",
                "--compress-streams=y",
                path(&cut),
                path(&resaved),
            ],
        );
        for file in [&cut, &resaved] {
            let bytes = std::fs::read(file).unwrap();
            assert_eq!(
                shop::stamp::pdf_marks(&bytes),
                vec![licence().mark],
                "{name}: no mark in {}",
                file.display()
            );
        }
        // No mark on what was never stamped.
        assert!(shop::stamp::pdf_marks(&original).is_empty());
    }
}

#[test]
fn every_page_gets_the_footer_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let original = books::pdf(5);
    let licence = shop::stamp::Licence {
        every_page: true,
        ..licence()
    };
    let copy = [
        original.clone(),
        shop::stamp::pdf_tail(original, "g.pdf", &licence).unwrap(),
    ]
    .concat();
    let file = dir.path().join("every.pdf");
    std::fs::write(&file, copy).unwrap();
    for page in 1..=5 {
        let page = page.to_string();
        let text = tool("pdftotext", &["-f", &page, "-l", &page, path(&file), "-"]);
        assert!(
            text.contains("Licensed to ada@example.com"),
            "page {page}: {text}"
        );
    }
}

#[test]
fn a_stamped_epub_passes_epubcheck_with_an_ex_libris_page_first() {
    let dir = tempfile::tempdir().unwrap();
    let original = books::epub();
    let plain = dir.path().join("plain.epub");
    std::fs::write(&plain, &original).unwrap();
    tool("epubcheck", &["-q", path(&plain)]);
    let copy = shop::stamp::epub(&original, "guide.epub", &licence()).unwrap();
    let file = dir.path().join("stamped.epub");
    std::fs::write(&file, &copy).unwrap();
    tool("epubcheck", &["-q", path(&file)]);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&copy)).unwrap();
    assert_eq!(archive.by_index(0).unwrap().name(), "mimetype");
    let mut package = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("OEBPS/content.opf").unwrap(),
        &mut package,
    )
    .unwrap();
    let spine = &package[package.find("<spine>").unwrap()..];
    assert!(
        spine.find("shop-ex-libris").unwrap() < spine.find("\"c1\"").unwrap(),
        "the ex-libris page is not first:\n{package}"
    );
    let mut page = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("OEBPS/shop-ex-libris.xhtml").unwrap(),
        &mut page,
    )
    .unwrap();
    assert!(
        page.contains("Licensed to ada@example.com · order NilK0Vl"),
        "{page}"
    );
    assert_eq!(shop::stamp::epub_mark(&copy), vec![licence().mark]);
    assert!(shop::stamp::epub_mark(&original).is_empty());
}

/// The body of a GET.
fn whole_body(served: &crate::support::served::Served, url: &str) -> Vec<u8> {
    served.runtime.block_on(async {
        let response = served.http.get(url).send().await.unwrap();
        response.bytes().await.unwrap().to_vec()
    })
}

#[test]
fn buyers_download_their_own_stamped_copies_made_once_within_the_limit() {
    use crate::support::served::Served;
    use reqwest::StatusCode;
    let pdf = books::pdf(60);
    let epub = books::epub();
    let served = Served::start_selling(
        &[("guide.pdf", pdf.clone()), ("guide.epub", epub.clone())],
        |test| {
            let product = test.read("products/guide.toml");
            test.write("products/guide.toml", &format!("{product}stamp = true\n"));
        },
    );
    let page = served.buy("ada@example.com");
    // Eight first downloads at once: one copy made, five served, all the same.
    let url = format!("{}{page}/guide.pdf", served.url);
    let answers: Vec<(StatusCode, Vec<u8>)> = served.runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (client, url) = (served.http.clone(), url.clone());
                tokio::spawn(async move {
                    let response = client.get(url).send().await.unwrap();
                    (response.status(), response.bytes().await.unwrap().to_vec())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    });
    let copies: Vec<&Vec<u8>> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        copies.len(),
        5,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(copies.iter().all(|copy| *copy == copies[0]));
    let copy = copies[0].clone();
    assert!(copy.len() > pdf.len() && copy.starts_with(&pdf));
    let tails = std::fs::read_dir(served.test.path().join(".shop/stamped"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "tail"))
        .count();
    assert_eq!(tails, 1, "more than one copy was made");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.pdf");
    std::fs::write(&file, &copy).unwrap();
    tool("qpdf", &["--check", path(&file)]);
    let text = tool("pdftotext", &["-f", "1", "-l", "1", path(&file), "-"]);
    assert!(text.contains("Licensed to ada@example.com"), "{text}");
    // The download page shows the copy's size and checksum.
    let html = served.body(served.get(&page));
    assert!(
        html.contains(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&copy))),
        "{html}"
    );

    // The EPUB: a range of the copy, then the whole copy, valid.
    let epub_url = format!("{}{page}/guide.epub", served.url);
    let part = served.runtime.block_on(async {
        let response = served
            .http
            .get(&epub_url)
            .header("Range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        response.bytes().await.unwrap().to_vec()
    });
    let whole = whole_body(&served, &epub_url);
    assert_eq!(part, whole[100..200]);
    assert_ne!(whole, epub);
    let file = dir.path().join("copy.epub");
    std::fs::write(&file, &whole).unwrap();
    tool("epubcheck", &["-q", path(&file)]);

    // Whose copy: found from the copy, from it without its first page, and
    // from it re-saved; and from the EPUB.
    let session = served.session_of(&page);
    let order = &shop::ledger::order_number(&session);
    let pdf_file = dir.path().join("copy.pdf");
    let cut = dir.path().join("cut.pdf");
    tool(
        "qpdf",
        &[path(&pdf_file), "--pages", ".", "2-z", "--", path(&cut)],
    );
    let resaved = dir.path().join("resaved.pdf");
    tool(
        "qpdf",
        &["--object-streams=generate", path(&cut), path(&resaved)],
    );
    for found in [&pdf_file, &cut, &resaved, &file] {
        served
            .test
            .shop(&["trace", path(found)])
            .success()
            .stdout_has(&["is the copy of ada@example.com", order]);
    }
    let unstamped = dir.path().join("original.pdf");
    std::fs::write(&unstamped, &pdf).unwrap();
    served
        .test
        .shop(&["trace", path(&unstamped)])
        .code(1)
        .stderr_has(&["carries no mark of this shop", "hint: "]);

    // Another buyer's copy carries another mark.
    let other = served.buy("grace@example.com");
    let theirs = whole_body(&served, &format!("{}{other}/guide.pdf", served.url));
    let (mine, theirs) = (
        shop::stamp::pdf_marks(&copy),
        shop::stamp::pdf_marks(&theirs),
    );
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_ne!(mine, theirs);
}

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

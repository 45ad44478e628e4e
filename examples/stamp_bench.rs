//! The stamping benchmark's tools (`scripts/bench stamp`), built from the
//! same code as `shop serve` and the tests:
//!
//!     stamp_bench book OUT PAGES FIGURE   # a book with an outline, links and a figure a page
//!     stamp_bench stamp-page OUT TEXT     # a one-page PDF with the line, for `qpdf --overlay`
//!     stamp_bench stamp IN OUT [every-page]
//!                                         # shop's stamping: OUT is IN and the buyer's tail

#[allow(dead_code)]
#[path = "../tests/support/books.rs"]
mod books;

use std::io::Write;
use std::process::ExitCode;

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

const TEXT: &str = "Licensed to reader@example.com · order 4F2A-19C7 · 2026-12-05";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["book", out, pages, figure] => book(out, pages, figure),
        ["stamp-page", out] => std::fs::write(out, stamp_page(TEXT)).map_err(|e| e.to_string()),
        ["stamp", input, out] => stamp(input, out, false),
        ["stamp", input, out, "every-page"] => stamp(input, out, true),
        _ => Err(
            "usage: stamp_bench book OUT PAGES FIGURE | stamp-page OUT | stamp IN OUT [every-page]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn book(out: &str, pages: &str, figure: &str) -> Result<(), String> {
    let pages = pages.parse().map_err(|_| "PAGES is a number")?;
    let figure = figure.parse().map_err(|_| "FIGURE is a number")?;
    std::fs::write(out, books::pdf_with_figures(pages, figure)).map_err(|e| e.to_string())
}

/// What `shop serve` does for a buyer's first download of a PDF: read the
/// original, make the tail; the copy on disk is the original and the tail.
fn stamp(input: &str, out: &str, every_page: bool) -> Result<(), String> {
    let original = std::fs::read(input).map_err(|e| e.to_string())?;
    let licence = shop::stamp::Licence {
        text: TEXT.into(),
        mark: "shop-0123456789abcdef0123".into(),
        every_page,
    };
    let tail = shop::stamp::pdf_tail(original, input, &licence).map_err(|e| e.to_string())?;
    std::fs::copy(input, out).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(out)
        .map_err(|e| e.to_string())?;
    file.write_all(&tail).map_err(|e| e.to_string())
}

/// One US Letter page with the line where shop puts it, in the same font.
fn stamp_page(text: &str) -> Vec<u8> {
    let mut document = Document::with_version("1.7");
    let pages = document.new_object_id();
    let font = document.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    // Latin-1, with which WinAnsi agrees for the letters of the line.
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 8.into()]),
            Operation::new("rg", vec![0.35.into(), 0.35.into(), 0.35.into()]),
            Operation::new("Td", vec![24.into(), 14.into()]),
            Operation::new("Tj", vec![Object::string_literal(latin1)]),
            Operation::new("ET", vec![]),
        ],
    };
    let content = document.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
    let page = document.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages, "Contents" => content,
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
    });
    document.objects.insert(
        pages,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    document.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

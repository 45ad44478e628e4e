//! Real books for the stamping tests: a PDF of many pages with an outline,
//! links and document information (written with lopdf), and an EPUB 3
//! with a navigation document (written with zip), both valid for `qpdf
//! --check` and `epubcheck`.

use std::io::Write;

use lopdf::content::{Content, Operation};
use lopdf::{Bookmark, Document, Object, Stream, dictionary};

/// A PDF of `pages` pages: text on each, a bookmark every ten pages, a
/// link on each page to the next, a title and an author.
pub fn pdf(pages: usize) -> Vec<u8> {
    pdf_with_figures(pages, 0)
}

/// [`pdf`] with a grey figure of `figure` × `figure` pixels of noise on
/// every page (noise does not compress, as a photograph's bytes do not):
/// a real book's size comes from its figures.
pub fn pdf_with_figures(pages: usize, figure: usize) -> Vec<u8> {
    let mut document = Document::with_version("1.7");
    let pages_id = document.new_object_id();
    let font = document.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Times-Roman",
    });
    let fonts = dictionary! { "F1" => font };
    let resources = document.add_object(dictionary! { "Font" => fonts.clone() });
    // xorshift: noise without a dependency, the same on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = |length: usize| -> Vec<u8> {
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let ids: Vec<_> = (0..pages).map(|_| document.new_object_id()).collect();
    for (index, id) in ids.iter().enumerate() {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
            Operation::new("TL", vec![14.into()]),
        ];
        operations.push(Operation::new(
            "Tj",
            vec![Object::string_literal(format!(
                "Chapter {} - page {}",
                index / 10 + 1,
                index + 1
            ))],
        ));
        for line in 0..40 {
            operations.push(Operation::new("T*", vec![]));
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(format!(
                    "Line {line} of a page about walking in the valley, with words enough to fill it."
                ))],
            ));
        }
        operations.push(Operation::new("ET", vec![]));
        let mut own_resources = None;
        if figure > 0 {
            let mut image = Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Image",
                    "Width" => figure as i64, "Height" => figure as i64,
                    "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
                },
                noise(figure * figure),
            );
            image.compress().unwrap();
            let image = document.add_object(image);
            own_resources = Some(dictionary! {
                "Font" => fonts.clone(),
                "XObject" => dictionary! { "Fig" => image },
            });
            operations.extend([
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![
                        300.into(),
                        0.into(),
                        0.into(),
                        200.into(),
                        150.into(),
                        80.into(),
                    ],
                ),
                Operation::new("Do", vec!["Fig".into()]),
                Operation::new("Q", vec![]),
            ]);
        }
        let content = Content { operations };
        let mut stream = Stream::new(dictionary! {}, content.encode().unwrap());
        stream.compress().unwrap();
        let content = document.add_object(stream);
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content,
        };
        if let Some(own) = own_resources {
            page.set("Resources", own);
        }
        if let Some(next) = ids.get(index + 1) {
            page.set(
                "Annots",
                vec![Object::Dictionary(dictionary! {
                    "Type" => "Annot", "Subtype" => "Link",
                    "Rect" => vec![72.into(), 60.into(), 200.into(), 80.into()],
                    "Border" => vec![0.into(), 0.into(), 0.into()],
                    "Dest" => vec![(*next).into(), "Fit".into()],
                })],
            );
        }
        document.objects.insert(*id, Object::Dictionary(page));
    }
    document.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => ids.iter().map(|id| Object::Reference(*id)).collect::<Vec<_>>(),
            "Count" => pages as i64,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    for (chapter, id) in ids.iter().step_by(10).enumerate() {
        document.add_bookmark(
            Bookmark::new(format!("Chapter {}", chapter + 1), [0.0, 0.0, 0.0], 0, *id),
            None,
        );
    }
    let outline = document.build_outline();
    let mut catalog = dictionary! { "Type" => "Catalog", "Pages" => pages_id };
    if let Some(outline) = outline {
        catalog.set("Outlines", outline);
    }
    let catalog = document.add_object(catalog);
    document.trailer.set("Root", catalog);
    let info = document.add_object(dictionary! {
        "Title" => Object::string_literal("The Field Guide"),
        "Author" => Object::string_literal("A. Walker"),
    });
    document.trailer.set("Info", info);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

/// The outline entries and link annotations of a PDF, as lopdf reads them.
pub fn outline_and_links(bytes: &[u8]) -> (usize, usize) {
    let document = Document::load_mem(bytes).unwrap();
    let outline = document
        .get_toc()
        .map(|toc| toc.toc.len())
        .unwrap_or_default();
    let links = document
        .page_iter()
        .map(|page| {
            document
                .get_page_annotations(page)
                .map(|annotations| annotations.len())
                .unwrap_or_default()
        })
        .sum();
    (outline, links)
}

/// An EPUB 3 of three chapters with a navigation document.
pub fn epub() -> Vec<u8> {
    epub_padded(0)
}

/// [`epub`] with an image of `padding` bytes (stored, not compressed),
/// for a book of a size a test needs.
pub fn epub_padded(padding: usize) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    zip.start_file("META-INF/container.xml", deflated).unwrap();
    zip.write_all(
        br#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>
"#,
    )
    .unwrap();
    let chapters = 3;
    let mut manifest = String::new();
    if padding > 0 {
        zip.start_file("OEBPS/plate.png", stored).unwrap();
        let bytes: Vec<u8> = (0..padding).map(|i| (i * 31 % 251) as u8).collect();
        zip.write_all(&bytes).unwrap();
        manifest.push_str("    <item id=\"plate\" href=\"plate.png\" media-type=\"image/png\"/>\n");
    }
    let mut spine = String::new();
    let mut nav = String::new();
    for n in 1..=chapters {
        manifest.push_str(&format!(
            "    <item id=\"c{n}\" href=\"chapter{n}.xhtml\" media-type=\"application/xhtml+xml\"/>\n"
        ));
        spine.push_str(&format!("    <itemref idref=\"c{n}\"/>\n"));
        nav.push_str(&format!(
            "<li><a href=\"chapter{n}.xhtml\">Chapter {n}</a></li>"
        ));
        zip.start_file(format!("OEBPS/chapter{n}.xhtml"), deflated)
            .unwrap();
        zip.write_all(
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n\
                 <html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\" xml:lang=\"en\">\n\
                 <head><title>Chapter {n}</title></head>\n\
                 <body><h1>Chapter {n}</h1><p>The valley's paths, part {n}.</p></body>\n</html>\n"
            )
            .as_bytes(),
        )
        .unwrap();
    }
    zip.start_file("OEBPS/nav.xhtml", deflated).unwrap();
    zip.write_all(
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n\
             <html xmlns=\"http://www.w3.org/1999/xhtml\" xmlns:epub=\"http://www.idpf.org/2007/ops\" lang=\"en\" xml:lang=\"en\">\n\
             <head><title>Contents</title></head>\n\
             <body><nav epub:type=\"toc\" id=\"toc\"><h1>Contents</h1><ol>{nav}</ol></nav></body>\n</html>\n"
        )
        .as_bytes(),
    )
    .unwrap();
    zip.start_file("OEBPS/content.opf", deflated).unwrap();
    zip.write_all(
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <package xmlns=\"http://www.idpf.org/2007/opf\" version=\"3.0\" unique-identifier=\"uid\">\n\
             <metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n\
             <dc:identifier id=\"uid\">urn:uuid:6f1d3c2e-0b7a-4c2e-9a59-1f2d3c4b5a69</dc:identifier>\n\
             <dc:title>The Field Guide</dc:title>\n<dc:language>en</dc:language>\n\
             <meta property=\"dcterms:modified\">2026-12-01T00:00:00Z</meta>\n\
             </metadata>\n<manifest>\n\
             <item id=\"nav\" href=\"nav.xhtml\" media-type=\"application/xhtml+xml\" properties=\"nav\"/>\n\
             {manifest}</manifest>\n<spine>\n{spine}</spine>\n</package>\n"
        )
        .as_bytes(),
    )
    .unwrap();
    zip.finish().unwrap().into_inner()
}

/// The text `pdftotext` reads on the first page of a PDF.
pub fn first_page_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.pdf");
    std::fs::write(&file, pdf).unwrap();
    let output = std::process::Command::new("pdftotext")
        .args(["-f", "1", "-l", "1", file.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (scripts/setup installs it)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

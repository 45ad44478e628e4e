//! Stamping an EPUB: an ex-libris page at the front of the spine, and the
//! mark in the package metadata. Every other entry is copied as it is
//! (compressed bytes and all); `mimetype` stays first and stored, as OCF
//! requires.

use std::io::{Cursor, Read, Write};

use zip::ZipArchive;
use zip::write::{SimpleFileOptions, ZipWriter};

use super::{Licence, StampError};
use crate::html;

/// The ex-libris page's manifest id and file name.
const ID: &str = "shop-ex-libris";
const FILE: &str = "shop-ex-libris.xhtml";
/// The package metadata's name for the mark.
const META: &str = "shop:license";

/// The buyer's copy of an EPUB.
pub fn epub(original: &[u8], name: &str, licence: &Licence) -> Result<Vec<u8>, StampError> {
    let error = |reason: String| StampError::Epub {
        name: name.to_owned(),
        reason,
    };
    let mut archive = ZipArchive::new(Cursor::new(original)).map_err(|e| error(e.to_string()))?;
    let container = read_entry(&mut archive, "META-INF/container.xml")
        .ok_or_else(|| error("it has no `META-INF/container.xml`".into()))?;
    let package_path = attribute_of(&container, "rootfile", "full-path")
        .ok_or_else(|| error("its container names no package document".into()))?;
    let package = read_entry(&mut archive, &package_path)
        .ok_or_else(|| error(format!("it has no package document `{package_path}`")))?;
    let epub3 = attribute_of(&package, "package", "version").is_some_and(|v| v.starts_with('3'));
    let stamped_package = stamp_package(&package, &licence.mark)
        .ok_or_else(|| error("its package document has no manifest, spine or metadata".into()))?;
    let folder = package_path
        .rsplit_once('/')
        .map_or(String::new(), |(folder, _)| format!("{folder}/"));

    let mut out = ZipWriter::new(Cursor::new(Vec::with_capacity(original.len() + 4096)));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let zip_error = |e: zip::result::ZipError| error(e.to_string());
    let io_error = |e: std::io::Error| error(e.to_string());
    out.start_file("mimetype", stored).map_err(zip_error)?;
    out.write_all(b"application/epub+zip").map_err(io_error)?;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(zip_error)?;
        let entry_name = entry.name().to_owned();
        if entry_name == "mimetype" || entry_name == format!("{folder}{FILE}") {
            continue;
        }
        if entry_name == package_path {
            drop(entry);
            out.start_file(entry_name, deflated).map_err(zip_error)?;
            out.write_all(stamped_package.as_bytes())
                .map_err(io_error)?;
            continue;
        }
        out.raw_copy_file(entry).map_err(zip_error)?;
    }
    out.start_file(format!("{folder}{FILE}"), deflated)
        .map_err(zip_error)?;
    out.write_all(ex_libris(&licence.text, &licence.mark, epub3).as_bytes())
        .map_err(io_error)?;
    let bytes = out.finish().map_err(zip_error)?.into_inner();
    Ok(bytes)
}

/// The mark an EPUB carries, for `shop trace`.
pub fn epub_mark(bytes: &[u8]) -> Vec<String> {
    let Ok(mut archive) = ZipArchive::new(Cursor::new(bytes)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for index in 0..archive.len() {
        let Ok(mut entry) = archive.by_index(index) else {
            continue;
        };
        let name = entry.name().to_ascii_lowercase();
        if !(name.ends_with(".opf") || name.ends_with(".xhtml") || name.ends_with(".html")) {
            continue;
        }
        let mut text = String::new();
        if entry.read_to_string(&mut text).is_ok() {
            found.extend(marks_in(&text));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Every `shop-` followed by 20 hex digits in `text`.
pub(super) fn marks_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("shop-") {
        let candidate = &rest[at..];
        let digits = candidate[5..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        if digits == 20 {
            found.push(candidate[..25].to_owned());
        }
        rest = &rest[at + 5..];
    }
    found
}

fn read_entry<R: Read + std::io::Seek>(archive: &mut ZipArchive<R>, name: &str) -> Option<String> {
    let mut entry = archive.by_name(name).ok()?;
    let mut text = String::new();
    entry.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The value of `attribute` on the first `<element …>` (any namespace
/// prefix) in an XML text.
fn attribute_of(xml: &str, element: &str, attribute: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(tag) | quick_xml::events::Event::Empty(tag)
                if tag.local_name().into_inner() == element =>
            {
                for found in tag.attributes().flatten() {
                    if found.key.local_name().into_inner() == attribute {
                        return found
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned());
                    }
                }
                return None;
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// The package document with the ex-libris page in the manifest, first in
/// the spine, and the mark in the metadata. Written with quick-xml, event
/// by event, so that everything else stays as it was.
fn stamp_package(package: &str, mark: &str) -> Option<String> {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(package);
    let mut writer = quick_xml::Writer::new(Cursor::new(Vec::with_capacity(package.len() + 512)));
    let (mut manifest, mut spine, mut metadata) = (false, false, false);
    loop {
        let event = reader.read_event().ok()?;
        match &event {
            Event::Eof => break,
            Event::End(tag) if tag.local_name().into_inner() == "metadata" => {
                let prefix = prefix_of(tag.name().into_inner());
                let mut meta = BytesStart::new(format!("{prefix}meta"));
                meta.push_attribute(("name", META));
                meta.push_attribute(("content", mark));
                writer.write_event(Event::Empty(meta)).ok()?;
                metadata = true;
            }
            Event::End(tag) if tag.local_name().into_inner() == "manifest" => {
                let prefix = prefix_of(tag.name().into_inner());
                let mut item = BytesStart::new(format!("{prefix}item"));
                item.push_attribute(("id", ID));
                item.push_attribute(("href", FILE));
                item.push_attribute(("media-type", "application/xhtml+xml"));
                writer.write_event(Event::Empty(item)).ok()?;
                manifest = true;
            }
            _ => {}
        }
        writer.write_event(event.borrow()).ok()?;
        if let Event::Start(tag) = &event
            && tag.local_name().into_inner() == "spine"
        {
            let prefix = prefix_of(tag.name().into_inner());
            let mut itemref = BytesStart::new(format!("{prefix}itemref"));
            itemref.push_attribute(("idref", ID));
            writer.write_event(Event::Empty(itemref)).ok()?;
            spine = true;
        }
    }
    (manifest && spine && metadata)
        .then(|| String::from_utf8(writer.into_inner().into_inner()).ok())
        .flatten()
}

/// `opf:` in `opf:spine`, or nothing.
fn prefix_of(name: &str) -> String {
    name.rsplit_once(':')
        .map_or(String::new(), |(prefix, _)| format!("{prefix}:"))
}

/// The ex-libris page: XHTML 5 for EPUB 3, XHTML 1.1 for EPUB 2.
fn ex_libris(text: &str, mark: &str, epub3: bool) -> String {
    let text = html::escape(text);
    let body = format!(
        "<div style=\"margin-top:40%;text-align:center;font-size:0.9em;color:#555\">\n\
         <p>{text}</p>\n<p style=\"font-size:0.1em;color:#fff\">{mark}</p>\n</div>"
    );
    if epub3 {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n\
             <html xmlns=\"http://www.w3.org/1999/xhtml\" xmlns:epub=\"http://www.idpf.org/2007/ops\" lang=\"en\" xml:lang=\"en\">\n\
             <head><meta charset=\"UTF-8\"/><title>Ex libris</title></head>\n\
             <body><section epub:type=\"frontmatter\">\n{body}\n</section></body>\n</html>\n"
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.1//EN\" \"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd\">\n\
             <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\">\n\
             <head><title>Ex libris</title></head>\n<body>\n{body}\n</body>\n</html>\n"
        )
    }
}

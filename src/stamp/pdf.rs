//! Stamping a PDF by an incremental update, with lopdf: the original is
//! parsed (to find the pages, their boxes, contents and resources) but
//! never rewritten; the update adds one font, a few content streams, the
//! changed page dictionaries and the document information.

use std::collections::HashMap;
use std::io::Write;

use lopdf::{Dictionary, Document, IncrementalDocument, Object, ObjectId, Stream, dictionary};

use super::{Licence, StampError};

/// The resource name of the stamp's font on each page.
const FONT: &str = "ShopStamp";
/// The document information key holding the mark.
const INFO_KEY: &str = "ShopLicense";

/// The bytes to append to `original` (a PDF) to make the buyer's copy.
/// Takes the original by value: it becomes the update's base without a
/// second copy in memory.
pub fn pdf_tail(original: Vec<u8>, name: &str, licence: &Licence) -> Result<Vec<u8>, StampError> {
    let error = |reason: String| StampError::Pdf {
        name: name.to_owned(),
        reason,
    };
    let document = Document::load_mem(&original).map_err(|e| error(e.to_string()))?;
    if document.is_encrypted() {
        return Err(error("it is encrypted".into()));
    }
    let pages: Vec<ObjectId> = document.get_pages().into_values().collect();
    if pages.is_empty() {
        return Err(error("it has no pages".into()));
    }
    let boxes: Vec<[f32; 4]> = pages.iter().map(|id| page_box(&document, *id)).collect();
    let contents: Vec<Vec<Object>> = pages
        .iter()
        .map(|id| page_contents(&document, *id))
        .collect();
    let info = document
        .trailer
        .get(b"Info")
        .and_then(Object::as_reference)
        .ok();
    let length = original.len();
    let mut update = IncrementalDocument::create_from(original, document);
    let new = &mut update.new_document;
    let font = new.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    // The page's own drawing is put inside `q … Q`, so that whatever state
    // it leaves (a scale, a clip, a colour) does not move or hide the line.
    let open = new.add_object(Stream::new(Dictionary::new(), b"q\n".to_vec()));
    let text = pdf_string(&licence.text);
    let mark = pdf_string(&licence.mark);
    // Pages of the same size share their stamp stream.
    let mut stamps: HashMap<(bool, [u32; 4]), ObjectId> = HashMap::new();
    for (index, page) in pages.iter().enumerate() {
        let visible = index == 0 || licence.every_page;
        let bounds = boxes[index];
        let key = (visible, bounds.map(f32::to_bits));
        let stamp = *stamps.entry(key).or_insert_with(|| {
            let content = stamp_content(bounds, visible.then_some(&text[..]), &mark, index == 0);
            update
                .new_document
                .add_object(Stream::new(Dictionary::new(), content.into_bytes()))
        });
        let mut page_contents = Vec::with_capacity(contents[index].len() + 2);
        page_contents.push(Object::Reference(open));
        page_contents.extend(contents[index].iter().cloned());
        page_contents.push(Object::Reference(stamp));
        add_font(&mut update, *page, font).map_err(|e| error(e.to_string()))?;
        update
            .new_document
            .get_object_mut(*page)
            .and_then(Object::as_dict_mut)
            .map_err(|e| error(e.to_string()))?
            .set("Contents", Object::Array(page_contents));
    }

    // The mark in the document information too (kept by re-saving tools,
    // and by removing pages).
    match info {
        Some(id) if update.get_prev_documents().get_dictionary(id).is_ok() => {
            update
                .opt_clone_object_to_new_document(id)
                .map_err(|e| error(e.to_string()))?;
            let dict = update
                .new_document
                .get_dictionary_mut(id)
                .map_err(|e| error(e.to_string()))?;
            dict.set(INFO_KEY, Object::string_literal(licence.mark.as_bytes()));
        }
        _ => {
            let id = update.new_document.add_object(dictionary! {
                INFO_KEY => Object::string_literal(licence.mark.as_bytes()),
            });
            update
                .new_document
                .trailer
                .set("Info", Object::Reference(id));
        }
    }

    let mut tail = Tail {
        skip: length,
        bytes: Vec::with_capacity(4096 + pages.len() * 256),
    };
    update
        .save_to(&mut tail)
        .map_err(|e| error(e.to_string()))?;
    Ok(tail.bytes)
}

/// Keeps only what is written after the first `skip` bytes: the update,
/// written by lopdf with offsets counted from the start of the whole file.
struct Tail {
    skip: usize,
    bytes: Vec<u8>,
}

impl Write for Tail {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let skipped = self.skip.min(buffer.len());
        self.skip -= skipped;
        self.bytes.extend_from_slice(&buffer[skipped..]);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The drawing added at the end of a page: close the page's own state,
/// then the visible line (if any) and the invisible mark (text render
/// mode 3: in the page's text, never painted).
fn stamp_content(bounds: [f32; 4], text: Option<&str>, mark: &str, first: bool) -> String {
    let [left, bottom, right, _] = bounds;
    let (x, y) = (left + 24.0, bottom + 14.0);
    let size = if first { 8 } else { 6 };
    let mut content = String::from("Q\nq\n");
    if let Some(text) = text {
        content.push_str(&format!(
            "BT\n/{FONT} {size} Tf\n0.35 0.35 0.35 rg\n1 0 0 1 {x:.2} {y:.2} Tm\n({text}) Tj\nET\n"
        ));
    }
    content.push_str(&format!(
        "BT\n/{FONT} 1 Tf\n3 Tr\n1 0 0 1 {:.2} {:.2} Tm\n({mark}) Tj\nET\nQ\n",
        (right - 60.0).max(left),
        bottom + 2.0
    ));
    content
}

/// A PDF literal string's inside, in WinAnsi (Latin-1 for the letters a
/// stamp has; anything else becomes `?`), escaped.
fn pdf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (' '..='~').contains(&c) => out.push(c),
            // Octal escapes keep the content stream ASCII.
            c if ('\u{a0}'..='\u{ff}').contains(&c) => out.push_str(&format!("\\{:03o}", c as u32)),
            _ => out.push('?'),
        }
    }
    out
}

/// A page's visible box (CropBox, else MediaBox, inherited through the
/// page tree), or US Letter when it has none.
fn page_box(document: &Document, page: ObjectId) -> [f32; 4] {
    let mut current = document.get_dictionary(page).ok();
    for _ in 0..64 {
        let Some(dict) = current else { break };
        for key in [&b"CropBox"[..], b"MediaBox"] {
            let found = dict.get(key).ok().and_then(|object| match object {
                Object::Reference(id) => document.get_object(*id).ok(),
                other => Some(other),
            });
            if let Some(Object::Array(values)) = found
                && values.len() == 4
            {
                let numbers: Vec<f32> = values.iter().filter_map(|v| v.as_float().ok()).collect();
                if numbers.len() == 4 {
                    return [
                        numbers[0].min(numbers[2]),
                        numbers[1].min(numbers[3]),
                        numbers[0].max(numbers[2]),
                        numbers[1].max(numbers[3]),
                    ];
                }
            }
        }
        current = dict
            .get(b"Parent")
            .and_then(Object::as_reference)
            .and_then(|id| document.get_dictionary(id))
            .ok();
    }
    [0.0, 0.0, 612.0, 792.0]
}

/// A page's content streams, as references, in order.
fn page_contents(document: &Document, page: ObjectId) -> Vec<Object> {
    let Ok(dict) = document.get_dictionary(page) else {
        return Vec::new();
    };
    match dict.get(b"Contents") {
        Ok(Object::Reference(id)) => match document.get_object(*id) {
            Ok(Object::Array(items)) => items.clone(),
            Ok(_) => vec![Object::Reference(*id)],
            Err(_) => Vec::new(),
        },
        Ok(Object::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// Adds the stamp's font to a page's resources (its own, or a copy of what
/// it inherits), whichever way the resources are stored.
fn add_font(update: &mut IncrementalDocument, page: ObjectId, font: ObjectId) -> lopdf::Result<()> {
    let fonts = {
        let resources = update.get_or_create_resources(page)?.as_dict_mut()?;
        if !resources.has(b"Font") {
            resources.set("Font", Dictionary::new());
        }
        match resources.get(b"Font")? {
            Object::Reference(id) => Some(*id),
            _ => None,
        }
    };
    let fonts = match fonts {
        Some(id) => {
            update.opt_clone_object_to_new_document(id)?;
            update.new_document.get_object_mut(id)?
        }
        None => update
            .get_or_create_resources(page)?
            .as_dict_mut()?
            .get_mut(b"Font")?,
    };
    fonts.as_dict_mut()?.set(FONT, Object::Reference(font));
    Ok(())
}

/// The marks a PDF carries (in its document information or any page's
/// text), for `shop trace`.
pub fn pdf_marks(bytes: &[u8]) -> Vec<String> {
    let Ok(document) = Document::load_mem(bytes) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Ok(Object::Reference(id)) = document.trailer.get(b"Info")
        && let Ok(info) = document.get_dictionary(*id)
        && let Ok(Object::String(mark, _)) = info.get(INFO_KEY.as_bytes())
    {
        found.extend(super::epub::marks_in(&String::from_utf8_lossy(mark)));
    }
    for page in document.page_iter() {
        let content = document.get_page_content(page);
        found.extend(super::epub::marks_in(&String::from_utf8_lossy(&content)));
    }
    found.sort();
    found.dedup();
    found
}

//! Stamped copies ("social DRM"): each buyer's PDF and EPUB says whose it
//! is, and carries a mark that `shop trace` matches to the purchase even
//! after the visible line is cut off or the file is re-saved.
//!
//! - PDF (`pdf.rs`): an incremental update (ISO 32000-1, 7.5.6) appended to
//!   the original: the original bytes are kept as they are (outline, links,
//!   labels, metadata, attachments untouched), and only the pages' new
//!   content and the document information are added. So a copy is the
//!   original followed by a tail of a few kilobytes per hundred pages, and
//!   only the tail is kept per buyer.
//! - EPUB (`epub.rs`): an ex-libris page at the front of the spine and the
//!   mark in the package metadata; every other entry is copied as it is.

mod epub;
mod pdf;

use crate::error;
use crate::error::Registered;
pub use epub::{epub, epub_mark};
pub use pdf::{pdf_marks, pdf_tail};

/// What a copy says and carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    /// The visible line, such as `Licensed to ada@example.com · order …`.
    pub text: String,
    /// The invisible mark (`tokens::stamp_mark`).
    pub mark: String,
    /// The line on every page as a small footer, not only the first.
    pub every_page: bool,
}

/// The formats shop stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Epub,
}

impl Format {
    /// The format of a file, from its name.
    pub fn of(name: &str) -> Option<Format> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "pdf" => Some(Format::Pdf),
            "epub" => Some(Format::Epub),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StampError {
    #[error("`{name}` is not a PDF shop can stamp: {reason}")]
    Pdf { name: String, reason: String },
    #[error("`{name}` is not an EPUB shop can stamp: {reason}")]
    Epub { name: String, reason: String },
}

inventory::submit!(Registered::of::<StampError>());

impl error::Hint for StampError {
    fn hint(&self) -> String {
        "check the file with `qpdf --check` or `epubcheck`, or set `stamp = false` for this product"
            .into()
    }
}

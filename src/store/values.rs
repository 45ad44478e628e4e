//! Values that both `shop.toml` and a product file hold (`stamp` and its
//! text, `download_limit`, a name buyers read), parsed and checked one way,
//! so that neither parser reaches into the other.

/// How a product's PDF and EPUB files are stamped with the buyer's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampMode {
    Off,
    /// The line on the first page (PDF) or an ex-libris page (EPUB).
    FirstPage,
    /// Also a small footer on every page of a PDF.
    EveryPage,
}

impl StampMode {
    /// `true`, `false` or `"every-page"`, as the files write it.
    pub fn parse(value: &toml::Value) -> Result<StampMode, String> {
        match value {
            toml::Value::Boolean(true) => Ok(StampMode::FirstPage),
            toml::Value::Boolean(false) => Ok(StampMode::Off),
            toml::Value::String(text) if text == "every-page" => Ok(StampMode::EveryPage),
            other => Err(format!("`{other}` is not a stamp setting")),
        }
    }
}

/// What `stamp` may be.
pub const STAMP_HINT: &str = "use `stamp = true` (the first page, or an ex-libris page), `\"every-page\"` (a footer on every PDF page) or `false`";

/// Unicode's bidirectional controls (embeddings, overrides, isolates and
/// marks): invisible, they reorder what follows them on screen.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a name buyers read (a product's, the shop's): on one line, with
/// no invisible reordering, as a mail's subject and a page's title need.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if name.contains(char::is_control) {
        Err(format!(
            "`{}` holds a line break or another control character",
            name.escape_debug()
        ))
    } else if name.chars().any(is_bidi_control) {
        Err(format!(
            "`{}` holds a bidirectional control character, which reorders text invisibly",
            name.escape_unicode()
        ))
    } else {
        Ok(())
    }
}

/// The default number of times each file of a purchase can be downloaded.
pub const DEFAULT_DOWNLOAD_LIMIT: u32 = 5;

/// What `download_limit` may be.
pub const DOWNLOAD_LIMIT_HINT: &str =
    "use a whole number of downloads per file between 1 and 1000 (the default is 5)";

/// Checks a download limit: 1 to 1000 per file.
pub fn check_download_limit(limit: i64) -> Result<u32, String> {
    match u32::try_from(limit) {
        Ok(limit @ 1..=1000) => Ok(limit),
        _ => Err(format!("`{limit}` is not a download limit")),
    }
}

/// The default text of a stamped copy's visible line (`[stamp] text`).
pub const DEFAULT_STAMP_TEXT: &str = "Licensed to {email} · order {order} · {date}";

/// A stamped copy's visible line from `template`: `{email}`, `{name}`,
/// `{order}`, `{date}` filled in.
pub fn stamp_line(template: &str, email: &str, name: &str, order: &str, date: &str) -> String {
    template
        .replace("{email}", email)
        .replace("{name}", if name.is_empty() { email } else { name })
        .replace("{order}", order)
        .replace("{date}", date)
}

/// The placeholders a stamp text may use.
pub const STAMP_PLACEHOLDERS: &[&str] = &["{email}", "{name}", "{order}", "{date}"];

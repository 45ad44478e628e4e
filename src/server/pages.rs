//! The bodies of the buyer's plain pages (downloads, refusals, forms):
//! small, accessible HTML with no external assets, which the layout
//! (`templates/page.html`, see `views`) wraps.

use crate::store::{Product, Release};

pub use crate::html::escape;

/// One file of the download page.
#[derive(Debug)]
pub struct FileRow {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Whole downloads left (a broken one counts as left, to finish it).
    pub left: u32,
    pub allowed: u32,
    pub href: String,
}

/// The end of every download page.
pub const LOST_NOTE: &str =
    "<p class=\"note\">Lost this page? Ask for a new link at <a href=\"/lost\">/lost</a>.</p>";

/// The line that says a buyer's files carry their email.
pub const STAMPED_NOTE: &str = "<p class=\"note\" id=\"stamped\">Your PDF and EPUB files carry your \
     email address and order number: they are your own copies, made for you.</p>";

/// What a download page shows of one product of a purchase.
#[derive(Debug)]
pub struct Downloads<'a> {
    pub product: &'a Product,
    pub shown: &'a Release,
    pub bought: &'a str,
    pub files: &'a [FileRow],
    pub others: &'a [(String, String)],
    /// The page's heading and the link's expiry (a `<time>`, see
    /// `dates::html_time`) when given, else a section of a bundle's page
    /// (whose heading states the expiry).
    pub expires: Option<&'a str>,
    /// Whether these files carry the buyer's email.
    pub stamped: bool,
}

/// The files of one product of a purchase at the version shown, with its
/// cover.
pub fn downloads(page: &Downloads<'_>) -> String {
    let Downloads {
        product,
        shown,
        bought,
        files,
        others,
        expires,
        stamped,
    } = *page;
    let heading = if expires.is_some() { "h1" } else { "h2" };
    let allowed = files
        .first()
        .map_or(product.download_limit, |file| file.allowed);
    let limit = match expires {
        Some(expires) => format!(
            "This link works until <strong>{expires}</strong>; each file can be downloaded {allowed} times."
        ),
        None => format!("Each file can be downloaded {allowed} times."),
    };
    let cover = match &product.cover {
        Some(_) => format!(
            "<img class=\"cover aside\" src=\"/cover/{}\" alt=\"\" width=\"128\">",
            escape(&product.slug)
        ),
        None => String::new(),
    };
    let mut body = format!(
        "{cover}<{heading}>{}</{heading}><p>Version <strong>{}</strong>{}. {limit}</p>",
        escape(&product.name),
        escape(&shown.version.to_string()),
        if shown.version.to_string() == bought {
            String::new()
        } else {
            format!(" (you bought {})", escape(bought))
        },
    );
    body.push_str("<table><thead><tr><th scope=\"col\">File</th><th scope=\"col\">Size</th><th scope=\"col\">Left</th></tr></thead><tbody>");
    for file in files {
        let left = file.left;
        let link = if left > 0 {
            format!(
                "<a class=\"button\" href=\"{}\" download>{}</a>",
                escape(&file.href),
                escape(&file.name)
            )
        } else {
            format!(
                "{} <span class=\"note\">(no downloads left)</span>",
                escape(&file.name)
            )
        };
        body.push_str(&format!(
            "<tr><td>{link}<details><summary class=\"note\">SHA-256</summary><code>{}</code></details></td><td class=\"nowrap\">{}</td><td data-left=\"{left}\" class=\"nowrap\">{left} of {}</td></tr>",
            escape(&file.sha256),
            human_size(file.size),
            file.allowed,
        ));
    }
    body.push_str("</tbody></table>");
    if stamped {
        body.push_str(STAMPED_NOTE);
    }
    if !others.is_empty() {
        body.push_str(&format!(
            "<{0}>Other versions you can download</{0}><ul>",
            if expires.is_some() { "h2" } else { "h3" }
        ));
        for (version, href) in others {
            body.push_str(&format!(
                "<li><a href=\"{}\">Version {}</a></li>",
                escape(href),
                escape(version)
            ));
        }
        body.push_str("</ul>");
    }
    body
}

/// A plain page for a link that cannot be used, saying what to do next.
pub fn refusal(title: &str, text: &str) -> String {
    format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/lost\">Get a new link by email</a></p>",
        escape(title),
        escape(text)
    )
}

/// The confirmation of an unsubscribe link: a button that posts back.
pub fn unsubscribe_form() -> String {
    "<h1>Stop update notices?</h1><p>You will no longer get an email when a new version \
     comes out. Receipts and the links you ask for still come.</p>\
     <form method=\"post\"><button type=\"submit\">Stop update notices</button></form>"
        .to_owned()
}

pub fn lost_form(message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p role=\"status\">{}</p>", escape(m)))
        .unwrap_or_default();
    format!(
        "<h1>Get your download links again</h1>{message}\
         <form method=\"post\" action=\"/lost\"><label for=\"email\">The email address you bought with</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
         <button type=\"submit\">Email me my links</button></form>"
    )
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(2_500_000), "2.5 MB");
    }
}

//! Text into the sandbox's pages: escaped, or the Markdown Stripe accepts in
//! `custom_text` rendered and cleaned.

/// `text` with HTML's five special characters escaped, for an element's
/// text or a quoted attribute. By hand: five replacements need no crate.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Markdown as HTML that cannot run anything: pulldown-cmark, then ammonia.
pub fn markdown(text: &str) -> String {
    let mut rendered = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut rendered, pulldown_cmark::Parser::new(text));
    ammonia::clean(&rendered)
}

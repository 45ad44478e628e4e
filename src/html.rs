//! HTML text: escaping for the pages `shop serve` and `shop sandbox` show,
//! and the author's Markdown (descriptions, release notes) made safe.

/// Escapes text for HTML content and attribute values.
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

/// The author's Markdown as HTML that cannot run anything: rendered by
/// pulldown-cmark, then cleaned by ammonia (no scripts, styles, event
/// attributes or `javascript:` links; links get `rel="noopener noreferrer"`).
pub fn markdown(text: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut rendered = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut rendered, Parser::new_ext(text, options));
    ammonia::clean(&rendered)
}

/// The text of the author's Markdown without its markup, on one line, cut
/// at a word to at most `max` characters (with `…`): for a page's meta
/// description and Stripe's product description, which show text as is.
pub fn plain_text(markdown: &str, max: usize) -> String {
    use pulldown_cmark::{Event, Parser, TagEnd};
    let mut text = String::new();
    for event in Parser::new(markdown) {
        match event {
            Event::Text(part) | Event::Code(part) => text.push_str(&part),
            // Words of separate lines and blocks stay apart; the end of
            // inline markup (`**`, a link) adds nothing.
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::TableCell,
            ) => text.push(' '),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let whole = words.join(" ");
    if whole.chars().count() <= max {
        return whole;
    }
    let mut cut = String::new();
    for word in words {
        if cut.chars().count() + word.chars().count() + 2 > max {
            break;
        }
        if !cut.is_empty() {
            cut.push(' ');
        }
        cut.push_str(word);
    }
    cut.push('…');
    cut
}

/// What one rendering of a template (a page's, a mail's) may spend, in
/// minijinja's instructions: a library of a thousand purchases takes a
/// small part of it; a store's override that loops without end is stopped.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_renders_and_cannot_run_scripts() {
        let html = super::markdown(
            "# Title\n\n**bold** [site](https://example.com)\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("href=\"https://example.com\""), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
    }

    #[test]
    fn escape_covers_attributes() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

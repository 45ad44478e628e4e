//! The Markdown Stripe accepts in `custom_text`, rendered and cleaned for
//! the sandbox's pages (which escape everything else: `pages`).

/// Markdown as HTML that cannot run anything: pulldown-cmark, then ammonia.
pub fn markdown(text: &str) -> String {
    let mut rendered = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut rendered, pulldown_cmark::Parser::new(text));
    ammonia::clean(&rendered)
}

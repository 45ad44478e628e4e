//! The sandbox's pages (the test checkout, the hosted invoice, the
//! messages) from minijinja templates built in under `templates/`, each
//! in one layout. Values are escaped; HTML the sandbox made (rendered
//! Markdown) is passed as safe.

use std::sync::OnceLock;

use minijinja::{Environment, Value};
use serde::Serialize;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("invoice.html", include_str!("../templates/invoice.html")),
    ("checkout.html", include_str!("../templates/checkout.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in TEMPLATES {
            if let Err(error) = environment.add_template(name, text) {
                tracing::error!("the sandbox's template `{name}` is broken: {error}");
            }
        }
        environment
    })
}

/// The page `name` with `values`. The templates are the sandbox's own (a
/// test renders each): a failure is a bug, shown as such.
pub fn render(name: &str, values: impl Serialize) -> String {
    environment()
        .get_template(name)
        .and_then(|template| template.render(values))
        .unwrap_or_else(|error| {
            tracing::error!("cannot render the sandbox's `{name}`: {error:#}");
            format!("the sandbox cannot show this page: {error}")
        })
}

/// A page that says one thing, under an optional heading.
pub fn message(title: &str, heading: Option<&str>, text: &str) -> String {
    render("message.html", minijinja::context! { title, heading, text })
}

/// HTML the sandbox made, inserted as is.
pub fn safe(html: String) -> Value {
    Value::from_safe_string(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes_what_it_is_given() {
        let page = message("Not <found>", Some("A & B"), "It's \"here\"");
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert!(
            page.contains("<title>Not &lt;found&gt; · shop sandbox</title>"),
            "{page}"
        );
        assert!(page.contains("<h1>A &amp; B</h1>"), "{page}");
        assert!(!page.contains("cannot show"), "{page}");
        let index = render(
            "index.html",
            minijinja::context! { title => "shop sandbox", base_url => "http://127.0.0.1:4111" },
        );
        assert!(
            index.contains("SHOP_STRIPE_API_BASE=http:&#x2f;&#x2f;127.0.0.1:4111"),
            "{index}"
        );
    }
}

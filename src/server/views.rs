//! The pages with structure of their own (the store front, a product, the
//! thank-you page, the buyer's library): minijinja templates built in under
//! `templates/`, each overridable by a file of the same name in the store's
//! `templates/`. A template renders the page's body; the layout
//! (`page.html`: `title`, `shop`, `support`, `body`) wraps it as it wraps
//! every page. Values are escaped; HTML
//! made by shop (rendered Markdown) is passed as safe.

use std::path::{Path, PathBuf};

/// The templates, by name, and their built-in text.
const BUILT_IN: &[(&str, &str)] = &[
    ("front.html", include_str!("../../templates/front.html")),
    ("product.html", include_str!("../../templates/product.html")),
    ("thanks.html", include_str!("../../templates/thanks.html")),
    ("library.html", include_str!("../../templates/library.html")),
    ("page.html", include_str!("../../templates/page.html")),
];

/// The page templates, checked at start.
#[derive(Debug)]
pub struct Views {
    environment: minijinja::Environment<'static>,
}

impl Views {
    /// The built-in templates, with the store's overrides.
    pub fn load(store_root: &Path) -> Result<Views, ViewError> {
        let mut environment = minijinja::Environment::new();
        // A misspelt name in an author's template is an error, not a blank.
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, built_in) in BUILT_IN {
            let path = store_root.join("templates").join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    (*built_in).to_owned()
                }
                Err(source) => return Err(ViewError::Read { path, source }),
            };
            environment
                .add_template_owned(*name, text)
                .map_err(|error| ViewError::Template {
                    name: (*name).to_owned(),
                    line: error.line(),
                    message: error.detail().unwrap_or("cannot be read").to_owned(),
                })?;
        }
        let views = Views { environment };
        // The layout takes no other names: a misspelt one is found now.
        views.page("", "", "", "")?;
        Ok(views)
    }

    /// A whole page: `body` (HTML made by shop) inside the layout.
    pub fn page(
        &self,
        shop: &str,
        support: &str,
        title: &str,
        body: &str,
    ) -> Result<String, ViewError> {
        self.render(
            "page.html",
            minijinja::context! { shop, support, title, body => safe(body.to_owned()) },
        )
    }

    /// The body of page `name` with `context`.
    pub fn render(&self, name: &str, context: minijinja::Value) -> Result<String, ViewError> {
        let template =
            self.environment
                .get_template(name)
                .map_err(|error| ViewError::Template {
                    name: name.to_owned(),
                    line: None,
                    message: error.to_string(),
                })?;
        template
            .render(context)
            .map_err(|error| ViewError::Template {
                name: name.to_owned(),
                line: error.line(),
                message: error
                    .detail()
                    .map_or_else(|| error.kind().to_string(), str::to_owned),
            })
    }
}

/// HTML made by shop, inserted as is.
pub fn safe(html: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(html)
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot read the page template `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the page template `templates/{name}`{} is not valid: {message}", line.map(|line| format!(" (line {line})")).unwrap_or_default())]
    Template {
        name: String,
        line: Option<usize>,
        message: String,
    },
}

impl crate::error::Hint for ViewError {
    fn hint(&self) -> String {
        match self {
            ViewError::Read { .. } => "make the file readable, or remove it to use the built-in page".into(),
            ViewError::Template { .. } => "fix the template (minijinja syntax, the names the built-in template uses), or remove it to use the built-in page".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_with_a_syntax_error_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/front.html"),
            "<h1>{{ shop }}</h1>\n{% for p in products %}\n",
        )
        .unwrap();
        let error = Views::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`templates/front.html` (line"), "{error}");
    }

    #[test]
    fn values_are_escaped_and_shops_html_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/front.html"),
            "{{ shop }}|{{ about }}",
        )
        .unwrap();
        let views = Views::load(dir.path()).unwrap();
        let html = views
            .render(
                "front.html",
                minijinja::context! { shop => "<b>A&B</b>", about => safe("<p>ok</p>".into()) },
            )
            .unwrap();
        assert_eq!(html, "&lt;b&gt;A&amp;B&lt;&#x2f;b&gt;|<p>ok</p>");
    }

    #[test]
    fn the_layout_escapes_what_it_is_given_and_takes_no_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let views = Views::load(dir.path()).unwrap();
        let html = views
            .page("A & B <Books>", "help@example.com", "x\"y", "<p>body</p>")
            .unwrap();
        assert!(
            html.contains("<title>x&quot;y · A &amp; B &lt;Books&gt;</title>"),
            "{html}"
        );
        assert!(html.contains("<main>\n<p>body</p>\n</main>"), "{html}");
        // A store's layout with a name it is not given fails at start.
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/page.html"),
            "<title>{{ titel }}</title>{{ body }}",
        )
        .unwrap();
        let error = Views::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`templates/page.html`"), "{error}");
    }
}

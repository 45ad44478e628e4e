//! The author's posts on the store (`/posts`, `/posts/<slug>`) and the
//! store's Atom feed (`/feed.xml`, RFC 4287) of releases and public posts.

use std::sync::Arc;

use quick_xml::Writer;
use quick_xml::events::BytesText;
use warp::http::{HeaderValue, header};

use super::App;
use super::handlers::{Answer, not_found, public};
use super::views::{Meta, PostCard, PostPage, PostsPage, safe};
use crate::{error, html, post};

/// The public posts, newest first; none when `posts/` cannot be read
/// (logged: a post with a broken front matter hides none of the others).
fn posts(app: &App) -> Vec<post::Post> {
    match post::all(&app.store().root, false) {
        Ok(posts) => posts,
        Err(error) => {
            tracing::error!("cannot read the posts: {}", error::one_line(&error));
            Vec::new()
        }
    }
}

/// `/posts`: the archive.
pub async fn list(app: Arc<App>) -> Answer {
    let store = app.store();
    let page = PostsPage {
        shop: store.settings.name.clone(),
        posts: posts(&app)
            .into_iter()
            .map(|post| PostCard {
                slug: post.slug,
                subject: post.subject,
                date: post.date,
            })
            .collect(),
    };
    let meta = Meta {
        index: true,
        canonical: Some(format!("{}/posts", store.settings.base_url)),
        kind: "website",
        ..Meta::default()
    };
    public(
        &app,
        "Posts",
        "posts.html",
        minijinja::Value::from_serialize(&page),
        &meta,
    )
}

/// `/posts/<slug>`: one public post.
pub async fn show(slug: String, app: Arc<App>) -> Answer {
    let Some(post) = posts(&app).into_iter().find(|post| post.slug == slug) else {
        return not_found(&app);
    };
    let base = &app.store().settings.base_url;
    let meta = Meta {
        index: true,
        canonical: post.url(base),
        kind: "article",
        ..Meta::default()
    };
    let page = PostPage {
        subject: post.subject.clone(),
        date: post.date.clone(),
        body: safe(html::markdown(&post.body)),
    };
    public(
        &app,
        &post.subject,
        "post.html",
        minijinja::Value::from_serialize(&page),
        &meta,
    )
}

/// One entry of the feed.
struct Entry {
    id: String,
    title: String,
    /// `YYYY-MM-DD`.
    day: String,
    link: String,
    html: String,
}

/// `/feed.xml`: every release (with its notes) and public post, newest
/// first.
pub async fn feed(app: Arc<App>) -> Answer {
    let store = app.store();
    let base = &store.settings.base_url;
    let mut entries: Vec<Entry> = Vec::new();
    for product in &store.products {
        for release in &product.releases {
            entries.push(Entry {
                id: format!("{base}/p/{}#v{}", product.slug, release.version),
                title: format!("{} {}", product.name, release.version),
                day: release.date.to_string(),
                link: format!("{base}/p/{}", product.slug),
                html: release
                    .notes
                    .as_deref()
                    .map(html::markdown)
                    .unwrap_or_default(),
            });
        }
    }
    for post in posts(&app) {
        entries.push(Entry {
            id: format!("{base}/posts/{}", post.slug),
            title: post.subject.clone(),
            day: post.date.clone(),
            link: format!("{base}/posts/{}", post.slug),
            html: html::markdown(&post.body),
        });
    }
    entries.sort_by(|a, b| (&b.day, &b.id).cmp(&(&a.day, &a.id)));
    let updated = entries
        .first()
        .map_or_else(|| "1970-01-01".to_owned(), |entry| entry.day.clone());
    let xml = atom(&store.settings.name, base, &updated, &entries).unwrap_or_default();
    let mut response = warp::reply::Response::new(xml.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    response
}

/// The feed's XML, written (and escaped) by quick-xml.
fn atom(shop: &str, base: &str, updated: &str, entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut writer = Writer::new(Vec::new());
    let text = |text: &str| BytesText::new(text).into_owned();
    writer.write_event(quick_xml::events::Event::Decl(
        quick_xml::events::BytesDecl::new("1.0", Some("utf-8"), None),
    ))?;
    writer
        .create_element("feed")
        .with_attribute(("xmlns", "http://www.w3.org/2005/Atom"))
        .write_inner_content(|feed| {
            feed.create_element("id")
                .write_text_content(text(&format!("{base}/")))?;
            feed.create_element("title")
                .write_text_content(text(shop))?;
            feed.create_element("updated")
                .write_text_content(text(&format!("{updated}T00:00:00Z")))?;
            feed.create_element("link")
                .with_attributes([("rel", "self"), ("href", &format!("{base}/feed.xml"))])
                .write_empty()?;
            feed.create_element("link")
                .with_attribute(("href", format!("{base}/").as_str()))
                .write_empty()?;
            feed.create_element("author")
                .write_inner_content(|author| {
                    author
                        .create_element("name")
                        .write_text_content(text(shop))?;
                    Ok(())
                })?;
            for entry in entries {
                feed.create_element("entry").write_inner_content(|item| {
                    item.create_element("id")
                        .write_text_content(text(&entry.id))?;
                    item.create_element("title")
                        .write_text_content(text(&entry.title))?;
                    item.create_element("updated")
                        .write_text_content(text(&format!("{}T00:00:00Z", entry.day)))?;
                    item.create_element("link")
                        .with_attribute(("href", entry.link.as_str()))
                        .write_empty()?;
                    if !entry.html.is_empty() {
                        item.create_element("content")
                            .with_attribute(("type", "html"))
                            .write_text_content(text(&entry.html))?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    Ok(writer.into_inner())
}

//! `/opds/<token>`: a buyer's library as an OPDS 1.2 acquisition feed
//! (Atom), for the reading apps that follow catalogues (KOReader,
//! Thorium, Foliate, …): each book they hold at its newest version, with
//! its cover, summary and an acquisition link per file, which downloads
//! and is counted as any download link. A purchase refunded, disputed or
//! withdrawn from leaves the feed.

use std::sync::Arc;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use warp::http::{HeaderValue, header};

use super::Answer;
use super::access::{held, link_query};
use super::answers::{log_unavailable, refuse};
use super::library::{entitlement, library_of};
use crate::server::App;
use crate::tokens;
use crate::{dates, net};

/// The feed's media type (OPDS 1.2, section 2.3).
const ACQUISITION_FEED: &str = "application/atom+xml;profile=opds-catalog;kind=acquisition";

/// One book of the feed.
struct Book {
    id: String,
    title: String,
    day: String,
    summary: Option<String>,
    cover: Option<String>,
    /// Each file: its address and media type.
    files: Vec<(String, String)>,
}

pub async fn opds(token: String, app: Arc<App>) -> Answer {
    let expired = (
        "This catalogue address has expired",
        "Open your library from a new link (ask at /lost) and add its address again.",
    );
    let (claims, email) = match library_of(&app, &token, tokens::OPDS, expired).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    // An address the reader stopped (every one issued up to that moment).
    match app.db.reader(&email).await {
        Ok(reader) if claims.expires - tokens::OPDS_LIFETIME <= reader.feeds_from => {
            return refuse(
                &app,
                warp::http::StatusCode::GONE,
                "This catalogue address was stopped",
                "Open your library and add its new address to your reading app.",
            );
        }
        Ok(_) => {}
        Err(error) => return log_unavailable(&app, &error),
    }
    // What the address holds and still has (refunded and disputed left out).
    let purchases = match app.purchases_by(&email).await {
        Ok(found) => found,
        Err(error) => return log_unavailable(&app, error.as_ref()),
    };
    let store = app.store();
    let base = &store.settings.base_url;
    let mut books = Vec::new();
    for (id, (slug, version, created)) in &purchases {
        if store.product(slug).is_err() {
            continue;
        }
        let purchase = match entitlement(&app, id, &email, (slug, version, *created)).await {
            Ok(purchase) => purchase,
            Err(page) => return page,
        };
        let link = app.link(id);
        for holding in held(&store, &purchase) {
            let Some(newest) = holding.releases.last() else {
                continue;
            };
            let product = holding.product;
            let query = link_query(&purchase, product, None);
            books.push(Book {
                id: format!("urn:shop:{id}:{}", product.slug),
                title: product.name.clone(),
                day: newest.date.to_string(),
                summary: product.description.clone(),
                cover: product
                    .cover
                    .as_ref()
                    .map(|_| format!("{base}/cover/{}", product.slug)),
                files: newest
                    .assets
                    .iter()
                    .map(|asset| {
                        (
                            format!("{link}/{}{query}", net::encode_component(&asset.name)),
                            net::content_type(&asset.name).to_owned(),
                        )
                    })
                    .collect(),
            });
        }
    }
    let self_url = format!("{base}/opds/{token}");
    let xml = feed(&store.settings.name, &self_url, &books, app.now()).unwrap_or_default();
    let mut response = warp::reply::Response::new(xml.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ACQUISITION_FEED),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The feed's XML, written and escaped by quick-xml.
fn feed(shop: &str, self_url: &str, books: &[Book], now: i64) -> std::io::Result<Vec<u8>> {
    let mut writer = Writer::new(Vec::new());
    let text = |text: &str| BytesText::new(text).into_owned();
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    let updated = books
        .iter()
        .map(|book| book.day.clone())
        .max()
        .map_or_else(|| dates::timestamp(now), |day| format!("{day}T00:00:00Z"));
    writer
        .create_element("feed")
        .with_attributes([
            ("xmlns", "http://www.w3.org/2005/Atom"),
            ("xmlns:opds", "http://opds-spec.org/2010/catalog"),
        ])
        .write_inner_content(|feed| {
            feed.create_element("id")
                .write_text_content(text(self_url))?;
            feed.create_element("title")
                .write_text_content(text(&format!("Your books from {shop}")))?;
            feed.create_element("updated")
                .write_text_content(text(&updated))?;
            feed.create_element("author")
                .write_inner_content(|author| {
                    author
                        .create_element("name")
                        .write_text_content(text(shop))?;
                    Ok(())
                })?;
            for rel in ["self", "start"] {
                feed.create_element("link")
                    .with_attributes([("rel", rel), ("href", self_url), ("type", ACQUISITION_FEED)])
                    .write_empty()?;
            }
            for book in books {
                feed.create_element("entry").write_inner_content(|entry| {
                    entry
                        .create_element("id")
                        .write_text_content(text(&book.id))?;
                    entry
                        .create_element("title")
                        .write_text_content(text(&book.title))?;
                    entry
                        .create_element("author")
                        .write_inner_content(|author| {
                            author
                                .create_element("name")
                                .write_text_content(text(shop))?;
                            Ok(())
                        })?;
                    entry
                        .create_element("updated")
                        .write_text_content(text(&format!("{}T00:00:00Z", book.day)))?;
                    if let Some(summary) = &book.summary {
                        entry
                            .create_element("summary")
                            .write_text_content(text(summary))?;
                    }
                    if let Some(cover) = &book.cover {
                        for rel in [
                            "http://opds-spec.org/image",
                            "http://opds-spec.org/image/thumbnail",
                        ] {
                            entry
                                .create_element("link")
                                .with_attributes([("rel", rel), ("href", cover.as_str())])
                                .write_empty()?;
                        }
                    }
                    for (href, media_type) in &book.files {
                        entry
                            .create_element("link")
                            .with_attributes([
                                ("rel", "http://opds-spec.org/acquisition"),
                                ("href", href.as_str()),
                                ("type", media_type.as_str()),
                            ])
                            .write_empty()?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    Ok(writer.into_inner())
}

//! The store front (`/`), a product's page (`/p/<slug>`) and covers
//! (`/cover/<slug>`): what the store's product files say, for anyone.
//! Products without a release are not shown.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::{HeaderValue, header};
use warp::reply::Reply;

use super::handlers::{Answer, not_found, public, same_origin_referrer};
use super::views::{
    FrontPage, Included, Meta, NextEdition, ProductCard, ProductPage, ReleaseNotes, safe,
};
use super::{App, visits};
use crate::store::money;
use crate::store::settings::{TaxBehavior, TaxSettings};
use crate::store::{Currency, CurrencyPrice, Product, Store, UpdatePolicy, disk};
use crate::{dates, error, html, store};

/// What a product card shows: the version on sale and, beside it, a
/// pre-order of the next one (or the pre-order alone, for a product whose
/// first version is not out); `None` for a product not yet released.
fn card(store: &Store, product: &Product, wanted: Option<Currency>) -> Option<ProductCard> {
    let latest = product.on_sale().or_else(|| product.preorder())?;
    // A bundle: what its newest release gives, and their formats.
    let holdings = store.holdings(&product.slug, &latest.version.to_string());
    let includes: Vec<Included> = match product.is_bundle() {
        true => holdings
            .iter()
            .map(|holding| Included {
                slug: holding.product.slug.clone(),
                name: holding.product.name.clone(),
                version: holding.bought.to_string(),
            })
            .collect(),
        false => Vec::new(),
    };
    // A pre-order has no assets yet: the files it will have.
    let mut formats: Vec<String> = Vec::new();
    for holding in &holdings {
        for (_, extension) in holding
            .product
            .files
            .iter()
            .filter_map(|name| name.rsplit_once('.'))
        {
            let extension = extension.to_ascii_uppercase();
            if !formats.contains(&extension) {
                formats.push(extension);
            }
        }
    }
    let tax = &store.settings.tax;
    // The price in the visitor's currency where the product has it.
    let main = CurrencyPrice {
        price: product.price,
        pay_what_you_want: product.pay_what_you_want,
    };
    let shown = wanted.and_then(|c| product.price_in(c)).unwrap_or(main);
    let next = product
        .preorder()
        .filter(|preorder| preorder.version != latest.version)
        .map(|preorder| NextEdition {
            version: preorder.version.to_string(),
            out: preorder.out.map(dates::human_date),
            price: price_text(
                product,
                preorder.price.as_ref(),
                product.pay_what_you_want,
                tax,
            ),
        });
    Some(ProductCard {
        slug: product.slug.clone(),
        name: product.name.clone(),
        description: product
            .description
            .as_deref()
            .map(|text| safe(html::markdown(text))),
        cover: product
            .cover
            .as_ref()
            .map(|_| format!("/cover/{}", product.slug)),
        price: match latest.price.as_ref() {
            // A pre-order's launch price is in the main currency alone.
            Some(own) => price_text(product, Some(own), product.pay_what_you_want, tax),
            None => price_text(product, Some(&shown.price), shown.pay_what_you_want, tax),
        },
        others: match latest.price {
            Some(_) => Vec::new(),
            None => product
                .currencies()
                .into_iter()
                .filter(|currency| *currency != shown.price.currency)
                .filter_map(|currency| product.price_in(currency))
                .map(|other| other.price.to_string())
                .collect(),
        },
        free: product.free,
        gift: !latest.preorder && !latest.gift_link_url.is_empty(),
        version: latest.version.to_string(),
        date: latest.date.to_string(),
        preorder: latest.preorder,
        out: latest.out.map(dates::human_date),
        formats: formats.join(", "),
        includes,
        next,
    })
}

/// What the update policy means to someone buying now.
fn policy(product: &Product) -> String {
    if product.free {
        return match product.updates {
            UpdatePolicy::None => "The sample is this version.".into(),
            _ => "Later versions of the sample come to the same address, free.".into(),
        };
    }
    if product.is_bundle() {
        return "Each product in the bundle comes with the later versions its own page promises."
            .into();
    }
    let version = product
        .on_sale()
        .or_else(|| product.preorder())
        .map(|r| r.version.clone());
    match (product.updates, version) {
        (UpdatePolicy::All, _) => {
            "Buying now includes every later version of this product, free.".into()
        }
        (UpdatePolicy::SameMajor, Some(version)) => format!(
            "Buying now includes every later {}.x version, free; a version {} would be sold on its own.",
            version.major,
            version.major + 1
        ),
        (UpdatePolicy::SameMajor, None) => {
            "Buying includes later versions with the same major number, free.".into()
        }
        (UpdatePolicy::None, _) => {
            "Buying now includes this version; later versions are sold on their own.".into()
        }
    }
}

/// The currency a visitor most likely pays in: `?currency=` where given,
/// else the region of the first language of `Accept-Language` that names
/// one (`en-GB` → GBP), else none (each product's own).
pub fn wanted_currency(
    query: &HashMap<String, String>,
    languages: Option<&str>,
) -> Option<Currency> {
    if let Some(code) = query.get("currency") {
        return code.parse().ok();
    }
    languages?
        .split(',')
        .filter_map(|item| item.split(';').next())
        .filter_map(|tag| {
            let mut parts = tag.trim().split(['-', '_']).skip(1);
            // The region: two letters (a script, such as `Hant`, has four).
            parts.find(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_alphabetic()))
        })
        .find_map(money::currency_of_country)
}

/// A page that depends on the visitor's language says so to caches.
fn varies_by_language(mut answer: Answer) -> Answer {
    answer
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    answer
}

pub async fn front(
    app: Arc<App>,
    query: HashMap<String, String>,
    languages: Option<String>,
    referer: Option<String>,
    user_agent: Option<String>,
) -> Answer {
    let store = app.store();
    app.visits.count(
        app.now(),
        visits::Kind::View,
        "",
        &query,
        referer.as_deref(),
        user_agent.as_deref(),
        &store.settings.base_url,
    );
    let wanted = wanted_currency(&query, languages.as_deref());
    let context = FrontPage {
        shop: store.settings.name.clone(),
        about: store
            .settings
            .about
            .as_deref()
            .map(|text| safe(html::markdown(text))),
        products: store
            .products
            .iter()
            .filter_map(|product| card(&store, product, wanted))
            .collect(),
    };
    let base = &store.settings.base_url;
    let meta = Meta {
        index: true,
        description: Some(
            store
                .settings
                .about
                .as_deref()
                .map(|text| html::plain_text(text, DESCRIPTION_MAX))
                .filter(|text| !text.is_empty())
                .unwrap_or_else(|| {
                    let names: Vec<&str> = context
                        .products
                        .iter()
                        .map(|card| card.name.as_str())
                        .collect();
                    html::plain_text(
                        &format!("{}: {}.", store.settings.name, names.join(", ")),
                        DESCRIPTION_MAX,
                    )
                }),
        ),
        canonical: Some(format!("{base}/")),
        image: context
            .products
            .iter()
            .find_map(|card| card.cover.as_ref())
            .map(|cover| format!("{base}{cover}")),
        kind: "website",
    };
    // The Follow form posts from here: the browser must name this
    // origin (see `same_origin_referrer`).
    varies_by_language(same_origin_referrer(public(
        &app,
        &store.settings.name,
        "front.html",
        minijinja::Value::from_serialize(&context),
        &meta,
    )))
}

/// The longest meta description: what search engines show of one.
const DESCRIPTION_MAX: usize = 160;

pub async fn product(
    slug: String,
    app: Arc<App>,
    query: HashMap<String, String>,
    languages: Option<String>,
    referer: Option<String>,
    user_agent: Option<String>,
) -> Answer {
    let store = app.store();
    let wanted = wanted_currency(&query, languages.as_deref());
    let Some((product, card)) = store
        .product(&slug)
        .ok()
        .and_then(|product| Some((product, card(&store, product, wanted)?)))
    else {
        return not_found(&app);
    };
    app.visits.count(
        app.now(),
        visits::Kind::View,
        &product.slug,
        &query,
        referer.as_deref(),
        user_agent.as_deref(),
        &store.settings.base_url,
    );
    let releases: Vec<ReleaseNotes> = product
        .releases
        .iter()
        .rev()
        .map(|release| ReleaseNotes {
            version: release.version.to_string(),
            date: release.date.to_string(),
            preorder: release.preorder,
            notes: release
                .notes
                .as_deref()
                .map(|text| safe(html::markdown(text))),
        })
        .collect();
    let base = &store.settings.base_url;
    let meta = Meta {
        index: true,
        description: Some(
            product
                .description
                .as_deref()
                .map(|text| html::plain_text(text, DESCRIPTION_MAX))
                .filter(|text| !text.is_empty())
                .unwrap_or_else(|| format!("{} from {}.", product.name, store.settings.name)),
        ),
        canonical: Some(format!("{base}/p/{}", product.slug)),
        image: card.cover.as_ref().map(|cover| format!("{base}{cover}")),
        kind: "product",
    };
    let context = ProductPage {
        shop: store.settings.name.clone(),
        product: card,
        policy: policy(product),
        releases,
    };
    // The Follow form posts from here: the browser must name this
    // origin (see `same_origin_referrer`).
    varies_by_language(same_origin_referrer(public(
        &app,
        &product.name,
        "product.html",
        minijinja::Value::from_serialize(&context),
        &meta,
    )))
}

/// `/robots.txt`: the store front and product pages may be indexed;
/// nothing that belongs to a buyer, nor the checkout's redirects.
pub async fn robots(app: Arc<App>) -> Answer {
    let base = app.store().settings.base_url.clone();
    let mut response = warp::reply::Response::new(
        format!(
            "User-agent: *\nDisallow: /d/\nDisallow: /library/\nDisallow: /thanks\n\
             Disallow: /lost\nDisallow: /unsubscribe/\nDisallow: /buy/\nDisallow: /opds/\n\
             Disallow: /withdraw/\nDisallow: /follow/\n\
             Sitemap: {base}/sitemap.xml\n"
        )
        .into(),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `/local-time.js`: the pages' one script, which shows times in the
/// reader's zone (`dates::html_time`).
pub async fn local_time() -> Answer {
    let mut response =
        warp::reply::Response::new(include_str!("../../templates/local-time.js").into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

/// `/sitemap.xml`: the store front and each product's page, with the day
/// its edition on sale came out.
pub async fn sitemap(app: Arc<App>) -> Answer {
    let store = app.store();
    let base = &store.settings.base_url;
    // XML's five characters; a URL's slashes stay as they are.
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    xml.push_str(&format!(
        "<url><loc>{}</loc></url>\n",
        escape(&format!("{base}/"))
    ));
    for product in &store.products {
        let Some(release) = product.on_sale().or_else(|| product.preorder()) else {
            continue;
        };
        xml.push_str(&format!(
            "<url><loc>{}</loc><lastmod>{}</lastmod></url>\n",
            escape(&format!("{base}/p/{}", product.slug)),
            release.date
        ));
    }
    xml.push_str("</urlset>\n");
    let mut response = warp::reply::Response::new(xml.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    response
}

/// A product's cover image, from the store.
pub async fn cover(slug: String, app: Arc<App>) -> Answer {
    let store = app.store();
    let Some((cover, content_type)) = store.product(&slug).ok().and_then(|product| {
        let cover = product.cover.clone()?;
        let content_type = crate::store::product::cover_type(&cover)?;
        Some((cover, content_type))
    }) else {
        return not_found(&app);
    };
    // Read only if it really is a file of the store, not what a symlink
    // there points at, and never more than a cover weighs.
    let root = store.root.clone();
    let read =
        tokio::task::spawn_blocking(move || disk::read(&root, &cover, disk::COVER_MAX_BYTES)).await;
    match read
        .map_err(|error| error.to_string())
        .and_then(|read| read.map_err(|error| error::one_line(&error)))
    {
        Ok(bytes) => {
            let mut response = warp::reply::Response::new(bytes.into());
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            response
        }
        Err(error) => {
            tracing::warn!(product = %slug, "the cover is not served: {error}");
            not_found(&app).into_response()
        }
    }
}

/// The price as the store front shows it: `29.00 USD`, or for pay what
/// you want `Pay what you want, from 5.00 USD (suggested 12.00 USD)`;
/// with Stripe Tax, whether tax is added at checkout or included. A
/// pre-order's launch price (`own`) stands for the product's.
pub fn price_text(
    product: &store::Product,
    own: Option<&store::Money>,
    chosen: Option<store::product::PayWhatYouWant>,
    tax: &TaxSettings,
) -> String {
    if product.free {
        return "Free".into();
    }
    let price = own.unwrap_or(&product.price);
    let mut text = match chosen {
        Some(chosen) => {
            let mut text = format!("Pay what you want, from {price}");
            if let Some(suggested) = chosen.suggested {
                text.push_str(&format!(" (suggested {suggested})"));
            }
            text
        }
        None => price.to_string(),
    };
    if tax.automatic {
        text.push_str(match tax.prices {
            TaxBehavior::Exclusive => ", plus tax where it applies",
            TaxBehavior::Inclusive => ", tax included",
        });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_visitors_currency_comes_from_the_query_then_their_languages_region() {
        let code = |query: &[(&str, &str)], languages: Option<&str>| {
            let query: HashMap<String, String> = query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            wanted_currency(&query, languages).map(|currency| currency.code().to_owned())
        };
        assert_eq!(code(&[], Some("en-GB,en;q=0.9")), Some("gbp".into()));
        assert_eq!(code(&[], Some("fr;q=0.9, en-us")), Some("usd".into()));
        assert_eq!(code(&[], Some("de_AT")), Some("eur".into()));
        // A script is not a region; a language alone names none.
        assert_eq!(code(&[], Some("zh-Hant-HK")), Some("hkd".into()));
        assert_eq!(code(&[], Some("ja, *")), None);
        assert_eq!(code(&[], None), None);
        // The query wins, and a code that is not a currency names none.
        assert_eq!(
            code(&[("currency", "JPY")], Some("en-GB")),
            Some("jpy".into())
        );
        assert_eq!(code(&[("currency", "xyz")], Some("en-GB")), None);
    }
}

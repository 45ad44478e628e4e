//! The route table: one warp filter per route, in the order they are
//! tried, each handing its request to a handler of `handlers/`; and what
//! the filters share (the client's key, a download link's query, the
//! request log with every token redacted).

use std::collections::HashMap;
use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;

use super::{App, client, connection, front, handlers, posts, webhook};

/// The real client of a request (see `client::address`), as its limits
/// count it.
fn client_of(
    app: Arc<App>,
) -> impl Filter<Extract = (client::ClientKey,), Error = warp::Rejection> + Clone {
    warp::ext::optional::<connection::Peer>()
        .and(warp::header::optional::<String>("forwarded"))
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .map(
            move |peer: Option<connection::Peer>,
                  forwarded: Option<String>,
                  x_forwarded_for: Option<String>| {
                let peer = peer.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |p| p.0.ip());
                client::ClientKey::of(client::address(
                    peer,
                    forwarded.as_deref(),
                    x_forwarded_for.as_deref(),
                    &app.store().settings.serve.trusted_proxies,
                ))
            },
        )
}

/// What a download link's query names: for a bundle's purchase the
/// product (`?product=`), and a version other than the newest
/// (`?version=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    pub product: Option<String>,
    pub version: Option<String>,
}

/// The [`Chosen`] of a download link (parsed without building a map:
/// downloads are most of the traffic).
fn chosen_query() -> impl Filter<Extract = (Chosen,), Error = std::convert::Infallible> + Clone {
    warp::query::raw()
        .map(|query: String| {
            let mut chosen = Chosen::default();
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                match &*key {
                    "product" => chosen.product = Some(value.into_owned()),
                    "version" => chosen.version = Some(value.into_owned()),
                    _ => {}
                }
            }
            chosen
        })
        .or(warp::any().map(Chosen::default))
        .unify()
}

/// Every route of the server.
///
/// One filter per route, in the order they are tried: the table reads best
/// whole, so it stays one function longer than 150 lines.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let errors_app = app.clone();
    let with_app = warp::any().map({
        let app = app.clone();
        move || app.clone()
    });
    let client = client_of(app.clone());
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(handlers::healthz)
        .boxed();
    let buy = warp::path!("buy" / String)
        .and(warp::get())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("referer"))
        .and(warp::header::optional::<String>("user-agent"))
        .then(handlers::buy)
        .boxed();
    let thanks = warp::path!("thanks")
        .and(warp::get())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(handlers::thanks)
        .boxed();
    let webhook = warp::path!("stripe" / "webhook")
        .and(warp::post())
        .and(with_app.clone())
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(warp::body::content_length_limit(webhook::MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .then(handlers::webhook)
        .boxed();
    let page = warp::path!("d" / String)
        .and(warp::get())
        .and(with_app.clone())
        .and(chosen_query())
        .then(handlers::download_page)
        .boxed();
    let file = warp::path!("d" / String / String)
        .and(warp::method())
        .and(warp::get().or(warp::head()).unify())
        .and(with_app.clone())
        .and(chosen_query())
        .and(warp::header::optional::<String>("range"))
        .and(warp::header::optional::<String>("if-range"))
        .then(handlers::download);
    let to_kindle = warp::path!("kindle" / String)
        .and(warp::post())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(chosen_query())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .then(handlers::send_to_kindle)
        .boxed();
    let download_all = warp::path!("zip" / String)
        .and(warp::get())
        .and(with_app.clone())
        .and(chosen_query())
        .then(handlers::download_all)
        .boxed();
    let unsubscribe_page = warp::path!("unsubscribe" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(handlers::unsubscribe_page)
        .boxed();
    let unsubscribe = warp::path!("unsubscribe" / String)
        .and(warp::post())
        .and(with_app.clone())
        .then(handlers::unsubscribe)
        .boxed();
    let lost_form = warp::path!("lost")
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(handlers::lost_form)
        .boxed();
    let lost = warp::path!("lost")
        .and(warp::post())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .then(handlers::lost)
        .boxed();
    let front = warp::path::end()
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("accept-language"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::header::optional::<String>("user-agent"))
        .then(front::front)
        .boxed();
    let product = warp::path!("p" / String)
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("accept-language"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::header::optional::<String>("user-agent"))
        .then(front::product)
        .boxed();
    let robots = warp::path!("robots.txt")
        .and(warp::get())
        .and(with_app.clone())
        .then(front::robots)
        .boxed();
    let sitemap = warp::path!("sitemap.xml")
        .and(warp::get())
        .and(with_app.clone())
        .then(front::sitemap)
        .boxed();
    let local_time = warp::path!("local-time.js")
        .and(warp::get())
        .then(front::local_time)
        .boxed();
    let cover = warp::path!("cover" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(front::cover)
        .boxed();
    let gift_page = warp::path!("gift" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(handlers::gift_page)
        .boxed();
    let send_gift_again = warp::path!("gift" / String)
        .and(warp::post())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .then(handlers::send_gift_again)
        .boxed();
    let withdraw_page = warp::path!("withdraw" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(handlers::withdraw_page)
        .boxed();
    let withdraw = warp::path!("withdraw" / String)
        .and(warp::post())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .then(handlers::withdraw)
        .boxed();
    let follow = warp::path!("follow")
        .and(warp::post())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .then(handlers::follow)
        .boxed();
    let sample = warp::path!("sample" / String)
        .and(warp::post())
        .and(with_app.clone())
        .and(client.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .then(handlers::sample)
        .boxed();
    let follow_confirm_page = warp::path!("follow" / "confirm" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(handlers::follow_confirm_page)
        .boxed();
    let follow_confirm = warp::path!("follow" / "confirm" / String)
        .and(warp::post())
        .and(with_app.clone())
        .then(handlers::follow_confirm)
        .boxed();
    let posts = warp::path!("posts")
        .and(warp::get())
        .and(with_app.clone())
        .then(posts::list)
        .boxed();
    let post = warp::path!("posts" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(posts::show)
        .boxed();
    let feed = warp::path!("feed.xml")
        .and(warp::get())
        .and(with_app.clone())
        .then(posts::feed)
        .boxed();
    let opds = warp::path!("opds" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(handlers::opds)
        .boxed();
    let stop_feed = warp::path!("library" / String / "feed")
        .and(warp::post())
        .and(with_app.clone())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("referer"))
        .then(handlers::stop_feed)
        .boxed();
    let library = warp::path!("library" / String)
        .and(warp::get())
        .and(with_app.clone())
        .then(handlers::library)
        .boxed();
    let log = warp::log::custom(|info| {
        tracing::debug!(
            method = %info.method(),
            path = %redact(info.path()),
            status = info.status().as_u16(),
            elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    });
    // Downloads first: they are most of the traffic. The other routes are
    // boxed and tried in this order, each chained to the next through a box
    // (`first_of`): as one unboxed chain of `or`s they were a nested type
    // that took rustc eight minutes to type-check (warp#507).
    let others = first_of(vec![
        page,
        download_all,
        to_kindle,
        healthz,
        buy,
        thanks,
        webhook,
        unsubscribe_page,
        unsubscribe,
        lost_form,
        lost,
        front,
        product,
        cover,
        library,
        stop_feed,
        opds,
        withdraw_page,
        withdraw,
        gift_page,
        send_gift_again,
        follow,
        sample,
        follow_confirm_page,
        follow_confirm,
        posts,
        post,
        feed,
        robots,
        sitemap,
        local_time,
    ]);
    file.or(others)
        .unify()
        .recover(move |rejection: warp::Rejection| {
            let app = errors_app.clone();
            async move { Ok::<_, std::convert::Infallible>(handlers::rejection(&app, &rejection)) }
        })
        .unify()
        .map(handlers::secured)
        .with(log)
}

/// One filter of `routes`: the first that accepts a request answers it.
/// Each route is chained to the rest through a box, so the type stays small
/// however many routes there are; a request pays one allocation for each
/// route tried before the one that answers it.
fn first_of(routes: Vec<BoxedFilter<(handlers::Answer,)>>) -> BoxedFilter<(handlers::Answer,)> {
    routes
        .into_iter()
        .rev()
        .reduce(|rest, route| route.or(rest).unify().boxed())
        .expect("the server has routes")
}

/// A path fit for a log: no token (a bearer credential) of any kind.
fn redact(path: &str) -> String {
    for prefix in [
        "/d/",
        "/unsubscribe/",
        "/library/",
        "/withdraw/",
        "/gift/",
        "/follow/confirm/",
        "/opds/",
        "/zip/",
        "/kindle/",
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return match rest.split_once('/') {
                Some((_, file)) => format!("{prefix}…/{file}"),
                None => format!("{prefix}…"),
            };
        }
    }
    path.to_owned()
}

//! Whole answers: plain and templated pages, redirects, the security
//! headers every answer carries, and the refusals (not found, too many,
//! unavailable) that say nothing of what exists.

use bytes::Bytes;
use warp::http::{HeaderValue, Response, StatusCode, header};
use warp::reply::Reply;

use super::Answer;
use crate::error;
use crate::html::escape;
use crate::server::views::Meta;
use crate::server::{App, views};
use crate::state::Quota;

/// What a visitor is told to wait when a service behind the shop fails.
const RETRY_AFTER_SECONDS: u32 = 30;

pub fn text(status: StatusCode, text: &str) -> Answer {
    let mut response = Response::new(format!("{text}\n").into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A page no search engine indexes (the default: downloads, thanks, the
/// library, lost links, refusals).
pub(super) fn html(app: &App, status: StatusCode, title: &str, body: &str) -> Answer {
    page(app, status, title, body, &Meta::default())
}

/// A page inside the layout, with what it tells search engines.
pub(super) fn page(
    app: &App,
    status: StatusCode,
    title: &str,
    body: &str,
    meta: &views::Meta,
) -> Answer {
    let store = app.store();
    let settings = &store.settings;
    let page = app
        .views
        .page(&settings.name, &settings.support_email, title, body, meta)
        .unwrap_or_else(|error| {
            // Checked at start: only a bug gets here. The body still shows.
            tracing::error!("{}", error::one_line(&error));
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>{}</title>{body}",
                escape(title)
            )
        });
    let mut response = warp::reply::html(page).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// Headers every answer carries, files and redirects included: no
/// sniffing, no framing, and no referrer where a token may be in the URL.
pub fn secured(mut response: Answer) -> Answer {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// A page whose own URL holds no token: its forms may carry their origin
/// (with `no-referrer`, a browser sends `Origin: null` even to the page's
/// own server, and the origin check of `/lost` would refuse it).
pub(in crate::server) fn same_origin_referrer(mut response: Answer) -> Answer {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

pub(super) fn redirect(status: StatusCode, location: &str) -> Answer {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// "Try again shortly": a service behind the shop failed, nothing was used.
pub(super) fn unavailable(app: &App) -> Answer {
    let mut response = html(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<h1>Something went wrong on our side</h1><p>Nothing was used up. Please try again in a minute. If it keeps happening, write to us.</p>",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

pub(super) fn log_unavailable(app: &App, error: &(dyn std::error::Error + 'static)) -> Answer {
    tracing::error!("{}", error::one_line(error));
    unavailable(app)
}

/// Whether one more request fits every `(key, quota)` (counted if it does,
/// by every server sharing the state); a state that cannot be reached is
/// the answer 503.
pub(super) async fn within_limits(app: &App, checks: &[(&str, Quota)]) -> Result<bool, Answer> {
    app.db
        .allow(checks, app.now())
        .await
        .map_err(|error| log_unavailable(app, &error))
}

pub(super) fn too_many(app: &App, seconds: u64) -> Answer {
    let mut response = html(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        "Please wait",
        "<h1>Please wait a little</h1><p>We have had many requests from your network. Try again in a few minutes.</p>",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A page whose body is the view `name` (a template) with `context`.
pub(super) fn render(
    app: &App,
    status: StatusCode,
    title: &str,
    name: &str,
    context: minijinja::Value,
) -> Answer {
    render_with(app, status, title, name, context, &Meta::default())
}

fn render_with(
    app: &App,
    status: StatusCode,
    title: &str,
    name: &str,
    context: minijinja::Value,
    meta: &views::Meta,
) -> Answer {
    match app.views.render(name, context) {
        Ok(body) => page(app, status, title, &body, meta),
        Err(error) => {
            tracing::error!("{}", error::one_line(&error));
            html(
                app,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<h1>Something went wrong</h1><p>This page could not be shown. Please try again later.</p>",
            )
        }
    }
}

/// A page made to be found and shared (the store front, a product's): the
/// view `name` with `context`, and `meta` for search engines and previews.
pub(in crate::server) fn public(
    app: &App,
    title: &str,
    name: &str,
    context: minijinja::Value,
    meta: &views::Meta,
) -> Answer {
    render_with(app, StatusCode::OK, title, name, context, meta)
}

pub(in crate::server) fn not_found(app: &App) -> Answer {
    html(
        app,
        StatusCode::NOT_FOUND,
        "Not found",
        "<h1>Not found</h1><p>There is nothing here.</p>",
    )
}

pub fn rejection(app: &App, rejection: &warp::Rejection) -> Answer {
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "too large");
    }
    if rejection.find::<warp::reject::InvalidQuery>().is_some()
        || rejection.find::<warp::reject::InvalidHeader>().is_some()
        || rejection.find::<warp::reject::LengthRequired>().is_some()
    {
        return text(StatusCode::BAD_REQUEST, "bad request");
    }
    not_found(app)
}

pub(super) fn refuse(app: &App, status: StatusCode, title: &str, text: &str) -> Answer {
    view(
        app,
        status,
        title,
        "refusal.html",
        minijinja::context! { title, text },
    )
}

/// A page whose body is the template `name` rendered with `values`.
pub(super) fn view(
    app: &App,
    status: StatusCode,
    title: &str,
    name: &str,
    values: minijinja::Value,
) -> Answer {
    let body = app.views.render(name, values).unwrap_or_else(|error| {
        // Checked with samples at start: an override that fails on other
        // values gets here. The page still says what it is.
        tracing::error!("{}", error::one_line(&error));
        format!("<h1>{}</h1>", escape(title))
    });
    html(app, status, title, &body)
}

pub(super) fn invalid_link(app: &App) -> Answer {
    refuse(
        app,
        StatusCode::FORBIDDEN,
        "This link is not valid",
        "Check that you copied the whole link from your email.",
    )
}

pub(super) fn refunded(app: &App) -> Answer {
    refuse(
        app,
        StatusCode::GONE,
        "This purchase was refunded",
        "Its downloads are closed. If you think this is a mistake, write to us.",
    )
}

pub(super) fn exhausted(app: &App) -> Answer {
    refuse(
        app,
        StatusCode::GONE,
        "No downloads left",
        "This file has been downloaded as many times as the purchase allows. Write to us if you need more.",
    )
}

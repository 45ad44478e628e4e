//! Lost links: `/lost` mails a buyer their library, limited per client
//! and per address, and only from the shop's own pages.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::answers::{html, refuse, same_origin_referrer, text, view, within_limits};
use crate::server::App;
use crate::server::client::ClientKey;
use crate::state::Quota;
use crate::store::settings;

/// Lost-link mails one address may be sent an hour, whoever asks: what
/// keeps a stranger from filling a buyer's inbox. (How often one client
/// may ask is `[serve] lost_limit`; nothing is counted for everyone
/// together, so no stranger can spend what a buyer needs.)
const LOST_PER_ADDRESS: Quota = Quota::per_hour(3);

pub async fn lost_form(app: Arc<App>, query: HashMap<String, String>) -> Answer {
    let note = query.contains_key("expired").then_some(
        "The page after buying opens your downloads only for a while. Enter your address and we will email your links.",
    );
    same_origin_referrer(view(
        &app,
        StatusCode::OK,
        "Lost your link?",
        "lost.html",
        minijinja::context! { message => note },
    ))
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// Whether a POST comes from the shop's own pages: a browser names the
/// page's origin in `Origin` (or else `Referer`); a request without either
/// is not a browser's, which no origin check could stop anyway.
pub(super) fn same_origin(base_url: &str, origin: Option<&str>, referer: Option<&str>) -> bool {
    let ours = origin_of(base_url).unwrap_or(base_url);
    match (origin, referer) {
        (Some(origin), _) => origin.trim_end_matches('/').eq_ignore_ascii_case(ours),
        (None, Some(referer)) => origin_of(referer).is_some_and(|o| o.eq_ignore_ascii_case(ours)),
        (None, None) => true,
    }
}

/// The refusal of a form posted from another site's page, if it was.
pub(super) fn from_elsewhere(
    app: &App,
    origin: Option<&str>,
    referer: Option<&str>,
) -> Option<Answer> {
    (!same_origin(&app.store().settings.base_url, origin, referer)).then(|| {
        text(
            StatusCode::FORBIDDEN,
            "this form only works on its own page",
        )
    })
}

/// [`from_elsewhere`] for a form on a page whose address holds a token
/// (the download page): the page keeps its address out of `Referer`
/// (`no-referrer`), so a browser posts it with `Origin: null`, which is
/// taken; a form of another site's page names that site, and is refused.
/// (Forging the post would take the token in its address anyway.)
pub(super) fn from_elsewhere_to_token(
    app: &App,
    origin: Option<&str>,
    referer: Option<&str>,
) -> Option<Answer> {
    match origin {
        Some("null") => None,
        _ => from_elsewhere(app, origin, referer),
    }
}

/// The address a form was sent with (`email`), in lower case, if it is
/// one.
pub(super) fn typed_address(form: &HashMap<String, String>) -> Option<String> {
    let email = form.get("email")?.trim().to_ascii_lowercase();
    settings::check_email(&email).is_ok().then_some(email)
}

/// [`typed_address`], or the page that asks to check it.
#[allow(clippy::result_large_err)]
pub(super) fn address_or_refusal(
    app: &App,
    form: &HashMap<String, String>,
) -> Result<String, Answer> {
    typed_address(form).ok_or_else(|| {
        refuse(
            app,
            StatusCode::BAD_REQUEST,
            "Please check the address",
            "That does not look like an email address. Go back and try again.",
        )
    })
}

/// Whether a form that mails someone may go on: within `per_subject` for
/// `subject` (an address, a purchase) and within the store's limit for
/// one client (`[serve.limits] lost`), both counted under `kind`; or the
/// answer when the state cannot say.
pub(super) async fn within_form_limits(
    app: &App,
    kind: &str,
    subject: &str,
    per_subject: Quota,
    client: &ClientKey,
) -> Result<bool, Answer> {
    let (by_subject, by_client) = (
        format!("{kind}:{subject}"),
        format!("{kind}-client:{client}"),
    );
    let checks = [
        (by_subject.as_str(), per_subject),
        (
            by_client.as_str(),
            Quota::of(app.store().settings.serve.limits.lost),
        ),
    ];
    within_limits(app, &checks).await
}

pub async fn lost(
    app: Arc<App>,
    client: ClientKey,
    origin: Option<String>,
    referer: Option<String>,
    form: HashMap<String, String>,
) -> Answer {
    if let Some(refused) = from_elsewhere(&app, origin.as_deref(), referer.as_deref()) {
        return refused;
    }
    let Some(email) = typed_address(&form) else {
        return same_origin_referrer(view(
            &app,
            StatusCode::BAD_REQUEST,
            "Lost your link?",
            "lost.html",
            minijinja::context! { message => "Please enter the email address you bought with." },
        ));
    };
    let allowed = match within_form_limits(&app, "lost", &email, LOST_PER_ADDRESS, &client).await {
        Ok(allowed) => allowed,
        Err(answer) => return answer,
    };
    if !allowed {
        return html(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "Please wait",
            "<h1>Please wait a while</h1><p>We have had several requests for this address or from your network. Try again in an hour.</p>",
        );
    }
    // Noted, not looked up: the same work now whether or not the address
    // bought anything; the look-up comes on its own schedule (`lost`).
    app.lost.note(email);
    same_origin_referrer(html(
        &app,
        StatusCode::OK,
        "Check your email",
        "<h1>Check your email</h1><p>If that address bought anything here, we have sent fresh download links to it. They should arrive within a few minutes.</p>",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shops_own_pages_may_post() {
        let base = "https://books.example";
        assert!(same_origin(base, Some("https://books.example"), None));
        assert!(same_origin(base, None, Some("https://books.example/lost")));
        assert!(same_origin(base, None, None));
        assert!(!same_origin(base, Some("https://evil.example"), None));
        assert!(!same_origin(base, Some("null"), None));
        assert!(!same_origin(
            base,
            None,
            Some("https://books.example.evil.example/")
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8080",
            Some("http://127.0.0.1:9090"),
            None
        ));
    }
}

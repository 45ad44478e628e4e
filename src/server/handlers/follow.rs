//! Following the author (double opt-in): `/follow` asks (same-origin,
//! limited per client and per address, the same answer whoever asks),
//! the mailed link `/follow/confirm/<token>` shows a button, and its POST
//! records the follower. A mail scanner that opens links confirms nobody.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::answers::{invalid_link, log_unavailable, refuse, view};
use super::lost::{address_or_refusal, from_elsewhere, within_form_limits};
use crate::server::App;
use crate::server::client::ClientKey;
use crate::state::Quota;
use crate::tokens::{self, TokenError};

/// Confirmation mails one address may be sent an hour, whoever asks.
const FOLLOW_PER_ADDRESS: Quota = Quota::per_hour(1);

/// What a follower agrees to, kept with them as the proof of consent.
const CONSENT: &str = "asked to follow on the store and confirmed the mailed link: \
     news of new books and posts, a few times a year, each mail with a link to stop";

/// `POST /follow`: a request to follow, from the store's own pages.
pub async fn follow(
    app: Arc<App>,
    client: ClientKey,
    origin: Option<String>,
    referer: Option<String>,
    form: HashMap<String, String>,
) -> Answer {
    let store = app.store();
    if let Some(refused) = from_elsewhere(&app, origin.as_deref(), referer.as_deref()) {
        return refused;
    }
    let email = match address_or_refusal(&app, &form) {
        Ok(email) => email,
        Err(refused) => return refused,
    };
    let source = match form.get("source").map(String::as_str) {
        Some(slug) if slug.starts_with("product:") && store.product(&slug[8..]).is_ok() => {
            slug.to_owned()
        }
        Some("thanks") => "thanks".to_owned(),
        _ => "front".to_owned(),
    };
    let allowed =
        match within_form_limits(&app, "follow", &email, FOLLOW_PER_ADDRESS, &client).await {
            Ok(allowed) => allowed,
            Err(answer) => return answer,
        };
    // Over a limit, or following already: the same answer, nothing mailed.
    if allowed
        && let Err(error) = app
            .db
            .request_follow(&email, &source, CONSENT, app.now())
            .await
    {
        return log_unavailable(&app, &error);
    }
    view(
        &app,
        StatusCode::OK,
        "Check your email",
        "follow.html",
        minijinja::context! { shop => store.settings.name },
    )
}

/// The follower a confirmation token is for, or the refusal page.
#[allow(clippy::result_large_err)]
fn follower_of(app: &App, token: &str) -> Result<String, Answer> {
    match tokens::verify(&app.keys, token, app.now()) {
        Ok(claims) => claims
            .purchase
            .strip_prefix(tokens::FOLLOW)
            .map(str::to_owned)
            .ok_or_else(|| invalid_link(app)),
        Err(TokenError::Invalid) => Err(invalid_link(app)),
        Err(TokenError::Expired { .. }) => Err(refuse(
            app,
            StatusCode::GONE,
            "This link has expired",
            "Ask to follow again on the store: a new link will come.",
        )),
    }
}

/// `GET /follow/confirm/<token>`: the button.
pub async fn confirm_page(token: String, app: Arc<App>) -> Answer {
    if let Err(page) = follower_of(&app, &token) {
        return page;
    }
    view(
        &app,
        StatusCode::OK,
        "Confirm",
        "follow-confirm.html",
        minijinja::context! { shop => app.store().settings.name },
    )
}

/// `POST /follow/confirm/<token>`: the follower is recorded.
pub async fn confirm(token: String, app: Arc<App>) -> Answer {
    let id = match follower_of(&app, &token) {
        Ok(id) => id,
        Err(page) => return page,
    };
    let email = match app.db.confirm_follower(&id, app.now()).await {
        Ok(Some(email)) => email,
        // A link of a request replaced by a newer one.
        Ok(None) => return invalid_link(&app),
        Err(error) => return log_unavailable(&app, &error),
    };
    tracing::info!(follower = %id, "a reader confirmed they follow");
    view(
        &app,
        StatusCode::OK,
        "You follow",
        "followed.html",
        minijinja::context! { shop => app.store().settings.name, email },
    )
}

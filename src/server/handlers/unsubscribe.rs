//! Unsubscribing from notices, by the link every notice carries.

use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::access::purchase;
use super::answers::{html, invalid_link, log_unavailable, view};
use crate::server::App;
use crate::tokens;

/// Whom an unsubscribe token is for: a purchase (the links mailed now), or
/// an address (links mailed before they named the purchase).
fn unsubscribe_subject(app: &App, token: &str) -> Option<String> {
    tokens::verify(&app.keys, token, app.now())
        .ok()
        .and_then(|claims| {
            claims
                .purchase
                .strip_prefix(tokens::UNSUBSCRIBE)
                .map(str::to_owned)
        })
}

/// A page with a button: mail scanners that open links unsubscribe nobody.
pub async fn unsubscribe_page(token: String, app: Arc<App>) -> Answer {
    if unsubscribe_subject(&app, &token).is_none() {
        return invalid_link(&app);
    }
    view(
        &app,
        StatusCode::OK,
        "Stop update notices?",
        "unsubscribe.html",
        minijinja::context! {},
    )
}

/// The button's POST, or a mail client's RFC 8058 one-click POST.
pub async fn unsubscribe(token: String, app: Arc<App>) -> Answer {
    let Some(subject) = unsubscribe_subject(&app, &token) else {
        return invalid_link(&app);
    };
    if subject.starts_with(crate::state::FOLLOWER_PREFIX) {
        return match app.db.unfollow(&subject, app.now()).await {
            Ok(Some(_)) => {
                tracing::info!("a follower left");
                html(
                    &app,
                    StatusCode::OK,
                    "Unsubscribed",
                    "<h1>You no longer follow us</h1><p>No more news will come. Changed your mind? Follow again on the store.</p>",
                )
            }
            Ok(None) => invalid_link(&app),
            Err(error) => log_unavailable(&app, &error),
        };
    }
    let email = if subject.contains('@') {
        subject
    } else {
        match purchase(&app, &subject).await {
            Ok(Some(purchase)) => purchase.email.clone(),
            Ok(None) => return invalid_link(&app),
            Err(page) => return page,
        }
    };
    if let Err(error) = app.db.opt_out(&email, app.now()).await {
        return log_unavailable(&app, &error);
    }
    tracing::info!("a buyer stopped update notices");
    html(
        &app,
        StatusCode::OK,
        "Unsubscribed",
        "<h1>You will get no more update notices</h1><p>Receipts and the links you ask for still come. Changed your mind? Write to us.</p>",
    )
}

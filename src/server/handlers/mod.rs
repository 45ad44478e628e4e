//! The server's handlers: one function per route, each returning a whole
//! response, in one file per family of routes. Errors become plain pages
//! with the right status, never a stack trace or a hint of what exists.
//!
//! Logs: one line at `info` per sale, download, refund and webhook
//! outcome, naming the purchase; never a token of any kind, never a
//! buyer's address.

mod access;
mod answers;
mod checkout;
mod downloads;
mod follow;
mod gift;
mod kindle;
mod library;
mod lost;
mod meter;
mod opds;
mod sample;
mod unsubscribe;
mod webhook;
mod withdraw;

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::App;

pub(super) use answers::{not_found, public, same_origin_referrer};
pub use answers::{rejection, secured, text};
pub use checkout::{buy, thanks};
pub use downloads::{download, download_all, download_page};
pub use follow::{confirm as follow_confirm, confirm_page as follow_confirm_page, follow};
pub use gift::{page as gift_page, send_again as send_gift_again};
pub use kindle::send as send_to_kindle;
pub use library::{LIBRARY_PREFIX, library, stop_feed};
pub use lost::{lost, lost_form};
pub use opds::opds;
pub use sample::sample;
pub use unsubscribe::{unsubscribe, unsubscribe_page};
pub use webhook::webhook;
pub use withdraw::{withdraw, withdraw_page};

pub(super) type Answer = warp::reply::Response;

/// `GET /healthz`: `ok` while the server answers; with `?deep=1`, also
/// whether Stripe and GitHub accept the server's keys and its state
/// answers (503 and one line per problem when not).
pub async fn healthz(app: Arc<App>, query: HashMap<String, String>) -> Answer {
    if query.get("deep").is_none_or(|deep| deep == "0") {
        return text(StatusCode::OK, "ok");
    }
    let problems = app.problems().await;
    if problems.is_empty() {
        text(StatusCode::OK, "ok")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, &problems.join("\n"))
    }
}

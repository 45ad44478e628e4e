//! `POST /kindle/<token>`: Send to Kindle from the download page. The
//! buyer's EPUB of the version the form names goes to their Kindle
//! address by mail (`server::kindle`), counted as one download of that
//! file; the address is remembered for their next visit.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::access::authorize;
use super::answers::{log_unavailable, refuse, view};
use super::downloads::chosen_release;
use super::lost::{from_elsewhere_to_token, within_form_limits};
use super::meter::charge_stream;
use crate::server::client::ClientKey;
use crate::server::kindle;
use crate::server::stamped;
use crate::server::{App, Chosen};
use crate::state::{FileKey, Quota};

/// Kindle mails one purchase may ask for an hour.
const PER_PURCHASE: Quota = Quota::per_hour(5);

pub async fn send(
    token: String,
    app: Arc<App>,
    client: ClientKey,
    origin: Option<String>,
    referer: Option<String>,
    chosen: Chosen,
    form: HashMap<String, String>,
) -> Answer {
    if let Some(refused) = from_elsewhere_to_token(&app, origin.as_deref(), referer.as_deref()) {
        return refused;
    }
    // Revocation is checked by the charge, in its transaction.
    let (_, purchase, store) = match authorize(&app, &token, false).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let address = form
        .get("address")
        .map(|address| address.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !kindle::is_kindle_address(&address) {
        return refuse(
            &app,
            StatusCode::BAD_REQUEST,
            "That is not a Kindle address",
            "A Kindle's address ends in @kindle.com (or @free.kindle.com). You find it at Amazon, \
             in Manage Your Content and Devices → Preferences → Personal Document Settings. Go back \
             and try again.",
        );
    }
    let (held, release) = match chosen_release(&app, &store, &purchase, &chosen) {
        Ok(found) => found,
        Err(page) => return page,
    };
    let product = held.product;
    let Some(asset) = release
        .assets
        .iter()
        .find(|asset| asset.name.to_ascii_lowercase().ends_with(".epub"))
    else {
        return refuse(
            &app,
            StatusCode::NOT_FOUND,
            "No EPUB to send",
            "This version has no EPUB file, which is what a Kindle takes.",
        );
    };
    match within_form_limits(&app, "kindle", &purchase.id, PER_PURCHASE, &client).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                &app,
                StatusCode::TOO_MANY_REQUESTS,
                "Sent several times already",
                "Your Kindle has had this book sent a few times this hour. Try again later.",
            );
        }
        Err(answer) => return answer,
    }
    // The buyer's own copy where the product stamps: its size decides.
    let version = release.version.to_string();
    let size = match stamped::licence(&app.keys[0], &store, product, &purchase, &asset.name) {
        Some(licence) => {
            match stamped::buyer_copy(&app, &purchase.id, product, release, asset, licence).await {
                Ok(copy) => copy.size,
                Err(message) => return log_unavailable(&app, &std::io::Error::other(message)),
            }
        }
        None => asset.size,
    };
    if size > kindle::MAX_BYTES {
        return refuse(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large for a Kindle mail",
            "Amazon takes at most 50 MB in one mail. Download the EPUB and send it with Amazon's \
             Send to Kindle page (amazon.com/sendtokindle) or app, which take larger files.",
        );
    }
    let key = FileKey::new(&purchase, &product.slug, &version, &asset.name);
    let meter = match charge_stream(&app, key, product.download_limit, size, 0, size).await {
        Ok(meter) => meter,
        Err(answer) => return answer,
    };
    let reference = kindle::reference(&purchase.id, &product.slug, &version, &asset.name);
    if let Err(error) = app
        .db
        .send_to_kindle(&purchase.email, &address, &reference, app.now())
        .await
    {
        // Not queued: the meter gives the download back.
        drop(meter);
        return log_unavailable(&app, &error);
    }
    meter.consumed();
    app.outbox_wake.notify_one();
    tracing::info!(purchase = %purchase.id, file = %asset.name, %version, "download (to a Kindle)");
    view(
        &app,
        StatusCode::OK,
        "On its way to your Kindle",
        "kindle.html",
        minijinja::context! {
            product => product.name,
            version,
            file => asset.name,
            kindle => address,
            sender => store.settings.mail.from,
        },
    )
}

//! A free sample for an address (`price = "free"`, a lead magnet):
//! `POST /sample/<slug>` from the product's form (same-origin, limited per
//! client and per address, the same answer whoever asks) records the
//! sample and mails its download link; the address is confirmed by the
//! link reaching it. "Also send me news" (unticked unless ticked) asks to
//! follow too, and the same mail carries that confirmation's link: nobody
//! follows without opening it.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::answers::{log_unavailable, not_found, view};
use super::lost::{address_or_refusal, from_elsewhere, within_form_limits};
use crate::ledger::SAMPLE_PREFIX;
use crate::server::App;
use crate::server::client::ClientKey;
use crate::state::{Entitlement, Quota};

/// Sample mails one address may be sent an hour for one product.
const SAMPLE_PER_ADDRESS: Quota = Quota::per_hour(1);

/// What a reader who ticks the box agrees to, kept as the proof of consent.
const CONSENT: &str = "ticked \"also send me news\" when asking for a free sample, and \
     confirmed the mailed link: news of new books and posts, a few times a year, each mail \
     with a link to stop";

/// `POST /sample/<slug>`: a free sample asked for on the store's pages.
pub async fn sample(
    slug: String,
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
    let Some(product) = store.product(&slug).ok().filter(|product| product.free) else {
        return not_found(&app);
    };
    let Some(release) = product.on_sale() else {
        return not_found(&app);
    };
    let email = match address_or_refusal(&app, &form) {
        Ok(email) => email,
        Err(refused) => return refused,
    };
    let follow = form.get("follow").is_some_and(|ticked| ticked == "yes");
    let subject = format!("{slug}:{email}");
    let allowed =
        match within_form_limits(&app, "sample", &subject, SAMPLE_PER_ADDRESS, &client).await {
            Ok(allowed) => allowed,
            Err(answer) => return answer,
        };
    // Over a limit: the same answer, nothing mailed.
    if allowed {
        let now = app.now();
        let given = match app.db.purchases_of(&email).await {
            Ok(held) => held
                .into_iter()
                .any(|held| held.product == slug && held.id.starts_with(SAMPLE_PREFIX)),
            Err(error) => return log_unavailable(&app, &error),
        };
        let asked = match given {
            // One sample a product and address: asking again mails the
            // links of everything the address holds, as `/lost` does.
            true => app.db.queue_links(&email, now).await,
            false => {
                let sample = Entitlement {
                    id: format!("{SAMPLE_PREFIX}{}", uuid::Uuid::new_v4().simple()),
                    email: email.clone(),
                    product: slug.clone(),
                    version: release.version.to_string(),
                    payment_intent: None,
                    created: now,
                    paid: None,
                    gift: None,
                };
                let source = format!("sample:{slug}");
                let follow = follow.then_some((source.as_str(), CONSENT));
                app.db.give_sample(sample, follow, now).await.map(|_| ())
            }
        };
        if let Err(error) = asked {
            return log_unavailable(&app, &error);
        }
        tracing::info!(product = %slug, "a free sample was asked for");
    }
    view(
        &app,
        StatusCode::OK,
        "Check your email",
        "sample.html",
        minijinja::context! { shop => store.settings.name, product => product.name },
    )
}

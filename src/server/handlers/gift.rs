//! A gift's page for its buyer (`/gift/<token>`, from the gift's receipt):
//! to whom, when it goes or went, and a button that sends it again when a
//! mail did not reach the recipient. The buyer never gets a download link
//! here: the files are the recipient's.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::access::purchase_of_purpose;
use super::answers::{invalid_link, log_unavailable, refuse, render};
use super::lost::{from_elsewhere_to_token, within_form_limits};
use crate::server::client::ClientKey;
use crate::server::{App, views};
use crate::state::{Entitlement, Quota};
use crate::tokens;
use crate::{dates, ledger};

/// Sendings again one gift may ask for an hour.
const PER_GIFT: Quota = Quota::per_hour(2);

/// The purchase a gift token is for, or the refusal page.
async fn purchase_of(app: &App, token: &str) -> Result<Arc<Entitlement>, Answer> {
    purchase_of_purpose(app, token, tokens::GIFT, "this gift").await
}

/// `GET /gift/<token>`.
pub async fn page(token: String, app: Arc<App>) -> Answer {
    match purchase_of(&app, &token).await {
        Ok(purchase) => show(&app, &purchase, false).await,
        Err(page) => page,
    }
}

/// `POST /gift/<token>`: the gift's mail again, to its recipient.
pub async fn send_again(
    token: String,
    app: Arc<App>,
    client: ClientKey,
    origin: Option<String>,
    referer: Option<String>,
    _form: HashMap<String, String>,
) -> Answer {
    if let Some(refused) = from_elsewhere_to_token(&app, origin.as_deref(), referer.as_deref()) {
        return refused;
    }
    let purchase = match purchase_of(&app, &token).await {
        Ok(purchase) => purchase,
        Err(page) => return page,
    };
    match app.db.revoked(&purchase).await {
        Ok(false) => {}
        Ok(true) => return show(&app, &purchase, false).await,
        Err(error) => return log_unavailable(&app, &error),
    }
    match within_form_limits(&app, "gift", &purchase.id, PER_GIFT, &client).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                &app,
                StatusCode::TOO_MANY_REQUESTS,
                "Sent several times already",
                "This gift was sent again a moment ago. Give the mail some time, or write to us.",
            );
        }
        Err(answer) => return answer,
    }
    let queued = match app.db.resend_gift(&purchase.id, app.now()).await {
        Ok(queued) => queued,
        Err(error) => return log_unavailable(&app, &error),
    };
    if queued {
        app.outbox_wake.notify_one();
    }
    show(&app, &purchase, queued).await
}

async fn show(app: &App, purchase: &Entitlement, resent: bool) -> Answer {
    let (state, refunded) = match (
        app.db.gift(&purchase.id).await,
        app.db.revoked(purchase).await,
    ) {
        (Ok(Some(state)), Ok(refunded)) => (state, refunded),
        (Ok(None), _) => return invalid_link(app),
        (Err(error), _) | (_, Err(error)) => return log_unavailable(app, &error),
    };
    let product = app
        .store()
        .product(&purchase.product)
        .map_or_else(|_| purchase.product.clone(), |product| product.name.clone());
    let page = views::GiftPage {
        product,
        order: ledger::order_number(&purchase.id),
        recipient: state.gift.recipient.clone(),
        message: state.gift.message.clone(),
        send_on: state
            .gift
            .send_on
            .filter(|_| state.gift.send_at > app.now())
            .map(dates::human_date),
        waiting: state.waiting,
        sent: state.sent.map(dates::human_time),
        sent_at: state.sent.map(dates::timestamp),
        refunded,
        resent,
    };
    render(
        app,
        StatusCode::OK,
        "Your gift",
        "gift.html",
        minijinja::Value::from_serialize(&page),
    )
}

//! `POST /webhook`: Stripe's events, verified, applied once.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::StatusCode;

use super::Answer;
use super::answers::text;
use crate::server::events::ApplyError;
use crate::server::{App, events};
use crate::state::Recorded;
use crate::{error, stripe};

pub async fn webhook(app: Arc<App>, signature: Option<String>, body: Bytes) -> Answer {
    let Some(secret) = &app.webhook_secret else {
        tracing::error!("a webhook came, but STRIPE_WEBHOOK_SECRET is not set");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks are not configured",
        );
    };
    let now = app.now();
    if let Err(error) = crate::stripe::webhook::verify(
        &body,
        signature.as_deref().unwrap_or(""),
        secret,
        now,
        crate::stripe::webhook::TOLERANCE_SECONDS,
    ) {
        tracing::warn!("refused a webhook: {}", error::one_line(&error));
        return text(StatusCode::BAD_REQUEST, "invalid signature");
    }
    let Ok(event) = serde_json::from_slice::<stripe::Event>(&body) else {
        return text(StatusCode::BAD_REQUEST, "not an event");
    };
    match events::apply(&app, &event, now).await {
        Ok(Recorded::Again) => text(StatusCode::OK, "already received"),
        Ok(_) => text(StatusCode::OK, "received"),
        Err(ApplyError::Malformed(what)) => text(StatusCode::BAD_REQUEST, &format!("not a {what}")),
        Err(ApplyError::State(error)) => {
            // Not recorded: Stripe will send it again.
            tracing::error!(
                event = %event.id,
                "cannot record webhook event: {}",
                error::one_line(&error)
            );
            text(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

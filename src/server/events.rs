//! What a Stripe event does to the server's state, whether it came by
//! webhook or was read back from Stripe by reconciliation: a paid sale is
//! recorded and its receipt queued, a refund or a dispute closes the
//! downloads of its payment, anything else is only recorded. Each event
//! once, by its id, in the transaction that acts on it. The objects are
//! read as the typed objects of `stripe`.

use serde::Deserialize;

use super::App;
use crate::metadata;
use crate::state::{self, Entitlement, Recorded, StateError};
use crate::stripe::{Charge, CheckoutSession, Dispute, Event, Refund};

/// The events the server acts on.
pub const HANDLED: [&str; 5] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "charge.refunded",
    "charge.dispute.created",
    "charge.refund.updated",
];

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Its object is not what its type says (Stripe never sends such).
    #[error("the event's object is not a {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Applies `event` received at `now`, once.
pub async fn apply(app: &App, event: &Event, now: i64) -> Result<Recorded, ApplyError> {
    let recorded = state::Event {
        id: &event.id,
        kind: &event.kind,
        received: now,
    };
    let object = &event.data.object;
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let session = CheckoutSession::deserialize(object)
                .map_err(|_| ApplyError::Malformed("checkout session"))?;
            let purchase = fulfilled_purchase(app, &session);
            let outcome = match &purchase {
                Some(purchase) => format!("sale of `{}` {}", purchase.product, purchase.version),
                None if ours(app, &session).is_some() => "a sale waiting for payment".into(),
                None => "a sale of another integration".into(),
            };
            let handled = app.db.record_sale(&recorded, purchase).await?;
            if handled.is_new() {
                tracing::info!(
                    purchase = %session.id,
                    event = %event.id,
                    "{}: {outcome}{}",
                    event.kind,
                    if handled == Recorded::NowRevoked {
                        " (already refunded: no receipt)"
                    } else {
                        ""
                    }
                );
            }
            Ok(handled)
        }
        "charge.refunded" => {
            let charge =
                Charge::deserialize(object).map_err(|_| ApplyError::Malformed("charge"))?;
            // A partial refund leaves the downloads open.
            let closed = charge
                .payment_intent
                .as_deref()
                .filter(|_| charge.refunded)
                .map(|intent| (intent, "refunded"));
            let handled = app.db.record_refund(&recorded, closed).await?;
            if handled.is_new() {
                tracing::info!(
                    payment = %charge.payment_intent.as_deref().unwrap_or_default(),
                    event = %event.id,
                    "{}: {}",
                    event.kind,
                    if charge.refunded {
                        "downloads closed"
                    } else {
                        "partial refund, downloads stay open"
                    }
                );
            }
            Ok(handled)
        }
        "charge.dispute.created" => {
            let dispute =
                Dispute::deserialize(object).map_err(|_| ApplyError::Malformed("dispute"))?;
            let closed = dispute
                .payment_intent
                .as_deref()
                .map(|intent| (intent, "disputed"));
            let handled = app.db.record_refund(&recorded, closed).await?;
            if handled.is_new() {
                tracing::info!(
                    payment = %dispute.payment_intent.as_deref().unwrap_or_default(),
                    event = %event.id,
                    "{}: downloads closed",
                    event.kind
                );
            }
            Ok(handled)
        }
        "charge.refund.updated" => {
            let refund =
                Refund::deserialize(object).map_err(|_| ApplyError::Malformed("refund"))?;
            // Applied before it is recorded: applying twice does nothing
            // more (a withdrawal's refund is recorded by its id).
            if !app.db.event_recorded(&event.id).await? {
                super::withdraw::refund_updated(app, &refund).await?;
            }
            Ok(app.db.record_event(&recorded).await?)
        }
        _ => Ok(app.db.record_event(&recorded).await?),
    }
}

/// The product and version a session sells, if it is one of ours.
pub(super) fn ours(app: &App, session: &CheckoutSession) -> Option<(String, String)> {
    metadata::product_of(session, &app.store())
}

/// The purchase a session is, if it is one of ours and fulfilled.
pub(super) fn fulfilled_purchase(app: &App, session: &CheckoutSession) -> Option<Entitlement> {
    let (product, version) = ours(app, session)?;
    let gift = crate::gift::of_session(session);
    session.is_fulfilled().then(|| Entitlement {
        id: session.id.clone(),
        // A gift is the recipient's.
        email: match &gift {
            Some(gift) => gift.holder().to_owned(),
            None => session.email().unwrap_or_default().to_owned(),
        },
        product,
        version,
        payment_intent: session.payment_intent_id().map(str::to_owned),
        created: session.created,
        paid: session.currency.as_ref().map(|currency| state::Paid {
            amount: session.amount_total.unwrap_or(0),
            currency: currency.clone(),
            discount: session
                .total_details
                .as_ref()
                .map_or(0, |details| details.amount_discount),
            tax: session
                .total_details
                .as_ref()
                .map_or(0, |details| details.amount_tax),
        }),
        gift,
    })
}

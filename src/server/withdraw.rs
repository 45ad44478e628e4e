//! The withdrawal function's work behind its pages: the facts a decision
//! rests on, the refund at Stripe, and what Stripe says of it later.
//!
//! A granted withdrawal's refund is a job of the outbox (kind `refund`),
//! queued in the transaction that records the withdrawal and closes the
//! downloads, and the outbox is woken at once: the refund is asked for
//! within moments, never lost if the server stops meanwhile, and retried
//! while Stripe cannot be reached (the same request: its idempotency key
//! makes one refund of any number of attempts). A refund Stripe refuses,
//! or one that fails later (`charge.refund.updated`), is asked for again
//! with a new key after a wait, at most [`REFUND_TRIES`] times; then the
//! author settles it (`shop withdrawals` shows it, `shop refund` does it).

use std::time::Duration;

use super::App;
use crate::state::{Entitlement, StateError, Withdrawal};
use crate::stripe::{IdempotencyKey, Refund, StripeError};
use crate::withdrawal::{self, Decision, Facts, Policy, WITHDRAWAL_DAYS};
use crate::{error, retry};

/// How many refunds of one withdrawal Stripe may refuse or fail before
/// the server stops asking by itself.
pub const REFUND_TRIES: i64 = 5;

/// The longest wait between two refunds of one withdrawal.
const REFUND_RETRY_MAX: Duration = Duration::from_secs(86_400);

/// Why a decision could not be made now (nothing is recorded).
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

/// Decides a request made now about `purchase`. Stripe is asked only when
/// the answer turns on the waiver: a file was downloaded within the 14
/// days, and the purchase is no pre-order still waiting.
pub async fn decide(app: &App, purchase: &Entitlement) -> Result<Decision, DecideError> {
    let store = app.store();
    let policy = Policy::of(&store.settings.refunds);
    let now = app.now();
    let undelivered_preorder = store
        .product(&purchase.product)
        .is_ok_and(|product| product.waiting_preorder(&purchase.version).is_some());
    let revoked = app.db.revoked(purchase).await?;
    let downloaded = app.db.downloaded(&purchase.id).await?;
    let within = now - purchase.created <= WITHDRAWAL_DAYS * 86_400;
    let waiver = if downloaded && !undelivered_preorder && within && !policy.review && !revoked {
        app.stripe_quick
            .checkout_session(&purchase.id)
            .await?
            .filter(|session| session.accepted_terms())
            .map(|_| purchase.created)
    } else {
        None
    };
    let facts = Facts {
        bought: purchase.created,
        waiver,
        downloaded,
        undelivered_preorder,
        revoked,
    };
    Ok(withdrawal::decide(&facts, &policy, now))
}

/// A refusal, as opposed to a failure to reach Stripe: asking again with
/// the same request gets the same answer.
fn refused(error: &StripeError) -> bool {
    matches!(error, StripeError::Api(failure)
        if (400..500).contains(&failure.status) && failure.status != 409 && failure.status != 429)
}

/// The outbox's `refund` job of `purchase`'s withdrawal: asks Stripe for
/// the refund. An error leaves the job to the outbox's retries (the same
/// request); a refusal is recorded and a new request queued.
pub async fn refund(app: &App, purchase: &str) -> anyhow::Result<()> {
    let Some(withdrawal) = app.db.withdrawal(purchase).await? else {
        return Ok(());
    };
    if matches!(
        withdrawal.refund_status.as_deref(),
        Some("succeeded" | "pending")
    ) {
        return Ok(());
    }
    let Some(intent) = withdrawal.payment_intent.as_deref() else {
        return Ok(());
    };
    let attempt = withdrawal.refused.to_string();
    let key = IdempotencyKey::derived(&["withdrawal", purchase, &attempt]);
    let now = app.now();
    match app
        .stripe
        .refund_for_buyer(intent, Some("withdrawal"), &key)
        .await
    {
        Ok(made) => settle(app, &withdrawal, &made).await?,
        Err(error) if error.code() == Some("charge_already_refunded") => {
            // Refunded by other means (the author, in Stripe's Dashboard).
            app.db
                .refund_made(purchase, "", "succeeded", now, true)
                .await?;
        }
        Err(error) if refused(&error) => {
            give_up_or_retry(app, &withdrawal, None, &error::one_line(&error)).await?;
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(purchase = %purchase, "a withdrawal's refund was asked of Stripe");
    Ok(())
}

/// Records what Stripe says of a withdrawal's refund, when it made it or
/// later (`charge.refund.updated`).
async fn settle(app: &App, withdrawal: &Withdrawal, refund: &Refund) -> Result<(), StateError> {
    let now = app.now();
    match refund.status.as_deref() {
        Some("failed") => {
            let why = format!("Stripe's refund `{}` failed", refund.id);
            give_up_or_retry(app, withdrawal, Some(&refund.id), &why).await
        }
        status => {
            let status = status.unwrap_or("succeeded");
            app.db
                .refund_made(&withdrawal.purchase, &refund.id, status, now, true)
                .await
        }
    }
}

async fn give_up_or_retry(
    app: &App,
    withdrawal: &Withdrawal,
    refund: Option<&str>,
    why: &str,
) -> Result<(), StateError> {
    let now = app.now();
    let tries = withdrawal.refused + 1;
    let retry_at = (tries < REFUND_TRIES).then(|| {
        let wait = retry::Backoff::new(app.refund_retry, REFUND_RETRY_MAX).ceiling(tries as u32);
        now + wait.as_secs().max(1) as i64
    });
    // For the author: `shop withdrawals` shows it too.
    tracing::error!(
        purchase = %withdrawal.purchase,
        tries,
        "a withdrawal's refund did not go through ({why}); {}",
        match retry_at {
            Some(at) => format!("asking again in {} s", at - now),
            None => "no more tries: settle it with `shop refund`".into(),
        }
    );
    app.db
        .refund_refused(&withdrawal.purchase, refund, why, now, retry_at)
        .await
}

/// A refund changed at Stripe: if it is a withdrawal's, record it (a
/// pending one succeeded, failed, or was canceled with its payment).
pub async fn refund_updated(app: &App, refund: &Refund) -> Result<(), StateError> {
    let Some(intent) = refund.payment_intent.as_deref() else {
        return Ok(());
    };
    let Some(withdrawal) = app.db.withdrawal_of_payment(intent).await? else {
        return Ok(());
    };
    if withdrawal
        .refund
        .as_deref()
        .is_some_and(|known| !known.is_empty() && known != refund.id)
    {
        // An earlier refund of this withdrawal, already replaced.
        return Ok(());
    }
    settle(app, &withdrawal, refund).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::ApiFailure;

    fn failure(status: u16) -> StripeError {
        StripeError::Api(Box::new(ApiFailure {
            status,
            kind: "invalid_request_error".into(),
            code: Some("charge_disputed".into()),
            decline_code: None,
            message: "Charge ch_1 has been charged back; cannot issue a refund.".into(),
            param: None,
            path: "/v1/refunds".into(),
            key_name: "STRIPE_SECRET_KEY".into(),
            attempts: 1,
        }))
    }

    #[test]
    fn only_stripes_refusals_get_a_new_request() {
        // Refused: the same request would be refused again.
        assert!(refused(&failure(400)));
        assert!(refused(&failure(402)));
        // Not an answer about the refund: the same request, later.
        for status in [409, 429, 500, 503] {
            assert!(!refused(&failure(status)), "{status}");
        }
    }
}

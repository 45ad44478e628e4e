//! The withdrawal function (`/withdraw/<token>`): the page that says what
//! is withdrawn from and asks for the buyer's name (the first step), and
//! its POST (the confirmation), which decides, records, and answers with
//! the outcome. The acknowledgement goes by mail from the outbox.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::Answer;
use super::access::purchase_of_purpose;
use super::answers::{log_unavailable, render, unavailable};
use super::lost::from_elsewhere_to_token;
use crate::server::client::ClientKey;
use crate::server::withdraw::{self, DecideError};
use crate::server::{App, views};
use crate::state::{Entitlement, Withdrawal};
use crate::tokens;
use crate::{dates, error, ledger, withdrawal};

const NAME_MAX: usize = 200;
const REASON_MAX: usize = 2000;

/// The purchase a withdrawal token is for, or the refusal page.
async fn purchase_of(app: &App, token: &str) -> Result<Arc<Entitlement>, Answer> {
    let found = purchase_of_purpose(app, token, tokens::WITHDRAW, "this purchase").await?;
    // A gift's withdrawal is its buyer's (who paid, and holds the link in
    // their receipt): the page, the record and the mails name them, not
    // the recipient who holds the files.
    match app.db.gift(&found.id).await {
        Ok(Some(state)) if state.gift.deliverable => Ok(Arc::new(Entitlement {
            email: state.gift.buyer,
            ..(*found).clone()
        })),
        Ok(_) => Ok(found),
        Err(error) => Err(log_unavailable(app, &error)),
    }
}

fn product_name(app: &App, purchase: &Entitlement) -> String {
    app.store()
        .product(&purchase.product)
        .map_or_else(|_| purchase.product.clone(), |product| product.name.clone())
}

/// The first step: what is withdrawn from, and the form.
fn form(app: &App, purchase: &Entitlement, problem: Option<&str>, typed: (&str, &str)) -> Answer {
    let page = views::WithdrawPage {
        product: product_name(app, purchase),
        version: purchase.version.clone(),
        order: ledger::order_number(&purchase.id),
        date: dates::human_day(purchase.created),
        email: purchase.email.clone(),
        paid: purchase.amount_text(),
        problem: problem.map(str::to_owned),
        name: typed.0.to_owned(),
        reason: typed.1.to_owned(),
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // The page's address holds its token: no `Referer` carries it (its
    // form arrives with `Origin: null`, see `from_elsewhere_to_token`).
    render(
        app,
        status,
        "Withdraw from this purchase",
        "withdraw.html",
        minijinja::Value::from_serialize(&page),
    )
}

/// The answer: what was decided of a withdrawal, as recorded.
fn outcome(app: &App, purchase: &Entitlement, withdrawal: &Withdrawal) -> Answer {
    let page = views::WithdrawnPage {
        product: product_name(app, purchase),
        version: purchase.version.clone(),
        order: ledger::order_number(&purchase.id),
        email: purchase.email.clone(),
        requested: dates::human_time(withdrawal.requested),
        decision: withdrawal.decision.clone(),
        amount: purchase.amount_text(),
        waived: withdrawal.waived.map(dates::human_day),
        refund_status: withdrawal.refund_status.clone(),
        days: (withdrawal.requested - purchase.created) / 86_400,
        guarantee_days: app.store().settings.refunds.self_service_days,
    };
    render(
        app,
        StatusCode::OK,
        "Your withdrawal",
        "withdrawn.html",
        minijinja::Value::from_serialize(&page),
    )
}

/// `GET /withdraw/<token>`: the form, or the outcome of one confirmed.
pub async fn withdraw_page(token: String, app: Arc<App>) -> Answer {
    let purchase = match purchase_of(&app, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match app.db.withdrawal(&purchase.id).await {
        Ok(Some(known)) => outcome(&app, &purchase, &known),
        Ok(None) => form(&app, &purchase, None, ("", "")),
        Err(error) => log_unavailable(&app, &error),
    }
}

/// `POST /withdraw/<token>`: the confirmation. Decided and recorded once;
/// a second POST finds the first and answers with it.
pub async fn withdraw(
    token: String,
    app: Arc<App>,
    client: ClientKey,
    origin: Option<String>,
    referer: Option<String>,
    fields: HashMap<String, String>,
) -> Answer {
    if let Some(refused) = from_elsewhere_to_token(&app, origin.as_deref(), referer.as_deref()) {
        return refused;
    }
    let purchase = match purchase_of(&app, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match app.db.withdrawal(&purchase.id).await {
        Ok(Some(known)) => return outcome(&app, &purchase, &known),
        Ok(None) => {}
        Err(error) => return log_unavailable(&app, &error),
    }
    let field = |name: &str| fields.get(name).map_or("", |value| value.trim());
    let (name, reason) = (field("name"), field("reason"));
    if name.is_empty() || name.chars().count() > NAME_MAX {
        return form(
            &app,
            &purchase,
            Some("Please give your name (up to 200 characters)."),
            (name, reason),
        );
    }
    if reason.chars().count() > REASON_MAX {
        return form(
            &app,
            &purchase,
            Some("Please keep the reason under 2000 characters."),
            (name, reason),
        );
    }
    // Deciding may ask Stripe (for the waiver): a visitor's call, counted.
    if !app.stripe_call(client) {
        return unavailable(&app);
    }
    let decision = if purchase.payment_intent.is_none() {
        None
    } else {
        match withdraw::decide(&app, &purchase).await {
            Ok(decision) => Some(decision),
            Err(DecideError::State(error)) => return log_unavailable(&app, &error),
            Err(DecideError::Stripe(error)) => {
                tracing::warn!(
                    purchase = %purchase.id,
                    "a withdrawal waits for Stripe: {}",
                    error::one_line(&error)
                );
                return unavailable(&app);
            }
        }
    };
    let asked = Withdrawal {
        purchase: purchase.id.clone(),
        email: purchase.email.clone(),
        payment_intent: purchase.payment_intent.clone(),
        requested: app.now(),
        name: name.to_owned(),
        reason: reason.to_owned(),
        decision: decision
            .map_or(withdrawal::NOTHING_PAID, |d| d.word())
            .to_owned(),
        waived: decision.and_then(|d| d.waived()),
        refund: None,
        refund_status: None,
        refused: 0,
        last_error: None,
        settled: None,
    };
    let refunds = decision.is_some_and(|d| d.refunds());
    let (kept, new) = match app.db.request_withdrawal(asked, refunds).await {
        Ok(kept) => kept,
        Err(error) => return log_unavailable(&app, &error),
    };
    if new {
        tracing::info!(purchase = %purchase.id, decision = %kept.decision, "a buyer withdrew");
        if refunds {
            app.outbox_wake.notify_one();
        }
    }
    outcome(&app, &purchase, &kept)
}

//! `shop refund`: refund a buyer, close their downloads, tell them.

use super::Context;
use crate::ledger::Status;
use crate::mail::{Kind, Mailer, Templates};
use crate::store::money;
use crate::stripe::IdempotencyKey;
use crate::support::{self, Key};
use crate::{dates, error, mail, printable, state, store};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    shop refund 7K2Q9-XM4WD\n  \
    shop refund ada@example.com --reason \"Bought it twice\"\n\n\
    Refunds the whole payment at Stripe (once: running it again refunds nothing more), \
    closes the purchase's downloads in the server's state, and mails the buyer a \
    refund notice. The next `shop sync` records the refund in the ledger.")]
pub struct Args {
    /// The purchase: the buyer's email address (when it has one purchase),
    /// the order number on the receipt, or its id (cs_…)
    #[arg(value_name = "WHO")]
    pub key: String,

    /// Why, in a sentence: kept with the refund at Stripe and told to the
    /// buyer
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Refund and close the downloads, but mail nothing
    #[arg(long)]
    pub no_mail: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    let key = Key::parse(&args.key);
    let db = super::open_state(&store)?;
    let server = super::block_on(db.all_purchases())??;
    let found = support::find(&store.root, &key, &server)?;
    let purchase = match found.as_slice() {
        [one] => one,
        [] => {
            return Err(error::hinted(
                format!("no purchase matches `{}`", args.key),
                "check it with `shop find`; a purchase made moments ago is in the ledger after `shop sync`",
            ));
        }
        several => {
            let listed: Vec<String> = several
                .iter()
                .map(|found| format!("{} ({} {})", found.order, found.product, found.version))
                .collect();
            return Err(error::hinted(
                format!(
                    "`{}` has {} purchases: {}",
                    args.key,
                    several.len(),
                    listed.join(", ")
                ),
                "give the order number of the one to refund",
            ));
        }
    };
    let Some(intent) = purchase.payment_intent.clone() else {
        return Err(error::hinted(
            format!(
                "`{}` ({}) has no payment to refund",
                purchase.order, purchase.id
            ),
            match purchase.status {
                Status::Granted => "a grant was given, not paid for: nothing to refund",
                Status::Sample => "a free sample was given, not paid for: nothing to refund",
                _ => "a free copy (a 100% code) was not paid for: nothing to refund",
            },
        ));
    };
    if purchase.status == Status::Disputed {
        return Err(error::hinted(
            format!("`{}` is disputed", purchase.order),
            "a disputed payment is settled through the dispute in Stripe's dashboard, not refunded",
        ));
    }
    let stripe = context.stripe()?;
    // Refunded once, whatever runs again: the key is the payment's (and
    // the note's, which is part of the request; another note on a second
    // run finds the charge refunded).
    let key = IdempotencyKey::derived(&["refund", &intent, args.reason.as_deref().unwrap_or("")]);
    let refunded =
        match super::block_on(stripe.refund_for_buyer(&intent, args.reason.as_deref(), &key))? {
            Ok(refund) => Some(refund),
            Err(error) if error.code() == Some("charge_already_refunded") => None,
            Err(error) => return Err(error.into()),
        };
    // The downloads close now, by this server's state (and every server
    // sharing it), and a webhook or the ledger says the same later.
    let now = super::now()?.unix_timestamp();
    let event = format!("refund:{intent}");
    let recorded = super::block_on(db.record_refund(
        &state::Event {
            id: &event,
            kind: "shop.refund",
            received: now,
        },
        Some((&intent, "refunded")),
    ))??;
    // A withdrawal waiting for the author (under review, or a refund that
    // did not go through) is settled by this refund.
    if let Some(withdrawal) = super::block_on(db.withdrawal(&purchase.id))?? {
        let id = refunded.as_ref().map_or("", |refund| refund.id.as_str());
        super::block_on(db.refund_made(&withdrawal.purchase, id, "succeeded", now, false))??;
        context.output.note(format!(
            "settled the buyer's withdrawal of {}",
            dates::human_day(withdrawal.requested)
        ));
    }
    match &refunded {
        Some(refund) => context.output.note(format!(
            "refunded {} of `{}` ({} {}) at Stripe (`{}`); its downloads are closed",
            money::display_amount(refund.amount, &refund.currency),
            purchase.order,
            purchase.product,
            purchase.version,
            refund.id
        )),
        None => context.output.note(format!(
            "`{}` was already refunded at Stripe; its downloads are closed",
            purchase.order
        )),
    }
    // The notice goes once: the first time this refund is recorded.
    if recorded.is_new() && !args.no_mail {
        let amount = refunded.as_ref().map_or_else(
            || money::display_amount(purchase.amount, &purchase.currency),
            |refund| money::display_amount(refund.amount, &refund.currency),
        );
        mail_notice(&store, purchase, &amount, args.reason.as_deref(), now)?;
        context.output.note(format!(
            "mailed {} a refund notice",
            printable::printable(&purchase.email)
        ));
    }
    context
        .output
        .note("hint: the next `shop sync` records the refund in the ledger");
    Ok(())
}

/// The refund notice, through the store's mail transport.
fn mail_notice(
    store: &store::Store,
    purchase: &support::Found,
    amount: &str,
    reason: Option<&str>,
    now: i64,
) -> anyhow::Result<()> {
    let templates = Templates::load(&store.root)?;
    let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
    let mailer = Mailer::new(&store.settings, &store.root, password)?;
    let settings = &store.settings;
    let name = store
        .product(&purchase.product)
        .map_or_else(|_| purchase.product.clone(), |product| product.name.clone());
    let mut values = mail::shop_values(settings, &purchase.email);
    values.extend([
        ("product", name),
        ("version", purchase.version.clone()),
        ("order", purchase.order.clone()),
        ("amount", amount.to_owned()),
        ("reason", reason.unwrap_or_default().to_owned()),
    ]);
    let rendered = templates.render(Kind::Refund, &values)?;
    let id = mail::message_id(
        &format!("refund.{}.{now}", purchase.id),
        &settings.mail.from,
    );
    let message = mail::compose(&settings.mail.from, &purchase.email, &rendered, &id, None)?;
    super::block_on(mailer.send(message))??;
    Ok(())
}

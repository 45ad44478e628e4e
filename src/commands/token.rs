//! `shop token`: support tools for a purchase's download link.

use super::Context;
use crate::error::ResultExt as _;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Run it where `shop serve` keeps its state (the store on the server) for \
                        `--grant` to take effect."
)]
pub struct Args {
    /// The purchase: its Checkout Session id (cs_...)
    #[arg(value_name = "PURCHASE-ID")]
    pub purchase: String,

    /// Add this many downloads to each of the purchase's files
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub grant: Option<u32>,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    if !args.purchase.starts_with("cs_") {
        return Err(super::UsageError::new(
            format!("`{}` is not a purchase id", args.purchase),
            "purchase ids are Checkout Session ids, `cs_…`; find them with `shop report --csv`",
        )
        .into());
    }
    let store = context.open_store()?;
    let keys = super::token_keys()?;
    // Known from the ledger, the server's database, or Stripe itself.
    let mut known = false;
    crate::ledger::each(&store.root, |purchase| {
        known |= purchase.id == args.purchase;
        Ok(())
    })?;
    let db = crate::state::Db::open(&super::state_path(&store))?;
    known = known || db.purchase(&args.purchase)?.is_some();
    if !known {
        let stripe = context.stripe().context_hint(
            format!(
                "the purchase `{}` is not in the ledger, so shop must ask Stripe",
                args.purchase
            ),
            "run `shop sync`, or export `STRIPE_SECRET_KEY` to look it up",
        )?;
        let session = super::block_on(stripe.checkout_session(&args.purchase))??;
        let paid_and_ours = session.as_ref().is_some_and(|session| {
            session.payment_status == "paid" && crate::sync::product_of(session, &store).is_some()
        });
        if !paid_and_ours {
            return Err(crate::error::hinted(
                format!(
                    "there is no paid purchase `{}` of this store",
                    args.purchase
                ),
                "check the id in `shop report --csv` or Stripe's dashboard",
            ));
        }
    }
    let now = super::now()?.unix_timestamp();
    let claims = crate::tokens::Claims {
        purchase: args.purchase.clone(),
        expires: now + store.settings.link_lifetime as i64,
    };
    let link = format!(
        "{}/d/{}",
        store.settings.base_url,
        crate::tokens::sign(&keys[0], &claims)
    );
    let granted = match args.grant {
        Some(extra) => Some(super::block_on(db.grant(&args.purchase, extra))??),
        None => None,
    };
    if context.output.json {
        context.output.json(&serde_json::json!({
            "purchase": args.purchase,
            "link": link,
            "expires": crate::ledger::timestamp(claims.expires),
            "extra_downloads": granted,
        }))?;
        return Ok(());
    }
    if let Some(extra) = granted {
        context.output.note(format!(
            "`{}` now has {extra} extra downloads of each file",
            args.purchase
        ));
    }
    context.output.note(format!(
        "valid until {}:",
        crate::ledger::timestamp(claims.expires)
    ));
    context.output.data(format!("{link}\n"))?;
    Ok(())
}

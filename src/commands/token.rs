//! `shop token`: support tools for a purchase's download link.

use super::Context;
use crate::error::ResultExt as _;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Run it where `shop serve` keeps its state (the store on the server) for \
                        `--grant` to take effect."
)]
pub struct Args {
    /// The purchase: its Checkout Session id (cs_...), or a grant's (gr_...)
    #[arg(value_name = "PURCHASE-ID")]
    pub purchase: String,

    /// Add this many downloads to each of the purchase's files
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub grant: Option<u32>,

    /// Mint the link even though the purchase was refunded or disputed, and
    /// reopen its downloads on this server
    #[arg(long)]
    pub force: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    if !args.purchase.starts_with("cs_") && !args.purchase.starts_with(crate::ledger::GRANT_PREFIX)
    {
        return Err(super::UsageError::new(
            format!("`{}` is not a purchase id", args.purchase),
            "purchase ids are Checkout Session ids, `cs_…`, or grants, `gr_…`; find them with `shop report --csv`",
        )
        .into());
    }
    let store = context.open_store()?;
    let keys = super::token_keys()?;
    // Known from the ledger, the server's database, or Stripe itself.
    let mut in_ledger: Option<crate::ledger::Purchase> = None;
    crate::ledger::each(&store.root, |purchase| {
        if purchase.id == args.purchase {
            in_ledger = Some(purchase);
        }
        Ok(())
    })?;
    let db = super::open_state(&store)?;
    let in_server = super::block_on(db.purchase(&args.purchase))??;
    let revoked_in_server = match &in_server {
        Some(purchase) => super::block_on(db.revoked(purchase))??,
        None => false,
    };
    // Refunded or disputed, by the ledger or by the server's webhooks.
    let revoked = in_ledger
        .as_ref()
        .filter(|purchase| !purchase.in_good_standing())
        .map(|purchase| purchase.status.clone())
        .or_else(|| revoked_in_server.then(|| "refunded or disputed".to_owned()));
    if let Some(status) = &revoked {
        if !args.force {
            return Err(crate::error::hinted(
                format!("the purchase `{}` is {status}", args.purchase),
                "its downloads are closed; pass `--force` to reopen them and mint a link anyway",
            ));
        }
        if let Some(intent) = in_server
            .as_ref()
            .and_then(|purchase| purchase.payment_intent.clone())
            .or_else(|| in_ledger.as_ref().and_then(|p| p.payment_intent.clone()))
        {
            super::block_on(db.reinstate(&intent))??;
        }
        context.output.note(format!(
            "the purchase `{}` is {status}; its downloads are reopened",
            args.purchase
        ));
    }
    if in_ledger.is_none() && args.purchase.starts_with(crate::ledger::GRANT_PREFIX) {
        return Err(crate::error::hinted(
            format!("there is no grant `{}` in the ledger", args.purchase),
            "grants are in `purchases/grants.jsonl`; check the id there, or `git pull` the store",
        ));
    }
    if in_ledger.is_none() && in_server.is_none() {
        let stripe = context.stripe().context_hint(
            format!(
                "the purchase `{}` is not in the ledger, so shop must ask Stripe",
                args.purchase
            ),
            "run `shop sync`, or export `STRIPE_SECRET_KEY` to look it up",
        )?;
        let session = super::block_on(stripe.checkout_session(&args.purchase))??;
        let paid_and_ours = session.as_ref().is_some_and(|session| {
            session.is_fulfilled() && crate::metadata::product_of(session, &store).is_some()
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
    let expires = now + store.settings.link_lifetime as i64;
    let link = crate::tokens::link(&store.settings.base_url, &keys[0], &args.purchase, expires);
    let granted = match args.grant {
        Some(extra) => Some(super::block_on(db.grant(&args.purchase, extra))??),
        None => None,
    };
    if context.output.json {
        context.output.json(&serde_json::json!({
            "purchase": args.purchase,
            "link": link,
            "expires": crate::dates::timestamp(expires),
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
    context
        .output
        .note(format!("valid until {}:", crate::dates::timestamp(expires)));
    context.output.data(format!("{link}\n"))?;
    Ok(())
}

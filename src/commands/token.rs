//! `shop token`: support tools for a purchase's download link.

use super::Context;
use crate::error::ResultExt as _;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    shop token ada@example.com --mail       (her purchase, its fresh link mailed to her)\n  \
    shop token 7K2Q9-XM4WD --grant 3        (the order on her receipt, 3 more downloads)\n  \
    shop token cs_live_a1B2c3…              (a purchase by its id; gr_… a grant)\n\n\
    Run it where `shop serve` keeps its state (the store on the server) for \
    `--grant` to take effect.")]
pub struct Args {
    /// The purchase: the buyer's email address (when it has one purchase),
    /// the order number on the receipt, or its id (cs_…, or a grant's gr_…)
    #[arg(value_name = "WHO")]
    pub purchase: String,

    /// Mail the link to the buyer (their receipt again, with the fresh
    /// link), through the store's mail transport
    #[arg(long)]
    pub mail: bool,

    /// Add this many downloads to each of the purchase's files
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub grant: Option<u32>,

    /// Mint the link even though the purchase was refunded or disputed, and
    /// reopen its downloads on this server
    #[arg(long)]
    pub force: bool,
}

pub fn run(context: &Context, mut args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    let keys = super::token_keys()?;
    // An address or an order number: the one purchase it names.
    let key = crate::support::Key::parse(&args.purchase);
    if !matches!(key, crate::support::Key::Id(_)) {
        let server = match super::existing_state(&store)? {
            Some(db) => super::block_on(db.all_purchases())??,
            None => Vec::new(),
        };
        let found = crate::support::find(&store.root, &key, &server)?;
        match found.as_slice() {
            [one] => args.purchase = one.id.clone(),
            [] => {
                return Err(crate::error::hinted(
                    format!("no purchase or grant matches `{}`", args.purchase),
                    "check it with `shop find`; a purchase made moments ago is in the ledger after `shop sync`",
                ));
            }
            several => {
                let listed: Vec<String> = several
                    .iter()
                    .map(|found| {
                        format!(
                            "{} ({} {}, {})",
                            found.order,
                            found.product,
                            found.version,
                            &crate::dates::timestamp(found.created)[..10]
                        )
                    })
                    .collect();
                return Err(crate::error::hinted(
                    format!(
                        "`{}` has {} purchases: {}",
                        args.purchase,
                        several.len(),
                        listed.join(", ")
                    ),
                    "give the order number of the one you mean",
                ));
            }
        }
    }
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
    let mailed = if args.mail {
        let purchase = match (&in_ledger, &in_server) {
            (Some(purchase), _) => crate::state::Entitlement::from(purchase),
            (None, Some(purchase)) => (**purchase).clone(),
            (None, None) => {
                return Err(crate::error::hinted(
                    format!(
                        "`{}` is not in the ledger, so shop has no address to mail",
                        args.purchase
                    ),
                    "run `shop sync` first, then `shop token --mail` again",
                ));
            }
        };
        Some(mail_link(&store, &purchase, &link, expires)?)
    } else {
        None
    };
    if context.output.json {
        context.output.json(&serde_json::json!({
            "purchase": args.purchase,
            "link": link,
            "expires": crate::dates::timestamp(expires),
            "extra_downloads": granted,
            "mailed_to": mailed,
        }))?;
        return Ok(());
    }
    if let Some(email) = &mailed {
        context.output.note(format!(
            "mailed the link to {} (their receipt again)",
            crate::printable::printable(email)
        ));
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

/// Mails a purchase's receipt again with its fresh `link` (a grant's
/// gift message), through the store's transport; returns the address.
fn mail_link(
    store: &crate::store::Store,
    purchase: &crate::state::Entitlement,
    link: &str,
    expires: i64,
) -> anyhow::Result<String> {
    use crate::mail::Kind;
    let templates = crate::mail::Templates::load(&store.root)?;
    let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
    let mailer = crate::mail::Mailer::new(&store.settings, &store.root, password)?;
    let settings = &store.settings;
    let product = store.product(&purchase.product)?;
    let mut values = crate::mail::shop_values(settings, &purchase.email);
    values.extend([
        ("product", product.name.clone()),
        ("version", purchase.version.clone()),
        ("link", link.to_owned()),
        ("expires", crate::dates::human_time(expires)),
        ("limit", product.download_limit.to_string()),
        ("order", crate::ledger::order_number(&purchase.id)),
        ("lost", format!("{}/lost", settings.base_url)),
    ]);
    values.extend(crate::mail::product_values(
        store,
        product,
        &purchase.version,
    ));
    let kind = if purchase.id.starts_with(crate::ledger::GRANT_PREFIX) {
        Kind::Gift
    } else {
        values.insert("date", crate::dates::human_day(purchase.created));
        values.insert(
            "paid",
            purchase.paid.as_ref().map_or_else(
                || "see Stripe's receipt".to_owned(),
                |paid| crate::store::money::display_amount(paid.amount, &paid.currency),
            ),
        );
        Kind::Receipt
    };
    let rendered = templates.render(kind, &values)?;
    let now = super::now()?.unix_timestamp();
    let id = crate::mail::message_id(
        &format!("support.{}.{now}", purchase.id),
        &settings.mail.from,
    );
    let message = crate::mail::compose(&settings.mail.from, &purchase.email, &rendered, &id, None)?;
    super::block_on(mailer.send(message))??;
    Ok(purchase.email.clone())
}

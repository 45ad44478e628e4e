//! `shop token`: support tools for a purchase's download link.

use std::sync::Arc;

use super::Context;
use crate::error::{self, ResultExt as _};
use crate::ledger::{self, GRANT_PREFIX, Purchase};
use crate::mail::{Mailer, Templates};
use crate::printable::printable;
use crate::state::{Db, Entitlement};
use crate::store::Store;
use crate::{dates, mail, metadata, state, store, support, tokens};

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
    let key = support::Key::parse(&args.purchase);
    if !matches!(key, support::Key::Id(_)) {
        args.purchase = the_one(&store, &key, &args.purchase)?;
    }
    let db = super::open_state(&store)?;
    let known = Known::look_up(&store, &db, &args.purchase)?;
    if let Some(status) = known.revoked(&db)? {
        if !args.force {
            return Err(error::hinted(
                format!("the purchase `{}` is {status}", args.purchase),
                "its downloads are closed; pass `--force` to reopen them and mint a link anyway",
            ));
        }
        known.reinstate(&db)?;
        context.output.note(format!(
            "the purchase `{}` is {status}; its downloads are reopened",
            args.purchase
        ));
    }
    known.check_paid(context, &store)?;
    let now = super::now()?.unix_timestamp();
    let expires = now + store.settings.link_lifetime as i64;
    let link = tokens::link(&store.settings.base_url, &keys[0], &args.purchase, expires);
    let granted = match args.grant {
        Some(extra) => Some(super::block_on(db.grant(&args.purchase, extra))??),
        None => None,
    };
    let mailed = if args.mail {
        let Some(purchase) = known.entitlement() else {
            return Err(error::hinted(
                format!(
                    "`{}` is not in the ledger, so shop has no address to mail",
                    args.purchase
                ),
                "run `shop sync` first, then `shop token --mail` again",
            ));
        };
        let invoice = known
            .in_ledger
            .as_ref()
            .and_then(|purchase| purchase.invoice_url.clone());
        let withdraw = mail::withdraw_values(&store.settings, &keys[0], &purchase.id, now);
        Some(mail_link(
            &store, &purchase, &link, expires, invoice, withdraw,
        )?)
    } else {
        None
    };
    if context.output.json {
        context.output.json(&serde_json::json!({
            "purchase": args.purchase,
            "link": link,
            "expires": dates::timestamp(expires),
            "extra_downloads": granted,
            "mailed_to": mailed,
        }))?;
        return Ok(());
    }
    if let Some(email) = &mailed {
        context.output.note(format!(
            "mailed the link to {} ({})",
            printable(email),
            match known.entitlement().and_then(|purchase| purchase.gift) {
                Some(gift) if gift.deliverable => "the gift's mail again",
                _ => "their receipt again",
            }
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
        .note(format!("valid until {}:", dates::timestamp(expires)));
    context.output.data(format!("{link}\n"))?;
    Ok(())
}

/// The id of the one purchase an address or order number names; several
/// are listed for the author to choose.
fn the_one(store: &Store, key: &support::Key, asked: &str) -> anyhow::Result<String> {
    let server = match super::existing_state(store)? {
        Some(db) => super::block_on(db.all_purchases())??,
        None => Vec::new(),
    };
    let found = support::find(&store.root, key, &server)?;
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(error::hinted(
            format!("no purchase or grant matches `{asked}`"),
            "check it with `shop find`; a purchase made moments ago is in the ledger after `shop sync`",
        )),
        several => {
            let listed: Vec<String> = several
                .iter()
                .map(|found| {
                    format!(
                        "{} ({} {}, {})",
                        found.order,
                        found.product,
                        found.version,
                        &dates::timestamp(found.created)[..10]
                    )
                })
                .collect();
            Err(error::hinted(
                format!(
                    "`{asked}` has {} purchases: {}",
                    several.len(),
                    listed.join(", ")
                ),
                "give the order number of the one you mean",
            ))
        }
    }
}

/// A purchase as the ledger and the server's database know it (either may
/// not, yet).
struct Known {
    id: String,
    in_ledger: Option<Purchase>,
    in_server: Option<Arc<Entitlement>>,
}

impl Known {
    fn look_up(store: &Store, db: &Db, id: &str) -> anyhow::Result<Known> {
        let mut in_ledger = None;
        ledger::each(&store.root, |purchase| {
            if purchase.id == id {
                in_ledger = Some(purchase);
            }
            Ok(())
        })?;
        Ok(Known {
            id: id.to_owned(),
            in_ledger,
            in_server: super::block_on(db.purchase(id))??,
        })
    }

    /// Refunded or disputed, by the ledger or by the server's webhooks.
    fn revoked(&self, db: &Db) -> anyhow::Result<Option<&'static str>> {
        let revoked_in_server = match &self.in_server {
            Some(purchase) => super::block_on(db.revoked(purchase))??,
            None => false,
        };
        Ok(self
            .in_ledger
            .as_ref()
            .filter(|purchase| !purchase.in_good_standing())
            .map(|purchase| purchase.status.as_str())
            .or_else(|| revoked_in_server.then_some("refunded or disputed")))
    }

    /// Reopens the downloads of a refunded or disputed purchase.
    fn reinstate(&self, db: &Db) -> anyhow::Result<()> {
        let intent = self
            .in_server
            .as_ref()
            .and_then(|purchase| purchase.payment_intent.clone())
            .or_else(|| {
                self.in_ledger
                    .as_ref()
                    .and_then(|purchase| purchase.payment_intent.clone())
            });
        if let Some(intent) = intent {
            super::block_on(db.reinstate(&intent))??;
        }
        Ok(())
    }

    /// A purchase neither knows is asked of Stripe: a paid session of this
    /// store's, or no link; a grant must be in the ledger.
    fn check_paid(&self, context: &Context, store: &Store) -> anyhow::Result<()> {
        let id = &self.id;
        if self.in_ledger.is_some() {
            return Ok(());
        }
        if id.starts_with(GRANT_PREFIX) {
            return Err(error::hinted(
                format!("there is no grant `{id}` in the ledger"),
                "grants are in `purchases/grants.jsonl`; check the id there, or `git pull` the store",
            ));
        }
        if self.in_server.is_some() {
            return Ok(());
        }
        let stripe = context.stripe().context_hint(
            format!("the purchase `{id}` is not in the ledger, so shop must ask Stripe"),
            "run `shop sync`, or export `STRIPE_SECRET_KEY` to look it up",
        )?;
        let session = super::block_on(stripe.checkout_session(id))??;
        let paid_and_ours = session.as_ref().is_some_and(|session| {
            session.is_fulfilled() && metadata::product_of(session, store).is_some()
        });
        if paid_and_ours {
            return Ok(());
        }
        Err(error::hinted(
            format!("there is no paid purchase `{id}` of this store"),
            "check the id in `shop report --csv` or Stripe's dashboard",
        ))
    }

    /// What a mailed link is about: the ledger's line, else the server's.
    fn entitlement(&self) -> Option<Entitlement> {
        match (&self.in_ledger, &self.in_server) {
            (Some(purchase), _) => Some(Entitlement::from(purchase)),
            (None, Some(purchase)) => Some((**purchase).clone()),
            (None, None) => None,
        }
    }
}

/// Mails a purchase's receipt again with its fresh `link` (a grant's
/// gift message), through the store's transport; returns the address.
fn mail_link(
    store: &store::Store,
    purchase: &state::Entitlement,
    link: &str,
    expires: i64,
    invoice: Option<String>,
    withdraw: [(&'static str, String); 2],
) -> anyhow::Result<String> {
    use crate::mail::Kind;
    let templates = Templates::load(&store.root)?;
    let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
    let mailer = Mailer::new(&store.settings, &store.root, password)?;
    let settings = &store.settings;
    let product = store.product(&purchase.product)?;
    let mut values = mail::Access {
        store,
        product,
        version: &purchase.version,
        email: &purchase.email,
        purchase: &purchase.id,
        link,
        expires,
    }
    .values();
    let gift = purchase.gift.as_ref();
    let kind = if purchase.id.starts_with(ledger::GRANT_PREFIX) {
        Kind::Gift
    } else if let Some(gift) = gift.filter(|gift| gift.deliverable) {
        // A gift's mail again, to its recipient.
        values.insert("giver", gift.buyer.clone());
        values.insert("message", gift.message.clone());
        Kind::Present
    } else {
        // The receipt again, as the server mailed it.
        values.insert("date", dates::human_day(purchase.created));
        values.insert("paid", purchase.paid_text());
        values.insert("invoice", invoice.unwrap_or_default());
        values.insert(
            "unusable",
            gift.map(|gift| gift.recipient.clone()).unwrap_or_default(),
        );
        values.extend(withdraw);
        Kind::Receipt
    };
    let rendered = templates.render(kind, &values)?;
    let now = super::now()?.unix_timestamp();
    let id = mail::message_id(
        &format!("support.{}.{now}", purchase.id),
        &settings.mail.from,
    );
    let message = mail::compose(&settings.mail.from, &purchase.email, &rendered, &id, None)?;
    super::block_on(mailer.send(message))??;
    Ok(purchase.email.clone())
}

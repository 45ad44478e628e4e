//! `shop find`: a buyer's purchases from what they wrote to support.

use super::Context;
use crate::state::FileKey;
use crate::support::{self, Found, Key};
use crate::{dates, error, state, store};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    shop find ada@example.com\n  \
    shop find 7K2Q9-XM4WD          (the order number on a receipt, however typed)\n  \
    shop find cs_live_a1B2c3…      (a purchase; gr_… a grant; pi_… a payment)\n\n\
    Reads the ledger and the grants, and what the server has seen since the last \
    `shop sync` (where its state is reachable from here), with the downloads left.")]
pub struct Args {
    /// An email address, an order number, or a purchase, grant or payment id
    #[arg(value_name = "WHO")]
    pub key: String,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    let key = Key::parse(&args.key);
    let db = super::existing_state(&store)?;
    let server = match &db {
        Some(db) => super::block_on(db.all_purchases())??,
        None => Vec::new(),
    };
    let found = support::find(&store.root, &key, &server)?;
    let left: Vec<Option<String>> = match &db {
        Some(db) => super::block_on(async {
            let mut left = Vec::with_capacity(found.len());
            for purchase in &found {
                left.push(downloads_left(&store, db, purchase).await?);
            }
            anyhow::Ok(left)
        })??,
        None => vec![None; found.len()],
    };
    if context.output.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .zip(&left)
            .map(|(purchase, left)| {
                let mut row = serde_json::to_value(purchase).unwrap_or_default();
                row["downloads_left"] = serde_json::json!(left);
                row
            })
            .collect();
        context.output.json(&serde_json::json!(rows))?;
        return Ok(());
    }
    if found.is_empty() {
        return Err(error::hinted(
            format!("no purchase or grant matches `{}`", args.key),
            "check the spelling; a purchase made moments ago is in the ledger after `shop sync`",
        ));
    }
    let header = ["ORDER", "DATE", "EMAIL", "PRODUCT", "STATUS", "LEFT", "ID"].map(String::from);
    let rows: Vec<[String; 7]> = found
        .iter()
        .zip(&left)
        .map(|(purchase, left)| {
            let mut status = purchase.status.to_string();
            if purchase.preorder {
                status.push_str(" (pre-order)");
            }
            if purchase.unsynced {
                status.push_str(" (not synced)");
            }
            [
                purchase.order.clone(),
                dates::timestamp(purchase.created)[..10].to_owned(),
                purchase.email.clone(),
                format!("{} {}", purchase.product, purchase.version),
                status,
                left.clone().unwrap_or_else(|| "-".to_owned()),
                purchase.id.clone(),
            ]
        })
        .collect();
    context.output.data(super::table(&header, &rows))?;
    Ok(())
}

/// `3 of 5`: the downloads left of the file with the fewest, in the newest
/// version the purchase gives of each product (a bundle's too).
async fn downloads_left(
    store: &store::Store,
    db: &state::Db,
    purchase: &Found,
) -> anyhow::Result<Option<String>> {
    if !purchase.in_good_standing() {
        return Ok(Some("closed".to_owned()));
    }
    let entitlement = state::Entitlement {
        id: purchase.id.clone(),
        email: purchase.email.clone(),
        product: purchase.product.clone(),
        version: purchase.version.clone(),
        payment_intent: purchase.payment_intent.clone(),
        created: purchase.created,
        paid: None,
        gift: None,
    };
    let mut fewest: Option<(u32, u32)> = None;
    for holding in store.holdings(&purchase.product, &purchase.version) {
        let product = holding.product;
        let Some(newest) = product.releases.iter().rfind(|release| {
            !release.preorder && product.updates.entitles(&holding.bought, &release.version)
        }) else {
            continue;
        };
        let version = newest.version.to_string();
        for asset in &newest.assets {
            let key = FileKey::new(&entitlement, &product.slug, &version, &asset.name);
            let (usage, extra) = db.usage(&key).await?;
            let allowed = product.download_limit + extra;
            let left = usage.left(allowed, asset.size);
            if fewest.is_none_or(|(fewest, _)| left < fewest) {
                fewest = Some((left, allowed));
            }
        }
    }
    Ok(fewest.map(|(left, allowed)| format!("{left} of {allowed}")))
}

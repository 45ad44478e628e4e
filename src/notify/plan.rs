//! Who is told: the entitled buyers of earlier versions (with an upgrade
//! offer where the policy leaves them out) or a pre-order's buyers, once
//! each, less those told and those who opted out; and the offers' coupon
//! and codes, made before any mail names one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::{Audience, CONCURRENCY, NotifyError, Plan, Recipient, in_doubt, sent};
use crate::store::{Product, Store};
use crate::tokens::Key;
use crate::{ledger, metadata, stripe, tokens};

/// Every buyer entitled to `version`, less those told, those who opted
/// out, and purchases withdrawn from (`withdrawn`: their ids, from the
/// server's state, which may know before the ledger does).
pub fn plan(
    store: &Store,
    product: &Product,
    version: &semver::Version,
    audience: Audience,
    opt_outs: &HashSet<String>,
    withdrawn: &HashSet<String>,
    only: &[String],
) -> Result<Plan, NotifyError> {
    let told: HashSet<String> = sent(&store.root, &product.slug, version)?
        .into_iter()
        .map(|notice| notice.email.to_ascii_lowercase())
        .collect();
    let doubtful = in_doubt(&store.root, &product.slug, version, &told)?;
    // Per address, the purchase to write about: one the policy carries to
    // this version before one it does not (an upgrade offer, when the
    // product makes them), the newest of its kind.
    let mut latest: BTreeMap<String, ((bool, i64), Recipient)> = BTreeMap::new();
    // Addresses that have this version (or a newer one) already: no
    // notice of it, and no offer to buy it again.
    let mut owners: HashSet<String> = HashSet::new();
    ledger::each(&store.root, |purchase| {
        if !purchase.in_good_standing() || withdrawn.contains(&purchase.id) {
            return Ok(());
        }
        // The version of this product the purchase gave: its own, or the
        // one a bundle's release contained.
        let Some(bought) = store
            .holdings(&purchase.product, &purchase.version)
            .into_iter()
            .find(|holding| holding.product.slug == product.slug)
            .map(|holding| holding.bought)
        else {
            return Ok(());
        };
        if audience == Audience::Updates && bought >= *version {
            owners.insert(purchase.email.to_ascii_lowercase());
        }
        let (included, upgrade) = match audience {
            Audience::Updates if bought < *version => {
                let entitled = product.updates.entitles(&bought, version);
                (entitled || product.upgrade.is_some(), !entitled)
            }
            Audience::Updates => (false, false),
            Audience::Preorders => (
                purchase.preorder && purchase.product == product.slug && bought == *version,
                false,
            ),
        };
        if !included {
            return Ok(());
        }
        let email = purchase.email.to_ascii_lowercase();
        if email.is_empty()
            || (!only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&email)))
        {
            return Ok(());
        }
        let rank = (!upgrade, purchase.created_unix());
        let recipient = Recipient {
            email: email.clone(),
            purchase: purchase.id.clone(),
            bought: bought.to_string(),
            upgrade,
        };
        match latest.get(&email) {
            Some((known, _)) if *known >= rank => {}
            _ => {
                latest.insert(email, (rank, recipient));
            }
        }
        Ok(())
    })?;
    let mut plan = Plan {
        unknown: only
            .iter()
            .map(|address| address.to_ascii_lowercase())
            .filter(|address| !latest.contains_key(address) && !owners.contains(address))
            .collect(),
        ..Plan::default()
    };
    for (email, (_, recipient)) in latest {
        if owners.contains(&email) {
            continue;
        }
        if told.contains(&email) {
            plan.already_told += 1;
        } else if audience == Audience::Updates && opt_outs.contains(&email) {
            plan.opted_out += 1;
        } else {
            if doubtful.contains(&email) {
                plan.in_doubt.push(email);
            }
            plan.recipients.push(recipient);
        }
    }
    Ok(plan)
}

/// Whether the ledger holds a pre-order of this version (delivered or not).
pub fn has_preorders(
    root: &Path,
    slug: &str,
    version: &semver::Version,
) -> Result<bool, NotifyError> {
    let version = version.to_string();
    let mut found = false;
    ledger::each(root, |purchase| {
        found |= purchase.preorder && purchase.product == slug && purchase.version == version;
        Ok(())
    })?;
    Ok(found)
}

/// An upgrade offer: the buyer's own promotion code at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub code: String,
    pub expires_at: Option<i64>,
}

/// The coupon of the upgrades to `version`: its percentage is in its id,
/// since a coupon never changes.
pub fn upgrade_coupon_id(product: &Product, version: &semver::Version, percent: u8) -> String {
    format!("shop-upgrade-{}-{version}-{percent}", product.slug)
}

/// Makes (once) the coupon of the upgrades to `version`, restricted to the
/// product, and each upgrade recipient's single-use promotion code valid
/// for the product's `upgrade_days` from `now`. Codes are derived from the
/// purchase, so a run after a crash finds those already made.
pub async fn prepare_offers(
    stripe: &stripe::Client,
    product: &Product,
    version: &semver::Version,
    plan: &Plan,
    key: &Key,
    now: i64,
) -> Result<HashMap<String, Offer>, NotifyError> {
    use crate::stripe::{CreateCoupon, CreatePromotionCode, IdempotencyKey};
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let (Some(upgrade), Some(release)) = (product.upgrade, product.release(version)) else {
        return Ok(HashMap::new());
    };
    let wanted: Vec<&Recipient> = plan.recipients.iter().filter(|r| r.upgrade).collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let coupon = upgrade_coupon_id(product, version, upgrade.percent_off);
    if stripe.coupon(&coupon).await?.is_none() {
        let name: String = format!("Upgrade to {version}").chars().take(40).collect();
        stripe
            .create_coupon(
                &CreateCoupon {
                    id: coupon.clone(),
                    percent_off: upgrade.percent_off,
                    name: Some(name),
                    products: vec![release.stripe_product.clone()],
                },
                &IdempotencyKey::derived(&["coupon", &coupon]),
            )
            .await?;
    }
    let version_text = version.to_string();
    let expires_at = now + i64::from(upgrade.days) * 86_400;
    let offers: Vec<(String, Offer)> = futures_util::stream::iter(wanted)
        .map(|recipient| {
            let code = tokens::upgrade_code(key, &recipient.purchase, &version_text);
            let coupon = coupon.clone();
            let version_text = version_text.clone();
            async move {
                if let Some(known) = stripe.promotion_code(&code).await? {
                    let offer = Offer {
                        code: known.code,
                        expires_at: known.expires_at,
                    };
                    return Ok::<_, NotifyError>((recipient.purchase.clone(), offer));
                }
                let params = CreatePromotionCode {
                    coupon,
                    code: code.clone(),
                    max_redemptions: Some(1),
                    expires_at: Some(expires_at),
                    metadata: [
                        (
                            metadata::UPGRADE_FROM.to_owned(),
                            recipient.purchase.clone(),
                        ),
                        ("product".to_owned(), product.slug.clone()),
                        ("version".to_owned(), version_text),
                    ]
                    .into(),
                };
                let made = stripe
                    .create_promotion_code(
                        &params,
                        &IdempotencyKey::derived(&["promotion_code", &code]),
                    )
                    .await?;
                let offer = Offer {
                    code: made.code,
                    expires_at: made.expires_at,
                };
                Ok((recipient.purchase.clone(), offer))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(offers.into_iter().collect())
}

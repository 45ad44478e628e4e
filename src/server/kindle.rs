//! Send to Kindle: a buyer's EPUB mailed to their `@kindle.com` address
//! from the store's address, as an attachment (the stamped copy where the
//! product stamps), through the outbox like every message, and counted as
//! a download of that file when it is asked for.
//!
//! Amazon's rules (its "Send to Kindle by email" help page): the sender
//! must be on the reader's Approved Personal Document E-mail List (in
//! Amazon's Manage Your Content and Devices → Preferences → Personal
//! Document Settings), the address ends in `@kindle.com` (or
//! `@free.kindle.com`, delivered over Wi-Fi only), and one mail carries
//! at most 50 MB. EPUB is a format Amazon converts for the Kindle.

use crate::ledger;
use crate::mail;
use crate::server::stamped::{self, Part};
use crate::server::{App, Files, local_file};
use crate::state::QueuedMail;
use crate::store::{Asset, Product, Release};

/// The largest file one mail to a Kindle may carry (Amazon: 50 MB), with
/// room for the attachment's encoding kept by the transport.
pub const MAX_BYTES: u64 = 50_000_000;

/// The domains Amazon gives Kindle addresses in.
pub const DOMAINS: &[&str] = &["kindle.com", "free.kindle.com"];

/// Whether `address` is a Kindle's (lower case).
pub fn is_kindle_address(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && DOMAINS.contains(&domain))
        && crate::store::settings::check_email(address).is_ok()
}

/// What a queued Kindle mail is of: the purchase, the product, the
/// version and the file, one a line (none holds a newline).
pub fn reference(purchase: &str, product: &str, version: &str, file: &str) -> String {
    [purchase, product, version, file].join("\n")
}

/// The bytes of `asset` as this buyer downloads it: their stamped copy
/// where the product stamps, else the release's file.
pub async fn file_bytes(
    app: &App,
    purchase: &crate::state::Entitlement,
    product: &Product,
    release: &Release,
    asset: &Asset,
) -> anyhow::Result<Vec<u8>> {
    let store = app.store();
    let version = release.version.to_string();
    if let Some(licence) = stamped::licence(&app.keys[0], &store, product, purchase, &asset.name) {
        let copy = stamped::buyer_copy(app, &purchase.id, product, release, asset, licence)
            .await
            .map_err(anyhow::Error::msg)?;
        let mut bytes = Vec::with_capacity(copy.size as usize);
        for part in &copy.parts {
            match part {
                Part::Memory(memory) => bytes.extend_from_slice(memory),
                Part::File(path, _) => bytes.extend(tokio::fs::read(path).await?),
            }
        }
        return Ok(bytes);
    }
    match &app.files_from {
        Files::Local(dir) => {
            Ok(tokio::fs::read(local_file(dir, &product.slug, &version, &asset.name)).await?)
        }
        Files::GitHub { client } => {
            let id = asset
                .github_asset_id
                .ok_or_else(|| anyhow::anyhow!("the release records no GitHub asset id"))?;
            let response = match client.asset_download(id).await? {
                crate::github::Download::Redirect { url, .. } => {
                    client.cdn_range(&url, 0, asset.size).await?.response
                }
                crate::github::Download::Body { response, .. } => response,
            };
            Ok(response.bytes().await?.to_vec())
        }
    }
}

/// The queued Kindle mail, with its attachment; `None` when what it names
/// is gone (the purchase refunded since, the release removed).
pub async fn compose(app: &App, queued: &QueuedMail) -> anyhow::Result<Option<lettre::Message>> {
    let Some(reference) = &queued.purchase else {
        return Ok(None);
    };
    let parts: Vec<&str> = reference.split('\n').collect();
    let [purchase_id, slug, version, file] = parts[..] else {
        return Ok(None);
    };
    let Some(purchase) = app.db.purchase(purchase_id).await? else {
        return Ok(None);
    };
    if app.db.revoked(&purchase).await? {
        return Ok(None);
    }
    let store = app.store();
    let Ok(product) = store.product(slug) else {
        return Ok(None);
    };
    let Some(release) = product
        .releases
        .iter()
        .find(|release| release.version.to_string() == version)
    else {
        return Ok(None);
    };
    let Some(asset) = release.assets.iter().find(|asset| asset.name == file) else {
        return Ok(None);
    };
    let bytes = file_bytes(app, &purchase, product, release, asset).await?;
    let from = &store.settings.mail.from;
    let subject = format!("{} {version}", product.name);
    let text = format!(
        "{} {version}, from {}. Order {}.\n",
        product.name,
        store.settings.name,
        ledger::order_number(&purchase.id)
    );
    let message_id = mail::message_id(&format!("kindle.{}.{}", queued.id, queued.created), from);
    Ok(Some(mail::compose_attached(
        from,
        &queued.recipient,
        mail::Attached {
            subject: &subject,
            text: &text,
            file_name: &asset.name,
            content_type: "application/epub+zip",
            bytes,
        },
        &message_id,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amazons_kindle_domains_are_kindle_addresses() {
        assert!(is_kindle_address("ann_42@kindle.com"));
        assert!(is_kindle_address("ann@free.kindle.com"));
        for other in [
            "ann@example.com",
            "ann@kindle.com.evil.example",
            "ann@notkindle.com",
            "@kindle.com",
            "kindle.com",
        ] {
            assert!(!is_kindle_address(other), "{other}");
        }
    }
}

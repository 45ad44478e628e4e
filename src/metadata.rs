//! The metadata shop writes on Stripe's objects and reads back: a payment
//! link's (which Stripe copies onto each Checkout Session it makes) names
//! the product and version it sells, and marks a pre-order. Written by
//! `release`, `checkout` and the server's `/buy`; read by `sync` and the
//! server.

use std::collections::BTreeMap;

use crate::store::Store;
use crate::stripe::CheckoutSession;

/// The payment link metadata of a version: product and version, and for a
/// pre-order `preorder = "true"`, which Stripe copies onto each Checkout
/// Session, so that the ledger knows its pre-order buyers.
pub fn link_metadata(slug: &str, version: &str, preorder: bool) -> BTreeMap<String, String> {
    let mut metadata: BTreeMap<String, String> = [
        ("product".to_owned(), slug.to_owned()),
        ("version".to_owned(), version.to_owned()),
    ]
    .into();
    if preorder {
        metadata.insert(PREORDER_KEY.to_owned(), "true".to_owned());
    }
    metadata
}

/// The metadata key marking a pre-order's link and sessions.
pub const PREORDER_KEY: &str = "preorder";

/// The product and version a session sells, if it is this store's: named
/// in its metadata, or through a payment link `shop release` recorded.
pub fn product_of(session: &CheckoutSession, store: &Store) -> Option<(String, String)> {
    let named = match (
        session.metadata.get("product"),
        session.metadata.get("version"),
    ) {
        (Some(product), Some(version)) => Some((product.clone(), version.clone())),
        _ => session.payment_link.as_ref().and_then(|link| {
            store.products.iter().find_map(|product| {
                product
                    .releases
                    .iter()
                    .find(|release| &release.payment_link == link)
                    .map(|release| (product.slug.clone(), release.version.to_string()))
            })
        }),
    };
    named.filter(|(product, _)| store.product(product).is_ok())
}

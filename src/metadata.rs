//! The metadata shop writes on Stripe's objects and reads back: a payment
//! link's (which Stripe copies onto each Checkout Session it makes) names
//! the product and version it sells, and marks a pre-order. Written by
//! `release`, `checkout` and the server's `/buy`; read by `sync` and the
//! server. And where a buyer came from ([`Attribution`]), carried in a
//! session's metadata or a payment link's `client_reference_id`.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;

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

/// The metadata key naming the purchase an upgrade code was made for (on
/// the promotion code, and on the Checkout Session that uses it).
pub const UPGRADE_FROM: &str = "upgrade_from";

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

/// Where a buyer came from: the campaign's `utm_*` values and the site
/// that sent them, as the ledger records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// The origin of the page that linked here (`https://blog.example`).
    pub referrer: Option<String>,
}

/// The UTM parameters a visit may carry.
pub const UTM_KEYS: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
];

/// What marks a `client_reference_id` that carries an [`Attribution`].
const REFERENCE_PREFIX: &str = "shop1-";

/// The longest `client_reference_id` Stripe takes from a payment link's
/// URL (longer ones, or ones with other characters than letters, digits,
/// `-` and `_`, it drops without a word).
const REFERENCE_MAX: usize = 200;

/// The longest value kept of each field (metadata values may be 500).
const VALUE_MAX: usize = 100;

impl Attribution {
    /// A visit's: the query's `utm_*` values and the origin of its
    /// `Referer` (never its path, which on another site may hold its
    /// visitor's tokens), unless that is the shop itself.
    pub fn of_visit(
        query: &HashMap<String, String>,
        referer: Option<&str>,
        base_url: &str,
    ) -> Attribution {
        let value = |key: &str| {
            query
                .get(key)
                .map(|value| value.trim())
                .filter(|value| !value.is_empty())
                .map(|value| value.chars().take(VALUE_MAX).collect())
        };
        let own = origin(base_url);
        Attribution {
            utm_source: value("utm_source"),
            utm_medium: value("utm_medium"),
            utm_campaign: value("utm_campaign"),
            utm_term: value("utm_term"),
            utm_content: value("utm_content"),
            referrer: referer
                .and_then(origin)
                .filter(|found| Some(*found) != own)
                .map(|found| found.chars().take(VALUE_MAX).collect()),
        }
    }

    fn fields(&self) -> [(&'static str, &'static str, &Option<String>); 6] {
        // The short names are what a reference carries, in the order
        // kept when not everything fits.
        [
            ("s", "utm_source", &self.utm_source),
            ("m", "utm_medium", &self.utm_medium),
            ("c", "utm_campaign", &self.utm_campaign),
            ("r", "referrer", &self.referrer),
            ("n", "utm_content", &self.utm_content),
            ("t", "utm_term", &self.utm_term),
        ]
    }

    fn field_mut(&mut self, key: &str) -> Option<&mut Option<String>> {
        match key {
            "s" | "utm_source" => Some(&mut self.utm_source),
            "m" | "utm_medium" => Some(&mut self.utm_medium),
            "c" | "utm_campaign" => Some(&mut self.utm_campaign),
            "t" | "utm_term" => Some(&mut self.utm_term),
            "n" | "utm_content" => Some(&mut self.utm_content),
            "r" | "referrer" => Some(&mut self.referrer),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, _, value)| value.is_none())
    }

    /// Into metadata of a session shop makes itself.
    pub fn write_metadata(&self, metadata: &mut BTreeMap<String, String>) {
        for (_, key, value) in self.fields() {
            if let Some(value) = value {
                metadata.insert(key.to_owned(), value.clone());
            }
        }
    }

    /// As a payment link's `client_reference_id`, which Stripe copies onto
    /// the Checkout Session the link makes: `shop1-` and the fields
    /// base64url-encoded (letters, digits, `-` and `_` are all Stripe
    /// takes), within Stripe's 200 characters; fields that do not fit are
    /// left out, the source kept first. `None` when there is nothing.
    pub fn to_reference(&self) -> Option<String> {
        let mut kept: Vec<(&str, &str)> = Vec::new();
        let mut reference = None;
        for (short, _, value) in self.fields() {
            let Some(value) = value else { continue };
            kept.push((short, value));
            let pairs = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&kept)
                .finish();
            let encoded = format!(
                "{REFERENCE_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pairs)
            );
            if encoded.len() <= REFERENCE_MAX {
                reference = Some(encoded);
            } else {
                kept.pop();
            }
        }
        reference
    }

    /// A session's: its metadata (a session shop made itself), else its
    /// `client_reference_id` (a payment link's, opened through `/buy`).
    pub fn of_session(session: &CheckoutSession) -> Attribution {
        let mut found = Attribution::default();
        for key in UTM_KEYS.iter().copied().chain(["referrer"]) {
            if let Some(value) = session.metadata.get(key).filter(|value| !value.is_empty())
                && let Some(field) = found.field_mut(key)
            {
                *field = Some(value.clone());
            }
        }
        if found.is_empty()
            && let Some(encoded) = session
                .client_reference_id
                .as_deref()
                .and_then(|id| id.strip_prefix(REFERENCE_PREFIX))
            && let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded)
        {
            for (key, value) in form_urlencoded::parse(&bytes) {
                if let Some(field) = found.field_mut(&key)
                    && !value.is_empty()
                {
                    *field = Some(value.chars().take(VALUE_MAX).collect());
                }
            }
        }
        found
    }
}

/// The origin (`scheme://host[:port]`) of an http(s) URL.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &url[..scheme.len() + 3 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(reference: Option<String>, metadata: &[(&str, &str)]) -> CheckoutSession {
        serde_json::from_value(serde_json::json!({
            "id": "cs_test_1", "created": 0, "expires_at": 0, "payment_status": "paid",
            "client_reference_id": reference,
            "metadata": metadata.iter().cloned().collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn a_visit_keeps_its_campaign_and_the_origin_it_came_from() {
        let query: HashMap<String, String> = [
            ("utm_source", "newsletter"),
            ("utm_campaign", " launch "),
            ("utm_medium", ""),
            ("other", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let found = Attribution::of_visit(
            &query,
            Some("https://blog.example/post?token=secret"),
            "https://books.example",
        );
        assert_eq!(
            found,
            Attribution {
                utm_source: Some("newsletter".into()),
                utm_campaign: Some("launch".into()),
                referrer: Some("https://blog.example".into()),
                ..Attribution::default()
            }
        );
        let own = Attribution::of_visit(
            &HashMap::new(),
            Some("https://books.example/p/guide"),
            "https://books.example",
        );
        assert!(own.is_empty());
        assert!(
            Attribution::of_visit(&HashMap::new(), Some("javascript:x"), "https://b.example")
                .is_empty()
        );
    }

    #[test]
    fn a_reference_is_what_stripe_takes_and_reads_back_the_same() {
        let attribution = Attribution {
            utm_source: Some("news letter & more/ü".into()),
            utm_medium: Some("email".into()),
            referrer: Some("https://blog.example".into()),
            ..Attribution::default()
        };
        let reference = attribution.to_reference().unwrap();
        assert!(reference.len() <= 200);
        assert!(
            reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{reference}"
        );
        assert_eq!(
            Attribution::of_session(&session(Some(reference), &[])),
            attribution
        );
        assert_eq!(Attribution::default().to_reference(), None);
        // Metadata (a session shop made) wins; a foreign reference is none.
        assert_eq!(
            Attribution::of_session(&session(Some("order-7".into()), &[("utm_source", "x")]))
                .utm_source
                .as_deref(),
            Some("x")
        );
        assert!(Attribution::of_session(&session(Some("order-7".into()), &[])).is_empty());
    }

    #[test]
    fn what_does_not_fit_is_left_out_the_source_kept() {
        let long = "x".repeat(VALUE_MAX);
        let attribution = Attribution {
            utm_source: Some("s".repeat(VALUE_MAX)),
            utm_medium: Some(long.clone()),
            utm_campaign: Some(long.clone()),
            utm_term: Some(long.clone()),
            utm_content: Some(long),
            referrer: Some("https://r.example".into()),
        };
        let reference = attribution.to_reference().unwrap();
        assert!(reference.len() <= REFERENCE_MAX, "{}", reference.len());
        assert_eq!(
            Attribution::of_session(&session(Some(reference), &[])),
            Attribution {
                utm_source: attribution.utm_source.clone(),
                referrer: attribution.referrer.clone(),
                ..Attribution::default()
            }
        );
    }
}

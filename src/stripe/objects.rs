//! The Stripe objects `shop` reads, with only the fields it uses. Unknown
//! fields are ignored, so Stripe adding fields never breaks `shop`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Metadata: string keys and values.
pub type Metadata = BTreeMap<String, String>;

/// Objects listed with pagination carry an id.
pub trait Object {
    fn id(&self) -> &str;
}

macro_rules! object {
    ($($name:ident),*) => {
        $(impl Object for $name {
            fn id(&self) -> &str {
                &self.id
            }
        })*
    };
}
object!(
    Product,
    Price,
    PaymentLink,
    CheckoutSession,
    LineItem,
    Refund,
    Dispute,
    Event,
    Charge,
    PaymentIntent,
    PromotionCode
);

/// A code buyers type for a discount.
#[derive(Debug, Clone, Deserialize)]
pub struct PromotionCode {
    pub id: String,
    pub code: String,
    pub active: bool,
}

/// One page of a list.
#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub active: bool,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    #[serde(deserialize_with = "id_of")]
    pub product: String,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub active: bool,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentLink {
    pub id: String,
    pub url: String,
    pub active: bool,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub created: i64,
    pub expires_at: i64,
    /// `open`, `complete` or `expired`.
    pub status: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: String,
    pub customer_email: Option<String>,
    pub customer_details: Option<CustomerDetails>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub payment_intent: Option<String>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub payment_link: Option<String>,
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    pub url: Option<String>,
    pub success_url: Option<String>,
}

impl CheckoutSession {
    /// Whether the buyer is owed what they bought: paid, or owing nothing
    /// (a 100 % discount completes as `no_payment_required`).
    pub fn is_fulfilled(&self) -> bool {
        self.status.as_deref() == Some("complete")
            && matches!(self.payment_status.as_str(), "paid" | "no_payment_required")
    }

    /// The buyer's email: what they typed at checkout, else what was prefilled.
    pub fn email(&self) -> Option<&str> {
        self.customer_details
            .as_ref()
            .and_then(|details| details.email.as_deref())
            .or(self.customer_email.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CustomerDetails {
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LineItem {
    pub id: String,
    pub amount_total: i64,
    pub currency: String,
    pub description: Option<String>,
    pub quantity: Option<i64>,
    pub price: Option<Price>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub latest_charge: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Charge {
    pub id: String,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    pub refunded: bool,
    pub disputed: bool,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub created: i64,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub charge: Option<String>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub created: i64,
    pub status: String,
    pub reason: String,
    #[serde(deserialize_with = "id_of")]
    pub charge: String,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The object the event is about, whole: its type depends on the event.
    pub object: serde_json::Value,
}

/// An expandable field: an id, or the object itself when expanded.
fn id_of<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    optional_id_of(deserializer)?.ok_or_else(|| serde::de::Error::custom("expected an id"))
}

fn optional_id_of<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Object(object) => object
            .get("id")
            .and_then(|id| id.as_str())
            .map(str::to_owned),
        _ => None,
    })
}

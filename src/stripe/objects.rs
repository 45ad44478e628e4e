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
    PromotionCode,
    WebhookEndpoint,
    Invoice,
    BalanceTransaction
);

/// Where Stripe sends events, and in which API version's shapes.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub api_version: Option<String>,
    pub status: String,
    #[serde(default)]
    pub enabled_events: Vec<String>,
}

/// A code buyers type for a discount.
#[derive(Debug, Clone, Deserialize)]
pub struct PromotionCode {
    pub id: String,
    pub code: String,
    pub active: bool,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub max_redemptions: Option<i64>,
    #[serde(default)]
    pub times_redeemed: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

impl PromotionCode {
    /// Whether a buyer can still use it at `now`.
    pub fn usable(&self, now: i64) -> bool {
        self.active
            && self.expires_at.is_none_or(|at| at > now)
            && self
                .max_redemptions
                .is_none_or(|max| self.times_redeemed < max)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Coupon {
    pub id: String,
    #[serde(default)]
    pub percent_off: Option<f64>,
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
    pub description: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub images: Vec<String>,
    pub url: Option<String>,
    /// An id, or the tax code object when expanded.
    #[serde(default, deserialize_with = "optional_id_of")]
    pub tax_code: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    #[serde(deserialize_with = "id_of")]
    pub product: String,
    pub unit_amount: Option<i64>,
    /// Set when the buyer chooses the amount.
    #[serde(default)]
    pub custom_unit_amount: Option<CustomUnitAmount>,
    pub currency: String,
    /// `exclusive`, `inclusive` or `unspecified`; absent reads as unspecified.
    #[serde(default)]
    pub tax_behavior: Option<String>,
    pub active: bool,
    #[serde(default)]
    pub metadata: Metadata,
    /// The price in other currencies, by code; present only when asked
    /// for (`expand[]=currency_options`), as Stripe includes it.
    #[serde(default)]
    pub currency_options: Option<std::collections::BTreeMap<String, PriceOption>>,
}

/// A custom field of a session, with the buyer's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionCustomField {
    pub key: String,
    #[serde(default)]
    pub text: Option<FieldAnswer>,
    #[serde(default)]
    pub numeric: Option<FieldAnswer>,
    #[serde(default)]
    pub dropdown: Option<FieldAnswer>,
}

/// What the buyer entered (none for an optional field left empty).
#[derive(Debug, Clone, Deserialize)]
pub struct FieldAnswer {
    pub value: Option<String>,
}

/// One of a price's `currency_options`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceOption {
    pub unit_amount: Option<i64>,
    #[serde(default)]
    pub custom_unit_amount: Option<CustomUnitAmount>,
}

/// A price's `custom_unit_amount`, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct CustomUnitAmount {
    pub minimum: Option<i64>,
    #[serde(default)]
    pub maximum: Option<i64>,
    pub preset: Option<i64>,
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
    /// An id, or the intent itself with `expand[]=payment_intent` (its
    /// `created` is when the buyer pressed Pay).
    #[serde(default)]
    pub payment_intent: Option<Expandable<PaymentIntent>>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub payment_link: Option<String>,
    pub client_reference_id: Option<String>,
    /// Results of `consent_collection`.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// The custom fields it asked, with the buyer's answers.
    #[serde(default)]
    pub custom_fields: Vec<SessionCustomField>,
    /// The invoice Stripe made (`invoice_creation`), expanded or not.
    #[serde(default)]
    pub invoice: Option<Expandable<Invoice>>,
    /// Nullable in Stripe's spec: `null` reads as empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    pub url: Option<String>,
    pub success_url: Option<String>,
    pub total_details: Option<TotalDetails>,
    #[serde(default)]
    pub automatic_tax: Option<AutomaticTax>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AutomaticTax {
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TotalDetails {
    #[serde(default)]
    pub amount_discount: i64,
    #[serde(default)]
    pub amount_tax: i64,
    /// Only with `expand[]=total_details.breakdown`.
    pub breakdown: Option<Breakdown>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Breakdown {
    #[serde(default)]
    pub discounts: Vec<DiscountAmount>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DiscountAmount {
    pub amount: i64,
    pub discount: Discount,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Discount {
    /// The promotion code's id, when a code gave the discount.
    #[serde(default, deserialize_with = "optional_id_of")]
    pub promotion_code: Option<String>,
}

impl CheckoutSession {
    /// Whether the buyer is owed what they bought: paid, or owing nothing
    /// (a 100 % discount completes as `no_payment_required`).
    pub fn is_fulfilled(&self) -> bool {
        self.status.as_deref() == Some("complete")
            && matches!(self.payment_status.as_str(), "paid" | "no_payment_required")
    }

    /// The promotion code that gave a discount, when the session was read
    /// with its breakdown.
    pub fn promotion_code_id(&self) -> Option<&str> {
        self.total_details
            .as_ref()?
            .breakdown
            .as_ref()?
            .discounts
            .iter()
            .find_map(|discount| discount.discount.promotion_code.as_deref())
    }

    pub fn payment_intent_id(&self) -> Option<&str> {
        self.payment_intent.as_ref().map(Expandable::id)
    }

    /// Whether the buyer ticked the terms-of-service box.
    pub fn accepted_terms(&self) -> bool {
        self.consent
            .as_ref()
            .and_then(|consent| consent.terms_of_service.as_deref())
            == Some("accepted")
    }

    /// The buyer's answer to the custom field `key`, if they gave one.
    pub fn custom_field(&self, key: &str) -> Option<&str> {
        let field = self.custom_fields.iter().find(|field| field.key == key)?;
        [&field.text, &field.numeric, &field.dropdown]
            .into_iter()
            .flatten()
            .find_map(|answer| answer.value.as_deref())
            .filter(|value| !value.is_empty())
    }

    /// The buyer's answer to the box for the seller's news, where checkout
    /// showed it: `opt_in` or `opt_out`.
    pub fn promotions(&self) -> Option<&str> {
        self.consent.as_ref()?.promotions.as_deref()
    }

    /// The buyer's country (ISO 3166-1 alpha-2), from the billing address.
    pub fn country(&self) -> Option<&str> {
        self.customer_details
            .as_ref()?
            .address
            .as_ref()?
            .country
            .as_deref()
            .filter(|country| !country.is_empty())
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
    #[serde(default)]
    pub address: Option<Address>,
    /// `none`, `exempt` or `reverse` (a business in another country of the
    /// EU pays the tax itself).
    #[serde(default)]
    pub tax_exempt: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tax_ids: Vec<TaxId>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    pub country: Option<String>,
}

/// A tax ID a business buyer gave, such as `eu_vat` `DE123456789`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaxId {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Consent {
    /// `accepted` when the buyer ticked the box.
    pub terms_of_service: Option<String>,
    /// `opt_in` or `opt_out` where checkout showed the box for the
    /// seller's news (`consent_collection[promotions]`), else none.
    #[serde(default)]
    pub promotions: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub id: String,
    /// The number printed on the invoice, once finalized.
    pub number: Option<String>,
    /// The page where the buyer sees and downloads it.
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
}

/// A field Stripe sends as an id, or as the object when expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expandable<T> {
    Id(String),
    Object(Box<T>),
}

impl<T: Object> Expandable<T> {
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(object) => object.id(),
        }
    }

    /// The object, when it was expanded.
    pub fn object(&self) -> Option<&T> {
        match self {
            Expandable::Id(_) => None,
            Expandable::Object(object) => Some(object),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LineItem {
    pub id: String,
    /// Its amount before discounts, what a discount took off, its tax, and
    /// what it came to.
    #[serde(default)]
    pub amount_subtotal: i64,
    #[serde(default)]
    pub amount_discount: i64,
    #[serde(default)]
    pub amount_tax: i64,
    pub amount_total: i64,
    pub currency: String,
    pub description: Option<String>,
    pub quantity: Option<i64>,
    pub price: Option<Price>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    #[serde(default)]
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    /// Its charge, expanded when asked (`payment_intent.latest_charge`).
    #[serde(default)]
    pub latest_charge: Option<Expandable<Charge>>,
}

impl PaymentIntent {
    pub fn latest_charge_id(&self) -> Option<&str> {
        self.latest_charge.as_ref().map(Expandable::id)
    }
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
    #[serde(default)]
    pub created: i64,
    /// What reached the balance: Stripe's fee and the net, once the money
    /// arrived (at once for cards; when a bank debit succeeds).
    #[serde(default)]
    pub balance_transaction: Option<Expandable<BalanceTransaction>>,
}

/// A movement of the account's balance: a charge's amount, Stripe's fee
/// and the net, in the currency the account settles in.
#[derive(Debug, Clone, Deserialize)]
pub struct BalanceTransaction {
    pub id: String,
    pub amount: i64,
    pub created: i64,
    pub currency: String,
    pub fee: i64,
    pub net: i64,
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

/// A field Stripe may send as `null`: its default then.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field shop reads that Stripe's spec calls nullable parses as
    /// `null` (a webhook with `metadata: null` once answered 400).
    #[test]
    fn nullable_fields_read_null() {
        let session: CheckoutSession = serde_json::from_value(serde_json::json!({
            "id": "cs_test_1", "created": 1, "expires_at": 2, "status": null,
            "payment_status": "paid", "customer_email": null, "customer_details": null,
            "amount_total": null, "currency": null, "payment_intent": null,
            "payment_link": null, "client_reference_id": null, "metadata": null,
            "url": null, "success_url": null, "total_details": null, "consent": null,
            "invoice": null,
        }))
        .unwrap();
        assert!(session.metadata.is_empty() && session.email().is_none());
        let refund: Refund = serde_json::from_value(serde_json::json!({
            "id": "re_1", "amount": 5, "currency": "usd", "created": 1, "status": null,
            "charge": null, "payment_intent": null,
        }))
        .unwrap();
        assert!(refund.status.is_none());
        let item: LineItem = serde_json::from_value(serde_json::json!({
            "id": "li_1", "amount_total": 5, "currency": "usd", "description": null,
            "quantity": null, "price": null,
        }))
        .unwrap();
        assert!(item.price.is_none());
        let intent: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": 5, "currency": "usd", "status": "succeeded", "latest_charge": null,
        }))
        .unwrap();
        assert!(intent.latest_charge.is_none());
        let expanded: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": 5, "currency": "usd", "status": "succeeded",
            "latest_charge": {"id": "ch_1", "amount": 5, "amount_refunded": 0, "currency": "usd",
                "refunded": false, "disputed": false, "payment_intent": "pi_1", "created": 3,
                "balance_transaction": {"id": "txn_1", "amount": 5, "created": 4,
                    "currency": "usd", "fee": 1, "net": 4}},
        }))
        .unwrap();
        let charge = expanded.latest_charge.as_ref().and_then(Expandable::object);
        let balance = charge
            .and_then(|charge| charge.balance_transaction.as_ref())
            .and_then(Expandable::object)
            .unwrap();
        assert_eq!(
            (expanded.latest_charge_id(), balance.fee, balance.net),
            (Some("ch_1"), 1, 4)
        );
    }

    #[test]
    fn a_typed_code_is_found_in_the_breakdown() {
        let session: CheckoutSession = serde_json::from_value(serde_json::json!({
            "id": "cs_test_1", "created": 1, "expires_at": 2, "payment_status": "paid",
            "total_details": {"amount_discount": 2900, "amount_shipping": 0, "amount_tax": 0,
                "breakdown": {"discounts": [{"amount": 2900, "discount": {"id": "di_1",
                    "promotion_code": "promo_1", "coupon": {"id": "c"}}}], "taxes": []}},
        }))
        .unwrap();
        assert_eq!(session.promotion_code_id(), Some("promo_1"));
    }
}

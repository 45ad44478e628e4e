//! What `shop` asks Stripe to make or list: one typed value per request,
//! turned into Stripe's form by the client.

use super::{Form, Metadata, objects};

#[derive(Debug, Clone, Default)]
pub struct CreateProduct {
    /// A product id of our choosing, so a re-run finds it.
    pub id: Option<String>,
    pub name: String,
    /// Plain text: Checkout shows it as it is.
    pub description: Option<String>,
    /// Public URLs of images (at most 8): the cover.
    pub images: Vec<String>,
    /// The product's public page.
    pub url: Option<String>,
    /// Stripe Tax's product tax code; `None`, the account's preset.
    pub tax_code: Option<String>,
    pub metadata: Metadata,
}

/// A coupon of `percent_off` percent, once, on `products` only.
#[derive(Debug, Clone, Default)]
pub struct CreateCoupon {
    pub id: String,
    pub percent_off: u8,
    /// At most 40 characters: shown to buyers on the checkout page.
    pub name: Option<String>,
    pub products: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CreatePromotionCode {
    pub coupon: String,
    /// Letters and digits, unique among active codes.
    pub code: String,
    pub max_redemptions: Option<i64>,
    pub expires_at: Option<i64>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default)]
pub struct CreatePrice {
    pub product: String,
    /// Ignored when `custom_unit_amount` is set.
    pub unit_amount: i64,
    /// Pay what you want: the buyer enters the amount at checkout.
    pub custom_unit_amount: Option<objects::CustomUnitAmount>,
    pub currency: String,
    /// `exclusive` or `inclusive`, which Stripe Tax needs; never changed
    /// once set, so a different one is a new price.
    pub tax_behavior: Option<String>,
    /// The price in other currencies (`currency_options`), each with the
    /// price's tax behavior.
    pub currency_options: Vec<CurrencyOption>,
    pub metadata: Metadata,
}

/// A price's amount in one more currency: a fixed `unit_amount`, or with
/// `custom_unit_amount` the buyer's choice (as the price's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyOption {
    pub currency: String,
    pub unit_amount: i64,
    pub custom_unit_amount: Option<objects::CustomUnitAmount>,
}

#[derive(Debug, Clone, Default)]
pub struct CreatePaymentLink {
    pub price: String,
    /// Where Stripe sends the buyer after paying; may hold
    /// `{CHECKOUT_SESSION_ID}`.
    pub redirect_url: String,
    pub allow_promotion_codes: bool,
    pub options: CheckoutOptions,
    pub metadata: Metadata,
}

/// What a checkout asks and issues beyond the payment, the same for
/// payment links and Checkout Sessions. Nothing is sent for what is off,
/// so a store without tax or consent sends what it always did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// Stripe Tax: `automatic_tax[enabled]`.
    pub automatic_tax: bool,
    /// `billing_address_collection=required`: a whole address, which an
    /// invoice names and tax needs; otherwise Stripe asks what it needs.
    pub billing_address: bool,
    /// `tax_id_collection[enabled]`: a business buyer's VAT ID.
    pub tax_id_collection: bool,
    /// `invoice_creation[enabled]`: an invoice for each purchase.
    pub invoice_creation: bool,
    /// The text beside the terms-of-service box, which the buyer must tick:
    /// `consent_collection[terms_of_service]=required` and
    /// `custom_text[terms_of_service_acceptance][message]`.
    pub terms_consent: Option<String>,
    /// `consent_collection[promotions]=auto`: the box for the seller's
    /// news, which Stripe shows US buyers of US accounts.
    pub promotions_consent: bool,
    /// `custom_fields`: questions the buyer answers at checkout (Stripe
    /// takes three at most), text ones here.
    pub custom_fields: Vec<CustomField>,
}

/// A text field of the checkout (`custom_fields[i]` with `type=text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomField {
    /// Alphanumeric, unique in the checkout; the answer comes back under it.
    pub key: String,
    /// What the buyer reads (50 characters at most).
    pub label: String,
    /// The longest answer (Stripe: 255 at most).
    pub maximum_length: Option<i64>,
    /// The shortest answer, when one is given (1 to 255).
    pub minimum_length: Option<i64>,
    pub optional: bool,
}

impl CheckoutOptions {
    pub(super) fn add_to(&self, mut form: Form) -> Form {
        if self.automatic_tax {
            form = form.field("automatic_tax[enabled]", true);
        }
        if self.billing_address {
            form = form.field("billing_address_collection", "required");
        }
        if self.tax_id_collection {
            form = form.field("tax_id_collection[enabled]", true);
        }
        if self.invoice_creation {
            form = form.field("invoice_creation[enabled]", true);
        }
        if let Some(message) = &self.terms_consent {
            form = form
                .field("consent_collection[terms_of_service]", "required")
                .field("custom_text[terms_of_service_acceptance][message]", message);
        }
        if self.promotions_consent {
            form = form.field("consent_collection[promotions]", "auto");
        }
        for (index, field) in self.custom_fields.iter().enumerate() {
            let name = format!("custom_fields[{index}]");
            form = form
                .field(format!("{name}[key]"), &field.key)
                .field(format!("{name}[label][type]"), "custom")
                .field(format!("{name}[label][custom]"), &field.label)
                .field(format!("{name}[type]"), "text")
                .field(format!("{name}[optional]"), field.optional)
                .optional(
                    format!("{name}[text][maximum_length]"),
                    field.maximum_length,
                )
                .optional(
                    format!("{name}[text][minimum_length]"),
                    field.minimum_length,
                );
        }
        form
    }
}

#[derive(Debug, Clone, Default)]
pub struct CreateCheckoutSession {
    /// The price of the session's one line; empty when `lines` are given.
    pub price: String,
    /// The session's lines (a cart), in place of `price`'s one.
    pub lines: Vec<SessionLine>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub customer_email: Option<String>,
    pub client_reference_id: Option<String>,
    /// Unix time; Stripe takes 30 minutes to 24 hours from now.
    pub expires_at: Option<i64>,
    pub promotion_code: Option<String>,
    pub allow_promotion_codes: bool,
    pub options: CheckoutOptions,
    pub metadata: Metadata,
}

/// A line of a Checkout Session: a price at Stripe, or an amount of a
/// product made for this session (`price_data`: an amount chosen before
/// checkout, which Stripe cannot take as a customer-chosen price beside
/// other lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLine {
    Price(String),
    Amount {
        product: String,
        currency: String,
        unit_amount: i64,
        /// `exclusive` or `inclusive`, as the store's prices are.
        tax_behavior: Option<String>,
    },
}

impl CreateCheckoutSession {
    /// The form of its line items.
    pub(super) fn add_lines(&self, mut form: Form) -> Form {
        if self.lines.is_empty() {
            return form
                .field("line_items[0][price]", &self.price)
                .field("line_items[0][quantity]", 1);
        }
        for (index, line) in self.lines.iter().enumerate() {
            let name = format!("line_items[{index}]");
            form = match line {
                SessionLine::Price(price) => form.field(format!("{name}[price]"), price),
                SessionLine::Amount {
                    product,
                    currency,
                    unit_amount,
                    tax_behavior,
                } => form
                    .field(format!("{name}[price_data][product]"), product)
                    .field(format!("{name}[price_data][currency]"), currency)
                    .field(format!("{name}[price_data][unit_amount]"), *unit_amount)
                    .optional(
                        format!("{name}[price_data][tax_behavior]"),
                        tax_behavior.as_deref(),
                    ),
            }
            .field(format!("{name}[quantity]"), 1);
        }
        form
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListCheckoutSessions {
    pub created_gte: Option<i64>,
    pub created_lt: Option<i64>,
    /// `open`, `complete` or `expired`.
    pub status: Option<String>,
    pub payment_intent: Option<String>,
    /// Page size, 1 to 100.
    pub limit: Option<u32>,
    /// Fields of each session to expand (`total_details.breakdown`).
    pub expand: Vec<String>,
}

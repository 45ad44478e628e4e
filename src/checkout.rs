//! What a checkout of the store is, in one place: the options every
//! checkout asks and issues (from `[tax]` and `[consent]`), the page a buyer
//! returns to, and the Checkout Session of one release, which `shop
//! checkout` and the server's upgrade codes start from. `shop release`
//! gives a payment link the same options and return page.

use crate::metadata;
use crate::store::{Product, Release, Settings};
use crate::stripe::{CheckoutOptions, CreateCheckoutSession};

/// What every checkout of the store asks and issues, from `[tax]` and
/// `[consent]`: the same for payment links and sessions.
pub fn options(settings: &Settings) -> CheckoutOptions {
    CheckoutOptions {
        automatic_tax: settings.tax.automatic,
        // An invoice names the buyer's address; a VAT ID is checked
        // against one.
        billing_address: settings.tax.invoices || settings.tax.tax_id_collection,
        tax_id_collection: settings.tax.tax_id_collection,
        invoice_creation: settings.tax.invoices,
        terms_consent: settings
            .consent
            .as_ref()
            .map(|consent| consent.waiver.clone()),
        promotions_consent: settings.audience.checkout_consent,
        custom_fields: Vec::new(),
    }
}

/// Where Stripe sends a buyer who paid: the thanks page, which reads the
/// session Stripe names in place of `{CHECKOUT_SESSION_ID}`.
pub fn thanks_url(settings: &Settings) -> String {
    format!(
        "{}/thanks?session_id={{CHECKOUT_SESSION_ID}}",
        settings.base_url
    )
}

/// A Checkout Session of one release: its price, the thanks page, the store
/// front for a buyer who turns back, the store's options, and the marks of
/// the release's payment link (product, version, pre-order), so that the
/// ledger reads it as it reads the link's sessions.
pub fn session(settings: &Settings, product: &Product, release: &Release) -> CreateCheckoutSession {
    CreateCheckoutSession {
        price: release.stripe_price.clone(),
        success_url: thanks_url(settings),
        cancel_url: Some(format!("{}/", settings.base_url)),
        allow_promotion_codes: product.promotion_codes,
        options: options(settings),
        metadata: metadata::link_metadata(
            &product.slug,
            &release.version.to_string(),
            release.preorder,
        ),
        ..CreateCheckoutSession::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Overrides;
    use crate::store::settings::parse;

    const BASE: &str =
        "name = \"Books\"\nsupport_email = \"help@b.example\"\nbase_url = \"https://b.example\"\n";

    #[test]
    fn tax_and_consent_settings_become_the_checkouts_options() {
        let settings = parse(
            &format!(
                "{BASE}[tax]\nautomatic = true\nprices = \"inclusive\"\ninvoices = true\n\
                 [consent]\nterms_url = \"https://b.example/t\"\nwaiver = \"See [terms]({{terms_url}}).\"\n\
                 [audience]\ncheckout_consent = true\n"
            ),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            options(&settings),
            CheckoutOptions {
                automatic_tax: true,
                billing_address: true,
                tax_id_collection: false,
                invoice_creation: true,
                terms_consent: Some("See [terms](https://b.example/t).".into()),
                promotions_consent: true,
                custom_fields: Vec::new(),
            }
        );
        assert_eq!(
            thanks_url(&settings),
            "https://b.example/thanks?session_id={CHECKOUT_SESSION_ID}"
        );
        // Only buyers under opt-in are asked.
        let errors = parse(
            &format!("{BASE}[audience]\nbuyers = \"all\"\ncheckout_consent = true\n"),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            format!("{errors:?}").contains("only `buyers = \\\"opt-in\\\"` uses"),
            "{errors:?}"
        );
        // Nothing asked: nothing sent.
        let plain = parse(BASE, &Overrides::default()).unwrap();
        assert_eq!(options(&plain), CheckoutOptions::default());
    }
}

//! What a release makes in Stripe, each step found before it is made and
//! made with a derived idempotency key: the product (kept as the store
//! shows it), a price, the version's payment link; and once the version is
//! recorded, the links that stop selling.

use futures_util::TryStreamExt;

use super::{Link, ReleaseError, Releasing, Silent};
use crate::stripe::{self, IdempotencyKey};
use crate::{checkout, html, metadata, sync};

impl Releasing<'_> {
    /// The Stripe product, once per slug, showing at Checkout what the
    /// store says: the name, the description as plain text (Checkout shows
    /// Markdown's asterisks as they are), the cover's public URL, the page.
    /// Returns its id.
    pub(super) async fn ensure_product(&mut self) -> Result<String, ReleaseError> {
        let product = self.product;
        let settings = &self.request.store.settings;
        let product_id = self.known_product.clone();
        let shown = stripe::CreateProduct {
            id: Some(product_id.clone()),
            name: product.name.clone(),
            description: product
                .description
                .as_deref()
                .map(|text| html::plain_text(text, 1000))
                .filter(|text| !text.is_empty()),
            images: product
                .cover
                .iter()
                .map(|_| format!("{}/cover/{}", settings.base_url, product.slug))
                .collect(),
            url: Some(format!("{}/p/{}", settings.base_url, product.slug)),
            tax_code: product
                .tax_code
                .clone()
                .or_else(|| settings.tax.default_code.clone()),
            metadata: [("shop_product".to_owned(), product.slug.clone())].into(),
        };
        match &self.existing_product {
            Some(existing)
                if existing.name == shown.name
                    && existing.description == shown.description
                    && existing.images == shown.images
                    && existing.url == shown.url
                    && existing.tax_code == shown.tax_code =>
            {
                self.reporter
                    .step(&format!("Stripe product `{product_id}` exists"));
            }
            Some(_) => {
                self.reporter.step(&format!(
                    "{} Stripe product `{product_id}` (name, description, cover, page and tax code as the store has them)",
                    self.verb("updated", "would update")
                ));
                if !self.dry {
                    self.selling()?.update_product(&product_id, &shown).await?;
                }
            }
            None => {
                self.reporter.step(&format!(
                    "{} Stripe product `{product_id}`",
                    self.verb("created", "would create")
                ));
                if !self.dry {
                    let key = IdempotencyKey::derived(&["product", &product_id]);
                    self.selling()?.create_product(&shown, &key).await?;
                    self.created.push(format!("product {product_id}"));
                }
            }
        }
        Ok(product_id)
    }

    /// A price for the product's amount (a pre-order's launch price),
    /// reused when one exists. Returns its id.
    pub(super) async fn ensure_price(&mut self, product_id: &str) -> Result<String, ReleaseError> {
        let product = self.product;
        let request = self.request;
        let selling = request
            .price
            .filter(|_| request.preorder)
            .unwrap_or(product.price);
        let amount = selling.amount;
        let currency = selling.currency.code().to_owned();
        let shown = match product.pay_what_you_want {
            Some(_) => format!("pay what you want, from {selling}"),
            None => selling.to_string(),
        };
        // Pay what you want: a price whose minimum and suggestion are these.
        let custom = product
            .pay_what_you_want
            .map(|chosen| stripe::CustomUnitAmount {
                minimum: Some(amount),
                maximum: None,
                preset: chosen.suggested.map(|money| money.amount),
            });
        let tax_behavior = request.store.settings.tax_behavior();
        // The other currencies (`prices`); a pre-order's launch price is in
        // the main currency alone.
        let options: Vec<stripe::CurrencyOption> = match request.price.filter(|_| request.preorder)
        {
            Some(_) => Vec::new(),
            None => product
                .prices
                .iter()
                .map(|other| stripe::CurrencyOption {
                    currency: other.price.currency.code().to_owned(),
                    unit_amount: other.price.amount,
                    custom_unit_amount: other.pay_what_you_want.map(|chosen| {
                        stripe::CustomUnitAmount {
                            minimum: Some(other.price.amount),
                            maximum: None,
                            preset: chosen.suggested.map(|money| money.amount),
                        }
                    }),
                })
                .collect(),
        };
        let shown = match options.is_empty() {
            true => shown,
            false => format!(
                "{shown} ({})",
                product
                    .prices
                    .iter()
                    .map(|other| other.price.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        // A dry run for a product Stripe does not have yet: no prices to find.
        let existing = if self.dry && self.existing_product.is_none() {
            None
        } else {
            self.selling()?
                .prices(product_id)
                .try_filter(|price| {
                    let same = match custom {
                        Some(custom) => price.custom_unit_amount == Some(custom),
                        None => price.unit_amount == Some(amount),
                    };
                    // Stripe never changes a price's tax behavior once set.
                    let taxed_alike = tax_behavior
                        .is_none_or(|behavior| price.tax_behavior.as_deref() == Some(behavior));
                    let same_options = same_currency_options(price, &options);
                    std::future::ready(
                        same && taxed_alike && same_options && price.currency == currency,
                    )
                })
                .try_next()
                .await?
        };
        match existing {
            Some(price) => {
                self.reporter
                    .step(&format!("Stripe price `{}` for {shown} exists", price.id));
                Ok(price.id)
            }
            None if self.dry => {
                self.reporter
                    .step(&format!("would create a Stripe price for {shown}"));
                Ok("price_(new)".to_owned())
            }
            None => {
                let params = stripe::CreatePrice {
                    product: product_id.to_owned(),
                    unit_amount: amount,
                    custom_unit_amount: custom,
                    currency: currency.clone(),
                    tax_behavior: tax_behavior.map(str::to_owned),
                    currency_options: options.clone(),
                    metadata: [("shop_product".to_owned(), product.slug.clone())].into(),
                };
                let amount_text = amount.to_string();
                let chosen = custom.map(|custom| format!("custom:{:?}", custom.preset));
                let other: Vec<String> = options
                    .iter()
                    .map(|option| {
                        format!(
                            "{}:{}:{:?}",
                            option.currency, option.unit_amount, option.custom_unit_amount
                        )
                    })
                    .collect();
                let mut parts = vec!["price", product_id, &amount_text, &currency];
                parts.extend(chosen.as_deref());
                parts.extend(tax_behavior);
                parts.extend(other.iter().map(String::as_str));
                let key = IdempotencyKey::derived(&parts);
                let price = self.selling()?.create_price(&params, &key).await?;
                self.reporter
                    .step(&format!("created Stripe price `{}` for {shown}", price.id));
                self.created.push(format!("price {}", price.id));
                Ok(price.id)
            }
        }
    }

    /// This version's payment link, and its gift's beside it when the
    /// store sells gifts (`gifts = true`; not for a pre-order). A
    /// pre-order's link is not the released version's: once the files are
    /// out, the version sells through a link without the mark. A fix of an
    /// older line keeps its recorded links, turned off.
    pub(super) async fn ensure_link(&mut self, price_id: &str) -> Result<Link, ReleaseError> {
        let request = self.request;
        let recorded = self
            .recorded
            .as_ref()
            .filter(|recorded| recorded.preorder == request.preorder)
            .map(|recorded| (recorded.payment_link.clone(), recorded.gift_link.clone()));
        let (id, url) = self
            .find_or_make_link(price_id, false, recorded.as_ref().map(|r| r.0.as_str()))
            .await?;
        let (gift_id, gift_url) = match request.store.settings.gifts && !request.preorder {
            true => {
                self.find_or_make_link(
                    price_id,
                    true,
                    recorded
                        .as_ref()
                        .map(|r| r.1.as_str())
                        .filter(|id| !id.is_empty()),
                )
                .await?
            }
            false => (String::new(), String::new()),
        };
        Ok(Link {
            id,
            url,
            gift_id,
            gift_url,
        })
    }

    /// One payment link of this version (`gift`: the gift's, which asks
    /// for the recipient), found by its recorded id or its metadata, or
    /// made. Returns its id and address.
    async fn find_or_make_link(
        &mut self,
        price_id: &str,
        gift: bool,
        recorded: Option<&str>,
    ) -> Result<(String, String), ReleaseError> {
        let product = self.product;
        let request = self.request;
        let settings = &request.store.settings;
        let mut options = checkout::options(settings);
        let redirect_url = checkout::thanks_url(settings);
        let mut metadata = metadata::link_metadata(&product.slug, &self.version, request.preorder);
        if gift {
            options.custom_fields = crate::gift::fields();
            metadata = crate::gift::mark(metadata);
        }
        let which = if gift {
            "gift's payment link"
        } else {
            "payment link"
        };
        let fixes_older_line = self.fixes_older_line();
        let existing = match recorded {
            Some(recorded) => self
                .selling()?
                .payment_link(recorded)
                .await?
                .filter(|link| link.active || fixes_older_line),
            None => {
                self.selling()?
                    .active_payment_links()
                    .try_filter(|link| std::future::ready(link.metadata == metadata))
                    .try_next()
                    .await?
            }
        };
        if let Some(link) = existing {
            self.reporter.step(&format!("{which} `{}` exists", link.id));
            return Ok((link.id, link.url));
        }
        if self.dry {
            self.reporter.step(&format!(
                "would create a {which} redirecting to {redirect_url}"
            ));
            return Ok(("plink_(new)".to_owned(), String::new()));
        }
        let params = stripe::CreatePaymentLink {
            price: price_id.to_owned(),
            redirect_url: redirect_url.clone(),
            allow_promotion_codes: product.promotion_codes,
            options: options.clone(),
            metadata,
        };
        let promotion_codes = product.promotion_codes.to_string();
        let mut parts = vec![
            "payment_link",
            &product.slug,
            &self.version,
            price_id,
            &redirect_url,
            &promotion_codes,
        ];
        // What checkout asks is part of the request, so of its key.
        let asked = format!("{options:?}");
        if options != stripe::CheckoutOptions::default() {
            parts.push(&asked);
        }
        if request.preorder {
            parts.push(metadata::PREORDER_KEY);
        }
        if gift {
            parts.push(crate::gift::GIFT_KEY);
        }
        let key = IdempotencyKey::derived(&parts);
        let link = self.selling()?.create_payment_link(&params, &key).await?;
        self.reporter
            .step(&format!("created {which} `{}`", link.id));
        self.created.push(format!("{which} {}", link.id));
        Ok((link.id, link.url))
    }

    /// The pre-order of a version whose files are now out: its link stops
    /// selling and its pre-orders come into the ledger. Returns the links
    /// turned off.
    pub(super) async fn close_preorder(&self) -> Result<Vec<String>, ReleaseError> {
        let version = &self.version;
        let preorder_metadata = metadata::link_metadata(&self.product.slug, version, true);
        let open: Vec<stripe::PaymentLink> = self
            .selling()?
            .active_payment_links()
            .try_filter(|link| std::future::ready(link.metadata == preorder_metadata))
            .try_collect()
            .await?;
        let mut deactivated = Vec::new();
        for link in open {
            self.selling()?
                .set_payment_link_active(&link.id, false)
                .await?;
            self.reporter.step(&format!(
                "turned off the pre-order link of {version} (`{}`)",
                link.id
            ));
            deactivated.push(link.id);
        }
        let synced = sync::run(
            &sync::Request {
                store: self.request.store,
                full: false,
                since: None,
                dry_run: false,
                // `shop sync` and `shop notify` bring them from the state.
                from_state: None,
            },
            self.selling()?,
            &Silent,
        )
        .await?;
        self.reporter.step(&match synced.commit {
            Some(_) => "brought the latest purchases and pre-orders into the ledger".to_owned(),
            None => "the ledger has every pre-order".to_owned(),
        });
        Ok(deactivated)
    }

    /// The previous version's link stops selling, now that this one is
    /// recorded. A fix of an older line (a newer line is out) takes nothing
    /// from the store: its own link does not sell. Returns the links turned
    /// off.
    pub(super) async fn retire_previous_link(
        &self,
        link: &Link,
    ) -> Result<Vec<String>, ReleaseError> {
        let stripe = self.selling()?;
        let product = self.product;
        let mut deactivated = Vec::new();
        if self.fixes_older_line() {
            for link_id in [&link.id, &link.gift_id] {
                if link_id.is_empty() {
                    continue;
                }
                if let Some(found) = stripe.payment_link(link_id).await?
                    && found.active
                {
                    stripe.set_payment_link_active(link_id, false).await?;
                    self.reporter.step(&format!(
                        "{} fixes an older line: its payment link does not sell (`{link_id}`), the store keeps selling {}",
                        self.version,
                        product
                            .on_sale()
                            .map_or_else(String::new, |release| release.version.to_string())
                    ));
                    deactivated.push(link_id.clone());
                }
            }
        } else if let Some(previous) = product
            .releases
            .iter()
            .rev()
            .find(|r| r.version < self.request.version && !r.preorder)
        {
            for (previous_id, current) in [
                (&previous.payment_link, &link.id),
                (&previous.gift_link, &link.gift_id),
            ] {
                if previous_id.is_empty() || previous_id == current {
                    continue;
                }
                if let Some(found) = stripe.payment_link(previous_id).await?
                    && found.active
                {
                    stripe.set_payment_link_active(previous_id, false).await?;
                    self.reporter.step(&format!(
                        "turned off the payment link of {} (`{previous_id}`)",
                        previous.version
                    ));
                    deactivated.push(previous_id.clone());
                }
            }
        }
        Ok(deactivated)
    }
}

/// Whether a price at Stripe has exactly these other currencies at these
/// amounts (a price without options, none).
fn same_currency_options(price: &stripe::Price, options: &[stripe::CurrencyOption]) -> bool {
    let empty = std::collections::BTreeMap::new();
    let known = price.currency_options.as_ref().unwrap_or(&empty);
    known.len() == options.len()
        && options.iter().all(|option| {
            known
                .get(&option.currency)
                .is_some_and(|at_stripe| match option.custom_unit_amount {
                    Some(custom) => at_stripe.custom_unit_amount == Some(custom),
                    None => at_stripe.unit_amount == Some(option.unit_amount),
                })
        })
}

//! Reading a product file: the TOML as written (`Raw*`), then one method
//! of a [`Reader`] per key group, each problem collected in its place.

use serde::Deserialize;
use toml::Spanned;

use super::{
    Asset, Contained, CurrencyPrice, DEFAULT_UPGRADE_DAYS, Defaults, PayWhatYouWant, Product,
    Release, UpdatePolicy, Upgrade, check_cover, check_file_name, check_slug,
};
use crate::store;
use crate::store::money::{Currency, Money};
use crate::store::values::{
    DEFAULT_DOWNLOAD_LIMIT, DOWNLOAD_LIMIT_HINT, STAMP_HINT, StampMode, check_display_name,
    check_download_limit,
};
use crate::store::{Problem, quoted_list, toml_problem};

/// A problem for each top-level key a product file may not have, at the
/// key, with the message serde would give.
fn unknown_keys(label: &str, text: &str) -> Vec<Problem> {
    let Ok(document) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let table = document.as_table();
    table
        .iter()
        .filter(|(key, _)| !PRODUCT_KEYS.contains(key))
        .map(|(key, _)| {
            let span = table
                .key(key)
                .and_then(toml_edit::Key::span)
                .unwrap_or(0..0);
            Problem::at(
                label,
                text,
                span,
                format!(
                    "unknown field `{key}`, expected one of {}",
                    quoted_list(PRODUCT_KEYS)
                ),
            )
            .hint(
                store::did_you_mean(key, PRODUCT_KEYS.iter().copied()).unwrap_or_else(|| {
                    "check the key's spelling against the keys the message lists".into()
                }),
            )
        })
        .collect()
}

/// `price = { minimum = "5.00", suggested = "12.00" }`: the minimum, and
/// the rest.
fn chosen_price(
    table: &toml::Table,
    currency: Currency,
) -> Result<(Money, PayWhatYouWant), (String, String)> {
    let hint = || {
        "write `price = { minimum = \"5.00\", suggested = \"12.00\" }` (`suggested` may be left out)"
            .to_owned()
    };
    if let Some(unknown) = table
        .keys()
        .find(|key| !["minimum", "suggested"].contains(&key.as_str()))
    {
        return Err((format!("`price.{unknown}` is not a price setting"), hint()));
    }
    let amount = |key: &str| -> Result<Option<Money>, (String, String)> {
        match table.get(key) {
            None => Ok(None),
            // Free-or-pay: Stripe's `custom_unit_amount[minimum]` must be
            // a charge it can make.
            Some(toml::Value::String(text))
                if key == "minimum" && text.trim().chars().all(|c| c == '0' || c == '.') =>
            {
                Err((
                    format!("`price.minimum = \"{text}\"`: Stripe takes no pay-what-you-want minimum below its smallest charge"),
                    "set `minimum` to at least Stripe's smallest charge (0.50 USD, or its equal); to give copies away, use `shop grant`".to_owned(),
                ))
            }
            Some(toml::Value::String(text)) => Money::parse(text, currency)
                .map(Some)
                .map_err(|message| (message, hint())),
            Some(other) => Err((
                format!("`price.{key}` is a {}, not an amount in a string", other.type_str()),
                hint(),
            )),
        }
    };
    let minimum = amount("minimum")?.ok_or_else(|| {
        (
            "`price` has no `minimum`: the least a buyer may pay".to_owned(),
            hint(),
        )
    })?;
    let suggested = amount("suggested")?;
    if let Some(suggested) = suggested {
        if suggested.amount < minimum.amount {
            return Err((
                format!("`price.suggested` ({suggested}) is below `price.minimum` ({minimum})"),
                "suggest at least the minimum".to_owned(),
            ));
        }
        suggested.check_chargeable()?;
    }
    Ok((minimum, PayWhatYouWant { suggested }))
}

/// `"50%"`: a whole percentage from 1 to 100.
fn parse_percent(text: &str) -> Result<u8, String> {
    text.trim()
        .strip_suffix('%')
        .and_then(|number| number.trim().parse::<u8>().ok())
        .filter(|percent| (1..=100).contains(percent))
        .ok_or_else(|| {
            format!("`upgrade_discount = \"{text}\"` is not a percentage from 1% to 100%")
        })
}

/// `price = "free"`: a free sample.
pub const FREE: &str = "free";

/// The keys of a product file, in the order the message lists them.
const PRODUCT_KEYS: &[&str] = &[
    "name",
    "description",
    "cover",
    "price",
    "currency",
    "prices",
    "files",
    "bundle",
    "download_limit",
    "updates",
    "upgrade_discount",
    "upgrade_days",
    "promotion_codes",
    "stamp",
    "tax_code",
    "release",
];

/// Unknown keys are found apart (see [`unknown_keys`]), so that one does
/// not hide the file's other problems.
#[derive(Debug, Deserialize)]
struct RawProduct {
    name: Spanned<String>,
    description: Option<String>,
    cover: Option<Spanned<String>>,
    price: Spanned<toml::Value>,
    currency: Option<Spanned<String>>,
    prices: Option<Spanned<toml::Table>>,
    files: Option<Spanned<Vec<Spanned<String>>>>,
    bundle: Option<Spanned<Vec<Spanned<String>>>>,
    download_limit: Option<Spanned<i64>>,
    updates: Option<Spanned<String>>,
    upgrade_discount: Option<Spanned<String>>,
    upgrade_days: Option<Spanned<i64>>,
    #[serde(default)]
    promotion_codes: bool,
    stamp: Option<Spanned<toml::Value>>,
    tax_code: Option<Spanned<String>>,
    #[serde(default, rename = "release")]
    releases: Vec<Spanned<RawRelease>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    version: Spanned<String>,
    date: Spanned<toml::value::Datetime>,
    tag: Spanned<String>,
    stripe_product: Option<Spanned<String>>,
    stripe_price: Option<Spanned<String>>,
    payment_link: Option<Spanned<String>>,
    payment_link_url: Option<Spanned<String>>,
    gift_link: Option<Spanned<String>>,
    gift_link_url: Option<Spanned<String>>,
    notes: Option<String>,
    preorder: Option<Spanned<bool>>,
    out: Option<Spanned<toml::value::Datetime>>,
    price: Option<Spanned<String>>,
    contains: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    assets: Vec<RawAsset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsset {
    name: Spanned<String>,
    size: Spanned<i64>,
    sha256: Spanned<String>,
    github_asset_id: Option<u64>,
    github_name: Option<String>,
}

/// A Stripe field of a release as written (empty for a free product's).
fn text_of(field: &Option<Spanned<String>>) -> String {
    field
        .as_ref()
        .map(|field| field.get_ref().clone())
        .unwrap_or_default()
}

/// Parses the product file `label` (such as `products/book.toml`) whose slug
/// is `slug`. Without `defaults` (when `shop.toml` itself is broken) the
/// file is still checked, against the built-in defaults.
pub fn parse(
    slug: &str,
    label: &str,
    text: &str,
    defaults: Option<&Defaults>,
) -> Result<Product, Vec<Problem>> {
    let mut reader = Reader {
        label,
        text,
        problems: Vec::new(),
    };
    if let Err(message) = check_slug(slug) {
        reader
            .problems
            .push(Problem::new(label, message).hint(format!(
            "rename the file to a slug of lowercase letters, digits and hyphens, such as `{}.toml`",
            suggest_slug(slug)
        )));
    }
    let raw: RawProduct = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            reader.problems.push(toml_problem(label, text, &error));
            return Err(reader.problems);
        }
    };
    reader.problems.extend(unknown_keys(label, text));
    let name = reader.name(&raw);
    let currency = reader.currency(&raw, defaults);
    let (price, pay_what_you_want) = reader.price(&raw, currency);
    let free = reader.free(&raw);
    let prices = reader.prices(&raw, currency, pay_what_you_want.is_some(), free);
    let (files, bundle) = reader.contents(slug, &raw);
    let download_limit = reader.download_limit(&raw, defaults);
    let updates = reader.updates(&raw);
    let upgrade = reader.upgrade(&raw, updates);
    let releases = reader.releases(slug, &raw, currency, free);
    let stamp = reader.stamp(&raw);
    let cover = reader.cover(&raw);
    let tax_code = reader.tax_code(&raw);
    if !reader.problems.is_empty() {
        return Err(reader.problems);
    }
    Ok(Product {
        slug: slug.to_owned(),
        name,
        cover,
        description: raw
            .description
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty()),
        price,
        pay_what_you_want,
        prices,
        free,
        files,
        bundle,
        download_limit,
        updates,
        upgrade,
        promotion_codes: raw.promotion_codes,
        stamp,
        tax_code,
        releases,
    })
}

/// A product file being read: every problem is collected, each in its
/// place, so that one run of `shop check` reports them all.
struct Reader<'a> {
    label: &'a str,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, span: std::ops::Range<usize>, message: String, hint: String) {
        self.problems
            .push(Problem::at(self.label, self.text, span, message).hint(hint));
    }

    /// `name`: what buyers see, on one line.
    fn name(&mut self, raw: &RawProduct) -> String {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            self.problem(
                raw.name.span(),
                "`name` is empty".into(),
                "give the product the name buyers see".into(),
            );
        } else if let Err(message) = check_display_name(&name) {
            self.problem(
                raw.name.span(),
                message,
                "write the name on one line, without control characters (it is a mail's subject)"
                    .into(),
            );
        }
        name
    }

    /// `currency`, else the store's.
    fn currency(&mut self, raw: &RawProduct, defaults: Option<&Defaults>) -> Currency {
        match &raw.currency {
            Some(code) => code.get_ref().parse().unwrap_or_else(|message| {
                self.problem(
                    code.span(),
                    message,
                    "use a three-letter ISO 4217 code Stripe supports, such as `usd` or `eur`"
                        .into(),
                );
                fallback_currency()
            }),
            None => defaults.map_or_else(fallback_currency, |defaults| defaults.currency),
        }
    }

    /// `price`: an amount, or a table for pay what you want.
    fn price(&mut self, raw: &RawProduct, currency: Currency) -> (Money, Option<PayWhatYouWant>) {
        let price_hint = || {
            let example = Money {
                amount: 2900,
                currency,
            };
            format!(
                "write the price as a string with its decimals, such as `price = \"{}\"`",
                example.decimal()
            )
        };
        let mut pay_what_you_want = None;
        let price = match raw.price.get_ref() {
            // A free sample: no Stripe object at all (see `free`).
            toml::Value::String(text) if text.trim() == FREE => Ok(Money {
                amount: 0,
                currency,
            }),
            toml::Value::String(text) => {
                Money::parse(text, currency).map_err(|message| (message, price_hint()))
            }
            toml::Value::Integer(number) => Err((
                format!("`price = {number}` is ambiguous: units or cents?"),
                price_hint(),
            )),
            toml::Value::Float(number) => Err((
                format!(
                    "`price = {}` is a floating-point number, which cannot hold money exactly",
                    // As the file writes it: TOML reads `24.00` as 24.
                    self.text
                        .get(raw.price.span())
                        .unwrap_or(&number.to_string())
                ),
                price_hint(),
            )),
            toml::Value::Table(table) => chosen_price(table, currency).map(|(minimum, chosen)| {
                pay_what_you_want = Some(chosen);
                minimum
            }),
            other => Err((
                format!("`price` is a {}, not a price", other.type_str()),
                price_hint(),
            )),
        };
        let price = price
            .and_then(|money| {
                if money.amount == 0 {
                    return Ok(money);
                }
                money.check_chargeable().map(|()| money).map_err(|(message, hint)| {
                    match &pay_what_you_want {
                        // Stripe's own rule for `custom_unit_amount[minimum]`.
                        Some(_) => (
                            format!("{message}: a pay-what-you-want minimum must be a charge Stripe can make"),
                            format!("{hint} as `minimum`; to give copies away, use `shop grant`"),
                        ),
                        None => (message, hint),
                    }
                })
            })
            .unwrap_or_else(|(message, hint)| {
                self.problem(raw.price.span(), message, hint);
                Money {
                    amount: 0,
                    currency,
                }
            });
        (price, pay_what_you_want)
    }

    /// `prices = { gbp = "21.00", jpy = "3900" }`: the price in other
    /// currencies (Stripe's `currency_options`), each by its own
    /// currency's rules; a pay-what-you-want product gives a minimum and a
    /// suggestion in each (`gbp = { minimum = "4.00" }`). By currency.
    fn prices(
        &mut self,
        raw: &RawProduct,
        main: Currency,
        chosen: bool,
        free: bool,
    ) -> Vec<CurrencyPrice> {
        let Some(table) = &raw.prices else {
            return Vec::new();
        };
        let span = table.span();
        if free {
            self.problem(
                span,
                "a free product has no `prices`".into(),
                "remove `prices`: a free sample costs nothing in any currency".into(),
            );
            return Vec::new();
        }
        let example = match chosen {
            true => "`prices = { gbp = { minimum = \"4.00\", suggested = \"10.00\" } }`",
            false => "`prices = { gbp = \"21.00\", jpy = \"3900\" }`",
        };
        let mut prices: Vec<CurrencyPrice> = Vec::new();
        for (code, value) in table.get_ref() {
            let currency: Currency = match code.parse() {
                Ok(currency) => currency,
                Err(message) => {
                    self.problem(
                        span.clone(),
                        format!("`prices.{code}`: {message}"),
                        "name each currency by its three-letter ISO 4217 code, such as `gbp`"
                            .into(),
                    );
                    continue;
                }
            };
            if currency == main {
                self.problem(
                    span.clone(),
                    format!("`prices.{code}` repeats the main currency: `price` is in {main}"),
                    format!("remove `prices.{code}`, or change `currency`"),
                );
                continue;
            }
            let key = format!("prices.{code}");
            let parsed = match (value, chosen) {
                (toml::Value::String(text), false) => Money::parse(text, currency)
                    .map_err(|message| {
                        (
                            message,
                            format!("write the price in {currency} as a string, as in {example}"),
                        )
                    })
                    .and_then(|money| money.check_chargeable().map(|()| money))
                    .map(|price| CurrencyPrice {
                        price,
                        pay_what_you_want: None,
                    }),
                (toml::Value::Table(table), true) => chosen_price(table, currency)
                    .map(|(price, chosen)| CurrencyPrice {
                        price,
                        pay_what_you_want: Some(chosen),
                    })
                    .map_err(|(message, hint)| {
                        (message.replace("`price", &format!("`{key}")), hint)
                    }),
                (_, true) => Err((
                    format!(
                        "`{key}` is not a minimum and a suggestion: `price` is pay what you want"
                    ),
                    format!("write it as {example}"),
                )),
                (other, false) => Err((
                    format!("`{key}` is a {}, not a price in a string", other.type_str()),
                    format!("write it as {example}"),
                )),
            };
            match parsed {
                Ok(price) => prices.push(price),
                Err((message, hint)) => {
                    let message = match message.contains(&key) {
                        true => message,
                        false => format!("`{key}`: {message}"),
                    };
                    self.problem(span.clone(), message, hint);
                }
            }
        }
        prices.sort_by_key(|price| price.price.currency);
        prices
    }

    /// `price = "free"`: a free sample, given for a confirmed address. It
    /// has files of its own and sells nothing, so what only a sale has
    /// (a bundle, an upgrade price, promotion codes) is refused.
    fn free(&mut self, raw: &RawProduct) -> bool {
        if !matches!(raw.price.get_ref(), toml::Value::String(text) if text.trim() == FREE) {
            return false;
        }
        let span = raw.price.span();
        let sold_only = [
            ("bundle", raw.bundle.is_some()),
            ("upgrade_discount", raw.upgrade_discount.is_some()),
            ("upgrade_days", raw.upgrade_days.is_some()),
            ("promotion_codes", raw.promotion_codes),
        ];
        for (key, given) in sold_only {
            if given {
                self.problem(
                    span.clone(),
                    format!("a free product has no `{key}`"),
                    format!("remove `{key}`, or give the product a price"),
                );
            }
        }
        true
    }

    /// `files`, or a bundle's `bundle` (and nothing a bundle's products
    /// decide for themselves).
    fn contents(&mut self, slug: &str, raw: &RawProduct) -> (Vec<String>, Vec<String>) {
        let mut files: Vec<String> = Vec::new();
        let mut bundle: Vec<String> = Vec::new();
        match (&raw.files, &raw.bundle) {
            (Some(listed), Some(_)) => self.problem(
                listed.span(),
                "a bundle has no `files` of its own".into(),
                "remove `files`: a bundle gives the files of the products in `bundle`".into(),
            ),
            (None, None) => self.problem(
                0..0,
                "missing field `files`".into(),
                "list the file names that make up the product, such as `files = [\"book.pdf\", \"book.epub\"]`, \
                 or the products a bundle sells, such as `bundle = [\"novel\", \"workbook\"]`"
                    .into(),
            ),
            (Some(listed), None) => {
                if listed.get_ref().is_empty() {
                    self.problem(
                        listed.span(),
                        "`files` is empty".into(),
                        "list the file names that make up the product, such as `files = [\"book.pdf\", \"book.epub\"]`".into(),
                    );
                }
                for file in listed.get_ref() {
                    let file_name = file.get_ref();
                    if let Err(message) = check_file_name(file_name) {
                        self.problem(file.span(), message, FILE_NAME_HINT.into());
                    } else if files.contains(file_name) {
                        self.problem(
                            file.span(),
                            format!("`{file_name}` is listed twice"),
                            "list each file once".into(),
                        );
                    } else {
                        files.push(file_name.clone());
                    }
                }
            }
            (None, Some(listed)) => {
                if listed.get_ref().is_empty() {
                    self.problem(
                        listed.span(),
                        "`bundle` is empty".into(),
                        "list the slugs of the products the bundle sells, such as `bundle = [\"novel\", \"workbook\"]`".into(),
                    );
                }
                for member in listed.get_ref() {
                    let member_slug = member.get_ref();
                    if member_slug == slug {
                        self.problem(
                            member.span(),
                            format!("bundle `{slug}` lists itself"),
                            "list the other products it sells".into(),
                        );
                    } else if bundle.contains(member_slug) {
                        self.problem(
                            member.span(),
                            format!("`{member_slug}` is listed twice"),
                            "list each product once".into(),
                        );
                    } else {
                        bundle.push(member_slug.clone());
                    }
                }
                // What each product decides for itself.
                let own = [
                    ("download_limit", raw.download_limit.as_ref().map(Spanned::span)),
                    ("updates", raw.updates.as_ref().map(Spanned::span)),
                    ("upgrade_discount", raw.upgrade_discount.as_ref().map(Spanned::span)),
                    ("upgrade_days", raw.upgrade_days.as_ref().map(Spanned::span)),
                    ("stamp", raw.stamp.as_ref().map(Spanned::span)),
                ];
                for (key, span) in own {
                    if let Some(span) = span {
                        self.problem(
                            span,
                            format!("a bundle has no `{key}` of its own"),
                            format!("remove it: each product in the bundle keeps its own `{key}`"),
                        );
                    }
                }
            }
        }
        (files, bundle)
    }

    /// `download_limit`, else the store's.
    fn download_limit(&mut self, raw: &RawProduct, defaults: Option<&Defaults>) -> u32 {
        match &raw.download_limit {
            Some(limit) => check_download_limit(*limit.get_ref()).unwrap_or_else(|message| {
                self.problem(limit.span(), message, DOWNLOAD_LIMIT_HINT.into());
                0
            }),
            None => defaults.map_or(DEFAULT_DOWNLOAD_LIMIT, |d| d.download_limit),
        }
    }

    /// `updates`: who gets a new version free.
    fn updates(&mut self, raw: &RawProduct) -> UpdatePolicy {
        match &raw.updates {
            None => UpdatePolicy::SameMajor,
            Some(policy) => match policy.get_ref().as_str() {
                "all" => UpdatePolicy::All,
                "same-major" => UpdatePolicy::SameMajor,
                "none" => UpdatePolicy::None,
                other => {
                    self.problem(
                        policy.span(),
                        format!("`{other}` is not an update policy"),
                        "use `all` (every earlier buyer), `same-major` (buyers of the same major \
                         version) or `none`"
                            .into(),
                    );
                    UpdatePolicy::SameMajor
                }
            },
        }
    }

    /// `upgrade_discount` and `upgrade_days`: a paid upgrade's terms.
    fn upgrade(&mut self, raw: &RawProduct, updates: UpdatePolicy) -> Option<Upgrade> {
        match (&raw.upgrade_discount, &raw.upgrade_days) {
            (None, None) => None,
            (None, Some(days)) => {
                self.problem(
                    days.span(),
                    "`upgrade_days` without `upgrade_discount`".into(),
                    "add `upgrade_discount = \"50%\"`, or remove `upgrade_days`".into(),
                );
                None
            }
            (Some(discount), days) => {
                let percent_off = parse_percent(discount.get_ref()).unwrap_or_else(|message| {
                    self.problem(
                        discount.span(),
                        message,
                        "write the discount as a whole percentage in a string, such as `upgrade_discount = \"50%\"`".into(),
                    );
                    0
                });
                if updates == UpdatePolicy::All {
                    self.problem(
                        discount.span(),
                        "`upgrade_discount` with `updates = \"all\"`: every earlier buyer gets new versions free".into(),
                        "use `updates = \"same-major\"` (a new major version is a paid upgrade) or `\"none\"`, or remove `upgrade_discount`".into(),
                    );
                }
                let days = match days {
                    None => DEFAULT_UPGRADE_DAYS,
                    Some(days) => match u32::try_from(*days.get_ref()) {
                        Ok(days @ 1..=365) => days,
                        _ => {
                            self.problem(
                                days.span(),
                                format!("`upgrade_days = {}` is not from 1 to 365", days.get_ref()),
                                "give the days an upgrade code works, such as `upgrade_days = 30`"
                                    .into(),
                            );
                            DEFAULT_UPGRADE_DAYS
                        }
                    },
                };
                Some(Upgrade { percent_off, days })
            }
        }
    }

    /// Every `[[release]]`, oldest first (written by `shop release`).
    fn releases(
        &mut self,
        slug: &str,
        raw: &RawProduct,
        currency: Currency,
        free: bool,
    ) -> Vec<Release> {
        let mut releases: Vec<Release> = Vec::new();
        for raw_release in &raw.releases {
            if let Some(release) =
                self.release(slug, raw, raw_release.get_ref(), &releases, currency, free)
            {
                releases.push(release);
            }
        }
        releases.sort_by(|a, b| a.version.cmp(&b.version));
        releases
    }

    /// One `[[release]]`; `None` when its version cannot be read.
    fn release(
        &mut self,
        slug: &str,
        raw: &RawProduct,
        raw_release: &RawRelease,
        earlier: &[Release],
        currency: Currency,
        free: bool,
    ) -> Option<Release> {
        let version = match semver::Version::parse(raw_release.version.get_ref()) {
            Ok(version) => version,
            Err(error) => {
                self.problem(
                    raw_release.version.span(),
                    format!(
                        "`{}` is not a semantic version: {error}",
                        raw_release.version.get_ref()
                    ),
                    "versions look like `1.2.0`".into(),
                );
                return None;
            }
        };
        if earlier.iter().any(|release| release.version == version) {
            self.problem(
                raw_release.version.span(),
                format!("release `{version}` is listed twice"),
                "each version is released once; restore the file from git (`git log -p products/`)"
                    .into(),
            );
        }
        let date = toml_date(raw_release.date.get_ref()).unwrap_or_else(|| {
            self.problem(
                raw_release.date.span(),
                format!("`{}` is not a date", raw_release.date.get_ref()),
                "write the day of the release as a TOML date, such as `date = 2026-11-23`".into(),
            );
            time::Date::MIN
        });
        let expected_tag = format!("{slug}-v{version}");
        if raw_release.tag.get_ref() != &expected_tag {
            self.problem(
                raw_release.tag.span(),
                format!(
                    "release `{version}` has tag `{}`",
                    raw_release.tag.get_ref()
                ),
                format!("`shop release` tags this version `{expected_tag}`"),
            );
        }
        // A free product's releases sell nothing: no Stripe object at all.
        // Any other's has its product, price and link; a gift's link
        // (`gifts = true`) is optional, but whole (the partner named).
        let gift = (&raw_release.gift_link, &raw_release.gift_link_url);
        for (key, field, prefix, partner) in [
            ("stripe_product", &raw_release.stripe_product, "prod_", None),
            ("stripe_price", &raw_release.stripe_price, "price_", None),
            ("payment_link", &raw_release.payment_link, "plink_", None),
            ("payment_link_url", &raw_release.payment_link_url, "", None),
            ("gift_link", gift.0, "plink_", Some(gift.1)),
            ("gift_link_url", gift.1, "", Some(gift.0)),
        ] {
            let restore =
                "this is written by `shop release`; restore it from git (`git log -p products/`)";
            match field {
                Some(field) if free => self.problem(
                    field.span(),
                    format!("release `{version}` of a free product has a `{key}`"),
                    format!("a free product has no Stripe objects; {restore}"),
                ),
                Some(field) if !field.get_ref().starts_with(prefix) => self.problem(
                    field.span(),
                    format!(
                        "`{}` is not a Stripe id starting with `{prefix}`",
                        field.get_ref()
                    ),
                    restore.into(),
                ),
                Some(field) if partner.is_some_and(Option::is_none) => self.problem(
                    field.span(),
                    format!("release `{version}` has a `{key}` alone"),
                    restore.into(),
                ),
                None if !free && partner.is_none() => self.problem(
                    raw_release.version.span(),
                    format!("release `{version}` has no `{key}`"),
                    restore.into(),
                ),
                _ => {}
            }
        }
        let assets = self.assets(raw_release);
        let preorder_span = raw_release
            .preorder
            .as_ref()
            .map_or(0..0, |preorder| preorder.span());
        let preorder = raw_release
            .preorder
            .as_ref()
            .is_some_and(|preorder| *preorder.get_ref());
        if preorder && !assets.is_empty() {
            self.problem(
                preorder_span.clone(),
                format!("release `{version}` is a pre-order but lists files"),
                "`shop release` removes `preorder` when it adds the files; restore the file from git (`git log -p products/`)".into(),
            );
        }
        if preorder
            && raw.releases.iter().any(|other| {
                semver::Version::parse(other.get_ref().version.get_ref())
                    .is_ok_and(|other| other > version)
            })
        {
            self.problem(
                preorder_span,
                format!("release `{version}` is a pre-order, but a newer version is released"),
                "only the newest version may wait for its files; release it with `shop release` first".into(),
            );
        }
        let out = raw_release.out.as_ref().and_then(|out| {
            let parsed = toml_date(out.get_ref());
            if parsed.is_none() {
                self.problem(
                    out.span(),
                    format!("`{}` is not a date", out.get_ref()),
                    "write the day the version comes out as a TOML date, such as `out = 2027-03-01`".into(),
                );
            }
            parsed
        });
        let release_price = raw_release.price.as_ref().and_then(|price| {
            match Money::parse(price.get_ref(), currency) {
                Ok(money) => Some(money),
                Err(message) => {
                    self.problem(price.span(), message, "write the pre-order's price as a decimal string, such as `price = \"19.00\"`".into());
                    None
                }
            }
        });
        let contains = self.contains(raw, raw_release, &version);
        if raw.bundle.is_some() && (preorder || !assets.is_empty()) {
            self.problem(
                raw_release.version.span(),
                format!("release `{version}` of a bundle lists files or waits for them"),
                "a bundle's release gives the files of its products; restore the file from git (`git log -p products/`)".into(),
            );
        }
        Some(Release {
            version,
            date,
            tag: raw_release.tag.get_ref().clone(),
            stripe_product: text_of(&raw_release.stripe_product),
            stripe_price: text_of(&raw_release.stripe_price),
            payment_link: text_of(&raw_release.payment_link),
            payment_link_url: text_of(&raw_release.payment_link_url),
            gift_link: text_of(&raw_release.gift_link),
            gift_link_url: text_of(&raw_release.gift_link_url),
            notes: raw_release
                .notes
                .as_ref()
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty()),
            preorder,
            out,
            price: release_price,
            contains,
            assets,
        })
    }

    /// A release's `[[release.assets]]`.
    fn assets(&mut self, raw_release: &RawRelease) -> Vec<Asset> {
        let mut assets: Vec<Asset> = Vec::new();
        for raw_asset in &raw_release.assets {
            let asset_name = raw_asset.name.get_ref();
            if let Err(message) = check_file_name(asset_name) {
                self.problem(raw_asset.name.span(), message, FILE_NAME_HINT.into());
            }
            let sha256 = raw_asset.sha256.get_ref();
            if sha256.len() != 64
                || !sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                self.problem(
                    raw_asset.sha256.span(),
                    format!("`{sha256}` is not a SHA-256 in lowercase hex"),
                    "this is written by `shop release`; restore it from git (`git log -p products/`)".into(),
                );
            }
            let size = u64::try_from(*raw_asset.size.get_ref()).unwrap_or_else(|_| {
                self.problem(
                    raw_asset.size.span(),
                    format!("`{}` is not a file size", raw_asset.size.get_ref()),
                    "sizes are in bytes, zero or more".into(),
                );
                0
            });
            assets.push(Asset {
                name: asset_name.clone(),
                size,
                sha256: sha256.clone(),
                github_asset_id: raw_asset.github_asset_id,
                github_name: raw_asset.github_name.clone(),
            });
        }
        assets
    }

    /// What a bundle's release gives (`contains`), only for a bundle.
    fn contains(
        &mut self,
        raw: &RawProduct,
        raw_release: &RawRelease,
        version: &semver::Version,
    ) -> Vec<Contained> {
        let mut contains = Vec::new();
        match (&raw_release.contains, raw.bundle.is_some()) {
            (None, true) => self.problem(
                raw_release.version.span(),
                format!("release `{version}` of a bundle does not say what it contains"),
                "this is written by `shop release`; restore it from git (`git log -p products/`)".into(),
            ),
            (Some(listed), false) => self.problem(
                listed.span(),
                format!("release `{version}` has `contains`, but the product is not a bundle"),
                "only a bundle's releases list the products they give; restore the file from git (`git log -p products/`)".into(),
            ),
            (Some(listed), true) => {
                for (member, given) in listed.get_ref() {
                    match semver::Version::parse(given.get_ref()) {
                        Ok(given) => contains.push(Contained {
                            slug: member.clone(),
                            version: given,
                        }),
                        Err(error) => self.problem(
                            given.span(),
                            format!("`{}` is not a semantic version: {error}", given.get_ref()),
                            "versions look like `1.2.0`".into(),
                        ),
                    }
                }
            }
            (None, false) => {}
        }
        contains
    }

    /// `stamp`, if the product sets it.
    fn stamp(&mut self, raw: &RawProduct) -> Option<StampMode> {
        match &raw.stamp {
            Some(value) => match StampMode::parse(value.get_ref()) {
                Ok(mode) => Some(mode),
                Err(message) => {
                    self.problem(value.span(), message, STAMP_HINT.into());
                    None
                }
            },
            None => None,
        }
    }

    /// `cover`: an image kept in the store.
    fn cover(&mut self, raw: &RawProduct) -> Option<String> {
        let cover = raw
            .cover
            .as_ref()
            .map(|cover| cover.get_ref().trim().to_owned());
        if let (Some(path), Some(spanned)) = (&cover, &raw.cover)
            && let Err(message) = check_cover(path)
        {
            self.problem(
                spanned.span(),
                format!("`cover` {message}"),
                COVER_HINT.into(),
            );
        }
        cover
    }

    /// `tax_code`: one of Stripe's product tax codes.
    fn tax_code(&mut self, raw: &RawProduct) -> Option<String> {
        let tax_code = raw
            .tax_code
            .as_ref()
            .map(|code| code.get_ref().trim().to_owned());
        if let (Some(code), Some(spanned)) = (&tax_code, &raw.tax_code)
            && let Err(message) = store::check_tax_code(code)
        {
            self.problem(spanned.span(), message, store::TAX_CODE_HINT.into());
        }
        tax_code
    }
}

const COVER_HINT: &str =
    "name an image kept in the store, such as `covers/book.jpg` (PNG, JPEG, WebP, GIF or AVIF)";

fn fallback_currency() -> Currency {
    "usd"
        .parse()
        .unwrap_or_else(|_| unreachable!("usd is a currency"))
}

const FILE_NAME_HINT: &str =
    "use a plain file name such as `book.pdf`: no folders, no leading dot, no `..`";

pub(super) fn suggest_slug(slug: &str) -> String {
    let mut suggestion = String::new();
    for c in slug.chars() {
        if c.is_ascii_alphanumeric() {
            suggestion.push(c.to_ascii_lowercase());
        } else if !suggestion.ends_with('-') && !suggestion.is_empty() {
            suggestion.push('-');
        }
    }
    let suggestion = suggestion.trim_end_matches('-');
    if suggestion.is_empty() {
        "my-book".into()
    } else {
        suggestion.chars().take(64).collect()
    }
}

/// A TOML local date (`2026-11-23`) as a date.
fn toml_date(value: &toml::value::Datetime) -> Option<time::Date> {
    match value {
        toml::value::Datetime {
            date: Some(date),
            time: None,
            offset: None,
        } => time::Month::try_from(date.month).ok().and_then(|month| {
            time::Date::from_calendar_date(i32::from(date.year), month, date.day).ok()
        }),
        _ => None,
    }
}

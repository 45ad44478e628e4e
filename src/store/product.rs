//! `products/<slug>.toml`: what is for sale, and every version released.
//!
//! The author writes the top of the file (name, price, files, policies);
//! `shop release` appends one `[[release]]` table per version. [`parse`]
//! checks both and reports every problem in the file at once.

use serde::Deserialize;
use toml::Spanned;

use super::money::{Currency, Money};
use super::settings::Settings;
use super::values::{
    DEFAULT_DOWNLOAD_LIMIT, DOWNLOAD_LIMIT_HINT, STAMP_HINT, StampMode, check_display_name,
    check_download_limit, is_bidi_control,
};
use super::{Problem, quoted_list, toml_problem};

/// A product: what a buyer pays for once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The file name without `.toml`: lowercase letters, digits, hyphens.
    pub slug: String,
    pub name: String,
    /// Markdown, shown on the store front and the product's page.
    pub description: Option<String>,
    /// An image in the store (a path relative to its root) shown on the
    /// store front.
    pub cover: Option<String>,
    /// The price, or with [`Product::pay_what_you_want`] the least a buyer
    /// may pay.
    pub price: Money,
    /// `price = { minimum = …, suggested = … }`: the buyer chooses the amount.
    pub pay_what_you_want: Option<PayWhatYouWant>,
    /// The names of the files that make up each version, in order (none
    /// for a bundle).
    pub files: Vec<String>,
    /// `bundle = ["slug-a", "slug-b"]`: the products a purchase of this one
    /// gives, each at the version its release recorded
    /// ([`Release::contains`]) and then under that product's own policy
    /// and limit. Empty for a product with files of its own.
    pub bundle: Vec<String>,
    /// Downloads allowed per file and purchase. A bundle's is the smallest
    /// of its products' (what its receipts promise); each file is counted
    /// under its own product's.
    pub download_limit: u32,
    pub updates: UpdatePolicy,
    /// `upgrade_discount`: what buyers of a version the policy does not
    /// carry forward pay less for the new one, with a code of their own.
    pub upgrade: Option<Upgrade>,
    /// Whether checkout accepts Stripe promotion codes.
    pub promotion_codes: bool,
    /// Whether buyers get stamped PDF and EPUB copies; `None` follows the
    /// shop's `[stamp] default`.
    pub stamp: Option<StampMode>,
    /// Stripe's product tax code (`txcd_…`), which Stripe Tax rates by;
    /// `None` follows the shop's `[tax] default_code`, else the account's
    /// preset.
    pub tax_code: Option<String>,
    /// By version, oldest first (whatever order the file lists them in: a
    /// fix of an older line is recorded after the newer line's releases).
    pub releases: Vec<Release>,
}

/// Editions as the store sells them. A product's versions form major lines
/// (1.x, 2.x). The store sells the newest released version
/// ([`Product::on_sale`]: the newest line's newest release) and, beside
/// it, takes pre-orders of the next version ([`Product::preorder`], at
/// most one, always the highest version). A later version of an older
/// line (1.1.0 once 2.0.0 exists, pre-ordered or out) is a maintenance
/// release: recorded, tagged and delivered to the buyers its policy
/// entitles, never taking the store front from the newer line.
impl Product {
    /// The releases a buyer of version `bought` may download, oldest
    /// first: those the update policy gives, less a pre-order's (its files
    /// are not out). The one rule the server's pages and `shop notify`
    /// share.
    pub fn entitled(&self, bought: &semver::Version) -> Vec<&Release> {
        self.releases
            .iter()
            .filter(|release| !release.preorder && self.updates.entitles(bought, &release.version))
            .collect()
    }

    /// The pre-order a purchase of version `bought` is waiting on, if that
    /// version's files are not out yet.
    pub fn waiting_preorder(&self, bought: &str) -> Option<&Release> {
        let bought = semver::Version::parse(bought).ok()?;
        self.release(&bought).filter(|release| release.preorder)
    }

    /// The newest release, if any (a pre-order included).
    pub fn latest(&self) -> Option<&Release> {
        self.releases.last()
    }

    /// The version the store sells: the newest release whose files are out.
    pub fn on_sale(&self) -> Option<&Release> {
        self.releases.iter().rev().find(|release| !release.preorder)
    }

    /// The version taking pre-orders, if one is.
    pub fn preorder(&self) -> Option<&Release> {
        self.releases.iter().rev().find(|release| release.preorder)
    }

    /// Whether `version` may be released now: newer than every release, or
    /// a fix of a line already released (newer than every release of its
    /// major line). `Err` holds the release it is not newer than: its
    /// line's newest, or the newest of all for a line not released.
    pub fn may_release(&self, version: &semver::Version) -> Result<(), semver::Version> {
        let newest_of = |same_line: bool| {
            self.releases
                .iter()
                .map(|release| &release.version)
                .filter(|known| !same_line || known.major == version.major)
                .max()
        };
        match newest_of(true).or_else(|| newest_of(false)) {
            Some(newest) if newest >= version => Err(newest.clone()),
            _ => Ok(()),
        }
    }

    /// The release of this version.
    pub fn release(&self, version: &semver::Version) -> Option<&Release> {
        self.releases
            .iter()
            .find(|release| &release.version == version)
    }

    /// Whether this product sells other products (`bundle`).
    pub fn is_bundle(&self) -> bool {
        !self.bundle.is_empty()
    }
}

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
                super::did_you_mean(key, PRODUCT_KEYS.iter().copied()).unwrap_or_else(|| {
                    "check the key's spelling against the keys the message lists".into()
                }),
            )
        })
        .collect()
}

/// A price the buyer chooses (Stripe's `custom_unit_amount`): at least the
/// product's `price`, starting from `suggested` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayWhatYouWant {
    pub suggested: Option<Money>,
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

/// A paid upgrade: `shop notify` mails each earlier buyer whom the update
/// policy leaves out a single-use promotion code for the new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// 1 to 100.
    pub percent_off: u8,
    /// How long a code works, from the mail.
    pub days: u32,
}

/// The days an upgrade code works unless `upgrade_days` says.
pub const DEFAULT_UPGRADE_DAYS: u32 = 30;

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

/// Which earlier buyers get a new version without paying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatePolicy {
    /// Every buyer of any earlier version.
    All,
    /// Buyers of an earlier version with the same major number.
    SameMajor,
    /// Nobody: each version is bought on its own.
    None,
}

impl UpdatePolicy {
    /// Whether a buyer of `bought` is entitled to `offered` for free.
    pub fn entitles(self, bought: &semver::Version, offered: &semver::Version) -> bool {
        if bought == offered {
            return true;
        }
        match self {
            UpdatePolicy::All => bought < offered,
            UpdatePolicy::SameMajor => bought < offered && bought.major == offered.major,
            UpdatePolicy::None => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdatePolicy::All => "all",
            UpdatePolicy::SameMajor => "same-major",
            UpdatePolicy::None => "none",
        }
    }
}

/// One published version: what `shop release` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: semver::Version,
    pub date: time::Date,
    /// The git tag and GitHub release name: `<slug>-v<version>`.
    pub tag: String,
    pub stripe_product: String,
    pub stripe_price: String,
    pub payment_link: String,
    pub payment_link_url: String,
    /// What changed, in Markdown, as `shop release` was told.
    pub notes: Option<String>,
    /// Sold before its files are ready (`shop preorder`): no assets yet;
    /// `shop release` of the version adds them and delivers to its buyers.
    pub preorder: bool,
    /// A pre-order's announced day of release (`shop preorder --date`).
    pub out: Option<time::Date>,
    /// A pre-order's own price (`shop preorder --price`, a launch price),
    /// replaced by the product's price when the version is released.
    pub price: Option<Money>,
    /// A bundle's release: the version of each product it gave when it was
    /// released (`contains = { novel = "1.2.0" }`), by slug.
    pub contains: Vec<Contained>,
    pub assets: Vec<Asset>,
}

/// One product of a bundle's release, at the version the bundle gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contained {
    pub slug: String,
    pub version: semver::Version,
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// The GitHub release asset, when files live on GitHub.
    pub github_asset_id: Option<u64>,
    /// The name GitHub keeps for it, when GitHub renamed it.
    pub github_name: Option<String>,
}

/// What a product takes from the shop's settings when it does not say.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub currency: Currency,
    pub download_limit: u32,
}

impl From<&Settings> for Defaults {
    fn from(settings: &Settings) -> Self {
        Defaults {
            currency: settings.currency,
            download_limit: settings.download_limit,
        }
    }
}

/// The keys of a product file, in the order the message lists them.
const PRODUCT_KEYS: &[&str] = &[
    "name",
    "description",
    "cover",
    "price",
    "currency",
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
    stripe_product: Spanned<String>,
    stripe_price: Spanned<String>,
    payment_link: Spanned<String>,
    payment_link_url: Spanned<String>,
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
    let (files, bundle) = reader.contents(slug, &raw);
    let download_limit = reader.download_limit(&raw, defaults);
    let updates = reader.updates(&raw);
    let upgrade = reader.upgrade(&raw, updates);
    let releases = reader.releases(slug, &raw, currency);
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
    fn releases(&mut self, slug: &str, raw: &RawProduct, currency: Currency) -> Vec<Release> {
        let mut releases: Vec<Release> = Vec::new();
        for raw_release in &raw.releases {
            if let Some(release) =
                self.release(slug, raw, raw_release.get_ref(), &releases, currency)
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
        for (field, prefix) in [
            (&raw_release.stripe_product, "prod_"),
            (&raw_release.stripe_price, "price_"),
            (&raw_release.payment_link, "plink_"),
        ] {
            if !field.get_ref().starts_with(prefix) {
                self.problem(
                    field.span(),
                    format!("`{}` is not a Stripe id starting with `{prefix}`", field.get_ref()),
                    "this is written by `shop release`; restore it from git (`git log -p products/`)".into(),
                );
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
            stripe_product: raw_release.stripe_product.get_ref().clone(),
            stripe_price: raw_release.stripe_price.get_ref().clone(),
            payment_link: raw_release.payment_link.get_ref().clone(),
            payment_link_url: raw_release.payment_link_url.get_ref().clone(),
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
            && let Err(message) = super::check_tax_code(code)
        {
            self.problem(spanned.span(), message, super::TAX_CODE_HINT.into());
        }
        tax_code
    }
}

const COVER_HINT: &str =
    "name an image kept in the store, such as `covers/book.jpg` (PNG, JPEG, WebP, GIF or AVIF)";

/// The image types a cover may be: pictures a browser shows and that
/// cannot carry scripts (so no SVG).
pub const COVER_TYPES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("webp", "image/webp"),
    ("gif", "image/gif"),
    ("avif", "image/avif"),
];

/// Checks a cover's path: relative, inside the store, an image type.
pub fn check_cover(path: &str) -> Result<(), String> {
    let inside = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != "." && !part.starts_with('.'));
    if !inside {
        return Err(format!("`{path}` is not a path inside the store"));
    }
    if cover_type(path).is_none() {
        return Err(format!(
            "`{path}` is not a PNG, JPEG, WebP, GIF or AVIF image"
        ));
    }
    Ok(())
}

/// The content type of a cover, from its extension.
pub fn cover_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    COVER_TYPES
        .iter()
        .find(|(known, _)| *known == extension)
        .map(|(_, mime)| *mime)
}

fn fallback_currency() -> Currency {
    "usd"
        .parse()
        .unwrap_or_else(|_| unreachable!("usd is a currency"))
}

const FILE_NAME_HINT: &str =
    "use a plain file name such as `book.pdf`: no folders, no leading dot, no `..`";

/// Checks a product slug: 1 to 64 lowercase letters, digits and single
/// hyphens, starting and ending with a letter or digit.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let valid = !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--");
    if valid {
        Ok(())
    } else {
        Err(format!("`{slug}` is not a valid product slug"))
    }
}

fn suggest_slug(slug: &str) -> String {
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

/// Checks a file name that becomes a path on disk and a URL segment: no
/// folders, no traversal, no hidden files, no characters that break headers
/// or other systems' file names.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." || name.contains("..") {
        Some("could leave its folder (`..`)")
    } else if name.contains(['/', '\\']) {
        Some("names a folder")
    } else if name.starts_with('.') {
        Some("is hidden (starts with `.`)")
    } else if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*'))
    {
        Some("has a character that is not allowed in file names")
    } else if name.chars().any(is_bidi_control) {
        Some(
            "has a character that turns text around (a bidirectional control), which can make `book.pdf.exe` read as `book.exe.pdf`",
        )
    } else if name.trim() != name {
        Some("starts or ends with a space")
    } else if name.len() > 200 {
        Some("is longer than 200 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(format!("file name `{}` {reason}", name.escape_debug())),
        None => Ok(()),
    }
}

/// The product slugs, for messages.
pub fn slugs(products: &[Product]) -> String {
    let slugs: Vec<&str> = products
        .iter()
        .map(|product| product.slug.as_str())
        .collect();
    quoted_list(&slugs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOK: &str = r#"
name = "The Field Guide"
price = "29.00"
files = ["guide.pdf", "guide.epub"]
"#;

    fn problems(slug: &str, text: &str) -> Vec<String> {
        match parse(slug, "products/x.toml", text, None) {
            Ok(product) => panic!("parsed {product:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn check(slug: &str, text: &str, expected: &[&str]) {
        let shown = problems(slug, text);
        assert_eq!(shown.len(), expected.len(), "{shown:#?}");
        for (shown, expected) in shown.iter().zip(expected) {
            assert!(
                shown.contains(expected),
                "{shown}\n  does not contain\n{expected}"
            );
            assert!(shown.contains("\nhint: "), "{shown}");
        }
    }

    fn release(version: &str, extra: &str) -> String {
        format!(
            "\n[[release]]\nversion = \"{version}\"\ndate = 2026-12-05\ntag = \"guide-v{version}\"\n\
             stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_{version}\"\n\
             payment_link_url = \"https://buy.stripe.com/{version}\"\n{extra}"
        )
    }

    #[test]
    fn upgrade_discounts_are_percentages_for_policies_that_leave_buyers_out() {
        let product = parse(
            "guide",
            "products/guide.toml",
            &format!("{BOOK}upgrade_discount = \"40%\"\n"),
            None,
        )
        .unwrap();
        assert_eq!(
            product.upgrade,
            Some(Upgrade {
                percent_off: 40,
                days: DEFAULT_UPGRADE_DAYS
            })
        );
        for (text, expected) in [
            (
                "upgrade_discount = \"50\"",
                "`upgrade_discount = \"50\"` is not a percentage from 1% to 100%",
            ),
            (
                "upgrade_discount = \"0%\"",
                "is not a percentage from 1% to 100%",
            ),
            (
                "upgrade_discount = \"101%\"",
                "is not a percentage from 1% to 100%",
            ),
            (
                "upgrade_discount = \"50%\"\nupgrade_days = 0",
                "`upgrade_days = 0` is not from 1 to 365",
            ),
            (
                "upgrade_days = 30",
                "`upgrade_days` without `upgrade_discount`",
            ),
            (
                "updates = \"all\"\nupgrade_discount = \"50%\"",
                "every earlier buyer gets new versions free",
            ),
        ] {
            check("guide", &format!("{BOOK}{text}\n"), &[expected]);
        }
    }

    #[test]
    fn only_the_newest_version_waits_for_its_files_and_has_none() {
        let asset = "[[release.assets]]\nname = \"guide.pdf\"\nsize = 1\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
        let waiting = format!(
            "{BOOK}{}{}",
            release("1.0.0", ""),
            release("2.0.0", "preorder = true\n")
        );
        let product = parse("guide", "products/guide.toml", &waiting, None).unwrap();
        assert!(product.releases[1].preorder && !product.releases[0].preorder);
        assert_eq!(product.latest().unwrap().version.to_string(), "2.0.0");
        assert_eq!(product.on_sale().unwrap().version.to_string(), "1.0.0");
        check(
            "guide",
            &format!(
                "{BOOK}{}",
                release("1.0.0", &format!("preorder = true\n{asset}"))
            ),
            &["release `1.0.0` is a pre-order but lists files"],
        );
        check(
            "guide",
            &format!(
                "{BOOK}{}{}",
                release("1.0.0", "preorder = true\n"),
                release("2.0.0", "")
            ),
            &["release `1.0.0` is a pre-order, but a newer version is released"],
        );
    }

    #[test]
    fn a_bundle_lists_products_and_leaves_them_their_own_rules() {
        const BOX: &str = "name = \"Box\"\nprice = \"35.00\"\nbundle = [\"guide\", \"notes\"]\n";
        let box_release = || release("1.0.0", "").replace("guide-v", "box-v");
        let released = format!(
            "{BOX}{}contains = {{ guide = \"1.0.0\", notes = \"2.1.0\" }}\n",
            box_release()
        );
        let product = parse("box", "products/box.toml", &released, None).unwrap();
        assert!(product.is_bundle() && product.files.is_empty());
        assert_eq!(product.bundle, ["guide", "notes"]);
        let contains: Vec<(String, String)> = product.releases[0]
            .contains
            .iter()
            .map(|c| (c.slug.clone(), c.version.to_string()))
            .collect();
        assert_eq!(
            contains,
            [
                ("guide".into(), "1.0.0".into()),
                ("notes".into(), "2.1.0".into())
            ]
        );
        for (text, expected) in [
            (
                format!("{BOX}files = [\"box.pdf\"]\n"),
                "a bundle has no `files` of its own",
            ),
            (
                format!("{BOX}download_limit = 3\n"),
                "a bundle has no `download_limit` of its own",
            ),
            (
                format!("{BOX}updates = \"all\"\n"),
                "a bundle has no `updates` of its own",
            ),
            (
                format!("{BOX}stamp = true\n"),
                "a bundle has no `stamp` of its own",
            ),
            (
                "name = \"Box\"\nprice = \"35.00\"\nbundle = [\"box\"]\n".into(),
                "bundle `box` lists itself",
            ),
            (
                "name = \"Box\"\nprice = \"35.00\"\nbundle = [\"guide\", \"guide\"]\n".into(),
                "`guide` is listed twice",
            ),
            (
                "name = \"Box\"\nprice = \"35.00\"\n".into(),
                "missing field `files`",
            ),
            (
                format!("{BOX}{}", box_release()),
                "release `1.0.0` of a bundle does not say what it contains",
            ),
            (
                format!(
                    "{BOOK}{}contains = {{ guide = \"1.0.0\" }}\n",
                    box_release()
                ),
                "release `1.0.0` has `contains`, but the product is not a bundle",
            ),
            (
                format!("{BOX}{}contains = {{ guide = \"one\" }}\n", box_release()),
                "`one` is not a semantic version",
            ),
        ] {
            check("box", &text, &[expected]);
        }
    }

    #[test]
    fn a_minimal_product_takes_the_defaults() {
        let defaults = Defaults {
            currency: "eur".parse().unwrap(),
            download_limit: 3,
        };
        let product = parse("guide", "products/guide.toml", BOOK, Some(&defaults)).unwrap();
        assert_eq!(
            product.price,
            Money {
                amount: 2900,
                currency: "eur".parse().unwrap()
            }
        );
        assert_eq!(product.files, ["guide.pdf", "guide.epub"]);
        assert_eq!(product.download_limit, 3);
        assert_eq!(product.updates, UpdatePolicy::SameMajor);
        assert!(product.releases.is_empty());
    }

    #[test]
    fn releases_are_read() {
        let text = format!(
            "{BOOK}\n[[release]]\nversion = \"1.0.0\"\ndate = 2026-11-02\ntag = \"guide-v1.0.0\"\n\
             stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_1\"\n\
             payment_link_url = \"https://buy.example/1\"\n\n[[release.assets]]\nname = \"guide.pdf\"\n\
             size = 10\nsha256 = \"{}\"\ngithub_asset_id = 7\n",
            "a".repeat(64)
        );
        let product = parse("guide", "products/guide.toml", &text, None).unwrap();
        let latest = product.latest().unwrap();
        assert_eq!(latest.version, semver::Version::new(1, 0, 0));
        assert_eq!(latest.date, time::macros::date!(2026 - 11 - 02));
        assert_eq!(latest.assets[0].github_asset_id, Some(7));
    }

    #[test]
    fn prices_must_be_decimal_strings() {
        check(
            "guide",
            &BOOK.replace("\"29.00\"", "2900"),
            &["line 3, column 9: `price = 2900` is ambiguous"],
        );
        check(
            "guide",
            &BOOK.replace("\"29.00\"", "29.5"),
            &["`price = 29.5` is a floating-point number"],
        );
        check(
            "guide",
            &BOOK.replace("\"29.00\"", "\"29.999\""),
            &["more decimals than USD has"],
        );
    }

    #[test]
    fn file_names_cannot_leave_their_folder() {
        let text = BOOK.replace(
            "\"guide.epub\"",
            "\"../secret\", \"a/b.pdf\", \".env\", \"guide.pdf\"",
        );
        check(
            "guide",
            &text,
            &[
                "file name `../secret` could leave its folder",
                "file name `a/b.pdf` names a folder",
                "file name `.env` is hidden",
                "`guide.pdf` is listed twice",
            ],
        );
    }

    #[test]
    fn names_stay_on_one_line_and_files_read_as_they_are() {
        let text = BOOK
            .replace("\"guide.epub\"", "\"guide\u{202e}fdp.exe\"")
            .replacen("name = \"", "name = \"Cut\\r\\nBcc: x ", 1);
        check(
            "guide",
            &text,
            &[
                "holds a line break or another control character",
                "has a character that turns text around (a bidirectional control)",
            ],
        );
    }

    #[test]
    fn every_problem_in_a_file_is_reported() {
        let text = "name = \"\"\nprice = \"1\"\ncurrency = \"abc\"\nfiles = []\nupdates = \"some\"\ndownload_limit = -1\n";
        check(
            "Bad Slug",
            text,
            &[
                "`Bad Slug` is not a valid product slug",
                "line 1, column 8: `name` is empty",
                "line 3, column 12: `abc` is not a currency",
                "line 4, column 9: `files` is empty",
                "line 6, column 18: `-1` is not a download limit",
                "line 5, column 11: `some` is not an update policy",
            ],
        );
    }

    #[test]
    fn releases_must_go_up_and_carry_stripe_ids() {
        let release = |version: &str, product: &str| {
            format!(
                "\n[[release]]\nversion = \"{version}\"\ndate = 2026-11-02\ntag = \"guide-v{version}\"\n\
                 stripe_product = \"{product}\"\nstripe_price = \"price_1\"\npayment_link = \"plink_1\"\n\
                 payment_link_url = \"https://buy.example/1\"\n"
            )
        };
        let text = format!(
            "{BOOK}{}{}{}",
            release("2.0.0", "prod_1"),
            release("1.5.0", "cus_1"),
            release("2.0.0", "prod_1")
        );
        check(
            "guide",
            &text,
            &[
                "`cus_1` is not a Stripe id",
                "release `2.0.0` is listed twice",
            ],
        );
        // A fix of the 1.x line recorded after 2.0.0 is read in order.
        let text = format!(
            "{BOOK}{}{}",
            release("2.0.0", "prod_1"),
            release("1.5.0", "prod_1")
        );
        let product = parse("guide", "products/guide.toml", &text, None).unwrap();
        let versions: Vec<String> = product
            .releases
            .iter()
            .map(|release| release.version.to_string())
            .collect();
        assert_eq!(versions, ["1.5.0", "2.0.0"]);
        assert_eq!(product.on_sale().unwrap().version.to_string(), "2.0.0");
    }

    #[test]
    fn a_version_is_released_when_newer_than_all_or_a_fix_of_a_line() {
        let product = |versions: &[(&str, bool)]| {
            let text: String = versions
                .iter()
                .map(|(version, preorder)| {
                    format!(
                        "\n[[release]]\nversion = \"{version}\"\ndate = 2026-11-02\ntag = \"guide-v{version}\"\n\
                         stripe_product = \"prod_1\"\nstripe_price = \"price_1\"\npayment_link = \"plink_1\"\n\
                         payment_link_url = \"https://buy.example/1\"\n{}",
                        if *preorder { "preorder = true\n" } else { "" }
                    )
                })
                .collect();
            parse(
                "guide",
                "products/guide.toml",
                &format!("{BOOK}{text}"),
                None,
            )
            .unwrap()
        };
        let version = |text: &str| semver::Version::parse(text).unwrap();
        // 2.0.0 on pre-order, 1.0.0 out: 1.0.0 is on sale, and a fix of it may come.
        let editions = product(&[("1.0.0", false), ("2.0.0", true)]);
        assert_eq!(editions.on_sale().unwrap().version, version("1.0.0"));
        assert_eq!(editions.preorder().unwrap().version, version("2.0.0"));
        assert_eq!(editions.may_release(&version("1.1.0")), Ok(()));
        assert_eq!(editions.may_release(&version("3.0.0")), Ok(()));
        assert_eq!(
            editions.may_release(&version("0.9.0")),
            Err(version("2.0.0"))
        );
        assert!(editions.may_release(&version("1.0.0")).is_err());
        // 2.0.0 out: still sold once 1.1.0 fixes the 1.x line.
        let fixed = product(&[("1.0.0", false), ("2.0.0", false), ("1.1.0", false)]);
        assert_eq!(fixed.on_sale().unwrap().version, version("2.0.0"));
        assert_eq!(fixed.preorder(), None);
        assert!(fixed.may_release(&version("1.1.0")).is_err());
        assert_eq!(fixed.may_release(&version("1.2.0")), Ok(()));
    }

    #[test]
    fn slugs_are_checked_with_a_suggestion() {
        assert!(check_slug("field-guide-2").is_ok());
        for bad in ["", "Field", "a--b", "-a", "a-", "a_b", "a.b"] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
        assert_eq!(suggest_slug("My Book!"), "my-book");
    }

    #[test]
    fn update_policies_decide_entitlement() {
        let v = |text: &str| semver::Version::parse(text).unwrap();
        assert!(UpdatePolicy::All.entitles(&v("1.0.0"), &v("2.0.0")));
        assert!(UpdatePolicy::SameMajor.entitles(&v("1.0.0"), &v("1.4.0")));
        assert!(!UpdatePolicy::SameMajor.entitles(&v("1.9.0"), &v("2.0.0")));
        assert!(!UpdatePolicy::None.entitles(&v("1.0.0"), &v("1.0.1")));
        assert!(UpdatePolicy::None.entitles(&v("1.0.0"), &v("1.0.0")));
        assert!(!UpdatePolicy::All.entitles(&v("2.0.0"), &v("1.0.0")));
    }
}

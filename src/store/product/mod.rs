//! `products/<slug>.toml`: what is for sale, and every version released.
//!
//! The author writes the top of the file (name, price, files, policies);
//! `shop release` appends one `[[release]]` table per version. [`parse`]
//! checks both and reports every problem in the file at once.

mod read;

pub use read::parse;

use super::money::{Currency, Money};
use super::quoted_list;
use super::settings::Settings;
use super::values::{StampMode, is_bidi_control};

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
    /// `prices = { gbp = "21.00", … }`: the price in other currencies, by
    /// currency code (Stripe's `currency_options`: Checkout charges a buyer
    /// in their own where the price has it).
    pub prices: Vec<CurrencyPrice>,
    /// `price = "free"`: a free sample, given to an address that confirms
    /// it (its `price` is zero). Its releases make no Stripe objects, and
    /// what it gives is in the ledger as a sample, never a sale.
    pub free: bool,
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

/// The price in one more currency: the amount (a pay-what-you-want
/// product's minimum) and, for pay what you want, the suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyPrice {
    pub price: Money,
    pub pay_what_you_want: Option<PayWhatYouWant>,
}

impl Product {
    /// The price in `currency`, if the product sells in it: the main one
    /// or one of `prices`, with its pay-what-you-want terms.
    pub fn price_in(&self, currency: Currency) -> Option<CurrencyPrice> {
        if currency == self.price.currency {
            return Some(CurrencyPrice {
                price: self.price,
                pay_what_you_want: self.pay_what_you_want,
            });
        }
        self.prices
            .iter()
            .find(|price| price.price.currency == currency)
            .copied()
    }

    /// Every currency the product sells in, the main one first.
    pub fn currencies(&self) -> Vec<Currency> {
        std::iter::once(self.price.currency)
            .chain(self.prices.iter().map(|price| price.price.currency))
            .collect()
    }
}

/// A price the buyer chooses (Stripe's `custom_unit_amount`): at least the
/// product's `price`, starting from `suggested` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayWhatYouWant {
    pub suggested: Option<Money>,
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
    /// The payment link that sells it as a gift (`gifts = true`), when
    /// there is one.
    pub gift_link: String,
    pub gift_link_url: String,
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
    use super::read::suggest_slug;
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

//! The store on disk: `shop.toml` and `products/*.toml` as plain typed data.
//!
//! [`Store::open`] is the only function here that touches the disk: it reads
//! the files and hands their text to pure parsers ([`settings::parse`],
//! [`product::parse`]), which report every problem they find with its file,
//! line and column, so `shop products check` can list them all at once.

pub mod disk;
pub mod money;
pub mod product;
pub mod settings;
pub mod values;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error;
use crate::error::Registered;
pub use money::{Currency, Money};
pub use product::{Asset, Contained, CurrencyPrice, Product, Release, UpdatePolicy};
pub use settings::{
    AudienceBuyers, MailTransport, Overrides, RefundSettings, Settings, SmtpSecurity,
};
pub use values::StampMode;

/// The store's settings file, at its root.
pub const SETTINGS_FILE: &str = "shop.toml";
/// The folder of product files.
pub const PRODUCTS_DIR: &str = "products";

/// A loaded, valid store.
#[derive(Debug)]
pub struct Store {
    pub root: PathBuf,
    pub settings: Settings,
    /// Sorted by slug.
    pub products: Vec<Product>,
}

impl Store {
    /// How buyers' copies of `product`'s PDF and EPUB files are stamped:
    /// its own setting, else the shop's `[stamp] default`.
    pub fn stamping(&self, product: &Product) -> StampMode {
        product.stamp.unwrap_or(self.settings.stamp.default)
    }

    /// Reads and checks the store at `root`, with `overrides` (flags and
    /// environment) applied over `shop.toml`.
    pub fn open(root: &Path, overrides: &Overrides) -> Result<Store, StoreError> {
        let settings_path = root.join(SETTINGS_FILE);
        let settings_text = match std::fs::read_to_string(&settings_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore {
                    root: root.to_owned(),
                });
            }
            Err(source) => {
                return Err(StoreError::Read {
                    path: settings_path,
                    source,
                });
            }
        };
        let mut problems = Vec::new();
        let settings = settings::parse(&settings_text, overrides)
            .map_err(|found| problems.extend(found))
            .ok();

        let products_dir = root.join(PRODUCTS_DIR);
        let mut entries = Vec::new();
        match std::fs::read_dir(&products_dir) {
            Ok(dir) => {
                for entry in dir {
                    let entry = entry.map_err(|source| StoreError::Read {
                        path: products_dir.clone(),
                        source,
                    })?;
                    entries.push(entry.path());
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Read {
                    path: products_dir,
                    source,
                });
            }
        }
        entries.sort();

        let mut products = Vec::new();
        // Each product file's text, for the places of problems between
        // files; and the slugs of files that did not parse (their own
        // problems are said; a bundle listing one says nothing more).
        let mut texts = std::collections::HashMap::new();
        let mut broken = std::collections::HashSet::new();
        for path in entries {
            if path.extension().is_none_or(|ext| ext != "toml") || !path.is_file() {
                continue;
            }
            let label = format!(
                "{PRODUCTS_DIR}/{}",
                path.file_name().unwrap_or_default().display()
            );
            let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
                problems.push(
                    Problem::new(&label, "the file name is not valid UTF-8").hint(
                        "rename it to the product's slug: lowercase letters, digits and hyphens",
                    ),
                );
                continue;
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(source) => return Err(StoreError::Read { path, source }),
            };
            let defaults = settings.as_ref().map(product::Defaults::from);
            match product::parse(stem, &label, &text, defaults.as_ref()) {
                Ok(product) => {
                    texts.insert(product.slug.clone(), text);
                    products.push(product);
                }
                Err(found) => {
                    broken.insert(stem.to_owned());
                    problems.extend(found);
                }
            }
        }

        problems.extend(check_bundles(&mut products, &texts, &broken));

        match settings {
            Some(settings) if problems.is_empty() => Ok(Store {
                root: root.to_owned(),
                settings,
                products,
            }),
            _ => Err(StoreError::Invalid {
                root: root.to_owned(),
                problems,
            }),
        }
    }

    /// What a purchase of `slug` at `version` holds: that version of the
    /// product, or for a bundle each product at the version its release
    /// recorded (in the bundle's order). Empty for an unknown product or
    /// version.
    pub fn holdings(&self, slug: &str, version: &str) -> Vec<Holding<'_>> {
        let (Ok(product), Ok(version)) = (self.product(slug), semver::Version::parse(version))
        else {
            return Vec::new();
        };
        if !product.is_bundle() {
            return vec![Holding {
                product,
                bought: version,
            }];
        }
        let Some(release) = product.release(&version) else {
            return Vec::new();
        };
        release
            .contains
            .iter()
            .filter_map(|contained| {
                Some(Holding {
                    product: self.product(&contained.slug).ok()?,
                    bought: contained.version.clone(),
                })
            })
            .collect()
    }

    /// The product with this slug.
    pub fn product(&self, slug: &str) -> Result<&Product, StoreError> {
        self.products
            .iter()
            .find(|product| product.slug == slug)
            .ok_or_else(|| StoreError::UnknownProduct {
                slug: slug.to_owned(),
                known: self
                    .products
                    .iter()
                    .map(|product| product.slug.clone())
                    .collect(),
            })
    }
}

/// One product a purchase gives, and the version it counts as bought.
#[derive(Debug, Clone)]
pub struct Holding<'a> {
    pub product: &'a Product,
    pub bought: semver::Version,
}

/// Where an author finds a product tax code: never guessed for them.
pub const TAX_CODE_HINT: &str = "find the code in Stripe's list, https://docs.stripe.com/tax/tax-codes \
     (e-books sold for download to keep are `txcd_10302000` there)";

/// A Stripe product tax code is `txcd_` and eight digits; whether Stripe
/// knows it is Stripe's to say at release.
pub fn check_tax_code(code: &str) -> Result<(), String> {
    let digits = code.strip_prefix("txcd_").unwrap_or_default();
    if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "`{code}` is not a Stripe tax code: they are `txcd_` and eight digits"
        ))
    }
}

/// The closest of `known` to a mistyped `word`, if one is close enough to
/// be what was meant, as a hint's sentence: "did you mean
/// `download_limit`?". Close is what clap uses for subcommands
/// (Jaro-Winkler above 0.8) or one slip of the keyboard (a letter wrong,
/// missing, extra or two swapped), which is what catches three-letter
/// words like `eru` where Jaro finds nothing. Of several, the fewest
/// slips wins, then the one keeping more of the typed letters.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let kept = |candidate: &str| {
        let mut left: Vec<char> = candidate.chars().collect();
        word.chars()
            .filter(|c| match left.iter().position(|l| l == c) {
                Some(at) => {
                    left.swap_remove(at);
                    true
                }
                None => false,
            })
            .count()
    };
    known
        .into_iter()
        .filter(|candidate| *candidate != word)
        .map(|candidate| {
            let slips = strsim::osa_distance(word, candidate);
            let score = strsim::jaro_winkler(word, candidate);
            (slips, kept(candidate), score, candidate)
        })
        .filter(|(slips, _, score, _)| *score > 0.8 || (*slips == 1 && word.len() > 1))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.total_cmp(&a.2)))
        .map(|(_, _, _, candidate)| format!("did you mean `{candidate}`?"))
}

/// The rules between product files: a bundle lists products that exist
/// and are not bundles, and each of its releases gives versions those
/// products released. A bundle's download limit becomes the smallest of
/// its products'.
fn check_bundles(
    products: &mut [Product],
    texts: &std::collections::HashMap<String, String>,
    broken: &std::collections::HashSet<String>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut limits = Vec::new();
    for bundle in products.iter().filter(|product| product.is_bundle()) {
        let label = format!("{PRODUCTS_DIR}/{}.toml", bundle.slug);
        let text = texts.get(&bundle.slug).map_or("", String::as_str);
        // Where `needle` first stands in the bundle's file, for the place
        // of a problem (the file as written has no other record of it).
        let at = |needle: &str, message: String| match text.find(needle) {
            Some(start) => Problem::at(&label, text, start..start + needle.len(), message),
            None => Problem::new(&label, message),
        };
        let known = |slug: &str| products.iter().find(|product| product.slug == slug);
        let mut limit = None::<u32>;
        for slug in &bundle.bundle {
            match known(slug) {
                // A product file that does not parse says so itself.
                None if broken.contains(slug) => {}
                None => problems.push(
                    at(
                        &format!("\"{slug}\""),
                        format!(
                            "bundle `{}` lists `{slug}`, which is not a product",
                            bundle.slug
                        ),
                    )
                    .hint(
                        match did_you_mean(slug, products.iter().map(|p| p.slug.as_str())) {
                            Some(suggestion) => format!(
                                "{suggestion} (the store's products are {})",
                                product::slugs(products)
                            ),
                            None => {
                                format!("the store's products are {}", product::slugs(products))
                            }
                        },
                    ),
                ),
                Some(member) if member.is_bundle() => problems.push(
                    at(
                        &format!("\"{slug}\""),
                        format!("bundle `{}` lists `{slug}`, another bundle", bundle.slug),
                    )
                    .hint(format!("list the products of `{slug}` themselves")),
                ),
                Some(member) => {
                    limit =
                        Some(limit.map_or(member.download_limit, |l| l.min(member.download_limit)));
                }
            }
        }
        for release in &bundle.releases {
            for contained in &release.contains {
                let released = known(&contained.slug)
                    .and_then(|member| member.release(&contained.version))
                    .is_some_and(|release| !release.preorder);
                if !released {
                    problems.push(
                        at(
                            &format!("version = \"{}\"", release.version),
                            format!(
                                "release `{}` gives `{}` {}, which is not a release of it",
                                release.version, contained.slug, contained.version
                            ),
                        )
                        .hint("this is written by `shop release`; restore the files from git (`git log -p products/`)"),
                    );
                }
            }
        }
        limits.push((bundle.slug.clone(), limit));
    }
    for (slug, limit) in limits {
        if let (Some(limit), Some(bundle)) = (limit, products.iter_mut().find(|p| p.slug == slug)) {
            bundle.download_limit = limit;
        }
    }
    problems
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{}` is not a shop store: it has no `shop.toml`", root.display())]
    NotAStore { root: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", invalid_message(root, problems))]
    Invalid {
        root: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("there is no product `{slug}`")]
    UnknownProduct { slug: String, known: Vec<String> },
}

inventory::submit!(Registered::of::<StoreError>());

impl error::Hint for StoreError {
    fn hint(&self) -> String {
        match self {
            StoreError::NotAStore { root } => format!(
                "run `shop init {}` to make one there, or pass `--store DIR`",
                root.display()
            ),
            StoreError::Read { .. } => "check the file's permissions".into(),
            StoreError::Invalid { problems, .. } => match problems.as_slice() {
                [only] => only
                    .hint
                    .clone()
                    .unwrap_or_else(|| "fix it, then check with `shop products check`".into()),
                _ => "fix each problem above, then check with `shop products check`".into(),
            },
            StoreError::UnknownProduct { known, .. } if known.is_empty() => {
                "the store has no products yet: add a file under `products/`".into()
            }
            StoreError::UnknownProduct { known, .. } => {
                format!("the store's products are {}", quoted_list(known))
            }
        }
    }
}

/// The local files folder of a store (`<store>/.shop/files`), where
/// releases go without a GitHub repository and the server reads them.
pub fn local_files_dir(store_root: &std::path::Path) -> std::path::PathBuf {
    store_root.join(".shop").join("files")
}

/// `1 product`, `2 products`: a count with its noun.
pub fn count(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn invalid_message(root: &Path, problems: &[Problem]) -> String {
    let mut message = format!(
        "the store at `{}` has {}",
        root.display(),
        count(problems.len(), "problem")
    );
    // One problem's hint is the error's own, printed last; several keep
    // each its hint under it.
    for problem in problems {
        message.push_str("\n\n");
        if problems.len() == 1 {
            message.push_str(&problem.without_hint());
        } else {
            message.push_str(&problem.to_string());
        }
    }
    message
}

/// `a`, `b` and `c`: names in backticks, joined for a sentence.
pub fn quoted_list(names: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect();
    and_list(&quoted)
}

/// a, b and c: joined for a sentence.
pub fn and_list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// One thing wrong with the store: where, what, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (relative to the store) or variable at fault.
    pub source: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(source: &str, message: impl Into<String>) -> Self {
        Problem {
            source: source.to_owned(),
            position: None,
            message: message.into(),
            hint: None,
        }
    }

    /// A problem at `span` (byte offsets) of `text`.
    pub fn at(source: &str, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            position: Some(line_column(text, span.start)),
            ..Problem::new(source, message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl Problem {
    /// Where and what, without the hint.
    pub fn without_hint(&self) -> String {
        let mut text = format!("`{}`", self.source);
        if let Some((line, column)) = self.position {
            text.push_str(&format!(" line {line}, column {column}"));
        }
        text.push_str(&format!(": {}", self.message));
        text
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_hint())?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A TOML syntax or shape error as a [`Problem`], with its position.
pub(crate) fn toml_problem(source: &str, text: &str, error: &toml::de::Error) -> Problem {
    let message = error.message().trim_end().to_owned();
    let hint = if message.contains("unknown field") {
        "check the key's spelling against the keys the message lists"
    } else if message.contains("missing field") {
        "add the missing key"
    } else {
        "fix the TOML at that place; see https://toml.io for the syntax"
    };
    let problem = match error.span() {
        Some(span) => Problem::at(source, text, span, message),
        None => Problem::new(source, message),
    };
    problem.hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` after the two-byte `é`: third character.
        assert_eq!(line_column(text, text.find("= \"").unwrap()), (2, 4));
    }

    #[test]
    fn lists_read_as_a_sentence() {
        assert_eq!(quoted_list(&["a"]), "`a`");
        assert_eq!(quoted_list(&["a", "b", "c"]), "`a`, `b` and `c`");
    }
}

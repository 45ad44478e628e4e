//! Publishing a version of a product: Stripe product, price and payment
//! link; the files as GitHub release assets (or in the local files folder);
//! the `[[release]]` record in the product file, a commit and a tag.
//!
//! Every step looks before it creates and carries a derived idempotency
//! key, so running the same release again after a failure at any point
//! finishes it without a second price, payment link, release or asset.
//!
//! [`run`] reads as the list of its steps; each lives with its kind:
//! `check` (everything before anything is made), `selling` (Stripe's
//! product, price and links), `files` (GitHub or the local folder) and
//! `record` (the product file, the commit, the tag).

mod check;
mod files;
mod record;
mod selling;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::github::GitHub;
use crate::store::{Asset, Product, Release, Store};
use crate::stripe;

use crate::error::Registered;
use crate::{dates, error, git, github, store, sync};
pub use check::check;
use record::Silent;
pub use record::append_release;

/// Where a release's files go.
#[derive(Debug)]
pub enum Files {
    GitHub(Box<GitHub>),
    /// `<store>/.shop/files/<slug>/<version>/<name>`.
    Local(PathBuf),
}

/// What the person running the release sees: steps and upload progress.
pub trait Reporter: Send + Sync {
    fn step(&self, text: &str);
    /// Starts a progress display for an upload; returns what to call with
    /// each chunk's length.
    fn upload(&self, name: &str, size: u64) -> Arc<dyn Fn(u64) + Send + Sync>;
    /// The upload of `name` is over: its progress display goes; `done`
    /// says what happened to it.
    fn upload_done(&self, name: &str, done: &str);
    /// A request waits for GitHub's rate limit, until then.
    fn waiting(&self, what: &str, until: std::time::SystemTime) {
        self.step(&format!(
            "waiting for GitHub's rate limit to {what}, until {}",
            dates::human_time(
                until
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
            )
        ));
    }
}

/// One file of the release, checked and hashed.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What to release.
#[derive(Debug)]
pub struct Request<'a> {
    pub store: &'a Store,
    pub slug: &'a str,
    pub version: semver::Version,
    pub files: Vec<PathBuf>,
    /// What changed, in Markdown, as the author wrote it (`--notes FILE`,
    /// or `notes/<slug>/<version>.md`); `None`: no notes (never the git
    /// log, which is the author's, not the buyers').
    pub notes: Option<String>,
    /// Files of the store the product uses (its cover, `shop.toml`, its
    /// notes) to commit with the release (`--commit-all`).
    pub also_commit: Vec<PathBuf>,
    pub today: time::Date,
    pub dry_run: bool,
    /// `shop preorder`: sell the version before its files are ready (no
    /// files, no GitHub release, no tag).
    pub preorder: bool,
    /// A pre-order's announced day of release (`--date`).
    pub out: Option<time::Date>,
    /// A pre-order's launch price (`--price`), instead of the product's.
    pub price: Option<store::Money>,
}

/// What the release did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub product: String,
    pub version: String,
    pub tag: String,
    pub payment_link: String,
    pub payment_link_url: String,
    /// The gift's payment link (`gifts = true`), when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gift_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gift_link_url: String,
    pub stripe_product: String,
    pub stripe_price: String,
    pub assets: Vec<OutcomeAsset>,
    /// A bundle's release: the version of each product it gives.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub contains: BTreeMap<String, String>,
    /// Objects this run created (empty on a complete re-run).
    pub created: Vec<String>,
    /// Payment links turned off: the previous version's, and the
    /// pre-order link of this version once its files are out.
    pub deactivated: Vec<String>,
    /// Whether the release was already recorded before this run.
    pub already_recorded: bool,
    /// Whether this run opened a pre-order (`shop preorder`).
    pub preorder: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutcomeAsset {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub github_asset_id: Option<u64>,
}

/// The stable Stripe product id of a product slug.
pub fn stripe_product_id(slug: &str) -> String {
    format!("prod_shop_{slug}")
}

/// The tag and GitHub release name of a version.
pub fn tag(slug: &str, version: &semver::Version) -> String {
    format!("{slug}-v{version}")
}

/// Runs the release: every step is skipped when already done. Everything
/// is checked before anything is made: the files, the Stripe key, GitHub's
/// token and settings.
/// A free product's release (`stripe` is `None`) makes no Stripe objects:
/// only its files and its record.
pub async fn run(
    request: &Request<'_>,
    stripe: Option<&stripe::Client>,
    files_target: &Files,
    reporter: &dyn Reporter,
) -> Result<Outcome, ReleaseError> {
    let mut releasing = check::everything(request, stripe, files_target, reporter).await?;
    let (product_id, price_id, link) = match releasing.product.free {
        true => {
            reporter.step("free: no Stripe product, price or payment link");
            (String::new(), String::new(), Link::none())
        }
        false => {
            let product_id = releasing.ensure_product().await?;
            let price_id = releasing.ensure_price(&product_id).await?;
            let link = releasing.ensure_link(&price_id).await?;
            (product_id, price_id, link)
        }
    };
    let assets = releasing.put_files(files_target).await?;
    let mut outcome = releasing.outcome(&product_id, &price_id, &link, &assets);
    if releasing.dry {
        releasing.say_what_would_be_recorded();
        return Ok(outcome);
    }
    if releasing.releases_preorder() {
        outcome
            .deactivated
            .extend(releasing.close_preorder().await?);
    }
    let release = releasing.record(product_id, price_id, &link, assets)?;
    if request.preorder {
        // No tag: the version is not out until its files are.
        releasing.commit_preorder(&release)?;
        return Ok(outcome);
    }
    releasing.commit_and_tag(&release)?;
    if !releasing.product.free {
        outcome
            .deactivated
            .extend(releasing.retire_previous_link(&link).await?);
    }
    releasing.note_bundles_behind();
    Ok(outcome)
}

/// A release under way: what the checks found, and what the steps share.
struct Releasing<'a> {
    request: &'a Request<'a>,
    /// None for a free product, which sells nothing.
    stripe: Option<&'a stripe::Client>,
    reporter: &'a dyn Reporter,
    product: &'a Product,
    /// The files, checked and hashed (none for a pre-order or a bundle).
    files: Vec<LocalFile>,
    /// The release as recorded, when a re-run finishes it.
    recorded: Option<Release>,
    /// The Stripe product as Stripe has it, if it does.
    existing_product: Option<stripe::Product>,
    /// The Stripe product's id: the recorded one, else the slug's.
    known_product: String,
    /// A bundle's release: the version of each product it gives.
    contains: Vec<store::Contained>,
    /// GitHub keeps the assets of a published release final.
    immutable: bool,
    version: String,
    tag: String,
    dry: bool,
    /// Objects this run created.
    created: Vec<String>,
}

/// A payment link, found or made.
struct Link {
    id: String,
    url: String,
    /// The gift's link beside it (`gifts = true`): empty ids when none.
    gift_id: String,
    gift_url: String,
}

impl Link {
    /// A free product's: none.
    fn none() -> Link {
        Link {
            id: String::new(),
            url: String::new(),
            gift_id: String::new(),
            gift_url: String::new(),
        }
    }
}

impl Releasing<'_> {
    /// The Stripe client of a release that sells.
    fn selling(&self) -> Result<&stripe::Client, ReleaseError> {
        self.stripe.ok_or_else(|| ReleaseError::Free {
            slug: self.product.slug.clone(),
        })
    }

    /// `done`, or in a dry run `planned`.
    fn verb<'w>(&self, done: &'w str, planned: &'w str) -> &'w str {
        if self.dry { planned } else { done }
    }

    /// The files of a pre-ordered version are out: its pre-order link
    /// stops selling, and the ledger takes in every pre-order before the
    /// version is recorded as out, so that a run stopped after the record
    /// still finds them all to deliver to when run again.
    fn releases_preorder(&self) -> bool {
        !self.request.preorder && self.recorded.as_ref().is_some_and(|r| r.preorder)
    }

    /// A fix of an older line (a newer line is out) does not sell: its
    /// link is kept, turned off, and the store keeps selling the newest.
    fn fixes_older_line(&self) -> bool {
        self.product
            .releases
            .iter()
            .any(|r| !r.preorder && r.version > self.request.version)
    }

    fn outcome(&self, product_id: &str, price_id: &str, link: &Link, assets: &[Asset]) -> Outcome {
        Outcome {
            product: self.product.slug.clone(),
            version: self.version.clone(),
            tag: self.tag.clone(),
            payment_link: link.id.clone(),
            payment_link_url: link.url.clone(),
            gift_link: link.gift_id.clone(),
            gift_link_url: link.gift_url.clone(),
            stripe_product: product_id.to_owned(),
            stripe_price: price_id.to_owned(),
            assets: assets
                .iter()
                .map(|asset| OutcomeAsset {
                    name: asset.name.clone(),
                    size: asset.size,
                    sha256: asset.sha256.clone(),
                    github_asset_id: asset.github_asset_id,
                })
                .collect(),
            contains: self
                .contains
                .iter()
                .map(|c| (c.slug.clone(), c.version.to_string()))
                .collect(),
            created: self.created.clone(),
            deactivated: Vec::new(),
            already_recorded: self.recorded.is_some(),
            preorder: self.request.preorder,
            dry_run: self.dry,
        }
    }

    fn say_what_would_be_recorded(&self) {
        if self.releases_preorder() {
            self.reporter.step(&format!(
                "would turn off the pre-order link of {} and bring its pre-orders into the ledger",
                self.version
            ));
        }
        self.reporter.step(&format!(
            "would record the release in products/{}.toml, commit{}",
            self.product.slug,
            if self.request.preorder {
                String::new()
            } else {
                format!(" and tag `{}`", self.tag)
            }
        ));
    }

    /// A bundle still selling an older version the policy does not carry
    /// here is said, not changed.
    fn note_bundles_behind(&self) {
        let slug = &self.product.slug;
        for bundle in self
            .request
            .store
            .products
            .iter()
            .filter(|p| p.bundle.contains(slug))
        {
            if let Some(given) = bundle
                .latest()
                .and_then(|latest| latest.contains.iter().find(|c| &c.slug == slug))
                && !self
                    .product
                    .updates
                    .entitles(&given.version, &self.request.version)
            {
                self.reporter.step(&format!(
                    "note: bundle `{}` still gives {slug} {}; to sell {} in it, release a new version of the bundle",
                    bundle.slug, given.version, self.version
                ));
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("`{slug}` is free: it has no price, payment link or pre-order at Stripe")]
    Free { slug: String },
    #[error("version `{version}` is not newer than the latest release of its line, `{latest}`")]
    VersionNotNewer { version: String, latest: String },
    #[error(
        "`{name}` is not one of the files of `{slug}` ({})",
        store::quoted_list(expected)
    )]
    UnexpectedFile {
        name: String,
        slug: String,
        expected: Vec<String>,
    },
    #[error("the release of `{slug}` lacks {}", store::quoted_list(missing))]
    MissingFiles { slug: String, missing: Vec<String> },
    #[error("`{}` {problem}", path.display())]
    File { path: PathBuf, problem: String },
    /// The record checked before it is written: a fault of shop's, never
    /// of the author's files.
    #[error("`{}` {problem}, so nothing was recorded", path.display())]
    NotRecorded { path: PathBuf, problem: String },
    #[error(
        "`{}` is tracked by the store's git repository; paid files must never be committed",
        path.display()
    )]
    TrackedFile { path: PathBuf },
    #[error("`{slug}` {version} is already out")]
    AlreadyOut { slug: String, version: String },
    #[error("`{slug}` {version} is already on pre-order")]
    OtherPreorder { slug: String, version: String },
    #[error("`{slug}` is a bundle: it has no files of its own, and `{}` was given", path.display())]
    BundleFiles { slug: String, path: PathBuf },
    #[error("`{slug}` is a bundle, which cannot be pre-ordered")]
    BundlePreorder { slug: String },
    #[error("bundle `{bundle}` lists `{slug}`, which has no release out yet")]
    BundleUnreleased { bundle: String, slug: String },
    #[error("version `{version}` was released with another `{name}`")]
    ChangedFiles { version: String, name: String },
    #[error("GitHub reports `{name}` with another size or SHA-256 than the file sent")]
    Mismatch { name: String },
    #[error("the git tag `{tag}` already names another commit")]
    TagElsewhere { tag: String },
    #[error(
        "`{}` is {} bytes; GitHub keeps release assets under 2 GiB",
        path.display(), size
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("`GITHUB_TOKEN` can read `{repository}` but not write releases there")]
    ReadOnly { repository: String },
    #[error("the GitHub release `{tag}` is published and immutable, and lacks `{name}`")]
    Immutable { tag: String, name: String },
    #[error(transparent)]
    Stripe(#[from] stripe::StripeError),
    #[error(transparent)]
    GitHub(#[from] github::GitHubError),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error(transparent)]
    Sync(#[from] sync::SyncError),
}

inventory::submit!(Registered::of::<ReleaseError>());

impl error::Hint for ReleaseError {
    fn hint(&self) -> String {
        match self {
            ReleaseError::Store(error) => error.hint(),
            ReleaseError::Free { slug } => format!(
                "release its files with `shop release {slug} <version> <files>`; to sell it, give it a `price` in products/{slug}.toml"
            ),
            ReleaseError::VersionNotNewer { .. } => {
                "release a higher version: the next patch or minor of a line (a fix of an older edition is one), or a new major".into()
            }
            ReleaseError::UnexpectedFile { slug, .. } => {
                format!("rename the file, or change `files` in products/{slug}.toml")
            }
            ReleaseError::MissingFiles { .. } => {
                "give every file the product lists in `files`".into()
            }
            ReleaseError::File { .. } => "give readable, non-empty files".into(),
            ReleaseError::NotRecorded { .. } => {
                "the product file is unchanged; run the same command again, and if it fails \
                 the same way, report it to shop's developers with the product file"
                    .into()
            }
            ReleaseError::TrackedFile { path } => format!(
                "`git rm --cached {}`, add it to .gitignore, and keep release files outside the \
                 store or under .shop/",
                path.display()
            ),
            ReleaseError::AlreadyOut { slug, .. } => {
                format!("pre-order a newer version, such as `shop preorder {slug} <next version>`")
            }
            ReleaseError::OtherPreorder { slug, version } => {
                format!("release it first with `shop release {slug} {version} <files>`")
            }
            ReleaseError::BundleFiles { slug, .. } => format!(
                "release it without files, `shop release {slug} <version>`: it gives its products' files"
            ),
            ReleaseError::BundlePreorder { slug } => format!(
                "pre-order its products instead, or release it once they are out with `shop release {slug} <version>`"
            ),
            ReleaseError::BundleUnreleased { slug, .. } => {
                format!("release `{slug}` first with `shop release {slug} <version> <files>`")
            }
            ReleaseError::ChangedFiles { .. } => {
                "a released version's files never change; release a new version instead".into()
            }
            ReleaseError::Mismatch { .. } => {
                "run the same command again; the asset will be replaced".into()
            }
            ReleaseError::TagElsewhere { tag } => format!(
                "if it is a leftover, delete it with `git tag -d {tag}` and run the release again"
            ),
            ReleaseError::TooLarge { .. } => {
                "split or compress the file, or keep files in the local folder (empty \
                 `github.repository`); nothing was created"
                    .into()
            }
            ReleaseError::ReadOnly { .. } => "give the token \"Contents: read and write\" on \
                 the repository (a fine-grained token); nothing was created"
                .into(),
            ReleaseError::Immutable { .. } => "an immutable release cannot take assets: delete \
                 the release and its tag on GitHub, or release a new version"
                .into(),
            ReleaseError::Stripe(error) => error.hint(),
            ReleaseError::GitHub(error) => error.hint(),
            ReleaseError::Git(error) => error.hint(),
            ReleaseError::Sync(error) => error.hint(),
        }
    }
}

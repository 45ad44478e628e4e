//! Publishing a version of a product: Stripe product, price and payment
//! link; the files as GitHub release assets (or in the local files folder);
//! the `[[release]]` record in the product file, a commit and a tag.
//!
//! Every step looks before it creates and carries a derived idempotency
//! key, so running the same release again after a failure at any point
//! finishes it without a second price, payment link, release or asset.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::github::GitHub;
use crate::store::{Asset, Product, Release, Store};
use crate::stripe::{self, IdempotencyKey};

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
            crate::dates::human_time(
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
    pub price: Option<crate::store::Money>,
}

/// What the release did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub product: String,
    pub version: String,
    pub tag: String,
    pub payment_link: String,
    pub payment_link_url: String,
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

/// Checks the files against the product and the version against its
/// releases, and hashes the files. Nothing remote happens here.
pub fn check(request: &Request<'_>) -> Result<(Vec<LocalFile>, Option<Release>), ReleaseError> {
    let product = request.store.product(request.slug)?;
    let recorded = product.release(&request.version).cloned();
    if request.preorder {
        if recorded.as_ref().is_some_and(|recorded| !recorded.preorder) {
            return Err(ReleaseError::AlreadyOut {
                slug: product.slug.clone(),
                version: request.version.to_string(),
            });
        }
        if let Some(waiting) = product.releases.iter().find(|r| r.preorder)
            && waiting.version != request.version
        {
            return Err(ReleaseError::OtherPreorder {
                slug: product.slug.clone(),
                version: waiting.version.to_string(),
            });
        }
    }
    // Newer than every release, or a fix of a line already released.
    if recorded.is_none()
        && let Err(newest) = product.may_release(&request.version)
    {
        return Err(ReleaseError::VersionNotNewer {
            version: request.version.to_string(),
            latest: newest.to_string(),
        });
    }

    if product.is_bundle() {
        if request.preorder {
            return Err(ReleaseError::BundlePreorder {
                slug: product.slug.clone(),
            });
        }
        if let Some(path) = request.files.first() {
            return Err(ReleaseError::BundleFiles {
                slug: product.slug.clone(),
                path: path.clone(),
            });
        }
        contents(request.store, product, recorded.as_ref())?;
    }
    if request.preorder || product.is_bundle() {
        return Ok((Vec::new(), recorded));
    }
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in &request.files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| ReleaseError::File {
                path: path.clone(),
                problem: "has no usable file name".into(),
            })?
            .to_owned();
        if !product.files.contains(&name) {
            return Err(ReleaseError::UnexpectedFile {
                name,
                slug: product.slug.clone(),
                expected: product.files.clone(),
            });
        }
        if by_name.insert(name.clone(), path.clone()).is_some() {
            return Err(ReleaseError::File {
                path: path.clone(),
                problem: format!("is a second file named `{name}`"),
            });
        }
    }
    let missing: Vec<String> = product
        .files
        .iter()
        .filter(|name| !by_name.contains_key(*name))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ReleaseError::MissingFiles {
            slug: product.slug.clone(),
            missing,
        });
    }
    refuse_tracked(&request.store.root, &request.files)?;

    let mut files = Vec::new();
    for name in &product.files {
        let path = &by_name[name];
        let (size, sha256) = hash_file(path)?;
        if size == 0 {
            return Err(ReleaseError::File {
                path: path.clone(),
                problem: "is empty".into(),
            });
        }
        files.push(LocalFile {
            path: path.clone(),
            name: name.clone(),
            size,
            sha256,
        });
    }

    // A pre-order had no files to compare with.
    if let Some(recorded) = recorded.as_ref().filter(|recorded| !recorded.preorder) {
        for file in &files {
            let same = recorded.assets.iter().any(|asset| {
                asset.name == file.name && asset.size == file.size && asset.sha256 == file.sha256
            });
            if !same {
                return Err(ReleaseError::ChangedFiles {
                    version: request.version.to_string(),
                    name: file.name.clone(),
                });
            }
        }
    }
    Ok((files, recorded))
}

/// What a bundle's release gives: as recorded on a re-run, else the newest
/// version of each of its products that is out.
fn contents(
    store: &Store,
    bundle: &Product,
    recorded: Option<&Release>,
) -> Result<Vec<crate::store::Contained>, ReleaseError> {
    if let Some(recorded) = recorded {
        return Ok(recorded.contains.clone());
    }
    bundle
        .bundle
        .iter()
        .map(|slug| {
            let member = store.product(slug)?;
            let out = member
                .on_sale()
                .ok_or_else(|| ReleaseError::BundleUnreleased {
                    bundle: bundle.slug.clone(),
                    slug: slug.clone(),
                })?;
            Ok(crate::store::Contained {
                slug: slug.clone(),
                version: out.version.clone(),
            })
        })
        .collect()
}

/// Paid files must never reach git: refuse files the store's repository
/// tracks or has staged.
fn refuse_tracked(root: &Path, files: &[PathBuf]) -> Result<(), ReleaseError> {
    let Ok(repo) = git2::Repository::open(root) else {
        return Ok(());
    };
    let Some(workdir) = repo.workdir().and_then(|dir| dir.canonicalize().ok()) else {
        return Ok(());
    };
    for path in files {
        let Ok(full) = path.canonicalize() else {
            continue;
        };
        let Ok(relative) = full.strip_prefix(&workdir) else {
            continue;
        };
        let status = repo.status_file(relative).unwrap_or(git2::Status::CURRENT);
        let tracked =
            !status.contains(git2::Status::WT_NEW) && !status.contains(git2::Status::IGNORED);
        let staged = status.intersects(git2::Status::INDEX_NEW | git2::Status::INDEX_MODIFIED);
        if tracked || staged {
            return Err(ReleaseError::TrackedFile {
                path: relative.to_owned(),
            });
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<(u64, String), ReleaseError> {
    let io = |source: std::io::Error| ReleaseError::File {
        path: path.to_owned(),
        problem: format!("cannot be read: {source}"),
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_file() {
        return Err(ReleaseError::File {
            path: path.to_owned(),
            problem: "is not a file".into(),
        });
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Runs the release: every step is skipped when already done.
pub async fn run(
    request: &Request<'_>,
    stripe: &stripe::Client,
    files_target: &Files,
    reporter: &dyn Reporter,
) -> Result<Outcome, ReleaseError> {
    // Check everything, then change anything: the files, the Stripe key,
    // GitHub's token and settings are read before any object is made.
    if let Files::GitHub(_) = files_target {
        refuse_too_large(&request.files)?;
    }
    let (files, recorded) = check(request)?;
    let product = request.store.product(request.slug)?;
    // The same bytes as the version before: buyers would get nothing new.
    if recorded.is_none()
        && !files.is_empty()
        && let Some(previous) = product
            .releases
            .iter()
            .rev()
            .find(|release| !release.preorder && release.version < request.version)
        && files.iter().all(|file| {
            previous
                .assets
                .iter()
                .any(|asset| asset.name == file.name && asset.sha256 == file.sha256)
        })
    {
        reporter.step(&format!(
            "warning: every file is byte for byte {}'s: buyers told of {} would get the same files again",
            previous.version, request.version
        ));
    }
    let known_product = product.latest().map_or_else(
        || stripe_product_id(&product.slug),
        |r| r.stripe_product.clone(),
    );
    let existing_product = stripe.product(&known_product).await?;
    let product_exists = existing_product.is_some();
    let contains = match product.is_bundle() {
        true => contents(request.store, product, recorded.as_ref())?,
        false => Vec::new(),
    };
    let immutable = match files_target {
        // A pre-order sends no files anywhere yet, a bundle has none.
        Files::GitHub(_) if request.preorder || product.is_bundle() => false,
        Files::GitHub(github) => {
            let access = github.access().await?;
            if !access.push {
                return Err(ReleaseError::ReadOnly {
                    repository: github.repository(),
                });
            }
            let immutable = github.immutable_releases().await?;
            reporter.step(&format!(
                "`GITHUB_TOKEN` can write releases in `{}`{}",
                github.repository(),
                if immutable {
                    " (immutable releases: assets are final once published)"
                } else {
                    ""
                }
            ));
            immutable
        }
        Files::Local(_) => false,
    };
    let settings = &request.store.settings;
    let version = request.version.to_string();
    let tag = tag(&product.slug, &request.version);
    let dry = request.dry_run;
    let mut created = Vec::new();
    let verb = |done: &str, planned: &str| {
        if dry {
            planned.to_owned()
        } else {
            done.to_owned()
        }
    };

    // 1. The Stripe product, once per slug, showing at Checkout what the
    // store says: the name, the description as plain text (Checkout shows
    // Markdown's asterisks as they are), the cover's public URL, the page.
    let product_id = known_product;
    let shown = stripe::CreateProduct {
        id: Some(product_id.clone()),
        name: product.name.clone(),
        description: product
            .description
            .as_deref()
            .map(|text| crate::html::plain_text(text, 1000))
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
    match &existing_product {
        Some(existing)
            if existing.name == shown.name
                && existing.description == shown.description
                && existing.images == shown.images
                && existing.url == shown.url
                && existing.tax_code == shown.tax_code =>
        {
            reporter.step(&format!("Stripe product `{product_id}` exists"));
        }
        Some(_) => {
            reporter.step(&format!(
                "{} Stripe product `{product_id}` (name, description, cover, page and tax code as the store has them)",
                verb("updated", "would update")
            ));
            if !dry {
                stripe.update_product(&product_id, &shown).await?;
            }
        }
        None => {
            reporter.step(&format!(
                "{} Stripe product `{product_id}`",
                verb("created", "would create")
            ));
            if !dry {
                stripe
                    .create_product(&shown, &IdempotencyKey::derived(&["product", &product_id]))
                    .await?;
                created.push(format!("product {product_id}"));
            }
        }
    }

    // 2. A price for the product's amount (a pre-order's launch price),
    // reused when one exists.
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
    let tax_behavior = settings.tax_behavior();
    // A dry run for a product Stripe does not have yet: no prices to find.
    let existing_price = if dry && !product_exists {
        None
    } else {
        stripe
            .prices(&product_id)
            .try_filter(|price| {
                let same = match custom {
                    Some(custom) => price.custom_unit_amount == Some(custom),
                    None => price.unit_amount == Some(amount),
                };
                // Stripe never changes a price's tax behavior once set.
                let taxed_alike = tax_behavior
                    .is_none_or(|behavior| price.tax_behavior.as_deref() == Some(behavior));
                std::future::ready(same && taxed_alike && price.currency == currency)
            })
            .try_next()
            .await?
    };
    let price_id = match existing_price {
        Some(price) => {
            reporter.step(&format!("Stripe price `{}` for {shown} exists", price.id));
            price.id
        }
        None if dry => {
            reporter.step(&format!("would create a Stripe price for {shown}"));
            "price_(new)".to_owned()
        }
        None => {
            let params = stripe::CreatePrice {
                product: product_id.clone(),
                unit_amount: amount,
                custom_unit_amount: custom,
                currency: currency.clone(),
                tax_behavior: tax_behavior.map(str::to_owned),
                metadata: [("shop_product".to_owned(), product.slug.clone())].into(),
            };
            let amount_text = amount.to_string();
            let chosen = custom.map(|custom| format!("custom:{:?}", custom.preset));
            let mut parts = vec!["price", &product_id, &amount_text, &currency];
            parts.extend(chosen.as_deref());
            parts.extend(tax_behavior);
            let key = IdempotencyKey::derived(&parts);
            let price = stripe.create_price(&params, &key).await?;
            reporter.step(&format!("created Stripe price `{}` for {shown}", price.id));
            created.push(format!("price {}", price.id));
            price.id
        }
    };

    // 3. This version's payment link.
    let options = crate::checkout::options(settings);
    let redirect_url = crate::checkout::thanks_url(settings);
    let metadata = crate::metadata::link_metadata(&product.slug, &version, request.preorder);
    // A pre-order's link is not the released version's: once the files
    // are out, the version sells through a link without the mark.
    // A fix of an older line (a newer line is out) does not sell: its
    // recorded link is kept, turned off.
    let fixes_older_line = product
        .releases
        .iter()
        .any(|r| !r.preorder && r.version > request.version);
    let existing_link = match recorded
        .as_ref()
        .filter(|recorded| recorded.preorder == request.preorder)
    {
        Some(recorded) => stripe
            .payment_link(&recorded.payment_link)
            .await?
            .filter(|link| link.active || fixes_older_line),
        None => {
            stripe
                .active_payment_links()
                .try_filter(|link| std::future::ready(link.metadata == metadata))
                .try_next()
                .await?
        }
    };
    let (link_id, link_url) = match existing_link {
        Some(link) => {
            reporter.step(&format!("payment link `{}` exists", link.id));
            (link.id, link.url)
        }
        None if dry => {
            reporter.step(&format!(
                "would create a payment link redirecting to {redirect_url}"
            ));
            ("plink_(new)".to_owned(), String::new())
        }
        None => {
            let params = stripe::CreatePaymentLink {
                price: price_id.clone(),
                redirect_url: redirect_url.clone(),
                allow_promotion_codes: product.promotion_codes,
                options: options.clone(),
                metadata: metadata.clone(),
            };
            let promotion_codes = product.promotion_codes.to_string();
            let mut parts = vec![
                "payment_link",
                &product.slug,
                &version,
                &price_id,
                &redirect_url,
                &promotion_codes,
            ];
            // What checkout asks is part of the request, so of its key.
            let asked = format!("{options:?}");
            if options != stripe::CheckoutOptions::default() {
                parts.push(&asked);
            }
            if request.preorder {
                parts.push(crate::metadata::PREORDER_KEY);
            }
            let key = IdempotencyKey::derived(&parts);
            let link = stripe.create_payment_link(&params, &key).await?;
            reporter.step(&format!("created payment link `{}`", link.id));
            created.push(format!("payment link {}", link.id));
            (link.id, link.url)
        }
    };

    // 4. The files.
    // The GitHub release's body: the notes, or the name and version.
    let notes = match &request.notes {
        Some(notes) => notes.clone(),
        None => format!("{} {}", product.name, request.version),
    };
    let assets = match files_target {
        _ if request.preorder => {
            reporter.step("no files yet: a pre-order");
            Vec::new()
        }
        _ if product.is_bundle() => {
            reporter.step(&format!(
                "a bundle of {}",
                contains
                    .iter()
                    .map(|c| format!("`{}` {}", c.slug, c.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            Vec::new()
        }
        Files::GitHub(github) => {
            upload_to_github(
                github,
                product,
                Upload {
                    tag: &tag,
                    notes: &notes,
                    files: &files,
                    recorded: recorded.as_ref(),
                    immutable,
                    dry,
                },
                reporter,
                &mut created,
            )
            .await?
        }
        Files::Local(dir) => copy_locally(
            dir,
            &product.slug,
            &version,
            &files,
            dry,
            reporter,
            &mut created,
        )?,
    };

    let outcome_assets: Vec<OutcomeAsset> = assets
        .iter()
        .map(|asset| OutcomeAsset {
            name: asset.name.clone(),
            size: asset.size,
            sha256: asset.sha256.clone(),
            github_asset_id: asset.github_asset_id,
        })
        .collect();
    let mut outcome = Outcome {
        product: product.slug.clone(),
        version: version.clone(),
        tag: tag.clone(),
        payment_link: link_id.clone(),
        payment_link_url: link_url.clone(),
        stripe_product: product_id.clone(),
        stripe_price: price_id.clone(),
        assets: outcome_assets,
        contains: contains
            .iter()
            .map(|c| (c.slug.clone(), c.version.to_string()))
            .collect(),
        created,
        deactivated: Vec::new(),
        already_recorded: recorded.is_some(),
        preorder: request.preorder,
        dry_run: dry,
    };
    // The files of a pre-ordered version are out: its pre-order link
    // stops selling, and the ledger takes in every pre-order before the
    // version is recorded as out, so that a run stopped after the record
    // still finds them all to deliver to when run again.
    let releasing_preorder = !request.preorder && recorded.as_ref().is_some_and(|r| r.preorder);
    if dry {
        if releasing_preorder {
            reporter.step(&format!(
                "would turn off the pre-order link of {version} and bring its pre-orders into the ledger"
            ));
        }
        reporter.step(&format!(
            "would record the release in products/{}.toml, commit{}",
            product.slug,
            if request.preorder {
                String::new()
            } else {
                format!(" and tag `{tag}`")
            }
        ));
        return Ok(outcome);
    }
    if releasing_preorder {
        let preorder_metadata = crate::metadata::link_metadata(&product.slug, &version, true);
        let open: Vec<stripe::PaymentLink> = stripe
            .active_payment_links()
            .try_filter(|link| std::future::ready(link.metadata == preorder_metadata))
            .try_collect()
            .await?;
        for link in open {
            stripe.set_payment_link_active(&link.id, false).await?;
            reporter.step(&format!(
                "turned off the pre-order link of {version} (`{}`)",
                link.id
            ));
            outcome.deactivated.push(link.id);
        }
        let synced = crate::sync::run(
            &crate::sync::Request {
                store: request.store,
                full: false,
                since: None,
                dry_run: false,
            },
            stripe,
            &Silent,
        )
        .await?;
        reporter.step(&match synced.commit {
            Some(_) => "brought the latest purchases and pre-orders into the ledger".to_owned(),
            None => "the ledger has every pre-order".to_owned(),
        });
    }

    // 5. The record, the commit and the tag.
    let release = Release {
        version: request.version.clone(),
        // The day the files came out (a pre-order's, the day it opened).
        date: recorded
            .as_ref()
            .filter(|recorded| recorded.preorder == request.preorder)
            .map_or(request.today, |r| r.date),
        tag: tag.clone(),
        stripe_product: product_id,
        stripe_price: price_id,
        payment_link: link_id.clone(),
        payment_link_url: link_url,
        // A re-run keeps what was recorded unless told new notes.
        notes: match (&request.notes, &recorded) {
            (None, Some(recorded)) => recorded.notes.clone(),
            (given, _) => given
                .as_deref()
                .map(|notes| notes.trim().to_owned())
                .filter(|notes| !notes.is_empty()),
        },
        preorder: request.preorder,
        // What a pre-order announces; a release's files make it moot.
        out: match (&recorded, request.preorder) {
            (_, false) => None,
            (Some(recorded), true) => request.out.or(recorded.out),
            (None, true) => request.out,
        },
        price: match (&recorded, request.preorder) {
            (_, false) => None,
            (Some(recorded), true) => request.price.or(recorded.price),
            (None, true) => request.price,
        },
        contains: contains.clone(),
        assets,
    };
    if recorded.as_ref() != Some(&release) {
        record(request.store, product, &release, recorded.is_some())?;
        reporter.step(&format!(
            "recorded the release in products/{}.toml",
            product.slug
        ));
    }
    if request.preorder {
        // No tag: the version is not out until its files are.
        if commit_preorder(
            &request.store.root,
            &product.slug,
            &release,
            &request.also_commit,
        )? {
            reporter.step("committed the pre-order");
        }
        return Ok(outcome);
    }
    let committed = commit_and_tag(
        &request.store.root,
        &product.slug,
        &release,
        &request.also_commit,
    )?;
    if committed {
        reporter.step(&format!("committed and tagged `{tag}`"));
    }

    // 6. The previous version's link stops selling, now that this one is
    // recorded. A fix of an older line (a newer line is out) takes nothing
    // from the store: its own link does not sell.
    if fixes_older_line {
        if let Some(link) = stripe.payment_link(&link_id).await?
            && link.active
        {
            stripe.set_payment_link_active(&link_id, false).await?;
            reporter.step(&format!(
                "{version} fixes an older line: its payment link does not sell (`{link_id}`), the store keeps selling {}",
                product
                    .on_sale()
                    .map_or_else(String::new, |release| release.version.to_string())
            ));
            outcome.deactivated.push(link_id.clone());
        }
    } else if let Some(previous) = product
        .releases
        .iter()
        .rev()
        .find(|r| r.version < request.version && !r.preorder)
        && previous.payment_link != link_id
        && let Some(link) = stripe.payment_link(&previous.payment_link).await?
        && link.active
    {
        stripe
            .set_payment_link_active(&previous.payment_link, false)
            .await?;
        reporter.step(&format!(
            "turned off the payment link of {} (`{}`)",
            previous.version, previous.payment_link
        ));
        outcome.deactivated.push(previous.payment_link.clone());
    }

    // A bundle still selling an older version the policy does not carry here.
    for bundle in request
        .store
        .products
        .iter()
        .filter(|p| p.bundle.contains(&product.slug))
    {
        if let Some(given) = bundle
            .latest()
            .and_then(|latest| latest.contains.iter().find(|c| c.slug == product.slug))
            && !product.updates.entitles(&given.version, &request.version)
        {
            reporter.step(&format!(
                "note: bundle `{}` still gives {} {}; to sell {version} in it, release a new version of the bundle",
                bundle.slug, product.slug, given.version
            ));
        }
    }
    Ok(outcome)
}

/// Files GitHub could never take: refused before anything is made.
fn refuse_too_large(paths: &[PathBuf]) -> Result<(), ReleaseError> {
    for path in paths {
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.len() > crate::github::MAX_ASSET_SIZE
        {
            return Err(ReleaseError::TooLarge {
                path: path.clone(),
                size: metadata.len(),
            });
        }
    }
    Ok(())
}

/// What a release puts on GitHub.
struct Upload<'a> {
    tag: &'a str,
    notes: &'a str,
    files: &'a [LocalFile],
    /// The release as recorded, when a re-run finishes it.
    recorded: Option<&'a Release>,
    immutable: bool,
    dry: bool,
}

/// The release as a draft (found again by a re-run among the drafts), its
/// assets uploaded under the names GitHub keeps, then published.
async fn upload_to_github(
    github: &GitHub,
    product: &Product,
    upload: Upload<'_>,
    reporter: &dyn Reporter,
    created: &mut Vec<String>,
) -> Result<Vec<Asset>, ReleaseError> {
    let Upload {
        tag,
        notes,
        files,
        recorded,
        immutable,
        dry,
    } = upload;
    let repository = github.repository();
    let release = match github.release_by_tag(tag).await? {
        Some(release) => {
            reporter.step(&format!(
                "GitHub release `{tag}` exists in `{repository}`{}",
                if release.draft { " (a draft)" } else { "" }
            ));
            Some(release)
        }
        None if dry => {
            reporter.step(&format!(
                "would create GitHub release `{tag}` in `{repository}` as a draft, upload, then publish"
            ));
            None
        }
        None => {
            let name = format!(
                "{} {}",
                product.name,
                tag.rsplit_once("-v").map_or(tag, |(_, v)| v)
            );
            let release = github.create_draft(tag, &name, notes).await?;
            reporter.step(&format!(
                "created GitHub release `{tag}` in `{repository}` as a draft"
            ));
            created.push(format!("GitHub release {tag}"));
            Some(release)
        }
    };
    let mut assets = Vec::new();
    for file in files {
        // GitHub may have renamed it: found by its recorded id, else by the
        // name GitHub gives it (a leftover `starter` too).
        let recorded_id = recorded
            .and_then(|r| r.assets.iter().find(|a| a.name == file.name))
            .and_then(|a| a.github_asset_id);
        let stored = crate::github::stored_name(&file.name);
        let existing = release.as_ref().and_then(|release| {
            release
                .assets
                .iter()
                .find(|asset| Some(asset.id) == recorded_id)
                .or_else(|| release.assets.iter().find(|asset| asset.name == stored))
        });
        let keep = existing.filter(|asset| {
            asset.state == "uploaded"
                && asset.size == file.size
                && asset.sha256.as_ref().is_none_or(|sha| *sha == file.sha256)
        });
        if let Some(asset) = keep {
            reporter.step(&format!(
                "asset `{}` is uploaded ({} bytes)",
                file.name, file.size
            ));
            assets.push(asset_record(file, Some(asset)));
            continue;
        }
        let Some(release) = &release else {
            reporter.step(&format!(
                "would upload `{}` ({} bytes)",
                file.name, file.size
            ));
            assets.push(asset_record(file, None));
            continue;
        };
        if release.immutable || (immutable && !release.draft) {
            return Err(ReleaseError::Immutable {
                tag: tag.to_owned(),
                name: file.name.clone(),
            });
        }
        if let Some(stale) = existing {
            if dry {
                reporter.step(&format!(
                    "would replace asset `{}` ({} bytes, state {})",
                    stale.name, stale.size, stale.state
                ));
                assets.push(asset_record(file, None));
                continue;
            }
            github.delete_asset(stale.id).await?;
            reporter.step(&format!(
                "deleted the stale asset `{}` ({} bytes, {})",
                stale.name, stale.size, stale.state
            ));
        } else if dry {
            reporter.step(&format!(
                "would upload `{}` ({} bytes)",
                file.name, file.size
            ));
            assets.push(asset_record(file, None));
            continue;
        }
        let progress = reporter.upload(&file.name, file.size);
        let uploaded = github
            .upload_asset(release, &file.path, &file.name, progress)
            .await?;
        reporter.upload_done(&file.name, &format!("uploaded `{}`", file.name));
        if uploaded.size != file.size
            || uploaded
                .sha256
                .as_ref()
                .is_some_and(|sha| *sha != file.sha256)
        {
            return Err(ReleaseError::Mismatch {
                name: file.name.clone(),
            });
        }
        if uploaded.name != file.name {
            reporter.step(&format!(
                "GitHub keeps `{}` as `{}`",
                file.name, uploaded.name
            ));
        }
        created.push(format!("asset {}", file.name));
        assets.push(asset_record(file, Some(&uploaded)));
    }
    if let Some(release) = &release
        && release.draft
        && !dry
    {
        github.publish(release.id).await?;
        reporter.step(&format!("published GitHub release `{tag}`"));
    }
    Ok(assets)
}

fn asset_record(file: &LocalFile, github: Option<&crate::github::Asset>) -> Asset {
    Asset {
        name: file.name.clone(),
        size: file.size,
        sha256: file.sha256.clone(),
        github_asset_id: github.map(|asset| asset.id),
        github_name: github
            .map(|asset| asset.name.clone())
            .filter(|stored| *stored != file.name),
    }
}

fn copy_locally(
    dir: &Path,
    slug: &str,
    version: &str,
    files: &[LocalFile],
    dry: bool,
    reporter: &dyn Reporter,
    created: &mut Vec<String>,
) -> Result<Vec<Asset>, ReleaseError> {
    let target = dir.join(slug).join(version);
    let mut assets = Vec::new();
    for file in files {
        let destination = target.join(&file.name);
        let same = hash_file(&destination)
            .ok()
            .is_some_and(|(size, sha)| size == file.size && sha == file.sha256);
        if same {
            reporter.step(&format!("`{}` is in the local files folder", file.name));
        } else if dry {
            reporter.step(&format!(
                "would copy `{}` ({} bytes) to `{}`",
                file.name,
                file.size,
                destination.display()
            ));
        } else {
            let io = |source: std::io::Error| ReleaseError::File {
                path: destination.clone(),
                problem: format!("cannot be written: {source}"),
            };
            std::fs::create_dir_all(&target).map_err(io)?;
            let partial = target.join(format!(".{}.partial", file.name));
            let progress = reporter.upload(&file.name, file.size);
            let copied = copy_hashing(&file.path, &partial, progress.as_ref()).map_err(io)?;
            reporter.upload_done(
                &file.name,
                &format!(
                    "copied `{}` ({} bytes) to the local files folder",
                    file.name, file.size
                ),
            );
            // The file changed since it was checked: its record would lie.
            if copied != (file.size, file.sha256.clone()) {
                let _ = std::fs::remove_file(&partial);
                return Err(ReleaseError::File {
                    path: file.path.clone(),
                    problem: "changed while it was being copied".into(),
                });
            }
            std::fs::rename(&partial, &destination).map_err(io)?;
            created.push(format!("local file {}", file.name));
        }
        assets.push(asset_record(file, None));
    }
    Ok(assets)
}

/// Copies `from` to `to` (made anew, synced) in 1 MiB chunks, calling
/// `progress` with each chunk's length; returns the size and SHA-256 of
/// what was written.
fn copy_hashing(
    from: &Path,
    to: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> std::io::Result<(u64, String)> {
    use std::io::Write as _;
    let mut source = std::fs::File::open(from)?;
    let mut target = std::fs::File::create(to)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        target.write_all(&buffer[..read])?;
        hasher.update(&buffer[..read]);
        size += read as u64;
        progress(read as u64);
    }
    target.sync_all()?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Appends (or, on a re-run that changed ids, replaces) the `[[release]]`
/// table, keeping the author's formatting and comments.
fn record(
    store: &Store,
    product: &Product,
    release: &Release,
    replace: bool,
) -> Result<(), ReleaseError> {
    let root = &store.root;
    let path = root
        .join(crate::store::PRODUCTS_DIR)
        .join(format!("{}.toml", product.slug));
    let io = |source: std::io::Error| ReleaseError::File {
        path: path.clone(),
        problem: format!("cannot be updated: {source}"),
    };
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let updated =
        append_release(&text, release, replace).map_err(|problem| ReleaseError::File {
            path: path.clone(),
            problem,
        })?;
    // What we write must read back as the same product plus this release,
    // with the store's defaults (its currency above all) as the store
    // reads it.
    let label = format!("products/{}.toml", product.slug);
    let defaults = crate::store::product::Defaults::from(&store.settings);
    let reread = crate::store::product::parse(&product.slug, &label, &updated, Some(&defaults))
        .map_err(|problems| ReleaseError::NotRecorded {
            path: path.clone(),
            problem: format!("would become invalid: {}", problems[0]),
        })?;
    if reread.release(&release.version) != Some(release) {
        return Err(ReleaseError::NotRecorded {
            path: path.clone(),
            problem: "would not read back as the release written".into(),
        });
    }
    crate::atomic::replace(&path, updated.as_bytes(), &root.join(".shop")).map_err(io)
}

/// The product file's text with `release` appended as `[[release]]`.
pub fn append_release(text: &str, release: &Release, replace: bool) -> Result<String, String> {
    use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};
    let mut document: DocumentMut = text
        .parse()
        .map_err(|error| format!("is not valid TOML: {error}"))?;
    let mut table = Table::new();
    table["version"] = value(release.version.to_string());
    let date = |day: time::Date| {
        value(toml_edit::Datetime {
            date: Some(toml_edit::Date {
                year: day.year() as u16,
                month: day.month() as u8,
                day: day.day(),
            }),
            time: None,
            offset: None,
        })
    };
    table["date"] = date(release.date);
    table["tag"] = value(&release.tag);
    table["stripe_product"] = value(&release.stripe_product);
    table["stripe_price"] = value(&release.stripe_price);
    table["payment_link"] = value(&release.payment_link);
    table["payment_link_url"] = value(&release.payment_link_url);
    if let Some(notes) = &release.notes {
        table["notes"] = value(notes);
    }
    if release.preorder {
        table["preorder"] = value(true);
    }
    if let Some(out) = release.out {
        table["out"] = date(out);
    }
    if let Some(price) = &release.price {
        table["price"] = value(price.decimal());
    }
    if !release.contains.is_empty() {
        let mut contains = toml_edit::InlineTable::new();
        for contained in &release.contains {
            contains.insert(&contained.slug, contained.version.to_string().into());
        }
        table["contains"] = value(contains);
    }
    let mut assets = ArrayOfTables::new();
    for asset in &release.assets {
        let mut row = Table::new();
        row["name"] = value(&asset.name);
        row["size"] = value(
            i64::try_from(asset.size).map_err(|_| "has a file too large to record".to_owned())?,
        );
        row["sha256"] = value(&asset.sha256);
        if let Some(name) = &asset.github_name {
            row["github_name"] = value(name);
        }
        if let Some(id) = asset.github_asset_id {
            row["github_asset_id"] =
                value(i64::try_from(id).map_err(|_| "has an asset id out of range".to_owned())?);
        }
        assets.push(row);
    }
    table.insert("assets", Item::ArrayOfTables(assets));
    let releases = document
        .entry("release")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| "has a `release` key that is not a list of [[release]] tables".to_owned())?;
    let version = release.version.to_string();
    let position = releases.iter().position(|existing| {
        existing.get("version").and_then(|v| v.as_str()) == Some(version.as_str())
    });
    match position {
        Some(index) if replace => {
            // The re-recorded release stays where it was, keeping the order.
            let mut rebuilt = ArrayOfTables::new();
            for (at, existing) in releases.iter().enumerate() {
                rebuilt.push(if at == index {
                    table.clone()
                } else {
                    existing.clone()
                });
            }
            *releases = rebuilt;
        }
        Some(_) => return Err(format!("already records version `{version}`")),
        None => releases.push(table),
    }
    let mut text = document.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A sync's progress inside a release: the release reports its own steps.
struct Silent;

impl crate::sync::Progress for Silent {
    fn sessions(&self, _seen: u64, _kept: u64) {}
    fn finish(&self) {}
}

/// Commits the product file of a pre-order.
fn commit_preorder(
    root: &Path,
    slug: &str,
    release: &Release,
    also: &[PathBuf],
) -> Result<bool, ReleaseError> {
    let repo = crate::git::open(root)?;
    let path = PathBuf::from(crate::store::PRODUCTS_DIR).join(format!("{slug}.toml"));
    let mut paths = vec![path.as_path()];
    paths.extend(also.iter().map(PathBuf::as_path));
    let message = format!(
        "preorder {slug} {}\n\nprice {}, payment link {}",
        release.version, release.stripe_price, release.payment_link_url
    );
    Ok(crate::git::commit_paths(&repo, &paths, &message)?.is_some())
}

/// Commits the product file and tags the commit `<slug>-v<version>`.
/// Returns whether anything was committed or tagged.
fn commit_and_tag(
    root: &Path,
    slug: &str,
    release: &Release,
    also: &[PathBuf],
) -> Result<bool, ReleaseError> {
    let repo = crate::git::open(root)?;
    let path = PathBuf::from(crate::store::PRODUCTS_DIR).join(format!("{slug}.toml"));
    let mut paths = vec![path.as_path()];
    paths.extend(also.iter().map(PathBuf::as_path));
    let message = format!(
        "release {slug} {}\n\nprice {}, payment link {}\n{}",
        release.version,
        release.stripe_price,
        release.payment_link_url,
        release
            .assets
            .iter()
            .map(|a| format!("{} {} bytes sha256:{}", a.name, a.size, a.sha256))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let committed = crate::git::commit_paths(&repo, &paths, &message)?.is_some();
    let head = repo
        .head()
        .and_then(|head| head.peel_to_commit())
        .map_err(crate::git::GitError::from)?;
    let tagged = match repo.revparse_single(&format!("refs/tags/{}", release.tag)) {
        Ok(existing) => {
            let target = existing
                .peel_to_commit()
                .map_err(crate::git::GitError::from)?;
            if target.id() != head.id() {
                // The tag names an earlier commit of the same release (a
                // re-run re-recorded it): move it only if it is ours.
                let expected = format!("release {slug} {}", release.version);
                let ours = target
                    .summary()
                    .ok()
                    .flatten()
                    .is_some_and(|summary| summary == expected);
                if !ours {
                    return Err(ReleaseError::TagElsewhere {
                        tag: release.tag.clone(),
                    });
                }
                tag_commit(&repo, &release.tag, &head, true)?;
                true
            } else {
                false
            }
        }
        Err(_) => {
            tag_commit(&repo, &release.tag, &head, false)?;
            true
        }
    };
    Ok(committed || tagged)
}

fn tag_commit(
    repo: &git2::Repository,
    tag: &str,
    commit: &git2::Commit<'_>,
    force: bool,
) -> Result<(), ReleaseError> {
    let signature = repo
        .signature()
        .map(|signature| signature.to_owned())
        .or_else(|_| git2::Signature::now("shop", "shop@localhost"))
        .map_err(crate::git::GitError::from)?;
    repo.tag(
        tag,
        commit.as_object(),
        &signature,
        &format!("shop release {tag}"),
        force,
    )
    .map_err(crate::git::GitError::from)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("version `{version}` is not newer than the latest release of its line, `{latest}`")]
    VersionNotNewer { version: String, latest: String },
    #[error(
        "`{name}` is not one of the files of `{slug}` ({})",
        crate::store::quoted_list(expected)
    )]
    UnexpectedFile {
        name: String,
        slug: String,
        expected: Vec<String>,
    },
    #[error("the release of `{slug}` lacks {}", crate::store::quoted_list(missing))]
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
    GitHub(#[from] crate::github::GitHubError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}

inventory::submit!(crate::error::Registered::of::<ReleaseError>());

impl crate::error::Hint for ReleaseError {
    fn hint(&self) -> String {
        match self {
            ReleaseError::Store(error) => error.hint(),
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

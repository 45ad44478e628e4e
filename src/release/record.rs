//! What a release leaves in the store: the `[[release]]` table in the
//! product file (written so that it reads back as written), a commit, and
//! for a version that is out, its tag.

use std::path::{Path, PathBuf};

use super::{Link, ReleaseError, Releasing};
use crate::git::GitError;
use crate::store::product::Defaults;
use crate::store::{Asset, Product, Release, Store, product};
use crate::{atomic, git, store, sync};

impl Releasing<'_> {
    /// The release's record in the product file, written when it differs
    /// from what is recorded.
    pub(super) fn record(
        &self,
        product_id: String,
        price_id: String,
        link: &Link,
        assets: Vec<Asset>,
    ) -> Result<Release, ReleaseError> {
        let request = self.request;
        let recorded = &self.recorded;
        let release = Release {
            version: request.version.clone(),
            // The day the files came out (a pre-order's, the day it opened).
            date: recorded
                .as_ref()
                .filter(|recorded| recorded.preorder == request.preorder)
                .map_or(request.today, |r| r.date),
            tag: self.tag.clone(),
            stripe_product: product_id,
            stripe_price: price_id,
            payment_link: link.id.clone(),
            payment_link_url: link.url.clone(),
            gift_link: link.gift_id.clone(),
            gift_link_url: link.gift_url.clone(),
            // A re-run keeps what was recorded unless told new notes.
            notes: match (&request.notes, recorded) {
                (None, Some(recorded)) => recorded.notes.clone(),
                (given, _) => given
                    .as_deref()
                    .map(|notes| notes.trim().to_owned())
                    .filter(|notes| !notes.is_empty()),
            },
            preorder: request.preorder,
            // What a pre-order announces; a release's files make it moot.
            out: match (recorded, request.preorder) {
                (_, false) => None,
                (Some(recorded), true) => request.out.or(recorded.out),
                (None, true) => request.out,
            },
            price: match (recorded, request.preorder) {
                (_, false) => None,
                (Some(recorded), true) => request.price.or(recorded.price),
                (None, true) => request.price,
            },
            contains: self.contains.clone(),
            assets,
        };
        if recorded.as_ref() != Some(&release) {
            record(request.store, self.product, &release, recorded.is_some())?;
            self.reporter.step(&format!(
                "recorded the release in products/{}.toml",
                self.product.slug
            ));
        }
        Ok(release)
    }

    /// Commits the product file of a pre-order (no tag: the version is not
    /// out until its files are).
    pub(super) fn commit_preorder(&self, release: &Release) -> Result<(), ReleaseError> {
        let request = self.request;
        if commit_preorder(
            &request.store.root,
            &self.product.slug,
            release,
            &request.also_commit,
        )? {
            self.reporter.step("committed the pre-order");
        }
        Ok(())
    }

    /// Commits the product file and tags the commit.
    pub(super) fn commit_and_tag(&self, release: &Release) -> Result<(), ReleaseError> {
        let request = self.request;
        if commit_and_tag(
            &request.store.root,
            &self.product.slug,
            release,
            &request.also_commit,
        )? {
            self.reporter
                .step(&format!("committed and tagged `{}`", self.tag));
        }
        Ok(())
    }
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
        .join(store::PRODUCTS_DIR)
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
    let defaults = Defaults::from(&store.settings);
    let reread =
        product::parse(&product.slug, &label, &updated, Some(&defaults)).map_err(|problems| {
            ReleaseError::NotRecorded {
                path: path.clone(),
                problem: format!("would become invalid: {}", problems[0]),
            }
        })?;
    if reread.release(&release.version) != Some(release) {
        return Err(ReleaseError::NotRecorded {
            path: path.clone(),
            problem: "would not read back as the release written".into(),
        });
    }
    atomic::replace(&path, updated.as_bytes(), &root.join(".shop")).map_err(io)
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
    // A free product's release has no Stripe objects, and no keys for them.
    for (key, id) in [
        ("stripe_product", &release.stripe_product),
        ("stripe_price", &release.stripe_price),
        ("payment_link", &release.payment_link),
        ("payment_link_url", &release.payment_link_url),
        ("gift_link", &release.gift_link),
        ("gift_link_url", &release.gift_link_url),
    ] {
        if !id.is_empty() {
            table[key] = value(id);
        }
    }
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
pub(super) struct Silent;

impl sync::Progress for Silent {
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
    let repo = git::open(root)?;
    let path = PathBuf::from(store::PRODUCTS_DIR).join(format!("{slug}.toml"));
    let mut paths = vec![path.as_path()];
    paths.extend(also.iter().map(PathBuf::as_path));
    let message = format!(
        "preorder {slug} {}\n\nprice {}, payment link {}",
        release.version, release.stripe_price, release.payment_link_url
    );
    Ok(git::commit_paths(&repo, &paths, &message)?.is_some())
}

/// Commits the product file and tags the commit `<slug>-v<version>`.
/// Returns whether anything was committed or tagged.
fn commit_and_tag(
    root: &Path,
    slug: &str,
    release: &Release,
    also: &[PathBuf],
) -> Result<bool, ReleaseError> {
    let repo = git::open(root)?;
    let path = PathBuf::from(store::PRODUCTS_DIR).join(format!("{slug}.toml"));
    let mut paths = vec![path.as_path()];
    paths.extend(also.iter().map(PathBuf::as_path));
    let selling = match release.stripe_price.is_empty() {
        true => "free: no Stripe objects".to_owned(),
        false => format!(
            "price {}, payment link {}",
            release.stripe_price, release.payment_link_url
        ),
    };
    let message = format!(
        "release {slug} {}\n\n{selling}\n{}",
        release.version,
        release
            .assets
            .iter()
            .map(|a| format!("{} {} bytes sha256:{}", a.name, a.size, a.sha256))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let committed = git::commit_paths(&repo, &paths, &message)?.is_some();
    let head = repo
        .head()
        .and_then(|head| head.peel_to_commit())
        .map_err(GitError::from)?;
    let tagged = match repo.revparse_single(&format!("refs/tags/{}", release.tag)) {
        Ok(existing) => {
            let target = existing.peel_to_commit().map_err(GitError::from)?;
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
        .map_err(GitError::from)?;
    repo.tag(
        tag,
        commit.as_object(),
        &signature,
        &format!("shop release {tag}"),
        force,
    )
    .map_err(GitError::from)?;
    Ok(())
}

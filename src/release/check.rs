//! What a release checks before it makes anything: the version against the
//! product's releases, the files against the product (named, present,
//! untracked, hashed, unchanged on a re-run), a bundle's contents, GitHub's
//! token and settings, and what Stripe already has.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Files, LocalFile, ReleaseError, Releasing, Reporter, Request, stripe_product_id, tag};
use crate::store::{Product, Release, Store};
use crate::{github, store, stripe};

/// Every check, in order, and the release they set up.
pub(super) async fn everything<'a>(
    request: &'a Request<'a>,
    stripe: Option<&'a stripe::Client>,
    files_target: &Files,
    reporter: &'a dyn Reporter,
) -> Result<Releasing<'a>, ReleaseError> {
    if let Files::GitHub(_) = files_target {
        refuse_too_large(&request.files)?;
    }
    let (files, recorded) = check(request)?;
    let product = request.store.product(request.slug)?;
    if recorded.is_none() {
        warn_same_files(request, product, &files, reporter);
    }
    let known_product = product.latest().map_or_else(
        || stripe_product_id(&product.slug),
        |r| r.stripe_product.clone(),
    );
    let existing_product = match stripe {
        Some(stripe) if !product.free => stripe.product(&known_product).await?,
        _ => None,
    };
    if product.free && request.preorder {
        return Err(ReleaseError::Free {
            slug: product.slug.clone(),
        });
    }
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
    Ok(Releasing {
        request,
        stripe,
        reporter,
        product,
        files,
        recorded,
        existing_product,
        known_product,
        contains,
        immutable,
        version: request.version.to_string(),
        tag: tag(&product.slug, &request.version),
        dry: request.dry_run,
        created: Vec::new(),
    })
}

/// The same bytes as the version before: buyers would get nothing new.
fn warn_same_files(
    request: &Request<'_>,
    product: &Product,
    files: &[LocalFile],
    reporter: &dyn Reporter,
) {
    if let Some(previous) = product
        .releases
        .iter()
        .rev()
        .find(|release| !release.preorder && release.version < request.version)
        && !files.is_empty()
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
) -> Result<Vec<store::Contained>, ReleaseError> {
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
            Ok(store::Contained {
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

pub(super) fn hash_file(path: &Path) -> Result<(u64, String), ReleaseError> {
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

/// Files GitHub could never take: refused before anything is made.
fn refuse_too_large(paths: &[PathBuf]) -> Result<(), ReleaseError> {
    for path in paths {
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.len() > github::MAX_ASSET_SIZE
        {
            return Err(ReleaseError::TooLarge {
                path: path.clone(),
                size: metadata.len(),
            });
        }
    }
    Ok(())
}

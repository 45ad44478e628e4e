//! Where a release's files go: a GitHub release (a draft found again on a
//! re-run, each asset uploaded once, then published) or the store's local
//! files folder, each file copied and hashed as it goes.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::check::hash_file;
use super::{Files, LocalFile, ReleaseError, Releasing, Reporter};
use crate::github;
use crate::github::GitHub;
use crate::store::{Asset, Product, Release};

impl Releasing<'_> {
    /// The files, where they go; none for a pre-order or a bundle.
    pub(super) async fn put_files(&mut self, target: &Files) -> Result<Vec<Asset>, ReleaseError> {
        let request = self.request;
        let product = self.product;
        if request.preorder {
            self.reporter.step("no files yet: a pre-order");
            return Ok(Vec::new());
        }
        if product.is_bundle() {
            self.reporter.step(&format!(
                "a bundle of {}",
                self.contains
                    .iter()
                    .map(|c| format!("`{}` {}", c.slug, c.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Ok(Vec::new());
        }
        match target {
            Files::GitHub(github) => {
                // The GitHub release's body: the notes, or the name and version.
                let notes = match &request.notes {
                    Some(notes) => notes.clone(),
                    None => format!("{} {}", product.name, request.version),
                };
                let upload = Upload {
                    tag: &self.tag,
                    notes: &notes,
                    files: &self.files,
                    recorded: self.recorded.as_ref(),
                    immutable: self.immutable,
                    dry: self.dry,
                };
                upload_to_github(github, product, upload, self.reporter, &mut self.created).await
            }
            Files::Local(dir) => copy_locally(
                dir,
                &product.slug,
                &self.version,
                &self.files,
                self.dry,
                self.reporter,
                &mut self.created,
            ),
        }
    }
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
        let stored = github::stored_name(&file.name);
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

fn asset_record(file: &LocalFile, github: Option<&github::Asset>) -> Asset {
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

//! Buyers' stamped copies: made on a first download, off the async
//! threads, once however many downloads ask at the same moment, and kept
//! under `.shop/stamped/` (a PDF copy as the tail appended to the original,
//! an EPUB copy whole) within a size budget (`[serve] stamped_cache`),
//! oldest dropped first. A copy dropped from the disk is made again when
//! next asked for. Originals on GitHub are fetched once into
//! `.shop/originals/`, checked against the release's SHA-256.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::github::Download;
use crate::stamp::{Format, Licence};
use crate::store::values;
use crate::store::{Asset, Product, Release};
use crate::{dates, github, ledger, stamp, tokens};

/// What a buyer's copy of `file` says, when the product stamps it.
pub fn licence(
    key: &tokens::Key,
    store: &crate::store::Store,
    product: &Product,
    purchase: &crate::state::Entitlement,
    file: &str,
) -> Option<stamp::Licence> {
    use crate::store::StampMode;
    let mode = store.stamping(product);
    if mode == StampMode::Off || Format::of(file).is_none() {
        return None;
    }
    let date = dates::timestamp(purchase.created);
    Some(stamp::Licence {
        text: values::stamp_line(
            &store.settings.stamp.text,
            &purchase.email,
            "",
            &ledger::order_number(&purchase.id),
            date.get(..10).unwrap_or(&date),
        ),
        mark: tokens::stamp_mark(key, &purchase.id),
        every_page: mode == StampMode::EveryPage,
    })
}

/// The buyer's stamped copy of `asset` (made on the first call, then
/// kept), from the release's file wherever the server has it.
pub async fn buyer_copy(
    app: &super::App,
    purchase: &str,
    product: &Product,
    release: &Release,
    asset: &Asset,
    licence: Licence,
) -> Result<Arc<Copy>, String> {
    let source = match &app.files_from {
        super::Files::Local(dir) => Source::Local(super::local_file(
            dir,
            &product.slug,
            &release.version.to_string(),
            &asset.name,
        )),
        super::Files::GitHub { client } => Source::GitHub(client),
    };
    app.copies
        .copy(source, purchase, product, release, asset, licence)
        .await
}

/// One buyer's copy: its parts in order, its size and checksum.
#[derive(Debug)]
pub struct Copy {
    pub parts: Vec<Part>,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug)]
pub enum Part {
    /// A whole file on disk of this length.
    File(PathBuf, u64),
    Memory(Bytes),
}

type Cells<T> = Mutex<HashMap<String, Arc<OnceCell<Arc<T>>>>>;

/// The copies and originals, each made once.
#[derive(Debug)]
pub struct Copies {
    dir: PathBuf,
    originals: PathBuf,
    /// The most the copies may take on disk before the oldest go.
    budget: u64,
    copies: Cells<Copy>,
    fetched: Cells<PathBuf>,
}

/// Where a stamped file's original comes from.
#[derive(Debug)]
pub enum Source<'a> {
    Local(PathBuf),
    GitHub(&'a github::GitHub),
}

impl Copies {
    pub fn new(store_root: &Path, budget: u64) -> Copies {
        Copies {
            dir: store_root.join(".shop").join("stamped"),
            originals: store_root.join(".shop").join("originals"),
            budget,
            copies: Mutex::default(),
            fetched: Mutex::default(),
        }
    }

    /// The copy of `asset` for `purchase`, made if it is not yet.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        source: Source<'_>,
        purchase: &str,
        product: &Product,
        release: &Release,
        asset: &Asset,
        licence: Licence,
    ) -> Result<Arc<Copy>, String> {
        let format = Format::of(&asset.name).ok_or("not a stamped format")?;
        let key = key_of(purchase, product, release, asset);
        // A copy the budget dropped from the disk is made again.
        if let Some(made) = cell(&self.copies, &key).get()
            && !made.on_disk()
        {
            drop_cell(&self.copies, &key);
        }
        let cell = cell(&self.copies, &key);
        let made = cell
            .get_or_try_init(|| async {
                let original = match source {
                    Source::Local(path) => path,
                    Source::GitHub(github) => self.original(github, asset).await?,
                };
                let (dir, name, key) = (self.dir.clone(), asset.name.clone(), key.clone());
                let (original_size, budget) = (asset.size, self.budget);
                tokio::task::spawn_blocking(move || {
                    make(
                        &dir,
                        &key,
                        &original,
                        original_size,
                        &name,
                        format,
                        &licence,
                        budget,
                    )
                })
                .await
                .map_err(|error| error.to_string())?
                .map(Arc::new)
            })
            .await;
        match made {
            Ok(copy) => Ok(copy.clone()),
            Err(error) => {
                // Not kept: the next download tries again.
                forget(&self.copies, &key);
                Err(error)
            }
        }
    }

    /// The original of a GitHub asset on disk, fetched once and checked.
    async fn original(&self, github: &github::GitHub, asset: &Asset) -> Result<PathBuf, String> {
        let id = asset
            .github_asset_id
            .ok_or("the release records no GitHub asset id")?;
        let path = self.originals.join(&asset.sha256);
        let cell = cell(&self.fetched, &asset.sha256);
        let fetched = cell
            .get_or_try_init(|| async {
                if path.exists() {
                    return Ok(Arc::new(path.clone()));
                }
                let response = match github.asset_download(id).await.map_err(|e| e.to_string())? {
                    Download::Redirect { url, .. } => {
                        github.fetch_url(&url).await.map_err(|e| e.to_string())?
                    }
                    Download::Body { response, .. } => response,
                };
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                let found = hex::encode(Sha256::digest(&bytes));
                if found != asset.sha256 {
                    return Err(format!(
                        "GitHub's `{}` is not the file released (SHA-256 {found})",
                        asset.name
                    ));
                }
                let (dir, target) = (self.originals.clone(), path.clone());
                tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &bytes))
                    .await
                    .map_err(|e| e.to_string())??;
                Ok(Arc::new(path.clone()))
            })
            .await;
        match fetched {
            Ok(path) => Ok((**path).clone()),
            Err(error) => {
                forget(&self.fetched, &asset.sha256);
                Err(error)
            }
        }
    }

    /// The size and checksum of a copy already made, for the download page.
    pub fn known(
        &self,
        purchase: &str,
        product: &Product,
        release: &Release,
        asset: &Asset,
    ) -> Option<(u64, String)> {
        let key = key_of(purchase, product, release, asset);
        let cells = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        let copy = cells.get(&key)?.get()?;
        Some((copy.size, copy.sha256.clone()))
    }
}

impl Copy {
    /// Whether every file of the copy is still on disk.
    fn on_disk(&self) -> bool {
        self.parts.iter().all(|part| match part {
            Part::File(path, _) => path.exists(),
            Part::Memory(_) => true,
        })
    }
}

/// The name a purchase's copy of a file is kept under.
fn key_of(purchase: &str, product: &Product, release: &Release, asset: &Asset) -> String {
    hex::encode(Sha256::digest(
        format!(
            "{purchase}\n{}\n{}\n{}",
            product.slug, release.version, asset.name
        )
        .as_bytes(),
    ))
}

fn cell<T>(cells: &Cells<T>, key: &str) -> Arc<OnceCell<Arc<T>>> {
    let mut cells = cells.lock().unwrap_or_else(|p| p.into_inner());
    cells.entry(key.to_owned()).or_default().clone()
}

/// Forgets a made value, so that the next ask makes it again.
fn drop_cell<T>(cells: &Cells<T>, key: &str) {
    cells.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
}

fn forget<T>(cells: &Cells<T>, key: &str) {
    let mut cells = cells.lock().unwrap_or_else(|p| p.into_inner());
    if cells.get(key).is_some_and(|cell| cell.get().is_none()) {
        cells.remove(key);
    }
}

/// Makes (or finds on disk) one copy: a blocking job.
#[allow(clippy::too_many_arguments)]
fn make(
    dir: &Path,
    key: &str,
    original: &Path,
    original_size: u64,
    name: &str,
    format: Format,
    licence: &Licence,
    budget: u64,
) -> Result<Copy, String> {
    let data = dir.join(format!(
        "{key}.{}",
        match format {
            Format::Pdf => "tail",
            Format::Epub => "epub",
        }
    ));
    let meta = dir.join(format!("{key}.meta"));
    let read_meta = || -> Option<(u64, String)> {
        let text = std::fs::read_to_string(&meta).ok()?;
        let (size, sha256) = text.trim().split_once(' ')?;
        Some((size.parse().ok()?, sha256.to_owned()))
    };
    let io = |error: std::io::Error| format!("cannot keep a stamped copy: {error}");
    let (size, sha256) = match read_meta() {
        Some(known) if data.exists() => known,
        _ => {
            let bytes = std::fs::read(original).map_err(io)?;
            if bytes.len() as u64 != original_size {
                return Err(format!("`{}` is not the size released", original.display()));
            }
            let (written, digest) = match format {
                Format::Pdf => {
                    let mut hasher = Sha256::new();
                    hasher.update(&bytes);
                    let tail = stamp::pdf_tail(bytes, name, licence).map_err(|e| e.to_string())?;
                    hasher.update(&tail);
                    (tail, hasher.finalize())
                }
                Format::Epub => {
                    let copy = stamp::epub(&bytes, name, licence).map_err(|e| e.to_string())?;
                    let digest = Sha256::digest(&copy);
                    (copy, digest)
                }
            };
            let size = match format {
                Format::Pdf => original_size + written.len() as u64,
                Format::Epub => written.len() as u64,
            };
            write_atomically(dir, &data, &written)?;
            let sha256 = hex::encode(digest);
            write_atomically(dir, &meta, format!("{size} {sha256}\n").as_bytes())?;
            evict(dir, budget, &data);
            (size, sha256)
        }
    };
    let parts = match format {
        Format::Pdf => vec![
            Part::File(original.to_owned(), original_size),
            Part::Memory(Bytes::from(std::fs::read(&data).map_err(io)?)),
        ],
        Format::Epub => vec![Part::File(data, size)],
    };
    Ok(Copy {
        parts,
        size,
        sha256,
    })
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let io = |error: std::io::Error| format!("cannot write `{}`: {error}", path.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// Drops the oldest copies until the folder is within `budget` bytes,
/// never `keep` (the copy just made: a buyer is waiting for it).
fn evict(dir: &Path, budget: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            Some((metadata.modified().ok()?, metadata.len(), entry.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= budget {
            break;
        }
        if path.extension().is_some_and(|e| e == "meta") || path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            let _ = std::fs::remove_file(path.with_extension("meta"));
            total = total.saturating_sub(len);
        }
    }
}

//! Reading a file the store names (a cover), never one outside it.
//!
//! A path in a product file is checked lexically when it is parsed
//! (`product::check_cover`), but a symlink in the store can still point
//! anywhere: at `/etc/passwd`, at a paid file under `.shop/files`, at
//! `/dev/zero`. So a file is read only when its real path, every symlink
//! resolved, is a regular file inside the store and outside `.shop/`, and
//! no larger than the caller's cap.

use crate::error;
use crate::error::Registered;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The largest cover served: a book's cover at print resolution is a few
/// megabytes.
pub const COVER_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Why a file the store names is not read.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("`{}` does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("`{}` leads outside the store (to `{}`)", path.display(), target.display())]
    Outside { path: PathBuf, target: PathBuf },
    #[error("`{}` leads into `.shop/`, the server's own folder", path.display())]
    Private { path: PathBuf },
    #[error("`{}` is a symlink", path.display())]
    Symlink { path: PathBuf },
    #[error("`{}` is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("`{}` is larger than {} bytes", path.display(), max)]
    TooLarge { path: PathBuf, max: u64 },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

inventory::submit!(Registered::of::<Refusal>());

impl error::Hint for Refusal {
    fn hint(&self) -> String {
        match self {
            Refusal::Missing { .. } => "add the file to the store, or correct the path".into(),
            Refusal::Outside { .. } | Refusal::Private { .. } | Refusal::Symlink { .. } => {
                "put the file itself in the store (a copy, not a symlink)".into()
            }
            Refusal::NotAFile { .. } => "name an image file".into(),
            Refusal::TooLarge { .. } => {
                "make the image smaller (a cover needs a few megabytes at most)".into()
            }
            Refusal::Io { .. } => "check the file's permissions".into(),
        }
    }
}

/// Where `relative` really is, if it is a regular file inside `root` and
/// outside `root/.shop`, and whether it was reached through a symlink.
pub fn inside(root: &Path, relative: &str) -> Result<(PathBuf, bool), Refusal> {
    let path = root.join(relative);
    let real_root = root.canonicalize().map_err(|source| Refusal::Io {
        path: root.to_owned(),
        source,
    })?;
    let target = match path.canonicalize() {
        Ok(target) => target,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refusal::Missing { path });
        }
        Err(source) => return Err(Refusal::Io { path, source }),
    };
    if !target.starts_with(&real_root) {
        return Err(Refusal::Outside { path, target });
    }
    if target.starts_with(real_root.join(".shop")) {
        return Err(Refusal::Private { path });
    }
    let metadata = std::fs::metadata(&target).map_err(|source| Refusal::Io {
        path: path.clone(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(Refusal::NotAFile { path });
    }
    let linked = target != real_root.join(relative);
    Ok((target, linked))
}

/// The bytes of `relative` in the store (see [`inside`]), at most `max`;
/// a symlink is refused even to a file of the store (a cover is a file).
pub fn read(root: &Path, relative: &str, max: u64) -> Result<Vec<u8>, Refusal> {
    let (target, linked) = inside(root, relative)?;
    if linked {
        return Err(Refusal::Symlink {
            path: root.join(relative),
        });
    }
    let file = std::fs::File::open(&target).map_err(|source| Refusal::Io {
        path: root.join(relative),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Refusal::Io {
            path: root.join(relative),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(Refusal::TooLarge {
            path: root.join(relative),
            max,
        });
    }
    Ok(bytes)
}

/// Whether `path`, a file of the local files folder `dir`, is a regular
/// file that really is in that folder (no symlink on the way out of it).
pub fn is_within(dir: &Path, path: &Path) -> std::io::Result<bool> {
    let (real_dir, real_path) = (dir.canonicalize()?, path.canonicalize()?);
    let metadata = std::fs::symlink_metadata(path)?;
    Ok(real_path.starts_with(real_dir) && metadata.file_type().is_file())
}

/// The image type an image's first bytes say it is.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(&bytes[8..12], b"avif" | b"avis")
    {
        Some("image/avif")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_store_and_outside_shop_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        std::fs::create_dir_all(root.join("covers")).unwrap();
        std::fs::create_dir_all(root.join(".shop/files")).unwrap();
        std::fs::write(root.join("covers/book.png"), b"\x89PNG\r\n\x1a\nrest").unwrap();
        std::fs::write(root.join(".shop/files/paid.pdf"), b"%PDF").unwrap();
        std::fs::write(dir.path().join("secret"), b"secret").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join("covers").join(name)).unwrap();
        };
        link(&dir.path().join("secret"), "outside.png");
        link(&root.join(".shop/files/paid.pdf"), "paid.png");
        link(Path::new("/dev/zero"), "zero.png");
        link(&root.join("covers/book.png"), "alias.png");

        assert_eq!(
            read(&root, "covers/book.png", 100).unwrap(),
            b"\x89PNG\r\n\x1a\nrest"
        );
        assert!(matches!(
            read(&root, "covers/outside.png", 100),
            Err(Refusal::Outside { .. })
        ));
        assert!(matches!(
            read(&root, "covers/paid.png", 100),
            Err(Refusal::Private { .. })
        ));
        assert!(matches!(
            read(&root, "covers/zero.png", 100),
            Err(Refusal::Outside { .. })
        ));
        assert!(matches!(
            read(&root, "covers/none.png", 100),
            Err(Refusal::Missing { .. })
        ));
        assert!(matches!(
            read(&root, "covers/book.png", 4),
            Err(Refusal::TooLarge { .. })
        ));
        // A symlink within the store is found, said to be one, not read.
        assert!(inside(&root, "covers/alias.png").unwrap().1);
        assert!(!inside(&root, "covers/book.png").unwrap().1);
        assert!(matches!(
            read(&root, "covers/alias.png", 100),
            Err(Refusal::Symlink { .. })
        ));
    }

    #[test]
    fn an_image_is_what_its_bytes_say() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_type(b"GIF89a......"), Some("image/gif"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"\0\0\0\x1cftypavif"), Some("image/avif"));
        assert_eq!(image_type(b"just some text"), None);
    }
}

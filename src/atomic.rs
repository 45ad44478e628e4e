//! Replacing a file so that a reader, or a process killed at any point,
//! sees either the old content or the new one, never a mix or nothing.

use crate::fault;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file in `scratch` (the store's `.shop/`,
/// which git ignores: a process killed before the rename leaves nothing a
/// `git add -A` would commit), syncs it, renames it over `path` and syncs
/// the folder (so the rename survives a power loss). Should `scratch` be
/// on another file system, the temporary goes beside `path` instead.
pub fn replace(path: &Path, bytes: &[u8], scratch: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".tmp{}", std::process::id()));
    std::fs::create_dir_all(scratch)?;
    let temporary = scratch.join(&temporary_name);
    write_synced(&temporary, bytes)?;
    fault::point("atomic:written");
    if let Err(error) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        if error.kind() != std::io::ErrorKind::CrossesDevices {
            return Err(error);
        }
        let beside = path.with_file_name(&temporary_name);
        write_synced(&beside, bytes)?;
        if let Err(error) = std::fs::rename(&beside, path) {
            let _ = std::fs::remove_file(&beside);
            return Err(error);
        }
    }
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let scratch = dir.path().join(".shop");
        super::replace(&path, b"new\n", &scratch).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name != ".shop")
            .collect();
        assert_eq!(names, ["grants.jsonl"]);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }
}

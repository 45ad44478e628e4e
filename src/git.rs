//! The store's git repository: make one, and commit exactly the paths a
//! command wrote, whatever else the author has staged or changed.
//!
//! Commits are built from `HEAD`'s tree plus the named paths, so `shop`
//! never sweeps an author's unrelated work into its own commits.
//!
//! Whatever instant a command dies at, git's index never stages the
//! deletion of a file shop committed: the commit object is written first
//! (nothing points at it), then the index takes the new paths (an atomic
//! rename by libgit2), and only then does `HEAD` move. Killed in between,
//! the index is ahead of `HEAD` with exactly what is on disk, and the next
//! run commits it. An index left behind `HEAD` (by an older `shop`, or by
//! hand) is found and brought up to date by [`repair_index`].

use std::path::Path;

use crate::error::Registered;
use crate::{error, fault};
use git2::{IndexAddOption, Repository, Signature};

/// Opens the git repository whose work tree is `root`.
pub fn open(root: &Path) -> Result<Repository, GitError> {
    Repository::open(root).map_err(|source| GitError::Open {
        root: root.to_owned(),
        source,
    })
}

/// Of `paths` (relative to the work tree), those whose content on disk is
/// not what `HEAD` has: changed, new or staged. A path git ignores, or
/// one that does not exist, is none.
pub fn uncommitted(repo: &Repository, paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    paths
        .iter()
        .filter(|path| {
            repo.status_file(path).is_ok_and(|status| {
                !status.is_ignored() && !status.is_empty() && status != git2::Status::CURRENT
            })
        })
        .cloned()
        .collect()
}

/// Opens the repository at `root`, or makes a new one with branch `main`.
pub fn open_or_init(root: &Path) -> Result<Repository, GitError> {
    match Repository::open(root) {
        Ok(repo) => Ok(repo),
        Err(error) if error.code() == git2::ErrorCode::NotFound => {
            let mut options = git2::RepositoryInitOptions::new();
            options.initial_head("main");
            Repository::init_opts(root, &options).map_err(|source| GitError::Open {
                root: root.to_owned(),
                source,
            })
        }
        Err(source) => Err(GitError::Open {
            root: root.to_owned(),
            source,
        }),
    }
}

/// Commits the files at `paths` (relative to the work tree, as they are on
/// disk now; a missing file is removed) on top of `HEAD`, with `message`.
/// Returns the new commit's id, or `None` when nothing changed.
pub fn commit_paths(
    repo: &Repository,
    paths: &[&Path],
    message: &str,
) -> Result<Option<git2::Oid>, GitError> {
    let workdir = repo.workdir().ok_or(GitError::Bare)?.to_owned();
    let head_commit = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(error)
            if matches!(
                error.code(),
                git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
            ) =>
        {
            None
        }
        Err(error) => return Err(error.into()),
    };

    // A private index from HEAD's tree, so only `paths` change.
    let mut index = git2::Index::new()?;
    if let Some(commit) = &head_commit {
        index.read_tree(&commit.tree()?)?;
    }
    for path in paths {
        let full = workdir.join(path);
        if full.is_dir() {
            add_dir(repo, &mut index, &workdir, path)?;
        } else if full.exists() {
            add_file(repo, &mut index, &workdir, path)?;
        } else {
            index.remove_path(path)?;
        }
    }
    let tree_id = index.write_tree_to(repo)?;
    if let Some(commit) = &head_commit
        && commit.tree_id() == tree_id
    {
        return Ok(None);
    }
    let tree = repo.find_tree(tree_id)?;
    let signature = signature(repo)?;
    let parents: Vec<&git2::Commit<'_>> = head_commit.iter().collect();
    // The commit object, not yet on any branch.
    let oid = repo.commit(None, &signature, &signature, message, &tree, &parents)?;
    fault::point("git:commit-written");

    // Bring the repository's own index up to date for these paths before
    // HEAD moves, so `git status` shows them clean and no instant has the
    // index behind HEAD; other staged work stays staged.
    let mut repo_index = repo.index()?;
    for path in paths {
        let full = workdir.join(path);
        if full.is_dir() {
            repo_index.add_all([path], IndexAddOption::DEFAULT, None)?;
        } else if full.exists() {
            repo_index.add_path(path)?;
        } else {
            let _ = repo_index.remove_path(path);
        }
    }
    repo_index.write()?;
    fault::point("git:index-written");

    move_head(
        repo,
        oid,
        head_commit.as_ref().map(git2::Commit::id),
        message,
    )?;
    fault::point("git:head-moved");
    Ok(Some(oid))
}

/// Points HEAD's branch at `oid`, if it still points at `expected` (no
/// other process committed in between).
fn move_head(
    repo: &Repository,
    oid: git2::Oid,
    expected: Option<git2::Oid>,
    message: &str,
) -> Result<(), GitError> {
    let head = repo.find_reference("HEAD")?;
    let branch = head
        .symbolic_target()
        .ok()
        .flatten()
        .unwrap_or("HEAD")
        .to_owned();
    let log = format!("commit: {}", message.lines().next().unwrap_or_default());
    match expected {
        Some(current) => {
            repo.reference_matching(&branch, oid, true, current, &log)?;
        }
        None => {
            repo.reference(&branch, oid, false, &log)?;
        }
    }
    Ok(())
}

/// Makes git's index agree with HEAD for files under `prefixes` where the
/// index lags: a file of HEAD that the index lacks or holds at another
/// content, while the work tree has exactly HEAD's content (so the index
/// is the odd one out, as after a run killed between moving HEAD and
/// writing the index). Returns how many entries were repaired. An author's
/// own staged change (the work tree differs from HEAD) is left alone.
pub fn repair_index(repo: &Repository, prefixes: &[&str]) -> Result<usize, GitError> {
    let Some(workdir) = repo.workdir().map(Path::to_owned) else {
        return Err(GitError::Bare);
    };
    let tree = match repo.head() {
        Ok(head) => head.peel_to_tree()?,
        Err(_) => return Ok(0),
    };
    let mut index = repo.index()?;
    let mut lagging = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return git2::TreeWalkResult::Ok;
        }
        let path = format!("{dir}{}", entry.name().unwrap_or_default());
        if !prefixes
            .iter()
            .any(|prefix| path.starts_with(&format!("{prefix}/")) || path == *prefix)
        {
            return git2::TreeWalkResult::Ok;
        }
        let staged = index.get_path(Path::new(&path), 0).map(|e| e.id);
        if staged != Some(entry.id()) {
            lagging.push((path, entry.id()));
        }
        git2::TreeWalkResult::Ok
    })?;
    let mut repaired = 0;
    for (path, id) in lagging {
        let on_disk = git2::Oid::hash_file(git2::ObjectType::Blob, workdir.join(&path)).ok();
        if on_disk == Some(id) {
            index.add_path(Path::new(&path))?;
            repaired += 1;
        }
    }
    if repaired > 0 {
        index.write()?;
    }
    Ok(repaired)
}

fn add_file(
    repo: &Repository,
    index: &mut git2::Index,
    workdir: &Path,
    path: &Path,
) -> Result<(), GitError> {
    let full = workdir.join(path);
    let blob = repo.blob_path(&full)?;
    let metadata = std::fs::metadata(&full).map_err(|source| GitError::Io {
        path: full.clone(),
        source,
    })?;
    let mode = if is_executable(&metadata) {
        0o100755
    } else {
        0o100644
    };
    let path_str = path.to_str().ok_or_else(|| GitError::NotUtf8 {
        path: path.to_owned(),
    })?;
    let entry = git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(metadata.len()).unwrap_or(u32::MAX),
        id: blob,
        flags: 0,
        flags_extended: 0,
        path: path_str.replace('\\', "/").into_bytes(),
    };
    index.add(&entry)?;
    Ok(())
}

fn add_dir(
    repo: &Repository,
    index: &mut git2::Index,
    workdir: &Path,
    dir: &Path,
) -> Result<(), GitError> {
    let full = workdir.join(dir);
    let mut entries: Vec<_> = std::fs::read_dir(&full)
        .map_err(|source| GitError::Io {
            path: full.clone(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| GitError::Io {
            path: full.clone(),
            source,
        })?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let relative = dir.join(entry.file_name());
        if repo.is_path_ignored(&relative).unwrap_or(false) {
            continue;
        }
        if entry.path().is_dir() {
            add_dir(repo, index, workdir, &relative)?;
        } else {
            add_file(repo, index, workdir, &relative)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

/// The author from git's configuration, or a neutral one when git has none
/// (a fresh server or CI machine).
fn signature(repo: &Repository) -> Result<Signature<'static>, GitError> {
    match repo.signature() {
        Ok(signature) => Ok(signature.to_owned()),
        Err(_) => Ok(Signature::now("shop", "shop@localhost")?),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("`{}` is not a git repository", root.display())]
    Open {
        root: std::path::PathBuf,
        source: git2::Error,
    },
    #[error("the store's repository is bare")]
    Bare,
    #[error("`{}` is not valid UTF-8", path.display())]
    NotUtf8 { path: std::path::PathBuf },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("git: {}", .0.message())]
    Git(#[from] git2::Error),
}

inventory::submit!(Registered::of::<GitError>());

impl error::Hint for GitError {
    fn hint(&self) -> String {
        match self {
            GitError::Open { .. } => {
                "a store is a git repository; run `shop init` there, or `git init` it".into()
            }
            GitError::Bare => "a store needs a work tree; clone it without `--bare`".into(),
            GitError::NotUtf8 { .. } => "rename it with UTF-8 characters only".into(),
            GitError::Io { .. } => "check the file's permissions".into(),
            GitError::Git(_) => {
                "check the store with `git status`; `git fsck` finds a damaged repository".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_named_paths() {
        let dir = tempfile::tempdir().unwrap();
        let repo = open_or_init(dir.path()).unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("b.txt"), "b").unwrap();
        let first = commit_paths(&repo, &[Path::new("a.txt")], "add a")
            .unwrap()
            .unwrap();
        let tree = repo.find_commit(first).unwrap().tree().unwrap();
        assert!(tree.get_name("a.txt").is_some());
        assert!(tree.get_name("b.txt").is_none());
        // Nothing changed: no commit.
        assert_eq!(
            commit_paths(&repo, &[Path::new("a.txt")], "again").unwrap(),
            None
        );
        // A removed file is removed from the tree.
        std::fs::remove_file(dir.path().join("a.txt")).unwrap();
        let second = commit_paths(&repo, &[Path::new("a.txt")], "remove a")
            .unwrap()
            .unwrap();
        let tree = repo.find_commit(second).unwrap().tree().unwrap();
        assert!(tree.get_name("a.txt").is_none());
        assert_eq!(repo.head().unwrap().shorthand().ok(), Some("main"));
    }
}

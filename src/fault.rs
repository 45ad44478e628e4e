//! Named crash points for tests: `SHOP_FAULT=<point>` (or `<point>@<n>`,
//! the n-th time it is reached) makes a test build of `shop` abort there,
//! as a power cut or `kill -9` would, so that every crash point is tested
//! deterministically rather than by timing. Release builds compile every
//! point to nothing and never read the variable.
//!
//! The points: `git:commit-written` (the commit object exists, nothing
//! points at it), `git:index-written` (git's index has the commit's paths,
//! HEAD has not moved), `git:head-moved` (all done), `notify:intent` (a
//! notice's intent is on disk, the message not handed over),
//! `notify:accepted` (the mail server accepted a message whose acceptance
//! is not yet recorded), `grant:recorded` (a grant is committed, its mail
//! not sent), `release:recorded` (a release is committed and tagged, no
//! pre-order buyer mailed yet), `sync:moved` (a staged month file is
//! moved into `purchases/`, the next ones not, nothing committed),
//! `atomic:written` (a file's new content is in its temporary, not yet
//! renamed over it).

#[cfg(debug_assertions)]
static ARMED: std::sync::OnceLock<(String, u64)> = std::sync::OnceLock::new();
#[cfg(debug_assertions)]
static REACHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Arms the point named by `spec` (`<point>` or `<point>@<n>`). Called once
/// by the command layer, from `SHOP_FAULT`.
pub fn arm(spec: &str) {
    #[cfg(debug_assertions)]
    {
        let (name, nth) = match spec.rsplit_once('@') {
            Some((name, n)) => (name, n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        let _ = ARMED.set((name.to_owned(), nth));
    }
    #[cfg(not(debug_assertions))]
    let _ = spec;
}

/// Aborts the process if `name` is the armed point, reached for the n-th time.
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if let Some((armed, nth)) = ARMED.get()
        && armed == name
        && REACHED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == *nth
    {
        eprintln!("shop: SHOP_FAULT: stopped at `{name}`");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

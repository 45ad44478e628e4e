//! How often a client (and everyone together) may ask for what costs
//! something: requests per key in a sliding window, counted in the state,
//! so that every server sharing a PostgreSQL database counts together and a
//! restarted server remembers.
//!
//! Kept by hand rather than with `governor`: each limit here is a few
//! requests a minute or an hour, and a check of several keys must take all
//! or none, in one transaction of whichever back end keeps the state.

use std::time::Duration;

use crate::store::settings;
use sha2::{Digest, Sha256};

/// A limit: at most `count` in `window` (a minute or an hour).
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    count: usize,
    window: Duration,
}

impl Quota {
    pub const fn per_minute(count: usize) -> Quota {
        Quota {
            count,
            window: Duration::from_secs(60),
        }
    }

    pub const fn per_hour(count: usize) -> Quota {
        Quota {
            count,
            window: Duration::from_secs(LONGEST as u64),
        }
    }

    /// A rate from `shop.toml` (its window is at most an hour).
    pub fn of(rate: settings::Rate) -> Quota {
        Quota {
            count: rate.count as usize,
            window: Duration::from_secs(rate.seconds().min(LONGEST as u64)),
        }
    }
}

/// The longest window, in seconds: a key with no hit in it is forgotten.
pub(super) const LONGEST: i64 = 3_600;

/// How often (in seconds) a server forgets keys no one asked for lately.
const PRUNE_EVERY: i64 = 600;

/// One key to check, as the back ends count it.
#[derive(Debug, Clone)]
pub(super) struct Check {
    /// A digest of the key: the state keeps no client address or email for
    /// this.
    pub key: String,
    /// Hits after this (Unix seconds) count.
    pub since: i64,
    /// How many may count before the next is refused.
    pub count: i64,
}

impl Check {
    pub(super) fn new(key: &str, quota: Quota, now: i64) -> Check {
        let digest = Sha256::digest(key.as_bytes());
        Check {
            key: hex::encode(&digest[..16]),
            since: now - quota.window.as_secs() as i64,
            count: i64::try_from(quota.count).unwrap_or(i64::MAX),
        }
    }
}

/// Whether a check at `now` should also forget stale keys: once per
/// [`PRUNE_EVERY`] per server, remembered in `last`.
pub(super) fn prune_due(last: &std::sync::atomic::AtomicI64, now: i64) -> bool {
    let period = now.div_euclid(PRUNE_EVERY);
    last.swap(period, std::sync::atomic::Ordering::Relaxed) != period
}

/// Of `hits` (Unix seconds), those that still count for `check`, and
/// whether one more fits.
pub(super) fn fits(check: &Check, hits: &[i64]) -> (Vec<i64>, bool) {
    let kept: Vec<i64> = hits
        .iter()
        .copied()
        .filter(|at| *at > check.since)
        .collect();
    let fits = (kept.len() as i64) < check.count;
    (kept, fits)
}

//! The download rule: how much of a file one purchase may have. Pure
//! arithmetic, so that every request sequence can be checked against it
//! (the property tests below); `state` applies it inside the writer's
//! transaction, the one place every download passes through.
//!
//! A purchase may download each file `allowed` times (the product's limit
//! plus any grant). What is counted depends on how the file is delivered:
//!
//! - **Streamed** (the local files folder): the bytes sent. A request is
//!   charged its whole length before its first byte leaves, and the bytes
//!   it did not send are given back when it ends, so a broken download
//!   resumes for free and a thousand ranges cost a thousand ranges' bytes.
//!   A request is admitted while less than `allowed × size` is used; a
//!   resume (a range that does not start at byte 0) is also admitted past
//!   that, as long as it fits within one more file. So however the
//!   requests are mixed, at most `(allowed + 1) × size` bytes leave, and an
//!   honest buyer whose download broke at any byte can always finish it.
//! - **Redirected** (GitHub's short-lived URLs): a redirect hands out a URL
//!   to the whole file, so each is one whole download, admitted while a
//!   whole file still fits what is left. A request for a range of a file
//!   on GitHub (a resume) is not redirected: it is streamed from GitHub's
//!   CDN through the server and counted by its bytes, as a local file is.
//!   Redirects and streamed bytes count against the same budget, so
//!   however they are mixed, at most `allowed` whole-file URLs are handed
//!   out and at most one file of slack streamed beyond them.
//!
//! HEAD never counts: it asks what a GET would get.

/// What one file of one purchase has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes charged to streamed requests (less what they gave back).
    pub bytes: u64,
    /// Whole downloads counted: redirects (and counts from before bytes
    /// were counted).
    pub whole: u32,
}

impl Usage {
    /// Everything used, in bytes of a file of `size` bytes.
    pub fn used_bytes(&self, size: u64) -> u64 {
        self.bytes
            .saturating_add(u64::from(self.whole).saturating_mul(size))
    }

    /// Whole downloads left of `allowed`, for the download page: a download
    /// that broke half-way still shows as one left, to finish it.
    pub fn left(&self, allowed: u32, size: u64) -> u32 {
        let size = size.max(1);
        let budget = u64::from(allowed).saturating_mul(size);
        let remaining = budget.saturating_sub(self.used_bytes(size));
        u32::try_from(remaining.div_ceil(size)).unwrap_or(allowed)
    }
}

/// May a streamed request of `length` bytes starting at byte `start` of a
/// file of `size` bytes go out, given `usage` and `allowed` downloads?
pub fn admit_stream(usage: Usage, allowed: u32, size: u64, start: u64, length: u64) -> bool {
    let used = usage.used_bytes(size);
    let budget = u64::from(allowed).saturating_mul(size);
    if used < budget {
        return true;
    }
    // Past the budget, only the rest of a download already under way.
    start > 0 && used.saturating_add(length) <= budget.saturating_add(size)
}

/// May a redirect be counted, given `usage` and `allowed` downloads?
pub fn admit_redirect(usage: Usage, allowed: u32, size: u64) -> bool {
    let size = size.max(1);
    let budget = u64::from(allowed).saturating_mul(size);
    usage.used_bytes(size).saturating_add(size) <= budget
}

/// What a request asks of one file of one purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `length` bytes from byte `start` of a file of `size` bytes, sent
    /// through the server; `limit` is the product's download limit.
    Stream {
        limit: u32,
        size: u64,
        start: u64,
        length: u64,
    },
    /// A URL to the whole file, handed out at `now`.
    Redirect { limit: u32, size: u64, now: i64 },
    /// Bytes a streamed answer was charged and did not send.
    Refund { bytes: u64 },
}

/// What the download rule answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Counted: it may go out.
    Admitted,
    /// The purchase has used what it may.
    Exhausted,
    /// Refunded or disputed.
    Revoked,
}

/// One file of one purchase, as the state holds it while a charge is
/// decided (inside the writer's transaction, or its row locked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    pub usage: Usage,
    /// When the last counted redirect went (kept for the record).
    pub last_redirect: Option<i64>,
    /// Downloads granted on top of the product's limit.
    pub extra: u32,
    /// The payment was refunded or disputed.
    pub revoked: bool,
}

/// The outcome of one ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub charge: Charge,
    /// The standing changed and must be written.
    pub changed: bool,
    /// A redirect asked for a file that cannot be redirected again: the
    /// server stops offering its URL until something changes.
    pub used_up: bool,
}

/// The download rule, applied: decides one ask on `file` and changes it as
/// the ask uses it. Both state back ends call this inside their writer,
/// and a HEAD request calls it on a copy, so the rule is written once.
pub fn apply(file: &mut Standing, ask: Ask) -> Decision {
    let charge = match ask {
        Ask::Refund { bytes } => {
            file.usage.bytes = file.usage.bytes.saturating_sub(bytes);
            return Decision {
                charge: Charge::Admitted,
                changed: true,
                used_up: false,
            };
        }
        _ if file.revoked => Charge::Revoked,
        Ask::Stream {
            limit,
            size,
            start,
            length,
        } => {
            if admit_stream(file.usage, limit + file.extra, size, start, length) {
                file.usage.bytes += length;
                Charge::Admitted
            } else {
                Charge::Exhausted
            }
        }
        Ask::Redirect { limit, size, now } => {
            if admit_redirect(file.usage, limit + file.extra, size) {
                file.usage.whole += 1;
                file.last_redirect = Some(now);
                Charge::Admitted
            } else {
                Charge::Exhausted
            }
        }
    };
    let used_up = match ask {
        Ask::Redirect { limit, size, .. } => {
            charge == Charge::Exhausted || !admit_redirect(file.usage, limit + file.extra, size)
        }
        _ => false,
    };
    Decision {
        charge,
        changed: charge == Charge::Admitted,
        used_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_whole_downloads_then_none() {
        let size = 1000;
        let mut usage = Usage::default();
        for left in (1..=5).rev() {
            assert_eq!(usage.left(5, size), left);
            assert!(admit_stream(usage, 5, size, 0, size));
            usage.bytes += size;
        }
        assert_eq!(usage.left(5, size), 0);
        assert!(!admit_stream(usage, 5, size, 0, size));
        assert!(!admit_stream(usage, 5, size, 0, 1));
        // A resume past the budget fits within one more file only.
        assert!(admit_stream(usage, 5, size, 1, size - 1));
        usage.bytes += size - 1;
        assert!(admit_stream(usage, 5, size, 999, 1));
        usage.bytes += 1;
        assert!(!admit_stream(usage, 5, size, 999, 1));
    }

    #[test]
    fn a_broken_last_download_can_be_finished() {
        let size = 1000;
        // Four whole downloads and the fifth charged whole though it broke
        // at byte 300 (the rest sat in a socket buffer).
        let usage = Usage {
            bytes: 5 * size,
            whole: 0,
        };
        assert!(admit_stream(usage, 5, size, 300, size - 300));
        assert!(!admit_stream(usage, 5, size, 0, size));
    }

    #[test]
    fn redirects_count_whole_downloads() {
        let mut usage = Usage::default();
        for _ in 0..5 {
            assert!(admit_redirect(usage, 5, 1000));
            usage.whole += 1;
        }
        assert!(!admit_redirect(usage, 5, 1000));
    }

    /// A request as a client may send it.
    #[derive(Debug, Clone)]
    enum Request {
        /// A GET of the whole file, cut off after this share (per mille).
        Whole {
            cut: u16,
        },
        /// A GET of `bytes=start-` or `bytes=start-end`, cut off too.
        Range {
            start: u64,
            end: Option<u64>,
            cut: u16,
        },
        Head,
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (0u16..=1000).prop_map(|cut| Request::Whole { cut }),
            (0u64..5000, proptest::option::of(0u64..5000), 0u16..=1000)
                .prop_map(|(start, end, cut)| Request::Range { start, end, cut }),
            Just(Request::Head),
        ]
    }

    proptest! {
        /// Whatever the requests, what leaves is at most `allowed + 1`
        /// files' worth, and at most `allowed` whole fresh downloads start.
        #[test]
        fn no_sequence_beats_the_limit(
            size in 1u64..5000,
            allowed in 1u32..8,
            requests in proptest::collection::vec(request(), 0..200),
        ) {
            let mut file = Standing::default();
            let mut sent: u64 = 0;
            let mut whole_fresh = 0u32;
            for request in requests {
                let (start, length, cut) = match request {
                    Request::Head => continue,
                    Request::Whole { cut } => (0, size, cut),
                    Request::Range { start, end, cut } => {
                        if start >= size {
                            continue; // 416, nothing sent
                        }
                        let end = end.unwrap_or(size - 1).min(size - 1);
                        if end < start {
                            continue;
                        }
                        (start, end - start + 1, cut)
                    }
                };
                let before = file.usage;
                let ask = Ask::Stream { limit: allowed, size, start, length };
                if apply(&mut file, ask).charge != Charge::Admitted {
                    continue;
                }
                if start == 0 && length == size && before.used_bytes(size) >= u64::from(allowed) * size {
                    whole_fresh += 1;
                }
                // Charged whole, then given back what was not sent.
                let delivered = length * u64::from(cut) / 1000;
                apply(&mut file, Ask::Refund { bytes: length - delivered });
                sent += delivered;
            }
            prop_assert!(sent <= (u64::from(allowed) + 1) * size, "sent {sent}");
            prop_assert_eq!(whole_fresh, 0);
        }

        /// Files on GitHub: whole requests redirected (a URL to the whole
        /// file each), ranges streamed and counted by bytes. Whatever the
        /// mix, at most `allowed` URLs are handed out, and those with the
        /// bytes streamed come to at most `allowed + 1` files.
        #[test]
        fn redirects_and_streamed_ranges_mixed_stay_within_the_limit(
            size in 1u64..5000,
            allowed in 1u32..8,
            requests in proptest::collection::vec(request(), 0..200),
        ) {
            let mut file = Standing::default();
            let (mut urls, mut streamed) = (0u64, 0u64);
            for (now, request) in requests.into_iter().enumerate() {
                match request {
                    Request::Head => continue,
                    Request::Whole { .. } => {
                        let ask = Ask::Redirect { limit: allowed, size, now: now as i64 };
                        let decision = apply(&mut file, ask);
                        if decision.charge == Charge::Admitted {
                            urls += 1;
                            prop_assert_eq!(file.last_redirect, Some(now as i64));
                        }
                        // Used up exactly when the next redirect is refused.
                        let next = apply(&mut file.clone(), ask).charge;
                        prop_assert_eq!(decision.used_up, next == Charge::Exhausted);
                    }
                    Request::Range { start, end, cut } => {
                        if start >= size {
                            continue;
                        }
                        let end = end.unwrap_or(size - 1).min(size - 1);
                        if end < start {
                            continue;
                        }
                        let length = end - start + 1;
                        let ask = Ask::Stream { limit: allowed, size, start, length };
                        if apply(&mut file, ask).charge != Charge::Admitted {
                            continue;
                        }
                        let delivered = length * u64::from(cut) / 1000;
                        apply(&mut file, Ask::Refund { bytes: length - delivered });
                        streamed += delivered;
                    }
                }
            }
            prop_assert!(urls <= u64::from(allowed), "{urls} URLs");
            prop_assert!(
                urls * size + streamed <= (u64::from(allowed) + 1) * size,
                "{urls} URLs and {streamed} bytes"
            );
        }

        /// An honest buyer whose downloads break at any bytes and resume
        /// from there gets `allowed` whole copies.
        #[test]
        fn honest_resumes_always_finish(
            size in 1u64..100_000,
            allowed in 1u32..6,
            breaks in proptest::collection::vec(proptest::collection::vec(0u64..100_000, 0..4), 1..6),
        ) {
            let mut usage = Usage::default();
            for copy in 0..allowed {
                let mut points = breaks.get(copy as usize).cloned().unwrap_or_default();
                points.iter_mut().for_each(|point| *point %= size);
                points.sort_unstable();
                let mut at = 0u64;
                for point in points.into_iter().filter(|point| *point > 0) {
                    prop_assert!(admit_stream(usage, allowed, size, at, size - at));
                    usage.bytes += point.max(at) - at;
                    at = point.max(at);
                }
                prop_assert!(admit_stream(usage, allowed, size, at, size - at), "copy {copy} at {at}: {usage:?}");
                usage.bytes += size - at;
            }
        }

        /// One download that broke while the server had sent more than the
        /// buyer received (bytes left in buffers are charged) can still be
        /// finished, whichever copy it was.
        #[test]
        fn a_download_broken_with_bytes_in_flight_can_be_finished(
            size in 2u64..100_000,
            allowed in 1u32..6,
            broken in 0u32..6,
            point in 1u64..100_000,
            in_flight in 0u64..100_000,
        ) {
            let broken = broken % allowed;
            let point = 1 + point % (size - 1);
            let mut usage = Usage::default();
            for copy in 0..allowed {
                prop_assert!(admit_stream(usage, allowed, size, 0, size));
                if copy == broken {
                    usage.bytes += (point + in_flight).min(size);
                    prop_assert!(admit_stream(usage, allowed, size, point, size - point), "{usage:?}");
                    usage.bytes += size - point;
                } else {
                    usage.bytes += size;
                }
            }
            prop_assert!(!admit_stream(usage, allowed, size, 0, size));
        }
    }

    proptest! {
        /// A refunded or disputed payment is admitted nothing, and nothing
        /// of its standing changes but what a refund gives back.
        #[test]
        fn a_revoked_file_admits_nothing(
            size in 1u64..5000,
            allowed in 1u32..8,
            whole in 0u32..8,
            bytes in 0u64..20_000,
            start in 0u64..5000,
            now in 0i64..1000,
        ) {
            let standing = Standing {
                usage: Usage { bytes, whole },
                last_redirect: None,
                extra: 0,
                revoked: true,
            };
            for ask in [
                Ask::Stream { limit: allowed, size, start: start.min(size - 1), length: size - start.min(size - 1) },
                Ask::Redirect { limit: allowed, size, now },
            ] {
                let mut file = standing;
                let decision = apply(&mut file, ask);
                prop_assert_eq!(decision.charge, Charge::Revoked);
                prop_assert!(!decision.changed);
                prop_assert_eq!(file, standing);
            }
        }
    }
}

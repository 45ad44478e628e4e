//! Which bytes of a file a request asks for (RFC 9110 §14).
//!
//! Kept by hand: `headers::Range::satisfiable_ranges` yields ranges that
//! start past the end of the file and drops a suffix longer than the file
//! (which means the whole file), so its answer would need checking again
//! anyway, and the rule fits in a page.

/// The part of a file to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The whole file, `200`.
    Whole,
    /// Bytes `start..=end`, `206`.
    Part { start: u64, end: u64 },
    /// No byte the range names exists: `416`.
    Unsatisfiable,
}

impl Span {
    /// The first byte and the number of bytes, for a file of `size` bytes.
    pub fn bounds(self, size: u64) -> (u64, u64) {
        match self {
            Span::Whole | Span::Unsatisfiable => (0, size),
            Span::Part { start, end } => (start, end - start + 1),
        }
    }
}

/// The span a `Range` header asks of a file of `size` bytes whose entity
/// tag is `etag`. A range is honoured only when `If-Range` (if sent)
/// names this very file; several ranges, other units and malformed values
/// are ignored, which RFC 9110 allows: the whole file is sent.
pub fn requested(range: Option<&str>, if_range: Option<&str>, etag: &str, size: u64) -> Span {
    let Some(range) = range else {
        return Span::Whole;
    };
    if if_range.is_some_and(|validator| validator.trim() != etag) {
        return Span::Whole;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Span::Whole;
    };
    if spec.contains(',') {
        return Span::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Span::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (start, end) = match (first.trim().is_empty(), number(first), number(last)) {
        // `bytes=-N`: the last N bytes (all of them when N exceeds the file).
        (true, _, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                return Span::Unsatisfiable;
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (false, Some(start), None) if last.trim().is_empty() => (start, size.saturating_sub(1)),
        (false, Some(start), Some(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        _ => return Span::Whole,
    };
    if start >= size {
        return Span::Unsatisfiable;
    }
    Span::Part { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAG: &str = "\"abc\"";

    fn check(range: &str, size: u64, expected: Span) {
        assert_eq!(requested(Some(range), None, TAG, size), expected, "{range}");
    }

    #[test]
    fn ranges_are_single_and_within_the_file() {
        check("bytes=0-99", 1000, Span::Part { start: 0, end: 99 });
        check(
            "bytes=500-",
            1000,
            Span::Part {
                start: 500,
                end: 999,
            },
        );
        check(
            "bytes=-100",
            1000,
            Span::Part {
                start: 900,
                end: 999,
            },
        );
        check("bytes=-5000", 1000, Span::Part { start: 0, end: 999 });
        check(
            "bytes=900-5000",
            1000,
            Span::Part {
                start: 900,
                end: 999,
            },
        );
        check("bytes=1000-", 1000, Span::Unsatisfiable);
        check("bytes=-0", 1000, Span::Unsatisfiable);
        check("bytes=0-1,5-6", 1000, Span::Whole);
        check("items=0-1", 1000, Span::Whole);
        check("bytes=5-1", 1000, Span::Whole);
        check("bytes=+5-", 1000, Span::Whole);
        assert_eq!(requested(None, None, TAG, 1000), Span::Whole);
    }

    #[test]
    fn a_range_of_another_version_of_the_file_gets_the_whole_file() {
        assert_eq!(
            requested(Some("bytes=10-"), Some("\"old\""), TAG, 1000),
            Span::Whole
        );
        assert_eq!(
            requested(Some("bytes=10-"), Some(TAG), TAG, 1000),
            Span::Part {
                start: 10,
                end: 999
            }
        );
        assert_eq!(
            requested(
                Some("bytes=10-"),
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                TAG,
                1000
            ),
            Span::Whole
        );
    }

    proptest! {
        /// Whatever the header, a part lies within the file and is not empty.
        #[test]
        fn parts_lie_within_the_file(header in "\\PC{0,30}", size in 0u64..10_000) {
            if let Span::Part { start, end } = requested(Some(&header), None, TAG, size) {
                prop_assert!(start <= end && end < size, "{header}: {start}-{end} of {size}");
            }
        }

        #[test]
        fn well_formed_ranges_are_honoured(start in 0u64..20_000, length in 1u64..20_000, size in 1u64..10_000) {
            let end = start + length - 1;
            let span = requested(Some(&format!("bytes={start}-{end}")), None, TAG, size);
            if start < size {
                prop_assert_eq!(span, Span::Part { start, end: end.min(size - 1) });
            } else {
                prop_assert_eq!(span, Span::Unsatisfiable);
            }
        }
    }
}

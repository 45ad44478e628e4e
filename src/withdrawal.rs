//! The EU right of withdrawal, decided: what a buyer who uses the
//! withdrawal function (Consumer Rights Directive, Art. 11a, added by
//! Directive (EU) 2023/2673, in force since 19 June 2026) gets.
//!
//! A consumer may withdraw from a distance contract within 14 days
//! (Art. 9). For digital content not on a tangible medium the right ends
//! once performance has begun, if the consumer consented to it beginning
//! within that period and acknowledged losing the right (Art. 16(m)): for
//! `shop`, the waiver the buyer ticked at checkout (`[consent]`) and a
//! first download. So the right stands within 14 days when there is no
//! waiver, when nothing has been downloaded, or when the purchase is a
//! pre-order whose files are not out. An author may give more
//! (a guarantee of `self_service_days`), or decide every request
//! themselves (`review`). Pure: the caller gathers the facts.

use crate::store::RefundSettings;

/// The author's policy beyond the law: `shop.toml`'s `[refunds]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Any purchase may be refunded within this many days, downloaded or
    /// not (a guarantee, as Leanpub's).
    pub self_service_days: Option<u32>,
    /// Every request goes to the author instead of being refunded.
    pub review: bool,
}

impl Policy {
    pub fn of(settings: &RefundSettings) -> Policy {
        Policy {
            self_service_days: settings.self_service_days,
            review: settings.review,
        }
    }
}

/// Days in which a consumer may withdraw (Art. 9(1)).
pub const WITHDRAWAL_DAYS: i64 = 14;

const DAY: i64 = 86_400;

/// What a decision rests on, all as the state and the ledger know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// When the contract was made (Unix seconds).
    pub bought: i64,
    /// When the buyer accepted the waiver at checkout, if they did.
    pub waiver: Option<i64>,
    /// Whether a file of the purchase has been downloaded (performance
    /// has begun).
    pub downloaded: bool,
    /// A pre-order whose files are not out: nothing was performed.
    pub undelivered_preorder: bool,
    /// Refunded or disputed already.
    pub revoked: bool,
}

/// The outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Refunded in full, at once, for this reason.
    Refund(Ground),
    /// The author decides (`Policy::review`).
    Review,
    /// The right ended: the buyer waived it (at `waived`) and downloaded.
    Ended { waived: i64 },
    /// More than 14 days (and any guarantee) have passed.
    Late { days: i64 },
    /// Nothing is left to refund.
    AlreadyRefunded,
}

/// Why a refund is owed or given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ground {
    /// The right of withdrawal.
    Withdrawal,
    /// The author's guarantee (`Policy::self_service_days`).
    Guarantee,
}

impl Decision {
    /// The word the state, the ledger and `shop withdrawals --json` keep.
    pub fn word(self) -> &'static str {
        match self {
            Decision::Refund(Ground::Withdrawal) => "refund",
            Decision::Refund(Ground::Guarantee) => "guarantee",
            Decision::Review => "review",
            Decision::Ended { .. } => "ended",
            Decision::Late { .. } => "late",
            Decision::AlreadyRefunded => "refunded-before",
        }
    }

    /// Whether it refunds at once.
    pub fn refunds(self) -> bool {
        matches!(self, Decision::Refund(_))
    }

    /// When the buyer accepted the waiver, for a right that had ended.
    pub fn waived(self) -> Option<i64> {
        match self {
            Decision::Ended { waived } => Some(waived),
            _ => None,
        }
    }
}

/// Whether a kept decision word is one that refunds.
pub fn refunding(word: &str) -> bool {
    matches!(word, "refund" | "guarantee")
}

/// The decision word of a purchase with nothing to refund (a grant, or a
/// copy a 100% code made free): the request is recorded, nothing moves.
pub const NOTHING_PAID: &str = "nothing-paid";

/// Every decision word, for readers of the ledger.
pub const WORDS: [&str; 7] = [
    "refund",
    "guarantee",
    "review",
    "ended",
    "late",
    "refunded-before",
    NOTHING_PAID,
];

/// Decides a request made at `now`.
pub fn decide(facts: &Facts, policy: &Policy, now: i64) -> Decision {
    if facts.revoked {
        return Decision::AlreadyRefunded;
    }
    if policy.review {
        return Decision::Review;
    }
    let age = now.saturating_sub(facts.bought);
    let within = age <= WITHDRAWAL_DAYS * DAY;
    let performed_after_waiver =
        facts.waiver.is_some() && facts.downloaded && !facts.undelivered_preorder;
    if within && !performed_after_waiver {
        return Decision::Refund(Ground::Withdrawal);
    }
    if policy
        .self_service_days
        .is_some_and(|days| age <= i64::from(days) * DAY)
    {
        return Decision::Refund(Ground::Guarantee);
    }
    match facts.waiver {
        Some(waived) if within => Decision::Ended { waived },
        _ => Decision::Late { days: age / DAY },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUGHT: i64 = 1_790_000_000;

    fn facts() -> Facts {
        Facts {
            bought: BOUGHT,
            waiver: None,
            downloaded: false,
            undelivered_preorder: false,
            revoked: false,
        }
    }

    fn law() -> Policy {
        Policy::default()
    }

    #[test]
    fn within_fourteen_days_the_right_stands_unless_waived_and_downloaded() {
        let day = |n: i64| BOUGHT + n * DAY;
        assert_eq!(
            decide(&facts(), &law(), day(3)),
            Decision::Refund(Ground::Withdrawal)
        );
        // Downloaded without a waiver: the right stands.
        let downloaded = Facts {
            downloaded: true,
            ..facts()
        };
        assert_eq!(
            decide(&downloaded, &law(), day(14)),
            Decision::Refund(Ground::Withdrawal)
        );
        // Waived but nothing downloaded: performance has not begun.
        let waived = Facts {
            waiver: Some(BOUGHT),
            ..facts()
        };
        assert_eq!(
            decide(&waived, &law(), day(1)),
            Decision::Refund(Ground::Withdrawal)
        );
        // Waived and downloaded: the right has ended.
        let ended = Facts {
            waiver: Some(BOUGHT + 5),
            downloaded: true,
            ..facts()
        };
        assert_eq!(
            decide(&ended, &law(), day(1)),
            Decision::Ended { waived: BOUGHT + 5 }
        );
        // A pre-order not delivered: nothing was performed, whatever was ticked.
        let preorder = Facts {
            undelivered_preorder: true,
            ..ended
        };
        assert_eq!(
            decide(&preorder, &law(), day(13)),
            Decision::Refund(Ground::Withdrawal)
        );
    }

    #[test]
    fn after_fourteen_days_only_the_authors_guarantee_refunds() {
        let late = BOUGHT + 15 * DAY;
        assert_eq!(decide(&facts(), &law(), late), Decision::Late { days: 15 });
        let guarantee = Policy {
            self_service_days: Some(30),
            review: false,
        };
        let ended = Facts {
            waiver: Some(BOUGHT),
            downloaded: true,
            ..facts()
        };
        // The guarantee refunds what the law no longer does, downloaded or not.
        assert_eq!(
            decide(&ended, &guarantee, late),
            Decision::Refund(Ground::Guarantee)
        );
        assert_eq!(
            decide(&ended, &guarantee, BOUGHT + DAY),
            Decision::Refund(Ground::Guarantee)
        );
        assert_eq!(
            decide(&ended, &guarantee, BOUGHT + 31 * DAY),
            Decision::Late { days: 31 }
        );
    }

    #[test]
    fn review_sends_every_request_to_the_author_and_a_refund_is_not_repeated() {
        let review = Policy {
            self_service_days: Some(30),
            review: true,
        };
        assert_eq!(decide(&facts(), &review, BOUGHT), Decision::Review);
        let revoked = Facts {
            revoked: true,
            ..facts()
        };
        assert_eq!(decide(&revoked, &review, BOUGHT), Decision::AlreadyRefunded);
        assert_eq!(decide(&revoked, &law(), BOUGHT), Decision::AlreadyRefunded);
    }
}

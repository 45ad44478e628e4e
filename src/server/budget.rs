//! The calls to Stripe that visitors cause (a thank-you page's look-up, an
//! upgrade code's checkout), bounded in all and shared fairly.
//!
//! Stripe limits how often an account may call it (25 requests a second in
//! test mode, 100 live), and every server of a store shares that. Each
//! client is limited on its own (`[serve] thanks_limit`, `checkout_limit`),
//! but many clients together could still spend Stripe's limit and stall
//! `release`, `sync` and every real buyer's thank-you page. So the server
//! also spends at most [`DEFAULT_PER_SECOND`] such calls a second; once
//! half of a second's calls are spent, only clients that have made at most
//! [`LIGHT`] calls this minute still get one: the heaviest clients are
//! refused first, a newcomer never before them.
//!
//! Kept in memory per server (each server of a store spends its own):
//! its keys are only the clients that made a call this minute, so it holds
//! at most a minute's calls.

use std::collections::HashMap;
use std::sync::Mutex;

use super::client::ClientKey;

/// Calls a minute that still count as a light client's: a buyer's thank-you
/// page and one reload.
pub const LIGHT: u32 = 2;

/// Visitors' calls to Stripe a second, in all, by default: below Stripe's
/// test-mode limit of 25, leaving the rest to the author's commands.
pub const DEFAULT_PER_SECOND: u32 = 20;

#[derive(Debug)]
pub struct Budget {
    per_second: u32,
    spent: Mutex<Spent>,
}

#[derive(Debug, Default)]
struct Spent {
    second: u64,
    in_second: u32,
    minute: u64,
    by_client: HashMap<ClientKey, u32>,
}

impl Budget {
    pub fn new(per_second: u32) -> Budget {
        Budget {
            per_second: per_second.max(2),
            spent: Mutex::default(),
        }
    }

    /// Whether `client` may make one call at `now` (seconds on any steady
    /// clock); if so, it is spent.
    pub fn take(&self, client: ClientKey, now: u64) -> bool {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.second != now {
            spent.second = now;
            spent.in_second = 0;
        }
        if spent.minute != now / 60 {
            spent.minute = now / 60;
            spent.by_client.clear();
        }
        let made = spent.by_client.get(&client).copied().unwrap_or(0);
        let pressed = spent.in_second >= self.per_second / 2;
        if spent.in_second >= self.per_second || (pressed && made >= LIGHT) {
            return false;
        }
        spent.in_second += 1;
        *spent.by_client.entry(client).or_default() += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u32) -> ClientKey {
        ClientKey::of(std::net::IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn heavy_clients_are_refused_before_a_newcomer() {
        let budget = Budget::new(20);
        // Three clients calling as fast as they can, within one second.
        let mut admitted = [0u32; 3];
        for _ in 0..30 {
            for (index, heavy) in admitted.iter_mut().enumerate() {
                if budget.take(client(index as u32), 100) {
                    *heavy += 1;
                }
            }
        }
        // Past half the second's budget, none of them gets another...
        assert!(admitted.iter().all(|&n| n <= 4), "{admitted:?}");
        // ...but newcomers do, and their second call too.
        for newcomer in 10..15 {
            assert!(budget.take(client(newcomer), 100), "newcomer {newcomer}");
            assert!(budget.take(client(newcomer), 100), "newcomer {newcomer}");
            assert!(!budget.take(client(newcomer), 100), "newcomer {newcomer}");
        }
        // The next second the heavy are still heavy under pressure, yet
        // get their share while the second is quiet.
        assert!(budget.take(client(0), 101));
    }

    #[test]
    fn the_whole_budget_is_a_ceiling_even_for_newcomers() {
        let budget = Budget::new(20);
        let admitted = (0..100).filter(|n| budget.take(client(*n), 7)).count();
        assert_eq!(admitted, 20);
        // A new second, a new budget; a new minute forgets who called.
        assert!(budget.take(client(1000), 8));
        for n in 0..LIGHT {
            assert!(budget.take(client(2000), 60 + u64::from(n)));
        }
    }
}

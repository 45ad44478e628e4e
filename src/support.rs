//! Support: finding a buyer's purchases from what a buyer writes (their
//! address, the order number on their receipt, a purchase or payment id),
//! in the ledger and the grants and in what the server has seen but no
//! `shop sync` has brought in yet. `shop find`, `shop token` and `shop
//! refund` all look purchases up here.

use std::collections::BTreeMap;
use std::path::Path;

use crate::ledger::{self, LedgerError, Purchase, Status};
use crate::state::Entitlement;

/// What a support request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A buyer's address, any case.
    Email(String),
    /// A Checkout Session (`cs_…`) or grant (`gr_…`) id.
    Id(String),
    /// A payment (`pi_…`).
    Payment(String),
    /// An order number as a buyer reads it out.
    Order(String),
}

impl Key {
    pub fn parse(text: &str) -> Key {
        let text = text.trim();
        if text.contains('@') {
            Key::Email(text.to_ascii_lowercase())
        } else if text.starts_with("cs_") || ledger::is_given(text) {
            Key::Id(text.to_owned())
        } else if text.starts_with("pi_") {
            Key::Payment(text.to_owned())
        } else {
            Key::Order(text.to_owned())
        }
    }

    fn matches(&self, id: &str, email: &str, payment: Option<&str>) -> bool {
        match self {
            Key::Email(wanted) => email.eq_ignore_ascii_case(wanted),
            Key::Id(wanted) => id == wanted,
            Key::Payment(wanted) => payment == Some(wanted.as_str()),
            Key::Order(typed) => ledger::is_order(id, typed),
        }
    }
}

/// A purchase or grant found, as the ledger (or else the server) has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    pub id: String,
    pub order: String,
    pub email: String,
    pub product: String,
    pub version: String,
    /// `paid` for one only the server has seen.
    pub status: Status,
    /// Unix seconds.
    pub created: i64,
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub preorder: bool,
    /// Not yet in the ledger: seen by the server since the last sync.
    pub unsynced: bool,
}

impl Found {
    fn of_ledger(purchase: Purchase) -> Found {
        Found {
            order: ledger::order_number(&purchase.id),
            created: purchase.created_unix(),
            id: purchase.id,
            email: purchase.email,
            product: purchase.product,
            version: purchase.version,
            status: purchase.status,
            payment_intent: purchase.payment_intent,
            amount: purchase.amount,
            currency: purchase.currency,
            preorder: purchase.preorder,
            unsynced: false,
        }
    }

    fn of_server(purchase: &Entitlement) -> Found {
        Found {
            id: purchase.id.clone(),
            order: ledger::order_number(&purchase.id),
            email: purchase.email.clone(),
            product: purchase.product.clone(),
            version: purchase.version.clone(),
            status: Status::Paid,
            created: purchase.created,
            payment_intent: purchase.payment_intent.clone(),
            amount: purchase.paid.as_ref().map_or(0, |paid| paid.amount),
            currency: purchase
                .paid
                .as_ref()
                .map_or_else(String::new, |paid| paid.currency.clone()),
            preorder: false,
            unsynced: true,
        }
    }

    /// Whether its downloads are open.
    pub fn in_good_standing(&self) -> bool {
        matches!(self.status, Status::Paid | Status::Granted | Status::Sample)
    }
}

/// The purchases and grants `key` names, newest first: the ledger's and
/// the grants' (read from the store at `root`), then those in `server`
/// (what the server has seen) that the ledger does not have yet.
pub fn find(root: &Path, key: &Key, server: &[Entitlement]) -> Result<Vec<Found>, LedgerError> {
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    ledger::each(root, |purchase| {
        // A gift is found by its recipient's address and its buyer's.
        let by_buyer = purchase
            .gift_from
            .as_deref()
            .is_some_and(|buyer| matches!(key, Key::Email(_)) && key.matches("", buyer, None));
        if by_buyer
            || key.matches(
                &purchase.id,
                &purchase.email,
                purchase.payment_intent.as_deref(),
            )
        {
            found.insert(purchase.id.clone(), Found::of_ledger(purchase));
        }
        Ok(())
    })?;
    for grant in ledger::read_grants(root)? {
        if key.matches(&grant.id, &grant.email, None) {
            found.insert(grant.id.clone(), Found::of_ledger(grant));
        }
    }
    for purchase in server {
        if !found.contains_key(&purchase.id)
            && key.matches(
                &purchase.id,
                &purchase.email,
                purchase.payment_intent.as_deref(),
            )
        {
            found.insert(purchase.id.clone(), Found::of_server(purchase));
        }
    }
    let mut found: Vec<Found> = found.into_values().collect();
    found.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_what_a_buyer_writes() {
        assert_eq!(
            Key::parse(" Ada@Example.com "),
            Key::Email("ada@example.com".into())
        );
        assert_eq!(Key::parse("cs_test_1"), Key::Id("cs_test_1".into()));
        assert_eq!(Key::parse("gr_1"), Key::Id("gr_1".into()));
        assert_eq!(Key::parse("pi_1"), Key::Payment("pi_1".into()));
        assert_eq!(Key::parse("7k2q9 xm4wd"), Key::Order("7k2q9 xm4wd".into()));
    }

    #[test]
    fn purchases_are_found_in_the_ledger_the_grants_and_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("purchases")).unwrap();
        let line = |id: &str, email: &str, created: &str, status: &str| {
            serde_json::json!({"id": id, "created": created, "email": email, "product": "guide",
                "version": "1.0.0", "amount": 2900, "currency": "usd", "payment_intent": format!("pi_{id}"),
                "status": status})
            .to_string()
        };
        std::fs::write(
            root.join("purchases/2026-11.jsonl"),
            format!(
                "{}\n{}\n",
                line("cs_a", "ada@example.com", "2026-11-01T10:00:00Z", "paid"),
                line(
                    "cs_b",
                    "bob@example.com",
                    "2026-11-02T10:00:00Z",
                    "refunded"
                ),
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("purchases/grants.jsonl"),
            format!(
                "{}\n",
                line("gr_c", "ADA@example.com", "2026-11-03T10:00:00Z", "granted")
            ),
        )
        .unwrap();
        let server = [Entitlement {
            id: "cs_d".into(),
            email: "ada@example.com".into(),
            product: "guide".into(),
            version: "1.0.0".into(),
            payment_intent: Some("pi_d".into()),
            created: 1_900_000_000,
            paid: None,
            gift: None,
        }];
        let ids = |key: &str| -> Vec<String> {
            find(root, &Key::parse(key), &server)
                .unwrap()
                .into_iter()
                .map(|found| found.id)
                .collect()
        };
        assert_eq!(ids("ada@example.com"), ["cs_d", "gr_c", "cs_a"]);
        assert_eq!(ids(&ledger::order_number("cs_b")), ["cs_b"]);
        assert_eq!(ids("pi_cs_a"), ["cs_a"]);
        assert_eq!(ids("gr_c"), ["gr_c"]);
        assert!(ids("nobody@example.com").is_empty());
        let found = find(root, &Key::parse("cs_d"), &server).unwrap();
        assert!(found[0].unsynced && found[0].in_good_standing());
    }
}

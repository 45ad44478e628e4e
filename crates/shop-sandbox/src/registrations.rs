//! Where the account is registered to collect tax, as an author adds
//! registrations in Stripe's Dashboard (Tax → Registrations). Stripe Tax
//! "only calculates tax in jurisdictions where you're registered to
//! collect tax": elsewhere a checkout's tax is zero, its reason
//! `not_collecting`.
//!
//! A registration is an EU or other country (`DE`), a US state (`US-WA`:
//! Stripe registers US sales tax per state), or the EU's one-stop shop
//! (`EU-OSS`, the union scheme), which a seller established in the EU files
//! in its own country and which covers sales to buyers in every member
//! state.

use super::state::Account;

/// The member states of the EU, by their ISO codes.
pub const EU_COUNTRIES: &[&str] = &[
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// The one-stop shop's union scheme.
pub const OSS: &str = "EU-OSS";

/// Reads one registration as an author writes it (`de`, `US-WA`,
/// `eu-oss`), in the form the account keeps.
pub fn parse(text: &str) -> Result<String, String> {
    let code = text.trim().to_ascii_uppercase();
    let letters = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_uppercase());
    match code.split_once('-') {
        _ if code == OSS => Ok(code),
        None if code == "US" => Err(format!(
            "`{text}`: Stripe registers US sales tax per state; write the state, such as `US-WA`"
        )),
        None if letters(&code) => Ok(code),
        Some(("US", state)) if letters(state) => Ok(code),
        _ => Err(format!(
            "`{text}` is not a registration; write a country (`DE`), a US state (`US-WA`) or \
             the EU's one-stop shop (`{OSS}`)"
        )),
    }
}

/// Whether the account collects tax from a buyer in `country` (and US
/// `state`).
pub fn collects(account: &Account, country: &str, state: Option<&str>) -> bool {
    let has = |code: &str| account.tax_registrations.iter().any(|r| r == code);
    if country == "US" {
        return state.is_some_and(|state| has(&format!("US-{state}")));
    }
    let established_in_eu = account
        .tax_origin
        .as_deref()
        .is_some_and(|origin| EU_COUNTRIES.contains(&origin));
    has(country) || (EU_COUNTRIES.contains(&country) && established_in_eu && has(OSS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(origin: &str, registrations: &[&str]) -> Account {
        Account {
            tax_origin: Some(origin.to_owned()),
            tax_registrations: registrations.iter().map(|r| (*r).to_owned()).collect(),
            ..Account::default()
        }
    }

    #[test]
    fn registrations_are_read_as_stripe_keeps_them() {
        assert_eq!(parse("de").unwrap(), "DE");
        assert_eq!(parse(" us-wa ").unwrap(), "US-WA");
        assert_eq!(parse("eu-oss").unwrap(), OSS);
        assert!(parse("US").unwrap_err().contains("per state"));
        for bad in ["", "DEU", "US-", "US-WASH", "FR-75", "D1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tax_is_collected_only_where_registered() {
        let none = account("DE", &[]);
        assert!(!collects(&none, "DE", None), "not even at home");
        let some = account("DE", &["DE", "US-WA"]);
        assert!(collects(&some, "DE", None));
        assert!(!collects(&some, "FR", None));
        assert!(collects(&some, "US", Some("WA")));
        assert!(!collects(&some, "US", Some("OR")));
        assert!(!collects(&some, "US", None));
    }

    #[test]
    fn the_one_stop_shop_covers_every_member_state_for_a_seller_in_the_eu() {
        let oss = account("DE", &["DE", OSS]);
        assert!(collects(&oss, "FR", None) && collects(&oss, "IT", None));
        assert!(!collects(&oss, "US", Some("WA")), "not outside the EU");
        assert!(!collects(&oss, "GB", None));
        // The union scheme is for sellers established in the EU.
        let abroad = account("US", &[OSS]);
        assert!(!collects(&abroad, "FR", None));
    }
}

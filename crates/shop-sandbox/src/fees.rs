//! What Stripe keeps of a payment, and the balance transactions that say
//! so.
//!
//! Stripe's published standard pricing, by the account's country and the
//! card's (stripe.com/pricing, as of 2026):
//!
//! | account | domestic cards | neighbouring cards      | other cards |
//! |---------|----------------|-------------------------|-------------|
//! | US      | 2.9 % + fixed  | -                       | 4.4 % + fixed |
//! | EEA     | 1.5 % + fixed  | UK cards 2.5 % + fixed  | 3.25 % + fixed |
//! | UK      | 1.5 % + fixed  | EEA cards 2.5 % + fixed | 3.25 % + fixed |
//!
//! Other account countries are charged as the US is. The fixed part is the
//! sandbox's own table by currency (30 ¢, 25 euro cents, 20 pence, …; none
//! where the table has no entry), and a SEPA Direct Debit costs 35 euro
//! cents. Refunds give no fee back, as on Stripe.
//!
//! Settlement: by default the sandbox's account settles each payment in
//! the currency it was charged in, as an account with a bank account in
//! each does. Told to settle in one currency (`settings`
//! `{"settle_in": "eur"}`, an account with one bank account), it converts
//! every other at the sandbox's own fixed table of rates ([`RATES`], not
//! the market's), records the rate on the balance transaction
//! (`exchange_rate`: the charge's currency times it gives the settlement
//! currency, in whole units, as Stripe defines it), and adds Stripe's
//! conversion fee (1 % for a US account, 2 % elsewhere, of the converted
//! amount) to the payment's fee.

use serde_json::{Value, json};

use super::objects::new_id;
use super::state::State;

/// The countries of the European Economic Area.
const EEA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IS", "IE", "IT",
    "LV", "LI", "LT", "LU", "MT", "NL", "NO", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// The fixed part of a card payment's fee, in minor units of the currency
/// charged: the sandbox's table.
const FIXED: &[(&str, i64)] = &[
    ("usd", 30),
    ("eur", 25),
    ("gbp", 20),
    ("cad", 30),
    ("aud", 30),
    ("nzd", 30),
    ("chf", 30),
    ("sek", 180),
    ("dkk", 180),
    ("nok", 200),
    ("pln", 100),
    ("czk", 650),
];

/// Units of each currency one US dollar buys: the sandbox's fixed table,
/// from which the rate between any two is read.
const RATES: &[(&str, f64)] = &[
    ("usd", 1.0),
    ("eur", 0.92),
    ("gbp", 0.79),
    ("jpy", 150.0),
    ("cad", 1.36),
    ("aud", 1.52),
    ("nzd", 1.66),
    ("chf", 0.88),
    ("sek", 10.4),
    ("dkk", 6.86),
    ("nok", 10.6),
    ("pln", 3.98),
    ("czk", 22.9),
];

/// The rate from `from` to `to` in whole units, if the table has both.
pub fn exchange_rate(from: &str, to: &str) -> Option<f64> {
    let per_dollar = |code: &str| RATES.iter().find(|(c, _)| *c == code).map(|(_, r)| *r);
    Some(per_dollar(to)? / per_dollar(from)?)
}

/// `amount` minor units of `currency` as the account settles them: in the
/// currency it settles in (converted at [`exchange_rate`], rounded half
/// away from zero), with the rate; unchanged where it settles in each.
pub fn settled(state: &State, amount: i64, currency: &str) -> (i64, String, Option<f64>) {
    let Some(into) = state
        .account
        .settle_in
        .clone()
        .filter(|into| into != currency)
    else {
        return (amount, currency.to_owned(), None);
    };
    let Some(rate) = exchange_rate(currency, &into) else {
        // A currency the table lacks settles as charged.
        return (amount, currency.to_owned(), None);
    };
    let scale = |code: &str| 10f64.powi(super::rules::decimals(code) as i32);
    let whole = amount as f64 / scale(currency);
    let converted = (whole * rate * scale(&into)).round() as i64;
    (converted, into, Some(rate))
}

/// Stripe's fee for converting a payment into the settlement currency, in
/// hundredths of a percent: 1 % for a US account, 2 % elsewhere.
fn conversion_rate(account: &str) -> i64 {
    match account {
        "US" => 100,
        _ => 200,
    }
}

/// A SEPA Direct Debit's fee, in euro cents.
const SEPA_FEE: i64 = 35;

fn region(country: &str) -> &'static str {
    match country {
        "US" => "US",
        "GB" => "UK",
        country if EEA.contains(&country) => "EEA",
        _ => "other",
    }
}

/// The account's country: set with `--country`, else where its Stripe Tax
/// head office is, else the US.
pub fn account_country(state: &State) -> String {
    state
        .account
        .country
        .clone()
        .or_else(|| state.account.tax_origin.clone())
        .unwrap_or_else(|| "US".to_owned())
}

/// The percentage, in hundredths of a percent, that an account in
/// `account` pays for a card from `card`.
fn card_rate(account: &str, card: &str) -> i64 {
    match (region(account), region(card)) {
        ("EEA", "EEA") | ("UK", "UK") => 150,
        ("EEA", "UK") | ("UK", "EEA") => 250,
        ("EEA" | "UK", _) => 325,
        _ if card == account => 290,
        _ => 440,
    }
}

/// Stripe's fee for a card payment of `amount` in `currency` by a card
/// from `card_country`, rounded half up.
pub fn card_fee(account: &str, card_country: &str, amount: i64, currency: &str) -> i64 {
    let rate = card_rate(account, card_country);
    let fixed = FIXED
        .iter()
        .find(|(code, _)| *code == currency)
        .map_or(0, |(_, fixed)| *fixed);
    (amount * rate + 5_000) / 10_000 + fixed
}

/// Stripe's fee for a SEPA Direct Debit.
pub fn sepa_fee() -> i64 {
    SEPA_FEE
}

/// Records a movement of the balance and returns its id: `charge`
/// (positive, less the fee), `refund` (negative, no fee) or
/// `refund_failure` (the money back).
pub fn record(
    state: &mut State,
    kind: &str,
    amount: i64,
    fee: i64,
    currency: &str,
    source: &str,
) -> String {
    let (amount, currency, rate) = settled(state, amount, currency);
    record_settled(state, kind, (amount, &currency, rate), fee, source)
}

/// [`record`] of an amount already in the settlement currency, with the
/// rate it was converted at (none: not converted).
fn record_settled(
    state: &mut State,
    kind: &str,
    (amount, currency, rate): (i64, &str, Option<f64>),
    fee: i64,
    source: &str,
) -> String {
    let id = new_id("txn_");
    let now = state.now();
    let fee_details = if fee == 0 {
        json!([])
    } else {
        json!([{
            "amount": fee,
            "application": null,
            "currency": currency,
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }])
    };
    state.insert(json!({
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        // Two days, Stripe's first payout schedule in most countries.
        "available_on": now + 2 * 86_400,
        "created": now,
        "currency": currency,
        "description": null,
        "exchange_rate": rate,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": kind,
        "source": source,
        "status": "pending",
        "type": kind,
    }));
    id
}

/// Records the money of a charge that succeeded and links it: the card's
/// country or the debit decides the fee.
pub fn charge_succeeded(state: &mut State, charge_id: &str) {
    let Some(charge) = state.get(charge_id).cloned() else {
        return;
    };
    let amount = charge["amount"].as_i64().unwrap_or(0);
    let currency = charge["currency"].as_str().unwrap_or("usd").to_owned();
    let details = &charge["payment_method_details"];
    let (amount, currency, rate) = settled(state, amount, &currency);
    let account = account_country(state);
    let mut fee = if details["type"] == "sepa_debit" {
        sepa_fee()
    } else {
        let card = details["card"]["country"].as_str().unwrap_or("US");
        card_fee(&account, card, amount, &currency)
    };
    if rate.is_some() {
        fee += (amount * conversion_rate(&account) + 5_000) / 10_000;
    }
    let id = record_settled(state, "charge", (amount, &currency, rate), fee, charge_id);
    state.update(charge_id, |charge| {
        charge["balance_transaction"] = json!(id)
    });
}

/// The balance transaction of a charge, expanded in its place when asked.
pub fn expanded(state: &State, charge: &mut Value) {
    if let Some(balance) = charge["balance_transaction"]
        .as_str()
        .and_then(|id| state.get(id))
    {
        charge["balance_transaction"] = balance.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_follows_the_table_in_each_currencys_units() {
        let mut state = State::default();
        assert_eq!(settled(&state, 2600, "usd"), (2600, "usd".to_owned(), None));
        state.account.settle_in = Some("eur".into());
        // 26.00 USD at 0.92 is 23.92 EUR; 3,900 JPY at 0.92/150 is 23.92 EUR.
        let (amount, currency, rate) = settled(&state, 2600, "usd");
        assert_eq!((amount, currency.as_str()), (2392, "eur"));
        assert!((rate.unwrap() - 0.92).abs() < 1e-9);
        assert_eq!(settled(&state, 3900, "jpy").0, 2392);
        assert_eq!(settled(&state, 2100, "eur"), (2100, "eur".to_owned(), None));
    }

    #[test]
    fn fees_follow_the_published_pricing() {
        // US account: 2.9 % + 30 ¢ for a US card, 4.4 % + 30 ¢ for others.
        assert_eq!(card_fee("US", "US", 2900, "usd"), 84 + 30);
        assert_eq!(card_fee("US", "DE", 2900, "usd"), 128 + 30);
        // German account: 1.5 % + 25 c for EEA cards, 2.5 % for UK ones,
        // 3.25 % for the rest.
        assert_eq!(card_fee("DE", "FR", 2400, "eur"), 36 + 25);
        assert_eq!(card_fee("DE", "GB", 2400, "eur"), 60 + 25);
        assert_eq!(card_fee("DE", "US", 2400, "eur"), 78 + 25);
        // A UK account, a UK card.
        assert_eq!(card_fee("GB", "GB", 1000, "gbp"), 15 + 20);
        // Half a minor unit rounds up: 1.5 % of 1 030 is 15.45 → 15;
        // 2.9 % of 50 is 1.45 → 1; 3.25 % of 200 is 6.5 → 7.
        assert_eq!(card_fee("DE", "DE", 1030, "jpy"), 15);
        assert_eq!(card_fee("US", "US", 50, "usd"), 1 + 30);
        assert_eq!(card_fee("DE", "US", 200, "eur"), 7 + 25);
    }
}

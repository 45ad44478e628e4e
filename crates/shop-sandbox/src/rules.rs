//! Stripe's own rules, as its documentation states them, for the sandbox
//! to refuse what Stripe refuses. Written from Stripe's pages (supported
//! currencies, zero- and three-decimal currencies and their special cases,
//! minimum charge amounts, API versions), never borrowed from the store's
//! checks: a mistake shared by both would hide itself.

/// The API version the sandbox answers in (its account's default).
pub const VERSION: &str = "2024-04-10";

/// Presentment currencies Stripe accepts for card payments.
const CURRENCIES: &str = "aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd \
    bob brl bsd bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd \
    fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf \
    krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad \
    ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd \
    shp sle sos srd szl thb tjs tnd top try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst xaf xcd \
    xof xpf yer zar zmw";

/// "Zero-decimal currencies": amounts are whole units.
const ZERO_DECIMAL: &str = "bif clp djf gnf jpy kmf krw mga pyg rwf vnd vuv xaf xof xpf";

/// "Three-decimal currencies": the last digit of an amount must be 0.
const THREE_DECIMAL: &str = "bhd jod kwd omr tnd";

/// "Special cases": zero-decimal in fact, two-decimal in the API for
/// backwards compatibility, so amounts must be divisible by 100.
const DIVISIBLE_BY_100: &str = "isk ugx";

/// "Minimum and maximum charge amounts", in minor units.
const MINIMUM_CHARGE: &[(&str, i64)] = &[
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

pub fn is_currency(code: &str) -> bool {
    CURRENCIES.split_whitespace().any(|known| known == code)
}

/// Decimals of a currency's amounts in the API.
pub fn decimals(code: &str) -> u32 {
    if ZERO_DECIMAL.split_whitespace().any(|c| c == code) {
        0
    } else if THREE_DECIMAL.split_whitespace().any(|c| c == code) {
        3
    } else {
        2
    }
}

/// An amount without its currency, as a form shows it: `29.00`.
pub fn decimal(amount: i64, code: &str) -> String {
    let decimals = decimals(code);
    if decimals == 0 {
        return amount.to_string();
    }
    let scale = 10i64.pow(decimals);
    format!(
        "{}.{:0width$}",
        amount / scale,
        amount % scale,
        width = decimals as usize
    )
}

/// An amount a buyer typed (`12`, `12.5`, `12.50`) in minor units, or
/// `None` when it is not one.
pub fn parse_amount(text: &str, code: &str) -> Option<i64> {
    let decimals = decimals(code) as usize;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > decimals
        || whole.len() > 9
    {
        return None;
    }
    let padded = format!("{whole}{fraction:0<decimals$}");
    padded.parse().ok()
}

/// An amount as people read it: `29.00 USD`.
pub fn display(amount: i64, code: &str) -> String {
    format!("{} {}", decimal(amount, code), code.to_ascii_uppercase())
}

/// Why Stripe would refuse to charge `amount` (a total above zero): the
/// message of its error, or `None`.
pub fn charge_refusal(amount: i64, code: &str) -> Option<String> {
    if DIVISIBLE_BY_100.split_whitespace().any(|c| c == code) && amount % 100 != 0 {
        return Some(format!(
            "Invalid amount. Currency {} has become effectively zero-decimal and charged amounts must be evenly divisible by 100. See https://stripe.com/docs/currencies#zero-decimal for more information.",
            code.to_ascii_uppercase()
        ));
    }
    if decimals(code) == 3 && amount % 10 != 0 {
        return Some(format!(
            "Invalid amount. Amounts in {} must end in 0: round to the nearest ten. See https://stripe.com/docs/currencies#three-decimal for more information.",
            code.to_ascii_uppercase()
        ));
    }
    if let Some(&(_, minimum)) = MINIMUM_CHARGE.iter().find(|(c, _)| *c == code)
        && amount < minimum
    {
        return Some(format!(
            "The Checkout Session's total amount due must add up to at least {}",
            display(minimum, code)
        ));
    }
    None
}

/// Stripe's check of an email address in Checkout: something, `@`, a
/// domain with a dot.
pub fn is_email(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_refuses_what_its_pages_say() {
        assert!(charge_refusal(5125, "kwd").is_some());
        assert!(charge_refusal(5120, "kwd").is_none());
        assert!(charge_refusal(150_050, "isk").is_some());
        assert!(charge_refusal(150_000, "isk").is_none());
        assert!(charge_refusal(10, "usd").is_some());
        assert!(charge_refusal(50, "usd").is_none());
        assert!(charge_refusal(49, "jpy").is_some());
        assert_eq!(display(2900, "usd"), "29.00 USD");
        assert_eq!(display(5120, "kwd"), "5.120 KWD");
        assert!(is_currency("eur") && !is_currency("xyz"));
        assert!(is_email("a@b.co") && !is_email("a@b") && !is_email("nope"));
    }
}

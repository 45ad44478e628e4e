//! Money in integer minor units, and the currencies Stripe takes.
//!
//! Authors write prices as decimal strings (`price = "29.00"`); floats and
//! bare integers are refused, since `29.9` and `2900` both read as something
//! other than what was meant often enough to cost money.

use std::fmt;
use std::str::FromStr;

/// An ISO 4217 currency code that Stripe accepts, kept in lowercase as
/// Stripe's API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Currencies Stripe can charge in (its "presentment currencies").
const CURRENCIES: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk",
    "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr",
    "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub",
    "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "szl", "thb", "tjs",
    "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd", "vuv",
    "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Stripe's zero-decimal currencies: amounts are whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
    "xof", "xpf",
];

/// Currencies with three decimals: Stripe takes amounts whose last digit is
/// 0 ("round amounts to the nearest ten", Stripe's currencies page).
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Currencies that became zero-decimal but that Stripe's API still writes
/// with two decimals, for compatibility: amounts must be divisible by 100
/// (to charge 5 ISK, send 500). Stripe's "special cases".
const WHOLE_UNITS: &[&str] = &["isk", "ugx"];

/// Stripe's minimum charge per currency, in minor units, where Stripe
/// states one ("Minimum and maximum charge amounts"); other currencies must
/// convert to at least 0.50 USD, which cannot be checked offline.
const MINIMUMS: &[(&str, i64)] = &[
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

/// The currency people pay in, by country (ISO 3166-1 alpha-2): the euro
/// area, then the countries with a currency of their own that sellers most
/// often price in. A country not here has no likely currency.
pub fn currency_of_country(country: &str) -> Option<Currency> {
    const EURO: &[&str] = &[
        "AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT", "LU", "LV",
        "MT", "NL", "PT", "SI", "SK",
    ];
    const OWN: &[(&str, &str)] = &[
        ("US", "usd"),
        ("GB", "gbp"),
        ("JP", "jpy"),
        ("CA", "cad"),
        ("AU", "aud"),
        ("NZ", "nzd"),
        ("CH", "chf"),
        ("SE", "sek"),
        ("DK", "dkk"),
        ("NO", "nok"),
        ("PL", "pln"),
        ("CZ", "czk"),
        ("HU", "huf"),
        ("RO", "ron"),
        ("IN", "inr"),
        ("BR", "brl"),
        ("MX", "mxn"),
        ("SG", "sgd"),
        ("HK", "hkd"),
        ("KR", "krw"),
    ];
    let country = country.to_ascii_uppercase();
    let code = match EURO.contains(&country.as_str()) {
        true => "eur",
        false => OWN.iter().find(|(c, _)| *c == country)?.1,
    };
    code.parse().ok()
}

/// Stripe's largest amount for a price, in minor units (eight digits).
pub const MAX_AMOUNT: i64 = 99_999_999;

impl Currency {
    /// The lowercase code, as Stripe's API spells it.
    pub fn code(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// How many decimals the currency's minor unit has (0, 2 or 3).
    pub fn exponent(&self) -> u32 {
        let code = self.code();
        if ZERO_DECIMAL.contains(&code) {
            0
        } else if THREE_DECIMAL.contains(&code) {
            3
        } else {
            2
        }
    }
}

impl FromStr for Currency {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        if CURRENCIES.contains(&lower.as_str()) {
            let bytes = lower.as_bytes();
            Ok(Currency([bytes[0], bytes[1], bytes[2]]))
        } else {
            let suggestion = super::did_you_mean(&lower, CURRENCIES.iter().copied())
                .map(|sentence| format!("; {sentence}"))
                .unwrap_or_default();
            Err(format!(
                "`{text}` is not a currency Stripe can charge in{suggestion}"
            ))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code().to_ascii_uppercase())
    }
}

/// An amount of money: integer minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// Parses a decimal price such as `29`, `29.9` or `29.00` into minor
    /// units of `currency`, refusing more decimals than it has.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, String> {
        let exponent = currency.exponent();
        let trimmed = text.trim();
        let (whole, fraction) = match trimmed.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (trimmed, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (trimmed.contains('.') && !digits(fraction)) {
            // Why not, as a person writes prices in their own country.
            let number: String = trimmed
                .chars()
                .filter(|c| c.is_ascii_digit() || matches!(c, '.' | ','))
                .collect();
            let reason = if number.is_empty() {
                ": write a number, such as `24.00`".to_owned()
            } else if trimmed
                .chars()
                .any(|c| !c.is_ascii_digit() && !matches!(c, '.' | ',' | ' '))
            {
                format!(
                    ": write the number alone, such as `{}` (the currency is `currency`)",
                    number.replace(',', ".")
                )
            } else if trimmed.contains(',') {
                format!(
                    ": it has a comma; write the decimals after a dot, such as `{}`",
                    number.replace(',', ".")
                )
            } else {
                String::new()
            };
            return Err(format!("`{text}` is not a price{reason}"));
        }
        if fraction.len() > exponent as usize {
            return Err(format!(
                "`{text}` has more decimals than {currency} has ({exponent})"
            ));
        }
        let scale = 10i64.pow(exponent);
        let whole: i64 = whole
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let mut minor = 0i64;
        if !fraction.is_empty() {
            let padded = format!("{fraction:0<width$}", width = exponent as usize);
            minor = padded
                .parse()
                .map_err(|_| format!("`{text}` is not a price"))?;
        }
        let amount = whole
            .checked_mul(scale)
            .and_then(|units| units.checked_add(minor))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        if amount == 0 {
            return Err("a price must be more than zero".into());
        }
        if amount > MAX_AMOUNT {
            return Err(format!(
                "`{text}` is above Stripe's largest price ({})",
                Money {
                    amount: MAX_AMOUNT,
                    currency
                }
            ));
        }
        Ok(Money { amount, currency })
    }

    /// Whether Stripe can charge this amount: its currency's rounding rule
    /// and minimum. The error is what is wrong and what to write instead.
    pub fn check_chargeable(&self) -> Result<(), (String, String)> {
        let code = self.currency.code();
        if THREE_DECIMAL.contains(&code) && self.amount % 10 != 0 {
            let down = Money {
                amount: self.amount - self.amount % 10,
                ..*self
            };
            let up = Money {
                amount: down.amount + 10,
                ..*self
            };
            return Err((
                format!(
                    "Stripe cannot charge `{self}`: {} amounts must end in 0",
                    self.currency
                ),
                format!(
                    "round the price to `{}` or `{}`",
                    down.decimal(),
                    up.decimal()
                ),
            ));
        }
        if WHOLE_UNITS.contains(&code) && self.amount % 100 != 0 {
            return Err((
                format!(
                    "Stripe cannot charge `{self}`: {} is charged in whole units",
                    self.currency
                ),
                format!("write a whole amount, such as `{}`", self.amount / 100),
            ));
        }
        if let Some(&(_, minimum)) = MINIMUMS.iter().find(|(c, _)| *c == code)
            && self.amount < minimum
        {
            let minimum = Money {
                amount: minimum,
                ..*self
            };
            return Err((
                format!(
                    "`{self}` is below Stripe's smallest charge in {}, {minimum}",
                    self.currency
                ),
                format!("set a price of at least `{}`", minimum.decimal()),
            ));
        }
        Ok(())
    }

    /// The amount as a decimal string without the currency: `29.00`.
    pub fn decimal(&self) -> String {
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return self.amount.to_string();
        }
        let scale = 10i64.pow(exponent);
        let sign = if self.amount < 0 { "-" } else { "" };
        let amount = self.amount.abs();
        format!(
            "{sign}{}.{:0width$}",
            amount / scale,
            amount % scale,
            width = exponent as usize
        )
    }
}

/// An amount in minor units of a currency named by Stripe's code (as a
/// Checkout Session gives it), as people read it: `29.00 USD`.
pub fn display_amount(amount: i64, code: &str) -> String {
    match code.parse() {
        Ok(currency) => Money { amount, currency }.to_string(),
        Err(_) => format!("{amount} {}", code.to_ascii_uppercase()),
    }
}

/// What a receipt says was paid: the amount, and any discount and tax in
/// it (`24.00 USD (after a discount of 5.00 USD), of which tax 3.83 USD`).
pub fn describe_payment(amount: i64, code: &str, discount: i64, tax: i64) -> String {
    let mut text = display_amount(amount, code);
    if discount > 0 {
        text.push_str(&format!(
            " (after a discount of {})",
            display_amount(discount, code)
        ));
    }
    if tax > 0 {
        text.push_str(&format!(", of which tax {}", display_amount(tax, code)));
    }
    text
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, currency: &str, expected: Result<i64, &str>) {
        let currency: Currency = currency.parse().unwrap();
        let actual = Money::parse(text, currency).map(|money| money.amount);
        match (actual, expected) {
            (Ok(actual), Ok(expected)) => assert_eq!(actual, expected, "{text}"),
            (Err(actual), Err(expected)) => assert!(actual.contains(expected), "{actual}"),
            (actual, expected) => panic!("{text}: got {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn prices_become_minor_units() {
        check("29.00", "usd", Ok(2900));
        check("29", "usd", Ok(2900));
        check("29.9", "eur", Ok(2990));
        check("0.50", "usd", Ok(50));
        check("1500", "jpy", Ok(1500));
        check("1.250", "kwd", Ok(1250));
        check("999999.99", "usd", Ok(99_999_999));
    }

    #[test]
    fn bad_prices_are_refused() {
        check("29.999", "usd", Err("more decimals than USD has (2)"));
        check("15.5", "jpy", Err("more decimals than JPY has (0)"));
        check("-5", "usd", Err("is not a price"));
        check(
            "24,00",
            "eur",
            Err(
                "`24,00` is not a price: it has a comma; write the decimals after a dot, such as `24.00`",
            ),
        );
        check(
            "€24.00",
            "eur",
            Err(
                "`€24.00` is not a price: write the number alone, such as `24.00` (the currency is `currency`)",
            ),
        );
        check(
            "free",
            "usd",
            Err("`free` is not a price: write a number, such as `24.00`"),
        );
        assert_eq!(
            "eru".parse::<Currency>(),
            Err("`eru` is not a currency Stripe can charge in; did you mean `eur`?".to_owned())
        );
        check("1e3", "usd", Err("is not a price"));
        check("12.", "usd", Err("is not a price"));
        check("0", "usd", Err("more than zero"));
        check("1000000", "usd", Err("above Stripe's largest price"));
        check("99999999999999999999", "usd", Err("too large"));
    }

    fn chargeable(text: &str, currency: &str) -> Result<(), String> {
        let money = Money::parse(text, currency.parse().unwrap()).unwrap();
        money
            .check_chargeable()
            .map_err(|(message, hint)| format!("{message} / {hint}"))
    }

    #[test]
    fn amounts_stripe_refuses_are_refused() {
        assert_eq!(
            chargeable("5.125", "kwd").unwrap_err(),
            "Stripe cannot charge `5.125 KWD`: KWD amounts must end in 0 / round the price to `5.120` or `5.130`"
        );
        assert!(chargeable("5.120", "kwd").is_ok());
        assert_eq!(
            chargeable("1500.50", "isk").unwrap_err(),
            "Stripe cannot charge `1500.50 ISK`: ISK is charged in whole units / write a whole amount, such as `1500`"
        );
        assert!(chargeable("1500", "isk").is_ok());
        // UGX too: 5000 UGX is sent as 500000.
        assert_eq!(
            Money::parse("5000", "ugx".parse().unwrap()).unwrap().amount,
            500_000
        );
        assert!(chargeable("5000.50", "ugx").is_err());
        assert_eq!(
            chargeable("0.10", "usd").unwrap_err(),
            "`0.10 USD` is below Stripe's smallest charge in USD, 0.50 USD / set a price of at least `0.50`"
        );
        assert!(chargeable("0.30", "gbp").is_ok());
        assert!(chargeable("49", "jpy").is_err());
        // HUF may have decimals in a charge (only payouts are whole).
        assert!(chargeable("200.50", "huf").is_ok());
    }

    #[test]
    fn currencies_are_checked_and_lowercased() {
        assert_eq!("EUR".parse::<Currency>().unwrap().code(), "eur");
        assert!("xyz".parse::<Currency>().is_err());
        assert!("us".parse::<Currency>().is_err());
    }

    #[test]
    fn money_displays_with_its_decimals() {
        let usd: Currency = "usd".parse().unwrap();
        let jpy: Currency = "jpy".parse().unwrap();
        assert_eq!(
            Money {
                amount: 2900,
                currency: usd
            }
            .to_string(),
            "29.00 USD"
        );
        assert_eq!(
            Money {
                amount: 5,
                currency: usd
            }
            .to_string(),
            "0.05 USD"
        );
        assert_eq!(
            Money {
                amount: -250,
                currency: usd
            }
            .decimal(),
            "-2.50"
        );
        assert_eq!(
            Money {
                amount: 1500,
                currency: jpy
            }
            .to_string(),
            "1500 JPY"
        );
    }
}

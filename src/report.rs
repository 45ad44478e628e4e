//! Sales from the ledger: pure aggregation and CSV, no I/O.

use std::collections::BTreeMap;

use crate::ledger::Purchase;
use crate::store::{Currency, Money};

/// How purchases are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Product,
    Version,
    Month,
    /// `utm_source`, else the referrer's host, else `direct`.
    Source,
    /// The promotion code the buyer used, or `none`: free copies given by
    /// a 100 % code show as sales of 0.
    Code,
    /// The buyer's country from the billing address, or `unknown` when
    /// checkout asked for none.
    Country,
}

/// One group's sales in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub group: String,
    pub currency: String,
    /// Purchases paid for (refunded ones too).
    pub count: u64,
    /// Copies given by `shop grant`, counted apart: no money.
    pub granted: u64,
    pub gross: i64,
    pub refunded: i64,
    /// Tax collected and kept: a refund gives back its share of the tax.
    pub tax: i64,
    /// What the author keeps: gross less refunds and tax.
    pub net: i64,
}

impl Row {
    /// An amount of this row as money, for display.
    pub fn money(&self, amount: i64) -> String {
        match self.currency.parse::<Currency>() {
            Ok(currency) => Money { amount, currency }.to_string(),
            Err(_) => format!("{amount} {}", self.currency),
        }
    }
}

/// Sums the purchases it is given by group and currency; rows come sorted
/// by group, then currency. (Choosing which purchases, such as `--since`,
/// is the caller's.)
#[derive(Debug, Default)]
pub struct Report {
    rows: BTreeMap<(String, String), Row>,
}

impl Report {
    pub fn add(&mut self, purchase: &Purchase, by: By) {
        let group = match by {
            By::Product => purchase.product.clone(),
            By::Version => format!("{} {}", purchase.product, purchase.version),
            By::Month => purchase.month().to_owned(),
            By::Source => source(purchase),
            By::Code => purchase
                .promotion_code
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
            By::Country => purchase
                .country
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
        };
        let key = (group.clone(), purchase.currency.clone());
        let row = self.rows.entry(key).or_insert_with(|| Row {
            group,
            currency: purchase.currency.clone(),
            count: 0,
            granted: 0,
            gross: 0,
            refunded: 0,
            tax: 0,
            net: 0,
        });
        if purchase.is_grant() {
            row.granted += 1;
            return;
        }
        let refunded = purchase.refunded();
        let tax = kept_tax(purchase, refunded);
        row.count += 1;
        row.gross += purchase.amount;
        row.refunded += refunded;
        row.tax += tax;
        row.net += purchase.amount - refunded - tax;
    }

    pub fn rows(&self) -> Vec<Row> {
        self.rows.values().cloned().collect()
    }
}

/// The tax of a purchase less the share its refunds gave back (Stripe
/// refunds tax in proportion), rounded down.
fn kept_tax(purchase: &Purchase, refunded: i64) -> i64 {
    let tax = purchase.tax.unwrap_or(0);
    if purchase.amount <= 0 || tax == 0 {
        return tax;
    }
    let kept = (purchase.amount - refunded).clamp(0, purchase.amount);
    // i128: minor units times minor units.
    (i128::from(tax) * i128::from(kept) / i128::from(purchase.amount)) as i64
}

/// Where a buyer came from.
pub fn source(purchase: &Purchase) -> String {
    if let Some(source) = &purchase.utm_source {
        return source.clone();
    }
    if let Some(referrer) = &purchase.referrer {
        let host = referrer
            .split_once("://")
            .map_or(referrer.as_str(), |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        if !host.is_empty() {
            return host.trim_start_matches("www.").to_owned();
        }
    }
    "direct".to_owned()
}

/// The CSV header of [`csv_line`].
pub const CSV_HEADER: &str = "id,created,email,product,version,amount,refunded,currency,status,payment_intent,utm_source,utm_medium,utm_campaign,utm_term,utm_content,referrer,promotion_code,country,tax,tax_id,invoice,terms_accepted\n";

/// One purchase as a CSV line, amounts in the currency's units.
pub fn csv_line(purchase: &Purchase) -> String {
    let decimal = |amount: i64| match purchase.currency.parse::<Currency>() {
        Ok(currency) => Money { amount, currency }.decimal(),
        Err(_) => amount.to_string(),
    };
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let fields = [
        purchase.id.clone(),
        purchase.created.clone(),
        purchase.email.clone(),
        purchase.product.clone(),
        purchase.version.clone(),
        decimal(purchase.amount),
        decimal(purchase.refunded()),
        purchase.currency.to_ascii_uppercase(),
        purchase.status.clone(),
        optional(&purchase.payment_intent),
        optional(&purchase.utm_source),
        optional(&purchase.utm_medium),
        optional(&purchase.utm_campaign),
        optional(&purchase.utm_term),
        optional(&purchase.utm_content),
        optional(&purchase.referrer),
        optional(&purchase.promotion_code),
        optional(&purchase.country),
        purchase.tax.map(decimal).unwrap_or_default(),
        optional(&purchase.tax_id),
        optional(&purchase.invoice),
        optional(&purchase.terms_accepted),
    ];
    let mut line = fields
        .iter()
        .map(|field| csv_field(field))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// Quotes a field when needed, and defuses what a spreadsheet would run as
/// a formula (a buyer chooses their email and the UTM tags they arrive with).
fn csv_field(field: &str) -> String {
    // What a visitor wrote (a UTM value) may hold escape sequences: shown,
    // never acted on by the terminal the CSV is printed to.
    let field = crate::printable::printable(field);
    let defused = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.into_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(product: &str, amount: i64, status: &str, refunded: Option<i64>) -> Purchase {
        Purchase {
            id: "cs_1".into(),
            created: "2026-11-02T10:00:00Z".into(),
            email: "ada@example.com".into(),
            product: product.into(),
            version: "1.0.0".into(),
            amount,
            currency: "usd".into(),
            status: status.into(),
            amount_refunded: refunded,
            referrer: Some("https://www.example.org/post?x=1".into()),
            ..Purchase::default()
        }
    }

    #[test]
    fn grants_are_counted_apart_and_bring_no_money() {
        let mut report = Report::default();
        report.add(&purchase("guide", 2900, "paid", None), By::Product);
        report.add(
            &purchase("guide", 0, crate::ledger::GRANTED, None),
            By::Product,
        );
        report.add(
            &purchase("guide", 0, crate::ledger::GRANTED, None),
            By::Product,
        );
        let rows = report.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].count, rows[0].granted), (1, 2));
        assert_eq!((rows[0].gross, rows[0].net), (2900, 2900));
    }

    #[test]
    fn countries_show_tax_apart_and_refunds_give_back_their_share() {
        let taxed = |country: &str, amount: i64, tax: i64, refunded: Option<i64>| Purchase {
            country: Some(country.into()),
            tax: Some(tax),
            ..purchase("guide", amount, "paid", refunded)
        };
        let mut report = Report::default();
        report.add(&taxed("DE", 3451, 551, None), By::Country);
        report.add(&taxed("DE", 3451, 551, Some(3451)), By::Country);
        report.add(&taxed("US", 3197, 297, Some(1599)), By::Country);
        report.add(&purchase("guide", 2900, "paid", None), By::Country);
        let rows = report.rows();
        let row = |group: &str| rows.iter().find(|row| row.group == group).unwrap().clone();
        let germany = row("DE");
        assert_eq!(
            (
                germany.count,
                germany.gross,
                germany.refunded,
                germany.tax,
                germany.net
            ),
            (2, 6902, 3451, 551, 2900)
        );
        // Half refunded: half the tax (148.4, rounded down) stays.
        let us = row("US");
        assert_eq!((us.tax, us.net), (148, 3197 - 1599 - 148));
        assert_eq!((row("unknown").tax, row("unknown").net), (0, 2900));
    }

    #[test]
    fn groups_add_up() {
        let mut report = Report::default();
        report.add(&purchase("guide", 2900, "paid", None), By::Product);
        report.add(&purchase("guide", 2900, "refunded", None), By::Product);
        report.add(&purchase("guide", 2900, "paid", Some(900)), By::Product);
        report.add(&purchase("atlas", 1000, "disputed", None), By::Product);
        let rows = report.rows();
        assert_eq!(
            rows[0],
            Row {
                group: "atlas".into(),
                currency: "usd".into(),
                count: 1,
                granted: 0,
                gross: 1000,
                refunded: 0,
                tax: 0,
                net: 1000
            }
        );
        assert_eq!(
            rows[1],
            Row {
                group: "guide".into(),
                currency: "usd".into(),
                count: 3,
                granted: 0,
                gross: 8700,
                refunded: 3800,
                tax: 0,
                net: 4900
            }
        );
        assert_eq!(rows[1].money(rows[1].net), "49.00 USD");
    }

    #[test]
    fn sources_fall_back_to_the_referrers_host() {
        assert_eq!(source(&purchase("guide", 1, "paid", None)), "example.org");
    }

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        let line = csv_line(&purchase("guide", 2900, "paid", Some(900)));
        assert!(
            line.starts_with(
                "cs_1,2026-11-02T10:00:00Z,ada@example.com,guide,1.0.0,29.00,9.00,USD,paid,"
            ),
            "{line}"
        );
        assert_eq!(line.matches(',').count(), CSV_HEADER.matches(',').count());
    }
}

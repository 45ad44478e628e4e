//! Sales from the ledger: pure aggregation and CSV, no I/O.

use std::collections::BTreeMap;

use crate::ledger::Purchase;
use crate::printable;
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
    /// Free samples given for an address, counted apart: no sale.
    pub samples: u64,
    pub gross: i64,
    pub refunded: i64,
    /// Purchases the buyer withdrew from through the withdrawal function
    /// and was refunded for: counted apart from other refunds (they are in
    /// `count`, their money in `refunded`).
    pub withdrawn: u64,
    /// Stripe's fees, which it keeps when it refunds.
    pub fees: i64,
    /// Tax collected and kept: a refund gives back its share of the tax.
    pub tax: i64,
    /// What the author keeps: gross less refunds, fees and tax.
    pub net: i64,
    /// Paid purchases whose fee is not known in this currency (synced
    /// before fees were recorded, or settled in another currency): `net`
    /// leaves their fees out.
    pub fees_unknown: u64,
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
        self.row(purchase, by).add(purchase);
    }

    /// Counts `purchase` (added too) as withdrawn from and refunded.
    pub fn withdrawn(&mut self, purchase: &Purchase, by: By) {
        self.row(purchase, by).withdrawn += 1;
    }

    fn row(&mut self, purchase: &Purchase, by: By) -> &mut Row {
        let group = match by {
            By::Product => purchase.product.clone(),
            By::Version => format!("{} {}", purchase.product, purchase.version),
            By::Month => purchase.sold()[..7].to_owned(),
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
        self.rows
            .entry(key)
            .or_insert_with(|| Row::empty(group, &purchase.currency))
    }

    pub fn rows(&self) -> Vec<Row> {
        self.rows.values().cloned().collect()
    }

    /// Adds another report's rows (one made of other purchases) to these.
    pub fn merge(&mut self, other: Report) {
        for (key, row) in other.rows {
            match self.rows.get_mut(&key) {
                None => {
                    self.rows.insert(key, row);
                }
                Some(mine) => {
                    mine.count += row.count;
                    mine.granted += row.granted;
                    mine.samples += row.samples;
                    mine.gross += row.gross;
                    mine.refunded += row.refunded;
                    mine.withdrawn += row.withdrawn;
                    mine.fees += row.fees;
                    mine.tax += row.tax;
                    mine.net += row.net;
                    mine.fees_unknown += row.fees_unknown;
                }
            }
        }
    }

    /// One row per currency summing every group, in currency order: the
    /// total an accountant checks against the bank.
    pub fn totals(&self) -> Vec<Row> {
        let mut totals: BTreeMap<String, Row> = BTreeMap::new();
        for row in self.rows.values() {
            let total = totals
                .entry(row.currency.clone())
                .or_insert_with(|| Row::empty("total".to_owned(), &row.currency));
            total.count += row.count;
            total.granted += row.granted;
            total.samples += row.samples;
            total.gross += row.gross;
            total.refunded += row.refunded;
            total.withdrawn += row.withdrawn;
            total.fees += row.fees;
            total.tax += row.tax;
            total.net += row.net;
            total.fees_unknown += row.fees_unknown;
        }
        totals.into_values().collect()
    }
}

impl Row {
    /// An amount of this row as money, for display.
    pub fn money(&self, amount: i64) -> String {
        match self.currency.parse::<Currency>() {
            Ok(currency) => Money { amount, currency }.to_string(),
            Err(_) => format!("{amount} {}", self.currency),
        }
    }

    fn empty(group: String, currency: &str) -> Row {
        Row {
            group,
            currency: currency.to_owned(),
            count: 0,
            granted: 0,
            samples: 0,
            gross: 0,
            refunded: 0,
            withdrawn: 0,
            fees: 0,
            tax: 0,
            net: 0,
            fees_unknown: 0,
        }
    }

    fn add(&mut self, purchase: &Purchase) {
        if purchase.is_grant() {
            self.granted += 1;
            return;
        }
        if purchase.is_sample() {
            self.samples += 1;
            return;
        }
        let refunded = purchase.refunded();
        let tax = kept_tax(purchase, refunded);
        let fee = match (purchase.fee, &purchase.settled_in) {
            (Some(fee), None) => fee,
            // Nothing paid, nothing charged.
            _ if purchase.amount == 0 => 0,
            _ => {
                self.fees_unknown += 1;
                0
            }
        };
        self.count += 1;
        self.gross += purchase.amount;
        self.refunded += refunded;
        self.fees += fee;
        self.tax += tax;
        self.net += purchase.amount - refunded - fee - tax;
    }
}

/// A purchase as it reached an account that settles in `into`: its
/// amounts converted at the rate Stripe applied to its balance transaction
/// (what it settled, `fee + net`, over what was charged), refunds and tax
/// at the same rate; a purchase charged in `into` unchanged, one with
/// nothing to convert (no money) moved to `into`. `None` when Stripe gave
/// no rate to `into`: it settled in another currency, or its settlement
/// is not in the ledger.
pub fn in_currency(purchase: &Purchase, into: Currency) -> Option<Purchase> {
    let into_code = into.code();
    if purchase.currency == into_code {
        return Some(purchase.clone());
    }
    if purchase.amount == 0 {
        return Some(Purchase {
            currency: into_code.to_owned(),
            ..purchase.clone()
        });
    }
    if purchase.settled_in.as_deref() != Some(into_code) {
        return None;
    }
    let settled = purchase.fee? + purchase.net?;
    // i128: minor units times minor units; half away from zero.
    let convert = |amount: i64| -> i64 {
        let scaled = i128::from(amount) * i128::from(settled);
        let amount_charged = i128::from(purchase.amount);
        let half = amount_charged / 2;
        ((scaled + if scaled >= 0 { half } else { -half }) / amount_charged) as i64
    };
    Some(Purchase {
        amount: settled,
        currency: into_code.to_owned(),
        discount: purchase.discount.map(convert),
        tax: purchase.tax.map(convert),
        amount_refunded: purchase.amount_refunded.map(convert),
        // Fee and net are the settlement's already.
        settled_in: None,
        ..purchase.clone()
    })
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
    source_of(purchase.utm_source.as_deref(), purchase.referrer.as_deref())
}

/// A source: `utm_source`, else the referring site's host (without
/// `www.`), else `direct`; sales and visits alike.
pub fn source_of(utm_source: Option<&str>, referrer: Option<&str>) -> String {
    if let Some(source) = utm_source {
        return source.to_owned();
    }
    if let Some(referrer) = referrer {
        let host = referrer
            .split_once("://")
            .map_or(referrer, |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        if !host.is_empty() {
            return host.trim_start_matches("www.").to_owned();
        }
    }
    "direct".to_owned()
}

/// The CSV header of [`csv_line`]: every field of the ledger (the test
/// below holds it to that), amounts in the currency's units.
pub const CSV_HEADER: &str = "id,created,paid,email,product,version,preorder,status,\
amount,discount,refunded,currency,fee,net,settled_in,tax,payment_intent,upgrade_from,\
promotion_code,utm_source,utm_medium,utm_campaign,utm_term,utm_content,referrer,country,\
tax_id,tax_id_type,invoice,invoice_url,terms_accepted,promotions,gift_from,gift_to,\
gift_message,gift_on,note,mailed\n";

/// One purchase as a CSV line, amounts in the currency's units (a fee and
/// net in those of the currency it settled in).
pub fn csv_line(purchase: &Purchase) -> String {
    let in_units = |amount: i64, currency: &str| match currency.parse::<Currency>() {
        Ok(currency) => Money { amount, currency }.decimal(),
        Err(_) => amount.to_string(),
    };
    let decimal = |amount: i64| in_units(amount, &purchase.currency);
    let settled = |amount: i64| {
        in_units(
            amount,
            purchase.settled_in.as_deref().unwrap_or(&purchase.currency),
        )
    };
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let fields = [
        purchase.id.clone(),
        purchase.created.clone(),
        optional(&purchase.paid),
        purchase.email.clone(),
        purchase.product.clone(),
        purchase.version.clone(),
        if purchase.preorder { "yes" } else { "" }.to_owned(),
        purchase.status.to_string(),
        decimal(purchase.amount),
        purchase.discount.map(decimal).unwrap_or_default(),
        decimal(purchase.refunded()),
        purchase.currency.to_ascii_uppercase(),
        purchase.fee.map(settled).unwrap_or_default(),
        purchase.net.map(settled).unwrap_or_default(),
        optional(&purchase.settled_in).to_ascii_uppercase(),
        purchase.tax.map(decimal).unwrap_or_default(),
        optional(&purchase.payment_intent),
        optional(&purchase.upgrade_from),
        optional(&purchase.promotion_code),
        optional(&purchase.utm_source),
        optional(&purchase.utm_medium),
        optional(&purchase.utm_campaign),
        optional(&purchase.utm_term),
        optional(&purchase.utm_content),
        optional(&purchase.referrer),
        optional(&purchase.country),
        optional(&purchase.tax_id),
        optional(&purchase.tax_id_type),
        optional(&purchase.invoice),
        optional(&purchase.invoice_url),
        optional(&purchase.terms_accepted),
        optional(&purchase.promotions),
        optional(&purchase.gift_from),
        optional(&purchase.gift_to),
        optional(&purchase.gift_message),
        optional(&purchase.gift_on),
        optional(&purchase.note),
        optional(&purchase.mailed),
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
pub fn csv_field(field: &str) -> String {
    // What a visitor wrote (a UTM value) may hold escape sequences: shown,
    // never acted on by the terminal the CSV is printed to.
    let field = printable::printable(field);
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
    use crate::ledger::Status;

    #[test]
    fn a_purchase_converts_at_the_rate_its_settlement_applied() {
        let eur: Currency = "eur".parse().unwrap();
        // 26.00 USD settled as 23.92 EUR (fee 1.10, net 22.82); half refunded.
        let paid = Purchase {
            tax: Some(400),
            amount_refunded: Some(1300),
            fee: Some(110),
            net: Some(2282),
            settled_in: Some("eur".into()),
            ..purchase("guide", 2600, Status::Paid, None)
        };
        let converted = in_currency(&paid, eur).unwrap();
        assert_eq!(
            (
                converted.currency.as_str(),
                converted.amount,
                converted.tax,
                converted.amount_refunded
            ),
            ("eur", 2392, Some(368), Some(1196))
        );
        assert_eq!(
            (converted.fee, converted.net, converted.settled_in),
            (Some(110), Some(2282), None)
        );
        // Charged in EUR: as it is; settled in USD, or not known: no rate.
        let mut own = paid.clone();
        own.currency = "eur".into();
        assert_eq!(in_currency(&own, eur), Some(own.clone()));
        let elsewhere = Purchase {
            settled_in: Some("usd".into()),
            ..paid.clone()
        };
        assert_eq!(in_currency(&elsewhere, eur), None);
        let unknown = Purchase {
            fee: None,
            net: None,
            ..paid
        };
        assert_eq!(in_currency(&unknown, eur), None);
    }

    fn purchase(product: &str, amount: i64, status: Status, refunded: Option<i64>) -> Purchase {
        Purchase {
            id: "cs_1".into(),
            created: "2026-11-02T10:00:00Z".into(),
            email: "ada@example.com".into(),
            product: product.into(),
            version: "1.0.0".into(),
            amount,
            currency: "usd".into(),
            status,
            amount_refunded: refunded,
            referrer: Some("https://www.example.org/post?x=1".into()),
            ..Purchase::default()
        }
    }

    #[test]
    fn the_csv_has_every_field_of_the_ledger() {
        let every = Purchase {
            paid: Some("2026-11-02T10:00:05Z".into()),
            preorder: true,
            discount: Some(100),
            fee: Some(114),
            net: Some(2786),
            settled_in: Some("eur".into()),
            tax: Some(0),
            payment_intent: Some("pi_1".into()),
            upgrade_from: Some("cs_0".into()),
            promotion_code: Some("LAUNCH".into()),
            utm_source: Some("s".into()),
            utm_medium: Some("m".into()),
            utm_campaign: Some("c".into()),
            utm_term: Some("t".into()),
            utm_content: Some("x".into()),
            country: Some("DE".into()),
            tax_id: Some("DE123".into()),
            tax_id_type: Some("eu_vat".into()),
            invoice: Some("INV-1".into()),
            invoice_url: Some("https://invoice".into()),
            terms_accepted: Some("2026-11-02T10:00:04Z".into()),
            promotions: Some("opt_in".into()),
            gift_from: Some("ann@example.com".into()),
            gift_to: Some("my sister".into()),
            gift_message: Some("For you".into()),
            gift_on: Some("2026-12-24".into()),
            note: Some("n".into()),
            mailed: Some("2026-11-02T10:00:06Z".into()),
            ..purchase("guide", 2900, Status::Paid, Some(2900))
        };
        let keys: Vec<String> = serde_json::to_value(&every)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let header: Vec<&str> = CSV_HEADER.trim_end().split(',').collect();
        for key in &keys {
            let column = if key == "amount_refunded" {
                "refunded"
            } else {
                key
            };
            assert!(header.contains(&column), "the CSV has no `{column}`");
        }
        assert_eq!(header.len(), keys.len(), "{header:?}\n{keys:?}");
        let line = csv_line(&every);
        assert_eq!(line.trim_end().split(',').count(), header.len(), "{line}");
        assert!(
            line.contains(",yes,paid,29.00,1.00,29.00,USD,1.14,27.86,EUR,0.00,pi_1,cs_0,LAUNCH,"),
            "{line}"
        );
    }

    #[test]
    fn grants_are_counted_apart_and_bring_no_money() {
        let mut report = Report::default();
        report.add(&purchase("guide", 2900, Status::Paid, None), By::Product);
        report.add(&purchase("guide", 0, Status::Granted, None), By::Product);
        report.add(&purchase("guide", 0, Status::Granted, None), By::Product);
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
            ..purchase("guide", amount, Status::Paid, refunded)
        };
        let mut report = Report::default();
        report.add(&taxed("DE", 3451, 551, None), By::Country);
        report.add(&taxed("DE", 3451, 551, Some(3451)), By::Country);
        report.add(&taxed("US", 3197, 297, Some(1599)), By::Country);
        report.add(&purchase("guide", 2900, Status::Paid, None), By::Country);
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
    fn groups_add_up_with_fees_and_a_total() {
        let with_fee = |amount: i64, status: Status, refunded: Option<i64>, fee: i64| Purchase {
            fee: Some(fee),
            net: Some(amount - fee),
            ..purchase("guide", amount, status, refunded)
        };
        let mut report = Report::default();
        report.add(&with_fee(2900, Status::Paid, None, 114), By::Product);
        // Stripe keeps its fee when it refunds.
        report.add(&with_fee(2900, Status::Refunded, None, 114), By::Product);
        report.add(&with_fee(2900, Status::Paid, Some(900), 114), By::Product);
        // Synced before fees were recorded: counted as unknown.
        report.add(
            &purchase("atlas", 1000, Status::Disputed, None),
            By::Product,
        );
        let rows = report.rows();
        assert_eq!(
            rows[0],
            Row {
                group: "atlas".into(),
                currency: "usd".into(),
                count: 1,
                granted: 0,
                samples: 0,
                gross: 1000,
                refunded: 0,
                withdrawn: 0,
                fees: 0,
                tax: 0,
                net: 1000,
                fees_unknown: 1,
            }
        );
        assert_eq!(
            rows[1],
            Row {
                group: "guide".into(),
                currency: "usd".into(),
                count: 3,
                granted: 0,
                samples: 0,
                gross: 8700,
                refunded: 3800,
                withdrawn: 0,
                fees: 342,
                tax: 0,
                net: 8700 - 3800 - 342,
                fees_unknown: 0,
            }
        );
        assert_eq!(rows[1].money(rows[1].net), "45.58 USD");
        let totals = report.totals();
        assert_eq!(totals.len(), 1);
        assert_eq!(
            (
                totals[0].count,
                totals[0].gross,
                totals[0].fees,
                totals[0].net
            ),
            (4, 9700, 342, 1000 + 4558)
        );
        assert_eq!(totals[0].fees_unknown, 1);
    }

    #[test]
    fn a_fee_in_another_currency_is_not_added_to_this_one() {
        let mut report = Report::default();
        report.add(
            &Purchase {
                fee: Some(90),
                net: Some(2500),
                settled_in: Some("eur".into()),
                ..purchase("guide", 2900, Status::Paid, None)
            },
            By::Product,
        );
        let row = &report.rows()[0];
        assert_eq!((row.fees, row.net, row.fees_unknown), (0, 2900, 1));
    }

    #[test]
    fn sources_fall_back_to_the_referrers_host() {
        assert_eq!(
            source(&purchase("guide", 1, Status::Paid, None)),
            "example.org"
        );
    }

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        let line = csv_line(&purchase("guide", 2900, Status::Paid, Some(900)));
        assert!(
            line.starts_with(
                "cs_1,2026-11-02T10:00:00Z,,ada@example.com,guide,1.0.0,,paid,29.00,,9.00,USD,"
            ),
            "{line}"
        );
        assert_eq!(line.matches(',').count(), CSV_HEADER.matches(',').count());
    }
}

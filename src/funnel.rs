//! The funnel, pure: visits (the server's daily counts, from
//! `audience/visits.jsonl`) to checkouts started, sales and revenue (from
//! the ledger), grouped by product or by source, with the rates between.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::ledger::{Purchase, Status};
use crate::report;

/// How the funnel is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// A product's page views, its `/buy` starts and its sales; the store
    /// front's views in a row of their own.
    Product,
    /// Every page's views, `/buy` starts and sales by where the visitor
    /// came from (`utm_source`, else the referring site's host, else
    /// `direct`).
    Source,
}

/// The group the store front's views are counted in, by product.
pub const STORE_FRONT: &str = "(store front)";

/// One group's funnel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    pub group: String,
    pub views: u64,
    pub checkouts: u64,
    /// Purchases paid for (refunded ones too, as `shop report` counts
    /// them); no grants, no free samples.
    pub sales: u64,
    /// What they were paid, in minor units, by currency.
    pub revenue: BTreeMap<String, i64>,
    /// Checkouts started per view, sales per checkout started, sales per
    /// view: none where there is nothing to divide by.
    pub checkout_rate: Option<f64>,
    pub sale_rate: Option<f64>,
    pub conversion: Option<f64>,
}

/// A funnel being counted: visits and purchases added one at a time (a
/// file of a million days' counts is read without holding it).
#[derive(Debug)]
pub struct Funnel {
    by: By,
    since: Option<String>,
    /// By group: hashed, as a million lines each look theirs up.
    rows: HashMap<String, Row>,
}

impl Funnel {
    /// Counts from `since` (a day, `2026-12-01`) on, grouped by `by`.
    pub fn new(by: By, since: Option<&str>) -> Funnel {
        Funnel {
            by,
            since: since.map(str::to_owned),
            rows: HashMap::new(),
        }
    }

    /// Adds a day's count of visits of `kind` (`view` or `checkout`).
    pub fn visit(&mut self, day: &str, kind: &str, product: &str, source: &str, count: u64) {
        if self.since.as_deref().is_some_and(|since| day < since) {
            return;
        }
        let group = match self.by {
            By::Product if product.is_empty() => STORE_FRONT,
            By::Product => product,
            By::Source => source,
        };
        let entry = row(&mut self.rows, group);
        match kind {
            "checkout" => entry.checkouts += count,
            _ => entry.views += count,
        }
    }

    /// Adds a purchase: a sale when it was paid for (refunded ones too);
    /// grants and samples are not.
    pub fn purchase(&mut self, purchase: &Purchase) {
        let sold = matches!(
            purchase.status,
            Status::Paid | Status::Refunded | Status::Disputed
        );
        if !sold
            || self
                .since
                .as_deref()
                .is_some_and(|since| purchase.sold() < since)
        {
            return;
        }
        let group = match self.by {
            By::Product => purchase.product.clone(),
            By::Source => report::source(purchase),
        };
        let entry = row(&mut self.rows, &group);
        entry.sales += 1;
        *entry.revenue.entry(purchase.currency.clone()).or_default() += purchase.amount;
    }

    /// Adds another funnel's counts (of other visits and purchases).
    pub fn merge(&mut self, other: Funnel) {
        for (group, theirs) in other.rows {
            let mine = row(&mut self.rows, &group);
            mine.views += theirs.views;
            mine.checkouts += theirs.checkouts;
            mine.sales += theirs.sales;
            for (currency, amount) in theirs.revenue {
                *mine.revenue.entry(currency).or_default() += amount;
            }
        }
    }

    /// The rows, sorted by group, with their rates.
    pub fn rows(self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.rows.into_values().collect();
        rows.sort_by(|a, b| a.group.cmp(&b.group));
        rows.into_iter()
            .map(|mut row| {
                let rate = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
                row.checkout_rate = rate(row.checkouts, row.views);
                row.sale_rate = rate(row.sales, row.checkouts);
                row.conversion = rate(row.sales, row.views);
                row
            })
            .collect()
    }
}

/// The row of `group`, made empty when new (found without a new string
/// when it is there).
fn row<'a>(rows: &'a mut HashMap<String, Row>, group: &str) -> &'a mut Row {
    if !rows.contains_key(group) {
        rows.insert(
            group.to_owned(),
            Row {
                group: group.to_owned(),
                ..Row::default()
            },
        );
    }
    rows.get_mut(group).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::VisitCount;

    /// The funnel of `visits` and `purchases` from `since` (a day,
    /// `2026-12-01`) on, by `by`; rows sorted by group.
    fn funnel<'a>(
        visits: impl IntoIterator<Item = &'a VisitCount>,
        purchases: impl IntoIterator<Item = &'a Purchase>,
        by: By,
        since: Option<&str>,
    ) -> Vec<Row> {
        let mut funnel = Funnel::new(by, since);
        for visit in visits {
            funnel.visit(
                &visit.day,
                &visit.kind,
                &visit.product,
                &visit.source,
                visit.count,
            );
        }
        for purchase in purchases {
            funnel.purchase(purchase);
        }
        funnel.rows()
    }

    fn visit(day: &str, kind: &str, product: &str, source: &str, count: u64) -> VisitCount {
        VisitCount {
            day: day.into(),
            kind: kind.into(),
            product: product.into(),
            source: source.into(),
            count,
        }
    }

    fn sale(product: &str, source: Option<&str>, amount: i64, status: Status) -> Purchase {
        Purchase {
            id: format!("cs_{product}_{amount}"),
            created: "2026-12-05T10:00:00Z".into(),
            product: product.into(),
            version: "1.0.0".into(),
            amount,
            currency: "eur".into(),
            status,
            utm_source: source.map(str::to_owned),
            ..Purchase::default()
        }
    }

    #[test]
    fn views_lead_to_checkouts_sales_and_revenue() {
        let visits = [
            visit("2026-12-05", "view", "", "direct", 10),
            visit("2026-12-05", "view", "guide", "direct", 6),
            visit("2026-12-05", "view", "guide", "mastodon", 4),
            visit("2026-12-05", "checkout", "guide", "mastodon", 2),
            visit("2026-12-05", "checkout", "guide", "direct", 2),
            // Before `--since`: left out.
            visit("2026-11-30", "view", "guide", "direct", 100),
        ];
        let purchases = [
            sale("guide", Some("mastodon"), 2400, Status::Paid),
            sale("guide", None, 2400, Status::Refunded),
            // No sale: a grant.
            sale("guide", None, 0, Status::Granted),
        ];
        let by_product = funnel(&visits, &purchases, By::Product, Some("2026-12-01"));
        assert_eq!(by_product.len(), 2);
        let guide = &by_product[1];
        assert_eq!(by_product[0].group, STORE_FRONT);
        assert_eq!(by_product[0].views, 10);
        assert_eq!(
            (
                guide.group.as_str(),
                guide.views,
                guide.checkouts,
                guide.sales
            ),
            ("guide", 10, 4, 2)
        );
        assert_eq!(guide.revenue["eur"], 4800);
        assert_eq!(guide.checkout_rate, Some(0.4));
        assert_eq!(guide.sale_rate, Some(0.5));
        assert_eq!(guide.conversion, Some(0.2));
        let by_source = funnel(&visits, &purchases, By::Source, Some("2026-12-01"));
        let groups: Vec<(&str, u64, u64, u64)> = by_source
            .iter()
            .map(|row| (row.group.as_str(), row.views, row.checkouts, row.sales))
            .collect();
        assert_eq!(groups, [("direct", 16, 2, 1), ("mastodon", 4, 2, 1)]);
        // No views: no rate to give.
        let none = funnel(&[], &purchases[..1], By::Product, None);
        assert_eq!((none[0].sales, none[0].conversion), (1, None));
    }
}

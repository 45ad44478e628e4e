//! Visits counted without tracking anyone: a view of the store front or
//! a product's page, and a checkout started (`/buy`), each counted under
//! its day, product and source (`utm_source`, else the referring site's
//! host, else `direct`, as sales are attributed). No address, user agent
//! or cookie is kept; crawlers that say so are not counted. The counts
//! gather in memory and go to the state in one write every few seconds
//! (and at shutdown): a counter per key, not a row per visit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::App;
use crate::metadata::Attribution;
use crate::state::VisitCount;
use crate::{error, report};

/// How often the counts go to the state.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The most keys held between writes: beyond them a new key's source is
/// counted as `other`, so that strangers inventing sources cannot grow
/// the server's memory (or the state) without bound.
const MOST_KEYS: usize = 5_000;

/// The longest source kept.
const SOURCE_MAX: usize = 64;

/// What a visit was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The store front (no product) or a product's page.
    View,
    /// `/buy/<slug>`: a checkout started.
    Checkout,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Checkout => "checkout",
        }
    }
}

/// The counts since the last write.
#[derive(Debug, Default)]
pub struct Counter {
    counts: Mutex<HashMap<(String, Kind, String, String), u64>>,
}

impl Counter {
    /// Counts one visit of `kind` to `product` ("" for the store front) at
    /// `now`, from where `query` and `referer` say, unless `user_agent`
    /// is a crawler's.
    #[allow(clippy::too_many_arguments)]
    pub fn count(
        &self,
        now: i64,
        kind: Kind,
        product: &str,
        query: &HashMap<String, String>,
        referer: Option<&str>,
        user_agent: Option<&str>,
        base_url: &str,
    ) {
        if is_crawler(user_agent) {
            return;
        }
        let came_from = Attribution::of_visit(query, referer, base_url);
        let source = report::source_of(
            came_from.utm_source.as_deref(),
            came_from.referrer.as_deref(),
        );
        let source: String = source
            .chars()
            .filter(|c| !c.is_control())
            .take(SOURCE_MAX)
            .collect();
        let day = crate::dates::timestamp(now)[..10].to_owned();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (day, kind, product.to_owned(), source);
        if counts.len() >= MOST_KEYS && !counts.contains_key(&key) {
            key.3 = "other".to_owned();
        }
        *counts.entry(key).or_insert(0) += 1;
    }

    /// The counts gathered, leaving none.
    pub fn take(&self) -> Vec<VisitCount> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        counts
            .into_iter()
            .map(|((day, kind, product, source), count)| VisitCount {
                day,
                kind: kind.name().to_owned(),
                product,
                source,
                count,
            })
            .collect()
    }

    /// Puts counts back (a write that failed), to go with the next.
    fn put_back(&self, taken: Vec<VisitCount>) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for visit in taken {
            let kind = match visit.kind.as_str() {
                "checkout" => Kind::Checkout,
                _ => Kind::View,
            };
            *counts
                .entry((visit.day, kind, visit.product, visit.source))
                .or_insert(0) += visit.count;
        }
    }
}

/// Whether a user agent says it is a crawler (search engines, link
/// previews, feed fetchers that name themselves).
pub fn is_crawler(user_agent: Option<&str>) -> bool {
    const MARKS: [&str; 9] = [
        "bot",
        "crawl",
        "spider",
        "slurp",
        "facebookexternalhit",
        "bingpreview",
        "embedly",
        "mediapartners",
        "archiver",
    ];
    let Some(agent) = user_agent else {
        return false;
    };
    let agent = agent.to_ascii_lowercase();
    MARKS.iter().any(|mark| agent.contains(mark))
}

/// Writes the counts gathered to the state.
pub async fn flush(app: &App) {
    let taken = app.visits.take();
    if taken.is_empty() {
        return;
    }
    if let Err(failure) = app.db.add_visits(taken.clone()).await {
        tracing::warn!(
            "visits kept for the next write: {}",
            error::one_line(&failure)
        );
        app.visits.put_back(taken);
    }
}

/// Writes the counts every `every`, until the task is dropped.
pub async fn run(app: std::sync::Arc<App>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        flush(&app).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_counted_by_key_without_who() {
        let counter = Counter::default();
        let base = "https://books.example";
        let utm: HashMap<String, String> =
            [("utm_source".to_owned(), "newsletter".to_owned())].into();
        let none = HashMap::new();
        // 2026-12-07T10:00:00Z
        let now = 1_796_637_600;
        counter.count(now, Kind::View, "", &utm, None, Some("curl/8.5"), base);
        counter.count(now, Kind::View, "", &utm, None, None, base);
        counter.count(
            now,
            Kind::View,
            "guide",
            &none,
            Some("https://www.blog.example/post"),
            Some("Mozilla/5.0"),
            base,
        );
        // Our own pages are no source; a crawler is not counted.
        counter.count(
            now,
            Kind::Checkout,
            "guide",
            &none,
            Some("https://books.example/p/guide"),
            None,
            base,
        );
        counter.count(
            now,
            Kind::View,
            "guide",
            &none,
            None,
            Some("Googlebot/2.1"),
            base,
        );
        let mut taken = counter.take();
        taken.sort();
        let row = |kind: &str, product: &str, source: &str, count: u64| VisitCount {
            day: "2026-12-07".into(),
            kind: kind.into(),
            product: product.into(),
            source: source.into(),
            count,
        };
        assert_eq!(
            taken,
            [
                row("checkout", "guide", "direct", 1),
                row("view", "", "newsletter", 2),
                row("view", "guide", "blog.example", 1),
            ]
        );
        assert!(counter.take().is_empty());
    }

    #[test]
    fn invented_sources_cannot_grow_the_counts_without_bound() {
        let counter = Counter::default();
        for index in 0..MOST_KEYS + 50 {
            let query = [("utm_source".to_owned(), format!("s{index}"))].into();
            counter.count(0, Kind::View, "", &query, None, None, "https://b.example");
        }
        let taken = counter.take();
        assert_eq!(taken.len(), MOST_KEYS + 1);
        let other = taken.iter().find(|visit| visit.source == "other").unwrap();
        assert_eq!(other.count, 50);
    }
}

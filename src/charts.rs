//! The business in pictures, pure: bar charts drawn as SVG by `plotters`
//! (no fonts loaded: the SVG names a family and the browser draws the
//! text), each with its numbers in a table folded below it, in one
//! self-contained HTML page (no script, nothing fetched: it opens
//! offline); and small bars for the terminal.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::html::escape;

/// One bar chart: a group of bars per category, a bar per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    /// One sentence that says what it shows (the SVG's accessible name
    /// and the figure's caption).
    pub summary: String,
    /// What each group of bars is (a month, a country, a source).
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    /// What the bars measure (`sales`, `EUR`).
    pub unit: String,
}

/// A series of values, one per category.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
    /// How a value reads in the table (`12`, `24.00 EUR`).
    pub shown: Vec<String>,
}

/// Colours told apart with any colour vision (Okabe and Ito's), dark
/// enough against white for the legend's text beside them.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

const WIDTH: u32 = 760;
const HEIGHT: u32 = 320;

impl Chart {
    /// Its bars as SVG: each category a group, each series a bar in it
    /// (`categories × series` bars, zeros too), labelled on both axes.
    pub fn svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|error| error.to_string())?;
            let top = self
                .series
                .iter()
                .flat_map(|series| series.values.iter().copied())
                .fold(0.0_f64, f64::max);
            let top = if top <= 0.0 { 1.0 } else { top * 1.1 };
            let groups = self.categories.len().max(1);
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..groups as f64, 0.0..top)
                .map_err(|error| error.to_string())?;
            // Counts read as whole numbers; amounts with their cents.
            let whole = self
                .series
                .iter()
                .flat_map(|series| series.values.iter())
                .all(|value| value.fract() == 0.0);
            let y_label = |value: &f64| match whole {
                true => format!("{value:.0}"),
                false => format!("{value:.2}"),
            };
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(RGBColor(244, 244, 244))
                .y_label_formatter(&y_label)
                // The categories' names go under their groups (below).
                .x_labels(0)
                .y_desc(self.unit.as_str())
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|error| error.to_string())?;
            let count = self.series.len().max(1) as f64;
            let width = 0.8 / count;
            for (index, series) in self.series.iter().enumerate() {
                let colour = PALETTE[index % PALETTE.len()];
                chart
                    .draw_series(series.values.iter().enumerate().map(|(group, value)| {
                        let left = group as f64 + 0.1 + index as f64 * width;
                        Rectangle::new([(left, 0.0), (left + width, *value)], colour.filled())
                    }))
                    .map_err(|error| error.to_string())?;
            }
            // Each category's name under the middle of its group.
            let style = TextStyle::from(("sans-serif", 13).into_font())
                .pos(Pos::new(HPos::Center, VPos::Top));
            for (group, name) in self.categories.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(group as f64 + 0.5, 0.0));
                root.draw(&Text::new(name.clone(), (x, y + 6), style.clone()))
                    .map_err(|error| error.to_string())?;
            }
            root.present().map_err(|error| error.to_string())?;
        }
        // Named for assistive technology: an image whose name says what
        // it shows (its numbers are in the table below it).
        Ok(svg.replacen(
            "<svg ",
            &format!(
                "<svg role=\"img\" aria-label=\"{}\" ",
                escape(&self.summary)
            ),
            1,
        ))
    }

    /// Its numbers: a row per category, a column per series.
    fn table(&self) -> String {
        let mut html = String::from("<table>\n<thead><tr><th scope=\"col\"></th>");
        for series in &self.series {
            html.push_str(&format!("<th scope=\"col\">{}</th>", escape(&series.name)));
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for (index, category) in self.categories.iter().enumerate() {
            html.push_str(&format!("<tr><th scope=\"row\">{}</th>", escape(category)));
            for series in &self.series {
                let shown = series.shown.get(index).map_or("", String::as_str);
                html.push_str(&format!("<td>{}</td>", escape(shown)));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody>\n</table>");
        html
    }

    /// The legend, as text beside a swatch of each series' colour.
    fn legend(&self) -> String {
        let items: Vec<String> = self
            .series
            .iter()
            .enumerate()
            .map(|(index, series)| {
                let RGBColor(red, green, blue) = PALETTE[index % PALETTE.len()];
                format!(
                    "<li><span class=\"swatch\" style=\"background:#{red:02x}{green:02x}{blue:02x}\"></span>{}</li>",
                    escape(&series.name)
                )
            })
            .collect();
        format!("<ul class=\"legend\">{}</ul>", items.concat())
    }
}

/// The page: a title, then each chart with its legend and its table
/// folded below it. `None` when a chart cannot be drawn.
pub fn page(title: &str, note: &str, charts: &[Chart]) -> Result<String, String> {
    let mut body = String::new();
    for chart in charts {
        body.push_str(&format!(
            "<section>\n<h2>{}</h2>\n<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n{}\n\
             <details><summary>The numbers</summary>\n{}\n</details>\n</section>\n",
            escape(&chart.title),
            chart.svg()?,
            escape(&chart.summary),
            chart.legend(),
            chart.table()
        ));
    }
    Ok(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n<p>{note}</p>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
        note = escape(note),
    ))
}

const STYLE: &str = "body { font-family: sans-serif; color: #1a1a1a; background: #fff; margin: 0; }
main { max-width: 800px; margin: 0 auto; padding: 16px; }
figure { margin: 0; }
svg { max-width: 100%; height: auto; }
figcaption { color: #444; margin: 4px 0 8px; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: middle; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th[scope=row] { text-align: left; }
section { margin-bottom: 32px; }
";

/// Bars for a terminal: each label, a bar of `█` as long as its value is
/// of the largest (at most `width`), and its value as shown.
pub fn terminal_bars(rows: &[(String, f64, String)], width: usize, colour: bool) -> String {
    let top = rows
        .iter()
        .map(|(_, value, _)| *value)
        .fold(0.0_f64, f64::max);
    let label = rows
        .iter()
        .map(|(label, ..)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (name, value, shown) in rows {
        let length = match top > 0.0 {
            true => ((value / top) * width as f64).round() as usize,
            false => 0,
        };
        let bar = "█".repeat(length);
        let bar = match colour {
            true => format!("\u{1b}[36m{bar}\u{1b}[0m"),
            false => bar,
        };
        let pad = " ".repeat(label - name.chars().count());
        text.push_str(&format!("{name}{pad}  {bar} {shown}\n"));
    }
    text
}

/// The business being counted for `shop report --html`, one purchase at
/// a time (a ledger of any size is read without holding it): sales per
/// month and product, revenue per currency, month and product, sales by
/// country, refunds and copies given per month.
#[derive(Debug, Default)]
pub struct Business {
    since: Option<String>,
    /// (month, product) → sales.
    sales: std::collections::BTreeMap<(String, String), u64>,
    /// (currency, month, product) → minor units paid.
    revenue: std::collections::BTreeMap<(String, String, String), i64>,
    countries: std::collections::BTreeMap<String, u64>,
    /// month → (refunded or disputed, given, samples).
    apart: std::collections::BTreeMap<String, (u64, u64, u64)>,
}

impl Business {
    /// Counts from `since` (a day) on.
    pub fn new(since: Option<&str>) -> Business {
        Business {
            since: since.map(str::to_owned),
            ..Business::default()
        }
    }

    pub fn add(&mut self, purchase: &crate::ledger::Purchase) {
        use crate::ledger::Status;
        if self
            .since
            .as_deref()
            .is_some_and(|since| purchase.sold() < since)
        {
            return;
        }
        let month = purchase.sold().get(..7).unwrap_or("").to_owned();
        let apart = self.apart.entry(month.clone()).or_default();
        match purchase.status {
            Status::Granted => apart.1 += 1,
            Status::Sample => apart.2 += 1,
            Status::Paid | Status::Refunded | Status::Disputed => {
                if purchase.status != Status::Paid {
                    apart.0 += 1;
                }
                *self
                    .sales
                    .entry((month.clone(), purchase.product.clone()))
                    .or_default() += 1;
                *self
                    .revenue
                    .entry((purchase.currency.clone(), month, purchase.product.clone()))
                    .or_default() += purchase.amount;
                *self
                    .countries
                    .entry(purchase.country.clone().unwrap_or_else(|| "unknown".into()))
                    .or_default() += 1;
            }
        }
    }

    /// Adds another count's (of other purchases).
    pub fn merge(&mut self, other: Business) {
        for (key, count) in other.sales {
            *self.sales.entry(key).or_default() += count;
        }
        for (key, amount) in other.revenue {
            *self.revenue.entry(key).or_default() += amount;
        }
        for (key, count) in other.countries {
            *self.countries.entry(key).or_default() += count;
        }
        for (month, (refunded, given, samples)) in other.apart {
            let mine = self.apart.entry(month).or_default();
            mine.0 += refunded;
            mine.1 += given;
            mine.2 += samples;
        }
    }

    /// The charts, with the funnel by source (`funnel`'s rows) among them.
    pub fn charts(&self, funnel: &[crate::funnel::Row]) -> Vec<Chart> {
        use std::collections::BTreeSet;
        let months: Vec<String> = self.apart.keys().cloned().collect();
        let products: Vec<String> = self
            .sales
            .keys()
            .map(|(_, product)| product.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let counts = |name: &str, counts: Vec<u64>| Series {
            name: name.to_owned(),
            values: counts.iter().map(|count| *count as f64).collect(),
            shown: counts.iter().map(u64::to_string).collect(),
        };
        let mut charts = vec![Chart {
            title: "Sales per month".into(),
            summary: "The purchases paid for each month, a bar for each product.".into(),
            categories: months.clone(),
            series: products
                .iter()
                .map(|product| {
                    let per_month = months
                        .iter()
                        .map(|month| {
                            self.sales
                                .get(&(month.clone(), product.clone()))
                                .copied()
                                .unwrap_or(0)
                        })
                        .collect();
                    counts(product, per_month)
                })
                .collect(),
            unit: "sales".into(),
        }];
        let currencies: BTreeSet<&String> =
            self.revenue.keys().map(|(currency, ..)| currency).collect();
        for currency in currencies {
            let exponent = currency
                .parse::<crate::store::Currency>()
                .map_or(0, |parsed| parsed.exponent());
            let series = products
                .iter()
                .map(|product| {
                    let amounts: Vec<i64> = months
                        .iter()
                        .map(|month| {
                            self.revenue
                                .get(&(currency.clone(), month.clone(), product.clone()))
                                .copied()
                                .unwrap_or(0)
                        })
                        .collect();
                    Series {
                        name: product.clone(),
                        values: amounts
                            .iter()
                            .map(|amount| *amount as f64 / 10_f64.powi(exponent as i32))
                            .collect(),
                        shown: amounts
                            .iter()
                            .map(|amount| crate::store::money::display_amount(*amount, currency))
                            .collect(),
                    }
                })
                .collect();
            let upper = currency.to_ascii_uppercase();
            charts.push(Chart {
                title: format!("Revenue per month, in {upper}"),
                summary: format!(
                    "What was paid in {upper} each month, before refunds and fees, a bar for each product."
                ),
                categories: months.clone(),
                series,
                unit: upper,
            });
        }
        charts.push(Chart {
            title: "Sales by country".into(),
            summary: "The purchases paid from each country (by the billing address, where checkout asked for one).".into(),
            categories: self.countries.keys().cloned().collect(),
            series: vec![counts("sales", self.countries.values().copied().collect())],
            unit: "sales".into(),
        });
        charts.push(Chart {
            title: "Visits to sales, by source".into(),
            summary: "For each source: the views of the store's pages, the checkouts started and the sales.".into(),
            categories: funnel.iter().map(|row| row.group.clone()).collect(),
            series: vec![
                counts("views", funnel.iter().map(|row| row.views).collect()),
                counts("checkouts started", funnel.iter().map(|row| row.checkouts).collect()),
                counts("sales", funnel.iter().map(|row| row.sales).collect()),
            ],
            unit: "visits".into(),
        });
        let apart = |pick: fn(&(u64, u64, u64)) -> u64| -> Vec<u64> {
            self.apart.values().map(pick).collect()
        };
        charts.push(Chart {
            title: "Refunds and copies given, per month".into(),
            summary: "Each month: the purchases refunded or disputed, the copies given by shop grant, and the free samples.".into(),
            categories: months,
            series: vec![
                counts("refunded or disputed", apart(|counts| counts.0)),
                counts("given", apart(|counts| counts.1)),
                counts("samples", apart(|counts| counts.2)),
            ],
            unit: "purchases".into(),
        });
        charts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            title: "Sales per month".into(),
            summary: "Sales of each product per month.".into(),
            categories: vec!["2026-11".into(), "2026-12".into(), "2027-01".into()],
            series: vec![
                Series {
                    name: "guide".into(),
                    values: vec![3.0, 5.0, 0.0],
                    shown: vec!["3".into(), "5".into(), "0".into()],
                },
                Series {
                    name: "atlas <b>".into(),
                    values: vec![1.0, 0.0, 2.0],
                    shown: vec!["1".into(), "0".into(), "2".into()],
                },
            ],
            unit: "sales".into(),
        }
    }

    #[test]
    fn a_chart_has_a_bar_per_category_and_series_and_its_numbers() {
        let chart = chart();
        let svg = chart.svg().unwrap();
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"Sales of each product per month.\"")
        );
        // The background is one rectangle, white; every other is a bar.
        let rects = svg.matches("<rect").count();
        let white = svg.matches("fill=\"#FFFFFF\"").count();
        assert_eq!(rects - white, 6, "{svg}");
        for month in ["2026-11", "2026-12", "2027-01"] {
            assert!(svg.contains(&format!("\n{month}\n")), "{svg}");
        }
        let page = page("Test Books: the business", "From the ledger.", &[chart]).unwrap();
        assert!(page.contains("<td>5</td>") && page.contains("atlas &lt;b&gt;"));
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("<svg").count(), 1);
    }

    #[test]
    fn terminal_bars_scale_to_the_largest() {
        let rows = [
            ("guide".to_owned(), 4.0, "4".to_owned()),
            ("atlas".to_owned(), 2.0, "2".to_owned()),
            ("none".to_owned(), 0.0, "0".to_owned()),
        ];
        assert_eq!(
            terminal_bars(&rows, 8, false),
            "guide  ████████ 4\natlas  ████ 2\nnone    0\n"
        );
        assert!(terminal_bars(&rows, 8, true).contains("\u{1b}[36m"));
    }
}

//! Visits counted by the real server without tracking anyone: views and
//! checkouts started by day, product and source, a crawler left out,
//! gathered in memory and written at once (kept over a restart), brought
//! into git by `shop sync`, and the funnel `shop report --funnel` makes of
//! them and the ledger.

use serde_json::json;

use crate::support::served::Served;

/// GETs `path` with these headers; the status.
fn visit(served: &Served, path: &str, headers: &[(&str, &str)]) -> u16 {
    served.runtime.block_on(async {
        let mut request = served.http.get(format!("{}{path}", served.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap().status().as_u16()
    })
}

fn counted(served: &Served) -> Vec<(String, String, String, u64)> {
    served
        .runtime
        .block_on(served.state().visits())
        .unwrap()
        .into_iter()
        .map(|visit| (visit.kind, visit.product, visit.source, visit.count))
        .collect()
}

#[test]
fn visits_lead_to_sales_in_the_funnel_and_survive_a_restart() {
    let mut served = Served::start();
    let curl = [("User-Agent", "curl/8.5.0")];
    for _ in 0..3 {
        assert_eq!(visit(&served, "/?utm_source=newsletter", &curl), 200);
    }
    let browser = [
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        ),
        ("Referer", "https://www.blog.example/a-post"),
    ];
    for _ in 0..2 {
        assert_eq!(visit(&served, "/p/guide", &browser), 200);
    }
    // Crawlers that say so are not counted; nor is a page that is not one.
    for agent in [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "facebookexternalhit/1.1",
    ] {
        assert_eq!(visit(&served, "/p/guide", &[("User-Agent", agent)]), 200);
    }
    assert_eq!(visit(&served, "/p/nothing", &curl), 404);
    // A checkout started from the newsletter, and paid.
    served.pay("/buy/guide?utm_source=newsletter", "ann@example.com");
    // Counted in memory, not a write per visit: the state has none yet.
    assert!(counted(&served).is_empty());
    served.stop_server();
    let mut expected = vec![
        ("checkout".into(), "guide".into(), "newsletter".into(), 1),
        ("view".into(), "".into(), "newsletter".into(), 3),
        ("view".into(), "guide".into(), "blog.example".into(), 2),
    ];
    let mut found = counted(&served);
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    // Nothing of who: no address, no agent.
    let rows = served.query("SELECT * FROM visits");
    assert!(
        !format!("{rows:?}").contains("127.0.0.1") && !format!("{rows:?}").contains("curl"),
        "{rows:?}"
    );

    // Over a restart the counters add up.
    served.launch();
    assert_eq!(visit(&served, "/p/guide", &browser), 200);
    served.stop_server();
    assert!(counted(&served).contains(&("view".into(), "guide".into(), "blog.example".into(), 3)));

    // `shop sync` brings the counts into git, and the sale.
    served
        .test
        .shop(&["sync"])
        .success()
        .stderr_has(&["kept the visits of 1 day in audience/visits.jsonl"]);
    let file = served.test.read("audience/visits.jsonl");
    assert_eq!(file.lines().count(), 3, "{file}");
    let log = served.test.shop(&["sync"]).success();
    assert!(
        !log.stderr().contains("visits"),
        "unchanged: {}",
        log.stderr()
    );

    let funnel = served
        .test
        .shop(&["--json", "report", "--funnel"])
        .success()
        .json();
    let rate = |part: f64, whole: f64| json!(part / whole);
    assert_eq!(
        funnel,
        json!([
            {"group": "(store front)", "views": 3, "checkouts": 0, "sales": 0, "revenue": {},
             "checkout_rate": 0.0, "sale_rate": null, "conversion": 0.0},
            {"group": "guide", "views": 3, "checkouts": 1, "sales": 1, "revenue": {"usd": 2900},
             "checkout_rate": rate(1.0, 3.0), "sale_rate": 1.0, "conversion": rate(1.0, 3.0)},
        ])
    );
    let by_source = served
        .test
        .shop(&["--json", "report", "--funnel", "--by", "source"])
        .success()
        .json();
    let groups: Vec<(String, u64, u64, u64)> = by_source
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["group"].as_str().unwrap().to_owned(),
                row["views"].as_u64().unwrap(),
                row["checkouts"].as_u64().unwrap(),
                row["sales"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("blog.example".to_owned(), 3, 0, 0),
            ("newsletter".to_owned(), 3, 1, 1)
        ]
    );
    served
        .test
        .shop(&["report", "--funnel"])
        .success()
        .stdout_has(&[
            "PRODUCT        VIEWS  CHECKOUTS  SALES  REVENUE    VIEW→CHECKOUT  CHECKOUT→SALE  VIEW→SALE\n",
            "guide          3      1          1      29.00 USD  33.3%          100.0%         33.3%\n",
        ]);
    served
        .test
        .shop(&["report", "--funnel", "--csv"])
        .success()
        .stdout_has(&["group,views,checkouts,sales,revenue,checkout_rate,sale_rate,conversion\n"]);
    // The business in pictures: one page, a chart per picture, each bar
    // a category's value of a series.
    let file = served.test.root().join("business.html");
    served
        .test
        .shop(&["report", "--html", file.to_str().unwrap()])
        .success()
        .stderr_has(&["wrote 5 charts to "]);
    let page = std::fs::read_to_string(&file).unwrap();
    // Self-contained: no script, and no address but the SVG namespace's.
    assert!(!page.contains("<script") && !page.contains("https://"));
    assert_eq!(
        page.matches("http://").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    let charts: Vec<&str> = page.split("<svg ").skip(1).collect();
    assert_eq!(charts.len(), 5, "{page}");
    let bars = |svg: &str| {
        let svg = &svg[..svg.find("</svg>").unwrap()];
        svg.matches("<rect").count() - svg.matches("fill=\"#FFFFFF\"").count()
    };
    // Sales per month (one month, one product), revenue in USD (the
    // same), sales by country (one: unknown), visits to sales by source
    // (two sources, three series), refunds and copies given (one month,
    // three series).
    let counts: Vec<usize> = charts.iter().map(|svg| bars(svg)).collect();
    assert_eq!(counts, [1, 1, 1, 6, 3], "{page}");
    assert!(page.contains("<summary>The numbers</summary>"));
    assert!(page.contains("<td>29.00 USD</td>"), "{page}");
    // And in the terminal, bars without colour when not a terminal.
    served
        .test
        .shop(&["report", "--chart"])
        .success()
        .stdout_is("guide  ████████████████████████████████████████ 29.00 USD\n");
    served
        .test
        .shop(&["report", "--funnel", "--by", "month"])
        .code(2)
        .stderr_has(&["`--funnel` groups by product or source", "hint: "]);
}

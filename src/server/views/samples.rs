//! Samples of each page's values, for checking templates at load.

use super::*;

pub fn withdraw_link() -> WithdrawLink {
    WithdrawLink {
        href: "/withdraw/sample-token".into(),
        text: "Withdraw from this purchase".into(),
    }
}

pub fn withdraws() -> Vec<(&'static str, WithdrawPage)> {
    let page = WithdrawPage {
        product: "Sample book".into(),
        version: "2.0.0".into(),
        order: "SAMPLE7K2Q".into(),
        date: "1 December 2026".into(),
        email: "reader@example.com".into(),
        paid: "24.00 EUR".into(),
        problem: None,
        name: String::new(),
        reason: String::new(),
    };
    vec![
        ("the first step", page.clone()),
        (
            "the form back with a problem",
            WithdrawPage {
                problem: Some("Please give your name.".into()),
                reason: "Bought it twice".into(),
                ..page
            },
        ),
    ]
}

pub fn withdrawns() -> Vec<(&'static str, WithdrawnPage)> {
    crate::withdrawal::WORDS
        .iter()
        .flat_map(|decision| {
            ["succeeded", "pending", "failed"].map(|status| WithdrawnPage {
                product: "Sample book".into(),
                version: "2.0.0".into(),
                order: "SAMPLE7K2Q".into(),
                email: "reader@example.com".into(),
                requested: "3 December 2026, 10:00 UTC".into(),
                decision: (*decision).to_owned(),
                amount: "24.00 EUR".into(),
                waived: (*decision == "ended").then(|| "1 December 2026".into()),
                refund_status: Some(status.to_owned()),
                days: 2,
                guarantee_days: Some(30),
            })
        })
        .map(|page| ("a decision", page))
        .collect()
}

fn card(slug: &str, preorder: bool, includes: Vec<Included>) -> ProductCard {
    let next = (slug == "book").then(|| NextEdition {
        version: "3.0.0".into(),
        out: Some("1 March 2027".into()),
        price: "19.00 EUR".into(),
    });
    ProductCard {
        slug: slug.to_owned(),
        name: format!("Sample {slug}"),
        description: Some(safe("<p>About the book.</p>".into())),
        cover: Some(format!("/cover/{slug}")),
        price: "24.00 EUR".into(),
        others: vec!["26.00 USD".into(), "21.00 GBP".into()],
        free: slug == "sample",
        gift: !preorder && slug != "sample",
        version: "2.0.0".into(),
        date: "2026-12-01".into(),
        preorder,
        out: preorder.then(|| "1 March 2027".into()),
        formats: "PDF, EPUB".into(),
        includes,
        next,
    }
}

fn cards() -> Vec<(&'static str, ProductCard)> {
    vec![
        ("a book", card("book", false, Vec::new())),
        ("a pre-order", card("next", true, Vec::new())),
        ("a free sample", card("sample", false, Vec::new())),
        (
            "a bundle",
            card(
                "box",
                false,
                vec![Included {
                    slug: "book".into(),
                    name: "Sample book".into(),
                    version: "2.0.0".into(),
                }],
            ),
        ),
    ]
}

pub fn fronts() -> Vec<(&'static str, FrontPage)> {
    vec![
        (
            "a store with a book, a pre-order and a bundle",
            FrontPage {
                shop: "Sample Shop".into(),
                about: Some(safe("<p>Books.</p>".into())),
                products: cards().into_iter().map(|(_, card)| card).collect(),
            },
        ),
        (
            "an empty store",
            FrontPage {
                shop: "Sample Shop".into(),
                about: None,
                products: Vec::new(),
            },
        ),
    ]
}

pub fn products() -> Vec<(&'static str, ProductPage)> {
    cards()
        .into_iter()
        .map(|(case, product)| {
            (
                case,
                ProductPage {
                    shop: "Sample Shop".into(),
                    policy: "Buying now includes every later version of this product, free.".into(),
                    releases: vec![ReleaseNotes {
                        version: product.version.clone(),
                        date: product.date.clone(),
                        preorder: product.preorder,
                        notes: Some(safe("<p>New chapter.</p>".into())),
                    }],
                    product,
                },
            )
        })
        .collect()
}

fn file(name: &str, product: Option<&str>) -> FileLink {
    FileLink {
        name: name.into(),
        product: product.map(str::to_owned),
        href: format!(
            "/d/sample-token/{name}{}",
            product.map(|p| format!("?product={p}")).unwrap_or_default()
        ),
        size: "1.2 MB".into(),
        sha256: "0".repeat(64),
    }
}

pub fn thanks() -> Vec<(&'static str, ThanksPage)> {
    let page = |files: Vec<FileLink>, preorder: bool, limit: Option<u32>| ThanksPage {
        product: "Sample book".into(),
        bought: "2.0.0".into(),
        version: "2.0.0".into(),
        refunded: false,
        cover: Some("/cover/sample".into()),
        stamped: true,
        amount: Some("24.00 EUR".into()),
        discount: Some("2.00 EUR".into()),
        tax: Some("1.57 EUR".into()),
        order: "SAMPLE7K2Q".into(),
        email: "reader@example.com".into(),
        preorder,
        out: preorder.then(|| "1 March 2027".into()),
        files,
        limit,
        page: "/d/sample-token".into(),
        expires: "1 January 2027, 10:00 UTC".into(),
        expires_at: "2027-01-01T10:00:00Z".into(),
        withdraw: Some(withdraw_link()),
        gift: None,
    };
    vec![
        (
            "a purchase",
            page(
                vec![file("book.pdf", None), file("book.epub", None)],
                false,
                Some(5),
            ),
        ),
        (
            "a bundle",
            page(
                vec![
                    file("book.pdf", Some("book")),
                    file("workbook.pdf", Some("workbook")),
                ],
                false,
                None,
            ),
        ),
        ("a pre-order", page(Vec::new(), true, None)),
        (
            "an older version's buyer given the newest",
            ThanksPage {
                bought: "1.0.0".into(),
                ..page(vec![file("book.pdf", None)], false, Some(5))
            },
        ),
        (
            "a refunded purchase",
            ThanksPage {
                refunded: true,
                withdraw: None,
                ..page(Vec::new(), false, None)
            },
        ),
        (
            "a gift, dated",
            ThanksPage {
                gift: Some(GiftNote {
                    recipient: "friend@example.org".into(),
                    send_on: Some("24 December 2026".into()),
                }),
                ..page(Vec::new(), false, None)
            },
        ),
    ]
}

pub fn downloads() -> Vec<(&'static str, DownloadsPage)> {
    let section = |slug: &str, left: u32| DownloadSection {
        to_kindle: Some(format!("/kindle/sample-token?product={slug}")),
        all: (left > 0).then(|| format!("/zip/sample-token?product={slug}")),
        slug: slug.into(),
        name: format!("Sample {slug}"),
        cover: true,
        version: "1.1.0".into(),
        bought: "1.0.0".into(),
        allowed: 5,
        files: ["book.pdf", "book.epub"]
            .into_iter()
            .map(|name| FileRow {
                name: name.into(),
                size: "2.5 MB".into(),
                sha256: "ab".repeat(32),
                left,
                allowed: 5,
                href: format!("/d/sample-token/{name}?product={slug}"),
            })
            .collect(),
        stamped: true,
        others: vec![OtherVersion {
            version: "1.0.0".into(),
            href: "/d/sample-token?version=1.0.0".into(),
            notes: Some(safe("<p>First edition.</p>".into())),
        }],
    };
    let expires = safe("<time>1 January 2027</time>".into());
    vec![
        (
            "one product",
            DownloadsPage {
                bundle: None,
                expires: expires.clone(),
                sections: vec![section("book", 4)],
                withdraw: Some(withdraw_link()),
                kindle: "reader_42@kindle.com".into(),
                sender: "books@example.com".into(),
            },
        ),
        (
            "a bundle, one product's downloads used up",
            DownloadsPage {
                bundle: Some(BundleHeading {
                    name: "Sample box".into(),
                    version: "1.0.0".into(),
                }),
                expires,
                sections: vec![section("book", 5), section("workbook", 0)],
                withdraw: None,
                kindle: String::new(),
                sender: "books@example.com".into(),
            },
        ),
    ]
}

pub fn libraries() -> Vec<(&'static str, LibraryPage)> {
    let item = |product: &str, bundle: Option<&str>, refunded: bool| LibraryItem {
        product: product.into(),
        bundle: bundle.map(str::to_owned),
        bought: "1.0.0".into(),
        date: "1 December 2026".into(),
        order: "SAMPLE7K2Q".into(),
        refunded,
        preorder: false,
        out: None,
        cover: Some(format!("/cover/{product}")),
        newest: "1.1.0".into(),
        left: "4 of 5 downloads left".into(),
        href: format!("/d/sample-token-{product}"),
        others: vec![OtherVersion {
            version: "1.0.0".into(),
            href: format!("/d/sample-token-{product}?version=1.0.0"),
            notes: Some(safe("<p>First edition.</p>".into())),
        }],
        withdraw: (!refunded).then(|| WithdrawLink {
            href: format!("/withdraw/sample-token-{product}"),
            text: "Withdraw from this purchase".into(),
        }),
    };
    vec![
        (
            "a purchase, a bundle's product, a refund and a pre-order",
            LibraryPage {
                shop: "Sample Shop".into(),
                email: "reader@example.com".into(),
                expires: "1 January 2027, 10:00 UTC".into(),
                expires_at: "2027-01-01T10:00:00Z".into(),
                opds: "https://books.example/opds/sample-token".into(),
                stop_feed: "/library/sample-token/feed".into(),
                items: vec![
                    item("book", None, false),
                    item("workbook", Some("box"), false),
                    item("old", None, true),
                    LibraryItem {
                        preorder: true,
                        out: Some("1 March 2027".into()),
                        bought: "2.0.0".into(),
                        ..item("next", None, false)
                    },
                ],
            },
        ),
        (
            "no purchase",
            LibraryPage {
                shop: "Sample Shop".into(),
                email: "reader@example.com".into(),
                expires: "1 January 2027, 10:00 UTC".into(),
                expires_at: "2027-01-01T10:00:00Z".into(),
                opds: "https://books.example/opds/sample-token".into(),
                stop_feed: "/library/sample-token/feed".into(),
                items: Vec::new(),
            },
        ),
    ]
}

pub fn gifts() -> Vec<GiftPage> {
    let page = GiftPage {
        product: "Sample book".into(),
        order: "SAMPLE7K2Q".into(),
        recipient: "friend@example.org".into(),
        message: "Happy birthday!".into(),
        send_on: Some("24 December 2026".into()),
        waiting: true,
        sent: None,
        sent_at: None,
        refunded: false,
        resent: false,
    };
    vec![
        page.clone(),
        GiftPage {
            send_on: None,
            waiting: false,
            sent: Some("24 December 2026, 12:00 UTC".into()),
            sent_at: Some("2026-12-24T12:00:00Z".into()),
            ..page.clone()
        },
        GiftPage {
            refunded: true,
            ..page
        },
    ]
}

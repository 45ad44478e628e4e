//! Every page of the buyer's side (the store front, a product, the
//! thank-you page, the library, the downloads, the forms and refusals):
//! minijinja templates built in under
//! `templates/`, each overridable by a file of the same name in the store's
//! `templates/`. A template renders the page's body; the layout
//! (`page.html`: `title`, `shop`, `support`, `body`) wraps it as it wraps
//! every page. Values are escaped; HTML
//! made by shop (rendered Markdown) is passed as safe.
//!
//! Each page's values are a type of their own ([`FrontPage`],
//! [`ProductPage`], [`ThanksPage`], [`LibraryPage`]): the handlers fill
//! them, and at load every template is rendered with samples of them (a
//! purchase, a bundle, a pre-order), so a template that fails, or that
//! drops what its page must show (the thank-you page's downloads, a Buy
//! button), stops the server's start and `products check`, not a buyer.
//! A template's work is bounded (`html::TEMPLATE_FUEL`): an override
//! cannot loop.

use std::path::{Path, PathBuf};

use crate::error::Registered;
use crate::{error, html};
use serde::Serialize;

/// What a page tells search engines and link previews.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Meta {
    /// Whether search engines may index it: the store front and product
    /// pages; every other page (downloads, thanks, library, lost links,
    /// unsubscribing) is `noindex`.
    pub index: bool,
    /// A sentence or two of plain text.
    pub description: Option<String>,
    /// The page's own public URL.
    pub canonical: Option<String>,
    /// A public image URL for link previews (the cover).
    pub image: Option<String>,
    /// Open Graph's type: `website` or `product`.
    pub kind: &'static str,
}

/// The store front.
#[derive(Debug, Clone, Serialize)]
pub struct FrontPage {
    pub shop: String,
    /// The shop's `about`, rendered.
    pub about: Option<minijinja::Value>,
    pub products: Vec<ProductCard>,
}

/// A product as the front and its page show it.
#[derive(Debug, Clone, Serialize)]
pub struct ProductCard {
    pub slug: String,
    pub name: String,
    pub description: Option<minijinja::Value>,
    pub cover: Option<String>,
    pub price: String,
    /// The price in the product's other currencies (`29.00 USD`), beside
    /// the one shown.
    pub others: Vec<String>,
    /// A free sample: "Get it free" (an address) instead of Buy.
    pub free: bool,
    /// "Give as a gift" beside Buy (`/buy/<slug>?gift`): the version on
    /// sale has a gift's payment link.
    pub gift: bool,
    pub version: String,
    pub date: String,
    pub preorder: bool,
    /// A pre-order's announced day of release.
    pub out: Option<String>,
    pub formats: String,
    /// A bundle's products.
    pub includes: Vec<Included>,
    /// The next version taking pre-orders beside the one on sale (its Buy
    /// is `/buy/<slug>?preorder`).
    pub next: Option<NextEdition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextEdition {
    pub version: String,
    pub out: Option<String>,
    pub price: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Included {
    pub slug: String,
    pub name: String,
    pub version: String,
}

/// A product's page.
#[derive(Debug, Clone, Serialize)]
pub struct ProductPage {
    pub shop: String,
    pub product: ProductCard,
    pub policy: String,
    pub releases: Vec<ReleaseNotes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseNotes {
    pub version: String,
    pub date: String,
    pub preorder: bool,
    pub notes: Option<minijinja::Value>,
}

/// The withdrawal function's link, on every page of a paid purchase.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawLink {
    pub href: String,
    /// `[refunds] link_text`.
    pub text: String,
}

/// The thank-you page.
#[derive(Debug, Clone, Serialize)]
pub struct ThanksPage {
    pub product: String,
    /// The version bought (a bundle's own).
    pub bought: String,
    /// The version of the files offered: the newest the purchase includes.
    pub version: String,
    /// Refunded or disputed: the page says so and offers nothing.
    pub refunded: bool,
    /// The cover's address, when the product has one.
    pub cover: Option<String>,
    /// Whether the PDF and EPUB files carry the buyer's email.
    pub stamped: bool,
    pub amount: Option<String>,
    pub discount: Option<String>,
    pub tax: Option<String>,
    pub order: String,
    pub email: String,
    pub preorder: bool,
    /// A pre-order's announced day of release.
    pub out: Option<String>,
    pub files: Vec<FileLink>,
    /// One limit for all the files, or none to state.
    pub limit: Option<u32>,
    /// The download page.
    pub page: String,
    /// When the download page stops working: for people (UTC), and as
    /// RFC 3339 for the page to show in the reader's zone.
    pub expires: String,
    pub expires_at: String,
    /// None for a copy nobody paid for, or one refunded.
    pub withdraw: Option<WithdrawLink>,
    /// A gift: the page says where it goes and when, and offers no files
    /// (they are the recipient's).
    pub gift: Option<GiftNote>,
}

/// The buyer's page of a gift they gave (`/gift/<token>`).
#[derive(Debug, Clone, Serialize)]
pub struct GiftPage {
    pub product: String,
    pub order: String,
    pub recipient: String,
    pub message: String,
    /// Its day, when it waits for one.
    pub send_on: Option<String>,
    /// A mail of it is queued and not sent.
    pub waiting: bool,
    /// When it was last sent: for people (UTC), and as RFC 3339.
    pub sent: Option<String>,
    pub sent_at: Option<String>,
    pub refunded: bool,
    /// The buyer just asked to send it again.
    pub resent: bool,
}

/// Where a gift goes, on its buyer's thanks page.
#[derive(Debug, Clone, Serialize)]
pub struct GiftNote {
    pub recipient: String,
    /// The day it goes, when later than now.
    pub send_on: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileLink {
    pub name: String,
    /// For a bundle: the product the file is of.
    pub product: Option<String>,
    pub href: String,
    pub size: String,
    pub sha256: String,
}

/// The buyer's library.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryPage {
    pub shop: String,
    pub email: String,
    pub expires: String,
    pub expires_at: String,
    pub items: Vec<LibraryItem>,
    /// The library's OPDS feed, for a reader's app.
    pub opds: String,
    /// Where the form that stops the feed's address posts.
    pub stop_feed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibraryItem {
    pub product: String,
    pub bundle: Option<String>,
    pub bought: String,
    /// The day of the purchase.
    pub date: String,
    pub order: String,
    pub refunded: bool,
    /// A pre-order not out yet: no files, the day it is to come out if
    /// announced.
    pub preorder: bool,
    pub out: Option<String>,
    pub cover: Option<String>,
    pub newest: String,
    pub left: String,
    pub href: String,
    /// The earlier editions it holds, newest first: each one's downloads.
    pub others: Vec<OtherVersion>,
    pub withdraw: Option<WithdrawLink>,
}

/// A download page: one product's files, or a bundle's, each product a
/// section.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadsPage {
    pub bundle: Option<BundleHeading>,
    /// Send to Kindle: the address the buyer used last (empty: none), and
    /// the store's address they must approve at Amazon.
    pub kindle: String,
    pub sender: String,
    /// When the link stops working: a `<time>` (see `dates::html_time`).
    pub expires: minijinja::Value,
    pub sections: Vec<DownloadSection>,
    pub withdraw: Option<WithdrawLink>,
}

/// The store's posts, newest first (`/posts`).
#[derive(Debug, Clone, Serialize)]
pub struct PostsPage {
    pub shop: String,
    pub posts: Vec<PostCard>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostCard {
    pub slug: String,
    pub subject: String,
    pub date: String,
}

/// One post (`/posts/<slug>`).
#[derive(Debug, Clone, Serialize)]
pub struct PostPage {
    pub subject: String,
    pub date: String,
    /// The post's Markdown, rendered and sanitized.
    pub body: minijinja::Value,
}

/// The withdrawal function's first step: what is withdrawn from, and the
/// form that confirms it.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawPage {
    pub product: String,
    pub version: String,
    pub order: String,
    /// The day of the purchase.
    pub date: String,
    pub email: String,
    pub paid: String,
    /// The form's problem, when it came back with one.
    pub problem: Option<String>,
    /// What the buyer typed, kept when the form comes back.
    pub name: String,
    pub reason: String,
}

/// The withdrawal function's answer: what was decided.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawnPage {
    pub product: String,
    pub version: String,
    pub order: String,
    pub email: String,
    /// When the buyer confirmed it.
    pub requested: String,
    /// [`crate::withdrawal::Decision::word`].
    pub decision: String,
    pub amount: String,
    /// The day the buyer accepted the waiver, for a right that had ended.
    pub waived: Option<String>,
    /// `pending`, `succeeded`, `failed` or none yet.
    pub refund_status: Option<String>,
    /// Days since the purchase.
    pub days: i64,
    pub guarantee_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleHeading {
    pub name: String,
    pub version: String,
}

/// The files of one product of a purchase, at the version shown.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadSection {
    /// Send to Kindle: where the form posts, when the version has an EPUB.
    pub to_kindle: Option<String>,
    /// "Download all": the version's files as one ZIP, when it has
    /// several and each has a download left.
    pub all: Option<String>,
    pub slug: String,
    pub name: String,
    pub cover: bool,
    pub version: String,
    pub bought: String,
    /// Downloads each file allows (the first file's, with any extra).
    pub allowed: u32,
    pub files: Vec<FileRow>,
    /// Whether its PDF and EPUB files carry the buyer's email.
    pub stamped: bool,
    /// The other versions it may download, newest first.
    pub others: Vec<OtherVersion>,
}

/// One file of a download page.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub name: String,
    /// For people (`2.5 MB`).
    pub size: String,
    pub sha256: String,
    /// Whole downloads left (a broken one counts as left, to finish it).
    pub left: u32,
    pub allowed: u32,
    pub href: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OtherVersion {
    pub version: String,
    pub href: String,
    /// Its release notes, rendered, when it has any.
    pub notes: Option<minijinja::Value>,
}

/// The templates, by name, and their built-in text.
const BUILT_IN: &[(&str, &str)] = &[
    ("front.html", include_str!("../../../templates/front.html")),
    (
        "product.html",
        include_str!("../../../templates/product.html"),
    ),
    (
        "thanks.html",
        include_str!("../../../templates/thanks.html"),
    ),
    (
        "library.html",
        include_str!("../../../templates/library.html"),
    ),
    ("page.html", include_str!("../../../templates/page.html")),
    (
        "downloads.html",
        include_str!("../../../templates/downloads.html"),
    ),
    (
        "preordered.html",
        include_str!("../../../templates/preordered.html"),
    ),
    (
        "refusal.html",
        include_str!("../../../templates/refusal.html"),
    ),
    (
        "not-for-sale.html",
        include_str!("../../../templates/not-for-sale.html"),
    ),
    ("lost.html", include_str!("../../../templates/lost.html")),
    (
        "unsubscribe.html",
        include_str!("../../../templates/unsubscribe.html"),
    ),
    (
        "withdraw.html",
        include_str!("../../../templates/withdraw.html"),
    ),
    (
        "withdrawn.html",
        include_str!("../../../templates/withdrawn.html"),
    ),
    (
        "follow.html",
        include_str!("../../../templates/follow.html"),
    ),
    (
        "follow-confirm.html",
        include_str!("../../../templates/follow-confirm.html"),
    ),
    (
        "followed.html",
        include_str!("../../../templates/followed.html"),
    ),
    (
        "sample.html",
        include_str!("../../../templates/sample.html"),
    ),
    (
        "kindle.html",
        include_str!("../../../templates/kindle.html"),
    ),
    ("gift.html", include_str!("../../../templates/gift.html")),
    ("posts.html", include_str!("../../../templates/posts.html")),
    ("post.html", include_str!("../../../templates/post.html")),
];

/// Whether a page shows `value`: escaped (`/` as `&#x2f;`), or as is.
fn shows(html: &str, value: &str) -> bool {
    html.contains(value) || html.contains(&minijinja::HtmlEscape(value).to_string())
}

/// Whether a page shows how to get `product`: its Buy (`/buy/<slug>`), or
/// for a free sample the form that asks for an address (a template made
/// before free samples, with a Buy for each product, still serves: `/buy/`
/// of a free product leads to its page).
fn shows_buy(html: &str, product: &ProductCard) -> bool {
    shows(html, &format!("/buy/{}", product.slug))
        || (product.free && shows(html, &format!("/sample/{}", product.slug)))
}

/// The page templates, checked at start.
#[derive(Debug)]
pub struct Views {
    environment: minijinja::Environment<'static>,
}

impl Views {
    /// The built-in templates, with the store's overrides.
    pub fn load(store_root: &Path) -> Result<Views, ViewError> {
        let mut environment = minijinja::Environment::new();
        // A misspelt name in an author's template is an error, not a blank.
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        environment.set_fuel(Some(html::TEMPLATE_FUEL));
        for (name, built_in) in BUILT_IN {
            let path = store_root.join("templates").join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    (*built_in).to_owned()
                }
                Err(source) => return Err(ViewError::Read { path, source }),
            };
            environment
                .add_template_owned(*name, text)
                .map_err(|error| ViewError::Template {
                    name: (*name).to_owned(),
                    line: error.line(),
                    message: error.detail().unwrap_or("cannot be read").to_owned(),
                })?;
        }
        let views = Views { environment };
        views.check()?;
        Ok(views)
    }

    /// Renders every template with samples of its values, and checks that
    /// each shows what its page must.
    fn check(&self) -> Result<(), ViewError> {
        let missing = |name: &str, what: &str| ViewError::Template {
            name: name.to_owned(),
            line: None,
            message: format!("it does not show {what}"),
        };
        // The layout takes no other names, and holds the page.
        let page = self.page(
            "Sample Shop",
            "help@example.com",
            "Sample",
            "<p id=\"sample-body\"></p>",
            &Meta::default(),
        )?;
        self.page(
            "Sample Shop",
            "help@example.com",
            "Sample Shop",
            "<p></p>",
            &Meta {
                index: true,
                description: Some("Books.".into()),
                canonical: Some("https://books.example/".into()),
                image: Some("https://books.example/cover/book".into()),
                kind: "website",
            },
        )?;
        if !page.contains("<p id=\"sample-body\"></p>") {
            return Err(missing("page.html", "the page's `body`"));
        }
        for (case, front) in samples::fronts() {
            let html = self.render("front.html", minijinja::Value::from_serialize(&front))?;
            for product in &front.products {
                if !shows_buy(&html, product) {
                    return Err(missing(
                        "front.html",
                        &format!(
                            "the Buy button of each product (`/buy/{{{{ product.slug }}}}`), or a free one's form (`/sample/{{{{ product.slug }}}}`), {case}"
                        ),
                    ));
                }
            }
        }
        for (case, product) in samples::products() {
            let html = self.render("product.html", minijinja::Value::from_serialize(&product))?;
            if !shows_buy(&html, &product.product) {
                return Err(missing(
                    "product.html",
                    &format!(
                        "the Buy button (`/buy/{{{{ product.slug }}}}`), or a free one's form (`/sample/{{{{ product.slug }}}}`), {case}"
                    ),
                ));
            }
            if product.product.next.is_some()
                && !shows(&html, &format!("/buy/{}?preorder", product.product.slug))
            {
                return Err(missing(
                    "product.html",
                    &format!(
                        "the Pre-order button beside the Buy (`/buy/{{{{ product.slug }}}}?preorder`, {case})"
                    ),
                ));
            }
        }
        for (case, thanks) in samples::thanks() {
            let html = self.render("thanks.html", minijinja::Value::from_serialize(&thanks))?;
            for file in &thanks.files {
                if !shows(&html, &file.href) {
                    return Err(missing(
                        "thanks.html",
                        &format!("the download of each file (`{{{{ file.href }}}}`, {case})"),
                    ));
                }
            }
            if let Some(withdraw) = &thanks.withdraw
                && !shows(&html, &withdraw.href)
            {
                return Err(missing(
                    "thanks.html",
                    &format!("the withdrawal link (`{{{{ withdraw.href }}}}`, {case})"),
                ));
            }
            if !shows(&html, &thanks.order) {
                return Err(missing(
                    "thanks.html",
                    &format!("the order number (`{{{{ order }}}}`, {case})"),
                ));
            }
        }
        for (case, downloads) in samples::downloads() {
            let html = self.render(
                "downloads.html",
                minijinja::Value::from_serialize(&downloads),
            )?;
            if let Some(withdraw) = &downloads.withdraw
                && !shows(&html, &withdraw.href)
            {
                return Err(missing(
                    "downloads.html",
                    &format!("the withdrawal link (`{{{{ withdraw.href }}}}`, {case})"),
                ));
            }
            let files = downloads.sections.iter().flat_map(|section| &section.files);
            for file in files.filter(|file| file.left > 0) {
                if !shows(&html, &file.href) {
                    return Err(missing(
                        "downloads.html",
                        &format!("the download of each file (`{{{{ file.href }}}}`, {case})"),
                    ));
                }
            }
        }
        // The forms a buyer needs: asking for links, and unsubscribing.
        for message in [
            None,
            Some("Please enter the email address you bought with."),
        ] {
            let html = self.render("lost.html", minijinja::context! { message })?;
            if !html.contains("action=\"/lost\"") || !html.contains("name=\"email\"") {
                return Err(missing(
                    "lost.html",
                    "the form that posts an `email` to `/lost`",
                ));
            }
        }
        let html = self.render("unsubscribe.html", minijinja::context! {})?;
        if !html.contains("method=\"post\"") {
            return Err(missing("unsubscribe.html", "the form that posts back"));
        }
        for (case, page) in samples::withdraws() {
            let html = self.render("withdraw.html", minijinja::Value::from_serialize(&page))?;
            for (what, value) in [
                ("the product (`{{ product }}`)", &page.product),
                ("the order number (`{{ order }}`)", &page.order),
                ("the buyer's address (`{{ email }}`)", &page.email),
            ] {
                if !shows(&html, value) {
                    return Err(missing("withdraw.html", &format!("{what}, {case}")));
                }
            }
            if !html.contains("method=\"post\"") || !html.contains("name=\"name\"") {
                return Err(missing(
                    "withdraw.html",
                    "the form that posts the buyer's `name` back (the confirmation step)",
                ));
            }
        }
        for (case, page) in samples::withdrawns() {
            let html = self.render("withdrawn.html", minijinja::Value::from_serialize(&page))?;
            if !shows(&html, &page.order) {
                return Err(missing(
                    "withdrawn.html",
                    &format!("the order number (`{{{{ order }}}}`, {case})"),
                ));
            }
        }
        // Following: the answer, the confirmation's button, and after.
        self.render("follow.html", minijinja::context! { shop => "Sample Shop" })?;
        let html = self.render(
            "follow-confirm.html",
            minijinja::context! { shop => "Sample Shop" },
        )?;
        if !html.contains("method=\"post\"") {
            return Err(missing(
                "follow-confirm.html",
                "the button that confirms (a form that posts back)",
            ));
        }
        self.render(
            "followed.html",
            minijinja::context! { shop => "Sample Shop", email => "reader@example.com" },
        )?;
        self.render(
            "kindle.html",
            minijinja::context! {
                product => "Sample book", version => "2.0.0", file => "book.epub",
                kindle => "reader@kindle.com", sender => "books@example.com",
            },
        )?;
        self.render(
            "sample.html",
            minijinja::context! { shop => "Sample Shop", product => "Sample book" },
        )?;
        for page in samples::gifts() {
            let html = self.render("gift.html", minijinja::Value::from_serialize(&page))?;
            if !shows(&html, &page.recipient) {
                return Err(missing("gift.html", "the recipient (`{{ recipient }}`)"));
            }
            if page.sent.is_some() && !page.waiting && !html.contains("method=\"post\"") {
                return Err(missing(
                    "gift.html",
                    "the button that sends a gift again (a form that posts back)",
                ));
            }
        }
        let posts = PostsPage {
            shop: "Sample Shop".into(),
            posts: vec![PostCard {
                slug: "news".into(),
                subject: "A new book".into(),
                date: "2026-12-01".into(),
            }],
        };
        let html = self.render("posts.html", minijinja::Value::from_serialize(&posts))?;
        if !shows(&html, "/posts/news") {
            return Err(missing(
                "posts.html",
                "a link to each post (`/posts/{{ post.slug }}`)",
            ));
        }
        let post = PostPage {
            subject: "A new book".into(),
            date: "2026-12-01".into(),
            body: safe("<p id=\"sample-post\">It is out.</p>".into()),
        };
        let html = self.render("post.html", minijinja::Value::from_serialize(&post))?;
        if !html.contains("<p id=\"sample-post\">") {
            return Err(missing("post.html", "the post (`{{ body }}`)"));
        }
        self.render(
            "refusal.html",
            minijinja::context! { title => "Link expired", text => "Ask for a new one." },
        )?;
        for withdraw in [None, Some(samples::withdraw_link())] {
            let html = self.render(
                "preordered.html",
                minijinja::context! { product => "Sample book", version => "2.0.0", out => "1 March 2027", withdraw },
            )?;
            if let Some(withdraw) = withdraw
                && !shows(&html, &withdraw.href)
            {
                return Err(missing(
                    "preordered.html",
                    "the withdrawal link (`{{ withdraw.href }}`)",
                ));
            }
        }
        for preorder in [false, true] {
            self.render(
                "not-for-sale.html",
                minijinja::context! { product => "Sample book", preorder },
            )?;
        }
        for (case, library) in samples::libraries() {
            let html = self.render("library.html", minijinja::Value::from_serialize(&library))?;
            for item in library
                .items
                .iter()
                .filter(|item| !item.refunded && !item.preorder)
            {
                if !shows(&html, &item.href) {
                    return Err(missing(
                        "library.html",
                        &format!("the downloads of each purchase (`{{{{ item.href }}}}`, {case})"),
                    ));
                }
                for other in &item.others {
                    if !shows(&html, &other.href) {
                        return Err(missing(
                            "library.html",
                            &format!(
                                "the earlier editions each purchase holds (`{{{{ other.href }}}}`, {case})"
                            ),
                        ));
                    }
                }
            }
            for withdraw in library
                .items
                .iter()
                .filter_map(|item| item.withdraw.as_ref())
            {
                if !shows(&html, &withdraw.href) {
                    return Err(missing(
                        "library.html",
                        &format!(
                            "the withdrawal link of each purchase (`{{{{ item.withdraw.href }}}}`, {case})"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A whole page: `body` (HTML made by shop) inside the layout.
    pub fn page(
        &self,
        shop: &str,
        support: &str,
        title: &str,
        body: &str,
        meta: &Meta,
    ) -> Result<String, ViewError> {
        self.render(
            "page.html",
            minijinja::context! {
                shop, support, title, body => safe(body.to_owned()),
                meta => minijinja::Value::from_serialize(meta),
            },
        )
    }

    /// The body of page `name` with `context`.
    pub fn render(&self, name: &str, context: minijinja::Value) -> Result<String, ViewError> {
        let template =
            self.environment
                .get_template(name)
                .map_err(|error| ViewError::Template {
                    name: name.to_owned(),
                    line: None,
                    message: error.to_string(),
                })?;
        template
            .render(context)
            .map_err(|error| ViewError::Template {
                name: name.to_owned(),
                line: error.line(),
                message: error
                    .detail()
                    .map_or_else(|| error.kind().to_string(), str::to_owned),
            })
    }
}

/// Samples of each page's values, for checking templates at load.
mod samples;

/// A file's size for people: `999 bytes`, `2.5 MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// HTML made by shop, inserted as is.
pub fn safe(html: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(html)
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot read the page template `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the page template `templates/{name}`{} is not valid: {message}", line.map(|line| format!(" (line {line})")).unwrap_or_default())]
    Template {
        name: String,
        line: Option<usize>,
        message: String,
    },
}

inventory::submit!(Registered::of::<ViewError>());

impl error::Hint for ViewError {
    fn hint(&self) -> String {
        match self {
            ViewError::Read { .. } => "make the file readable, or remove it to use the built-in page".into(),
            ViewError::Template { .. } => "fix the template (minijinja syntax, the names the built-in template uses), or remove it to use the built-in page".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(2_500_000), "2.5 MB");
    }

    #[test]
    fn an_override_with_a_syntax_error_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/front.html"),
            "<h1>{{ shop }}</h1>\n{% for p in products %}\n",
        )
        .unwrap();
        let error = Views::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`templates/front.html` (line"), "{error}");
    }

    #[test]
    fn values_are_escaped_and_shops_html_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/front.html"),
            "{{ shop }}|{{ about }}{% for p in products %}|/buy/{{ p.slug }}{% endfor %}",
        )
        .unwrap();
        let views = Views::load(dir.path()).unwrap();
        let html = views
            .render(
                "front.html",
                minijinja::context! { shop => "<b>A&B</b>", about => safe("<p>ok</p>".into()), products => Vec::<String>::new() },
            )
            .unwrap();
        assert_eq!(html, "&lt;b&gt;A&amp;B&lt;&#x2f;b&gt;|<p>ok</p>");
        // Shop's HTML inside a page's typed values stays HTML.
        let front = FrontPage {
            shop: "A".into(),
            about: Some(safe("<p>ok</p>".into())),
            products: Vec::new(),
        };
        let html = views
            .render("front.html", minijinja::Value::from_serialize(&front))
            .unwrap();
        assert_eq!(html, "A|<p>ok</p>");
    }

    #[test]
    fn the_layout_escapes_what_it_is_given_and_takes_no_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let views = Views::load(dir.path()).unwrap();
        let html = views
            .page(
                "A & B <Books>",
                "help@example.com",
                "x\"y",
                "<p>body</p>",
                &Meta::default(),
            )
            .unwrap();
        assert!(
            html.contains("<title>x&quot;y · A &amp; B &lt;Books&gt;</title>"),
            "{html}"
        );
        assert!(html.contains("<main>\n<p>body</p>\n</main>"), "{html}");
        // A store's layout with a name it is not given fails at start.
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/page.html"),
            "<title>{{ titel }}</title>{{ body }}",
        )
        .unwrap();
        let error = Views::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`templates/page.html`"), "{error}");
    }
}

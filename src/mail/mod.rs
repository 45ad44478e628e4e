//! Mail: rendering (pure, here), composing (`compose.rs`) and sending
//! (`transport.rs`, over lettre).
//!
//! Each message kind (`receipt`, `notice`, `links`, `gift`) has a plain-text and an
//! HTML template, built in under `templates/mail/` and overridable by the
//! store's own `templates/mail/<kind>.txt|html`. The text template's first
//! line is `Subject: …`. Templates are minijinja, as the pages are:
//! `{{name}}` and `{% if %}`; a syntax error or a name the message does not
//! have is an error naming the file and line, found before anything is
//! sent. HTML templates get their values escaped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Registered;
use crate::stamp::Format;
use crate::store::{Settings, StampMode};
use crate::{dates, error, html, ledger, store};

mod compose;
mod transport;

pub use compose::{Attached, compose, compose_attached, compose_to_list, message_id};
pub use transport::{Mailer, SmtpPool};

/// The kinds of message `shop` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Receipt,
    Notice,
    Links,
    /// A copy given by `shop grant`.
    Gift,
    /// The receipt of a pre-order, whose files are not out yet.
    Preorder,
    /// A pre-order's files are out (`shop release`): the download link.
    Delivery,
    /// A new version the update policy does not give a buyer: their own
    /// upgrade code.
    Upgrade,
    /// A purchase refunded by `shop refund`, or a withdrawal's refund.
    Refund,
    /// The acknowledgement of a withdrawal, on a durable medium (the
    /// directive's word): what was received, when, and what was decided.
    Withdrawal,
    /// A withdrawal's refund that Stripe refused or failed: tried again.
    RefundDelayed,
    /// The link that confirms a request to follow (double opt-in).
    Follow,
    /// A post (`shop post`) to followers and buyers.
    Post,
    /// A free sample's download link, with the link that confirms
    /// following when the reader asked for news too.
    Sample,
    /// A gift bought for someone: the buyer's message and the recipient's
    /// own download link.
    Present,
    /// The receipt of a gift, to its buyer: no download link, the gift's
    /// page (sent or when, send again).
    GiftReceipt,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::Receipt,
        Kind::Notice,
        Kind::Links,
        Kind::Gift,
        Kind::Preorder,
        Kind::Delivery,
        Kind::Upgrade,
        Kind::Refund,
        Kind::Withdrawal,
        Kind::RefundDelayed,
        Kind::Follow,
        Kind::Post,
        Kind::Sample,
        Kind::Present,
        Kind::GiftReceipt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Receipt => "receipt",
            Kind::Notice => "notice",
            Kind::Links => "links",
            Kind::Gift => "gift",
            Kind::Preorder => "preorder",
            Kind::Delivery => "delivery",
            Kind::Upgrade => "upgrade",
            Kind::Refund => "refund",
            Kind::Withdrawal => "withdrawal",
            Kind::RefundDelayed => "refund-delayed",
            Kind::Follow => "follow",
            Kind::Post => "post",
            Kind::Sample => "sample",
            Kind::Present => "present",
            Kind::GiftReceipt => "gift-receipt",
        }
    }

    fn builtin(self) -> (&'static str, &'static str) {
        match self {
            Kind::Receipt => (
                include_str!("../../templates/mail/receipt.txt"),
                include_str!("../../templates/mail/receipt.html"),
            ),
            Kind::Notice => (
                include_str!("../../templates/mail/notice.txt"),
                include_str!("../../templates/mail/notice.html"),
            ),
            Kind::Links => (
                include_str!("../../templates/mail/links.txt"),
                include_str!("../../templates/mail/links.html"),
            ),
            Kind::Gift => (
                include_str!("../../templates/mail/gift.txt"),
                include_str!("../../templates/mail/gift.html"),
            ),
            Kind::Preorder => (
                include_str!("../../templates/mail/preorder.txt"),
                include_str!("../../templates/mail/preorder.html"),
            ),
            Kind::Delivery => (
                include_str!("../../templates/mail/delivery.txt"),
                include_str!("../../templates/mail/delivery.html"),
            ),
            Kind::Upgrade => (
                include_str!("../../templates/mail/upgrade.txt"),
                include_str!("../../templates/mail/upgrade.html"),
            ),
            Kind::Refund => (
                include_str!("../../templates/mail/refund.txt"),
                include_str!("../../templates/mail/refund.html"),
            ),
            Kind::Withdrawal => (
                include_str!("../../templates/mail/withdrawal.txt"),
                include_str!("../../templates/mail/withdrawal.html"),
            ),
            Kind::RefundDelayed => (
                include_str!("../../templates/mail/refund-delayed.txt"),
                include_str!("../../templates/mail/refund-delayed.html"),
            ),
            Kind::Follow => (
                include_str!("../../templates/mail/follow.txt"),
                include_str!("../../templates/mail/follow.html"),
            ),
            Kind::Post => (
                include_str!("../../templates/mail/post.txt"),
                include_str!("../../templates/mail/post.html"),
            ),
            Kind::Sample => (
                include_str!("../../templates/mail/sample.txt"),
                include_str!("../../templates/mail/sample.html"),
            ),
            Kind::Present => (
                include_str!("../../templates/mail/present.txt"),
                include_str!("../../templates/mail/present.html"),
            ),
            Kind::GiftReceipt => (
                include_str!("../../templates/mail/gift-receipt.txt"),
                include_str!("../../templates/mail/gift-receipt.html"),
            ),
        }
    }

    /// The values its message must show (in both parts): the link it
    /// exists for, and a notice's way to stop notices.
    fn essential(self) -> &'static [&'static str] {
        match self {
            // The withdrawal function, on the receipts of what was paid for.
            Kind::Receipt => &["link", "withdraw"],
            Kind::Preorder => &["order", "withdraw"],
            Kind::Withdrawal => &["order", "requested"],
            Kind::Gift | Kind::Delivery | Kind::Sample | Kind::Present => &["link"],
            Kind::GiftReceipt => &["gift", "withdraw"],
            Kind::Notice => &["link", "unsubscribe"],
            Kind::Links => &["library"],
            Kind::Upgrade => &["upgrade", "unsubscribe"],
            Kind::Refund | Kind::RefundDelayed => &["order"],
            Kind::Follow => &["confirm"],
            Kind::Post => &["body", "unsubscribe"],
        }
    }

    /// The placeholders its templates may use.
    fn variables(self) -> &'static [&'static str] {
        match self {
            Kind::Receipt => &[
                "shop",
                "support",
                "base_url",
                "product",
                "version",
                "link",
                "expires",
                "limit",
                "email",
                "order",
                "date",
                "paid",
                "lost",
                "cover",
                "contents",
                "stamped",
                "invoice",
                "withdraw",
                "withdraw_text",
                "unusable",
            ],
            Kind::GiftReceipt => &[
                "shop",
                "support",
                "base_url",
                "product",
                "version",
                "email",
                "order",
                "date",
                "paid",
                "cover",
                "contents",
                "invoice",
                "withdraw",
                "withdraw_text",
                "recipient",
                "message",
                "send_on",
                "unread_day",
                "gift",
            ],
            Kind::Present => &[
                "shop", "support", "base_url", "product", "version", "link", "expires", "limit",
                "email", "order", "lost", "cover", "contents", "stamped", "giver", "message",
            ],
            Kind::Notice => &[
                "shop",
                "support",
                "base_url",
                "product",
                "version",
                "bought",
                "link",
                "expires",
                "email",
                "unsubscribe",
                "notes",
                "cover",
                "given",
            ],
            Kind::Links => &["shop", "support", "base_url", "email", "library", "links"],
            Kind::Gift | Kind::Delivery => &[
                "shop", "support", "base_url", "product", "version", "link", "expires", "limit",
                "email", "order", "lost", "cover", "contents", "stamped",
            ],
            Kind::Sample => &[
                "shop", "support", "base_url", "product", "version", "link", "expires", "limit",
                "email", "order", "lost", "cover", "contents", "stamped", "confirm",
            ],
            Kind::Upgrade => &[
                "shop",
                "support",
                "base_url",
                "product",
                "version",
                "bought",
                "email",
                "unsubscribe",
                "notes",
                "code",
                "discount",
                "price",
                "until",
                "upgrade",
                "cover",
                "given",
            ],
            Kind::Preorder => &[
                "shop",
                "support",
                "base_url",
                "product",
                "version",
                "email",
                "order",
                "date",
                "paid",
                "out",
                "cover",
                "contents",
                "withdraw",
                "withdraw_text",
            ],
            Kind::Refund => &[
                "shop", "support", "base_url", "product", "version", "email", "order", "amount",
                "reason",
            ],
            Kind::Withdrawal => &[
                "shop",
                "support",
                "base_url",
                "product",
                "version",
                "email",
                "order",
                "date",
                "requested",
                "name",
                "reason",
                "decision",
                "amount",
                "waived",
                "days",
                "guarantee_days",
            ],
            Kind::RefundDelayed => &[
                "shop", "support", "base_url", "product", "version", "email", "order", "amount",
            ],
            Kind::Follow => &["shop", "support", "base_url", "email", "confirm"],
            Kind::Post => &[
                "shop",
                "support",
                "base_url",
                "email",
                "subject",
                "body",
                "url",
                "unsubscribe",
            ],
        }
    }
}

/// What a message about `product` at `version` shows of it: its cover's
/// address (`cover`), a bundle's contents (`contents`: "The Guide 1.0.0
/// and The Workbook 1.0.0") and whether the files carry the buyer's email
/// (`stamped`); each empty when there is none.
pub fn product_values(
    store: &store::Store,
    product: &store::Product,
    version: &str,
) -> [(&'static str, String); 3] {
    let holdings = store.holdings(&product.slug, version);
    let stamped = holdings.iter().any(|holding| {
        store.stamping(holding.product) != StampMode::Off
            && holding
                .product
                .files
                .iter()
                .any(|file| Format::of(file).is_some())
    });
    let contents = if product.is_bundle() {
        let names: Vec<String> = holdings
            .iter()
            .map(|holding| format!("{} {}", holding.product.name, holding.bought))
            .collect();
        store::and_list(&names)
    } else {
        String::new()
    };
    [
        (
            "cover",
            product
                .cover
                .as_ref()
                .map(|_| format!("{}/cover/{}", store.settings.base_url, product.slug))
                .unwrap_or_default(),
        ),
        ("contents", contents),
        ("stamped", if stamped { "yes" } else { "" }.to_owned()),
    ]
}

/// What every message that hands over files says (a receipt, a gift, a
/// pre-order's delivery): the product at its version, the link and until
/// when, the downloads each file allows, the order number, where to ask
/// for the link again, and what the product's files are.
#[derive(Debug)]
pub struct Access<'a> {
    pub store: &'a store::Store,
    pub product: &'a store::Product,
    pub version: &'a str,
    pub email: &'a str,
    /// The purchase or grant, whose order number the message gives.
    pub purchase: &'a str,
    pub link: &'a str,
    /// When the link stops working (Unix seconds).
    pub expires: i64,
}

impl Access<'_> {
    /// Its values, as the templates name them.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        let settings = &self.store.settings;
        let mut values = shop_values(settings, self.email);
        values.extend([
            ("product", self.product.name.clone()),
            ("version", self.version.to_owned()),
            ("link", self.link.to_owned()),
            ("expires", dates::human_time(self.expires)),
            ("limit", self.product.download_limit.to_string()),
            ("order", ledger::order_number(self.purchase)),
            ("lost", format!("{}/lost", settings.base_url)),
        ]);
        values.extend(product_values(self.store, self.product, self.version));
        values
    }
}

/// The withdrawal function's link in a receipt of something paid for
/// (`withdraw`, `withdraw_text`).
pub fn withdraw_values(
    settings: &Settings,
    key: &crate::tokens::Key,
    purchase: &str,
    now: i64,
) -> [(&'static str, String); 2] {
    [
        (
            "withdraw",
            format!(
                "{}{}",
                settings.base_url,
                crate::tokens::withdraw_path(key, purchase, now)
            ),
        ),
        ("withdraw_text", settings.refunds.link_text.clone()),
    ]
}

/// The values every kind of message has: the shop's name, support
/// address and base URL, and the recipient's address.
pub fn shop_values(settings: &Settings, email: &str) -> BTreeMap<&'static str, String> {
    [
        ("shop", settings.name.clone()),
        ("support", settings.support_email.clone()),
        ("base_url", settings.base_url.clone()),
        ("email", email.to_owned()),
    ]
    .into_iter()
    .collect()
}

/// The templates of every kind, checked.
#[derive(Debug)]
pub struct Templates {
    /// `<kind>.txt` and `<kind>.html` of each kind, and `layout.html`.
    /// Values are escaped in the `.html` ones (minijinja's rule by name).
    environment: minijinja::Environment<'static>,
}

impl Templates {
    /// The built-in templates, with the store's overrides (`templates/mail/`).
    pub fn load(store_root: &Path) -> Result<Templates, MailError> {
        let mut environment = minijinja::Environment::new();
        // An override cannot loop for ever.
        environment.set_fuel(Some(html::TEMPLATE_FUEL));
        environment
            .add_template("layout.html", LAYOUT)
            .map_err(|error| template_error("built-in layout.html", &error))?;
        for kind in Kind::ALL {
            let (text, html) = kind.builtin();
            for (extension, builtin) in [("txt", text), ("html", html)] {
                let relative = format!("templates/mail/{}.{extension}", kind.name());
                let (source, text) = match std::fs::read_to_string(store_root.join(&relative)) {
                    Ok(text) => (relative, text),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => (
                        format!("built-in {}.{extension}", kind.name()),
                        builtin.to_owned(),
                    ),
                    Err(source) => {
                        return Err(MailError::Io {
                            path: store_root.join(&relative),
                            source,
                        });
                    }
                };
                if extension == "txt" && !text.starts_with("Subject: ") {
                    return Err(MailError::Template {
                        source_name: source,
                        line: 1,
                        message: "the first line must be `Subject: …`".into(),
                    });
                }
                let name = format!("{}.{extension}", kind.name());
                environment
                    .add_template_owned(name.clone(), text.clone())
                    .map_err(|error| template_error(&source, &error))?;
                let template = environment
                    .get_template(&name)
                    .map_err(|error| template_error(&source, &error))?;
                let mut unknown: Vec<String> = template
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|name| !kind.variables().contains(&name.as_str()))
                    .collect();
                unknown.sort();
                if let Some(name) = unknown.first() {
                    let line = text
                        .lines()
                        .position(|line| line.contains(name.as_str()))
                        .map_or(1, |index| index + 1);
                    return Err(MailError::Template {
                        source_name: source,
                        line,
                        message: format!(
                            "`{name}` is not a value of this message (it has {})",
                            store::quoted_list(kind.variables())
                        ),
                    });
                }
            }
        }
        let templates = Templates { environment };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every kind with sample values, and checks that each part
    /// shows what its message must ([`Kind::essential`]).
    fn check(&self) -> Result<(), MailError> {
        for kind in Kind::ALL {
            let values: BTreeMap<&str, String> = kind
                .variables()
                .iter()
                .map(|name| (*name, format!("sample-{name}-7K2Q")))
                .collect();
            let rendered = self.render(kind, &values)?;
            for name in kind.essential() {
                let value = &values[name];
                for (part, text) in [("txt", &rendered.text), ("html", &rendered.html)] {
                    if !text.contains(value.as_str()) {
                        return Err(MailError::Template {
                            source_name: format!("templates/mail/{}.{part}", kind.name()),
                            line: 1,
                            message: format!(
                                "the message does not show `{{{{ {name} }}}}`, which it must"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Renders a message of `kind` with `values` (every variable of the kind).
    pub fn render(
        &self,
        kind: Kind,
        values: &BTreeMap<&str, String>,
    ) -> Result<Rendered, MailError> {
        self.render_with_html(kind, values, &BTreeMap::new())
    }

    /// Renders a message whose HTML part takes some values as HTML made by
    /// shop (`html`: a list, rendered release notes) rather than text.
    /// The text part is wrapped at 72 columns between words; an HTML part
    /// that is not a whole document goes inside the mail layout.
    pub fn render_with_html(
        &self,
        kind: Kind,
        values: &BTreeMap<&str, String>,
        html: &BTreeMap<&str, String>,
    ) -> Result<Rendered, MailError> {
        let render = |name: &str, context: minijinja::Value| {
            self.environment
                .get_template(name)
                .and_then(|template| template.render(context))
                .map_err(|error| template_error(name, &error))
        };
        let text = render(
            &format!("{}.txt", kind.name()),
            minijinja::Value::from_serialize(values),
        )?;
        let (subject, text_body) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = subject.trim_start_matches("Subject: ").trim().to_owned();
        let mut html_values: BTreeMap<&str, minijinja::Value> = values
            .iter()
            .map(|(name, value)| (*name, minijinja::Value::from(value.as_str())))
            .collect();
        for (name, raw) in html {
            html_values.insert(name, minijinja::Value::from_safe_string(raw.clone()));
        }
        let body = render(
            &format!("{}.html", kind.name()),
            minijinja::Value::from_serialize(&html_values),
        )?;
        let whole = body.trim_start().get(..9).is_some_and(|start| {
            start.eq_ignore_ascii_case("<!doctype") || start.starts_with("<html")
        });
        let html = if whole {
            body
        } else {
            render(
                "layout.html",
                minijinja::context! {
                    subject,
                    shop => values.get("shop").map_or("", String::as_str),
                    body => minijinja::Value::from_safe_string(body),
                },
            )?
        };
        Ok(Rendered {
            text: wrap(body_text(text_body)),
            subject,
            html,
        })
    }
}

/// A template's error as a person reads it: the file, the line, what is wrong.
fn template_error(source: &str, error: &minijinja::Error) -> MailError {
    MailError::Template {
        source_name: source.to_owned(),
        line: error.line().unwrap_or(1),
        message: match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        },
    }
}

/// The built-in frame of every HTML part: a whole document with inline
/// styles that mail clients keep, and a dark-mode palette.
const LAYOUT: &str = include_str!("../../templates/mail/layout.html");

/// The body without leading blank lines, and with no more than one blank
/// line in a row (an empty value leaves none behind).
fn body_text(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut blank = 0;
    for line in body.trim_start_matches('\n').lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Wraps each line longer than 72 columns between words, never inside a
/// word (a long link stays whole on its own line).
fn wrap(text: String) -> String {
    let options = textwrap::Options::new(72)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        if line.chars().count() <= 72 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        for part in textwrap::wrap(line, &options) {
            out.push_str(part.trim_end());
            out.push('\n');
        }
    }
    out
}

/// A message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("`{source_name}` line {line}: {message}")]
    Template {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("`{address}` is not a mail address: {message}")]
    Address { address: String, message: String },
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("{0}")]
    Setup(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Send(String),
    #[error("cannot read or write `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

inventory::submit!(Registered::of::<MailError>());

impl error::Hint for MailError {
    fn hint(&self) -> String {
        match self {
            MailError::Template { .. } => "fix the template; nothing was sent".into(),
            MailError::Address { .. } => {
                "check `mail.from` in shop.toml and the buyer's address".into()
            }
            MailError::Build(_) => {
                "check the templates and `mail.from`; if they look right, this is a bug in shop"
                    .into()
            }
            MailError::Setup(_) => "check `[mail]` in shop.toml and `SHOP_SMTP_PASSWORD`".into(),
            MailError::Send(_) => {
                "check `[mail.smtp]` in shop.toml; unsent mail is kept and retried".into()
            }
            MailError::Io { .. } => "check the permissions of the folder and the disk space".into(),
        }
    }
}

#[cfg(test)]
mod tests;

//! Reading `shop.toml`: the TOML as written (`Raw*`), then one method of a
//! [`Reader`] per key group, each problem collected in its place or naming
//! the override that set the value.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{
    AudienceBuyers, AudienceSettings, ConsentSettings, DEFAULT_BASE_URL, DEFAULT_LINK_LIFETIME,
    DEFAULT_OUTBOX, DEFAULT_STAMPED_CACHE, DEFAULT_THANKS_WINDOW, DEFAULT_WAIVER,
    DEFAULT_WITHDRAW_TEXT, Limits, MailSettings, MailTransport, Overrides, Rate, RefundSettings,
    ServeSettings, Settings, SmtpSecurity, StampSettings, TaxBehavior, TaxSettings, check_email,
    mailbox, parse_duration,
};
use crate::store;
use crate::store::money::Currency;
use crate::store::values::{
    DEFAULT_DOWNLOAD_LIMIT, DOWNLOAD_LIMIT_HINT, STAMP_HINT, StampMode, check_display_name,
    check_download_limit,
};
use crate::store::{Problem, SETTINGS_FILE, toml_problem, values};

/// The longest text Stripe shows beside the box (`custom_text` message).
const WAIVER_MAX: usize = 1200;

const RATE_HINT: &str =
    "write a number of requests per second, minute or hour, such as `\"60/minute\"`";

#[derive(Debug, Deserialize)]
struct RawSettings {
    name: Spanned<String>,
    about: Option<String>,
    base_url: Option<Spanned<String>>,
    support_email: Spanned<String>,
    currency: Option<Spanned<String>>,
    download_limit: Option<Spanned<i64>>,
    link_lifetime: Option<Spanned<String>>,
    #[serde(default)]
    gifts: bool,
    #[serde(default)]
    github: RawGithub,
    #[serde(default)]
    mail: RawMail,
    #[serde(default)]
    serve: RawServe,
    #[serde(default)]
    stamp: RawStamp,
    #[serde(default)]
    tax: RawTax,
    consent: Option<RawConsent>,
    #[serde(default)]
    refunds: RawRefunds,
    #[serde(default)]
    audience: RawAudience,
}

#[derive(Debug, Default, Deserialize)]
struct RawAudience {
    buyers: Option<Spanned<String>>,
    checkout_consent: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRefunds {
    self_service_days: Option<Spanned<i64>>,
    #[serde(default)]
    review: bool,
    link_text: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTax {
    #[serde(default)]
    automatic: bool,
    prices: Option<Spanned<String>>,
    #[serde(default)]
    tax_id_collection: bool,
    #[serde(default)]
    invoices: bool,
    default_code: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct RawConsent {
    terms_url: Option<Spanned<String>>,
    waiver: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawStamp {
    default: Option<Spanned<toml::Value>>,
    text: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawServe {
    thanks_window: Option<Spanned<String>>,
    state: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    thanks_limit: Option<Spanned<String>>,
    checkout_limit: Option<Spanned<String>>,
    lost_limit: Option<Spanned<String>>,
    connections_per_client: Option<Spanned<i64>>,
    stamped_cache: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawGithub {
    repository: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawMail {
    transport: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    outbox: Option<String>,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    sendmail: RawSendmail,
}

#[derive(Debug, Default, Deserialize)]
struct RawSmtp {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    security: Option<Spanned<String>>,
    user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawSendmail {
    command: Option<String>,
}

/// Where a value came from, for messages: a place in `shop.toml`, or the
/// flag and variable that override it.
enum Origin<'a> {
    File(std::ops::Range<usize>),
    Override(&'a str),
}

/// Parses `shop.toml` and applies `overrides`, reporting every problem.
pub fn parse(text: &str, overrides: &Overrides) -> Result<Settings, Vec<Problem>> {
    // Unknown keys are found apart, so that one does not hide the rest.
    let unknown = unknown_keys(text);
    let raw: RawSettings = toml::from_str(text).map_err(|error| {
        let mut problems = unknown.clone();
        problems.push(toml_problem(SETTINGS_FILE, text, &error));
        problems
    })?;
    let mut reader = Reader {
        text,
        problems: unknown,
    };
    let name = reader.name(&raw);
    let base_url = reader.base_url(&raw, overrides);
    let support_email = reader.support_email(&raw);
    let currency = reader.currency(&raw);
    let download_limit = reader.download_limit(&raw);
    let link_lifetime = reader.link_lifetime(&raw);
    let github_repository = reader.github_repository(&raw, overrides);
    let mail = reader.mail(&raw, overrides, &name, &support_email);
    let serve = reader.serve(&raw);
    let stamp = reader.stamp(&raw);
    let tax = reader.tax(&raw);
    let consent = reader.consent(&raw);
    let refunds = reader.refunds(&raw);
    let audience = reader.audience(&raw);
    if !reader.problems.is_empty() {
        return Err(reader.problems);
    }
    Ok(Settings {
        name,
        about: raw
            .about
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty()),
        base_url,
        support_email,
        currency,
        download_limit,
        link_lifetime,
        github_repository,
        mail,
        serve,
        stamp,
        tax,
        consent,
        refunds,
        audience,
        gifts: raw.gifts,
    })
}

/// `shop.toml` being read: every problem is collected, each in its place
/// (or naming the override that set the value).
struct Reader<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, origin: Origin<'_>, message: String, hint: &str) {
        let found = match origin {
            Origin::File(span) => Problem::at(SETTINGS_FILE, self.text, span, message),
            Origin::Override(name) => Problem::new(name, message),
        };
        self.problems.push(found.hint(hint));
    }

    /// `name`: the shop's name, on one line.
    fn name(&mut self, raw: &RawSettings) -> String {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            self.problem(
                Origin::File(raw.name.span()),
                "`name` is empty".into(),
                "give the shop a name",
            );
        } else if let Err(message) = check_display_name(&name) {
            self.problem(
                Origin::File(raw.name.span()),
                message,
                "write the shop's name on one line, without control characters (it is in every mail)",
            );
        }
        name
    }

    /// `base_url` (or `SHOP_BASE_URL`): where buyers reach the server.
    fn base_url(&mut self, raw: &RawSettings, overrides: &Overrides) -> String {
        let (base_url, base_url_origin) = match (&overrides.base_url, &raw.base_url) {
            (Some(url), _) => (url.clone(), Origin::Override("--base-url / SHOP_BASE_URL")),
            (None, Some(url)) => (url.get_ref().clone(), Origin::File(url.span())),
            (None, None) => (DEFAULT_BASE_URL.to_owned(), Origin::Override("default")),
        };
        match check_base_url(&base_url) {
            Ok(url) => url,
            Err(message) => {
                self.problem(
                    base_url_origin,
                    message,
                    "write the public address of `shop serve`, such as `https://books.example.com`",
                );
                String::new()
            }
        }
    }

    /// `support_email`: where buyers write.
    fn support_email(&mut self, raw: &RawSettings) -> String {
        let support_email = raw.support_email.get_ref().trim().to_owned();
        if let Err(message) = check_email(&support_email) {
            self.problem(
                Origin::File(raw.support_email.span()),
                message,
                "write the address buyers can write to, such as `help@example.com`",
            );
        }
        support_email
    }

    /// `currency`: the store's, for products that do not say.
    fn currency(&mut self, raw: &RawSettings) -> Currency {
        match &raw.currency {
            None => Currency::default_currency(),
            Some(code) => code.get_ref().parse().unwrap_or_else(|message| {
                self.problem(
                    Origin::File(code.span()),
                    message,
                    "use a three-letter ISO 4217 code Stripe supports, such as `usd` or `eur`",
                );
                Currency::default_currency()
            }),
        }
    }

    /// `download_limit`: the store's, for products that do not say.
    fn download_limit(&mut self, raw: &RawSettings) -> u32 {
        match &raw.download_limit {
            None => DEFAULT_DOWNLOAD_LIMIT,
            Some(limit) => check_download_limit(*limit.get_ref()).unwrap_or_else(|message| {
                self.problem(Origin::File(limit.span()), message, DOWNLOAD_LIMIT_HINT);
                DEFAULT_DOWNLOAD_LIMIT
            }),
        }
    }

    /// `link_lifetime`: how long a download link works, in seconds.
    fn link_lifetime(&mut self, raw: &RawSettings) -> u64 {
        match &raw.link_lifetime {
            None => parse_duration(DEFAULT_LINK_LIFETIME).unwrap_or(7 * 86_400),
            Some(lifetime) => check_link_lifetime(lifetime.get_ref()).unwrap_or_else(|message| {
                self.problem(
                    Origin::File(lifetime.span()),
                    message,
                    "write a duration such as `7d`, `48h` or `30m`, between 1m and 365d",
                );
                0
            }),
        }
    }

    /// `github_repository` (or its override): where files go, if not local.
    fn github_repository(&mut self, raw: &RawSettings, overrides: &Overrides) -> Option<String> {
        let (repository, repository_origin) =
            match (&overrides.github_repository, &raw.github.repository) {
                (Some(repo), _) => (
                    repo.clone(),
                    Origin::Override("--github-repository / SHOP_GITHUB_REPOSITORY"),
                ),
                (None, Some(repo)) => (repo.get_ref().clone(), Origin::File(repo.span())),
                (None, None) => (String::new(), Origin::Override("default")),
            };
        match repository.trim() {
            "" => None,
            repo => match check_github_repository(repo) {
                Ok(()) => Some(repo.to_owned()),
                Err(message) => {
                    self.problem(
                        repository_origin,
                        message,
                        "write the private assets repository as `owner/name`, or leave it empty \
                         to keep files in `.shop/files`",
                    );
                    None
                }
            },
        }
    }

    /// `[mail]`: the sender and the transport (or their overrides).
    /// `name` and `support_email` make the default sender.
    fn mail(
        &mut self,
        raw: &RawSettings,
        overrides: &Overrides,
        name: &str,
        support_email: &str,
    ) -> MailSettings {
        let from = match &raw.mail.from {
            None => mailbox(name, support_email),
            Some(from) => {
                let value = from.get_ref().trim().to_owned();
                if let Err(message) = check_mailbox(&value) {
                    self.problem(
                        Origin::File(from.span()),
                        message,
                        "write `Name <address>` or a bare address, such as `Books <books@example.com>` or `\"Books, Inc.\" <books@example.com>`",
                    );
                }
                value
            }
        };

        let (transport_name, transport_origin) =
            match (&overrides.mail_transport, &raw.mail.transport) {
                (Some(name), _) => (
                    name.clone(),
                    Origin::Override("--mail-transport / SHOP_MAIL_TRANSPORT"),
                ),
                (None, Some(name)) => (name.get_ref().clone(), Origin::File(name.span())),
                (None, None) => ("file".to_owned(), Origin::Override("default")),
            };
        let transport = match transport_name.as_str() {
            "file" => MailTransport::File {
                outbox: PathBuf::from(raw.mail.outbox.as_deref().unwrap_or(DEFAULT_OUTBOX)),
            },
            "smtp" => {
                let smtp = &raw.mail.smtp;
                let host = match &smtp.host {
                    Some(host) if !host.get_ref().trim().is_empty() => {
                        host.get_ref().trim().to_owned()
                    }
                    _ => {
                        self.problem(
                            transport_origin,
                            "mail goes by `smtp` but `mail.smtp.host` is not set".into(),
                            "set `host` (and `port`, `security`, `user`) under `[mail.smtp]`",
                        );
                        String::new()
                    }
                };
                let security = match smtp
                    .security
                    .as_ref()
                    .map(|s| (s.get_ref().as_str(), s.span()))
                {
                    None | Some(("starttls", _)) => SmtpSecurity::StartTls,
                    Some(("tls", _)) => SmtpSecurity::Tls,
                    Some(("none", _)) => SmtpSecurity::None,
                    Some((other, span)) => {
                        self.problem(
                            Origin::File(span),
                            format!("`{other}` is not an SMTP security mode"),
                            "use `starttls` (port 587), `tls` (port 465) or `none` (a local server)",
                        );
                        SmtpSecurity::StartTls
                    }
                };
                let default_port = match security {
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::None => 25,
                };
                let port = match &smtp.port {
                    None => default_port,
                    Some(port) => u16::try_from(*port.get_ref())
                        .ok()
                        .filter(|port| *port > 0)
                        .unwrap_or_else(|| {
                            self.problem(
                                Origin::File(port.span()),
                                format!("`{}` is not a port", port.get_ref()),
                                "use a port between 1 and 65535, usually 587 or 465",
                            );
                            default_port
                        }),
                };
                let user = smtp.user.clone().filter(|user| !user.trim().is_empty());
                MailTransport::Smtp {
                    host,
                    port,
                    security,
                    user,
                }
            }
            "sendmail" => MailTransport::Sendmail {
                command: raw
                    .mail
                    .sendmail
                    .command
                    .clone()
                    .unwrap_or_else(|| "/usr/sbin/sendmail".to_owned()),
            },
            other => {
                self.problem(
                    transport_origin,
                    format!("`{other}` is not a mail transport"),
                    "use `file` (an outbox folder), `smtp` or `sendmail`",
                );
                MailTransport::File {
                    outbox: PathBuf::from(DEFAULT_OUTBOX),
                }
            }
        };
        MailSettings { from, transport }
    }

    /// `[serve]`: the server's windows, proxies, state and limits.
    fn serve(&mut self, raw: &RawSettings) -> ServeSettings {
        let thanks_window = match &raw.serve.thanks_window {
            None => DEFAULT_THANKS_WINDOW,
            Some(window) => match parse_duration(window.get_ref()) {
                Ok(seconds @ 60..=2_592_000) => seconds,
                Ok(_) => {
                    self.problem(
                        Origin::File(window.span()),
                        format!("`{}` is outside 1m to 30d", window.get_ref()),
                        "write how long the thanks page opens the download page, such as `1h`",
                    );
                    DEFAULT_THANKS_WINDOW
                }
                Err(message) => {
                    self.problem(
                        Origin::File(window.span()),
                        message,
                        "write how long the thanks page opens the download page, such as `1h`",
                    );
                    DEFAULT_THANKS_WINDOW
                }
            },
        };
        let mut trusted_proxies = Vec::new();
        for proxy in &raw.serve.trusted_proxies {
            let text = proxy.get_ref().trim();
            let parsed = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => self.problem(
                    Origin::File(proxy.span()),
                    format!("`{text}` is not an IP address or network"),
                    "list the addresses of your reverse proxies, such as `\"127.0.0.1\"` or `\"10.0.0.0/8\"`",
                ),
            }
        }

        let state = raw.serve.state.as_ref().and_then(|url| {
            let text = url.get_ref().trim();
            let parsed = url::Url::parse(text)
                .ok()
                .filter(|parsed| matches!(parsed.scheme(), "postgres" | "postgresql"));
            match parsed {
                None => self.problem(
                    Origin::File(url.span()),
                    format!("`{text}` is not a PostgreSQL URL"),
                    "write it as `postgres://USER@HOST:PORT/DATABASE`, or leave `state` out to keep the state in `.shop/state.db`",
                ),
                Some(parsed) if parsed.password().is_some() => self.problem(
                    Origin::File(url.span()),
                    "`state` holds a password, which would be committed with `shop.toml`".to_owned(),
                    "leave the password out here and give the whole URL in `SHOP_STATE_URL` (or a file named by `SHOP_STATE_URL_FILE`)",
                ),
                Some(_) => return Some(text.to_owned()),
            }
            None
        });

        let (limits, stamped_cache) = serve_limits(
            &raw.serve,
            &mut |span: std::ops::Range<usize>, message: String, hint: &str| {
                self.problem(Origin::File(span), message, hint)
            },
        );
        ServeSettings {
            thanks_window,
            trusted_proxies,
            state,
            limits,
            stamped_cache,
        }
    }

    /// `[stamp]`: the default and the text of stamped copies.
    fn stamp(&mut self, raw: &RawSettings) -> StampSettings {
        let mut stamp = StampSettings::default();
        if let Some(value) = &raw.stamp.default {
            match StampMode::parse(value.get_ref()) {
                Ok(mode) => stamp.default = mode,
                Err(message) => self.problem(Origin::File(value.span()), message, STAMP_HINT),
            }
        }
        if let Some(text) = &raw.stamp.text {
            let unknown: Vec<&str> = text
                .get_ref()
                .match_indices('{')
                .filter_map(|(at, _)| {
                    let rest = &text.get_ref()[at..];
                    let end = rest.find('}')? + 1;
                    let placeholder = &rest[..end];
                    (!values::STAMP_PLACEHOLDERS.contains(&placeholder)).then_some(placeholder)
                })
                .collect();
            if let Some(first) = unknown.first() {
                self.problem(
                    Origin::File(text.span()),
                    format!("`{first}` is not a placeholder of the stamp's text"),
                    "use `{email}`, `{name}`, `{order}` and `{date}`",
                );
            } else {
                stamp.text = text.get_ref().clone();
            }
        }
        stamp
    }

    /// `[tax]`: what Stripe computes and issues at checkout.
    fn tax(&mut self, raw: &RawSettings) -> TaxSettings {
        let prices = match &raw.tax.prices {
            None => TaxBehavior::default(),
            Some(value) => match value.get_ref().as_str() {
                "exclusive" => TaxBehavior::Exclusive,
                "inclusive" => TaxBehavior::Inclusive,
                other => {
                    self.problem(
                        Origin::File(value.span()),
                        format!("`{other}` is not a way of pricing tax"),
                        "use `exclusive` (tax is added at checkout) or `inclusive` (prices hold it)",
                    );
                    TaxBehavior::default()
                }
            },
        };
        let default_code = raw.tax.default_code.as_ref().and_then(|code| {
            let text = code.get_ref().trim();
            match store::check_tax_code(text) {
                Ok(()) => Some(text.to_owned()),
                Err(message) => {
                    self.problem(Origin::File(code.span()), message, store::TAX_CODE_HINT);
                    None
                }
            }
        });
        TaxSettings {
            automatic: raw.tax.automatic,
            prices,
            tax_id_collection: raw.tax.tax_id_collection,
            invoices: raw.tax.invoices,
            default_code,
        }
    }

    /// `[audience]`: who hears the author's posts beyond followers.
    fn audience(&mut self, raw: &RawSettings) -> AudienceSettings {
        let buyers = match &raw.audience.buyers {
            None => AudienceBuyers::default(),
            Some(value) => match value.get_ref().as_str() {
                "opt-in" => AudienceBuyers::OptIn,
                "all" => AudienceBuyers::All,
                "none" => AudienceBuyers::None,
                other => {
                    self.problem(
                        Origin::File(value.span()),
                        format!("`{other}` is not who among buyers hears posts"),
                        "use `opt-in` (buyers who follow), `all` (where your law allows it) or `none`",
                    );
                    AudienceBuyers::default()
                }
            },
        };
        let checkout_consent = match &raw.audience.checkout_consent {
            Some(asked) if *asked.get_ref() && buyers != AudienceBuyers::OptIn => {
                self.problem(
                    Origin::File(asked.span()),
                    "`checkout_consent` asks buyers to opt in, which only `buyers = \"opt-in\"` uses"
                        .into(),
                    "remove `checkout_consent`, or set `buyers = \"opt-in\"`",
                );
                false
            }
            asked => asked.as_ref().is_some_and(|asked| *asked.get_ref()),
        };
        AudienceSettings {
            buyers,
            checkout_consent,
        }
    }

    /// `[refunds]`: what a buyer who withdraws gets beyond the law.
    fn refunds(&mut self, raw: &RawSettings) -> RefundSettings {
        let refunds = &raw.refunds;
        let self_service_days = refunds.self_service_days.as_ref().and_then(|days| {
            match u32::try_from(*days.get_ref()) {
                Ok(value @ 1..=365) => Some(value),
                _ => {
                    self.problem(
                        Origin::File(days.span()),
                        format!("`{}` is not a number of days from 1 to 365", days.get_ref()),
                        "write how many days after a purchase any buyer may ask for their money back, \
                         such as `30`; the law's 14 days apply without it",
                    );
                    None
                }
            }
        });
        let link_text = match &refunds.link_text {
            None => DEFAULT_WITHDRAW_TEXT.to_owned(),
            Some(text) => {
                let trimmed = text.get_ref().trim();
                if trimmed.is_empty() || trimmed.chars().count() > 80 {
                    self.problem(
                        Origin::File(text.span()),
                        "`link_text` must be 1 to 80 characters".into(),
                        "write the words of the withdrawal link, such as \
                         `\"Withdraw from contract here\"`, or leave it out for the default",
                    );
                }
                trimmed.to_owned()
            }
        };
        RefundSettings {
            self_service_days,
            review: refunds.review,
            link_text,
        }
    }

    /// `[consent]`: the terms and the waiver buyers accept.
    fn consent(&mut self, raw: &RawSettings) -> Option<ConsentSettings> {
        raw.consent.as_ref().and_then(|consent| {
            let Some(terms_url) = &consent.terms_url else {
                self.problem(
                    Origin::Override("[consent]"),
                    "`[consent]` has no `terms_url`".into(),
                    "write the address of your terms of sale, such as `terms_url = \"https://books.example.com/terms\"`",
                );
                return None;
            };
            let url = terms_url.get_ref().trim();
            if !(url.starts_with("https://") || url.starts_with("http://")) || url::Url::parse(url).is_err() {
                self.problem(
                    Origin::File(terms_url.span()),
                    format!("`{url}` is not a web address"),
                    "write the address of your terms of sale, such as `https://books.example.com/terms`",
                );
                return None;
            }
            let (template, span) = match &consent.waiver {
                Some(waiver) => (waiver.get_ref().trim().to_owned(), Some(waiver.span())),
                None => (DEFAULT_WAIVER.to_owned(), None),
            };
            let waiver = template.replace("{terms_url}", url);
            let origin = || match &span {
                Some(span) => Origin::File(span.clone()),
                None => Origin::Override("[consent]"),
            };
            if waiver.is_empty() {
                self.problem(
                    origin(),
                    "`waiver` is empty".into(),
                    "write what the buyer agrees to, or leave `waiver` out for the default",
                );
                return None;
            }
            if waiver.chars().count() > WAIVER_MAX {
                self.problem(
                    origin(),
                    format!(
                        "`waiver` is {} characters; Stripe shows at most {WAIVER_MAX}",
                        waiver.chars().count()
                    ),
                    "shorten it and link to the rest, as the default does with `{terms_url}`",
                );
                return None;
            }
            Some(ConsentSettings {
                terms_url: url.to_owned(),
                waiver,
            })
        })
    }
}

impl Currency {
    fn default_currency() -> Currency {
        "usd"
            .parse()
            .unwrap_or_else(|_| unreachable!("usd is a currency"))
    }
}

/// The keys of `shop.toml`, by table (`""` the top).
const KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "name",
            "about",
            "base_url",
            "support_email",
            "currency",
            "download_limit",
            "link_lifetime",
            "gifts",
            "github",
            "mail",
            "serve",
            "stamp",
            "tax",
            "consent",
            "refunds",
            "audience",
        ],
    ),
    ("github", &["repository"]),
    ("mail", &["transport", "from", "outbox", "smtp", "sendmail"]),
    ("mail.smtp", &["host", "port", "security", "user"]),
    ("mail.sendmail", &["command"]),
    (
        "serve",
        &[
            "thanks_window",
            "state",
            "trusted_proxies",
            "thanks_limit",
            "checkout_limit",
            "lost_limit",
            "connections_per_client",
            "stamped_cache",
        ],
    ),
    ("stamp", &["default", "text"]),
    (
        "tax",
        &[
            "automatic",
            "prices",
            "tax_id_collection",
            "invoices",
            "default_code",
        ],
    ),
    ("consent", &["terms_url", "waiver"]),
    ("refunds", &["self_service_days", "review", "link_text"]),
    ("audience", &["buyers", "checkout_consent"]),
];

/// A problem for each key `shop.toml` may not have, at the key, with a
/// suggestion where one is close to a key it may have.
fn unknown_keys(text: &str) -> Vec<Problem> {
    fn walk(table: &toml_edit::Table, path: &str, text: &str, problems: &mut Vec<Problem>) {
        let Some((_, known)) = KEYS.iter().find(|(table, _)| *table == path) else {
            return;
        };
        for (key, item) in table.iter() {
            if known.contains(&key) {
                let inner = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                if let Some(sub) = item.as_table() {
                    walk(sub, &inner, text, problems);
                }
                continue;
            }
            let span = table
                .key(key)
                .and_then(toml_edit::Key::span)
                .unwrap_or(0..0);
            let place = if path.is_empty() {
                String::new()
            } else {
                format!(" in `[{path}]`")
            };
            problems.push(
                Problem::at(
                    SETTINGS_FILE,
                    text,
                    span,
                    format!(
                        "unknown field `{key}`{place}, expected one of {}",
                        store::quoted_list(known)
                    ),
                )
                .hint(
                    store::did_you_mean(key, known.iter().copied()).unwrap_or_else(|| {
                        "check the key's spelling against the keys the message lists".into()
                    }),
                ),
            );
        }
    }
    let Ok(document) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    walk(document.as_table(), "", text, &mut problems);
    problems
}

/// The `[serve]` keys of limits and the stamped copies' disk, each problem
/// reported at its place.
fn serve_limits(
    raw: &RawServe,
    problem: &mut dyn FnMut(std::ops::Range<usize>, String, &str),
) -> (Limits, u64) {
    let mut limits = Limits::default();
    let mut rate = |value: &Option<Spanned<String>>, into: &mut Rate| {
        if let Some(value) = value {
            match value.get_ref().parse::<Rate>() {
                Ok(parsed) => *into = parsed,
                Err(message) => problem(value.span(), message, RATE_HINT),
            }
        }
    };
    rate(&raw.thanks_limit, &mut limits.thanks);
    rate(&raw.checkout_limit, &mut limits.checkout);
    rate(&raw.lost_limit, &mut limits.lost);
    if let Some(count) = &raw.connections_per_client {
        match u32::try_from(*count.get_ref()) {
            Ok(count @ 1..=100_000) => limits.connections = count,
            _ => problem(
                count.span(),
                format!("`{}` is not a number of connections", count.get_ref()),
                "write how many connections one client may hold open, from 1 to 100000 (the default is 256)",
            ),
        }
    }
    let mut stamped_cache = DEFAULT_STAMPED_CACHE;
    if let Some(size) = &raw.stamped_cache {
        match size.get_ref().trim().parse::<bytesize::ByteSize>() {
            Ok(parsed) if parsed.as_u64() >= 1024 * 1024 => stamped_cache = parsed.as_u64(),
            Ok(_) => problem(
                size.span(),
                format!("`{}` is less than 1 MiB", size.get_ref()),
                "write how much disk buyers' stamped copies may take, such as `\"2 GiB\"`",
            ),
            Err(_) => problem(
                size.span(),
                format!("`{}` is not a size", size.get_ref()),
                "write how much disk buyers' stamped copies may take, such as `\"2 GiB\"` or `\"500 MB\"`",
            ),
        }
    }
    (limits, stamped_cache)
}

fn check_base_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http or https URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || rest.contains(['?', '#', ' ', '\t', '\n'])
        || host.contains('@')
        || host.starts_with(':')
    {
        return Err(format!("`{url}` is not a base URL"));
    }
    // It goes into pages, mails and `Location` headers as it is: nothing
    // that would end an attribute or a header (quotes, angle brackets,
    // backslashes, spaces, control characters).
    if trimmed.contains(|c: char| {
        c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`')
    }) {
        return Err(format!(
            "`{url}` is not a base URL (it has characters a URL must escape)"
        ));
    }
    Ok(trimmed.to_owned())
}

/// A `From:` as the mail library sends it, or why not. The mail library is
/// the judge: a value it cannot parse would stop every message at sending.
fn check_mailbox(mailbox: &str) -> Result<(), String> {
    if mailbox.contains(char::is_control) {
        return Err(format!(
            "`{}` holds a line break or another control character",
            mailbox.escape_debug()
        ));
    }
    match mailbox.rsplit_once('<') {
        Some((name, rest)) => {
            let address = rest
                .strip_suffix('>')
                .ok_or_else(|| format!("`{mailbox}` has no closing `>`"))?;
            if name.trim().is_empty() {
                return Err(format!("`{mailbox}` has `<>` but no name before it"));
            }
            check_email(address.trim())?;
        }
        None => check_email(mailbox)?,
    }
    mailbox
        .parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|_| {
            format!(
                "`{mailbox}` is not a sender mail can carry: a name with a comma, a colon or a dot must be in double quotes"
            )
        })
}

pub(super) fn check_github_repository(repo: &str) -> Result<(), String> {
    let valid_part = |part: &str, max: usize| {
        !part.is_empty()
            && part.len() <= max
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if valid_part(owner, 39) && valid_part(name, 100) => Ok(()),
        _ => Err(format!("`{repo}` is not a GitHub repository")),
    }
}

fn check_link_lifetime(text: &str) -> Result<u64, String> {
    let seconds = parse_duration(text)?;
    if !(60..=365 * 86_400).contains(&seconds) {
        return Err(format!("`{text}` is outside 1m to 365d"));
    }
    Ok(seconds)
}

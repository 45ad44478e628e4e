//! `shop.toml`: the store's settings, with no secrets in it.
//!
//! [`parse`] turns the file's text into [`Settings`], applying the
//! [`Overrides`] that flags and environment variables give (flags win over the
//! environment, which wins over the file, which wins over the defaults).

mod read;

pub use read::parse;

use std::path::PathBuf;

use super::money::Currency;
use super::values::StampMode;

/// The default lifetime of a download link.
pub const DEFAULT_LINK_LIFETIME: &str = "7d";
/// Where `shop serve` listens and links point unless told otherwise.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
/// The mail outbox of the `file` transport, relative to the store.
pub const DEFAULT_OUTBOX: &str = ".shop/outbox";

/// The store's settings, checked and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The shop's name, shown on pages and in emails.
    pub name: String,
    /// A short text for the store front, in Markdown.
    pub about: Option<String>,
    /// The public base URL of `shop serve`, without a trailing slash.
    pub base_url: String,
    pub support_email: String,
    /// The currency of products that do not name one.
    pub currency: Currency,
    pub download_limit: u32,
    /// How long a download link stays valid, in seconds.
    pub link_lifetime: u64,
    /// The private GitHub repository holding release assets, as
    /// `owner/name`; `None` keeps files in the store's local files folder.
    pub github_repository: Option<String>,
    pub mail: MailSettings,
    pub serve: ServeSettings,
    pub stamp: StampSettings,
    pub tax: TaxSettings,
    /// The buyer's consent to the terms and the waiver of the right of
    /// withdrawal, asked at checkout; `None` asks nothing.
    pub consent: Option<ConsentSettings>,
    pub refunds: RefundSettings,
    pub audience: AudienceSettings,
    /// `gifts = true`: each release also sells through a gift's payment
    /// link, and the pages offer "Give as a gift" beside Buy.
    pub gifts: bool,
}

/// `[audience]`: who hears the author's posts beyond followers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudienceSettings {
    pub buyers: AudienceBuyers,
    /// `checkout_consent = true`: Stripe Checkout shows US buyers a box to
    /// get the author's news (`consent_collection[promotions]=auto`, which
    /// Stripe offers US accounts only); a ticked box counts as opting in.
    pub checkout_consent: bool,
}

/// Whether buyers get posts (`shop post --to buyers`). Receipts and
/// update notices are transactional and go regardless.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AudienceBuyers {
    /// Only buyers who follow (confirmed their address): the consent the
    /// EU's rules ask for.
    #[default]
    OptIn,
    /// Every buyer in good standing (where the author's law allows mail
    /// to customers about similar products without asking).
    All,
    /// None.
    None,
}

impl Settings {
    /// The `tax_behavior` of the store's prices: only with Stripe Tax on.
    pub fn tax_behavior(&self) -> Option<&'static str> {
        self.tax.automatic.then(|| self.tax.prices.as_str())
    }
}

/// `[tax]`: what Stripe computes and issues at checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaxSettings {
    /// Stripe Tax adds (or finds in the price) the tax of the buyer's place.
    pub automatic: bool,
    /// Whether prices already hold the tax; meaningful with `automatic`.
    pub prices: TaxBehavior,
    /// Business buyers may give a VAT or other tax ID.
    pub tax_id_collection: bool,
    /// Stripe issues an invoice (a number and a PDF) for each purchase.
    pub invoices: bool,
    /// The product tax code of products without their own `tax_code`.
    pub default_code: Option<String>,
}

/// A price's `tax_behavior` at Stripe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaxBehavior {
    /// Tax is added on top of the price at checkout (common in the US).
    #[default]
    Exclusive,
    /// The price holds the tax; the buyer pays the same everywhere (the
    /// EU's rule for consumers).
    Inclusive,
}

impl TaxBehavior {
    /// Stripe's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxBehavior::Exclusive => "exclusive",
            TaxBehavior::Inclusive => "inclusive",
        }
    }
}

/// `[consent]`: the box the buyer ticks before paying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentSettings {
    /// The author's terms of sale.
    pub terms_url: String,
    /// The text beside the box (Markdown links allowed), with the terms'
    /// address in place of `{terms_url}`.
    pub waiver: String,
}

/// `[refunds]`: what a buyer who uses the withdrawal function gets beyond
/// the law's 14 days (`crate::withdrawal` decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSettings {
    /// Any purchase is refunded within this many days, downloaded or not.
    pub self_service_days: Option<u32>,
    /// Every request goes to the author instead of being refunded.
    pub review: bool,
    /// The words of the withdrawal link on every page and mail of a purchase.
    pub link_text: String,
}

impl Default for RefundSettings {
    fn default() -> Self {
        RefundSettings {
            self_service_days: None,
            review: false,
            link_text: DEFAULT_WITHDRAW_TEXT.to_owned(),
        }
    }
}

/// The withdrawal link's words: the directive's model ("withdraw from
/// contract here"), said to a reader.
pub const DEFAULT_WITHDRAW_TEXT: &str = "Withdraw from this purchase";

/// The default text beside the consent box: the terms, and the waiver the
/// EU asks of a buyer of digital content delivered at once.
pub const DEFAULT_WAIVER: &str = "I agree to the [terms of sale]({terms_url}). I ask for \
     the download to be available at once and understand that I thereby lose my right \
     of withdrawal.";

/// Stamped copies, for products that do not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampSettings {
    pub default: StampMode,
    /// The visible line: `{email}`, `{name}`, `{order}`, `{date}`.
    pub text: String,
}

impl Default for StampSettings {
    fn default() -> Self {
        StampSettings {
            default: StampMode::Off,
            text: super::values::DEFAULT_STAMP_TEXT.to_owned(),
        }
    }
}

/// How `shop serve` treats its visitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// How long after a purchase `/thanks` still opens its download page,
    /// in seconds; later visitors are sent to `/lost`.
    pub thanks_window: u64,
    /// Reverse proxies whose `X-Forwarded-For` and `Forwarded` headers are
    /// believed: the client is the last address before them. Empty: the
    /// TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `state`: the PostgreSQL database that several servers share, as a
    /// URL without a password (that goes in `SHOP_STATE_URL`). None: the
    /// SQLite file `.shop/state.db`.
    pub state: Option<String>,
    /// What one client may ask of the server.
    pub limits: Limits,
    /// `stamped_cache`: the bytes of buyers' stamped copies kept on disk
    /// (the oldest copies beyond it are removed, and made again when
    /// asked for).
    pub stamped_cache: u64,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            thanks_window: DEFAULT_THANKS_WINDOW,
            trusted_proxies: Vec::new(),
            state: None,
            limits: Limits::default(),
            stamped_cache: DEFAULT_STAMPED_CACHE,
        }
    }
}

/// The disk kept for stamped copies unless `stamped_cache` says: 2 GiB.
pub const DEFAULT_STAMPED_CACHE: u64 = 2 * 1024 * 1024 * 1024;

/// How often one client may ask for what costs the shop a call to Stripe
/// or a mail, and how many connections it may hold open. A client is an
/// IPv4 address or an IPv6 /64, and many buyers can share one (a mobile
/// carrier's NAT, an office, a campus, everyone who clicked one post on
/// launch day), so the defaults are generous: they stop a flood from one
/// place, not a crowd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `thanks_limit`: thank-you pages (each asks Stripe for the session).
    pub thanks: Rate,
    /// `checkout_limit`: checkouts the server makes at Stripe itself (an
    /// upgrade code's); a plain Buy goes to the payment link and costs
    /// the server nothing.
    pub checkout: Rate,
    /// `lost_limit`: lost-link requests (each address may also ask only
    /// three times an hour, whoever asks).
    pub lost: Rate,
    /// `connections_per_client`: connections open at once.
    pub connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            thanks: Rate::new(120, Per::Minute),
            checkout: Rate::new(60, Per::Minute),
            lost: Rate::new(60, Per::Hour),
            connections: 256,
        }
    }
}

/// At most `count` requests per second, minute or hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Per,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl Rate {
    pub const fn new(count: u32, per: Per) -> Rate {
        Rate { count, per }
    }

    /// The window's length in seconds.
    pub fn seconds(&self) -> u64 {
        match self.per {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3_600,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = match self.per {
            Per::Second => "second",
            Per::Minute => "minute",
            Per::Hour => "hour",
        };
        write!(f, "{}/{per}", self.count)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `60/minute`, `3/hour`, `10/second` (or `/s`, `/m`, `/h`).
    fn from_str(text: &str) -> Result<Rate, String> {
        let invalid = || format!("`{text}` is not a rate");
        let (count, per) = text.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let per = match per.trim() {
            "second" | "s" => Per::Second,
            "minute" | "m" | "min" => Per::Minute,
            "hour" | "h" => Per::Hour,
            _ => return Err(invalid()),
        };
        if count == 0 || count > 1_000_000 {
            return Err(format!("`{text}` is outside 1 to 1000000 a {per:?}").to_lowercase());
        }
        Ok(Rate { count, per })
    }
}

/// How long `/thanks` opens a purchase's download page: an hour.
pub const DEFAULT_THANKS_WINDOW: u64 = 3_600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The `From:` of every message, `Name <address>` or a bare address.
    pub from: String,
    pub transport: MailTransport,
}

/// How mail leaves the shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// Each message is written as an `.eml` file into this folder (relative
    /// paths are under the store): nothing leaves the machine.
    File { outbox: PathBuf },
    /// An SMTP server; the password comes from `SHOP_SMTP_PASSWORD`.
    Smtp {
        host: String,
        port: u16,
        security: SmtpSecurity,
        user: Option<String>,
    },
    /// A local `sendmail`-compatible program.
    Sendmail { command: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a server on this machine.
    None,
}

/// Values from flags and the environment that win over `shop.toml`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub base_url: Option<String>,
    pub github_repository: Option<String>,
    pub mail_transport: Option<String>,
}

/// Parses a duration such as `30m`, `48h`, `7d` or `1d12h` (humantime's
/// units, `s` to `y`) into whole seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || format!("`{text}` is not a duration");
    let duration = humantime::parse_duration(text.trim()).map_err(|_| invalid())?;
    if duration.subsec_nanos() != 0 || duration.is_zero() {
        return Err(invalid());
    }
    Ok(duration.as_secs())
}

/// A plain email address: one `@`, a local part, a dotted domain (or
/// `localhost`), no spaces or angle brackets.
pub(crate) fn check_email(address: &str) -> Result<(), String> {
    let valid = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && (domain.contains('.') || domain == "localhost")
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ',')
    });
    if valid {
        Ok(())
    } else {
        Err(format!("`{address}` is not an email address"))
    }
}

/// `Name <address>`, with the name quoted where mail needs it (a comma, a
/// colon or a dot in it would otherwise end it): what the mail library
/// writes, so it reads it back.
pub fn mailbox(name: &str, address: &str) -> String {
    match address.parse() {
        Ok(address) => lettre::message::Mailbox::new(Some(name.to_owned()), address).to_string(),
        Err(_) => format!("{name} <{address}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::read::check_github_repository;
    use super::*;

    const MINIMAL: &str = "name = \"Books\"\nsupport_email = \"help@example.com\"\n";

    fn check(text: &str, overrides: &Overrides, expected: &[&str]) {
        match parse(text, overrides) {
            Ok(settings) => assert!(
                expected.is_empty(),
                "parsed {settings:?}, wanted {expected:?}"
            ),
            Err(problems) => {
                let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
                assert_eq!(shown.len(), expected.len(), "{shown:#?}");
                for (shown, expected) in shown.iter().zip(expected) {
                    assert!(
                        shown.contains(expected),
                        "{shown}\n  does not contain\n{expected}"
                    );
                    assert!(shown.contains("\nhint: "), "{shown}");
                }
            }
        }
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let settings = parse(MINIMAL, &Overrides::default()).unwrap();
        assert_eq!(settings.base_url, DEFAULT_BASE_URL);
        assert_eq!(settings.currency.code(), "usd");
        assert_eq!(settings.download_limit, 5);
        assert_eq!(settings.link_lifetime, 7 * 86_400);
        assert_eq!(settings.github_repository, None);
        assert_eq!(settings.mail.from, "Books <help@example.com>");
        assert_eq!(
            settings.mail.transport,
            MailTransport::File {
                outbox: PathBuf::from(".shop/outbox")
            }
        );
    }

    #[test]
    fn overrides_win_over_the_file() {
        let text =
            format!("{MINIMAL}base_url = \"https://a.example\"\n[github]\nrepository = \"a/b\"\n");
        let overrides = Overrides {
            base_url: Some("https://b.example/".into()),
            github_repository: Some("c/d".into()),
            mail_transport: Some("sendmail".into()),
        };
        let settings = parse(&text, &overrides).unwrap();
        assert_eq!(settings.base_url, "https://b.example");
        assert_eq!(settings.github_repository.as_deref(), Some("c/d"));
        assert!(matches!(
            settings.mail.transport,
            MailTransport::Sendmail { .. }
        ));
    }

    #[test]
    fn tax_and_consent_are_checked_and_become_checkout_options() {
        let base = "name = \"Books\"\nsupport_email = \"a@example.com\"\n";
        let long = "x".repeat(1201);
        check(
            &format!("{base}[tax]\nprices = \"gross\"\n[consent]\nterms_url = \"terms.html\"\n"),
            &Overrides::default(),
            &[
                "`shop.toml` line 4, column 10: `gross` is not a way of pricing tax",
                "`shop.toml` line 6, column 13: `terms.html` is not a web address",
            ],
        );
        check(
            &format!("{base}[consent]\nwaiver = \"I agree.\"\n"),
            &Overrides::default(),
            &["`[consent]` has no `terms_url`"],
        );
        check(
            &format!("{base}[consent]\nterms_url = \"https://b.example/t\"\nwaiver = \"{long}\"\n"),
            &Overrides::default(),
            &["`waiver` is 1201 characters; Stripe shows at most 1200"],
        );
        let settings = parse(
            &format!(
                "{base}[tax]\nautomatic = true\nprices = \"inclusive\"\ninvoices = true\n\
                 [consent]\nterms_url = \"https://b.example/t\"\nwaiver = \"See [terms]({{terms_url}}).\"\n"
            ),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(settings.tax_behavior(), Some("inclusive"));
        assert!(settings.tax.automatic && settings.tax.invoices);
        assert_eq!(
            settings.consent.map(|consent| consent.waiver),
            Some("See [terms](https://b.example/t).".into())
        );
        let plain = parse(base, &Overrides::default()).unwrap();
        assert_eq!(plain.tax_behavior(), None);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "name = \"Books\"\n\
                    support_email = \"nobody\"\n\
                    currency = \"xyz\"\n\
                    download_limit = 0\n\
                    link_lifetime = \"forever\"\n\
                    base_url = \"ftp://x\"\n";
        check(
            text,
            &Overrides::default(),
            &[
                "`shop.toml` line 6, column 12: `ftp://x` is not an http or https URL",
                "`shop.toml` line 2, column 17: `nobody` is not an email address",
                "`shop.toml` line 3, column 12: `xyz` is not a currency",
                "`shop.toml` line 4, column 18: `0` is not a download limit",
                "`shop.toml` line 5, column 17: `forever` is not a duration",
            ],
        );
    }

    #[test]
    fn a_base_url_that_would_need_escaping_and_a_sender_mail_cannot_carry_are_refused() {
        let text = format!(
            "{MINIMAL}base_url = \"https://books.example/\\\"><script>\"\n[mail]\nfrom = \"Books, Inc. <b@example.com>\"\n[serve]\nthanks_limit = \"many\"\nstamped_cache = \"2 lots\"\n"
        );
        check(
            &text,
            &Overrides::default(),
            &[
                "is not a base URL (it has characters a URL must escape)",
                "`Books, Inc. <b@example.com>` is not a sender mail can carry",
                "`many` is not a rate",
                "`2 lots` is not a size",
            ],
        );
        let settings = parse(
            &format!(
                "{MINIMAL}[serve]\nthanks_limit = \"10/s\"\nlost_limit = \"5/hour\"\nconnections_per_client = 8\nstamped_cache = \"500 MB\"\n"
            ),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(settings.serve.limits.thanks, Rate::new(10, Per::Second));
        assert_eq!(settings.serve.limits.lost, Rate::new(5, Per::Hour));
        assert_eq!(settings.serve.limits.connections, 8);
        assert_eq!(settings.serve.stamped_cache, 500_000_000);
        // The default sender is quoted when the name needs it.
        assert_eq!(
            mailbox("Books, Inc.", "b@example.com"),
            "\"Books, Inc.\" <b@example.com>"
        );
    }

    #[test]
    fn a_bad_override_names_its_variable() {
        let overrides = Overrides {
            base_url: Some("not a url".into()),
            ..Overrides::default()
        };
        check(
            MINIMAL,
            &overrides,
            &["`--base-url / SHOP_BASE_URL`: `not a url` is not an http"],
        );
    }

    #[test]
    fn smtp_needs_a_host_and_a_known_security() {
        let text =
            format!("{MINIMAL}[mail]\ntransport = \"smtp\"\n[mail.smtp]\nsecurity = \"ssl\"\n");
        check(
            &text,
            &Overrides::default(),
            &[
                "`mail.smtp.host` is not set",
                "`ssl` is not an SMTP security mode",
            ],
        );
        let text = format!(
            "{MINIMAL}[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"mx\"\nsecurity = \"tls\"\n"
        );
        let settings = parse(&text, &Overrides::default()).unwrap();
        assert_eq!(
            settings.mail.transport,
            MailTransport::Smtp {
                host: "mx".into(),
                port: 465,
                security: SmtpSecurity::Tls,
                user: None
            }
        );
    }

    /// A URL in `shop.toml` is committed: one with a password is refused.
    #[test]
    fn a_shared_state_is_a_postgres_url_without_a_password() {
        check(
            &format!("{MINIMAL}[serve]\nstate = \"postgres://shop:hunter2@db/shop\"\n"),
            &Overrides::default(),
            &["`state` holds a password, which would be committed with `shop.toml`"],
        );
        let text = format!("{MINIMAL}[serve]\nstate = \"postgres://shop:hunter2@db/shop\"\n");
        let shown = parse(&text, &Overrides::default()).unwrap_err()[0].to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        check(
            &format!("{MINIMAL}[serve]\nstate = \"mysql://db/shop\"\n"),
            &Overrides::default(),
            &["`mysql://db/shop` is not a PostgreSQL URL"],
        );
        let text =
            format!("{MINIMAL}[serve]\nstate = \"postgresql://shop@db.internal:5433/shop\"\n");
        let settings = parse(&text, &Overrides::default()).unwrap();
        assert_eq!(
            settings.serve.state.as_deref(),
            Some("postgresql://shop@db.internal:5433/shop")
        );
        let settings = parse(MINIMAL, &Overrides::default()).unwrap();
        assert_eq!(settings.serve.state, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        check(
            &format!("{MINIMAL}currncy = \"usd\"\n"),
            &Overrides::default(),
            &["unknown field `currncy`"],
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30m"), Ok(1_800));
        assert_eq!(parse_duration("1d12h"), Ok(129_600));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400));
        assert!(parse_duration("1500ms").is_err(), "whole seconds only");
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn github_repositories_are_owner_slash_name() {
        assert!(check_github_repository("author/book-assets").is_ok());
        assert!(check_github_repository("author").is_err());
        assert!(check_github_repository("a/b/c").is_err());
        assert!(check_github_repository("../x").is_err());
    }
}

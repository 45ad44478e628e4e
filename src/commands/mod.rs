//! One file per subcommand, each with its `Args` and its `run`; this file only
//! dispatches and holds what they share: the resolved [`Context`] and the
//! terminal [`Output`].
//!
//! Architecture invariant: `commands` is the only module that knows about
//! clap, the terminal and the process environment. It turns flags and
//! environment variables into plain values and hands them down.

pub mod checkout;
pub mod completions;
pub mod find;
pub mod followers;
pub mod grant;
pub mod init;
pub mod notify;
pub mod post;
pub mod products;
pub mod refund;
pub mod release;
pub mod report;
pub mod sandbox;
pub mod serve;
pub mod sync;
pub mod token;
pub mod trace;
pub mod withdrawals;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::ResultExt as _;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::Registered;
use crate::github::GitHub;
use crate::secret::{Secret, SecretError};
use crate::state::{Db, Location, postgres};
use crate::store::{Overrides, Store, settings};
use crate::stripe::{Client, RetryPolicy};
use crate::tokens::Key;
use crate::{cli, error, fault, git, github, net, printable, state, store, stripe, tokens};

/// A usage error found after parsing (clap reports its own): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: String,
}

impl UsageError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

inventory::submit!(Registered::of::<UsageError>());

impl error::Hint for UsageError {
    fn hint(&self) -> String {
        self.hint.clone()
    }
}

/// Parses the arguments and runs the chosen subcommand.
/// The folders whose files shop commits.
const SHOPS_PATHS: &[&str] = &["products", "purchases", crate::notify::DIR];

pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // clap prints its own usage errors and help, and exits 2 or 0.
    let matches = cli::command().get_matches_from(args);
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    // The server and the sandbox say what they do by default.
    let talkative = matches!(cli.command, Command::Serve(_) | Command::Sandbox(_));
    init_tracing(&cli.global, talkative);
    // Test builds only: stop at a named crash point (see `crate::fault`).
    if cfg!(debug_assertions)
        && let Ok(spec) = std::env::var("SHOP_FAULT")
    {
        fault::arm(&spec);
    }
    let context = Context::new(cli.global)?;
    match cli.command {
        Command::Init(args) => init::run(&context, args),
        Command::Products(args) => products::run(&context, args),
        Command::Release(args) => release::run(&context, args),
        Command::Preorder(args) => release::preorder(&context, args),
        Command::Checkout(args) => checkout::run(&context, args),
        Command::Sync(args) => sync::run(&context, args),
        Command::Notify(args) => notify::run(&context, args),
        Command::Serve(args) => serve::run(&context, args),
        Command::Sandbox(args) => sandbox::run(&context, args),
        Command::Report(args) => report::run(&context, args),
        Command::Grant(args) => grant::run(&context, args),
        Command::Token(args) => token::run(&context, args),
        Command::Find(args) => find::run(&context, args),
        Command::Refund(args) => refund::run(&context, args),
        Command::Withdrawals(args) => withdrawals::run(&context, args),
        Command::Post(args) => post::run(&context, args),
        Command::Followers(args) => followers::run(&context, args),
        Command::Trace(args) => trace::run(&context, args),
        Command::Completions(args) => completions::run(&context, args),
        Command::Man(args) => completions::man(&context, args),
    }
}

fn init_tracing(global: &GlobalArgs, talkative: bool) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) if talkative => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SHOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("shop={level}")));
    // The HTTP libraries log request paths and headers at their lower
    // levels, download tokens among them: never below `warn`, whatever
    // `SHOP_LOG` asks.
    for quiet in ["warp=warn", "hyper=warn", "hyper_util=warn"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    use std::io::IsTerminal as _;
    let colour = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

/// What every subcommand gets: where the store is, how to talk to the
/// terminal, and the settings that flags and the environment override.
#[derive(Debug)]
pub struct Context {
    pub store_dir: PathBuf,
    pub output: Output,
    pub overrides: Overrides,
    pub global: GlobalArgs,
}

impl Context {
    fn new(global: GlobalArgs) -> anyhow::Result<Self> {
        let store_dir = match &global.store {
            Some(dir) => dir.clone(),
            None => {
                let here = std::env::current_dir().context_hint(
                    "cannot read the current directory",
                    "run shop from a folder that exists, or pass `--store DIR`",
                )?;
                // As git finds its repository: the nearest folder up with
                // a shop.toml, else here (where `shop init` would make one).
                here.ancestors()
                    .find(|dir| dir.join(store::SETTINGS_FILE).is_file())
                    .map_or_else(|| here.clone(), Path::to_path_buf)
            }
        };
        let overrides = Overrides {
            base_url: global.base_url.clone(),
            github_repository: global.github_repository.clone(),
            mail_transport: global.mail_transport.clone(),
        };
        let output = Output {
            quiet: global.quiet,
            json: global.json,
        };
        Ok(Context {
            store_dir,
            output,
            overrides,
            global,
        })
    }

    /// Opens the store, with flags and environment applied over shop.toml.
    pub fn open_store(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.store_dir, &self.overrides)?)
    }

    /// The store, for a command that commits to it: first, git's index is
    /// brought up to date for shop's own files where a run killed between
    /// its commit and the index left it behind `HEAD` (said in one line).
    pub fn open_store_to_commit(&self) -> anyhow::Result<Store> {
        let store = self.open_store()?;
        let repo = git::open(&store.root)?;
        let repaired = git::repair_index(&repo, SHOPS_PATHS)?;
        if repaired > 0 {
            self.output.note(format!(
                "repaired git's index for {} that lagged behind shop's last commit (a run had \
                 stopped in between)",
                store::count(repaired, "file")
            ));
        }
        Ok(store)
    }

    /// A Stripe client with the key from `STRIPE_SECRET_KEY` (or
    /// `STRIPE_API_KEY`) for the API at `--stripe-api-base`.
    pub fn stripe(&self) -> anyhow::Result<stripe::Client> {
        let key = match secret_from_env("STRIPE_SECRET_KEY")? {
            Some(key) => key,
            None => secret_from_env("STRIPE_API_KEY")?.ok_or_else(|| {
                error::hinted(
                    "`STRIPE_SECRET_KEY` is not set",
                    "export STRIPE_SECRET_KEY=sk_test_… from https://dashboard.stripe.com/apikeys, \
                     or run `shop sandbox` and export what it prints",
                )
            })?,
        };
        let retry = stripe::RetryPolicy {
            max_attempts: self.global.stripe_attempts,
            ..RetryPolicy::default()
        };
        Ok(Client::new(&self.global.stripe_api_base, key)?.with_retry(retry))
    }

    /// A GitHub client for `repository` with the token from `GITHUB_TOKEN`.
    pub fn github(&self, repository: &str) -> anyhow::Result<github::GitHub> {
        let token = secret_from_env("GITHUB_TOKEN")?.ok_or_else(|| {
            error::hinted(
                format!(
                    "`GITHUB_TOKEN` is not set, and the store keeps its files in `{repository}`"
                ),
                "export GITHUB_TOKEN with a token that can write releases there, or empty \
                 `github.repository` in shop.toml to keep files in .shop/files",
            )
        })?;
        Ok(GitHub::new(
            repository,
            token,
            &self.global.github_api_base,
            &self.global.github_uploads_base,
        )?)
    }
}

/// The download-token keys: `SHOP_TOKEN_SECRET` signs, and with it
/// `SHOP_TOKEN_SECRET_PREVIOUS` (after a rotation) still verifies.
pub(crate) fn token_keys() -> anyhow::Result<Vec<tokens::Key>> {
    let current = secret_from_env("SHOP_TOKEN_SECRET")?.ok_or_else(|| {
        error::hinted(
            "`SHOP_TOKEN_SECRET` is not set",
            "it signs download links; export SHOP_TOKEN_SECRET=$(openssl rand -hex 32) and keep it",
        )
    })?;
    if current.expose().len() < 32 {
        return Err(error::hinted(
            "`SHOP_TOKEN_SECRET` is shorter than 32 characters",
            "use `openssl rand -hex 32`",
        ));
    }
    let mut keys = vec![Key::new(current)];
    if let Some(previous) = secret_from_env("SHOP_TOKEN_SECRET_PREVIOUS")? {
        keys.push(Key::new(previous));
    }
    Ok(keys)
}

/// The release of `version`, or the latest, of `product`; an error saying
/// which are released otherwise.
pub(crate) fn chosen_release<'a>(
    product: &'a store::Product,
    version: Option<&semver::Version>,
) -> anyhow::Result<&'a store::Release> {
    match version {
        Some(version) => product.release(version).ok_or_else(|| {
            error::hinted(
                format!("`{}` has no release `{version}`", product.slug),
                format!("the released versions are {}", released(product)),
            )
        }),
        // The version on sale (a first edition's pre-order if nothing is).
        None => product
            .on_sale()
            .or_else(|| product.preorder())
            .ok_or_else(|| {
                error::hinted(
                    format!("`{}` has not been released yet", product.slug),
                    format!(
                        "run `shop release {} <version> <files>` first",
                        product.slug
                    ),
                )
            }),
    }
}

fn released(product: &store::Product) -> String {
    let versions: Vec<String> = product
        .releases
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    if versions.is_empty() {
        "none yet".to_owned()
    } else {
        store::quoted_list(&versions)
    }
}

/// A progress style's `{rate}`: whole items a second, `1657/s`
/// (indicatif's own `{per_sec}` prints four decimals).
pub(crate) fn with_rate(style: indicatif::ProgressStyle) -> indicatif::ProgressStyle {
    style.with_key(
        "rate",
        |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.0}/s", state.per_sec());
        },
    )
}

/// Where the server's state is: the PostgreSQL database of
/// `SHOP_STATE_URL` (or its `_FILE`), else of `[serve] state` in
/// `shop.toml`, else the SQLite file `.shop/state.db` in the store.
pub(crate) fn state_location(store: &store::Store) -> anyhow::Result<state::Location> {
    let url = match secret_from_env("SHOP_STATE_URL")? {
        Some(url) => Some(url),
        None => match &store.settings.serve.state {
            Some(url) => Some(Secret::new("state", url.clone())?),
            None => None,
        },
    };
    Ok(match url {
        Some(url) => {
            // A URL that is not one fails now, before anything starts.
            postgres::parse_url(&url)?;
            Location::Postgres(url)
        }
        None => Location::Sqlite(store.root.join(".shop").join("state.db")),
    })
}

/// Opens (or creates) the server's state for a command run beside the
/// server.
pub(crate) fn open_state(store: &store::Store) -> anyhow::Result<state::Db> {
    let location = state_location(store)?;
    Ok(block_on(Db::open(&location))??)
}

/// Opens the server's state for a command run beside the server; `None`
/// when it is a SQLite file no server has made yet. (A PostgreSQL
/// connection opened on one runtime is dropped with it; the pool opens
/// another on the next.)
pub(crate) fn existing_state(store: &store::Store) -> anyhow::Result<Option<state::Db>> {
    let location = state_location(store)?;
    if let Location::Sqlite(path) = &location
        && !path.exists()
    {
        return Ok(None);
    }
    Ok(Some(block_on(Db::open(&location))??))
}

/// What the server's state holds for the ledger (its withdrawals and the
/// free samples it gave, as the ledger keeps them; `None` where there is
/// no state), for `shop sync`.
pub(crate) fn from_state(store: &store::Store) -> anyhow::Result<Option<crate::sync::FromState>> {
    let Some(db) = existing_state(store)? else {
        return Ok(None);
    };
    let withdrawals = block_on(db.withdrawals())??;
    let samples = block_on(db.purchases_starting(crate::ledger::SAMPLE_PREFIX))??
        .iter()
        .map(|sample| {
            let currency = store.product(&sample.product).map_or_else(
                |_| store.settings.currency,
                |product| product.price.currency,
            );
            sample.as_sample(currency.code())
        })
        .collect();
    Ok(Some(crate::sync::FromState {
        withdrawals: withdrawals.iter().map(Into::into).collect(),
        samples,
    }))
}

/// Now, or the time in `SHOP_NOW` (Unix seconds or RFC 3339), which end-to-end
/// tests set to pin dates.
pub(crate) fn now() -> anyhow::Result<time::OffsetDateTime> {
    match std::env::var("SHOP_NOW") {
        Ok(text) if !text.is_empty() => {
            if let Ok(seconds) = text.parse::<i64>() {
                return time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| {
                    error::hinted(
                        "`SHOP_NOW` is out of range",
                        "give Unix seconds or an RFC 3339 time",
                    )
                });
            }
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    error::hinted(
                        format!("`SHOP_NOW` is not a time: `{text}`"),
                        "give Unix seconds or an RFC 3339 time",
                    )
                })
        }
        _ => Ok(time::OffsetDateTime::now_utc()),
    }
}

/// Where a subcommand's words go: data to stdout, progress and notes to
/// stderr (silenced by `--quiet`).
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub quiet: bool,
    pub json: bool,
}

impl Output {
    /// A note for the person at the terminal.
    pub fn note(&self, message: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "{}", message.as_ref());
        }
    }

    /// Data: what a script would read. Errors here (a closed pipe) propagate.
    pub fn data(&self, text: impl AsRef<str>) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(text.as_ref().as_bytes())?;
        stdout.flush()
    }

    /// Data as pretty JSON followed by a newline.
    pub fn json(&self, value: &serde_json::Value) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
        text.push('\n');
        self.data(text)
    }
}

/// Reads a secret from the environment variable `name`, or from the file
/// named by `{name}_FILE`. The variable wins when both are set.
pub(crate) fn secret_from_env(name: &str) -> Result<Option<Secret>, SecretError> {
    secret_from(name, |key| std::env::var_os(key))
}

fn secret_from(
    name: &str,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<Secret>, SecretError> {
    if let Some(value) = lookup(name).filter(|value| !value.is_empty()) {
        let value = value
            .into_string()
            .map_err(|_| SecretError::NotUtf8 { name: name.into() })?;
        return Secret::new(name, value).map(Some);
    }
    let file_var = format!("{name}_FILE");
    match lookup(&file_var).filter(|value| !value.is_empty()) {
        Some(path) => Secret::from_file(name, Path::new(&path)).map(Some),
        None => Ok(None),
    }
}

/// Runs `future` to completion on a new multi-threaded runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    net::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context_hint(
            "cannot start the async runtime",
            "the system refused threads or file descriptors; check `ulimit -u` and `ulimit -n`",
        )?;
    Ok(runtime.block_on(future))
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Left-aligned columns separated by two spaces; every cell printable
/// (a cell may hold what a visitor or buyer wrote: `printable`).
pub(crate) fn table<R: AsRef<[String]>>(header: &[String], rows: &[R]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.as_ref()
                .iter()
                .map(|cell| printable::printable(cell).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index + 1 == header.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// clap value parser for a semantic version.
pub(crate) fn parse_version(text: &str) -> Result<semver::Version, String> {
    semver::Version::parse(text)
        .map_err(|error| format!("`{text}` is not a semantic version ({error}); write `1.2.0`"))
}

/// clap value parser for a duration such as `30m` or `24h`.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    settings::parse_duration(text)
        .map_err(|message| format!("{message}; write `30m`, `24h` or `7d`"))
}

/// clap value parser for a duration as a `Duration`.
pub(crate) fn parse_duration_std(text: &str) -> Result<std::time::Duration, String> {
    parse_duration(text).map(std::time::Duration::from_secs)
}

/// clap value parser for a day: `YYYY-MM-DD`.
pub(crate) fn parse_date(text: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map_err(|_| format!("`{text}` is not a date; write `2026-11-23`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn secret_comes_from_the_variable_first() {
        let secret = secret_from(
            "STRIPE_SECRET_KEY",
            env(&[("STRIPE_SECRET_KEY", "sk_test_1")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(secret.expose(), "sk_test_1");
    }

    #[test]
    fn secret_comes_from_the_file_when_the_variable_is_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk_test_from_file\n").unwrap();
        let path = path.to_str().unwrap();
        let secret = secret_from(
            "STRIPE_SECRET_KEY",
            env(&[("STRIPE_SECRET_KEY_FILE", path)]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(secret.expose(), "sk_test_from_file");
    }

    #[test]
    fn missing_secret_file_names_the_variable_not_the_value() {
        let error = secret_from(
            "SHOP_TOKEN_SECRET",
            env(&[("SHOP_TOKEN_SECRET_FILE", "/nonexistent/secret")]),
        )
        .unwrap_err();
        let error = crate::error::render(&error.into());
        assert_eq!(
            error,
            "cannot read `SHOP_TOKEN_SECRET_FILE` (`/nonexistent/secret`): \
             No such file or directory (os error 2)\n\
             hint: point `SHOP_TOKEN_SECRET_FILE` at a readable file, or set `SHOP_TOKEN_SECRET` itself"
        );
    }

    #[test]
    fn tables_align_their_columns() {
        let header = ["A".to_owned(), "B".to_owned()];
        let rows = [
            ["long".to_owned(), "x".to_owned()],
            ["s".to_owned(), "y".to_owned()],
        ];
        assert_eq!(table(&header, &rows), "A     B\nlong  x\ns     y\n");
    }

    #[test]
    fn unset_secret_is_none() {
        assert!(secret_from("GITHUB_TOKEN", env(&[])).unwrap().is_none());
    }
}

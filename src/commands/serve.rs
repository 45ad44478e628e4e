//! `shop serve`: the web server buyers see after paying.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::ResultExt as _;

use super::Context;
use crate::mail::{Mailer, Templates};
use crate::secret::Secret;
use crate::server::views::Views;
use crate::server::{self, App, Files};
use crate::state::{Db, Location};
use crate::{error, state, store};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Secrets: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, SHOP_TOKEN_SECRET \
                        (and SHOP_TOKEN_SECRET_PREVIOUS after a rotation), GITHUB_TOKEN, \
                        SHOP_SMTP_PASSWORD, SHOP_STATE_URL (a PostgreSQL database several servers share); \
                        each may instead name a file in <NAME>_FILE."
)]
pub struct Args {
    /// The address to listen on (unless the system manager passes a bound
    /// socket: systemd socket activation, `LISTEN_FDS`)
    #[arg(
        long,
        env = "SHOP_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// How long a client may take to send a request's head
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = super::parse_duration_std)]
    pub header_timeout: std::time::Duration,

    /// How long a keep-alive connection may stay idle between requests
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = super::parse_duration_std)]
    pub idle_timeout: std::time::Duration,

    /// Copy the state of this store's server (`.shop/state.db`) into the
    /// empty PostgreSQL database at URL, verify it and stop, instead of
    /// serving; stop the running server first. Without URL, the database
    /// of `SHOP_STATE_URL` (a password there is not shown by `ps`). Then
    /// start the servers with the same URL in `SHOP_STATE_URL`
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub migrate_state_to: Option<String>,

    /// Not a flag of `shop serve` (`--listen` takes the address): here to
    /// say so
    #[arg(long, hide = true, value_name = "PORT")]
    pub port: Option<String>,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    if let Some(port) = &args.port {
        return Err(super::UsageError::new(
            "`shop serve` has no `--port`: it listens on an address".to_owned(),
            format!(
                "give `--listen 127.0.0.1:{port}` (or `--listen 0.0.0.0:{port}` behind a proxy), and a `base_url` that reaches it"
            ),
        )
        .into());
    }
    let store = context.open_store()?;
    if let Some(url) = &args.migrate_state_to {
        return migrate_state(context, &store, url);
    }
    let stripe = context.stripe()?;
    let keys = super::token_keys()?;
    let webhook_secret = super::secret_from_env("STRIPE_WEBHOOK_SECRET")?;
    if webhook_secret.is_none() {
        context.output.note(
            "warning: `STRIPE_WEBHOOK_SECRET` is not set, so webhooks are refused (no receipts, no refunds)\n\
             hint: copy the endpoint's signing secret from Stripe's dashboard, or from `shop sandbox`",
        );
    }
    let state = super::state_location(&store)?;
    let descriptors = raise_open_file_limit(context);
    let admission = server::Admission::for_descriptors(
        descriptors,
        store.settings.serve.limits.connections as usize,
        store.settings.serve.trusted_proxies.clone(),
    );
    // Templates are checked now, so a broken one stops the start, not a send.
    let templates = Templates::load(&store.root)?;
    let views = Views::load(&store.root)?;
    let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
    super::block_on(async move {
        let db = Db::open(&state).await?;
        let kept_in = match &state {
            Location::Sqlite(path) => format!("`{}`", path.display()),
            // Never the URL: it may hold a password.
            Location::Postgres(_) => "PostgreSQL".to_owned(),
        };
        let files_from = match &store.settings.github_repository {
            Some(repository) => Files::GitHub {
                client: Box::new(context.github(repository)?),
            },
            None => Files::Local(store::local_files_dir(&store.root)),
        };
        let base_url = store.settings.base_url.clone();
        let listener = match inherited_listener()? {
            Some(listener) => listener,
            None => server::bind(args.listen).await.context_hint(
                format!("cannot listen on `{}`", args.listen),
                "is another server running there? choose another `--listen` address",
            )?,
        };
        let address = listener.local_addr()?;
        if let Some(note) = base_url_mismatch(&base_url, address) {
            context.output.note(note);
        }
        let mailer = Mailer::new(&store.settings, &store.root, password)?;
        let mut app = App::new(store, stripe, keys, webhook_secret, db, files_from, views);
        app.overrides = context.overrides.clone();
        // SHOP_NOW sets where the server's clock starts (end-to-end tests).
        if std::env::var_os("SHOP_NOW").is_some() {
            let start = super::now()?.unix_timestamp();
            let began = std::time::Instant::now();
            app.clock = Arc::new(move || start + began.elapsed().as_secs() as i64);
        }
        // SHOP_MAIL_RETRY_SECONDS: the first wait after a failed send, and
        // before a refund Stripe refused is asked again (tests shorten it).
        let retry = std::env::var("SHOP_MAIL_RETRY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        app.refund_retry = std::time::Duration::from_secs(retry);
        let app = Arc::new(app);
        // The keys and Stripe's webhook endpoint, checked once at start.
        let checked = app.clone();
        tokio::spawn(async move {
            let problems = checked.problems().await;
            for problem in &problems {
                tracing::warn!("{problem}");
            }
            if problems.is_empty() {
                tracing::info!("start-up check: the keys work");
            }
        });
        // A release made while the server runs is picked up within seconds
        // (SHOP_STORE_WATCH_SECONDS: tests lengthen it, to see a server
        // whose store is behind).
        let watch = std::env::var("SHOP_STORE_WATCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2);
        let watched = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(watch)).await;
                watched.refresh_store();
            }
        });
        tokio::spawn(server::outbox::run(
            app.clone(),
            mailer,
            templates,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(retry),
        ));
        // SHOP_LOST_EVERY_SECONDS: how often lost-link requests are looked
        // up (tests lengthen it, to see that a request alone looks up nothing).
        let lost_every = std::env::var("SHOP_LOST_EVERY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(server::lost::LOOK_UP_EVERY, std::time::Duration::from_secs);
        tokio::spawn(server::lost::run(app.clone(), lost_every));
        // What webhooks missed, read from Stripe and the ledger at start
        // and then every few minutes (SHOP_RECONCILE_EVERY_SECONDS: tests).
        let reconcile_every = std::env::var("SHOP_RECONCILE_EVERY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(server::reconcile::EVERY, std::time::Duration::from_secs);
        tokio::spawn(server::reconcile::run(app.clone(), reconcile_every));
        // Visits counted, written every few seconds (SHOP_VISITS_EVERY_SECONDS:
        // tests shorten it) and at the stop.
        let visits_every = std::env::var("SHOP_VISITS_EVERY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(server::visits::FLUSH_EVERY, std::time::Duration::from_secs);
        tokio::spawn(server::visits::run(app.clone(), visits_every));
        context.output.note(format!(
            "shop serve listening on http://{address} (public address {base_url}; state in {kept_in}); stop with Ctrl-C"
        ));
        // On a worker like every connection, not on the thread that waits.
        let timeouts = server::Timeouts {
            head: args.header_timeout,
            idle: args.idle_timeout,
            ..server::Timeouts::default()
        };
        tokio::spawn(server::serve(
            app.clone(),
            listener,
            timeouts,
            admission,
            super::shutdown_signal(),
        ))
        .await?;
        // What was asked for before the stop is looked up now, and the
        // visits counted are kept.
        server::lost::look_up(&app).await;
        server::visits::flush(&app).await;
        context.output.note("shop serve stopped");
        anyhow::Ok(())
    })?
}

/// Each connection holds a file descriptor: raise the soft limit to the
/// hard one (systemd's default soft limit is 1024) and say what it is;
/// returns it.
fn raise_open_file_limit(context: &Context) -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!("open-file limit: {limit}");
            if limit < 4096 {
                context.output.note(format!(
                    "warning: the open-file limit is {limit}, which caps connections\n\
                     hint: raise it with `LimitNOFILE=` in the systemd unit or `ulimit -n`"
                ));
            }
            limit
        }
        Err(error) => {
            tracing::warn!("cannot raise the open-file limit: {error}");
            1024
        }
    }
}

/// The listening socket the system manager bound and passed as descriptor
/// 3 (systemd socket activation: `LISTEN_FDS`, and `LISTEN_PID` when set),
/// used instead of `--listen`.
fn inherited_listener() -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let Some(listener) = fds.take_tcp_listener(0).context_hint(
        "`LISTEN_FDS` passes a descriptor 3 that is not a listening TCP socket",
        "give `shop serve` a TCP socket (systemd: `ListenStream=` in the .socket unit), or unset `LISTEN_FDS` to use `--listen`",
    )?
    else {
        return Ok(None);
    };
    listener.set_nonblocking(true)?;
    Ok(Some(tokio::net::TcpListener::from_std(listener)?))
}

/// `shop serve --migrate-state-to URL`: the SQLite state into PostgreSQL.
fn migrate_state(context: &Context, store: &store::Store, url: &str) -> anyhow::Result<()> {
    let url = if url.is_empty() {
        match super::state_location(store)? {
            Location::Postgres(url) => url,
            Location::Sqlite(_) => {
                return Err(error::hinted(
                    "`--migrate-state-to` names no database, and neither `SHOP_STATE_URL` nor `[serve] state` does",
                    "set `SHOP_STATE_URL` to the database's URL (safer for a password than the command line, which `ps` shows), or give it after `--migrate-state-to`",
                ));
            }
        }
    } else {
        Secret::new("--migrate-state-to", url)?
    };
    let from = store.root.join(".shop").join("state.db");
    let moved = super::block_on(state::move_to_postgres(&from, &url))??;
    if context.output.json {
        let tables: serde_json::Map<String, serde_json::Value> = moved
            .iter()
            .map(|(table, rows)| ((*table).to_owned(), (*rows).into()))
            .collect();
        context
            .output
            .json(&serde_json::json!({ "moved": tables }))?;
    }
    let counts: Vec<String> = moved
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    context.output.note(format!(
        "moved the server's state into PostgreSQL and checked it: {}\n\
         hint: start every server with that URL in `SHOP_STATE_URL` (or `[serve] state` in `shop.toml` without its password); `{}` stays as it was",
        counts.join(", "),
        from.display()
    ));
    Ok(())
}

/// A warning when `base_url` names this machine on another port than the
/// server listens on: every link in pages and mail would lead nowhere. A
/// public name (behind a proxy) is not checked.
fn base_url_mismatch(base_url: &str, address: SocketAddr) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    let host = url.host_str()?;
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    let port = url.port_or_known_default()?;
    (local && port != address.port()).then(|| {
        format!(
            "warning: `base_url` is `{base_url}`, but the server listens on port {}: links in pages and mail lead nowhere\n\
             hint: set `base_url = \"http://{host}:{}\"` in shop.toml (or SHOP_BASE_URL), or `--listen` on port {port}",
            address.port(),
            address.port(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_base_url_on_another_port_is_said() {
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(base_url_mismatch("http://127.0.0.1:8080", at("127.0.0.1:8080")).is_none());
        assert!(base_url_mismatch("https://books.example", at("127.0.0.1:8080")).is_none());
        let said = base_url_mismatch("http://localhost:8080", at("127.0.0.1:9090")).unwrap();
        assert!(said.contains("listens on port 9090"), "{said}");
        assert!(said.ends_with("or `--listen` on port 8080"), "{said}");
    }
}

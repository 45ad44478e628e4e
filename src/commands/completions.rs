//! `shop completions` and `shop man`: from the clap definition
//! ([`crate::cli::command`]).
//!
//! Completions are dynamic (clap_complete's `CompleteEnv`): the shell
//! asks `shop` itself, with `SHOP_COMPLETE` set, what may come next, so
//! product slugs and versions come from the store at hand.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap_complete::engine::CompletionCandidate;

use super::Context;
use crate::error::ResultExt as _;
use crate::{cli, error, store};

/// The variable that makes `shop` answer the shell instead of running.
pub const COMPLETE_VAR: &str = "SHOP_COMPLETE";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the shell code that asks `shop` for completions.
pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    use clap_complete::env::{Bash, Elvish, Fish, Powershell, Zsh};
    // The binary that answers: this one, wherever it is installed.
    let completer = std::env::current_exe()
        .ok()
        .and_then(|path| path.to_str().map(str::to_owned))
        .unwrap_or_else(|| "shop".to_owned());
    let shell: &dyn clap_complete::env::EnvCompleter = match args.shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::PowerShell => &Powershell,
        _ => anyhow::bail!("no completions for this shell"),
    };
    let mut out = Vec::new();
    shell.write_registration(COMPLETE_VAR, "shop", "shop", &completer, &mut out)?;
    context.output.data(String::from_utf8_lossy(&out))?;
    Ok(())
}

/// The store the line being completed works on: `SHOP_STORE`, else the
/// nearest folder up with a shop.toml (a `--store` on the line is not
/// seen by a completer).
fn store_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SHOP_STORE") {
        return Some(PathBuf::from(dir));
    }
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .find(|dir| dir.join(store::SETTINGS_FILE).is_file())
        .map(PathBuf::from)
}

/// Each product file's slug and its released versions (pre-orders
/// included), read lightly: a completer must answer even when the store
/// has problems.
fn products() -> Vec<(String, Vec<semver::Version>)> {
    let Some(root) = store_root() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(root.join(store::PRODUCTS_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Vec<semver::Version>)> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let slug = path
                .file_name()?
                .to_str()?
                .strip_suffix(".toml")?
                .to_owned();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let table: toml::Table = toml::from_str(&text).unwrap_or_default();
            let mut versions: Vec<semver::Version> = table
                .get("release")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|release| release.get("version")?.as_str()?.parse().ok())
                .collect();
            versions.sort();
            Some((slug, versions))
        })
        .collect();
    found.sort();
    found
}

fn starting_with(
    current: &OsStr,
    values: impl IntoIterator<Item = (String, String)>,
) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    values
        .into_iter()
        .filter(|(value, _)| value.starts_with(current.as_ref()))
        .map(|(value, help)| CompletionCandidate::new(value).help(Some(help.into())))
        .collect()
}

/// The store's product slugs.
pub fn slugs(current: &OsStr) -> Vec<CompletionCandidate> {
    starting_with(
        current,
        products().into_iter().map(|(slug, versions)| {
            let help = match versions.last() {
                Some(newest) => format!("newest {newest}"),
                None => "not released".to_owned(),
            };
            (slug, help)
        }),
    )
}

/// The versions the store's products have released, newest first.
pub fn released_versions(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut versions: Vec<(semver::Version, String)> = products()
        .into_iter()
        .flat_map(|(slug, versions)| versions.into_iter().map(move |v| (v, slug.clone())))
        .collect();
    versions.sort_by(|a, b| b.cmp(a));
    starting_with(
        current,
        versions.into_iter().map(|(v, slug)| (v.to_string(), slug)),
    )
}

/// The versions that may come next: each product's next patch, minor and
/// major (the first release is 1.0.0).
pub fn next_versions(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut next = Vec::new();
    for (slug, versions) in products() {
        match versions.last() {
            None => next.push(("1.0.0".to_owned(), format!("first of {slug}"))),
            Some(newest) => {
                let (major, minor, patch) = (newest.major, newest.minor, newest.patch);
                next.push((
                    format!("{major}.{minor}.{}", patch + 1),
                    format!("a fix of {slug} {newest}"),
                ));
                next.push((
                    format!("{major}.{}.0", minor + 1),
                    format!("next minor of {slug}"),
                ));
                next.push((
                    format!("{}.0.0", major + 1),
                    format!("next edition of {slug}"),
                ));
            }
        }
    }
    starting_with(current, next)
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Install every page: `shop man --dir /usr/local/share/man/man1`; read one: \
                        `shop man release | man -l -`"
)]
pub struct ManArgs {
    /// The subcommand whose page to print (`release` prints shop-release(1))
    /// [default: shop(1)]
    pub command: Option<String>,

    /// Write every page (shop.1, shop-init.1, …) into this folder instead
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<std::path::PathBuf>,
}

pub fn man(context: &Context, args: ManArgs) -> anyhow::Result<()> {
    let mut root = cli::command().disable_help_subcommand(true);
    // Gives each subcommand its display name (`shop-release`).
    root.build();
    if let Some(dir) = &args.dir {
        let mut written = 0;
        for command in std::iter::once(&root).chain(root.get_subcommands()) {
            let man = clap_mangen::Man::new(command.clone());
            let path = dir.join(man.get_filename());
            std::fs::write(&path, page(command)?).context_hint(
                format!("cannot write `{}`", path.display()),
                "give `--dir` a folder that exists and that you may write to",
            )?;
            written += 1;
        }
        context.output.note(format!(
            "wrote {} to `{}`",
            store::count(written, "manual page"),
            dir.display()
        ));
        return Ok(());
    }
    let command = match &args.command {
        None => &root,
        Some(name) => root.find_subcommand(name).ok_or_else(|| {
            error::hinted(
                format!("`shop` has no subcommand `{name}`"),
                "run `shop --help` for the list of subcommands",
            )
        })?,
    };
    let page = page(command)?;
    // At a terminal, read as a manual page is read.
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) && through_man(&page) {
        return Ok(());
    }
    context.output.data(String::from_utf8_lossy(&page))?;
    Ok(())
}

/// Shows a page with `man -l -` (man-db), when there is one; false
/// otherwise, for the roff to be printed.
fn through_man(page: &[u8]) -> bool {
    use std::io::Write as _;
    let Ok(mut child) = std::process::Command::new("man")
        .args(["-l", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A reader who quits early closes the pipe: not an error.
        let _ = stdin.write_all(page);
    }
    child.wait().is_ok_and(|status| status.success())
}

/// A manual page as clap_mangen renders it, with what it cannot know:
/// the environment `shop` reads and its exit status.
fn page(command: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if command.get_arguments().next().is_some() {
        man.render_options_section(&mut out)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    if command.get_after_help().is_some() || command.get_after_long_help().is_some() {
        man.render_extra_section(&mut out)?;
    }
    out.extend_from_slice(ENVIRONMENT.as_bytes());
    out.extend_from_slice(EXIT_STATUS.as_bytes());
    if command.get_name() != "shop" {
        out.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBshop\\fR(1)\n");
    }
    Ok(out)
}

/// The variables every subcommand may read (flags win over them; they win
/// over shop.toml). Secrets are read only from here, or from the file a
/// `<NAME>_FILE` variable names.
const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBSHOP_STORE\fR
The store to work on, instead of the nearest folder up from here with a shop.toml.
.TP
\fBSTRIPE_SECRET_KEY\fR, \fBSTRIPE_API_KEY\fR
The Stripe secret key (release, checkout, sync, serve, notify's upgrade codes).
.TP
\fBSTRIPE_WEBHOOK_SECRET\fR
The signing secret of the webhook endpoint (serve).
.TP
\fBSHOP_TOKEN_SECRET\fR, \fBSHOP_TOKEN_SECRET_PREVIOUS\fR
The key of download links, and the one before a rotation (serve, notify, grant, token).
.TP
\fBGITHUB_TOKEN\fR
A token that can read (serve) and write (release) the assets repository.
.TP
\fBSHOP_SMTP_PASSWORD\fR
The SMTP password, with mail by smtp.
.TP
\fBSHOP_STATE_URL\fR
The PostgreSQL database several servers share for their state (serve, and sync, token and notify beside it); else .shop/state.db.
.TP
\fB<NAME>_FILE\fR
For each secret above: a file holding it (systemd credentials, Docker secrets).
.TP
\fBSHOP_BASE_URL\fR, \fBSHOP_GITHUB_REPOSITORY\fR, \fBSHOP_MAIL_TRANSPORT\fR, \fBSHOP_LISTEN\fR
Override shop.toml's base_url, github.repository, mail transport, and serve's --listen.
.TP
\fBLISTEN_FDS\fR, \fBLISTEN_PID\fR
A listening socket passed by the system manager (systemd socket activation): serve uses it instead of --listen.
.TP
\fBSHOP_STRIPE_API_BASE\fR, \fBSHOP_GITHUB_API_BASE\fR, \fBSHOP_GITHUB_UPLOADS_BASE\fR
Other addresses for Stripe and GitHub (the sandbox, a local GitHub).
"#;

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Done (also when the output stopped at a closed pipe).
.TP
\fB1\fR
An error: the message names what failed, and its last line, beginning hint:, says what to do. Nothing is left half done.
.TP
\fB2\fR
A usage error: an unknown option, or an argument missing or malformed.
"#;

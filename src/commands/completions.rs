//! `shop completions` and `shop man`: generated from the clap definition.

use clap::CommandFactory;

use super::Context;
use crate::cli::Cli;
use crate::error::ResultExt as _;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "For bash: `shop completions bash > ~/.local/share/bash-completion/completions/shop`"
)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "shop", &mut out);
    context.output.data(String::from_utf8_lossy(&out))?;
    Ok(())
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
    let mut root = Cli::command().disable_help_subcommand(true);
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
            crate::store::count(written, "manual page"),
            dir.display()
        ));
        return Ok(());
    }
    let command = match &args.command {
        None => &root,
        Some(name) => root.find_subcommand(name).ok_or_else(|| {
            crate::error::hinted(
                format!("`shop` has no subcommand `{name}`"),
                "run `shop --help` for the list of subcommands",
            )
        })?,
    };
    context
        .output
        .data(String::from_utf8_lossy(&page(command)?))?;
    Ok(())
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

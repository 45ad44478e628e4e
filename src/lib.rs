//! `shop` sells digital files from a git repository: Stripe takes the money,
//! GitHub releases (or a local directory) hold the files, and the store's git
//! history keeps the catalogue, the ledger and the notices.
//!
//! [`run`] is the whole program; `main.rs` only calls it. Everything below
//! `commands` is a library that takes its inputs (paths, settings, secrets,
//! time) as arguments and never reads the process environment.

pub mod atomic;
pub mod charts;
pub mod checkout;
pub mod cli;
pub mod commands;
pub mod dates;
pub mod downloads;
pub mod error;
pub mod fault;
pub mod file_stream;
pub mod funnel;
pub mod gift;
pub mod git;
pub mod github;
pub mod grant;
pub mod html;
pub mod ledger;
pub mod mail;
pub mod metadata;
pub mod net;
pub mod notify;
pub mod post;
pub mod printable;
pub mod release;
pub mod report;
pub mod retry;
pub mod secret;
pub mod server;
pub mod stamp;
pub mod state;
pub mod store;
pub mod stripe;
pub mod support;
pub mod sync;
pub mod tokens;
pub mod withdrawal;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

/// Runs `shop` with these arguments (the first is the program name) and
/// returns the process exit code: 0 on success, 1 on an error, 2 on a usage
/// error. The error is printed here, once, to stderr.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // A shell asking what may come next (`shop completions`): answered,
    // nothing run.
    let completing = clap_complete::CompleteEnv::with_factory(cli::command)
        .var(commands::completions::COMPLETE_VAR)
        .bin("shop")
        .try_complete(args.clone(), std::env::current_dir().ok().as_deref());
    match completing {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(error) => error.exit(),
    }
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if is_broken_pipe(&error) {
                // `shop products | head -1` is not an error.
                return ExitCode::SUCCESS;
            }
            let code = match error.downcast_ref::<commands::UsageError>() {
                Some(_) => 2,
                None => 1,
            };
            let mut stderr = io::stderr().lock();
            let _ = writeln!(stderr, "error: {}", error::render(&error));
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

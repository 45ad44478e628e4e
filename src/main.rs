//! The `shop` binary: parse, run, print the error once, exit.

use std::process::ExitCode;

fn main() -> ExitCode {
    shop::run(std::env::args_os())
}

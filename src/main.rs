//! The `shop` binary: parse, run, print the error once, exit.

use std::process::ExitCode;

// The server allocates many small, short-lived buffers per request; mimalloc
// serves them faster than glibc's malloc (scripts/bench serve).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    shop::run(std::env::args_os())
}

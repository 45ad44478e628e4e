//! The integration tests: one crate, one harness, the real `shop` binary
//! run in temporary stores.

mod harness;

mod cli;
mod conformance;
mod init;
mod sandbox;
mod store;

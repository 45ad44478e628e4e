//! The integration tests: one crate, one harness, the real `shop` binary
//! run in temporary stores.

mod harness;
mod support {
    pub mod books;
    pub mod github;
    pub mod served;
}

mod audience;
mod browser;
mod bundle;
mod buyers;
mod cli;
mod conformance;
mod currencies;
mod deliveries;
mod demo;
mod downloads;
mod edge;
mod editions;
mod gifts;
mod helpdesk;
mod hints;
mod house;
mod init;
mod mail;
mod money;
mod postgres;
mod preorder;
mod readers;
mod release;
mod sandbox;
mod serve;
mod stamp;
mod store;
mod strict;
mod stripe;
mod sync;
mod tax;
mod upgrade;
mod visits;
mod withdrawals;
mod year;

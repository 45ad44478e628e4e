//! `shop serve`: the web server buyers see after paying.

use std::net::SocketAddr;

use super::Context;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Secrets: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, SHOP_TOKEN_SECRET \
                        (and SHOP_TOKEN_SECRET_PREVIOUS after a rotation), GITHUB_TOKEN, \
                        SHOP_SMTP_PASSWORD; each may instead name a file in <NAME>_FILE."
)]
pub struct Args {
    /// The address to listen on
    #[arg(
        long,
        env = "SHOP_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("serve")
}

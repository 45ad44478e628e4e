//! `shop sandbox`: a local Stripe-compatible server with a test checkout.

use std::path::PathBuf;

use super::Context;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Point shop at it with SHOP_STRIPE_API_BASE=http://127.0.0.1:<port> and \
                        any STRIPE_SECRET_KEY starting with sk_test_."
)]
pub struct Args {
    /// The loopback port to listen on
    #[arg(long, default_value_t = 12111)]
    pub port: u16,

    /// Keep the sandbox's objects in this file, so they survive a restart
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// Deliver signed events to this URL (such as http://127.0.0.1:8080/stripe/webhook)
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
}

pub fn run(_context: &Context, _args: Args) -> anyhow::Result<()> {
    super::not_built("sandbox")
}

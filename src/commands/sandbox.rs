//! `shop sandbox`: a local Stripe-compatible server with a test checkout.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::error::ResultExt as _;

use super::Context;
use shop_sandbox::{self as sandbox, Sandbox, SigningSecret};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Point shop at it with SHOP_STRIPE_API_BASE=http://127.0.0.1:<port> and \
                        any STRIPE_SECRET_KEY starting with sk_test_. Events are signed with \
                        STRIPE_WEBHOOK_SECRET when it is set, else with a secret printed at start."
)]
pub struct Args {
    /// The loopback port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 4111)]
    pub port: u16,

    /// Keep the sandbox's objects in this file, so they survive a restart
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// Deliver signed events to this URL (such as http://127.0.0.1:8080/stripe/webhook)
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,

    /// The business name its test checkout shows (as Stripe shows the account's)
    #[arg(long, value_name = "NAME")]
    pub account_name: Option<String>,

    /// Set up Stripe Tax with the head office in this country (such as DE);
    /// without it, checkouts with automatic tax are refused, as Stripe does
    #[arg(long, value_name = "COUNTRY")]
    pub tax_origin: Option<String>,

    /// Where Stripe Tax collects, as registrations added in the Dashboard:
    /// countries (DE), US states (US-WA), the EU's one-stop shop (EU-OSS).
    /// Elsewhere a checkout's tax is zero, as Stripe does
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = sandbox::registrations::parse)]
    pub tax_registrations: Vec<String>,

    /// The account's terms of service URL; without it, checkouts asking for
    /// consent to the terms are refused, as Stripe does
    #[arg(long, value_name = "URL")]
    pub terms_url: Option<String>,

    /// The account's country (such as DE), which sets Stripe's fees; by
    /// default the --tax-origin's, else US
    #[arg(long, value_name = "COUNTRY")]
    pub country: Option<String>,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let webhook_secret = super::secret_from_env("STRIPE_WEBHOOK_SECRET")?;
    if let Some(url) = &args.webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(super::UsageError::new(
            format!("`{url}` is not a webhook URL"),
            "give the full URL, such as `http://127.0.0.1:8080/stripe/webhook`",
        )
        .into());
    }
    let config = sandbox::Config {
        data: args.data.clone(),
        webhook_url: args.webhook.clone(),
        webhook_secret: webhook_secret.map(|secret| SigningSecret::new(secret.expose())),
        account_name: args.account_name.clone(),
        tax_origin: args.tax_origin.clone(),
        tax_registrations: args.tax_registrations.clone(),
        terms_of_service_url: args.terms_url.clone(),
        country: args.country.clone(),
    };
    super::block_on(async move {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let listener = tokio::net::TcpListener::bind(address).await.context_hint(
            format!("cannot listen on `{address}`"),
            "is another sandbox running? pick another `--port`, or 0 for any free one",
        )?;
        let address = listener.local_addr()?;
        let path = config
            .data
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let sandbox = Sandbox::new(config.clone(), address).context_hint(
            format!("cannot read the sandbox's data file `{path}`"),
            "move it aside to start empty",
        )?;
        announce(context, &sandbox)?;
        sandbox::serve(sandbox, listener, super::shutdown_signal()).await;
        context.output.note("shop sandbox stopped");
        Ok(())
    })?
}

fn announce(context: &Context, sandbox: &Sandbox) -> anyhow::Result<()> {
    let url = sandbox.base_url();
    let secret = sandbox.webhook_secret();
    let webhook_url = sandbox.webhook_url();
    if context.output.json {
        context.output.json(&serde_json::json!({
            "url": url,
            "webhook_url": webhook_url,
            "webhook_secret": secret.as_ref().map(SigningSecret::expose),
        }))?;
    } else {
        let secret_line = secret
            .as_ref()
            .map(|secret| format!("\n  export STRIPE_WEBHOOK_SECRET={}", secret.expose()))
            .unwrap_or_default();
        context.output.data(format!(
            "shop sandbox listening on {url}\n\
             \n  export SHOP_STRIPE_API_BASE={url}\
             \n  export STRIPE_SECRET_KEY=sk_test_sandbox      # any sk_test_ key works{secret_line}\n\
             \nwebhooks: {}\
             \ntest cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient funds\
             \nstop with Ctrl-C\n",
            webhook_url.unwrap_or("none (give --webhook URL to deliver events)"),
        ))?;
    }
    Ok(())
}

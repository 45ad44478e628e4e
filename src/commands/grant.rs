//! `shop grant`: the command line of [`crate::grant`]; it checks what was
//! typed, gathers the keys, templates and mail transport, and prints.

use super::Context;
use crate::mail::{Mailer, Templates};
use crate::store::settings;
use crate::{dates, grant, printable};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The grant is recorded in purchases/grants.jsonl (committed) and counted \
                        apart by `shop report`; the reader hears of new versions as a buyer \
                        would, under the product's update policy."
)]
pub struct Args {
    /// The reader's email address
    pub email: String,

    /// The product's slug
    pub slug: String,

    /// The version to give (the latest by default)
    #[arg(long, value_parser = super::parse_version)]
    pub version: Option<semver::Version>,

    /// Why it was given, for your records (kept in the ledger, never mailed)
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,

    /// Give another copy even though this address already has one of this version
    #[arg(long)]
    pub again: bool,

    /// Record the grant and print its link, but send no mail
    #[arg(long)]
    pub no_mail: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    // Inside the runtime from the start: the SMTP transport is made, used
    // and dropped there.
    super::block_on(give(context, args))?
}

async fn give(context: &Context, args: Args) -> anyhow::Result<()> {
    settings::check_email(&args.email).map_err(|message| {
        super::UsageError::new(
            message,
            "give the reader's address, such as `shop grant ada@example.com guide`",
        )
    })?;
    if let Some(note) = &args.note
        && note.contains(['\n', '\r'])
    {
        return Err(super::UsageError::new(
            "`--note` has more than one line",
            "write the note on one line",
        )
        .into());
    }
    let store = context.open_store()?;
    let product = store.product(&args.slug)?;
    let release = match (&args.version, product.on_sale()) {
        // A pre-order's files are not out: the newest version that is.
        (None, Some(out)) => out,
        (version, _) => super::chosen_release(product, version.as_ref())?,
    };
    // Everything that can refuse is checked before anything is written.
    let keys = super::token_keys()?;
    let templates = Templates::load(&store.root)?;
    let mailer = if args.no_mail {
        None
    } else {
        let password = super::secret_from_env("SHOP_SMTP_PASSWORD")?;
        Some(Mailer::new(&store.settings, &store.root, password)?)
    };
    let request = grant::Request {
        email: &args.email,
        release,
        note: args.note.clone(),
        again: args.again,
    };
    let now = || Ok(super::now()?.unix_timestamp());
    let given = grant::give(
        &store,
        product,
        request,
        &keys[0],
        &templates,
        mailer.as_ref(),
        now,
    )
    .await?;
    let grant::Given {
        grant,
        link,
        expires,
        mailed,
    } = given;
    let version = release.version.to_string();
    if context.output.json {
        context.output.json(&serde_json::json!({
            "grant": grant.id,
            "product": product.slug,
            "version": version,
            "mailed": mailed,
            "link": link,
            "expires": dates::timestamp(expires),
        }))?;
        return Ok(());
    }
    context.output.note(format!(
        "gave `{}` {version} to `{}` (grant `{}`){}; the link, valid until {}:",
        product.slug,
        printable::printable(&grant.email),
        grant.id,
        if mailed { ", mailed" } else { ", not mailed" },
        dates::timestamp(expires),
    ));
    context.output.data(format!("{link}\n"))?;
    Ok(())
}

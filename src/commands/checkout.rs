//! `shop checkout`: a one-off Stripe Checkout Session for a released version.

use super::Context;
use crate::store::settings;
use crate::stripe::IdempotencyKey;
use crate::{checkout, error};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The session carries the same product and version metadata as the \
                        version's payment link, so `shop serve` and `shop sync` treat it alike."
)]
pub struct Args {
    /// The product's slug
    pub slug: String,

    /// The version to sell [default: the version on sale]
    #[arg(long, value_parser = super::parse_version)]
    pub version: Option<semver::Version>,

    /// Prefill the buyer's email address
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// How long the link stays open: 30m to 24h, as Stripe allows
    #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
    pub expires: u64,

    /// A Stripe promotion code to apply
    #[arg(long, value_name = "CODE")]
    pub promo: Option<String>,

    /// A gift: checkout asks for the recipient's address, a message and
    /// a day to send it; the files go to the recipient
    #[arg(long)]
    pub gift: bool,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    if !(30 * 60..=24 * 3600).contains(&args.expires) {
        return Err(super::UsageError::new(
            "`--expires` must be between 30m and 24h",
            "Stripe keeps a Checkout Session open for 30 minutes to 24 hours",
        )
        .into());
    }
    if let Some(email) = &args.email {
        settings::check_email(email).map_err(|message| {
            super::UsageError::new(
                message,
                "give the buyer's address, such as `--email ada@example.com`",
            )
        })?;
    }
    let store = context.open_store()?;
    let product = store.product(&args.slug)?;
    if product.free {
        return Err(error::hinted(
            format!("`{}` is free: there is nothing to check out", product.slug),
            format!(
                "give a copy with `shop grant {} EMAIL`, or let readers ask for it on {}/p/{}",
                product.slug, store.settings.base_url, product.slug
            ),
        ));
    }
    let release = super::chosen_release(product, args.version.as_ref())?;
    let stripe = context.stripe()?;
    let promotion = match &args.promo {
        Some(code) => Some(super::block_on(stripe.promotion_code(code))??.ok_or_else(|| {
            error::hinted(
                format!("there is no active promotion code `{code}` in Stripe"),
                "create it in Stripe's dashboard (Product catalogue → Coupons → a promotion code), or check its spelling",
            )
        })?),
        None => None,
    };
    let now = super::now()?.unix_timestamp();
    let mut params = checkout::session(&store.settings, product, release);
    params.customer_email = args.email.clone();
    params.expires_at = Some(expires_at(now, args.expires));
    if args.gift {
        params.options.custom_fields = crate::gift::fields();
        params.metadata = crate::gift::mark(std::mem::take(&mut params.metadata));
    }
    // Stripe takes a code given or a field to type one, not both.
    params.allow_promotion_codes &= promotion.is_none();
    params
        .metadata
        .insert("source".to_owned(), "shop checkout".to_owned());
    if let Some(promotion) = &promotion {
        params.promotion_code = Some(promotion.id.clone());
        params
            .metadata
            .insert("promotion_code".to_owned(), promotion.code.clone());
    }
    let session =
        super::block_on(stripe.create_checkout_session(&params, &IdempotencyKey::random()))??;
    let url = session.url.clone().unwrap_or_default();
    if context.output.json {
        context.output.json(&serde_json::json!({
            "id": session.id,
            "url": url,
            "product": product.slug,
            "version": release.version.to_string(),
            "expires_at": session.expires_at,
            "customer_email": session.customer_email,
            "amount_total": session.amount_total,
            "gift": args.gift,
        }))?;
    } else {
        context.output.note(format!(
            "Checkout for {} {} ({}){}, open for {}:",
            product.name,
            release.version,
            product.price,
            if args.gift { " as a gift" } else { "" },
            human_duration(args.expires)
        ));
        context.output.data(format!("{url}\n"))?;
    }
    Ok(())
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

/// How far inside Stripe's range (30 minutes to 24 hours from when its
/// request arrives, by its own clock) `expires_at` is kept: latency and a
/// clock a little ahead or behind must not push it out.
const EXPIRY_MARGIN: i64 = 5 * 60;

/// The `expires_at` to send for a session that should last `seconds` from
/// `now`, kept a margin inside Stripe's range.
fn expires_at(now: i64, seconds: u64) -> i64 {
    let wanted = now + seconds as i64;
    wanted.clamp(
        now + 30 * 60 + EXPIRY_MARGIN,
        now + 24 * 3600 - EXPIRY_MARGIN,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiry_stays_inside_stripes_range() {
        assert_eq!(super::expires_at(1000, 30 * 60), 1000 + 35 * 60);
        assert_eq!(super::expires_at(1000, 24 * 3600), 1000 + 24 * 3600 - 300);
        assert_eq!(super::expires_at(1000, 3 * 3600), 1000 + 3 * 3600);
    }
}

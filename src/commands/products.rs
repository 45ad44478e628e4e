//! `shop products`: the catalogue; `shop products check`: the whole store.

use serde_json::json;

use super::Context;
use crate::error::Hint;
use crate::mail::Templates;
use crate::server::views::Views;
use crate::stamp::Format;
use crate::store::{Product, Store, StoreError, product};
use crate::{error, secret, store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Check shop.toml and every product file, and report every problem found
    Check,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = match context.open_store() {
        Ok(store) => store,
        // `--json` answers in JSON also when the files are wrong.
        Err(error) if context.output.json && matches!(args.action, Some(Action::Check)) => {
            if let Some(StoreError::Invalid { problems, .. }) =
                error.downcast_ref::<store::StoreError>()
            {
                let problems: Vec<_> = problems
                    .iter()
                    .map(|problem| {
                        json!({
                            "file": problem.source,
                            "line": problem.position.map(|(line, _)| line),
                            "column": problem.position.map(|(_, column)| column),
                            "message": problem.message,
                            "hint": problem.hint,
                        })
                    })
                    .collect();
                context
                    .output
                    .json(&json!({ "ok": false, "problems": problems }))?;
            }
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    match args.action {
        None => list(context, &store),
        Some(Action::Check) => check(context, &store),
    }
}

fn list(context: &Context, store: &Store) -> anyhow::Result<()> {
    if context.output.json {
        let products: Vec<_> = store.products.iter().map(product_json).collect();
        context.output.json(&json!(products))?;
        return Ok(());
    }
    if store.products.is_empty() {
        context
            .output
            .note("The store has no products yet.\nhint: add one as `products/<slug>.toml`");
        return Ok(());
    }
    let header = ["SLUG", "NAME", "PRICE", "ON SALE", "PAYMENT LINK"].map(String::from);
    let rows: Vec<[String; 5]> = store
        .products
        .iter()
        .map(|product| {
            // The version on sale, the next one's pre-order beside it.
            let selling = product.on_sale().or_else(|| product.preorder());
            let next = product.preorder().filter(|preorder| {
                selling.is_some_and(|selling| selling.version != preorder.version)
            });
            [
                product.slug.clone(),
                match product.is_bundle() {
                    true => format!("{} (bundle of {})", product.name, product.bundle.join(", ")),
                    false => product.name.clone(),
                },
                {
                    let main = match product.pay_what_you_want {
                        _ if product.free => "free (sample)".to_owned(),
                        Some(_) => format!("from {}", product.price),
                        None => product.price.to_string(),
                    };
                    let others: Vec<String> = product
                        .prices
                        .iter()
                        .map(|other| other.price.to_string())
                        .collect();
                    match others.is_empty() {
                        true => main,
                        false => format!("{main} (also {})", others.join(", ")),
                    }
                },
                selling.map_or_else(
                    || "-".to_owned(),
                    |release| {
                        let mut text = match release.preorder {
                            true => format!("{} (pre-order)", release.version),
                            false => release.version.to_string(),
                        };
                        if let Some(next) = next {
                            text.push_str(&format!(", {} on pre-order", next.version));
                        }
                        text
                    },
                ),
                selling.map_or_else(
                    || "-".to_owned(),
                    |release| {
                        let mut links = release.payment_link_url.clone();
                        if let Some(next) = next {
                            links.push_str(&format!(" (pre-order: {})", next.payment_link_url));
                        }
                        links
                    },
                ),
            ]
        })
        .collect();
    context.output.data(super::table(&header, &rows))?;
    Ok(())
}

/// The secrets `shop` reads from the environment, and what each is for.
const SECRETS: &[(&str, &str)] = &[
    ("STRIPE_SECRET_KEY", "release, checkout, sync, serve"),
    ("STRIPE_WEBHOOK_SECRET", "serve"),
    ("SHOP_TOKEN_SECRET", "serve, notify, token"),
    (
        "GITHUB_TOKEN",
        "release and serve, with a GitHub repository",
    ),
    ("SHOP_SMTP_PASSWORD", "mail by smtp"),
    ("SHOP_STATE_URL", "serve on PostgreSQL"),
];

fn check(context: &Context, store: &Store) -> anyhow::Result<()> {
    let released = store
        .products
        .iter()
        .filter(|product| product.latest().is_some())
        .count();
    let mut problems = Vec::new();
    let mut secrets = serde_json::Map::new();
    let mut lines = String::new();
    for (name, used_by) in SECRETS {
        let state = match super::secret_from_env(name) {
            Ok(Some(secret)) => match check_secret(&secret) {
                Ok(()) => "set",
                Err(problem) => {
                    problems.push(problem);
                    "invalid"
                }
            },
            Ok(None) => "not set",
            Err(error) => {
                problems.push(error.to_string());
                "unreadable"
            }
        };
        secrets.insert((*name).to_owned(), json!(state));
        lines.push_str(&format!("  {name:<22} {state:<8} (for {used_by})\n"));
    }
    problems.extend(file_problems(store));
    // The store's templates, rendered as a buyer would get them.
    let template_problem = |error: &(dyn std::error::Error + 'static), hint: String| {
        format!("{}\nhint: {hint}", error::message(error))
    };
    if let Err(error) = Templates::load(&store.root) {
        problems.push(template_problem(&error, Hint::hint(&error)));
    }
    if let Err(error) = Views::load(&store.root) {
        problems.push(template_problem(&error, Hint::hint(&error)));
    }
    let unstamped = unstamped(store);
    if context.output.json {
        let unstamped: serde_json::Map<_, _> = unstamped
            .iter()
            .map(|(slug, files)| ((*slug).to_owned(), json!(files)))
            .collect();
        context.output.json(&json!({
            "ok": problems.is_empty(),
            "products": store.products.len(),
            "released": released,
            "secrets": secrets,
            "unstamped": unstamped,
            "problems": problems,
        }))?;
    } else {
        let mut notes = String::new();
        if store.products.is_empty() {
            notes.push_str(
                "warning: the store has no products: nothing is for sale\n\
                 hint: add one as `products/<slug>.toml` (name, price and files)\n",
            );
        }
        for (slug, files) in &unstamped {
            let files: Vec<String> = files.iter().map(|file| format!("`{file}`")).collect();
            notes.push_str(&format!(
                "note: `{slug}` stamps buyers' copies, but {} {} delivered unstamped \
                 (shop stamps PDF and EPUB files)\n",
                files.join(", "),
                if files.len() == 1 { "is" } else { "are" },
            ));
        }
        context.output.data(format!(
            "`{}`: {} ({released} released), settings and products valid\n\
             {notes}secrets in the environment:\n{lines}",
            store.root.display(),
            store::count(store.products.len(), "product"),
        ))?;
    }
    match problems.len() {
        0 => Ok(()),
        _ => anyhow::bail!("{}", problems.join("\n\n")),
    }
}

/// What is wrong with the files the store names: a cover that is missing,
/// a symlink, outside the store, too large or not the image its name
/// says; a released file in the local files folder that is a symlink.
fn file_problems(store: &Store) -> Vec<String> {
    use crate::store::disk;
    let mut problems = Vec::new();
    let found =
        |error: &disk::Refusal| format!("{}\nhint: {}", error::message(error), Hint::hint(error));
    for product in &store.products {
        if let Some(cover) = &product.cover {
            match disk::read(&store.root, cover, disk::COVER_MAX_BYTES) {
                Err(error) => {
                    problems.push(format!("`{}`: the cover {}", product.slug, found(&error)))
                }
                Ok(bytes) => {
                    let named = product::cover_type(cover);
                    let actual = disk::image_type(&bytes);
                    if actual != named {
                        problems.push(format!(
                            "`{}`: the cover `{cover}` is named as {} but its bytes are {}\n\
                             hint: save the image in the format its name says, or rename it",
                            product.slug,
                            named.unwrap_or("an image"),
                            actual.unwrap_or("no image shop knows"),
                        ));
                    }
                }
            }
        }
        if store.settings.github_repository.is_some() {
            continue;
        }
        let dir = store::local_files_dir(&store.root);
        for release in &product.releases {
            for asset in &release.assets {
                let path = dir
                    .join(&product.slug)
                    .join(release.version.to_string())
                    .join(&asset.name);
                if std::fs::symlink_metadata(&path).is_ok()
                    && !disk::is_within(&dir, &path).unwrap_or(false)
                {
                    problems.push(format!(
                        "`{}`: `{}` is a symlink or not a regular file, so the server will not serve it\n\
                         hint: release the version again to put the file itself there",
                        product.slug,
                        path.display()
                    ));
                }
            }
        }
    }
    problems
}

/// The files of each stamping product that shop cannot stamp, by slug.
fn unstamped(store: &Store) -> Vec<(&str, Vec<&str>)> {
    use crate::store::StampMode;
    store
        .products
        .iter()
        .filter(|product| store.stamping(product) != StampMode::Off)
        .filter_map(|product| {
            let files: Vec<&str> = product
                .files
                .iter()
                .map(String::as_str)
                .filter(|file| Format::of(file).is_none())
                .collect();
            (!files.is_empty()).then_some((product.slug.as_str(), files))
        })
        .collect()
}

/// Catches the secret that is plainly the wrong one, without showing it.
fn check_secret(secret: &secret::Secret) -> Result<(), String> {
    let (valid, expected) = match secret.name() {
        "STRIPE_SECRET_KEY" => (
            ["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
                .iter()
                .any(|p| secret.expose().starts_with(p)),
            "a Stripe secret key starts with `sk_test_`, `sk_live_` or (restricted) `rk_`",
        ),
        "STRIPE_WEBHOOK_SECRET" => (
            secret.expose().starts_with("whsec_"),
            "a webhook signing secret starts with `whsec_`; copy it from the webhook endpoint in \
             Stripe's dashboard, or from `shop sandbox`'s start-up message",
        ),
        "SHOP_TOKEN_SECRET" => (
            secret.expose().len() >= 32,
            "use at least 32 random characters, for example `openssl rand -hex 32`",
        ),
        _ => (true, ""),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` does not look right\nhint: {expected}",
            secret.name()
        ))
    }
}

fn product_json(product: &Product) -> serde_json::Value {
    let latest = product.latest();
    let selling = product.on_sale();
    let preorder = product.preorder();
    json!({
        "slug": product.slug,
        "name": product.name,
        "price": { "amount": product.price.amount, "currency": product.price.currency.code() },
        "free": product.free,
        "prices": product.prices.iter().map(|other| json!({
            "amount": other.price.amount,
            "currency": other.price.currency.code(),
            "suggested": other.pay_what_you_want.and_then(|chosen| chosen.suggested).map(|money| money.amount),
        })).collect::<Vec<_>>(),
        "pay_what_you_want": product.pay_what_you_want.map(|chosen| {
            json!({ "suggested": chosen.suggested.map(|money| money.amount) })
        }),
        "files": product.files,
        "bundle": product.bundle,
        "download_limit": product.download_limit,
        "updates": product.updates.as_str(),
        "latest_version": latest.map(|release| release.version.to_string()),
        "preorder": latest.is_some_and(|release| release.preorder),
        "payment_link": latest.map(|release| &release.payment_link_url),
        "on_sale": selling.map(|release| json!({
            "version": release.version.to_string(),
            "payment_link": release.payment_link_url,
        })),
        "preorder_of": preorder.map(|release| json!({
            "version": release.version.to_string(),
            "out": release.out.map(|day| day.to_string()),
            "price": release.price.as_ref().map(|price| price.amount),
            "payment_link": release.payment_link_url,
        })),
    })
}

//! `shop init`: make a new store.

use std::path::{Path, PathBuf};

use crate::error::ResultExt as _;

use super::Context;
use crate::store::{self, Overrides, Store};
use crate::{error, git};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The new store is a git repository with one commit. Nothing that exists \
                        is overwritten: `shop init` refuses to run where a store already is."
)]
pub struct Args {
    /// Where to make the store [default: --store, or the current directory]
    pub dir: Option<PathBuf>,

    /// The shop's name
    #[arg(long, default_value = "My Books")]
    pub name: String,

    /// The shop's currency (ISO 4217)
    #[arg(long, default_value = "usd", value_parser = parse_currency)]
    pub currency: store::Currency,
}

fn parse_currency(text: &str) -> Result<store::Currency, String> {
    text.parse()
}

/// The files a new store starts with, relative to its root.
const EXAMPLE_PRODUCT: &str = "products/example-book.toml";

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| context.store_dir.clone());
    let name = args.name.trim();
    if name.is_empty() || name.contains(['\n', '\r']) {
        return Err(super::UsageError::new(
            format!("`{}` cannot be a shop name", name.escape_debug()),
            "give a name on one line, such as `--name \"Example Books\"`",
        )
        .into());
    }
    let files = skeleton(name, &args.currency);

    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| root.join(path).exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        let what = if root.join(store::SETTINGS_FILE).exists() {
            format!("`{}` is already a shop store", root.display())
        } else {
            format!(
                "`{}` already has {}",
                root.display(),
                store::quoted_list(&existing)
            )
        };
        return Err(error::hinted(
            what,
            "`shop init` never overwrites; pick an empty folder, or work on this store with `shop products`",
        ));
    }

    std::fs::create_dir_all(&root).context_hint(
        format!("cannot create `{}`", root.display()),
        "check that the folder is yours to write in and the disk has room",
    )?;
    for (path, text) in &files {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).context_hint(
                format!("cannot create `{}`", parent.display()),
                "check that the folder is yours to write in and the disk has room",
            )?;
        }
        std::fs::write(&full, text).context_hint(
            format!("cannot write `{}`", full.display()),
            "check that the folder is yours to write in and the disk has room",
        )?;
    }
    let gitignore = ensure_ignored(&root)?;

    // The skeleton must be a valid store; check before committing it.
    let store = Store::open(&root, &Overrides::default()).context_hint(
        "the new store does not load",
        "this is a bug in `shop init`; please report it with the command you ran",
    )?;

    let repo = git::open_or_init(&root)?;
    let mut paths: Vec<&Path> = files.iter().map(|(path, _)| path.as_path()).collect();
    paths.push(Path::new(gitignore));
    git::commit_paths(&repo, &paths, &format!("shop init: {name}"))?;

    if context.output.json {
        context.output.json(&serde_json::json!({
            "store": root.display().to_string(),
            "name": store.settings.name,
            "products": store.products.iter().map(|product| &product.slug).collect::<Vec<_>>(),
        }))?;
    } else {
        context.output.note(format!(
            "Made a store at `{}` with one example product, `{}`.\n\n\
             Next:\n  \
             edit shop.toml and {EXAMPLE_PRODUCT}\n  \
             shop --store {} products check",
            root.display(),
            store
                .products
                .iter()
                .map(|product| product.slug.as_str())
                .collect::<Vec<_>>()
                .join("`, `"),
            shell_quote(&root),
        ));
    }
    Ok(())
}

fn skeleton(name: &str, currency: &store::Currency) -> Vec<(PathBuf, String)> {
    let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let fill = |text: &str| {
        text.replace("@NAME@", &quoted(name))
            .replace(
                "@FROM@",
                &quoted(&store::settings::mailbox(name, "help@example.com")),
            )
            .replace("@CURRENCY@", currency.code())
    };
    vec![
        (
            PathBuf::from(store::SETTINGS_FILE),
            fill(include_str!("init/shop.toml")),
        ),
        (
            PathBuf::from(EXAMPLE_PRODUCT),
            fill(include_str!("init/product.toml")),
        ),
        (
            PathBuf::from("purchases/README.md"),
            include_str!("init/purchases.md").to_owned(),
        ),
        (
            PathBuf::from("notices/README.md"),
            include_str!("init/notices.md").to_owned(),
        ),
    ]
}

/// Makes sure `.gitignore` ignores `.shop/` (the server's state and local
/// files), keeping what it already says. Returns its path.
fn ensure_ignored(root: &Path) -> anyhow::Result<&'static str> {
    const GITIGNORE: &str = ".gitignore";
    let path = root.join(GITIGNORE);
    let mut text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(error).context_hint(
                format!("cannot read `{}`", path.display()),
                "check the file's permissions",
            );
        }
    };
    if !text
        .lines()
        .any(|line| matches!(line.trim(), ".shop" | ".shop/" | "/.shop" | "/.shop/"))
    {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# shop's local state: download counts, mail outbox, local files\n.shop/\n");
        std::fs::write(&path, text).context_hint(
            format!("cannot write `{}`", path.display()),
            "check that the folder is yours to write in and the disk has room",
        )?;
    }
    Ok(GITIGNORE)
}

fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

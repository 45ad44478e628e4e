//! `shop trace FILE`: whose copy a file is, from the mark a stamped copy
//! carries (in a PDF's pages and information, in an EPUB's package).

use std::path::PathBuf;

use super::Context;
use crate::error::ResultExt as _;
use crate::stamp::Format;
use crate::{dates, error, ledger, printable, stamp, tokens};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Needs the `SHOP_TOKEN_SECRET` the server stamped with (and \
                  `SHOP_TOKEN_SECRET_PREVIOUS` after a rotation). Looks in the ledger and, \
                  where `shop serve` keeps its state, in the server's database."
)]
pub struct Args {
    /// A copy found somewhere: a PDF or an EPUB
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let shown = args.file.display().to_string();
    let format = Format::of(&shown).ok_or_else(|| {
        error::hinted(
            format!("`{shown}` is not a PDF or an EPUB"),
            "shop stamps only PDF and EPUB files; give the copy as it was found",
        )
    })?;
    let bytes = std::fs::read(&args.file).context_hint(
        format!("cannot read `{shown}`"),
        "give the path of a readable file",
    )?;
    let marks = match format {
        Format::Pdf => stamp::pdf_marks(&bytes),
        Format::Epub => stamp::epub_mark(&bytes),
    };
    if marks.is_empty() {
        return Err(error::hinted(
            format!("`{shown}` carries no mark of this shop"),
            "it was not stamped by shop, or the mark was removed along with every page that held it",
        ));
    }
    let store = context.open_store()?;
    let keys = super::token_keys()?;
    // (id, email, product, version, created) of every purchase known.
    let mut candidates: Vec<(String, String, String, String, i64)> = Vec::new();
    ledger::each(&store.root, |purchase| {
        let created = purchase.created_unix();
        candidates.push((
            purchase.id,
            purchase.email,
            purchase.product,
            purchase.version,
            created,
        ));
        Ok(())
    })?;
    if let Some(db) = super::existing_state(&store)? {
        for purchase in super::block_on(db.all_purchases())?? {
            candidates.push((
                purchase.id,
                purchase.email,
                purchase.product,
                purchase.version,
                purchase.created,
            ));
        }
    }
    let found = candidates.iter().find(|(id, ..)| {
        keys.iter()
            .any(|key| marks.contains(&tokens::stamp_mark(key, id)))
    });
    let Some((id, email, product, version, created)) = found else {
        return Err(error::hinted(
            format!(
                "`{shown}` carries the mark `{}`, and no purchase known here matches it",
                marks[0]
            ),
            "run `shop sync` first, and use the `SHOP_TOKEN_SECRET` the server stamped with",
        ));
    };
    context.output.data(format!(
        "`{shown}` is the copy of {}: order {} ({id}), {product} {version}, bought {}",
        printable::printable(email),
        ledger::order_number(id),
        dates::human_time(*created),
    ))?;
    Ok(())
}

//! The ledger: `purchases/<YYYY>-<MM>.jsonl`, Stripe's completed purchases
//! copied into git.
//!
//! One JSON object per line, one line per Checkout Session, in the month
//! the session was created, sorted by (created, id), keys in a fixed order.
//! The same Stripe data always gives the same bytes. Files are replaced
//! atomically (staged, fsynced, renamed) in chronological order, so a
//! reader or a killed writer sees either a month's old content or its new
//! one, and never newer months without the older ones.
//!
//! Copies given without a payment (`shop grant`) are in their own file,
//! `purchases/grants.jsonl`, in the same format with status `granted`:
//! Stripe knows nothing of them, so `shop sync`, which rebuilds months from
//! Stripe, never touches it.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::error::Registered;
use crate::{atomic, error, fault};
use serde::{Deserialize, Serialize};

/// The ledger's folder in the store.
pub const DIR: &str = "purchases";

/// The file of copies given without a payment, in [`DIR`].
pub const GRANTS_FILE: &str = "grants.jsonl";

/// The file of buyers' withdrawals (the EU withdrawal function), in
/// [`DIR`]: written by `shop sync` from the server's state.
pub const WITHDRAWALS: &str = "withdrawals";

/// One use of the withdrawal function: when, by whom, what was decided,
/// and the refund at Stripe. The buyer's name and words are the record of
/// the request the law asks the author to be able to show; they stay as
/// long as the purchase's own line does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The purchase (its Checkout Session id) and its order number.
    pub purchase: String,
    pub order: String,
    /// RFC 3339, UTC: when the buyer confirmed it.
    pub requested: String,
    /// `refund`, `guarantee`, `review`, `ended`, `late`, `refunded-before`
    /// or `nothing-paid`.
    pub decision: String,
    /// When the buyer accepted the waiver, for a right that had ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The refund at Stripe and its status there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    /// Refunds Stripe refused or failed before this one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The withdrawals the ledger holds, oldest first (none without the file).
pub fn read_withdrawals(root: &Path) -> Result<Vec<Withdrawal>, LedgerError> {
    let path = root.join(DIR).join(file_name(WITHDRAWALS));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LedgerError::Io { path, source }),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| LedgerError::NotAWithdrawal {
                path: path.clone(),
                line: index + 1,
                message: error.to_string(),
            })
        })
        .collect()
}

/// The withdrawals file's bytes: `known` with `fresh` over it (one line a
/// purchase, the state's newer word winning), oldest first.
pub fn render_withdrawals(known: Vec<Withdrawal>, fresh: Vec<Withdrawal>) -> Vec<u8> {
    let mut by_purchase: BTreeMap<String, Withdrawal> = known
        .into_iter()
        .map(|line| (line.purchase.clone(), line))
        .collect();
    for line in fresh {
        by_purchase.insert(line.purchase.clone(), line);
    }
    let mut lines: Vec<Withdrawal> = by_purchase.into_values().collect();
    lines.sort_by(|a, b| (&a.requested, &a.purchase).cmp(&(&b.requested, &b.purchase)));
    let mut out = Vec::new();
    for line in &lines {
        if serde_json::to_writer(&mut out, line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// The start of a grant's id (a purchase's is its Checkout Session's, `cs_`).
pub const GRANT_PREFIX: &str = "gr_";

/// The start of a free sample's id (`price = "free"`, given by the server
/// to an address that asked on the store).
pub const SAMPLE_PREFIX: &str = "sm_";

/// Whether the purchase `id` names was given (a grant or a free sample)
/// rather than bought.
pub fn is_given(id: &str) -> bool {
    id.starts_with(GRANT_PREFIX) || id.starts_with(SAMPLE_PREFIX)
}

/// The file of free samples given (`samples.jsonl`), in [`DIR`]: written
/// by `shop sync` from the server's state (Stripe knows nothing of them).
pub const SAMPLES: &str = "samples";

/// Where a purchase stands, as its ledger line says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Paid,
    /// Refunded in full (a partial refund leaves it `paid`).
    Refunded,
    Disputed,
    /// Given by `shop grant`, not bought.
    Granted,
    /// A free sample (`price = "free"`) given to an address that asked.
    Sample,
}

impl Status {
    /// As the ledger writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Paid => "paid",
            Status::Refunded => "refunded",
            Status::Disputed => "disputed",
            Status::Granted => "granted",
            Status::Sample => "sample",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One purchase: one completed, paid Checkout Session of the shop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The Checkout Session id.
    pub id: String,
    /// RFC 3339, UTC, seconds: when the Checkout Session was opened, which
    /// files the purchase in its month.
    pub created: String,
    /// When the money arrived (the charge's balance transaction): the date
    /// of the sale. None for a purchase with nothing to pay, and in lines
    /// synced before it was recorded (`shop sync --full` fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid: Option<String>,
    pub email: String,
    pub product: String,
    pub version: String,
    /// Bought before the version's files were out (`shop preorder`):
    /// `shop release` of the version mails the buyer the link.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preorder: bool,
    /// Minor units paid.
    pub amount: i64,
    /// Minor units a promotion or upgrade code took off the price, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<i64>,
    pub currency: String,
    pub payment_intent: Option<String>,
    pub status: Status,
    /// Minor units refunded so far, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_refunded: Option<i64>,
    /// Stripe's fee for the payment and what reached the balance (amount
    /// less fee), in minor units of `settled_in` when the account settles
    /// in another currency, else of `currency`. Stripe keeps its fee when
    /// it refunds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_code: Option<String>,
    /// An upgrade: the earlier purchase whose upgrade code this one used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_from: Option<String>,
    /// The buyer's country (ISO 3166-1 alpha-2), when checkout asked for
    /// an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Minor units of tax within `amount`, when Stripe Tax computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<i64>,
    /// A business buyer's tax ID and its Stripe type (`eu_vat`, `gb_vat`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id_type: Option<String>,
    /// The number of the invoice Stripe issued, and its page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_url: Option<String>,
    /// When the buyer accepted the terms and waived the right of
    /// withdrawal: the moment they pressed Pay with the box ticked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_accepted: Option<String>,
    /// The buyer's answer at checkout to the box for the author's news
    /// (`[audience] checkout_consent`): `opt_in` or `opt_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotions: Option<String>,
    /// A gift: who paid for it (`email` is who holds it, the recipient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_from: Option<String>,
    /// A gift whose recipient's address was not one: what the buyer typed
    /// (the purchase stayed theirs, `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_to: Option<String>,
    /// The buyer's message to the recipient, as typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_message: Option<String>,
    /// The day the gift was to be sent (`2026-12-24`), when later than
    /// the purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_on: Option<String>,
    /// A grant's note, for the author (a review copy, a prize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When a grant's mail was accepted by the mail server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailed: Option<String>,
}

impl Purchase {
    /// A copy given without a payment (`shop grant`): a new `gr_` id,
    /// amount 0 in the product's currency, not yet mailed.
    pub fn granted(
        created: String,
        email: &str,
        product: &str,
        version: &str,
        currency: &str,
        note: Option<String>,
    ) -> Purchase {
        Purchase {
            id: format!("{GRANT_PREFIX}{}", uuid::Uuid::new_v4().simple()),
            created,
            email: email.to_owned(),
            product: product.to_owned(),
            version: version.to_owned(),
            amount: 0,
            currency: currency.to_owned(),
            status: Status::Granted,
            note,
            ..Purchase::default()
        }
    }

    /// Whether it entitles its buyer to downloads and notices: paid, or
    /// given, and neither refunded nor disputed.
    pub fn in_good_standing(&self) -> bool {
        matches!(self.status, Status::Paid | Status::Granted | Status::Sample)
    }

    /// Whether it was given by `shop grant` rather than bought.
    pub fn is_grant(&self) -> bool {
        self.status == Status::Granted
    }

    /// Whether it is a free sample rather than a sale.
    pub fn is_sample(&self) -> bool {
        self.status == Status::Sample
    }

    /// When the sale was made, for reports: when it was paid where known,
    /// else when its checkout opened (RFC 3339, UTC).
    pub fn sold(&self) -> &str {
        self.paid.as_deref().unwrap_or(&self.created)
    }

    /// `YYYY-MM` of the purchase, which names its file.
    pub fn month(&self) -> &str {
        self.created.get(..7).unwrap_or("0000-00")
    }

    /// The Unix time of `created`.
    pub fn created_unix(&self) -> i64 {
        time::OffsetDateTime::parse(
            &self.created,
            &time::format_description::well_known::Rfc3339,
        )
        .map_or(0, |at| at.unix_timestamp())
    }

    /// Minor units refunded: all of it when refunded, else what was.
    pub fn refunded(&self) -> i64 {
        match self.status {
            Status::Refunded => self.amount_refunded.unwrap_or(self.amount).max(self.amount),
            _ => self.amount_refunded.unwrap_or(0),
        }
    }

    /// Ordering of lines in a file.
    fn key(&self) -> (&str, &str) {
        (&self.created, &self.id)
    }
}

/// The order number a buyer is shown (`7K2Q9-XM4WD`): ten characters of
/// Crockford's base 32 (no I, L, O or U, which read as 1, 1, 0 and V) from
/// a digest of the purchase's id, so that a buyer can read it out and
/// support can type it. `shop find` finds a purchase by it (and by the
/// end of its id, what receipts showed before).
pub fn order_number(purchase_id: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digest = Sha256::digest(format!("order:{purchase_id}").as_bytes());
    let bits = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    let symbols: String = (0..10)
        .map(|index| char::from(ALPHABET[((bits >> (59 - 5 * index)) & 31) as usize]))
        .collect();
    format!("{}-{}", &symbols[..5], &symbols[5..])
}

/// Whether `typed` names the order `purchase_id`: its order number as a
/// person types it (any case, with or without the dash or spaces, an I or
/// L for a 1, an O for a 0), or the end of the id that receipts showed
/// before order numbers were read aloud.
pub fn is_order(purchase_id: &str, typed: &str) -> bool {
    let normal: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect();
    let ours: String = order_number(purchase_id).replace('-', "");
    normal == ours || (typed.len() == 10 && purchase_id.ends_with(typed))
}

/// One month's file name: `2026-11.jsonl`.
pub fn file_name(month: &str) -> String {
    format!("{month}.jsonl")
}

/// The months the ledger has files for, oldest first.
pub fn months(root: &Path) -> Result<Vec<String>, LedgerError> {
    let dir = root.join(DIR);
    let mut months = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(months),
        Err(source) => return Err(LedgerError::Io { path: dir, source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| LedgerError::Io {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(month) = name.strip_suffix(".jsonl")
            && is_month(month)
        {
            months.push(month.to_owned());
        }
    }
    months.sort();
    Ok(months)
}

fn is_month(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[5..].iter().all(u8::is_ascii_digit)
}

/// Reads one month's purchases (empty when the file does not exist).
pub fn read_month(root: &Path, month: &str) -> Result<Vec<Purchase>, LedgerError> {
    read_file(root.join(DIR).join(file_name(month)))
}

/// A ledger file's purchases, or none when it does not exist.
fn read_file(path: PathBuf) -> Result<Vec<Purchase>, LedgerError> {
    match std::fs::File::open(&path) {
        Ok(file) => parse_lines(std::io::BufReader::new(file), &path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(LedgerError::Io { path, source }),
    }
}

/// Parses a ledger file's lines.
pub fn parse_lines(reader: impl BufRead, path: &Path) -> Result<Vec<Purchase>, LedgerError> {
    let mut purchases = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| LedgerError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let purchase = serde_json::from_str(&line).map_err(|error| LedgerError::Malformed {
            path: path.to_owned(),
            line: index + 1,
            message: error.to_string(),
        })?;
        purchases.push(purchase);
    }
    Ok(purchases)
}

/// Every purchase of the ledger, oldest first, one month in memory at a
/// time; then the grants, then the free samples.
pub fn each(
    root: &Path,
    mut visit: impl FnMut(Purchase) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    for month in months(root)? {
        for purchase in read_month(root, &month)? {
            visit(purchase)?;
        }
    }
    for grant in read_grants(root)? {
        visit(grant)?;
    }
    for sample in read_samples(root)? {
        visit(sample)?;
    }
    Ok(())
}

/// Every purchase of the ledger (months, grants, samples), each file
/// read by one of a few threads into an accumulator of its own (`make`),
/// `add` called for each of its purchases: for sums, whose order does not
/// matter. Returns the accumulators, to merge.
pub fn fold<T: Send>(
    root: &Path,
    make: impl Fn() -> T + Sync,
    add: impl Fn(&mut T, Purchase) + Sync,
) -> Result<Vec<T>, LedgerError> {
    let dir = root.join(DIR);
    let mut files: Vec<PathBuf> = months(root)?
        .iter()
        .map(|month| dir.join(file_name(month)))
        .collect();
    files.push(dir.join(GRANTS_FILE));
    files.push(dir.join(file_name(SAMPLES)));
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
        .min(files.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut folded = make();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(index) else {
                            return Ok(folded);
                        };
                        for purchase in read_file(path.clone())? {
                            add(&mut folded, purchase);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a ledger reader panicked"))
            .collect()
    })
}

/// The free samples given, oldest first (empty when there are none).
pub fn read_samples(root: &Path) -> Result<Vec<Purchase>, LedgerError> {
    read_file(root.join(DIR).join(file_name(SAMPLES)))
}

/// The grants, oldest first (empty when there are none).
pub fn read_grants(root: &Path) -> Result<Vec<Purchase>, LedgerError> {
    read_file(root.join(DIR).join(GRANTS_FILE))
}

/// Replaces the grants file with `grants` (sorted as a month is), at once.
pub fn write_grants(root: &Path, grants: &mut [Purchase]) -> Result<PathBuf, LedgerError> {
    let dir = root.join(DIR);
    let path = dir.join(GRANTS_FILE);
    std::fs::create_dir_all(&dir)
        .and_then(|()| atomic::replace(&path, &render(grants), &root.join(".shop")))
        .map_err(|source| LedgerError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(PathBuf::from(DIR).join(GRANTS_FILE))
}

/// The newest purchase of the ledger: the last line of the newest file.
pub fn newest(root: &Path) -> Result<Option<Purchase>, LedgerError> {
    for month in months(root)?.iter().rev() {
        if let Some(last) = read_month(root, month)?
            .into_iter()
            .max_by(|a, b| a.key().cmp(&b.key()))
        {
            return Ok(Some(last));
        }
    }
    Ok(None)
}

/// A month's file content: sorted by (created, id), one object per line.
pub fn render(purchases: &mut [Purchase]) -> Vec<u8> {
    purchases.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut out = Vec::with_capacity(purchases.len() * 256);
    for purchase in purchases.iter() {
        // Serializing plain strings and numbers cannot fail.
        if serde_json::to_writer(&mut out, purchase).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// New month files, written to a staging folder first and moved into
/// `purchases/` together.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    dir: PathBuf,
    /// Month to its staged content (`None`: the month's file goes away).
    months: BTreeMap<String, Option<PathBuf>>,
}

impl Staging {
    /// A fresh staging folder under the store's `.shop/`.
    pub fn new(root: &Path) -> Result<Staging, LedgerError> {
        let dir = root.join(".shop").join("sync-staging");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| LedgerError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(&dir).map_err(|source| LedgerError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Staging {
            root: root.to_owned(),
            dir,
            months: BTreeMap::new(),
        })
    }

    /// Stages `bytes` as the month's file (the caller found them changed).
    pub fn stage(&mut self, month: &str, bytes: &[u8]) -> Result<(), LedgerError> {
        let path = self.dir.join(file_name(month));
        let io = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::create(&path).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.months.insert(month.to_owned(), Some(path));
        Ok(())
    }

    /// Marks a month's file for removal (a full rebuild found nothing there).
    pub fn remove(&mut self, month: &str) {
        if self.root.join(DIR).join(file_name(month)).exists() {
            self.months.insert(month.to_owned(), None);
        }
    }

    /// Moves the staged files into `purchases/`, oldest month first; returns
    /// the changed paths relative to the store.
    pub fn commit(self) -> Result<Vec<PathBuf>, LedgerError> {
        let target_dir = self.root.join(DIR);
        std::fs::create_dir_all(&target_dir).map_err(|source| LedgerError::Io {
            path: target_dir.clone(),
            source,
        })?;
        let mut changed = Vec::new();
        for (month, staged) in &self.months {
            let target = target_dir.join(file_name(month));
            match staged {
                Some(path) => std::fs::rename(path, &target),
                None => std::fs::remove_file(&target),
            }
            .map_err(|source| LedgerError::Io {
                path: target.clone(),
                source,
            })?;
            // Test builds: stopped with some months moved, others not.
            fault::point("sync:moved");
            changed.push(PathBuf::from(DIR).join(file_name(month)));
        }
        if let Ok(dir) = std::fs::File::open(&target_dir) {
            let _ = dir.sync_all();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(changed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read or write `{}`", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` line {line} is not a purchase: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("`{}` line {line} is not a withdrawal: {message}", path.display())]
    NotAWithdrawal {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

inventory::submit!(Registered::of::<LedgerError>());

impl error::Hint for LedgerError {
    fn hint(&self) -> String {
        match self {
            LedgerError::Io { .. } => {
                "check the permissions of `purchases/` and `.shop/`, and the disk space".into()
            }
            LedgerError::NotAWithdrawal { path, .. } => format!(
                "`shop sync` writes it from the server's state; restore it with `git checkout -- {}`",
                path.display()
            ),
            LedgerError::Malformed { path, .. } => format!(
                "the ledger is written only by `shop sync`; restore the file with `git checkout -- {}` \
                 or rebuild it with `shop sync --full`",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_read_aloud_and_are_found_however_typed() {
        let id = "cs_test_a1MDnDhkIIJ61x";
        let order = order_number(id);
        assert_eq!(order.len(), 11);
        assert!(
            order
                .chars()
                .all(|c| c == '-' || (c.is_ascii_alphanumeric() && !"ILOUilou".contains(c))),
            "{order}"
        );
        assert_eq!(order, order_number(id));
        assert_ne!(order, order_number("cs_test_a1MDnDhkIIJ61y"));
        assert!(is_order(id, &order));
        assert!(is_order(id, &order.to_lowercase().replace('-', " ")));
        let misread = order.replace('1', "l").replace('0', "O");
        assert!(is_order(id, &misread), "{misread}");
        // What receipts showed before: the end of the id.
        assert!(is_order(id, "MDnDhkIIJ61x"[2..].as_ref()));
        assert!(!is_order(id, "ZZZZZ-ZZZZZ"));
    }

    fn purchase(id: &str, created: i64) -> Purchase {
        Purchase {
            id: id.into(),
            created: crate::dates::timestamp(created),
            email: "ada@example.com".into(),
            product: "guide".into(),
            version: "1.0.0".into(),
            amount: 2900,
            currency: "usd".into(),
            payment_intent: Some(format!("pi_{id}")),
            status: Status::Paid,
            amount_refunded: None,
            utm_source: Some("newsletter".into()),
            ..Purchase::default()
        }
    }

    #[test]
    fn lines_are_sorted_with_keys_in_a_fixed_order() {
        let mut purchases = vec![
            purchase("cs_b", 1_700_000_100),
            purchase("cs_a", 1_700_000_100),
            purchase("cs_c", 1_700_000_000),
        ];
        let text = String::from_utf8(render(&mut purchases)).unwrap();
        let ids: Vec<&str> = text.lines().map(|line| &line[7..11]).collect();
        assert_eq!(ids, ["cs_c", "cs_a", "cs_b"]);
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"id":"cs_c","created":"2023-11-14T22:13:20Z","email":"ada@example.com","product":"guide","version":"1.0.0","amount":2900,"currency":"usd","payment_intent":"pi_cs_c","status":"paid","utm_source":"newsletter"}"#
        );
        // The same data gives the same bytes, and reads back the same.
        let again = render(&mut purchases.clone());
        assert_eq!(again, text.as_bytes());
        let read = parse_lines(std::io::Cursor::new(&again), Path::new("x")).unwrap();
        assert_eq!(read, purchases);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let error = parse_lines(
            std::io::Cursor::new("{\"id\":1}\n"),
            Path::new("purchases/2026-11.jsonl"),
        )
        .unwrap_err();
        let message = crate::error::render(&error.into());
        assert!(
            message.starts_with("`purchases/2026-11.jsonl` line 1 is not a purchase"),
            "{message}"
        );
        assert!(
            message.ends_with(
                "\nhint: the ledger is written only by `shop sync`; restore the file with \
                 `git checkout -- purchases/2026-11.jsonl` or rebuild it with `shop sync --full`"
            ),
            "{message}"
        );
    }

    #[test]
    fn months_are_named_by_creation() {
        assert_eq!(purchase("x", 1_700_000_000).month(), "2023-11");
        assert!(is_month("2026-01") && !is_month("2026-1") && !is_month("README"));
    }
}

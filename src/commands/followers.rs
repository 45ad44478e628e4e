//! `shop followers`: the author's audience, as the server's state keeps
//! it: listed, exported as CSV, or brought in from a list with consent.

use std::path::PathBuf;

use super::Context;
use crate::printable::printable;
use crate::state::{FOLLOWER_PREFIX, Follower};
use crate::store::{count, settings};
use crate::{dates, error};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    shop followers                            # who follows, and since when\n  \
    shop followers --csv > followers.csv\n  \
    shop followers import list.csv --consent \"signed up at the fair, 2026-10-03\"\n\n\
    Followers asked on the store (`/follow`) and confirmed the link mailed to them. \
    `shop sync` keeps them in git as `audience/followers.jsonl`.")]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,

    /// Every follower (and those who have not confirmed or left) as CSV
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Bring in a list the author already has: a CSV with an `email`
    /// column (and optionally `date`, when each agreed, YYYY-MM-DD); or
    /// `audience/followers.jsonl` itself, to rebuild a server's list as it
    /// was (each follower's id, dates and consent kept, so the links
    /// already mailed still work)
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// How and when these people agreed to hear from you, kept with
        /// each (the proof of consent the law asks you to keep); not for
        /// `audience/followers.jsonl`, which has each one's
        #[arg(long, value_name = "TEXT")]
        consent: Option<String>,
    },
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let store = context.open_store()?;
    if let Some(Action::Import { file, consent }) = args.action {
        let followers = match (file.extension().is_some_and(|ext| ext == "jsonl"), consent) {
            (true, None) => kept(&file)?,
            (false, Some(consent)) => from_csv(&file, &consent)?,
            (true, Some(_)) => {
                return Err(error::hinted(
                    format!("`{}` keeps each follower's consent", file.display()),
                    "leave `--consent` out when importing `audience/followers.jsonl`",
                ));
            }
            (false, None) => {
                return Err(error::hinted(
                    "`--consent` is missing",
                    "say how and when these people agreed to hear from you: `--consent \"signed up at …\"`",
                ));
            }
        };
        let total = followers.len();
        let db = super::open_state(&store)?;
        let added = super::block_on(db.import_followers(followers))??;
        context.output.note(format!(
            "imported {} ({} already known, left as they were)",
            count(added, "follower"),
            total - added
        ));
        return Ok(());
    }
    let followers = match super::existing_state(&store)? {
        Some(db) => super::block_on(db.followers())??,
        None => Vec::new(),
    };
    if args.csv {
        let mut out = csv::Writer::from_writer(std::io::stdout().lock());
        out.write_record(["email", "asked", "confirmed", "left", "source", "consent"])?;
        for follower in &followers {
            let when = |at: Option<i64>| at.map(dates::timestamp).unwrap_or_default();
            out.write_record([
                follower.email.as_str(),
                &dates::timestamp(follower.asked),
                &when(follower.confirmed),
                &when(follower.left),
                &follower.source,
                &follower.consent,
            ])?;
        }
        out.flush()?;
        return Ok(());
    }
    if context.output.json {
        context.output.json(&serde_json::to_value(&followers)?)?;
        return Ok(());
    }
    let following: Vec<&Follower> = followers.iter().filter(|f| f.following()).collect();
    if following.is_empty() {
        context.output.note("no one follows yet");
        return Ok(());
    }
    let header = ["EMAIL", "SINCE", "SOURCE"].map(String::from);
    let rows: Vec<[String; 3]> = following
        .iter()
        .map(|follower| {
            [
                printable(&follower.email).into_owned(),
                dates::timestamp(follower.confirmed.unwrap_or(follower.asked))[..10].to_owned(),
                follower.source.clone(),
            ]
        })
        .collect();
    context.output.data(super::table(&header, &rows))?;
    let waiting = followers.iter().filter(|f| f.confirmed.is_none()).count();
    if waiting > 0 {
        context
            .output
            .note(format!("{} not confirmed yet", count(waiting, "address")));
    }
    Ok(())
}

/// The followers `shop sync` kept in git, as they were.
fn kept(file: &std::path::Path) -> anyhow::Result<Vec<Follower>> {
    let text = std::fs::read_to_string(file).map_err(|source| {
        error::hinted(
            format!("cannot read `{}`: {source}", file.display()),
            "give the path of `audience/followers.jsonl`",
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str::<Follower>(line).map_err(|source| {
                error::hinted(
                    format!("`{}` line {} is not a follower: {source}", file.display(), index + 1),
                    "restore the file from git (`git checkout -- audience/followers.jsonl`); nothing was imported",
                )
            })
        })
        .collect()
}

/// A CSV list: every address checked first, nothing added unless all are
/// good.
fn from_csv(file: &std::path::Path, consent: &str) -> anyhow::Result<Vec<Follower>> {
    if consent.trim().is_empty() {
        return Err(error::hinted(
            "`--consent` is empty",
            "say how and when these people agreed to hear from you",
        ));
    }
    let mut reader = csv::Reader::from_path(file).map_err(|source| {
        error::hinted(
            format!("cannot read `{}`: {source}", file.display()),
            "give a CSV file with a header line that has an `email` column",
        )
    })?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let Some(email_at) = column("email") else {
        return Err(error::hinted(
            format!("`{}` has no `email` column", file.display()),
            "the first line names the columns: `email` (and optionally `date`)",
        ));
    };
    let date_at = column("date");
    let now = super::now()?.unix_timestamp();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let mut followers = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record?;
        let line = index + 2;
        let email = record
            .get(email_at)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if let Err(message) = settings::check_email(&email) {
            return Err(error::hinted(
                format!("`{}` line {line}: {message}", file.display()),
                "fix the address or remove the line; nothing was imported",
            ));
        }
        let agreed = match date_at.and_then(|at| record.get(at)).map(str::trim) {
            None | Some("") => now,
            Some(day) => time::Date::parse(day, &format)
                .map(|day| day.midnight().assume_utc().unix_timestamp())
                .map_err(|_| {
                    error::hinted(
                        format!("`{}` line {line}: `{day}` is not a date", file.display()),
                        "write dates as YYYY-MM-DD; nothing was imported",
                    )
                })?,
        };
        followers.push(Follower {
            id: format!("{FOLLOWER_PREFIX}{}", uuid::Uuid::new_v4().simple()),
            email,
            asked: agreed,
            confirmed: Some(agreed),
            left: None,
            source: "import".into(),
            consent: consent.trim().to_owned(),
        });
    }
    Ok(followers)
}

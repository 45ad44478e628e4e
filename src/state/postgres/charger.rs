//! The charger: the one path every download's charge takes on PostgreSQL,
//! in batches (see [`charge_loop`]), each file's row locked, the download
//! rule applied ([`crate::downloads::apply`]), written and committed.

use deadpool_postgres::Pool;

use crate::downloads::{self, Ask, Standing, Usage};
use crate::state::{Charge, FileKey, StateError};
use crate::{error, state};

/// A count kept as BIGINT, read back as the `u32` the download rule uses.
pub(super) fn whole(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A charge waiting for the charger.
pub(super) struct ChargeJob {
    pub(super) key: FileKey,
    pub(super) ask: Ask,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Charge, String>>,
}

/// Most charges committed together.
const BATCH: usize = 256;

/// The charger: waits for a charge, takes every other waiting one, runs
/// them in one transaction, commits, then answers them all (as SQLite's
/// writer does). A busy file is locked once per batch rather than once per
/// download, so many downloads of one file share one commit; servers
/// sharing the database each lock a batch's files in one order, so they
/// wait on each other and never deadlock. One batch at a time: with four
/// at the database at once, waiting on each other's row locks, one server
/// made about half as many 302s a second (`scripts/bench serve`).
///
/// A batch takes two round trips (its files locked and read, then written
/// and committed), and the next batch's first travels with this one's
/// second: while a batch is decided, the charges that came meanwhile wait,
/// and their transaction begins, on the same connection, right after this
/// one commits, without waiting for this server to hear of the commit.
pub(super) async fn charge_loop(
    pool: Pool,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<ChargeJob>,
    used_up: state::UsedUp,
) {
    // A batch whose files are locked, on the connection that locked them.
    let mut held: Option<(deadpool_postgres::Object, Statements, Vec<ChargeJob>, Files)> = None;
    loop {
        let (client, statements, batch, files) = match held.take() {
            Some(held) => held,
            None => {
                let Some(first) = jobs.recv().await else {
                    return;
                };
                let batch = waiting(first, &mut jobs);
                let client = match pool.get().await {
                    Ok(client) => client,
                    Err(error) => {
                        fail(batch, &error::one_line(&StateError::from(error)));
                        continue;
                    }
                };
                let locked = async {
                    let statements = Statements::prepare(&client).await?;
                    let files = lock_files(&client, &statements, &batch).await?;
                    Ok::<_, StateError>((statements, files))
                };
                match locked.await {
                    Ok((statements, files)) => (client, statements, batch, files),
                    Err(error) => {
                        close(client);
                        fail(batch, &error::one_line(&error));
                        continue;
                    }
                }
            }
        };
        let decided = decide_batch(&batch, files);
        let next = jobs.try_recv().ok().map(|first| waiting(first, &mut jobs));
        let commit = async {
            match write_files(&client, &statements, &decided.writes).await {
                Ok(()) => {
                    used_up.add(decided.exhausted);
                    for (job, charge) in batch.into_iter().zip(decided.charges) {
                        let _ = job.reply.send(Ok(charge));
                    }
                    Ok(())
                }
                Err(error) => {
                    let message = error::one_line(&error);
                    fail(batch, &message);
                    Err(message)
                }
            }
        };
        let Some(next) = next else {
            if commit.await.is_err() {
                close(client);
            }
            continue;
        };
        // Polled in this order, so sent in this order: the commit, then
        // the next batch's lock.
        let lock = lock_files(&client, &statements, &next);
        let (committed, locked) = futures_util::future::join(commit, lock).await;
        match (committed, locked) {
            (Ok(()), Ok(files)) => held = Some((client, statements, next, files)),
            // The next batch is not charged after one that failed: the
            // connection may be in any state.
            (Err(message), _) => {
                close(client);
                fail(next, &message);
            }
            (Ok(()), Err(error)) => {
                close(client);
                fail(next, &error::one_line(&error));
            }
        }
    }
}

/// `first` and every other charge waiting, up to [`BATCH`].
pub(super) fn waiting(
    first: ChargeJob,
    jobs: &mut tokio::sync::mpsc::UnboundedReceiver<ChargeJob>,
) -> Vec<ChargeJob> {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// Answers every charge of `batch` with the error `message`: nothing of it
/// was used.
fn fail(batch: Vec<ChargeJob>, message: &str) {
    for job in batch {
        let _ = job.reply.send(Err(message.to_owned()));
    }
}

/// The files' ids as the columns `LOCK_FILES` and `WRITE_FILES` unnest:
/// purchases, products, versions and file names, in the ids' order.
fn key_columns<'a>(
    ids: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a str)>,
) -> [Vec<&'a str>; 4] {
    let mut columns: [Vec<&str>; 4] = Default::default();
    for (purchase, product, version, file) in ids {
        columns[0].push(purchase);
        columns[1].push(product);
        columns[2].push(version);
        columns[3].push(file);
    }
    columns
}

/// Gives a connection back to the pool after a pipelined transaction, or,
/// if it failed (the transaction may still be open), closes it.
pub(super) fn release<T>(client: deadpool_postgres::Object, result: &Result<T, StateError>) {
    if result.is_err() {
        close(client);
    }
}

/// Closes a connection rather than giving it back to the pool (which would
/// hand on whatever transaction it has open).
fn close(client: deadpool_postgres::Object) {
    drop(deadpool_postgres::Object::take(client));
}

/// A batch's files as locked and read, in their ids' order (the order
/// they were locked and are written in): each file's id, its standing,
/// and whether a charge changed it.
pub(super) type Files = Vec<(Id, Standing, bool)>;

/// A file's id, as read back from the database ([`FileKey::id`]).
type Id = (String, String, String, String);

/// An id, borrowed: ordered as [`FileKey::parts`] is.
fn parts(id: &Id) -> (&str, &str, &str, &str) {
    (&id.0, &id.1, &id.2, &id.3)
}

/// Where the file of `key` is in `files`, found without copying its id
/// (this runs for every charge).
fn file_of(files: &Files, key: &FileKey) -> Option<usize> {
    files
        .binary_search_by(|(id, ..)| parts(id).cmp(&key.parts()))
        .ok()
}

/// The charger's statements, prepared on a connection before any request
/// of a batch is made: tokio-postgres runs requests in the order they are
/// first polled, so [`write_files`] and [`lock_files`] await nothing
/// before their requests are sent. (A `prepare_cached` of its own in
/// `write_files`, a round trip the first time on a connection, let the
/// next batch's lock through before this one's write: two servers gave
/// 11 downloads of a limit of 5.)
struct Statements {
    lock: tokio_postgres::Statement,
    revoked: tokio_postgres::Statement,
    write: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(client: &deadpool_postgres::Client) -> Result<Statements, StateError> {
        Ok(Statements {
            lock: client.prepare_cached(LOCK_FILES).await?,
            revoked: client
                .prepare_cached("SELECT payment_intent FROM revoked WHERE payment_intent = ANY($1)")
                .await?,
            write: client.prepare_cached(WRITE_FILES).await?,
        })
    }
}

/// Begins a batch's transaction and locks and reads its files, in one
/// round trip: tokio-postgres pipelines requests made together, in the
/// order they are made. Files are locked in their keys' order (one
/// statement, `ORDER BY`), the order every server uses. One statement for
/// all the files rather than one each: with downloads spread over 64
/// purchases, a statement per file (pipelined too) made about a third as
/// many 302s a second, and the same on one busy file (`scripts/bench
/// serve`).
async fn lock_files(
    client: &deadpool_postgres::Client,
    statements: &Statements,
    batch: &[ChargeJob],
) -> Result<Files, StateError> {
    let mut keys: Vec<&FileKey> = batch.iter().map(|job| &job.key).collect();
    keys.sort_by(|a, b| a.parts().cmp(&b.parts()));
    keys.dedup_by(|a, b| a.parts() == b.parts());
    let [purchases, products, versions, names] = key_columns(keys.iter().map(|key| key.parts()));
    let intents: Vec<&str> = keys
        .iter()
        .filter_map(|key| key.payment_intent.as_deref())
        .collect();
    // Committed as every other write is, on disk before the downloads
    // leave (see the module's comment).
    let (_, rows, revoked) = futures_util::future::try_join3(
        client.batch_execute("BEGIN"),
        client.query(
            &statements.lock,
            &[&purchases, &products, &versions, &names],
        ),
        client.query(&statements.revoked, &[&intents]),
    )
    .await?;
    let revoked: std::collections::HashSet<String> = revoked.iter().map(|row| row.get(0)).collect();
    let mut files: Files = rows
        .iter()
        .map(|row| {
            let id = (row.get(0), row.get(1), row.get(2), row.get(3));
            let file = Standing {
                usage: Usage {
                    bytes: row.get::<_, i64>(4).max(0) as u64,
                    whole: whole(row.get(5)),
                },
                last_redirect: row.get(6),
                extra: whole(row.get(7)),
                revoked: false,
            };
            (id, file, false)
        })
        .collect();
    files.sort_by(|(a, ..), (b, ..)| a.cmp(b));
    for key in &keys {
        let at = file_of(&files, key).ok_or_else(|| StateError::Postgres {
            what: "a locked download did not come back",
            source: "no row returned for a file of the batch".into(),
        })?;
        files[at].1.revoked = key
            .payment_intent
            .as_ref()
            .is_some_and(|intent| revoked.contains(intent));
    }
    Ok(files)
}

/// What a batch decided: each charge's answer, the files whose redirects
/// are now used up, and the files' new standings.
struct Decided {
    charges: Vec<Charge>,
    exhausted: Vec<FileKey>,
    writes: Vec<(Id, Standing)>,
}

/// Runs a batch's charges in order by the download rule, each on what the
/// ones before left of its file.
fn decide_batch(batch: &[ChargeJob], mut files: Files) -> Decided {
    let mut charges = Vec::with_capacity(batch.len());
    let mut exhausted = Vec::new();
    for ChargeJob { key, ask, .. } in batch {
        let at = file_of(&files, key).unwrap_or_else(|| unreachable!("every key was locked"));
        let (_, file, changed) = &mut files[at];
        let decision = downloads::apply(file, *ask);
        *changed |= decision.changed;
        if decision.used_up {
            exhausted.push(key.clone());
        }
        charges.push(decision.charge);
    }
    // Written in the order they were locked.
    let writes = files
        .into_iter()
        .filter(|(_, _, changed)| *changed)
        .map(|(id, file, _)| (id, file))
        .collect();
    Decided {
        charges,
        exhausted,
        writes,
    }
}

/// Writes a batch's files and commits, in one round trip.
async fn write_files(
    client: &deadpool_postgres::Client,
    statements: &Statements,
    writes: &[(Id, Standing)],
) -> Result<(), StateError> {
    let [purchases, products, versions, names] =
        key_columns(writes.iter().map(|(id, _)| parts(id)));
    let bytes: Vec<i64> = writes
        .iter()
        .map(|(_, file)| file.usage.bytes as i64)
        .collect();
    let counts: Vec<i64> = writes
        .iter()
        .map(|(_, file)| i64::from(file.usage.whole))
        .collect();
    let redirects: Vec<Option<i64>> = writes.iter().map(|(_, file)| file.last_redirect).collect();
    // An UPDATE that fails turns the COMMIT into a rollback, and its error
    // is the one returned.
    futures_util::future::try_join(
        client.execute(
            &statements.write,
            &[
                &purchases, &products, &versions, &names, &bytes, &counts, &redirects,
            ],
        ),
        client.batch_execute("COMMIT"),
    )
    .await?;
    Ok(())
}

/// Locks the rows of files (making those that are new, at zero) until the
/// transaction ends, in the order given, and reads each with its
/// purchase's grant.
const LOCK_FILES: &str = "
    INSERT INTO downloads AS d (purchase, product, version, file)
    SELECT k.purchase, k.product, k.version, k.file
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
        WITH ORDINALITY AS k (purchase, product, version, file, n)
    ORDER BY k.n
    ON CONFLICT (purchase, product, version, file) DO UPDATE SET count = d.count
    RETURNING d.purchase, d.product, d.version, d.file, d.bytes, d.count,
        d.last_redirect,
        COALESCE((SELECT extra FROM grants WHERE grants.purchase = d.purchase), 0)";

/// Writes files' standings after a batch of charges.
const WRITE_FILES: &str = "
    UPDATE downloads AS d
    SET bytes = w.bytes, count = w.count, last_redirect = w.last_redirect
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
            $6::bigint[], $7::bigint[])
        AS w (purchase, product, version, file, bytes, count, last_redirect)
    WHERE d.purchase = w.purchase AND d.product = w.product AND d.version = w.version
        AND d.file = w.file";

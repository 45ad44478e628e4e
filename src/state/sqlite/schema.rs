//! The schema, as numbered migrations applied once each (SQLite's
//! `user_version` records how many), at open.

use rusqlite::Connection;

/// The schema, one step per version: the database's `user_version` says how
/// many have run. A step runs once, in a transaction with the new version.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: purchases, downloads, grants, revocations, events, mail, opt-outs.
    "CREATE TABLE IF NOT EXISTS purchases (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        product TEXT NOT NULL,
        version TEXT NOT NULL,
        payment_intent TEXT,
        created INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS purchases_email ON purchases (email);
    CREATE INDEX IF NOT EXISTS purchases_payment_intent ON purchases (payment_intent);
    CREATE TABLE IF NOT EXISTS downloads (
        purchase TEXT NOT NULL,
        version TEXT NOT NULL,
        file TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (purchase, version, file)
    );
    CREATE TABLE IF NOT EXISTS grants (
        purchase TEXT PRIMARY KEY,
        extra INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS revoked (
        payment_intent TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        received INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS mail_queue (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        purchase TEXT,
        dedupe TEXT UNIQUE,
        created INTEGER NOT NULL,
        sent INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE TABLE IF NOT EXISTS opt_outs (
        email TEXT PRIMARY KEY,
        at INTEGER NOT NULL
    );",
    // 2: mail retries wait (databases of the first release lack it).
    "ALTER TABLE mail_queue ADD COLUMN next_attempt INTEGER NOT NULL DEFAULT 0;",
    // 3: downloads counted in bytes, continuations of redirects, and when
    // the server first saw a purchase.
    "ALTER TABLE downloads ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE downloads ADD COLUMN last_redirect INTEGER;
    ALTER TABLE downloads ADD COLUMN continuations INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE purchases ADD COLUMN seen INTEGER;",
    // 4: what was paid, for receipts and the thanks page; the libraries a
    // buyer asked for by email.
    "ALTER TABLE purchases ADD COLUMN amount INTEGER;
    ALTER TABLE purchases ADD COLUMN currency TEXT;
    ALTER TABLE purchases ADD COLUMN discount INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE purchases ADD COLUMN tax INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS libraries (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        created INTEGER NOT NULL
    );",
    // 5: downloads counted per product as well, for a bundle's purchase
    // gives several products' files (two may both have `book.pdf`). A
    // purchase's own product is the one its counts were of until now.
    "CREATE TABLE downloads_by_product (
        purchase TEXT NOT NULL,
        product TEXT NOT NULL,
        version TEXT NOT NULL,
        file TEXT NOT NULL,
        count INTEGER NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0,
        last_redirect INTEGER,
        continuations INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (purchase, product, version, file)
    );
    INSERT INTO downloads_by_product
        SELECT d.purchase, COALESCE(p.product, ''), d.version, d.file, d.count, d.bytes,
               d.last_redirect, d.continuations
        FROM downloads d LEFT JOIN purchases p ON p.id = d.purchase;
    DROP TABLE downloads;
    ALTER TABLE downloads_by_product RENAME TO downloads;",
    // 6: the rate limits' counts (a digest of each key, one row a hit).
    "CREATE TABLE rate_hits (
        key TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX rate_hits_key ON rate_hits (key, at);
    CREATE INDEX rate_hits_at ON rate_hits (at);",
    // 7: buyers' withdrawals (the EU withdrawal function) and their refunds.
    "CREATE TABLE withdrawals (
        purchase TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        payment_intent TEXT,
        requested INTEGER NOT NULL,
        name TEXT NOT NULL,
        reason TEXT NOT NULL,
        decision TEXT NOT NULL,
        waived INTEGER,
        refund TEXT,
        refund_status TEXT,
        refused INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        settled INTEGER
    );
    CREATE INDEX withdrawals_payment_intent ON withdrawals (payment_intent);",
    // 8: followers (double opt-in), one row an address.
    "CREATE TABLE followers (
        email TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        asked INTEGER NOT NULL,
        confirmed INTEGER,
        left_at INTEGER,
        source TEXT NOT NULL,
        consent TEXT NOT NULL
    );",
    // 9: readers' devices: the Kindle address EPUBs go to, and the moment
    // before which their OPDS feeds' addresses no longer hold.
    "CREATE TABLE readers (
        email TEXT PRIMARY KEY,
        kindle TEXT,
        feeds_from INTEGER NOT NULL DEFAULT 0
    );",
    // 10: gifts: who paid, to whom (the purchase's address, unless it was
    // not one), the message, and when its mail goes.
    "CREATE TABLE gifts (
        purchase TEXT PRIMARY KEY,
        buyer TEXT NOT NULL,
        recipient TEXT NOT NULL,
        deliverable INTEGER NOT NULL,
        message TEXT NOT NULL,
        send_at INTEGER NOT NULL,
        send_on TEXT,
        unread_day TEXT
    );",
    // 11: visits counted per day, kind (a page's view, a checkout
    // started), product and source: a counter per key, no row per visit.
    "CREATE TABLE visits (
        day TEXT NOT NULL,
        kind TEXT NOT NULL,
        product TEXT NOT NULL,
        source TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (day, kind, product, source)
    );",
];

/// Brings the database at `connection` to the newest schema.
pub(super) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: usize =
        connection.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let transaction = connection.transaction()?;
        // Databases made before versions were kept have every table of
        // step 1 and maybe the column of step 2.
        let skip = index == 1
            && transaction.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('mail_queue') WHERE name = 'next_attempt'",
                [],
                |row| row.get::<_, i64>(0),
            )? > 0;
        if !skip {
            transaction.execute_batch(step)?;
        }
        transaction.pragma_update(None, "user_version", (index + 1) as i64)?;
        transaction.commit()?;
    }
    Ok(())
}

/// The schema version this build migrates to.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

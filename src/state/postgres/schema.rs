//! The schema, as numbered migrations applied once each (recorded in
//! `shop_schema`), under an advisory lock so that servers starting
//! together migrate once.

/// The advisory lock that migrations hold ("shop" in ASCII).
pub(super) const MIGRATION_LOCK: i64 = 0x73686f70;

/// The schema, one step per version: `shop_schema.version` says how many
/// have run. The first step is the SQLite schema as of its fifth version;
/// the second, the rate limits' counts (a row per key, its recent hits in
/// an array, so that the row's lock serializes a key's checks).
pub(super) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE purchases (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        product TEXT NOT NULL,
        version TEXT NOT NULL,
        payment_intent TEXT,
        created BIGINT NOT NULL,
        seen BIGINT,
        amount BIGINT,
        currency TEXT,
        discount BIGINT NOT NULL DEFAULT 0,
        tax BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX purchases_email ON purchases (lower(email));
    CREATE INDEX purchases_payment_intent ON purchases (payment_intent);
    CREATE TABLE downloads (
        purchase TEXT NOT NULL,
        product TEXT NOT NULL,
        version TEXT NOT NULL,
        file TEXT NOT NULL,
        count BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        last_redirect BIGINT,
        continuations BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (purchase, product, version, file)
    );
    CREATE TABLE grants (
        purchase TEXT PRIMARY KEY,
        extra BIGINT NOT NULL
    );
    CREATE TABLE revoked (
        payment_intent TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        received BIGINT NOT NULL
    );
    CREATE TABLE mail_queue (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        purchase TEXT,
        dedupe TEXT UNIQUE,
        created BIGINT NOT NULL,
        sent BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX mail_queue_due ON mail_queue (next_attempt, id) WHERE sent IS NULL;
    CREATE TABLE opt_outs (
        email TEXT PRIMARY KEY,
        at BIGINT NOT NULL
    );
    CREATE TABLE libraries (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        created BIGINT NOT NULL
    );",
    "
    CREATE TABLE rate_limits (
        key TEXT PRIMARY KEY,
        hits BIGINT[] NOT NULL DEFAULT '{}',
        last BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX rate_limits_last ON rate_limits (last);",
    "
    CREATE TABLE withdrawals (
        purchase TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        payment_intent TEXT,
        requested BIGINT NOT NULL,
        name TEXT NOT NULL,
        reason TEXT NOT NULL,
        decision TEXT NOT NULL,
        waived BIGINT,
        refund TEXT,
        refund_status TEXT,
        refused BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        settled BIGINT
    );
    CREATE INDEX withdrawals_payment_intent ON withdrawals (payment_intent);",
    "
    CREATE TABLE followers (
        email TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        asked BIGINT NOT NULL,
        confirmed BIGINT,
        left_at BIGINT,
        source TEXT NOT NULL,
        consent TEXT NOT NULL
    );",
    "
    CREATE TABLE readers (
        email TEXT PRIMARY KEY,
        kindle TEXT,
        feeds_from BIGINT NOT NULL DEFAULT 0
    );",
    "
    CREATE TABLE gifts (
        purchase TEXT PRIMARY KEY,
        buyer TEXT NOT NULL,
        recipient TEXT NOT NULL,
        deliverable BIGINT NOT NULL,
        message TEXT NOT NULL,
        send_at BIGINT NOT NULL,
        send_on TEXT,
        unread_day TEXT
    );",
    "
    CREATE TABLE visits (
        day TEXT NOT NULL,
        kind TEXT NOT NULL,
        product TEXT NOT NULL,
        source TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (day, kind, product, source)
    );",
];

/// The schema version this build migrates a PostgreSQL database to.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

// SPDX-License-Identifier: Apache-2.0
// The SQLite store's schema and its migration.

use crate::Error;

use super::{store_err, Db};

/// The schema version this code writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// The SQLite header's `application_id` of a meter store ("MMTR").
const APPLICATION_ID: i64 = 0x4d4d_5452;

/// Refuses a file that is another application's database: ours has our `application_id`,
/// or (made before it was set) our `meta` and `buckets` tables; a new store has no tables at
/// all. `Ok(Err(_))` is the refusal; `Err` means the file could not be read.
pub(super) fn check_ours(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
) -> Result<Result<(), Error>, Error> {
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(store_err)?;
    if app == APPLICATION_ID {
        return Ok(Ok(()));
    }
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(store_err)?;
    let ours = ["meta", "buckets"]
        .iter()
        .all(|t| names.iter().any(|n| n == t));
    if app == 0 && (names.is_empty() || ours) {
        return Ok(Ok(()));
    }
    Ok(Err(Error::invalid_state(format!(
        "meter store {}: not a meter store (application id {app:#x}, {} other table(s)): \
         another application's database? Give the meter a file of its own",
        path.display(),
        names.len()
    ))))
}

/// [`check_ours`] before the claim touches the file (it tightens the permissions and puts
/// a -lock file beside it), reading only the main file: `immutable=1` opens no -wal or -shm
/// (the file may be a live store under another name, which the claim then refuses). A file
/// that cannot be read this way is left to the checks after the claim.
pub(super) fn refuse_foreign(path: &std::path::Path) -> Result<(), Error> {
    let Some(p) = path.to_str() else {
        return Ok(());
    };
    let escaped = p
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(c) = rusqlite::Connection::open_with_flags(format!("file:{escaped}?immutable=1"), flags)
    else {
        return Ok(());
    };
    match check_ours(&c, path) {
        Ok(refused) => refused,
        Err(_) => Ok(()),
    }
}

/// Migrations: entry `i` moves the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE buckets (
    id                 INTEGER PRIMARY KEY,
    product_code       TEXT    NOT NULL DEFAULT '',
    license_arn        TEXT    NOT NULL DEFAULT '',
    customer_kind      TEXT    NOT NULL,
    customer           TEXT    NOT NULL,
    dimension          TEXT    NOT NULL,
    hour               INTEGER NOT NULL,
    quantity           INTEGER NOT NULL DEFAULT 0,
    allocations        TEXT,
    state              TEXT    NOT NULL DEFAULT 'pending',
    sealed_quantity    INTEGER,
    sealed_at          INTEGER,
    sent_at            INTEGER,
    attempts           INTEGER NOT NULL DEFAULT 0,
    alarmed            INTEGER NOT NULL DEFAULT 0,
    metering_record_id TEXT,
    UNIQUE (product_code, license_arn, customer_kind, customer, dimension, hour)
);
CREATE INDEX buckets_by_state ON buckets (state, hour);
CREATE TRIGGER buckets_sealed_quantity_frozen
BEFORE UPDATE OF sealed_quantity ON buckets
WHEN OLD.sealed_quantity IS NOT NULL AND NEW.sealed_quantity IS NOT OLD.sealed_quantity
BEGIN
    SELECT RAISE(ABORT, 'a sealed quantity never changes');
END;
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY,
    bucket_id     INTEGER NOT NULL,
    product_code  TEXT    NOT NULL,
    license_arn   TEXT    NOT NULL,
    customer_kind TEXT    NOT NULL,
    customer      TEXT    NOT NULL,
    dimension     TEXT    NOT NULL,
    hour          INTEGER NOT NULL,
    quantity      INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    at            INTEGER NOT NULL
);
CREATE TABLE registered (
    product_code   TEXT    NOT NULL,
    license_arn    TEXT    NOT NULL,
    customer_kind  TEXT    NOT NULL,
    customer       TEXT    NOT NULL,
    dimension      TEXT    NOT NULL,
    from_hour      INTEGER NOT NULL,
    filled_through INTEGER NOT NULL,
    PRIMARY KEY (product_code, license_arn, customer_kind, customer, dimension)
);
"#,
    // Version 2: each bucket's part of its `MeterUsage` client token, random, drawn when the
    // bucket is made (see `send::client_token`): copies of a store (an image taken after a
    // test run) made before a bucket draw their own, and a copy of the bucket (a restored
    // backup) keeps it. Buckets made before have none, and keep the token they had.
    r#"
ALTER TABLE buckets ADD COLUMN token_nonce TEXT;
CREATE TRIGGER buckets_token_nonce
AFTER INSERT ON buckets
WHEN NEW.token_nonce IS NULL
BEGIN
    UPDATE buckets SET token_nonce = lower(hex(randomblob(8))) WHERE id = NEW.id;
END;
"#,
];

/// The `token_nonce` of a bucket that release 0.1.0 may have sent, whose resends carry
/// 0.1.0's client token (see `send::client_token`).
pub(crate) const V1_TOKEN: &str = "v1";

/// Makes the store's identity (`meta.store_id`) unless it has one.
pub(super) const MAKE_STORE_ID: &str =
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))";

impl Db {
    pub(super) fn migrate(&mut self) -> Result<(), Error> {
        // IMMEDIATE: the version is read under the write lock, so no other connection can
        // migrate between the read and the write (a deferred read would fail to upgrade with
        // SQLITE_BUSY_SNAPSHOT instead of waiting).
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(store_err)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(store_err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::invalid_state(format!(
                "meter store: schema version {version} is newer than this library's {SCHEMA_VERSION}"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(store_err)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(store_err)?;
        }
        // Not a migration: an index changes no row, so an older release (which refuses a
        // newer schema version) still opens the store. `requeue()` finds each bucket's dead
        // letter by it, where it scanned every dead letter per bucket under the store's lock.
        tx.execute_batch(
            "CREATE INDEX IF NOT EXISTS dead_letters_by_bucket ON dead_letters (bucket_id)",
        )
        .map_err(store_err)?;
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))
            .map_err(store_err)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('library_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [crate::VERSION],
        )
        .map_err(store_err)?;
        // The store's identity (see `Db::store_id`), made with the store: a copy of it (a
        // backup restored) then sends the client tokens the original sent for the buckets it
        // copied, which the service meters once; made at the first send, a copy taken before
        // it made its own and billed the hours again. (Buckets made after the copy draw
        // their own part of the token: see migration 2.)
        let made_id = tx.execute(MAKE_STORE_ID, []).map_err(store_err)? == 1;
        if made_id {
            // A store of release 0.1.0 (none older has buckets and no identity): its sends
            // carried a `MeterUsage` client token of the product, dimension and hour alone. A
            // bucket it may have sent (left `sending`, or put back to `sealed` after a send,
            // which 0.1.0 counted in `attempts`, cleared below) is sent again under that
            // token, which the service meters once (see `send::client_token`).
            tx.execute(
                &format!(
                    "UPDATE buckets SET token_nonce = '{V1_TOKEN}' WHERE token_nonce IS NULL
                     AND (state = 'sending' OR (state = 'sealed' AND attempts > 0))"
                ),
                [],
            )
            .map_err(store_err)?;
        }
        // `buckets.attempts` counts the sends whose answer was lost (see
        // `SendItem::unanswered`); earlier releases counted every send, a throttled one too.
        // Their counts are cleared once, marked in `meta`: a bucket left `sending` is counted
        // again by the next seal. The schema is the same, so an earlier release still opens
        // the store.
        let cleared = tx
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('attempts', 'unanswered')",
                [],
            )
            .map_err(store_err)?;
        if cleared == 1 {
            tx.execute(
                "UPDATE buckets SET attempts = 0 WHERE state IN ('pending', 'sealed', 'sending', 'dead_lettered')",
                [],
            )
            .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }
}

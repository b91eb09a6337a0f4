// SPDX-License-Identifier: Apache-2.0
// Tests of the SQLite store.

use super::schema::SCHEMA_VERSION;
use super::*;

/// Product `p`'s scope: no grace, the service's 6-hour window.
fn scope() -> Scope {
    Scope {
        product_code: "p".into(),
        grace: 0,
        window: 6 * 3600,
        alarm_before: 3600,
        zero_fill: false,
    }
}

/// `requeue()` deletes each bucket's dead letter by its bucket id, and its reason filter
/// looks one up the same way, under the store's lock. Without an index on it each was a scan
/// of every dead letter (which are never pruned): a requeue of a few thousand buckets over
/// a million dead letters held every `record()` for minutes (found by a review). Made at
/// open, not by a migration, so that an older release still opens the store.
#[test]
fn dead_letters_are_found_by_their_bucket_through_an_index() {
    let db = Db::open(None, true).unwrap();
    let plan: Vec<String> = db
        .conn
        .prepare("EXPLAIN QUERY PLAN DELETE FROM dead_letters WHERE bucket_id = 1")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|p| p.contains("USING") && p.contains("INDEX")),
        "{plan:?}"
    );
    assert_eq!(db.user_version(), SCHEMA_VERSION);
}

#[test]
fn migrates_and_freezes_sealed_quantities() {
    let mut db = Db::open(None, true).unwrap();
    assert_eq!(db.user_version(), SCHEMA_VERSION);
    let c = Customer::Identifier("c".into());
    let tx = db.transaction().unwrap();
    assert_eq!(
        Db::apply(&tx, "p", Some(&c), "d", 0, 5, None, 7200, None).unwrap(),
        Applied::Added
    );
    tx.commit().unwrap();
    let scope = scope();
    let p = db.prepare(&scope, 3600).unwrap();
    assert_eq!(p.sealed, 1);
    assert_eq!(p.items[0].quantity, 5);
    // Late: lands in the current hour.
    let tx = db.transaction().unwrap();
    assert_eq!(
        Db::apply(&tx, "p", Some(&c), "d", 0, 2, None, 3600, None).unwrap(),
        Applied::Moved(3600)
    );
    tx.commit().unwrap();
    let err = db
        .conn
        .execute("UPDATE buckets SET sealed_quantity = 9 WHERE hour = 0", [])
        .unwrap_err();
    assert!(err.to_string().contains("never changes"), "{err}");
}

/// A store an earlier release wrote counted every send in `attempts`, a throttled one too,
/// and its buckets would have expired as possibly billed: the counts are cleared once, and a
/// bucket left `sending` is counted again by the next seal (found by a review).
#[test]
fn attempts_an_earlier_release_counted_are_cleared_once() {
    let dir = std::env::temp_dir().join(format!("mm-attempts-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("meter.db");
    let bucket = |db: &Db, hour: i64, state: &str, attempts: i64| {
        db.conn
            .execute(
                "INSERT INTO buckets (product_code, customer_kind, customer, dimension, hour,
                                      quantity, state, sealed_quantity, attempts)
                 VALUES ('p', 'C', 'c', 'd', ?1, 5, ?2, 5, ?3)",
                params![hour, state, attempts],
            )
            .unwrap();
    };
    {
        let db = Db::open(Some(&path), true).unwrap();
        // As an earlier release left it: no mark, counts of answered sends.
        db.conn
            .execute("DELETE FROM meta WHERE key = 'attempts'", [])
            .unwrap();
        bucket(&db, 0, "sealed", 2);
        bucket(&db, 3600, "sending", 3);
    }
    let mut db = Db::open(Some(&path), true).unwrap();
    let p = db.prepare(&scope(), 6 * 3600).unwrap();
    let mut unanswered: Vec<(i64, bool)> = p.items.iter().map(|i| (i.hour, i.unanswered)).collect();
    unanswered.sort();
    assert_eq!(unanswered, [(0, false), (3600, true)]);
    // Once: a count made since stays.
    drop(db);
    let mut db = Db::open(Some(&path), true).unwrap();
    db.conn
        .execute("UPDATE buckets SET state = 'sealed' WHERE hour = 3600", [])
        .unwrap();
    let p = db.prepare(&scope(), 6 * 3600).unwrap();
    let mut unanswered: Vec<(i64, bool)> = p.items.iter().map(|i| (i.hour, i.unanswered)).collect();
    unanswered.sort();
    assert_eq!(unanswered, [(0, false), (3600, true)]);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store of schema version 1 (no token nonce) that has an identity (a release after 0.1.0
/// made it at its first send) moves to version 2: its buckets keep no nonce, so one
/// `sending` at the upgrade is resent with the token it was sent with, and every bucket made
/// afterwards draws its own. (One with no identity is 0.1.0's: see the meter's tests.)
#[test]
fn version_1_buckets_keep_their_tokens_and_new_ones_draw_a_nonce() {
    let dir = std::env::temp_dir().join(format!("mm-v1-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("meter.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(schema::MIGRATIONS[0]).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1; PRAGMA application_id = 1296913490;
             INSERT INTO meta (key, value) VALUES ('store_id', '0123456789abcdef0123456789abcdef');
             INSERT INTO buckets (product_code, customer_kind, customer, dimension, hour, quantity,
                                  state, sealed_quantity)
             VALUES ('p', 'C', 'c', 'd', 0, 5, 'sending', 5);",
        )
        .unwrap();
    }
    let mut db = Db::open(Some(&path), true).unwrap();
    assert_eq!(db.user_version(), SCHEMA_VERSION);
    let c = Customer::Identifier("c".into());
    for (hour, now) in [(3600, 7200), (7200, 7200)] {
        let tx = db.transaction().unwrap();
        Db::apply(&tx, "p", Some(&c), "d", hour, 1, None, now, None).unwrap();
        tx.commit().unwrap();
    }
    let nonces: Vec<(i64, Option<String>)> = db
        .conn
        .prepare("SELECT hour, token_nonce FROM buckets ORDER BY hour")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(nonces.len(), 3);
    assert_eq!(nonces[0], (0, None));
    let (one, two) = (nonces[1].1.clone().unwrap(), nonces[2].1.clone().unwrap());
    assert!(
        one.len() == 16 && one.chars().all(|c| c.is_ascii_hexdigit()),
        "{one}"
    );
    assert_ne!(one, two);
    let scope = scope();
    let p = db.prepare(&scope, 7200).unwrap();
    let sent: Vec<(i64, Option<String>)> = p
        .items
        .iter()
        .map(|i| (i.hour, i.token_nonce.clone()))
        .collect();
    assert_eq!(sent, vec![(0, None), (3600, Some(one))]);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_store_id_is_made_once_and_kept() {
    let mut a = Db::open(None, true).unwrap();
    let id = a.store_id().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a.store_id().unwrap(), id);
    let mut b = Db::open(None, true).unwrap();
    assert_ne!(b.store_id().unwrap(), id);
}

#[test]
fn multi_row_upserts_add_or_change_nothing() {
    let mut db = Db::open(None, true).unwrap();
    let (a, b) = (
        Customer::Identifier("a".into()),
        Customer::Identifier("b".into()),
    );
    let quantity = |db: &Db, c: &str, hour: i64| -> Option<i64> {
        db.conn
            .query_row(
                "SELECT quantity FROM buckets WHERE customer = ?1 AND hour = ?2",
                params![c, hour],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    };
    // 40 rows: two statements (32 + 8), each bucket twice (a group never has a bucket
    // twice, but a statement may), new buckets and then existing ones.
    let mut rows = Vec::new();
    for i in 0..40i64 {
        rows.push((
            Some(if i % 2 == 0 { &a } else { &b }),
            "d",
            (i % 20) * 3600,
            1,
        ));
    }
    for expected in [2, 4] {
        let mut tx = db.transaction().unwrap();
        assert!(Db::apply_many(&mut tx, "p", &rows, None).unwrap());
        tx.commit().unwrap();
        assert_eq!(quantity(&db, "a", 0), Some(expected));
        assert_eq!(quantity(&db, "a", 10 * 3600), Some(expected));
        assert_eq!(quantity(&db, "b", 3600), Some(expected));
        assert_eq!(quantity(&db, "a", 3600), None);
    }
    // Hour 0 sealed: the whole call changes nothing and says so.
    let scope = Scope {
        product_code: "p".into(),
        grace: 0,
        window: 100 * 3600,
        alarm_before: 3600,
        zero_fill: false,
    };
    db.prepare(&scope, 3600).unwrap();
    let mut tx = db.transaction().unwrap();
    assert!(!Db::apply_many(&mut tx, "p", &rows, None).unwrap());
    tx.commit().unwrap();
    assert_eq!(quantity(&db, "a", 0), Some(4));
    assert_eq!(quantity(&db, "b", 3600), Some(4));
}

/// A path that names another application's SQLite database (a typo, a shared data
/// directory) is refused before anything in it changes: the meter switched it to WAL for good
/// and added its tables beside the other application's, or, with that database's
/// `user_version` at 1, took it for a store and failed on every record (found by a hostile
/// review). A store of this library's, new or existing, opens as before.
#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = std::env::temp_dir().join(format!("mm-foreign-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    for version in [0, 1] {
        let path = dir.join(format!("app-{version}.db"));
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "CREATE TABLE orders (id INTEGER); PRAGMA user_version = {version};"
            ))
            .unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = Db::open(Some(&path), true).err().expect("refused");
        assert!(e.message().contains("not a meter store"), "{e}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o664, "the permissions were changed");
        let lock = format!("{}-lock", path.display());
        assert!(
            !std::path::Path::new(&lock).exists(),
            "a lock file was made"
        );
        let c = Connection::open(&path).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "the journal mode was changed");
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "tables were added");
    }
    // A new store, then the same store opened again.
    let path = dir.join("meter.db");
    drop(Db::open(Some(&path), true).unwrap());
    drop(Db::open(Some(&path), true).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store that is busy (another process holds its write lock past the busy timeout), full
/// or failing I/O may take the same call later: such errors are retryable, and say what
/// happened to the call. Before, every store error was a non-retryable `InvalidState`, and
/// a caller that retries only retryable errors dropped the usage (found by a hostile review).
#[test]
fn a_busy_full_or_failing_store_is_retryable() {
    use rusqlite::ffi;
    let sqlite = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
    for (code, says) in [
        (ffi::SQLITE_BUSY, "another connection"),
        (ffi::SQLITE_LOCKED, "another connection"),
        (ffi::SQLITE_FULL, "disk is full"),
        (ffi::SQLITE_IOERR, "cannot read or write"),
    ] {
        let e = store_err(sqlite(code));
        assert!(e.is_retryable(), "{code}: {e}");
        assert!(e.message().contains(says), "{code}: {e}");
        assert!(e.message().contains("may succeed if made again"), "{e}");
    }
    for code in [
        ffi::SQLITE_CORRUPT,
        ffi::SQLITE_CONSTRAINT,
        ffi::SQLITE_NOTADB,
    ] {
        assert!(!store_err(sqlite(code)).is_retryable(), "{code}");
    }
}

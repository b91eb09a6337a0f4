// SPDX-License-Identifier: Apache-2.0
// The meter's SQLite store: versioned schema, bucket state machine, dead letters.

//! The SQLite side of the meter. Every state change is one transaction.
//!
//! Bucket states: `pending` (still accumulating) → `sealed` (quantity frozen in
//! `sealed_quantity`) → `sending` (a call carrying exactly `sealed_quantity` may have reached
//! the service) → `acked` | `dead_lettered` | `expired`. A trigger refuses any change to a
//! `sealed_quantity` once written.

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::owner::{process_generation, Owner};
use super::{Customer, MeterEvent, MeterEventKind};
use crate::Error;

/// The schema version this code writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Migrations: entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// Rows per multi-row upsert of a group commit (7 parameters each).
const MULTI_ROWS: usize = 32;

pub(crate) fn store_err(e: rusqlite::Error) -> Error {
    Error::invalid_state(format!("meter store: {e}")).with_source(e)
}

/// Aggregated allocations: canonical tags JSON (`""` for none) → quantity.
pub(crate) type Allocs = BTreeMap<String, i64>;

/// One bucket ready to be sent.
#[derive(Clone, Debug)]
pub(crate) struct SendItem {
    pub id: i64,
    pub customer: Customer,
    pub dimension: String,
    pub hour: i64,
    pub quantity: i64,
    pub allocations: Option<Allocs>,
}

/// The result of sending one bucket.
pub(crate) enum Outcome {
    Ack(i64, String),
    Dead(i64, String, String),
    Expire(i64),
    /// Back to `sealed`: certainly not processed (throttled, unprocessed).
    Revert(i64),
}

/// What [`Db::apply`] did with a quantity.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Added to the event's own hour.
    Added,
    /// The event's hour was sealed: added to this hour instead.
    Moved(i64),
    /// Nothing added: the bucket's sum would have been this, past the model's maximum.
    Overflow(i64),
}

/// What adding to one hour's bucket did.
enum One {
    Added,
    /// The hour is no longer pending.
    Closed,
    Overflow(i64),
}

/// What `prepare` found.
#[derive(Default)]
pub(crate) struct Prepared {
    pub sealed: usize,
    pub items: Vec<SendItem>,
    pub events: Vec<MeterEvent>,
}

/// Meter-wide settings the store needs.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub product_code: String,
    pub grace: i64,
    pub window: i64,
    pub alarm_before: i64,
    pub zero_fill: bool,
}

/// id, license, customer kind, customer, dimension, hour, sealed quantity, allocations, alarmed.
type SealedRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    bool,
);

pub(crate) struct Db {
    /// Closed on drop only in the process that opened it (see `owner`).
    conn: ManuallyDrop<Connection>,
    /// The claim on a file store; `None` in memory.
    owner: Option<Owner>,
    generation: u64,
}

impl Drop for Db {
    fn drop(&mut self) {
        if self.generation == process_generation() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.conn) };
        }
        // Inherited across fork(): closing it here could delete the parent's WAL. Leaked.
    }
}

pub(crate) fn customer_parts(c: &Customer) -> (&'static str, &str, &str) {
    match c {
        Customer::Identifier(id) => ("C", id.as_str(), ""),
        Customer::AwsAccount {
            account_id,
            license_arn,
        } => ("A", account_id.as_str(), license_arn.as_str()),
    }
}

pub(crate) fn customer_from(kind: &str, id: String, license_arn: String) -> Customer {
    if kind == "A" {
        Customer::AwsAccount {
            account_id: id,
            license_arn,
        }
    } else {
        Customer::Identifier(id)
    }
}

fn parse_allocs(s: Option<String>) -> Option<Allocs> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

impl Db {
    /// Opens (or creates) the store; `None` is a private in-memory database. A file store is
    /// claimed for this meter first (see `owner`).
    pub(crate) fn open(path: Option<&Path>, power_loss_safe: bool) -> Result<Db, Error> {
        let generation = process_generation();
        let owner = path.map(Owner::claim).transpose()?;
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(store_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(store_err)?;
        if path.is_some() {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(store_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::invalid_state(format!(
                    "meter store: cannot switch to WAL mode (got {mode})"
                )));
            }
        }
        // FULL: a commit survives power loss. NORMAL (WAL): it survives a crash of the
        // process (kill -9), not of the machine.
        let sync = if power_loss_safe { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
            .map_err(store_err)?;
        if path.is_some() {
            // A checkpoint (two fsyncs, run by the commit that crosses the threshold) every
            // 8,000 WAL pages (32 MiB) instead of 1,000: it costs every commit a share, and
            // on a busy disk an fsync can take milliseconds.
            // A reader that stays in a transaction (a monitoring `sqlite3` shell) stops
            // checkpoints from finishing and the WAL grows; once readers let go, the next
            // checkpoint truncates it to at most 64 MiB.
            conn.execute_batch(
                "PRAGMA wal_autocheckpoint=8000; PRAGMA journal_size_limit=67108864;",
            )
            .map_err(store_err)?;
        }
        // One cached statement per multi-row size, plus the others.
        conn.set_prepared_statement_cache_capacity(MULTI_ROWS + 16);
        let mut db = Db {
            conn: ManuallyDrop::new(conn),
            owner,
            generation,
        };
        db.migrate()?;
        Ok(db)
    }

    /// Lets another meter open the file (this one was closed).
    pub(crate) fn release_claim(&mut self) {
        if let Some(o) = &mut self.owner {
            o.release();
        }
    }

    fn migrate(&mut self) -> Result<(), Error> {
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
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('library_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [crate::VERSION],
        )
        .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }

    /// The schema version of the open store.
    #[cfg(test)]
    pub(crate) fn user_version(&self) -> i64 {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap_or(-1)
    }

    pub(crate) fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        self.conn.transaction().map_err(store_err)
    }

    /// Adds to a pending bucket. An hour already sealed (a late event, or the clock stepped
    /// back into it) sends the quantity to `current_hour`, or when that is sealed too to the
    /// first hour after the bucket's last closed one: usage is never refused for the clock.
    /// A sum past the model's maximum changes nothing and says so.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        tx: &Transaction<'_>,
        product: &str,
        customer: &Customer,
        dimension: &str,
        hour: i64,
        quantity: i64,
        allocs: Option<&Allocs>,
        current_hour: i64,
    ) -> Result<Applied, Error> {
        let add = |h: i64| Self::apply_one(tx, product, customer, dimension, h, quantity, allocs);
        match add(hour)? {
            One::Added => return Ok(Applied::Added),
            One::Overflow(total) => return Ok(Applied::Overflow(total)),
            One::Closed => {}
        }
        if hour != current_hour {
            match add(current_hour)? {
                One::Added => return Ok(Applied::Moved(current_hour)),
                One::Overflow(total) => return Ok(Applied::Overflow(total)),
                One::Closed => {}
            }
        }
        let (kind, id, license) = customer_parts(customer);
        let last_closed: i64 = tx
            .prepare_cached(
                "SELECT MAX(hour) FROM buckets WHERE product_code = ?1 AND license_arn = ?2
                 AND customer_kind = ?3 AND customer = ?4 AND dimension = ?5 AND state != 'pending'",
            )
            .and_then(|mut st| {
                st.query_row(params![product, license, kind, id, dimension], |r| {
                    r.get::<_, Option<i64>>(0)
                })
            })
            .map_err(store_err)?
            .unwrap_or(current_hour);
        // Every bucket after the last closed one is pending or absent.
        let next = last_closed.max(current_hour).saturating_add(3600);
        match add(next)? {
            One::Added => Ok(Applied::Moved(next)),
            One::Overflow(total) => Ok(Applied::Overflow(total)),
            One::Closed => Err(Error::invalid_state(format!(
                "meter store: the hour {next} after the last sealed one is not open"
            ))),
        }
    }

    /// The quantity of a pending bucket (0 when there is none): what a `memory` meter adds
    /// its buffer to when it checks a sum against the model's maximum.
    pub(crate) fn pending_quantity(
        &self,
        product: &str,
        customer: &Customer,
        dimension: &str,
        hour: i64,
    ) -> Result<i64, Error> {
        let (kind, id, license) = customer_parts(customer);
        self.conn
            .prepare_cached(
                "SELECT quantity FROM buckets WHERE product_code = ?1 AND license_arn = ?2
                 AND customer_kind = ?3 AND customer = ?4 AND dimension = ?5 AND hour = ?6
                 AND state = 'pending'",
            )
            .and_then(|mut st| {
                st.query_row(params![product, license, kind, id, dimension, hour], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            })
            .map(Option::unwrap_or_default)
            .map_err(store_err)
    }

    /// Adds many quantities without allocations, one multi-row upsert per
    /// [`MULTI_ROWS`] rows. Returns `false`, having changed nothing, when a row met a
    /// bucket that is no longer pending (a late event): the caller then applies the rows one
    /// by one with [`Db::apply`]; likewise when a sum would pass the model's maximum.
    pub(crate) fn apply_many(
        tx: &mut Transaction<'_>,
        product: &str,
        rows: &[(&Customer, &str, i64, i64)],
    ) -> Result<bool, Error> {
        use rusqlite::ToSql;
        let sp = tx.savepoint().map_err(store_err)?;
        for chunk in rows.chunks(MULTI_ROWS) {
            let mut sql = String::with_capacity(200 + chunk.len() * 24);
            sql.push_str(
                "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour, quantity) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?,?,?,?,?)");
            }
            sql.push_str(
                " ON CONFLICT (product_code, license_arn, customer_kind, customer, dimension, hour)
                 DO UPDATE SET quantity = quantity + excluded.quantity
                 WHERE state = 'pending' AND quantity + excluded.quantity <= 2147483647",
            );
            let parts: Vec<(&str, &str, &str)> =
                chunk.iter().map(|(c, ..)| customer_parts(c)).collect();
            let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 7);
            for ((_, dimension, hour, quantity), (kind, id, license)) in chunk.iter().zip(&parts) {
                params.extend_from_slice(&[
                    &product as &dyn ToSql,
                    license,
                    kind,
                    id,
                    dimension,
                    hour,
                    quantity,
                ]);
            }
            let n = sp
                .prepare_cached(&sql)
                .and_then(|mut st| st.execute(rusqlite::params_from_iter(params)))
                .map_err(store_err)?;
            if n != chunk.len() {
                return Ok(false); // dropping the savepoint rolls it back
            }
        }
        sp.commit().map_err(store_err)?;
        Ok(true)
    }

    /// Adds to the bucket of `hour` if it is pending and the sum stays within the model.
    fn apply_one(
        tx: &Transaction<'_>,
        product: &str,
        customer: &Customer,
        dimension: &str,
        hour: i64,
        quantity: i64,
        allocs: Option<&Allocs>,
    ) -> Result<One, Error> {
        let (kind, id, license) = customer_parts(customer);
        let allocs = allocs.filter(|a| !a.is_empty());
        if allocs.is_none() {
            let n = tx
                .prepare_cached(
                    "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour, quantity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (product_code, license_arn, customer_kind, customer, dimension, hour)
                     DO UPDATE SET quantity = quantity + excluded.quantity
                     WHERE state = 'pending' AND quantity + excluded.quantity <= 2147483647",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        product, license, kind, id, dimension, hour, quantity
                    ])
                })
                .map_err(store_err)?;
            if n == 1 {
                return Ok(One::Added);
            }
        } else {
            tx.prepare_cached(
                "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (product_code, license_arn, customer_kind, customer, dimension, hour) DO NOTHING",
            )
            .and_then(|mut st| st.execute(params![product, license, kind, id, dimension, hour]))
            .map_err(store_err)?;
        }
        let row: Option<(i64, String, i64, Option<String>)> = tx
            .prepare_cached(
                "SELECT id, state, quantity, allocations FROM buckets WHERE product_code = ?1 AND license_arn = ?2
                 AND customer_kind = ?3 AND customer = ?4 AND dimension = ?5 AND hour = ?6",
            )
            .and_then(|mut st| {
                st.query_row(params![product, license, kind, id, dimension, hour], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(store_err)?;
        let Some((bucket, state, old_quantity, old)) = row else {
            return Ok(One::Closed);
        };
        if state != "pending" {
            return Ok(One::Closed);
        }
        let total = old_quantity.saturating_add(quantity);
        if total > i64::from(i32::MAX) {
            return Ok(One::Overflow(total));
        }
        let Some(allocs) = allocs else {
            return Err(Error::invalid_state(
                "meter store: a pending bucket refused an addition that fits",
            ));
        };
        let mut merged = parse_allocs(old).unwrap_or_default();
        for (k, v) in allocs {
            *merged.entry(k.clone()).or_insert(0) += v;
        }
        let json = serde_json::to_string(&merged)
            .map_err(|e| Error::invalid_state(format!("meter store: {e}")))?;
        tx.prepare_cached(
            "UPDATE buckets SET quantity = quantity + ?1, allocations = ?2 WHERE id = ?3",
        )
        .and_then(|mut st| st.execute(params![quantity, json, bucket]))
        .map_err(store_err)?;
        Ok(One::Added)
    }

    /// Registers a customer's dimensions for zero-fill from `hour` on.
    pub(crate) fn register(
        &mut self,
        product: &str,
        customer: &Customer,
        dimensions: &[String],
        hour: i64,
    ) -> Result<(), Error> {
        let (kind, id, license) = customer_parts(customer);
        let tx = self.transaction()?;
        for d in dimensions {
            tx.execute(
                "INSERT INTO registered (product_code, license_arn, customer_kind, customer, dimension, from_hour, filled_through)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![product, license, kind, id, d, hour, hour - 3600],
            )
            .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    /// Zero-fills, seals what may be sealed, raises window alarms and returns what should be
    /// sent now, in one transaction.
    pub(crate) fn prepare(&mut self, scope: &Scope, now: i64) -> Result<Prepared, Error> {
        let tx = self.transaction()?;
        let mut out = Prepared::default();
        let product = scope.product_code.as_str();
        if scope.zero_fill {
            let regs: Vec<(String, String, String, String, i64, i64)> = {
                let mut st = tx
                    .prepare(
                        "SELECT license_arn, customer_kind, customer, dimension, from_hour, filled_through
                         FROM registered WHERE product_code = ?1",
                    )
                    .map_err(store_err)?;
                let rows = st
                    .query_map([product], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })
                    .map_err(store_err)?;
                rows.collect::<Result<_, _>>().map_err(store_err)?
            };
            for (license, kind, id, dim, from, filled) in regs {
                // Never create an hour that could no longer be sent.
                let oldest_sendable = (now - scope.window).div_euclid(3600) * 3600 + 3600;
                let mut h = (filled + 3600).max(from).max(oldest_sendable);
                let mut last = filled;
                while h + 3600 + scope.grace <= now {
                    tx.execute(
                        "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour, quantity)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0) ON CONFLICT DO NOTHING",
                        params![product, license, kind, id, dim, h],
                    )
                    .map_err(store_err)?;
                    last = h;
                    h += 3600;
                }
                if last != filled {
                    tx.execute(
                        "UPDATE registered SET filled_through = ?1 WHERE product_code = ?2 AND license_arn = ?3
                         AND customer_kind = ?4 AND customer = ?5 AND dimension = ?6",
                        params![last, product, license, kind, id, dim],
                    )
                    .map_err(store_err)?;
                }
            }
        }
        out.sealed = tx
            .execute(
                "UPDATE buckets SET state = 'sealed', sealed_quantity = quantity, sealed_at = ?1
                 WHERE state = 'pending' AND product_code = ?2 AND hour + 3600 + ?3 <= ?1",
                params![now, product, scope.grace],
            )
            .map_err(store_err)?;
        if out.sealed > 0 {
            super::crash::hit("seal_mid_txn");
        }
        let rows: Vec<SealedRow> = {
            let mut st = tx
                .prepare(
                    "SELECT id, license_arn, customer_kind, customer, dimension, hour, sealed_quantity,
                            allocations, alarmed
                     FROM buckets WHERE state IN ('sealed', 'sending') AND product_code = ?1
                     ORDER BY license_arn, hour, id",
                )
                .map_err(store_err)?;
            let rows = st
                .query_map([product], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })
                .map_err(store_err)?;
            rows.collect::<Result<_, _>>().map_err(store_err)?
        };
        for (id, license, kind, cust, dim, hour, qty, allocs, alarmed) in rows {
            let customer = customer_from(&kind, cust, license);
            // The local clock never makes an hour final: a clock hours fast (an RTC before
            // NTP, a VM restored from a snapshot) would expire hours the service still takes.
            // Past the window the bucket is sent anyway, and only the service's
            // TimestampOutOfBoundsException expires it (see `send`). Alarms may use it.
            let window_end = hour.saturating_add(scope.window);
            if !alarmed && now >= window_end - scope.alarm_before {
                tx.execute("UPDATE buckets SET alarmed = 1 WHERE id = ?1", [id])
                    .map_err(store_err)?;
                out.events.push(MeterEvent {
                    kind: MeterEventKind::WindowAlarm { window_end },
                    customer: customer.clone(),
                    dimension: dim.clone(),
                    hour,
                    quantity: qty,
                });
            }
            out.items.push(SendItem {
                id,
                customer,
                dimension: dim,
                hour,
                quantity: qty,
                allocations: parse_allocs(allocs),
            });
        }
        tx.commit().map_err(store_err)?;
        Ok(out)
    }

    /// Marks buckets `sending` before their call goes out.
    pub(crate) fn mark_sending(&mut self, ids: &[i64], now: i64) -> Result<(), Error> {
        let tx = self.transaction()?;
        {
            let mut st = tx
                .prepare_cached(
                    "UPDATE buckets SET state = 'sending', sent_at = ?2, attempts = attempts + 1
                     WHERE id = ?1 AND state IN ('sealed', 'sending')",
                )
                .map_err(store_err)?;
            for id in ids {
                st.execute(params![id, now]).map_err(store_err)?;
            }
        }
        tx.commit().map_err(store_err)
    }

    /// Records the outcomes of one call.
    pub(crate) fn record_outcomes(&mut self, outcomes: &[Outcome], now: i64) -> Result<(), Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let tx = self.transaction()?;
        for o in outcomes {
            match o {
                Outcome::Ack(id, record_id) => tx.execute(
                    "UPDATE buckets SET state = 'acked', metering_record_id = ?2 WHERE id = ?1",
                    params![id, record_id],
                ),
                Outcome::Dead(id, reason, message) => tx
                    .execute(
                        "INSERT INTO dead_letters (bucket_id, product_code, license_arn, customer_kind, customer,
                                                   dimension, hour, quantity, reason, message, at)
                         SELECT id, product_code, license_arn, customer_kind, customer, dimension, hour,
                                COALESCE(sealed_quantity, quantity), ?2, ?3, ?4
                         FROM buckets WHERE id = ?1",
                        params![id, reason, message, now],
                    )
                    .and_then(|_| {
                        tx.execute(
                            "UPDATE buckets SET state = 'dead_lettered' WHERE id = ?1",
                            [id],
                        )
                    }),
                Outcome::Expire(id) => {
                    tx.execute("UPDATE buckets SET state = 'expired' WHERE id = ?1", [id])
                }
                Outcome::Revert(id) => tx.execute(
                    "UPDATE buckets SET state = 'sealed' WHERE id = ?1 AND state = 'sending'",
                    [id],
                ),
            }
            .map_err(store_err)?;
            super::crash::hit("mid_ack_txn");
        }
        tx.commit().map_err(store_err)?;
        super::crash::hit("after_ack");
        Ok(())
    }

    /// Counts per state and the oldest unsent hour.
    pub(crate) fn status(&self, product: &str) -> Result<super::MeterStatus, Error> {
        let mut s = super::MeterStatus::default();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT state, COUNT(*), MIN(CASE WHEN hour BETWEEN ?2 AND ?3 THEN hour END)
                 FROM buckets WHERE product_code = ?1 GROUP BY state",
            )
            .map_err(store_err)?;
        // A row no calendar holds (a store written before timestamps were checked, with an
        // hour in milliseconds) is counted but is never the oldest unsent hour: a face could
        // not turn it into a date, and status() must not fail for any row.
        let (first, last) = (super::CALENDAR.start(), super::CALENDAR.end());
        let rows = st
            .query_map(params![product, first, last], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(store_err)?;
        for row in rows {
            let (state, n, min_hour) = row.map_err(store_err)?;
            s.count(&state, n, min_hour);
        }
        Ok(s)
    }

    /// The store's identity: 32 random hex digits made once, when first asked for, and kept
    /// in `meta` (`store_id`). Part of every `MeterUsage` `ClientToken`, so two stores never
    /// share a token and a store reopened after a crash resends the same one.
    pub(crate) fn store_id(&mut self) -> Result<String, Error> {
        let read = |conn: &Connection| -> Result<Option<String>, Error> {
            conn.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(store_err)
        };
        if let Some(id) = read(&self.conn)? {
            return Ok(id);
        }
        // Two meters creating it at once: the first insert wins, both read it.
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))",
                [],
            )
            .map_err(store_err)?;
        read(&self.conn)?
            .ok_or_else(|| Error::invalid_state("meter store: the store id was not written"))
    }

    /// Moves the dead letters `filter` selects, whose hour is later than `after`,
    /// back to `sealed` (their frozen quantity unchanged) and deletes their dead-letter rows,
    /// in one transaction. Returns how many were requeued.
    pub(crate) fn requeue(
        &mut self,
        product: &str,
        filter: &super::RequeueFilter,
        after: i64,
    ) -> Result<usize, Error> {
        let (kind, id, license) = match &filter.customer {
            Some(c) => {
                let (k, i, l) = customer_parts(c);
                (Some(k), Some(i.to_owned()), Some(l.to_owned()))
            }
            None => (None, None, None),
        };
        let tx = self.transaction()?;
        let ids: Vec<i64> = {
            let mut st = tx
                .prepare(
                    "SELECT b.id FROM buckets b
                     WHERE b.state = 'dead_lettered' AND b.product_code = ?1 AND b.hour > ?2
                       AND (?3 IS NULL OR b.customer_kind = ?3)
                       AND (?4 IS NULL OR b.customer = ?4)
                       AND (?5 IS NULL OR b.license_arn = ?5)
                       AND (?6 IS NULL OR b.hour = ?6)
                       AND (?7 IS NULL OR EXISTS (SELECT 1 FROM dead_letters d
                                                  WHERE d.bucket_id = b.id AND d.reason = ?7))
                     ORDER BY b.id",
                )
                .map_err(store_err)?;
            let rows = st
                .query_map(
                    params![
                        product,
                        after,
                        kind,
                        id,
                        license,
                        filter.hour.map(|h| h.div_euclid(3600) * 3600),
                        filter.reason
                    ],
                    |r| r.get(0),
                )
                .map_err(store_err)?;
            rows.collect::<Result<_, _>>().map_err(store_err)?
        };
        for b in &ids {
            tx.execute(
                "UPDATE buckets SET state = 'sealed', alarmed = 0 WHERE id = ?1",
                [b],
            )
            .map_err(store_err)?;
            tx.execute("DELETE FROM dead_letters WHERE bucket_id = ?1", [b])
                .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)?;
        Ok(ids.len())
    }

    /// Every dead letter of this product, oldest first.
    pub(crate) fn dead_letters(&self, product: &str) -> Result<Vec<super::DeadLetter>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT license_arn, customer_kind, customer, dimension, hour, quantity, reason, message, at
                 FROM dead_letters WHERE product_code = ?1 ORDER BY id",
            )
            .map_err(store_err)?;
        let rows = st
            .query_map([product], |r| {
                Ok(super::DeadLetter {
                    customer: customer_from(&r.get::<_, String>(1)?, r.get(2)?, r.get(0)?),
                    dimension: r.get(3)?,
                    hour: r.get(4)?,
                    quantity: r.get(5)?,
                    reason: r.get(6)?,
                    message: r.get(7)?,
                    at: r.get(8)?,
                })
            })
            .map_err(store_err)?;
        rows.collect::<Result<_, _>>().map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_freezes_sealed_quantities() {
        let mut db = Db::open(None, true).unwrap();
        assert_eq!(db.user_version(), SCHEMA_VERSION);
        let c = Customer::Identifier("c".into());
        let tx = db.transaction().unwrap();
        assert_eq!(
            Db::apply(&tx, "p", &c, "d", 0, 5, None, 7200).unwrap(),
            Applied::Added
        );
        tx.commit().unwrap();
        let scope = Scope {
            product_code: "p".into(),
            grace: 0,
            window: 6 * 3600,
            alarm_before: 3600,
            zero_fill: false,
        };
        let p = db.prepare(&scope, 3600).unwrap();
        assert_eq!(p.sealed, 1);
        assert_eq!(p.items[0].quantity, 5);
        // Late: lands in the current hour.
        let tx = db.transaction().unwrap();
        assert_eq!(
            Db::apply(&tx, "p", &c, "d", 0, 2, None, 3600).unwrap(),
            Applied::Moved(3600)
        );
        tx.commit().unwrap();
        let err = db
            .conn
            .execute("UPDATE buckets SET sealed_quantity = 9 WHERE hour = 0", [])
            .unwrap_err();
        assert!(err.to_string().contains("never changes"), "{err}");
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
            rows.push((if i % 2 == 0 { &a } else { &b }, "d", (i % 20) * 3600, 1));
        }
        for expected in [2, 4] {
            let mut tx = db.transaction().unwrap();
            assert!(Db::apply_many(&mut tx, "p", &rows).unwrap());
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
        assert!(!Db::apply_many(&mut tx, "p", &rows).unwrap());
        tx.commit().unwrap();
        assert_eq!(quantity(&db, "a", 0), Some(4));
        assert_eq!(quantity(&db, "b", 3600), Some(4));
    }
}

// SPDX-License-Identifier: Apache-2.0
// Sealing the SQLite store's hours: zero-fill, the frozen quantities, window alarms, what to send.

use rusqlite::params;

use crate::meter::{MeterEvent, MeterEventKind};
use crate::Error;

use super::{
    customer_from, parse_allocs, store_err, Db, Prepared, Scope, SealedRow, SendItem,
    KEEP_CLOSED_SECS, PRUNE_AT_ONCE,
};

/// A bucket a window alarm is due for: customer, dimension, hour, quantity.
pub(crate) type DueAlarm = (Option<crate::meter::Customer>, String, i64, i64);

impl Db {
    /// The buckets a window alarm is due for (within `alarm_before` of the end of their
    /// window, not alarmed yet), read without writing anything: for a store that refuses
    /// writes, whose seal cannot mark and raise them.
    pub(crate) fn due_alarms(&self, scope: &Scope, now: i64) -> Result<Vec<DueAlarm>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT license_arn, customer_kind, customer, dimension, hour,
                        COALESCE(sealed_quantity, quantity)
                 FROM buckets WHERE state IN ('pending', 'sealed', 'sending') AND alarmed = 0
                 AND hour + ?1 - ?2 <= ?3",
            )
            .map_err(store_err)?;
        let rows = st
            .query_map(params![scope.window, scope.alarm_before, now], |r| {
                Ok((
                    customer_from(&r.get::<_, String>(1)?, r.get(2)?, r.get(0)?),
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(store_err)?;
        rows.collect::<Result<_, _>>().map_err(store_err)
    }

    /// Zero-fills, seals what may be sealed, raises window alarms and returns what should be
    /// sent now, in one transaction (closed buckets are pruned after the sends: see
    /// [`Db::prune_step`]).
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
                    // Cached: a registered key an hour, for every key at each hour's seal.
                    tx.prepare_cached(
                        "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour, quantity)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0) ON CONFLICT DO NOTHING",
                    )
                    .and_then(|mut st| st.execute(params![product, license, kind, id, dim, h]))
                    .map_err(store_err)?;
                    last = h;
                    h += 3600;
                }
                if last != filled {
                    tx.prepare_cached(
                        "UPDATE registered SET filled_through = ?1 WHERE product_code = ?2 AND license_arn = ?3
                         AND customer_kind = ?4 AND customer = ?5 AND dimension = ?6",
                    )
                    .and_then(|mut st| st.execute(params![last, product, license, kind, id, dim]))
                    .map_err(store_err)?;
                }
            }
        }
        // Every product's hours: a store has one owner, so usage recorded under another
        // product code (or mode) before a change of configuration has no other meter to send
        // it, and is sent under the code it was recorded under.
        out.sealed = tx
            .execute(
                "UPDATE buckets SET state = 'sealed', sealed_quantity = quantity, sealed_at = ?1
                 WHERE state = 'pending' AND hour + 3600 + ?2 <= ?1",
                params![now, scope.grace],
            )
            .map_err(store_err)?;
        if out.sealed > 0 {
            crate::meter::crash::hit("seal_mid_txn");
        }
        // Left `sending` by an earlier flush (its answer lost, the process killed mid-call):
        // the service may have metered them. Counted in `attempts`, which a send certainly
        // not processed (reverted to `sealed`) never is, so it outlasts a later revert.
        tx.execute(
            "UPDATE buckets SET attempts = attempts + 1 WHERE state = 'sending'",
            [],
        )
        .map_err(store_err)?;
        // Hours still in the service's window by the meter's clock first, oldest first: after
        // an outage, the hours past it would otherwise be sent first (each batch refused, then
        // sent again a record at a time), and a flush stopped on the way would start again
        // from them, while hours still in the window ran out of it unsent. Oldest first
        // across licenses too (by license first, one license's newest hours went before
        // another's oldest), but for buckets without a product code, which go one license
        // a call: by license first there, or each call would carry one record.
        let rows: Vec<SealedRow> = {
            let mut st = tx
                .prepare(
                    "SELECT id, license_arn, customer_kind, customer, dimension, hour, sealed_quantity,
                            allocations, alarmed, product_code, token_nonce, attempts > 0
                     FROM buckets WHERE state IN ('sealed', 'sending')
                     ORDER BY product_code <> ?1, product_code, hour + ?2 <= ?3,
                              CASE WHEN product_code = '' THEN license_arn END, hour, license_arn, id",
                )
                .map_err(store_err)?;
            let rows = st
                .query_map(params![product, scope.window, now], |r| {
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
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                    ))
                })
                .map_err(store_err)?;
            rows.collect::<Result<_, _>>().map_err(store_err)?
        };
        for (
            id,
            license,
            kind,
            cust,
            dim,
            hour,
            qty,
            allocs,
            alarmed,
            product,
            token_nonce,
            unanswered,
        ) in rows
        {
            let customer = customer_from(&kind, cust, license);
            // The local clock never makes an hour final: a clock hours fast (an RTC before
            // NTP, a VM restored from a snapshot) would expire hours the service still takes.
            // Past the window the bucket is sent anyway, and only the service's
            // TimestampOutOfBoundsException expires it (see `send`). Alarms may use it.
            let window_end = hour.saturating_add(scope.window);
            if !alarmed && now >= window_end - scope.alarm_before {
                tx.prepare_cached("UPDATE buckets SET alarmed = 1 WHERE id = ?1")
                    .and_then(|mut st| st.execute([id]))
                    .map_err(store_err)?;
                out.events.push(MeterEvent {
                    kind: MeterEventKind::WindowAlarm { window_end },
                    customer: customer.clone(),
                    dimension: dim.clone(),
                    hour,
                    quantity: qty,
                    replica_id: None, // set by `Shared::emit`
                });
            }
            out.items.push(SendItem {
                id,
                product,
                customer,
                dimension: dim,
                hour,
                quantity: qty,
                allocations: parse_allocs(allocs),
                token_nonce,
                unanswered,
            });
        }
        tx.commit().map_err(store_err)?;
        self.sealed_through = None;
        Ok(out)
    }

    /// Once an hour: deletes up to [`PRUNE_AT_ONCE`] closed buckets a week older than the
    /// newest closed hour of their customer and dimension (see `KEEP_CLOSED_SECS`), in a
    /// transaction of their own. Whether more may be left: the flush calls it again (see
    /// `send`'s `prune_closed`), letting the store go between batches.
    pub(crate) fn prune_step(&mut self, now: i64) -> Result<bool, Error> {
        let hour = now.div_euclid(3600) * 3600;
        if self.pruned_hour == Some(hour) {
            return Ok(false);
        }
        let tx = self.transaction()?;
        let from = now.saturating_sub(KEEP_CLOSED_SECS);
        let n = tx
            .execute(PRUNE, params![from, KEEP_CLOSED_SECS, PRUNE_AT_ONCE])
            .map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        let more = n as i64 >= PRUNE_AT_ONCE;
        if !more {
            self.pruned_hour = Some(hour);
        }
        Ok(more)
    }
}

/// Deletes up to `?3` closed buckets older than `?1` (the meter's clock, less the week:
/// only old rows are read, by the state and hour index) and a week (`?2`) older than their
/// key's newest closed hour.
const PRUNE: &str = "DELETE FROM buckets WHERE id IN (
    SELECT b.id FROM buckets AS b
    WHERE b.state IN ('acked', 'expired') AND b.hour < ?1
      AND b.hour < (SELECT MAX(c.hour) FROM buckets AS c
                    WHERE c.product_code = b.product_code AND c.license_arn = b.license_arn
                      AND c.customer_kind = b.customer_kind AND c.customer = b.customer
                      AND c.dimension = b.dimension AND c.state <> 'pending') - ?2
    LIMIT ?3)";

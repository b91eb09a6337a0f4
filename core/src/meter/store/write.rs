// SPDX-License-Identifier: Apache-2.0
// Adding events to the SQLite store's buckets, one at a time or in multi-row upserts.

use rusqlite::{params, OptionalExtension, Transaction};

use crate::meter::Customer;
use crate::Error;

use super::{customer_parts, parse_allocs, store_err, Allocs, Applied, Db};

/// Rows per multi-row upsert of a group commit (7 parameters each).
pub(super) const MULTI_ROWS: usize = 32;

/// What adding to one hour's bucket did.
pub(super) enum One {
    Added,
    /// The hour is no longer pending.
    Closed,
    Overflow(i64),
}

impl Db {
    /// Adds to a pending bucket. An hour already sealed (a late event, or the clock stepped
    /// back into it) sends the quantity to `current_hour`, or when that is sealed too to the
    /// first hour after the bucket's last closed one: usage is never refused for the clock.
    /// An hour up to `sealed_through` (see `Db::sealed_through`) is sealed whether or
    /// not it has a bucket. A sum past the model's maximum changes nothing and says so.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        tx: &Transaction<'_>,
        product: &str,
        customer: Option<&Customer>,
        dimension: &str,
        hour: i64,
        quantity: i64,
        allocs: Option<&Allocs>,
        current_hour: i64,
        sealed_through: Option<i64>,
    ) -> Result<Applied, Error> {
        let add = |h: i64| Self::apply_one(tx, product, customer, dimension, h, quantity, allocs);
        let open = |h: i64| sealed_through.is_none_or(|s| h > s);
        if open(hour) {
            match add(hour)? {
                One::Added => return Ok(Applied::Added),
                One::Overflow(total) => return Ok(Applied::Overflow(total)),
                One::Closed => {}
            }
        }
        if hour != current_hour && open(current_hour) {
            match add(current_hour)? {
                One::Added => return Ok(Applied::Moved(current_hour)),
                One::Overflow(total) => return Ok(Applied::Overflow(total)),
                One::Closed => {}
            }
        }
        let next = Self::after_closed(
            tx,
            product,
            customer,
            dimension,
            current_hour,
            sealed_through,
        )?;
        match add(next)? {
            One::Added => Ok(Applied::Moved(next)),
            One::Overflow(total) => Ok(Applied::Overflow(total)),
            One::Closed => Err(Error::invalid_state(format!(
                "meter store: the hour {next} after the last sealed one is not open"
            ))),
        }
    }

    /// The first hour after the bucket's last closed one, `current_hour` and `sealed_through`:
    /// every bucket after the last closed one is pending or absent.
    fn after_closed(
        conn: &rusqlite::Connection,
        product: &str,
        customer: Option<&Customer>,
        dimension: &str,
        current_hour: i64,
        sealed_through: Option<i64>,
    ) -> Result<i64, Error> {
        let (kind, id, license) = customer_parts(customer);
        let last_closed: i64 = conn
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
        Ok(last_closed
            .max(current_hour)
            .max(sealed_through.unwrap_or(i64::MIN))
            .saturating_add(3600))
    }

    /// Where [`Db::apply`] would count an event now in `current_hour`'s bucket: that hour
    /// while it is open, else the first hour after the closed ones. A `memory` meter places
    /// a late event with it when it is recorded, so that writing its buffer does not move
    /// the event again (which would report it twice).
    pub(crate) fn landing_hour(
        &mut self,
        product: &str,
        customer: Option<&Customer>,
        dimension: &str,
        current_hour: i64,
    ) -> Result<i64, Error> {
        let sealed_through = self.sealed_through()?;
        if sealed_through.is_none_or(|s| current_hour > s) {
            let (kind, id, license) = customer_parts(customer);
            let state: Option<String> = self
                .conn
                .prepare_cached(
                    "SELECT state FROM buckets WHERE product_code = ?1 AND license_arn = ?2
                     AND customer_kind = ?3 AND customer = ?4 AND dimension = ?5 AND hour = ?6",
                )
                .and_then(|mut st| {
                    st.query_row(
                        params![product, license, kind, id, dimension, current_hour],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(store_err)?;
            if state.as_deref().is_none_or(|s| s == "pending") {
                return Ok(current_hour);
            }
        }
        Self::after_closed(
            &self.conn,
            product,
            customer,
            dimension,
            current_hour,
            sealed_through,
        )
    }

    /// The quantity of a pending bucket (0 when there is none): what a `memory` meter adds
    /// its buffer to when it checks a sum against the model's maximum.
    pub(crate) fn pending_quantity(
        &self,
        product: &str,
        customer: Option<&Customer>,
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
    /// bucket that is no longer pending (a late event) or an hour up to `sealed_through`:
    /// the caller then applies the rows one by one with [`Db::apply`]; likewise when a sum
    /// would pass the model's maximum.
    pub(crate) fn apply_many(
        tx: &mut Transaction<'_>,
        product: &str,
        rows: &[(Option<&Customer>, &str, i64, i64)],
        sealed_through: Option<i64>,
    ) -> Result<bool, Error> {
        use rusqlite::ToSql;
        if rows.iter().any(|r| r.3 > i64::from(i32::MAX)) {
            return Ok(false); // a new bucket would be inserted past the maximum
        }
        if sealed_through.is_some_and(|s| rows.iter().any(|r| r.2 <= s)) {
            return Ok(false); // an hour already sealed, perhaps with no bucket of its own
        }
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
                chunk.iter().map(|(c, ..)| customer_parts(*c)).collect();
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
        customer: Option<&Customer>,
        dimension: &str,
        hour: i64,
        quantity: i64,
        allocs: Option<&Allocs>,
    ) -> Result<One, Error> {
        let (kind, id, license) = customer_parts(customer);
        let allocs = allocs.filter(|a| !a.is_empty());
        if allocs.is_none() {
            // A group commit's sum can pass the maximum where no single event can: a new
            // bucket is checked like an existing one (`WHERE` on the SELECT).
            let n = tx
                .prepare_cached(
                    "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour, quantity)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE ?7 <= 2147483647
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
            // No bucket yet: the upsert above inserts none past the maximum.
            if quantity > i64::from(i32::MAX) {
                return Ok(One::Overflow(quantity));
            }
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
        customer: Option<&Customer>,
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

    /// Removes a customer's registrations for `dimensions` (every dimension: `None`).
    pub(crate) fn unregister(
        &mut self,
        product: &str,
        customer: Option<&Customer>,
        dimensions: Option<&[String]>,
    ) -> Result<usize, Error> {
        let (kind, id, license) = customer_parts(customer);
        let tx = self.transaction()?;
        let key = "product_code = ?1 AND license_arn = ?2 AND customer_kind = ?3 AND customer = ?4";
        let removed = match dimensions {
            None => tx
                .execute(
                    &format!("DELETE FROM registered WHERE {key}"),
                    params![product, license, kind, id],
                )
                .map_err(store_err)?,
            Some(dims) => {
                let mut n = 0;
                for d in dims {
                    n += tx
                        .execute(
                            &format!("DELETE FROM registered WHERE {key} AND dimension = ?5"),
                            params![product, license, kind, id, d],
                        )
                        .map_err(store_err)?;
                }
                n
            }
        };
        tx.commit().map_err(store_err)?;
        Ok(removed)
    }
}

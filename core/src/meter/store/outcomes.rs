// SPDX-License-Identifier: Apache-2.0
// Marking buckets `sending` and recording what the service answered.

use rusqlite::params;

use crate::Error;

use super::{store_err, Db, Outcome};

impl Db {
    /// Marks buckets `sending` before their call goes out.
    pub(crate) fn mark_sending(&mut self, ids: &[i64], now: i64) -> Result<(), Error> {
        let tx = self.transaction()?;
        {
            let mut st = tx
                .prepare_cached(
                    "UPDATE buckets SET state = 'sending', sent_at = ?2
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
        // Hours acked or expired move `sealed_through`: read again at the next write.
        self.sealed_through = None;
        if outcomes.is_empty() {
            return Ok(());
        }
        let tx = self.transaction()?;
        // Cached statements, and the reverts in one: a flush stopped after an outage puts
        // back a queue of up to a whole backlog, under the store's lock.
        let mut reverts: Vec<i64> = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Ack(id, record_id) => tx
                    .prepare_cached(
                        "UPDATE buckets SET state = 'acked', metering_record_id = ?2 WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, record_id])),
                Outcome::Dead(id, reason, message) => tx
                    .prepare_cached(
                        "INSERT INTO dead_letters (bucket_id, product_code, license_arn, customer_kind, customer,
                                                   dimension, hour, quantity, reason, message, at)
                         SELECT id, product_code, license_arn, customer_kind, customer, dimension, hour,
                                COALESCE(sealed_quantity, quantity), ?2, ?3, ?4
                         FROM buckets WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, reason, message, now]))
                    .and_then(|_| {
                        tx.prepare_cached("UPDATE buckets SET state = 'dead_lettered' WHERE id = ?1")
                            .and_then(|mut st| st.execute([id]))
                    }),
                Outcome::Expire(id) => tx
                    .prepare_cached("UPDATE buckets SET state = 'expired' WHERE id = ?1")
                    .and_then(|mut st| st.execute([id])),
                Outcome::Revert(id) => {
                    reverts.push(*id);
                    Ok(0)
                }
            }
            .map_err(store_err)?;
            crate::meter::crash::hit("mid_ack_txn");
        }
        if !reverts.is_empty() {
            let ids = serde_json::to_string(&reverts).map_err(|e| {
                Error::invalid_state(format!("the store's ids could not be listed: {e}"))
            })?;
            tx.execute(
                "UPDATE buckets SET state = 'sealed'
                 WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'sending'",
                [ids],
            )
            .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)?;
        crate::meter::crash::hit("after_ack");
        Ok(())
    }
}

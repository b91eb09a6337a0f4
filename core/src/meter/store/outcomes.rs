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
            crate::meter::crash::hit("mid_ack_txn");
        }
        tx.commit().map_err(store_err)?;
        crate::meter::crash::hit("after_ack");
        Ok(())
    }
}

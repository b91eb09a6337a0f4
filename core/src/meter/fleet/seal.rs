// SPDX-License-Identifier: Apache-2.0
// Sealing the fleet's hours: zero-fill, the sealed sums, window alarms.

use std::collections::BTreeSet;

use super::PgClient;

use crate::meter::store::{
    customer_from, Prepared, Scope, KEEP_CLOSED_SECS, PRUNE_AT_ONCE, PRUNE_FAILED, PRUNE_FOR,
};
use crate::meter::{MeterEvent, MeterEventKind};
use crate::Error;

use super::{hour_key, retry, retry_within, Fleet, LONG_ATTEMPT_FOR};

impl Fleet {
    /// Deletes the product's closed buckets a week old (see `KEEP_CLOSED_SECS`), by the
    /// seal's clock, [`PRUNE_AT_ONCE`] a statement, until none is left or [`PRUNE_FOR`] has
    /// passed (a few seconds more for a statement running then): a batch a seal (600,000 an
    /// hour for a replica flushing every minute) fell behind a seller whose hours close two
    /// million, and the table grew for good. Rows another replica is deleting are skipped,
    /// not waited for. A failure waits for the next flush.
    pub(crate) async fn prune_closed(&self, product: &str, clock_now: i64) {
        let meter_clock = self.settings.use_meter_clock.then_some(clock_now);
        let started = std::time::Instant::now();
        let prune = async {
            loop {
                let n = retry(self, "prune", |c| async move {
                    let r = c
                        .execute(
                            "DELETE FROM mm_buckets WHERE id IN (
                                 SELECT id FROM mm_buckets WHERE product_code = $1
                                 AND state IN ('acked', 'expired')
                                 AND hour < COALESCE($2, floor(extract(epoch FROM now()))::bigint) - $3
                                 LIMIT $4 FOR UPDATE SKIP LOCKED)",
                            &[&product, &meter_clock, &KEEP_CLOSED_SECS, &PRUNE_AT_ONCE],
                        )
                        .await;
                    (c, r)
                })
                .await?;
                if (n as i64) < PRUNE_AT_ONCE || started.elapsed() >= PRUNE_FOR {
                    return Ok::<(), Error>(());
                }
            }
        };
        match tokio::time::timeout(PRUNE_FOR + std::time::Duration::from_secs(5), prune).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "{}", PRUNE_FAILED)
            }
            Err(_) => tracing::warn!(
                "meter: pruning closed hours took too long; the next flush goes on with it"
            ),
        }
    }

    /// Zero-fills, seals what may be sealed and raises window alarms (one transaction per
    /// step). Returns the number of buckets sealed and the alarms.
    pub(crate) async fn seal(&self, scope: &Scope, clock_now: i64) -> Result<Prepared, Error> {
        let (sealed, events) = retry_within(self, "seal", LONG_ATTEMPT_FOR, |mut c| async move {
            let r = self.seal_once(&mut c, scope, clock_now).await;
            (c, r)
        })
        .await?;
        Ok(Prepared {
            sealed,
            items: Vec::new(),
            events,
        })
    }

    async fn seal_once(
        &self,
        c: &mut PgClient,
        scope: &Scope,
        clock_now: i64,
    ) -> Result<(usize, Vec<MeterEvent>), tokio_postgres::Error> {
        let product = scope.product_code.as_str();
        let tx = c.transaction().await?;
        let now: i64 = if self.settings.use_meter_clock {
            clock_now
        } else {
            tx.query_one("SELECT floor(extract(epoch FROM now()))::bigint", &[])
                .await?
                .get(0)
        };
        let limit = now - 3600 - scope.grace;
        // The journal into the partial rows first, so the hours below include what it
        // holds. Sealers of a product take turns here; a sealer of a release two back
        // (which knows nothing of the journal) folds through the trigger on
        // `mm_sealed_hours` (see `schema.rs`), as each hour sealed below does again for
        // what committed since.
        let unmarked = buckets(
            &tx.query("SELECT * FROM mm_fold_v2($1, true)", &[&product])
                .await?,
        );
        let mut hours: BTreeSet<i64> = tx
            .query(
                "SELECT DISTINCT hour FROM mm_partials WHERE product_code = $1 AND hour <= $2",
                &[&product, &limit],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Zero-fill: the hours each registered customer still needs.
        let mut fills: Vec<(String, String, String, String, i64, i64)> = Vec::new();
        if scope.zero_fill {
            let regs = tx
                .query(
                    "SELECT license_arn, customer_kind, customer, dimension, from_hour, filled_through
                     FROM mm_registered WHERE product_code = $1 FOR UPDATE",
                    &[&product],
                )
                .await?;
            let oldest_sendable = (now - scope.window).div_euclid(3600) * 3600 + 3600;
            for r in regs {
                let (from, filled): (i64, i64) = (r.get(4), r.get(5));
                // Only hours that may still be sent, and each of them sealed below: a
                // zero bucket in an hour missing from `mm_sealed_hours` would take a later
                // write's partials into that hour, and its seal would then collide with
                // the bucket (a unique-key error that stops every later seal).
                let first = (filled + 3600).max(from).max(oldest_sendable);
                let mut h = first;
                let mut last = filled;
                while h <= limit {
                    hours.insert(h);
                    last = h;
                    h += 3600;
                }
                if last != filled {
                    fills.push((r.get(0), r.get(1), r.get(2), r.get(3), first, last));
                }
            }
        }
        let mut sealed = 0usize;
        for h in &hours {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), $2)",
                &[&product, &hour_key(*h)],
            )
            .await?;
            tx.execute(
                "INSERT INTO mm_sealed_hours (product_code, hour) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&product, h],
            )
            .await?;
            sealed += tx
                .execute(
                    "INSERT INTO mm_buckets (product_code, license_arn, customer_kind, customer, dimension,
                                             hour, quantity, allocations)
                     SELECT p.product_code, p.license_arn, p.customer_kind, p.customer, p.dimension, p.hour,
                            SUM(p.quantity),
                            (SELECT jsonb_object_agg(x.tags, x.q)::text FROM (
                                 SELECT a.tags, SUM(a.quantity) AS q FROM mm_partial_allocs a
                                 WHERE a.product_code = p.product_code AND a.hour = p.hour
                                   AND a.license_arn = p.license_arn AND a.customer_kind = p.customer_kind
                                   AND a.customer = p.customer AND a.dimension = p.dimension
                                 GROUP BY a.tags) x)
                     FROM mm_partials p WHERE p.product_code = $1 AND p.hour = $2
                     GROUP BY p.product_code, p.license_arn, p.customer_kind, p.customer, p.dimension, p.hour",
                    &[&product, h],
                )
                .await? as usize;
            tx.execute(
                "DELETE FROM mm_partials WHERE product_code = $1 AND hour = $2",
                &[&product, h],
            )
            .await?;
            tx.execute(
                "DELETE FROM mm_partial_allocs WHERE product_code = $1 AND hour = $2",
                &[&product, h],
            )
            .await?;
        }
        for (license, kind, cust, dim, from, last) in &fills {
            sealed += tx
                .execute(
                    "INSERT INTO mm_buckets (product_code, license_arn, customer_kind, customer, dimension,
                                             hour, quantity)
                     SELECT $1, $2, $3, $4, $5, h, 0 FROM generate_series($6::bigint, $7::bigint, 3600) AS h
                     ON CONFLICT DO NOTHING",
                    &[&product, license, kind, cust, dim, from, last],
                )
                .await? as usize;
            tx.execute(
                "UPDATE mm_registered SET filled_through = $6 WHERE product_code = $1 AND license_arn = $2
                 AND customer_kind = $3 AND customer = $4 AND dimension = $5",
                &[&product, license, kind, cust, dim, last],
            )
            .await?;
        }
        if sealed > 0 {
            crate::meter::crash::hit("seal_mid_txn");
        }
        // Commit keys no retry needs: those a day older than their session's newest (a
        // session settles its unsettled writes before it writes anything else, so a write
        // whose answer was lost has the newest keys until then, however long the writer
        // stays cut off), and every key of a session silent for 30 days (its process is
        // gone). Counted from now(), a writer cut off for a day settled its write after its
        // key was deleted, and its usage was counted twice.
        // It reads the whole table: once an hour.
        let prune_commits = super::lock(&self.commits_pruned)
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600));
        if prune_commits {
            tx.execute(
                "DELETE FROM mm_commits AS c
                 USING (SELECT replica, session, max(at) AS newest FROM mm_commits
                        GROUP BY replica, session) AS s
                 WHERE c.replica = s.replica AND c.session = s.session
                   AND (c.at < s.newest - interval '1 day' OR s.newest < now() - interval '30 days')",
                &[],
            )
            .await?;
        }
        let alarms = tx
            .query(
                "UPDATE mm_buckets SET alarmed = true
                 WHERE product_code = $1 AND state IN ('sealed', 'sending') AND NOT alarmed
                   AND $2::int8 >= hour + $3::int8 - $4::int8
                 RETURNING license_arn, customer_kind, customer, dimension, hour, quantity",
                &[&product, &now, &scope.window, &scope.alarm_before],
            )
            .await?;
        let events = alarms
            .iter()
            .map(|r| {
                let hour: i64 = r.get(4);
                MeterEvent {
                    kind: MeterEventKind::WindowAlarm {
                        window_end: hour.saturating_add(scope.window),
                    },
                    customer: customer_from(r.get(1), r.get(2), r.get(0)),
                    dimension: r.get(3),
                    hour,
                    quantity: r.get(5),
                    replica_id: None, // set by `Shared::emit`
                }
            })
            .collect();
        tx.commit().await?;
        if prune_commits {
            *super::lock(&self.commits_pruned) = Some(std::time::Instant::now());
        }
        // The seal committed (its alarms are flagged sent): a mark that fails must not fail
        // it. The next fold that adds into these buckets finds them again.
        if !unmarked.is_empty() {
            if let Err(e) = mark(c, product, &unmarked).await {
                tracing::warn!(error = %e, "fleet store: buckets past 2^30 not marked yet");
            }
        }
        Ok((sealed, events))
    }
}

/// Marks checked the buckets the seal's fold found past 2^30 (see `mm_mark_v1` in
/// `schema.rs`), in a transaction of its own: it waits for every write of the product in
/// flight, which the seal must not (they may hold hours it waits for). When another seal
/// holds the fold, or this fails, the next fold that adds into these buckets finds them
/// again.
pub(super) async fn mark(
    c: &PgClient,
    product: &str,
    buckets: &[(i64, String, String, String, String)],
) -> Result<(), tokio_postgres::Error> {
    let hour: Vec<i64> = buckets.iter().map(|b| b.0).collect();
    let [license, kind, customer, dimension]: [Vec<&str>; 4] = [
        buckets.iter().map(|b| b.1.as_str()).collect(),
        buckets.iter().map(|b| b.2.as_str()).collect(),
        buckets.iter().map(|b| b.3.as_str()).collect(),
        buckets.iter().map(|b| b.4.as_str()).collect(),
    ];
    let marked: i64 = c
        .query_one(
            "SELECT mm_mark_v1($1, $2, $3, $4, $5, $6)",
            &[&product, &hour, &license, &kind, &customer, &dimension],
        )
        .await?
        .get(0);
    tracing::debug!(marked, "fleet store: buckets past 2^30 marked checked");
    Ok(())
}

/// Folds the journal outside a seal (`status()` for a role that cannot read it), then marks
/// what the fold took past 2^30, as a seal does; a failed mark is logged.
pub(super) async fn fold_and_mark(
    c: &PgClient,
    product: &str,
) -> Result<(), tokio_postgres::Error> {
    let unmarked = buckets(
        &c.query("SELECT * FROM mm_fold_v2($1, true)", &[&product])
            .await?,
    );
    if !unmarked.is_empty() {
        if let Err(e) = mark(c, product, &unmarked).await {
            tracing::warn!(error = %e, "fleet store: buckets past 2^30 not marked yet");
        }
    }
    Ok(())
}

/// The buckets `mm_fold_v2` returned: (hour, license, kind, customer, dimension).
fn buckets(rows: &[tokio_postgres::Row]) -> Vec<(i64, String, String, String, String)> {
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

// SPDX-License-Identifier: Apache-2.0
// Adding a replica's events to the fleet store (partial rows, exactly once per commit key).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use tokio_postgres::types::Type;
use tokio_postgres::Client as PgClient;

use crate::meter::store::customer_parts;
use crate::meter::{BucketKey, Buffer, MeterEvent, MeterEventKind, Written, MAX_BUCKET};
use crate::Error;

use super::{hour_key, retry, rollback, Fleet, CHECK_SUM_ABOVE, P};

/// One write's rows: the bucket key columns and the quantity.
#[derive(Default)]
pub(super) struct Rows {
    license: Vec<String>,
    kind: Vec<String>,
    customer: Vec<String>,
    dimension: Vec<String>,
    hour: Vec<i64>,
    quantity: Vec<i64>,
}

impl Rows {
    fn push(
        &mut self,
        customer: Option<&crate::meter::Customer>,
        dimension: &str,
        hour: i64,
        quantity: i64,
    ) {
        let (kind, id, license) = customer_parts(customer);
        self.license.push(license.to_owned());
        self.kind.push(kind.to_owned());
        self.customer.push(id.to_owned());
        self.dimension.push(dimension.to_owned());
        self.hour.push(hour);
        self.quantity.push(quantity);
    }
}

impl Fleet {
    /// Adds `entries` in one transaction (see the module docs). `current` is the writer's
    /// current hour, where an add for a sealed hour goes (or the first open hour after it).
    pub(crate) async fn write(
        &self,
        product: &str,
        entries: &Buffer,
        current: i64,
    ) -> Result<Written, Error> {
        let mut refused: Vec<(BucketKey, i64)> = Vec::new();
        loop {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let skip: std::collections::HashSet<&BucketKey> =
                refused.iter().map(|(k, _)| k).collect();
            let mine: Vec<(&BucketKey, &crate::meter::Acc)> =
                entries.iter().filter(|(k, _)| !skip.contains(k)).collect();
            if mine.is_empty() {
                return Ok(Written {
                    late: Vec::new(),
                    refused,
                });
            }
            let out = retry(self, "record", |mut c| {
                let mine = &mine;
                async move {
                    let r = self.write_once(&mut c, product, mine, current, seq).await;
                    (c, r)
                }
            })
            .await?;
            match out {
                WriteOutcome::Done(late) => {
                    return Ok(Written { late, refused });
                }
                WriteOutcome::Refused(more) => refused.extend(more),
            }
        }
    }

    async fn write_once(
        &self,
        c: &mut PgClient,
        product: &str,
        entries: &[(&BucketKey, &crate::meter::Acc)],
        current: i64,
        seq: i64,
    ) -> Result<WriteOutcome, tokio_postgres::Error> {
        let mut hours: BTreeSet<i64> = entries.iter().map(|(k, _)| k.hour).collect();
        hours.insert(current);
        let hours: Vec<i64> = hours.into_iter().collect();
        let keys: Vec<i32> = hours.iter().map(|h| hour_key(*h)).collect();
        // One round trip: the statements are sent together and run in order. The locks are
        // taken ascending (a function scan returns the array in order), and the sealed check
        // runs after them.
        let p_key: [P<'_>; 3] = [
            (&self.replica, Type::TEXT),
            (&self.session, Type::TEXT),
            (&seq, Type::INT8),
        ];
        let p_lock: [P<'_>; 2] = [(&product, Type::TEXT), (&keys, Type::INT4_ARRAY)];
        let p_sealed: [P<'_>; 2] = [(&product, Type::TEXT), (&hours, Type::INT8_ARRAY)];
        let (begin, first, locks, sealed) = tokio::join!(
            c.batch_execute("BEGIN"),
            c.query_typed(
                "INSERT INTO mm_commits (replica, session, seq) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING RETURNING 1",
                &p_key,
            ),
            c.query_typed(
                "SELECT pg_advisory_xact_lock_shared(hashtext($1), k) FROM unnest($2::int4[]) AS k",
                &p_lock,
            ),
            c.query_typed(
                "SELECT hour FROM mm_sealed_hours WHERE product_code = $1 AND hour = ANY($2)",
                &p_sealed,
            ),
        );
        begin?;
        let checked = match (first, locks, sealed) {
            (Ok(f), Ok(_), Ok(s)) => Ok((f, s)),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        };
        let (first, sealed) = match checked {
            Ok(v) => v,
            Err(e) => {
                rollback(c).await;
                return Err(e);
            }
        };
        if first.is_empty() {
            // An earlier attempt of this very write committed (its COMMIT's answer was lost).
            rollback(c).await;
            return Ok(WriteOutcome::Done(Vec::new()));
        }
        let r = self
            .write_rows(c, product, entries, current, &hours, sealed)
            .await;
        match r {
            Ok(WriteOutcome::Done(late)) => {
                crate::meter::crash::hit("fleet_before_commit");
                c.batch_execute("COMMIT").await?;
                crate::meter::crash::hit("fleet_after_commit");
                Ok(WriteOutcome::Done(late))
            }
            Ok(refused) => {
                rollback(c).await;
                Ok(refused)
            }
            Err(e) => {
                rollback(c).await;
                Err(e)
            }
        }
    }

    /// The body of a write, inside its transaction, after the locks.
    async fn write_rows(
        &self,
        c: &PgClient,
        product: &str,
        entries: &[(&BucketKey, &crate::meter::Acc)],
        current: i64,
        hours: &[i64],
        sealed: Vec<tokio_postgres::Row>,
    ) -> Result<WriteOutcome, tokio_postgres::Error> {
        let mut sealed: BTreeSet<i64> = sealed.iter().map(|r| r.get(0)).collect();
        let mut locked: BTreeSet<i64> = hours.iter().copied().collect();
        let mut late = Vec::new();
        let mut landed: Vec<(&BucketKey, &crate::meter::Acc, i64)> =
            Vec::with_capacity(entries.len());
        for (k, acc) in entries {
            let mut h = k.hour;
            if sealed.contains(&h) {
                // Counted in the first open hour from the writer's current hour on.
                h = current.max(k.hour);
                for _ in 0..48 {
                    if !locked.contains(&h) {
                        let hk = hour_key(h);
                        let p_lock: [P<'_>; 2] = [(&product, Type::TEXT), (&hk, Type::INT4)];
                        let p_sealed: [P<'_>; 2] = [(&product, Type::TEXT), (&h, Type::INT8)];
                        let (l, s) = tokio::join!(
                            c.query_typed(
                                "SELECT pg_advisory_xact_lock_shared(hashtext($1), $2)",
                                &p_lock,
                            ),
                            c.query_typed(
                                "SELECT hour FROM mm_sealed_hours WHERE product_code = $1 AND hour = $2",
                                &p_sealed,
                            ),
                        );
                        l?;
                        locked.insert(h);
                        sealed.extend(s?.iter().map(|r| r.get::<_, i64>(0)));
                    }
                    if !sealed.contains(&h) {
                        break;
                    }
                    h += 3600;
                }
                late.push(MeterEvent {
                    kind: MeterEventKind::LateEvent { counted_in_hour: h },
                    customer: k.customer.clone(),
                    dimension: k.dimension.clone(),
                    hour: k.hour,
                    quantity: acc.quantity,
                    replica_id: None, // set by `Shared::emit`
                });
            }
            landed.push((k, acc, h));
        }
        // One row per (bucket, hour): an entry moved into an hour another entry has.
        type Key<'a> = (Option<&'a crate::meter::Customer>, &'a str, i64);
        let mut sums: HashMap<Key<'_>, (i64, Vec<&BucketKey>)> = HashMap::new();
        let mut allocs: HashMap<(Key<'_>, &str), i64> = HashMap::new();
        for (k, acc, h) in &landed {
            let key = (k.customer.as_ref(), k.dimension.as_str(), *h);
            let e = sums.entry(key).or_default();
            e.0 += acc.quantity;
            e.1.push(k);
            if let Some(a) = &acc.allocations {
                for (tags, q) in a {
                    *allocs.entry((key, tags.as_str())).or_default() += q;
                }
            }
        }
        let mut rows = Rows::default();
        let mut origin: Vec<&Vec<&BucketKey>> = Vec::with_capacity(sums.len());
        for ((cust, dim, h), (q, keys)) in &sums {
            rows.push(*cust, dim, *h, *q);
            origin.push(keys);
        }
        let p_rows: [P<'_>; 8] = [
            (&product, Type::TEXT),
            (&self.replica, Type::TEXT),
            (&rows.license, Type::TEXT_ARRAY),
            (&rows.kind, Type::TEXT_ARRAY),
            (&rows.customer, Type::TEXT_ARRAY),
            (&rows.dimension, Type::TEXT_ARRAY),
            (&rows.hour, Type::INT8_ARRAY),
            (&rows.quantity, Type::INT8_ARRAY),
        ];
        let upsert = c.query_typed(
            "INSERT INTO mm_partials (product_code, hour, license_arn, customer_kind, customer,
                                      dimension, replica, quantity)
             SELECT $1, h, l, k, c, d, $2, q
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[])
                  AS t(l, k, c, d, h, q)
             ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
             DO UPDATE SET quantity = mm_partials.quantity + excluded.quantity
             RETURNING quantity",
            &p_rows,
        );
        let mut a = Rows::default();
        let mut tags = Vec::new();
        for (((cust, dim, h), t), q) in &allocs {
            a.push(*cust, dim, *h, *q);
            tags.push((*t).to_owned());
        }
        let alloc_upsert = async {
            if tags.is_empty() {
                return Ok(Vec::new());
            }
            c.query_typed(
                "INSERT INTO mm_partial_allocs (product_code, hour, license_arn, customer_kind, customer,
                                                dimension, replica, tags, quantity)
                 SELECT $1, h, l, k, c, d, $2, g, q
                 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::text[])
                      AS t(l, k, c, d, h, q, g)
                 ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica, tags)
                 DO UPDATE SET quantity = mm_partial_allocs.quantity + excluded.quantity",
                &[
                    (&product, Type::TEXT),
                    (&self.replica, Type::TEXT),
                    (&a.license, Type::TEXT_ARRAY),
                    (&a.kind, Type::TEXT_ARRAY),
                    (&a.customer, Type::TEXT_ARRAY),
                    (&a.dimension, Type::TEXT_ARRAY),
                    (&a.hour, Type::INT8_ARRAY),
                    (&a.quantity, Type::INT8_ARRAY),
                    (&tags, Type::TEXT_ARRAY),
                ],
            )
            .await
        };
        let (returned, allocated) = tokio::join!(upsert, alloc_upsert);
        let returned = returned?;
        allocated?;
        // Rows come back in input order, one per input row.
        let mut over = Vec::new();
        for (i, r) in returned.iter().enumerate() {
            let q: i64 = r.get(0);
            if q <= CHECK_SUM_ABOVE {
                continue;
            }
            let total: i64 = c
                .query_typed(
                    "SELECT COALESCE(SUM(quantity), 0)::int8 FROM mm_partials
                     WHERE product_code = $1 AND hour = $2 AND license_arn = $3
                       AND customer_kind = $4 AND customer = $5 AND dimension = $6",
                    &[
                        (&product, Type::TEXT),
                        (&rows.hour[i], Type::INT8),
                        (&rows.license[i], Type::TEXT),
                        (&rows.kind[i], Type::TEXT),
                        (&rows.customer[i], Type::TEXT),
                        (&rows.dimension[i], Type::TEXT),
                    ],
                )
                .await?[0]
                .get(0);
            if total > MAX_BUCKET {
                for k in origin[i] {
                    over.push(((*k).clone(), total));
                }
            }
        }
        if !over.is_empty() {
            return Ok(WriteOutcome::Refused(over));
        }
        Ok(WriteOutcome::Done(late))
    }
}

pub(super) enum WriteOutcome {
    Done(Vec<MeterEvent>),
    Refused(Vec<(BucketKey, i64)>),
}

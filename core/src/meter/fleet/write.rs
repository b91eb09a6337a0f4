// SPDX-License-Identifier: Apache-2.0
// Adding a replica's events to the fleet store (the journal or partial rows, exactly once
// per commit key).

use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;

use super::PgClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::meter::shared::{late_event, InFlight};
use crate::meter::store::customer_parts;
use crate::meter::{Acc, BucketKey, Buffer, MeterEvent, Written};
use crate::Error;

use super::{hour_key, retry, Fleet, P};

/// What a session adds to one bucket through the journal before its writes to that bucket
/// go to the partial rows instead, where `mm_add_v3` makes the bucket checked (its whole sum
/// against the model's maximum at every write, from any replica) once the partial would
/// pass 2^23: a session adds at most 2^24 to a bucket unchecked.
const JOURNAL_BUDGET: i64 = 1 << 23;
/// Counters per hour; buckets that hash to one share it.
const SLOTS: usize = 8192;
/// Hours tracked at once (a ring): an entry older than the ring goes to the partial rows.
const HOURS: usize = 8;

/// What this session has journaled, per hour, in hashed counters: buckets sharing a
/// counter share its count, so a counter is never below what its buckets were given. 512
/// KiB at most, whatever the number of customers.
#[derive(Default)]
pub(crate) struct Budget {
    hours: [Option<(i64, Box<[i64]>)>; HOURS],
}

impl Budget {
    /// The counter of `key`, when its hour is tracked (a newer hour replaces an older one
    /// in the ring; an hour older than the ring's is not tracked).
    fn counter(&mut self, key: &BucketKey) -> Option<&mut i64> {
        let slot = &mut self.hours[key.hour.div_euclid(3600).rem_euclid(HOURS as i64) as usize];
        match slot {
            Some((h, _)) if *h > key.hour => return None,
            Some((h, _)) if *h == key.hour => {}
            _ => *slot = Some((key.hour, vec![0; SLOTS].into_boxed_slice())),
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let i = (hasher.finish() % SLOTS as u64) as usize;
        slot.as_mut().map(|(_, counts)| &mut counts[i])
    }

    /// Counts `entries` and returns true when every bucket stays within the budget;
    /// otherwise counts nothing and returns false (the write goes to the partial rows).
    pub(super) fn take(&mut self, entries: &[(&BucketKey, &Acc)]) -> bool {
        for (n, (k, acc)) in entries.iter().enumerate() {
            let fits = match self.counter(k) {
                Some(c) if *c + acc.quantity <= JOURNAL_BUDGET => {
                    *c += acc.quantity;
                    true
                }
                _ => false,
            };
            if !fits {
                for (k, acc) in &entries[..n] {
                    if let Some(c) = self.counter(k) {
                        *c -= acc.quantity;
                    }
                }
                return false;
            }
        }
        true
    }

    /// Counts a late entry in the hour it landed in.
    fn landed(&mut self, key: &BucketKey, quantity: i64) {
        if let Some(c) = self.counter(key) {
            *c += quantity;
        }
    }
}

/// A write given up after an attempt that may have committed (see
/// [`ErrorCode::OutcomeUnknown`](crate::ErrorCode::OutcomeUnknown)).
fn outcome_unknown(e: Error) -> Error {
    Error::new(
        crate::ErrorCode::OutcomeUnknown,
        format!(
            "{}; the write's answer was lost, so it may have committed: the meter keeps the \
             usage and writes it again under the same commit key at the next flush, which \
             counts it once either way. Do not record it again",
            e.message()
        ),
    )
    .with_source(e)
}

/// Whether the server answered the write's statement with an error (severity ERROR, not
/// FATAL): its transaction, the statement's own, certainly rolled back, however retryable
/// the error (a lock the write did not get, a deadlock, a read-only standby).
fn rolled_back(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| d.parsed_severity() == Some(tokio_postgres::error::Severity::Error))
}

/// The SQLSTATE `mm_add_v3` raises when an add would push a bucket past the model's maximum;
/// its DETAIL lists `entry:sum,` for each entry refused (entries numbered from 1).
const OVER_MAXIMUM: &str = "MM001";

impl Fleet {
    /// A new commit key: a write under it is added at most once. This meter's count in the
    /// low 32 bits, so its own keys never meet, and 31 bits drawn from the kernel above
    /// them: copies of one process restored from a snapshot (Lambda SnapStart, a cloned VM)
    /// count alike, and the kernel, reseeded at a restore, tells their keys apart. A copy's
    /// write whose own attempt was in doubt took a key another copy had committed for its
    /// own and was never counted (found by the final read); `leave_copied_keys` is left for
    /// a fresh key found taken all the same (one chance in 2^31).
    pub(crate) fn next_seq(&self) -> i64 {
        let count = self.seq.fetch_add(1, Ordering::Relaxed) as u64 & 0xffff_ffff;
        if !self.draw_keys.load(Ordering::Relaxed) {
            return count as i64;
        }
        let drawn = uuid::Uuid::new_v4().as_u64_pair().0 >> 33;
        ((drawn << 32) | count) as i64
    }

    /// Moves this meter's commit keys away from a copy's: a new write's key was already
    /// taken, and only a copy of this process, restored from the same snapshot with the same
    /// session and count, takes this meter's keys, when the bits drawn for them (see
    /// [`Fleet::next_seq`]) came out the same too. The count goes on from a point drawn from
    /// the kernel.
    fn leave_copied_keys(&self) {
        let bits = uuid::Uuid::new_v4().as_u64_pair().0;
        self.seq.store((bits >> 32) as i64, Ordering::Relaxed);
        if !self.copy_said.swap(true, Ordering::Relaxed) {
            crate::meter::write_stderr(
                "marketplace-metering: a fleet meter's commit key was already taken: this \
                 process is a copy of another, restored from one snapshot (Lambda SnapStart, a \
                 cloned VM); its writes go under new keys. Usage buffered (memory durability) \
                 before the snapshot was taken is counted by every copy: create the meter \
                 after the restore.",
            );
        }
    }

    /// Gives this meter `other`'s commit keys, as a copy of `other`'s process restored from
    /// a snapshot has them (tests); `draw`: whether either draws bits of its keys from the
    /// kernel from now on (not: as if the kernel's bits came out the same for both).
    pub(crate) fn adopt_keys_of(&self, other: &Fleet, draw: bool) {
        let session = super::lock(&other.session).clone();
        *super::lock(&self.session) = session;
        self.seq
            .store(other.seq.load(Ordering::Relaxed), Ordering::Relaxed);
        self.draw_keys.store(draw, Ordering::Relaxed);
        other.draw_keys.store(draw, Ordering::Relaxed);
    }

    /// Adds `entries` in one transaction (see the module docs). `current` is the writer's
    /// current hour, where an add for a sealed hour goes (or the first open hour after it).
    ///
    /// The write goes under the commit key `seq` (a new one when `None`), recording in
    /// `in_flight` the key and which entries an attempt may have committed, from when its
    /// first statement goes out (from the start for a key given, which an earlier attempt
    /// may have committed under) until its outcome is known. Entries named there must only
    /// ever be written again under that key: whether the attempt committed (its answer
    /// lost, or the future dropped waiting for it) is unknown, and the key makes a second
    /// write of them add nothing if it did. A write the database refused (past the maximum)
    /// was rolled back with its key, so the entries left go again under the same key.
    /// Given up after an attempt that lost its connection, the error is `OutcomeUnknown`
    /// and `in_flight` still names the key.
    pub(crate) async fn write_keyed(
        &self,
        product: &str,
        entries: &Buffer,
        current: i64,
        seq: Option<i64>,
        in_flight: &InFlight,
    ) -> Result<Written, Error> {
        // A key drawn here went out with no earlier attempt: finding it taken means a copy
        // of this process took it (see `leave_copied_keys`), not that this write committed.
        let fresh = seq.is_none();
        let mut seq = seq.unwrap_or_else(|| self.next_seq());
        let mut refused: Vec<(BucketKey, i64)> = Vec::new();
        // Whether an attempt under `seq` that reached the database lost its connection or
        // its time: it may have committed, or still commit (its backend may not have
        // noticed yet). Set as the statement goes out, so that an attempt cut by its timeout
        // counts too; cleared again only by a certain refusal of that attempt. Only a later
        // attempt that completes settles it (it returns Ok); a later refusal (a timeout
        // waiting on the commit key that attempt holds, or past the maximum) does not. Kept
        // across the refusals of entries past the maximum, which go again under the same
        // key: a key found taken after an attempt in doubt is that attempt's.
        // A key given (a write of unknown outcome, settled now) may have committed already:
        // in doubt from the start, and named as in flight until this write's outcome is
        // known (given up before anything went out, its entries must stay under it).
        let lost = std::sync::atomic::AtomicBool::new(!fresh);
        // Whether an attempt of this call is in doubt, as `lost` is for all of them: only
        // that makes this call's error `OutcomeUnknown`. A settling write that failed for
        // certain keeps its earlier doubt (its key stays named) with the failure's own
        // nature: a schema someone broke is not retryable.
        let ours = std::sync::atomic::AtomicBool::new(false);
        if !fresh {
            in_flight.set(Some((seq, Vec::new())));
        }
        loop {
            let skip: std::collections::HashSet<&BucketKey> =
                refused.iter().map(|(k, _)| k).collect();
            let mine: Vec<(&BucketKey, &Acc)> =
                entries.iter().filter(|(k, _)| !skip.contains(k)).collect();
            if mine.is_empty() {
                in_flight.set(None);
                return Ok(Written {
                    late: Vec::new(),
                    refused,
                    unknown: None,
                });
            }
            let journal =
                self.journal.load(Ordering::Relaxed) && super::lock(&self.budget).take(&mine);
            let out = retry(self, "record", |c| {
                let (mine, lost, ours, refused) = (&mine, &lost, &ours, &refused);
                async move {
                    // Read before the write goes out: its failure leaves nothing in doubt.
                    let closed = match self.closed_through(&c, product).await {
                        Ok(h) => h,
                        Err(e) => return (c, Err(e)),
                    };
                    let before = lost.swap(true, Ordering::Relaxed);
                    let ours_before = ours.swap(true, Ordering::Relaxed);
                    // Named as the statement goes out, not before: a write that failed or
                    // was dropped before sending anything goes again under a new key, which
                    // a copy of this process taking it still tells apart (see below).
                    // The entries in flight are all but those refused (usually none).
                    in_flight.set(Some((seq, refused.clone())));
                    let r = self
                        .write_once(&c, product, mine, current, closed, seq, journal)
                        .await
                        .map(|o| match o {
                            // `before` is set for a key given (see `lost`).
                            WriteOutcome::KeyTaken if before => WriteOutcome::Done(Vec::new()),
                            o => o,
                        });
                    // Certainly rolled back: as if this attempt had never gone out.
                    let undone = match &r {
                        Err(e) => !super::retryable(e) || rolled_back(e),
                        Ok(o) => matches!(o, WriteOutcome::Refused(_)),
                    };
                    if undone {
                        lost.store(before, Ordering::Relaxed);
                        ours.store(ours_before, Ordering::Relaxed);
                        if !before {
                            in_flight.set(None);
                        }
                    }
                    (c, r)
                }
            })
            .await
            .map_err(|e| {
                if ours.load(Ordering::Relaxed) {
                    outcome_unknown(e)
                } else {
                    if !lost.load(Ordering::Relaxed) {
                        in_flight.set(None);
                    }
                    e
                }
            })?;
            match out {
                WriteOutcome::Done(late) => {
                    in_flight.set(None);
                    return Ok(Written {
                        late,
                        refused,
                        unknown: None,
                    });
                }
                WriteOutcome::Refused(more) if more.is_empty() => {
                    in_flight.set(None);
                    // Never retry the same entries forever on a detail this code cannot read.
                    return Err(Error::invalid_state(
                        "fleet store: the database refused a write as past the maximum \
                         without naming its entries (is mm_add_v3 this library's?)",
                    ));
                }
                WriteOutcome::Refused(more) => refused.extend(more),
                // Nothing of this attempt was added (its key was the copy's): again, under
                // a key of its own.
                WriteOutcome::KeyTaken => {
                    self.leave_copied_keys();
                    seq = self.next_seq();
                    in_flight.set(None);
                    lost.store(false, Ordering::Relaxed);
                    ours.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// One attempt: a single statement, so one round trip and the server's implicit
    /// transaction. `mm_add_v3` (see `schema.rs`) inserts the commit key, takes the hours'
    /// shared locks ascending, checks which are sealed after them, moves late entries to the
    /// first open hour, and appends one journal row (`journal`, when no entry's bucket is
    /// checked) or adds into the partial rows checking the model's maximum; a key already
    /// there means an earlier attempt of
    /// this write committed (its answer was lost), and nothing is added.
    #[allow(clippy::too_many_arguments)]
    async fn write_once(
        &self,
        c: &PgClient,
        product: &str,
        entries: &[(&BucketKey, &Acc)],
        current: i64,
        closed: Option<i64>,
        seq: i64,
        journal: bool,
    ) -> Result<WriteOutcome, tokio_postgres::Error> {
        // An hour up to `closed`, the newest one the service took, is closed for every
        // customer, as in the SQLite store: a clock stepped back days put usage into hours no
        // replica had written in, which sealed too old and expired unsent. Those entries go
        // to the current hour, or past the closed ones.
        let current = closed.map_or(current, |h| current.max(h.saturating_add(3600)));
        let n = entries.len();
        let (mut license, mut kind, mut customer) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut dimension, mut hour, mut quantity) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut a_entry, mut a_tags, mut a_quantity) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (k, acc)) in entries.iter().enumerate() {
            let (kd, id, lic) = customer_parts(k.customer.as_ref());
            license.push(lic);
            kind.push(kd);
            customer.push(id);
            dimension.push(k.dimension.as_str());
            hour.push(if closed.is_some_and(|h| k.hour <= h) {
                current
            } else {
                k.hour
            });
            quantity.push(acc.quantity);
            for (tags, q) in acc.allocations.iter().flatten() {
                a_entry.push(i as i32 + 1);
                a_tags.push(tags.as_str());
                a_quantity.push(*q);
            }
        }
        let mut locked = hour.clone();
        locked.push(current);
        locked.sort_unstable();
        locked.dedup();
        let keys: Vec<i32> = locked.iter().map(|h| hour_key(*h)).collect();
        let session = super::lock(&self.session).clone();
        let params: [P<'_>; 17] = [
            (&self.replica, Type::TEXT),
            (&session, Type::TEXT),
            (&seq, Type::INT8),
            (&product, Type::TEXT),
            (&current, Type::INT8),
            (&locked, Type::INT8_ARRAY),
            (&keys, Type::INT4_ARRAY),
            (&license, Type::TEXT_ARRAY),
            (&kind, Type::TEXT_ARRAY),
            (&customer, Type::TEXT_ARRAY),
            (&dimension, Type::TEXT_ARRAY),
            (&hour, Type::INT8_ARRAY),
            (&quantity, Type::INT8_ARRAY),
            (&a_entry, Type::INT4_ARRAY),
            (&a_tags, Type::TEXT_ARRAY),
            (&a_quantity, Type::INT8_ARRAY),
            (&journal, Type::BOOL),
        ];
        crate::meter::crash::hit("fleet_before_commit");
        let r = c
            .query_typed(
                "SELECT mm_add_v3($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17)",
                &params,
            )
            .await;
        let rows = match r {
            Ok(rows) => rows,
            Err(e) => {
                return match e.as_db_error() {
                    Some(db) if *db.code() == SqlState::from_code(OVER_MAXIMUM) => Ok(
                        WriteOutcome::Refused(over_maximum(db.detail().unwrap_or(""), entries)),
                    ),
                    _ => Err(e),
                }
            }
        };
        crate::meter::crash::hit("fleet_after_commit");
        // NULL: the key was there, so nothing was added: an earlier attempt of this very
        // write committed, or (a key no attempt sent before) a copy of this process took it.
        let Some(landed) = rows.first().and_then(|r| r.get::<_, Option<Vec<i64>>>(0)) else {
            return Ok(WriteOutcome::KeyTaken);
        };
        let moved: Vec<(i64, &(&BucketKey, &Acc))> = landed
            .into_iter()
            .zip(entries)
            .filter(|(h, (k, _))| *h != k.hour)
            .collect();
        if journal && !moved.is_empty() {
            let mut budget = super::lock(&self.budget);
            for (h, (k, acc)) in &moved {
                let key = BucketKey {
                    hour: *h,
                    ..(*k).clone()
                };
                budget.landed(&key, acc.quantity);
            }
        }
        let late = moved
            .into_iter()
            .map(|(h, (k, acc))| late_event(*k, acc.quantity, h))
            .collect();
        Ok(WriteOutcome::Done(late))
    }
}

impl Fleet {
    /// [`Self::closed_through`] as last read, without a query (`None`: none, or not read).
    pub(crate) fn closed_hint(&self) -> Option<i64> {
        super::lock(&self.closed_through).and_then(|(_, h)| h)
    }

    /// The newest hour of `product` the service took (acked; not one found past its
    /// window, which a clock running fast could have expired ahead), read again at most once
    /// a minute: it moves once an hour. One look-up in the (product, state, hour) index.
    async fn closed_through(
        &self,
        c: &PgClient,
        product: &str,
    ) -> Result<Option<i64>, tokio_postgres::Error> {
        if let Some((at, h)) = *super::lock(&self.closed_through) {
            if at.elapsed() < std::time::Duration::from_secs(60) {
                return Ok(h);
            }
        }
        let h: Option<i64> = c
            .query_one(
                "SELECT max(hour) FROM mm_buckets WHERE product_code = $1 AND state = 'acked'",
                &[&product],
            )
            .await?
            .get(0);
        *super::lock(&self.closed_through) = Some((std::time::Instant::now(), h));
        Ok(h)
    }
}

/// The entries `mm_add_v3` refused, from its DETAIL (`entry:sum,` with entries from 1).
fn over_maximum(detail: &str, entries: &[(&BucketKey, &Acc)]) -> Vec<(BucketKey, i64)> {
    detail
        .split(',')
        .filter_map(|item| {
            let (i, sum) = item.split_once(':')?;
            let (i, sum) = (i.parse::<usize>().ok()?, sum.parse::<i64>().ok()?);
            let (k, _) = entries.get(i.checked_sub(1)?)?;
            Some(((*k).clone(), sum))
        })
        .collect()
}

pub(super) enum WriteOutcome {
    Done(Vec<MeterEvent>),
    Refused(Vec<(BucketKey, i64)>),
    /// The commit key was already there and nothing was added.
    KeyTaken,
}

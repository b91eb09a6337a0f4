// SPDX-License-Identifier: Apache-2.0
// `UsageMeter::record`: checking an event and adding it to its bucket.

use compact_str::CompactString;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::FieldPath;
use crate::operation::batch_meter_usage::BatchMeterUsageInput;
use crate::primitives::DateTime;
use crate::types::{UsageAllocation, UsageRecord};
use crate::Error;

use super::group::{GroupQueue, Slot};
use super::store::Allocs;
use super::{
    fleet, fold_moves, hour_of, late_event, lock, overflow_error, Acc, AsKey, BucketKey, Buffer,
    Customer, CustomerRef, Durability, Group, KeyRef, MeterEvent, MeterMode, UsageMeter,
    MAX_BUCKET,
};

/// What [`UsageMeter::check`] left to do.
enum Checked {
    /// The event is recorded.
    Done,
    /// The group mode: the event, for the caller to queue for a group commit.
    Queue(Queued),
}

/// An event checked and ready for its group commit.
struct Queued {
    key: BucketKey,
    quantity: i64,
    allocs: Option<Allocs>,
    /// The LateEvent to report once the commit counted it (boxed: rare, and large).
    late: Option<Box<MeterEvent>>,
}

impl Queued {
    /// Adds the event to the open group (see [`GroupQueue::push`]); its key and quantity
    /// stay, for the wait.
    fn push(
        &mut self,
        qg: &mut GroupQueue,
        cv: &std::sync::Condvar,
        max_events: usize,
    ) -> Result<(std::sync::Arc<Slot>, usize), Error> {
        let late = self.late.take().map(|b| *b);
        qg.push(
            cv,
            self.key.clone(),
            self.quantity,
            self.allocs.take(),
            late,
            max_events,
        )
    }
}

/// The future of [`UsageMeter::record_in_group`]: resolves once the event's group commit is
/// done. The event is already queued: dropping the future does not take it back.
#[must_use = "the event is durable only once the future resolves"]
pub struct GroupCommit(
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'static>>,
);

impl std::future::Future for GroupCommit {
    type Output = Result<(), Error>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

/// How far ahead of the meter's clock a timestamp may be (5 minutes).
pub const MAX_AHEAD_SECS: i64 = 300;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years a calendar (and every face's
/// date type) holds.
pub(super) const CALENDAR: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// The meter's rule beyond the model's: no NUL in a string it keeps. The model allows one in
/// a customer identifier or a dimension; PostgreSQL's `text` refuses it, and the fleet write
/// that carried one failed for good, holding back every event buffered with it. Refused from
/// every store alike, so that moving a meter to the fleet changes nothing a caller sees.
pub(super) fn no_nul(arg: &'static str, s: &str) -> Result<(), Error> {
    if s.contains('\0') {
        return Err(Error::invalid_input(
            FieldPath::argument(arg),
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(())
}

/// The meter's clock, refused when it reads outside any calendar (milliseconds where
/// seconds are meant): an event timed by it was kept in an hour the service refuses, every
/// given timestamp passed as "not ahead of the clock", and a flush sealed every hour and
/// zero-filled a SQLite store up to the year 55,000, past which it never filled again.
pub(super) fn clock_now(shared: &super::shared::Shared) -> Result<i64, Error> {
    let now = (shared.clock)();
    if !CALENDAR.contains(&now) {
        return Err(Error::invalid_input(
            FieldPath::argument("clock"),
            format!(
                "the meter's clock reads {now}, not a time any calendar holds; it must give \
                 seconds since 1970-01-01"
            ),
        ));
    }
    Ok(now)
}

/// The most bytes the strings of one fleet-store key may hold together: the product code,
/// replica id, license ARN, customer, dimension and one allocation's tags. A row of a
/// PostgreSQL btree index holds at most 2,704 bytes, and the store's keys add at most 80
/// bytes of headers, padding, the customer's kind and the hour. The model bounds none of
/// the license ARN's length and allows a customer, a dimension and five tags whose
/// multi-byte characters pass it; an event past it was acknowledged, then failed every fold
/// of the product's journal (SQLSTATE 54000) on every replica, and no hour was sealed or
/// sent again.
pub(super) const FLEET_KEY_BYTES: usize = 2_600;

/// Why a string that is not ASCII is refused by a fleet store in a database of `encoding`.
pub(super) fn ascii_problem(encoding: &str) -> String {
    format!(
        "must be ASCII: the fleet store's database is in {encoding}, which lacks characters \
         the model allows (a database made with ENCODING 'UTF8' holds them all)"
    )
}

/// Checks an event's timestamp against the meter's clock `now`.
pub(super) fn check_timestamp(secs: i64, now: i64) -> Result<i64, Error> {
    if !CALENDAR.contains(&secs) {
        return Err(Error::invalid_input(
            FieldPath::argument("timestamp"),
            format!("{secs} is not a time any calendar holds (seconds since 1970-01-01)"),
        ));
    }
    if secs > now.saturating_add(MAX_AHEAD_SECS) {
        return Err(Error::invalid_input(
            FieldPath::argument("timestamp"),
            format!(
                "{secs} is more than {MAX_AHEAD_SECS} seconds ahead of the meter's clock \
                 ({now}); timestamps are seconds since 1970-01-01 (milliseconds, as from \
                 Date.now() or time.time() * 1000, are refused)"
            ),
        ));
    }
    Ok(secs)
}

pub(super) fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

pub(super) fn canonical_allocations(allocs: &[UsageAllocation]) -> Result<Allocs, Error> {
    let mut out = Allocs::new();
    for a in allocs {
        let key = match &a.tags {
            None => String::new(),
            Some(tags) => {
                let mut t = tags.clone();
                t.sort_by(|x, y| (&x.key, &x.value).cmp(&(&y.key, &y.value)));
                serde_json::to_string(&t).map_err(|e| {
                    Error::invalid_input(
                        FieldPath::argument("allocations"),
                        format!("cannot encode the tags: {e}"),
                    )
                })?
            }
        };
        *out.entry(key).or_insert(0) += i64::from(a.allocated_usage_quantity);
    }
    Ok(out)
}

impl UsageMeter {
    /// Adds `quantity` of `dimension` used by `customer` at `at` (default: now) to its
    /// bucket, and returns once the event is as durable as the meter's [`Durability`] says.
    ///
    /// An event whose hour is already sealed (or older than its grace) is counted in the
    /// current hour, or the next open one when the clock stepped back into a sealed hour,
    /// and reported as [`MeterEventKind::LateEvent`](super::MeterEventKind::LateEvent).
    /// Refused with `InvalidInput`: a timestamp more than [`MAX_AHEAD_SECS`] ahead of the
    /// meter's clock (a timestamp in milliseconds, say) or outside the years 1 to 9999
    /// (`timestamp`), and an event that would push its bucket past the model's 2,147,483,647
    /// (`quantity`; nothing of it is counted), and a NUL character in the customer identifier
    /// or the dimension, which the fleet store's PostgreSQL cannot hold (refused from every
    /// store alike). `allocations`, when given, must sum to `quantity`. The customer is
    /// required (`InvalidInput` naming `customer_identifier` without one), except in the
    /// `MeterUsage` mode, where it is ignored: those buckets have no customer.
    pub fn record(
        &self,
        customer: impl Into<Option<Customer>>,
        dimension: &str,
        quantity: i64,
        at: Option<DateTime>,
        allocations: Option<Vec<UsageAllocation>>,
    ) -> Result<(), Error> {
        let customer = customer.into();
        self.record_ref(
            customer.as_ref().map(Customer::by_ref),
            dimension,
            quantity,
            at,
            allocations.as_deref(),
        )
    }

    /// [`Self::record`] of the common event: `quantity` of `dimension` used now by the
    /// customer `customer_identifier` (ignored in the `MeterUsage` mode, as there), without
    /// allocations. The same rules and errors; it borrows its strings, so that an event for a
    /// bucket the memory buffer already holds allocates nothing (the faces' hot path).
    pub fn record_identifier(
        &self,
        customer_identifier: &str,
        dimension: &str,
        quantity: i64,
    ) -> Result<(), Error> {
        let customer = CustomerRef::Identifier(customer_identifier);
        self.record_ref(Some(customer), dimension, quantity, None, None)
    }

    /// In the group mode, [`Self::record`] for callers on an async runtime (the Node face):
    /// the event is checked and queued for the next group commit now, with the same rules
    /// and errors, and the returned future resolves once that commit is done (or with the
    /// commit's error), holding no thread while it waits. `Ok(None)` in every other
    /// mode, where nothing was done: call [`Self::record`] on a thread that may block.
    pub fn record_in_group(
        &self,
        customer: Option<&Customer>,
        dimension: &str,
        quantity: i64,
        at: Option<DateTime>,
        allocations: Option<&[UsageAllocation]>,
    ) -> Result<Option<GroupCommit>, Error> {
        if self.inner.group.is_none() {
            return Ok(None);
        }
        let checked = self.check(
            customer.map(Customer::by_ref),
            dimension,
            quantity,
            at,
            allocations,
        )?;
        let Checked::Queue(mut q) = checked else {
            return Ok(Some(GroupCommit(Box::pin(async { Ok(()) }))));
        };
        let (g, max_events) = self.group()?;
        // Queued at once, past `max_events` if need be: the open group sums events per
        // bucket, so its size is bounded by the buckets, and an async caller's events in
        // flight are bounded by the caller. Queued, the event is committed even if the
        // future is dropped.
        let (slot, event) = q.push(&mut lock(&g.queue), &g.cv, max_events)?;
        Ok(Some(GroupCommit(Box::pin(async move {
            slot.committed(event, &q.key, q.quantity).await
        }))))
    }

    fn record_ref(
        &self,
        customer: Option<CustomerRef<'_>>,
        dimension: &str,
        quantity: i64,
        at: Option<DateTime>,
        allocations: Option<&[UsageAllocation]>,
    ) -> Result<(), Error> {
        let Checked::Queue(mut q) = self.check(customer, dimension, quantity, at, allocations)?
        else {
            return Ok(());
        };
        let (g, max_events) = self.group()?;
        let (slot, event) = {
            let mut qg = lock(&g.queue);
            while qg.count >= max_events && !qg.stop {
                qg.room_waiters += 1;
                qg = g.room.wait(qg).unwrap_or_else(|p| p.into_inner());
                qg.room_waiters -= 1;
            }
            let pushed = q.push(&mut qg, &g.cv, max_events)?;
            qg.waiters.push(std::thread::current());
            pushed
        };
        let spin = g.spin.load(Ordering::Relaxed);
        crate::runtime::wait_outside_workers(|| slot.wait(event, &q.key, q.quantity, spin))
    }

    /// Refuses an event the meter's fleet store (if it has one) cannot hold: a key past
    /// [`FLEET_KEY_BYTES`] (naming the allocations when their tags pass it, else the key's
    /// longest part), or, in a database whose encoding is not UTF-8, a string that is not
    /// ASCII.
    pub(super) fn fleet_key_fits(
        &self,
        customer: Option<CustomerRef<'_>>,
        dimension: &str,
        allocs: Option<&Allocs>,
    ) -> Result<(), Error> {
        let shared = &*self.inner.shared;
        let Some(f) = &shared.fleet else {
            return Ok(());
        };
        let product = &shared.scope.product_code;
        let (id, account, license) = customer.map_or((None, None, None), CustomerRef::parts);
        let customer_arg = match account {
            Some(_) => "customer_aws_account_id",
            None => "customer_identifier",
        };
        let parts = [
            ("license_arn", license.unwrap_or("")),
            (customer_arg, id.or(account).unwrap_or("")),
            ("dimension", dimension),
        ];
        let tags = allocs.into_iter().flat_map(|a| a.keys());
        if let Some(encoding) = f.narrow_encoding() {
            let parts = parts.iter().copied();
            let tags = tags.clone().map(|t| ("allocations", t.as_str()));
            if let Some((arg, _)) = parts.chain(tags).find(|(_, s)| !f.holds(s)) {
                return Err(Error::invalid_input(
                    FieldPath::argument(arg),
                    ascii_problem(encoding),
                ));
            }
        }
        let key =
            product.len() + f.replica().len() + parts.iter().map(|p| p.1.len()).sum::<usize>();
        let tags = tags.map(String::len).max().unwrap_or(0);
        if key + tags <= FLEET_KEY_BYTES {
            return Ok(());
        }
        let (arg, what) = match key <= FLEET_KEY_BYTES {
            true => ("allocations", "with an allocation's tags"),
            false => (
                parts
                    .iter()
                    .max_by_key(|p| p.1.len())
                    .map_or("dimension", |p| p.0),
                "together",
            ),
        };
        Err(Error::invalid_input(
            FieldPath::argument(arg),
            format!(
                "the fleet store keys an hour by the product code, replica id, license ARN, \
                 customer and dimension ({key} bytes here), {what} {} bytes: it takes at most \
                 {FLEET_KEY_BYTES} (a PostgreSQL index row holds 2,704 with the key's overhead); \
                 nothing was counted",
                key + tags
            ),
        ))
    }

    /// The group committer and its `max_events`, which the group mode always has.
    fn group(&self) -> Result<(&Group, usize), Error> {
        match &self.inner.group {
            Some((g, max_events)) => Ok((g, *max_events)),
            None => Err(Error::invalid_state("the meter has no group committer")),
        }
    }

    /// Checks an event and records it, except in the group mode, where it returns the
    /// event for the caller to queue.
    fn check(
        &self,
        customer: Option<CustomerRef<'_>>,
        dimension: &str,
        quantity: i64,
        at: Option<DateTime>,
        allocations: Option<&[UsageAllocation]>,
    ) -> Result<Checked, Error> {
        let inner = &*self.inner;
        inner.check_process()?;
        if inner.group.is_some() {
            // A group record waits for the committer thread, which may be the one calling.
            inner.shared.refuse_reentry("record() in the group mode")?;
        }
        self.refuse_closed()?;
        let customer = self.bucket_customer(customer)?;
        let q = crate::validate::quantity_with(quantity, || FieldPath::argument("quantity"))?;
        let shared = &*inner.shared;
        let now = clock_now(shared)?;
        let at_secs = match at {
            Some(t) => check_timestamp(t.secs(), now)?,
            None => now,
        };
        self.validate(customer, dimension, q, at_secs, allocations)?;
        let allocs = match allocations {
            Some(a) => Some(canonical_allocations(a)?),
            None => None,
        };
        self.fleet_key_fits(customer, dimension, allocs.as_ref())?;
        let hour = hour_of(at_secs);
        let late = hour.saturating_add(3600 + shared.scope.grace) <= now;
        if let Some(start) = shared.fleet.as_ref().and_then(fleet::Fleet::start_hour) {
            // Before the cut-over, everything is the SQLite meter's; after it, an hour before
            // it is the SQLite meter's while that hour is open there. A late event of such an
            // hour is counted here, in the current hour: the SQLite meter would count it in
            // its own current hour, after the cut-over, which this store bills too.
            if hour_of(now) < start || (hour < start && !late) {
                return Err(Error::invalid_input(
                    FieldPath::argument("timestamp"),
                    format!(
                        "{at_secs} is before this fleet store's start hour {start}: usage before \
                         the cut-over belongs to the SQLite meter it took over from"
                    ),
                ));
            }
        }
        let mut key = KeyRef {
            customer,
            dimension,
            hour,
        };
        // Reported once the event is counted: a refused one (past the maximum, a failed
        // commit) was not.
        let memory = inner.memory_store || inner.durability == Durability::Memory;
        let late_ev = match late {
            false => None,
            true => {
                let mut current = hour_of(now);
                if memory && shared.fleet.is_none() {
                    // Placed now, where the store would move it (the clock stepped back
                    // into a closed hour): written later, it is not moved and reported again.
                    current = lock(&shared.db).landing_hour(
                        &shared.scope.product_code,
                        customer.map(CustomerRef::to_customer).as_ref(),
                        dimension,
                        current,
                    )?;
                }
                let ev = late_event(&key, quantity, current);
                key.hour = current;
                Some(ev)
            }
        };
        if memory {
            // On the fleet store the write reports it, once it knows where the entry lands.
            let (late_ev, late_part) = match late_ev {
                Some(ev) if shared.fleet.is_some() => (None, Some((ev.hour, quantity))),
                ev => (ev, None),
            };
            self.buffer(key, quantity, allocs, late_part)?;
            if let Some(ev) = late_ev {
                shared.emit(vec![ev]);
            }
            // (An in-memory store ends with the process whatever is written to it.)
            if !inner.memory_store && inner.exiting.load(Ordering::Relaxed) && !shared.in_callback()
            {
                self.write_at_exit();
            }
            return Ok(Checked::Done);
        }
        let key = key.to_bucket();
        match &inner.group {
            Some(_) => Ok(Checked::Queue(Queued {
                key,
                quantity,
                allocs,
                late: late_ev.map(Box::new),
            })),
            None => {
                let mut one = Buffer::with_capacity(1);
                one.insert(
                    key,
                    Acc {
                        quantity,
                        allocations: allocs,
                        ..Acc::default()
                    },
                );
                let w = shared.write_store(one, false)?;
                if let Some((k, total)) = w.refused.first() {
                    return Err(overflow_error(k, quantity, *total));
                }
                if let Some(e) = w.unknown {
                    // Kept, to be counted once: reported as the group mode does.
                    shared.emit(late_ev.into_iter().collect());
                    return Err(e);
                }
                let mut late: Vec<MeterEvent> = late_ev.into_iter().collect();
                let moves = fold_moves(&mut late, w.late);
                shared.emit(late.into_iter().chain(moves).collect());
                Ok(Checked::Done)
            }
        }
    }

    /// `memory` durability: adds to the buffer, unless the bucket's sum (the store's part
    /// and the buffer's) would pass the model's maximum. The owned key is made only for a
    /// bucket the buffer does not hold.
    fn buffer(
        &self,
        key: KeyRef<'_>,
        quantity: i64,
        allocs: Option<Allocs>,
        late: Option<(i64, i64)>,
    ) -> Result<(), Error> {
        let shared = &*self.inner.shared;
        let mut owned: Option<BucketKey> = None;
        loop {
            let drains = {
                let mut b = lock(&shared.buffer);
                if let Some(acc) = b.map.get_mut(&key as &dyn AsKey) {
                    let total = acc.total_with(quantity);
                    if total > MAX_BUCKET {
                        return Err(overflow_error(&key, quantity, total));
                    }
                    acc.add(quantity, allocs);
                    acc.late.extend(late);
                    return Ok(());
                }
                b.drains
            };
            let new = owned.take().unwrap_or_else(|| key.to_bucket());
            // First event of this bucket since the last drain: read what the store holds,
            // without holding the buffer (a drain holds the store, then the buffer).
            let base = if shared.fleet.is_some() {
                // The fleet's sum is spread over replicas; the write checks it.
                Ok(0)
            } else {
                lock(&shared.db).pending_quantity(
                    &shared.scope.product_code,
                    new.customer.as_ref(),
                    &new.dimension,
                    new.hour,
                )
            }?;
            let mut b = lock(&shared.buffer);
            if b.drains != drains || b.map.contains_key(&new) {
                owned = Some(new);
                continue; // a drain or another caller came first: look again
            }
            let acc = Acc {
                quantity,
                allocations: allocs,
                base,
                late: late.into_iter().collect(),
            };
            let total = acc.total_with(0);
            if total > MAX_BUCKET {
                return Err(overflow_error(&key, quantity, total));
            }
            b.map.insert(new, acc);
            return Ok(());
        }
    }

    /// The customer of a bucket: none in the `MeterUsage` mode (whatever was given), required
    /// in the others.
    pub(super) fn bucket_customer<C>(&self, customer: Option<C>) -> Result<Option<C>, Error> {
        match (self.inner.mode, customer) {
            (MeterMode::MeterUsage, _) => Ok(None),
            (MeterMode::Batch, None) => Err(Customer::required_error()),
            (MeterMode::Batch, c) => Ok(c),
        }
    }

    pub(super) fn validate(
        &self,
        customer: Option<CustomerRef<'_>>,
        dimension: &str,
        q: i32,
        at_secs: i64,
        allocations: Option<&[UsageAllocation]>,
    ) -> Result<(), Error> {
        no_nul("dimension", dimension)?;
        if let Some(CustomerRef::Identifier(id)) = customer {
            no_nul("customer_identifier", id)?;
        }
        if self.inner.mode == MeterMode::MeterUsage {
            crate::validate::dimension_argument("dimension", dimension)?;
            if let Some(a) = allocations {
                let input = crate::operation::meter_usage::MeterUsageInput {
                    product_code: self.inner.shared.scope.product_code.clone(),
                    timestamp: DateTime::from_secs(at_secs),
                    usage_dimension: dimension.to_owned(),
                    usage_quantity: Some(q),
                    dry_run: None,
                    usage_allocations: Some(a.to_vec()),
                    client_token: None,
                };
                crate::validate::meter_usage(&input)
                    .map_err(crate::validate::as_record_arguments)?;
            }
            return Ok(());
        }
        let Some(customer) = customer else {
            return Err(Customer::required_error());
        };
        if matches!(customer, CustomerRef::Identifier("")) {
            // The store keeps a bucket by its customer, and reads an empty one back as none.
            return Err(Error::invalid_input(
                FieldPath::argument("customer_identifier"),
                "must not be empty",
            ));
        }
        let product = &self.inner.shared.scope.product_code;
        // With or without allocations: a CustomerIdentifier's bucket, sent in a license's
        // call with no product code, could never be billed.
        if product.is_empty() && matches!(customer, CustomerRef::Identifier(_)) {
            return Err(Error::invalid_input(
                FieldPath::argument("customer_identifier"),
                "a CustomerIdentifier needs the meter's product code",
            ));
        }
        match customer {
            CustomerRef::Identifier(id) if allocations.is_none() => {
                crate::validate::customer_identifier_argument("customer_identifier", id)?;
                crate::validate::dimension_argument("dimension", dimension)
            }
            _ => {
                let record = self.usage_record(customer, dimension, q, at_secs, allocations);
                let input = BatchMeterUsageInput {
                    usage_records: vec![record],
                    product_code: (!product.is_empty()).then(|| product.clone()),
                };
                crate::validate::batch_meter_usage(&input)
                    .map_err(crate::validate::as_record_arguments)
            }
        }
    }

    fn usage_record(
        &self,
        customer: CustomerRef<'_>,
        dimension: &str,
        q: i32,
        at_secs: i64,
        allocations: Option<&[UsageAllocation]>,
    ) -> UsageRecord {
        let (ci, acct, lic) = customer.parts();
        let (ci, acct, lic) = (
            ci.map(CompactString::from),
            acct.map(CompactString::from),
            lic.map(CompactString::from),
        );
        UsageRecord {
            timestamp: DateTime::from_secs(at_secs),
            customer_identifier: ci,
            dimension: dimension.into(),
            quantity: Some(q),
            usage_allocations: allocations.map(<[UsageAllocation]>::to_vec),
            customer_aws_account_id: acct,
            license_arn: lic,
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
// What the meter, its committer thread and its flusher share: the buckets, the memory buffer, the writes to the store.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::FieldPath;
use crate::{Error, ErrorCode};

use super::store::{Allocs, Db, Scope};
use super::{
    crash, fleet, hour_of, store, Clock, Customer, CustomerRef, EventCallback, MeterEvent,
    MeterEventKind,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BucketKey {
    /// `None` in the `MeterUsage` mode.
    pub(super) customer: Option<Customer>,
    pub(super) dimension: String,
    pub(super) hour: i64,
}

/// A [`BucketKey`] borrowed: what `record()` looks a bucket up by, so that an event for a
/// bucket the buffer holds allocates nothing (the owned key is made for a new bucket only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct KeyRef<'a> {
    pub(super) customer: Option<CustomerRef<'a>>,
    pub(super) dimension: &'a str,
    pub(super) hour: i64,
}

impl KeyRef<'_> {
    pub(super) fn to_bucket(self) -> BucketKey {
        BucketKey {
            customer: self.customer.map(CustomerRef::to_customer),
            dimension: self.dimension.to_owned(),
            hour: self.hour,
        }
    }
}

/// Either key as a [`KeyRef`]: a [`Buffer`] is searched by `&dyn AsKey` (std's `HashMap` finds
/// an entry by any `Q` the key `Borrow`s, with `Hash` and `Eq` agreeing with the key's).
pub(super) trait AsKey {
    fn key(&self) -> KeyRef<'_>;
}

impl AsKey for BucketKey {
    fn key(&self) -> KeyRef<'_> {
        KeyRef {
            customer: self.customer.as_ref().map(Customer::by_ref),
            dimension: &self.dimension,
            hour: self.hour,
        }
    }
}

impl AsKey for KeyRef<'_> {
    fn key(&self) -> KeyRef<'_> {
        *self
    }
}

/// Hashes as its [`KeyRef`], as the lookups by `&dyn AsKey` do.
impl Hash for BucketKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl<'a> Borrow<dyn AsKey + 'a> for BucketKey {
    fn borrow(&self) -> &(dyn AsKey + 'a) {
        self
    }
}

impl Hash for dyn AsKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn AsKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn AsKey + '_ {}

#[derive(Default)]
pub(super) struct Acc {
    pub(super) quantity: i64,
    pub(super) allocations: Option<Allocs>,
    /// What the store held for the bucket when a `memory` buffer first took it (the rest of
    /// the bucket's sum, for the model's maximum); 0 elsewhere.
    pub(super) base: i64,
    /// Fleet store, `memory` durability: the late events in `quantity` (each the hour it was
    /// recorded for and its quantity), counted in the entry's hour. Reported when the entry
    /// lands, in the hour it lands in: the fleet may find the entry's hour sealed (the clock
    /// stepped back into it) and move the entry on, and only the write knows.
    pub(super) late: Vec<(i64, i64)>,
}

impl Acc {
    pub(super) fn add(&mut self, quantity: i64, allocations: Option<Allocs>) {
        self.quantity = self.quantity.saturating_add(quantity);
        if let Some(a) = allocations {
            let mine = self.allocations.get_or_insert_with(Allocs::new);
            for (k, v) in a {
                *mine.entry(k).or_insert(0) += v;
            }
        }
    }
    /// Adds another entry of the same bucket: its quantity, allocations and late events.
    pub(super) fn absorb(&mut self, other: Acc) {
        self.add(other.quantity, other.allocations);
        self.late.extend(other.late);
    }

    /// The bucket's sum with `quantity` more.
    pub(super) fn total_with(&self, quantity: i64) -> i64 {
        self.base
            .saturating_add(self.quantity)
            .saturating_add(quantity)
    }
}

pub(super) type Buffer = HashMap<BucketKey, Acc>;

/// Entries of a fleet write moved past a full hour: the key each was moved to → the key it
/// was recorded under. Kept with the entries until they land, which reports their late
/// event.
pub(super) type Moved = HashMap<BucketKey, BucketKey>;

/// The `memory` durability's buffer.
#[derive(Default)]
pub(super) struct MemBuffer {
    pub(super) map: Buffer,
    /// Fleet store: writes whose outcome is unknown (an attempt may have committed), each
    /// under its commit key, with the moves of its entries; written again under that key
    /// before anything else. Also entries kept apart from the buffer (no key yet, see
    /// [`MemBuffer::rejoin`]).
    pub(super) unsettled: Vec<(Option<i64>, Buffer, Moved)>,
    /// Counts drains, so a `record()` that read a bucket's stored sum without holding the
    /// buffer knows whether a drain changed it meanwhile.
    pub(super) drains: u64,
}

impl MemBuffer {
    /// Puts a fleet write's entry back into the buffer under `k`, unless, together with what
    /// was recorded for `k` while the write ran, it would pass the model's maximum: the
    /// buffer was empty meanwhile, so `record()` took more for the bucket than one entry may
    /// hold, and the sum would then be refused in every hour. Such an entry is kept apart,
    /// as a write of its own for the next drain, which moves it to an hour with room.
    pub(super) fn rejoin(&mut self, k: BucketKey, acc: Acc) {
        match self.map.entry(k) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(acc);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let mine = o.get_mut();
                let base = mine.base.max(acc.base);
                let sum = base
                    .saturating_add(mine.quantity)
                    .saturating_add(acc.quantity);
                if sum > MAX_BUCKET {
                    let k = o.key().clone();
                    self.unsettled
                        .push((None, Buffer::from([(k, acc)]), Moved::new()));
                } else {
                    mine.base = base;
                    mine.absorb(acc);
                }
            }
        }
    }
}

/// The largest quantity a bucket may reach: the model's maximum for a record.
pub(super) const MAX_BUCKET: i64 = i32::MAX as i64;

/// The error of a `record()` that would push a bucket past [`MAX_BUCKET`].
pub(super) fn overflow_error(key: &dyn AsKey, quantity: i64, total: i64) -> Error {
    let key = key.key();
    let bucket = match key.customer {
        Some(c) => format!("{} / {}", c.shown(), key.dimension),
        None => key.dimension.to_owned(),
    };
    Error::invalid_input(
        FieldPath::argument("quantity"),
        format!(
            "adding {quantity} would bring the hour {} of {bucket} to {total}, past the largest \
             quantity the service accepts for an hour ({MAX_BUCKET}); nothing of it was \
             counted. Meter this dimension in a coarser unit",
            key.hour
        ),
    )
}

/// Runs a fleet-store future to completion from synchronous code: on the calling thread
/// through [`crate::runtime::block_on`], or, when the caller is itself inside a tokio
/// runtime (a `#[tokio::test]`, an async seller), on a helper thread, so the call never
/// fails for where it was made. The database connections run on the shared runtime either
/// way.
pub(super) fn wait<F>(fut: F) -> Result<F::Output, Error>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return crate::runtime::block_on(fut);
    }
    crate::runtime::wait_outside_workers(|| {
        std::thread::scope(|s| {
            s.spawn(|| crate::runtime::block_on(fut))
                .join()
                .unwrap_or_else(|_| {
                    Err(Error::invalid_state("fleet store: a helper thread failed"))
                })
        })
    })
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared by the meter, its committer thread and its background flusher.
pub(super) struct Shared {
    pub(super) db: Mutex<Db>,
    /// The fleet store; `db` is then an unused in-memory database.
    pub(super) fleet: Option<fleet::Fleet>,
    pub(super) buffer: Mutex<MemBuffer>,
    /// Held by a fleet drain from taking the buffer to the end of its write: a drain (an exit
    /// hook's) waits for one in flight (the background flush's), whose entries it cannot
    /// see, rather than return with them unwritten.
    pub(super) fleet_drain: tokio::sync::Mutex<()>,
    pub(super) scope: Scope,
    pub(super) clock: Clock,
    pub(super) on_event: Option<EventCallback>,
    /// Buckets whose window alarm was raised from a read of the store while it refused
    /// writes (see `send::alarm_unwritten`): the seal that marks them once it takes writes
    /// does not raise theirs again.
    pub(super) alarmed_outside: Mutex<std::collections::HashSet<BucketKey>>,
    /// Fleet store: buckets whose window alarm was raised from usage this replica held while
    /// the database could not be written (see `send::alarm_buffered`), so a failed flush
    /// does not raise it again; emptied once a drain writes.
    pub(super) alarmed_buffered: Mutex<std::collections::HashSet<BucketKey>>,
    /// The courier thread's queue of a background flush's events (see
    /// [`Shared::with_courier`]); `None` until the first.
    pub(super) courier: Mutex<Option<std::sync::mpsc::Sender<Vec<MeterEvent>>>>,
    /// Event lists handed to the courier and not yet delivered: `close()` waits for them, a
    /// while.
    pub(super) undelivered: Arc<std::sync::atomic::AtomicUsize>,
}

/// The event of `quantity` for bucket `k` counted in hour `counted` instead of its own.
pub(super) fn late_event(k: &dyn AsKey, quantity: i64, counted: i64) -> MeterEvent {
    let k = k.key();
    MeterEvent {
        kind: MeterEventKind::LateEvent {
            counted_in_hour: counted,
        },
        customer: k.customer.map(CustomerRef::to_customer),
        dimension: k.dimension.to_owned(),
        hour: k.hour,
        quantity,
        replica_id: None, // set by `Shared::emit`
    }
}

/// Folds the store's moves (`moves`: a bucket's quantity counted in a later hour, its hour
/// found sealed) into the late events a record's check made (`late`, each counted in the
/// current hour): when the clock stepped back into a sealed hour, the store moved those
/// events once more. Each is then reported once, naming the hour it landed in; what is left
/// of a move (events of that hour itself) is returned, to be reported as the move.
pub(super) fn fold_moves(late: &mut [MeterEvent], moves: Vec<MeterEvent>) -> Vec<MeterEvent> {
    let mut rest = Vec::with_capacity(moves.len());
    for mut m in moves {
        let MeterEventKind::LateEvent {
            counted_in_hour: to,
        } = m.kind
        else {
            rest.push(m);
            continue;
        };
        let mut folded = false;
        for e in late.iter_mut() {
            let MeterEventKind::LateEvent { counted_in_hour } = &mut e.kind else {
                continue;
            };
            if *counted_in_hour == m.hour
                && e.dimension == m.dimension
                && e.customer == m.customer
                && e.quantity <= m.quantity
            {
                *counted_in_hour = to;
                m.quantity -= e.quantity;
                folded = true;
            }
        }
        if !folded || m.quantity > 0 {
            rest.push(m);
        }
    }
    rest
}

/// The commit key of a write whose outcome is not known yet, and the entries it leaves
/// out (those the database refused before, with their bucket's sum: every other entry of
/// the write is in it; see `Fleet::write_keyed`).
#[derive(Default)]
pub(crate) struct InFlight(std::sync::Mutex<Option<KeyedWrite>>);

/// A commit key and the entries its write leaves out, with their bucket's sum.
pub(crate) type KeyedWrite = (i64, Vec<(BucketKey, i64)>);

impl InFlight {
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn set(&self, v: Option<KeyedWrite>) {
        *lock(&self.0) = v;
    }

    /// The key and the entries left out of the write in flight, if any (and forgets them).
    pub(crate) fn take(&self) -> Option<KeyedWrite> {
        lock(&self.0).take()
    }
}

/// What one write did besides adding.
#[derive(Default)]
pub(super) struct Written {
    pub(super) late: Vec<MeterEvent>,
    /// Entries refused because their bucket would pass [`MAX_BUCKET`], with that sum.
    pub(super) refused: Vec<(BucketKey, i64)>,
    /// The fleet store only: the other entries' write was given up with its outcome
    /// unknown, and is kept unsettled (see [`Shared::write_store`]).
    pub(super) unknown: Option<Error>,
}

impl Shared {
    pub(super) fn emit(&self, mut events: Vec<MeterEvent>) {
        if let Some(cb) = &self.on_event {
            if events.is_empty() {
                return;
            }
            let replica = self.fleet.as_ref().map(|f| f.replica());
            for e in &mut events {
                e.replica_id = replica.map(str::to_owned);
            }
            // In the background flusher's flush: handed to the meter's courier thread (see
            // `Shared::with_courier`).
            let me = self as *const Shared as usize;
            if COURIERED.try_with(|of| *of == me).unwrap_or(false) {
                self.hand_over(cb, events);
                return;
            }
            // In a blocking call (a flush, a close): delivered when it returns, on this
            // thread, not while this thread drives the runtime every blocking caller shares
            // (see `runtime::after_block_on`). The fleet's slot is given back by then.
            if crate::runtime::on_blocking_runtime() {
                let cb = cb.clone();
                let deliver = Box::new(move || {
                    let _in = Mark::at(&IN_CALLBACK, me);
                    for e in events {
                        deliver_one(&cb, e);
                    }
                });
                if let Err(deliver) = crate::runtime::after_block_on(deliver) {
                    deliver();
                }
                return;
            }
            // Only the flush's own callbacks: one on a recording thread holds up no slot.
            let slot = self
                .fleet
                .as_ref()
                .filter(|_| IN_FLEET_FLUSH.try_with(|_| ()).is_ok());
            let _in = Mark::enter(&IN_CALLBACK, self);
            for e in events {
                // The seller's code: a panic in it must not end the thread running it (the
                // group committer, a flush) and stop the meter with it.
                if let Some(f) = slot {
                    f.in_callback(true);
                }
                deliver_one(cb, e);
                if let Some(f) = slot {
                    f.in_callback(false);
                }
            }
        }
    }

    /// Runs `fut` (the background flusher's flush) with its events delivered by the meter's
    /// courier thread, in order, as they come: not by the flush's task, which holds the
    /// flush lock (a callback that blocked there, a JVM listener calling `System.exit`
    /// whose shutdown hook closes the meter, held `close()` for good), and not when the
    /// flush ends (a backlog's flush takes hours, and its window alarms came after it; a
    /// flush `close()` aborted lost them).
    pub(super) async fn with_courier<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        COURIERED.scope(self as *const Shared as usize, fut).await
    }

    /// Hands `events` to the courier thread, started on first use; delivered here when the
    /// OS refuses the thread. Counted in `undelivered` until their callbacks have run.
    fn hand_over(&self, cb: &EventCallback, events: Vec<MeterEvent>) {
        self.undelivered.fetch_add(1, Ordering::SeqCst);
        let mut courier = lock(&self.courier);
        if courier.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<MeterEvent>>();
            let (cb, left, me) = (
                cb.clone(),
                self.undelivered.clone(),
                self as *const Shared as usize,
            );
            // It ends once the meter is gone (its sender with it), its events delivered.
            let started = crate::runtime::spawn_thread_as_host("mm-events", move || {
                let _in = Mark::at(&IN_CALLBACK, me);
                for events in rx {
                    for e in events {
                        deliver_one(&cb, e);
                    }
                    left.fetch_sub(1, Ordering::SeqCst);
                }
            });
            if started.is_ok() {
                *courier = Some(tx);
            }
        }
        let unsent = match courier.as_ref() {
            Some(tx) => match tx.send(events) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => events,
        };
        drop(courier);
        let _in = Mark::enter(&IN_CALLBACK, self);
        for e in unsent {
            deliver_one(cb, e);
        }
        self.undelivered.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether this thread is running this meter's event callback.
    pub(super) fn in_callback(&self) -> bool {
        marked(&IN_CALLBACK, self)
    }

    /// [`Shared::emit`] from a fleet drain's write, which holds the drains' turn: a drain the
    /// callback starts must not wait for it (see [`Shared::drain`]).
    fn emit_holding_turn(&self, events: Vec<MeterEvent>) {
        let _turn = Mark::enter(&IN_DRAIN_TURN, self);
        self.emit(events);
    }

    /// `InvalidState` when called from this meter's own event callback: `record()` there may
    /// wait for the thread running the callback (the group committer), and `flush()`,
    /// `close()` and dropping the last handle wait for work that is calling it.
    pub(super) fn refuse_reentry(&self, what: &str) -> Result<(), Error> {
        if self.in_callback() {
            return Err(Error::invalid_state(format!(
                "{what} cannot be called from the meter's own event callback (it would wait for \
                 itself); do it after the callback returns"
            )));
        }
        Ok(())
    }

    pub(super) fn current_hour(&self) -> i64 {
        hour_of((self.clock)())
    }

    /// Writes `entries` in one transaction. An entry whose bucket would pass the model's
    /// maximum is left out and listed, unless `must_land` (usage already acknowledged: the
    /// buffer of `memory` durability), which counts it in the next hour that has room.
    fn write(&self, db: &mut Db, entries: &Buffer, must_land: bool) -> Result<Written, Error> {
        let mut out = Written::default();
        if entries.is_empty() {
            return Ok(out);
        }
        db.check_in_place_lately()?;
        let current = self.current_hour();
        let product = self.scope.product_code.as_str();
        let sealed_through = db.sealed_through()?;
        let mut tx = db.transaction()?;
        // Several events without allocations (a group commit): one multi-row upsert, unless
        // one of them meets a bucket sealed meanwhile or full; then all go one by one below.
        let mut entries: Vec<(&BucketKey, &Acc)> = entries.iter().collect();
        if entries.len() > 1 {
            let plain: Vec<(Option<&Customer>, &str, i64, i64)> = entries
                .iter()
                .filter(|(_, a)| a.allocations.as_ref().is_none_or(|m| m.is_empty()))
                .map(|(k, a)| {
                    (
                        k.customer.as_ref(),
                        k.dimension.as_str(),
                        k.hour,
                        a.quantity,
                    )
                })
                .collect();
            if plain.len() > 1 && Db::apply_many(&mut tx, product, &plain, sealed_through)? {
                entries.retain(|(_, a)| a.allocations.as_ref().is_some_and(|m| !m.is_empty()));
            }
        }
        for (k, acc) in entries {
            let mut hour = k.hour;
            let mut tries = 0;
            let counted = loop {
                let applied = Db::apply(
                    &tx,
                    product,
                    k.customer.as_ref(),
                    &k.dimension,
                    hour,
                    acc.quantity,
                    acc.allocations.as_ref(),
                    current.max(hour),
                    sealed_through,
                )?;
                match applied {
                    store::Applied::Added => break Some(hour),
                    store::Applied::Moved(h) => break Some(h),
                    store::Applied::Overflow(total) if !must_land || tries >= 48 => {
                        out.refused.push((k.clone(), total));
                        break None;
                    }
                    store::Applied::Overflow(_) => {
                        // Past the hours closed for every customer, or each try would land
                        // in the same full bucket after them.
                        hour = hour
                            .max(current)
                            .max(sealed_through.unwrap_or(i64::MIN))
                            .saturating_add(3600);
                        tries += 1;
                    }
                }
            };
            if let Some(h) = counted.filter(|h| *h != k.hour) {
                out.late.push(late_event(k, acc.quantity, h));
            }
        }
        crash::hit("record_mid_txn");
        tx.commit().map_err(store::store_err)?;
        crash::hit("record_after_commit");
        Ok(out)
    }

    /// Writes `entries` to whichever store the meter has (see [`Shared::write`]); the fleet
    /// store's call blocks this thread.
    ///
    /// A fleet write given up with its outcome unknown (an attempt may have committed) is
    /// kept as an unsettled write under its commit key, which the next drain writes again
    /// (adding nothing if the attempt had committed); it answers with the entries refused
    /// before it, and the error in `unknown`.
    pub(super) fn write_store(&self, entries: Buffer, must_land: bool) -> Result<Written, Error> {
        let Some(f) = &self.fleet else {
            return self.write(&mut lock(&self.db), &entries, must_land);
        };
        // Unsettled writes first, as a drain does: the commit keys kept for them are their
        // session's newest until they are settled (see the fleet's seal), and a session
        // that went on writing for a day without a flush would let them be deleted.
        if !lock(&self.buffer).unsettled.is_empty() {
            wait(self.settle_fleet(f))?.map_err(|e| {
                // As retryable as the failure (an answer lost again is: the database was
                // reached); a read-only database or a refused role is not.
                let again = e.is_retryable() || e.error_code() == ErrorCode::OutcomeUnknown;
                Error::invalid_state(format!(
                    "fleet store: an earlier write could not be settled, so nothing of this \
                     one was written: {}",
                    e.message()
                ))
                .with_retryable(again)
                .with_source(e)
            })?;
        }
        let in_flight = InFlight::default();
        let r = wait(f.write_keyed(
            &self.scope.product_code,
            &entries,
            self.current_hour(),
            None,
            &in_flight,
        ))?;
        match (r, in_flight.take()) {
            (Err(e), Some((seq, refused))) if e.error_code() == ErrorCode::OutcomeUnknown => {
                let mut entries = entries;
                for (k, _) in &refused {
                    entries.remove(k);
                }
                lock(&self.buffer)
                    .unsettled
                    .push((Some(seq), entries, Moved::new()));
                Ok(Written {
                    late: Vec::new(),
                    refused,
                    unknown: Some(e),
                })
            }
            (r, _) => r,
        }
    }

    /// Moves the in-memory buffer into the store. On any error (busy, disk full, read-only)
    /// the events go back into the buffer, to be written by the next drain: `record()`
    /// acknowledged them.
    pub(super) fn drain(&self) -> Result<(), Error> {
        if let Some(f) = &self.fleet {
            // From this meter's event callback that a fleet drain delivers (its late events):
            // that drain holds the turn, and waits for the callback.
            let nested = marked(&IN_DRAIN_TURN, self);
            return wait(self.drain_fleet(f, nested)).and_then(|r| r);
        }
        let mut db = lock(&self.db);
        let entries = self.take_buffer();
        if entries.is_empty() {
            return Ok(());
        }
        // A panic while writing (a clock that panics, a bug) rolls the transaction back and
        // must not drop what `record()` acknowledged: the events go back like an error's.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.write(&mut db, &entries, true)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::invalid_state(format!(
                "writing the meter's store panicked ({}); the usage stays buffered",
                crate::error::panic_message(&*panic)
            )))
        });
        drop(db);
        self.drained(entries, result)
    }

    /// [`Shared::drain`] on the runtime (a flush).
    pub(super) async fn drain_async(&self) -> Result<(), Error> {
        match &self.fleet {
            Some(f) => self.drain_fleet(f, false).await,
            None => self.drain(),
        }
    }

    /// The fleet store's drain: the unsettled writes under their own keys, then the buffer.
    /// Cancelled at any point (a caller's timeout, `close()` aborting the flusher, the
    /// runtime shutting down), what it had taken goes back (see [`PutBack`]).
    ///
    /// Drains take turns (`fleet_drain`): an exit hook's waits for the background flush's
    /// write in flight. A `nested` one (from an event callback the drain in turn delivers)
    /// does not wait for its turn, which is held further down its own thread's stack.
    async fn drain_fleet(&self, f: &fleet::Fleet, nested: bool) -> Result<(), Error> {
        let _one_at_a_time = match nested {
            true => None,
            false => Some(self.fleet_drain.lock().await),
        };
        self.settle_fleet(f).await?;
        let entries = self.take_buffer();
        if entries.is_empty() {
            return Ok(());
        }
        self.write_fleet(f, entries, None, Moved::new()).await
    }

    /// Writes the unsettled writes again, each under its own commit key, oldest first. Only
    /// those there when it starts: a write may keep an entry apart for the next drain (see
    /// [`MemBuffer::rejoin`]).
    async fn settle_fleet(&self, f: &fleet::Fleet) -> Result<(), Error> {
        let n = lock(&self.buffer).unsettled.len();
        for _ in 0..n {
            let next = {
                let mut b = lock(&self.buffer);
                (!b.unsettled.is_empty()).then(|| b.unsettled.remove(0))
            };
            let Some((seq, entries, moved)) = next else {
                break;
            };
            self.write_fleet(f, entries, seq, moved).await?;
        }
        Ok(())
    }

    /// A drain's write to the fleet store. What `record()` acknowledged must land: an entry
    /// the maximum refuses in its hour (`memory` durability checks only the replica's own
    /// buffer, so replicas together may pass it) is written again in the next hour, up to
    /// 48 hours on, as the local store's drain does, with a late event for it once it lands
    /// (`moved`: those moved by an earlier write of these entries that did not finish).
    async fn write_fleet(
        &self,
        f: &fleet::Fleet,
        mut entries: Buffer,
        mut seq: Option<i64>,
        mut moved: Moved,
    ) -> Result<(), Error> {
        let mut tries = 0;
        loop {
            let in_flight = InFlight::default();
            let mut guard = PutBack {
                shared: self,
                entries: Some(entries),
                in_flight: &in_flight,
                moved: std::mem::take(&mut moved),
            };
            let current = self.current_hour();
            let r = match &guard.entries {
                Some(e) => {
                    f.write_keyed(&self.scope.product_code, e, current, seq, &in_flight)
                        .await
                }
                None => Ok(Written::default()),
            };
            let mut written = guard.entries.take().unwrap_or_default();
            moved = std::mem::take(&mut guard.moved);
            drop(guard);
            let mut w = match r {
                Ok(w) => w,
                Err(e) => {
                    self.put_back(written, in_flight.take(), moved);
                    return Err(e);
                }
            };
            // The moves of this drain, folded with the store's own (an entry whose later hour
            // was sealed meanwhile, as after a write that failed, landed later still): one
            // event each, from the hour it was recorded in to the one it landed in.
            // And the late events recorded into the entries that landed, folded with those
            // moves in turn: counted in the hour the entry was recorded under.
            let mut ours = Vec::new();
            let mut recorded = Vec::new();
            for (k, acc) in &mut written {
                if w.refused.iter().any(|(r, _)| r == k) {
                    continue;
                }
                let from = moved.get(k);
                if let Some(from) = from {
                    ours.push(late_event(from, acc.quantity, k.hour));
                }
                let counted = from.map_or(k.hour, |from| from.hour);
                for (hour, quantity) in std::mem::take(&mut acc.late) {
                    let at = KeyRef {
                        customer: k.customer.as_ref().map(Customer::by_ref),
                        dimension: &k.dimension,
                        hour,
                    };
                    recorded.push(late_event(&at, quantity, counted));
                }
            }
            let rest = fold_moves(&mut ours, std::mem::take(&mut w.late));
            ours.extend(rest);
            let rest = fold_moves(&mut recorded, ours);
            recorded.extend(rest);
            w.late = recorded;
            if w.refused.is_empty() || tries >= 48 {
                // What still finds no room stays buffered under the hour it was recorded in.
                let mut back = Buffer::new();
                for (k, _) in &mut w.refused {
                    if let Some((moved_to, acc)) = written.remove_entry(k) {
                        *k = moved.remove(&moved_to).unwrap_or(moved_to);
                        back.entry(k.clone()).or_default().absorb(acc);
                    }
                }
                written.extend(back);
                return self.drained(written, Ok(w));
            }
            tries += 1;
            let mut next = Buffer::new();
            for (k, _) in std::mem::take(&mut w.refused) {
                if let Some((k, acc)) = written.remove_entry(&k) {
                    let from = moved.remove(&k).unwrap_or_else(|| k.clone());
                    // The next hour this customer's dimension has free in this write: two
                    // entries refused in different hours must not become one (each fits
                    // alone; together they may not).
                    // Past the hours closed for every customer too, which the write would
                    // send back to the same full bucket.
                    let mut to = BucketKey {
                        hour: k
                            .hour
                            .max(current)
                            .max(f.closed_hint().unwrap_or(i64::MIN))
                            .saturating_add(3600),
                        ..k
                    };
                    while next.contains_key(&to) {
                        to.hour = to.hour.saturating_add(3600);
                    }
                    moved.insert(to.clone(), from);
                    next.insert(to, acc);
                }
            }
            self.emit_holding_turn(w.late);
            (entries, seq) = (next, None);
        }
    }

    /// Returns a fleet write's entries after it failed or was dropped: those an attempt may
    /// have committed become an unsettled write under its key, with their moves (their late
    /// events are reported when they land); the rest rejoin the buffer, a moved one under the
    /// hour it was recorded in, so that the drain that writes it moves it again and says so.
    fn put_back(&self, mut entries: Buffer, in_flight: Option<KeyedWrite>, mut moved: Moved) {
        let mut b = lock(&self.buffer);
        if let Some((seq, left_out)) = in_flight {
            let rest: Buffer = left_out
                .into_iter()
                .filter_map(|(k, _)| entries.remove_entry(&k))
                .collect();
            if !entries.is_empty() {
                let theirs: Moved = entries
                    .keys()
                    .filter_map(|k| moved.remove_entry(k))
                    .collect();
                b.unsettled
                    .push((Some(seq), std::mem::take(&mut entries), theirs));
            }
            entries = rest;
        }
        for (k, acc) in entries {
            let k = moved.remove(&k).unwrap_or(k);
            b.rejoin(k, acc);
        }
    }

    fn take_buffer(&self) -> Buffer {
        let mut b = lock(&self.buffer);
        b.drains += 1;
        std::mem::take(&mut b.map)
    }

    /// Puts back what a drain could not write.
    fn drained(&self, mut entries: Buffer, result: Result<Written, Error>) -> Result<(), Error> {
        // The local store's drain holds the store while it writes, so `record()` (which reads
        // the bucket's stored sum) took nothing that could pass the maximum with these; a
        // fleet write's entry may need keeping apart (see `MemBuffer::rejoin`).
        let fleet = self.fleet.is_some();
        let back = |b: &mut MemBuffer, k: BucketKey, acc: Acc, with_base: bool| {
            if fleet {
                b.rejoin(k, acc);
            } else {
                let mine = b.map.entry(k).or_default();
                if with_base {
                    mine.base = mine.base.max(acc.base);
                }
                mine.absorb(acc);
            }
        };
        match result {
            Ok(w) => {
                for (k, total) in w.refused {
                    tracing::error!(customer = k.customer.as_ref().map(tracing::field::display), dimension = %k.dimension, hour = k.hour,
                        total, "meter: no hour had room for buffered usage; it stays buffered");
                    if let Some((k, acc)) = entries.remove_entry(&k) {
                        back(&mut lock(&self.buffer), k, acc, false);
                    }
                }
                match fleet {
                    true => self.emit_holding_turn(w.late),
                    false => self.emit(w.late),
                }
                Ok(())
            }
            Err(e) => {
                let mut b = lock(&self.buffer);
                for (k, acc) in entries {
                    back(&mut b, k, acc, true);
                }
                Err(e)
            }
        }
    }
}

/// Holds a fleet write's entries while it runs; dropped with them (the write's future was
/// dropped), it puts them back, so `record()`'s acknowledgement still stands.
struct PutBack<'a> {
    shared: &'a Shared,
    entries: Option<Buffer>,
    in_flight: &'a InFlight,
    moved: Moved,
}

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        if let Some(entries) = self.entries.take() {
            let moved = std::mem::take(&mut self.moved);
            self.shared.put_back(entries, self.in_flight.take(), moved);
        }
    }
}

tokio::task_local! {
    /// Set while a fleet store's flush runs (see `send::flush`): its event callbacks are
    /// the ones that can hold up the sender slot it holds (see `Fleet::hold`).
    pub(super) static IN_FLEET_FLUSH: ();
    /// Set while the background flusher's flush runs, to its meter (its `Shared`'s
    /// address): its events go to the courier (see [`Shared::with_courier`]).
    static COURIERED: usize;
}

type Marks = std::thread::LocalKey<std::cell::RefCell<Vec<usize>>>;

thread_local! {
    /// The meters (their `Shared`'s address) whose event callback this thread is running.
    static IN_CALLBACK: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The meters whose fleet drain, holding its turn, delivers events on this thread.
    static IN_DRAIN_TURN: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether this thread is marked in `marks` for `shared`'s meter.
fn marked(marks: &'static Marks, shared: &Shared) -> bool {
    let me = shared as *const Shared as usize;
    marks
        .try_with(|v| v.borrow().contains(&me))
        .unwrap_or(false)
}

/// Marks this thread in a list (a meter's callback running, its drain's turn held) until
/// dropped (a panicking callback included).
pub(super) struct Mark(&'static Marks, usize);

impl Mark {
    fn enter(marks: &'static Marks, shared: &Shared) -> Mark {
        Mark::at(marks, shared as *const Shared as usize)
    }

    /// [`Mark::enter`] for the meter whose `Shared` is at `me`.
    fn at(marks: &'static Marks, me: usize) -> Mark {
        let _ = marks.try_with(|v| v.borrow_mut().push(me));
        Mark(marks, me)
    }
}

/// Calls the seller's callback with one event. A panic in it must not end the thread running
/// it (the group committer, a flush) and stop the meter with it.
fn deliver_one(cb: &super::EventCallback, e: MeterEvent) {
    let kind = e.kind.as_str();
    let call = || crate::runtime::as_host(|| cb(e));
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::error!(
            event = kind,
            "meter: the on_event callback panicked; the event was counted"
        );
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let _ = self.0.try_with(|v| {
            let mut v = v.borrow_mut();
            if let Some(i) = v.iter().rposition(|m| *m == self.1) {
                v.remove(i);
            }
        });
    }
}

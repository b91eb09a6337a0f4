// SPDX-License-Identifier: Apache-2.0
// `Durability::Group`: one committer thread commits all concurrent callers' events in one transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::{Error, ErrorCode};

use super::store::Allocs;
use super::{lock, overflow_error, BucketKey, Buffer, MeterEvent, Shared, MAX_BUCKET};

/// A commit's error for its callers: code, message, retryable.
type Failure = (ErrorCode, String, bool);

/// What a group commit did: the events (by their place in the group) refused for the model's
/// maximum, with the sum they would have made; the events whose own write failed; and the
/// error the other events get (the commit's, or its outcome unknown).
pub(super) struct Outcome {
    refused: Vec<(usize, i64)>,
    failed: Vec<(usize, Failure)>,
    error: Option<Failure>,
}

/// One group commit's result; its callers park (or, async, wait) until it is set.
///
/// Blocking callers register their thread in the queue (under its lock) before checking the
/// result, and the committer sets the result before unparking them, so no wake-up is lost; a
/// spurious or stale unpark only makes a caller check again. Async callers register with
/// `notify` before checking the result, which the committer sets before notifying.
#[derive(Default)]
pub(super) struct Slot {
    result: std::sync::OnceLock<Outcome>,
    /// Wakes the async callers of this commit.
    notify: tokio::sync::Notify,
}

impl Slot {
    /// This caller's outcome once the commit is done: its event is the group's `event`th,
    /// of `quantity` into `key`.
    fn outcome(&self, event: usize, key: &BucketKey, quantity: i64) -> Option<Result<(), Error>> {
        self.result.get().map(|r| {
            if let Some((_, total)) = r.refused.iter().find(|(i, _)| *i == event) {
                return Err(overflow_error(key, quantity, *total));
            }
            let failure = r.failed.iter().find(|(i, _)| *i == event).map(|(_, f)| f);
            match failure.or(r.error.as_ref()) {
                Some((code, message, retryable)) => {
                    Err(Error::new(*code, message.clone()).with_retryable(*retryable))
                }
                None => Ok(()),
            }
        })
    }

    /// Waits for the commit; `event`, `key` and `quantity` are this caller's event. `spin`:
    /// whether commits are quick enough to yield for before parking (see [`Group::spin`]).
    pub(super) fn wait(
        &self,
        event: usize,
        key: &BucketKey,
        quantity: i64,
        spin: bool,
    ) -> Result<(), Error> {
        // A commit that does not wait for the disk takes tens of microseconds, less than a
        // park/unpark round trip costs on a VM: yield for a while before parking.
        let spin_until = std::time::Instant::now() + if spin { SPIN } else { Duration::ZERO };
        loop {
            if let Some(r) = self.outcome(event, key, quantity) {
                return r;
            }
            if std::time::Instant::now() < spin_until {
                std::thread::yield_now();
            } else {
                std::thread::park();
            }
        }
    }

    /// [`Self::wait`] without a thread: resolves when the commit is done.
    pub(super) async fn committed(
        &self,
        event: usize,
        key: &BucketKey,
        quantity: i64,
    ) -> Result<(), Error> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.outcome(event, key, quantity) {
                return r;
            }
            notified.await;
        }
    }

    fn finish(&self, r: Outcome, waiters: Vec<std::thread::Thread>) {
        let _ = self.result.set(r);
        for t in waiters {
            t.unpark();
        }
        self.notify.notify_waiters();
    }
}

pub(super) struct GroupQueue {
    pub(super) open: Buffer,
    /// The open group's events in arrival order (an event's place is its caller's name for
    /// it): written again one at a time when their bucket's sum passes the maximum.
    pub(super) events: Vec<(BucketKey, i64, Option<Allocs>)>,
    pub(super) count: usize,
    pub(super) slot: Arc<Slot>,
    /// The callers waiting for `slot`.
    pub(super) waiters: Vec<std::thread::Thread>,
    pub(super) stop: bool,
    /// How many callers the committer waits for (adaptive mode): as many as the last
    /// commit released. Callers wake the committer only on the first event of a group and
    /// when this many have arrived.
    pub(super) want: usize,
    /// The open group's late events, each with its event's place in the group: reported
    /// once the commit counted them.
    pub(super) late: Vec<(usize, MeterEvent)>,
    /// Whether the committer waits on `cv`: a caller wakes it only then, since a condition
    /// variable's notify is a system call whether or not anyone waits.
    pub(super) committer_waits: bool,
    /// Blocking callers waiting on `room`: the committer wakes them only when there are some.
    pub(super) room_waiters: usize,
}

impl GroupQueue {
    /// Adds an event to the open group and wakes the committer when the group starts or is
    /// complete; returns the group's slot and the event's place in the group. Refused: any
    /// event once the meter is stopping,
    /// and an event that would take its bucket's sum in this group past the model's maximum
    /// (the events before it stand; the commit checks the sum with what the store holds).
    pub(super) fn push(
        &mut self,
        cv: &Condvar,
        key: BucketKey,
        quantity: i64,
        allocs: Option<Allocs>,
        late: Option<MeterEvent>,
        max_events: usize,
    ) -> Result<(Arc<Slot>, usize), Error> {
        if self.stop {
            return Err(Error::invalid_state("the meter is closed"));
        }
        let queued = self.open.get(&key).map_or(0, |a| a.quantity);
        let total = queued.saturating_add(quantity);
        if total > MAX_BUCKET {
            return Err(overflow_error(&key, quantity, total));
        }
        let event = self.events.len();
        if let Some(ev) = late {
            self.late.push((event, ev));
        }
        self.events.push((key.clone(), quantity, allocs.clone()));
        self.open.entry(key).or_default().add(quantity, allocs);
        self.count += 1;
        if self.committer_waits
            && (self.count == 1 || self.count == self.want || self.count >= max_events)
        {
            cv.notify_one();
        }
        Ok((self.slot.clone(), event))
    }
}

pub(super) struct Group {
    pub(super) queue: Mutex<GroupQueue>,
    /// Wakes the committer.
    pub(super) cv: Condvar,
    /// Wakes callers waiting for room (`max_events`).
    pub(super) room: Condvar,
    /// Whether the last commit took less than [`SPIN`]. When commits wait for an fsync or
    /// a database round trip, callers park at once: yielding would only take the CPU the
    /// commit (and, on a small machine, the database) needs.
    pub(super) spin: AtomicBool,
}

/// How long a group-commit caller yields before it parks.
pub(super) const SPIN: Duration = Duration::from_micros(200);

/// A commit at least this long is waiting for the disk (an fsync), not for the CPU.
pub(super) const SLOW_COMMIT: Duration = Duration::from_micros(150);

/// The committer thread of `Durability::Group`.
///
/// With `max_wait` zero (the default) the group size adapts. When commits wait for the disk
/// (the last one took [`SLOW_COMMIT`] or more: an fsync), a started group waits until as
/// many callers have arrived as the last commit released (they are the ones likely to call
/// again at once), but no longer than half the last commit's duration (at most 1 ms), so a
/// caller that stopped costs one short wait, not throughput: 8 callers then share about
/// one fsync per 8 events instead of one per 4 to 5. When commits are cheap CPU work
/// (`synchronous=NORMAL`), it commits at once, so callers' own work overlaps the commit.
/// With `max_wait` set it waits up to `max_wait` for `max_events`.
pub(super) fn committer(
    shared: Arc<Shared>,
    group: Arc<Group>,
    max_wait: Duration,
    max_events: usize,
) {
    use std::time::Instant;
    let mut last_commit = Duration::ZERO;
    loop {
        let (batch, events, slot, n, waiters, late) = {
            let mut q = lock(&group.queue);
            while q.count == 0 && !q.stop {
                q.committer_waits = true;
                q = group.cv.wait(q).unwrap_or_else(|p| p.into_inner());
                q.committer_waits = false;
            }
            if q.count == 0 && q.stop {
                return;
            }
            let (target, wait) = if max_wait.is_zero() {
                if last_commit >= SLOW_COMMIT {
                    (
                        q.want.min(max_events),
                        (last_commit / 2).min(Duration::from_millis(1)),
                    )
                } else {
                    (0, Duration::ZERO)
                }
            } else {
                (max_events, max_wait)
            };
            if q.count < target && !wait.is_zero() {
                let deadline = Instant::now() + wait;
                while q.count < target && !q.stop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    q.committer_waits = true;
                    q = group
                        .cv
                        .wait_timeout(q, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                    q.committer_waits = false;
                }
            }
            let n = q.count;
            q.count = 0;
            let batch = std::mem::take(&mut q.open);
            let events = std::mem::take(&mut q.events);
            let late = std::mem::take(&mut q.late);
            let slot = std::mem::take(&mut q.slot);
            let waiters = std::mem::take(&mut q.waiters);
            if q.room_waiters > 0 {
                group.room.notify_all();
            }
            (batch, events, slot, n, waiters, late)
        };
        let started = Instant::now();
        // A panic in the write (a clock that panics, a bug) rolled its transaction back: its
        // callers are told, and this thread goes on for the next ones.
        let result = write_caught(&shared, batch);
        last_commit = started.elapsed();
        group.spin.store(last_commit < SPIN, Ordering::Relaxed);
        // The callers released now are the ones expected in the next group.
        lock(&group.queue).want = n.max(1);
        let failure = |e: Error| (e.error_code(), e.message().to_owned(), e.is_retryable());
        match result {
            Ok(mut w) => {
                let (refused, failed) = one_at_a_time(&shared, events, &mut w);
                // An event whose own write's outcome is unknown is kept to be counted once.
                let judged = |i: &usize| {
                    refused.iter().any(|(r, _)| r == i)
                        || failed
                            .iter()
                            .any(|(f, e)| f == i && e.0 != ErrorCode::OutcomeUnknown)
                };
                // Counted (or, its outcome unknown, kept to be counted once): all but those
                // refused or failed.
                let mut counted: Vec<MeterEvent> = late
                    .into_iter()
                    .filter(|(i, _)| !judged(i))
                    .map(|(_, ev)| ev)
                    .collect();
                let moves = super::fold_moves(&mut counted, std::mem::take(&mut w.late));
                // Before the callers wake, as when the caller's own thread reported them: a
                // record() returns after its LateEvent, the store's moves included (late
                // events are rare).
                shared.emit(counted.into_iter().chain(moves).collect());
                let outcome = Outcome {
                    refused,
                    failed,
                    error: w.unknown.map(failure),
                };
                slot.finish(outcome, waiters);
            }
            Err(e) => {
                let outcome = Outcome {
                    refused: Vec::new(),
                    failed: Vec::new(),
                    error: Some(failure(e)),
                };
                slot.finish(outcome, waiters)
            }
        }
    }
}

/// The events refused for the maximum (with the sum they would have made) and those whose
/// own write failed, by their place in the group.
type Judged = (Vec<(usize, i64)>, Vec<(usize, Failure)>);

/// The group wrote each bucket's sum; a bucket whose sum the store refused (past the model's
/// maximum with what it holds) is judged again an event at a time, in arrival order, so that
/// each caller is told about its own event as the durable mode tells it: an event that fits
/// is counted, one that does not is refused with the sum it would have made. Returns the
/// refused events and those whose own write failed; the store's moves join `w.late`.
///
/// Writes only what may fit: a refusal tells what the store holds, and later events past it
/// are refused without a write. When the group's write had an unknown outcome (the store
/// unreachable), or an event's own write fails, nothing more is written: the events left
/// get a retryable error (they were in no write), instead of a write each against a store
/// that just failed, which would hold every caller of the meter for a minute an event.
/// `shared.write_store(entries, false)`, a panic in it (a clock that panics, a bug) an error:
/// its transaction was rolled back, and the committer's thread goes on.
fn write_caught(shared: &Shared, entries: Buffer) -> Result<super::Written, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shared.write_store(entries, false)
    }))
    .unwrap_or_else(|panic| {
        Err(Error::invalid_state(format!(
            "the group commit panicked ({}); nothing of these records was counted",
            crate::error::panic_message(&*panic)
        )))
    })
}

fn one_at_a_time(
    shared: &Shared,
    events: Vec<(BucketKey, i64, Option<Allocs>)>,
    w: &mut super::Written,
) -> Judged {
    let (mut refused, mut failed) = (Vec::new(), Vec::new());
    if w.refused.is_empty() {
        return (refused, failed);
    }
    let over: Vec<BucketKey> = std::mem::take(&mut w.refused)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let not_written = |why: &str| -> Failure {
        (
            ErrorCode::InvalidState,
            format!(
                "nothing of it was written: its bucket's group passed the maximum and {why}; \
                 record it again"
            ),
            true,
        )
    };
    let mut stop: Option<Failure> = w
        .unknown
        .as_ref()
        .map(|_| not_written("the store could not be reached"));
    // What the store holds in a bucket, learnt from a refusal.
    let mut held: std::collections::HashMap<BucketKey, i64> = std::collections::HashMap::new();
    for (i, (key, quantity, allocs)) in events.into_iter().enumerate() {
        if !over.contains(&key) {
            continue;
        }
        if let Some(f) = &stop {
            failed.push((i, f.clone()));
            continue;
        }
        if let Some(&h) = held.get(&key) {
            let total = h.saturating_add(quantity);
            if total > MAX_BUCKET {
                refused.push((i, total));
                continue;
            }
        }
        let mut one = Buffer::new();
        one.entry(key.clone()).or_default().add(quantity, allocs);
        match write_caught(shared, one) {
            Ok(w1) => {
                if let Some((_, total)) = w1.refused.first() {
                    refused.push((i, *total));
                    held.insert(key, total.saturating_sub(quantity));
                } else if let Some(e) = w1.unknown {
                    failed.push((
                        i,
                        (e.error_code(), e.message().to_owned(), e.is_retryable()),
                    ));
                    stop = Some(not_written("the store could not be reached"));
                } else if let Some(h) = held.get_mut(&key) {
                    *h = h.saturating_add(quantity);
                }
                w.late.extend(w1.late);
            }
            Err(e) => {
                failed.push((
                    i,
                    (e.error_code(), e.message().to_owned(), e.is_retryable()),
                ));
                stop = Some(not_written("the store failed"));
            }
        }
    }
    (refused, failed)
}

// SPDX-License-Identifier: Apache-2.0
// The usage meter: record every billable event, bill every customer-hour exactly once.

//! The usage meter.
//!
//! Sellers call [`UsageMeter::record`] on every billable event; the meter adds it to a
//! *bucket* — (product or license, customer, dimension, hour of the event) — and later sends
//! each bucket exactly once.
//!
//! What "exactly once" rests on:
//!
//! * **Sealing.** A bucket's hour is *sealed* once the hour has ended and `grace` has passed.
//!   Sealing copies the bucket's quantity into a frozen `sealed_quantity` column, written once
//!   (a trigger refuses any later change). Only sealed buckets are ever sent, always with that
//!   frozen quantity. Events that arrive later for a sealed hour are counted in the *current*
//!   hour and reported as [`MeterEventKind::LateEvent`].
//! * **The service's dedup.** `BatchMeterUsage` answers an identical record (same customer,
//!   dimension, hour and quantity) with the first record's `MeteringRecordId` and bills it
//!   once; `MeterUsage` does the same for a repeated `ClientToken`, which the meter derives
//!   from the store's identity (a random id kept in the store) and the bucket's product,
//!   dimension, hour, frozen quantity and random part (drawn when the bucket is made): a
//!   resend is identical, two stores (replicas of one seller account) never share a token,
//!   and nor do copies of one store (instances launched from an image that held it). Before a call goes out its buckets are marked `sending` in a
//!   transaction; after a crash, buckets still `sending` are sent again with the same frozen
//!   quantity, so the service bills them once.
//!
//! Each result is recorded, matched to its bucket by the whole record (customer, license,
//! dimension, hour): `Success` → acked (with its `MeteringRecordId`);
//! `CustomerNotSubscribed`, `DuplicateRecord`, unknown statuses and errors about the records
//! (a dimension, a customer, a license, a quantity) → the `dead_letters` table and a
//! [`MeterEventKind::DeadLettered`] event; nothing is dropped silently. An error about the
//! whole call — who sends it or where (credentials, access, region, product code, a disabled
//! API, an entitlement, an unknown error) — dead-letters nothing: the buckets stay sealed and
//! `flush()` returns the error, so they bill once the configuration is fixed.
//! [`UsageMeter::requeue`] sends chosen dead letters again while their hour is in the window. A bucket within `alarm_before` of the end of the service's 6-hour window raises
//! [`MeterEventKind::WindowAlarm`]; a bucket past it is marked expired
//! ([`MeterEventKind::Expired`]) and never retried. Records carry the bucket's hour (its first
//! second) as their timestamp.
//!
//! Durability ([`Durability`]): `Durable` commits every `record()` to SQLite (WAL,
//! `synchronous=FULL`) before returning; `Group` does the same but one committer thread
//! commits all concurrent callers' events in one transaction; `Memory` keeps events in memory
//! and writes them to the store at every flush (and every `flush_interval`) — a crash loses
//! what was recorded since the last flush. [`Store::memory`] is for tests: nothing survives
//! the process, and `record()` always goes to the in-memory buffer.
//!
//! Event callbacks run on the thread that caused them (a `record()` caller, the group
//! committer thread or a runtime worker running a flush); they must not block for long.
//! A callback that calls its own meter's `flush()` or `close()`, or `record()` in the group
//! mode, gets `InvalidState` (each would wait for the callback itself); dropping the last
//! handle there does not wait for the committer thread it runs on.

mod config;
mod crash;
#[cfg(feature = "fleet")]
mod fleet;
#[cfg(not(feature = "fleet"))]
#[path = "fleet_off.rs"]
mod fleet;
mod group;
mod owner;
mod record;
mod send;
mod shared;
mod store;
#[cfg(test)]
mod tests;
mod types;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::error::FieldPath;
use crate::{Client, Error};

use store::{Db, Scope};

use config::longest_flush_interval;
pub use config::{MeterConfig, MeterConfigBuilder, DEFAULT_FLUSH_INTERVAL};
use group::{committer, Group, GroupQueue};
use record::{duration_secs, CALENDAR};
pub use record::{GroupCommit, MAX_AHEAD_SECS};
use shared::{
    fold_moves, late_event, lock, overflow_error, wait, Acc, AsKey, BucketKey, Buffer, KeyRef,
    MemBuffer, Shared, Written, MAX_BUCKET,
};
pub use types::{
    Clock, Customer, DeadLetter, Durability, EventCallback, FlushSummary, ManualClock, MeterEvent,
    MeterEventKind, MeterMode, MeterStatus, RequeueFilter, Store,
};
use types::{CustomerRef, StoreKind};
pub(crate) use types::{FleetSettings, Redacted};

struct Inner {
    shared: Arc<Shared>,
    client: Client,
    mode: MeterMode,
    durability: Durability,
    memory_store: bool,
    max_unprocessed_rounds: u32,
    group: Option<(Arc<Group>, usize)>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    flush_lock: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// Held through a `close()`; true once one gave the store up.
    closed_down: tokio::sync::Mutex<bool>,
    /// The process that created the meter (see `owner`).
    generation: u64,
    /// Its id, asked of the kernel (see [`Inner::made_here`]).
    pid: u32,
    /// The last forked child that kept the meter (see `UsageMeter`'s drop): once is enough.
    kept_in: std::sync::atomic::AtomicU64,
    /// Set when a face's exit hook writes the buffer: from then on each `Durability::Memory`
    /// record is written as it is made (see [`UsageMeter::write_at_exit`]).
    exiting: AtomicBool,
    /// The caller's live handles ([`UsageMeter`] clones, the flusher's not counted).
    handles: std::sync::atomic::AtomicUsize,
    /// When the last flush ended, and its error (see [`MeterStatus::last_flush_error`]).
    last_flush: Mutex<(Option<i64>, Option<String>)>,
}

impl Inner {
    /// Records that a flush ended now, by the meter's clock, with `error` (see
    /// [`MeterStatus::last_flush_error`]).
    fn flushed(&self, error: Option<String>) {
        let at = record::clock_now(&self.shared).ok();
        *lock(&self.last_flush) = (at, error);
    }

    /// A face's exit write (see [`UsageMeter::write_buffered_at_exit`]).
    fn write_buffered_at_exit(&self) {
        self.exiting.store(true, Ordering::SeqCst);
        // Not from this meter's own callback: the write delivering the event may hold what
        // this one needs (the fleet's drain).
        if self.made_here() && !self.shared.in_callback() {
            if let Err(e) = self.shared.drain() {
                report("buffered usage could not be written at exit", &e);
            }
        }
    }

    /// Whether this is the process that created the meter, asked of the kernel too: a child
    /// made without `fork()`'s handlers (glibc's `_Fork()`, a raw `clone`) has the parent's
    /// count of forks, and its exit hook wrote the parent's buffer into the parent's store,
    /// which the parent wrote again. For what writes a buffer at exit or at the last drop,
    /// not for every call (`getpid()` is a system call each time).
    fn made_here(&self) -> bool {
        self.check_process().is_ok() && std::process::id() == self.pid
    }

    /// [`Inner::check_process`], asking the kernel too (see [`Inner::made_here`]): for the
    /// calls that write the buffer into the store or send (`flush()`, `close()`,
    /// `status()`, `requeue()`), where a child made without `fork()`'s handlers wrote the
    /// parent's buffer, which the parent wrote again.
    fn check_made_here(&self) -> Result<(), Error> {
        if self.made_here() {
            Ok(())
        } else {
            Err(owner::forked_error())
        }
    }

    /// Refuses every call in a process other than the one that created the meter.
    fn check_process(&self) -> Result<(), Error> {
        if self.generation == crate::runtime::process_generation() {
            Ok(())
        } else {
            Err(owner::forked_error())
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Never in a process forked from the one that made the meter: each handle's drop
        // there keeps the meter (see `UsageMeter`'s drop). A child made without `fork()`'s
        // handlers (see `made_here`) keeps what is the parent's too: the store and the
        // buffer, and the tasks and threads its handles name, which the child does not have.
        if !self.made_here() {
            std::mem::forget(Arc::clone(&self.shared));
            std::mem::forget(self.client.clone());
            std::mem::forget(lock(&self.flusher).take());
            std::mem::forget(lock(&self.committer).take());
            return;
        }
        if let Some(h) = lock(&self.flusher).take() {
            h.abort();
        }
        if let Some((g, _)) = &self.group {
            lock(&g.queue).stop = true;
            g.cv.notify_all();
        }
        if let Some(h) = lock(&self.committer).take() {
            // Dropped by a callback on the committer thread itself: it ends on its own.
            if h.thread().id() != std::thread::current().id() {
                let _ = crate::runtime::wait_outside_workers(|| h.join());
            }
        }
        // Memory durability: write what is buffered (a file store keeps it).
        if let Err(e) = self.shared.drain() {
            report("buffered usage could not be written at drop", &e);
        }
        // A store file removed meanwhile is written again at its path, as a write or a close
        // would have: closing the connection to the unlinked file lost every unsent hour.
        // Not once closed: the store was given up, and its path may be another meter's.
        if !*self.closed_down.get_mut() {
            if let Err(e) = lock(&self.shared.db).check_in_place() {
                report("the store file was not in place at drop", &e);
            }
            say_what_is_left(&self.shared, "the meter, dropped without close(), left");
        }
    }
}

/// Says what a local store's meter leaves unsent as it closes or is dropped unclosed (its
/// hours not sealed yet, and what a stopped flush kept sealed), and where: a file store's
/// next meter sends them, and a memory store loses them. Unsaid, a store path missing from
/// a pod's settings (a memory store) or a store on a volume gone with its pod lost an hour's
/// usage at every rollout. Written with the store let go: standard error may be a pipe
/// nobody reads, which must not hold up `record()`.
fn say_what_is_left(shared: &Shared, what: &str) {
    if shared.fleet.is_some() {
        return;
    }
    let (left, path) = {
        let db = lock(&shared.db);
        let Ok(s) = db.status() else { return };
        (
            s.pending + s.sealed,
            db.path().map(|p| p.display().to_string()),
        )
    };
    let left = match left {
        0 => return,
        1 => "1 bucket".to_owned(),
        n => format!("{n} buckets"),
    };
    let fate = path
        .as_deref()
        .and_then(|p| store::lost_with(std::path::Path::new(p)));
    note(&match (path, fate) {
        (None, _) => format!(
            "{what} {left} of usage not sent yet in memory: the meter has no store file \
             (path), so they are lost"
        ),
        (Some(p), Some((on, lost))) => format!(
            "{what} {left} of usage not sent yet in the store at {p}, which is {on}, lost \
             {lost}: only a meter that opens it before then sends them"
        ),
        (Some(p), None) => format!(
            "{what} {left} of usage not sent yet in the store at {p}: the next meter that \
             opens it sends them (a store on a volume that does not outlive its container, \
             such as an emptyDir, loses them)"
        ),
    });
}

/// Refuses more zero-fill dimensions than a registration holds, naming `dimensions`.
fn dimension_count<T>(dimensions: &[T]) -> Result<(), Error> {
    let max = crate::validate::MAX_DIMENSIONS;
    if dimensions.len() > max {
        return Err(Error::invalid_input(
            FieldPath::argument("dimensions"),
            format_args!("must hold at most {max} items, got {}", dimensions.len()),
        ));
    }
    Ok(())
}

/// Reports an error no caller can be given (the background flusher's, a drop's, an exit
/// hook's): a `tracing` error event, and a line on standard error when the process set no
/// global `tracing` subscriber (no face does), so that it is never silent.
pub fn report(what: &str, e: &Error) {
    tracing::error!(error = %e, "meter: {what}");
    if !tracing::dispatcher::has_been_set() {
        write_stderr(&format!("marketplace-metering: {what}: {e}"));
    }
}

/// [`report`] for what is not an error yet: a `tracing` warning, and the same line on
/// standard error when no global subscriber is set.
pub(crate) fn warn(what: &str, e: &Error) {
    tracing::warn!(error = %e, "meter: {what}");
    if !tracing::dispatcher::has_been_set() {
        write_stderr(&format!("marketplace-metering: {what}: {e}"));
    }
}

/// Tells of something the meter mended on its own, with no caller to tell: a `tracing`
/// warning, and a line on standard error when no global subscriber is set.
pub(crate) fn note(what: &str) {
    tracing::warn!("meter: {what}");
    if !tracing::dispatcher::has_been_set() {
        write_stderr(&format!("marketplace-metering: {what}"));
    }
}

/// Writes `line` and a newline to standard error, whatever became of it, for the library's
/// own lines (every face's): never `eprintln!`, which panics on a closed pipe (`node app.js
/// | head`; at exit, in a drop, that panic aborted the process), and never killing the
/// process by SIGPIPE when the pipe's reader is gone (`app 2>&1 | tee` after `tee` ended): a
/// C program keeps SIGPIPE's default action, which ended it.
#[doc(hidden)]
pub fn write_stderr(line: &str) {
    use std::io::Write;
    let text = format!("{line}\n");
    let _held = crate::runtime::SigpipeHeld::new();
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Starts the background flusher on the shared runtime, and has the runtime start it again
/// on its next runtime when [`crate::runtime::shutdown`] stops this one (C's `mm_shutdown()`
/// while the meter is alive), so a shutdown never ends a live meter's flushing for good.
fn start_flusher(inner: &Arc<Inner>, every: Duration) -> Result<(), Error> {
    spawn_flusher(inner, every)?;
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let owner: Weak<dyn std::any::Any + Send + Sync> = weak.clone();
    crate::runtime::restart_after_shutdown(owner, move || {
        if let Some(inner) = weak.upgrade() {
            // A forked child's mm_shutdown() runs this too: the meter is the parent's.
            if !inner.closed.load(Ordering::SeqCst) && inner.check_process().is_ok() {
                if let Err(e) = spawn_flusher(&inner, every) {
                    report(
                        "the background flusher could not start again after the runtime's \
                         shutdown; call flush() yourself",
                        &e,
                    );
                }
            }
        }
    });
    Ok(())
}

/// A future whose panic is caught as `Err` (what `futures`' `catch_unwind` does), so that a
/// task running it lives on.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

fn spawn_flusher(inner: &Arc<Inner>, every: Duration) -> Result<(), Error> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let h = crate::runtime::spawn(async move {
        // After a flush stopped with buckets left (throttling, a transport failure), the next
        // comes after a tenth of the interval (at least a second), doubling while the stops
        // go on, back to the interval once one ends: one stopped flush a minute drained a
        // backlog slower than an hour's usage came in.
        let (mut pause, mut stops) = (every, 0u32);
        loop {
            tokio::time::sleep(pause).await;
            let Some(inner) = weak.upgrade() else { break };
            if inner.closed.load(Ordering::SeqCst) || inner.check_process().is_err() {
                break;
            }
            // No caller to tell: logged (a store that cannot be written, a refusal that
            // lasts, the store's file removed).
            let flusher = UsageMeter {
                inner,
                counted: false,
            };
            // A panic in one flush (a thread the runtime could not start under a pids
            // limit, a bug) ends that flush, not the flusher: the next one still runs.
            let shared = &flusher.inner.shared;
            let flushed = shared.with_courier(CatchUnwind(Box::pin(flusher.flush_now(false))));
            match flushed.await {
                Err(panic) => {
                    let e = Error::invalid_state(crate::error::panic_message(&*panic));
                    report(
                        "a background flush panicked; the next one runs as planned",
                        &e,
                    );
                    // The flush never wrote how it went: a health check must not read the
                    // flush before it as this one's.
                    flusher.inner.flushed(Some(e.to_string()));
                }
                Ok(Err(e)) => report("the background flush failed", &e),
                // Not an error (the hours stay sealed for the next flush), but an outage
                // that lasts ages them toward the service's window: never silent.
                Ok(Ok(s)) => {
                    if let Some(e) = &s.interrupted {
                        warn(
                            "the background flush stopped; its hours stay sealed for the next",
                            e,
                        );
                        if s.deferred > 0 {
                            let soon = (every / 10).max(Duration::from_secs(1));
                            pause = soon.saturating_mul(1 << stops.min(16)).min(every);
                            stops += 1;
                            continue;
                        }
                    }
                }
            }
            (pause, stops) = (every, 0);
        }
    })?;
    if let Some(old) = lock(&inner.flusher).replace(h) {
        old.abort();
    }
    Ok(())
}

/// How long `close()` waits for the event callbacks of background flushes to be delivered.
const CALLBACKS_WAIT: Duration = Duration::from_secs(5);

/// Records billable events and bills every customer-hour exactly once; see the
/// [module documentation](self).
///
/// Cheap to clone (an `Arc` inside); all methods take `&self`. Dropping the last clone writes
/// what `Durability::Memory` buffered to the store (a flush the background flusher has in
/// flight keeps the meter itself until it ends).
pub struct UsageMeter {
    inner: Arc<Inner>,
    /// A caller's handle, counted in `Inner::handles` (the background flusher's is not).
    counted: bool,
}

impl Clone for UsageMeter {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        UsageMeter {
            inner: self.inner.clone(),
            counted: true,
        }
    }
}

impl Drop for UsageMeter {
    fn drop(&mut self) {
        if self.inner.check_process().is_err() {
            // Inherited across fork(): the meter is never dropped here. Its fleet store's
            // pooled connections, its client's and its flusher are tasks of the parent's
            // runtime, whose threads the child does not have; dropping them wakes those tasks
            // there, and a child whose fork caught one of those threads holding the runtime's
            // queue lock hung for good (a gunicorn worker of a `--preload` app). One handle
            // kept per process is enough (the Python face drops a clone at every call).
            let here = crate::runtime::process_generation();
            if self.inner.kept_in.swap(here, Ordering::AcqRel) != here {
                crate::runtime::keep_inherited(Arc::clone(&self.inner));
            }
            return;
        }
        if !self.counted || self.inner.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The caller's last handle. The background flusher may hold the meter for a flush in
        // flight, and `Inner`'s drop (which writes the buffer too) waits for it to end: a
        // process ending meanwhile (C's `mm_meter_free` then `exit`, a Node worker torn
        // down) lost what `Durability::Memory` buffered. It is written now.
        // Not from this meter's own event callback: the flush or write delivering the event
        // may hold what the write needs (the fleet's drain); the meter's own drop writes it.
        let memory = self.inner.durability == Durability::Memory;
        if memory && self.inner.made_here() && !self.inner.shared.in_callback() {
            if let Err(e) = self.inner.shared.drain() {
                report("buffered usage could not be written at drop", &e);
            }
        }
    }
}

/// A [`UsageMeter`] that is not kept alive by this handle ([`UsageMeter::downgrade`]).
///
/// For a face's exit hook of last resort (the C library's `atexit` of a Node addon): a
/// meter still alive when the process ends has what `Durability::Memory` buffered written
/// to the store, however the runtime's own hooks ran (one of them threw, a record came after
/// them), without the registry keeping any meter alive.
#[derive(Clone)]
pub struct WeakUsageMeter(std::sync::Weak<Inner>);

impl WeakUsageMeter {
    /// Whether the meter is still alive.
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    /// [`UsageMeter::write_buffered_at_exit`], if the meter is still alive.
    pub fn write_buffered_at_exit(&self) {
        if let Some(inner) = self.0.upgrade() {
            inner.write_buffered_at_exit();
        }
    }
}

/// How long a face's exit hook waits for the buffers to be written: a store that does not
/// answer (a fleet store's database unreachable) must not hold the process past a service
/// manager's stop timeout.
const EXIT_WRITE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What [`exit_writes`] says when the time ran out.
const EXIT_TIMED_OUT: &str = "the store did not answer within 10 s";

/// From a face's `atexit` hook: writes what `Durability::Memory` buffered in each of `meters`
/// still alive (see [`exit_writes`]). `None` once written; otherwise why they may not all
/// have been.
pub fn write_buffered_at_exit(meters: Vec<WeakUsageMeter>) -> Option<&'static str> {
    exit_writes(
        meters
            .into_iter()
            .map(|m| Box::new(move || m.write_buffered_at_exit()) as ExitWrite)
            .collect(),
    )
}

/// Says on standard error that [`exit_writes`] ran out of time (`why`), with the face's
/// `advice` on waiting for the writes.
#[doc(hidden)]
pub fn warn_exit_writes(why: &str, advice: &str) {
    write_stderr(&format!(
        "marketplace-metering: at exit, events a meter buffered (memory durability) or kept (a \
         fleet write of unknown outcome) may not have been written: {why}{advice}"
    ));
}

/// One meter's write at exit (see [`exit_writes`]).
pub type ExitWrite = Box<dyn FnOnce() + Send>;

/// Runs a face's writes at exit, each on a thread of its own (glibc has destroyed the
/// exiting thread's thread-locals before it runs `atexit` hooks, and the fleet store's write
/// enters the runtime, which needs them: a hook that wrote there panicked, and the process
/// aborted; and a fleet database that does not answer must not use up the others' time),
/// all within 10 s, never unwinding. `None` once all ran; otherwise why they may not have.
///
/// Not from a thread that holds one of the meters (inside its event callback): the write
/// waits for what that thread holds, until the time is up.
pub fn exit_writes(writes: Vec<ExitWrite>) -> Option<&'static str> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let mut waiting = 0;
    let mut why = None;
    let run = |write: Option<ExitWrite>| {
        if let Some(write) = write {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(write));
        }
    };
    for write in writes {
        let done = done.clone();
        let slot = Arc::new(Mutex::new(Some(write)));
        let mine = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("mm-exit".into())
            .spawn(move || {
                run(lock(&mine).take());
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => waiting += 1,
            // No thread to spare (a container's pids limit): written here rather than
            // dropped, with no deadline. A SQLite store's write needs nothing this thread
            // lacks; a fleet store's enters the runtime, which may panic here (caught).
            Err(_) => {
                run(lock(&slot).take());
                why = Some("no thread could be started, so a write ran on the exiting thread");
            }
        }
    }
    let deadline = std::time::Instant::now() + EXIT_WRITE_LIMIT;
    for _ in 0..waiting {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if finished.recv_timeout(left).is_err() {
            return Some(EXIT_TIMED_OUT);
        }
    }
    why
}

impl fmt::Debug for WeakUsageMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakUsageMeter")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageMeter")
            .field("product_code", &self.inner.shared.scope.product_code)
            .field("mode", &self.inner.mode)
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

fn hour_of(secs: i64) -> i64 {
    secs.div_euclid(3600).saturating_mul(3600)
}

impl UsageMeter {
    /// Opens the store (creating or migrating it) and starts the committer thread
    /// (`Group`) and the background flusher (`flush_interval`).
    pub fn new(config: MeterConfig) -> Result<UsageMeter, Error> {
        owner::fill_standard_fds();
        if config.mode == MeterMode::MeterUsage && config.product_code.is_none() {
            return Err(Error::invalid_config(
                "the MeterUsage mode needs a product code",
            ));
        }
        if let Some(p) = &config.product_code {
            if p.is_empty() {
                return Err(Error::invalid_input(
                    FieldPath::argument("product_code"),
                    "must not be empty",
                ));
            }
            crate::validate::product_code_argument("product_code", p)?;
        }
        if !matches!(config.store.0, StoreKind::Postgres(_)) {
            // A replica name without the fleet store would leave each replica on its own
            // store, the double count the fleet store exists to prevent: say so.
            for (field, given) in [
                ("replica_id", config.replica_id.is_some()),
                ("start_hour", config.start_hour.is_some()),
            ] {
                if given {
                    return Err(Error::invalid_input(
                        FieldPath::argument(field),
                        "is a fleet store setting: give the database URL too",
                    ));
                }
            }
        }
        // A bucket seals an hour plus the grace after its hour starts; sealed at or near the
        // window's end, every bucket would expire unsent. Leave an hour to send in.
        let (grace, window) = (duration_secs(config.grace), duration_secs(config.window));
        if grace > window.saturating_sub(2 * 3600) {
            return Err(Error::invalid_input(
                FieldPath::argument("grace"),
                format!(
                    "{grace} s leaves no time to send: an hour seals an hour plus its grace \
                     after it starts, and the service takes it for {window} s; at most {} s",
                    window.saturating_sub(2 * 3600).max(0)
                ),
            ));
        }
        // Window alarms are raised by flushes: a background flusher slower than half of
        // `alarm_before` raised an alarm too late to act on (an hourly one, at the window's
        // end with the default hour's notice).
        if let Some(every) = config.flush_interval {
            let most = longest_flush_interval(config.alarm_before);
            if every > most {
                return Err(Error::invalid_input(
                    FieldPath::argument("flush_interval"),
                    format!(
                        "{} s is too long: window alarms are raised by flushes, {} s before \
                         the end of the service's window, so at most {} s",
                        every.as_secs_f64(),
                        config.alarm_before.as_secs_f64(),
                        most.as_secs_f64()
                    ),
                ));
            }
        }
        if !config.power_loss_safe && matches!(config.store.0, StoreKind::Postgres(_)) {
            // The fleet store's commits are as durable as the database makes them: a setting
            // that would change nothing is refused rather than believed.
            return Err(Error::invalid_input(
                FieldPath::argument("power_loss_safe"),
                "is a SQLite store setting: the fleet store's commits are as durable as \
                 the database's own settings (synchronous_commit) make them",
            ));
        }
        let memory_store = matches!(config.store.0, StoreKind::Memory);
        let mut fleet = None;
        let db = match &config.store.0 {
            StoreKind::Sqlite(p) => {
                let db = Db::open(Some(p), config.power_loss_safe)?;
                store::say_if_on_lambda(Some(p));
                db
            }
            StoreKind::Memory => {
                let db = Db::open(None, true)?;
                store::say_if_on_lambda(None);
                db
            }
            StoreKind::Postgres(url) => {
                let settings = FleetSettings {
                    url: Redacted(url.clone()),
                    replica_id: config.replica_id.clone(),
                    senders: config.fleet_senders,
                    lease: config.fleet_lease,
                    start_hour: config.start_hour,
                    use_meter_clock: config.clock_given,
                };
                fleet = Some(wait(fleet::Fleet::open(settings))??);
                Db::open(None, true)?
            }
        };
        let scope = Scope {
            product_code: config.product_code.clone().unwrap_or_default(),
            grace,
            window,
            alarm_before: duration_secs(config.alarm_before),
            zero_fill: config.zero_fill,
        };
        let shared = Arc::new(Shared {
            db: Mutex::new(db),
            fleet,
            buffer: Mutex::new(MemBuffer::default()),
            fleet_drain: tokio::sync::Mutex::new(()),
            scope,
            clock: config.clock.clone(),
            on_event: config.on_event.clone(),
            alarmed_outside: Mutex::default(),
            alarmed_buffered: Mutex::default(),
            courier: Mutex::default(),
            undelivered: Default::default(),
        });
        let mut group = None;
        let mut committer_handle = None;
        if config.durability == Durability::Group && !memory_store {
            let g = Arc::new(Group {
                queue: Mutex::new(GroupQueue {
                    open: Buffer::new(),
                    events: Vec::new(),
                    count: 0,
                    slot: Arc::default(),
                    waiters: Vec::new(),
                    stop: false,
                    want: 1,
                    late: Vec::new(),
                    committer_waits: false,
                    room_waiters: 0,
                }),
                cv: Condvar::new(),
                room: Condvar::new(),
                spin: AtomicBool::new(true),
            });
            let (s, g2) = (shared.clone(), g.clone());
            let (wait, max) = (config.group_max_wait, config.group_max_events);
            let h = std::thread::Builder::new()
                .name("mm-meter-commit".into())
                .spawn(move || committer(s, g2, wait, max))
                .map_err(|e| {
                    Error::invalid_state(format!("cannot start the committer thread: {e}"))
                })?;
            group = Some((g, config.group_max_events));
            committer_handle = Some(h);
        }
        let inner = Arc::new(Inner {
            shared,
            client: config.client,
            mode: config.mode,
            durability: config.durability,
            memory_store,
            max_unprocessed_rounds: config.max_unprocessed_rounds,
            group,
            committer: Mutex::new(committer_handle),
            flusher: Mutex::new(None),
            flush_lock: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            closed_down: tokio::sync::Mutex::new(false),
            generation: crate::runtime::process_generation(),
            pid: std::process::id(),
            kept_in: std::sync::atomic::AtomicU64::new(crate::runtime::process_generation()),
            exiting: AtomicBool::new(false),
            handles: std::sync::atomic::AtomicUsize::new(1),
            last_flush: Mutex::new((None, None)),
        });
        if let Some(every) = config.flush_interval {
            start_flusher(&inner, every)?;
        }
        Ok(UsageMeter {
            inner,
            counted: true,
        })
    }

    /// Registers a customer for zero-fill: from the current hour on, each of `dimensions`
    /// is reported every hour, as 0 when there was no usage (only with `zero_fill` on). The
    /// customer is required as in [`UsageMeter::record`] (and ignored in the `MeterUsage` mode).
    /// At most [`crate::validate::MAX_DIMENSIONS`] dimensions, each valid as `record()`'s.
    pub fn register_customer(
        &self,
        customer: impl Into<Option<Customer>>,
        dimensions: &[&str],
    ) -> Result<(), Error> {
        self.inner.check_process()?;
        self.refuse_closed()?;
        let customer = self.bucket_customer(customer.into())?;
        dimension_count(dimensions)?;
        let now = record::clock_now(&self.inner.shared)?;
        for d in dimensions {
            let c = customer.as_ref().map(Customer::by_ref);
            self.validate(c, d, 0, now, None)?;
            self.fleet_key_fits(c, d, None)?;
        }
        let dims: Vec<String> = dimensions.iter().map(|d| (*d).to_owned()).collect();
        let shared = &self.inner.shared;
        let hour = shared.current_hour();
        if let Some(f) = &shared.fleet {
            return wait(f.register(&shared.scope.product_code, customer.as_ref(), &dims, hour))?;
        }
        lock(&shared.db).register(&shared.scope.product_code, customer.as_ref(), &dims, hour)
    }

    /// Stops zero-filling a customer (one that churned): its registrations for `dimensions`,
    /// or for every dimension when `None`, are removed at once, so no zero is made for any
    /// hour not zero-filled yet (usage recorded is sent as always). Registering the customer
    /// again starts from the hour it is registered in. Returns how many registrations were
    /// removed (0 when the customer had none). The customer is required as in
    /// [`UsageMeter::record`] (and ignored in the `MeterUsage` mode).
    pub fn unregister_customer(
        &self,
        customer: impl Into<Option<Customer>>,
        dimensions: Option<&[&str]>,
    ) -> Result<usize, Error> {
        self.inner.check_process()?;
        self.refuse_closed()?;
        let customer = self.bucket_customer(customer.into())?;
        if let Some(Customer::Identifier(id)) = &customer {
            record::no_nul("customer_identifier", id)?;
        }
        let dims: Option<Vec<String>> = match dimensions {
            Some(d) => {
                dimension_count(d)?;
                for dim in d {
                    record::no_nul("dimensions", dim)?;
                }
                Some(d.iter().map(|d| (*d).to_owned()).collect())
            }
            None => None,
        };
        let shared = &self.inner.shared;
        if let Some(f) = &shared.fleet {
            return wait(f.unregister(
                &shared.scope.product_code,
                customer.as_ref(),
                dims.as_deref(),
            ))?;
        }
        lock(&shared.db).unregister(
            &shared.scope.product_code,
            customer.as_ref(),
            dims.as_deref(),
        )
    }

    /// Seals what may be sealed and sends every sealed bucket now.
    ///
    /// A retryable failure that outlasts the client's retries (throttling, transport) stops
    /// the flush and is returned in [`FlushSummary::interrupted`]; the buckets stay sealed
    /// for the next flush. Other errors not tied to a record (credentials, access; a store
    /// busy, full or failing I/O, which [`Error::is_retryable`] says may succeed later) are
    /// returned as `Err`.
    pub async fn flush(&self) -> Result<FlushSummary, Error> {
        self.inner.check_made_here()?;
        self.inner.shared.refuse_reentry("flush()")?;
        self.refuse_closed()?;
        self.flush_now(false).await
    }

    /// Flushes under the flush lock. `closing`: the call is close()'s own; any other is
    /// refused once the meter is closed, checked again under the lock: a flush() that saw the
    /// meter open and then waited for close()'s final flush must not send after the store
    /// was given up (another meter may own it by then).
    async fn flush_now(&self, closing: bool) -> Result<FlushSummary, Error> {
        self.inner.check_process()?;
        let _g = self.inner.flush_lock.lock().await;
        if !closing && self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::invalid_state("the meter is closed"));
        }
        let mut sum = send::flush(&self.inner).await;
        // After sending: what the open file holds is billed even when it is no longer at
        // its path. Checked whatever the flush returned (a refusal may last for days), and
        // it comes first: the process must not end before the file is saved. Logged too:
        // the background flusher has no caller to tell.
        if let Err(e) = lock(&self.inner.shared.db).check_in_place() {
            report("the store file is gone", &e);
            sum = Err(e);
        }
        self.inner.flushed(match &sum {
            Ok(s) => s.interrupted.as_ref().map(ToString::to_string),
            Err(e) => Some(e.to_string()),
        });
        sum
    }

    /// [`flush`](Self::flush), blocking the calling thread (not from an async task).
    pub fn flush_blocking(&self) -> Result<FlushSummary, Error> {
        // Refused in a forked child before any runtime is built there.
        self.inner.check_made_here()?;
        self.inner.shared.refuse_reentry("flush()")?;
        crate::runtime::block_on(self.flush())?
    }

    /// Bucket counts per state (writes the in-memory buffer to the store first).
    pub fn status(&self) -> Result<MeterStatus, Error> {
        self.inner.check_made_here()?;
        let shared = &self.inner.shared;
        shared.drain()?;
        let mut s = if let Some(f) = &shared.fleet {
            let mut s = wait(f.status(&shared.scope.product_code))??;
            s.replica_id = Some(f.replica().to_owned());
            s
        } else {
            let mut db = lock(&shared.db);
            db.check_in_place()?;
            db.status()?
        };
        (s.last_flush_at, s.last_flush_error) = lock(&self.inner.last_flush).clone();
        Ok(s)
    }

    /// Refuses a write once the meter is closed (as `record()` is): it gave its store up,
    /// which another meter may own by now (and a file removed since would take the write
    /// with it), or its close failed, and only a `close()` again goes on.
    pub(super) fn refuse_closed(&self) -> Result<(), Error> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::invalid_state("the meter is closed"));
        }
        Ok(())
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        self.inner.check_process()?;
        let shared = &self.inner.shared;
        if let Some(f) = &shared.fleet {
            return wait(f.dead_letters(&shared.scope.product_code))?;
        }
        lock(&shared.db).dead_letters()
    }

    /// Stops the background flusher, flushes what may be flushed and gives up the store's
    /// claim (another meter may open it now); later `record()`, `flush()`, `requeue()`,
    /// `register_customer()` and `unregister_customer()` calls fail with `InvalidState`
    /// (after a `close()` that failed, too: only a `close()` again sends what it could
    /// not). Unsealed hours stay in the store (a file
    /// store sends them after a restart).
    ///
    /// A later `close()` (a `with` block's exit after an explicit close) waits for the first
    /// to end, then does nothing and returns an empty summary: the store may be another
    /// meter's by then. After a close whose final flush failed, the store stays this
    /// meter's and a later `close()` flushes again.
    pub async fn close(&self) -> Result<FlushSummary, Error> {
        self.inner.check_made_here()?;
        self.inner.shared.refuse_reentry("close()")?;
        let mut closed_down = self.inner.closed_down.lock().await;
        if *closed_down {
            return Ok(FlushSummary::default());
        }
        if let Some(h) = lock(&self.inner.flusher).take() {
            h.abort();
        }
        self.inner.closed.store(true, Ordering::Relaxed);
        // What `memory` durability buffered goes to the store first, without waiting for a
        // flush in progress (one stuck on a server that does not answer holds the flush
        // lock): a close() from a SIGTERM handler keeps the buffer even when the process is
        // killed before the flush ends.
        if let Err(e) = self.inner.shared.drain_async().await {
            report("buffered usage could not be written at close", &e);
        }
        let flushed = self.flush_now(true).await;
        // The events of the background flushes, delivered by the courier thread, come
        // before close() returns (a host may free its listener's state then), unless a
        // callback blocks: then close() goes on after CALLBACKS_WAIT.
        let until = std::time::Instant::now() + CALLBACKS_WAIT;
        while self.inner.shared.undelivered.load(Ordering::SeqCst) > 0
            && std::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // No background flush comes after: the courier thread ends once its queue is
        // delivered (not with the meter, which a listener holding it may keep for good).
        drop(lock(&self.inner.shared.courier).take());
        // Closed: another meter may own the store now (this one only reads it from here on).
        // Not after a failed final flush: the store stays this meter's, and a close() again
        // (once the cause is mended) flushes again.
        if flushed.is_ok() {
            say_what_is_left(&self.inner.shared, "close() left");
            lock(&self.inner.shared.db).release_claim();
            // A closed meter only reads: its idle connections to a fleet store go now, not
            // when it is dropped (a Node meter's when V8 collects it).
            if let Some(f) = &self.inner.shared.fleet {
                f.retire_idle();
            }
            *closed_down = true;
        }
        flushed
    }

    /// [`close`](Self::close), blocking the calling thread.
    pub fn close_blocking(&self) -> Result<FlushSummary, Error> {
        // Refused in a forked child before any runtime is built there.
        self.inner.check_made_here()?;
        self.inner.shared.refuse_reentry("close()")?;
        crate::runtime::block_on(self.close())?
    }

    /// Sends chosen dead letters again: those `filter` selects whose hour is still inside the
    /// service's window go back to `sealed` (with their frozen quantity) and leave the
    /// dead-letter list, in one transaction; the next flush sends them. Returns how many.
    /// Dead letters whose window has closed stay where they are.
    pub fn requeue(&self, filter: &RequeueFilter) -> Result<usize, Error> {
        self.inner.check_made_here()?;
        self.refuse_closed()?;
        let shared = &self.inner.shared;
        let now = record::clock_now(shared)?;
        // An hour is inside the window while now < hour + window (as `flush` expires it).
        let after = now.saturating_sub(shared.scope.window);
        if let Some(f) = &shared.fleet {
            return wait(f.requeue(&shared.scope.product_code, filter, after))?;
        }
        lock(&shared.db).requeue(filter, after)
    }

    /// Writes the events `Durability::Memory` buffered to the store now (nothing is sent).
    /// For a face's exit hook: a process that ends without dropping the meter keeps them.
    pub fn write_buffered(&self) -> Result<(), Error> {
        // In a forked child the buffer is the parent's, which writes it too.
        self.inner.check_process()?;
        self.inner.shared.drain()
    }

    /// [`write_buffered`](Self::write_buffered) from a face's exit hook, where no caller can
    /// be given its error: it is [`report`]ed. In a forked child it does nothing (the buffer
    /// is the parent's).
    ///
    /// From then on, each record of a `Durability::Memory` meter on a store is written as it
    /// is made, on a thread of its own (see `write_at_exit`): nothing writes the buffer again.
    pub fn write_buffered_at_exit(&self) {
        self.inner.write_buffered_at_exit();
    }

    /// A record made once a face's exit hook has written the buffer: nothing will write it
    /// again, and an application may still be recording (the JVM runs its shutdown hooks at
    /// once, Spring's drains requests; a C program's `atexit` handlers registered before the
    /// meter, its static destructors, its other threads). So it is written now, as the exit
    /// hook writes ([`exit_writes`]: on a thread of its own, since an exiting thread's
    /// thread-locals are gone and a fleet store's write needs them, for at most 10 s). A write
    /// that fails or outlasts that ends it: later records stay buffered, as before the exit.
    fn write_at_exit(&self) {
        let shared = Arc::clone(&self.inner.shared);
        let failed = Arc::new(AtomicBool::new(false));
        let fails = Arc::clone(&failed);
        // Off the shared runtime's worker that a fleet store's write may need.
        let why = crate::runtime::wait_outside_workers(|| {
            exit_writes(vec![Box::new(move || {
                if let Err(e) = shared.drain() {
                    report("usage recorded at exit could not be written", &e);
                    fails.store(true, Ordering::SeqCst);
                }
            })])
        });
        let timed_out = why == Some(EXIT_TIMED_OUT);
        if (timed_out || failed.load(Ordering::SeqCst))
            && self.inner.exiting.swap(false, Ordering::SeqCst)
        {
            note("usage recorded at exit from now on stays buffered: the store was not written");
        }
    }

    /// A handle that neither keeps the meter alive nor counts as a caller's: for a face's
    /// registry of live meters, whose buffers its exit hook writes (see [`WeakUsageMeter`]).
    pub fn downgrade(&self) -> WeakUsageMeter {
        WeakUsageMeter(Arc::downgrade(&self.inner))
    }

    /// Whether the store may be owed something when the process ends: what
    /// `Durability::Memory` buffered, or an event a fleet store's write left `OutcomeUnknown`
    /// (kept to settle, in any durability). A face lists such meters for its exit hook
    /// ([`write_buffered_at_exit`]); the others have nothing to write there.
    pub fn writes_at_exit(&self) -> bool {
        self.inner.durability == Durability::Memory || self.inner.shared.fleet.is_some()
    }

    /// The fleet store's name for this writer (`None` on a SQLite store).
    pub fn replica_id(&self) -> Option<&str> {
        self.inner.shared.fleet.as_ref().map(fleet::Fleet::replica)
    }

    /// Tests only: gives this fleet meter `other`'s commit keys, as a copy of `other`'s
    /// process restored from a snapshot (Lambda SnapStart, a cloned VM) has them, byte for
    /// byte; `draw`: whether both draw bits of their keys from the kernel from now on, as
    /// they do (not: as if the kernel's bits came out the same). Not part of the API.
    #[doc(hidden)]
    #[cfg(feature = "fleet")]
    pub fn __adopt_fleet_keys_of(&self, other: &UsageMeter, draw: bool) {
        if let (Some(me), Some(them)) = (&self.inner.shared.fleet, &other.inner.shared.fleet) {
            me.adopt_keys_of(them, draw);
        }
    }

    /// Whether the calling thread is running this meter's event callback, where `flush()`,
    /// `close()` and a group-mode `record()` are refused (and the C face's `mm_meter_free`).
    pub fn in_event_callback(&self) -> bool {
        self.inner.shared.in_callback()
    }

    /// `InvalidState` naming `call` when [`in_event_callback`](Self::in_event_callback): for
    /// a face's calls that would wait for the callback (C's `mm_meter_free`).
    pub fn refuse_in_event_callback(&self, call: &str) -> Result<(), Error> {
        self.inner.shared.refuse_reentry(call)
    }
}

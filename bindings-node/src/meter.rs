// SPDX-License-Identifier: Apache-2.0
// NativeMeter and ManualClock: the core's UsageMeter and ManualClock behind promise-returning methods.

//! The usage meter's native half. The JS class `UsageMeter` (index.js) owns one
//! [`NativeMeter`] and is the `EventEmitter`; everything here is translation and threads.
//!
//! **Nothing that waits runs on the JS thread.** A `durable` `record()` commits to SQLite
//! on the runtime's blocking pool (not libuv's four-thread pool). A `group` `record()` is
//! checked and queued on the JS thread (a map insert under the group's lock) and waits for
//! the committer thread's commit as a future on the runtime, holding no thread, so
//! hundreds can wait at once. `status()`, `deadLetters()` and `registerCustomer()` touch SQLite and go to the
//! blocking pool as well; `flush()` and `close()` are the core's futures on the runtime.
//! A `record()` the core merely buffers in memory (the in-memory store, or
//! `durability: "memory"`) runs inline: that is a hash-map insert, and it keeps the fast
//! path fast.
//!
//! **Events.** The core calls its callback on whatever thread caused the event (a blocking
//! pool thread running `record()`, the JS thread queuing a group `record()`, the group
//! committer, a runtime worker flushing). The
//! callback only queues the event on a *non-blocking* threadsafe function, so no core thread
//! ever waits for the JS thread. That function is *weak* (unref'd): an unclosed meter never
//! keeps the process alive. The price: an event still queued when the process has nothing
//! else to do is not delivered. So every call that queued events puts a barrier through the
//! same queue before it settles (`flush()` and `close()` always; `record()`, `status()`… when
//! the event count moved, e.g. a late event): when a promise resolves, the events its call
//! caused have been emitted, and the pending promise keeps the process alive until then.
//! `close()` then releases the function.
//!
//! **Dropping.** When JS collects a meter that was not closed, the core meter's last owner
//! may be this object; its drop joins the committer thread and writes buffered events to the
//! store, so it is moved to a short-lived thread instead of running in the GC finalizer.

mod clock;
mod plain;
mod values;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use marketplace_metering::meter::WeakUsageMeter;
use marketplace_metering::meter::{
    Customer, DeadLetter, Durability, MeterConfig, MeterMode, Store,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::UsageMeter;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::client::NativeClient;
use crate::convert::{self, ConvError};
pub use clock::JsManualClock;
use values::{barrier, count, to_native_event, EventFn, EventSlot};
pub use values::{NativeDeadLetter, NativeFlushSummary, NativeMeterEvent, NativeMeterStatus};

/// The core meter. Every method that may touch SQLite runs off the JS thread.
#[napi]
pub struct NativeMeter {
    meter: Option<UsageMeter>,
    events: Events,
    inline: bool,
    meter_usage: bool,
}

impl Drop for NativeMeter {
    fn drop(&mut self) {
        drop_elsewhere(self.meter.take());
    }
}

/// Drops a core meter on a short-lived thread: if it is the last owner, its drop may join its
/// committer and write to SQLite, which a GC finalizer must not wait for.
///
/// The process waits for these drops at exit. A meter in a worker thread is dropped here
/// when the main thread ends the process (`process.exit()` stops the workers, whose own
/// 'exit' hooks do not run); without the wait, the exit cut off the drop's write of what
/// `durability: "memory"` buffered.
fn drop_elsewhere(meter: Option<UsageMeter>) {
    let Some(m) = meter else { return };
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain extern "C" function, once; it runs at exit.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(wait_for_drops);
    });
    *DROPS.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let done = || {
        *DROPS.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        DROPS.1.notify_all();
    };
    let spawned = std::thread::Builder::new()
        .name("mm-meter-drop".into())
        .spawn(move || {
            drop(m);
            done();
        });
    if spawned.is_err() {
        // The closure, and the meter with it, was dropped here.
        done();
    }
}

/// The meters of the process whose store may be owed something at exit (see
/// [`UsageMeter::writes_at_exit`]), not kept alive by this list.
static LIVE: std::sync::Mutex<Vec<WeakUsageMeter>> = std::sync::Mutex::new(Vec::new());

/// Lists `meter` for the process's exit, where what it buffered or kept is written to its
/// store if it is still alive. The JS layer's 'exit' hook writes the buffer of every live
/// meter that buffers in memory first, but Node stops at the first 'exit' listener that
/// throws (another library's, registered before it), and a `record()` in a listener after
/// it would stay in memory: this hook, in the C library's `atexit`, runs after every
/// listener, whatever they did. It alone writes what a fleet meter kept after
/// `OutcomeUnknown`.
fn write_at_exit(meter: &UsageMeter) {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain extern "C" function, once; it runs at exit.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(write_live_meters);
    });
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(WeakUsageMeter::is_alive);
    live.push(meter.downgrade());
}

/// At exit: writes what each listed live meter buffered or kept (see
/// [`marketplace_metering::meter::write_buffered_at_exit`]: on a thread of its own, for at
/// most 10 s). Never unwinds.
extern "C" fn write_live_meters() {
    let Ok(live) = std::panic::catch_unwind(|| {
        std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()))
    }) else {
        return;
    };
    if let Some(why) = marketplace_metering::meter::write_buffered_at_exit(live) {
        marketplace_metering::meter::warn_exit_writes(why, "");
    }
}

/// Drops in flight on their threads, and their end.
static DROPS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// At exit: waits (up to 10 s) for the meters' drops in flight to write what they hold.
extern "C" fn wait_for_drops() {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = DROPS.0.lock().unwrap_or_else(|p| p.into_inner());
    while *n > 0 {
        let now = std::time::Instant::now();
        if now >= deadline {
            break;
        }
        n = DROPS
            .1
            .wait_timeout(n, deadline - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// Records an event inline with `record`; `true` when that queued events (a late event: the JS
/// layer then waits for [`NativeMeter::barrier`] before it resolves).
fn record_inline(
    env: &Env,
    events: &Events,
    meter: &UsageMeter,
    record: impl FnOnce(&UsageMeter) -> std::result::Result<(), marketplace_metering::Error>,
) -> Result<bool> {
    let before = events.count();
    record(meter).map_err(|e| crate::errors::to_js(env, &e))?;
    Ok(events.count() != before)
}

/// The event queue and a count of the events put on it: a call that saw the count move
/// waits for the queue (a barrier) before it settles.
#[derive(Clone)]
struct Events {
    slot: EventSlot,
    queued: Arc<AtomicU64>,
}

impl Events {
    fn count(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }
    /// A barrier if events were queued since `before`.
    async fn settle_after(&self, before: u64) {
        if self.count() != before {
            barrier(&self.slot).await;
        }
    }
}

/// Runs `f` on the runtime's blocking pool; settles on the JS thread with `to_js(result)`,
/// after the events `f` caused were emitted.
fn blocking<'env, T, V, F>(
    env: &'env Env,
    events: &Events,
    f: F,
    to_js: fn(T) -> V,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
    F: FnOnce() -> std::result::Result<T, marketplace_metering::Error> + Send + 'static,
{
    let events = events.clone();
    env.spawn_future_with_callback(
        async move {
            let before = events.count();
            let r = tokio::task::spawn_blocking(f).await.map_err(|e| {
                napi::Error::new(
                    Status::GenericFailure,
                    format!("the meter's worker failed: {e}"),
                )
            })?;
            events.settle_after(before).await;
            Ok(r)
        },
        move |env, r| match r {
            Ok(v) => Ok(to_js(v)),
            Err(e) => Err(crate::errors::to_js(env, &e)),
        },
    )
}

/// The JS callback that receives the meter's events.
type OnEvent<'a> = Function<'a, NativeMeterEvent, ()>;

/// What opening a meter needs, read on the JS thread; [`Prepared::open`] may then run
/// anywhere (it connects to the fleet store, or opens and migrates a SQLite file).
struct Prepared {
    config: MeterConfig,
    events: Events,
    inline: bool,
    meter_usage: bool,
}

impl Prepared {
    fn new(
        env: &Env,
        client: &NativeClient,
        options: Unknown<'_>,
        clock: Option<&JsManualClock>,
        on_event: OnEvent<'_>,
    ) -> Result<Prepared> {
        let o = convert::meter_options(options).map_err(|e| e.into_napi(env))?;
        let tsfn: EventFn = on_event
            .build_threadsafe_function::<NativeMeterEvent>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let events = Events {
            slot: Arc::new(RwLock::new(Some(Arc::new(tsfn)))),
            queued: Arc::default(),
        };
        let sink = events.clone();
        let mut b = MeterConfig::builder()
            .client(client.core_client())
            .store(
                Store::from_options(o.path.clone().map(Into::into), o.database_url.clone())
                    .map_err(|e| crate::errors::to_js(env, &e))?,
            )
            .mode(o.mode)
            .durability(o.durability)
            .zero_fill(o.zero_fill)
            .on_event(move |e| {
                let g = sink.slot.read().unwrap_or_else(|p| p.into_inner());
                if let Some(t) = g.as_ref() {
                    sink.queued.fetch_add(1, Ordering::SeqCst);
                    // Non-blocking: the queue is unbounded, so this never waits for JS.
                    let _ = t.call(to_native_event(e), ThreadsafeFunctionCallMode::NonBlocking);
                }
            });
        if let Some(p) = o.product_code {
            b = b.product_code(p);
        }
        if let Some(g) = o.grace {
            b = b.grace(g);
        }
        if let Some(safe) = o.power_loss_safe {
            b = b.power_loss_safe(safe);
        }
        if let Some(f) = o.flush_interval_secs {
            b = b.flush_interval_secs(f);
        }
        if let Some(c) = clock {
            b = b.clock(c.inner.clock());
        }
        if let Some(id) = &o.replica_id {
            b = b.replica_id(id);
        }
        if let Some(n) = o.fleet_senders {
            b = b.fleet_senders(n);
        }
        if let Some(l) = o.fleet_lease {
            b = b.fleet_lease(l);
        }
        if let Some(t) = o.start_hour {
            b = b.start_hour(t);
        }
        let config = b.build().map_err(|e| {
            crate::errors::to_js(
                env,
                &marketplace_metering::Error::invalid_input(e.field(), "is required"),
            )
        })?;
        Ok(Prepared {
            config,
            events,
            // The core only buffers these in memory (see `UsageMeter::record`).
            inline: (o.path.is_none() && o.database_url.is_none())
                || o.durability == Durability::Memory,
            meter_usage: o.mode == MeterMode::MeterUsage,
        })
    }

    /// Opens the store and starts the meter (blocking: a fleet store connects here).
    fn open(self) -> std::result::Result<NativeMeter, marketplace_metering::Error> {
        let meter = UsageMeter::new(self.config).map_err(|e| {
            // The core names its settings; this face's options give their unit.
            let option = match e.field() {
                Some("grace") => "graceSeconds",
                Some("flush_interval") => "flushIntervalSeconds",
                Some("fleet_lease") => "fleetLeaseSeconds",
                _ => return e,
            };
            marketplace_metering::Error::invalid_input(
                marketplace_metering::FieldPath::argument(option),
                e.problem(),
            )
        })?;
        if meter.writes_at_exit() {
            write_at_exit(&meter);
        }
        Ok(NativeMeter {
            meter: Some(meter),
            events: self.events,
            inline: self.inline,
            meter_usage: self.meter_usage,
        })
    }
}

#[napi]
impl NativeMeter {
    /// Opens the store and starts the meter, on the JS thread. `options` are read by
    /// [`convert::meter_options`] (`clock` is checked by the JS layer and passed apart);
    /// `on_event` receives every event and the barriers.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        client: &NativeClient,
        options: Unknown<'_>,
        clock: Option<&JsManualClock>,
        #[napi(ts_arg_type = "(event: NativeMeterEvent) => void")] on_event: OnEvent<'_>,
    ) -> Result<Self> {
        Prepared::new(&env, client, options, clock, on_event)?
            .open()
            .map_err(|e| crate::errors::to_js(&env, &e))
    }

    /// As the constructor, but the store is opened (the fleet store connected) on the
    /// runtime's blocking pool: the options are checked at once, the promise settles with the
    /// meter or the constructor's error.
    #[napi(ts_return_type = "Promise<NativeMeter>")]
    pub fn open<'env>(
        env: &'env Env,
        client: &NativeClient,
        options: Unknown<'_>,
        clock: Option<&JsManualClock>,
        #[napi(ts_arg_type = "(event: NativeMeterEvent) => void")] on_event: OnEvent<'_>,
    ) -> Result<PromiseRaw<'env, NativeMeter>> {
        let prepared = Prepared::new(env, client, options, clock, on_event)?;
        env.spawn_future_with_callback(
            async move {
                tokio::task::spawn_blocking(move || prepared.open())
                    .await
                    .map_err(|e| {
                        napi::Error::new(
                            Status::GenericFailure,
                            format!("the meter's worker failed: {e}"),
                        )
                    })
            },
            move |env, r| r.map_err(|e| crate::errors::to_js(env, &e)),
        )
    }

    /// The core meter (only `Drop` takes it out, so it is always there while JS can call).
    fn meter(&self) -> Result<UsageMeter> {
        self.meter_ref().cloned()
    }

    /// [`Self::meter`] borrowed, for the inline record path (no reference count per record).
    fn meter_ref(&self) -> Result<&UsageMeter> {
        self.meter
            .as_ref()
            .ok_or_else(|| napi::Error::new(Status::GenericFailure, "the meter was dropped"))
    }

    /// `true` when `record()` only buffers in memory: the JS layer then calls [`Self::record_now`].
    #[napi(getter)]
    pub fn inline(&self) -> bool {
        self.inline
    }

    /// Records an event inline (in-memory buffering only); throws on bad input. Returns
    /// `true` when the call queued events (a late event): the JS layer then waits for
    /// [`Self::barrier`] before it resolves.
    #[napi]
    pub fn record_now(&self, env: Env, input: Unknown<'_>) -> Result<bool> {
        let r =
            convert::meter_record_input(input, !self.meter_usage).map_err(|e| e.into_napi(&env))?;
        record_inline(&env, &self.events, self.meter_ref()?, |m| {
            m.record(r.customer, &r.dimension, r.quantity, r.at, r.allocations)
        })
    }

    /// [`Self::record_now`] for `record()`'s common shape (a customer identifier, a dimension,
    /// a quantity, nothing else), its members read by the JS layer: a function bound to this
    /// meter, called once per record (see `meter/plain.rs`). Same rules, same errors.
    #[napi(
        ts_return_type = "(customerIdentifier: string, dimension: string, quantity: number) => boolean"
    )]
    pub fn plain_recorder<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let f = plain::function(env, self.meter()?, self.events.clone())?;
        // SAFETY: a live value of this env.
        unsafe { Unknown::from_napi_value(env.raw(), f) }
    }

    /// Resolves once every event queued so far has been emitted.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn barrier<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let slot = self.events.slot.clone();
        env.spawn_future(async move {
            barrier(&slot).await;
            Ok(())
        })
    }

    /// Records an event on the blocking pool; resolves once it is as durable as configured.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn record<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, ()>> {
        let r =
            convert::meter_record_input(input, !self.meter_usage).map_err(|e| e.into_napi(env))?;
        let m = self.meter()?;
        // Group commit: the record waits for its commit on the runtime, holding no thread
        // (with a blocking thread each, 256 records in flight were 256 threads parked on the
        // commit and woken one by one). The event is checked and queued here.
        let before = self.events.count();
        let queued = m
            .record_in_group(
                r.customer.as_ref(),
                &r.dimension,
                r.quantity,
                r.at,
                r.allocations.as_deref(),
            )
            .map_err(|e| crate::errors::to_js(env, &e))?;
        if let Some(commit) = queued {
            let events = self.events.clone();
            return env.spawn_future_with_callback(
                async move {
                    let r = commit.await;
                    events.settle_after(before).await;
                    Ok(r)
                },
                |env, r| r.map_err(|e| crate::errors::to_js(env, &e)),
            );
        }
        blocking(
            env,
            &self.events,
            move || m.record(r.customer, &r.dimension, r.quantity, r.at, r.allocations),
            |()| (),
        )
    }

    /// Registers a customer's dimensions for zero-fill.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn register_customer<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, ()>> {
        let (customer, dims) = convert::meter_register_input(input, !self.meter_usage)
            .map_err(|e: ConvError| e.into_napi(env))?;
        let m = self.meter()?;
        blocking(
            env,
            &self.events,
            move || {
                let d: Vec<&str> = dims.iter().map(String::as_str).collect();
                m.register_customer(customer, &d)
            },
            |()| (),
        )
    }

    /// Stops zero-filling a customer's dimensions (every one when `dimensions` is absent);
    /// resolves with how many registrations were removed.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn unregister_customer<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, u32>> {
        let (customer, dims) = convert::meter_unregister_input(input, !self.meter_usage)
            .map_err(|e: ConvError| e.into_napi(env))?;
        let m = self.meter()?;
        blocking(
            env,
            &self.events,
            move || {
                let d: Option<Vec<&str>> = dims
                    .as_ref()
                    .map(|d| d.iter().map(String::as_str).collect());
                m.unregister_customer(customer, d.as_deref())
            },
            |n| u32::try_from(n).unwrap_or(u32::MAX),
        )
    }

    /// Bucket counts.
    #[napi(ts_return_type = "Promise<NativeMeterStatus>")]
    pub fn status<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeMeterStatus>> {
        let m = self.meter()?;
        blocking(
            env,
            &self.events,
            move || m.status(),
            NativeMeterStatus::from,
        )
    }

    /// Every dead letter, oldest first.
    #[napi(ts_return_type = "Promise<NativeDeadLetter[]>")]
    pub fn dead_letters<'env>(
        &self,
        env: &'env Env,
    ) -> Result<PromiseRaw<'env, Vec<NativeDeadLetter>>> {
        let m = self.meter()?;
        blocking(
            env,
            &self.events,
            move || m.dead_letters(),
            |v: Vec<DeadLetter>| v.into_iter().map(NativeDeadLetter::from).collect(),
        )
    }

    /// Sends chosen dead letters again; resolves with how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn requeue<'env>(
        &self,
        env: &'env Env,
        filter: Option<Unknown<'env>>,
    ) -> Result<PromiseRaw<'env, u32>> {
        let filter = convert::meter_requeue_input(filter).map_err(|e| e.into_napi(env))?;
        let m = self.meter()?;
        blocking(env, &self.events, move || m.requeue(&filter), count)
    }

    /// Writes what `durability: "memory"` buffered to the store, synchronously (the JS
    /// layer's `process.on('exit')` hook: nothing asynchronous runs at exit).
    #[napi]
    pub fn write_buffered_sync(&self, env: Env) -> Result<()> {
        self.meter()?
            .write_buffered()
            .map_err(|e| crate::errors::to_js(&env, &e))
    }

    /// Seals and sends; resolves after the events it caused were emitted.
    #[napi(ts_return_type = "Promise<NativeFlushSummary>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeFlushSummary>> {
        let m = self.meter()?;
        let events = self.events.clone();
        env.spawn_future_with_callback(
            async move {
                let r = m.flush().await;
                // Not dropped here: after a worker's terminate() this may be the meter's last
                // owner, whose drop joins its committer and writes to SQLite, which the
                // addon's one runtime worker, shared by every environment, must not wait for.
                drop_elsewhere(Some(m));
                barrier(&events.slot).await;
                Ok(r)
            },
            |env, r| match r {
                Ok(s) => Ok(NativeFlushSummary::from(s)),
                Err(e) => Err(crate::errors::to_js(env, &e)),
            },
        )
    }

    /// Flushes and stops; resolves after the events were emitted, then releases the event
    /// queue (later events are dropped: there is no one left to tell). Not after a failed
    /// close: the meter keeps its store, and the close() again that flushes again emits.
    #[napi(ts_return_type = "Promise<NativeFlushSummary>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeFlushSummary>> {
        let m = self.meter()?;
        let events = self.events.clone();
        env.spawn_future_with_callback(
            async move {
                let r = m.close().await;
                drop_elsewhere(Some(m)); // as in flush()
                barrier(&events.slot).await;
                if r.is_ok() {
                    let released = events
                        .slot
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    drop(released);
                }
                Ok(r)
            },
            |env, r| match r {
                Ok(s) => Ok(NativeFlushSummary::from(s)),
                Err(e) => Err(crate::errors::to_js(env, &e)),
            },
        )
    }
}

/// Parsed constructor options.
pub struct MeterOptions {
    pub path: Option<String>,
    pub product_code: Option<String>,
    pub mode: MeterMode,
    pub durability: Durability,
    pub grace: Option<Duration>,
    pub zero_fill: bool,
    /// `None`: the core's default (every commit fsynced).
    pub power_loss_safe: Option<bool>,
    /// Seconds. `None`: the core's default; zero: no background flusher.
    pub flush_interval_secs: Option<f64>,
    /// The fleet store (PostgreSQL) instead of `path`.
    pub database_url: Option<String>,
    /// The fleet store's name for this writer.
    pub replica_id: Option<String>,
    /// The fleet store: replicas sending at a time per product.
    pub fleet_senders: Option<u32>,
    /// The fleet store: how long a sender's claim lasts.
    pub fleet_lease: Option<Duration>,
    /// The fleet store's first hour (epoch seconds): the cut-over from a SQLite meter.
    pub start_hour: Option<i64>,
}

/// A parsed `record()` input.
pub struct MeterRecord {
    pub customer: Option<Customer>,
    pub dimension: String,
    pub quantity: i64,
    pub at: Option<DateTime>,
    pub allocations: Option<Vec<marketplace_metering::types::UsageAllocation>>,
}

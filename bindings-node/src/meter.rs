// SPDX-License-Identifier: Apache-2.0
// NativeMeter and ManualClock: the core's UsageMeter and ManualClock behind promise-returning methods.

//! The usage meter's native half. The JS class `UsageMeter` (index.js) owns one
//! [`NativeMeter`] and is the `EventEmitter`; everything here is translation and threads.
//!
//! **Never on the JS thread.** A `record()` that commits to SQLite (`durable`, `group`) runs
//! on the runtime's blocking pool (not libuv's four-thread pool: `group` callers wait for a
//! shared commit, and many of them must be able to wait at once). `status()`,
//! `deadLetters()` and `registerCustomer()` touch SQLite too and go there as well; `flush()`
//! and `close()` are the core's futures on the runtime. Only a `record()` the core merely
//! buffers in memory (the in-memory store, or `durability: "memory"`) runs inline: that is
//! a hash-map insert, and it keeps the fast path fast.
//!
//! **Events.** The core calls its callback on whatever thread caused the event (a blocking
//! pool thread running `record()`, the group committer, a runtime worker flushing). The
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use marketplace_metering::meter::{
    Customer, DeadLetter, Durability, FlushSummary, ManualClock, MeterConfig, MeterEvent,
    MeterEventKind, MeterMode, MeterStatus, Store,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::UsageMeter;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::client::NativeClient;
use crate::convert::{self, ConvError};

/// What crosses the event queue: a meter event, or a barrier (`kind` absent).
#[napi(object)]
#[derive(Default)]
pub struct NativeMeterEvent {
    /// `acked`, `dead_lettered`, `late_event`, `window_alarm`, `expired`; absent for a barrier.
    pub kind: Option<String>,
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: Option<String>,
    /// Epoch seconds.
    pub hour: Option<f64>,
    pub quantity: Option<f64>,
    pub metering_record_id: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Epoch seconds.
    pub counted_in_hour: Option<f64>,
    /// Epoch seconds.
    pub window_end: Option<f64>,
}

type EventFn = ThreadsafeFunction<NativeMeterEvent, (), NativeMeterEvent, Status, false, true, 0>;
type EventSlot = Arc<RwLock<Option<Arc<EventFn>>>>;

fn customer_fields(c: &Customer, ev: &mut NativeMeterEvent) {
    let (id, acct, lic) = c.parts();
    ev.customer_identifier = id.map(str::to_owned);
    ev.customer_aws_account_id = acct.map(str::to_owned);
    ev.license_arn = lic.map(str::to_owned);
}

fn to_native_event(e: MeterEvent) -> NativeMeterEvent {
    let mut ev = NativeMeterEvent {
        dimension: Some(e.dimension),
        hour: Some(e.hour as f64),
        quantity: Some(e.quantity as f64),
        ..Default::default()
    };
    customer_fields(&e.customer, &mut ev);
    ev.kind = Some(e.kind.as_str().to_owned());
    match e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            ev.metering_record_id = Some(metering_record_id);
        }
        MeterEventKind::DeadLettered { reason, message } => {
            ev.reason = Some(reason);
            ev.message = Some(message);
        }
        MeterEventKind::LateEvent { counted_in_hour } => {
            ev.counted_in_hour = Some(counted_in_hour as f64);
        }
        MeterEventKind::WindowAlarm { window_end } => {
            ev.window_end = Some(window_end as f64);
        }
        // A kind added to the core still reaches the catch-all `"event"` listeners.
        _ => {}
    }
    ev
}

/// Waits until every event queued so far has been emitted on the JS thread.
async fn barrier(slot: &EventSlot) {
    let tsfn = {
        let g = slot.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().cloned()
    };
    if let Some(t) = tsfn {
        // Closing (worker exiting) or a throwing listener: nothing left to wait for.
        let _ = t.call_async_catch(NativeMeterEvent::default()).await;
    }
}

/// Bucket counts, as the JS layer reads them.
#[napi(object)]
pub struct NativeMeterStatus {
    pub pending: f64,
    pub sealed: f64,
    pub acked: f64,
    pub dead_lettered: f64,
    pub expired: f64,
    /// Epoch seconds.
    pub oldest_unsent_hour: Option<f64>,
}

impl From<MeterStatus> for NativeMeterStatus {
    fn from(s: MeterStatus) -> Self {
        NativeMeterStatus {
            pending: s.pending as f64,
            sealed: s.sealed as f64,
            acked: s.acked as f64,
            dead_lettered: s.dead_lettered as f64,
            expired: s.expired as f64,
            oldest_unsent_hour: s.oldest_unsent_hour.map(|h| h as f64),
        }
    }
}

/// What one flush did, as the JS layer reads it.
#[napi(object)]
pub struct NativeFlushSummary {
    pub sealed: u32,
    pub sent: u32,
    pub calls: u32,
    pub acked: u32,
    pub dead_lettered: u32,
    pub expired: u32,
    pub resent_unprocessed: u32,
    pub deferred: u32,
    /// The error that stopped the flush early, as the `nativeError` JSON of a thrown error.
    pub interrupted: Option<String>,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<FlushSummary> for NativeFlushSummary {
    fn from(s: FlushSummary) -> Self {
        NativeFlushSummary {
            sealed: count(s.sealed),
            sent: count(s.sent),
            calls: count(s.calls),
            acked: count(s.acked),
            dead_lettered: count(s.dead_lettered),
            expired: count(s.expired),
            resent_unprocessed: count(s.resent_unprocessed),
            deferred: count(s.deferred),
            interrupted: s.interrupted.as_ref().map(crate::errors::detail_json),
        }
    }
}

/// A dead letter, as the JS layer reads it.
#[napi(object)]
pub struct NativeDeadLetter {
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: String,
    /// Epoch seconds.
    pub hour: f64,
    pub quantity: f64,
    pub reason: String,
    pub message: String,
    /// Epoch seconds.
    pub at: f64,
}

impl From<DeadLetter> for NativeDeadLetter {
    fn from(d: DeadLetter) -> Self {
        let mut ev = NativeMeterEvent::default();
        customer_fields(&d.customer, &mut ev);
        NativeDeadLetter {
            customer_identifier: ev.customer_identifier,
            customer_aws_account_id: ev.customer_aws_account_id,
            license_arn: ev.license_arn,
            dimension: d.dimension,
            hour: d.hour as f64,
            quantity: d.quantity as f64,
            reason: d.reason,
            message: d.message,
            at: d.at as f64,
        }
    }
}

/// A clock set by hand, for tests and examples: the meter's hours seal when the clock is
/// moved, not when real time passes. The meter reads it natively (no JS call per read).
///
/// ### Example
/// ```js
/// const clock = new ManualClock(new Date('2026-11-26T10:00:00Z'))
/// clock.advance(3600)
/// clock.now() // 2026-11-26T11:00:00.000Z
/// ```
#[napi(js_name = "ManualClock")]
pub struct JsManualClock {
    inner: ManualClock,
}

fn epoch_secs(env: &Env, at: Option<Unknown<'_>>, field: &'static str) -> Result<i64> {
    match at {
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
        Some(v) => convert::meter_time(v, field)
            .map(|t| t.secs())
            .map_err(|e| e.into_napi(env)),
    }
}

#[napi]
impl JsManualClock {
    /// A clock reading `at` (a `Date`, epoch seconds or an ISO-8601 string); default: now.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        #[napi(ts_arg_type = "Date | number | string")] at: Option<Unknown<'_>>,
    ) -> Result<Self> {
        Ok(JsManualClock {
            inner: ManualClock::new(epoch_secs(&env, at, "at")?),
        })
    }

    /// Sets the clock to `at` (a `Date`, epoch seconds or an ISO-8601 string).
    #[napi]
    pub fn set(
        &self,
        env: Env,
        #[napi(ts_arg_type = "Date | number | string")] at: Unknown<'_>,
    ) -> Result<()> {
        self.inner.set(epoch_secs(&env, Some(at), "at")?);
        Ok(())
    }

    /// Moves the clock by `seconds` (an integer; negative moves it back).
    #[napi]
    pub fn advance(&self, env: Env, seconds: Unknown<'_>) -> Result<()> {
        let s = convert::meter_seconds_int(seconds, "seconds").map_err(|e| e.into_napi(&env))?;
        self.inner.advance(s);
        Ok(())
    }

    /// The time the clock reads.
    #[napi(ts_return_type = "Date")]
    pub fn now<'env>(&self, env: &'env Env) -> Result<napi::JsDate<'env>> {
        env.create_date(self.inner.now() as f64 * 1000.0)
    }
}

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
        if let Some(m) = self.meter.take() {
            // The core meter's drop may join its committer and write to SQLite.
            let _ = std::thread::Builder::new()
                .name("mm-meter-drop".into())
                .spawn(move || drop(m));
        }
    }
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

#[napi]
impl NativeMeter {
    /// Opens the store and starts the meter. `options` are read by [`convert::meter_options`]
    /// (`clock` is checked by the JS layer and passed apart); `on_event` receives every event
    /// and the barriers.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        client: &NativeClient,
        options: Unknown<'_>,
        clock: Option<&JsManualClock>,
        #[napi(ts_arg_type = "(event: NativeMeterEvent) => void")] on_event: Function<
            '_,
            NativeMeterEvent,
            (),
        >,
    ) -> Result<Self> {
        let o = convert::meter_options(options).map_err(|e| e.into_napi(&env))?;
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
            .store(match (&o.path, &o.database_url) {
                (_, Some(url)) => Store::postgres(url),
                (Some(p), None) => Store::sqlite(p),
                (None, None) => Store::memory(),
            })
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
        if let Some(f) = o.flush_interval {
            b = b.flush_interval(f);
        }
        if let Some(c) = clock {
            b = b.clock(c.inner.clock());
        }
        if let Some(id) = &o.replica_id {
            b = b.replica_id(id);
        }
        let config = b.build().map_err(|e| {
            crate::errors::to_js(
                &env,
                &marketplace_metering::Error::invalid_input(e.field(), "is required"),
            )
        })?;
        let meter = UsageMeter::new(config).map_err(|e| crate::errors::to_js(&env, &e))?;
        Ok(NativeMeter {
            meter: Some(meter),
            events,
            // The core only buffers these in memory (see `UsageMeter::record`).
            inline: (o.path.is_none() && o.database_url.is_none())
                || o.durability == Durability::Memory,
            meter_usage: o.mode == MeterMode::MeterUsage,
        })
    }

    /// The core meter (only `Drop` takes it out, so it is always there while JS can call).
    fn meter(&self) -> Result<UsageMeter> {
        self.meter
            .clone()
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
        let before = self.events.count();
        self.meter()?
            .record(r.customer, &r.dimension, r.quantity, r.at, r.allocations)
            .map_err(|e| crate::errors::to_js(&env, &e))?;
        Ok(self.events.count() != before)
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
    /// queue (later events are dropped: there is no one left to tell).
    #[napi(ts_return_type = "Promise<NativeFlushSummary>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeFlushSummary>> {
        let m = self.meter()?;
        let events = self.events.clone();
        env.spawn_future_with_callback(
            async move {
                let r = m.close().await;
                barrier(&events.slot).await;
                let released = events
                    .slot
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                drop(released);
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
    /// `None`: the core's default; zero: no background flusher.
    pub flush_interval: Option<Duration>,
    /// The fleet store (PostgreSQL) instead of `path`.
    pub database_url: Option<String>,
    /// The fleet store's name for this writer.
    pub replica_id: Option<String>,
}

/// A parsed `record()` input.
pub struct MeterRecord {
    pub customer: Customer,
    pub dimension: String,
    pub quantity: i64,
    pub at: Option<DateTime>,
    pub allocations: Option<Vec<marketplace_metering::types::UsageAllocation>>,
}

// SPDX-License-Identifier: Apache-2.0
// `NativeMeter`: the core's usage meter. Every rule (sealing, durability, one owner per store,
// clock steps, dead letters) is the core's; this only renames fields to the Kotlin arguments'.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{
    self, Customer, DeadLetter, FlushSummary, MeterConfig, MeterEvent, MeterEventKind, MeterMode,
    MeterStatus, RequeueFilter, Store,
};

use crate::client::NativeClient;
use crate::error::{invalid, invalid_state, NativeError};
use crate::model::{self, UsageAllocation};

type R<T> = Result<T, NativeError>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs_f64().ceil() as u64).unwrap_or(i64::MAX),
    }
}

// -------------------------------------------------------------------- records

/// What happened to a bucket (`kind`: `acked`, `dead_lettered`, `late_event`, `window_alarm`,
/// `expired`), with the bucket's customer, dimension, hour (epoch seconds) and quantity.
#[derive(Clone, Debug, uniffi::Record)]
pub struct MeterEventRecord {
    pub kind: String,
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: String,
    pub hour: i64,
    pub quantity: i64,
    /// `acked`: the service's record id.
    pub metering_record_id: Option<String>,
    /// `dead_lettered`: the record's Status or the error code; `expired`: `OutcomeUnknown`
    /// after a send that got no answer.
    pub reason: Option<String>,
    /// `dead_lettered`, and `expired` with a reason: details.
    pub detail: Option<String>,
    /// `late_event`: the hour the quantity was counted in.
    pub counted_in_hour: Option<i64>,
    /// `window_alarm`: when the service stops accepting the bucket.
    pub window_end: Option<i64>,
    /// The fleet store: the replica id of the meter that emitted the event.
    pub replica_id: Option<String>,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct MeterStatusRecord {
    pub pending: u64,
    pub sealed: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub oldest_unsent_hour: Option<i64>,
    /// The fleet store: this meter's replica id.
    pub replica_id: Option<String>,
    /// When this meter's last flush ended (epoch seconds).
    pub last_flush_at: Option<i64>,
    /// `"Code: message"` of what failed or stopped this meter's last flush.
    pub last_flush_error: Option<String>,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct FlushSummaryRecord {
    pub sealed: u64,
    pub sent: u64,
    pub calls: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub resent_unprocessed: u64,
    pub deferred: u64,
    /// The retryable failure (throttling, transport) that stopped the flush early.
    pub interrupted: Option<NativeErrorDetail>,
}

/// A failure reported inside a result rather than raised.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NativeErrorDetail {
    pub code: String,
    pub detail: String,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct DeadLetterRecord {
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: String,
    pub hour: i64,
    pub quantity: i64,
    pub reason: String,
    pub detail: String,
    pub at: i64,
}

/// The meter's settings; `None` is the core's default.
#[derive(Clone, Default, uniffi::Record)]
pub struct MeterOptions {
    /// The SQLite store's file; `None` (and no `database_url`): in memory (tests).
    pub path: Option<String>,
    /// The fleet store: PostgreSQL shared by every replica (`postgresql://…`).
    pub database_url: Option<String>,
    /// This replica's name in the fleet store (default: host name and process id).
    pub replica_id: Option<String>,
    /// The fleet store: replicas sending at a time per product (default 1).
    pub fleet_senders: Option<u32>,
    /// The fleet store: how long a sender's claim lasts (default 2 minutes).
    pub fleet_lease_millis: Option<i64>,
    /// The fleet store's first hour (epoch seconds): the cut-over from a SQLite meter.
    pub start_hour: Option<i64>,
    pub product_code: Option<String>,
    /// `batch` (BatchMeterUsage, the default) or `meter_usage`.
    pub mode: Option<String>,
    /// `durable` (default), `group` or `memory`.
    pub durability: Option<String>,
    pub grace_millis: Option<i64>,
    pub zero_fill: Option<bool>,
    /// `Some(0)`: no background flusher.
    pub flush_interval_millis: Option<i64>,
    pub clock: Option<Arc<NativeManualClock>>,
    /// The SQLite store: `Some(false)` commits without an fsync each (the core's
    /// `power_loss_safe`).
    pub power_loss_safe: Option<bool>,
}

fn parts(c: Option<&Customer>) -> (Option<String>, Option<String>, Option<String>) {
    let (id, acct, lic) = Customer::parts_of(c);
    (
        id.map(str::to_owned),
        acct.map(str::to_owned),
        lic.map(str::to_owned),
    )
}

fn event_record(e: &MeterEvent) -> MeterEventRecord {
    let (customer_identifier, customer_aws_account_id, license_arn) = parts(e.customer.as_ref());
    let mut r = MeterEventRecord {
        kind: e.kind.as_str().to_owned(),
        customer_identifier,
        customer_aws_account_id,
        license_arn,
        dimension: e.dimension.clone(),
        hour: e.hour,
        quantity: e.quantity,
        metering_record_id: None,
        reason: e.kind.reason().map(str::to_owned),
        detail: e.kind.message().map(str::to_owned),
        counted_in_hour: None,
        window_end: None,
        replica_id: e.replica_id.clone(),
    };
    match &e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            r.metering_record_id = Some(metering_record_id.clone())
        }
        MeterEventKind::LateEvent { counted_in_hour } => r.counted_in_hour = Some(*counted_in_hour),
        MeterEventKind::WindowAlarm { window_end } => r.window_end = Some(*window_end),
        _ => {}
    }
    r
}

fn status_record(s: &MeterStatus) -> MeterStatusRecord {
    MeterStatusRecord {
        pending: s.pending,
        sealed: s.sealed,
        acked: s.acked,
        dead_lettered: s.dead_lettered,
        expired: s.expired,
        oldest_unsent_hour: s.oldest_unsent_hour,
        replica_id: s.replica_id.clone(),
        last_flush_at: s.last_flush_at,
        last_flush_error: s.last_flush_error.clone(),
    }
}

fn summary_record(s: &FlushSummary) -> FlushSummaryRecord {
    FlushSummaryRecord {
        sealed: s.sealed as u64,
        sent: s.sent as u64,
        calls: s.calls as u64,
        acked: s.acked as u64,
        dead_lettered: s.dead_lettered as u64,
        expired: s.expired as u64,
        resent_unprocessed: s.resent_unprocessed as u64,
        deferred: s.deferred as u64,
        interrupted: s.interrupted.as_ref().map(|e| NativeErrorDetail {
            code: e.code().to_owned(),
            detail: e.message().to_owned(),
        }),
    }
}

fn dead_letter_record(l: &DeadLetter) -> DeadLetterRecord {
    let (customer_identifier, customer_aws_account_id, license_arn) = parts(l.customer.as_ref());
    DeadLetterRecord {
        customer_identifier,
        customer_aws_account_id,
        license_arn,
        dimension: l.dimension.clone(),
        hour: l.hour,
        quantity: l.quantity,
        reason: l.reason.clone(),
        detail: l.message.clone(),
        at: l.at,
    }
}

// ------------------------------------------------------------------ listener

/// Receives the meter's events, on the meter's own threads (a flush's, the background
/// flusher's): it must return quickly and must not call the meter back.
#[uniffi::export(with_foreign)]
pub trait MeterListener: Send + Sync {
    fn on_event(&self, event: MeterEventRecord);
}

// --------------------------------------------------------------- ManualClock

/// A clock set by hand, for tests: hours seal when the test moves it.
#[derive(uniffi::Object)]
pub struct NativeManualClock {
    inner: meter::ManualClock,
}

#[uniffi::export]
impl NativeManualClock {
    #[uniffi::constructor]
    pub fn new(epoch_secs: i64) -> Arc<Self> {
        Arc::new(NativeManualClock {
            inner: meter::ManualClock::new(epoch_secs),
        })
    }
    pub fn now(&self) -> i64 {
        self.inner.now()
    }
    pub fn set(&self, epoch_secs: i64) {
        self.inner.set(epoch_secs)
    }
    pub fn advance(&self, secs: i64) {
        self.inner.advance(secs)
    }
}

// --------------------------------------------------------------------- meter

/// Every live meter, so that `native_shutdown` (a JVM shutdown hook) writes what memory
/// durability buffered before the runtime stops.
static METERS: Mutex<Vec<Weak<Mutex<Option<meter::UsageMeter>>>>> = Mutex::new(Vec::new());

/// Writes every live meter's memory buffer to its store, leaving the meters open: the JVM
/// runs shutdown hooks at once, in no order, and the application's own hook may still be
/// recording and then closing (and flushing) a meter. A meter its application never closes
/// ends with the process, its buffer written.
///
/// Each meter on a thread of its own, all within 10 s, as the other faces' exit hooks
/// (`meter::exit_writes`): one at a time, a fleet store that did not answer held up the
/// meters after it, and the JVM's exit with them, until a container's stop timeout killed
/// it and their buffers were lost.
pub fn write_all_buffers() {
    let writes = lock(&METERS)
        .iter()
        .filter_map(Weak::upgrade)
        .map(|cell| {
            Box::new(move || {
                // A clone, so a write that waits on the store does not hold the cell.
                let m = lock(&cell).clone();
                if let Some(m) = m {
                    m.write_buffered_at_exit();
                }
            }) as meter::ExitWrite
        })
        .collect();
    if let Some(why) = meter::exit_writes(writes) {
        meter::warn_exit_writes(
            why,
            " (close the meter before the JVM exits to wait for it)",
        );
    }
}

#[derive(uniffi::Object)]
pub struct NativeMeter {
    live: Arc<Mutex<Option<meter::UsageMeter>>>,
    /// The meter while its first close runs, so that a second close waits for it.
    closing: Mutex<Option<meter::UsageMeter>>,
    closed: Condvar,
    mode: MeterMode,
}

/// Ends a close: wakes the closes waiting for it, also when the close panics.
struct ClosingDone<'a>(&'a NativeMeter);

impl Drop for ClosingDone<'_> {
    fn drop(&mut self) {
        *lock(&self.0.closing) = None;
        self.0.closed.notify_all();
    }
}

fn millis(field: &str, v: Option<i64>, zero_ok: bool) -> R<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(ms) if ms > 0 || (zero_ok && ms == 0) => Ok(Some(Duration::from_millis(ms as u64))),
        Some(ms) => Err(invalid(
            field,
            &format!("must be a positive duration, got {ms} ms"),
        )),
    }
}

impl NativeMeter {
    fn get(&self) -> R<meter::UsageMeter> {
        match &*lock(&self.live) {
            Some(m) => Ok(m.clone()),
            None => Err(invalid_state("the meter is closed")),
        }
    }

    fn customer(
        &self,
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
    ) -> R<Option<Customer>> {
        Customer::from_parts(
            customer_identifier,
            customer_aws_account_id,
            license_arn,
            self.mode != MeterMode::MeterUsage,
        )
        .map_err(NativeError::from)
    }
}

#[uniffi::export]
impl NativeMeter {
    /// Opens (or creates) the store and starts the background flusher. A second meter on the
    /// same store file, in this process or another, fails at once naming who holds it.
    #[uniffi::constructor]
    pub fn new(
        client: Arc<NativeClient>,
        options: MeterOptions,
        listener: Option<Arc<dyn MeterListener>>,
    ) -> R<Arc<Self>> {
        let mut b = MeterConfig::builder().client(client.core().clone());
        b = b.store(
            Store::from_options(options.path.map(Into::into), options.database_url)
                .map_err(NativeError::from)?,
        );
        if let Some(id) = options.replica_id {
            b = b.replica_id(id);
        }
        if let Some(n) = options.fleet_senders {
            b = b.fleet_senders(n);
        }
        if let Some(l) = millis("fleetLease", options.fleet_lease_millis, true)? {
            b = b.fleet_lease(l);
        }
        if let Some(t) = options.start_hour {
            b = b.start_hour(t);
        }
        if let Some(code) = options.product_code {
            b = b.product_code(code);
        }
        let mode: MeterMode = match options.mode {
            Some(m) => m.parse().map_err(NativeError::from)?,
            None => MeterMode::default(),
        };
        b = b.mode(mode);
        if let Some(d) = options.durability {
            b = b.durability(d.parse().map_err(NativeError::from)?);
        }
        if let Some(g) = millis("grace", options.grace_millis, true)? {
            b = b.grace(g);
        }
        if let Some(z) = options.zero_fill {
            b = b.zero_fill(z);
        }
        if let Some(safe) = options.power_loss_safe {
            b = b.power_loss_safe(safe);
        }
        if let Some(f) = millis("flushInterval", options.flush_interval_millis, true)? {
            b = b.flush_interval(f);
        }
        if let Some(c) = options.clock {
            b = b.clock(c.inner.clock());
        }
        if let Some(l) = listener {
            b = b.on_event(move |e| l.on_event(event_record(&e)));
        }
        let config = b.build()?;
        let core = meter::UsageMeter::new(config).map_err(|e| {
            // The core names its settings; this face's options are camelCase.
            match e.field() {
                Some("flush_interval") => invalid("flushInterval", e.problem()),
                Some("fleet_lease") => invalid("fleetLease", e.problem()),
                _ => NativeError::from(e),
            }
        })?;
        let live = Arc::new(Mutex::new(Some(core)));
        {
            let mut all = lock(&METERS);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&live));
        }
        Ok(Arc::new(NativeMeter {
            live,
            closing: Mutex::new(None),
            closed: Condvar::new(),
            mode,
        }))
    }

    /// Adds `quantity` of `dimension` used by a customer to its hour's bucket; returns when
    /// the event is as durable as the meter's durability says.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        dimension: Option<String>,
        quantity: Option<i64>,
        timestamp: Option<SystemTime>,
        allocations: Option<Vec<Option<UsageAllocation>>>,
    ) -> R<()> {
        let customer = self.customer(customer_identifier, customer_aws_account_id, license_arn)?;
        let dimension = dimension.ok_or_else(|| invalid("dimension", "is required"))?;
        let quantity = quantity.ok_or_else(|| invalid("quantity", "is required"))?;
        let at = timestamp.map(model::timestamp);
        let allocs = match allocations {
            Some(a) => Some(model::allocations(&a, "allocations")?),
            None => None,
        };
        let m = self.get()?;
        m.record(customer, &dimension, quantity, at, allocs)
            .map_err(NativeError::from)
    }

    /// Registers a customer for zero-fill: each of `dimensions` is reported every hour.
    pub fn register_customer(
        &self,
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        dimensions: Option<Vec<Option<String>>>,
    ) -> R<()> {
        let customer = self.customer(customer_identifier, customer_aws_account_id, license_arn)?;
        let dims = dimensions.ok_or_else(|| invalid("dimensions", "is required"))?;
        let mut out = Vec::with_capacity(dims.len());
        for (i, d) in dims.iter().enumerate() {
            out.push(
                d.as_deref()
                    .ok_or_else(|| invalid(format!("dimensions[{i}]"), "is required"))?,
            );
        }
        self.get()?
            .register_customer(customer, &out)
            .map_err(NativeError::from)
    }

    /// Stops zero-filling a customer: its registrations for `dimensions` (every dimension
    /// when `None`) are removed at once. Returns how many were removed.
    pub fn unregister_customer(
        &self,
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        dimensions: Option<Vec<Option<String>>>,
    ) -> R<u64> {
        let customer = self.customer(customer_identifier, customer_aws_account_id, license_arn)?;
        let mut out = Vec::new();
        for (i, d) in dimensions.iter().flatten().enumerate() {
            out.push(
                d.as_deref()
                    .ok_or_else(|| invalid(format!("dimensions[{i}]"), "is required"))?,
            );
        }
        let dims = dimensions.as_ref().map(|_| out.as_slice());
        let n = self
            .get()?
            .unregister_customer(customer, dims)
            .map_err(NativeError::from)?;
        Ok(n as u64)
    }

    /// Seals what may be sealed and sends every sealed bucket now (blocking).
    pub fn flush(&self) -> R<FlushSummaryRecord> {
        let s = self.get()?.flush_blocking()?;
        Ok(summary_record(&s))
    }

    /// [`NativeMeter::flush`], ended once call number `call` is interrupted (its Java thread's
    /// `interrupt()`, passed on by `mm_jvm_direct_interrupt`): `None`. The flush stops there;
    /// what it had not sent stays sealed for the next flush (a flush dropped at any point
    /// keeps what it took), and a flush already done keeps its summary.
    pub fn flush_until(&self, call: u64) -> R<Option<FlushSummaryRecord>> {
        let m = self.get()?;
        let stop = crate::direct::interrupt_of(call);
        let r = crate::client::blocking_until(m.flush(), Some(&stop));
        crate::direct::mm_jvm_direct_forget(call);
        Ok(r?.map(|s| summary_record(&s)))
    }

    /// Refuses `call` on the calling thread when it runs this meter's listener (the core's
    /// check, as the blocking calls make it): a flush there that runs on another thread
    /// would wait for the flush delivering the event, for good.
    pub fn refuse_in_listener(&self, call: String) -> R<()> {
        Ok(self.get()?.refuse_in_event_callback(&call)?)
    }

    /// `flush()` on the core's runtime (the wrapper calls `refuse_in_listener` first). A
    /// cancelled coroutine or future drops this future, which stops the flush, as an
    /// interrupt stops a blocking one: what it had not settled is sent by the next flush.
    pub async fn flush_async(&self) -> R<FlushSummaryRecord> {
        let m = self.get()?;
        let handle = marketplace_metering::runtime::AbortOnDrop(
            marketplace_metering::runtime::spawn_call(async move { m.flush().await })?,
        );
        match handle.await {
            Ok(r) => Ok(summary_record(&r?)),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(invalid_state(
                "the flush was cancelled: the runtime shut down",
            )),
        }
    }

    /// Stops the background flusher and flushes what may be flushed. Later calls fail.
    pub fn close_and_flush(&self) -> R<FlushSummaryRecord> {
        self.close_once()?
            .ok_or_else(|| invalid_state("the meter is closed"))
    }

    /// [`close_and_flush`](Self::close_and_flush) the first time; `None` once closed
    /// (`Closeable.close()` does nothing then). An error of the final flush is returned, and
    /// the meter stays this store's: a later close flushes again (the core's rule), instead
    /// of returning at once with the hours unsent. Refused from the meter's own listener,
    /// and the meter stays open.
    ///
    /// Of two threads closing at once, one closes and the other waits until it is done, then
    /// closes again if that close failed: a shutdown hook's `close()` that returned while the
    /// application's own was still flushing would let the JVM halt in the middle of the
    /// final flush.
    pub fn close_once(&self) -> R<Option<FlushSummaryRecord>> {
        let m = loop {
            let mut live = lock(&self.live);
            if let Some(m) = live.as_ref() {
                m.refuse_in_event_callback("close()")?;
                let m = m.clone();
                *lock(&self.closing) = Some(m.clone());
                *live = None;
                break m;
            }
            drop(live);
            let mut closing = lock(&self.closing);
            if closing.is_none() {
                return Ok(None);
            }
            if let Some(m) = closing.as_ref() {
                // From the listener, the close running it would never end.
                m.refuse_in_event_callback("close()")?;
            }
            while closing.is_some() {
                closing = self.closed.wait(closing).unwrap_or_else(|p| p.into_inner());
            }
        };
        let done = ClosingDone(self);
        let s = m.close_blocking();
        if s.is_err() {
            // Put back and the close ended in one step (the order the close above takes
            // them in): a close starting in between would otherwise have its own `closing`
            // cleared by this one's end, and a waiting close return while it flushes.
            let mut live = lock(&self.live);
            *live = Some(m);
            *lock(&self.closing) = None;
            self.closed.notify_all();
            std::mem::forget(done);
        } else {
            drop(m);
            drop(done);
        }
        Ok(Some(summary_record(&s?)))
    }

    /// Bucket counts per state.
    pub fn status(&self) -> R<MeterStatusRecord> {
        Ok(status_record(&self.get()?.status()?))
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> R<Vec<DeadLetterRecord>> {
        Ok(self
            .get()?
            .dead_letters()?
            .iter()
            .map(dead_letter_record)
            .collect())
    }

    /// Sends chosen dead letters again (those still inside the service's window); every
    /// argument `None` matches all. Returns how many were requeued.
    pub fn requeue(
        &self,
        reason: Option<String>,
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        hour: Option<SystemTime>,
    ) -> R<u64> {
        let filter = RequeueFilter::from_parts(
            reason,
            customer_identifier,
            customer_aws_account_id,
            license_arn,
            hour.map(epoch_secs),
        )
        .map_err(NativeError::from)?;
        Ok(self.get()?.requeue(&filter)? as u64)
    }
}

// SPDX-License-Identifier: Apache-2.0
// The usage meter (mm_meter_*): the handle, its life cycle, flush, close and requeue.

//! `mm_meter`: the core's [`UsageMeter`] behind an opaque handle.
//!
//! Translation only: the meter's rules (buckets, sealing, sending, dead letters) are the
//! core's. What this module adds is what C needs:
//!
//! * an **event callback** (`mm_meter_event_callback`): each core `MeterEvent` is turned into
//!   an `mm_meter_event` whose strings live for the duration of the call. The core calls it on
//!   whichever thread caused the event (a `mm_meter_record` caller, the group-commit thread, a
//!   runtime worker running a background flush, or the thread in `mm_meter_flush`), so the
//!   callback must be thread-safe. The conversion runs inside `catch_unwind`, so nothing
//!   unwinds into the core's threads.
//! * a **callback gate**: `mm_meter_free` waits for callbacks in flight and no callback starts
//!   after it returns — even when a background flush still holds the core meter — so the
//!   caller may free its `user_data` (the C++ wrapper frees its `std::function`) right after.
//! * `mm_clock`, the core's `ManualClock`, so C tests can seal hours without waiting.
//!
//! Files: `options.rs` (`mm_meter_config`), `record.rs` (the `mm_usage_event` builder,
//! `mm_meter_record`, `mm_meter_register_customer`), `requeue.rs` (the `mm_requeue_filter`
//! builder, `mm_meter_requeue`), `results.rs` (`mm_flush_summary`,
//! `mm_meter_status`, `mm_dead_letters`), `callback.rs` (`mm_meter_event`, the gate),
//! `clock.rs` (`mm_clock`); this one holds the handle, its life cycle and the calls that act on
//! the whole meter (flush, close, status).

mod callback;
mod clock;
mod options;
mod record;
mod requeue;
mod results;

pub use callback::*;
pub use clock::*;
pub use options::*;
pub use record::*;
pub use requeue::*;
pub use results::*;

use std::sync::{Arc, Once, PoisonError, RwLock, Weak};

use marketplace_metering::meter::{MeterConfig, MeterMode, Store};
use marketplace_metering::runtime::PerProcess;
use marketplace_metering::{Error, UsageMeter};

use crate::client::mm_client;
use crate::error::{mm_error, mm_status, ErrorData};
use crate::ffi::{self, Castable};

/// The core meter of a handle: `None` once `mm_meter_free` has taken it.
type Cell = RwLock<Option<UsageMeter>>;

/// What an `mm_meter` holds.
pub struct MeterHandle {
    meter: Arc<Cell>,
    mode: MeterMode,
    gate: Arc<Gate>,
}

impl MeterHandle {
    /// The core meter, unless the handle is being freed.
    fn live(&self) -> Option<UsageMeter> {
        self.meter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops the core meter (joins the group committer, writes buffered events, whose late
    /// events may still reach the callback), then closes the gate: a background flush that
    /// still holds the core meter can no longer call back.
    ///
    /// Through a shared reference, before the handle itself is freed: a callback running
    /// meanwhile may call `mm_meter_get_status` and others on this handle, which then find
    /// no meter (`MM_STATUS_INVALID_STATE`) instead of a dropped one. In a child after
    /// `fork()` a parent thread may have held the lock: the meter is then left alone (the
    /// core's drop touches nothing there anyway).
    fn release(&self) {
        let meter = if self.gate.forked() {
            self.meter.try_write().ok().and_then(|mut m| m.take())
        } else {
            self.meter
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        };
        drop(meter);
        self.gate.close();
    }
}

impl Drop for MeterHandle {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every meter of this process not yet freed, for the exit hook. One process's list: a child
/// forked while a parent's thread held it (making or freeing a meter) starts a list of its
/// own, where its meters are written at its exit. The parent's meters it inherited are not
/// listed there (the core would skip them anyway).
pub(crate) static LIVE: PerProcess<Vec<Weak<Cell>>> = PerProcess::new();
static EXIT_HOOK: Once = Once::new();

/// Lists a new meter for the exit hook, registering the hook with the first.
fn list_for_exit(cell: &Arc<Cell>) {
    extern "C" {
        fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
    }
    // A child forked after the first meter inherits the registration with the hook.
    EXIT_HOOK.call_once(|| {
        // SAFETY: registers a function that takes no argument and never unwinds.
        unsafe { atexit(write_buffers_at_exit) };
    });
    let mut live = LIVE.lock();
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(cell));
}

/// At `exit()` (a return from `main`): writes what `MM_METER_DURABILITY_MEMORY` buffered in
/// every meter not yet freed to its store, as the Python and JVM faces do at exit, so that a
/// program that ends without `mm_meter_free` keeps it (a file store sends it after a
/// restart). Meters stay open: another exit handler may still use them. A forked child's
/// own meters are written too; the parent's it inherited are not (not on its list).
///
/// On a thread of its own: glibc has destroyed the exiting thread's thread-locals before it
/// runs `atexit` hooks, and the fleet store's write runs on the runtime, whose entry needs
/// them.
extern "C" fn write_buffers_at_exit() {
    let cells: Vec<_> =
        match std::panic::catch_unwind(|| LIVE.lock().iter().filter_map(Weak::upgrade).collect()) {
            Ok(cells) => cells,
            Err(_) => return,
        };
    // Each on a thread of the core's, within its time (see `exit_writes`).
    let writes = cells
        .into_iter()
        .map(|cell| {
            Box::new(move || {
                // A clone, so a write that waits on the store does not hold the cell. Each
                // listed cell is this process's own (see `LIVE`).
                let meter = cell.read().unwrap_or_else(PoisonError::into_inner).clone();
                if let Some(m) = meter {
                    m.write_buffered_at_exit();
                }
            }) as marketplace_metering::meter::ExitWrite
        })
        .collect();
    let Some(why) = marketplace_metering::meter::exit_writes(writes) else {
        return;
    };
    marketplace_metering::meter::warn_exit_writes(
        why,
        " (free the meter with mm_meter_free before exit to wait for it)",
    );
}

/// A usage meter: records billable events and bills every customer-hour exactly once (see the
/// "Usage meter" section of the README). Made by `mm_meter_new`, freed by `mm_meter_free`.
///
/// Thread-safe: every call takes a `const mm_meter *` and may run from many threads at once.
/// `mm_meter_record` blocks until the event is as durable as the configured durability says;
/// `mm_meter_flush` and `mm_meter_close` block on the library's runtime while they send.
pub struct mm_meter {
    _private: [u8; 0],
}

impl Castable for mm_meter {
    type Rust = MeterHandle;
}

/// Makes a meter sending through `client` with `config` (copied; both may be freed afterwards
/// — the meter keeps its own reference to the client). Opens (creating or migrating) the store
/// and starts the group-commit thread and the background flusher when configured.
///
/// On success stores a new meter in `*meter_out` (free it with `mm_meter_free`). Fails with
/// `MM_STATUS_INVALID_CONFIG` (MeterUsage mode without a product code), `MM_STATUS_INVALID_INPUT`
/// (an empty product code) or `MM_STATUS_INVALID_STATE` (the store cannot be opened, or
/// another meter owns it: the message names its pid and host), filling `*err_out` when it is
/// not NULL. `client`, `config` or `meter_out` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Thread-safe.
///
/// One meter owns a store file at a time, from `mm_meter_new` to a successful
/// `mm_meter_close` (or `mm_meter_free`). A meter belongs to the process that created it: after `fork()` every
/// call on it in the child returns `MM_STATUS_INVALID_STATE` ("create the UsageMeter after
/// fork"), and `mm_meter_free` there releases only the child's memory.
#[no_mangle]
pub extern "C" fn mm_meter_new(
    client: *const mm_client,
    config: *const mm_meter_config,
    meter_out: *mut *mut mm_meter,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or live handles.
        let (client, s) = unsafe {
            (
                ffi::req_ref(client, "client")?,
                ffi::req_ref(config, "config")?,
            )
        };
        ffi::check_out(meter_out, "meter_out")?;
        let mode = s.mode.unwrap_or_default();
        let gate = Arc::new(Gate::default());
        let mut b = MeterConfig::builder()
            .client(client.as_async().clone())
            .store(Store::from_options(s.path.clone(), s.database_url.clone())?)
            .mode(mode)
            .durability(s.durability.unwrap_or_default())
            .zero_fill(s.zero_fill);
        if let Some(p) = &s.product_code {
            b = b.product_code(p.clone());
        }
        if let Some(id) = &s.replica_id {
            b = b.replica_id(id.clone());
        }
        if let Some(n) = s.fleet_senders {
            b = b.fleet_senders(n);
        }
        if let Some(l) = s.fleet_lease {
            b = b.fleet_lease(l);
        }
        if let Some(t) = s.start_hour {
            b = b.start_hour(t);
        }
        if let Some(g) = s.grace {
            b = b.grace(g);
        }
        if let Some(safe) = s.power_loss_safe {
            b = b.power_loss_safe(safe);
        }
        if let Some(f) = s.flush_interval {
            b = b.flush_interval(f);
        }
        if let Some(c) = &s.clock {
            b = b.clock(c.clock());
        }
        if let Some(cb) = s.callback {
            let gate = gate.clone();
            b = b.on_event(move |e| gate.run(|| deliver(cb, &e)));
        }
        let config = b.build().map_err(Error::from)?;
        let meter = Arc::new(RwLock::new(Some(UsageMeter::new(config)?)));
        list_for_exit(&meter);
        let handle = MeterHandle { meter, mode, gate };
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_meter>(meter_out, handle) };
        Ok(())
    })
}

/// Frees a meter. NULL does nothing (`MM_STATUS_OK`). Does not flush: call `mm_meter_close`
/// first to send what may be sent (a file store keeps everything else for the next meter on
/// the same file; events buffered by `MM_METER_DURABILITY_MEMORY` are written to the store
/// here).
///
/// Waits for event callbacks in flight; none runs after it returns. No other call may be
/// running on `meter`, but one: a call whose event callback had another thread free the
/// meter (as the C++ wrapper's destructor does from `on_event`) keeps what it uses alive
/// until it returns. Called from the meter's own event callback it frees nothing and
/// returns `MM_STATUS_INVALID_STATE` (it would wait for that callback): free the meter after
/// the callback returns.
#[no_mangle]
pub extern "C" fn mm_meter_free(meter: *mut mm_meter) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live meter.
        if let Some(h) = unsafe { ffi::opt_ref(meter.cast_const()) } {
            if let Some(m) = h.live() {
                m.refuse_in_event_callback("mm_meter_free")?;
            }
            h.release();
        }
        // SAFETY: NULL or a meter made by mm_meter_new, freed once.
        unsafe { ffi::free(meter) };
        Ok(())
    })
}

/// Runs `f` with the meter's mode and a reference to the core meter of the call's own, taken
/// before anything else: a callback may free the handle while the call that delivers it runs
/// (the C++ wrapper's deferred free from `on_event`), and the core meter must then live on
/// until the call returns. The handle is not touched after that.
pub(crate) fn with_meter(
    meter: *const mm_meter,
    err_out: *mut *mut mm_error,
    f: impl FnOnce(MeterMode, &UsageMeter) -> Result<(), ErrorData>,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or a live meter.
        let h = unsafe { ffi::req_ref(meter, "meter") }?;
        let m = h.live().ok_or_else(|| {
            ErrorData::invalid_state(
                "the meter is being freed (mm_meter_free runs on another thread)",
            )
        })?;
        f(h.mode, &m)
    })
}

/// `mm_meter_flush` and `mm_meter_close`: runs `op` and stores its summary in a new
/// `*summary_out` (required: a throttled flush is reported only there).
fn summarize(
    meter: *const mm_meter,
    summary_out: *mut *mut mm_flush_summary,
    err_out: *mut *mut mm_error,
    op: fn(&UsageMeter) -> Result<marketplace_metering::meter::FlushSummary, Error>,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        ffi::check_out(summary_out, "summary_out")?;
        let s = op(m)?;
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_flush_summary>(summary_out, FlushSummaryView::of(&s)) };
        Ok(())
    })
}

/// Seals what may be sealed and sends every sealed bucket now; blocks until done.
///
/// On success stores a new summary in `*summary_out` (free it with `mm_flush_summary_free`).
/// A retryable failure that outlasted the client's retries (throttling, transport) is not a
/// failure of the call: it stops the flush early and is reported by
/// `mm_flush_summary_interrupted`; the buckets stay sealed for the next flush. So the summary
/// is required: `summary_out` NULL → `MM_STATUS_NULL_PARAMETER` and nothing is flushed. Other
/// failures (credentials, access, a closed meter: `MM_STATUS_INVALID_STATE`; a store busy,
/// full or failing I/O, which `mm_error_is_retryable` says may succeed later) return their
/// status and fill `*err_out` when it is not NULL. `meter` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Thread-safe (flushes of one meter run one at a time); not from an event callback.
#[no_mangle]
pub extern "C" fn mm_meter_flush(
    meter: *const mm_meter,
    summary_out: *mut *mut mm_flush_summary,
    err_out: *mut *mut mm_error,
) -> mm_status {
    summarize(meter, summary_out, err_out, UsageMeter::flush_blocking)
}

/// Stops the background flusher and flushes what may be flushed (as `mm_meter_flush`, with
/// the same required `summary_out`); later `mm_meter_record` and `mm_meter_flush` calls fail
/// with `MM_STATUS_INVALID_STATE`. Unsealed hours stay in the store (a file store sends them
/// after a restart). The meter must still be freed with `mm_meter_free`. A later call waits
/// for the first and stores an empty summary; after a failed final flush the meter still
/// owns the store and a later call flushes again. `meter` or `summary_out` NULL →
/// `MM_STATUS_NULL_PARAMETER` (nothing is closed). Thread-safe; not from an event callback.
#[no_mangle]
pub extern "C" fn mm_meter_close(
    meter: *const mm_meter,
    summary_out: *mut *mut mm_flush_summary,
    err_out: *mut *mut mm_error,
) -> mm_status {
    summarize(meter, summary_out, err_out, UsageMeter::close_blocking)
}

/// Stores the bucket counts per state and the oldest unsent hour in a new `*status_out`
/// (writing events buffered in memory to the store first; free it with
/// `mm_meter_status_free`). `meter` or `status_out` NULL → `MM_STATUS_NULL_PARAMETER`; a store
/// failure fills `*err_out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_get_status(
    meter: *const mm_meter,
    status_out: *mut *mut mm_meter_status,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        ffi::check_out(status_out, "status_out")?;
        let s = m.status()?;
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_meter_status>(status_out, s.into()) };
        Ok(())
    })
}

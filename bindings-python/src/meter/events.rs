// SPDX-License-Identifier: Apache-2.0
// The meter's events, summaries, statuses and dead letters as Python dicts; the event sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use marketplace_metering::meter::{
    Customer, DeadLetter, FlushSummary, MeterEvent, MeterEventKind, MeterStatus,
};
use marketplace_metering::primitives::DateTime;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

use crate::convert;
use crate::errors::to_py_err;

use super::{lock, EXITING, MAX_QUEUED_EVENTS};

/// Where the core's events go: the user's callback, or a bounded deque for `events()`.
pub(super) struct Sink {
    /// `None` after `__clear__` (the GC broke a cycle through the callback).
    pub(super) callback: Mutex<Option<Py<PyAny>>>,
    pub(super) has_callback: bool,
    pub(super) queue: Mutex<Option<Py<PyAny>>>,
    pub(super) dropped: AtomicU64,
}

/// What the sink still holds when it goes is dropped with the GIL, taken here if need be, or
/// else leaked: the last reference may be a background flush's or the meter's event
/// thread's (`mm-events`), on a thread without the GIL, where pyo3 would queue the drop under
/// a lock of the process's, which a child forked meanwhile found held for good. Leaked
/// always, every meter dropped unclosed after its first background event kept its callback
/// and its event queue for good (found by a review of processes that make many meters).
/// Never once the interpreter is exiting. The Python `UsageMeter` drops them itself
/// ([`Sink::release`]) when it holds the last reference.
impl Drop for Sink {
    fn drop(&mut self) {
        let mut held = Some((
            self.callback
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
            self.queue
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        ));
        if !EXITING.load(Ordering::SeqCst) {
            let _ = Python::try_attach(|_| drop(held.take()));
        }
        std::mem::forget(held);
    }
}

impl Sink {
    /// Drops what it holds of Python's: only with the GIL held.
    pub(super) fn release(&self) {
        let held = (lock(&self.callback).take(), lock(&self.queue).take());
        drop(held);
    }

    pub(super) fn deliver(&self, event: MeterEvent) {
        if EXITING.load(Ordering::Relaxed) {
            return;
        }
        // Never during interpreter shutdown (`EXITING` above: the abi3 build's try_attach
        // does not check for finalization), never from inside a GC traversal.
        let _ = Python::try_attach(|py| {
            let result = event_dict(py, &event).and_then(|d| {
                // Cloned out first: the callback may trigger a GC, whose traverse reads it.
                let cb = lock(&self.callback).as_ref().map(|c| c.clone_ref(py));
                if let Some(cb) = cb {
                    return cb.call1(py, (d,)).map(drop);
                }
                if self.has_callback {
                    return Ok(());
                }
                let q = lock(&self.queue).as_ref().map(|q| q.clone_ref(py));
                let Some(q) = q else { return Ok(()) };
                let q = q.bind(py);
                if q.len()? >= MAX_QUEUED_EVENTS
                    && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
                {
                    log(
                        py,
                        "warning",
                        &format!(
                            "UsageMeter: more than {MAX_QUEUED_EVENTS} events queued and not \
                             read with events(); dropping the oldest (dead letters stay in \
                             dead_letters())"
                        ),
                        None,
                    );
                }
                q.call_method1(crate::name!(py, "append"), (d,)).map(drop)
            });
            if let Err(e) = result {
                log(
                    py,
                    "error",
                    "UsageMeter: the on_event callback raised",
                    Some(e.value(py).clone().into_any()),
                );
                // Ctrl-C (or a SIGINT handler) while the callback ran raised in it: raised
                // again for the main thread at its next chance, not swallowed with the rest.
                // After the log call, whose Python code would take it.
                if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
                    // SAFETY: callable from any thread holding the GIL (it only sets a flag).
                    unsafe { pyo3::ffi::PyErr_SetInterrupt() };
                }
            }
        });
    }
}

/// Logs through the `marketplace_metering` logger (with the exception's traceback).
pub(super) fn log(py: Python<'_>, level: &str, msg: &str, exc: Option<Bound<'_, PyAny>>) {
    let r = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("marketplace_metering",))?;
        let kw = PyDict::new(py);
        if let Some(e) = &exc {
            kw.set_item("exc_info", e)?;
        }
        logger.call_method(level, (msg,), Some(&kw))?;
        Ok(())
    })();
    if let Err(e) = r {
        e.write_unraisable(py, None);
    }
}

pub(super) fn hour_dt<'py>(py: Python<'py>, secs: i64) -> PyResult<Bound<'py, PyAny>> {
    convert::py_datetime(py, &DateTime::from_secs(secs))
}

pub(super) fn put_customer(d: &Bound<'_, PyDict>, c: Option<&Customer>) -> PyResult<()> {
    let py = d.py();
    let (id, acct, lic) = Customer::parts_of(c);
    d.set_item(crate::name!(py, "customer_identifier"), id)?;
    d.set_item(crate::name!(py, "customer_aws_account_id"), acct)?;
    d.set_item(crate::name!(py, "license_arn"), lic)?;
    Ok(())
}

pub(super) fn event_dict<'py>(py: Python<'py>, e: &MeterEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(crate::name!(py, "kind"), e.kind.as_str())?;
    put_customer(&d, e.customer.as_ref())?;
    d.set_item(crate::name!(py, "dimension"), &e.dimension)?;
    d.set_item(crate::name!(py, "hour"), hour_dt(py, e.hour)?)?;
    d.set_item(crate::name!(py, "quantity"), e.quantity)?;
    d.set_item(crate::name!(py, "replica_id"), e.replica_id.as_deref())?;
    if let (Some(reason), Some(message)) = (e.kind.reason(), e.kind.message()) {
        d.set_item(crate::name!(py, "reason"), reason)?;
        d.set_item(crate::name!(py, "message"), message)?;
    }
    match &e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            d.set_item(crate::name!(py, "metering_record_id"), metering_record_id)?
        }
        MeterEventKind::LateEvent { counted_in_hour } => d.set_item(
            crate::name!(py, "counted_in_hour"),
            hour_dt(py, *counted_in_hour)?,
        )?,
        MeterEventKind::WindowAlarm { window_end } => {
            d.set_item(crate::name!(py, "window_end"), hour_dt(py, *window_end)?)?
        }
        _ => {}
    }
    Ok(d)
}

// ---------------------------------------------------------------- results

pub(super) fn summary_dict(py: Python<'_>, s: &FlushSummary, op: &str) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("sealed", s.sealed)?;
    d.set_item("sent", s.sent)?;
    d.set_item("calls", s.calls)?;
    d.set_item("acked", s.acked)?;
    d.set_item("dead_lettered", s.dead_lettered)?;
    d.set_item("expired", s.expired)?;
    d.set_item("resent_unprocessed", s.resent_unprocessed)?;
    d.set_item("deferred", s.deferred)?;
    match &s.interrupted {
        None => d.set_item("interrupted", py.None())?,
        Some(e) => {
            let i = PyDict::new(py);
            i.set_item("code", e.code())?;
            i.set_item("message", e.message())?;
            i.set_item("error", to_py_err(py, e, op).value(py))?;
            d.set_item("interrupted", i)?;
        }
    }
    d.into_py_any(py)
}

pub(super) fn status_dict(py: Python<'_>, s: &MeterStatus) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("pending", s.pending)?;
    d.set_item("sealed", s.sealed)?;
    d.set_item("acked", s.acked)?;
    d.set_item("dead_lettered", s.dead_lettered)?;
    d.set_item("expired", s.expired)?;
    match s.oldest_unsent_hour {
        Some(h) => d.set_item("oldest_unsent_hour", hour_dt(py, h)?)?,
        None => d.set_item("oldest_unsent_hour", py.None())?,
    }
    d.set_item("replica_id", s.replica_id.as_deref())?;
    match s.last_flush_at {
        Some(t) => d.set_item("last_flush_at", hour_dt(py, t)?)?,
        None => d.set_item("last_flush_at", py.None())?,
    }
    d.set_item("last_flush_error", s.last_flush_error.as_deref())?;
    d.into_py_any(py)
}

pub(super) fn dead_letter_dict<'py>(
    py: Python<'py>,
    l: &DeadLetter,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    put_customer(&d, l.customer.as_ref())?;
    d.set_item("dimension", &l.dimension)?;
    d.set_item("hour", hour_dt(py, l.hour)?)?;
    d.set_item("quantity", l.quantity)?;
    d.set_item("reason", &l.reason)?;
    d.set_item("message", &l.message)?;
    d.set_item("at", hour_dt(py, l.at)?)?;
    Ok(d)
}

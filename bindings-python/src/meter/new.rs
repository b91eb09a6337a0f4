// SPDX-License-Identifier: Apache-2.0
// `UsageMeter(...)`: the constructor's argument groups (client, store, event sink, clock) translated.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use marketplace_metering::meter::{Clock, MeterConfigBuilder, Store};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt};

use crate::client::{conv_err, Client};
use crate::convert;
use crate::errors::to_py_err;

use super::clock::epoch_secs;
use super::{ManualClock, Sink, MAX_QUEUED_EVENTS, NEW};

/// The core client of a `Client`, or of an `AsyncClient` (through its `_native`).
pub(super) fn core_client(
    py: Python<'_>,
    client: &Bound<'_, PyAny>,
) -> PyResult<marketplace_metering::Client> {
    let native = match client.cast::<Client>() {
        Ok(c) => c.clone(),
        Err(_) => match client
            .getattr(crate::name!(py, "_native"))
            .ok()
            .and_then(|n| n.cast_into::<Client>().ok())
        {
            Some(c) => c,
            None => {
                return Err(conv_err(
                    py,
                    convert::type_error(
                        "client",
                        "marketplace_metering.Client or AsyncClient",
                        client,
                    ),
                    NEW,
                ))
            }
        },
    };
    Ok(native.get().core().clone())
}

/// `path` (SQLite), `database_url` (PostgreSQL) or neither (in memory); never both.
pub(super) fn store(
    py: Python<'_>,
    path: Option<&Bound<'_, PyAny>>,
    database_url: Option<String>,
) -> PyResult<Store> {
    let path = match path.filter(|p| !p.is_none()) {
        Some(p) => Some(p.extract::<PathBuf>().map_err(|_| {
            conv_err(
                py,
                convert::type_error("path", "str or os.PathLike", p),
                NEW,
            )
        })?),
        None => None,
    };
    Store::from_options(path, database_url).map_err(|e| to_py_err(py, &e, NEW))
}

/// The fleet store's tuning: `fleet_senders`, `fleet_lease` and `start_hour` (the cut-over
/// from a SQLite meter). The core checks their values.
pub(super) fn fleet(
    py: Python<'_>,
    mut b: MeterConfigBuilder,
    senders: Option<&Bound<'_, PyAny>>,
    lease: Option<&Bound<'_, PyAny>>,
    start_hour: Option<&Bound<'_, PyAny>>,
) -> PyResult<MeterConfigBuilder> {
    if let Some(n) = senders.filter(|v| !v.is_none()) {
        let n = match n.cast::<PyInt>() {
            Ok(i) if !n.is_instance_of::<PyBool>() => i.extract::<i64>().unwrap_or(i64::MAX),
            _ => {
                return Err(conv_err(
                    py,
                    convert::type_error("fleet_senders", "int", n),
                    NEW,
                ))
            }
        };
        // Below 1 is passed as 0, which the core refuses naming `fleet_senders`.
        b = b.fleet_senders(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
    }
    if let Some(l) = lease.filter(|v| !v.is_none()) {
        b = b.fleet_lease(super::duration(l, "fleet_lease")?);
    }
    if let Some(t) = start_hour.filter(|v| !v.is_none()) {
        b = b.start_hour(epoch_secs(t, "start_hour", NEW)?);
    }
    Ok(b)
}

/// Where events go: `on_event`, or a bounded deque for `events()` when it is not given.
pub(super) fn sink(py: Python<'_>, on_event: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<Sink>> {
    let callback = match on_event.filter(|c| !c.is_none()) {
        Some(c) if c.is_callable() => Some(c.clone().unbind()),
        Some(c) => {
            return Err(conv_err(
                py,
                convert::type_error("on_event", "a callable", c),
                NEW,
            ))
        }
        None => None,
    };
    let queue = if callback.is_none() {
        let deque = py.import("collections")?.getattr("deque")?;
        let kw = PyDict::new(py);
        kw.set_item("maxlen", MAX_QUEUED_EVENTS)?;
        Some(deque.call((), Some(&kw))?.unbind())
    } else {
        None
    };
    Ok(Arc::new(Sink {
        has_callback: callback.is_some(),
        callback: Mutex::new(callback),
        queue: Mutex::new(queue),
        dropped: AtomicU64::new(0),
    }))
}

/// `clock=`: only `marketplace_metering.testing.ManualClock`.
pub(super) fn manual_clock(py: Python<'_>, c: &Bound<'_, PyAny>) -> PyResult<Clock> {
    match c.cast::<ManualClock>() {
        Ok(c) => Ok(c.get().inner.clock()),
        Err(_) => Err(conv_err(
            py,
            convert::type_error("clock", "marketplace_metering.testing.ManualClock", c),
            NEW,
        )),
    }
}

// SPDX-License-Identifier: Apache-2.0
// `UsageMeter(...)`: the constructor's argument groups (client, store, event sink, clock) translated.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use marketplace_metering::meter::{Clock, Store};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::client::{conv_err, Client};
use crate::convert;

use super::{input_err, ManualClock, Sink, MAX_QUEUED_EVENTS, NEW};

/// The core client of a `Client`, or of an `AsyncClient` (through its `_native`).
pub(super) fn core_client(
    py: Python<'_>,
    client: &Bound<'_, PyAny>,
) -> PyResult<marketplace_metering::Client> {
    let native = match client.cast::<Client>() {
        Ok(c) => c.clone(),
        Err(_) => match client
            .getattr(intern!(py, "_native"))
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
    Ok(match path {
        Some(p) if !p.is_none() && database_url.is_some() => {
            return Err(input_err(
                py,
                "database_url",
                "give either path (SQLite) or database_url (PostgreSQL), not both",
                NEW,
            ))
        }
        _ if database_url.is_some() => Store::postgres(database_url.unwrap_or_default()),
        Some(p) if !p.is_none() => match p.extract::<PathBuf>() {
            Ok(p) => Store::sqlite(p),
            Err(_) => {
                return Err(conv_err(
                    py,
                    convert::type_error("path", "str or os.PathLike", p),
                    NEW,
                ))
            }
        },
        _ => Store::memory(),
    })
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

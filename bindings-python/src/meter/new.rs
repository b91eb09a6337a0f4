// SPDX-License-Identifier: Apache-2.0
// `UsageMeter(...)`: the constructor's arguments translated into the core's `MeterConfig`.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marketplace_metering::meter::{self, Clock, MeterConfig, MeterMode, Store};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::client::{conv_err, Client};
use crate::convert;
use crate::errors::to_py_err;

use super::{
    duration, input_err, lock, opt_str, Arg, Live, ManualClock, Sink, UsageMeter,
    MAX_QUEUED_EVENTS, METERS, NEW,
};

impl UsageMeter {
    /// Builds the core meter from `UsageMeter(...)`'s arguments (see the class docstring).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        py: Python<'_>,
        client: &Bound<'_, PyAny>,
        path: Option<&Bound<'_, PyAny>>,
        product_code: Option<&Bound<'_, PyAny>>,
        mode: Arg<'_>,
        durability: Arg<'_>,
        grace: Option<&Bound<'_, PyAny>>,
        zero_fill: Arg<'_>,
        on_event: Option<&Bound<'_, PyAny>>,
        flush_interval: Arg<'_>,
        clock: Option<&Bound<'_, PyAny>>,
        database_url: Option<&Bound<'_, PyAny>>,
        replica_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut b = MeterConfig::builder().client(core_client(py, client)?);
        let database_url = opt_str(database_url, "database_url", NEW)?;
        if let Some(id) = opt_str(replica_id, "replica_id", NEW)? {
            b = b.replica_id(id);
        }
        b = b.store(store(py, path, database_url)?);
        if let Some(code) = opt_str(product_code, "product_code", NEW)? {
            b = b.product_code(code);
        }
        let mode: MeterMode = match &mode {
            Arg::Missing => MeterMode::default(),
            Arg::Given(m) => convert::string(m, || "mode".into())
                .map_err(|e| conv_err(py, e, NEW))?
                .parse()
                .map_err(|e| to_py_err(py, &e, NEW))?,
        };
        b = b.mode(mode);
        if let Arg::Given(d) = &durability {
            let d = convert::string(d, || "durability".into()).map_err(|e| conv_err(py, e, NEW))?;
            b = b.durability(d.parse().map_err(|e| to_py_err(py, &e, NEW))?);
        }
        if let Some(g) = grace.filter(|g| !g.is_none()) {
            b = b.grace(duration(g, "grace")?);
        }
        if let Arg::Given(z) = &zero_fill {
            let zf = z
                .cast::<PyBool>()
                .map_err(|_| conv_err(py, convert::type_error("zero_fill", "bool", z), NEW))?;
            b = b.zero_fill(zf.is_true());
        }
        let sink = sink(py, on_event)?;
        let s = sink.clone();
        b = b.on_event(move |e| s.deliver(e));
        // Missing: the core's default; None or 0: no background flusher.
        match flush_interval {
            Arg::Missing => {}
            Arg::Given(v) if v.is_none() => b = b.flush_interval(Duration::ZERO),
            Arg::Given(v) => b = b.flush_interval(duration(&v, "flush_interval")?),
        }
        if let Some(c) = clock.filter(|c| !c.is_none()) {
            b = b.clock(manual_clock(py, c)?);
        }
        let config = b
            .build()
            .map_err(|e| input_err(py, e.field(), "is required", NEW))?;
        let c2 = config.clone();
        let core = py
            .detach(move || meter::UsageMeter::new(c2))
            .map_err(|e| to_py_err(py, &e, NEW))?;
        let live = Arc::new(Mutex::new(Live {
            meter: Some(core),
            closed: false,
        }));
        {
            let mut all = lock(&METERS);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&live));
        }
        Ok(UsageMeter {
            config,
            mode,
            sink,
            live,
        })
    }
}

/// The core client of a `Client`, or of an `AsyncClient` (through its `_native`).
fn core_client(
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
fn store(
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
fn sink(py: Python<'_>, on_event: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<Sink>> {
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
fn manual_clock(py: Python<'_>, c: &Bound<'_, PyAny>) -> PyResult<Clock> {
    match c.cast::<ManualClock>() {
        Ok(c) => Ok(c.get().inner.clock()),
        Err(_) => Err(conv_err(
            py,
            convert::type_error("clock", "marketplace_metering.testing.ManualClock", c),
            NEW,
        )),
    }
}

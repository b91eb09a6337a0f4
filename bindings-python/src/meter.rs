// SPDX-License-Identifier: Apache-2.0
// `_native.UsageMeter` and `_native.ManualClock`: the core's usage meter, translated.

//! Translation only: Python arguments → the core's `MeterConfig` / `record()` arguments,
//! core results and events → dicts, core errors → the mapped exceptions. Every rule
//! (validation, buckets, sealing, sending) lives in `marketplace_metering::meter`.
//!
//! Threads. Blocking calls release the GIL. The core calls the event sink on the thread that
//! caused the event (a `record()` caller, the group-committer thread, a runtime worker); the
//! sink attaches to the interpreter there (`Python::try_attach`: never during shutdown).
//!
//! Fork. The core meter lives in `live`, only touched with the GIL held (Python forks holding
//! the GIL, so a child never inherits it locked). In a forked child the core refuses every
//! call of an inherited meter with "create the UsageMeter after fork" and leaks its SQLite
//! connection instead of closing it (closing it in the child deleted the parent's WAL); a
//! gunicorn `--preload` app creates its meter in `post_fork`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use marketplace_metering::meter::{
    Customer, DeadLetter, FlushSummary, MeterConfig, MeterEvent, MeterEventKind, MeterMode,
    MeterStatus, RequeueFilter, Store,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::{meter, runtime, Error};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use pyo3::{intern, IntoPyObjectExt, PyTraverseError};

use crate::asyncrt::CoreRuntime;
use crate::client::{conv_err, Client};
use crate::convert;
use crate::errors::{invalid_state, to_py_err};

/// Events kept for `events()` when no `on_event` callback is given; older ones are dropped.
const MAX_QUEUED_EVENTS: usize = 10_000;

/// Set at interpreter exit (`_shutdown`): the sink stops calling into Python.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Every meter's `live` cell, so `_shutdown` can drop the core meters (writing what memory
/// durability buffered into a file store) before the runtime stops. Touched with the GIL held.
static METERS: Mutex<Vec<Weak<Mutex<Live>>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn input_err(py: Python<'_>, field: &str, problem: &str, op: &str) -> PyErr {
    to_py_err(py, &Error::invalid_input(field, problem), op)
}

/// Drops every live core meter with the GIL released, then keeps the sink quiet: called by
/// `_shutdown` (atexit), before the shared runtime stops.
pub fn release_all(py: Python<'_>) {
    let cells: Vec<Arc<Mutex<Live>>> = std::mem::take(&mut *lock(&METERS))
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut meters = Vec::new();
    for c in &cells {
        let mut l = lock(c);
        l.closed = true;
        // In a forked child the core's drop touches nothing the parent owns.
        meters.extend(l.meter.take());
    }
    py.detach(move || drop(meters));
    EXITING.store(true, Ordering::SeqCst);
}

// ---------------------------------------------------------------- ManualClock

/// A clock set by hand, for tests and examples (``marketplace_metering.testing.ManualClock``).
#[pyclass(module = "marketplace_metering._native", frozen)]
pub struct ManualClock {
    inner: meter::ManualClock,
}

fn epoch_secs(v: &Bound<'_, PyAny>, field: &str, op: &str) -> PyResult<i64> {
    let py = v.py();
    convert::timestamp(v, || field.to_owned())
        .map(|t| t.secs())
        .map_err(|e| conv_err(py, e, op))
}

/// Seconds from a `timedelta` or a number.
fn seconds(v: &Bound<'_, PyAny>, field: &str, op: &str) -> PyResult<f64> {
    let py = v.py();
    let secs = if v.is_instance_of::<PyBool>() {
        None
    } else if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        Some(v.extract::<f64>()?)
    } else if v.is_instance(timedelta_type(py)?)? {
        Some(
            v.call_method0(intern!(py, "total_seconds"))?
                .extract::<f64>()?,
        )
    } else {
        None
    };
    match secs {
        Some(s) if s.is_finite() && s.abs() < 1.0e12 => Ok(s),
        Some(_) => Err(input_err(py, field, "must be a finite duration", op)),
        None => Err(conv_err(
            py,
            convert::type_error(field, "timedelta, int or float", v),
            op,
        )),
    }
}

fn timedelta_type(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static T: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    T.import(py, "datetime", "timedelta")
}

#[pymethods]
impl ManualClock {
    /// A clock reading `start`: a datetime (naive means UTC), epoch seconds or ISO-8601.
    #[new]
    fn new(start: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(ManualClock {
            inner: meter::ManualClock::new(epoch_secs(start, "start", "ManualClock")?),
        })
    }

    /// The time it reads, in epoch seconds.
    fn now(&self) -> i64 {
        self.inner.now()
    }

    /// Sets it to `when` (a datetime, epoch seconds or ISO-8601).
    fn set(&self, when: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(epoch_secs(when, "when", "ManualClock.set")?);
        Ok(())
    }

    /// Moves it by `delta` (a timedelta or seconds; negative moves it back).
    fn advance(&self, delta: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = seconds(delta, "delta", "ManualClock.advance")?;
        self.inner.advance(s.floor() as i64);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock({})", self.inner.now())
    }
}

// ---------------------------------------------------------------- events

/// Where the core's events go: the user's callback, or a bounded deque for `events()`.
struct Sink {
    /// `None` after `__clear__` (the GC broke a cycle through the callback).
    callback: Mutex<Option<Py<PyAny>>>,
    has_callback: bool,
    queue: Mutex<Option<Py<PyAny>>>,
    dropped: AtomicU64,
}

impl Sink {
    fn deliver(&self, event: MeterEvent) {
        if EXITING.load(Ordering::Relaxed) {
            return;
        }
        // Never during interpreter shutdown, never from inside a GC traversal.
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
                q.call_method1(intern!(py, "append"), (d,)).map(drop)
            });
            if let Err(e) = result {
                log(
                    py,
                    "error",
                    "UsageMeter: the on_event callback raised",
                    Some(e.value(py).clone().into_any()),
                );
            }
        });
    }
}

/// Logs through the `marketplace_metering` logger (with the exception's traceback).
fn log(py: Python<'_>, level: &str, msg: &str, exc: Option<Bound<'_, PyAny>>) {
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

fn hour_dt<'py>(py: Python<'py>, secs: i64) -> PyResult<Bound<'py, PyAny>> {
    convert::py_datetime(py, &DateTime::from_secs(secs))
}

fn put_customer(d: &Bound<'_, PyDict>, c: &Customer) -> PyResult<()> {
    let py = d.py();
    let (id, acct, lic) = c.parts();
    d.set_item(intern!(py, "customer_identifier"), id)?;
    d.set_item(intern!(py, "customer_aws_account_id"), acct)?;
    d.set_item(intern!(py, "license_arn"), lic)?;
    Ok(())
}

fn event_dict<'py>(py: Python<'py>, e: &MeterEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "kind"), e.kind.as_str())?;
    put_customer(&d, &e.customer)?;
    d.set_item(intern!(py, "dimension"), &e.dimension)?;
    d.set_item(intern!(py, "hour"), hour_dt(py, e.hour)?)?;
    d.set_item(intern!(py, "quantity"), e.quantity)?;
    match &e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            d.set_item(intern!(py, "metering_record_id"), metering_record_id)?
        }
        MeterEventKind::DeadLettered { reason, message } => {
            d.set_item(intern!(py, "reason"), reason)?;
            d.set_item(intern!(py, "message"), message)?;
        }
        MeterEventKind::LateEvent { counted_in_hour } => d.set_item(
            intern!(py, "counted_in_hour"),
            hour_dt(py, *counted_in_hour)?,
        )?,
        MeterEventKind::WindowAlarm { window_end } => {
            d.set_item(intern!(py, "window_end"), hour_dt(py, *window_end)?)?
        }
        _ => {}
    }
    Ok(d)
}

// ---------------------------------------------------------------- results

fn summary_dict(py: Python<'_>, s: &FlushSummary, op: &str) -> PyResult<Py<PyAny>> {
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

fn status_dict(py: Python<'_>, s: &MeterStatus) -> PyResult<Py<PyAny>> {
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
    d.into_py_any(py)
}

fn dead_letter_dict<'py>(py: Python<'py>, l: &DeadLetter) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    put_customer(&d, &l.customer)?;
    d.set_item("dimension", &l.dimension)?;
    d.set_item("hour", hour_dt(py, l.hour)?)?;
    d.set_item("quantity", l.quantity)?;
    d.set_item("reason", &l.reason)?;
    d.set_item("message", &l.message)?;
    d.set_item("at", hour_dt(py, l.at)?)?;
    Ok(d)
}

// ---------------------------------------------------------------- UsageMeter

/// The core meter (refusing every call in a forked child: the core checks the process).
struct Live {
    meter: Option<meter::UsageMeter>,
    closed: bool,
}

/// An optional argument whose absence differs from `None` (`flush_interval`).
pub enum Arg<'py> {
    Missing,
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Arg<'py> {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Arg::Given(obj.to_owned()))
    }
}

/// Records every billable event and bills every customer-hour exactly once.
///
/// ``UsageMeter(client, path=None, product_code=None, mode="batch", durability="durable",
/// grace=timedelta(minutes=5), zero_fill=False, on_event=None,
/// flush_interval=timedelta(seconds=60), *, clock=None, database_url=None, replica_id=None)``
///
/// Parameters
/// ----------
/// client : Client or AsyncClient
///     The client that sends the buckets.
/// path : str or os.PathLike, optional
///     The SQLite store (created when missing); ``None``: in memory, for tests.
/// product_code : str, optional
///     ``None`` when every customer is given as ``customer_aws_account_id`` + ``license_arn``.
/// mode : {"batch", "meter_usage"}
///     ``BatchMeterUsage`` (SaaS) or ``MeterUsage`` (AMI / container; customers ignored).
/// durability : {"durable", "group", "memory"}
///     When ``record()`` returns: after its commit, after a group commit, or at once.
/// grace : timedelta or float
///     Time after an hour's end before it is sealed (default 5 minutes).
/// zero_fill : bool
///     Report 0 for unused hours of customers given to ``register_customer()``.
/// on_event : callable, optional
///     Called with each event dict on the thread that caused it; exceptions are logged on
///     the ``marketplace_metering`` logger. Without it, events queue for ``events()``.
/// flush_interval : timedelta or float or None
///     Background flush period (default 60 s); ``None``: no background flusher.
/// clock : marketplace_metering.testing.ManualClock, optional
///     For tests and examples.
///
/// Notes
/// -----
/// A meter belongs to the process that created it: in a child made by ``os.fork()`` its
/// methods raise ``InvalidStateError`` ("create the UsageMeter after fork"). One meter owns
/// a store file at a time; a second one raises, naming the holder's pid and host.
#[pyclass(module = "marketplace_metering._native", frozen, weakref)]
pub struct UsageMeter {
    config: MeterConfig,
    mode: MeterMode,
    sink: Arc<Sink>,
    /// Touched only with the GIL held (see the module documentation).
    live: Arc<Mutex<Live>>,
}

const NEW: &str = "UsageMeter";

fn opt_str(v: Option<&Bound<'_, PyAny>>, field: &str, op: &str) -> PyResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => convert::string(v, || field.to_owned())
            .map(Some)
            .map_err(|e| conv_err(v.py(), e, op)),
    }
}

fn duration(v: &Bound<'_, PyAny>, field: &str) -> PyResult<Duration> {
    let s = seconds(v, field, NEW)?;
    if s < 0.0 {
        return Err(input_err(v.py(), field, "must not be negative", NEW));
    }
    Ok(Duration::from_secs_f64(s))
}

impl UsageMeter {
    /// The core meter. In a forked child the core refuses every call ("create the
    /// UsageMeter after fork"): SQLite's state does not survive fork().
    fn get(&self, py: Python<'_>, op: &str) -> PyResult<meter::UsageMeter> {
        let l = lock(&self.live);
        match &l.meter {
            Some(m) => Ok(m.clone()),
            None => Err(invalid_state(py, "the meter is closed", op)),
        }
    }

    fn customer(
        &self,
        py: Python<'_>,
        customer_identifier: Option<&Bound<'_, PyAny>>,
        customer_aws_account_id: Option<&Bound<'_, PyAny>>,
        license_arn: Option<&Bound<'_, PyAny>>,
        op: &str,
    ) -> PyResult<Customer> {
        let id = opt_str(customer_identifier, "customer_identifier", op)?;
        let acct = opt_str(customer_aws_account_id, "customer_aws_account_id", op)?;
        let lic = opt_str(license_arn, "license_arn", op)?;
        Customer::from_parts(id, acct, lic, self.mode != MeterMode::MeterUsage)
            .map_err(|e| to_py_err(py, &e, op))
    }
}

#[pymethods]
impl UsageMeter {
    #[new]
    #[pyo3(signature = (client, path=None, product_code=None, mode=Arg::Missing,
        durability=Arg::Missing, grace=None, zero_fill=Arg::Missing, on_event=None, flush_interval=Arg::Missing, *, clock=None,
        database_url=None, replica_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
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
        let mut b = MeterConfig::builder().client(native.get().core().clone());
        let database_url = opt_str(database_url, "database_url", NEW)?;
        if let Some(id) = opt_str(replica_id, "replica_id", NEW)? {
            b = b.replica_id(id);
        }
        b = b.store(match path {
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
        });
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
        let sink = Arc::new(Sink {
            has_callback: callback.is_some(),
            callback: Mutex::new(callback),
            queue: Mutex::new(queue),
            dropped: AtomicU64::new(0),
        });
        let s = sink.clone();
        b = b.on_event(move |e| s.deliver(e));
        // Missing: the core's default; None or 0: no background flusher.
        match flush_interval {
            Arg::Missing => {}
            Arg::Given(v) if v.is_none() => b = b.flush_interval(Duration::ZERO),
            Arg::Given(v) => b = b.flush_interval(duration(&v, "flush_interval")?),
        }
        if let Some(c) = clock.filter(|c| !c.is_none()) {
            match c.cast::<ManualClock>() {
                Ok(c) => b = b.clock(c.get().inner.clock()),
                Err(_) => {
                    return Err(conv_err(
                        py,
                        convert::type_error("clock", "marketplace_metering.testing.ManualClock", c),
                        NEW,
                    ))
                }
            }
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

    /// Adds ``quantity`` of ``dimension`` used by a customer to its hour's bucket.
    ///
    /// Parameters
    /// ----------
    /// customer_identifier : str, optional
    ///     Or ``customer_aws_account_id`` with ``license_arn`` (keywords).
    /// dimension : str
    /// quantity : int
    /// timestamp : datetime, int, float or str, optional
    ///     Default: now. Naive datetimes are UTC.
    /// allocations : list of dict, optional
    ///     boto3's ``UsageAllocations`` shape.
    ///
    /// Raises
    /// ------
    /// ParamValidationError
    ///     A missing, conflicting or invalid argument (``.field`` names it).
    #[pyo3(signature = (customer_identifier=None, dimension=None, quantity=None, *,
        customer_aws_account_id=None, license_arn=None, timestamp=None, allocations=None))]
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        py: Python<'_>,
        customer_identifier: Option<&Bound<'_, PyAny>>,
        dimension: Option<&Bound<'_, PyAny>>,
        quantity: Option<&Bound<'_, PyAny>>,
        customer_aws_account_id: Option<&Bound<'_, PyAny>>,
        license_arn: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        allocations: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        const OP: &str = "UsageMeter.record";
        let customer = self.customer(
            py,
            customer_identifier,
            customer_aws_account_id,
            license_arn,
            OP,
        )?;
        let dimension: PyBackedStr = match dimension {
            Some(d) if !d.is_none() => match d.cast::<PyString>() {
                Ok(s) => s.clone().try_into()?,
                Err(_) => return Err(conv_err(py, convert::type_error("dimension", "str", d), OP)),
            },
            _ => return Err(input_err(py, "dimension", "is required", OP)),
        };
        let quantity = match quantity {
            Some(q) if !q.is_none() => {
                convert::int64(q, "quantity").map_err(|e| conv_err(py, e, OP))?
            }
            _ => return Err(input_err(py, "quantity", "is required", OP)),
        };
        let at = match timestamp {
            Some(t) if !t.is_none() => Some(
                convert::timestamp(t, || "timestamp".into()).map_err(|e| conv_err(py, e, OP))?,
            ),
            _ => None,
        };
        let allocs = match allocations {
            Some(a) if !a.is_none() => {
                Some(convert::allocations(a, "allocations").map_err(|e| conv_err(py, e, OP))?)
            }
            _ => None,
        };
        let m = self.get(py, OP)?;
        py.detach(|| m.record(customer, &dimension, quantity, at, allocs))
            .map_err(|e| to_py_err(py, &e, OP))
    }

    /// Registers a customer for zero-fill (with ``zero_fill=True``).
    #[pyo3(signature = (customer_identifier=None, dimensions=None, *,
        customer_aws_account_id=None, license_arn=None))]
    fn register_customer(
        &self,
        py: Python<'_>,
        customer_identifier: Option<&Bound<'_, PyAny>>,
        dimensions: Option<&Bound<'_, PyAny>>,
        customer_aws_account_id: Option<&Bound<'_, PyAny>>,
        license_arn: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        const OP: &str = "UsageMeter.register_customer";
        let customer = self.customer(
            py,
            customer_identifier,
            customer_aws_account_id,
            license_arn,
            OP,
        )?;
        let dims: Vec<String> = match dimensions {
            Some(d) if !d.is_none() && !d.is_instance_of::<PyString>() => {
                let mut out = Vec::new();
                let items = d.try_iter().map_err(|_| {
                    conv_err(py, convert::type_error("dimensions", "list of str", d), OP)
                })?;
                for (i, item) in items.enumerate() {
                    let item = item?;
                    out.push(
                        convert::string(&item, || format!("dimensions[{i}]"))
                            .map_err(|e| conv_err(py, e, OP))?,
                    );
                }
                out
            }
            Some(d) if !d.is_none() => {
                return Err(conv_err(
                    py,
                    convert::type_error("dimensions", "list of str", d),
                    OP,
                ))
            }
            _ => return Err(input_err(py, "dimensions", "is required", OP)),
        };
        let m = self.get(py, OP)?;
        py.detach(|| {
            let refs: Vec<&str> = dims.iter().map(String::as_str).collect();
            m.register_customer(customer, &refs)
        })
        .map_err(|e| to_py_err(py, &e, OP))
    }

    /// Seals what may be sealed and sends every sealed bucket now (blocking).
    ///
    /// Returns
    /// -------
    /// dict
    ///     The counts, and ``interrupted``: ``None`` or ``{"code", "message", "error"}`` when
    ///     throttling or a transport failure stopped the flush (nothing is raised then).
    fn flush(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.flush";
        let m = self.get(py, OP)?;
        let s = py
            .detach(|| m.flush_blocking())
            .map_err(|e| to_py_err(py, &e, OP))?;
        summary_dict(py, &s, OP)
    }

    /// `flush()` as an awaitable (runs on the library's runtime).
    fn flush_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        const OP: &str = "UsageMeter.flush";
        let m = self.get(py, OP)?;
        runtime::handle().map_err(|e| to_py_err(py, &e, OP))?;
        pyo3_async_runtimes::generic::future_into_py::<CoreRuntime, _, _>(py, async move {
            let r = m.flush().await;
            Python::attach(|py| match r {
                Ok(s) => summary_dict(py, &s, OP),
                Err(e) => Err(to_py_err(py, &e, OP)),
            })
        })
    }

    /// Stops the background flusher and flushes what may be flushed (blocking).
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.close";
        let m = self.get(py, OP)?;
        lock(&self.live).closed = true;
        let s = py
            .detach(|| m.close_blocking())
            .map_err(|e| to_py_err(py, &e, OP))?;
        summary_dict(py, &s, OP)
    }

    /// `close()` as an awaitable.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        const OP: &str = "UsageMeter.close";
        let m = self.get(py, OP)?;
        lock(&self.live).closed = true;
        runtime::handle().map_err(|e| to_py_err(py, &e, OP))?;
        pyo3_async_runtimes::generic::future_into_py::<CoreRuntime, _, _>(py, async move {
            let r = m.close().await;
            Python::attach(|py| match r {
                Ok(s) => summary_dict(py, &s, OP),
                Err(e) => Err(to_py_err(py, &e, OP)),
            })
        })
    }

    /// Bucket counts per state.
    fn status(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.status";
        let m = self.get(py, OP)?;
        let s = py
            .detach(|| m.status())
            .map_err(|e| to_py_err(py, &e, OP))?;
        status_dict(py, &s)
    }

    /// Every dead letter, oldest first.
    fn dead_letters(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.dead_letters";
        let m = self.get(py, OP)?;
        let all = py
            .detach(|| m.dead_letters())
            .map_err(|e| to_py_err(py, &e, OP))?;
        let out = PyList::empty(py);
        for l in &all {
            out.append(dead_letter_dict(py, l)?)?;
        }
        out.into_py_any(py)
    }

    /// Sends chosen dead letters again (those inside the service's window); returns how many.
    #[pyo3(signature = (reason=None, customer_identifier=None, *, customer_aws_account_id=None,
        license_arn=None, hour=None))]
    fn requeue(
        &self,
        py: Python<'_>,
        reason: Option<&Bound<'_, PyAny>>,
        customer_identifier: Option<&Bound<'_, PyAny>>,
        customer_aws_account_id: Option<&Bound<'_, PyAny>>,
        license_arn: Option<&Bound<'_, PyAny>>,
        hour: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        const OP: &str = "UsageMeter.requeue";
        let hour = match hour {
            Some(h) if !h.is_none() => Some(epoch_secs(h, "hour", OP)?),
            _ => None,
        };
        let filter = RequeueFilter::from_parts(
            opt_str(reason, "reason", OP)?,
            opt_str(customer_identifier, "customer_identifier", OP)?,
            opt_str(customer_aws_account_id, "customer_aws_account_id", OP)?,
            opt_str(license_arn, "license_arn", OP)?,
            hour,
        )
        .map_err(|e| to_py_err(py, &e, OP))?;
        let m = self.get(py, OP)?;
        py.detach(|| m.requeue(&filter))
            .map_err(|e| to_py_err(py, &e, OP))
    }

    /// The events queued since the last call (oldest first), as an iterator; empty when an
    /// ``on_event`` callback receives them instead.
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let out = PyList::empty(py);
        let q = lock(&self.sink.queue).as_ref().map(|q| q.clone_ref(py));
        if let Some(q) = q {
            let q = q.bind(py);
            while q.len()? > 0 {
                out.append(q.call_method0(intern!(py, "popleft"))?)?;
            }
        }
        out.as_any().try_iter().map(|i| i.into_any())
    }

    /// Events dropped because more than 10,000 were queued unread.
    #[getter]
    fn events_dropped(&self) -> u64 {
        self.sink.dropped.load(Ordering::Relaxed)
    }

    /// ``"batch"`` or ``"meter_usage"``.
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode.as_str()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<UsageMeter {:?}>", self.config)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(g) = self.sink.callback.try_lock() {
            if let Some(c) = g.as_ref() {
                visit.call(c)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let cb = lock(&self.sink.callback).take();
        drop(cb);
    }
}

impl Drop for UsageMeter {
    fn drop(&mut self) {
        // The core meter joins its committer thread and writes buffered events when dropped;
        // those may call the sink, which needs the GIL: drop it with the GIL released.
        // In a forked child the core's drop touches nothing the parent owns.
        let taken = lock(&self.live).meter.take();
        if let Some(m) = taken {
            let _ = Python::try_attach(|py| py.detach(|| drop(m)));
        }
    }
}

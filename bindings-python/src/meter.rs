// SPDX-License-Identifier: Apache-2.0
// `_native.UsageMeter`: the core's usage meter, translated (`ManualClock` is in meter/clock.rs).
// Over 600 lines because pyo3 takes one #[pymethods] block per class: every Python method
// of UsageMeter is here; what they share is in meter/clock.rs, meter/events.rs, meter/new.rs.

//! Translation only: Python arguments → the core's `MeterConfig` / `record()` arguments,
//! core results and events → dicts, core errors → the mapped exceptions. Every rule
//! (validation, buckets, sealing, sending) lives in `marketplace_metering::meter`.
//!
//! Threads. Blocking calls release the GIL. The core calls the event sink on the thread that
//! caused the event (a `record()` caller, the group-committer thread, a runtime worker); the
//! sink attaches to the interpreter there (`Python::try_attach`), never once the exit hook
//! has released the meters (`EXITING`): with the abi3 build for 3.10, pyo3 does not check
//! whether the interpreter is finalizing, so that flag is what keeps events out of it.
//!
//! Fork. The core meter lives in `live`, only touched with the GIL held (Python forks holding
//! the GIL, so a child never inherits it locked). In a forked child the core refuses every
//! call of an inherited meter with "create the UsageMeter after fork" and leaks its SQLite
//! connection instead of closing it (closing it in the child deleted the parent's WAL); a
//! gunicorn `--preload` app creates its meter in `post_fork`.

mod clock;
mod events;
mod new;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use marketplace_metering::meter::{Customer, MeterConfig, MeterMode, RequeueFilter};
use marketplace_metering::{meter, runtime, validate, Error};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBool, PyList, PyString};
use pyo3::{IntoPyObjectExt, PyTraverseError};

use crate::client::conv_err;
use crate::convert;
use crate::errors::{invalid_state, to_py_err};
pub use clock::ManualClock;
use clock::{epoch_secs, seconds};
use events::{dead_letter_dict, status_dict, summary_dict, Sink};
use new::{core_client, fleet, manual_clock, sink, store};

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
    py.detach(move || {
        // Written now, not when the last reference goes: a thread still inside flush() or
        // status() holds one, and at interpreter exit it never gets the GIL back to drop it
        // (found by a review: the buffer was lost). In a forked child this writes nothing.
        // Each on a thread of its own, all within 10 s: one after the other, a fleet store
        // that did not answer held up the meters after it, and the exit with them, until a
        // stop timeout killed the process. A write still running then keeps its meter.
        let writes = meters
            .into_iter()
            .map(|m| {
                Box::new(move || {
                    m.write_buffered_at_exit();
                    drop(m)
                }) as meter::ExitWrite
            })
            .collect();
        let why = meter::exit_writes(writes);
        // Before the GIL is taken again: an event of a write still running keeps out of the
        // interpreter from now on.
        EXITING.store(true, Ordering::SeqCst);
        if let Some(why) = why {
            meter::warn_exit_writes(
                why,
                " (close the meter before the interpreter exits to wait for it)",
            );
        }
    });
}

/// Writes what every live core meter buffered, each on a thread of its own within 10 s,
/// leaving them open (see `_write_buffers`).
pub fn write_all(py: Python<'_>) {
    let meters: Vec<meter::WeakUsageMeter> = lock(&METERS)
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|c| lock(&c).meter.as_ref().map(meter::UsageMeter::downgrade))
        .collect();
    py.detach(move || {
        if let Some(why) = meter::write_buffered_at_exit(meters) {
            meter::warn_exit_writes(why, "");
        }
    });
}

/// `arg` passed to the package's coroutine function `name` (`_started`, `_entered`,
/// `_exited`): a coroutine, which `asyncio.create_task` takes (an asyncio future it refuses),
/// as the async client's methods are.
fn coroutine<'py>(
    py: Python<'py>,
    name: &str,
    arg: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import(crate::name!(py, "marketplace_metering._client"))?
        .getattr(name)?
        .call1((arg,))
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
/// flush_interval=timedelta(seconds=60), *, clock=None, database_url=None, replica_id=None,
/// fleet_senders=None, fleet_lease=None, start_hour=None, power_loss_safe=True)``
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
/// power_loss_safe : bool
///     Keyword only. ``True`` (default): each commit of the SQLite store is fsynced.
///     ``False``: a commit survives the process being killed but not the machine failing.
/// grace : timedelta or float
///     Time after an hour's end before it is sealed (default 5 minutes); at most 4 hours
///     (the service's window less two hours, so an hour is left to send in).
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
    /// What `repr()` shows: the configuration, not kept itself, whose event callback holds
    /// the sink (see `Drop`).
    repr: String,
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
    non_negative_secs(v, field).map(Duration::from_secs_f64)
}

fn non_negative_secs(v: &Bound<'_, PyAny>, field: &str) -> PyResult<f64> {
    let s = seconds(v, field, NEW)?;
    if s < 0.0 {
        return Err(input_err(v.py(), field, "must not be negative", NEW));
    }
    Ok(s)
}

/// A `bool` argument: anything else (1, "yes", None) is refused, naming it.
fn flag(v: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    v.cast::<PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| conv_err(v.py(), convert::type_error(field, "bool", v), NEW))
}

impl UsageMeter {
    /// The core meter. In a forked child the core refuses every call ("create the
    /// UsageMeter after fork"): SQLite's state does not survive fork().
    fn get(&self, py: Python<'_>, op: &str) -> PyResult<meter::UsageMeter> {
        let l = lock(&self.live);
        match &l.meter {
            Some(m) => Ok(m.clone()),
            // An atexit hook registered before this package was imported runs after its
            // own (they run last-registered first), when every meter was released.
            None if EXITING.load(Ordering::SeqCst) => Err(invalid_state(
                py,
                "the meter was released at interpreter exit, before this call: its events \
                 are in its store, and the next meter on the store sends what is sealed. \
                 Register an atexit hook that closes a meter after importing \
                 marketplace_metering (hooks run last-registered first)",
                op,
            )),
            None => Err(invalid_state(py, "the meter is closed", op)),
        }
    }

    /// The customer (identifier, account id, license ARN) and dimensions (`None` when not
    /// given) of `register_customer` and `unregister_customer`.
    fn registration(
        &self,
        py: Python<'_>,
        [identifier, account, license]: [Option<&Bound<'_, PyAny>>; 3],
        dimensions: Option<&Bound<'_, PyAny>>,
        op: &str,
    ) -> PyResult<(Option<Customer>, Option<Vec<String>>)> {
        let customer = self.customer(py, identifier, account, license, op)?;
        let dims = match dimensions {
            Some(d) if !d.is_none() => Some(dimension_list(py, d, op)?),
            _ => None,
        };
        Ok((customer, dims))
    }

    fn customer(
        &self,
        py: Python<'_>,
        customer_identifier: Option<&Bound<'_, PyAny>>,
        customer_aws_account_id: Option<&Bound<'_, PyAny>>,
        license_arn: Option<&Bound<'_, PyAny>>,
        op: &str,
    ) -> PyResult<Option<Customer>> {
        let id = opt_str(customer_identifier, "customer_identifier", op)?;
        let acct = opt_str(customer_aws_account_id, "customer_aws_account_id", op)?;
        let lic = opt_str(license_arn, "license_arn", op)?;
        Customer::from_parts(id, acct, lic, self.mode != MeterMode::MeterUsage)
            .map_err(|e| to_py_err(py, &e, op))
    }
}

/// Runs a flush or a close (`op` of a clone of `m`) to its end, without the GIL.
///
/// On the main thread it runs on the library's runtime while this thread checks for Python
/// signals every 100 ms, so Ctrl-C, or a SIGTERM handler that closes the meter, runs at once,
/// as during boto3's socket calls (a flush waiting out a server or its retries could take
/// minutes). An exception a handler raises abandons the call; the meter sends what was in
/// flight again. Elsewhere (Python runs handlers on the main thread only), and from the
/// meter's own event callback (where the core refuses the call), it blocks as before.
fn interruptible<T, F>(
    py: Python<'_>,
    m: meter::UsageMeter,
    operation: &str,
    op: impl FnOnce(meter::UsageMeter) -> F,
) -> PyResult<Result<T, Error>>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, Error>> + Send + 'static,
{
    let r = (|| -> PyResult<Result<T, Error>> {
        let main = crate::client::on_main_thread(py);
        let fut = op(m.clone());
        if !main || m.in_event_callback() {
            return Ok(py.detach(|| runtime::block_on(fut)).and_then(|r| r));
        }
        let handle = match runtime::handle() {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // Only this thread receives; the lock makes the receiver shareable with `detach`.
        let rx = Mutex::new(rx);
        let task = handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        loop {
            match py.detach(|| lock(&rx).recv_timeout(Duration::from_millis(100))) {
                Ok(r) => return Ok(r),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        task.abort();
                        return Err(e);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(invalid_state(
                        py,
                        "the call did not finish: the library's runtime stopped",
                        operation,
                    ))
                }
            }
        }
    })();
    // Without the GIL, as in `record()`.
    py.detach(move || drop(m));
    r
}

#[pymethods]
impl UsageMeter {
    #[new]
    #[pyo3(signature = (client, path=None, product_code=None, mode=Arg::Missing,
        durability=Arg::Missing, grace=None, zero_fill=Arg::Missing, on_event=None, flush_interval=Arg::Missing, *, clock=None,
        database_url=None, replica_id=None, fleet_senders=None, fleet_lease=None, start_hour=None,
        power_loss_safe=Arg::Missing))]
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
        fleet_senders: Option<&Bound<'_, PyAny>>,
        fleet_lease: Option<&Bound<'_, PyAny>>,
        start_hour: Option<&Bound<'_, PyAny>>,
        power_loss_safe: Arg<'_>,
    ) -> PyResult<Self> {
        let mut b = MeterConfig::builder().client(core_client(py, client)?);
        let database_url = opt_str(database_url, "database_url", NEW)?;
        if let Some(id) = opt_str(replica_id, "replica_id", NEW)? {
            b = b.replica_id(id);
        }
        b = b.store(store(py, path, database_url)?);
        b = fleet(py, b, fleet_senders, fleet_lease, start_hour)?;
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
            b = b.zero_fill(flag(z, "zero_fill")?);
        }
        if let Arg::Given(p) = &power_loss_safe {
            b = b.power_loss_safe(flag(p, "power_loss_safe")?);
        }
        // Missing: the core's default; None or 0: no background flusher.
        match flush_interval {
            Arg::Missing => {}
            Arg::Given(v) if v.is_none() => b = b.flush_interval(Duration::ZERO),
            Arg::Given(v) => {
                b = b.flush_interval_secs(non_negative_secs(&v, "flush_interval")?);
            }
        }
        if let Some(c) = clock.filter(|c| !c.is_none()) {
            b = b.clock(manual_clock(py, c)?);
        }
        let sink = sink(py, on_event)?;
        let s = sink.clone();
        b = b.on_event(move |e| s.deliver(e));
        let opened = b
            .build()
            .map_err(|e| input_err(py, e.field(), "is required", NEW))
            .and_then(|config| {
                let repr = format!("<UsageMeter {config:?}>");
                py.detach(move || meter::UsageMeter::new(config))
                    .map(|core| (repr, core))
                    .map_err(|e| to_py_err(py, &e, NEW))
            });
        let (repr, core) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                sink.release();
                return Err(e);
            }
        };
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
            repr,
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
                Ok(s) => s
                    .clone()
                    .try_into()
                    .map_err(|e| conv_err(py, convert::not_text(py, "dimension".into(), e), OP))?,
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
        // The clone is dropped without the GIL: at interpreter exit it may be the last one
        // (`_shutdown` released the others), and the core's drop joins the group committer,
        // which may be waiting for the GIL to deliver an event. The dimension's `str` is not:
        // borrowed into the closure, it is dropped here, with the GIL (a Python object
        // dropped without it is queued under a lock of pyo3's, which a child forked while
        // this thread held it found locked for good).
        let dim: &str = &dimension;
        py.detach(move || m.record(customer, dim, quantity, at, allocs))
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
        let (customer, dims) = self.registration(
            py,
            [customer_identifier, customer_aws_account_id, license_arn],
            dimensions,
            OP,
        )?;
        let Some(dims) = dims else {
            return Err(input_err(py, "dimensions", "is required", OP));
        };
        let m = self.get(py, OP)?;
        // Each clone is dropped without the GIL (see `record()`).
        py.detach(move || {
            let refs: Vec<&str> = dims.iter().map(String::as_str).collect();
            m.register_customer(customer, &refs)
        })
        .map_err(|e| to_py_err(py, &e, OP))
    }

    /// Stops zero-filling a customer: its registrations for ``dimensions`` (every dimension
    /// when ``None``) are removed at once. Returns how many were removed.
    #[pyo3(signature = (customer_identifier=None, dimensions=None, *,
        customer_aws_account_id=None, license_arn=None))]
    fn unregister_customer(
        &self,
        py: Python<'_>,
        customer_identifier: Option<&Bound<'_, PyAny>>,
        dimensions: Option<&Bound<'_, PyAny>>,
        customer_aws_account_id: Option<&Bound<'_, PyAny>>,
        license_arn: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        const OP: &str = "UsageMeter.unregister_customer";
        let (customer, dims) = self.registration(
            py,
            [customer_identifier, customer_aws_account_id, license_arn],
            dimensions,
            OP,
        )?;
        let m = self.get(py, OP)?;
        // Each clone is dropped without the GIL (see `record()`).
        py.detach(move || {
            let refs: Option<Vec<&str>> = dims
                .as_ref()
                .map(|d| d.iter().map(String::as_str).collect());
            m.unregister_customer(customer, refs.as_deref())
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
        let s = interruptible(py, m, OP, |m| async move { m.flush().await })?
            .map_err(|e| to_py_err(py, &e, OP))?;
        summary_dict(py, &s, OP)
    }

    /// `flush()` as a coroutine (runs on the library's runtime): the flush starts when the
    /// coroutine is first awaited or made a task, in its event loop.
    fn flush_async<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let start = slf.getattr(crate::name!(slf.py(), "_flush_started"))?;
        coroutine(slf.py(), "_started", start)
    }

    /// The flush of `flush_async()`, started now, as an asyncio future of the running loop.
    fn _flush_started<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        const OP: &str = "UsageMeter.flush";
        let m = self.get(py, OP)?;
        runtime::handle().map_err(|e| to_py_err(py, &e, OP))?;
        let done = async move { m.flush().await };
        crate::asyncrt::awaitable(py, OP, done, |py, r| match r {
            Ok(s) => summary_dict(py, &s, OP),
            Err(e) => Err(to_py_err(py, &e, OP)),
        })
    }

    /// Stops the background flusher and flushes what may be flushed (blocking).
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.close";
        let m = self.get(py, OP)?;
        lock(&self.live).closed = true;
        let s = interruptible(py, m, OP, |m| async move { m.close().await })?
            .map_err(|e| to_py_err(py, &e, OP))?;
        summary_dict(py, &s, OP)
    }

    /// `close()` as a coroutine: the close starts when the coroutine is first awaited or made a
    /// task, in its event loop.
    fn close_async<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let start = slf.getattr(crate::name!(slf.py(), "_close_started"))?;
        coroutine(slf.py(), "_started", start)
    }

    /// The close of `close_async()`, started now, as an asyncio future of the running loop.
    fn _close_started<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        const OP: &str = "UsageMeter.close";
        let m = self.get(py, OP)?;
        runtime::handle().map_err(|e| to_py_err(py, &e, OP))?;
        lock(&self.live).closed = true;
        let done = async move { m.close().await };
        crate::asyncrt::awaitable(py, OP, done, |py, r| match r {
            Ok(s) => summary_dict(py, &s, OP),
            Err(e) => Err(to_py_err(py, &e, OP)),
        })
    }

    /// Bucket counts per state.
    fn status(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.status";
        let m = self.get(py, OP)?;
        let s = py
            .detach(move || m.status())
            .map_err(|e| to_py_err(py, &e, OP))?;
        status_dict(py, &s)
    }

    /// Every dead letter, oldest first.
    fn dead_letters(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        const OP: &str = "UsageMeter.dead_letters";
        let m = self.get(py, OP)?;
        let all = py
            .detach(move || m.dead_letters())
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
        py.detach(move || m.requeue(&filter))
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
                out.append(q.call_method0(crate::name!(py, "popleft"))?)?;
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

    /// `async with`: leaving the block awaits `close_async()` (a plain `with` in a coroutine
    /// would block the event loop for the whole final flush).
    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        coroutine(slf.py(), "_entered", slf.into_any())
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        slf: Bound<'py, Self>,
        _exc: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let start = slf.getattr(crate::name!(slf.py(), "_close_started"))?;
        coroutine(slf.py(), "_exited", start)
    }

    fn __repr__(&self) -> String {
        self.repr.clone()
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
        // The sink's Python objects are dropped here, with the GIL (`tp_dealloc` holds it),
        // unless a background flush still running, or the meter's event thread, holds the
        // sink: it delivers its events, and the sink, dropped last there, takes the GIL to
        // drop them (see `Sink`'s drop).
        if Arc::strong_count(&self.sink) == 1 {
            self.sink.release();
        }
    }
}

/// A list of dimensions (any iterable of `str` but a `str` itself), for `register_customer`
/// and `unregister_customer`.
fn dimension_list(py: Python<'_>, d: &Bound<'_, PyAny>, op: &str) -> PyResult<Vec<String>> {
    if d.is_instance_of::<PyString>() {
        return Err(conv_err(
            py,
            convert::type_error("dimensions", "list of str", d),
            op,
        ));
    }
    let items = d
        .try_iter()
        .map_err(|_| conv_err(py, convert::type_error("dimensions", "list of str", d), op))?;
    let mut out = Vec::new();
    // One past the core's limit, which the core then refuses: an iterator without end
    // (`itertools.repeat`) must not grow the list until the OOM kill.
    for (i, item) in items.take(validate::MAX_DIMENSIONS + 1).enumerate() {
        let item = item?;
        out.push(
            convert::string(&item, || format!("dimensions[{i}]"))
                .map_err(|e| conv_err(py, e, op))?,
        );
    }
    Ok(out)
}

// SPDX-License-Identifier: Apache-2.0
// `_native.Client`: the core's client, with blocking (GIL released) and awaitable methods.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use marketplace_metering::{runtime, Config, Error, RetryMode};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{self, ConvError};
use crate::errors::{invalid_state, to_py_err};

/// The native client behind `marketplace_metering.Client` and `AsyncClient`.
#[pyclass(module = "marketplace_metering._native", frozen)]
pub struct Client {
    inner: marketplace_metering::Client,
}

pub fn conv_err(py: Python<'_>, e: ConvError, op: &str) -> PyErr {
    match e {
        ConvError::Input(e) => to_py_err(py, &e, op),
        ConvError::Py(e) => e,
    }
}

/// Seconds as a `Duration`; one no `Duration` can hold is the core's `InvalidConfig` error.
fn secs(name: &str, v: Option<f64>) -> Result<Option<Duration>, Error> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && (0.0..1.0e9).contains(&x) => {
            Ok(Some(Duration::from_secs_f64(x)))
        }
        Some(x) => Err(Error::invalid_setting(
            name.to_owned(),
            format!("{name} (set in code): must be a positive number of seconds, got {x}"),
        )),
    }
}

fn blocking<I, O, E, Fut>(
    py: Python<'_>,
    params: &Bound<'_, PyDict>,
    with_log: bool,
    op: &'static str,
    input: fn(&Bound<'_, PyDict>) -> Result<I, ConvError>,
    send: impl FnOnce(I) -> Fut + Send,
    output: fn(Python<'_>, &O) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>>
where
    I: Send,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    O: Send + 'static + convert::HasMeta,
    E: Into<Error> + Send + 'static,
{
    let input = input(params).map_err(|e| conv_err(py, e, op))?;
    let main = on_main_thread(py);
    match py.detach(move || wait_interruptibly(send(input), main)) {
        Ok(Ok(Ok(out))) => convert::with_attempt_log(py, output(py, &out)?, &out, with_log),
        Ok(Ok(Err(e))) => Err(to_py_err(py, &e.into(), op)),
        Ok(Err(Ended::Interrupted(e))) => Err(e),
        Ok(Err(Ended::Cancelled(why))) => Err(invalid_state(py, &why, op)),
        Err(e) => Err(to_py_err(py, &e, op)),
    }
}

/// Why a blocking call on the main thread ended without its answer.
enum Ended {
    /// A signal handler raised (Ctrl-C's `KeyboardInterrupt`).
    Interrupted(PyErr),
    /// The call's task was cancelled (the runtime shut down).
    Cancelled(String),
}

/// How often a blocking call that waits on the main thread runs Python's signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs a blocking call's future on the calling thread. On Python's main thread, the only
/// one that runs signal handlers, it stops every [`SIGNAL_CHECK`] while it waits and runs
/// them, as the interpreter does around a blocking socket call: Ctrl-C's
/// `KeyboardInterrupt`, or a SIGTERM handler's exception, ends the call (its task is
/// aborted). The handlers run between two turns of the runtime, not inside it, so a handler
/// may make a blocking call of its own; and the call runs as a task of the runtime, not a
/// future on this stack, so the handler's call, driving the runtime, drives it too (it may
/// hold what the handler's call waits for: the credentials it is loading). Never while the
/// interpreter shuts down.
fn wait_interruptibly<F>(fut: F, main: bool) -> Result<Result<F::Output, Ended>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if !main {
        return runtime::block_on(fut).map(Ok);
    }
    // A task of the runtime blocking calls share (it runs while some thread drives it),
    // aborted when the wait ends early (an exception from a handler).
    let mut task = runtime::AbortOnDrop(runtime::blocking_handle()?.spawn(fut));
    loop {
        // The timer is made inside the runtime, which it needs.
        let turn = async { tokio::time::timeout(SIGNAL_CHECK, &mut task.0).await };
        match runtime::block_on(turn)? {
            Ok(Ok(out)) => return Ok(Ok(out)),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => {
                return Ok(Err(Ended::Cancelled(format!(
                    "the call did not finish: {e}"
                ))))
            }
            Err(_) => {
                if let Some(Err(e)) = Python::try_attach(|py| py.check_signals()) {
                    // Aborting only marks the task; it lets go of what it holds (a lock, the
                    // credentials it was loading, its connection) when the runtime next runs
                    // it, and nothing else may drive this runtime for a long time (a meter
                    // runs on the other one).
                    task.0.abort();
                    let _ = runtime::block_on(&mut task.0);
                    return Ok(Err(Ended::Interrupted(e)));
                }
            }
        }
    }
}

/// Whether the calling thread is Python's main thread (after `fork()`, the child's).
pub(crate) fn on_main_thread(py: Python<'_>) -> bool {
    static MAIN: Mutex<(u32, u64)> = Mutex::new((0, 0));
    // SAFETY: returns the calling thread's id; needs nothing else.
    #[allow(clippy::useless_conversion)] // a c_ulong, 32 bits on some targets
    let me = u64::from(unsafe { pyo3::ffi::PyThread_get_thread_ident() });
    let pid = runtime::pid();
    let known = *MAIN.lock().unwrap_or_else(|p| p.into_inner());
    if known.0 == pid {
        return known.1 == me;
    }
    // Asked of Python without the lock held: Python may hand the GIL to another thread
    // midway, and that thread, waiting on the lock with the GIL, hung the whole process (a
    // thread pool's first calls, 11 processes in 40).
    let ident = py
        .import(crate::name!(py, "threading"))
        .and_then(|t| t.call_method0(crate::name!(py, "main_thread")))
        .and_then(|t| t.getattr(crate::name!(py, "ident")))
        .and_then(|i| i.extract::<u64>());
    match ident {
        Ok(ident) => {
            *MAIN.lock().unwrap_or_else(|p| p.into_inner()) = (pid, ident);
            ident == me
        }
        Err(_) => false,
    }
}

fn awaitable<'py, I, O: Send + 'static + convert::HasMeta, E, Fut>(
    py: Python<'py>,
    params: &Bound<'py, PyDict>,
    with_log: bool,
    op: &'static str,
    input: fn(&Bound<'_, PyDict>) -> Result<I, ConvError>,
    send: impl FnOnce(I) -> Fut,
    output: fn(Python<'_>, &O) -> PyResult<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>>
where
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: Into<Error> + Send + 'static,
{
    let input = input(params).map_err(|e| conv_err(py, e, op))?;
    runtime::handle().map_err(|e| to_py_err(py, &e, op))?;
    let fut = send(input);
    crate::asyncrt::awaitable(py, op, fut, move |py, result| match result {
        Ok(out) => convert::with_attempt_log(py, output(py, &out)?, &out, with_log),
        Err(e) => Err(to_py_err(py, &e.into(), op)),
    })
}

impl Client {
    /// The core client (shared with the usage meters built on it).
    pub fn core(&self) -> &marketplace_metering::Client {
        &self.inner
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (*, region_name=None, endpoint_url=None, aws_access_key_id=None,
        aws_secret_access_key=None, aws_session_token=None, profile_name=None,
        max_attempts=None, retry_mode=None, connect_timeout=None, read_timeout=None,
        attempt_timeout=None, operation_timeout=None, face_version=None, initial_backoff=None,
        use_fips_endpoint=None, use_dualstack_endpoint=None, ignore_configured_endpoint_urls=None,
        ca_bundle=None, verify=None, https_proxy=None, http_proxy=None, app_id=None,
        user_agent_extra=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        region_name: Option<String>,
        endpoint_url: Option<String>,
        aws_access_key_id: Option<String>,
        aws_secret_access_key: Option<String>,
        aws_session_token: Option<String>,
        profile_name: Option<String>,
        max_attempts: Option<i64>,
        retry_mode: Option<&str>,
        connect_timeout: Option<f64>,
        read_timeout: Option<f64>,
        attempt_timeout: Option<f64>,
        operation_timeout: Option<f64>,
        face_version: Option<String>,
        initial_backoff: Option<f64>,
        use_fips_endpoint: Option<bool>,
        use_dualstack_endpoint: Option<bool>,
        ignore_configured_endpoint_urls: Option<bool>,
        ca_bundle: Option<std::path::PathBuf>,
        verify: Option<bool>,
        https_proxy: Option<String>,
        http_proxy: Option<String>,
        app_id: Option<String>,
        user_agent_extra: Option<String>,
    ) -> PyResult<Self> {
        let fail = |e: Error| to_py_err(py, &e, "CreateClient");
        let mut b = Config::builder()
            .user_agent_suffix(format!(
                "python/{}",
                face_version.unwrap_or_else(|| marketplace_metering::VERSION.to_owned())
            ))
            .credentials_from_parts(aws_access_key_id, aws_secret_access_key, aws_session_token);
        b.set_region(region_name);
        b.set_endpoint_url(endpoint_url);
        b.set_profile(profile_name);
        // botocore's `max_attempts` was turned into total attempts by the Python layer; the
        // core checks the range (a negative count is as invalid as zero, one past u32 is as
        // many attempts as u32 holds).
        b.set_max_attempts(max_attempts.map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)));
        b.set_retry_mode(
            retry_mode
                .map(str::parse::<RetryMode>)
                .transpose()
                .map_err(fail)?,
        );
        b.set_connect_timeout(secs("connect_timeout", connect_timeout).map_err(fail)?);
        b.set_read_timeout(secs("read_timeout", read_timeout).map_err(fail)?);
        b.set_attempt_timeout(secs("attempt_timeout", attempt_timeout).map_err(fail)?);
        b.set_operation_timeout(secs("operation_timeout", operation_timeout).map_err(fail)?);
        b.set_initial_backoff(secs("initial_backoff", initial_backoff).map_err(fail)?);
        b.set_use_fips(use_fips_endpoint);
        b.set_use_dual_stack(use_dualstack_endpoint);
        b.set_ignore_configured_endpoint_urls(ignore_configured_endpoint_urls);
        b.set_ca_bundle(ca_bundle);
        b.set_https_proxy(https_proxy);
        b.set_http_proxy(http_proxy);
        b.set_app_id(app_id);
        b.set_user_agent_extra(user_agent_extra);
        if let Some(v) = verify {
            b = b.verify(v);
        }
        let config = py.detach(|| b.build()).map_err(fail)?;
        Ok(Client {
            inner: marketplace_metering::Client::new(config),
        })
    }

    /// The signing region.
    #[getter]
    fn region_name(&self) -> &str {
        self.inner.config().region()
    }

    /// The endpoint URL requests go to.
    #[getter]
    fn endpoint_url(&self) -> &str {
        self.inner.config().endpoint_url()
    }

    /// The User-Agent sent with each request.
    #[getter]
    fn user_agent(&self) -> &str {
        self.inner.config().user_agent()
    }

    /// Attempts per call, the first included.
    #[getter]
    fn max_attempts(&self) -> u32 {
        self.inner.config().retry_config().max_attempts
    }

    /// `"standard"`, `"adaptive"` or `"legacy"`.
    #[getter]
    fn retry_mode(&self) -> &'static str {
        self.inner.config().retry_config().mode.as_str()
    }

    /// Whether the FIPS endpoint is used.
    #[getter]
    fn use_fips_endpoint(&self) -> bool {
        self.inner.config().use_fips()
    }

    /// Whether the dual-stack endpoint is used.
    #[getter]
    fn use_dualstack_endpoint(&self) -> bool {
        self.inner.config().use_dual_stack()
    }

    /// The user-agent app id.
    #[getter]
    fn app_id(&self) -> Option<&str> {
        self.inner.config().app_id()
    }

    /// The CA bundle trusted instead of the platform's roots.
    #[getter]
    fn ca_bundle(&self) -> Option<String> {
        self.inner
            .config()
            .ca_bundle()
            .map(|p| p.display().to_string())
    }

    /// The proxies in use, botocore's shape, passwords replaced by `***`.
    #[getter]
    fn proxies(&self) -> std::collections::HashMap<&'static str, String> {
        let c = self.inner.config();
        let mut m = std::collections::HashMap::new();
        if let Some(p) = c.https_proxy() {
            m.insert("https", p);
        }
        if let Some(p) = c.http_proxy() {
            m.insert("http", p);
        }
        m
    }

    /// Releases the connection pools; returns how many were released.
    fn close(&self) -> usize {
        self.inner.close()
    }

    /// Where a setting came from: `"code"`, `"env:AWS_REGION"`, `"profile:dev:region"` or
    /// `"default"`.
    fn origin(&self, setting: &str) -> String {
        use marketplace_metering::profile::Origin;
        match self.inner.config().origin(setting) {
            Origin::Code(_) => "code".to_owned(),
            Origin::Env(v) => format!("env:{v}"),
            Origin::Profile { profile, key } => format!("profile:{profile}:{key}"),
            Origin::Default => "default".to_owned(),
        }
    }

    /// `BatchMeterUsage`, blocking (the GIL is released while waiting).
    #[pyo3(signature = (params, with_log=false))]
    fn batch_meter_usage(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyDict>,
        with_log: bool,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        blocking(
            py,
            params,
            with_log,
            "BatchMeterUsage",
            convert::batch_meter_usage_input,
            move |i| async move { c.send_batch_meter_usage(i).await },
            convert::batch_meter_usage_output,
        )
    }

    /// `MeterUsage`, blocking.
    #[pyo3(signature = (params, with_log=false))]
    fn meter_usage(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyDict>,
        with_log: bool,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        blocking(
            py,
            params,
            with_log,
            "MeterUsage",
            convert::meter_usage_input,
            move |i| async move { c.send_meter_usage(i).await },
            convert::meter_usage_output,
        )
    }

    /// `ResolveCustomer`, blocking.
    #[pyo3(signature = (params, with_log=false))]
    fn resolve_customer(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyDict>,
        with_log: bool,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        blocking(
            py,
            params,
            with_log,
            "ResolveCustomer",
            convert::resolve_customer_input,
            move |i| async move { c.send_resolve_customer(i).await },
            convert::resolve_customer_output,
        )
    }

    /// `RegisterUsage`, blocking.
    #[pyo3(signature = (params, with_log=false))]
    fn register_usage(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyDict>,
        with_log: bool,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        blocking(
            py,
            params,
            with_log,
            "RegisterUsage",
            convert::register_usage_input,
            move |i| async move { c.send_register_usage(i).await },
            convert::register_usage_output,
        )
    }

    /// `BatchMeterUsage`, as an awaitable.
    #[pyo3(signature = (params, with_log=false))]
    fn batch_meter_usage_async<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyDict>,
        with_log: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        awaitable(
            py,
            params,
            with_log,
            "BatchMeterUsage",
            convert::batch_meter_usage_input,
            move |i| async move { c.send_batch_meter_usage(i).await },
            convert::batch_meter_usage_output,
        )
    }

    /// `MeterUsage`, as an awaitable.
    #[pyo3(signature = (params, with_log=false))]
    fn meter_usage_async<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyDict>,
        with_log: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        awaitable(
            py,
            params,
            with_log,
            "MeterUsage",
            convert::meter_usage_input,
            move |i| async move { c.send_meter_usage(i).await },
            convert::meter_usage_output,
        )
    }

    /// `ResolveCustomer`, as an awaitable.
    #[pyo3(signature = (params, with_log=false))]
    fn resolve_customer_async<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyDict>,
        with_log: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        awaitable(
            py,
            params,
            with_log,
            "ResolveCustomer",
            convert::resolve_customer_input,
            move |i| async move { c.send_resolve_customer(i).await },
            convert::resolve_customer_output,
        )
    }

    /// `RegisterUsage`, as an awaitable.
    #[pyo3(signature = (params, with_log=false))]
    fn register_usage_async<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyDict>,
        with_log: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        awaitable(
            py,
            params,
            with_log,
            "RegisterUsage",
            convert::register_usage_input,
            move |i| async move { c.send_register_usage(i).await },
            convert::register_usage_output,
        )
    }
}

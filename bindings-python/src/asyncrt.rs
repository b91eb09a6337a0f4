// SPDX-License-Identifier: Apache-2.0
// pyo3-async-runtimes' generic runtime, on the core's shared (fork-aware) runtime.

//! Awaitables run on `marketplace_metering::runtime`, never on pyo3-async-runtimes' own
//! tokio runtime: that one cannot be shut down at exit (its threads crashed the interpreter
//! at exit in 7 of 20 runs) and is not rebuilt after `fork()`.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, Runtime};
use pyo3_async_runtimes::TaskLocals;

/// The core's shared runtime, as seen by pyo3-async-runtimes.
pub struct CoreRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

fn handle() -> tokio::runtime::Handle {
    // `Client` methods call `runtime::handle()` before creating an awaitable, so a runtime
    // that cannot start is reported as an exception there; this is only a last resort.
    match marketplace_metering::runtime::handle() {
        Ok(h) => h,
        Err(e) => panic!("marketplace_metering: {e}"),
    }
}

impl Runtime for CoreRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        handle().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        handle().spawn_blocking(f)
    }
}

impl ContextExt for CoreRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// An awaitable of `fut`, whose answer `convert` makes a Python object. The conversion runs
/// where pyo3-async-runtimes already holds the GIL to hand the answer to the event loop (a
/// thread of the runtime's blocking pool), never on one of the runtime's workers: a worker
/// waiting there for the GIL, held by the event loop or another thread, held up every call
/// in flight and the meters' background flushers with it.
pub fn awaitable<'py, T, F, C>(py: Python<'py>, fut: F, convert: C) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: for<'a> FnOnce(Python<'a>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    pyo3_async_runtimes::generic::future_into_py::<CoreRuntime, _, _>(py, async move {
        let value = fut.await;
        Ok(Converted { value, convert })
    })
}

/// An answer and how to make it a Python object, for pyo3-async-runtimes to convert.
struct Converted<T, C> {
    value: T,
    convert: C,
}

impl<'py, T, C> IntoPyObject<'py> for Converted<T, C>
where
    C: for<'a> FnOnce(Python<'a>, T) -> PyResult<Py<PyAny>>,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        (self.convert)(py, self.value).map(|o| o.into_bound(py))
    }
}

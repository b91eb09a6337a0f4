// SPDX-License-Identifier: Apache-2.0
// Awaitables of the core's futures, run on its shared (fork-aware) runtime, that never drop
// a Python object without the GIL.

//! An asyncio future of a Rust future, run on `marketplace_metering::runtime`.
//!
//! Not pyo3-async-runtimes' `future_into_py`, for two reasons:
//!
//! * Its tokio runtime cannot be shut down at exit (its threads crashed the interpreter at
//!   exit in 7 of 20 runs) and is not rebuilt after `fork()`; the core's is.
//! * Its task drops the asyncio future and the event loop on a runtime thread, without the
//!   GIL, at every call. pyo3 then queues the decrement under a lock of the whole process,
//!   and a child forked while a runtime thread held that lock (`multiprocessing`, a gunicorn
//!   worker) froze at its first call into the module. Here the task holds them in
//!   [`Handles`], dropped with the GIL only, by the [`Completer`]'s thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use marketplace_metering::runtime::PerProcess;
use marketplace_metering::Error;
use pyo3::prelude::*;

use crate::errors::{invalid_state, to_py_err};

/// An awaitable (an asyncio future of the running loop) of `fut`, run on the core's shared
/// runtime; `convert` makes its answer a Python object. The conversion runs on the
/// [`Completer`]'s thread, which takes the GIL to hand the answer to the event loop, never
/// on one of the runtime's workers: a worker waiting there for the GIL, held by the event
/// loop or another thread, held up every call in flight and the meters' background flushers
/// with it. Cancelling the asyncio future drops `fut`. A panic in `fut` is raised as the
/// operation `op`'s error.
pub fn awaitable<'py, T, F, C>(
    py: Python<'py>,
    op: &'static str,
    fut: F,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: for<'a> FnOnce(Python<'a>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let rt = marketplace_metering::runtime::handle().map_err(|e| to_py_err(py, &e, op))?;
    let event_loop = py
        .import(crate::name!(py, "asyncio"))?
        .call_method0(crate::name!(py, "get_running_loop"))?;
    let future = event_loop.call_method0(crate::name!(py, "create_future"))?;
    let (cancel, cancelled) = tokio::sync::oneshot::channel();
    future.call_method1(
        crate::name!(py, "add_done_callback"),
        (OnCancel(Mutex::new(Some(cancel))),),
    )?;
    let jobs = completer(py, op)?;
    let handles = Handles(Some((event_loop.unbind(), future.clone().unbind())));
    rt.spawn(async move {
        let outcome = tokio::select! {
            biased;
            // Dropped unsent (the future was collected, not cancelled): the call goes on.
            Ok(()) = cancelled => None,
            answer = CatchUnwind(Box::pin(fut)) => Some(answer),
        };
        let mut handles = handles;
        // Refused once the completer stopped (the interpreter exits): the handles are leaked.
        let _ = jobs.send(Job::Run(Box::new(move |py| {
            let Some((event_loop, future)) = handles.0.take() else {
                return;
            };
            if let Some(outcome) = outcome {
                // A panic converting the answer is the call's error too: unanswered, the
                // awaiting coroutine would wait for good.
                let converted = outcome.and_then(|answer| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| convert(py, answer)))
                });
                let result = converted
                    .unwrap_or_else(|panic| Err(to_py_err(py, &Error::from_panic(&*panic), op)));
                complete(py, event_loop.bind(py), future.bind(py), result);
            }
            // Dropped here, with the GIL.
            drop((event_loop, future));
        })));
    });
    Ok(future)
}

/// What the completer thread does.
enum Job {
    /// Hand a call's answer to its future (with the GIL).
    Run(Box<dyn FnOnce(Python<'_>) + Send>),
    /// End the thread.
    Stop,
}

/// This process's completer: one thread, attached to the interpreter for its whole life,
/// that hands every async call's answer to its event loop. Not a thread of the runtime's
/// blocking pool taking the GIL for each answer: a thread the interpreter does not know
/// gets a thread state made and deleted at each `Python::attach`, under the interpreter's
/// own lock, and a child forked while a thread held that lock froze in CPython's after-fork
/// code (CPython before 3.11.8 and 3.12: gh-112275). One process's (a child starts its own).
struct Completer {
    jobs: Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

static COMPLETER: PerProcess<Option<Completer>> = PerProcess::new();

/// Set by [`stop_completer`]: the package's exit hook has run.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// The completer's queue, its thread started if need be. Refused once the package's exit hook
/// has run: a completer started then would still be attached when the interpreter goes, and
/// an answer arriving during its finalization made its thread exit under Rust's frames (the
/// process aborted).
fn completer(py: Python<'_>, op: &str) -> PyResult<Sender<Job>> {
    if STOPPED.load(Ordering::SeqCst) {
        return Err(invalid_state(
            py,
            "the interpreter is exiting (marketplace_metering's exit hook has run), so an async \
             call could not be answered: make it before, or use the blocking client",
            op,
        ));
    }
    let mut slot = COMPLETER.lock();
    if let Some(c) = slot.as_ref() {
        return Ok(c.jobs.clone());
    }
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("mm-py-complete".into())
        .spawn(move || Python::attach(|py| run_jobs(py, queue)));
    match started {
        Ok(thread) => {
            *slot = Some(Completer {
                jobs: jobs.clone(),
                thread,
            });
            Ok(jobs)
        }
        Err(e) => {
            // Let go of first: making the exception runs Python, which may hand the GIL to
            // a thread that waits on this lock.
            drop(slot);
            Err(invalid_state(
                py,
                &format!("cannot start the thread that hands async calls their answers: {e}"),
                op,
            ))
        }
    }
}

/// The completer's loop: waits for jobs with the GIL let go, then runs every job queued by
/// then before letting it go again (a busy event loop's thread held it up to 5 ms each time).
fn run_jobs(py: Python<'_>, mut queue: Receiver<Job>) {
    loop {
        // Moved through: a `Receiver` is `Send`, not `Sync`.
        let (next, back) = py.detach(move || (queue.recv(), queue));
        queue = back;
        let Ok(Job::Run(mut job)) = next else {
            return;
        };
        loop {
            // A panic must not end the thread: every later answer would wait for good.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(py)));
            match queue.try_recv() {
                Ok(Job::Run(next)) => job = next,
                Err(TryRecvError::Empty) => break,
                Ok(Job::Stop) | Err(TryRecvError::Disconnected) => return,
            }
        }
    }
}

/// At exit (`_shutdown`, after the runtime stopped, so no answer is on its way): ends the
/// completer's thread, whose thread state must go before the interpreter does. Async calls
/// are refused from then on (see [`completer`]).
pub fn stop_completer(py: Python<'_>) {
    STOPPED.store(true, Ordering::SeqCst);
    let Some(c) = COMPLETER.lock().take() else {
        return;
    };
    if c.jobs.send(Job::Stop).is_ok() {
        let _ = py.detach(|| c.thread.join());
    }
}

/// Hands `result` to `future` on its event loop's thread, unless it is done by then
/// (cancelled). A loop already closed has nobody waiting: the answer is dropped.
fn complete(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    future: &Bound<'_, PyAny>,
    result: PyResult<Py<PyAny>>,
) {
    let (failed, value) = match result {
        Ok(v) => (false, v),
        Err(e) => (true, e.into_value(py).into_any()),
    };
    let _ = event_loop.call_method1(
        crate::name!(py, "call_soon_threadsafe"),
        (Complete, future, failed, value),
    );
}

/// The asyncio future and its event loop, held by a call's task. Taken and dropped with the
/// GIL when the answer is handed over; anywhere else (the task dropped as the runtime shuts
/// down at exit, or a blocking thread refused) they are leaked instead of dropped without
/// the GIL (see the module docs).
struct Handles(Option<(Py<PyAny>, Py<PyAny>)>);

impl Drop for Handles {
    fn drop(&mut self) {
        if let Some(handles) = self.0.take() {
            std::mem::forget(handles);
        }
    }
}

/// The future's done callback: a cancelled future drops the call's Rust future.
#[pyclass(frozen)]
struct OnCancel(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

#[pymethods]
impl OnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future
            .call_method0(crate::name!(future.py(), "cancelled"))?
            .is_truthy()?
        {
            let sender = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(sender) = sender {
                let _ = sender.send(());
            }
        }
        Ok(())
    }
}

/// Sets a future's result or exception on its loop's thread, unless it is done already.
#[pyclass(frozen)]
struct Complete;

#[pymethods]
impl Complete {
    fn __call__(
        &self,
        future: &Bound<'_, PyAny>,
        failed: bool,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = future.py();
        if future.call_method0(crate::name!(py, "done"))?.is_truthy()? {
            return Ok(());
        }
        let set = if failed {
            crate::name!(py, "set_exception")
        } else {
            crate::name!(py, "set_result")
        };
        future.call_method1(set, (value,))?;
        Ok(())
    }
}

/// `fut`, with a panic as its output instead of unwinding out of the task (which would end
/// the task without an answer, and leave the awaiting coroutine waiting for good).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

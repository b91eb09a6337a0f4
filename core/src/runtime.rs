// SPDX-License-Identifier: Apache-2.0
// The process-wide tokio runtime every face shares, and each blocking caller's own; both are
// rebuilt transparently after fork().

//! The shared runtime, and the blocking callers' per-thread runtimes.
//!
//! Async code in this crate never names a runtime. Spawned work (the faces' async calls, the
//! meter's flusher) runs on the shared runtime; blocking calls (the blocking client, the C
//! face, the Python face's methods) run on the calling thread. Why it is built this way:
//!
//! * **One, lazily.** Faces load the library into processes that may never call it; nothing
//!   starts until the first call, and the runtime has few worker threads
//!   ([`DEFAULT_WORKERS`], 1 for the Node face; `MM_RUNTIME_WORKERS` to change) because
//!   metering is I/O-bound.
//! * **Fork.** A child created by `fork()` inherits the runtime's memory but none of its
//!   threads, and it shares the parent's epoll instance: driving the inherited runtime in
//!   the child hangs the child and corrupts the parent. So the pid is
//!   stored next to the runtime; when it changes, the inherited runtime is leaked (dropping
//!   it would join threads that do not exist in the child) and a new one is built. HTTP
//!   connection pools are tied to a runtime, so the client keys its HTTP client on the same
//!   pid (see [`pid`]).
//! * **No panics.** [`block_on`] from a runtime worker thread would panic inside tokio; it
//!   returns [`ErrorCode::InvalidState`](crate::ErrorCode::InvalidState) instead.
//! * **Blocking calls stay on the caller's thread.** [`block_on`] runs the call on a
//!   current-thread runtime owned by the calling thread, so the request, its connection and
//!   the response are all handled there. Handing them to a worker and back costs two thread
//!   wake-ups per call: on a 2-core VM about 75 µs of a 275 µs loopback call. The thread's
//!   runtime (and the HTTP connections made on it, see `Client`) live as long as the
//!   thread; spawned work ([`spawn`], the meter's flusher) still goes to the shared runtime.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::Error;

struct Shared {
    rt: Runtime,
    pid: u32,
}

static SHARED: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

/// The current process id; after `fork()` it differs from the parent's.
pub fn pid() -> u32 {
    std::process::id()
}

/// Worker threads of the shared runtime unless `MM_RUNTIME_WORKERS` says otherwise.
pub const DEFAULT_WORKERS: usize = 2;

/// A builder with the shared runtime's settings, for faces that must own a runtime of their
/// own kind (napi's `create_custom_tokio_runtime`).
pub fn builder() -> tokio::runtime::Builder {
    builder_with_workers(DEFAULT_WORKERS)
}

/// [`builder`] with another default worker count (`MM_RUNTIME_WORKERS` still wins), for a
/// face whose calls are cheaper on fewer threads: a call's future and its connection's task
/// then share one worker instead of waking each other across threads.
pub fn builder_with_workers(default_workers: usize) -> tokio::runtime::Builder {
    let workers = std::env::var("MM_RUNTIME_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(default_workers.clamp(1, 64));
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(workers).thread_name("mm-rt").enable_all();
    b
}

fn shared() -> Result<Arc<Shared>, Error> {
    let pid = pid();
    let mut guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = guard.as_ref() {
        if s.pid == pid {
            return Ok(s.clone());
        }
        // Inherited from the parent across fork(): never drop it here.
        std::mem::forget(guard.take());
    }
    let rt = builder().build().map_err(|e| {
        Error::invalid_state(format!("cannot start the runtime: {e}")).with_source(e)
    })?;
    let s = Arc::new(Shared { rt, pid });
    *guard = Some(s.clone());
    Ok(s)
}

/// A handle to the shared runtime (built on first use, rebuilt after fork).
pub fn handle() -> Result<Handle, Error> {
    Ok(shared()?.rt.handle().clone())
}

thread_local! {
    /// The calling thread's runtime for [`block_on`], and the pid it was built in.
    static LOCAL: RefCell<Option<(u32, Runtime)>> = const { RefCell::new(None) };
    /// Whether this thread is inside [`block_on`] on its own runtime.
    static ON_LOCAL: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs inside [`block_on`] on its thread's own runtime: anything that
/// outlives the call and is tied to a runtime (pooled connections) must then be kept per
/// thread, or it would stall when another thread's call picked it up.
pub(crate) fn on_thread_runtime() -> bool {
    ON_LOCAL.try_with(Cell::get).unwrap_or(false)
}

/// Runs `fut` to completion on the calling thread, blocking it.
///
/// The future runs on a current-thread runtime that belongs to the calling thread (built on
/// its first blocking call, rebuilt after fork); many threads may block at once, each on its
/// own. Called from a thread that is already inside a tokio runtime (an async task), it
/// returns `InvalidState` instead of panicking.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, Error> {
    if Handle::try_current().is_ok() {
        return Err(Error::invalid_state(
            "a blocking call was made from inside an async runtime; use the async client there",
        ));
    }
    let pid = pid();
    // Taken out while it runs, so nothing here is borrowed across the call.
    let taken = LOCAL.try_with(|l| l.borrow_mut().take());
    let rt = match taken {
        Ok(Some((p, rt))) if p == pid => rt,
        Ok(inherited) => {
            // One inherited across fork() shares the parent's epoll instance: never drop it.
            std::mem::forget(inherited);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    Error::invalid_state(format!("cannot start the runtime: {e}")).with_source(e)
                })?
        }
        // This thread is exiting (its thread-locals are gone): the shared runtime serves.
        Err(_) => return Ok(shared()?.rt.block_on(fut)),
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = ON_LOCAL.try_with(|c| c.set(false));
        }
    }
    let _ = ON_LOCAL.try_with(|c| c.set(true));
    let reset = Reset;
    let out = rt.block_on(async {
        // While the thread was away its runtime did not run, so nothing has seen what
        // happened to its idle pooled connections (a server closing one). Yielding twice
        // polls the I/O driver, then runs the connections' tasks, which retire the closed
        // ones before this call picks a connection.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        fut.await
    });
    drop(reset);
    let _ = LOCAL.try_with(|l| *l.borrow_mut() = Some((pid, rt)));
    Ok(out)
}

/// Spawns `fut` on the shared runtime.
pub fn spawn<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(shared()?.rt.spawn(fut))
}

/// Work that must outlive a [`shutdown`]: an owner (when it is gone, so is the entry) and
/// what starts the work again on a new runtime.
type Restart = (
    std::sync::Weak<dyn std::any::Any + Send + Sync>,
    Box<dyn Fn() + Send + Sync>,
);

static RESTARTS: Mutex<Vec<Restart>> = Mutex::new(Vec::new());

/// Registers `restart`, called after every [`shutdown`] while `owner` is alive to start its
/// long-lived tasks (a meter's background flusher) again on a new runtime.
pub(crate) fn restart_after_shutdown(
    owner: std::sync::Weak<dyn std::any::Any + Send + Sync>,
    restart: impl Fn() + Send + Sync + 'static,
) {
    let mut r = RESTARTS.lock().unwrap_or_else(|p| p.into_inner());
    r.retain(|(o, _)| o.strong_count() > 0);
    r.push((owner, Box::new(restart)));
}

/// Stops the shared runtime, waiting up to 2 s for its tasks; the next call builds a new one.
///
/// Faces call it at exit (Python's `atexit`, C's `mm_shutdown`) so worker threads are joined
/// before the interpreter or process tears down. Long-lived tasks of owners still alive (the
/// background flusher of a meter not yet dropped) are started again at once on a new
/// runtime: a shutdown never stops a live meter's flushing. With no such owner, no thread
/// is left running.
pub fn shutdown() {
    let taken = SHARED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(s) = taken {
        if s.pid != pid() {
            std::mem::forget(s);
            return;
        }
        match Arc::try_unwrap(s) {
            Ok(s) => s.rt.shutdown_timeout(Duration::from_secs(2)),
            // Still used elsewhere (a call in flight): leave it to its last owner.
            Err(s) => drop(s),
        }
    }
    let live: Vec<Restart> = {
        let mut r = RESTARTS.lock().unwrap_or_else(|p| p.into_inner());
        r.retain(|(o, _)| o.strong_count() > 0);
        std::mem::take(&mut *r)
    };
    // Unlocked: a restart spawns (building the new runtime) and may drop its owner.
    for (_, restart) in &live {
        restart();
    }
    let mut r = RESTARTS.lock().unwrap_or_else(|p| p.into_inner());
    r.extend(live.into_iter().filter(|(o, _)| o.strong_count() > 0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_and_refuses_inside_a_runtime() {
        assert_eq!(block_on(async { 41 + 1 }).unwrap(), 42);
        let inner = block_on(async { block_on(async { 1 }) }).unwrap();
        assert_eq!(
            inner.unwrap_err().error_code(),
            crate::ErrorCode::InvalidState
        );
    }

    #[test]
    fn block_on_runs_on_the_calling_thread_and_keeps_its_runtime() {
        let me = std::thread::current().id();
        let ran_on = block_on(async { tokio::spawn(async { std::thread::current().id() }).await })
            .unwrap()
            .unwrap();
        assert_eq!(ran_on, me);
        // A task spawned by one call is still there for the next: the runtime is kept.
        #[allow(clippy::async_yields_async)] // the handle is awaited by the next call
        let pending = block_on(async { tokio::spawn(async { 7 }) }).unwrap();
        assert_eq!(block_on(pending).unwrap().unwrap(), 7);
        assert!(!on_thread_runtime());
        assert!(block_on(async { on_thread_runtime() }).unwrap());
    }

    #[test]
    fn spawn_runs_on_named_workers() {
        let name = block_on(async {
            spawn(async { std::thread::current().name().map(str::to_owned) })
                .unwrap()
                .await
                .unwrap()
        })
        .unwrap();
        assert_eq!(name.as_deref(), Some("mm-rt"));
    }
}

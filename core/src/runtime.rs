// SPDX-License-Identifier: Apache-2.0
// The process-wide tokio runtimes: one whose workers run spawned work, one that blocking
// callers share and take turns driving, and one thread for the I/O of async calls made
// outside any task; all are rebuilt transparently after fork().

//! The shared runtimes.
//!
//! Async code in this crate never names a runtime. Spawned work (the faces' async calls, the
//! meter's flusher) runs on the shared multi-thread runtime; blocking calls (the blocking
//! client, the C face, the Python face's methods) run on the calling thread, on the blocking
//! runtime that every blocking caller shares. Why it is built this way:
//!
//! * **One, lazily.** Faces load the library into processes that may never call it; nothing
//!   starts until the first call, and the runtime has few worker threads
//!   ([`DEFAULT_WORKERS`]; `MM_RUNTIME_WORKERS` to change) because metering is I/O-bound.
//!   The Node face's calls run on napi's runtime, built from [`builder_with_workers`] with
//!   one worker; the meter's flusher and the fleet store's connections run here in every face.
//! * **Fork.** A child created by `fork()` inherits the runtimes' memory but none of their
//!   threads, and it shares the parent's epoll instances: driving an inherited runtime in the
//!   child hangs the child and corrupts the parent. So each runtime is kept in a slot of one
//!   process (`PerProcess`): a child gets a new slot, and a new runtime, while the inherited
//!   runtime is kept but never dropped (dropping it would join threads that do not exist in
//!   the child; see `keep_inherited`). HTTP connection pools are tied to a runtime, so the
//!   client keeps its HTTP clients the same way. A slot's lock that a parent's thread held
//!   at the fork is never taken in the child.
//! * **No panics.** [`block_on`] from a runtime worker thread would panic inside tokio; it
//!   returns [`ErrorCode::InvalidState`](crate::ErrorCode::InvalidState) instead.
//! * **Blocking callers share one pool and drive it themselves.** [`block_on`] runs the call
//!   on one current-thread runtime shared by all blocking callers, and each client keeps one
//!   connection pool for it: connections are bounded by the calls in flight, not by the
//!   threads that ever called, and outlive the thread that opened them (a thread pool that
//!   recycles its threads reuses them). There are no worker threads: the calling thread runs
//!   the runtime while it waits (tokio's current-thread `block_on`). When it is the only caller,
//!   its request, connection and response are all handled on it, with no thread hand-off
//!   (one costs two wake-ups, about 75 µs of a 275 µs loopback call on a 2-core VM). When
//!   several threads call at once, one of them drives the runtime (every connection's I/O)
//!   while the others run their own call's signing and parsing and wait; when the driver's
//!   call is done, a waiting caller takes over.
//! * **Async calls made outside any task get a thread for their I/O.** The future a
//!   multi-thread runtime's `block_on` runs (`#[tokio::main]`'s body) is not on a worker, so
//!   a connection task it talks to runs on another thread and every hand-off wakes one.
//!   Such calls run their HTTP exchange on a one-thread I/O runtime that also owns their
//!   connections, which therefore outlive the caller's runtime. Calls inside a task run it
//!   in place: the connection's task shares their worker.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::Error;

/// A runtime of this process.
struct Shared {
    rt: Runtime,
}

type Slot = PerProcess<Option<Arc<Shared>>>;

/// The multi-thread runtime for spawned work.
static SHARED: Slot = PerProcess::new();
/// The current-thread runtime blocking callers share.
static BLOCKING: Slot = PerProcess::new();
/// The one-thread runtime that runs the HTTP exchanges of async calls made outside any task.
static IO: Slot = PerProcess::new();

/// A `Mutex` of one process: a child forked from it gets a new, unlocked one (holding
/// `T::default()`, or what [`PerProcess::lock_or_inherit`] makes of the parent's value), and
/// the parent's, with what it holds, is kept and never dropped there.
///
/// A lock a thread held at the instant of `fork()` stays locked in the child for good: the
/// thread is not there to let it go. The shared runtime's workers take these locks (every
/// fleet flush spawns; a client's first call builds its pool), so a child forked while one
/// did hung at its first call, or at exit in Python's `atexit` (a gunicorn worker of a
/// `--preload` app). What the parent's holds (its runtimes, its connection pools) is tied to
/// the parent's threads and must not be dropped in the child either (see `keep_inherited`).
///
/// Public for the faces, whose own process-wide lists (the C face's meters to write at exit)
/// a child must not find locked either; not part of the crate's API for others.
#[doc(hidden)]
pub struct PerProcess<T: 'static> {
    current: AtomicPtr<Generation<T>>,
    /// `Send` and `Sync` as a `Mutex<T>` is (an `AtomicPtr` is both whatever it points to).
    _value: std::marker::PhantomData<Mutex<T>>,
}

struct Generation<T> {
    forks: u64,
    value: Mutex<T>,
}

/// The generation a parent process used, kept reachable in the child.
struct Inherited<T>(#[allow(dead_code)] *mut Generation<T>);

// SAFETY: only kept, never read or dropped (see `keep_inherited`).
unsafe impl<T> Send for Inherited<T> {}

impl<T: 'static> PerProcess<T> {
    /// One that holds nothing yet: each process's value starts as `T::default()` (or as
    /// [`lock_or_inherit`](Self::lock_or_inherit) makes it).
    pub const fn new() -> Self {
        PerProcess {
            current: AtomicPtr::new(std::ptr::null_mut()),
            _value: std::marker::PhantomData,
        }
    }

    /// One holding `value` in this process (a child starts from it as
    /// [`lock_or_inherit`](Self::lock_or_inherit) says).
    pub fn with(value: T) -> Self {
        let first = Box::new(Generation {
            forks: process_generation(),
            value: Mutex::new(value),
        });
        PerProcess {
            current: AtomicPtr::new(Box::into_raw(first)),
            _value: std::marker::PhantomData,
        }
    }

    /// This process's value, locked. In a child, it starts as `inherit` makes it of the
    /// parent's value, which it is given when no thread of the parent's held it at the fork
    /// (`None` otherwise, or when the parent had none).
    pub fn lock_or_inherit(&self, inherit: impl Fn(Option<&T>) -> T) -> MutexGuard<'_, T> {
        self.lock_making(|parent| match parent {
            Some(parent) => inherit_from(parent, &inherit),
            None => inherit(None),
        })
    }

    /// This process's value, locked; `make` makes a new process's from its parent's lock.
    fn lock_making(&self, make: impl Fn(Option<&Mutex<T>>) -> T) -> MutexGuard<'_, T> {
        let forks = process_generation();
        loop {
            let p = self.current.load(Ordering::Acquire);
            // SAFETY: a pointer stored here is a `Box` freed only by `drop`, which has `&mut`.
            if let Some(g) = unsafe { p.as_ref() } {
                if g.forks == forks {
                    return g.value.lock().unwrap_or_else(PoisonError::into_inner);
                }
            }
            // SAFETY: as above; a generation replaced is kept, never freed.
            let value = make(unsafe { p.as_ref() }.map(|old| &old.value));
            let new = Box::into_raw(Box::new(Generation {
                forks,
                value: Mutex::new(value),
            }));
            match self
                .current
                .compare_exchange(p, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if !p.is_null() => keep_inherited(Inherited(p)),
                Ok(_) => {}
                // SAFETY: `new` was never shared.
                Err(_) => drop(unsafe { Box::from_raw(new) }),
            }
        }
    }
}

impl<T: 'static> Default for PerProcess<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// `inherit` of the value a parent's lock holds, or of nothing when a parent's thread held the
/// lock at the fork. A sibling thread of this child may hold it a moment too (making its own
/// value from it), so it is tried for up to 200 ms first (a busy machine may deschedule that
/// sibling a while); a parent's thread never lets it go.
fn inherit_from<T>(parent: &Mutex<T>, inherit: &impl Fn(Option<&T>) -> T) -> T {
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    for tries in 0.. {
        match parent.try_lock() {
            Ok(v) => return inherit(Some(&v)),
            Err(std::sync::TryLockError::Poisoned(v)) => return inherit(Some(&v.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() >= deadline => {
                break;
            }
            Err(std::sync::TryLockError::WouldBlock) if tries < 100 => std::thread::yield_now(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1))
            }
        }
    }
    inherit(None)
}

impl<T: Default + 'static> PerProcess<T> {
    /// This process's value, locked; a child's starts as `T::default()`.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock_making(|_| T::default())
    }
}

impl<T: 'static> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let p = *self.current.get_mut();
        // SAFETY: a pointer stored here is a `Box` freed only here.
        match unsafe { p.as_ref() } {
            None => {}
            // The parent's: its value is tied to the parent's threads.
            Some(g) if g.forks != process_generation() => keep_inherited(Inherited(p)),
            // SAFETY: this process's, and this value is being dropped.
            Some(_) => drop(unsafe { Box::from_raw(p) }),
        }
    }
}

/// Forks seen by this process: bumped in the child by a `pthread_atfork` handler.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// The pid, once asked; 0 until then and again in a child just forked.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn after_fork_in_child() {
    // Only atomics: a handler running in a freshly forked child must be async-signal-safe.
    FORKS.fetch_add(1, Ordering::SeqCst);
    PID.store(0, Ordering::SeqCst);
}

/// A number that changes in a child process after every `fork()`, read without asking the
/// kernel (glibc does not cache `getpid()`: it is a system call every time).
pub(crate) fn process_generation() -> u64 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        #[cfg(unix)]
        // SAFETY: registers a handler that only stores to atomics, which is async-signal-safe.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    FORKS.load(Ordering::SeqCst)
}

/// The current process id; after `fork()` it differs from the parent's. Every call asks
/// it (to key pools and runtimes on it), so it is asked of the kernel once per process:
/// the `fork()` handler clears it in the child.
pub fn pid() -> u32 {
    let known = PID.load(Ordering::Acquire);
    if known != 0 {
        return known;
    }
    // The handler is registered before the pid is kept, so no fork can miss clearing it.
    process_generation();
    let pid = std::process::id();
    PID.store(pid, Ordering::Release);
    pid
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
    b.worker_threads(workers)
        .thread_name("mm-rt")
        .enable_all()
        .on_thread_start(sigpipe_on_start());
    b
}

/// What [`keep_inherited`] kept: this process's list, so a child forked while one of this
/// process's threads kept something does not find it locked for good. (The parent's list,
/// replaced in a child, is kept in the child's by `keep_inherited` itself.)
static KEPT: PerProcess<Vec<Box<dyn std::any::Any + Send>>> = PerProcess::new();

/// Keeps `inherited`, something a child process got from its parent across fork() and must
/// never drop (a runtime, or a pool of connections tied to one: dropping it would join
/// threads that do not exist in the child, or touch the parent's epoll instance and
/// sockets). Kept reachable for the life of the process rather than forgotten, so a leak
/// checker run on the child (valgrind) does not report it as lost.
pub(crate) fn keep_inherited<T: Send + 'static>(inherited: T) {
    KEPT.lock().push(Box::new(inherited));
}

/// `build`, a panic caught as an error: a worker thread the OS refuses (`EAGAIN`: a
/// container's pids limit reached) makes tokio panic.
fn caught(build: impl FnOnce() -> std::io::Result<Runtime>) -> std::io::Result<Runtime> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(build))
        .unwrap_or_else(|panic| Err(std::io::Error::other(crate::error::panic_message(&*panic))))
}

/// The runtime in `slot`, built with `build` on first use and again after fork.
fn get(slot: &Slot, build: fn() -> std::io::Result<Runtime>) -> Result<Arc<Shared>, Error> {
    let mut guard = slot.lock();
    if let Some(s) = guard.as_ref() {
        return Ok(s.clone());
    }
    let rt = caught(build).map_err(|e| {
        Error::invalid_state(format!("cannot start the runtime: {e}")).with_source(e)
    })?;
    let s = Arc::new(Shared { rt });
    *guard = Some(s.clone());
    Ok(s)
}

fn shared() -> Result<Arc<Shared>, Error> {
    get(&SHARED, || {
        let start = sigpipe_on_start();
        builder()
            .on_thread_start(move || {
                start();
                let _ = ON_SHARED.try_with(|c| c.set(true));
            })
            .build()
    })
}

fn blocking() -> Result<Arc<Shared>, Error> {
    get(&BLOCKING, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(sigpipe_on_start())
            .build()
    })
}

fn io() -> Result<Arc<Shared>, Error> {
    get(&IO, || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mm-io")
            .enable_all()
            .on_thread_start(sigpipe_on_start())
            .build()
    })
}

/// Blocks SIGPIPE for good in one of the library's own threads, which write its sockets.
///
/// A TLS or HTTP write to a connection the server reset (a load balancer's RST) is a
/// `writev`, which has no `MSG_NOSIGNAL` and raises SIGPIPE. A C or C++ host keeps SIGPIPE's
/// default action, which ends the process, usage not yet flushed with it. Blocked, the
/// signal stays pending on this thread and the write fails with `EPIPE`, an I/O error the
/// call handles. (Python, Node and Rust programs ignore SIGPIPE; the JVM handles it.)
///
/// `host_blocks`: whether the host blocks SIGPIPE itself on the thread that built the
/// runtime (see [`host_blocks_sigpipe`]); if not, the callbacks this thread runs get it
/// unblocked (see [`as_host`]).
fn block_sigpipe(host_blocks: bool) {
    mask_sigpipe(true);
    if !host_blocks {
        let _ = SIGPIPE_BLOCKED_HERE.try_with(|c| c.set(true));
    }
}

/// What a runtime's threads run as they start ([`block_sigpipe`]), with the host's mask read
/// now, on the thread that builds the runtime.
fn sigpipe_on_start() -> impl Fn() + Send + Sync + 'static {
    let host = host_blocks_sigpipe();
    move || block_sigpipe(host)
}

/// Blocks (`true`) or unblocks SIGPIPE in the calling thread only.
fn mask_sigpipe(block: bool) {
    #[cfg(target_os = "linux")]
    // SAFETY: changes only this thread's mask, with a set made by sigemptyset/sigaddset.
    unsafe {
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &sigpipe_set(), std::ptr::null_mut());
    }
    #[cfg(not(target_os = "linux"))]
    let _ = block;
}

/// Whether the host blocks SIGPIPE on this thread: its mask (not on one of the library's
/// threads, whose block is the library's), or, inside a blocking call whose guard blocked
/// SIGPIPE meanwhile, its mask before the call. A runtime first built inside a blocking call
/// (a C host's first one) inherits the guard's block in its threads, which is the library's,
/// not the host's choice.
fn host_blocks_sigpipe() -> bool {
    #[cfg(target_os = "linux")]
    {
        // On one of the library's threads, the block is the library's.
        let ours = || SIGPIPE_BLOCKED_HERE.try_with(Cell::get).unwrap_or(false);
        HOST_BLOCKS_SIGPIPE
            .try_with(Cell::get)
            .ok()
            .flatten()
            .unwrap_or_else(|| !ours() && sigpipe_blocked_now())
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Whether a SIGPIPE is pending for this thread itself (raised by its own write), not for
/// the process (sent with `kill`, which a host that blocks SIGPIPE takes with `sigwait`):
/// `sigpending` tells the two apart only through `/proc/thread-self/status` (`SigPnd`).
/// Read when a SIGPIPE is pending, which is rare; unreadable, it counts as this thread's.
#[cfg(target_os = "linux")]
fn sigpipe_pending_here() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigPnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_none_or(|bits| bits & (1 << (libc::SIGPIPE - 1)) != 0)
}

/// Takes back a SIGPIPE pending for this thread (one its own writes raised); one pending
/// for the process is left to the host. SIGPIPE must be blocked here.
#[cfg(target_os = "linux")]
fn take_own_sigpipe() {
    // SAFETY: reads the pending set; sigtimedwait with a zero timeout takes a signal already
    // pending, this thread's first (as the kernel dequeues them), and never waits.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        if libc::sigismember(&pending, libc::SIGPIPE) == 1 && sigpipe_pending_here() {
            let pipe = sigpipe_set();
            let now: libc::timespec = std::mem::zeroed();
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
    }
}

/// Runs `f`, the seller's code (an event callback), with SIGPIPE as the host has it. On one
/// of the library's threads, which block it for good ([`block_sigpipe`]), it is unblocked
/// while `f` runs, once a SIGPIPE the library's writes left pending is taken back: a child
/// process the callback starts (`system()`, `popen()`) inherits the mask, and a pipeline
/// there (`producer | head`) must end by SIGPIPE as it does anywhere else.
#[cfg(feature = "meter")]
pub(crate) fn as_host<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_os = "linux")]
    if SIGPIPE_BLOCKED_HERE.try_with(Cell::get).unwrap_or(false) && sigpipe_blocked_now() {
        struct Reblock;
        impl Drop for Reblock {
            fn drop(&mut self) {
                mask_sigpipe(true);
            }
        }
        take_own_sigpipe();
        mask_sigpipe(false);
        let _again = Reblock;
        return f();
    }
    f()
}

/// Starts a thread of the library's own for the seller's code (a meter's event callbacks),
/// with SIGPIPE as the host has it: one started from a runtime thread would inherit the
/// SIGPIPE the library blocked there (see [`block_sigpipe`]).
#[cfg(feature = "meter")]
pub(crate) fn spawn_thread_as_host(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let ours = SIGPIPE_BLOCKED_HERE.try_with(Cell::get).unwrap_or(false);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if ours {
                mask_sigpipe(false);
            }
            f()
        })
        .map(drop)
}

/// Whether this thread blocks SIGPIPE now (a callback inside a callback finds it unblocked
/// by the outer one, and leaves it so).
#[cfg(target_os = "linux")]
fn sigpipe_blocked_now() -> bool {
    // SAFETY: reads this thread's mask.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
        libc::sigismember(&mask, libc::SIGPIPE) == 1
    }
}

/// The signal set holding SIGPIPE only.
#[cfg(target_os = "linux")]
fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is plain data, made a valid set by sigemptyset.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        pipe
    }
}

/// SIGPIPE blocked in the calling thread while this lives, for the library's writes made on a
/// thread of the seller's (a blocking call's sockets, its lines on standard error): the host
/// may keep SIGPIPE's default action (see [`block_sigpipe`]). On drop, a SIGPIPE those writes
/// raised is taken back and the thread's mask is restored as it was. Nothing is changed
/// while the process ignores SIGPIPE, so Python, Node and Rust hosts pay one `sigaction`.
pub(crate) struct SigpipeHeld {
    /// The thread's mask before, when SIGPIPE was blocked here.
    #[cfg(target_os = "linux")]
    old: Option<libc::sigset_t>,
    /// What [`host_blocks_sigpipe`] answered on this thread before (a guard inside a guard).
    #[cfg(target_os = "linux")]
    outer: Option<bool>,
    /// Whether a SIGPIPE pending at the drop is this guard's to take: none was before.
    #[cfg(target_os = "linux")]
    ours: bool,
}

impl SigpipeHeld {
    pub(crate) fn new() -> Self {
        #[cfg(target_os = "linux")]
        // SAFETY: reads SIGPIPE's action and the pending set; changes only this thread's mask.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut action) == 0
                && action.sa_sigaction == libc::SIG_IGN
            {
                return Self {
                    old: None,
                    outer: None,
                    ours: false,
                };
            }
            let pipe = sigpipe_set();
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
            // One pending before is not this call's to take.
            let ours = libc::sigismember(&pending, libc::SIGPIPE) != 1;
            let host = libc::sigismember(&old, libc::SIGPIPE) == 1;
            let outer = HOST_BLOCKS_SIGPIPE
                .try_with(|c| c.replace(Some(c.get().unwrap_or(host))))
                .ok()
                .flatten();
            Self {
                old: Some(old),
                outer,
                ours,
            }
        }
        #[cfg(not(target_os = "linux"))]
        Self {}
    }
}

impl Drop for SigpipeHeld {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(old) = self.old {
            // A SIGPIPE sent to the process meanwhile (a host blocking SIGPIPE takes those
            // with `sigwait`) is left; one this thread's writes raised is taken back, even
            // when the thread blocked SIGPIPE before: unblocked later, it would end the host.
            if self.ours {
                take_own_sigpipe();
            }
            let _ = HOST_BLOCKS_SIGPIPE.try_with(|c| c.set(self.outer));
            // SAFETY: the mask restored is the one this thread had.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        }
    }
}

/// Whether the caller is async code outside any task and off the blocking runtime: the
/// future given to a runtime's `block_on` (`#[tokio::main]`'s body), whose thread is not a
/// worker, so a connection task it talks to runs on another thread.
pub(crate) fn outside_any_task() -> bool {
    !on_blocking_runtime() && tokio::task::try_id().is_none()
}

/// Spawns `fut` on the one-thread I/O runtime (built on first use, rebuilt after fork).
pub(crate) fn spawn_io<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(io()?.rt.spawn(fut))
}

/// A handle to the shared runtime (built on first use, rebuilt after fork).
pub fn handle() -> Result<Handle, Error> {
    Ok(shared()?.rt.handle().clone())
}

/// A handle to the runtime blocking callers share (built on first use, rebuilt after fork),
/// for a face that spawns a blocking call as its task: any thread in [`block_on`] runs it.
pub fn blocking_handle() -> Result<Handle, Error> {
    Ok(blocking()?.rt.handle().clone())
}

thread_local! {
    /// What [`after_block_on`] handed over, run when this thread's [`block_on`] returns.
    static AFTER: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Whether this thread is one of the shared runtime's (a worker, or its blocking pool's).
    static ON_SHARED: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread is inside [`block_on`] on the blocking runtime.
    static ON_BLOCKING: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread blocks SIGPIPE for good: one of the library's ([`block_sigpipe`]).
    static SIGPIPE_BLOCKED_HERE: Cell<bool> = const { Cell::new(false) };
    /// Inside a blocking call whose guard blocked SIGPIPE: whether the host had it blocked on
    /// this thread before (see [`host_blocks_sigpipe`]).
    static HOST_BLOCKS_SIGPIPE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the caller runs inside [`block_on`] on the blocking runtime: anything that
/// outlives the call and is tied to a runtime (pooled connections) must then be kept for the
/// blocking runtime, apart from what the shared workers drive.
pub(crate) fn on_blocking_runtime() -> bool {
    ON_BLOCKING.try_with(Cell::get).unwrap_or(false)
}

/// Runs `f` when the [`block_on`] this thread is in returns, or gives it back (`Err`) when the
/// thread is in none. For the seller's code a blocking call would run (a meter's event
/// callbacks): run inside, it holds the runtime every blocking caller shares for as long as
/// it takes, and every other thread's blocking call, its timeouts included, waits for it; a
/// callback that waits for one of those calls never returns.
#[cfg(feature = "meter")]
pub(crate) fn after_block_on(f: Box<dyn FnOnce()>) -> Result<(), Box<dyn FnOnce()>> {
    if !on_blocking_runtime() {
        return Err(f);
    }
    let mut f = Some(f);
    let _ = AFTER.try_with(|a| a.borrow_mut().extend(f.take()));
    f.map_or(Ok(()), Err)
}

/// Runs `fut` to completion on the calling thread, blocking it.
///
/// The future runs on the current-thread runtime all blocking callers share (built on the
/// first blocking call, rebuilt after fork); many threads may block at once, and the runtime
/// is driven by one of them at a time (see the [module docs](self)). Called from a thread
/// that is already inside a tokio runtime (an async task), it returns `InvalidState` instead
/// of panicking.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, Error> {
    // The call's futures (the HTTP stack, TLS, signing, the credential chain, SQLite) run on
    // the caller's stack: a C host's thread of musl's default 128 KiB had a few KiB to spare
    // in a release build, and one of 96 KiB (or 128 KiB with a debug build) died of SIGSEGV
    // (found by a review of C hosts). With less than CALL_STACK_RED_ZONE left, the call runs
    // on a stack of CALL_STACK made for it, on the same thread.
    let held = SigpipeHeld::new();
    let (out, ran) = stacker::maybe_grow(CALL_STACK_RED_ZONE, CALL_STACK, || block_on_here(fut));
    drop(held);
    // Outside the runtime now, and back on the caller's own stack (a JVM or an interpreter
    // checks a callback's stack pointer against its thread's stack): what the call handed
    // over (its event callbacks) runs here. Not after a call refused inside a runtime: what
    // is handed over there is the outer call's.
    if ran {
        let after = AFTER
            .try_with(|a| std::mem::take(&mut *a.borrow_mut()))
            .unwrap_or_default();
        for f in after {
            f();
        }
    }
    out
}

/// The room a blocking call wants on its caller's stack (see [`block_on`]).
const CALL_STACK_RED_ZONE: usize = 256 * 1024;

/// The stack made for a blocking call whose caller's stack has less room (see [`block_on`]).
const CALL_STACK: usize = 2 * 1024 * 1024;

/// [`block_on`] on this stack, and whether it ran the call on the blocking runtime.
fn block_on_here<F: Future>(fut: F) -> (Result<F::Output, Error>, bool) {
    if Handle::try_current().is_ok() {
        return (Err(Error::invalid_state(
            "a blocking call was made from inside an async runtime (an async task, or an event \
             callback, which runs on the library's threads); use the async client there, or \
             make the call from another thread",
        )), false);
    }
    if ON_BLOCKING.try_with(|c| c.set(true)).is_err() {
        // This thread is exiting (its thread-locals are gone), so nothing could tell the
        // call apart from the shared workers' calls: it runs on the shared runtime.
        return (shared().map(|s| s.rt.block_on(fut)), false);
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = ON_BLOCKING.try_with(|c| c.set(false));
        }
    }
    let reset = Reset;
    let rt = match blocking() {
        Ok(rt) => rt,
        Err(e) => return (Err(e), true),
    };
    // A panic in the call (a resolver thread the OS refuses under a pids limit: tokio and
    // hyper panic) is an error: the faces would have to call it a bug, and Python raises it
    // as a `BaseException` that `except Exception` misses. The runtime stays usable: tokio
    // puts its scheduler back as the panic leaves `block_on`.
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.rt.block_on(async {
            // While no blocking call ran, nothing drove the runtime, so nothing has seen what
            // happened to the idle pooled connections (a server closing one). Yielding twice
            // polls the I/O driver, then runs the connections' tasks, which retire the closed
            // ones before this call picks a connection.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            fut.await
        })
    }));
    drop(reset);
    (out.map_err(|panic| Error::from_panic(&*panic)), true)
}

/// Runs `wait`, which blocks its thread until work on the shared runtime is done (a fleet
/// write, whose database connections run there; a group commit's), without holding up
/// that runtime when the caller is one of its workers (a meter's last handle dropped inside
/// a task): the worker's other tasks move to another thread meanwhile (tokio's
/// `block_in_place`). With one worker (`MM_RUNTIME_WORKERS=1`) the wait held the only thread
/// that could end it until the write gave up, and the buffer was lost. Elsewhere (no runtime,
/// a current-thread runtime) `wait` runs as it is.
///
/// Only the shared runtime's own threads are handed over: the deadlock is theirs alone (a
/// caller's runtime runs none of the store's tasks), and elsewhere `block_in_place` panics
/// (inside a `LocalSet` or a current-thread `block_on`), which a caller's runtime may be.
#[cfg(feature = "meter")]
pub(crate) fn wait_outside_workers<R>(wait: impl FnOnce() -> R) -> R {
    // On a group record's path: the runtime is asked only on the shared runtime's threads.
    let ours = ON_SHARED.try_with(Cell::get).unwrap_or(false);
    let multi = || {
        Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    };
    match ours && multi() {
        true => tokio::task::block_in_place(wait),
        false => wait(),
    }
}

/// Spawns `fut` on the shared runtime.
pub fn spawn<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(shared()?.rt.spawn(fut))
}

/// A caller's calls running on the shared runtime (see [`spawn_call`]): the process
/// counting them in the high 32 bits (a child forked meanwhile has none of them running),
/// the count in the low ones. One atomic, not a lock a fork could leave held.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The calls this process has in flight.
fn calls() -> u64 {
    let c = CALLS.load(Ordering::Acquire);
    if c >> 32 == u64::from(pid()) {
        c & u64::from(u32::MAX)
    } else {
        0
    }
}

/// Counts a call in (`true`) or out.
fn count_call(start: bool) {
    let me = u64::from(pid()) << 32;
    let _ = CALLS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
        let n = if c & !u64::from(u32::MAX) == me {
            c & u64::from(u32::MAX)
        } else {
            0
        };
        let n = if start {
            n.saturating_add(1).min(u64::from(u32::MAX))
        } else {
            n.saturating_sub(1)
        };
        Some(me | n)
    });
}

/// How long a [`shutdown`] waits for the calls in flight (see [`spawn_call`]).
pub const CALLS_GRACE: Duration = Duration::from_secs(10);

/// [`spawn`] for a caller's call (a face's async operation, a flush): counted while it runs,
/// so that a [`shutdown`] made beside it lets it finish, up to [`CALLS_GRACE`], before the
/// runtime stops. (A JVM runs its shutdown hooks at once, in no order: the library's ran
/// beside an application hook still waiting on a call, and cancelled it.)
pub fn spawn_call<F>(fut: F) -> Result<tokio::task::JoinHandle<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Uncounts the call however its task ends (done, aborted, dropped with the runtime).
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            count_call(false);
        }
    }
    count_call(true);
    let counted = Counted;
    spawn(async move {
        let _counted = counted;
        fut.await
    })
}

/// A spawned task that is aborted when this is dropped: the call of a caller that gave up
/// (a cancelled coroutine, Ctrl-C, a timeout) stops its request and its retries, instead of
/// running on with nobody waiting for its answer. Awaited, it is the task's result.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Work that must outlive a [`shutdown`]: an owner (when it is gone, so is the entry) and
/// what starts the work again on a new runtime.
type Restart = (
    std::sync::Weak<dyn std::any::Any + Send + Sync>,
    Box<dyn Fn() + Send + Sync>,
);

/// A child forked meanwhile starts with none: the parent's meters are refused there.
static RESTARTS: PerProcess<Vec<Restart>> = PerProcess::new();

/// Registers `restart`, called after every [`shutdown`] while `owner` is alive to start its
/// long-lived tasks (a meter's background flusher) again on a new runtime.
#[cfg(feature = "meter")]
pub(crate) fn restart_after_shutdown(
    owner: std::sync::Weak<dyn std::any::Any + Send + Sync>,
    restart: impl Fn() + Send + Sync + 'static,
) {
    let mut r = RESTARTS.lock();
    r.retain(|(o, _)| o.strong_count() > 0);
    r.push((owner, Box::new(restart)));
}

/// Stops the shared runtimes, once the calls in flight (see [`spawn_call`]) have finished, or
/// after [`CALLS_GRACE`], waiting up to 2 s more for their tasks; the next call builds new
/// ones.
///
/// Faces call it at exit (Python's `atexit`, C's `mm_shutdown`) so worker threads are joined
/// before the interpreter or process tears down. Long-lived tasks of owners still alive (the
/// background flusher of a meter not yet dropped) are started again at once on a new
/// runtime: a shutdown never stops a live meter's flushing. With no such owner, no thread
/// is left running.
pub fn shutdown() {
    if tokio::runtime::Handle::try_current().is_ok() {
        // From a runtime's own thread (a meter's event callback, on a worker or inside a
        // blocking call) a runtime cannot be shut down: tokio panics after it has cancelled
        // every task, and the restarts below would never run, leaving every live meter
        // without its background flusher. Not at exit, then: nothing to do.
        tracing::warn!("runtime shutdown called from a runtime thread (a callback?): ignored");
        return;
    }
    let deadline = std::time::Instant::now() + CALLS_GRACE;
    while calls() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for slot in [&SHARED, &BLOCKING, &IO] {
        let taken = slot.lock().take();
        if let Some(s) = taken {
            match Arc::try_unwrap(s) {
                Ok(s) => s.rt.shutdown_timeout(Duration::from_secs(2)),
                // Still used elsewhere (a call in flight): leave it to its last owner.
                Err(s) => drop(s),
            }
        }
    }
    let live: Vec<Restart> = {
        let mut r = RESTARTS.lock();
        r.retain(|(o, _)| o.strong_count() > 0);
        std::mem::take(&mut *r)
    };
    // Unlocked: a restart spawns (building the new runtime) and may drop its owner.
    for (_, restart) in &live {
        restart();
    }
    let mut r = RESTARTS.lock();
    r.extend(live.into_iter().filter(|(o, _)| o.strong_count() > 0));
}

/// Runs `f` in a child forked from this process and returns its answer: the tests of what
/// a child after `fork()` draws anew. A child that hangs is ended by an alarm after 30 s, and
/// the read then fails the test.
#[cfg(all(test, unix))]
pub(crate) fn in_forked_child<const N: usize>(f: fn() -> [u8; N]) -> [u8; N] {
    let mut fds = [0; 2];
    // SAFETY: a pipe for the child's answer.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [read, write] = fds;
    // SAFETY: the child runs `f`, writes its bytes to the pipe and `_exit`s.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: an alarm, for a child that hangs.
        unsafe { libc::alarm(30) };
        let out = f();
        // SAFETY: writes N bytes to the pipe, then ends the child.
        unsafe {
            libc::write(write, out.as_ptr().cast(), N);
            libc::_exit(0);
        }
    }
    let mut got = [0u8; N];
    // SAFETY: closes the parent's write end (so a child that dies reads as an end of file),
    // reads the child's N bytes and reaps it.
    unsafe {
        libc::close(write);
        let n = libc::read(read, got.as_mut_ptr().cast(), N);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        libc::close(read);
        assert_eq!(n, N as isize, "the forked child gave no answer");
    }
    got
}

/// [`in_forked_child`], forked while another thread of this process holds what `hold` takes
/// (a lock): the child has no such thread, so whatever that lock guards must not be waited
/// for there.
#[cfg(all(test, unix))]
pub(crate) fn forked_while_held<G: 'static, const N: usize>(
    hold: fn() -> G,
    child: fn() -> [u8; N],
) -> [u8; N] {
    let (held_tx, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let guard = hold();
        held_tx.send(()).unwrap();
        let _ = released.recv();
        drop(guard);
    });
    held.recv().unwrap();
    let got = in_forked_child(child);
    drop(release);
    holder.join().unwrap();
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_child_forked_while_the_kept_list_was_held_keeps_its_own() {
        // A child that forks again while one of its threads keeps something inherited (its
        // first call after the fork) must not leave its own child a list locked for good.
        let [kept] = forked_while_held(
            || KEPT.lock(),
            || {
                keep_inherited(7u8);
                [1]
            },
        );
        assert_eq!(kept, 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_childs_threads_all_start_from_the_parents_value() {
        // Two threads of a child take a lock of the parent's at once: the one that came
        // second found it held by the first (which was making its value from the parent's)
        // and took that for a parent's thread holding it for good, starting from nothing.
        static P: std::sync::OnceLock<PerProcess<u8>> = std::sync::OnceLock::new();
        static INSIDE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        *P.get_or_init(|| PerProcess::with(7))
            .lock_or_inherit(|v| v.copied().unwrap_or(0)) = 7;
        let got = in_forked_child(|| {
            let p = P.get().unwrap();
            let first = std::thread::spawn(|| {
                *P.get().unwrap().lock_or_inherit(|v| {
                    INSIDE.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    v.copied().unwrap_or(0)
                })
            });
            while !INSIDE.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let second = *p.lock_or_inherit(|v| v.copied().unwrap_or(0));
            [first.join().unwrap_or(0), second]
        });
        assert_eq!(got, [7, 7]);
    }

    #[test]
    fn a_forked_child_counts_none_of_its_parents_calls() {
        // A child forked while a call runs has none of the parent's threads: its shutdown
        // (Python's atexit, C's mm_shutdown) must not wait 10 s for that call.
        let call = AbortOnDrop(spawn_call(std::future::pending::<()>()).unwrap());
        assert!(calls() >= 1);
        let [in_child] = in_forked_child(|| [calls().min(255) as u8]);
        drop(call);
        assert_eq!(in_child, 0);
    }

    /// The kept pid is the child's in a child just forked, and its child's in turn: a pid
    /// kept across fork() would key the child's calls on the parent's pools and runtimes,
    /// whose threads it does not have (the call hangs).
    #[cfg(unix)]
    #[test]
    fn the_kept_pid_is_the_childs_after_fork() {
        assert_eq!(pid(), std::process::id());
        let generation = process_generation();
        // SAFETY: the child only reads atomics, asks its pid, forks once more, and `_exit`s.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            let mut ok = pid() == std::process::id() && process_generation() == generation + 1;
            // SAFETY: as above, one level down.
            let grandchild = unsafe { libc::fork() };
            if grandchild == 0 {
                let ok = pid() == std::process::id() && process_generation() == generation + 2;
                // SAFETY: ends the grandchild without running the parent's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let mut status = 0;
            // SAFETY: waits for the grandchild just forked.
            unsafe { libc::waitpid(grandchild, &mut status, 0) };
            ok &= libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
        assert_eq!(pid(), std::process::id());
    }

    /// From a runtime's own thread (a meter's event callback calling `mm_shutdown()`),
    /// shutdown does nothing. Before, tokio cancelled every task and then panicked, and the
    /// live meters' flushers were never started again (found by a review).
    #[test]
    fn shutdown_from_a_runtime_thread_does_nothing() {
        let on_worker = block_on(async {
            spawn(async {
                shutdown();
                5
            })
            .unwrap()
            .await
        })
        .unwrap();
        assert_eq!(on_worker.unwrap(), 5);
        block_on(async { shutdown() }).unwrap();
        let later = block_on(async { spawn(async { 6 }).unwrap().await }).unwrap();
        assert_eq!(later.unwrap(), 6);
    }

    #[test]
    fn block_on_runs_and_refuses_inside_a_runtime() {
        assert_eq!(block_on(async { 41 + 1 }).unwrap(), 42);
        let inner = block_on(async { block_on(async { 1 }) }).unwrap();
        assert_eq!(
            inner.unwrap_err().error_code(),
            crate::ErrorCode::InvalidState
        );
    }

    /// What a blocking call hands over runs once it returns, outside the runtime: a call
    /// refused inside it (a callback's nested blocking call) ran the outer call's callbacks
    /// there, once they ran after the call on its own stack (found by a review).
    #[cfg(feature = "meter")]
    #[test]
    fn a_refused_nested_call_leaves_the_outer_calls_callbacks_to_it() {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = ran.clone();
        let early = block_on(async move {
            let set = ran.clone();
            after_block_on(Box::new(move || {
                assert!(!on_blocking_runtime(), "inside the runtime");
                set.store(true, std::sync::atomic::Ordering::SeqCst);
            }))
            .unwrap_or_else(|_| panic!("inside a blocking call"));
            assert!(block_on(async {}).is_err(), "a nested call is refused");
            ran.load(std::sync::atomic::Ordering::SeqCst)
        })
        .unwrap();
        assert!(!early, "the callback ran inside the outer call");
        assert!(seen.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn blocking_callers_share_one_runtime_and_run_their_call_themselves() {
        // A task spawned by one call is still there for the next, made from another thread.
        #[allow(clippy::async_yields_async)] // the handle is awaited by the next call
        let pending = block_on(async { tokio::spawn(async { 7 }) }).unwrap();
        let got = std::thread::spawn(move || block_on(pending).unwrap().unwrap())
            .join()
            .unwrap();
        assert_eq!(got, 7);
        // The runtime has no threads of its own: the call's future runs on the caller.
        let me = std::thread::current().id();
        assert_eq!(block_on(async { std::thread::current().id() }).unwrap(), me);
        assert!(!on_blocking_runtime());
        assert!(block_on(async { on_blocking_runtime() }).unwrap());
    }

    /// Writes to a TCP connection its peer has reset, the way a TLS stack writes a record
    /// (`writev`, which has no `MSG_NOSIGNAL`): whether the write came back as `EPIPE`.
    #[cfg(target_os = "linux")]
    async fn write_to_a_reset_connection() -> u8 {
        use std::os::fd::AsRawFd;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conn = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        let reset = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: sets SO_LINGER to zero on a socket this test owns, so closing it resets.
        unsafe {
            libc::setsockopt(
                peer.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                std::ptr::from_ref(&reset).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(peer);
        // The read takes the reset's ECONNRESET, so the next write fails with EPIPE.
        let _ = conn.read(&mut [0u8; 1]).await;
        let wrote = conn.write_vectored(&[std::io::IoSlice::new(b"x")]).await;
        u8::from(wrote.is_err_and(|e| e.raw_os_error() == Some(libc::EPIPE)))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_to_a_reset_connection_does_not_end_a_host_that_keeps_sigpipe() {
        // A C or C++ host keeps SIGPIPE's default action, which ends the process. The
        // library's sockets are written on the caller's thread (a blocking call) and on its
        // own threads (the meter's flusher, async calls), with writev, which raises SIGPIPE
        // on a connection the server reset: a load balancer's RST ended the seller's service,
        // with the meter's unflushed usage in memory.
        let got = in_forked_child(|| {
            // SAFETY: the default action, as a C program has it; this child only.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let blocking = block_on(write_to_a_reset_connection()).unwrap();
            // SAFETY: reads this thread's mask and pending signals.
            let left = unsafe {
                let mut mask: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
                let mut pending: libc::sigset_t = std::mem::zeroed();
                libc::sigpending(&mut pending);
                libc::sigismember(&mask, libc::SIGPIPE) + libc::sigismember(&pending, libc::SIGPIPE)
            };
            let worker =
                block_on(async { spawn(write_to_a_reset_connection()).unwrap().await.unwrap() })
                    .unwrap();
            let io = block_on(async {
                spawn_io(write_to_a_reset_connection())
                    .unwrap()
                    .await
                    .unwrap()
            })
            .unwrap();
            [blocking, u8::try_from(left).unwrap_or(9), worker, io]
        });
        assert_eq!(
            got,
            [1, 0, 1, 1],
            "each write is EPIPE, and the caller's mask and pending signals are as they were"
        );
    }

    #[cfg(all(target_os = "linux", feature = "meter"))]
    #[test]
    fn the_sellers_code_runs_with_sigpipe_as_the_host_has_it() {
        // An event callback on the library's thread (which blocks SIGPIPE for good) that
        // starts a child (system(), popen()) handed it SIGPIPE blocked, past exec: a shell
        // pipeline there no longer ended by SIGPIPE (found by a second read).
        let seen = block_on(async {
            spawn(async {
                (
                    sigpipe_blocked_now(),
                    as_host(sigpipe_blocked_now),
                    sigpipe_blocked_now(),
                )
            })
            .unwrap()
            .await
            .unwrap()
        })
        .unwrap();
        assert_eq!(seen, (true, false, true));
        // On a thread of the seller's, nothing changes.
        assert_eq!(as_host(sigpipe_blocked_now), sigpipe_blocked_now());
        // A host that blocks SIGPIPE in every thread (the library's threads inherit it)
        // keeps it blocked in its callbacks: unblocked, a write of theirs to a closed pipe
        // ended it (found by a last read).
        let kept = in_forked_child(|| {
            // SAFETY: blocks SIGPIPE in this child's only thread, before its runtime starts.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &sigpipe_set(), std::ptr::null_mut()) };
            let on_worker = block_on(async {
                spawn(async { as_host(sigpipe_blocked_now) })
                    .unwrap()
                    .await
                    .unwrap()
            })
            .unwrap();
            [u8::from(on_worker)]
        });
        assert_eq!(
            kept,
            [1],
            "the host's blocked SIGPIPE was unblocked in a callback"
        );
        // A runtime first built inside a blocking call, whose guard blocks SIGPIPE meanwhile
        // (a C host's first call, with SIGPIPE's default action): its threads inherited that
        // block, took it for the host's, and ran callbacks with SIGPIPE blocked (found by a
        // final read).
        let unblocked = in_forked_child(|| {
            // SAFETY: the default action, as a C program has it; this child only.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let in_callback = block_on(async {
                spawn(async { as_host(sigpipe_blocked_now) })
                    .unwrap()
                    .await
                    .unwrap()
            })
            .unwrap();
            [u8::from(!in_callback)]
        });
        assert_eq!(
            unblocked,
            [1],
            "the guard's own block was taken for the host's"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sigpipe_sent_to_the_host_is_left_to_it_and_the_calls_own_is_taken() {
        // A host that blocks SIGPIPE and takes it with sigwait: one sent to the process while
        // a blocking call ran was taken back by the call's guard (found by a second read).
        let got = in_forked_child(|| {
            // SAFETY: this child's thread blocks SIGPIPE, sends one to the process, and reads
            // what is pending after the call.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                let pipe = sigpipe_set();
                libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, std::ptr::null_mut());
                block_on(async { libc::kill(libc::getpid(), libc::SIGPIPE) }).unwrap();
                let mut pending: libc::sigset_t = std::mem::zeroed();
                libc::sigpending(&mut pending);
                let kept = libc::sigismember(&pending, libc::SIGPIPE) == 1;
                let now: libc::timespec = std::mem::zeroed();
                libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
                // One the call's own write raised, on a thread that blocks SIGPIPE, is taken
                // back: the thread would die of it once it unblocked SIGPIPE.
                let write = block_on(write_to_a_reset_connection()).unwrap();
                libc::sigpending(&mut pending);
                let left = libc::sigismember(&pending, libc::SIGPIPE) == 1;
                [u8::from(kept), write, u8::from(left)]
            }
        });
        assert_eq!(
            got,
            [1, 1, 0],
            "the host's SIGPIPE taken, or the call's left"
        );
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

// SPDX-License-Identifier: Apache-2.0
// Blocking calls share one connection pool per client: connections are bounded by the calls in
// flight, not by the threads that ever called. Counted by the emulator, which numbers the TCP
// connections it accepts and logs each request with its connection's number.

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use marketplace_metering::blocking;
use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::UsageRecord;
use metering_emulator::{Emulator, Fault};

mod support;
use support::emulator;

/// A blocking client of the emulator with one attempt per call and this read timeout.
fn client(endpoint: String, read_timeout: Duration) -> blocking::Client {
    blocking::Client::new(
        support::config(endpoint)
            .max_attempts(1u32)
            .read_timeout(read_timeout)
            .build()
            .unwrap(),
    )
}

fn batch(customer: usize) -> BatchMeterUsageInput {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let record = UsageRecord::builder()
        .timestamp(DateTime::from_secs(now))
        .customer_identifier(format!("cust-{}", customer + 1))
        .dimension("users")
        .quantity(1)
        .build()
        .unwrap();
    BatchMeterUsageInput::builder()
        .product_code(metering_emulator::PRODUCT_CODE)
        .usage_records(record)
        .build()
        .unwrap()
}

/// Held by every test here, so that no other test's calls run meanwhile. When other calls
/// run, one of them may be driving the shared runtime: a finished call's connection then goes
/// back to the pool a moment after the call returns (when the driver runs the task that
/// returns it), and a call started in that moment opens another one. Counts would still be
/// bounded by the calls in flight, but not exactly.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The distinct connections the emulator's logged requests arrived on.
fn connections(emu: &Emulator) -> BTreeSet<u64> {
    emu.requests().iter().map(|r| r.connection).collect()
}

/// A thread pool that recycles its workers calls from a new thread each time: 16 calls, one
/// at a time, each from a thread that then exits, go out on one connection.
#[test]
fn calls_from_fresh_threads_one_at_a_time_reuse_one_connection() {
    let _alone = alone();
    let emu = emulator();
    let c = client(emu.endpoint(), Duration::from_secs(10));
    for i in 0..16 {
        std::thread::scope(|s| {
            s.spawn(|| c.batch_meter_usage(batch(i)).unwrap());
        });
    }
    assert_eq!(emu.requests().len(), 16);
    let used = connections(&emu);
    assert_eq!(used.len(), 1, "connections used: {used:?}");
}

/// Three rounds of 8 fresh threads calling at once (each call held 50 ms by the emulator,
/// so all 8 are in flight together): never more than 8 connections, the calls in flight.
#[test]
fn parallel_calls_from_fresh_threads_open_at_most_one_connection_per_call_in_flight() {
    let _alone = alone();
    let emu = emulator();
    let c = client(emu.endpoint(), Duration::from_secs(10));
    for round in 0..3 {
        for _ in 0..8 {
            emu.push_fault(Fault::Delay { seconds: 0.05 });
        }
        let start = Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (c, start) = (&c, &start);
                s.spawn(move || {
                    start.wait();
                    c.batch_meter_usage(batch(round * 8 + t)).unwrap();
                });
            }
        });
    }
    assert_eq!(emu.requests().len(), 24);
    let used = connections(&emu);
    assert!(used.len() <= 8, "connections used: {used:?}");
}

/// A connection keeps working after the thread that opened it has exited, while the thread
/// that uses it next runs alone: calls with a short read timeout from fresh threads, each
/// started after the previous one has exited, all succeed on the first attempt.
#[test]
fn a_connection_outlives_the_thread_that_opened_it() {
    let _alone = alone();
    let emu = emulator();
    let c = client(emu.endpoint(), Duration::from_secs(2));
    std::thread::scope(|s| {
        s.spawn(|| c.batch_meter_usage(batch(0)).unwrap());
    });
    std::thread::sleep(Duration::from_millis(100));
    for i in 1..4 {
        let out = std::thread::scope(|s| s.spawn(|| c.batch_meter_usage(batch(i))).join());
        assert_eq!(out.unwrap().unwrap().metadata().attempts(), 1);
    }
    assert_eq!(connections(&emu).len(), 1);
}

/// fork() while another thread of the parent is in the middle of a blocking call (so it
/// holds whatever runtime blocking calls share): the inherited client works in the child,
/// from its main thread and from a fresh thread; the
/// parent's call and the parent's later calls are unharmed.
#[test]
fn a_client_works_after_fork_even_with_a_call_in_flight() {
    let _alone = alone();
    let emu = emulator();
    let c = client(emu.endpoint(), Duration::from_secs(10));
    c.batch_meter_usage(batch(0)).unwrap();
    emu.push_fault(Fault::Delay { seconds: 0.5 });
    std::thread::scope(|s| {
        let in_flight = s.spawn(|| c.batch_meter_usage(batch(1)).unwrap());
        // Let the call reach the emulator (it holds the response for 0.5 s).
        let t0 = std::time::Instant::now();
        while emu.pending_faults().len() == 1 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: the child only runs this crate's Rust code and then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let main_ok = c.batch_meter_usage(batch(2)).is_ok();
            let thread_ok = std::thread::scope(|s| {
                s.spawn(|| c.batch_meter_usage(batch(3)).is_ok())
                    .join()
                    .unwrap_or(false)
            });
            // SAFETY: leave the child without running the parent's destructors.
            unsafe { libc::_exit(if main_ok && thread_ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: {status}"
        );
        in_flight.join().unwrap();
    });
    for i in 4..8 {
        std::thread::scope(|s| {
            s.spawn(|| c.batch_meter_usage(batch(i)).unwrap());
        });
    }
    assert_eq!(emu.ledger().len(), 8);
}

/// Async code that makes a runtime for a call and drops it afterwards (a CLI, a test, a
/// sync function wrapping `Runtime::block_on`) keeps its connection: a call made outside any
/// task runs its exchange on the library's own I/O thread, so the connection's task does not
/// die with the caller's runtime. Eight calls, each on a fresh multi-thread runtime that is
/// then dropped, go out on one connection, each on its first and only attempt.
#[test]
fn async_calls_on_short_lived_runtimes_reuse_one_connection() {
    let _alone = alone();
    let emu = emulator();
    let c = client(emu.endpoint(), Duration::from_secs(10));
    let c = c.as_async().clone();
    for i in 0..8 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(c.send_batch_meter_usage(batch(i))).unwrap();
        assert_eq!(out.results().len(), 1);
        drop(rt);
    }
    assert_eq!(emu.requests().len(), 8);
    let used = connections(&emu);
    assert_eq!(used.len(), 1, "connections used: {used:?}");
}

/// The I/O thread of async calls made outside any task does not survive fork(): a child
/// that inherited a client (and the I/O runtime, busy with the parent's connection) makes
/// async calls on a runtime of its own, which get a new I/O thread and a new connection;
/// the parent's calls are unharmed.
#[test]
fn async_calls_outside_any_task_work_after_fork() {
    let _alone = alone();
    let emu = emulator();
    let c = client(emu.endpoint(), Duration::from_secs(10));
    let c = c.as_async().clone();
    let call = |i: usize| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(c.send_batch_meter_usage(batch(i))).is_ok()
    };
    assert!(call(0));
    // SAFETY: the child only runs this crate's Rust code and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = call(1) && call(2);
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    assert!(call(3));
    assert_eq!(emu.ledger().len(), 4);
}

// SPDX-License-Identifier: Apache-2.0
// The shared runtime's shutdown (C's mm_shutdown) never stops a live meter's background
// flusher for good. Its own test binary: shutting the runtime down is process-wide.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{MeterConfig, Store};
use marketplace_metering::{Client, UsageMeter};
use metering_emulator::{Emulator, EmulatorConfig};

mod support;

const H: i64 = 3600;

/// The tests here shut the process-wide runtime down, and one forks: one at a time, so no
/// fork happens while another test's shutdown holds the runtime's locks.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A meter on `store` whose background flusher runs every `every`, with a clock one second
/// into the previous hour; returns it, that clock and the start of the current hour.
fn flushing_meter(
    emu: &Emulator,
    store: Store,
    every: Duration,
) -> (UsageMeter, Arc<AtomicI64>, i64) {
    flushing_meter_of(
        Client::new(support::config(emu.endpoint()).build().unwrap()),
        store,
        every,
    )
}

/// [`flushing_meter`] on `client`.
fn flushing_meter_of(
    client: Client,
    store: Store,
    every: Duration,
) -> (UsageMeter, Arc<AtomicI64>, i64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let b = now / H * H;
    let clock = Arc::new(AtomicI64::new(b - H + 1));
    let c2 = clock.clone();
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(client)
            .store(store)
            .product_code(metering_emulator::PRODUCT_CODE)
            .clock(Arc::new(move || c2.load(Ordering::SeqCst)))
            .flush_interval(every)
            .build()
            .unwrap(),
    )
    .unwrap();
    (meter, clock, b)
}

fn record_4_users(meter: &UsageMeter) {
    meter
        .record(
            marketplace_metering::meter::Customer::identifier("cust-1"),
            "users",
            4,
            None,
            None,
        )
        .unwrap();
}

/// Runs the test `name` again as a child process with `var` set to `value` (the child's
/// role), and returns its standard error once it has ended well.
fn child_stderr(name: &str, var: &str, value: &std::ffi::OsStr) -> String {
    child_stderr_with(name, &[(var, value)])
}

/// [`child_stderr`] with more than one variable set.
fn child_stderr_with(name: &str, vars: &[(&str, &std::ffi::OsStr)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn the_background_flusher_survives_a_runtime_shutdown() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let (meter, clock, b) = flushing_meter(&emu, Store::memory(), Duration::from_millis(50));
    // The flusher runs (a flush of nothing) before the shutdown.
    std::thread::sleep(Duration::from_millis(200));
    marketplace_metering::runtime::shutdown();
    record_4_users(&meter);
    clock.store(b + 600, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.ledger().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        emu.ledger().len(),
        1,
        "no background flush after the runtime was shut down"
    );
    // Once the meter is gone, a shutdown leaves nothing to restart.
    meter.close_blocking().unwrap();
    drop(meter);
    marketplace_metering::runtime::shutdown();
}

/// A meter made before fork() never flushes in the child, even after the child shuts the
/// runtime down (C's mm_shutdown()), which restarts live meters' background flushers.
#[test]
fn a_forked_child_never_runs_the_parents_flusher() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let path = std::env::temp_dir().join(format!("mm-fork-flusher-{}.db", std::process::id()));
    let (meter, clock, b) = flushing_meter(&emu, Store::sqlite(&path), Duration::from_millis(100));
    record_4_users(&meter);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: the child shuts the runtime down, sleeps and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // Only the child's clock lets the hour be sealed.
        clock.store(b + 600, Ordering::SeqCst);
        marketplace_metering::runtime::shutdown();
        std::thread::sleep(Duration::from_millis(2000));
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let ledger = emu.ledger();
    let s = meter.status().unwrap();
    drop(meter);
    for sfx in ["", "-wal", "-shm", "-lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(sfx);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
    assert!(
        ledger.is_empty(),
        "the child flushed the parent's store: {ledger:?} {s:?}"
    );
    assert_eq!((s.pending, s.sealed, s.acked), (1, 0, 0), "{s:?}");
}

/// A background flush that fails has no caller to return its error to: it is reported on
/// standard error when the process installed no `tracing` subscriber (no face does), where
/// it went nowhere (found by a hostile review: a store file replaced under a meter with a
/// background flusher was found by nobody). Here in a child process, whose stderr is read.
#[test]
fn a_failed_background_flush_is_reported_on_stderr() {
    const CHILD: &str = "MM_TEST_REPORT_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let path = std::path::Path::new(&dir).join("m.db");
        let (meter, clock, b) =
            flushing_meter(&emu, Store::sqlite(&path), Duration::from_millis(50));
        record_4_users(&meter);
        // Replaced (a file removed and not replaced is written again at its path).
        for suffix in ["", "-lock", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        std::fs::write(&path, b"").unwrap();
        clock.store(b + 600, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1000));
        std::process::exit(0);
    }
    let dir = std::env::temp_dir().join(format!("mm-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = child_stderr(
        "a_failed_background_flush_is_reported_on_stderr",
        CHILD,
        dir.as_os_str(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("marketplace-metering: the background flush failed")
            && err.contains("removed or replaced"),
        "stderr: {err}"
    );
}

/// A background flush stopped by a retryable failure (throttling, a server's 5xx, DNS or a
/// connection refused: a wrong endpoint, no route out) keeps its hours sealed and is not an
/// error, but nobody calls it: it is reported on standard error as the failures are. Before,
/// it went to `tracing` only, which no face subscribes to, so a meter whose every flush
/// stopped said nothing until its first window alarm, five hours on (found by a review).
#[test]
fn a_background_flush_stopped_by_a_retryable_failure_is_reported() {
    const CHILD: &str = "MM_TEST_STOPPED_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        for _ in 0..500 {
            emu.push_fault(metering_emulator::Fault::Throttle);
        }
        let client = Client::new(
            support::config(emu.endpoint())
                .max_attempts(1u32)
                .build()
                .unwrap(),
        );
        let (meter, clock, b) =
            flushing_meter_of(client, Store::memory(), Duration::from_millis(50));
        record_4_users(&meter);
        clock.store(b + 600, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(emu.ledger().is_empty());
        std::process::exit(0);
    }
    let err = child_stderr(
        "a_background_flush_stopped_by_a_retryable_failure_is_reported",
        CHILD,
        "1".as_ref(),
    );
    assert!(
        err.contains("marketplace-metering: the background flush stopped")
            && err.contains("ThrottlingException"),
        "stderr: {err}"
    );
}

/// `close()` leaves the hours not sealed yet where they are: a file store sends them after a
/// restart, a memory store loses them. Neither was said: a service whose store path came
/// from a variable missing in its pod spec ran on a memory store and lost up to an hour's
/// acknowledged usage at every rollout, and one whose store was on an `emptyDir` lost it
/// with the volume (found by a review of container deployments). `close()` now says what
/// it left, and where.
#[test]
fn close_says_what_it_leaves_unsent() {
    const CHILD: &str = "MM_TEST_LEFT_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let path = std::path::Path::new(&dir).join("left.db");
        for store in [Store::memory(), Store::sqlite(&path)] {
            let (meter, clock, b) = flushing_meter(&emu, store, Duration::ZERO);
            clock.store(b + 10, Ordering::SeqCst);
            record_4_users(&meter);
            meter.close_blocking().unwrap();
        }
        // Nothing left: nothing said.
        let (meter, _, _) = flushing_meter(&emu, Store::memory(), Duration::ZERO);
        meter.close_blocking().unwrap();
        // Dropped without close(): said too.
        let (meter, clock, b) = flushing_meter(&emu, Store::memory(), Duration::ZERO);
        clock.store(b + 10, Ordering::SeqCst);
        record_4_users(&meter);
        drop(meter);
        std::process::exit(0);
    }
    let dir = std::env::temp_dir().join(format!("mm-left-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = child_stderr("close_says_what_it_leaves_unsent", CHILD, dir.as_os_str());
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("close()")).collect();
    assert_eq!(lines.len(), 3, "stderr: {err}");
    assert!(
        lines[0].contains("1 bucket") && lines[0].contains("lost"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("1 bucket") && lines[1].contains("left.db"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("dropped without close()") && lines[2].contains("lost"),
        "{}",
        lines[2]
    );
}

/// On AWS Lambda a file or memory store goes with its execution environment, which Lambda
/// retires with no signal to the process, and each concurrent environment counts its own
/// share of a customer-hour, of which the service bills the first sent (found by a review of
/// short-lived hosts: nothing was said, and the README never named Lambda). The meter says
/// so as it opens, naming the fleet store, and `close()` no longer promises that a next
/// meter sends what it left.
#[test]
fn a_meter_on_lambda_says_its_store_goes_with_the_environment() {
    const CHILD: &str = "MM_TEST_LAMBDA_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let path = std::path::Path::new(&dir).join("lambda.db");
        let url = std::env::var("MM_TEST_LAMBDA_URL").unwrap();
        // The fleet store, which opens a memory database it never records into, says
        // nothing (the read of this change found it told to use the fleet store).
        for store in [Store::memory(), Store::sqlite(&path), Store::postgres(url)] {
            let (meter, clock, b) = flushing_meter(&emu, store, Duration::ZERO);
            clock.store(b + 10, Ordering::SeqCst);
            record_4_users(&meter);
            meter.close_blocking().unwrap();
        }
        std::process::exit(0);
    }
    let url = support::pg::fresh_url();
    // In a Lambda environment's own /tmp (a store elsewhere is on a file system the
    // environments share, EFS, and is told so).
    let dir = std::path::Path::new("/tmp").join(format!("mm-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = child_stderr_with(
        "a_meter_on_lambda_says_its_store_goes_with_the_environment",
        &[
            (CHILD, dir.as_os_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "metering-handler".as_ref()),
            ("MM_TEST_LAMBDA_URL", url.as_ref()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let opened: Vec<&str> = err.lines().filter(|l| l.contains("AWS Lambda")).collect();
    assert_eq!(opened.len(), 3, "stderr: {err}");
    for line in &opened[..2] {
        assert!(
            line.contains("database_url") && line.contains("concurrent"),
            "{line}"
        );
    }
    let closed: Vec<&str> = err.lines().filter(|l| l.contains("close()")).collect();
    assert_eq!(closed.len(), 2, "stderr: {err}");
    assert!(
        closed[1].contains("lambda.db") && !closed[1].contains("next meter"),
        "{}",
        closed[1]
    );
}

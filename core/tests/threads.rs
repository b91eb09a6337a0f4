// SPDX-License-Identifier: Apache-2.0
// When the OS refuses the library a thread (a container's pids limit reached), a call or a
// meter fails with an error that says so: never a panic (which the C face can only call a
// bug, and Python raises as a BaseException) and never a hang. The work runs in a child
// process of this test binary, moved into a pids cgroup that lets it start no thread.

use std::path::PathBuf;
use std::time::Duration;

use marketplace_metering::meter::{MeterConfig, Store};
use marketplace_metering::{blocking, ErrorCode, UsageMeter};

mod support;

/// Set in the child: the emulator's port.
const CHILD: &str = "MM_TEST_NO_THREADS_PORT";

/// The pids cgroup directory for `pid`: cgroup v1's `pids` hierarchy, or v2's root where it
/// offers the controller to its children.
fn cgroup_dir(pid: u32) -> Option<PathBuf> {
    let v1 = PathBuf::from("/sys/fs/cgroup/pids");
    if v1.join("cgroup.procs").exists() {
        return Some(v1.join(format!("mm-test-{pid}")));
    }
    let v2 = PathBuf::from("/sys/fs/cgroup");
    let offered = std::fs::read_to_string(v2.join("cgroup.subtree_control")).ok()?;
    offered
        .split_whitespace()
        .any(|c| c == "pids")
        .then(|| v2.join(format!("mm-test-{pid}")))
}

/// Moves this process into a new pids cgroup capped at the tasks it has now; `false` where
/// the process may not (not root, no pids controller): the test is then skipped.
fn cap_threads() -> bool {
    let Some(dir) = cgroup_dir(std::process::id()) else {
        return false;
    };
    if std::fs::create_dir(&dir).is_err() {
        return false;
    }
    let me = std::process::id().to_string();
    if std::fs::write(dir.join("cgroup.procs"), &me).is_err() {
        return false;
    }
    let Ok(now) = std::fs::read_to_string(dir.join("pids.current")) else {
        return false;
    };
    std::fs::write(dir.join("pids.max"), now.trim()).is_ok()
}

/// The child's part: every way the library starts a thread, refused.
fn without_threads(port: &str) {
    if !cap_threads() {
        println!("SKIPPED: this process cannot be put in a pids cgroup");
        return;
    }
    // Proof that the cap holds.
    assert!(std::thread::Builder::new().spawn(|| ()).is_err());

    let e = marketplace_metering::runtime::handle().expect_err("a runtime without threads");
    assert_eq!(e.error_code(), ErrorCode::InvalidState, "{e}");
    assert!(e.message().contains("thread"), "{e}");

    // A blocking call to a host name: the resolver runs on a thread the runtime must start.
    let client = blocking::Client::new(
        support::config(format!("http://localhost:{port}"))
            .max_attempts(1u32)
            .build()
            .unwrap(),
    );
    let e = client
        .resolve_customer(
            marketplace_metering::operation::resolve_customer::ResolveCustomerInput::builder()
                .registration_token("reg-token-1")
                .build()
                .unwrap(),
        )
        .expect_err("a call that needs a thread");
    assert!(e.message().contains("thread"), "{e}");

    // A meter with a background flusher needs the shared runtime.
    let e = UsageMeter::new(
        MeterConfig::builder()
            .client(marketplace_metering::Client::new(
                support::config(format!("http://127.0.0.1:{port}"))
                    .build()
                    .unwrap(),
            ))
            .store(Store::memory())
            .product_code(metering_emulator::PRODUCT_CODE)
            .flush_interval(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .expect_err("a flusher without a thread");
    assert!(e.message().contains("thread"), "{e}");
    println!("CHECKED");
}

#[test]
fn a_thread_the_os_refuses_is_an_error_not_a_panic() {
    match std::env::var(CHILD) {
        Ok(port) => without_threads(&port),
        Err(_) => in_capped_child("a_thread_the_os_refuses_is_an_error_not_a_panic"),
    }
}

/// `Durability::Memory`'s exit write with no thread to spare: each meter's write gets a
/// thread of its own (see `meter::exit_writes`), and when none could start the write was
/// dropped, losing what `record()` had acknowledged (found by a review). It runs on the
/// calling thread then.
#[test]
fn an_exit_write_without_a_thread_writes_on_the_caller() {
    if std::env::var_os(CHILD).is_none() {
        return in_capped_child("an_exit_write_without_a_thread_writes_on_the_caller");
    }
    use marketplace_metering::meter::{Customer, Durability};
    let dir = std::env::temp_dir().join(format!("mm-exit-nothread-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.db");
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(marketplace_metering::Client::new(
                support::config("http://127.0.0.1:9").build().unwrap(),
            ))
            .store(Store::sqlite(&path))
            .product_code(metering_emulator::PRODUCT_CODE)
            .durability(Durability::Memory)
            .build()
            .unwrap(),
    )
    .unwrap();
    meter
        .record(Customer::identifier("cust-1"), "users", 7, None, None)
        .unwrap();
    if !cap_threads() {
        println!("SKIPPED: this process cannot be put in a pids cgroup");
        return;
    }
    assert!(std::thread::Builder::new().spawn(|| ()).is_err());
    let why = marketplace_metering::meter::write_buffered_at_exit(vec![meter.downgrade()]);
    let units: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT COALESCE(SUM(quantity), 0) FROM buckets", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(meter);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(units, 7, "the exit write was dropped: {why:?}");
    println!("CHECKED");
}

/// Runs the test `name` in a child of this test binary (which caps its own threads), and
/// checks that it passed or was skipped.
fn in_capped_child(name: &str) {
    let emu = support::emulator();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, emu.port().to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    if let Some(dir) = cgroup_dir(pid) {
        let _ = std::fs::remove_dir(dir);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("SKIPPED") {
        println!("skipped: this process cannot be put in a pids cgroup");
        return;
    }
    assert!(
        out.status.success() && text.contains("CHECKED"),
        "{:?}: {text}",
        out.status
    );
}

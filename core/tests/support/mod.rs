// SPDX-License-Identifier: Apache-2.0
// Test support shared by the integration tests: the emulator and a client config for it
// (here), a private PostgreSQL cluster (`pg`).

// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod pg;
pub mod pg_proxy;
pub mod tls_ca;
pub mod trace;

use marketplace_metering::{Config, ConfigBuilder};
use metering_emulator::{Emulator, EmulatorConfig};

/// An emulator on 127.0.0.1 with its default settings.
pub fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("emulator starts")
}

/// A client config for the emulator at `endpoint`: its region and its default keys. Tests
/// add what they vary (attempts, backoffs, timeouts) and build it.
pub fn config(endpoint: impl Into<String>) -> ConfigBuilder {
    Config::builder()
        .region(metering_emulator::DEFAULT_REGION)
        .endpoint_url(endpoint)
        .static_credentials(
            metering_emulator::DEFAULT_ACCESS_KEY_ID,
            metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
            None,
        )
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes of body) from `conn`;
/// returns its bytes.
pub fn read_request(conn: &mut impl std::io::Read) -> Vec<u8> {
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    let want = loop {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "the connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            break end + 4 + len;
        }
    };
    while buf.len() < want {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

/// An HTTP date (RFC 7231) for epoch seconds.
pub fn http_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to the civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Asserts that the first `BatchMeterUsage` call the emulator received carries `wanted` (a
/// customer or a license, as its body spells it): after an outage, the hours still in the
/// service's window go first.
pub fn assert_first_batch_carries(emu: &Emulator, wanted: &str) {
    let first = emu
        .requests()
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("BatchMeterUsage"))
        .expect("a BatchMeterUsage call");
    assert!(
        first.body.contains(wanted),
        "the first call sent hours past the window: {}",
        first.body
    );
}

/// Forks `children` times while a thread keeps the shared runtime busy (spawning from
/// outside, as a flusher's timers and a fleet's connections do) and runs `in_child` in each
/// child, which then leaves; returns how many children were still running it after 30 s
/// (a child that hangs never ends: the first one stops the forking).
/// A child that touches the runtime it inherited can wait for good on a lock one of the
/// runtime's threads held at the fork: that thread is not in the child to let go of it.
pub fn children_that_hung(children: usize, in_child: impl Fn()) -> usize {
    let rt = marketplace_metering::runtime::handle().unwrap();
    children_that_hung_beside(
        children,
        move || {
            rt.spawn(async {});
        },
        in_child,
    )
}

/// [`children_that_hung`], the parent's thread running `busy` over and over meanwhile.
pub fn children_that_hung_beside(
    children: usize,
    busy: impl Fn() + Send + 'static,
    in_child: impl Fn(),
) -> usize {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                busy();
            }
        })
    };
    let mut hung = 0;
    for _ in 0..children {
        // SAFETY: the child runs `in_child` under an alarm and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            unsafe { libc::alarm(30) };
            // A panic (a failed call) fails the child: unwound out of the test's thread,
            // the child's only one, it would leave with 0.
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&in_child)).is_ok();
            unsafe { libc::_exit(if ok { 0 } else { 2 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
            hung += 1;
            break;
        } else {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "child failed: {status}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    hung
}

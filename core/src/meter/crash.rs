// SPDX-License-Identifier: Apache-2.0
// Test-only crash points of the meter (cargo feature `crash-points`).

//! Crash points for the meter's crash test (`core/tests/meter_crash.rs`).
//!
//! Compiled only with the cargo feature `crash-points`, which nothing but the core's own
//! tests turn on (a dev-dependency of the crate on itself); without it [`hit`] is an empty
//! inline function and the environment is never read. With it, the variable
//! `MM_METER_CRASH_AT=<point>:<n>[:<ms>]`, read once, makes the process abort (no
//! destructor, no flush: what SIGKILL does to SQLite) the `n`-th time it passes `point`, or,
//! with `ms`, `ms` milliseconds later from another thread, while the meter goes on (to land
//! a crash inside an HTTP call held open by the emulator's `delay` fault).
//!
//! Points: `record_mid_txn`, `record_after_commit`, `seal_mid_txn`, `after_seal`,
//! `before_send`, `after_send_before_ack`, `mid_ack_txn`, `after_ack`.

#[cfg(feature = "crash-points")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    struct Armed {
        point: String,
        nth: u64,
        delay_ms: Option<u64>,
        seen: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let v = std::env::var("MM_METER_CRASH_AT").ok()?;
                let mut parts = v.split(':');
                let point = parts.next()?.to_owned();
                let nth = parts.next()?.parse().ok()?;
                let delay_ms = parts.next().and_then(|d| d.parse().ok());
                Some(Armed {
                    point,
                    nth,
                    delay_ms,
                    seen: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    pub(crate) fn hit(point: &str) {
        let Some(a) = armed() else { return };
        if a.point != point || a.seen.fetch_add(1, Ordering::SeqCst) + 1 != a.nth {
            return;
        }
        match a.delay_ms {
            None => std::process::abort(),
            Some(ms) => {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    std::process::abort()
                });
            }
        }
    }
}

#[cfg(feature = "crash-points")]
pub(crate) use imp::hit;

/// Without the `crash-points` feature: nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn hit(_point: &str) {}

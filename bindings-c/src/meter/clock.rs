// SPDX-License-Identifier: Apache-2.0
// mm_clock: the core's ManualClock, so C tests can seal hours without waiting.

use marketplace_metering::meter::ManualClock;

use crate::error::mm_status;
use crate::ffi::{self, Castable};

/// A clock set by hand (the core's `ManualClock`), for tests and examples: give it to
/// `mm_meter_config_set_clock` and hours seal when you move it, not when real time passes.
///
/// Thread-safe: it may be read, set and advanced from many threads at once. The meter keeps
/// its own reference, so the clock may be freed before the meter (it then stops moving).
pub struct mm_clock {
    _private: [u8; 0],
}

impl Castable for mm_clock {
    type Rust = ManualClock;
}

/// A new clock reading `epoch_seconds`. Free it with `mm_clock_free`. NULL only if allocation
/// fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_new(epoch_seconds: i64) -> *mut mm_clock {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_clock>(ManualClock::new(epoch_seconds)))
}

/// Sets the clock to `epoch_seconds`. `clock` NULL → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_set(clock: *const mm_clock, epoch_seconds: i64) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live clock.
        unsafe { ffi::req_ref(clock, "clock") }?.set(epoch_seconds);
        Ok(())
    })
}

/// Moves the clock by `seconds` (negative moves it back). `clock` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_advance(clock: *const mm_clock, seconds: i64) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live clock.
        unsafe { ffi::req_ref(clock, "clock") }?.advance(seconds);
        Ok(())
    })
}

/// The time the clock reads (epoch seconds); 0 if `clock` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_now(clock: *const mm_clock) -> i64 {
    // SAFETY: NULL or a live clock.
    ffi_boundary!(0 => unsafe { ffi::opt_ref(clock) }.map_or(0, ManualClock::now))
}

/// Frees the caller's reference to a clock (meters using it keep theirs). NULL does nothing.
/// No other thread may use this handle during or after the call.
#[no_mangle]
pub extern "C" fn mm_clock_free(clock: *mut mm_clock) {
    // SAFETY: NULL or a clock made by mm_clock_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(clock) })
}

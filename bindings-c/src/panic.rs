// SPDX-License-Identifier: Apache-2.0
// The panic boundary every extern "C" function runs inside.

//! The panic boundary.
//!
//! Since Rust 1.81 a panic that unwinds out of an `extern "C"` function aborts the process.
//! A C caller must never see that, so every exported body runs in [`boundary`] (fallible
//! calls: the panic becomes `MM_STATUS_PANIC` and, when asked, an `mm_error`) or [`value`]
//! (accessors: the panic becomes a default such as NULL or 0). The closures are
//! `AssertUnwindSafe`: after a caught panic the affected handle may be inconsistent, but it is
//! still memory-safe to use and to free.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{mm_error, mm_status, ErrorData};

/// Runs a fallible body: `Ok` gives `MM_STATUS_OK`; `Err` (or a panic) gives its status and,
/// when `err_out` is not NULL, stores a new `mm_error` there.
pub fn boundary(
    err_out: *mut *mut mm_error,
    f: impl FnOnce() -> Result<(), ErrorData>,
) -> mm_status {
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(ErrorData::panic()));
    match result {
        Ok(()) => mm_status::Ok,
        Err(e) => {
            let status = e.status;
            if !err_out.is_null() {
                // Even this must not unwind: a panic while boxing just leaves err_out alone.
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    // SAFETY: the caller passes either NULL or a valid `mm_error **`.
                    unsafe { *err_out = crate::ffi::to_handle::<mm_error>(e) };
                }));
            }
            status
        }
    }
}

/// Runs an infallible body (an accessor), returning `default` if it panics.
pub fn value<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// `ffi_boundary!(err_out, { body })`: [`boundary`] with the body as a closure whose `?`
/// returns an `ErrorData`; `ffi_boundary!(default => expr)`: [`value`].
#[macro_export]
macro_rules! ffi_boundary {
    ($err_out:expr, $body:block) => {
        $crate::panic::boundary($err_out, || -> Result<(), $crate::error::ErrorData> {
            $body
        })
    };
    ($default:expr => $body:expr) => {
        $crate::panic::value($default, || $body)
    };
}

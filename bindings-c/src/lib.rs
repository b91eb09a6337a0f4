// SPDX-License-Identifier: Apache-2.0
// The C ABI of marketplace-metering: translation only; every rule lives in the core crate.

//! `libmarketplace_metering`: the C face of the `marketplace-metering` core.
//!
//! This crate only translates. Every extern "C" function:
//!
//! * runs its body inside [`panic::boundary`] (the `ffi_boundary!` pattern of rustls-ffi):
//!   a panic is caught and reported as `MM_STATUS_PANIC` (or NULL/0 for accessors), because
//!   unwinding across `extern "C"` aborts the process (Rust ≥ 1.81);
//! * NULL-checks every pointer (`MM_STATUS_NULL_PARAMETER`) and checks that input strings
//!   are UTF-8 (`MM_STATUS_INVALID_INPUT`);
//! * writes its outputs only on success.
//!
//! Handles are opaque (`_private: [u8; 0]`) and are boxed Rust values underneath (see
//! [`ffi::Castable`]). Calls block the calling thread through
//! `marketplace_metering::blocking::Client`.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(non_camel_case_types)]
// The exported functions are called from C, where `unsafe` means nothing: they take raw
// pointers by design, NULL-check them, and document what a valid pointer is.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

#[macro_use]
pub mod panic;
pub mod client;
pub mod config;
pub mod error;
pub mod ffi;
pub mod input;
pub mod meter;
pub mod output;
mod status;
#[cfg(test)]
mod tests;

pub use client::*;
pub use config::*;
pub use error::*;
pub use input::*;
pub use meter::*;
pub use output::*;

use std::ffi::c_char;

/// The library version (`"0.1.0"`), as a static NUL-terminated string.
///
/// Never NULL; the caller must not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Stops the library's shared runtime, joining its worker threads (waits up to 2 s for work
/// in flight).
///
/// Call it once at exit, after every call has returned, so leak checkers (valgrind, LSan)
/// see a clean process. Clients stay usable: the next call starts a new runtime. Takes no
/// pointer; thread-safe, but calls still running on other threads keep the old runtime alive
/// until they finish.
///
/// Meters are not stopped: the background flusher (`mm_meter_config_set_flush_interval_seconds`)
/// of every meter not yet freed is started again at once on a new runtime, so it keeps
/// sending. Free (after `mm_meter_close`) every meter before `mm_shutdown()` to end every
/// library thread. Called from a callback (a meter's event callback runs on the library's
/// threads), it does nothing: a runtime cannot stop from its own thread.
#[no_mangle]
pub extern "C" fn mm_shutdown() {
    panic::value((), marketplace_metering::runtime::shutdown)
}

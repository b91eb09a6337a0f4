// SPDX-License-Identifier: Apache-2.0
// The JVM face's native library: the core exported with uniffi. Translation only; every rule
// (validation, retries, signing, the meter's policy) lives in `marketplace-metering`.

//! uniffi exports behind `dev.marketplacemetering` (Kotlin, usable from Java).
//!
//! * [`client`]: `NativeClient`: each operation blocking (for Java's blocking forms) and
//!   `async` (for Kotlin's `suspend` and Java's `CompletableFuture` forms), both on the core's
//!   shared runtime.
//! * [`direct`]: the blocking operations in one direct-mapped native call each (what Java's
//!   blocking forms use: uniffi's generated calls cost five JNA calls and their structures).
//! * [`model`]: the model's shapes as uniffi records, every member optional so that a `null`
//!   from Java reaches the core's validation and comes back as an error naming the field.
//! * [`error`]: the core's `Error` for Kotlin, and the Kotlin exception classes made from the
//!   core's error-code table.
//! * [`meter`]: the core's usage meter.
//! * [`emulator`]: the in-process `metering-emulator` for `dev.marketplacemetering.testing`.

uniffi::setup_scaffolding!();

pub mod client;
pub mod direct;
pub mod emulator;
pub mod error;
pub mod meter;
pub mod model;

/// This library's version (the Maven artifact's).
#[uniffi::export]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Writes the live meters' memory buffers to their stores and stops the core's shared
/// runtime (joins its threads). Called from a JVM shutdown hook, which runs beside the
/// application's own: the meters stay open, their background flushers start again on a new
/// runtime, and the next call of a client does too. What a memory meter records after this
/// is written to its store as it is recorded (an application's own hook may still be
/// recording).
#[uniffi::export]
pub fn native_shutdown() {
    meter::write_all_buffers();
    marketplace_metering::runtime::shutdown();
}

// SPDX-License-Identifier: Apache-2.0
// marketplace-metering (Node.js face): napi-rs translation of the Rust core; the JS layer is index.js.

//! The native half of the `marketplace-metering` npm package.
//!
//! Only translation lives here: JS values in, core inputs; core outputs and errors out.
//! Everything else (validation, signing, retries, endpoints, credentials) is the core's.
//!
//! **Runtime.** The module init hands napi a runtime built from the core's
//! [`marketplace_metering::runtime::builder`], so every promise of this package runs on one
//! runtime with the core's settings (worker count, thread names). Nothing here ever calls the
//! core's blocking API: a blocking call would stall the event loop.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// `clippy --all-targets` also checks a test build, where napi does not register exports.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod convert;
mod emulator;
mod errors;
mod meter;

#[napi_derive::module_init]
fn init() {
    // `create_custom_tokio_runtime` keeps the first runtime it is given (later envs, e.g.
    // worker_threads, share it). If the runtime cannot be built, napi falls back to its default
    // runtime rather than failing the require().
    //
    // One worker by default: a call's future and its connection's task then run on the same
    // thread, and a call costs one cross-thread wake-up fewer. Settling a promise never blocks
    // the worker (napi queues it to the event loop), so a second worker buys nothing here; on
    // a 2-core VM one worker gave 20-40 % more sequential calls/s and about 23 % more with 8
    // in flight (bench/node/bench.mjs). The Python face keeps two: its completions wait for the GIL.
    if let Ok(rt) = marketplace_metering::runtime::builder_with_workers(1).build() {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// The version of the Rust core this addon was built from.
#[napi_derive::napi]
pub fn core_version() -> &'static str {
    marketplace_metering::VERSION
}

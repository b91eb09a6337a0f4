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
    if let Ok(rt) = marketplace_metering::runtime::builder().build() {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// The version of the Rust core this addon was built from.
#[napi_derive::napi]
pub fn core_version() -> &'static str {
    marketplace_metering::VERSION
}

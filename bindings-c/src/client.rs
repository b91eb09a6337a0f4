// SPDX-License-Identifier: Apache-2.0
// mm_client and the four operations, blocking the calling thread.

//! `mm_client` and the operations.
//!
//! A client wraps `marketplace_metering::blocking::Client` (an `Arc` inside): calls take
//! `const mm_client *`, run on the calling thread (see `marketplace_metering::runtime::block_on`), and may run
//! from many threads at once on one client.

use marketplace_metering::{blocking, Config};

use crate::config::mm_config;
use crate::error::{mm_error, mm_status};
use crate::ffi::{self, Castable};
use crate::input::{
    mm_batch_meter_usage_input, mm_meter_usage_input, mm_register_usage_input,
    mm_resolve_customer_input,
};
use crate::output::{
    mm_batch_meter_usage_output, mm_meter_usage_output, mm_register_usage_output,
    mm_resolve_customer_output, BatchOutput, MeterOutput, RegisterOutput, ResolveOutput,
};

/// A Metering Service client.
///
/// Thread-safe: one client may be used from many threads at once (every call takes a
/// `const mm_client *`). Each call blocks the calling thread until the response (retries
/// included) or the error; do not call from inside a signal handler. Free it with
/// `mm_client_free` once no call is running on it.
pub struct mm_client {
    _private: [u8; 0],
}

impl Castable for mm_client {
    type Rust = blocking::Client;
}

/// Makes a client from a configuration (copied; `config` may be freed afterwards). Without
/// credentials in `config` the default chain is used.
///
/// On success stores a new client in `*client_out` (free it with `mm_client_free`) and returns
/// `MM_STATUS_OK`. Fails with `MM_STATUS_INVALID_CONFIG` (no region, FIPS with a custom
/// endpoint, a malformed URL, 0 attempts or timeouts) or `MM_STATUS_CREDENTIALS`, filling
/// `*err_out` when `err_out` is not NULL. `config` or `client_out` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_client_new(
    config: *const mm_config,
    client_out: *mut *mut mm_client,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or a live config.
        let builder = unsafe { ffi::req_ref(config, "config") }?;
        ffi::check_out(client_out, "client_out")?;
        let config: Config = builder
            .clone()
            .user_agent_suffix(concat!("c/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_client>(client_out, blocking::Client::new(config)) };
        Ok(())
    })
}

/// Hands each attempt of a finished call to the config's log callback, if one was set.
fn deliver_log(c: &blocking::Client, meta: &marketplace_metering::ResponseMetadata) {
    if let Some(f) = c.config().attempt_observer() {
        for e in meta.attempt_log() {
            f(e);
        }
    }
}

/// Frees a client. NULL does nothing. No call may be running on it, and it may not be used
/// afterwards; other clients are unaffected.
#[no_mangle]
pub extern "C" fn mm_client_free(client: *mut mm_client) {
    // SAFETY: NULL or a client made by mm_client_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(client) })
}

/// Sends `BatchMeterUsage` (validating the input first; nothing is sent if it is invalid).
///
/// On success stores a new output in `*output_out` (free it with
/// `mm_batch_meter_usage_output_free`): check every result's status and re-send the
/// unprocessed records. On failure returns the error's status and, if `err_out` is not NULL,
/// stores a new `mm_error` there. `client`, `input` or `output_out` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Blocks; thread-safe (one client, many threads; the input is
/// only read).
#[no_mangle]
pub extern "C" fn mm_client_batch_meter_usage(
    client: *const mm_client,
    input: *const mm_batch_meter_usage_input,
    output_out: *mut *mut mm_batch_meter_usage_output,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or live handles.
        let (c, i) = unsafe {
            (
                ffi::req_ref(client, "client")?,
                ffi::req_ref(input, "input")?,
            )
        };
        ffi::check_out(output_out, "output_out")?;
        let out = c.batch_meter_usage(i.to_core()?);
        deliver_log(
            c,
            match &out {
                Ok(o) => o.metadata(),
                Err(e) => e.as_error().metadata(),
            },
        );
        let out = out.map_err(|e| crate::error::ErrorData::from(e.as_error()))?;
        // SAFETY: checked non-NULL above.
        unsafe {
            ffi::write_out::<mm_batch_meter_usage_output>(
                output_out,
                BatchOutput::new(out, i.product_code.clone()),
            )
        };
        Ok(())
    })
}

/// Sends `MeterUsage` (validating the input first). A dry run that would succeed fails with
/// `MM_STATUS_DRY_RUN_OPERATION`.
///
/// On success stores a new output in `*output_out` (free it with `mm_meter_usage_output_free`).
/// On failure returns the error's status and, if `err_out` is not NULL, stores a new
/// `mm_error` there. `client`, `input` or `output_out` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Blocks; thread-safe.
#[no_mangle]
pub extern "C" fn mm_client_meter_usage(
    client: *const mm_client,
    input: *const mm_meter_usage_input,
    output_out: *mut *mut mm_meter_usage_output,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or live handles.
        let (c, i) = unsafe {
            (
                ffi::req_ref(client, "client")?,
                ffi::req_ref(input, "input")?,
            )
        };
        ffi::check_out(output_out, "output_out")?;
        let out = c.meter_usage(i.to_core()?);
        deliver_log(
            c,
            match &out {
                Ok(o) => o.metadata(),
                Err(e) => e.as_error().metadata(),
            },
        );
        let out = out.map_err(|e| crate::error::ErrorData::from(e.as_error()))?;
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_meter_usage_output>(output_out, MeterOutput::new(&out)) };
        Ok(())
    })
}

/// Sends `ResolveCustomer` with a registration token.
///
/// On success stores a new output in `*output_out` (free it with
/// `mm_resolve_customer_output_free`). On failure (`MM_STATUS_INVALID_TOKEN_EXCEPTION`,
/// `MM_STATUS_EXPIRED_TOKEN_EXCEPTION`, …) returns the error's status and, if `err_out` is not
/// NULL, stores a new `mm_error` there. `client`, `input` or `output_out` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Blocks; thread-safe.
#[no_mangle]
pub extern "C" fn mm_client_resolve_customer(
    client: *const mm_client,
    input: *const mm_resolve_customer_input,
    output_out: *mut *mut mm_resolve_customer_output,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or live handles.
        let (c, i) = unsafe {
            (
                ffi::req_ref(client, "client")?,
                ffi::req_ref(input, "input")?,
            )
        };
        ffi::check_out(output_out, "output_out")?;
        let out = c.resolve_customer(i.to_core()?);
        deliver_log(
            c,
            match &out {
                Ok(o) => o.metadata(),
                Err(e) => e.as_error().metadata(),
            },
        );
        let out = out.map_err(|e| crate::error::ErrorData::from(e.as_error()))?;
        // SAFETY: checked non-NULL above.
        unsafe {
            ffi::write_out::<mm_resolve_customer_output>(output_out, ResolveOutput::new(&out))
        };
        Ok(())
    })
}

/// Sends `RegisterUsage`.
///
/// On success stores a new output in `*output_out` (free it with
/// `mm_register_usage_output_free`). On failure (`MM_STATUS_CUSTOMER_NOT_ENTITLED_EXCEPTION`,
/// `MM_STATUS_INVALID_INPUT` for a public key version below 1, …) returns the error's status
/// and, if `err_out` is not NULL, stores a new `mm_error` there. `client`, `input` or
/// `output_out` NULL → `MM_STATUS_NULL_PARAMETER`. Blocks; thread-safe.
#[no_mangle]
pub extern "C" fn mm_client_register_usage(
    client: *const mm_client,
    input: *const mm_register_usage_input,
    output_out: *mut *mut mm_register_usage_output,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or live handles.
        let (c, i) = unsafe {
            (
                ffi::req_ref(client, "client")?,
                ffi::req_ref(input, "input")?,
            )
        };
        ffi::check_out(output_out, "output_out")?;
        let out = c.register_usage(i.to_core()?);
        deliver_log(
            c,
            match &out {
                Ok(o) => o.metadata(),
                Err(e) => e.as_error().metadata(),
            },
        );
        let out = out.map_err(|e| crate::error::ErrorData::from(e.as_error()))?;
        // SAFETY: checked non-NULL above.
        unsafe {
            ffi::write_out::<mm_register_usage_output>(output_out, RegisterOutput::new(&out))
        };
        Ok(())
    })
}

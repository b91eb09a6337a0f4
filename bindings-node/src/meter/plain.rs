// SPDX-License-Identifier: Apache-2.0
// record()'s common shape as a bare Node-API function: the in-memory meter's hot path.

//! `record({ customerIdentifier, dimension, quantity })` on a meter that only buffers in
//! memory, from JS to the core's bucket in as few steps as Node-API allows.
//!
//! A `#[napi]` method pays per call for napi-rs's receiver machinery (`napi_unwrap`, a class
//! check, borrow bookkeeping behind global locks); for a call that is otherwise a hash-map
//! update that was a large share of its cost. This function is a plain `napi_create_function`
//! callback whose data is the meter itself: one `napi_get_cb_info`, the strings read into
//! buffers on the stack, the core's borrowing `record_identifier`, a boolean back. Same
//! rules, same errors as [`super::NativeMeter::record_now`] (the JS layer's equivalence test).

use std::ptr;

use marketplace_metering::UsageMeter;
use napi::bindgen_prelude::*;

use super::{record_inline, Events};
use crate::convert;

/// The callback's data: what [`super::NativeMeter`] holds, shared.
pub(super) struct Plain {
    meter: Option<UsageMeter>,
    events: Events,
}

impl Drop for Plain {
    fn drop(&mut self) {
        // Dropped by the GC's finalizer: never run the core meter's last drop there.
        super::drop_elsewhere(self.meter.take());
    }
}

/// The function `(customerIdentifier: string, dimension: string, quantity: number) => boolean`
/// (`true` when the call queued events, as `recordNow`), bound to `meter`.
pub(super) fn function(env: &Env, meter: UsageMeter, events: Events) -> Result<sys::napi_value> {
    let data = Box::into_raw(Box::new(Plain {
        meter: Some(meter),
        events,
    }));
    let name = "recordPlain";
    let mut f = ptr::null_mut();
    // SAFETY: `data` stays valid until the finalizer below frees it, once the function is
    // collected; until then only `record_plain` reads it, on this env's thread.
    unsafe {
        let made = napi::check_status!(sys::napi_create_function(
            env.raw(),
            name.as_ptr().cast(),
            name.len() as isize,
            Some(record_plain),
            data.cast(),
            &mut f,
        ))
        .and_then(|()| {
            napi::check_status!(sys::napi_add_finalizer(
                env.raw(),
                f,
                data.cast(),
                Some(finalize),
                ptr::null_mut(),
                ptr::null_mut(),
            ))
        });
        if let Err(e) = made {
            drop(Box::from_raw(data));
            return Err(e);
        }
    }
    Ok(f)
}

unsafe extern "C" fn finalize(
    _env: sys::napi_env,
    data: *mut std::ffi::c_void,
    _hint: *mut std::ffi::c_void,
) {
    // SAFETY: `data` is the box `function` leaked, finalized once.
    drop(unsafe { Box::from_raw(data.cast::<Plain>()) });
}

unsafe extern "C" fn record_plain(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let call = std::panic::AssertUnwindSafe(|| unsafe { call(env, info) });
    let r = std::panic::catch_unwind(call)
        .map_err(napi::bindgen_prelude::panic_to_error)
        .and_then(|r| r);
    let mut out = ptr::null_mut();
    // SAFETY: `env` is the calling env, on its thread.
    unsafe {
        match r {
            Ok(queued) => {
                if sys::napi_get_boolean(env, queued, &mut out) != sys::Status::napi_ok {
                    out = ptr::null_mut();
                }
            }
            Err(e) => JsError::from(e).throw_into(env),
        }
    }
    out
}

/// # Safety
/// `env` and `info` are a call of a function made by [`function`], on its env's thread.
unsafe fn call(env: sys::napi_env, info: sys::napi_callback_info) -> Result<bool> {
    let mut argc = 3usize;
    let mut argv = [ptr::null_mut(); 3];
    let mut data = ptr::null_mut();
    // SAFETY: the caller's; napi fills missing arguments with `undefined`.
    unsafe {
        napi::check_status!(sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        ))?;
    }
    // SAFETY: the data `function` gave this function, alive while it can be called.
    let plain = unsafe { &*data.cast::<Plain>() };
    let env_ = Env::from_raw(env);
    let mut quantity = 0f64;
    // SAFETY: a live argument of this call.
    napi::check_status!(unsafe { sys::napi_get_value_double(env, argv[2], &mut quantity) })?;
    let quantity = convert::meter_record_quantity(quantity).map_err(|e| e.into_napi(&env_))?;
    let (mut cb, mut db) = ([0u8; 256], [0u8; 256]);
    let customer = convert::text_in(env, argv[0], &mut cb)?;
    let dimension = convert::text_in(env, argv[1], &mut db)?;
    convert::well_formed_argument(env, argv[0], &customer, "customerIdentifier")
        .and_then(|()| convert::well_formed_argument(env, argv[1], &dimension, "dimension"))
        .map_err(|e| e.into_napi(&env_))?;
    let meter = plain
        .meter
        .as_ref()
        .ok_or_else(|| napi::Error::new(Status::GenericFailure, "the meter was dropped"))?;
    record_inline(&env_, &plain.events, meter, |m| {
        m.record_identifier(&customer, &dimension, quantity)
    })
}

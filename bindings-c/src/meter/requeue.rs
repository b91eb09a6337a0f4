// SPDX-License-Identifier: Apache-2.0
// Sending dead letters again: the mm_requeue_filter builder and mm_meter_requeue.

use std::ffi::c_char;

use marketplace_metering::meter::RequeueFilter;

use super::*;
use crate::error::{mm_error, mm_status, ErrorData};
use crate::ffi::{self, Castable};

/// What an `mm_requeue_filter` holds.
#[derive(Clone, Debug, Default)]
pub struct RequeueSettings {
    reason: Option<String>,
    customer_identifier: Option<String>,
    customer_aws_account_id: Option<String>,
    license_arn: Option<String>,
    hour: Option<i64>,
}

/// Which dead letters `mm_meter_requeue` sends again: those matching every part set (none set:
/// every dead letter). Built with `mm_requeue_filter_new` and the setters, freed with
/// `mm_requeue_filter_free`; setters only copy, and the customer's combination is checked by
/// `mm_meter_requeue` (an identifier, or an account id with its license ARN). Not consumed by
/// `mm_meter_requeue`. Setters are not thread-safe on one filter; using one filter from
/// several threads at once (with no setter running) is.
pub struct mm_requeue_filter {
    _private: [u8; 0],
}

impl Castable for mm_requeue_filter {
    type Rust = RequeueSettings;
}

/// A new filter matching every dead letter. Free it with `mm_requeue_filter_free`. NULL only
/// if allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_new() -> *mut mm_requeue_filter {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_requeue_filter>(RequeueSettings::default()))
}

/// Frees a filter. NULL does nothing. No other thread may use `filter` during or after the
/// call.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_free(filter: *mut mm_requeue_filter) {
    // SAFETY: NULL or a filter made by mm_requeue_filter_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(filter) })
}

/// Sets one string part of a filter (NULL → `MM_STATUS_NULL_PARAMETER` naming `what`).
fn set_str(
    filter: *mut mm_requeue_filter,
    value: *const c_char,
    what: &str,
    slot: fn(&mut RequeueSettings) -> &mut Option<String>,
) -> mm_status {
    ffi::set(filter, "filter", |f| {
        // SAFETY: NULL or a NUL-terminated string.
        *slot(f) = Some(unsafe { ffi::str_arg(value, what) }?.to_owned());
        Ok(())
    })
}

/// Only dead letters with this reason: the record's Status (`"CustomerNotSubscribed"`, …) or
/// the error code. Copied. `filter` or `reason` NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8
/// → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one filter.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_set_reason(
    filter: *mut mm_requeue_filter,
    reason: *const c_char,
) -> mm_status {
    set_str(filter, reason, "reason", |f| &mut f.reason)
}

/// Only dead letters of this customer identifier. Copied. NULL arguments →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
/// filter.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_set_customer_identifier(
    filter: *mut mm_requeue_filter,
    customer_identifier: *const c_char,
) -> mm_status {
    set_str(filter, customer_identifier, "customer_identifier", |f| {
        &mut f.customer_identifier
    })
}

/// Only dead letters of this AWS account (with `mm_requeue_filter_set_license_arn`). Copied.
/// NULL arguments → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not
/// thread-safe on one filter.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_set_customer_aws_account_id(
    filter: *mut mm_requeue_filter,
    customer_aws_account_id: *const c_char,
) -> mm_status {
    set_str(
        filter,
        customer_aws_account_id,
        "customer_aws_account_id",
        |f| &mut f.customer_aws_account_id,
    )
}

/// The license ARN of the account customer to match. Copied. NULL arguments →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
/// filter.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_set_license_arn(
    filter: *mut mm_requeue_filter,
    license_arn: *const c_char,
) -> mm_status {
    set_str(filter, license_arn, "license_arn", |f| &mut f.license_arn)
}

/// Only dead letters of the hour containing `epoch_seconds` (any second of it). `filter` NULL
/// → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one filter.
#[no_mangle]
pub extern "C" fn mm_requeue_filter_set_hour(
    filter: *mut mm_requeue_filter,
    epoch_seconds: i64,
) -> mm_status {
    ffi::set(filter, "filter", |f| {
        f.hour = Some(epoch_seconds);
        Ok(())
    })
}

/// Sends chosen dead letters again: those `filter` matches whose hour is still inside the
/// service's window go back to sealed, with their frozen quantity, and leave the dead-letter
/// list; the next flush sends them. Writes how many to `*count_out` when it is not NULL.
///
/// A customer combination other than an identifier, or an account id with its license ARN →
/// `MM_STATUS_INVALID_INPUT` naming the field; a store failure → `MM_STATUS_INVALID_STATE`.
/// `meter` or `filter` NULL → `MM_STATUS_NULL_PARAMETER` (an empty filter matches every dead
/// letter). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_requeue(
    meter: *const mm_meter,
    filter: *const mm_requeue_filter,
    count_out: *mut u64,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        // SAFETY: NULL or a live filter.
        let f = unsafe { ffi::req_ref(filter, "filter") }?;
        let filter = RequeueFilter::from_parts(
            f.reason.clone(),
            f.customer_identifier.clone(),
            f.customer_aws_account_id.clone(),
            f.license_arn.clone(),
            f.hour,
        )
        .map_err(ErrorData::from)?;
        let n = m.requeue(&filter)?;
        if !count_out.is_null() {
            // SAFETY: a valid, writable uint64_t (checked non-NULL).
            unsafe { *count_out = u64::try_from(n).unwrap_or(u64::MAX) };
        }
        Ok(())
    })
}

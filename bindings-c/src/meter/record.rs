// SPDX-License-Identifier: Apache-2.0
// Recording usage: the mm_usage_event builder, mm_meter_record, and registering customers for
// zero fill.

use std::ffi::c_char;

use marketplace_metering::meter::{Customer, MeterMode};
use marketplace_metering::primitives::DateTime;

use super::*;
use crate::error::{mm_error, mm_status, ErrorData};
use crate::ffi;
use crate::input::{allocations, count_arg, mm_tag, tag_args, Allocation};

/// The customer of a record: an identifier, or an account id with its license ARN (or
/// nothing in the MeterUsage mode, which ignores customers).
///
/// # Safety
/// Each pointer is NULL or a NUL-terminated string.
unsafe fn customer_arg(
    mode: MeterMode,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
) -> Result<Option<Customer>, ErrorData> {
    // SAFETY: per the contract above.
    let (ci, acct, lic) = unsafe {
        (
            ffi::opt_str_arg(customer_identifier, "customer_identifier")?,
            ffi::opt_str_arg(customer_aws_account_id, "customer_aws_account_id")?,
            ffi::opt_str_arg(license_arn, "license_arn")?,
        )
    };
    Customer::from_parts(
        ci.map(str::to_owned),
        acct.map(str::to_owned),
        lic.map(str::to_owned),
        mode != MeterMode::MeterUsage,
    )
    .map_err(ErrorData::from)
}

// ---------------------------------------------------------------------------------------------
// mm_usage_event

/// What an `mm_usage_event` holds: the C face's spelling of one `UsageMeter::record` call.
#[derive(Clone, Debug, Default)]
pub struct UsageEvent {
    customer_identifier: Option<String>,
    customer_aws_account_id: Option<String>,
    license_arn: Option<String>,
    dimension: Option<String>,
    quantity: Option<i64>,
    timestamp: Option<i64>,
    allocations: Vec<Allocation>,
}

/// One billable event for `mm_meter_record`, built with setters: `mm_usage_event_new`, a
/// customer (`mm_usage_event_set_customer_identifier`, or `mm_usage_event_set_customer_aws_account_id`
/// with `mm_usage_event_set_license_arn`), `mm_usage_event_set_dimension`,
/// `mm_usage_event_set_quantity`, and optionally `mm_usage_event_set_timestamp` (absent: now,
/// by the meter's clock) and `mm_usage_event_add_allocation`. Free with `mm_usage_event_free`.
///
/// Setters only copy (NULL → `MM_STATUS_NULL_PARAMETER`, not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`); everything else is checked by `mm_meter_record`. An event is
/// not consumed by `mm_meter_record`: it may be recorded again, or changed and recorded.
/// Setters are not thread-safe on one event; recording one event from several threads at
/// once (with no setter running) is.
pub struct mm_usage_event {
    _private: [u8; 0],
}

impl Castable for mm_usage_event {
    type Rust = UsageEvent;
}

/// A new, empty usage event. Free it with `mm_usage_event_free`. NULL only if allocation
/// fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_usage_event_new() -> *mut mm_usage_event {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_usage_event>(UsageEvent::default()))
}

/// Frees a usage event. NULL does nothing. No other thread may use `event` during or after
/// the call.
#[no_mangle]
pub extern "C" fn mm_usage_event_free(event: *mut mm_usage_event) {
    // SAFETY: NULL or an event made by mm_usage_event_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(event) })
}

fn set(
    event: *mut mm_usage_event,
    f: impl FnOnce(&mut UsageEvent) -> Result<(), ErrorData>,
) -> mm_status {
    ffi::set(event, "event", f)
}

/// Bills the event to a `CustomerIdentifier` (with the meter's product code). Copied. An event
/// bills one customer: an identifier, or an AWS account id with its license ARN; any other
/// combination is refused by `mm_meter_record` naming the field. `event` or
/// `customer_identifier` NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_set_customer_identifier(
    event: *mut mm_usage_event,
    customer_identifier: *const c_char,
) -> mm_status {
    set(event, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        let v = unsafe { ffi::str_arg(customer_identifier, "customer_identifier") }?;
        e.customer_identifier = Some(v.to_owned());
        Ok(())
    })
}

/// Bills the event to an AWS account (`CustomerAWSAccountId`); needs
/// `mm_usage_event_set_license_arn` too. Copied. `event` or `customer_aws_account_id` NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
/// event.
#[no_mangle]
pub extern "C" fn mm_usage_event_set_customer_aws_account_id(
    event: *mut mm_usage_event,
    customer_aws_account_id: *const c_char,
) -> mm_status {
    set(event, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        let v = unsafe { ffi::str_arg(customer_aws_account_id, "customer_aws_account_id") }?;
        e.customer_aws_account_id = Some(v.to_owned());
        Ok(())
    })
}

/// The license (`LicenseArn`) of an AWS account customer. Copied. `event` or `license_arn`
/// NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on
/// one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_set_license_arn(
    event: *mut mm_usage_event,
    license_arn: *const c_char,
) -> mm_status {
    set(event, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        e.license_arn = Some(unsafe { ffi::str_arg(license_arn, "license_arn") }?.to_owned());
        Ok(())
    })
}

/// Sets the dimension (required). Copied. `event` or `dimension` NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
/// event.
#[no_mangle]
pub extern "C" fn mm_usage_event_set_dimension(
    event: *mut mm_usage_event,
    dimension: *const c_char,
) -> mm_status {
    set(event, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        e.dimension = Some(unsafe { ffi::str_arg(dimension, "dimension") }?.to_owned());
        Ok(())
    })
}

/// Sets the quantity (required; its range is checked by `mm_meter_record`). `event` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_set_quantity(
    event: *mut mm_usage_event,
    quantity: i64,
) -> mm_status {
    set(event, |e| {
        e.quantity = Some(quantity);
        Ok(())
    })
}

/// Sets when the usage happened (epoch seconds). Without it the event is recorded at the
/// meter clock's now. `event` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_set_timestamp(
    event: *mut mm_usage_event,
    epoch_seconds: i64,
) -> mm_status {
    set(event, |e| {
        e.timestamp = Some(epoch_seconds);
        Ok(())
    })
}

/// Removes the timestamp: the event is recorded at the meter clock's now again. `event` NULL
/// → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_clear_timestamp(event: *mut mm_usage_event) -> mm_status {
    set(event, |e| {
        e.timestamp = None;
        Ok(())
    })
}

/// Appends a usage allocation: `quantity` of the event's usage tagged with `n_tags` tags
/// (`tags` may be NULL when `n_tags` is 0). The tags are copied. The allocations of an event
/// must sum to its quantity (checked by `mm_meter_record`).
///
/// `event` NULL, `tags` NULL with `n_tags > 0`, or a NULL key/value →
/// `MM_STATUS_NULL_PARAMETER`; a string not UTF-8, too many tags or too many allocations →
/// `MM_STATUS_INVALID_INPUT`. Nothing is appended on failure. Not thread-safe on one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_add_allocation(
    event: *mut mm_usage_event,
    quantity: i64,
    tags: *const mm_tag,
    n_tags: usize,
) -> mm_status {
    set(event, |e| {
        count_arg(
            e.allocations.len() + 1,
            marketplace_metering::validate::MAX_USAGE_ALLOCATIONS,
            "allocations",
        )?;
        // SAFETY: NULL or `n_tags` readable tags.
        let tags = unsafe { tag_args(tags, n_tags) }?;
        e.allocations.push(Allocation { quantity, tags });
        Ok(())
    })
}

/// Removes every allocation. `event` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on
/// one event.
#[no_mangle]
pub extern "C" fn mm_usage_event_clear_allocations(event: *mut mm_usage_event) -> mm_status {
    set(event, |e| {
        e.allocations.clear();
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// mm_meter_record

/// Records `event` and returns once it is as durable as the meter's durability says. The
/// event is copied; it may be freed or changed afterwards.
///
/// The customer is required except in the MeterUsage mode, which ignores it. An event whose
/// hour is already sealed is counted in the current hour and reported as
/// `MM_METER_EVENT_KIND_LATE_EVENT`.
///
/// Bad input fails with `MM_STATUS_INVALID_INPUT` and an error whose field names what is
/// wrong (`dimension` when it is missing or invalid, `quantity`, `customer_identifier`,
/// `license_arn`, `allocations[0].AllocatedUsageQuantity`, …); nothing is recorded. A closed
/// meter gives `MM_STATUS_INVALID_STATE`. `meter` or `event` NULL →
/// `MM_STATUS_NULL_PARAMETER` (the message names which). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_record(
    meter: *const mm_meter,
    event: *const mm_usage_event,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |mode, m| {
        // SAFETY: NULL or a live event.
        let e = unsafe { ffi::req_ref(event, "event") }?;
        let customer = Customer::from_parts(
            e.customer_identifier.clone(),
            e.customer_aws_account_id.clone(),
            e.license_arn.clone(),
            mode != MeterMode::MeterUsage,
        )?;
        let Some(dimension) = e.dimension.as_deref() else {
            return Err(ErrorData::invalid("dimension", "is required"));
        };
        let Some(quantity) = e.quantity else {
            return Err(ErrorData::invalid("quantity", "is required"));
        };
        let allocs = allocations("allocations", &e.allocations)?;
        let at = e.timestamp.map(DateTime::from_secs);
        m.record(customer, dimension, quantity, at, allocs)?;
        Ok(())
    })
}

/// Registers a customer for zero fill: from the current hour on, each of `dimensions`
/// (`n_dimensions` strings) is reported every hour, as 0 when there was no usage (only when
/// zero fill is on). The customer is `customer_identifier`, or `customer_aws_account_id` with `license_arn`
/// (NULL for the others; all NULL in the MeterUsage mode).
///
/// Bad input → `MM_STATUS_INVALID_INPUT` naming the field. `meter` NULL, or `dimensions` NULL
/// with `n_dimensions` > 0, or a NULL dimension → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_register_customer(
    meter: *const mm_meter,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
    dimensions: *const *const c_char,
    n_dimensions: usize,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |mode, m| {
        // SAFETY: NULL or NUL-terminated strings.
        let customer = unsafe {
            customer_arg(
                mode,
                customer_identifier,
                customer_aws_account_id,
                license_arn,
            )
        }?;
        // SAFETY: `dimensions` is NULL or points to `n_dimensions` NULL or NUL-terminated
        // strings, read during the call.
        let dims = unsafe { dimension_args(dimensions, n_dimensions) }?;
        m.register_customer(customer, &dims)?;
        Ok(())
    })
}

/// Stops zero-filling a customer (one that churned): its registrations for `dimensions`
/// (`n_dimensions` strings), or for every dimension when `dimensions` is NULL and
/// `n_dimensions` 0, are removed at once, so no zero is made for an hour not zero-filled yet
/// (usage recorded is still sent). The customer is given as to `mm_meter_register_customer`.
/// `removed_out` (may be NULL) receives how many registrations were removed.
///
/// Bad input → `MM_STATUS_INVALID_INPUT` naming the field. `meter` NULL, or `dimensions` NULL
/// with `n_dimensions` > 0, or a NULL dimension → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_unregister_customer(
    meter: *const mm_meter,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
    dimensions: *const *const c_char,
    n_dimensions: usize,
    removed_out: *mut usize,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |mode, m| {
        // SAFETY: NULL or NUL-terminated strings.
        let customer = unsafe {
            customer_arg(
                mode,
                customer_identifier,
                customer_aws_account_id,
                license_arn,
            )
        }?;
        let dims = if dimensions.is_null() && n_dimensions == 0 {
            None
        } else {
            // SAFETY: as `mm_meter_register_customer`'s.
            Some(unsafe { dimension_args(dimensions, n_dimensions) }?)
        };
        let removed = m.unregister_customer(customer, dims.as_deref())?;
        if !removed_out.is_null() {
            // SAFETY: the caller passes NULL or a writable `size_t`.
            unsafe { removed_out.write(removed) };
        }
        Ok(())
    })
}

/// `n_dimensions` strings at `dimensions`, each named `dimensions[i]` when refused.
///
/// # Safety
/// `dimensions` is NULL or points to `n_dimensions` pointers, each NULL or a NUL-terminated
/// string that outlives the result.
unsafe fn dimension_args<'a>(
    dimensions: *const *const c_char,
    n_dimensions: usize,
) -> Result<Vec<&'a str>, ErrorData> {
    if n_dimensions > 0 && dimensions.is_null() {
        return Err(ErrorData::null("dimensions"));
    }
    count_arg(
        n_dimensions,
        marketplace_metering::validate::MAX_DIMENSIONS,
        "n_dimensions",
    )?;
    let mut dims: Vec<&str> = Vec::with_capacity(n_dimensions);
    if n_dimensions > 0 {
        // SAFETY: `dimensions` points to `n_dimensions` readable pointers.
        let given = unsafe { std::slice::from_raw_parts(dimensions, n_dimensions) };
        for (i, &d) in given.iter().enumerate() {
            // SAFETY: NULL or a NUL-terminated string.
            dims.push(unsafe { ffi::str_arg(d, &format!("dimensions[{i}]")) }?);
        }
    }
    Ok(dims)
}

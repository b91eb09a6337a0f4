// SPDX-License-Identifier: Apache-2.0
// Recording usage (mm_meter_record) and registering customers for zero fill.

use std::ffi::c_char;

use marketplace_metering::meter::{Customer, MeterMode};
use marketplace_metering::primitives::DateTime;

use super::*;
use crate::error::{mm_error, mm_status, ErrorData};
use crate::ffi;
use crate::input::{allocations, count_arg, mm_tag, tag_args, Allocation};

/// The `timestamp` of `mm_meter_record` that means "now, by the meter's clock".
pub const MM_METER_NOW: i64 = i64::MIN;

/// A usage allocation for `mm_meter_record`: a share of the quantity with its tags (the
/// existing `mm_tag`). Borrowed for the duration of the call (copied).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mm_allocation {
    /// The allocated quantity (0..=2147483647); the allocations of a record sum to its quantity.
    pub quantity: i64,
    /// `n_tags` tags (NULL when `n_tags` is 0).
    pub tags: *const mm_tag,
    /// The number of tags (0–5).
    pub n_tags: usize,
}

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
) -> Result<Customer, ErrorData> {
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

/// Records `quantity` of `dimension` used by a customer at `timestamp` (epoch seconds, or
/// `MM_METER_NOW` for the meter clock's now) and returns once the event is as durable as the
/// meter's durability says.
///
/// The customer is `customer_identifier` (with the meter's product code), or
/// `customer_aws_account_id` with `license_arn`; pass NULL for the other(s). In the MeterUsage
/// mode customers are ignored and may all be NULL. `allocations` (`n_allocations` of them;
/// NULL when 0) split the quantity by tags and must sum to it. An event whose hour is already
/// sealed is counted in the current hour and reported as `MM_METER_EVENT_KIND_LATE_EVENT`.
///
/// Bad input fails with `MM_STATUS_INVALID_INPUT` and an error whose field names the argument
/// (`quantity`, `dimension`, `customer_identifier`, `license_arn`,
/// `allocations[0].AllocatedUsageQuantity`, …); nothing is recorded. A closed meter gives
/// `MM_STATUS_INVALID_STATE`. `meter` or `dimension` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Thread-safe.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mm_meter_record(
    meter: *const mm_meter,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
    dimension: *const c_char,
    quantity: i64,
    timestamp: i64,
    allocations_in: *const mm_allocation,
    n_allocations: usize,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |h, m| {
        // SAFETY: NULL or NUL-terminated strings; NULL or `n_allocations` allocations.
        let (customer, dimension, allocs) = unsafe {
            (
                customer_arg(
                    h.mode,
                    customer_identifier,
                    customer_aws_account_id,
                    license_arn,
                )?,
                ffi::str_arg(dimension, "dimension")?,
                allocation_args(allocations_in, n_allocations)?,
            )
        };
        let at = (timestamp != MM_METER_NOW).then(|| DateTime::from_secs(timestamp));
        m.record(customer, dimension, quantity, at, allocs)?;
        Ok(())
    })
}

/// Copies a `(allocations, n)` array into core allocations.
///
/// # Safety
/// `a` is NULL or points to `n` readable `mm_allocation`s whose tags are valid.
unsafe fn allocation_args(
    a: *const mm_allocation,
    n: usize,
) -> Result<Option<Vec<marketplace_metering::types::UsageAllocation>>, ErrorData> {
    if n == 0 {
        return Ok(None);
    }
    count_arg(
        n,
        marketplace_metering::validate::MAX_USAGE_ALLOCATIONS,
        "n_allocations",
    )?;
    if a.is_null() {
        return Err(ErrorData::null("allocations"));
    }
    // SAFETY: per the contract above.
    let list = unsafe { std::slice::from_raw_parts(a, n) };
    let mut out = Vec::with_capacity(n);
    for x in list {
        out.push(Allocation {
            quantity: x.quantity,
            // SAFETY: per the contract above.
            tags: unsafe { tag_args(x.tags, x.n_tags) }?,
        });
    }
    Ok(allocations("allocations", &out)?)
}

/// Registers a customer for zero fill: from the current hour on, each of `dimensions`
/// (`n_dimensions` strings) is reported every hour, as 0 when there was no usage (only when
/// zero fill is on). The customer is given as for `mm_meter_record`.
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
    with_meter(meter, err_out, |h, m| {
        // SAFETY: NULL or NUL-terminated strings.
        let customer = unsafe {
            customer_arg(
                h.mode,
                customer_identifier,
                customer_aws_account_id,
                license_arn,
            )
        }?;
        count_arg(
            n_dimensions,
            marketplace_metering::validate::MAX_DIMENSIONS,
            "n_dimensions",
        )?;
        let mut dims: Vec<&str> = Vec::with_capacity(n_dimensions);
        if n_dimensions > 0 {
            if dimensions.is_null() {
                return Err(ErrorData::null("dimensions"));
            }
            // SAFETY: `dimensions` points to `n_dimensions` readable pointers.
            for &d in unsafe { std::slice::from_raw_parts(dimensions, n_dimensions) } {
                // SAFETY: NULL or a NUL-terminated string.
                dims.push(unsafe { ffi::str_arg(d, "dimension") }?);
            }
        }
        m.register_customer(customer, &dims)?;
        Ok(())
    })
}

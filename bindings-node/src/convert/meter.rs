// SPDX-License-Identifier: Apache-2.0
// The usage meter's inputs (options, record, registerCustomer, requeue) read from JS objects.

use std::time::Duration;

use marketplace_metering::meter::{Customer, RequeueFilter};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::validate;
use marketplace_metering::Error;
use napi::bindgen_prelude::*;
use napi::ValueType;

use crate::meter::{MeterOptions, MeterRecord};

use super::{
    allocations, array, boolean, check_keys, describe, exact_integer, integer, member,
    not_a_member, present, root, string, timestamp, ConvError, Members, Path, R,
};

/// A meter time (`ManualClock`): a `Date`, epoch seconds or an ISO-8601 string.
pub fn meter_time(v: Unknown<'_>, field: &'static str) -> R<DateTime> {
    timestamp(v, Path::Root.field(field))
}

/// A whole number of seconds (`ManualClock.advance`).
pub fn meter_seconds_int(v: Unknown<'_>, field: &'static str) -> R<i64> {
    integer(v, Path::Root.field(field))
}

/// A non-negative, finite number of seconds.
pub(super) fn seconds(v: Unknown<'_>, path: Path<'_>) -> R<Duration> {
    seconds_f64(v, path).map(Duration::from_secs_f64)
}

/// A non-negative, finite number of seconds, as given.
fn seconds_f64(v: Unknown<'_>, path: Path<'_>) -> R<f64> {
    if v.get_type()? != ValueType::Number {
        return Err(path.err(format_args!(
            "must be a number of seconds, got {}",
            describe(&v)?
        )));
    }
    let s = unsafe { v.cast::<f64>() }?;
    if !s.is_finite() || !(0.0..=1e12).contains(&s) {
        return Err(path.err(format_args!(
            "must be a finite, non-negative number of seconds, got {s}"
        )));
    }
    Ok(s)
}

pub(super) const METER_OPTION_KEYS: &[&str] = &[
    "path",
    "productCode",
    "mode",
    "durability",
    "graceSeconds",
    "zeroFill",
    "flushIntervalSeconds",
    "clock",
    "databaseUrl",
    "replicaId",
    "fleetSenders",
    "fleetLeaseSeconds",
    "startHour",
    "powerLossSafe",
];

/// `new UsageMeter(client, options)` options (`clock` is checked by the JS layer).
pub fn meter_options(v: Unknown<'_>) -> R<MeterOptions> {
    let o = root(v, METER_OPTION_KEYS)?;
    let top = Path::Root;
    let mut out = MeterOptions {
        path: None,
        product_code: None,
        mode: Default::default(),
        durability: Default::default(),
        grace: None,
        zero_fill: false,
        power_loss_safe: None,
        flush_interval_secs: None,
        database_url: None,
        replica_id: None,
        fleet_senders: None,
        fleet_lease: None,
        start_hour: None,
    };
    if let Some(v) = opt!(o, "path") {
        out.path = Some(string(v, top.field("path"))?);
    }
    if let Some(v) = opt!(o, "databaseUrl") {
        out.database_url = Some(string(v, top.field("databaseUrl"))?);
    }
    if let Some(v) = opt!(o, "replicaId") {
        out.replica_id = Some(string(v, top.field("replicaId"))?);
    }
    if let Some(v) = opt!(o, "fleetSenders") {
        // Below 1 is passed as 0, which the core refuses naming `fleetSenders`.
        let n = integer(v, top.field("fleetSenders"))?;
        out.fleet_senders = Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
    }
    if let Some(v) = opt!(o, "fleetLeaseSeconds") {
        out.fleet_lease = Some(seconds(v, top.field("fleetLeaseSeconds"))?);
    }
    if let Some(v) = opt!(o, "startHour") {
        out.start_hour = Some(timestamp(v, top.field("startHour"))?.secs());
    }
    if let Some(v) = opt!(o, "productCode") {
        out.product_code = Some(string(v, top.field("productCode"))?);
    }
    if let Some(v) = opt!(o, "mode") {
        let p = top.field("mode");
        out.mode = string(v, p)?
            .parse()
            .map_err(|e: Error| p.err(e.problem()))?;
    }
    if let Some(v) = opt!(o, "durability") {
        let p = top.field("durability");
        out.durability = string(v, p)?
            .parse()
            .map_err(|e: Error| p.err(e.problem()))?;
    }
    if let Some(v) = opt!(o, "graceSeconds") {
        out.grace = Some(seconds(v, top.field("graceSeconds"))?);
    }
    if let Some(v) = opt!(o, "zeroFill") {
        out.zero_fill = boolean(v, top.field("zeroFill"))?;
    }
    if let Some(v) = opt!(o, "powerLossSafe") {
        out.power_loss_safe = Some(boolean(v, top.field("powerLossSafe"))?);
    }
    if let Some(obj) = &o {
        // `undefined` (or absent) keeps the core's default; `null` or 0 turns the flusher off.
        let v: Unknown<'_> = obj.get_named_property("flushIntervalSeconds")?;
        match v.get_type()? {
            ValueType::Undefined => {}
            ValueType::Null => out.flush_interval_secs = Some(0.0),
            _ => {
                let secs = seconds_f64(v, top.field("flushIntervalSeconds"))?;
                out.flush_interval_secs = Some(secs);
            }
        }
    }
    Ok(out)
}

/// The customer of a `record()` / `registerCustomer()` input; `None` when absent and not
/// `required` (MeterUsage mode, where buckets have no customer).
pub(super) fn meter_customer(
    ci: Option<String>,
    acct: Option<String>,
    lic: Option<String>,
    required: bool,
) -> R<Option<Customer>> {
    Customer::from_parts(ci, acct, lic, required).map_err(ConvError::Input)
}

/// The string member `name` of a meter input, if present.
pub(super) fn optional_text(o: &Object<'_>, name: &'static str) -> R<Option<String>> {
    match member(o, name)? {
        Some(v) => Ok(Some(string(v, Path::Root.field(name))?)),
        None => Ok(None),
    }
}

/// `meter.requeue({ reason?, customerIdentifier? | customerAwsAccountId + licenseArn, hour? })`.
pub fn meter_requeue_input(v: Option<Unknown<'_>>) -> R<RequeueFilter> {
    let Some(v) = v.map(present).transpose()?.flatten() else {
        return Ok(RequeueFilter::default());
    };
    let o = meter_input(
        v,
        &[
            "reason",
            "customerIdentifier",
            "customerAwsAccountId",
            "licenseArn",
            "hour",
        ],
    )?;
    let top = Path::Root;
    let text = |name: &'static str| optional_text(&o, name);
    let hour = match member(&o, "hour")? {
        Some(v) => Some(timestamp(v, top.field("hour"))?.secs()),
        None => None,
    };
    RequeueFilter::from_parts(
        text("reason")?,
        text("customerIdentifier")?,
        text("customerAwsAccountId")?,
        text("licenseArn")?,
        hour,
    )
    .map_err(ConvError::Input)
}

/// The input object of a meter call, its keys not yet checked.
pub(super) fn meter_object<'e>(v: Unknown<'e>) -> R<Object<'e>> {
    match v.get_type()? {
        ValueType::Object if !v.is_array()? && !v.is_date()? => {}
        _ => {
            return Err(ConvError::Input(
                marketplace_metering::Error::invalid_input(
                    "input",
                    format_args!("must be an object, got {}", describe(&v)?),
                ),
            ))
        }
    }
    Ok(unsafe { v.cast::<Object<'e>>() }?)
}

/// The input object of a meter call, its keys each in `allowed`.
pub(super) fn meter_input<'e>(v: Unknown<'e>, allowed: &[&str]) -> R<Object<'e>> {
    let obj = meter_object(v)?;
    check_keys(&obj, Path::Root, allowed)?;
    Ok(obj)
}

pub(super) const RECORD_KEYS: &[&str] = &[
    "customerIdentifier",
    "customerAwsAccountId",
    "licenseArn",
    "dimension",
    "quantity",
    "timestamp",
    "allocations",
];

/// `meter.record({...})`: types and shape; the core checks the values. One pass over the
/// keys the object has (the hot path: no lookups of absent members).
pub fn meter_record_input(v: Unknown<'_>, customer_required: bool) -> R<MeterRecord> {
    let o = meter_object(v)?;
    let top = Path::Root;
    let (mut ci, mut acct, mut lic) = (None, None, None);
    let (mut dimension, mut quantity, mut at, mut allocs) = (None, None, None, None);
    let mut members = Members::new(&o)?;
    while let Some((key, v)) = members.next()? {
        if !RECORD_KEYS.contains(&key) {
            return Err(not_a_member(top, key, RECORD_KEYS));
        }
        let Some(v) = present(v)? else { continue };
        match key {
            "customerIdentifier" => ci = Some(string(v, top.field("customerIdentifier"))?),
            "customerAwsAccountId" => acct = Some(string(v, top.field("customerAwsAccountId"))?),
            "licenseArn" => lic = Some(string(v, top.field("licenseArn"))?),
            "dimension" => dimension = Some(string(v, top.field("dimension"))?),
            "quantity" => quantity = Some(integer(v, top.field("quantity"))?),
            "timestamp" => at = Some(timestamp(v, top.field("timestamp"))?),
            "allocations" => allocs = Some(allocations(v, top.field("allocations"))?),
            _ => {}
        }
    }
    let customer = meter_customer(ci, acct, lic, customer_required)?;
    let Some(dimension) = dimension else {
        return Err(top.field("dimension").err("is required"));
    };
    let Some(quantity) = quantity else {
        return Err(top.field("quantity").err("is required"));
    };
    Ok(MeterRecord {
        customer,
        dimension,
        quantity,
        at,
        allocations: allocs,
    })
}

/// The quantity of `record()`'s common shape, `{ customerIdentifier, dimension, quantity }` with
/// nothing else, its members read by the JS layer (which checked the keys and that both strings
/// are strings): the same rule and error as [`meter_record_input`]'s. The core's
/// `record_identifier` checks the rest, as `record` does for the general shape.
pub fn meter_record_quantity(quantity: f64) -> R<i64> {
    exact_integer(quantity, Path::Root.field("quantity"))
}

/// `meter.registerCustomer({ customer…, dimensions })`.
pub fn meter_register_input(
    v: Unknown<'_>,
    customer_required: bool,
) -> R<(Option<Customer>, Vec<String>)> {
    let (customer, dims) = meter_unregister_input(v, customer_required)?;
    let Some(dims) = dims else {
        return Err(Path::Root.field("dimensions").err("is required"));
    };
    Ok((customer, dims))
}

/// `unregisterCustomer`'s input: the customer, and `dimensions` (absent, `undefined` or `null`: every
/// dimension).
pub fn meter_unregister_input(
    v: Unknown<'_>,
    customer_required: bool,
) -> R<(Option<Customer>, Option<Vec<String>>)> {
    let o = meter_input(
        v,
        &[
            "customerIdentifier",
            "customerAwsAccountId",
            "licenseArn",
            "dimensions",
        ],
    )?;
    let text = |name: &'static str| optional_text(&o, name);
    let customer = meter_customer(
        text("customerIdentifier")?,
        text("customerAwsAccountId")?,
        text("licenseArn")?,
        customer_required,
    )?;
    Ok((customer, dimensions(&o)?))
}

/// The `dimensions` member: an array of strings, `None` when absent.
fn dimensions(o: &Object<'_>) -> R<Option<Vec<String>>> {
    let top = Path::Root;
    let p = top.field("dimensions");
    let Some(v) = member(o, "dimensions")? else {
        return Ok(None);
    };
    let (arr, len) = array(v, p, validate::MAX_DIMENSIONS)?;
    let mut dims = Vec::with_capacity(len as usize);
    for i in 0..len {
        dims.push(string(arr.get_element(i)?, p.index(i))?);
    }
    Ok(Some(dims))
}

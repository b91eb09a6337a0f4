// SPDX-License-Identifier: Apache-2.0
// boto3-shaped request dicts → the four operations' inputs (through the core's builders).

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::operation::meter_usage::MeterUsageInput;
use marketplace_metering::operation::register_usage::RegisterUsageInput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{Tag, UsageAllocation, UsageRecord};
use marketplace_metering::validate;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{
    as_dict, boolean, int64, items, join, key_str, list, missing, quantity, required, string, text,
    text_of, timestamp, type_error, unknown_key, CResult,
};

pub(super) const BMU_KEYS: &[&str] = &["ProductCode", "UsageRecords"];
pub(super) const RECORD_KEYS: &[&str] = marketplace_metering::types::UsageRecord::MEMBERS;
pub(super) const ALLOC_KEYS: &[&str] = &["AllocatedUsageQuantity", "Tags"];
pub(super) const TAG_KEYS: &[&str] = &["Key", "Value"];
pub(super) const MU_KEYS: &[&str] = &[
    "ProductCode",
    "Timestamp",
    "UsageDimension",
    "UsageQuantity",
    "DryRun",
    "UsageAllocations",
    "ClientToken",
];
pub(super) const RC_KEYS: &[&str] = &["RegistrationToken"];
pub(super) const RU_KEYS: &[&str] = &["ProductCode", "PublicKeyVersion", "Nonce"];

pub(super) fn tag(v: &Bound<'_, PyAny>, path: &str) -> CResult<Tag> {
    let d = as_dict(v, path)?;
    let mut b = Tag::builder();
    for item in items(d) {
        let (k, v) = item?;
        let k = key_str(&k, || path.to_owned())?;
        match &*k {
            "Key" => b = b.key(string(&v, || join(path, "Key"))?),
            "Value" => b = b.value(string(&v, || join(path, "Value"))?),
            other => return Err(unknown_key(path, other, TAG_KEYS)),
        }
    }
    b.build().map_err(|e| missing(path, e))
}

pub fn allocations(v: &Bound<'_, PyAny>, path: &str) -> CResult<Vec<UsageAllocation>> {
    let given = list(v, path, validate::MAX_USAGE_ALLOCATIONS)?;
    let mut out = Vec::with_capacity(given.len());
    for (i, item) in given.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let d = as_dict(item, &p)?;
        let mut b = UsageAllocation::builder();
        for item in items(d) {
            let (k, v) = item?;
            let k = key_str(&k, || p.clone())?;
            match &*k {
                "AllocatedUsageQuantity" => {
                    b = b.allocated_usage_quantity(quantity(&v, || {
                        join(&p, "AllocatedUsageQuantity")
                    })?)
                }
                "Tags" => {
                    let tp = join(&p, "Tags");
                    let tags = list(&v, &tp, validate::MAX_TAGS)?;
                    let mut built = Vec::with_capacity(tags.len());
                    for (j, t) in tags.iter().enumerate() {
                        built.push(tag(t, &format!("{tp}[{j}]"))?);
                    }
                    b = b.set_tags(Some(built));
                }
                other => return Err(unknown_key(&p, other, ALLOC_KEYS)),
            }
        }
        out.push(b.build().map_err(|e| missing(&p, e))?);
    }
    Ok(out)
}

/// The last `Timestamp` object converted in this call: a batch usually shares one datetime,
/// and converting it costs several Python method calls.
pub(super) type LastTimestamp = Option<(*mut pyo3::ffi::PyObject, DateTime)>;

pub(super) fn usage_record(
    v: &Bound<'_, PyAny>,
    i: usize,
    last: &mut LastTimestamp,
) -> CResult<UsageRecord> {
    let path = || format!("UsageRecords[{i}]");
    let d = v
        .cast::<PyDict>()
        .map_err(|_| type_error(&path(), "dict", v))?;
    // The members' values, held so that their text is read in place (no owned copy).
    let (mut ts, mut qty, mut allocs) = (None, None, None);
    let (mut customer, mut dimension, mut account, mut license) = (None, None, None, None);
    for item in items(d) {
        let (k, v) = item?;
        let k = key_str(&k, path)?;
        let f = |name: &str| format!("UsageRecords[{i}].{name}");
        match &*k {
            "Timestamp" => {
                ts = Some(match *last {
                    // Same object as the previous record's (alive: the caller's list holds it).
                    Some((ptr, t)) if ptr == v.as_ptr() => t,
                    _ => {
                        let t = timestamp(&v, || f("Timestamp"))?;
                        *last = Some((v.as_ptr(), t));
                        t
                    }
                })
            }
            "CustomerIdentifier" => customer = Some(text(&v, || f("CustomerIdentifier"))?),
            "Dimension" => dimension = Some(text(&v, || f("Dimension"))?),
            "Quantity" => qty = Some(quantity(&v, || f("Quantity"))?),
            "UsageAllocations" => allocs = Some(allocations(&v, &f("UsageAllocations"))?),
            "CustomerAWSAccountId" => account = Some(text(&v, || f("CustomerAWSAccountId"))?),
            "LicenseArn" => license = Some(text(&v, || f("LicenseArn"))?),
            other => return Err(unknown_key(&path(), other, RECORD_KEYS)),
        }
    }
    let ts = ts.ok_or_else(|| required(&path(), "Timestamp"))?;
    let dimension = dimension.ok_or_else(|| required(&path(), "Dimension"))?;
    let customer = customer.as_ref().map(text_of).transpose()?;
    let account = account.as_ref().map(text_of).transpose()?;
    let license = license.as_ref().map(text_of).transpose()?;
    Ok(UsageRecord::from_members(
        ts,
        customer.as_deref(),
        &text_of(&dimension)?,
        qty,
        allocs,
        account.as_deref(),
        license.as_deref(),
    ))
}

pub fn batch_meter_usage_input(params: &Bound<'_, PyDict>) -> CResult<BatchMeterUsageInput> {
    let mut b = BatchMeterUsageInput::builder();
    for item in items(params) {
        let (k, v) = item?;
        let k = key_str(&k, String::new)?;
        match &*k {
            "ProductCode" => b = b.product_code(string(&v, || "ProductCode".into())?),
            "UsageRecords" => {
                let given = list(&v, "UsageRecords", validate::MAX_USAGE_RECORDS)?;
                let mut recs = Vec::with_capacity(given.len());
                let mut last = None;
                for (i, item) in given.iter().enumerate() {
                    recs.push(usage_record(item, i, &mut last)?);
                }
                b = b.set_usage_records(Some(recs));
            }
            other => return Err(unknown_key("", other, BMU_KEYS)),
        }
    }
    b.build().map_err(|e| missing("", e))
}

pub fn meter_usage_input(params: &Bound<'_, PyDict>) -> CResult<MeterUsageInput> {
    let mut b = MeterUsageInput::builder();
    for item in items(params) {
        let (k, v) = item?;
        let k = key_str(&k, String::new)?;
        match &*k {
            "ProductCode" => b = b.product_code(string(&v, || "ProductCode".into())?),
            "Timestamp" => b = b.timestamp(timestamp(&v, || "Timestamp".into())?),
            "UsageDimension" => b = b.usage_dimension(string(&v, || "UsageDimension".into())?),
            "UsageQuantity" => b = b.usage_quantity(quantity(&v, || "UsageQuantity".into())?),
            "DryRun" => b = b.dry_run(boolean(&v, "DryRun")?),
            "UsageAllocations" => {
                b = b.set_usage_allocations(Some(allocations(&v, "UsageAllocations")?))
            }
            "ClientToken" => b = b.client_token(string(&v, || "ClientToken".into())?),
            other => return Err(unknown_key("", other, MU_KEYS)),
        }
    }
    b.build().map_err(|e| missing("", e))
}

pub fn resolve_customer_input(params: &Bound<'_, PyDict>) -> CResult<ResolveCustomerInput> {
    let mut b = ResolveCustomerInput::builder();
    for item in items(params) {
        let (k, v) = item?;
        let k = key_str(&k, String::new)?;
        match &*k {
            "RegistrationToken" => {
                b = b.registration_token(string(&v, || "RegistrationToken".into())?)
            }
            other => return Err(unknown_key("", other, RC_KEYS)),
        }
    }
    b.build().map_err(|e| missing("", e))
}

pub fn register_usage_input(params: &Bound<'_, PyDict>) -> CResult<RegisterUsageInput> {
    let mut b = RegisterUsageInput::builder();
    for item in items(params) {
        let (k, v) = item?;
        let k = key_str(&k, String::new)?;
        match &*k {
            "ProductCode" => b = b.product_code(string(&v, || "ProductCode".into())?),
            "PublicKeyVersion" => {
                let n = int64(&v, "PublicKeyVersion")?;
                b = b.public_key_version(validate::public_key_version("PublicKeyVersion", n)?)
            }
            "Nonce" => b = b.nonce(string(&v, || "Nonce".into())?),
            other => return Err(unknown_key("", other, RU_KEYS)),
        }
    }
    b.build().map_err(|e| missing("", e))
}

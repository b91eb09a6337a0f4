// SPDX-License-Identifier: Apache-2.0
// The four operations' outputs → boto3-shaped dicts, with `ResponseMetadata` and the attempt log.

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageOutput;
use marketplace_metering::operation::meter_usage::MeterUsageOutput;
use marketplace_metering::operation::register_usage::RegisterUsageOutput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerOutput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{UsageAllocation, UsageRecord, UsageRecordResultStatus};
use marketplace_metering::ResponseMetadata;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::IntoPyObjectExt;

use super::py_datetime;

/// An output's response metadata.
pub trait HasMeta {
    /// The metadata.
    fn meta(&self) -> &ResponseMetadata;
}

macro_rules! has_meta {
    ($($t:ty),*) => {$(impl HasMeta for $t {
        fn meta(&self) -> &ResponseMetadata { self.metadata() }
    })*};
}
has_meta!(
    BatchMeterUsageOutput,
    MeterUsageOutput,
    ResolveCustomerOutput,
    RegisterUsageOutput
);

/// The attempt log as a list of tuples `(operation, attempt, status, request_id, latency_ms,
/// outcome, retry_reason, retry_delay_ms)`: what the Python layer turns into log records.
pub fn attempt_log<'py>(py: Python<'py>, meta: &ResponseMetadata) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for e in meta.attempt_log() {
        list.append((
            e.operation,
            e.attempt,
            e.status,
            e.request_id.as_deref(),
            e.latency.as_secs_f64() * 1000.0,
            e.outcome.as_str(),
            e.retry_reason,
            e.retry_delay.map(|d| d.as_secs_f64() * 1000.0),
        ))?;
    }
    Ok(list)
}

/// `resp` with `ResponseMetadata["_AttemptLog"]` when `with_log` (the Python layer removes it
/// before the caller sees the response).
pub fn with_attempt_log<O: HasMeta>(
    py: Python<'_>,
    resp: Py<PyAny>,
    out: &O,
    with_log: bool,
) -> PyResult<Py<PyAny>> {
    if with_log {
        let meta = resp
            .bind(py)
            .get_item(crate::name!(py, "ResponseMetadata"))?;
        meta.set_item(
            crate::name!(py, "_AttemptLog"),
            attempt_log(py, out.meta())?,
        )?;
    }
    Ok(resp)
}

pub fn response_metadata<'py>(
    py: Python<'py>,
    meta: &ResponseMetadata,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(
        crate::name!(py, "RequestId"),
        meta.request_id().unwrap_or(""),
    )?;
    d.set_item(
        crate::name!(py, "HTTPStatusCode"),
        meta.http_status().unwrap_or(0),
    )?;
    let h = PyDict::new(py);
    for (k, v) in meta.http_headers() {
        h.set_item(k, v)?;
    }
    d.set_item(crate::name!(py, "HTTPHeaders"), h)?;
    d.set_item(
        crate::name!(py, "RetryAttempts"),
        meta.attempts().saturating_sub(1),
    )?;
    Ok(d)
}

pub(super) fn set_opt(
    d: &Bound<'_, PyDict>,
    k: &Bound<'_, PyString>,
    v: Option<&str>,
) -> PyResult<()> {
    if let Some(v) = v {
        d.set_item(k, v)?;
    }
    Ok(())
}

pub(super) fn allocations_out<'py>(
    py: Python<'py>,
    a: &[UsageAllocation],
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for al in a {
        let d = PyDict::new(py);
        d.set_item(
            crate::name!(py, "AllocatedUsageQuantity"),
            al.allocated_usage_quantity(),
        )?;
        if !al.tags().is_empty() {
            let tags = PyList::empty(py);
            for t in al.tags() {
                let td = PyDict::new(py);
                td.set_item(crate::name!(py, "Key"), t.key())?;
                td.set_item(crate::name!(py, "Value"), t.value())?;
                tags.append(td)?;
            }
            d.set_item(crate::name!(py, "Tags"), tags)?;
        }
        out.append(d)?;
    }
    Ok(out)
}

/// The last datetime and dimension made in this call: a batch's records usually share one
/// timestamp and a few dimensions, and both are immutable in Python, so equal values share
/// one object (25 results made 25 datetimes and 25 equal strings).
#[derive(Default)]
pub(super) struct Last<'a, 'py> {
    datetime: Option<(DateTime, Bound<'py, PyAny>)>,
    dimension: Option<(&'a str, Bound<'py, PyString>)>,
}

pub(super) fn usage_record_out<'a, 'py>(
    py: Python<'py>,
    r: &'a UsageRecord,
    last: &mut Last<'a, 'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ts = match &last.datetime {
        Some((t, obj)) if t == r.timestamp() => obj.clone(),
        _ => {
            let obj = py_datetime(py, r.timestamp())?;
            last.datetime = Some((*r.timestamp(), obj.clone()));
            obj
        }
    };
    d.set_item(crate::name!(py, "Timestamp"), ts)?;
    set_opt(
        &d,
        crate::name!(py, "CustomerIdentifier"),
        r.customer_identifier(),
    )?;
    set_opt(
        &d,
        crate::name!(py, "CustomerAWSAccountId"),
        r.customer_aws_account_id(),
    )?;
    set_opt(&d, crate::name!(py, "LicenseArn"), r.license_arn())?;
    let dimension = match &last.dimension {
        Some((dim, obj)) if *dim == r.dimension() => obj.clone(),
        _ => {
            let obj = PyString::new(py, r.dimension());
            last.dimension = Some((r.dimension(), obj.clone()));
            obj
        }
    };
    d.set_item(crate::name!(py, "Dimension"), dimension)?;
    if let Some(q) = r.quantity() {
        d.set_item(crate::name!(py, "Quantity"), q)?;
    }
    if !r.usage_allocations().is_empty() {
        d.set_item(
            crate::name!(py, "UsageAllocations"),
            allocations_out(py, r.usage_allocations())?,
        )?;
    }
    Ok(d)
}

/// A result's status: the known ones are interned, one string each for the process.
fn status_str<'py>(py: Python<'py>, s: &UsageRecordResultStatus) -> Bound<'py, PyString> {
    match s {
        UsageRecordResultStatus::Success => crate::name!(py, "Success").clone(),
        UsageRecordResultStatus::CustomerNotSubscribed => {
            crate::name!(py, "CustomerNotSubscribed").clone()
        }
        UsageRecordResultStatus::DuplicateRecord => crate::name!(py, "DuplicateRecord").clone(),
        other => PyString::new(py, other.as_str()),
    }
}

pub fn batch_meter_usage_output(py: Python<'_>, o: &BatchMeterUsageOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    let results = PyList::empty(py);
    let mut last = Last::default();
    for r in o.results() {
        let rd = PyDict::new(py);
        if let Some(u) = r.usage_record() {
            rd.set_item(
                crate::name!(py, "UsageRecord"),
                usage_record_out(py, u, &mut last)?,
            )?;
        }
        set_opt(
            &rd,
            crate::name!(py, "MeteringRecordId"),
            r.metering_record_id(),
        )?;
        if let Some(status) = r.status() {
            rd.set_item(crate::name!(py, "Status"), status_str(py, status))?;
        }
        results.append(rd)?;
    }
    d.set_item(crate::name!(py, "Results"), results)?;
    let unprocessed = PyList::empty(py);
    for u in o.unprocessed_records() {
        unprocessed.append(usage_record_out(py, u, &mut last)?)?;
    }
    d.set_item(crate::name!(py, "UnprocessedRecords"), unprocessed)?;
    d.set_item(
        crate::name!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

pub fn meter_usage_output(py: Python<'_>, o: &MeterUsageOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    set_opt(
        &d,
        crate::name!(py, "MeteringRecordId"),
        o.metering_record_id(),
    )?;
    d.set_item(
        crate::name!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

pub fn resolve_customer_output(py: Python<'_>, o: &ResolveCustomerOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    set_opt(
        &d,
        crate::name!(py, "CustomerIdentifier"),
        o.customer_identifier(),
    )?;
    set_opt(&d, crate::name!(py, "ProductCode"), o.product_code())?;
    set_opt(
        &d,
        crate::name!(py, "CustomerAWSAccountId"),
        o.customer_aws_account_id(),
    )?;
    set_opt(&d, crate::name!(py, "LicenseArn"), o.license_arn())?;
    d.set_item(
        crate::name!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

pub fn register_usage_output(py: Python<'_>, o: &RegisterUsageOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    if let Some(t) = o.public_key_rotation_timestamp() {
        d.set_item(
            crate::name!(py, "PublicKeyRotationTimestamp"),
            py_datetime(py, t)?,
        )?;
    }
    set_opt(&d, crate::name!(py, "Signature"), o.signature())?;
    d.set_item(
        crate::name!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

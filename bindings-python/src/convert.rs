// SPDX-License-Identifier: Apache-2.0
// boto3-shaped dicts → the core's inputs (through its builders), core outputs → dicts.

//! Conversion only. This layer reports what it meets while converting — a wrong type, an
//! unknown or missing key, an integer out of range (through `validate::quantity`) — as the
//! core's `InvalidInput` error naming the field. Lengths, patterns, counts and sums are
//! checked by the core when the call is made.

use std::borrow::Cow;

use aws_smithy_types::date_time::Format;
use marketplace_metering::operation::batch_meter_usage::{
    BatchMeterUsageInput, BatchMeterUsageOutput,
};
use marketplace_metering::operation::meter_usage::{MeterUsageInput, MeterUsageOutput};
use marketplace_metering::operation::register_usage::{RegisterUsageInput, RegisterUsageOutput};
use marketplace_metering::operation::resolve_customer::{
    ResolveCustomerInput, ResolveCustomerOutput,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{Tag, UsageAllocation, UsageRecord};
use marketplace_metering::{validate, BuildError, Error, ResponseMetadata};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

/// A conversion failure: the core's error, or a Python exception met on the way.
pub enum ConvError {
    Input(Error),
    Py(PyErr),
}

impl From<PyErr> for ConvError {
    fn from(e: PyErr) -> Self {
        ConvError::Py(e)
    }
}

impl From<Error> for ConvError {
    fn from(e: Error) -> Self {
        ConvError::Input(e)
    }
}

type CResult<T> = Result<T, ConvError>;

pub fn type_error(path: &str, expected: &str, v: &Bound<'_, PyAny>) -> ConvError {
    let got = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    ConvError::Input(Error::invalid_input(
        path,
        format!("invalid type: expected {expected}, got {got}"),
    ))
}

fn unknown_key(path: &str, key: &str, allowed: &[&str]) -> ConvError {
    let p = if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    };
    ConvError::Input(Error::invalid_input(
        p,
        format!("unknown parameter, must be one of: {}", allowed.join(", ")),
    ))
}

fn missing(path: &str, e: BuildError) -> ConvError {
    let p = if path.is_empty() {
        e.field().to_owned()
    } else {
        format!("{path}.{}", e.field())
    };
    ConvError::Input(Error::invalid_input(p, "is required"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn as_dict<'a, 'py>(v: &'a Bound<'py, PyAny>, path: &str) -> CResult<&'a Bound<'py, PyDict>> {
    v.cast::<PyDict>().map_err(|_| type_error(path, "dict", v))
}

/// A dict key as text, borrowed where Python allows; `path` is only rendered for an error.
fn key_str<'a>(k: &'a Bound<'_, PyAny>, path: impl FnOnce() -> String) -> CResult<Cow<'a, str>> {
    match k.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?),
        Err(_) => Err(type_error(&path(), "str keys", k)),
    }
}

pub fn string(v: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> CResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(type_error(&path(), "str", v)),
    }
}

pub fn int64(v: &Bound<'_, PyAny>, path: &str) -> CResult<i64> {
    int64_with(v, || path.to_owned())
}

/// [`int64`], rendering the field path only for an error.
fn int64_with(v: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> CResult<i64> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(type_error(&path(), "int", v));
    }
    match v.extract::<i64>() {
        Ok(n) => Ok(n),
        // Beyond i64: saturate, the core's range check then names the field.
        Err(_) => {
            let neg = v.lt(0i64)?;
            Ok(if neg { i64::MIN } else { i64::MAX })
        }
    }
}

fn quantity(v: &Bound<'_, PyAny>, path: impl Fn() -> String) -> CResult<i32> {
    let n = int64_with(v, &path)?;
    Ok(validate::quantity_with(n, path)?)
}

fn boolean(v: &Bound<'_, PyAny>, path: &str) -> CResult<bool> {
    match v.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(type_error(path, "bool", v)),
    }
}

/// The items of a list or tuple of at most `max` (the model's maximum), refused by its
/// length before any item is converted.
fn list<'py>(v: &Bound<'py, PyAny>, path: &str, max: usize) -> CResult<Vec<Bound<'py, PyAny>>> {
    let too_many = |n: usize| {
        ConvError::Input(Error::invalid_input(
            path,
            format!("must hold at most {max} items, got {n}"),
        ))
    };
    if let Ok(l) = v.cast::<PyList>() {
        return match l.len() {
            n if n > max => Err(too_many(n)),
            _ => Ok(l.iter().collect()),
        };
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return match t.len() {
            n if n > max => Err(too_many(n)),
            _ => Ok(t.iter().collect()),
        };
    }
    Err(type_error(path, "list", v))
}

static DATETIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn datetime_type(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    DATETIME.import(py, "datetime", "datetime")
}

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    UTC.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("datetime")?
                .getattr("timezone")?
                .getattr("utc")?
                .unbind(),
        )
    })
    .map(|u| u.bind(py))
}

/// A timestamp from a `datetime` (naive means UTC, as botocore), epoch seconds (int or
/// float) or an ISO-8601 string.
pub fn timestamp(v: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> CResult<DateTime> {
    let py = v.py();
    if v.is_instance_of::<PyBool>() {
        return Err(type_error(&path(), "datetime, int, float or str", v));
    }
    if v.is_instance_of::<PyInt>() {
        let p = path();
        return match v.extract::<i64>() {
            Ok(n) => Ok(DateTime::from_secs(n)),
            Err(_) => Err(ConvError::Input(Error::invalid_input(
                p,
                "is not a valid timestamp: epoch seconds out of range",
            ))),
        };
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        let x = f.value();
        if !x.is_finite() || x.abs() > 1.0e15 {
            return Err(ConvError::Input(Error::invalid_input(
                path(),
                "is not a valid timestamp: epoch seconds must be finite",
            )));
        }
        return Ok(DateTime::from_secs_f64(x));
    }
    if let Ok(s) = v.cast::<PyString>() {
        let text = s.to_cow()?;
        if let Ok(t) = DateTime::from_str(text.trim(), Format::DateTime) {
            return Ok(t);
        }
        // Other ISO-8601 forms (naive, space separator, date only): Python's parser.
        if let Ok(dt) =
            datetime_type(py)?.call_method1(intern!(py, "fromisoformat"), (text.trim(),))
        {
            return from_datetime(&dt);
        }
        return Err(ConvError::Input(Error::invalid_input(
            path(),
            format!("is not a valid timestamp: cannot parse {text:?} as ISO-8601"),
        )));
    }
    if v.is_instance(datetime_type(py)?)? {
        return from_datetime(v);
    }
    Err(type_error(&path(), "datetime, int, float or str", v))
}

fn from_datetime(dt: &Bound<'_, PyAny>) -> CResult<DateTime> {
    let py = dt.py();
    let aware = if dt.getattr(intern!(py, "tzinfo"))?.is_none() {
        let kw = PyDict::new(py);
        kw.set_item(intern!(py, "tzinfo"), utc(py)?)?;
        dt.call_method(intern!(py, "replace"), (), Some(&kw))?
    } else {
        dt.clone()
    };
    let secs: f64 = aware.call_method0(intern!(py, "timestamp"))?.extract()?;
    let micros: u32 = aware.getattr(intern!(py, "microsecond"))?.extract()?;
    let whole = secs.floor() as i64;
    Ok(DateTime::from_secs_and_nanos(whole, micros * 1000))
}

pub fn py_datetime<'py>(py: Python<'py>, t: &DateTime) -> PyResult<Bound<'py, PyAny>> {
    let secs = t.secs() as f64 + f64::from(t.subsec_nanos()) / 1e9;
    datetime_type(py)?.call_method1(intern!(py, "fromtimestamp"), (secs, utc(py)?))
}

// ---------------------------------------------------------------- inputs

const BMU_KEYS: &[&str] = &["ProductCode", "UsageRecords"];
const RECORD_KEYS: &[&str] = &[
    "Timestamp",
    "CustomerIdentifier",
    "Dimension",
    "Quantity",
    "UsageAllocations",
    "CustomerAWSAccountId",
    "LicenseArn",
];
const ALLOC_KEYS: &[&str] = &["AllocatedUsageQuantity", "Tags"];
const TAG_KEYS: &[&str] = &["Key", "Value"];
const MU_KEYS: &[&str] = &[
    "ProductCode",
    "Timestamp",
    "UsageDimension",
    "UsageQuantity",
    "DryRun",
    "UsageAllocations",
    "ClientToken",
];
const RC_KEYS: &[&str] = &["RegistrationToken"];
const RU_KEYS: &[&str] = &["ProductCode", "PublicKeyVersion", "Nonce"];

fn tag(v: &Bound<'_, PyAny>, path: &str) -> CResult<Tag> {
    let d = as_dict(v, path)?;
    let mut b = Tag::builder();
    for (k, v) in d.iter() {
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
    let items = list(v, path, validate::MAX_USAGE_ALLOCATIONS)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let d = as_dict(item, &p)?;
        let mut b = UsageAllocation::builder();
        for (k, v) in d.iter() {
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
type LastTimestamp = Option<(*mut pyo3::ffi::PyObject, DateTime)>;

fn usage_record(v: &Bound<'_, PyAny>, i: usize, last: &mut LastTimestamp) -> CResult<UsageRecord> {
    let path = || format!("UsageRecords[{i}]");
    let d = v
        .cast::<PyDict>()
        .map_err(|_| type_error(&path(), "dict", v))?;
    let mut b = UsageRecord::builder();
    for (k, v) in d.iter() {
        let k = key_str(&k, path)?;
        let f = |name: &str| format!("UsageRecords[{i}].{name}");
        match &*k {
            "Timestamp" => {
                let t = match *last {
                    // Same object as the previous record's (alive: the caller's list holds it).
                    Some((ptr, t)) if ptr == v.as_ptr() => t,
                    _ => {
                        let t = timestamp(&v, || f("Timestamp"))?;
                        *last = Some((v.as_ptr(), t));
                        t
                    }
                };
                b = b.timestamp(t)
            }
            "CustomerIdentifier" => {
                b = b.customer_identifier(string(&v, || f("CustomerIdentifier"))?)
            }
            "Dimension" => b = b.dimension(string(&v, || f("Dimension"))?),
            "Quantity" => b = b.quantity(quantity(&v, || f("Quantity"))?),
            "UsageAllocations" => {
                b = b.set_usage_allocations(Some(allocations(&v, &f("UsageAllocations"))?))
            }
            "CustomerAWSAccountId" => {
                b = b.customer_aws_account_id(string(&v, || f("CustomerAWSAccountId"))?)
            }
            "LicenseArn" => b = b.license_arn(string(&v, || f("LicenseArn"))?),
            other => return Err(unknown_key(&path(), other, RECORD_KEYS)),
        }
    }
    b.build().map_err(|e| missing(&path(), e))
}

pub fn batch_meter_usage_input(params: &Bound<'_, PyDict>) -> CResult<BatchMeterUsageInput> {
    let mut b = BatchMeterUsageInput::builder();
    for (k, v) in params.iter() {
        let k = key_str(&k, String::new)?;
        match &*k {
            "ProductCode" => b = b.product_code(string(&v, || "ProductCode".into())?),
            "UsageRecords" => {
                let items = list(&v, "UsageRecords", validate::MAX_USAGE_RECORDS)?;
                let mut recs = Vec::with_capacity(items.len());
                let mut last = None;
                for (i, item) in items.iter().enumerate() {
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
    for (k, v) in params.iter() {
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
    for (k, v) in params.iter() {
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
    for (k, v) in params.iter() {
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

// ---------------------------------------------------------------- outputs

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
        let meta = resp.bind(py).get_item(intern!(py, "ResponseMetadata"))?;
        meta.set_item(intern!(py, "_AttemptLog"), attempt_log(py, out.meta())?)?;
    }
    Ok(resp)
}

pub fn response_metadata<'py>(
    py: Python<'py>,
    meta: &ResponseMetadata,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "RequestId"), meta.request_id().unwrap_or(""))?;
    d.set_item(
        intern!(py, "HTTPStatusCode"),
        meta.http_status().unwrap_or(0),
    )?;
    let h = PyDict::new(py);
    for (k, v) in meta.http_headers() {
        h.set_item(k, v)?;
    }
    d.set_item(intern!(py, "HTTPHeaders"), h)?;
    d.set_item(
        intern!(py, "RetryAttempts"),
        meta.attempts().saturating_sub(1),
    )?;
    Ok(d)
}

fn set_opt(d: &Bound<'_, PyDict>, k: &Bound<'_, PyString>, v: Option<&str>) -> PyResult<()> {
    if let Some(v) = v {
        d.set_item(k, v)?;
    }
    Ok(())
}

fn allocations_out<'py>(py: Python<'py>, a: &[UsageAllocation]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for al in a {
        let d = PyDict::new(py);
        d.set_item(
            intern!(py, "AllocatedUsageQuantity"),
            al.allocated_usage_quantity(),
        )?;
        if !al.tags().is_empty() {
            let tags = PyList::empty(py);
            for t in al.tags() {
                let td = PyDict::new(py);
                td.set_item(intern!(py, "Key"), t.key())?;
                td.set_item(intern!(py, "Value"), t.value())?;
                tags.append(td)?;
            }
            d.set_item(intern!(py, "Tags"), tags)?;
        }
        out.append(d)?;
    }
    Ok(out)
}

/// The last datetime made in this call: results usually share one timestamp, and datetimes
/// are immutable, so equal timestamps share one object.
type LastDatetime<'py> = Option<(DateTime, Bound<'py, PyAny>)>;

fn usage_record_out<'py>(
    py: Python<'py>,
    r: &UsageRecord,
    last: &mut LastDatetime<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ts = match last {
        Some((t, obj)) if t == r.timestamp() => obj.clone(),
        _ => {
            let obj = py_datetime(py, r.timestamp())?;
            *last = Some((*r.timestamp(), obj.clone()));
            obj
        }
    };
    d.set_item(intern!(py, "Timestamp"), ts)?;
    set_opt(
        &d,
        intern!(py, "CustomerIdentifier"),
        r.customer_identifier(),
    )?;
    set_opt(
        &d,
        intern!(py, "CustomerAWSAccountId"),
        r.customer_aws_account_id(),
    )?;
    set_opt(&d, intern!(py, "LicenseArn"), r.license_arn())?;
    d.set_item(intern!(py, "Dimension"), r.dimension())?;
    if let Some(q) = r.quantity() {
        d.set_item(intern!(py, "Quantity"), q)?;
    }
    if !r.usage_allocations().is_empty() {
        d.set_item(
            intern!(py, "UsageAllocations"),
            allocations_out(py, r.usage_allocations())?,
        )?;
    }
    Ok(d)
}

pub fn batch_meter_usage_output(py: Python<'_>, o: &BatchMeterUsageOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    let results = PyList::empty(py);
    let mut last = None;
    for r in o.results() {
        let rd = PyDict::new(py);
        if let Some(u) = r.usage_record() {
            rd.set_item(
                intern!(py, "UsageRecord"),
                usage_record_out(py, u, &mut last)?,
            )?;
        }
        set_opt(&rd, intern!(py, "MeteringRecordId"), r.metering_record_id())?;
        set_opt(&rd, intern!(py, "Status"), r.status().map(|s| s.as_str()))?;
        results.append(rd)?;
    }
    d.set_item(intern!(py, "Results"), results)?;
    let unprocessed = PyList::empty(py);
    for u in o.unprocessed_records() {
        unprocessed.append(usage_record_out(py, u, &mut last)?)?;
    }
    d.set_item(intern!(py, "UnprocessedRecords"), unprocessed)?;
    d.set_item(
        intern!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

pub fn meter_usage_output(py: Python<'_>, o: &MeterUsageOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    set_opt(&d, intern!(py, "MeteringRecordId"), o.metering_record_id())?;
    d.set_item(
        intern!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

pub fn resolve_customer_output(py: Python<'_>, o: &ResolveCustomerOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    set_opt(
        &d,
        intern!(py, "CustomerIdentifier"),
        o.customer_identifier(),
    )?;
    set_opt(&d, intern!(py, "ProductCode"), o.product_code())?;
    set_opt(
        &d,
        intern!(py, "CustomerAWSAccountId"),
        o.customer_aws_account_id(),
    )?;
    set_opt(&d, intern!(py, "LicenseArn"), o.license_arn())?;
    d.set_item(
        intern!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

pub fn register_usage_output(py: Python<'_>, o: &RegisterUsageOutput) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    if let Some(t) = o.public_key_rotation_timestamp() {
        d.set_item(
            intern!(py, "PublicKeyRotationTimestamp"),
            py_datetime(py, t)?,
        )?;
    }
    set_opt(&d, intern!(py, "Signature"), o.signature())?;
    d.set_item(
        intern!(py, "ResponseMetadata"),
        response_metadata(py, o.metadata())?,
    )?;
    d.into_py_any(py)
}

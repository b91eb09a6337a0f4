// SPDX-License-Identifier: Apache-2.0
// boto3-shaped dicts → the core's inputs (through its builders), core outputs → dicts.

//! Conversion only. This layer reports what it meets while converting — a wrong type, an
//! unknown or missing key, an integer out of range (through `validate::quantity`) — as the
//! core's `InvalidInput` error naming the field. Lengths, patterns, counts and sums are
//! checked by the core when the call is made.

mod inputs;
mod outputs;

use std::borrow::Cow;

use aws_smithy_types::date_time::Format;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::{validate, BuildError, Error};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

pub use inputs::{
    allocations, batch_meter_usage_input, meter_usage_input, register_usage_input,
    resolve_customer_input,
};
pub use outputs::{
    attempt_log, batch_meter_usage_output, meter_usage_output, register_usage_output,
    resolve_customer_output, with_attempt_log, HasMeta,
};

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
    required(path, e.field())
}

/// The error for the required member `field` of the object at `path`, absent.
fn required(path: &str, field: &str) -> ConvError {
    ConvError::Input(Error::invalid_input(join(path, field), "is required"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A dict's items, one at a time, as `PyDict_Next` gives them. A dict that changes size
/// while it is walked (by Python code the conversion runs: a tzinfo's `utcoffset`, another
/// thread) ends the walk with the `RuntimeError` iterating it in Python raises; pyo3's own
/// iterator panics there, and the panic reached the caller as a `PanicException`.
pub(crate) struct Items<'a, 'py> {
    dict: &'a Bound<'py, PyDict>,
    pos: pyo3::ffi::Py_ssize_t,
    len: Option<usize>,
}

pub(crate) fn items<'a, 'py>(dict: &'a Bound<'py, PyDict>) -> Items<'a, 'py> {
    Items {
        dict,
        pos: 0,
        len: Some(dict.len()),
    }
}

impl<'py> Iterator for Items<'_, 'py> {
    type Item = CResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.len?;
        if self.dict.len() != len {
            self.len = None;
            return Some(Err(ConvError::Py(
                pyo3::exceptions::PyRuntimeError::new_err(
                    "dictionary changed size during iteration",
                ),
            )));
        }
        let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: `dict` is a dict, held for the walk; `PyDict_Next` checks `pos` against the
        // dict's current table and gives borrowed references, made owned at once below
        // (before any Python code runs).
        let more = unsafe {
            pyo3::ffi::PyDict_Next(self.dict.as_ptr(), &mut self.pos, &mut key, &mut value)
        };
        if more == 0 {
            self.len = None;
            return None;
        }
        let py = self.dict.py();
        // SAFETY: non-NULL borrowed references to live objects (see above).
        Some(Ok(unsafe {
            (
                Bound::from_borrowed_ptr(py, key),
                Bound::from_borrowed_ptr(py, value),
            )
        }))
    }
}

fn as_dict<'a, 'py>(v: &'a Bound<'py, PyAny>, path: &str) -> CResult<&'a Bound<'py, PyDict>> {
    v.cast::<PyDict>().map_err(|_| type_error(path, "dict", v))
}

/// The error of a `str` UTF-8 cannot carry (a lone surrogate, as `errors="surrogateescape"`
/// decoding leaves; `e` is the UnicodeEncodeError reading it raised): the core's invalid value
/// of the field at `path`, at the index the exception gives. Any other error is passed on.
pub fn not_text(py: Python<'_>, path: String, e: PyErr) -> ConvError {
    match e
        .value(py)
        .getattr(crate::name!(py, "start"))
        .and_then(|i| i.extract::<usize>())
    {
        Ok(at) if e.is_instance_of::<pyo3::exceptions::PyUnicodeEncodeError>(py) => {
            ConvError::Input(validate::lone_surrogate(path, at))
        }
        _ => ConvError::Py(e),
    }
}

/// A `str`'s UTF-8, borrowed; see [`not_text`].
fn utf8<'a>(s: &'a Bound<'_, PyString>, path: impl FnOnce() -> String) -> CResult<Cow<'a, str>> {
    s.to_cow().map_err(|e| not_text(s.py(), path(), e))
}

/// A dict key as text, borrowed where Python allows; `path` is only rendered for an error.
fn key_str<'a>(k: &'a Bound<'_, PyAny>, path: impl FnOnce() -> String) -> CResult<Cow<'a, str>> {
    match k.cast::<PyString>() {
        // Named by its repr, which escapes what UTF-8 cannot carry.
        Ok(s) => utf8(s, || {
            let shown = k
                .repr()
                .ok()
                .and_then(|r| r.to_cow().ok().map(|c| c.trim_matches('\'').to_owned()))
                .unwrap_or_else(|| "?".to_owned());
            join(&path(), &shown)
        }),
        Err(_) => Err(type_error(&path(), "str keys", k)),
    }
}

pub fn string(v: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> CResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(utf8(s, path)?.into_owned()),
        Err(_) => Err(type_error(&path(), "str", v)),
    }
}

/// A `str` member checked as [`string`] checks it, kept as the object: its text is read in
/// place afterwards ([`text_of`]), with no owned copy (the stable ABI of Python 3.10 and
/// later caches a `str`'s UTF-8).
fn text<'py>(
    v: &Bound<'py, PyAny>,
    path: impl FnOnce() -> String,
) -> CResult<Bound<'py, PyString>> {
    match v.cast::<PyString>() {
        Ok(s) => {
            utf8(s, path)?;
            Ok(s.clone())
        }
        Err(_) => Err(type_error(&path(), "str", v)),
    }
}

/// The text of a `str` [`text`] checked.
fn text_of<'a>(s: &'a Bound<'_, PyString>) -> CResult<Cow<'a, str>> {
    utf8(s, String::new)
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

static DATETIME: crate::once::Lazy<PyAny> = crate::once::Lazy::new();
static UTC: crate::once::Lazy<PyAny> = crate::once::Lazy::new();

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
}

/// A timestamp from a `datetime` (naive means UTC, as botocore), epoch seconds (an int, a
/// float, another number type, or as text) or an ISO-8601 string.
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
        return epoch_float(f.value(), path);
    }
    if let Ok(s) = v.cast::<PyString>() {
        let text = match s.to_cow() {
            Ok(t) => t,
            Err(e) => return Err(not_text(py, path(), e)),
        };
        let text = text.trim();
        if let Ok(t) = DateTime::from_str(text, Format::DateTime) {
            return Ok(t);
        }
        // Other ISO-8601 forms (naive, space separator, date only): Python's parser.
        if let Ok(dt) = datetime_type(py)?.call_method1(crate::name!(py, "fromisoformat"), (text,))
        {
            return from_datetime(&dt);
        }
        // Epoch seconds as text, which botocore reads too (`float(value)`).
        if let Ok(n) = text.parse::<i64>() {
            return Ok(DateTime::from_secs(n));
        }
        if let Ok(x) = text.parse::<f64>() {
            return epoch_float(x, path);
        }
        return Err(ConvError::Input(Error::invalid_input(
            path(),
            format!("is not a valid timestamp: cannot parse {text:?} as ISO-8601 or epoch seconds"),
        )));
    }
    if v.is_instance(datetime_type(py)?)? {
        return from_datetime(v);
    }
    // Other numbers, as botocore takes them: integers of other types (numpy's, through
    // `__index__`), then anything with `__float__` (`Decimal`, numpy's floats).
    if v.hasattr(crate::name!(py, "__index__"))? {
        // Only an `int` back (as `operator.index` insists): an `__index__` returning its own
        // object would recurse here until the stack ran out.
        if let Ok(n) = v.call_method0(crate::name!(py, "__index__")) {
            if n.is_instance_of::<PyInt>() && !n.is_instance_of::<PyBool>() {
                return timestamp(&n, path);
            }
        }
    }
    if v.hasattr(crate::name!(py, "__float__"))? {
        if let Ok(x) = v.call_method0(crate::name!(py, "__float__")) {
            if let Ok(f) = x.cast::<PyFloat>() {
                return epoch_float(f.value(), path);
            }
        }
    }
    Err(type_error(&path(), "datetime, int, float or str", v))
}

/// Epoch seconds as a float: finite, and within what a timestamp can hold.
fn epoch_float(x: f64, path: impl FnOnce() -> String) -> CResult<DateTime> {
    if !x.is_finite() || x.abs() > 1.0e15 {
        return Err(ConvError::Input(Error::invalid_input(
            path(),
            "is not a valid timestamp: epoch seconds must be finite",
        )));
    }
    Ok(DateTime::from_secs_f64(x))
}

fn from_datetime(dt: &Bound<'_, PyAny>) -> CResult<DateTime> {
    let py = dt.py();
    let aware = if dt.getattr(crate::name!(py, "tzinfo"))?.is_none() {
        let kw = PyDict::new(py);
        kw.set_item(crate::name!(py, "tzinfo"), utc(py)?)?;
        dt.call_method(crate::name!(py, "replace"), (), Some(&kw))?
    } else {
        dt.clone()
    };
    let secs: f64 = aware
        .call_method0(crate::name!(py, "timestamp"))?
        .extract()?;
    let micros: u32 = aware.getattr(crate::name!(py, "microsecond"))?.extract()?;
    let whole = secs.floor() as i64;
    Ok(DateTime::from_secs_and_nanos(whole, micros * 1000))
}

pub fn py_datetime<'py>(py: Python<'py>, t: &DateTime) -> PyResult<Bound<'py, PyAny>> {
    let secs = t.secs() as f64 + f64::from(t.subsec_nanos()) / 1e9;
    datetime_type(py)?.call_method1(crate::name!(py, "fromtimestamp"), (secs, utc(py)?))
}

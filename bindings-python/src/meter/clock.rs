// SPDX-License-Identifier: Apache-2.0
// `_native.ManualClock` and the time arguments (datetimes, timedeltas, seconds).

use marketplace_metering::meter;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

use crate::client::conv_err;
use crate::convert;

use super::input_err;

/// A clock set by hand, for tests and examples (``marketplace_metering.testing.ManualClock``).
#[pyclass(module = "marketplace_metering._native", frozen)]
pub struct ManualClock {
    pub(super) inner: meter::ManualClock,
}

pub(super) fn epoch_secs(v: &Bound<'_, PyAny>, field: &str, op: &str) -> PyResult<i64> {
    let py = v.py();
    convert::timestamp(v, || field.to_owned())
        .map(|t| t.secs())
        .map_err(|e| conv_err(py, e, op))
}

/// Seconds from a `timedelta` or a number.
pub(super) fn seconds(v: &Bound<'_, PyAny>, field: &str, op: &str) -> PyResult<f64> {
    let py = v.py();
    let secs = if v.is_instance_of::<PyBool>() {
        None
    } else if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        Some(v.extract::<f64>()?)
    } else if v.is_instance(timedelta_type(py)?)? {
        Some(
            v.call_method0(crate::name!(py, "total_seconds"))?
                .extract::<f64>()?,
        )
    } else {
        None
    };
    match secs {
        Some(s) if s.is_finite() && s.abs() < 1.0e12 => Ok(s),
        Some(_) => Err(input_err(py, field, "must be a finite duration", op)),
        None => Err(conv_err(
            py,
            convert::type_error(field, "timedelta, int or float", v),
            op,
        )),
    }
}

pub(super) fn timedelta_type(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static T: crate::once::Lazy<PyAny> = crate::once::Lazy::new();
    T.import(py, "datetime", "timedelta")
}

#[pymethods]
impl ManualClock {
    /// A clock reading `start`: a datetime (naive means UTC), epoch seconds or ISO-8601.
    #[new]
    fn new(start: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(ManualClock {
            inner: meter::ManualClock::new(epoch_secs(start, "start", "ManualClock")?),
        })
    }

    /// The time it reads, in epoch seconds.
    fn now(&self) -> i64 {
        self.inner.now()
    }

    /// Sets it to `when` (a datetime, epoch seconds or ISO-8601).
    fn set(&self, when: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(epoch_secs(when, "when", "ManualClock.set")?);
        Ok(())
    }

    /// Moves it by `delta` (a timedelta or seconds; negative moves it back).
    fn advance(&self, delta: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = seconds(delta, "delta", "ManualClock.advance")?;
        self.inner.advance(s.floor() as i64);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock({})", self.inner.now())
    }
}

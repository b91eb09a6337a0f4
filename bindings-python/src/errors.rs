// SPDX-License-Identifier: Apache-2.0
// The one ErrorCode → Python exception table, and core errors → Python exceptions.

//! `exceptions.py` builds its classes from [`error_codes`] at import time: a service code
//! added to the core's table gets its class with no edit here; a local code breaks this build
//! until [`class_of`] maps it.

use marketplace_metering::{Error, ErrorCode, ErrorKind, LocalCode};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// How a code appears in Python: the class name and the names of its bases (resolved by
/// `exceptions.py` among the classes built before it, the package's roots and builtins).
pub struct PyClassSpec {
    pub name: &'static str,
    pub bases: &'static [&'static str],
}

const fn spec(name: &'static str, bases: &'static [&'static str]) -> PyClassSpec {
    PyClassSpec { name, bases }
}

/// The Python class of each code: a service code's class is named after it and derives from
/// `ClientError`; each local code is mapped here, without a wildcard arm.
pub fn class_of(code: ErrorCode) -> PyClassSpec {
    use LocalCode::*;
    let Some(local) = code.local() else {
        return spec(code.as_str(), &["ClientError"]);
    };
    match local {
        InvalidInput => spec("ParamValidationError", &["MeteringError", "ValueError"]),
        InvalidState => spec("InvalidStateError", &["MeteringError", "RuntimeError"]),
        InvalidConfig => spec("InvalidConfigError", &["MeteringError", "ValueError"]),
        Credentials => spec("NoCredentialsError", &["MeteringError"]),
        // As botocore: a refused connection and a connect timeout are siblings under
        // ConnectionError; a read timeout is an HTTPClientError (exceptions.py's roots).
        Dispatch => spec("EndpointConnectionError", &["ConnectionError"]),
        ConnectTimeout => spec("ConnectTimeoutError", &["ConnectionError"]),
        ReadTimeout => spec("ReadTimeoutError", &["HTTPClientError"]),
        InvalidResponse => spec("ResponseParserError", &["MeteringError"]),
        // A service code the table does not know: plain ClientError with the service's code.
        Unhandled => spec("ClientError", &["MeteringError"]),
        // Not an InvalidStateError: a handler that records again on those would bill twice.
        OutcomeUnknown => spec("OutcomeUnknownError", &["MeteringError", "RuntimeError"]),
    }
}

fn kind_str(code: ErrorCode) -> &'static str {
    match code.kind() {
        ErrorKind::Local => "local",
        ErrorKind::Modeled => "modeled",
        ErrorKind::Common => "common",
    }
}

/// One row of the table: `(code, class_name, bases, kind, is_server_fault, number)`.
type CodeRow = (
    &'static str,
    &'static str,
    Vec<&'static str>,
    &'static str,
    bool,
    u32,
);

/// The table, in the core's order: `(code, class_name, bases, kind, is_server_fault, number)`.
#[pyfunction]
pub fn error_codes() -> Vec<CodeRow> {
    ErrorCode::ALL
        .iter()
        .map(|&c| {
            let s = class_of(c);
            (
                c.as_str(),
                s.name,
                s.bases.to_vec(),
                kind_str(c),
                c.is_server_fault(),
                c.as_u32(),
            )
        })
        .collect()
}

static FACTORY: crate::once::Lazy<PyAny> = crate::once::Lazy::new();

/// The Python exception for a core error raised by `operation`.
pub fn to_py_err(py: Python<'_>, err: &Error, operation: &str) -> PyErr {
    match build(py, err, operation) {
        Ok(e) => e,
        Err(e) => e,
    }
}

/// An `InvalidStateError` raised by the binding itself (the core's constructor is private).
pub fn invalid_state(py: Python<'_>, message: &str, operation: &str) -> PyErr {
    let r = (|| -> PyResult<PyErr> {
        let factory = FACTORY.import(py, "marketplace_metering.exceptions", "_from_native")?;
        let exc = factory.call1((
            class_of(ErrorCode::InvalidState).name,
            ErrorCode::InvalidState.as_str(),
            message,
            py.None(),
            py.None(),
            py.None(),
            PyDict::new(py),
            0u32,
            false,
            operation,
        ))?;
        Ok(PyErr::from_value(exc))
    })();
    match r {
        Ok(e) => e,
        Err(e) => e,
    }
}

fn build(py: Python<'_>, err: &Error, operation: &str) -> PyResult<PyErr> {
    let factory = FACTORY.import(py, "marketplace_metering.exceptions", "_from_native")?;
    let meta = err.metadata();
    let headers = PyDict::new(py);
    for (k, v) in meta.http_headers() {
        headers.set_item(k, v)?;
    }
    let spec = class_of(err.error_code());
    let args = PyTuple::new(
        py,
        [
            spec.name.into_pyobject(py)?.into_any(),
            err.code().into_pyobject(py)?.into_any(),
            err.message().into_pyobject(py)?.into_any(),
            err.field().into_pyobject(py)?.into_any(),
            err.request_id().into_pyobject(py)?.into_any(),
            err.http_status().into_pyobject(py)?.into_any(),
            headers.into_any(),
            err.attempts().into_pyobject(py)?.into_any(),
            pyo3::types::PyBool::new(py, err.is_retryable())
                .to_owned()
                .into_any(),
            operation.into_pyobject(py)?.into_any(),
            crate::convert::attempt_log(py, meta)?.into_any(),
            pyo3::types::PyBool::new(py, err.max_attempts_reached())
                .to_owned()
                .into_any(),
        ],
    )?;
    let exc = factory.call1(args)?;
    Ok(PyErr::from_value(exc))
}

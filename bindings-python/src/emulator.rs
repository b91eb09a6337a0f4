// SPDX-License-Identifier: Apache-2.0
// `_native.Emulator`: the metering-emulator crate, started in-process for tests.

use std::sync::Mutex;

use metering_emulator::{Emulator as Inner, EmulatorConfig, Fault};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A local Metering Service on `127.0.0.1` (its own thread and runtime).
#[pyclass(module = "marketplace_metering._native", frozen)]
pub struct Emulator {
    inner: Mutex<Option<Inner>>,
    port: u16,
}

impl Emulator {
    fn with<T>(&self, f: impl FnOnce(&Inner) -> T) -> PyResult<T> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(e) => Ok(f(e)),
            None => Err(PyRuntimeError::new_err("the emulator has been shut down")),
        }
    }
}

fn to_py<T: serde::Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    Ok(pythonize::pythonize(py, v)?.unbind())
}

#[pymethods]
impl Emulator {
    /// Starts an emulator with the default catalog on `port` (0: a free port).
    #[new]
    #[pyo3(signature = (port=0))]
    fn new(py: Python<'_>, port: u16) -> PyResult<Self> {
        let config = EmulatorConfig {
            port,
            ..EmulatorConfig::default()
        };
        let inner = py
            .detach(|| Inner::start(config))
            .map_err(|e| PyOSError::new_err(format!("cannot start the emulator: {e}")))?;
        Ok(Emulator {
            port: inner.port(),
            inner: Mutex::new(Some(inner)),
        })
    }

    /// The TCP port on 127.0.0.1.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    #[getter]
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Billed records, oldest first, as dicts.
    fn ledger(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let l = self.with(|e| e.ledger())?;
        to_py(py, &l)
    }

    /// Requests answered, oldest first, as dicts.
    fn requests(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let r = self.with(|e| e.requests())?;
        to_py(py, &r)
    }

    /// Queues a fault, e.g. `{"kind": "throttle"}` or `{"kind": "delay", "seconds": 0.5}`.
    fn push_fault(&self, fault: &Bound<'_, PyDict>) -> PyResult<()> {
        let f: Fault = pythonize::depythonize(fault.as_any())
            .map_err(|e| PyValueError::new_err(format!("bad fault: {e}")))?;
        self.with(|e| e.push_fault(f))
    }

    /// Faults still queued, as dicts.
    fn pending_faults(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let f = self.with(|e| e.pending_faults())?;
        to_py(py, &f)
    }

    /// Clears the ledger, de-duplication tables, request log and queued faults.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with(|e| py.detach(|| e.reset()))
    }

    /// Stops the server and joins its thread. Idempotent.
    fn shutdown(&self, py: Python<'_>) {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(e) = taken {
            py.detach(|| e.shutdown());
        }
    }
}

/// The emulator's fixed identities and catalog, as a dict.
#[pyfunction]
pub fn emulator_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("region_name", metering_emulator::DEFAULT_REGION)?;
    d.set_item(
        "aws_access_key_id",
        metering_emulator::DEFAULT_ACCESS_KEY_ID,
    )?;
    d.set_item(
        "aws_secret_access_key",
        metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
    )?;
    d.set_item("product_code", metering_emulator::PRODUCT_CODE)?;
    d.set_item("license_arn", metering_emulator::LICENSE_ARN)?;
    d.set_item(
        "customer_aws_account_id",
        metering_emulator::CUSTOMER_AWS_ACCOUNT_ID,
    )?;
    Ok(d)
}

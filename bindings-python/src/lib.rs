// SPDX-License-Identifier: Apache-2.0
// marketplace_metering._native: the pyo3 module. Translation only; every rule lives in core.

//! The native half of the `marketplace_metering` Python package.
//!
//! * [`client`]: `Client`, whose blocking methods release the GIL and whose `*_async`
//!   methods return asyncio awaitables driven by the core's shared runtime.
//! * [`convert`]: boto3-shaped dicts to the core's input builders and outputs back to dicts.
//! * [`errors`]: the one exhaustive `ErrorCode` → Python exception class table.
//! * [`meter`]: `UsageMeter` and `ManualClock`, the core's usage meter translated.
//! * [`emulator`]: the in-process `metering-emulator` for `marketplace_metering.testing`.

use pyo3::prelude::*;

mod asyncrt;
mod client;
mod convert;
mod emulator;
mod errors;
mod meter;
mod once;

/// Drops the live usage meters (writing what they buffered), then stops the core's shared
/// runtime (joins its worker threads) with the GIL released, then the thread that hands
/// async calls their answers.
/// Registered with `atexit` by the package; the next call would start a new runtime.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    meter::release_all(py);
    py.detach(marketplace_metering::runtime::shutdown);
    asyncrt::stop_completer(py);
}

/// Writes what each live usage meter buffered to its store, leaving the meters open (each
/// later record of a `memory` meter is written as it is made), with the GIL released: from
/// `uwsgi.atexit`, after which uWSGI may end the worker without the `atexit` hooks, or run
/// them (an application's may still close its meters).
#[pyfunction]
fn _write_buffers(py: Python<'_>) {
    meter::write_all(py);
}

/// Refuses to load in any interpreter but the main one. The module's native state is the
/// process's (the runtime, the live meters, PyO3's types, made once), so a subinterpreter
/// (mod_wsgi makes one for each application by default) would share the main one's objects,
/// and ending it ran its exit hook, which released every meter of the process.
fn refuse_subinterpreter() -> PyResult<()> {
    // SAFETY: called with the GIL held, on the interpreter importing the module; the main
    // interpreter's id is 0.
    let id = unsafe { pyo3::ffi::PyInterpreterState_GetID(pyo3::ffi::PyInterpreterState_Get()) };
    if id == 0 {
        return Ok(());
    }
    Err(pyo3::exceptions::PyImportError::new_err(
        "marketplace_metering runs in the main interpreter only: its runtime and meters are \
         the process's (under mod_wsgi, set `WSGIApplicationGroup %{GLOBAL}`)",
    ))
}

// The GIL stays on in a free-threaded (3.13t) interpreter: the module's shared state (the
// event queues, the live meters' registry) is guarded by it.
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    refuse_subinterpreter()?;
    once::init(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("__core_version__", marketplace_metering::VERSION)?;
    m.add_class::<client::Client>()?;
    m.add_class::<emulator::Emulator>()?;
    m.add_class::<meter::UsageMeter>()?;
    m.add_class::<meter::ManualClock>()?;
    m.add_function(wrap_pyfunction!(errors::error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(emulator::emulator_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_write_buffers, m)?)?;
    Ok(())
}

// SPDX-License-Identifier: Apache-2.0
// Python objects made once per process that a fork can never leave half made.

//! [`Lazy`] and [`name!`](crate::name): this module's stand-ins for pyo3's `PyOnceLock` and
//! `intern!`, which clippy refuses here (`clippy.toml`).
//!
//! pyo3's cells let the GIL go before they take their lock of the cell, and take the GIL
//! back inside it to make the value. Another thread may then fork (Python's `os.fork()` runs
//! holding the GIL): the child inherits the cell as being made by a thread it does not have,
//! and its first use waits for good. A `multiprocessing` or Celery child forked while a
//! thread of the parent first touched a name, a type or an exception factory froze so.
//!
//! These cells never wait: a thread that finds one empty makes the value (which may run
//! Python code and let the GIL go), then stores it with the GIL held, and the first stored
//! wins; a copy made meanwhile by another thread is dropped. A child forked at any point
//! finds the cell either empty or full.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// A Python object made at its first use (see the module docs).
pub struct Lazy<T>(OnceLock<Py<T>>);

impl<T> Lazy<T> {
    pub const fn new() -> Self {
        Lazy(OnceLock::new())
    }

    /// The object, made by `make` if no thread has stored one yet.
    pub fn get_or_try_init<'py>(
        &self,
        py: Python<'py>,
        make: impl FnOnce() -> PyResult<Py<T>>,
    ) -> PyResult<&Bound<'py, T>> {
        if let Some(v) = self.0.get() {
            return Ok(v.bind(py));
        }
        let made = make()?;
        Ok(self.store(py, made))
    }

    /// Stores `made` unless another thread stored one first (then `made` is dropped, with
    /// the GIL). Nothing run under the cell's lock lets the GIL go, so no Python thread
    /// forks while it is taken.
    fn store<'py>(&self, py: Python<'py>, made: Py<T>) -> &Bound<'py, T> {
        self.0.get_or_init(move || made).bind(py)
    }
}

impl Lazy<PyAny> {
    /// `module.attr`, imported at its first use.
    pub fn import<'py>(
        &self,
        py: Python<'py>,
        module: &str,
        attr: &str,
    ) -> PyResult<&Bound<'py, PyAny>> {
        self.get_or_try_init(py, || Ok(py.import(module)?.getattr(attr)?.unbind()))
    }
}

/// An interned `str`, made at its first use: what [`name!`](crate::name) keeps.
pub struct Name(&'static str, Lazy<PyString>);

impl Name {
    pub const fn new(text: &'static str) -> Self {
        Name(text, Lazy::new())
    }

    pub fn get<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        match self.1 .0.get() {
            Some(s) => s.bind(py),
            None => self.1.store(py, PyString::intern(py, self.0).unbind()),
        }
    }
}

/// `name!(py, "text")`: the interned `str` "text", as pyo3's `intern!` but fork-safe (see
/// the module docs).
#[macro_export]
macro_rules! name {
    ($py:expr, $text:expr) => {{
        static NAME: $crate::once::Name = $crate::once::Name::new($text);
        NAME.get($py)
    }};
}

/// Makes at import the names pyo3 interns itself on this module's paths, which sit in
/// pyo3's own cells: a type's `__name__`, `__qualname__` and `__module__` (read for the
/// message of an argument of the wrong type), and `add_note` (called on that error to name
/// the argument), by raising one such error. Not made here: `__bool__`, looked up for a numpy
/// bool given where a `bool` is taken.
pub fn init(py: Python<'_>) -> PyResult<()> {
    let t = py.get_type::<pyo3::types::PyInt>();
    let _ = (t.name(), t.qualname(), t.module(), t.fully_qualified_name());
    let typed = pyo3::wrap_pyfunction!(typed, py)?;
    match typed.call1(("not an int",)) {
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(pyo3::exceptions::PyAssertionError::new_err(
            "an argument of the wrong type was taken",
        )),
    }
}

/// Takes an `int`: [`init`] gives it something else.
#[pyfunction]
fn typed(_value: i64) {}

// SPDX-License-Identifier: Apache-2.0
// Handle casting and C string helpers shared by every extern "C" function.

//! Handles and strings at the boundary.
//!
//! An opaque C type (`pub struct mm_x { _private: [u8; 0] }`) is never constructed: a
//! pointer to it is really a `Box<<mm_x as Castable>::Rust>`. These helpers are the only
//! places that cast between the two (rustls-ffi's `Castable` pattern).

use std::ffi::{c_char, CStr, CString};

use crate::error::ErrorData;

/// Ties an opaque C type to the Rust value its pointers really point to.
pub trait Castable {
    /// The boxed Rust value behind the handle.
    type Rust;
}

/// Boxes `v` and returns it as a handle; free it with [`free`].
pub fn to_handle<T: Castable>(v: T::Rust) -> *mut T {
    Box::into_raw(Box::new(v)).cast()
}

/// The value behind a handle, or `None` for NULL.
///
/// # Safety
/// `p` is NULL or a live handle made by [`to_handle`] for the same `T`.
pub unsafe fn opt_ref<'a, T: Castable>(p: *const T) -> Option<&'a T::Rust> {
    // SAFETY: per the contract above.
    unsafe { p.cast::<T::Rust>().as_ref() }
}

/// The value behind a handle, or a `NULL_PARAMETER` error naming `what`.
///
/// # Safety
/// As [`opt_ref`].
pub unsafe fn req_ref<'a, T: Castable>(p: *const T, what: &str) -> Result<&'a T::Rust, ErrorData> {
    // SAFETY: per the contract above.
    unsafe { opt_ref(p) }.ok_or_else(|| ErrorData::null(what))
}

/// The value behind a mutable handle, or a `NULL_PARAMETER` error naming `what`.
///
/// # Safety
/// `p` is NULL or a live handle made by [`to_handle`] for `T`, not used by any other thread.
pub unsafe fn req_mut<'a, T: Castable>(
    p: *mut T,
    what: &str,
) -> Result<&'a mut T::Rust, ErrorData> {
    // SAFETY: per the contract above.
    unsafe { p.cast::<T::Rust>().as_mut() }.ok_or_else(|| ErrorData::null(what))
}

/// Runs a setter on a mutable handle inside the panic boundary: a NULL handle gives a
/// `NULL_PARAMETER` status naming `what`; `f`'s error becomes the status.
pub fn set<T: Castable>(
    h: *mut T,
    what: &str,
    f: impl FnOnce(&mut T::Rust) -> Result<(), ErrorData>,
) -> crate::error::mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live handle of this type, not used by another thread (every
        // setter's documented contract).
        let v = unsafe { req_mut(h, what) }?;
        f(v)
    })
}

/// Frees a handle made by [`to_handle`]; NULL does nothing.
///
/// # Safety
/// `p` is NULL or a live handle for `T` that is not used again.
pub unsafe fn free<T: Castable>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the contract above, `p` came from Box::into_raw of a T::Rust.
        drop(unsafe { Box::from_raw(p.cast::<T::Rust>()) });
    }
}

/// Checks an out-pointer argument before any work is done.
pub fn check_out<T>(out: *mut *mut T, what: &str) -> Result<(), ErrorData> {
    if out.is_null() {
        Err(ErrorData::null(what))
    } else {
        Ok(())
    }
}

/// Stores a new handle in a checked out-pointer.
///
/// # Safety
/// `out` is a valid, non-NULL `T **` (checked with [`check_out`]).
pub unsafe fn write_out<T: Castable>(out: *mut *mut T, v: T::Rust) {
    // SAFETY: per the contract above.
    unsafe { *out = to_handle::<T>(v) };
}

/// A borrowed input string: NULL gives `NULL_PARAMETER`, invalid UTF-8 `INVALID_INPUT`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the returned borrow.
pub unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, ErrorData> {
    if p.is_null() {
        return Err(ErrorData::null(what));
    }
    // SAFETY: per the contract above.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| ErrorData::invalid(what, "is not valid UTF-8"))
}

/// Like [`str_arg`], but NULL means "absent".
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, ErrorData> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: per the contract above.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// A C string from Rust text; an interior NUL (never expected) becomes U+FFFD.
pub fn cstring(s: &str) -> CString {
    CString::new(s)
        .unwrap_or_else(|_| CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default())
}

/// The pointer of an optional C string, NULL when absent.
pub fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

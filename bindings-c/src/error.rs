// SPDX-License-Identifier: Apache-2.0
// mm_status (one number per core ErrorCode) and the mm_error object with its accessors.

//! Status codes and error objects.
//!
//! `mm_status` must be a literal enum for cbindgen, so `build.rs` writes it (and
//! [`status_of`]) into `src/status.rs` from the core's error-code table, with the table's doc
//! comments; `test.sh` checks the committed file is current, as it does the header. The unit
//! tests check every number against `ErrorCode::as_u32`.

use std::ffi::{c_char, CStr, CString};
use std::sync::LazyLock;

use marketplace_metering::{Error, ErrorCode};

use crate::ffi::{self, Castable};

pub use crate::status::{mm_status, status_of};

impl mm_status {
    /// The status with this number, if it is one.
    pub fn from_u32(n: u32) -> Option<mm_status> {
        match n {
            0 => Some(mm_status::Ok),
            1 => Some(mm_status::NullParameter),
            2 => Some(mm_status::Panic),
            n => ErrorCode::from_u32(n).map(status_of),
        }
    }

    /// The name: `"OK"`, `"NullParameter"`, `"Panic"`, else the core code's `as_str()`.
    pub fn as_cstr(self) -> &'static CStr {
        static NAMES: LazyLock<Vec<(u32, CString)>> = LazyLock::new(|| {
            ErrorCode::ALL
                .iter()
                .map(|c| (c.as_u32(), ffi::cstring(c.as_str())))
                .collect()
        });
        match self {
            mm_status::Ok => c"OK",
            mm_status::NullParameter => c"NullParameter",
            mm_status::Panic => c"Panic",
            other => NAMES
                .iter()
                .find(|(n, _)| *n == other as u32)
                .map_or(c"Unknown", |(_, s)| s.as_c_str()),
        }
    }
}

/// The name of a status (`"OK"`, `"NullParameter"`, `"Panic"`, `"ThrottlingException"`, …),
/// the same string as `mm_error_code_str` for errors the library raised itself.
///
/// `status` is a `mm_status` value; an unknown number gives `"Unknown"`. Returns a static
/// string (never NULL; do not free). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_status_str(status: u32) -> *const c_char {
    ffi_boundary!(c"Panic".as_ptr() => {
        mm_status::from_u32(status).map_or(c"Unknown", mm_status::as_cstr).as_ptr()
    })
}

/// The details of a failed call. Made by the library on failure (through `mm_error **`);
/// read it with the `mm_error_*` accessors; free it with `mm_error_free`.
///
/// Immutable: it may be read from many threads at once.
pub struct mm_error {
    _private: [u8; 0],
}

/// What an `mm_error` holds.
#[derive(Debug)]
pub struct ErrorData {
    /// The status the call returned.
    pub status: mm_status,
    code: CString,
    message: CString,
    request_id: Option<CString>,
    field: Option<CString>,
    http_status: u16,
    attempts: u32,
    retryable: bool,
}

impl Castable for mm_error {
    type Rust = ErrorData;
}

impl ErrorData {
    fn local(status: mm_status, message: &str) -> ErrorData {
        ErrorData {
            status,
            code: status.as_cstr().to_owned(),
            message: ffi::cstring(message),
            request_id: None,
            field: None,
            http_status: 0,
            attempts: 0,
            retryable: false,
        }
    }

    /// A NULL argument.
    pub fn null(what: &str) -> ErrorData {
        ErrorData::local(mm_status::NullParameter, &format!("{what} is NULL"))
    }

    /// A call on a handle that cannot take it now.
    pub fn invalid_state(message: &str) -> ErrorData {
        ErrorData::local(mm_status::InvalidState, message)
    }

    /// A caught panic.
    pub fn panic() -> ErrorData {
        ErrorData::local(
            mm_status::Panic,
            "a panic was caught at the C boundary (this is a bug in marketplace-metering)",
        )
    }

    /// An argument that is not valid (invalid UTF-8, an unknown enum value).
    pub fn invalid(field: &str, problem: &str) -> ErrorData {
        ErrorData::from(&Error::invalid_input(field.to_owned(), problem))
    }
}

impl From<&Error> for ErrorData {
    fn from(e: &Error) -> ErrorData {
        ErrorData {
            status: status_of(e.error_code()),
            code: ffi::cstring(e.code()),
            message: ffi::cstring(e.message()),
            request_id: e.request_id().map(ffi::cstring),
            field: e.field().map(ffi::cstring),
            http_status: e.http_status().unwrap_or(0),
            attempts: e.attempts(),
            retryable: e.is_retryable(),
        }
    }
}

impl From<Error> for ErrorData {
    fn from(e: Error) -> ErrorData {
        ErrorData::from(&e)
    }
}

/// The status of the failed call (`MM_STATUS_THROTTLING_EXCEPTION`, …).
///
/// `err` NULL gives `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_code(err: *const mm_error) -> mm_status {
    ffi_boundary!(mm_status::Panic => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(mm_status::NullParameter, |e| e.status)
    })
}

/// The error code as a string: the service's own code when it answered
/// (`"ThrottlingException"`, or a code this version does not know, with status
/// `MM_STATUS_UNHANDLED`), else the local name (`"InvalidInput"`, `"ReadTimeout"`, …).
///
/// Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_code_str(err: *const mm_error) -> *const c_char {
    ffi_boundary!(std::ptr::null() => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(std::ptr::null(), |e| e.code.as_ptr())
    })
}

/// The human-readable message.
///
/// Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_message(err: *const mm_error) -> *const c_char {
    ffi_boundary!(std::ptr::null() => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(std::ptr::null(), |e| e.message.as_ptr())
    })
}

/// The service's request id, or NULL when no response was received.
///
/// Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_request_id(err: *const mm_error) -> *const c_char {
    ffi_boundary!(std::ptr::null() => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(std::ptr::null(), |e| ffi::opt_ptr(&e.request_id))
    })
}

/// For `MM_STATUS_INVALID_INPUT`, the path of the offending field
/// (`"UsageRecords[3].Quantity"`); NULL otherwise.
///
/// Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_field(err: *const mm_error) -> *const c_char {
    ffi_boundary!(std::ptr::null() => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(std::ptr::null(), |e| ffi::opt_ptr(&e.field))
    })
}

/// The HTTP status of the last response, 0 when none was received (or `err` is NULL).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_http_status(err: *const mm_error) -> u16 {
    ffi_boundary!(0 => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(0, |e| e.http_status)
    })
}

/// Attempts made, the first included (0 when nothing was sent, or `err` is NULL).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_attempts(err: *const mm_error) -> u32 {
    ffi_boundary!(0 => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.map_or(0, |e| e.attempts)
    })
}

/// `true` when the same call could succeed if made again later (throttling, transient server
/// errors, timeouts). `err` NULL gives `false`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_error_is_retryable(err: *const mm_error) -> bool {
    ffi_boundary!(false => {
        // SAFETY: NULL or a live mm_error.
        unsafe { ffi::opt_ref(err) }.is_some_and(|e| e.retryable)
    })
}

/// Frees an error and every string read from it. NULL does nothing.
///
/// Not thread-safe with respect to `err`: no other thread may use it during or after the call.
#[no_mangle]
pub extern "C" fn mm_error_free(err: *mut mm_error) {
    ffi_boundary!(() => {
        // SAFETY: NULL or an mm_error made by this library, freed once.
        unsafe { ffi::free(err) }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_has_the_same_number() {
        for &c in ErrorCode::ALL {
            assert_eq!(status_of(c) as u32, c.as_u32(), "{c}");
            assert_eq!(mm_status::from_u32(c.as_u32()), Some(status_of(c)));
            assert_eq!(status_of(c).as_cstr().to_str().unwrap(), c.as_str());
        }
        for n in 0..3 {
            assert!(ErrorCode::from_u32(n).is_none(), "{n} is reserved for C");
        }
    }

    #[test]
    fn status_str_names_every_status() {
        let s = |n: u32| {
            unsafe { CStr::from_ptr(mm_status_str(n)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(s(0), "OK");
        assert_eq!(s(1), "NullParameter");
        assert_eq!(s(2), "Panic");
        assert_eq!(s(107), "ThrottlingException");
        assert_eq!(s(99_999), "Unknown");
    }

    #[test]
    fn accessors_accept_null() {
        assert_eq!(mm_error_code(std::ptr::null()), mm_status::NullParameter);
        assert!(mm_error_message(std::ptr::null()).is_null());
        assert!(mm_error_code_str(std::ptr::null()).is_null());
        assert!(mm_error_request_id(std::ptr::null()).is_null());
        assert!(mm_error_field(std::ptr::null()).is_null());
        assert_eq!(mm_error_http_status(std::ptr::null()), 0);
        assert_eq!(mm_error_attempts(std::ptr::null()), 0);
        assert!(!mm_error_is_retryable(std::ptr::null()));
        mm_error_free(std::ptr::null_mut());
    }
}

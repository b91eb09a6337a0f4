// SPDX-License-Identifier: Apache-2.0
// What the meter reports: flush summaries, bucket counts, dead letters.

use std::ffi::{c_char, CString};

use marketplace_metering::meter::{DeadLetter, FlushSummary, MeterStatus};

use super::*;
use crate::error::{mm_error, mm_status};
use crate::ffi::{self, cstring, opt_ptr, Castable};

/// What one flush did (filled by `mm_meter_flush` and `mm_meter_close`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mm_flush_summary {
    /// Buckets sealed by this flush.
    pub sealed: usize,
    /// Records sent (re-sends included).
    pub sent: usize,
    /// Calls made.
    pub calls: usize,
    /// Buckets acknowledged.
    pub acked: usize,
    /// Buckets dead-lettered.
    pub dead_lettered: usize,
    /// Buckets expired.
    pub expired: usize,
    /// Records the service returned unprocessed that were sent again.
    pub resent_unprocessed: usize,
    /// Buckets left for a later flush.
    pub deferred: usize,
    /// `MM_STATUS_OK`, or the retryable error (throttling, transport) that stopped this flush
    /// early; its buckets stay sealed for the next flush.
    pub interrupted: mm_status,
}

/// Bucket counts per state (filled by `mm_meter_status`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mm_meter_counts {
    /// Hours still open (or within grace).
    pub pending: u64,
    /// Sealed, not yet acknowledged (includes buckets being sent).
    pub sealed: u64,
    /// Metered by the service.
    pub acked: u64,
    /// Refused by the service (see `mm_meter_dead_letters`).
    pub dead_lettered: u64,
    /// Passed the service's window unsent.
    pub expired: u64,
    /// Whether `oldest_unsent_hour` is set.
    pub has_oldest_unsent_hour: bool,
    /// The oldest hour not yet acknowledged, dead-lettered or expired (epoch seconds).
    pub oldest_unsent_hour: i64,
}

pub(crate) fn summary(s: &FlushSummary) -> mm_flush_summary {
    mm_flush_summary {
        sealed: s.sealed,
        sent: s.sent,
        calls: s.calls,
        acked: s.acked,
        dead_lettered: s.dead_lettered,
        expired: s.expired,
        resent_unprocessed: s.resent_unprocessed,
        deferred: s.deferred,
        interrupted: s
            .interrupted
            .as_ref()
            .map_or(mm_status::Ok, |e| crate::error::status_of(e.error_code())),
    }
}

pub(crate) fn counts(s: &MeterStatus) -> mm_meter_counts {
    mm_meter_counts {
        pending: s.pending,
        sealed: s.sealed,
        acked: s.acked,
        dead_lettered: s.dead_lettered,
        expired: s.expired,
        has_oldest_unsent_hour: s.oldest_unsent_hour.is_some(),
        oldest_unsent_hour: s.oldest_unsent_hour.unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------------------
// mm_dead_letters

/// One dead letter, as C strings.
#[derive(Debug)]
pub struct DeadLetterView {
    customer_identifier: Option<CString>,
    customer_aws_account_id: Option<CString>,
    license_arn: Option<CString>,
    dimension: CString,
    hour: i64,
    quantity: i64,
    reason: CString,
    message: CString,
    at: i64,
}

impl DeadLetterView {
    fn of(d: &DeadLetter) -> DeadLetterView {
        let (ci, acct, lic) = customer_parts(&d.customer);
        DeadLetterView {
            customer_identifier: opt_c(ci),
            customer_aws_account_id: opt_c(acct),
            license_arn: opt_c(lic),
            dimension: cstring(&d.dimension),
            hour: d.hour,
            quantity: d.quantity,
            reason: cstring(&d.reason),
            message: cstring(&d.message),
            at: d.at,
        }
    }
}

/// The buckets the service did not meter, oldest first (a snapshot made by
/// `mm_meter_dead_letters`). Read with the `mm_dead_letters_*` accessors (an index out of
/// range gives NULL / 0); free with `mm_dead_letters_free`. Immutable; thread-safe to read.
pub struct mm_dead_letters {
    _private: [u8; 0],
}

impl Castable for mm_dead_letters {
    type Rust = Vec<DeadLetterView>;
}

/// Stores a snapshot of every dead letter in `*list_out` (free it with
/// `mm_dead_letters_free`). `meter` or `list_out` NULL → `MM_STATUS_NULL_PARAMETER`; a store
/// failure fills `*err_out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_dead_letters(
    meter: *const mm_meter,
    list_out: *mut *mut mm_dead_letters,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        ffi::check_out(list_out, "list_out")?;
        let list: Vec<DeadLetterView> = m.dead_letters()?.iter().map(DeadLetterView::of).collect();
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_dead_letters>(list_out, list) };
        Ok(())
    })
}

/// Frees a dead-letter list and every string read from it. NULL does nothing.
#[no_mangle]
pub extern "C" fn mm_dead_letters_free(list: *mut mm_dead_letters) {
    // SAFETY: NULL or a list made by mm_meter_dead_letters, freed once.
    ffi_boundary!(() => unsafe { ffi::free(list) })
}

fn letter<'a>(list: *const mm_dead_letters, i: usize) -> Option<&'a DeadLetterView> {
    // SAFETY: NULL or a live list.
    unsafe { ffi::opt_ref(list) }.and_then(|l| l.get(i))
}

/// The number of dead letters (0 if `list` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_dead_letters_count(list: *const mm_dead_letters) -> usize {
    // SAFETY: NULL or a live list.
    ffi_boundary!(0 => unsafe { ffi::opt_ref(list) }.map_or(0, Vec::len))
}

/// Dead letter `i`'s customer identifier (NULL for an account customer). Owned by `list`.
#[no_mangle]
pub extern "C" fn mm_dead_letters_customer_identifier(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| opt_ptr(&d.customer_identifier)))
}

/// Dead letter `i`'s customer AWS account id (NULL for a customer identifier). Owned by `list`.
#[no_mangle]
pub extern "C" fn mm_dead_letters_customer_aws_account_id(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| opt_ptr(&d.customer_aws_account_id)))
}

/// Dead letter `i`'s license ARN (NULL for a customer identifier). Owned by `list`.
#[no_mangle]
pub extern "C" fn mm_dead_letters_license_arn(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| opt_ptr(&d.license_arn)))
}

/// Dead letter `i`'s dimension. Owned by `list`; NULL if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_dimension(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| d.dimension.as_ptr()))
}

/// Dead letter `i`'s hour (epoch seconds); 0 if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_hour(list: *const mm_dead_letters, i: usize) -> i64 {
    ffi_boundary!(0 => letter(list, i).map_or(0, |d| d.hour))
}

/// Dead letter `i`'s frozen quantity; 0 if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_quantity(list: *const mm_dead_letters, i: usize) -> i64 {
    ffi_boundary!(0 => letter(list, i).map_or(0, |d| d.quantity))
}

/// Dead letter `i`'s reason: the record's Status (`"CustomerNotSubscribed"`, …) or the error
/// code. Owned by `list`; NULL if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_reason(list: *const mm_dead_letters, i: usize) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| d.reason.as_ptr()))
}

/// Dead letter `i`'s details. Owned by `list`; NULL if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_message(list: *const mm_dead_letters, i: usize) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| d.message.as_ptr()))
}

/// When dead letter `i` was dead-lettered (epoch seconds, meter clock); 0 if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_at(list: *const mm_dead_letters, i: usize) -> i64 {
    ffi_boundary!(0 => letter(list, i).map_or(0, |d| d.at))
}

// SPDX-License-Identifier: Apache-2.0
// What the meter reports: flush summaries, bucket counts per state, dead letters.

use std::ffi::{c_char, CString};

use marketplace_metering::meter::{Customer, DeadLetter, FlushSummary, MeterStatus};

use super::*;
use crate::error::{mm_error, mm_status};
use crate::ffi::{self, cstring, opt_ptr, Castable};

/// One count of a result handle; 0 for NULL.
fn count<T: Castable>(p: *const T, f: impl FnOnce(&T::Rust) -> u64) -> u64 {
    // SAFETY: NULL or a live handle of this type.
    ffi_boundary!(0 => unsafe { ffi::opt_ref(p) }.map_or(0, f))
}

// ---------------------------------------------------------------------------------------------
// mm_flush_summary

/// What an `mm_flush_summary` holds (counts widened to `u64`, the one count type of the C API).
#[derive(Debug)]
pub struct FlushSummaryView {
    sealed: u64,
    sent: u64,
    calls: u64,
    acked: u64,
    dead_lettered: u64,
    expired: u64,
    resent_unprocessed: u64,
    deferred: u64,
    interrupted: Option<(mm_status, CString)>,
}

impl FlushSummaryView {
    pub(crate) fn of(s: &FlushSummary) -> FlushSummaryView {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        FlushSummaryView {
            sealed: n(s.sealed),
            sent: n(s.sent),
            calls: n(s.calls),
            acked: n(s.acked),
            dead_lettered: n(s.dead_lettered),
            expired: n(s.expired),
            resent_unprocessed: n(s.resent_unprocessed),
            deferred: n(s.deferred),
            interrupted: s.interrupted.as_ref().map(|e| {
                (
                    crate::error::status_of(e.error_code()),
                    cstring(e.message()),
                )
            }),
        }
    }
}

/// What one flush did: made by `mm_meter_flush` and `mm_meter_close`, read with the
/// `mm_flush_summary_*` accessors (each gives 0 / NULL for a NULL summary), freed with
/// `mm_flush_summary_free`. Opaque so that later versions can report more without changing
/// the size of anything the caller allocates. Immutable; thread-safe to read.
pub struct mm_flush_summary {
    _private: [u8; 0],
}

impl Castable for mm_flush_summary {
    type Rust = FlushSummaryView;
}

/// Frees a flush summary and the strings read from it. NULL does nothing.
#[no_mangle]
pub extern "C" fn mm_flush_summary_free(summary: *mut mm_flush_summary) {
    // SAFETY: NULL or a summary made by mm_meter_flush / mm_meter_close, freed once.
    ffi_boundary!(() => unsafe { ffi::free(summary) })
}

/// Buckets sealed by this flush. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_sealed_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.sealed)
}
/// Records sent (re-sends included). 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_sent_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.sent)
}
/// Calls made to the service. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_call_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.calls)
}
/// Buckets acknowledged. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_acked_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.acked)
}
/// Buckets dead-lettered. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_dead_lettered_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.dead_lettered)
}
/// Buckets that passed the service's window unsent. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_expired_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.expired)
}
/// Records the service returned unprocessed that were sent again. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_resent_unprocessed_count(
    summary: *const mm_flush_summary,
) -> u64 {
    count(summary, |v| v.resent_unprocessed)
}
/// Buckets left for a later flush. 0 if `summary` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_flush_summary_deferred_count(summary: *const mm_flush_summary) -> u64 {
    count(summary, |v| v.deferred)
}

/// `MM_STATUS_OK`, or the retryable error (throttling, transport) that stopped this flush
/// early; its buckets stay sealed for the next flush. `MM_STATUS_NULL_PARAMETER` for a NULL
/// summary.
#[no_mangle]
pub extern "C" fn mm_flush_summary_interrupted(summary: *const mm_flush_summary) -> mm_status {
    // SAFETY: NULL or a live summary.
    ffi_boundary!(mm_status::NullParameter => match unsafe { ffi::opt_ref(summary) } {
        None => mm_status::NullParameter,
        Some(s) => s.interrupted.as_ref().map_or(mm_status::Ok, |(st, _)| *st),
    })
}

/// The message of the error that stopped this flush early; NULL when it was not interrupted
/// (or `summary` is NULL). Owned by `summary`.
#[no_mangle]
pub extern "C" fn mm_flush_summary_interrupted_message(
    summary: *const mm_flush_summary,
) -> *const c_char {
    // SAFETY: NULL or a live summary.
    ffi_boundary!(std::ptr::null() => unsafe { ffi::opt_ref(summary) }
        .and_then(|s| s.interrupted.as_ref())
        .map_or(std::ptr::null(), |(_, m)| m.as_ptr()))
}

// ---------------------------------------------------------------------------------------------
// mm_meter_status

/// Bucket counts per state and the oldest unsent hour: made by `mm_meter_get_status`, read
/// with the `mm_meter_status_*` accessors (0 / false for a NULL status), freed with
/// `mm_meter_status_free`. Opaque, like `mm_flush_summary`. Immutable; thread-safe to read.
pub struct mm_meter_status {
    _private: [u8; 0],
}

/// What an `mm_meter_status` holds: the counts and the replica id as a C string.
#[derive(Debug)]
pub struct StatusView {
    counts: MeterStatus,
    replica_id: Option<CString>,
    last_flush_error: Option<CString>,
}

impl From<MeterStatus> for StatusView {
    fn from(counts: MeterStatus) -> Self {
        let replica_id = counts.replica_id.as_deref().map(cstring);
        let last_flush_error = counts.last_flush_error.as_deref().map(cstring);
        StatusView {
            counts,
            replica_id,
            last_flush_error,
        }
    }
}

impl Castable for mm_meter_status {
    type Rust = StatusView;
}

/// Frees a meter status. NULL does nothing.
#[no_mangle]
pub extern "C" fn mm_meter_status_free(status: *mut mm_meter_status) {
    // SAFETY: NULL or a status made by mm_meter_get_status, freed once.
    ffi_boundary!(() => unsafe { ffi::free(status) })
}

/// Buckets whose hour is still open (or within grace). 0 if `status` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_pending_count(status: *const mm_meter_status) -> u64 {
    count(status, |v| v.counts.pending)
}
/// Buckets sealed and not yet acknowledged (those being sent included). 0 if `status` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_sealed_count(status: *const mm_meter_status) -> u64 {
    count(status, |v| v.counts.sealed)
}
/// Buckets metered by the service. 0 if `status` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_acked_count(status: *const mm_meter_status) -> u64 {
    count(status, |v| v.counts.acked)
}
/// Buckets refused by the service (see `mm_meter_get_dead_letters`). 0 if `status` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_dead_lettered_count(status: *const mm_meter_status) -> u64 {
    count(status, |v| v.counts.dead_lettered)
}
/// Buckets that passed the service's window unsent. 0 if `status` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_expired_count(status: *const mm_meter_status) -> u64 {
    count(status, |v| v.counts.expired)
}

/// The oldest hour not yet acknowledged, dead-lettered or expired: returns `true` and stores
/// it (epoch seconds) in `*hour_out` when there is one; returns `false` and writes nothing
/// when there is none, or when `status` or `hour_out` is NULL.
#[no_mangle]
pub extern "C" fn mm_meter_status_oldest_unsent_hour(
    status: *const mm_meter_status,
    hour_out: *mut i64,
) -> bool {
    // SAFETY: NULL or a live status.
    let hour = unsafe { ffi::opt_ref(status) }.and_then(|s| s.counts.oldest_unsent_hour);
    ffi_boundary!(false => match (hour, hour_out.is_null()) {
        (Some(h), false) => {
            // SAFETY: checked non-NULL; the caller passes a writable int64_t.
            unsafe { *hour_out = h };
            true
        }
        _ => false,
    })
}

/// On the fleet store, this meter's replica id (NUL-terminated UTF-8, valid until
/// `mm_meter_status_free`; the counts are the whole fleet's for the product). NULL on a local
/// store, or when `status` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_replica_id(status: *const mm_meter_status) -> *const c_char {
    // SAFETY: NULL or a live status.
    ffi_boundary!(std::ptr::null() => unsafe { ffi::opt_ref(status) }
        .map_or(std::ptr::null(), |s| opt_ptr(&s.replica_id)))
}

/// When this meter's last flush ended (a caller's, `mm_meter_close`'s, or the background
/// flusher's), by the meter's clock: returns `true` and stores it (epoch
/// seconds) in `*at_out`; returns `false` and writes nothing before the first flush, or when
/// `status` or `at_out` is NULL.
#[no_mangle]
pub extern "C" fn mm_meter_status_last_flush_at(
    status: *const mm_meter_status,
    at_out: *mut i64,
) -> bool {
    // SAFETY: NULL or a live status.
    let at = unsafe { ffi::opt_ref(status) }.and_then(|s| s.counts.last_flush_at);
    ffi_boundary!(false => match (at, at_out.is_null()) {
        (Some(t), false) => {
            // SAFETY: checked non-NULL; the caller passes a writable int64_t.
            unsafe { *at_out = t };
            true
        }
        _ => false,
    })
}

/// What failed or stopped this meter's last flush (`"Code: message"`: an error, or throttling,
/// a transport failure), NUL-terminated UTF-8 valid until `mm_meter_status_free`. NULL when it
/// went well, before the first flush, or when `status` is NULL. A background flush has no
/// caller to return its error to: a health check reads it here. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status_last_flush_error(
    status: *const mm_meter_status,
) -> *const c_char {
    // SAFETY: NULL or a live status.
    ffi_boundary!(std::ptr::null() => unsafe { ffi::opt_ref(status) }
        .map_or(std::ptr::null(), |s| opt_ptr(&s.last_flush_error)))
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
        let (ci, acct, lic) = Customer::parts_of(d.customer.as_ref());
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
/// `mm_meter_get_dead_letters`). Read with the `mm_dead_letters_*` accessors (an index out of
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
pub extern "C" fn mm_meter_get_dead_letters(
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
    // SAFETY: NULL or a list made by mm_meter_get_dead_letters, freed once.
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

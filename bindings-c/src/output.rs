// SPDX-License-Identifier: Apache-2.0
// Output handles of the four operations, read with accessors.
// Over 600 lines: one exported accessor per member of each output shape, each with the doc
// comment cbindgen copies into the header; the file follows the model's shapes in order.

//! Outputs. Each is an immutable handle made by a successful call: accessors may be called
//! from many threads at once, and every string they return is owned by the output and stays
//! valid until the output is freed. An index out of range gives NULL / 0 / UNKNOWN.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageOutput;
use marketplace_metering::operation::meter_usage::MeterUsageOutput;
use marketplace_metering::operation::register_usage::RegisterUsageOutput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerOutput;
use marketplace_metering::types::{UsageRecord, UsageRecordResult};
use marketplace_metering::ResponseMetadata;

use crate::ffi::{self, cstring, opt_ptr, Castable};
use crate::input::{mm_batch_meter_usage_input, BatchInput, Record};

/// The status of one `BatchMeterUsage` record.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mm_usage_record_status {
    /// The record was metered.
    Success = 0,
    /// The customer has not subscribed to the product; the record was not metered.
    CustomerNotSubscribed = 1,
    /// A record with another quantity exists for this customer, dimension and hour.
    DuplicateRecord = 2,
    /// A status this version does not know (or none): read `..._result_status_str`.
    Unknown = 3,
}

/// Request id, HTTP status and attempts of a response.
#[derive(Debug)]
pub struct Meta {
    request_id: Option<CString>,
    http_status: u16,
    attempts: u32,
}

impl Meta {
    fn of(m: &ResponseMetadata) -> Meta {
        Meta {
            request_id: m.request_id().map(cstring),
            http_status: m.http_status().unwrap_or(0),
            attempts: m.attempts(),
        }
    }
}

fn record_status(r: &UsageRecordResult) -> mm_usage_record_status {
    match r.status().map(|s| s.as_str()) {
        Some("Success") => mm_usage_record_status::Success,
        Some("CustomerNotSubscribed") => mm_usage_record_status::CustomerNotSubscribed,
        Some("DuplicateRecord") => mm_usage_record_status::DuplicateRecord,
        _ => mm_usage_record_status::Unknown,
    }
}

/// A usage record, as C strings.
#[derive(Debug)]
pub struct RecordView {
    customer_identifier: Option<CString>,
    customer_aws_account_id: Option<CString>,
    license_arn: Option<CString>,
    dimension: CString,
    /// Each allocation's tags, (key, value).
    tags: Vec<Vec<(CString, CString)>>,
}

impl RecordView {
    fn of(r: &UsageRecord) -> RecordView {
        RecordView {
            customer_identifier: r.customer_identifier().map(cstring),
            customer_aws_account_id: r.customer_aws_account_id().map(cstring),
            license_arn: r.license_arn().map(cstring),
            dimension: cstring(r.dimension()),
            tags: r
                .usage_allocations()
                .iter()
                .map(|a| {
                    a.tags()
                        .iter()
                        .map(|t| (cstring(t.key()), cstring(t.value())))
                        .collect()
                })
                .collect(),
        }
    }
}

/// One result, as C strings.
#[derive(Debug)]
pub struct ResultView {
    record: Option<RecordView>,
    metering_record_id: Option<CString>,
    status_str: CString,
}

impl ResultView {
    fn of(r: &UsageRecordResult) -> ResultView {
        let s = r.status().map_or("", |s| s.as_str());
        ResultView {
            record: r.usage_record().map(RecordView::of),
            metering_record_id: r.metering_record_id().map(cstring),
            status_str: cstring(s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BatchMeterUsage

/// The output of `BatchMeterUsage`: one result per processed record and the records the
/// service did not process (send them again: see `mm_batch_meter_usage_output_unprocessed_input`).
/// Free with `mm_batch_meter_usage_output_free`. Immutable; thread-safe to read.
pub struct mm_batch_meter_usage_output {
    _private: [u8; 0],
}

/// What an `mm_batch_meter_usage_output` holds: the core output, and its strings as C strings,
/// made on the first string accessor (numbers and statuses are read without them).
#[derive(Debug)]
pub struct BatchOutput {
    core: BatchMeterUsageOutput,
    product_code: Option<String>,
    views: OnceLock<BatchViews>,
}

/// The C strings of a `BatchOutput`.
#[derive(Debug)]
pub struct BatchViews {
    results: Vec<ResultView>,
    unprocessed: Vec<RecordView>,
    meta: Meta,
}

impl BatchOutput {
    /// From the core's output and the product code that was sent.
    pub fn new(core: BatchMeterUsageOutput, product_code: Option<String>) -> BatchOutput {
        BatchOutput {
            core,
            product_code,
            views: OnceLock::new(),
        }
    }

    fn views(&self) -> &BatchViews {
        self.views.get_or_init(|| BatchViews {
            results: self.core.results().iter().map(ResultView::of).collect(),
            unprocessed: self
                .core
                .unprocessed_records()
                .iter()
                .map(RecordView::of)
                .collect(),
            meta: Meta::of(self.core.metadata()),
        })
    }
}

impl Castable for mm_batch_meter_usage_output {
    type Rust = BatchOutput;
}

fn batch<'a>(out: *const mm_batch_meter_usage_output) -> Option<&'a BatchOutput> {
    // SAFETY: NULL or a live output made by this library.
    unsafe { ffi::opt_ref(out) }
}

fn result<'a>(out: *const mm_batch_meter_usage_output, i: usize) -> Option<&'a ResultView> {
    batch(out).and_then(|o| o.views().results.get(i))
}

fn core_result<'a>(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> Option<&'a UsageRecordResult> {
    batch(out).and_then(|o| o.core.results().get(i))
}

fn core_record<'a>(out: *const mm_batch_meter_usage_output, i: usize) -> Option<&'a UsageRecord> {
    core_result(out, i).and_then(|r| r.usage_record())
}

fn core_unprocessed<'a>(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> Option<&'a UsageRecord> {
    batch(out).and_then(|o| o.core.unprocessed_records().get(i))
}

fn result_record<'a>(out: *const mm_batch_meter_usage_output, i: usize) -> Option<&'a RecordView> {
    result(out, i).and_then(|r| r.record.as_ref())
}

fn unprocessed<'a>(out: *const mm_batch_meter_usage_output, i: usize) -> Option<&'a RecordView> {
    batch(out).and_then(|o| o.views().unprocessed.get(i))
}

/// Frees the output and every string read from it. NULL does nothing. No other thread may use
/// it during or after.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_free(out: *mut mm_batch_meter_usage_output) {
    // SAFETY: NULL or an output made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(out) })
}

/// The number of results (processed records). 0 if `out` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_count(
    out: *const mm_batch_meter_usage_output,
) -> usize {
    ffi_boundary!(0 => batch(out).map_or(0, |o| o.core.results().len()))
}

/// The status of result `i`; `MM_USAGE_RECORD_STATUS_UNKNOWN` for a status this version does
/// not know (see `..._result_status_str`), for `out` NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_status(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> mm_usage_record_status {
    ffi_boundary!(mm_usage_record_status::Unknown => core_result(out, i).map_or(mm_usage_record_status::Unknown, record_status))
}

/// The status of result `i` as the service sent it (`"Success"`, …; `""` when absent). Owned
/// by `out`. NULL if `out` is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_status_str(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => result(out, i).map_or(std::ptr::null(), |r| r.status_str.as_ptr()))
}

/// The metering record id of result `i` (NULL when the service gave none, e.g.
/// `CustomerNotSubscribed`). Owned by `out`. NULL if `out` is NULL or `i` out of range.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_metering_record_id(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => result(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.metering_record_id)))
}

/// The customer identifier of result `i`'s record (NULL when absent). Owned by `out`. NULL if
/// `out` is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_customer_identifier(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => result_record(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.customer_identifier)))
}

/// The customer AWS account id of result `i`'s record (NULL when absent). Owned by `out`.
/// NULL if `out` is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_customer_aws_account_id(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => result_record(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.customer_aws_account_id)))
}

/// The license ARN of result `i`'s record (NULL when absent). Owned by `out`. NULL if `out`
/// is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_license_arn(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => result_record(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.license_arn)))
}

/// The dimension of result `i`'s record. Owned by `out`. NULL if `out` is NULL, `i` out of
/// range or the service echoed no record. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_dimension(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => result_record(out, i).map_or(std::ptr::null(), |r| r.dimension.as_ptr()))
}

/// The quantity of result `i`'s record (0 when absent, `out` NULL or `i` out of range).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_quantity(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> i64 {
    ffi_boundary!(0 => core_record(out, i).map_or(0, |r| r.quantity().map_or(0, i64::from)))
}

/// The timestamp of result `i`'s record, seconds since the Unix epoch (0 when `out` is NULL
/// or `i` out of range). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_result_timestamp(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> i64 {
    ffi_boundary!(0 => core_record(out, i).map_or(0, |r| r.timestamp().secs()))
}

/// The number of records the service did not process (send them again). 0 if `out` is NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_count(
    out: *const mm_batch_meter_usage_output,
) -> usize {
    ffi_boundary!(0 => batch(out).map_or(0, |o| o.core.unprocessed_records().len()))
}

/// The customer identifier of unprocessed record `i` (NULL when absent). Owned by `out`. NULL
/// if `out` is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_customer_identifier(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => unprocessed(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.customer_identifier)))
}

/// The customer AWS account id of unprocessed record `i` (NULL when absent). Owned by `out`.
/// NULL if `out` is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_customer_aws_account_id(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => unprocessed(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.customer_aws_account_id)))
}

/// The license ARN of unprocessed record `i` (NULL when absent). Owned by `out`. NULL if
/// `out` is NULL or `i` out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_license_arn(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => unprocessed(out, i).map_or(std::ptr::null(), |r| opt_ptr(&r.license_arn)))
}

/// The dimension of unprocessed record `i`. Owned by `out`. NULL if `out` is NULL or `i` out
/// of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_dimension(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => unprocessed(out, i).map_or(std::ptr::null(), |r| r.dimension.as_ptr()))
}

/// The quantity of unprocessed record `i` (0 when absent, `out` NULL or `i` out of range).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_quantity(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> i64 {
    ffi_boundary!(0 => core_unprocessed(out, i).map_or(0, |r| r.quantity().map_or(0, i64::from)))
}

/// Whether unprocessed record `i` has a quantity (false when `out` is NULL or `i` out of
/// range). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_has_quantity(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> bool {
    ffi_boundary!(false => core_unprocessed(out, i).is_some_and(|r| r.quantity().is_some()))
}

/// The number of usage allocations of unprocessed record `i` (0 when `out` is NULL or `i` out
/// of range). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_allocation_count(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> usize {
    ffi_boundary!(0 => core_unprocessed(out, i).map_or(0, |r| r.usage_allocations().len()))
}

/// The allocated quantity of allocation `j` of unprocessed record `i` (0 when `out` is NULL
/// or an index out of range). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_allocation_quantity(
    out: *const mm_batch_meter_usage_output,
    i: usize,
    j: usize,
) -> i64 {
    ffi_boundary!(0 => core_unprocessed(out, i)
        .and_then(|r| r.usage_allocations().get(j))
        .map_or(0, |a| i64::from(a.allocated_usage_quantity())))
}

/// The number of tags of allocation `j` of unprocessed record `i` (0 when `out` is NULL or an
/// index out of range). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_allocation_tag_count(
    out: *const mm_batch_meter_usage_output,
    i: usize,
    j: usize,
) -> usize {
    ffi_boundary!(0 => unprocessed(out, i).and_then(|r| r.tags.get(j)).map_or(0, Vec::len))
}

/// The key of tag `k` of allocation `j` of unprocessed record `i`. Owned by `out`. NULL if
/// `out` is NULL or an index out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_allocation_tag_key(
    out: *const mm_batch_meter_usage_output,
    i: usize,
    j: usize,
    k: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => unprocessed_tag(out, i, j, k).map_or(std::ptr::null(), |t| t.0.as_ptr()))
}

/// The value of tag `k` of allocation `j` of unprocessed record `i`. Owned by `out`. NULL if
/// `out` is NULL or an index out of range. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_allocation_tag_value(
    out: *const mm_batch_meter_usage_output,
    i: usize,
    j: usize,
    k: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => unprocessed_tag(out, i, j, k).map_or(std::ptr::null(), |t| t.1.as_ptr()))
}

fn unprocessed_tag<'a>(
    out: *const mm_batch_meter_usage_output,
    i: usize,
    j: usize,
    k: usize,
) -> Option<&'a (CString, CString)> {
    unprocessed(out, i).and_then(|r| r.tags.get(j)?.get(k))
}

/// The timestamp of unprocessed record `i`, seconds since the Unix epoch (0 when `out` is
/// NULL or `i` out of range). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_timestamp(
    out: *const mm_batch_meter_usage_output,
    i: usize,
) -> i64 {
    ffi_boundary!(0 => core_unprocessed(out, i).map_or(0, |r| r.timestamp().secs()))
}

/// A new input holding the unprocessed records (all their fields, allocations included) and
/// the product code of the call, ready to send again.
///
/// The caller owns it: free it with `mm_batch_meter_usage_input_free`. NULL if `out` is NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_unprocessed_input(
    out: *const mm_batch_meter_usage_output,
) -> *mut mm_batch_meter_usage_input {
    ffi_boundary!(std::ptr::null_mut() => batch(out).map_or(std::ptr::null_mut(), |o| {
        ffi::to_handle::<mm_batch_meter_usage_input>(BatchInput {
            product_code: o.product_code.clone(),
            records: o.core.unprocessed_records().iter().map(Record::from_core).collect(),
        })
    }))
}

/// The request id (`x-amzn-RequestId`), or NULL when none. Owned by `out`. NULL if `out` is
/// NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_request_id(
    out: *const mm_batch_meter_usage_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => batch(out).map_or(std::ptr::null(), |o| opt_ptr(&o.views().meta.request_id)))
}

/// The HTTP status of the response (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_http_status(
    out: *const mm_batch_meter_usage_output,
) -> u16 {
    ffi_boundary!(0 => batch(out).map_or(0, |o| o.core.metadata().http_status().unwrap_or(0)))
}

/// Attempts made, the first included (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_output_attempts(
    out: *const mm_batch_meter_usage_output,
) -> u32 {
    ffi_boundary!(0 => batch(out).map_or(0, |o| o.core.metadata().attempts()))
}

// ---------------------------------------------------------------------------------------------
// MeterUsage

/// The output of `MeterUsage`. Free with `mm_meter_usage_output_free`. Immutable;
/// thread-safe to read.
pub struct mm_meter_usage_output {
    _private: [u8; 0],
}

/// What an `mm_meter_usage_output` holds.
#[derive(Debug)]
pub struct MeterOutput {
    metering_record_id: Option<CString>,
    meta: Meta,
}

impl MeterOutput {
    /// From the core's output.
    pub fn new(o: &MeterUsageOutput) -> MeterOutput {
        MeterOutput {
            metering_record_id: o.metering_record_id().map(cstring),
            meta: Meta::of(o.metadata()),
        }
    }
}

impl Castable for mm_meter_usage_output {
    type Rust = MeterOutput;
}

fn meter<'a>(out: *const mm_meter_usage_output) -> Option<&'a MeterOutput> {
    // SAFETY: NULL or a live output made by this library.
    unsafe { ffi::opt_ref(out) }
}

/// Frees the output and every string read from it. NULL does nothing. No other thread may use
/// it during or after.
#[no_mangle]
pub extern "C" fn mm_meter_usage_output_free(out: *mut mm_meter_usage_output) {
    // SAFETY: NULL or an output made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(out) })
}

/// The metering record id (NULL when none, or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_usage_output_metering_record_id(
    out: *const mm_meter_usage_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => meter(out).map_or(std::ptr::null(), |o| opt_ptr(&o.metering_record_id)))
}

/// The request id, or NULL when none (or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_usage_output_request_id(
    out: *const mm_meter_usage_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => meter(out).map_or(std::ptr::null(), |o| opt_ptr(&o.meta.request_id)))
}

/// The HTTP status of the response (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_usage_output_http_status(out: *const mm_meter_usage_output) -> u16 {
    ffi_boundary!(0 => meter(out).map_or(0, |o| o.meta.http_status))
}

/// Attempts made, the first included (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_usage_output_attempts(out: *const mm_meter_usage_output) -> u32 {
    ffi_boundary!(0 => meter(out).map_or(0, |o| o.meta.attempts))
}

// ---------------------------------------------------------------------------------------------
// ResolveCustomer

/// The output of `ResolveCustomer`. Free with `mm_resolve_customer_output_free`. Immutable;
/// thread-safe to read.
pub struct mm_resolve_customer_output {
    _private: [u8; 0],
}

/// What an `mm_resolve_customer_output` holds.
#[derive(Debug)]
pub struct ResolveOutput {
    customer_identifier: Option<CString>,
    product_code: Option<CString>,
    customer_aws_account_id: Option<CString>,
    license_arn: Option<CString>,
    meta: Meta,
}

impl ResolveOutput {
    /// From the core's output.
    pub fn new(o: &ResolveCustomerOutput) -> ResolveOutput {
        ResolveOutput {
            customer_identifier: o.customer_identifier().map(cstring),
            product_code: o.product_code().map(cstring),
            customer_aws_account_id: o.customer_aws_account_id().map(cstring),
            license_arn: o.license_arn().map(cstring),
            meta: Meta::of(o.metadata()),
        }
    }
}

impl Castable for mm_resolve_customer_output {
    type Rust = ResolveOutput;
}

fn resolve<'a>(out: *const mm_resolve_customer_output) -> Option<&'a ResolveOutput> {
    // SAFETY: NULL or a live output made by this library.
    unsafe { ffi::opt_ref(out) }
}

/// Frees the output and every string read from it. NULL does nothing. No other thread may use
/// it during or after.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_free(out: *mut mm_resolve_customer_output) {
    // SAFETY: NULL or an output made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(out) })
}

/// The customer identifier to meter against (NULL when absent or `out` NULL). Owned by `out`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_customer_identifier(
    out: *const mm_resolve_customer_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => resolve(out).map_or(std::ptr::null(), |o| opt_ptr(&o.customer_identifier)))
}

/// The product code (NULL when absent or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_product_code(
    out: *const mm_resolve_customer_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => resolve(out).map_or(std::ptr::null(), |o| opt_ptr(&o.product_code)))
}

/// The customer's AWS account id (NULL when absent or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_customer_aws_account_id(
    out: *const mm_resolve_customer_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => resolve(out).map_or(std::ptr::null(), |o| opt_ptr(&o.customer_aws_account_id)))
}

/// The customer's license ARN (NULL when absent or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_license_arn(
    out: *const mm_resolve_customer_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => resolve(out).map_or(std::ptr::null(), |o| opt_ptr(&o.license_arn)))
}

/// The request id, or NULL when none (or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_request_id(
    out: *const mm_resolve_customer_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => resolve(out).map_or(std::ptr::null(), |o| opt_ptr(&o.meta.request_id)))
}

/// The HTTP status of the response (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_http_status(
    out: *const mm_resolve_customer_output,
) -> u16 {
    ffi_boundary!(0 => resolve(out).map_or(0, |o| o.meta.http_status))
}

/// Attempts made, the first included (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_output_attempts(
    out: *const mm_resolve_customer_output,
) -> u32 {
    ffi_boundary!(0 => resolve(out).map_or(0, |o| o.meta.attempts))
}

// ---------------------------------------------------------------------------------------------
// RegisterUsage

/// The output of `RegisterUsage`. Free with `mm_register_usage_output_free`. Immutable;
/// thread-safe to read.
pub struct mm_register_usage_output {
    _private: [u8; 0],
}

/// What an `mm_register_usage_output` holds.
#[derive(Debug)]
pub struct RegisterOutput {
    signature: Option<CString>,
    rotation: Option<i64>,
    meta: Meta,
}

impl RegisterOutput {
    /// From the core's output.
    pub fn new(o: &RegisterUsageOutput) -> RegisterOutput {
        RegisterOutput {
            signature: o.signature().map(cstring),
            rotation: o.public_key_rotation_timestamp().map(|t| t.secs()),
            meta: Meta::of(o.metadata()),
        }
    }
}

impl Castable for mm_register_usage_output {
    type Rust = RegisterOutput;
}

fn register<'a>(out: *const mm_register_usage_output) -> Option<&'a RegisterOutput> {
    // SAFETY: NULL or a live output made by this library.
    unsafe { ffi::opt_ref(out) }
}

/// Frees the output and every string read from it. NULL does nothing. No other thread may use
/// it during or after.
#[no_mangle]
pub extern "C" fn mm_register_usage_output_free(out: *mut mm_register_usage_output) {
    // SAFETY: NULL or an output made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(out) })
}

/// The JWT signed by AWS Marketplace (NULL when absent or `out` NULL). Owned by `out`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_register_usage_output_signature(
    out: *const mm_register_usage_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => register(out).map_or(std::ptr::null(), |o| opt_ptr(&o.signature)))
}

/// When the public key rotates: returns `true` and stores seconds since the Unix epoch in
/// `*epoch_seconds_out` when the service sent it; returns `false` (and writes nothing) when it
/// did not, or when `out` or `epoch_seconds_out` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_register_usage_output_public_key_rotation_timestamp(
    out: *const mm_register_usage_output,
    epoch_seconds_out: *mut i64,
) -> bool {
    ffi_boundary!(false => match (register(out).and_then(|o| o.rotation), epoch_seconds_out.is_null()) {
        (Some(t), false) => {
            // SAFETY: checked non-NULL; the caller passes a writable int64_t.
            unsafe { *epoch_seconds_out = t };
            true
        }
        _ => false,
    })
}

/// The request id, or NULL when none (or `out` NULL). Owned by `out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_register_usage_output_request_id(
    out: *const mm_register_usage_output,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => register(out).map_or(std::ptr::null(), |o| opt_ptr(&o.meta.request_id)))
}

/// The HTTP status of the response (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_register_usage_output_http_status(
    out: *const mm_register_usage_output,
) -> u16 {
    ffi_boundary!(0 => register(out).map_or(0, |o| o.meta.http_status))
}

/// Attempts made, the first included (0 if `out` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_register_usage_output_attempts(out: *const mm_register_usage_output) -> u32 {
    ffi_boundary!(0 => register(out).map_or(0, |o| o.meta.attempts))
}

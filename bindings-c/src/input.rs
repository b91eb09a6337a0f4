// SPDX-License-Identifier: Apache-2.0
// Opaque input builders of the four operations, converted to the core's inputs at call time.
// Over 600 lines: one exported setter per member of each input shape, each with the doc
// comment cbindgen copies into the header; the file follows the model's shapes in order.

//! Inputs: `mm_usage_record`, `mm_batch_meter_usage_input`, `mm_meter_usage_input`,
//! `mm_resolve_customer_input`, `mm_register_usage_input`.
//!
//! Setters only copy: they fail for NULL (`MM_STATUS_NULL_PARAMETER`) and invalid UTF-8
//! (`MM_STATUS_INVALID_INPUT`). Everything else (ranges, patterns, required fields) is checked
//! by the core when the call is made, and reported through its `mm_error` with the field path
//! (`UsageRecords[3].Quantity`). An input is not consumed by a call: it can be sent again.

use std::ffi::c_char;

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::operation::meter_usage::MeterUsageInput;
use marketplace_metering::operation::register_usage::RegisterUsageInput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{Tag, UsageAllocation, UsageRecord};
use marketplace_metering::{validate, Error};

use crate::error::{mm_status, ErrorData};
use crate::ffi::{self, Castable};

/// A tag of a usage allocation: two NUL-terminated UTF-8 strings, borrowed for the duration
/// of the call that receives the array (they are copied).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mm_tag {
    /// The tag key (1–100 characters).
    pub key: *const c_char,
    /// The tag value (1–256 characters).
    pub value: *const c_char,
}

/// One usage allocation as the C face holds it.
#[derive(Clone, Debug, Default)]
pub struct Allocation {
    pub(crate) quantity: i64,
    pub(crate) tags: Vec<(String, String)>,
}

/// One usage record as the C face holds it.
#[derive(Clone, Debug, Default)]
pub struct Record {
    timestamp: Option<DateTime>,
    customer_identifier: Option<String>,
    customer_aws_account_id: Option<String>,
    license_arn: Option<String>,
    dimension: Option<String>,
    quantity: Option<i64>,
    allocations: Vec<Allocation>,
}

pub(crate) fn allocations(
    path: &str,
    list: &[Allocation],
) -> Result<Option<Vec<UsageAllocation>>, Error> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(list.len());
    for (j, a) in list.iter().enumerate() {
        let q =
            validate::quantity_with(a.quantity, || format!("{path}[{j}].AllocatedUsageQuantity"))?;
        let mut tags = Vec::with_capacity(a.tags.len());
        for (k, v) in &a.tags {
            tags.push(Tag::builder().key(k.as_str()).value(v.as_str()).build()?);
        }
        out.push(
            UsageAllocation::builder()
                .allocated_usage_quantity(q)
                .set_tags((!tags.is_empty()).then_some(tags))
                .build()?,
        );
    }
    Ok(Some(out))
}

impl Record {
    /// The core record, validating the numbers with the field path `UsageRecords[i]`.
    pub fn to_core(&self, i: usize) -> Result<UsageRecord, Error> {
        // The field path is only rendered when something is wrong (this runs per record per call).
        let path = || format!("UsageRecords[{i}]");
        let quantity = match self.quantity {
            Some(q) => Some(validate::quantity_with(q, || {
                format!("{}.Quantity", path())
            })?),
            None => None,
        };
        let usage_allocations = if self.allocations.is_empty() {
            None
        } else {
            allocations(&format!("{}.UsageAllocations", path()), &self.allocations)?
        };
        let required =
            |field: &str| Error::invalid_input(format!("{}.{field}", path()), "is required");
        Ok(UsageRecord::from_members(
            self.timestamp.ok_or_else(|| required("Timestamp"))?,
            self.customer_identifier.as_deref(),
            self.dimension
                .as_deref()
                .ok_or_else(|| required("Dimension"))?,
            quantity,
            usage_allocations,
            self.customer_aws_account_id.as_deref(),
            self.license_arn.as_deref(),
        ))
    }

    /// The C face's record of a core record (for re-sending unprocessed records).
    pub fn from_core(r: &UsageRecord) -> Record {
        Record {
            timestamp: Some(*r.timestamp()),
            customer_identifier: r.customer_identifier().map(str::to_owned),
            customer_aws_account_id: r.customer_aws_account_id().map(str::to_owned),
            license_arn: r.license_arn().map(str::to_owned),
            dimension: Some(r.dimension().to_owned()),
            quantity: r.quantity().map(i64::from),
            allocations: r
                .usage_allocations()
                .iter()
                .map(|a| Allocation {
                    quantity: i64::from(a.allocated_usage_quantity()),
                    tags: a
                        .tags()
                        .iter()
                        .map(|t| (t.key().to_owned(), t.value().to_owned()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Refuses a caller's count above `max` before any memory is read or reserved for it: a
/// huge count would otherwise make a slice no allocation can hold (an abort, not an error).
pub(crate) fn count_arg(n: usize, max: usize, field: &str) -> Result<(), ErrorData> {
    if n > max {
        return Err(ErrorData::invalid(
            field,
            &format!("is {n}; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Copies a `(tags, n)` array; `tags` may be NULL when `n` is 0.
///
/// # Safety
/// `tags` is NULL or points to `n` readable `mm_tag`s with NUL-terminated strings.
pub(crate) unsafe fn tag_args(
    tags: *const mm_tag,
    n: usize,
) -> Result<Vec<(String, String)>, ErrorData> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if tags.is_null() {
        return Err(ErrorData::null("tags"));
    }
    count_arg(n, marketplace_metering::validate::MAX_TAGS, "n_tags")?;
    // SAFETY: per the contract above.
    let tags = unsafe { std::slice::from_raw_parts(tags, n) };
    let mut out = Vec::with_capacity(n);
    for (i, t) in tags.iter().enumerate() {
        // SAFETY: per the contract above.
        let (k, v) = unsafe {
            (
                ffi::str_arg(t.key, &format!("tags[{i}].key"))?,
                ffi::str_arg(t.value, &format!("tags[{i}].value"))?,
            )
        };
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Runs a setter on a mutable handle.
fn set<T: Castable>(h: *mut T, f: impl FnOnce(&mut T::Rust) -> Result<(), ErrorData>) -> mm_status {
    ffi::set(h, "input", f)
}

/// Runs a string setter on a mutable handle.
fn set_str<T: Castable>(
    h: *mut T,
    s: *const c_char,
    what: &str,
    f: impl FnOnce(&mut T::Rust, String),
) -> mm_status {
    set(h, |v| {
        // SAFETY: NULL or a NUL-terminated string.
        let s = unsafe { ffi::str_arg(s, what) }?.to_owned();
        f(v, s);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// mm_usage_record

/// One usage record for `BatchMeterUsage`, built field by field and added to an input with
/// `mm_batch_meter_usage_input_add_record` (which copies it).
///
/// Required: a timestamp and a dimension, and either a customer identifier or a customer AWS
/// account id with a license ARN. Not thread-safe to modify; free with `mm_usage_record_free`.
pub struct mm_usage_record {
    _private: [u8; 0],
}

impl Castable for mm_usage_record {
    type Rust = Record;
}

/// A new, empty usage record. Free it with `mm_usage_record_free`. NULL only if allocation
/// fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_usage_record_new() -> *mut mm_usage_record {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_usage_record>(Record::default()))
}

/// Frees a usage record. NULL does nothing. No other thread may use it during or after.
#[no_mangle]
pub extern "C" fn mm_usage_record_free(record: *mut mm_usage_record) {
    // SAFETY: NULL or a record made by mm_usage_record_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(record) })
}

/// Sets the customer identifier (from `ResolveCustomer`). Copied. NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_customer_identifier(
    record: *mut mm_usage_record,
    customer_identifier: *const c_char,
) -> mm_status {
    set_str(
        record,
        customer_identifier,
        "customer_identifier",
        |r, s| r.customer_identifier = Some(s),
    )
}

/// Sets the customer's AWS account id (use with a license ARN instead of a customer
/// identifier). Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_customer_aws_account_id(
    record: *mut mm_usage_record,
    customer_aws_account_id: *const c_char,
) -> mm_status {
    set_str(
        record,
        customer_aws_account_id,
        "customer_aws_account_id",
        |r, s| r.customer_aws_account_id = Some(s),
    )
}

/// Sets the customer's license ARN. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_license_arn(
    record: *mut mm_usage_record,
    license_arn: *const c_char,
) -> mm_status {
    set_str(record, license_arn, "license_arn", |r, s| {
        r.license_arn = Some(s)
    })
}

/// Sets the dimension (as defined in the product listing). Copied. NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_dimension(
    record: *mut mm_usage_record,
    dimension: *const c_char,
) -> mm_status {
    set_str(record, dimension, "dimension", |r, s| r.dimension = Some(s))
}

/// Sets the quantity; the call fails with `MM_STATUS_INVALID_INPUT` (field
/// `UsageRecords[i].Quantity`) unless it is within 0..=2147483647. `record` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_quantity(
    record: *mut mm_usage_record,
    quantity: i64,
) -> mm_status {
    set(record, |r| {
        r.quantity = Some(quantity);
        Ok(())
    })
}

/// Sets when the usage happened, in seconds since the Unix epoch (UTC; the service accepts
/// the past 6 hours). `record` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_timestamp(
    record: *mut mm_usage_record,
    epoch_seconds: i64,
) -> mm_status {
    set(record, |r| {
        r.timestamp = Some(DateTime::from_secs(epoch_seconds));
        Ok(())
    })
}

/// Sets when the usage happened, in milliseconds since the Unix epoch. `record` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_set_timestamp_ms(
    record: *mut mm_usage_record,
    epoch_millis: i64,
) -> mm_status {
    set(record, |r| {
        r.timestamp = Some(DateTime::from_millis(epoch_millis));
        Ok(())
    })
}

/// Appends a usage allocation: `quantity` of the record's usage tagged with `n_tags` tags
/// (`tags` may be NULL when `n_tags` is 0). The tags are copied.
///
/// `record` NULL, `tags` NULL with `n_tags > 0`, or a NULL key/value →
/// `MM_STATUS_NULL_PARAMETER`; a string not UTF-8 → `MM_STATUS_INVALID_INPUT`. Nothing is
/// appended on failure. Not thread-safe on one record.
#[no_mangle]
pub extern "C" fn mm_usage_record_add_allocation(
    record: *mut mm_usage_record,
    quantity: i64,
    tags: *const mm_tag,
    n_tags: usize,
) -> mm_status {
    set(record, |r| {
        // SAFETY: NULL or `n_tags` readable tags.
        let tags = unsafe { tag_args(tags, n_tags) }?;
        r.allocations.push(Allocation { quantity, tags });
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// mm_batch_meter_usage_input

/// The input of `BatchMeterUsage`: an optional product code and 0 to 25 usage records.
/// Not thread-safe to modify; sending it from several threads at once is safe.
/// Free with `mm_batch_meter_usage_input_free`.
pub struct mm_batch_meter_usage_input {
    _private: [u8; 0],
}

/// What an `mm_batch_meter_usage_input` holds.
#[derive(Clone, Debug, Default)]
pub struct BatchInput {
    /// The product code.
    pub product_code: Option<String>,
    /// The records.
    pub records: Vec<Record>,
}

impl BatchInput {
    /// The core input.
    pub fn to_core(&self) -> Result<BatchMeterUsageInput, Error> {
        let records = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_core(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BatchMeterUsageInput::builder()
            .set_product_code(self.product_code.clone())
            .set_usage_records(Some(records))
            .build()?)
    }
}

impl Castable for mm_batch_meter_usage_input {
    type Rust = BatchInput;
}

/// A new, empty `BatchMeterUsage` input. Free it with `mm_batch_meter_usage_input_free`.
/// NULL only if allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_input_new() -> *mut mm_batch_meter_usage_input {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_batch_meter_usage_input>(BatchInput::default()))
}

/// Frees the input. NULL does nothing. No other thread may use it during or after.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_input_free(input: *mut mm_batch_meter_usage_input) {
    // SAFETY: NULL or an input made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(input) })
}

/// Sets the product code (optional when every record carries a license ARN). Copied. NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_input_set_product_code(
    input: *mut mm_batch_meter_usage_input,
    product_code: *const c_char,
) -> mm_status {
    set_str(input, product_code, "product_code", |i, s| {
        i.product_code = Some(s)
    })
}

/// Appends a copy of `record` (the caller keeps and frees `record`). More than 25 records
/// fail when the call is made. NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_input_add_record(
    input: *mut mm_batch_meter_usage_input,
    record: *const mm_usage_record,
) -> mm_status {
    set(input, |i| {
        // SAFETY: NULL or a live record.
        let r = unsafe { ffi::req_ref(record, "record") }?;
        i.records.push(r.clone());
        Ok(())
    })
}

/// Appends the common SaaS record in one call: `customer_identifier` used `quantity` of
/// `dimension` at `epoch_seconds`. The strings are copied.
///
/// NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT` (nothing is
/// appended on failure). Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_input_add_usage(
    input: *mut mm_batch_meter_usage_input,
    epoch_seconds: i64,
    customer_identifier: *const c_char,
    dimension: *const c_char,
    quantity: i64,
) -> mm_status {
    set(input, |i| {
        // SAFETY: NULL or NUL-terminated strings.
        let (c, d) = unsafe {
            (
                ffi::str_arg(customer_identifier, "customer_identifier")?,
                ffi::str_arg(dimension, "dimension")?,
            )
        };
        i.records.push(Record {
            timestamp: Some(DateTime::from_secs(epoch_seconds)),
            customer_identifier: Some(c.to_owned()),
            dimension: Some(d.to_owned()),
            quantity: Some(quantity),
            ..Record::default()
        });
        Ok(())
    })
}

/// The number of records in the input (0 if `input` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_batch_meter_usage_input_record_count(
    input: *const mm_batch_meter_usage_input,
) -> usize {
    // SAFETY: NULL or a live input.
    ffi_boundary!(0 => unsafe { ffi::opt_ref(input) }.map_or(0, |i| i.records.len()))
}

// ---------------------------------------------------------------------------------------------
// mm_meter_usage_input

/// The input of `MeterUsage`. Required: product code, timestamp, usage dimension.
/// Not thread-safe to modify; sending it from several threads at once is safe.
/// Free with `mm_meter_usage_input_free`.
pub struct mm_meter_usage_input {
    _private: [u8; 0],
}

/// What an `mm_meter_usage_input` holds.
#[derive(Clone, Debug, Default)]
pub struct MeterInput {
    product_code: Option<String>,
    timestamp: Option<DateTime>,
    usage_dimension: Option<String>,
    usage_quantity: Option<i64>,
    dry_run: Option<bool>,
    allocations: Vec<Allocation>,
    client_token: Option<String>,
}

impl MeterInput {
    /// The core input.
    pub fn to_core(&self) -> Result<MeterUsageInput, Error> {
        let q = match self.usage_quantity {
            Some(q) => Some(validate::quantity("UsageQuantity", q)?),
            None => None,
        };
        Ok(MeterUsageInput::builder()
            .set_product_code(self.product_code.clone())
            .set_timestamp(self.timestamp)
            .set_usage_dimension(self.usage_dimension.clone())
            .set_usage_quantity(q)
            .set_dry_run(self.dry_run)
            .set_usage_allocations(allocations("UsageAllocations", &self.allocations)?)
            .set_client_token(self.client_token.clone())
            .build()?)
    }
}

impl Castable for mm_meter_usage_input {
    type Rust = MeterInput;
}

/// A new, empty `MeterUsage` input. Free it with `mm_meter_usage_input_free`. NULL only if
/// allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_new() -> *mut mm_meter_usage_input {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_meter_usage_input>(MeterInput::default()))
}

/// Frees the input. NULL does nothing. No other thread may use it during or after.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_free(input: *mut mm_meter_usage_input) {
    // SAFETY: NULL or an input made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(input) })
}

/// Sets the product code. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_product_code(
    input: *mut mm_meter_usage_input,
    product_code: *const c_char,
) -> mm_status {
    set_str(input, product_code, "product_code", |i, s| {
        i.product_code = Some(s)
    })
}

/// Sets when the usage happened, in seconds since the Unix epoch. `input` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_timestamp(
    input: *mut mm_meter_usage_input,
    epoch_seconds: i64,
) -> mm_status {
    set(input, |i| {
        i.timestamp = Some(DateTime::from_secs(epoch_seconds));
        Ok(())
    })
}

/// Sets when the usage happened, in milliseconds since the Unix epoch. `input` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_timestamp_ms(
    input: *mut mm_meter_usage_input,
    epoch_millis: i64,
) -> mm_status {
    set(input, |i| {
        i.timestamp = Some(DateTime::from_millis(epoch_millis));
        Ok(())
    })
}

/// Sets the usage dimension. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_usage_dimension(
    input: *mut mm_meter_usage_input,
    usage_dimension: *const c_char,
) -> mm_status {
    set_str(input, usage_dimension, "usage_dimension", |i, s| {
        i.usage_dimension = Some(s)
    })
}

/// Sets the quantity (checked when the call is made: 0..=2147483647, field `UsageQuantity`).
/// `input` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_usage_quantity(
    input: *mut mm_meter_usage_input,
    quantity: i64,
) -> mm_status {
    set(input, |i| {
        i.usage_quantity = Some(quantity);
        Ok(())
    })
}

/// Asks for a permission check only: nothing is metered and the call fails with
/// `MM_STATUS_DRY_RUN_OPERATION` when it would have succeeded. `input` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_dry_run(
    input: *mut mm_meter_usage_input,
    dry_run: bool,
) -> mm_status {
    set(input, |i| {
        i.dry_run = Some(dry_run);
        Ok(())
    })
}

/// Appends a usage allocation (see `mm_usage_record_add_allocation`). The tags are copied.
/// NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`.
/// Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_add_allocation(
    input: *mut mm_meter_usage_input,
    quantity: i64,
    tags: *const mm_tag,
    n_tags: usize,
) -> mm_status {
    set(input, |i| {
        // SAFETY: NULL or `n_tags` readable tags.
        let tags = unsafe { tag_args(tags, n_tags) }?;
        i.allocations.push(Allocation { quantity, tags });
        Ok(())
    })
}

/// Sets the idempotency token (without one, each call generates a UUID that its retries
/// reuse). Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`.
/// Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_meter_usage_input_set_client_token(
    input: *mut mm_meter_usage_input,
    client_token: *const c_char,
) -> mm_status {
    set_str(input, client_token, "client_token", |i, s| {
        i.client_token = Some(s)
    })
}

// ---------------------------------------------------------------------------------------------
// mm_resolve_customer_input

/// The input of `ResolveCustomer`: the registration token. Not thread-safe to modify;
/// sending it from several threads at once is safe. Free with `mm_resolve_customer_input_free`.
pub struct mm_resolve_customer_input {
    _private: [u8; 0],
}

/// What an `mm_resolve_customer_input` holds.
#[derive(Clone, Debug, Default)]
pub struct ResolveInput {
    registration_token: Option<String>,
}

impl ResolveInput {
    /// The core input.
    pub fn to_core(&self) -> Result<ResolveCustomerInput, Error> {
        Ok(ResolveCustomerInput::builder()
            .set_registration_token(self.registration_token.clone())
            .build()?)
    }
}

impl Castable for mm_resolve_customer_input {
    type Rust = ResolveInput;
}

/// A new, empty `ResolveCustomer` input. Free it with `mm_resolve_customer_input_free`.
/// NULL only if allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_input_new() -> *mut mm_resolve_customer_input {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_resolve_customer_input>(ResolveInput::default()))
}

/// Frees the input. NULL does nothing. No other thread may use it during or after.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_input_free(input: *mut mm_resolve_customer_input) {
    // SAFETY: NULL or an input made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(input) })
}

/// Sets the registration token (the `x-amzn-marketplace-token` form field). Copied. NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_resolve_customer_input_set_registration_token(
    input: *mut mm_resolve_customer_input,
    registration_token: *const c_char,
) -> mm_status {
    set_str(input, registration_token, "registration_token", |i, s| {
        i.registration_token = Some(s)
    })
}

// ---------------------------------------------------------------------------------------------
// mm_register_usage_input

/// The input of `RegisterUsage`. Required: product code and public key version.
/// Not thread-safe to modify; sending it from several threads at once is safe.
/// Free with `mm_register_usage_input_free`.
pub struct mm_register_usage_input {
    _private: [u8; 0],
}

/// What an `mm_register_usage_input` holds.
#[derive(Clone, Debug, Default)]
pub struct RegisterInput {
    product_code: Option<String>,
    public_key_version: Option<i64>,
    nonce: Option<String>,
}

impl RegisterInput {
    /// The core input.
    pub fn to_core(&self) -> Result<RegisterUsageInput, Error> {
        let v = match self.public_key_version {
            Some(v) => Some(validate::public_key_version("PublicKeyVersion", v)?),
            None => None,
        };
        Ok(RegisterUsageInput::builder()
            .set_product_code(self.product_code.clone())
            .set_public_key_version(v)
            .set_nonce(self.nonce.clone())
            .build()?)
    }
}

impl Castable for mm_register_usage_input {
    type Rust = RegisterInput;
}

/// A new, empty `RegisterUsage` input. Free it with `mm_register_usage_input_free`. NULL only
/// if allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_register_usage_input_new() -> *mut mm_register_usage_input {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_register_usage_input>(RegisterInput::default()))
}

/// Frees the input. NULL does nothing. No other thread may use it during or after.
#[no_mangle]
pub extern "C" fn mm_register_usage_input_free(input: *mut mm_register_usage_input) {
    // SAFETY: NULL or an input made by this library, freed once.
    ffi_boundary!(() => unsafe { ffi::free(input) })
}

/// Sets the product code. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_register_usage_input_set_product_code(
    input: *mut mm_register_usage_input,
    product_code: *const c_char,
) -> mm_status {
    set_str(input, product_code, "product_code", |i, s| {
        i.product_code = Some(s)
    })
}

/// Sets the public key version (checked when the call is made: 1..=2147483647, field
/// `PublicKeyVersion`). `input` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_register_usage_input_set_public_key_version(
    input: *mut mm_register_usage_input,
    public_key_version: i64,
) -> mm_status {
    set(input, |i| {
        i.public_key_version = Some(public_key_version);
        Ok(())
    })
}

/// Sets the nonce echoed in the signed token. Copied. NULL → `MM_STATUS_NULL_PARAMETER`;
/// not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
#[no_mangle]
pub extern "C" fn mm_register_usage_input_set_nonce(
    input: *mut mm_register_usage_input,
    nonce: *const c_char,
) -> mm_status {
    set_str(input, nonce, "nonce", |i, s| i.nonce = Some(s))
}

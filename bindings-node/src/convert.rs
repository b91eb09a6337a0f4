// SPDX-License-Identifier: Apache-2.0
// JS values → core inputs (type and shape checks only), core outputs → JSON for the JS layer.

//! Conversions.
//!
//! Inputs are read straight from the JS objects so that the binding can tell a `Date` from a
//! string and name the exact path of a value of the wrong type, a missing member or an unknown
//! key. Every *constraint* (lengths, patterns, counts, sums, ranges) is the core's: it runs when
//! the call is made, before anything is sent. Integers go through the core's
//! [`validate::quantity`] / [`validate::public_key_version`] so the range rule lives once.
//!
//! Outputs cross as one JSON string (one `JSON.parse` in JS is much cheaper than hundreds of
//! napi property sets); timestamps are epoch seconds there and the JS layer makes `Date`s.

use std::fmt;
use std::time::Duration;

use aws_smithy_types::date_time::Format;
use marketplace_metering::meter::{Customer, RequeueFilter};
use marketplace_metering::operation::batch_meter_usage::{
    BatchMeterUsageInput, BatchMeterUsageOutput,
};
use marketplace_metering::operation::meter_usage::{MeterUsageInput, MeterUsageOutput};
use marketplace_metering::operation::register_usage::{RegisterUsageInput, RegisterUsageOutput};
use marketplace_metering::operation::resolve_customer::{
    ResolveCustomerInput, ResolveCustomerOutput,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{Tag, UsageAllocation, UsageRecord, UsageRecordResult};
use marketplace_metering::Error;
use marketplace_metering::{validate, BuildError, ResponseMetadata};
use napi::bindgen_prelude::*;
use napi::{JsDate, JsValue, ValueType};
use serde_json::{json, Map, Value};

use crate::meter::{MeterOptions, MeterRecord};

/// A conversion failure: the input's fault (a core `InvalidInput`) or napi's.
pub enum ConvError {
    Input(marketplace_metering::Error),
    Napi(napi::Error),
}

impl From<napi::Error> for ConvError {
    fn from(e: napi::Error) -> Self {
        ConvError::Napi(e)
    }
}

impl ConvError {
    /// The error to throw into JS.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        match self {
            ConvError::Input(e) => crate::errors::to_js(env, &e),
            ConvError::Napi(e) => e,
        }
    }
}

type R<T> = std::result::Result<T, ConvError>;

/// A member path (`UsageRecords[3].Quantity`), rendered only when an error names it.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, u32),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("<input>"),
            Path::Field(Path::Root, s) => f.write_str(s),
            Path::Field(p, s) => write!(f, "{p}.{s}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

impl<'a> Path<'a> {
    fn field(&'a self, name: &'static str) -> Path<'a> {
        Path::Field(self, name)
    }
    fn index(&'a self, i: u32) -> Path<'a> {
        Path::Index(self, i)
    }
    fn err(&self, problem: impl fmt::Display) -> ConvError {
        ConvError::Input(marketplace_metering::Error::invalid_input(
            self.to_string(),
            problem,
        ))
    }
    /// A required member the builder found missing.
    fn missing(&self, e: BuildError) -> ConvError {
        let path = self.field_dyn(e.field());
        ConvError::Input(marketplace_metering::Error::invalid_input(
            path,
            "is required",
        ))
    }
    fn field_dyn(&self, name: &str) -> String {
        match self {
            Path::Root => name.to_owned(),
            p => format!("{p}.{name}"),
        }
    }
}

fn describe(v: &Unknown<'_>) -> Result<&'static str> {
    Ok(match v.get_type()? {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Function => "a function",
        ValueType::BigInt => "a bigint",
        ValueType::Object if v.is_array()? => "an array",
        ValueType::Object if v.is_date()? => "a Date",
        _ => "an object",
    })
}

/// A member's value, `None` when absent, `undefined` or `null` (SDK v3 omits those).
fn member<'e>(obj: &Object<'e>, name: &str) -> R<Option<Unknown<'e>>> {
    present(obj.get_named_property(name)?)
}

/// `v`, or `None` when it is `undefined` or `null` (SDK v3 omits those).
fn present(v: Unknown<'_>) -> R<Option<Unknown<'_>>> {
    Ok(match v.get_type()? {
        ValueType::Undefined | ValueType::Null => None,
        _ => Some(v),
    })
}

/// An object's enumerable string keys as napi lists them (`napi_get_property_names`, the
/// same list `Object::keys` gave before), each with its value. A key is read into a buffer reused for every key and its value is fetched
/// by the key's own JS string: no allocation and no second name lookup per member (converting
/// 25 usage records took 52-56 µs instead of 64).
struct Members<'e> {
    obj: Object<'e>,
    names: Object<'e>,
    len: u32,
    next: u32,
    buf: [u8; 64],
    long: String,
}

impl<'e> Members<'e> {
    fn new(obj: &Object<'e>) -> R<Self> {
        let names = obj.get_property_names()?;
        let len = names.get_array_length()?;
        Ok(Members {
            obj: *obj,
            names,
            len,
            next: 0,
            buf: [0; 64],
            long: String::new(),
        })
    }

    /// The next key and its value (`undefined` and `null` included).
    fn next(&mut self) -> R<Option<(&str, Unknown<'e>)>> {
        let obj = self.obj;
        match self.next_key()? {
            Some((name, key)) => Ok(Some((name, obj.get_property(key)?))),
            None => Ok(None),
        }
    }

    /// The next key, as text and as its JS string; the value is not read.
    fn next_key(&mut self) -> R<Option<(&str, Unknown<'e>)>> {
        if self.next >= self.len {
            return Ok(None);
        }
        let key: Unknown<'e> = self.names.get_element(self.next)?;
        self.next += 1;
        let mut written = 0usize;
        // SAFETY: `key` is a live value of this env (property names are strings) and `buf` is
        // writable for its whole length; napi writes at most `len - 1` bytes and a NUL.
        napi::check_status!(unsafe {
            napi::sys::napi_get_value_string_utf8(
                self.obj.value().env,
                key.raw(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                &mut written,
            )
        })?;
        // A key that fills the buffer may be cut short: read it whole (it is no member name).
        if written + 1 < self.buf.len() {
            if let Ok(k) = std::str::from_utf8(&self.buf[..written]) {
                return Ok(Some((k, key)));
            }
        }
        // SAFETY: property names are strings.
        self.long = unsafe { key.cast::<String>() }?;
        Ok(Some((&self.long, key)))
    }
}

fn string(v: Unknown<'_>, path: Path<'_>) -> R<String> {
    if v.get_type()? == ValueType::String {
        Ok(unsafe { v.cast::<String>() }?)
    } else {
        Err(path.err(format_args!("must be a string, got {}", describe(&v)?)))
    }
}

fn boolean(v: Unknown<'_>, path: Path<'_>) -> R<bool> {
    if v.get_type()? == ValueType::Boolean {
        Ok(unsafe { v.cast::<bool>() }?)
    } else {
        Err(path.err(format_args!("must be a boolean, got {}", describe(&v)?)))
    }
}

/// A JS number that is an integer; the range is the core's rule (via `validate`).
fn integer(v: Unknown<'_>, path: Path<'_>) -> R<i64> {
    if v.get_type()? != ValueType::Number {
        return Err(path.err(format_args!("must be an integer, got {}", describe(&v)?)));
    }
    let n = unsafe { v.cast::<f64>() }?;
    // 2^53: beyond it a JS number is not an exact integer.
    if !n.is_finite() || n.fract() != 0.0 || n.abs() > 9_007_199_254_740_992.0 {
        return Err(path.err(format_args!("must be an integer, got {n}")));
    }
    Ok(n as i64)
}

fn quantity(v: Unknown<'_>, path: Path<'_>) -> R<i32> {
    let n = integer(v, path)?;
    validate::quantity_with(n, || path.to_string()).map_err(ConvError::Input)
}

/// A `Date`, epoch seconds (a number) or an ISO-8601 string.
fn timestamp(v: Unknown<'_>, path: Path<'_>) -> R<DateTime> {
    match v.get_type()? {
        ValueType::Object if v.is_date()? => {
            let ms = unsafe { v.cast::<JsDate>() }?.value_of()?;
            if ms.is_finite() {
                Ok(DateTime::from_millis(ms as i64))
            } else {
                Err(path.err("is an invalid Date"))
            }
        }
        ValueType::Number => {
            let s = unsafe { v.cast::<f64>() }?;
            if s.is_finite() {
                Ok(DateTime::from_secs_f64(s))
            } else {
                Err(path.err(format_args!(
                    "must be a finite number of epoch seconds, got {s}"
                )))
            }
        }
        ValueType::String => {
            let s = unsafe { v.cast::<String>() }?;
            DateTime::from_str(&s, Format::DateTime)
                .map_err(|_| path.err(format_args!("{s:?} is not an ISO-8601 date-time")))
        }
        _ => Err(path.err(format_args!(
            "must be a Date, epoch seconds or an ISO-8601 string, got {}",
            describe(&v)?
        ))),
    }
}

/// A plain object (not an array or a `Date`).
fn plain_object<'e>(v: Unknown<'e>, path: Path<'_>) -> R<Object<'e>> {
    if v.get_type()? != ValueType::Object || v.is_array()? || v.is_date()? {
        return Err(path.err(format_args!("must be an object, got {}", describe(&v)?)));
    }
    Ok(unsafe { v.cast::<Object<'e>>() }?)
}

/// The error for a key of an object at `path` that is not one of `allowed`.
fn not_a_member(path: Path<'_>, key: &str, allowed: &[&str]) -> ConvError {
    let what = if matches!(path, Path::Root) {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    };
    ConvError::Input(marketplace_metering::Error::invalid_input(
        what,
        format!("is not a member; expected one of {}", allowed.join(", ")),
    ))
}

/// An error naming the first key of `obj` that is not in `allowed`; values are not read.
fn check_keys(obj: &Object<'_>, path: Path<'_>, allowed: &[&str]) -> R<()> {
    let mut members = Members::new(obj)?;
    while let Some((key, _)) = members.next_key()? {
        if !allowed.contains(&key) {
            return Err(not_a_member(path, key, allowed));
        }
    }
    Ok(())
}

/// A plain object whose keys are all in `allowed`.
fn object<'e>(v: Unknown<'e>, path: Path<'_>, allowed: &[&str]) -> R<Object<'e>> {
    let obj = plain_object(v, path)?;
    check_keys(&obj, path, allowed)?;
    Ok(obj)
}

/// The elements of an array of at most `max` (the model's maximum): a longer one, sparse
/// ones included (`a.length = 2**32 - 1`), is refused before anything is reserved for it.
fn array<'e>(v: Unknown<'e>, path: Path<'_>, max: usize) -> R<(Object<'e>, u32)> {
    if !v.is_array()? {
        return Err(path.err(format_args!("must be an array, got {}", describe(&v)?)));
    }
    let arr = unsafe { v.cast::<Object<'e>>() }?;
    let len = arr.get_array_length()?;
    if len as usize > max {
        return Err(path.err(format_args!("must hold at most {max} items, got {len}")));
    }
    Ok((arr, len))
}

/// The top-level input object (`undefined` reads as `{}`).
fn root<'e>(v: Unknown<'e>, allowed: &[&str]) -> R<Option<Object<'e>>> {
    match v.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        _ => object(v, Path::Root, allowed).map(Some),
    }
}

macro_rules! opt {
    ($obj:expr, $name:literal) => {
        match &$obj {
            Some(o) => member(o, $name)?,
            None => None,
        }
    };
}

fn tag(v: Unknown<'_>, path: Path<'_>) -> R<Tag> {
    let o = object(v, path, &["Key", "Value"])?;
    let mut b = Tag::builder();
    if let Some(v) = member(&o, "Key")? {
        b = b.key(string(v, path.field("Key"))?);
    }
    if let Some(v) = member(&o, "Value")? {
        b = b.value(string(v, path.field("Value"))?);
    }
    b.build().map_err(|e| path.missing(e))
}

fn allocations(v: Unknown<'_>, path: Path<'_>) -> R<Vec<UsageAllocation>> {
    let (arr, len) = array(v, path, validate::MAX_USAGE_ALLOCATIONS)?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let p = path.index(i);
        let o = object(arr.get_element(i)?, p, &["AllocatedUsageQuantity", "Tags"])?;
        let mut b = UsageAllocation::builder();
        if let Some(v) = member(&o, "AllocatedUsageQuantity")? {
            b = b.allocated_usage_quantity(quantity(v, p.field("AllocatedUsageQuantity"))?);
        }
        if let Some(v) = member(&o, "Tags")? {
            let tp = p.field("Tags");
            let (tags, n) = array(v, tp, validate::MAX_TAGS)?;
            let mut list = Vec::with_capacity(n as usize);
            for j in 0..n {
                list.push(tag(tags.get_element(j)?, tp.index(j))?);
            }
            b = b.set_tags(Some(list));
        }
        out.push(b.build().map_err(|e| p.missing(e))?);
    }
    Ok(out)
}

const USAGE_RECORD_KEYS: &[&str] = &[
    "Timestamp",
    "CustomerIdentifier",
    "CustomerAWSAccountId",
    "LicenseArn",
    "Dimension",
    "Quantity",
    "UsageAllocations",
];

fn usage_record(v: Unknown<'_>, path: Path<'_>) -> R<UsageRecord> {
    // One pass over the record's own keys: a present member is read once and an absent one
    // costs nothing (25 records a call, most with four of the seven members).
    let o = plain_object(v, path)?;
    let mut b = UsageRecord::builder();
    let mut members = Members::new(&o)?;
    while let Some((key, v)) = members.next()? {
        let Some(v) = present(v)? else {
            if USAGE_RECORD_KEYS.contains(&key) {
                continue;
            }
            return Err(not_a_member(path, key, USAGE_RECORD_KEYS));
        };
        b = match key {
            "Timestamp" => b.timestamp(timestamp(v, path.field("Timestamp"))?),
            "CustomerIdentifier" => {
                b.customer_identifier(string(v, path.field("CustomerIdentifier"))?)
            }
            "CustomerAWSAccountId" => {
                b.customer_aws_account_id(string(v, path.field("CustomerAWSAccountId"))?)
            }
            "LicenseArn" => b.license_arn(string(v, path.field("LicenseArn"))?),
            "Dimension" => b.dimension(string(v, path.field("Dimension"))?),
            "Quantity" => b.quantity(quantity(v, path.field("Quantity"))?),
            "UsageAllocations" => {
                b.set_usage_allocations(Some(allocations(v, path.field("UsageAllocations"))?))
            }
            _ => return Err(not_a_member(path, key, USAGE_RECORD_KEYS)),
        };
    }
    b.build().map_err(|e| path.missing(e))
}

/// `BatchMeterUsage` input.
pub fn batch_meter_usage_input(v: Unknown<'_>) -> R<BatchMeterUsageInput> {
    let o = root(v, &["ProductCode", "UsageRecords"])?;
    let top = Path::Root;
    let mut b = BatchMeterUsageInput::builder();
    if let Some(v) = opt!(o, "ProductCode") {
        b = b.product_code(string(v, top.field("ProductCode"))?);
    }
    if let Some(v) = opt!(o, "UsageRecords") {
        let p = top.field("UsageRecords");
        let (arr, len) = array(v, p, validate::MAX_USAGE_RECORDS)?;
        let mut records = Vec::with_capacity(len as usize);
        for i in 0..len {
            records.push(usage_record(arr.get_element(i)?, p.index(i))?);
        }
        b = b.set_usage_records(Some(records));
    }
    b.build().map_err(|e| top.missing(e))
}

/// `MeterUsage` input.
pub fn meter_usage_input(v: Unknown<'_>) -> R<MeterUsageInput> {
    let o = root(
        v,
        &[
            "ProductCode",
            "Timestamp",
            "UsageDimension",
            "UsageQuantity",
            "DryRun",
            "UsageAllocations",
            "ClientToken",
        ],
    )?;
    let top = Path::Root;
    let mut b = MeterUsageInput::builder();
    if let Some(v) = opt!(o, "ProductCode") {
        b = b.product_code(string(v, top.field("ProductCode"))?);
    }
    if let Some(v) = opt!(o, "Timestamp") {
        b = b.timestamp(timestamp(v, top.field("Timestamp"))?);
    }
    if let Some(v) = opt!(o, "UsageDimension") {
        b = b.usage_dimension(string(v, top.field("UsageDimension"))?);
    }
    if let Some(v) = opt!(o, "UsageQuantity") {
        b = b.usage_quantity(quantity(v, top.field("UsageQuantity"))?);
    }
    if let Some(v) = opt!(o, "DryRun") {
        b = b.dry_run(boolean(v, top.field("DryRun"))?);
    }
    if let Some(v) = opt!(o, "UsageAllocations") {
        b = b.set_usage_allocations(Some(allocations(v, top.field("UsageAllocations"))?));
    }
    if let Some(v) = opt!(o, "ClientToken") {
        b = b.client_token(string(v, top.field("ClientToken"))?);
    }
    b.build().map_err(|e| top.missing(e))
}

/// `ResolveCustomer` input.
pub fn resolve_customer_input(v: Unknown<'_>) -> R<ResolveCustomerInput> {
    let o = root(v, &["RegistrationToken"])?;
    let top = Path::Root;
    let mut b = ResolveCustomerInput::builder();
    if let Some(v) = opt!(o, "RegistrationToken") {
        b = b.registration_token(string(v, top.field("RegistrationToken"))?);
    }
    b.build().map_err(|e| top.missing(e))
}

/// `RegisterUsage` input.
pub fn register_usage_input(v: Unknown<'_>) -> R<RegisterUsageInput> {
    let o = root(v, &["ProductCode", "PublicKeyVersion", "Nonce"])?;
    let top = Path::Root;
    let mut b = RegisterUsageInput::builder();
    if let Some(v) = opt!(o, "ProductCode") {
        b = b.product_code(string(v, top.field("ProductCode"))?);
    }
    if let Some(v) = opt!(o, "PublicKeyVersion") {
        let p = top.field("PublicKeyVersion");
        let n = integer(v, p)?;
        b = b.public_key_version(
            validate::public_key_version(&p.to_string(), n).map_err(ConvError::Input)?,
        );
    }
    if let Some(v) = opt!(o, "Nonce") {
        b = b.nonce(string(v, top.field("Nonce"))?);
    }
    b.build().map_err(|e| top.missing(e))
}

// ---- usage meter -------------------------------------------------------------------------

/// A meter time (`ManualClock`): a `Date`, epoch seconds or an ISO-8601 string.
pub fn meter_time(v: Unknown<'_>, field: &'static str) -> R<DateTime> {
    timestamp(v, Path::Root.field(field))
}

/// A whole number of seconds (`ManualClock.advance`).
pub fn meter_seconds_int(v: Unknown<'_>, field: &'static str) -> R<i64> {
    integer(v, Path::Root.field(field))
}

/// A non-negative, finite number of seconds.
fn seconds(v: Unknown<'_>, path: Path<'_>) -> R<Duration> {
    if v.get_type()? != ValueType::Number {
        return Err(path.err(format_args!(
            "must be a number of seconds, got {}",
            describe(&v)?
        )));
    }
    let s = unsafe { v.cast::<f64>() }?;
    if !s.is_finite() || !(0.0..=1e12).contains(&s) {
        return Err(path.err(format_args!(
            "must be a finite, non-negative number of seconds, got {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

const METER_OPTION_KEYS: &[&str] = &[
    "path",
    "productCode",
    "mode",
    "durability",
    "graceSeconds",
    "zeroFill",
    "flushIntervalSeconds",
    "clock",
    "databaseUrl",
    "replicaId",
];

/// `new UsageMeter(client, options)` options (`clock` is checked by the JS layer).
pub fn meter_options(v: Unknown<'_>) -> R<MeterOptions> {
    let o = root(v, METER_OPTION_KEYS)?;
    let top = Path::Root;
    let mut out = MeterOptions {
        path: None,
        product_code: None,
        mode: Default::default(),
        durability: Default::default(),
        grace: None,
        zero_fill: false,
        flush_interval: None,
        database_url: None,
        replica_id: None,
    };
    if let Some(v) = opt!(o, "path") {
        out.path = Some(string(v, top.field("path"))?);
    }
    if let Some(v) = opt!(o, "databaseUrl") {
        out.database_url = Some(string(v, top.field("databaseUrl"))?);
        if out.path.is_some() {
            return Err(top.field("databaseUrl").err(
                "give either path (SQLite) or databaseUrl (PostgreSQL), not both".to_owned(),
            ));
        }
    }
    if let Some(v) = opt!(o, "replicaId") {
        out.replica_id = Some(string(v, top.field("replicaId"))?);
    }
    if let Some(v) = opt!(o, "productCode") {
        out.product_code = Some(string(v, top.field("productCode"))?);
    }
    if let Some(v) = opt!(o, "mode") {
        let p = top.field("mode");
        out.mode = string(v, p)?
            .parse()
            .map_err(|e: Error| p.err(e.problem()))?;
    }
    if let Some(v) = opt!(o, "durability") {
        let p = top.field("durability");
        out.durability = string(v, p)?
            .parse()
            .map_err(|e: Error| p.err(e.problem()))?;
    }
    if let Some(v) = opt!(o, "graceSeconds") {
        out.grace = Some(seconds(v, top.field("graceSeconds"))?);
    }
    if let Some(v) = opt!(o, "zeroFill") {
        out.zero_fill = boolean(v, top.field("zeroFill"))?;
    }
    if let Some(obj) = &o {
        // `undefined` (or absent) keeps the core's default; `null` or 0 turns the flusher off.
        let v: Unknown<'_> = obj.get_named_property("flushIntervalSeconds")?;
        match v.get_type()? {
            ValueType::Undefined => {}
            ValueType::Null => out.flush_interval = Some(Duration::ZERO),
            _ => out.flush_interval = Some(seconds(v, top.field("flushIntervalSeconds"))?),
        }
    }
    Ok(out)
}

/// The customer of a `record()` / `registerCustomer()` input; an empty identifier when absent
/// and not `required` (MeterUsage mode, where buckets have no customer).
fn meter_customer(
    ci: Option<String>,
    acct: Option<String>,
    lic: Option<String>,
    required: bool,
) -> R<Customer> {
    Customer::from_parts(ci, acct, lic, required).map_err(ConvError::Input)
}

/// The string member `name` of a meter input, if present.
fn optional_text(o: &Object<'_>, name: &'static str) -> R<Option<String>> {
    match member(o, name)? {
        Some(v) => Ok(Some(string(v, Path::Root.field(name))?)),
        None => Ok(None),
    }
}

/// `meter.requeue({ reason?, customerIdentifier? | customerAwsAccountId + licenseArn, hour? })`.
pub fn meter_requeue_input(v: Option<Unknown<'_>>) -> R<RequeueFilter> {
    let Some(v) = v.map(present).transpose()?.flatten() else {
        return Ok(RequeueFilter::default());
    };
    let o = meter_input(
        v,
        &[
            "reason",
            "customerIdentifier",
            "customerAwsAccountId",
            "licenseArn",
            "hour",
        ],
    )?;
    let top = Path::Root;
    let text = |name: &'static str| optional_text(&o, name);
    let hour = match member(&o, "hour")? {
        Some(v) => Some(timestamp(v, top.field("hour"))?.secs()),
        None => None,
    };
    RequeueFilter::from_parts(
        text("reason")?,
        text("customerIdentifier")?,
        text("customerAwsAccountId")?,
        text("licenseArn")?,
        hour,
    )
    .map_err(ConvError::Input)
}

/// The input object of a meter call, its keys not yet checked.
fn meter_object<'e>(v: Unknown<'e>) -> R<Object<'e>> {
    match v.get_type()? {
        ValueType::Object if !v.is_array()? && !v.is_date()? => {}
        _ => {
            return Err(ConvError::Input(
                marketplace_metering::Error::invalid_input(
                    "input",
                    format_args!("must be an object, got {}", describe(&v)?),
                ),
            ))
        }
    }
    Ok(unsafe { v.cast::<Object<'e>>() }?)
}

/// The input object of a meter call, its keys each in `allowed`.
fn meter_input<'e>(v: Unknown<'e>, allowed: &[&str]) -> R<Object<'e>> {
    let obj = meter_object(v)?;
    check_keys(&obj, Path::Root, allowed)?;
    Ok(obj)
}

const RECORD_KEYS: &[&str] = &[
    "customerIdentifier",
    "customerAwsAccountId",
    "licenseArn",
    "dimension",
    "quantity",
    "timestamp",
    "allocations",
];

/// `meter.record({...})`: types and shape; the core checks the values. One pass over the
/// keys the object has (the hot path: no lookups of absent members).
pub fn meter_record_input(v: Unknown<'_>, customer_required: bool) -> R<MeterRecord> {
    let o = meter_object(v)?;
    let top = Path::Root;
    let (mut ci, mut acct, mut lic) = (None, None, None);
    let (mut dimension, mut quantity, mut at, mut allocs) = (None, None, None, None);
    let mut members = Members::new(&o)?;
    while let Some((key, v)) = members.next()? {
        if !RECORD_KEYS.contains(&key) {
            return Err(not_a_member(top, key, RECORD_KEYS));
        }
        let Some(v) = present(v)? else { continue };
        match key {
            "customerIdentifier" => ci = Some(string(v, top.field("customerIdentifier"))?),
            "customerAwsAccountId" => acct = Some(string(v, top.field("customerAwsAccountId"))?),
            "licenseArn" => lic = Some(string(v, top.field("licenseArn"))?),
            "dimension" => dimension = Some(string(v, top.field("dimension"))?),
            "quantity" => quantity = Some(integer(v, top.field("quantity"))?),
            "timestamp" => at = Some(timestamp(v, top.field("timestamp"))?),
            "allocations" => allocs = Some(allocations(v, top.field("allocations"))?),
            _ => {}
        }
    }
    let customer = meter_customer(ci, acct, lic, customer_required)?;
    let Some(dimension) = dimension else {
        return Err(top.field("dimension").err("is required"));
    };
    let Some(quantity) = quantity else {
        return Err(top.field("quantity").err("is required"));
    };
    Ok(MeterRecord {
        customer,
        dimension,
        quantity,
        at,
        allocations: allocs,
    })
}

/// `meter.registerCustomer({ customer…, dimensions })`.
pub fn meter_register_input(v: Unknown<'_>, customer_required: bool) -> R<(Customer, Vec<String>)> {
    let o = meter_input(
        v,
        &[
            "customerIdentifier",
            "customerAwsAccountId",
            "licenseArn",
            "dimensions",
        ],
    )?;
    let top = Path::Root;
    let text = |name: &'static str| optional_text(&o, name);
    let customer = meter_customer(
        text("customerIdentifier")?,
        text("customerAwsAccountId")?,
        text("licenseArn")?,
        customer_required,
    )?;
    let p = top.field("dimensions");
    let Some(v) = member(&o, "dimensions")? else {
        return Err(p.err("is required"));
    };
    let (arr, len) = array(v, p, validate::MAX_DIMENSIONS)?;
    let mut dims = Vec::with_capacity(len as usize);
    for i in 0..len {
        dims.push(string(arr.get_element(i)?, p.index(i))?);
    }
    Ok((customer, dims))
}

// ---- outputs ----------------------------------------------------------------------------

fn meta(m: &ResponseMetadata) -> Value {
    serde_json::to_value(Metadata::from(m)).unwrap_or(Value::Null)
}

/// Drops `null` members, as SDK v3 leaves absent members out.
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        v => v,
    }
}

/// SDK v3's `$metadata`.
#[derive(serde::Serialize)]
struct Metadata<'a> {
    #[serde(rename = "httpStatusCode")]
    http_status_code: Option<u16>,
    #[serde(rename = "requestId")]
    request_id: Option<&'a str>,
    attempts: u32,
    #[serde(rename = "totalRetryDelay")]
    total_retry_delay: u64,
    /// Each attempt, for the client's `logger` (the JS layer keeps it out of `$metadata`).
    #[serde(rename = "attemptLog")]
    attempt_log: Vec<Attempt<'a>>,
}

/// One attempt of the core's attempt log, as the `logger` receives it.
#[derive(serde::Serialize)]
pub struct Attempt<'a> {
    operation: &'a str,
    attempt: u32,
    status: Option<u16>,
    #[serde(rename = "requestId")]
    request_id: Option<&'a str>,
    #[serde(rename = "latencyMs")]
    latency_ms: f64,
    outcome: &'a str,
    #[serde(rename = "retryReason")]
    retry_reason: Option<&'a str>,
    #[serde(rename = "retryDelayMs")]
    retry_delay_ms: Option<f64>,
}

/// The attempt log of `m`.
pub fn attempt_log(m: &ResponseMetadata) -> Vec<Attempt<'_>> {
    m.attempt_log()
        .iter()
        .map(|e| Attempt {
            operation: e.operation,
            attempt: e.attempt,
            status: e.status,
            request_id: e.request_id.as_deref(),
            latency_ms: e.latency.as_secs_f64() * 1000.0,
            outcome: &e.outcome,
            retry_reason: e.retry_reason,
            retry_delay_ms: e.retry_delay.map(|d| d.as_secs_f64() * 1000.0),
        })
        .collect()
}

impl<'a> From<&'a ResponseMetadata> for Metadata<'a> {
    fn from(m: &'a ResponseMetadata) -> Self {
        Metadata {
            http_status_code: m.http_status(),
            request_id: m.request_id(),
            attempts: m.attempts(),
            total_retry_delay: m.total_retry_delay().as_millis() as u64,
            attempt_log: attempt_log(m),
        }
    }
}

/// The `BatchMeterUsage` output: written with the core types' own serializers (absent
/// members left out, timestamps as epoch seconds), with no JSON tree built on the way.
#[derive(serde::Serialize)]
struct BatchOutput<'a> {
    #[serde(rename = "$metadata")]
    metadata: Metadata<'a>,
    #[serde(rename = "Results")]
    results: &'a [UsageRecordResult],
    #[serde(rename = "UnprocessedRecords")]
    unprocessed_records: &'a [UsageRecord],
}

/// `BatchMeterUsage` output as JSON.
pub fn batch_meter_usage_output(o: &BatchMeterUsageOutput) -> String {
    let out = BatchOutput {
        metadata: o.metadata().into(),
        results: o.results(),
        unprocessed_records: o.unprocessed_records(),
    };
    // Cannot fail: every map key is a string and every number finite.
    serde_json::to_string(&out).unwrap_or_default()
}

/// `MeterUsage` output as JSON.
pub fn meter_usage_output(o: &MeterUsageOutput) -> String {
    compact(json!({
        "$metadata": meta(o.metadata()),
        "MeteringRecordId": o.metering_record_id(),
    }))
    .to_string()
}

/// `ResolveCustomer` output as JSON.
pub fn resolve_customer_output(o: &ResolveCustomerOutput) -> String {
    compact(json!({
        "$metadata": meta(o.metadata()),
        "CustomerIdentifier": o.customer_identifier(),
        "ProductCode": o.product_code(),
        "CustomerAWSAccountId": o.customer_aws_account_id(),
        "LicenseArn": o.license_arn(),
    }))
    .to_string()
}

/// `RegisterUsage` output as JSON.
pub fn register_usage_output(o: &RegisterUsageOutput) -> String {
    compact(json!({
        "$metadata": meta(o.metadata()),
        "PublicKeyRotationTimestamp": o.public_key_rotation_timestamp().map(|t| t.as_secs_f64()),
        "Signature": o.signature(),
    }))
    .to_string()
}

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

/// Member `$name` of an optional object, `None` when either is absent (declared before the
/// submodules, which use it).
macro_rules! opt {
    ($obj:expr, $name:literal) => {
        match &$obj {
            Some(o) => member(o, $name)?,
            None => None,
        }
    };
}

mod inputs;
mod meter;
mod outputs;

use std::borrow::Cow;
use std::fmt;

use aws_smithy_types::date_time::Format;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::{validate, BuildError};
use napi::bindgen_prelude::*;
use napi::{JsDate, JsValue, ValueType};

use inputs::allocations;
pub use inputs::{
    batch_meter_usage_encoded, batch_meter_usage_input, meter_usage_input, register_usage_input,
    resolve_customer_input,
};
pub use meter::{
    meter_options, meter_record_input, meter_record_quantity, meter_register_input,
    meter_requeue_input, meter_seconds_int, meter_time, meter_unregister_input,
};
pub use outputs::{
    attempt_log, batch_meter_usage_output, meter_usage_output, register_usage_output,
    resolve_customer_output,
};

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
/// same list `Object::keys` gives), each with its value. A key is read into a buffer reused
/// for every key and its value is fetched by the key's own JS string: no allocation and no
/// second name lookup per member (bench/README.md has the figures).
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
        // Property names are strings. One that does not fit is read whole (no member name).
        if let Some(k) = utf8_in(self.obj.value().env, key.raw(), &mut self.buf)? {
            return Ok(Some((k, key)));
        }
        // SAFETY: property names are strings.
        self.long = unsafe { key.cast::<String>() }?;
        Ok(Some((&self.long, key)))
    }
}

/// Where `text`, a JS string `s` read as UTF-8, had a lone surrogate (its UTF-16 index). napi
/// reads one as U+FFFD, so a customer id or dimension would silently become another; only a
/// text holding U+FFFD is read again, as UTF-16, to tell the two apart. `s` must be a live
/// string of `env`.
fn lone_surrogate(env: sys::napi_env, s: sys::napi_value, text: &str) -> Result<Option<usize>> {
    if !text.contains('\u{FFFD}') {
        return Ok(None);
    }
    let mut len = 0usize;
    // SAFETY: `s` is a live string of `env`; a null buffer asks for the length only.
    napi::check_status!(unsafe {
        sys::napi_get_value_string_utf16(env, s, std::ptr::null_mut(), 0, &mut len)
    })?;
    let mut units = vec![0u16; len + 1];
    let mut written = 0usize;
    // SAFETY: as above; `units` is writable for its whole length (napi adds a NUL).
    napi::check_status!(unsafe {
        sys::napi_get_value_string_utf16(env, s, units.as_mut_ptr(), units.len(), &mut written)
    })?;
    let mut at = 0usize;
    for c in char::decode_utf16(units[..written].iter().copied()) {
        match c {
            Ok(c) => at += c.len_utf16(),
            Err(_) => return Ok(Some(at)),
        }
    }
    Ok(None)
}

/// `text`, read from the JS string `s`, as the caller wrote it: an error naming `path` when
/// the string had a lone surrogate, which no UTF-8 text (nor the service) can carry.
fn well_formed(env: sys::napi_env, s: sys::napi_value, text: &str, path: Path<'_>) -> R<()> {
    match lone_surrogate(env, s, text)? {
        None => Ok(()),
        Some(at) => Err(ConvError::Input(validate::lone_surrogate(
            path.to_string(),
            at,
        ))),
    }
}

/// [`well_formed`] for an argument `name` of a function (the meter's `record()`).
pub fn well_formed_argument(
    env: sys::napi_env,
    s: sys::napi_value,
    text: &str,
    name: &'static str,
) -> R<()> {
    well_formed(env, s, text, Path::Root.field(name))
}

/// A JS string's UTF-8 as napi reads it (a lone surrogate becomes U+FFFD, as in napi's
/// `String`: see [`well_formed`]), written into `buf`; `None` when it may not have fit (the
/// caller reads it whole).
/// `s` must be a live value of `env`; napi fails on one that is not a string.
fn utf8_in(env: sys::napi_env, s: sys::napi_value, buf: &mut [u8]) -> Result<Option<&str>> {
    let mut written = 0usize;
    // SAFETY: `s` is a live value of `env` and `buf` is writable for its whole length; napi
    // writes at most `len - 1` bytes and a NUL.
    napi::check_status!(unsafe {
        sys::napi_get_value_string_utf8(env, s, buf.as_mut_ptr().cast(), buf.len(), &mut written)
    })?;
    // napi stops before a character that does not fit, and one takes at most 4 bytes: a string
    // that ended with room for 4 more bytes was read whole.
    if written + 5 > buf.len() {
        return Ok(None);
    }
    Ok(std::str::from_utf8(&buf[..written]).ok())
}

/// A JS string as text: borrowed from `buf` when it fits (no allocation: a record's customer
/// and dimension), else read whole. `s` must be a live value of `env`; napi fails on one that
/// is not a string.
pub fn text_in(env: sys::napi_env, s: sys::napi_value, buf: &mut [u8]) -> Result<Cow<'_, str>> {
    if let Some(t) = utf8_in(env, s, buf)? {
        return Ok(Cow::Borrowed(t));
    }
    // SAFETY: as above; `String`'s conversion checks the status too.
    Ok(Cow::Owned(unsafe { String::from_napi_value(env, s) }?))
}

fn string(v: Unknown<'_>, path: Path<'_>) -> R<String> {
    if v.get_type()? == ValueType::String {
        let s = unsafe { v.cast::<String>() }?;
        well_formed(v.value().env, v.raw(), &s, path)?;
        Ok(s)
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
    exact_integer(unsafe { v.cast::<f64>() }?, path)
}

/// A JS number as an integer, if it is one exactly.
fn exact_integer(n: f64, path: Path<'_>) -> R<i64> {
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
            well_formed(v.value().env, v.raw(), &s, path)?;
            // With a UTC offset too (`+02:00`), as `new Date(string)` reads it.
            DateTime::from_str(&s, Format::DateTimeWithOffset)
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
    let plain = v.is_array()?;
    if !plain && !proxied_array(&v)? {
        return Err(path.err(format_args!("must be an array, got {}", describe(&v)?)));
    }
    let arr = unsafe { v.cast::<Object<'e>>() }?;
    let len = match plain {
        true => arr.get_array_length()?,
        // Through the Proxy's traps, as JavaScript reads it.
        false => {
            let n = match arr.get_named_property::<Unknown<'_>>("length") {
                Ok(n) if n.get_type()? == ValueType::Number => unsafe { n.cast::<f64>() }?,
                Ok(_) => f64::NAN,
                Err(_) => {
                    // A trap that threw (a revoked Proxy): named as the field, not rethrown.
                    clear_exception(&v);
                    f64::NAN
                }
            };
            if !(n >= 0.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0) {
                return Err(path.err("must be an array, got a Proxy with no array length"));
            }
            n as u32
        }
    };
    if len as usize > max {
        return Err(path.err(format_args!("must hold at most {max} items, got {len}")));
    }
    Ok((arr, len))
}

/// A Proxy of an array (Vue's `reactive`, MobX's observable arrays): an array to
/// `Array.isArray`, an object to napi's `is_array`. Asked only of an object napi does not
/// take for an array, so a plain input never pays for the call.
fn proxied_array(v: &Unknown<'_>) -> Result<bool> {
    if v.get_type()? != ValueType::Object || v.is_date()? {
        return Ok(false);
    }
    let env = Env::from_raw(v.value().env);
    let array: Unknown<'_> = env.get_global()?.get_named_property("Array")?;
    // A function, which napi reads as an object without checking its type.
    let array = unsafe { array.cast::<Object<'_>>() }?;
    let is_array: Function<'_, Unknown<'_>, bool> = array.get_named_property("isArray")?;
    match is_array.call(*v) {
        Ok(b) => Ok(b),
        // A revoked Proxy throws: not an array, and the caller's error names the field.
        Err(_) => {
            clear_exception(v);
            Ok(false)
        }
    }
}

/// Clears the JavaScript exception a napi call left pending, so that the error returned
/// instead is the one thrown.
fn clear_exception(v: &Unknown<'_>) {
    let mut thrown = std::ptr::null_mut();
    // SAFETY: the env `v` belongs to, on its own thread (a converter runs on the JS thread).
    unsafe { napi::sys::napi_get_and_clear_last_exception(v.value().env, &mut thrown) };
}

/// The top-level input object (`undefined` reads as `{}`).
fn root<'e>(v: Unknown<'e>, allowed: &[&str]) -> R<Option<Object<'e>>> {
    match v.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        _ => object(v, Path::Root, allowed).map(Some),
    }
}

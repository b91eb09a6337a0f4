// SPDX-License-Identifier: Apache-2.0
// Client-side validation against the service model's constraints, before anything is sent.
// Over 600 lines: every constraint of the model's four inputs (lengths, patterns, ranges,
// list sizes, the per-operation rules) in one file and in the model's order, so a reviewer
// checks it against the model in one read; its tests are a third of it.

//! Validation against the model's constraints.
//!
//! Every check names the field path (`UsageRecords[3].Quantity`) in an
//! [`ErrorCode::InvalidInput`](crate::ErrorCode::InvalidInput) error. The faces call these
//! helpers (`quantity`, …) when converting their own numbers, so each rule lives here once.

use crate::error::{FieldPath, Segment};
use crate::operation::batch_meter_usage::BatchMeterUsageInput;
use crate::operation::meter_usage::MeterUsageInput;
use crate::operation::register_usage::RegisterUsageInput;
use crate::operation::resolve_customer::ResolveCustomerInput;
use crate::types::{UsageAllocation, UsageRecord};
use crate::Error;

/// At most this many records per `BatchMeterUsage` call.
pub const MAX_USAGE_RECORDS: usize = 25;
/// At most this many usage allocations per record.
pub const MAX_USAGE_ALLOCATIONS: usize = 2500;
/// At most this many tags per allocation.
pub const MAX_TAGS: usize = 5;
/// The service's request size limit.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Most dimensions one zero-fill registration takes. The model sets no bound (a product has a
/// few dozen dimensions at most); this one keeps a caller's wild count (a C `n_dimensions`,
/// a sparse JS array) from reaching the allocator.
pub const MAX_DIMENSIONS: usize = 1024;

/// A string pattern of the model, matched without a regex engine: the model's patterns are
/// character classes with lengths, and a regex engine would add ~700 KiB to every face's
/// artifact. `regex` is the model's text, verbatim, shown in errors; the tests check each
/// matcher against a real regex of that text on many generated strings.
struct Pattern {
    regex: &'static str,
    /// What errors show instead of `regex`, when it is too long to read.
    shown: Option<&'static str>,
    matches: fn(&str) -> bool,
}

fn all_bytes(s: &str, class: fn(u8) -> bool) -> bool {
    s.bytes().all(class)
}

fn product_code_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-/=:_.@".contains(&b)
}

/// `[a-zA-Z0-9+ -=._:\/@]`: note that ` -=` is a range (space through `=`).
fn tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || (b' '..=b'=').contains(&b) || b"+._:/@".contains(&b)
}

/// `[A-Za-z0-9][<rest>]{0,max}`, the whole of `s`.
fn segment(s: &str, max: usize, rest: fn(u8) -> bool) -> bool {
    match s.as_bytes().split_first() {
        Some((first, tail)) => {
            first.is_ascii_alphanumeric() && tail.len() <= max && tail.iter().all(|b| rest(*b))
        }
        None => false,
    }
}

fn arn_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_/.-".contains(&b)
}

fn license_arn(s: &str) -> bool {
    // No class before the resource admits ':', so splitting at the first four ':' after the
    // prefix finds the only way the pattern can match.
    let Some(rest) = s.strip_prefix("arn:aws") else {
        return false;
    };
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    all_bytes(partition, |b| b.is_ascii_alphabetic() || b == b'-')
        && segment(service, 62, arn_byte)
        && region.len() <= 63
        && all_bytes(region, arn_byte)
        && account.len() <= 63
        && all_bytes(account, arn_byte)
        && segment(resource, 1023, |b| {
            b.is_ascii_alphanumeric() || b":_/+=,@.-".contains(&b)
        })
}

const PRODUCT_CODE: Pattern = Pattern {
    regex: r"^[-a-zA-Z0-9/=:_.@]*$",
    shown: None,
    matches: |s| all_bytes(s, product_code_byte),
};
const ACCOUNT_ID: Pattern = Pattern {
    regex: r"^[0-9]+$",
    shown: None,
    matches: |s| !s.is_empty() && all_bytes(s, |b| b.is_ascii_digit()),
};
const LICENSE_ARN: Pattern = Pattern {
    regex: r"^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$",
    shown: Some("arn:aws…:<service>:<region>:<account>:<resource>"),
    matches: license_arn,
};
const TAG: Pattern = Pattern {
    regex: r"^[a-zA-Z0-9+ -=._:\/@]+$",
    shown: None,
    matches: |s| !s.is_empty() && all_bytes(s, tag_byte),
};

/// A field path being checked; renders lazily only when an error is raised.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'static str),
    /// An argument of a core call (the meter's `dimension`).
    #[cfg_attr(not(feature = "meter"), allow(dead_code))]
    Argument(&'static str),
    Index(&'a Path<'a>, usize),
    Field(&'a Path<'a>, &'static str),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(s) | Path::Argument(s) => f.write_str(s),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
            Path::Field(p, s) => write!(f, "{p}.{s}"),
        }
    }
}

impl<'a> Path<'a> {
    fn field(&'a self, name: &'static str) -> Path<'a> {
        Path::Field(self, name)
    }
    fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }
    fn err(&self, problem: impl std::fmt::Display) -> Error {
        Error::invalid_input(self.field_path(), problem)
    }
    fn field_path(&self) -> FieldPath {
        let mut segments = Vec::new();
        let mut p = self;
        loop {
            match p {
                Path::Root(s) => {
                    segments.push(Segment::Member((*s).into()));
                    break;
                }
                Path::Argument(s) => {
                    segments.push(Segment::Argument(s));
                    break;
                }
                Path::Index(up, i) => {
                    segments.push(Segment::Index(*i));
                    p = up;
                }
                Path::Field(up, s) => {
                    segments.push(Segment::Member((*s).into()));
                    p = up;
                }
            }
        }
        segments.reverse();
        FieldPath::from_segments(segments)
    }
}

fn length(path: Path<'_>, s: &str, min: usize, max: Option<usize>) -> Result<(), Error> {
    // Fast path: byte length bounds the character count.
    if s.len() >= min && max.is_none_or(|m| s.len() <= m) {
        return Ok(());
    }
    let n = s.chars().count();
    if n < min || max.is_some_and(|m| n > m) {
        return Err(match max {
            Some(m) => path.err(format_args!(
                "length must be between {min} and {m}, got {n}"
            )),
            None => path.err(format_args!("length must be at least {min}, got {n}")),
        });
    }
    Ok(())
}

fn pattern(path: Path<'_>, s: &str, p: &Pattern) -> Result<(), Error> {
    if (p.matches)(s) {
        Ok(())
    } else {
        Err(path.err(format_args!(
            "{s:?} does not match the pattern {}",
            p.shown.unwrap_or(p.regex)
        )))
    }
}

fn range(path: Path<'_>, v: i64, min: i64, max: i64) -> Result<(), Error> {
    if v < min || v > max {
        return Err(path.err(format_args!("must be between {min} and {max}, got {v}")));
    }
    Ok(())
}

/// Converts a quantity from a face's wider integer, naming `field` when out of `0..=i32::MAX`.
pub fn quantity(field: &str, v: i64) -> Result<i32, Error> {
    quantity_with(v, || FieldPath::member(field.to_owned()))
}

/// [`quantity`], building the field path only when the value is out of range (faces convert
/// thousands of quantities a second; formatting each one's path would cost more than the check).
pub fn quantity_with<F: Into<FieldPath>>(v: i64, field: impl FnOnce() -> F) -> Result<i32, Error> {
    i32::try_from(v).ok().filter(|q| *q >= 0).ok_or_else(|| {
        Error::invalid_input(
            field(),
            format!("must be between 0 and {}, got {v}", i32::MAX),
        )
    })
}

/// The error of a caller's string with a lone surrogate at `index` (in the caller's own string
/// units: UTF-16 for JS and the JVM, code points for Python). No UTF-8 text can carry one, so
/// a face refuses it rather than send a replacement character in its place (another customer
/// id or dimension). Only faces whose strings may hold one meet it; the core's are UTF-8.
pub fn lone_surrogate<F: Into<FieldPath>>(field: F, index: usize) -> Error {
    Error::invalid_input(
        field,
        format!("is not well-formed Unicode: a lone surrogate at index {index}"),
    )
}

/// Converts a `PublicKeyVersion` from a face's wider integer.
pub fn public_key_version(field: &str, v: i64) -> Result<i32, Error> {
    i32::try_from(v).ok().filter(|q| *q >= 1).ok_or_else(|| {
        Error::invalid_input(
            FieldPath::member(field.to_owned()),
            format!("must be between 1 and {}, got {v}", i32::MAX),
        )
    })
}

fn product_code(path: Path<'_>, s: &str) -> Result<(), Error> {
    length(path, s, 0, Some(255))?;
    pattern(path, s, &PRODUCT_CODE)
}

/// The model's rule for a dimension, on the argument `arg`: the meter checks an event's
/// dimension with it before any record exists.
#[cfg(feature = "meter")]
pub(crate) fn dimension_argument(arg: &'static str, s: &str) -> Result<(), Error> {
    dimension(Path::Argument(arg), s)
}

/// The model's rule for a `ProductCode`, on the argument `arg`: the meter checks its product
/// code when it is made, not at the first send, where every bucket would be blamed.
#[cfg(feature = "meter")]
pub(crate) fn product_code_argument(arg: &'static str, s: &str) -> Result<(), Error> {
    product_code(Path::Argument(arg), s)
}

/// The model's rule for a `CustomerIdentifier`, on the argument `arg` (the meter's check).
#[cfg(feature = "meter")]
pub(crate) fn customer_identifier_argument(arg: &'static str, s: &str) -> Result<(), Error> {
    length(Path::Argument(arg), s, 0, Some(255))
}

/// The argument of the meter's `record()` that carries a `UsageRecord` member.
#[cfg(feature = "meter")]
fn record_argument(member: &str) -> Option<&'static str> {
    Some(match member {
        "CustomerIdentifier" => "customer_identifier",
        "CustomerAWSAccountId" => "customer_aws_account_id",
        "LicenseArn" => "license_arn",
        "Dimension" | "UsageDimension" => "dimension",
        "Quantity" | "UsageQuantity" => "quantity",
        "Timestamp" => "timestamp",
        "UsageAllocations" => "allocations",
        "ProductCode" => "product_code",
        _ => return None,
    })
}

/// An error of the one-record input the meter validates an event as (a `BatchMeterUsage` or
/// `MeterUsage` input), its path moved from
/// `UsageRecords[0].Dimension` to the meter's argument `dimension` (members below the
/// argument keep their place: `allocations[0].Tags[1].Key`).
#[cfg(feature = "meter")]
pub(crate) fn as_record_arguments(e: Error) -> Error {
    let Some(path) = e.field_path() else { return e };
    let moved = match path.segments() {
        [Segment::Member(r), Segment::Index(0), Segment::Member(m), rest @ ..]
            if r == "UsageRecords" =>
        {
            record_argument(m).map(|arg| (arg, rest))
        }
        [Segment::Member(m), rest @ ..] => record_argument(m).map(|arg| (arg, rest)),
        _ => None,
    }
    .map(|(arg, rest)| {
        let mut s = vec![Segment::Argument(arg)];
        s.extend_from_slice(rest);
        FieldPath::from_segments(s)
    });
    match moved {
        // `record()` refuses what breaks the model with `InvalidInput`, whichever exception
        // the service would have answered.
        Some(p) => Error::invalid_input(p, e.problem()),
        None => e,
    }
}

fn dimension(path: Path<'_>, s: &str) -> Result<(), Error> {
    length(path, s, 1, Some(255))
}

fn allocations(path: Path<'_>, allocs: &[UsageAllocation], total: i32) -> Result<(), Error> {
    if allocs.is_empty() || allocs.len() > MAX_USAGE_ALLOCATIONS {
        return Err(path.err(format_args!(
            "must hold between 1 and {MAX_USAGE_ALLOCATIONS} allocations, got {}",
            allocs.len()
        )));
    }
    let mut sum: i64 = 0;
    for (i, a) in allocs.iter().enumerate() {
        let p = path.index(i);
        range(
            p.field("AllocatedUsageQuantity"),
            a.allocated_usage_quantity.into(),
            0,
            i32::MAX.into(),
        )?;
        sum += i64::from(a.allocated_usage_quantity);
        if let Some(tags) = &a.tags {
            let tp = p.field("Tags");
            if tags.is_empty() || tags.len() > MAX_TAGS {
                return Err(tp.err(format_args!(
                    "must hold between 1 and {MAX_TAGS} tags, got {}",
                    tags.len()
                )));
            }
            for (j, t) in tags.iter().enumerate() {
                let tj = tp.index(j);
                let (k, v) = (tj.field("Key"), tj.field("Value"));
                length(k, &t.key, 1, Some(100))?;
                pattern(k, &t.key, &TAG)?;
                length(v, &t.value, 1, Some(256))?;
                pattern(v, &t.value, &TAG)?;
            }
        }
    }
    if sum != i64::from(total) {
        // The model only documents this rule; the service raises this exception for it.
        return Err(Error::modeled_early(
            crate::ErrorCode::InvalidUsageAllocationsException,
            path.field_path(),
            format_args!(
                "allocated quantities sum to {sum}, which is not the usage quantity {total}"
            ),
        ));
    }
    Ok(())
}

/// The model's constraints on each member, and nothing more: which customer members a
/// record carries, and whether `ProductCode` may be left out, are the service's to judge.
fn usage_record(path: Path<'_>, r: &UsageRecord) -> Result<(), Error> {
    if let Some(c) = &r.customer_identifier {
        length(path.field("CustomerIdentifier"), c, 0, Some(255))?;
    }
    if let Some(a) = &r.customer_aws_account_id {
        let p = path.field("CustomerAWSAccountId");
        length(p, a, 1, Some(255))?;
        pattern(p, a, &ACCOUNT_ID)?;
    }
    if let Some(arn) = &r.license_arn {
        pattern(path.field("LicenseArn"), arn, &LICENSE_ARN)?;
    }
    dimension(path.field("Dimension"), &r.dimension)?;
    let q = r.quantity.unwrap_or(0);
    range(path.field("Quantity"), q.into(), 0, i32::MAX.into())?;
    if let Some(a) = &r.usage_allocations {
        allocations(path.field("UsageAllocations"), a, q)?;
    }
    Ok(())
}

/// Checks a `BatchMeterUsage` input.
pub fn batch_meter_usage(input: &BatchMeterUsageInput) -> Result<(), Error> {
    let records = Path::Root("UsageRecords");
    if input.usage_records.len() > MAX_USAGE_RECORDS {
        return Err(records.err(format_args!(
            "at most {MAX_USAGE_RECORDS} records per call, got {}",
            input.usage_records.len()
        )));
    }
    if let Some(p) = &input.product_code {
        product_code(Path::Root("ProductCode"), p)?;
    }
    for (i, r) in input.usage_records.iter().enumerate() {
        usage_record(records.index(i), r)?;
    }
    Ok(())
}

/// Checks a `MeterUsage` input.
pub fn meter_usage(input: &MeterUsageInput) -> Result<(), Error> {
    product_code(Path::Root("ProductCode"), &input.product_code)?;
    dimension(Path::Root("UsageDimension"), &input.usage_dimension)?;
    let q = input.usage_quantity.unwrap_or(0);
    range(Path::Root("UsageQuantity"), q.into(), 0, i32::MAX.into())?;
    if let Some(a) = &input.usage_allocations {
        allocations(Path::Root("UsageAllocations"), a, q)?;
    }
    if let Some(t) = &input.client_token {
        length(Path::Root("ClientToken"), t, 1, Some(64))?;
    }
    Ok(())
}

/// Checks a `ResolveCustomer` input.
pub fn resolve_customer(input: &ResolveCustomerInput) -> Result<(), Error> {
    length(
        Path::Root("RegistrationToken"),
        &input.registration_token,
        1,
        None,
    )
}

/// Checks a `RegisterUsage` input.
pub fn register_usage(input: &RegisterUsageInput) -> Result<(), Error> {
    product_code(Path::Root("ProductCode"), &input.product_code)?;
    range(
        Path::Root("PublicKeyVersion"),
        input.public_key_version.into(),
        1,
        i32::MAX.into(),
    )?;
    if let Some(n) = &input.nonce {
        length(Path::Root("Nonce"), n, 0, Some(255))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::DateTime;
    use crate::types::Tag;
    use crate::ErrorCode;

    fn rec() -> crate::types::UsageRecordBuilder {
        UsageRecord::builder()
            .timestamp(DateTime::from_secs(1_700_000_000))
            .customer_identifier("c")
            .dimension("users")
            .quantity(3)
    }

    fn batch(records: Vec<UsageRecord>) -> BatchMeterUsageInput {
        BatchMeterUsageInput {
            usage_records: records,
            product_code: Some("prod-1".into()),
        }
    }

    fn field_of(r: Result<(), Error>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidInput);
        e.field().unwrap().to_owned()
    }

    /// Each matcher agrees with a real regex of the model's pattern, and that pattern is the
    /// model's own text for the shape.
    #[test]
    fn matchers_agree_with_the_models_patterns() {
        let model: serde_json::Value = serde_json::from_str(include_str!(
            "../model/meteringmarketplace-2016-01-14.service-2.json"
        ))
        .unwrap();
        let shape_pattern = |name: &str| {
            model["shapes"][name]["pattern"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let cases = [
            (&PRODUCT_CODE, "ProductCode"),
            (&ACCOUNT_ID, "CustomerAWSAccountId"),
            (&LICENSE_ARN, "LicenseArn"),
            (&TAG, "TagKey"),
            (&TAG, "TagValue"),
        ];
        let alphabet: Vec<char> = (' '..='~')
            .chain(['\n', '\t', 'é', 'ü', '\u{0}', '😀', '\u{7f}'])
            .collect();
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for (p, shape) in cases {
            assert_eq!(p.regex, shape_pattern(shape), "{shape}");
            let re = regex::Regex::new(p.regex).unwrap();
            // Random strings, and mutations of valid ones (the interesting boundary).
            let valid = [
                "",
                "prod-1234",
                "111122223333",
                "arn:aws:license-manager::111122223333:license/l-0123456789abcdef",
                "arn:aws-us-gov:license-manager:us-gov-west-1:1:license:with:colons",
                "key.with spaces/and@signs=1",
            ];
            let mut matched = 0;
            for i in 0..40_000 {
                let s: String = if i % 2 == 0 {
                    let n = rng.usize(0..12);
                    (0..n)
                        .map(|_| alphabet[rng.usize(..alphabet.len())])
                        .collect()
                } else {
                    let mut c: Vec<char> = valid[rng.usize(..valid.len())].chars().collect();
                    for _ in 0..rng.usize(0..3) {
                        let ch = alphabet[rng.usize(..alphabet.len())];
                        match rng.u8(0..3) {
                            0 if !c.is_empty() => {
                                let at = rng.usize(..c.len());
                                c[at] = ch;
                            }
                            1 if !c.is_empty() => {
                                c.remove(rng.usize(..c.len()));
                            }
                            _ => c.insert(rng.usize(..=c.len()), ch),
                        }
                    }
                    c.into_iter().collect()
                };
                let want = re.is_match(&s);
                matched += usize::from(want);
                assert_eq!((p.matches)(&s), want, "{shape}: {s:?}");
            }
            assert!(
                matched > 100,
                "{shape}: too few matching samples ({matched})"
            );
        }
        // Lengths at the limits of the ARN's repetitions.
        let re = regex::Regex::new(LICENSE_ARN.regex).unwrap();
        for (svc, region, acct, res) in [
            (63, 63, 63, 1024),
            (64, 0, 0, 1),
            (1, 64, 0, 1),
            (1, 0, 64, 1),
            (1, 0, 0, 1025),
        ] {
            let s = format!(
                "arn:aws:{}:{}:{}:{}",
                "a".repeat(svc),
                "b".repeat(region),
                "c".repeat(acct),
                "d".repeat(res)
            );
            assert_eq!(
                license_arn(&s),
                re.is_match(&s),
                "{svc} {region} {acct} {res}"
            );
        }
    }

    #[test]
    fn a_valid_batch_passes() {
        batch_meter_usage(&batch(vec![rec().build().unwrap(); 25])).unwrap();
    }

    #[test]
    fn twenty_six_records_fail() {
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![rec().build().unwrap(); 26]))),
            "UsageRecords"
        );
    }

    #[test]
    fn negative_quantity_names_the_record() {
        let mut rs = vec![rec().build().unwrap(); 5];
        rs[3].quantity = Some(-1);
        assert_eq!(
            field_of(batch_meter_usage(&batch(rs))),
            "UsageRecords[3].Quantity"
        );
    }

    #[test]
    fn customer_rules() {
        // The model makes every customer member optional and independent: what it allows
        // is the service's to judge, so none of these is refused here.
        let both = rec()
            .customer_aws_account_id("111122223333")
            .build()
            .unwrap();
        let neither = rec().set_customer_identifier(None).build().unwrap();
        let no_license = rec()
            .set_customer_identifier(None)
            .customer_aws_account_id("111122223333")
            .build()
            .unwrap();
        batch_meter_usage(&batch(vec![both, neither, no_license.clone()])).unwrap();
        batch_meter_usage(&BatchMeterUsageInput {
            usage_records: vec![no_license],
            product_code: None,
        })
        .unwrap();
        let bad_account = rec()
            .set_customer_identifier(None)
            .customer_aws_account_id("12ab")
            .license_arn("arn:aws:license-manager::111122223333:license:l-1")
            .build()
            .unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![bad_account]))),
            "UsageRecords[0].CustomerAWSAccountId"
        );
        let ok = rec()
            .set_customer_identifier(None)
            .customer_aws_account_id("111122223333")
            .license_arn("arn:aws:license-manager::111122223333:license:l-1")
            .build()
            .unwrap();
        // ProductCode may be omitted when every record has a LicenseArn.
        batch_meter_usage(&BatchMeterUsageInput {
            usage_records: vec![ok.clone()],
            product_code: None,
        })
        .unwrap();
        let mixed = BatchMeterUsageInput {
            usage_records: vec![ok, rec().build().unwrap()],
            product_code: None,
        };
        batch_meter_usage(&mixed).unwrap();
        let bad_arn = rec().license_arn("not-an-arn").build().unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![bad_arn]))),
            "UsageRecords[0].LicenseArn"
        );
    }

    #[test]
    fn allocations_must_sum_and_tags_must_be_valid() {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
        let alloc = |q: i32, tags: Vec<Tag>| UsageAllocation {
            allocated_usage_quantity: q,
            tags: if tags.is_empty() { None } else { Some(tags) },
        };
        let good = rec()
            .usage_allocations(alloc(1, vec![tag("k", "v")]))
            .usage_allocations(alloc(2, vec![]))
            .build()
            .unwrap();
        batch_meter_usage(&batch(vec![good])).unwrap();
        // A rule the model only documents: raised as the service's own exception.
        let bad_sum = rec().usage_allocations(alloc(1, vec![])).build().unwrap();
        let e = batch_meter_usage(&batch(vec![bad_sum])).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidUsageAllocationsException);
        assert_eq!(e.code(), "InvalidUsageAllocationsException");
        assert_eq!(e.field(), Some("UsageRecords[0].UsageAllocations"));
        let six = rec()
            .usage_allocations(alloc(
                3,
                (0..6).map(|i| tag(&format!("k{i}"), "v")).collect(),
            ))
            .build()
            .unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![six]))),
            "UsageRecords[0].UsageAllocations[0].Tags"
        );
        let bad_key = rec()
            .usage_allocations(alloc(3, vec![tag("k", "v"), tag("bad{key}", "v")]))
            .build()
            .unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![bad_key]))),
            "UsageRecords[0].UsageAllocations[0].Tags[1].Key"
        );
        let empty = rec().set_usage_allocations(Some(vec![])).build().unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![empty]))),
            "UsageRecords[0].UsageAllocations"
        );
    }

    #[test]
    fn lengths_and_patterns() {
        let long_dim = rec().dimension("d".repeat(256)).build().unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![long_dim]))),
            "UsageRecords[0].Dimension"
        );
        let empty_dim = rec().dimension("").build().unwrap();
        assert_eq!(
            field_of(batch_meter_usage(&batch(vec![empty_dim]))),
            "UsageRecords[0].Dimension"
        );
        // 255 multi-byte characters are within the limit (characters, not bytes).
        let wide = rec().dimension("é".repeat(255)).build().unwrap();
        batch_meter_usage(&batch(vec![wide])).unwrap();
        let mut b = batch(vec![]);
        b.product_code = Some("bad code!".into());
        assert_eq!(field_of(batch_meter_usage(&b)), "ProductCode");
    }

    #[test]
    fn other_operations() {
        let mu = MeterUsageInput::builder()
            .product_code("p")
            .timestamp(DateTime::from_secs(0))
            .usage_dimension("d")
            .usage_quantity(-5)
            .build()
            .unwrap();
        assert_eq!(field_of(meter_usage(&mu)), "UsageQuantity");
        let tok = MeterUsageInput {
            usage_quantity: None,
            client_token: Some("x".repeat(65)),
            ..mu
        };
        assert_eq!(field_of(meter_usage(&tok)), "ClientToken");
        let rc = ResolveCustomerInput {
            registration_token: String::new(),
        };
        assert_eq!(field_of(resolve_customer(&rc)), "RegistrationToken");
        let ru = RegisterUsageInput {
            product_code: "p".into(),
            public_key_version: 0,
            nonce: None,
        };
        assert_eq!(field_of(register_usage(&ru)), "PublicKeyVersion");
        assert_eq!(
            quantity("UsageRecords[0].Quantity", 1 << 31)
                .unwrap_err()
                .field(),
            Some("UsageRecords[0].Quantity")
        );
        assert_eq!(quantity("q", 7).unwrap(), 7);
        assert!(public_key_version("v", 0).is_err());
    }
}

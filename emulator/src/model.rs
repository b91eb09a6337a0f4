// SPDX-License-Identifier: Apache-2.0
// Request shapes of the 2016-01-14 model and their constraint checks (ValidationException).

use std::sync::LazyLock;

use regex_lite::Regex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::error::ApiError;

/// `UsageRecord`, kept exactly as sent so results can echo it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageRecord {
    #[serde(rename = "Timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Number>,
    #[serde(rename = "CustomerIdentifier", skip_serializing_if = "Option::is_none")]
    pub customer_identifier: Option<String>,
    #[serde(rename = "Dimension", skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    #[serde(rename = "Quantity", skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    #[serde(rename = "UsageAllocations", skip_serializing_if = "Option::is_none")]
    pub usage_allocations: Option<Vec<UsageAllocation>>,
    #[serde(
        rename = "CustomerAWSAccountId",
        skip_serializing_if = "Option::is_none"
    )]
    pub customer_aws_account_id: Option<String>,
    #[serde(rename = "LicenseArn", skip_serializing_if = "Option::is_none")]
    pub license_arn: Option<String>,
}

/// `UsageAllocation`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageAllocation {
    #[serde(
        rename = "AllocatedUsageQuantity",
        skip_serializing_if = "Option::is_none"
    )]
    pub allocated_usage_quantity: Option<i64>,
    #[serde(rename = "Tags", skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// `Tag`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tag {
    #[serde(rename = "Key", skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "Value", skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `BatchMeterUsageRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchMeterUsageInput {
    #[serde(rename = "UsageRecords")]
    pub usage_records: Option<Vec<UsageRecord>>,
    #[serde(rename = "ProductCode")]
    pub product_code: Option<String>,
}

/// `MeterUsageRequest`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MeterUsageInput {
    #[serde(rename = "ProductCode", skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    #[serde(rename = "Timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Number>,
    #[serde(rename = "UsageDimension", skip_serializing_if = "Option::is_none")]
    pub usage_dimension: Option<String>,
    #[serde(rename = "UsageQuantity", skip_serializing_if = "Option::is_none")]
    pub usage_quantity: Option<i64>,
    #[serde(rename = "DryRun", skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(rename = "UsageAllocations", skip_serializing_if = "Option::is_none")]
    pub usage_allocations: Option<Vec<UsageAllocation>>,
    #[serde(rename = "ClientToken", skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `ResolveCustomerRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveCustomerInput {
    #[serde(rename = "RegistrationToken")]
    pub registration_token: Option<String>,
}

/// `RegisterUsageRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterUsageInput {
    #[serde(rename = "ProductCode")]
    pub product_code: Option<String>,
    #[serde(rename = "PublicKeyVersion")]
    pub public_key_version: Option<i64>,
    #[serde(rename = "Nonce")]
    pub nonce: Option<String>,
}

/// Parses an awsJson1.1 body into a request shape. An empty body reads as `{}`.
/// Malformed JSON, wrong JSON types and unknown members are `SerializationException`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    match serde_json::from_slice::<T>(body) {
        Ok(v) => Ok(v),
        Err(_) => {
            // Slow path: parse again to name the offending member.
            let de = &mut serde_json::Deserializer::from_slice(body);
            let err = match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(_) => "could not parse request body".to_string(),
                Err(e) => {
                    let path = e.path().to_string();
                    if path.is_empty() || path == "." {
                        e.into_inner().to_string()
                    } else {
                        format!("{} (at '{}')", e.into_inner(), path)
                    }
                }
            };
            Err(ApiError::serialization(err))
        }
    }
}

// Patterns copied from the model. Patterns that accept everything ([\s\S]*, and
// [\s\S]+ whose only effect is the minimum length) are checked by length alone.
pub(crate) const PRODUCT_CODE_PATTERN: &str = "^[-a-zA-Z0-9/=:_.@]*$";
pub(crate) const ACCOUNT_ID_PATTERN: &str = "^[0-9]+$";
pub(crate) const LICENSE_ARN_PATTERN: &str = "^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$";
pub(crate) const TAG_PATTERN: &str = "^[a-zA-Z0-9+ -=._:\\/@]+$";

fn compiled(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(r) => r,
        // The patterns are constants; a test covers that they all compile.
        Err(e) => panic!("model pattern {pattern} does not compile: {e}"),
    }
}

static PRODUCT_CODE_RE: LazyLock<Regex> = LazyLock::new(|| compiled(PRODUCT_CODE_PATTERN));
static ACCOUNT_ID_RE: LazyLock<Regex> = LazyLock::new(|| compiled(ACCOUNT_ID_PATTERN));
static LICENSE_ARN_RE: LazyLock<Regex> = LazyLock::new(|| compiled(LICENSE_ARN_PATTERN));
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| compiled(TAG_PATTERN));

/// The largest `UsageQuantity` / `AllocatedUsageQuantity`.
pub(crate) const MAX_QUANTITY: i64 = 2_147_483_647;

/// Collects constraint violations in the service's wording.
#[derive(Default)]
pub(crate) struct Violations(Vec<String>);

fn show(v: &str) -> String {
    let mut s: String = v.chars().take(100).collect();
    if v.chars().count() > 100 {
        s.push_str("...");
    }
    s
}

/// A member path, built only when a violation is reported.
pub(crate) trait PathFn: Fn() -> String {}
impl<F: Fn() -> String> PathFn for F {}

impl Violations {
    fn push(&mut self, value: String, path: String, constraint: &str) {
        self.0.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    fn required<T>(&mut self, v: &Option<T>, path: impl PathFn) {
        if v.is_none() {
            self.push("null".into(), path(), "Member must not be null");
        }
    }

    fn string(
        &mut self,
        v: Option<&str>,
        path: impl PathFn,
        min: usize,
        max: Option<usize>,
        pattern: Option<(&Regex, &str)>,
    ) {
        let Some(v) = v else { return };
        let len = if v.is_ascii() {
            v.len()
        } else {
            v.chars().count()
        };
        if len < min {
            self.push(
                format!("'{}'", show(v)),
                path(),
                &format!("Member must have length greater than or equal to {min}"),
            );
        }
        if let Some(max) = max {
            if len > max {
                self.push(
                    format!("'{}'", show(v)),
                    path(),
                    &format!("Member must have length less than or equal to {max}"),
                );
            }
        }
        if let Some((re, src)) = pattern {
            if !re.is_match(v) {
                self.push(
                    format!("'{}'", show(v)),
                    path(),
                    &format!("Member must satisfy regular expression pattern: {src}"),
                );
            }
        }
    }

    fn int(&mut self, v: Option<i64>, path: impl PathFn, min: i64, max: i64) {
        let Some(v) = v else { return };
        if v < min {
            self.push(
                format!("'{v}'"),
                path(),
                &format!("Member must have value greater than or equal to {min}"),
            );
        }
        if v > max {
            self.push(
                format!("'{v}'"),
                path(),
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    fn list_len(&mut self, len: usize, path: impl PathFn, min: usize, max: usize) {
        if len < min {
            self.push(
                format!("'[{len} items]'"),
                path(),
                &format!("Member must have length greater than or equal to {min}"),
            );
        }
        if len > max {
            self.push(
                format!("'[{len} items]'"),
                path(),
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    pub fn product_code(&mut self, v: Option<&str>, path: impl PathFn) {
        self.string(
            v,
            path,
            0,
            Some(255),
            Some((&PRODUCT_CODE_RE, PRODUCT_CODE_PATTERN)),
        );
    }

    fn allocations(&mut self, allocations: &Option<Vec<UsageAllocation>>, path: impl PathFn) {
        let Some(list) = allocations else { return };
        self.list_len(list.len(), &path, 1, 2500);
        for (i, a) in list.iter().enumerate() {
            let p = || format!("{}.{}.member", path(), i + 1);
            let q = || format!("{}.allocatedUsageQuantity", p());
            self.required(&a.allocated_usage_quantity, q);
            self.int(a.allocated_usage_quantity, q, 0, MAX_QUANTITY);
            if let Some(tags) = &a.tags {
                self.list_len(tags.len(), || format!("{}.tags", p()), 1, 5);
                for (j, t) in tags.iter().enumerate() {
                    let tp = || format!("{}.tags.{}.member", p(), j + 1);
                    let key = || format!("{}.key", tp());
                    let value = || format!("{}.value", tp());
                    self.required(&t.key, key);
                    self.required(&t.value, value);
                    let tag = Some((&*TAG_RE, TAG_PATTERN));
                    self.string(t.key.as_deref(), key, 1, Some(100), tag);
                    self.string(t.value.as_deref(), value, 1, Some(256), tag);
                }
            }
        }
    }

    /// Returns `ValidationException` if anything was collected.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ApiError::validation(format!(
                "1 validation error detected: {}",
                self.0[0]
            ))),
            n => Err(ApiError::validation(format!(
                "{n} validation errors detected: {}",
                self.0.join("; ")
            ))),
        }
    }
}

fn at(path: &'static str) -> impl PathFn {
    move || path.to_string()
}

/// Model constraints of `BatchMeterUsageRequest`.
pub(crate) fn validate_batch(input: &BatchMeterUsageInput) -> Result<(), ApiError> {
    let mut v = Violations::default();
    v.required(&input.usage_records, at("usageRecords"));
    v.product_code(input.product_code.as_deref(), at("productCode"));
    if let Some(records) = &input.usage_records {
        v.list_len(records.len(), at("usageRecords"), 0, 25);
        for (i, r) in records.iter().enumerate() {
            validate_record(&mut v, r, i + 1);
        }
    }
    v.finish()
}

fn validate_record(v: &mut Violations, r: &UsageRecord, n: usize) {
    let p = |member: &str| format!("usageRecords.{n}.member.{member}");
    v.required(&r.timestamp, || p("timestamp"));
    v.required(&r.dimension, || p("dimension"));
    v.string(
        r.customer_identifier.as_deref(),
        || p("customerIdentifier"),
        0,
        Some(255),
        None,
    );
    v.string(
        r.dimension.as_deref(),
        || p("dimension"),
        1,
        Some(255),
        None,
    );
    v.int(r.quantity, || p("quantity"), 0, MAX_QUANTITY);
    v.string(
        r.customer_aws_account_id.as_deref(),
        || p("customerAWSAccountId"),
        1,
        Some(255),
        Some((&ACCOUNT_ID_RE, ACCOUNT_ID_PATTERN)),
    );
    v.string(
        r.license_arn.as_deref(),
        || p("licenseArn"),
        0,
        None,
        Some((&LICENSE_ARN_RE, LICENSE_ARN_PATTERN)),
    );
    v.allocations(&r.usage_allocations, || p("usageAllocations"));
}

/// Model constraints of `MeterUsageRequest`.
pub(crate) fn validate_meter(input: &MeterUsageInput) -> Result<(), ApiError> {
    let mut v = Violations::default();
    v.required(&input.product_code, at("productCode"));
    v.required(&input.timestamp, at("timestamp"));
    v.required(&input.usage_dimension, at("usageDimension"));
    v.product_code(input.product_code.as_deref(), at("productCode"));
    v.string(
        input.usage_dimension.as_deref(),
        at("usageDimension"),
        1,
        Some(255),
        None,
    );
    v.int(input.usage_quantity, at("usageQuantity"), 0, MAX_QUANTITY);
    v.allocations(&input.usage_allocations, at("usageAllocations"));
    v.string(
        input.client_token.as_deref(),
        at("clientToken"),
        1,
        Some(64),
        None,
    );
    v.finish()
}

/// Model constraints of `ResolveCustomerRequest`.
pub(crate) fn validate_resolve(input: &ResolveCustomerInput) -> Result<(), ApiError> {
    let mut v = Violations::default();
    v.required(&input.registration_token, at("registrationToken"));
    if input.registration_token.as_deref() == Some("") {
        v.push(
            "''".into(),
            "registrationToken".into(),
            "Member must satisfy regular expression pattern: [\\s\\S]+",
        );
    }
    v.finish()
}

/// Model constraints of `RegisterUsageRequest`. `PublicKeyVersion < 1` is left to the
/// operation, which answers `InvalidPublicKeyVersionException` as the service does.
pub(crate) fn validate_register(input: &RegisterUsageInput) -> Result<(), ApiError> {
    let mut v = Violations::default();
    v.required(&input.product_code, at("productCode"));
    v.required(&input.public_key_version, at("publicKeyVersion"));
    v.product_code(input.product_code.as_deref(), at("productCode"));
    v.string(input.nonce.as_deref(), at("nonce"), 0, Some(255), None);
    v.finish()
}

/// Usage timestamp as epoch seconds.
pub(crate) fn timestamp_secs(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile_and_match() {
        assert!(PRODUCT_CODE_RE.is_match("prod-1234"));
        assert!(!PRODUCT_CODE_RE.is_match("prod 1234"));
        assert!(ACCOUNT_ID_RE.is_match("111122223333"));
        assert!(!ACCOUNT_ID_RE.is_match("1111a"));
        assert!(LICENSE_ARN_RE.is_match(crate::LICENSE_ARN));
        assert!(!LICENSE_ARN_RE.is_match("arn:nope"));
        assert!(TAG_RE.is_match("team/a:b@c d=e.f_g+h"));
        assert!(!TAG_RE.is_match("tab\there"));
        assert!(!TAG_RE.is_match("caf\u{e9}"));
    }
}

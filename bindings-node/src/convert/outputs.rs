// SPDX-License-Identifier: Apache-2.0
// Core outputs as the JSON the JS layer parses (SDK v3 shapes, `$metadata`, the attempt log).

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageOutput;
use marketplace_metering::operation::meter_usage::MeterUsageOutput;
use marketplace_metering::operation::register_usage::RegisterUsageOutput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerOutput;
use marketplace_metering::types::{UsageRecord, UsageRecordResult};
use marketplace_metering::ResponseMetadata;
use serde_json::{json, Map, Value};

pub(super) fn meta(m: &ResponseMetadata) -> Value {
    serde_json::to_value(Metadata::from(m)).unwrap_or(Value::Null)
}

/// Drops `null` members, as SDK v3 leaves absent members out.
pub(super) fn compact(v: Value) -> Value {
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
pub(super) struct Metadata<'a> {
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

/// The `BatchMeterUsage` output as `[$metadata, [result row, …], [record row, …]]`: rows are
/// arrays (no member names to write, parse and look up again for 25 results), built back into
/// SDK v3's objects by index.js (`resultFromRow`, `recordFromRow`), which leave a `null` member out.
struct BatchOutput<'a>(&'a BatchMeterUsageOutput);

impl serde::Serialize for BatchOutput<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let o = self.0;
        let mut out = s.serialize_tuple(3)?;
        out.serialize_element(&Metadata::from(o.metadata()))?;
        out.serialize_element(&Rows(o.results(), ResultRow))?;
        out.serialize_element(&Rows(o.unprocessed_records(), RecordRow))?;
        out.end()
    }
}

/// A list written as rows, with no list of rows built first.
struct Rows<'a, T, R>(&'a [T], fn(&'a T) -> R);

impl<'a, T, R: serde::Serialize> serde::Serialize for Rows<'a, T, R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(self.1))
    }
}

/// `[Timestamp (epoch ms), CustomerIdentifier, Dimension, Quantity, UsageAllocations,
/// CustomerAWSAccountId, LicenseArn]`.
struct RecordRow<'a>(&'a UsageRecord);

impl serde::Serialize for RecordRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let r = self.0;
        let t = r.timestamp();
        let allocations = r.usage_allocations();
        let mut row = s.serialize_tuple(7)?;
        // Whole milliseconds, as the request carried them (the core sends ms precision). A
        // time past i64 milliseconds (a broken server's) goes as a float no Date can hold, so
        // JS reads an Invalid Date rather than a wrapped, wrong one.
        match t.to_millis() {
            Ok(ms) => row.serialize_element(&ms)?,
            Err(_) => row.serialize_element(&(t.secs() as f64 * 1000.0))?,
        }
        row.serialize_element(&r.customer_identifier())?;
        row.serialize_element(r.dimension())?;
        row.serialize_element(&r.quantity())?;
        row.serialize_element(&(!allocations.is_empty()).then_some(allocations))?;
        row.serialize_element(&r.customer_aws_account_id())?;
        row.serialize_element(&r.license_arn())?;
        row.end()
    }
}

/// `[UsageRecord row or null, MeteringRecordId, Status]`.
struct ResultRow<'a>(&'a UsageRecordResult);

impl serde::Serialize for ResultRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let r = self.0;
        let mut row = s.serialize_tuple(3)?;
        row.serialize_element(&r.usage_record().map(RecordRow))?;
        row.serialize_element(&r.metering_record_id())?;
        row.serialize_element(&r.status().map(|s| s.as_str()))?;
        row.end()
    }
}

/// `BatchMeterUsage` output as JSON.
pub fn batch_meter_usage_output(o: &BatchMeterUsageOutput) -> String {
    // Cannot fail: every map key is a string and every number finite.
    serde_json::to_string(&BatchOutput(o)).unwrap_or_default()
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

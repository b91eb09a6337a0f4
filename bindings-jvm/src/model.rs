// SPDX-License-Identifier: Apache-2.0
// The model's shapes as uniffi records, and their translation to and from the core's types.
//
// Every input member is optional, list items included: Java can pass `null` anywhere, and a
// missing required member must come back as the core's `InvalidInput` naming the field, never
// as a NullPointerException or a crash.

use std::time::SystemTime;

use marketplace_metering::operation::batch_meter_usage::{
    BatchMeterUsageInput, BatchMeterUsageOutput,
};
use marketplace_metering::operation::meter_usage::{MeterUsageInput, MeterUsageOutput};
use marketplace_metering::operation::register_usage::{RegisterUsageInput, RegisterUsageOutput};
use marketplace_metering::operation::resolve_customer::{
    ResolveCustomerInput, ResolveCustomerOutput,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{self, UsageRecordResult};
use marketplace_metering::{BuildError, Error, ResponseMetadata};

use crate::error::{invalid, NativeError};

type R<T> = Result<T, NativeError>;

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct UsageAllocation {
    pub allocated_usage_quantity: Option<i32>,
    pub tags: Option<Vec<Option<Tag>>>,
}

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct UsageRecord {
    pub timestamp: Option<SystemTime>,
    pub customer_identifier: Option<String>,
    pub dimension: Option<String>,
    pub quantity: Option<i32>,
    pub usage_allocations: Option<Vec<Option<UsageAllocation>>>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct UsageRecordResultRecord {
    pub usage_record: Option<UsageRecord>,
    pub metering_record_id: Option<String>,
    /// `Success`, `CustomerNotSubscribed`, `DuplicateRecord` or a value this version does not know.
    pub status: Option<String>,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct Metadata {
    pub request_id: Option<String>,
    pub http_status: Option<u16>,
    pub attempts: u32,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct BatchMeterUsageResult {
    pub results: Vec<UsageRecordResultRecord>,
    pub unprocessed_records: Vec<UsageRecord>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct MeterUsageResult {
    pub metering_record_id: Option<String>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct ResolveCustomerResult {
    pub customer_identifier: Option<String>,
    pub product_code: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct RegisterUsageResult {
    pub public_key_rotation_timestamp: Option<SystemTime>,
    pub signature: Option<String>,
    pub metadata: Metadata,
}

// ------------------------------------------------------------------ inputs

fn missing(path: &str, e: BuildError) -> NativeError {
    if path.is_empty() {
        e.into()
    } else {
        invalid(format!("{path}.{}", e.field()), "is required")
    }
}

fn item<T>(v: &Option<T>, path: impl FnOnce() -> String) -> R<&T> {
    v.as_ref()
        .ok_or_else(|| invalid(path(), "is required (null list item)"))
}

pub fn timestamp(t: SystemTime) -> DateTime {
    DateTime::from(t)
}

fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

fn tag(t: &Tag, path: &str) -> R<types::Tag> {
    let mut b = types::Tag::builder();
    if let Some(k) = &t.key {
        b = b.key(k.clone());
    }
    if let Some(v) = &t.value {
        b = b.value(v.clone());
    }
    b.build().map_err(|e| missing(path, e))
}

pub fn allocations(v: &[Option<UsageAllocation>], path: &str) -> R<Vec<types::UsageAllocation>> {
    let mut out = Vec::with_capacity(v.len());
    for (i, a) in v.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let a = item(a, || p.clone())?;
        let mut b = types::UsageAllocation::builder();
        if let Some(q) = a.allocated_usage_quantity {
            b = b.allocated_usage_quantity(q);
        }
        if let Some(tags) = &a.tags {
            let tp = format!("{p}.Tags");
            let mut built = Vec::with_capacity(tags.len());
            for (j, t) in tags.iter().enumerate() {
                let tpj = format!("{tp}[{j}]");
                built.push(tag(item(t, || tpj.clone())?, &tpj)?);
            }
            b = b.set_tags(Some(built));
        }
        out.push(b.build().map_err(|e| missing(&p, e))?);
    }
    Ok(out)
}

fn usage_record(r: &UsageRecord, i: usize) -> R<types::UsageRecord> {
    let path = || format!("UsageRecords[{i}]");
    let required = |field: &str| invalid(format!("{}.{field}", path()), "is required");
    let usage_allocations = match &r.usage_allocations {
        Some(a) => Some(allocations(a, &format!("{}.UsageAllocations", path()))?),
        None => None,
    };
    Ok(types::UsageRecord::from_members(
        timestamp(r.timestamp.ok_or_else(|| required("Timestamp"))?),
        r.customer_identifier.as_deref(),
        r.dimension
            .as_deref()
            .ok_or_else(|| required("Dimension"))?,
        r.quantity,
        usage_allocations,
        r.customer_aws_account_id.as_deref(),
        r.license_arn.as_deref(),
    ))
}

pub fn batch_meter_usage_input(
    product_code: Option<String>,
    usage_records: Option<Vec<Option<UsageRecord>>>,
) -> R<BatchMeterUsageInput> {
    let mut b = BatchMeterUsageInput::builder();
    if let Some(p) = product_code {
        b = b.product_code(p);
    }
    if let Some(recs) = usage_records {
        let mut out = Vec::with_capacity(recs.len());
        for (i, r) in recs.iter().enumerate() {
            out.push(usage_record(item(r, || format!("UsageRecords[{i}]"))?, i)?);
        }
        b = b.set_usage_records(Some(out));
    }
    Ok(b.build()?)
}

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct MeterUsageParams {
    pub product_code: Option<String>,
    pub timestamp: Option<SystemTime>,
    pub usage_dimension: Option<String>,
    pub usage_quantity: Option<i32>,
    pub dry_run: Option<bool>,
    pub usage_allocations: Option<Vec<Option<UsageAllocation>>>,
    pub client_token: Option<String>,
}

pub fn meter_usage_input(p: MeterUsageParams) -> R<MeterUsageInput> {
    let mut b = MeterUsageInput::builder();
    if let Some(v) = p.product_code {
        b = b.product_code(v);
    }
    if let Some(v) = p.timestamp {
        b = b.timestamp(timestamp(v));
    }
    if let Some(v) = p.usage_dimension {
        b = b.usage_dimension(v);
    }
    if let Some(v) = p.usage_quantity {
        b = b.usage_quantity(v);
    }
    if let Some(v) = p.dry_run {
        b = b.dry_run(v);
    }
    if let Some(a) = &p.usage_allocations {
        b = b.set_usage_allocations(Some(allocations(a, "UsageAllocations")?));
    }
    if let Some(v) = p.client_token {
        b = b.client_token(v);
    }
    Ok(b.build()?)
}

pub fn resolve_customer_input(registration_token: Option<String>) -> R<ResolveCustomerInput> {
    let mut b = ResolveCustomerInput::builder();
    if let Some(v) = registration_token {
        b = b.registration_token(v);
    }
    Ok(b.build()?)
}

pub fn register_usage_input(
    product_code: Option<String>,
    public_key_version: Option<i32>,
    nonce: Option<String>,
) -> R<RegisterUsageInput> {
    let mut b = RegisterUsageInput::builder();
    if let Some(v) = product_code {
        b = b.product_code(v);
    }
    if let Some(v) = public_key_version {
        b = b.public_key_version(v);
    }
    if let Some(v) = nonce {
        b = b.nonce(v);
    }
    Ok(b.build()?)
}

// ----------------------------------------------------------------- outputs

fn metadata(m: &ResponseMetadata) -> Metadata {
    Metadata {
        request_id: m.request_id().map(str::to_owned),
        http_status: m.http_status(),
        attempts: m.attempts(),
    }
}

fn usage_record_out(r: &types::UsageRecord) -> UsageRecord {
    UsageRecord {
        timestamp: system_time(r.timestamp()),
        customer_identifier: r.customer_identifier().map(str::to_owned),
        dimension: Some(r.dimension().to_owned()),
        quantity: r.quantity(),
        usage_allocations: if r.usage_allocations().is_empty() {
            None
        } else {
            Some(
                r.usage_allocations()
                    .iter()
                    .map(|a| {
                        Some(UsageAllocation {
                            allocated_usage_quantity: Some(a.allocated_usage_quantity()),
                            tags: if a.tags().is_empty() {
                                None
                            } else {
                                Some(
                                    a.tags()
                                        .iter()
                                        .map(|t| {
                                            Some(Tag {
                                                key: Some(t.key().to_owned()),
                                                value: Some(t.value().to_owned()),
                                            })
                                        })
                                        .collect(),
                                )
                            },
                        })
                    })
                    .collect(),
            )
        },
        customer_aws_account_id: r.customer_aws_account_id().map(str::to_owned),
        license_arn: r.license_arn().map(str::to_owned),
    }
}

fn result_out(r: &UsageRecordResult) -> UsageRecordResultRecord {
    UsageRecordResultRecord {
        usage_record: r.usage_record().map(usage_record_out),
        metering_record_id: r.metering_record_id().map(str::to_owned),
        status: r.status().map(|s| s.as_str().to_owned()),
    }
}

pub fn batch_meter_usage_output(o: &BatchMeterUsageOutput) -> BatchMeterUsageResult {
    BatchMeterUsageResult {
        results: o.results().iter().map(result_out).collect(),
        unprocessed_records: o
            .unprocessed_records()
            .iter()
            .map(usage_record_out)
            .collect(),
        metadata: metadata(o.metadata()),
    }
}

pub fn meter_usage_output(o: &MeterUsageOutput) -> MeterUsageResult {
    MeterUsageResult {
        metering_record_id: o.metering_record_id().map(str::to_owned),
        metadata: metadata(o.metadata()),
    }
}

pub fn resolve_customer_output(o: &ResolveCustomerOutput) -> ResolveCustomerResult {
    ResolveCustomerResult {
        customer_identifier: o.customer_identifier().map(str::to_owned),
        product_code: o.product_code().map(str::to_owned),
        customer_aws_account_id: o.customer_aws_account_id().map(str::to_owned),
        license_arn: o.license_arn().map(str::to_owned),
        metadata: metadata(o.metadata()),
    }
}

pub fn register_usage_output(o: &RegisterUsageOutput) -> RegisterUsageResult {
    RegisterUsageResult {
        public_key_rotation_timestamp: o.public_key_rotation_timestamp().and_then(system_time),
        signature: o.signature().map(str::to_owned),
        metadata: metadata(o.metadata()),
    }
}

/// Converts an error of one operation into the face's error.
pub fn op_err<E: Into<Error>>(e: E) -> NativeError {
    e.into().into()
}

// SPDX-License-Identifier: Apache-2.0
// The four operations' inputs (SDK v3 shapes) read from JS objects.

use std::borrow::Cow;

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::operation::meter_usage::MeterUsageInput;
use marketplace_metering::operation::register_usage::RegisterUsageInput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{Tag, UsageAllocation, UsageRecord};
use marketplace_metering::validate;
use napi::bindgen_prelude::*;

use super::{
    array, boolean, integer, member, not_a_member, object, plain_object, present, quantity, root,
    string, timestamp, ConvError, Members, Path, R,
};

pub(super) fn tag(v: Unknown<'_>, path: Path<'_>) -> R<Tag> {
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

pub(super) fn allocations(v: Unknown<'_>, path: Path<'_>) -> R<Vec<UsageAllocation>> {
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

pub(super) const USAGE_RECORD_KEYS: &[&str] = &[
    "Timestamp",
    "CustomerIdentifier",
    "CustomerAWSAccountId",
    "LicenseArn",
    "Dimension",
    "Quantity",
    "UsageAllocations",
];

pub(super) fn usage_record(v: Unknown<'_>, path: Path<'_>) -> R<UsageRecord> {
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

/// A record as `encodeBatchMeterUsage` (encode.js) writes it: Timestamp (epoch milliseconds of
/// a valid `Date`), CustomerIdentifier, CustomerAWSAccountId, LicenseArn, Dimension, Quantity
/// (a safe integer); `null` for an absent member.
#[derive(serde::Deserialize)]
struct EncodedRecord<'a>(
    Option<i64>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    Option<i64>,
);

/// A string member, borrowed from the text unless it carries escapes (serde borrows a
/// `Cow<str>` only as a field of its own, not inside an `Option`).
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `BatchMeterUsage` input as encode.js writes it: `[ProductCode, [record, …]]`.
#[derive(serde::Deserialize)]
struct EncodedBatch<'a>(Option<String>, #[serde(borrow)] Vec<EncodedRecord<'a>>);

/// `BatchMeterUsage` input from the compact JSON text the JS layer writes when every value
/// has exactly the type [`batch_meter_usage_input`] takes without a question (25 records read
/// from one string instead of ~30 napi calls each). `None` on anything else, an input the
/// builders refuse included: the caller then reads the object itself, which names what is
/// wrong. So the text can only make a call cheaper, never decide what is valid.
pub fn batch_meter_usage_encoded(text: &str) -> Option<BatchMeterUsageInput> {
    let EncodedBatch(product_code, encoded) = serde_json::from_str(text).ok()?;
    if encoded.len() > validate::MAX_USAGE_RECORDS {
        return None;
    }
    let mut records = Vec::with_capacity(encoded.len());
    for EncodedRecord(ms, customer, account, license, dimension, quantity) in encoded {
        let quantity = match quantity {
            Some(q) => Some(validate::quantity_with(q, String::new).ok()?),
            None => None,
        };
        records.push(UsageRecord::from_members(
            DateTime::from_millis(ms?),
            customer.as_ref().map(Text::as_str),
            dimension?.as_str(),
            quantity,
            None,
            account.as_ref().map(Text::as_str),
            license.as_ref().map(Text::as_str),
        ));
    }
    BatchMeterUsageInput::builder()
        .set_product_code(product_code)
        .set_usage_records(Some(records))
        .build()
        .ok()
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

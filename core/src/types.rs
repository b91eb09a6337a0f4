// SPDX-License-Identifier: Apache-2.0
// The model's structures and enums, shaped like the AWS SDK for Rust's.

//! Data types of the Metering Service model.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::error::BuildError;
use crate::primitives::DateTime;

/// Serde for `Timestamp` members: epoch seconds out (integer when whole, else with
/// millisecond precision), int or float in.
pub(crate) mod epoch_seconds {
    use super::DateTime;
    use serde::{de, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &DateTime, s: S) -> Result<S::Ok, S::Error> {
        if t.subsec_nanos() == 0 {
            s.serialize_i64(t.secs())
        } else {
            // Millisecond precision, as the AWS SDKs send.
            let ms = (t.subsec_nanos() / 1_000_000) as f64 / 1000.0;
            s.serialize_f64(t.secs() as f64 + ms)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = DateTime;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch seconds as a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DateTime, E> {
                Ok(DateTime::from_secs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DateTime, E> {
                i64::try_from(v)
                    .map(DateTime::from_secs)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DateTime, E> {
                if v.is_finite() {
                    Ok(DateTime::from_secs_f64(v))
                } else {
                    Err(E::custom("timestamp is not finite"))
                }
            }
        }
        d.deserialize_any(V)
    }

    pub(crate) mod option {
        use super::DateTime;
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime>, D::Error> {
            #[derive(Deserialize)]
            struct W(#[serde(with = "super")] DateTime);
            Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// Generates the AWS-SDK-style builder accessors for optional scalar fields.
macro_rules! field {
    ($(#[doc = $doc:literal])* $name:ident, $set:ident, $get:ident: $ty:ty) => {
        $(#[doc = $doc])*
        pub fn $name(mut self, v: impl Into<$ty>) -> Self { self.$name = Some(v.into()); self }
        $(#[doc = $doc])*
        pub fn $set(mut self, v: Option<$ty>) -> Self { self.$name = v; self }
        $(#[doc = $doc])*
        pub fn $get(&self) -> &Option<$ty> { &self.$name }
    };
}

/// Generates accessors for list fields: `x(item)` appends one item.
macro_rules! list_field {
    ($(#[doc = $doc:literal])* $name:ident, $set:ident, $get:ident: $ty:ty) => {
        $(#[doc = $doc])*
        pub fn $name(mut self, v: $ty) -> Self { self.$name.get_or_insert_with(Vec::new).push(v); self }
        $(#[doc = $doc])*
        pub fn $set(mut self, v: Option<Vec<$ty>>) -> Self { self.$name = v; self }
        $(#[doc = $doc])*
        pub fn $get(&self) -> &Option<Vec<$ty>> { &self.$name }
    };
}
pub(crate) use {field, list_field};

/// A key-value pair attached to allocated usage.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub(crate) key: CompactString,
    #[serde(rename = "Value")]
    pub(crate) value: CompactString,
}

impl Tag {
    /// A builder.
    pub fn builder() -> TagBuilder {
        TagBuilder::default()
    }
    /// One part of a key-value pair that makes up a tag (1–100 characters).
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The optional part of a key-value pair that makes up a tag (1–256 characters).
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Builds a [`Tag`].
#[derive(Clone, Debug, Default)]
pub struct TagBuilder {
    key: Option<String>,
    value: Option<String>,
}

impl TagBuilder {
    field!(
        /// The tag key.
        key, set_key, get_key: String);
    field!(
        /// The tag value.
        value, set_value, get_value: String);
    /// Builds the tag; `Key` and `Value` are required.
    pub fn build(self) -> Result<Tag, BuildError> {
        Ok(Tag {
            key: self.key.ok_or(BuildError::missing("Key"))?.into(),
            value: self.value.ok_or(BuildError::missing("Value"))?.into(),
        })
    }
}

/// Usage allocations let you split usage into buckets by tags.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageAllocation {
    #[serde(rename = "AllocatedUsageQuantity")]
    pub(crate) allocated_usage_quantity: i32,
    #[serde(rename = "Tags", default, skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<Vec<Tag>>,
}

impl UsageAllocation {
    /// A builder.
    pub fn builder() -> UsageAllocationBuilder {
        UsageAllocationBuilder::default()
    }
    /// The total quantity allocated to this bucket of usage.
    pub fn allocated_usage_quantity(&self) -> i32 {
        self.allocated_usage_quantity
    }
    /// The tags, 1 to 5.
    pub fn tags(&self) -> &[Tag] {
        self.tags.as_deref().unwrap_or_default()
    }
}

/// Builds a [`UsageAllocation`].
#[derive(Clone, Debug, Default)]
pub struct UsageAllocationBuilder {
    allocated_usage_quantity: Option<i32>,
    tags: Option<Vec<Tag>>,
}

impl UsageAllocationBuilder {
    field!(
        /// The total quantity allocated to this bucket of usage.
        allocated_usage_quantity, set_allocated_usage_quantity, get_allocated_usage_quantity: i32);
    list_field!(
        /// The tags (appends one).
        tags, set_tags, get_tags: Tag);
    /// Builds the allocation; `AllocatedUsageQuantity` is required.
    pub fn build(self) -> Result<UsageAllocation, BuildError> {
        Ok(UsageAllocation {
            allocated_usage_quantity: self
                .allocated_usage_quantity
                .ok_or(BuildError::missing("AllocatedUsageQuantity"))?,
            tags: self.tags,
        })
    }
}

/// One metering record of a `BatchMeterUsage` call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    #[serde(rename = "Timestamp", with = "epoch_seconds")]
    pub(crate) timestamp: DateTime,
    #[serde(
        rename = "CustomerIdentifier",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) customer_identifier: Option<CompactString>,
    #[serde(rename = "Dimension")]
    pub(crate) dimension: CompactString,
    #[serde(rename = "Quantity", default, skip_serializing_if = "Option::is_none")]
    pub(crate) quantity: Option<i32>,
    #[serde(
        rename = "UsageAllocations",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) usage_allocations: Option<Vec<UsageAllocation>>,
    #[serde(
        rename = "CustomerAWSAccountId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) customer_aws_account_id: Option<CompactString>,
    #[serde(
        rename = "LicenseArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) license_arn: Option<CompactString>,
}

impl UsageRecord {
    /// The record's members as the service model names them, in the model's order: what a
    /// face's "unknown parameter" error lists, and what the response reader accepts.
    pub const MEMBERS: &'static [&'static str] = &[
        "Timestamp",
        "CustomerIdentifier",
        "Dimension",
        "Quantity",
        "UsageAllocations",
        "CustomerAWSAccountId",
        "LicenseArn",
    ];

    /// A builder.
    pub fn builder() -> UsageRecordBuilder {
        UsageRecordBuilder::default()
    }

    /// The record of these members, as [`UsageRecordBuilder::build`] makes it, from borrowed
    /// strings: without the builder's owned `String`s (a string up to 24 bytes is kept
    /// inline, no allocation) or its moves (the builder is moved at every member). The
    /// faces' converters make each record of a call this way.
    #[allow(clippy::too_many_arguments)]
    pub fn from_members(
        timestamp: DateTime,
        customer_identifier: Option<&str>,
        dimension: &str,
        quantity: Option<i32>,
        usage_allocations: Option<Vec<UsageAllocation>>,
        customer_aws_account_id: Option<&str>,
        license_arn: Option<&str>,
    ) -> UsageRecord {
        UsageRecord {
            timestamp,
            customer_identifier: customer_identifier.map(CompactString::from),
            dimension: CompactString::from(dimension),
            quantity,
            usage_allocations,
            customer_aws_account_id: customer_aws_account_id.map(CompactString::from),
            license_arn: license_arn.map(CompactString::from),
        }
    }

    /// When the usage happened (UTC); at most 6 hours old.
    pub fn timestamp(&self) -> &DateTime {
        &self.timestamp
    }
    /// The customer, for SaaS products registered through `ResolveCustomer`.
    pub fn customer_identifier(&self) -> Option<&str> {
        self.customer_identifier.as_deref()
    }
    /// The dimension, as defined in the product's listing.
    pub fn dimension(&self) -> &str {
        &self.dimension
    }
    /// The quantity consumed (0 when absent).
    pub fn quantity(&self) -> Option<i32> {
        self.quantity
    }
    /// The usage allocations.
    pub fn usage_allocations(&self) -> &[UsageAllocation] {
        self.usage_allocations.as_deref().unwrap_or_default()
    }
    /// The customer's AWS account id (with `LicenseArn`), instead of `CustomerIdentifier`.
    pub fn customer_aws_account_id(&self) -> Option<&str> {
        self.customer_aws_account_id.as_deref()
    }
    /// The customer's license (the service may need it with `CustomerAWSAccountId`).
    pub fn license_arn(&self) -> Option<&str> {
        self.license_arn.as_deref()
    }
}

/// Builds a [`UsageRecord`].
#[derive(Clone, Debug, Default)]
pub struct UsageRecordBuilder {
    timestamp: Option<DateTime>,
    customer_identifier: Option<String>,
    dimension: Option<String>,
    quantity: Option<i32>,
    usage_allocations: Option<Vec<UsageAllocation>>,
    customer_aws_account_id: Option<String>,
    license_arn: Option<String>,
}

impl UsageRecordBuilder {
    field!(
        /// When the usage happened.
        timestamp, set_timestamp, get_timestamp: DateTime);
    field!(
        /// The customer identifier.
        customer_identifier, set_customer_identifier, get_customer_identifier: String);
    field!(
        /// The dimension.
        dimension, set_dimension, get_dimension: String);
    field!(
        /// The quantity.
        quantity, set_quantity, get_quantity: i32);
    list_field!(
        /// The usage allocations (appends one).
        usage_allocations, set_usage_allocations, get_usage_allocations: UsageAllocation);
    field!(
        /// The customer's AWS account id.
        customer_aws_account_id, set_customer_aws_account_id, get_customer_aws_account_id: String);
    field!(
        /// The customer's license ARN.
        license_arn, set_license_arn, get_license_arn: String);
    /// Builds the record; `Timestamp` and `Dimension` are required.
    pub fn build(self) -> Result<UsageRecord, BuildError> {
        Ok(UsageRecord {
            timestamp: self.timestamp.ok_or(BuildError::missing("Timestamp"))?,
            customer_identifier: self.customer_identifier.map(Into::into),
            dimension: self
                .dimension
                .ok_or(BuildError::missing("Dimension"))?
                .into(),
            quantity: self.quantity,
            usage_allocations: self.usage_allocations,
            customer_aws_account_id: self.customer_aws_account_id.map(Into::into),
            license_arn: self.license_arn.map(Into::into),
        })
    }
}

/// The outcome of one record of a `BatchMeterUsage` call.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct UsageRecordResult {
    #[serde(
        rename = "UsageRecord",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) usage_record: Option<UsageRecord>,
    #[serde(
        rename = "MeteringRecordId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) metering_record_id: Option<CompactString>,
    #[serde(rename = "Status", default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<UsageRecordResultStatus>,
}

impl UsageRecordResult {
    /// The record as the service received it.
    pub fn usage_record(&self) -> Option<&UsageRecord> {
        self.usage_record.as_ref()
    }
    /// The id the service gave the record (for `Success` and `DuplicateRecord` with the same quantity).
    pub fn metering_record_id(&self) -> Option<&str> {
        self.metering_record_id.as_deref()
    }
    /// `Success`, `CustomerNotSubscribed`, `DuplicateRecord`, or a value this version does not know.
    pub fn status(&self) -> Option<&UsageRecordResultStatus> {
        self.status.as_ref()
    }
}

/// The per-record status of `BatchMeterUsage`. Unknown values pass through as `Unknown`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UsageRecordResultStatus {
    /// The record was metered.
    Success,
    /// The customer has not subscribed to the product; the record was not metered.
    CustomerNotSubscribed,
    /// A record with another quantity exists for this customer, dimension and hour.
    DuplicateRecord,
    /// A status this version does not know.
    Unknown(String),
}

impl UsageRecordResultStatus {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            UsageRecordResultStatus::Success => "Success",
            UsageRecordResultStatus::CustomerNotSubscribed => "CustomerNotSubscribed",
            UsageRecordResultStatus::DuplicateRecord => "DuplicateRecord",
            UsageRecordResultStatus::Unknown(s) => s,
        }
    }
    /// Every known value.
    pub fn values() -> &'static [&'static str] {
        &["Success", "CustomerNotSubscribed", "DuplicateRecord"]
    }
}

impl From<&str> for UsageRecordResultStatus {
    fn from(s: &str) -> Self {
        match s {
            "Success" => UsageRecordResultStatus::Success,
            "CustomerNotSubscribed" => UsageRecordResultStatus::CustomerNotSubscribed,
            "DuplicateRecord" => UsageRecordResultStatus::DuplicateRecord,
            other => UsageRecordResultStatus::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for UsageRecordResultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for UsageRecordResultStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UsageRecordResultStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not `Cow<str>`: serde's `Cow` impl always allocates an owned String.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = UsageRecordResultStatus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(UsageRecordResultStatus::from(s))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record's strings are stored inline up to 24 bytes and on the heap past that: every
    /// length around the boundary, a multi-byte character across it, and escapes, read back
    /// exactly from the builder, from JSON and after a clone, as `String` did.
    #[test]
    fn strings_of_every_length_round_trip_exactly() {
        let mut texts: Vec<String> = (0..=64).map(|n| "x".repeat(n)).collect();
        for pad in 20..=26 {
            texts.push(format!("{}\u{1F600}é", "a".repeat(pad)));
        }
        texts.push("q\"uote\\back\nline\u{0}nul".into());
        texts.push("é".repeat(300));
        for t in &texts {
            let rec = UsageRecord::builder()
                .timestamp(DateTime::from_secs(1_700_000_000))
                .customer_identifier(t.clone())
                .dimension(t.clone())
                .customer_aws_account_id(t.clone())
                .license_arn(t.clone())
                .usage_allocations(
                    UsageAllocation::builder()
                        .allocated_usage_quantity(1)
                        .tags(
                            Tag::builder()
                                .key(t.clone())
                                .value(t.clone())
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            let json = serde_json::to_string(&rec).unwrap();
            let back: UsageRecord = serde_json::from_str(&json).unwrap();
            for r in [&rec, &back, &rec.clone()] {
                assert_eq!(r.customer_identifier(), Some(t.as_str()));
                assert_eq!(r.dimension(), t);
                assert_eq!(r.customer_aws_account_id(), Some(t.as_str()));
                assert_eq!(r.license_arn(), Some(t.as_str()));
                assert_eq!(r.usage_allocations()[0].tags()[0].key(), t);
                assert_eq!(r.usage_allocations()[0].tags()[0].value(), t);
            }
            assert_eq!(back, rec);
            assert!(format!("{rec:?}").contains(&format!("{t:?}")));
            let result: UsageRecordResult = serde_json::from_str(&format!(
                r#"{{"MeteringRecordId":{},"Status":"Success"}}"#,
                serde_json::to_string(t).unwrap()
            ))
            .unwrap();
            assert_eq!(result.metering_record_id(), Some(t.as_str()));
        }
        // An escaped member decodes the same as its plain form.
        let r: UsageRecordResult =
            serde_json::from_str(r#"{"MeteringRecordId":"\u006d-\u00e9-\ud83d\ude00"}"#).unwrap();
        assert_eq!(r.metering_record_id(), Some("m-é-\u{1F600}"));
    }

    #[test]
    fn unknown_status_passes_through() {
        let r: UsageRecordResult =
            serde_json::from_str(r#"{"MeteringRecordId":"m","Status":"Throttled"}"#).unwrap();
        assert_eq!(
            r.status(),
            Some(&UsageRecordResultStatus::Unknown("Throttled".into()))
        );
        assert_eq!(r.status().unwrap().as_str(), "Throttled");
    }

    #[test]
    fn timestamps_out_as_epoch_seconds_in_from_int_or_float() {
        let rec = UsageRecord::builder()
            .timestamp(DateTime::from_secs(1_700_000_000))
            .customer_identifier("c")
            .dimension("d")
            .quantity(3)
            .build()
            .unwrap();
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            json,
            r#"{"Timestamp":1700000000,"CustomerIdentifier":"c","Dimension":"d","Quantity":3}"#
        );
        let frac = UsageRecord {
            timestamp: DateTime::from_millis(1_700_000_000_250),
            ..rec.clone()
        };
        assert!(serde_json::to_string(&frac)
            .unwrap()
            .contains("1700000000.25"));
        let back: UsageRecord =
            serde_json::from_str(r#"{"Timestamp":1.7E9,"Dimension":"d"}"#).unwrap();
        assert_eq!(back.timestamp().secs(), 1_700_000_000);
        let back: UsageRecord =
            serde_json::from_str(r#"{"Timestamp":1700000000.5,"Dimension":"d"}"#).unwrap();
        assert_eq!(back.timestamp().subsec_nanos(), 500_000_000);
        assert!(
            serde_json::from_str::<UsageRecord>(r#"{"Timestamp":"x","Dimension":"d"}"#).is_err()
        );
    }

    #[test]
    fn builders_require_their_fields() {
        assert_eq!(
            UsageRecord::builder()
                .dimension("d")
                .build()
                .unwrap_err()
                .field(),
            "Timestamp"
        );
        assert_eq!(
            Tag::builder().key("k").build().unwrap_err().field(),
            "Value"
        );
        assert_eq!(
            UsageAllocation::builder().build().unwrap_err().field(),
            "AllocatedUsageQuantity"
        );
    }
}

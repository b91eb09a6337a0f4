// SPDX-License-Identifier: Apache-2.0
// BatchMeterUsage: up to 25 usage records for SaaS customers in one call.

//! `BatchMeterUsage`.

use serde::{Deserialize, Serialize};

pub(crate) mod read;

use super::{fluent_builder, forward, Operation};
use crate::error::{BatchMeterUsageError, BuildError};
use crate::types::{field, list_field, UsageRecord, UsageRecordResult};
use crate::{Error, ResponseMetadata};

/// The input of `BatchMeterUsage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchMeterUsageInput {
    #[serde(rename = "UsageRecords")]
    pub(crate) usage_records: Vec<UsageRecord>,
    #[serde(rename = "ProductCode", skip_serializing_if = "Option::is_none")]
    pub(crate) product_code: Option<String>,
}

impl BatchMeterUsageInput {
    /// A builder.
    pub fn builder() -> BatchMeterUsageInputBuilder {
        BatchMeterUsageInputBuilder::default()
    }
    /// The records, 0 to 25.
    pub fn usage_records(&self) -> &[UsageRecord] {
        &self.usage_records
    }
    /// The product code; optional when every record carries a `LicenseArn`.
    pub fn product_code(&self) -> Option<&str> {
        self.product_code.as_deref()
    }
}

/// Builds a [`BatchMeterUsageInput`].
#[derive(Clone, Debug, Default)]
pub struct BatchMeterUsageInputBuilder {
    usage_records: Option<Vec<UsageRecord>>,
    product_code: Option<String>,
}

impl BatchMeterUsageInputBuilder {
    list_field!(
        /// The usage records (appends one).
        usage_records, set_usage_records, get_usage_records: UsageRecord);
    field!(
        /// The product code.
        product_code, set_product_code, get_product_code: String);
    /// Builds the input; `UsageRecords` is required.
    pub fn build(self) -> Result<BatchMeterUsageInput, BuildError> {
        Ok(BatchMeterUsageInput {
            usage_records: self
                .usage_records
                .ok_or(BuildError::missing("UsageRecords"))?,
            product_code: self.product_code,
        })
    }
}

/// The output of `BatchMeterUsage`.
///
/// Check every result's status and re-send `unprocessed_records`: a call that succeeds can
/// still leave records unmetered.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct BatchMeterUsageOutput {
    #[serde(rename = "Results", default, deserialize_with = "batch_vec")]
    pub(crate) results: Vec<UsageRecordResult>,
    #[serde(rename = "UnprocessedRecords", default, deserialize_with = "batch_vec")]
    pub(crate) unprocessed_records: Vec<UsageRecord>,
    #[serde(skip)]
    pub(crate) meta: ResponseMetadata,
}

impl BatchMeterUsageOutput {
    /// One result per processed record.
    pub fn results(&self) -> &[UsageRecordResult] {
        &self.results
    }
    /// Records the service did not process; send them again.
    pub fn unprocessed_records(&self) -> &[UsageRecord] {
        &self.unprocessed_records
    }
    /// Request id, HTTP status, attempts.
    pub fn metadata(&self) -> &ResponseMetadata {
        &self.meta
    }
}

/// A list of a response, with room for a whole batch at its first item: JSON gives no length,
/// and growing one of these large items 4 → 8 → 16 → 32 copies each of them three times. A
/// longer list (from a server that broke the limit) still grows as it must. `null` is an
/// empty list, as the AWS SDKs read it.
fn batch_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let room = seq
                .size_hint()
                .unwrap_or(crate::validate::MAX_USAGE_RECORDS)
                .min(crate::validate::MAX_USAGE_RECORDS);
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                if out.capacity() == 0 {
                    out.reserve_exact(room);
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    struct Nullable<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Nullable<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Vec<T>, D2::Error> {
            d.deserialize_seq(V(std::marker::PhantomData))
        }
    }
    d.deserialize_option(Nullable(std::marker::PhantomData))
}

pub(crate) struct BatchMeterUsage;

impl Operation for BatchMeterUsage {
    const NAME: &'static str = "BatchMeterUsage";
    const TARGET: &'static str = "AWSMPMeteringService.BatchMeterUsage";
    type Input = BatchMeterUsageInput;
    type Output = BatchMeterUsageOutput;
    fn validate(input: &Self::Input) -> Result<(), Error> {
        crate::validate::batch_meter_usage(input)
    }
    fn size_hint(input: &Self::Input) -> usize {
        64 + 160 * input.usage_records.len()
    }
    fn answered(output: &Self::Output) -> bool {
        !output.results.is_empty() || !output.unprocessed_records.is_empty()
    }

    fn set_meta(output: &mut Self::Output, meta: ResponseMetadata) {
        output.meta = meta;
    }
}

fluent_builder!(
    /// Sends `BatchMeterUsage`; made by [`crate::Client::batch_meter_usage`].
    BatchMeterUsageFluentBuilder, BatchMeterUsageInputBuilder, BatchMeterUsageOutput,
    BatchMeterUsageError, send_batch_meter_usage);

forward!(BatchMeterUsageFluentBuilder {
    /// A usage record (appends one).
    usage_records, set_usage_records: UsageRecord => Vec<UsageRecord>;
    /// The product code.
    product_code, set_product_code: impl Into<String> => String;
});

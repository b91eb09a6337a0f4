// SPDX-License-Identifier: Apache-2.0
// MeterUsage: one dimension's hourly usage for AMI and container products.

//! `MeterUsage`.

use serde::{Deserialize, Serialize};

use super::{fluent_builder, forward, Operation};
use crate::error::{BuildError, MeterUsageError};
use crate::primitives::DateTime;
use crate::types::{epoch_seconds, field, list_field, UsageAllocation};
use crate::{Error, ResponseMetadata};

/// The input of `MeterUsage`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeterUsageInput {
    #[serde(rename = "ProductCode")]
    pub(crate) product_code: String,
    #[serde(rename = "Timestamp", with = "epoch_seconds")]
    pub(crate) timestamp: DateTime,
    #[serde(rename = "UsageDimension")]
    pub(crate) usage_dimension: String,
    #[serde(rename = "UsageQuantity", skip_serializing_if = "Option::is_none")]
    pub(crate) usage_quantity: Option<i32>,
    #[serde(rename = "DryRun", skip_serializing_if = "Option::is_none")]
    pub(crate) dry_run: Option<bool>,
    #[serde(rename = "UsageAllocations", skip_serializing_if = "Option::is_none")]
    pub(crate) usage_allocations: Option<Vec<UsageAllocation>>,
    #[serde(rename = "ClientToken", skip_serializing_if = "Option::is_none")]
    pub(crate) client_token: Option<String>,
}

impl MeterUsageInput {
    /// A builder.
    pub fn builder() -> MeterUsageInputBuilder {
        MeterUsageInputBuilder::default()
    }
    /// The product code.
    pub fn product_code(&self) -> &str {
        &self.product_code
    }
    /// When the usage happened.
    pub fn timestamp(&self) -> &DateTime {
        &self.timestamp
    }
    /// The dimension.
    pub fn usage_dimension(&self) -> &str {
        &self.usage_dimension
    }
    /// The quantity (0 when absent).
    pub fn usage_quantity(&self) -> Option<i32> {
        self.usage_quantity
    }
    /// Check permissions only; nothing is metered.
    pub fn dry_run(&self) -> Option<bool> {
        self.dry_run
    }
    /// The usage allocations.
    pub fn usage_allocations(&self) -> &[UsageAllocation] {
        self.usage_allocations.as_deref().unwrap_or_default()
    }
    /// The idempotency token; the client fills a UUID when absent.
    pub fn client_token(&self) -> Option<&str> {
        self.client_token.as_deref()
    }
}

/// Builds a [`MeterUsageInput`].
#[derive(Clone, Debug, Default)]
pub struct MeterUsageInputBuilder {
    product_code: Option<String>,
    timestamp: Option<DateTime>,
    usage_dimension: Option<String>,
    usage_quantity: Option<i32>,
    dry_run: Option<bool>,
    usage_allocations: Option<Vec<UsageAllocation>>,
    client_token: Option<String>,
}

impl MeterUsageInputBuilder {
    field!(
        /// The product code.
        product_code, set_product_code, get_product_code: String);
    field!(
        /// When the usage happened.
        timestamp, set_timestamp, get_timestamp: DateTime);
    field!(
        /// The dimension.
        usage_dimension, set_usage_dimension, get_usage_dimension: String);
    field!(
        /// The quantity.
        usage_quantity, set_usage_quantity, get_usage_quantity: i32);
    field!(
        /// Check permissions only.
        dry_run, set_dry_run, get_dry_run: bool);
    list_field!(
        /// The usage allocations (appends one).
        usage_allocations, set_usage_allocations, get_usage_allocations: UsageAllocation);
    field!(
        /// The idempotency token.
        client_token, set_client_token, get_client_token: String);
    /// Builds the input; `ProductCode`, `Timestamp` and `UsageDimension` are required.
    pub fn build(self) -> Result<MeterUsageInput, BuildError> {
        Ok(MeterUsageInput {
            product_code: self
                .product_code
                .ok_or(BuildError::missing("ProductCode"))?,
            timestamp: self.timestamp.ok_or(BuildError::missing("Timestamp"))?,
            usage_dimension: self
                .usage_dimension
                .ok_or(BuildError::missing("UsageDimension"))?,
            usage_quantity: self.usage_quantity,
            dry_run: self.dry_run,
            usage_allocations: self.usage_allocations,
            client_token: self.client_token,
        })
    }
}

/// The output of `MeterUsage`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct MeterUsageOutput {
    #[serde(rename = "MeteringRecordId", default)]
    pub(crate) metering_record_id: Option<String>,
    #[serde(skip)]
    pub(crate) meta: ResponseMetadata,
}

impl MeterUsageOutput {
    /// The id of the metering record.
    pub fn metering_record_id(&self) -> Option<&str> {
        self.metering_record_id.as_deref()
    }
    /// Request id, HTTP status, attempts.
    pub fn metadata(&self) -> &ResponseMetadata {
        &self.meta
    }
}

pub(crate) struct MeterUsage;

impl Operation for MeterUsage {
    const NAME: &'static str = "MeterUsage";
    const TARGET: &'static str = "AWSMPMeteringService.MeterUsage";
    type Input = MeterUsageInput;
    type Output = MeterUsageOutput;
    fn validate(input: &Self::Input) -> Result<(), Error> {
        crate::validate::meter_usage(input)
    }
    fn prepare(input: &mut Self::Input) {
        // One token per call, reused by its retries: a retried MeterUsage is never billed twice.
        if input.client_token.is_none() {
            input.client_token = Some(uuid::Uuid::new_v4().to_string());
        }
    }
    fn answered(output: &Self::Output) -> bool {
        output.metering_record_id.is_some()
    }

    fn set_meta(output: &mut Self::Output, meta: ResponseMetadata) {
        output.meta = meta;
    }
}

fluent_builder!(
    /// Sends `MeterUsage`; made by [`crate::Client::meter_usage`].
    MeterUsageFluentBuilder, MeterUsageInputBuilder, MeterUsageOutput, MeterUsageError,
    send_meter_usage);

forward!(MeterUsageFluentBuilder {
    /// The product code.
    product_code, set_product_code: impl Into<String> => String;
    /// When the usage happened.
    timestamp, set_timestamp: DateTime => DateTime;
    /// The dimension.
    usage_dimension, set_usage_dimension: impl Into<String> => String;
    /// The quantity.
    usage_quantity, set_usage_quantity: i32 => i32;
    /// Check permissions only.
    dry_run, set_dry_run: bool => bool;
    /// A usage allocation (appends one).
    usage_allocations, set_usage_allocations: UsageAllocation => Vec<UsageAllocation>;
    /// The idempotency token.
    client_token, set_client_token: impl Into<String> => String;
});

// SPDX-License-Identifier: Apache-2.0
// RegisterUsage: entitlement check and signed token for paid container products.

//! `RegisterUsage`.

use serde::{Deserialize, Serialize};

use super::{fluent_builder, forward, Operation};
use crate::error::{BuildError, RegisterUsageError};
use crate::primitives::DateTime;
use crate::types::{epoch_seconds, field};
use crate::{Error, ResponseMetadata};

/// The input of `RegisterUsage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterUsageInput {
    #[serde(rename = "ProductCode")]
    pub(crate) product_code: String,
    #[serde(rename = "PublicKeyVersion")]
    pub(crate) public_key_version: i32,
    #[serde(rename = "Nonce", skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<String>,
}

impl RegisterUsageInput {
    /// A builder.
    pub fn builder() -> RegisterUsageInputBuilder {
        RegisterUsageInputBuilder::default()
    }
    /// The product code.
    pub fn product_code(&self) -> &str {
        &self.product_code
    }
    /// The public key version (at least 1).
    pub fn public_key_version(&self) -> i32 {
        self.public_key_version
    }
    /// A nonce echoed in the signed token.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

/// Builds a [`RegisterUsageInput`].
#[derive(Clone, Debug, Default)]
pub struct RegisterUsageInputBuilder {
    product_code: Option<String>,
    public_key_version: Option<i32>,
    nonce: Option<String>,
}

impl RegisterUsageInputBuilder {
    field!(
        /// The product code.
        product_code, set_product_code, get_product_code: String);
    field!(
        /// The public key version.
        public_key_version, set_public_key_version, get_public_key_version: i32);
    field!(
        /// The nonce.
        nonce, set_nonce, get_nonce: String);
    /// Builds the input; `ProductCode` and `PublicKeyVersion` are required.
    pub fn build(self) -> Result<RegisterUsageInput, BuildError> {
        Ok(RegisterUsageInput {
            product_code: self
                .product_code
                .ok_or(BuildError::missing("ProductCode"))?,
            public_key_version: self
                .public_key_version
                .ok_or(BuildError::missing("PublicKeyVersion"))?,
            nonce: self.nonce,
        })
    }
}

/// The output of `RegisterUsage`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RegisterUsageOutput {
    #[serde(
        rename = "PublicKeyRotationTimestamp",
        default,
        deserialize_with = "epoch_seconds::option::deserialize"
    )]
    pub(crate) public_key_rotation_timestamp: Option<DateTime>,
    #[serde(rename = "Signature", default)]
    pub(crate) signature: Option<String>,
    #[serde(skip)]
    pub(crate) meta: ResponseMetadata,
}

impl RegisterUsageOutput {
    /// When the public key rotates.
    pub fn public_key_rotation_timestamp(&self) -> Option<&DateTime> {
        self.public_key_rotation_timestamp.as_ref()
    }
    /// The JWT signed by AWS Marketplace.
    pub fn signature(&self) -> Option<&str> {
        self.signature.as_deref()
    }
    /// Request id, HTTP status, attempts.
    pub fn metadata(&self) -> &ResponseMetadata {
        &self.meta
    }
}

pub(crate) struct RegisterUsage;

impl Operation for RegisterUsage {
    const NAME: &'static str = "RegisterUsage";
    const TARGET: &'static str = "AWSMPMeteringService.RegisterUsage";
    type Input = RegisterUsageInput;
    type Output = RegisterUsageOutput;
    fn validate(input: &Self::Input) -> Result<(), Error> {
        crate::validate::register_usage(input)
    }
    fn answered(output: &Self::Output) -> bool {
        output.signature.is_some()
    }

    fn set_meta(output: &mut Self::Output, meta: ResponseMetadata) {
        output.meta = meta;
    }
}

fluent_builder!(
    /// Sends `RegisterUsage`; made by [`crate::Client::register_usage`].
    RegisterUsageFluentBuilder, RegisterUsageInputBuilder, RegisterUsageOutput,
    RegisterUsageError, send_register_usage);

forward!(RegisterUsageFluentBuilder {
    /// The product code.
    product_code, set_product_code: impl Into<String> => String;
    /// The public key version.
    public_key_version, set_public_key_version: i32 => i32;
    /// The nonce.
    nonce, set_nonce: impl Into<String> => String;
});

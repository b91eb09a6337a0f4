// SPDX-License-Identifier: Apache-2.0
// ResolveCustomer: a SaaS registration token to the customer behind it.

//! `ResolveCustomer`.

use serde::{Deserialize, Serialize};

use super::{fluent_builder, forward, Operation};
use crate::error::{BuildError, ResolveCustomerError};
use crate::types::field;
use crate::{Error, ResponseMetadata};

/// The input of `ResolveCustomer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolveCustomerInput {
    #[serde(rename = "RegistrationToken")]
    pub(crate) registration_token: String,
}

impl ResolveCustomerInput {
    /// A builder.
    pub fn builder() -> ResolveCustomerInputBuilder {
        ResolveCustomerInputBuilder::default()
    }
    /// The token from the `x-amzn-marketplace-token` form field of the registration request.
    pub fn registration_token(&self) -> &str {
        &self.registration_token
    }
}

/// Builds a [`ResolveCustomerInput`].
#[derive(Clone, Debug, Default)]
pub struct ResolveCustomerInputBuilder {
    registration_token: Option<String>,
}

impl ResolveCustomerInputBuilder {
    field!(
        /// The registration token.
        registration_token, set_registration_token, get_registration_token: String);
    /// Builds the input; `RegistrationToken` is required.
    pub fn build(self) -> Result<ResolveCustomerInput, BuildError> {
        Ok(ResolveCustomerInput {
            registration_token: self
                .registration_token
                .ok_or(BuildError::missing("RegistrationToken"))?,
        })
    }
}

/// The output of `ResolveCustomer`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ResolveCustomerOutput {
    #[serde(rename = "CustomerIdentifier", default)]
    pub(crate) customer_identifier: Option<String>,
    #[serde(rename = "ProductCode", default)]
    pub(crate) product_code: Option<String>,
    #[serde(rename = "CustomerAWSAccountId", default)]
    pub(crate) customer_aws_account_id: Option<String>,
    #[serde(rename = "LicenseArn", default)]
    pub(crate) license_arn: Option<String>,
    #[serde(skip)]
    pub(crate) meta: ResponseMetadata,
}

impl ResolveCustomerOutput {
    /// The customer identifier to meter against.
    pub fn customer_identifier(&self) -> Option<&str> {
        self.customer_identifier.as_deref()
    }
    /// The product the customer subscribed to.
    pub fn product_code(&self) -> Option<&str> {
        self.product_code.as_deref()
    }
    /// The customer's AWS account id.
    pub fn customer_aws_account_id(&self) -> Option<&str> {
        self.customer_aws_account_id.as_deref()
    }
    /// The customer's license.
    pub fn license_arn(&self) -> Option<&str> {
        self.license_arn.as_deref()
    }
    /// Request id, HTTP status, attempts.
    pub fn metadata(&self) -> &ResponseMetadata {
        &self.meta
    }
}

pub(crate) struct ResolveCustomer;

impl Operation for ResolveCustomer {
    const NAME: &'static str = "ResolveCustomer";
    const TARGET: &'static str = "AWSMPMeteringService.ResolveCustomer";
    type Input = ResolveCustomerInput;
    type Output = ResolveCustomerOutput;
    fn validate(input: &Self::Input) -> Result<(), Error> {
        crate::validate::resolve_customer(input)
    }
    fn answered(output: &Self::Output) -> bool {
        output.customer_identifier.is_some() || output.customer_aws_account_id.is_some()
    }

    fn set_meta(output: &mut Self::Output, meta: ResponseMetadata) {
        output.meta = meta;
    }
}

fluent_builder!(
    /// Sends `ResolveCustomer`; made by [`crate::Client::resolve_customer`].
    ResolveCustomerFluentBuilder, ResolveCustomerInputBuilder, ResolveCustomerOutput,
    ResolveCustomerError, send_resolve_customer);

forward!(ResolveCustomerFluentBuilder {
    /// The registration token.
    registration_token, set_registration_token: impl Into<String> => String;
});

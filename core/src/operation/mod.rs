// SPDX-License-Identifier: Apache-2.0
// The four operations: inputs, outputs, builders, and what the client needs to send them.

//! Operations of the Metering Service, one module each.

pub mod batch_meter_usage;
pub mod meter_usage;
pub mod register_usage;
pub mod resolve_customer;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, ResponseMetadata};

/// What the client needs to know about an operation.
pub(crate) trait Operation {
    /// The operation's name, as in `X-Amz-Target: AWSMPMeteringService.<NAME>`.
    const NAME: &'static str;
    /// `X-Amz-Target`: `AWSMPMeteringService.<NAME>`.
    const TARGET: &'static str;
    type Input: Serialize + Send + Sync;
    type Output: ReadOutput + Send;
    /// Checks the input against the model's constraints.
    fn validate(input: &Self::Input) -> Result<(), Error>;
    /// A guess at the serialized size, so the body is written without reallocating.
    fn size_hint(_input: &Self::Input) -> usize {
        256
    }
    /// Fills what the client generates (an idempotency token) once per call.
    fn prepare(_input: &mut Self::Input) {}
    /// Stores the response metadata on the output.
    fn set_meta(output: &mut Self::Output, meta: ResponseMetadata);
    /// Whether a success carries what only the service's answer to this operation does (its
    /// results, its record id): a hop's `{}` or `{"ok":1}` parses as an output too, and
    /// does not tell the service's clock.
    fn answered(output: &Self::Output) -> bool;
}

/// How a successful response's body is read: serde_json, unless the output has a reader of
/// its own for the shape the service writes (which leaves anything else to serde_json).
pub(crate) trait ReadOutput: DeserializeOwned {
    fn read_direct(_text: &str) -> Option<Self> {
        None
    }
}

impl ReadOutput for meter_usage::MeterUsageOutput {}
impl ReadOutput for register_usage::RegisterUsageOutput {}
impl ReadOutput for resolve_customer::ResolveCustomerOutput {}
impl ReadOutput for batch_meter_usage::BatchMeterUsageOutput {
    fn read_direct(text: &str) -> Option<Self> {
        batch_meter_usage::read::read(text)
    }
}

/// Generates a fluent builder that wraps an input builder and a client.
macro_rules! fluent_builder {
    ($(#[doc = $doc:literal])* $fluent:ident, $input_builder:ident, $output:ty, $error:ty, $invoke:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug)]
        pub struct $fluent {
            client: crate::Client,
            inner: $input_builder,
        }

        impl $fluent {
            pub(crate) fn new(client: crate::Client) -> Self {
                Self { client, inner: Default::default() }
            }
            /// The input built so far.
            pub fn as_input(&self) -> &$input_builder {
                &self.inner
            }
            /// Validates, signs and sends the request, retrying as configured.
            pub async fn send(self) -> Result<$output, $error> {
                let input = self.inner.build().map_err(crate::Error::from)?;
                self.client.$invoke(input).await
            }
        }
    };
}
pub(crate) use fluent_builder;

/// Generates fluent-builder setters that forward to the input builder.
macro_rules! forward {
    ($fluent:ident { $( $(#[doc = $doc:literal])* $name:ident, $set:ident : $arg:ty => $ty:ty; )* }) => {
        impl $fluent {$(
            $(#[doc = $doc])*
            pub fn $name(mut self, v: $arg) -> Self { self.inner = self.inner.$name(v); self }
            $(#[doc = $doc])*
            pub fn $set(mut self, v: Option<$ty>) -> Self { self.inner = self.inner.$set(v); self }
        )*}
    };
}
pub(crate) use forward;

#[cfg(test)]
mod tests {
    use super::*;

    fn check<O: Operation>(prefix: &str, model: &serde_json::Value) {
        assert_eq!(O::TARGET, format!("{prefix}.{}", O::NAME));
        assert!(
            model["operations"].get(O::NAME).is_some(),
            "{} is in the model",
            O::NAME
        );
    }

    #[test]
    fn targets_follow_the_model() {
        let model: serde_json::Value = serde_json::from_str(include_str!(
            "../../model/meteringmarketplace-2016-01-14.service-2.json"
        ))
        .unwrap();
        let prefix = model["metadata"]["targetPrefix"].as_str().unwrap();
        check::<batch_meter_usage::BatchMeterUsage>(prefix, &model);
        check::<meter_usage::MeterUsage>(prefix, &model);
        check::<resolve_customer::ResolveCustomer>(prefix, &model);
        check::<register_usage::RegisterUsage>(prefix, &model);
    }
}

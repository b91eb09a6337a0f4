// SPDX-License-Identifier: Apache-2.0
// Client configuration: region, endpoint, credentials, retries, timeouts, and the face.

//! Client configuration, the same meaning in every face.

use std::fmt;
use std::time::Duration;

use crate::credentials::CredentialsSource;
use crate::endpoint::{self, EndpointParams};
use crate::retry::{RetryConfig, RetryMode};
use crate::{Credentials, Error};

/// Which face the client is used from; it goes into the User-Agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Face {
    /// The Rust crate itself.
    #[default]
    Rust,
    /// The Python package.
    Python,
    /// The Node.js package.
    Node,
    /// The C library (and the C++ header on top of it).
    C,
    /// The JVM package (Kotlin and Java).
    Jvm,
}

impl Face {
    fn as_str(self) -> &'static str {
        match self {
            Face::Rust => "rust",
            Face::Python => "python",
            Face::Node => "node",
            Face::C => "c",
            Face::Jvm => "jvm",
        }
    }
}

/// Default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed between bytes of a response.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for one attempt, from sending the request to the response's last byte.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A resolved, immutable client configuration. Build one with [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(crate) region: String,
    pub(crate) endpoint: String,
    pub(crate) use_fips: bool,
    pub(crate) use_dual_stack: bool,
    pub(crate) credentials: CredentialsSource,
    pub(crate) retry: RetryConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) operation_timeout: Option<Duration>,
    pub(crate) user_agent: String,
}

impl Config {
    /// A builder with the defaults: the default credential chain (or none without the
    /// `default-chain` feature), `standard` retries with 3 attempts, 5 s to connect, 30 s to read.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }
    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }
    /// The endpoint URL requests go to.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }
    /// The retry settings.
    pub fn retry_config(&self) -> &RetryConfig {
        &self.retry
    }
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// The read timeout.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
    /// The bound on one attempt, response body included.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }
    /// The bound on a whole call, retries and their delays included (`None`: unbounded).
    pub fn operation_timeout(&self) -> Option<Duration> {
        self.operation_timeout
    }
    /// The User-Agent sent with each request.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("region", &self.region)
            .field("endpoint", &endpoint::redact_userinfo(&self.endpoint))
            .field("use_fips", &self.use_fips)
            .field("use_dual_stack", &self.use_dual_stack)
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

/// Builds a [`Config`].
#[derive(Clone, Default)]
pub struct ConfigBuilder {
    region: Option<String>,
    endpoint_url: Option<String>,
    use_fips: bool,
    use_dual_stack: bool,
    credentials: Option<Credentials>,
    profile: Option<String>,
    retry_mode: Option<RetryMode>,
    max_attempts: Option<u32>,
    initial_backoff: Option<Duration>,
    max_backoff: Option<Duration>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    face: Face,
    face_version: Option<String>,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("region", &self.region)
            .field(
                "endpoint_url",
                &self.endpoint_url.as_deref().map(endpoint::redact_userinfo),
            )
            .field("credentials", &self.credentials)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

macro_rules! setters {
    ($( $(#[doc = $doc:literal])* $name:ident, $set:ident, $get:ident : $ty:ty; )*) => {$(
        $(#[doc = $doc])*
        pub fn $name(mut self, v: impl Into<$ty>) -> Self { self.$name = Some(v.into()); self }
        $(#[doc = $doc])*
        pub fn $set(&mut self, v: Option<$ty>) -> &mut Self { self.$name = v; self }
        $(#[doc = $doc])*
        pub fn $get(&self) -> Option<&$ty> { self.$name.as_ref() }
    )*};
}

impl ConfigBuilder {
    setters! {
        /// The AWS Region (`us-east-1`). Without it, `AWS_REGION`, `AWS_DEFAULT_REGION`, then
        /// the profile's `region` are used.
        region, set_region, get_region: String;
        /// A custom endpoint URL (the emulator, a VPC endpoint). Cannot be combined with FIPS
        /// or dual-stack.
        endpoint_url, set_endpoint_url, get_endpoint_url: String;
        /// Static credentials. Without them the default chain is used.
        credentials, set_credentials, get_credentials: Credentials;
        /// The shared config/credentials profile for the default chains.
        profile, set_profile, get_profile: String;
        /// `standard` (default) or `adaptive`.
        retry_mode, set_retry_mode, get_retry_mode: RetryMode;
        /// Attempts per call, the first included (default 3; 1 disables retries).
        max_attempts, set_max_attempts, get_max_attempts: u32;
        /// The base of the exponential backoff (default 1 s; the cap is 20 s).
        initial_backoff, set_initial_backoff, get_initial_backoff: Duration;
        /// The cap of one backoff (default 20 s).
        max_backoff, set_max_backoff, get_max_backoff: Duration;
        /// Time allowed to open a connection (default 5 s).
        connect_timeout, set_connect_timeout, get_connect_timeout: Duration;
        /// Time allowed between bytes of a response (default 30 s).
        read_timeout, set_read_timeout, get_read_timeout: Duration;
        /// Time allowed for one attempt, from sending to the response's last byte (default
        /// 60 s). An attempt that runs out is retried as a read timeout is.
        attempt_timeout, set_attempt_timeout, get_attempt_timeout: Duration;
        /// Time allowed for a whole call, every attempt and retry delay included (default: no
        /// bound). A call that runs out fails with [`crate::ErrorCode::ReadTimeout`].
        operation_timeout, set_operation_timeout, get_operation_timeout: Duration;
    }

    /// Static credentials from their parts.
    pub fn static_credentials(
        self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials(Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "Static",
        ))
    }

    /// Use the FIPS endpoint.
    pub fn use_fips(mut self, on: bool) -> Self {
        self.use_fips = on;
        self
    }

    /// Use the dual-stack (IPv4 and IPv6) endpoint.
    pub fn use_dual_stack(mut self, on: bool) -> Self {
        self.use_dual_stack = on;
        self
    }

    /// The face using the client and its version, for the User-Agent.
    pub fn face(mut self, face: Face, version: impl Into<String>) -> Self {
        self.face = face;
        self.face_version = Some(version.into());
        self
    }

    /// Resolves region and endpoint and checks every setting.
    ///
    /// Fails with [`crate::ErrorCode::InvalidConfig`] when no region can be found, when the
    /// region is not a valid host label, when FIPS or dual-stack is combined with a custom
    /// endpoint, or when a number is out of range.
    pub fn build(self) -> Result<Config, Error> {
        let region = match self.region.filter(|r| !r.is_empty()) {
            Some(r) => Some(r),
            None => crate::credentials::default_region(self.profile.as_deref()),
        };
        let endpoint_url = self.endpoint_url.filter(|u| !u.is_empty());
        let endpoint = endpoint::resolve_endpoint(&EndpointParams {
            region: region.as_deref(),
            use_fips: self.use_fips,
            use_dual_stack: self.use_dual_stack,
            endpoint: endpoint_url.as_deref(),
        })?;
        // A custom endpoint still needs a signing region; the emulator and most VPC endpoints
        // accept us-east-1's scope when none is configured.
        let region = match region {
            Some(r) => r,
            None => {
                return Err(Error::invalid_config(
                    "a region is required (pass region or set AWS_REGION)",
                ))
            }
        };
        let max_attempts = self.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            return Err(Error::invalid_config("max_attempts must be at least 1"));
        }
        let retry = RetryConfig {
            mode: self.retry_mode.unwrap_or_default(),
            max_attempts,
            initial_backoff: self.initial_backoff.unwrap_or(Duration::from_secs(1)),
            max_backoff: self.max_backoff.unwrap_or(Duration::from_secs(20)),
        };
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = self.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT);
        let attempt_timeout = self.attempt_timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT);
        let operation_timeout = self.operation_timeout;
        for (name, t) in [
            ("connect_timeout", Some(connect_timeout)),
            ("read_timeout", Some(read_timeout)),
            ("attempt_timeout", Some(attempt_timeout)),
            ("operation_timeout", operation_timeout),
        ] {
            if t.is_some_and(|t| t.is_zero()) {
                return Err(Error::invalid_config(format!(
                    "{name} must be greater than zero"
                )));
            }
        }
        let credentials = match self.credentials {
            Some(c) => CredentialsSource::Static(c),
            None => CredentialsSource::default_chain(self.profile)?,
        };
        let face_version = self
            .face_version
            .unwrap_or_else(|| crate::VERSION.to_owned());
        let user_agent = format!(
            "marketplace-metering/{} lang/{}/{} os/{}",
            crate::VERSION,
            self.face.as_str(),
            face_version,
            std::env::consts::OS
        );
        Ok(Config {
            region,
            endpoint,
            use_fips: self.use_fips,
            use_dual_stack: self.use_dual_stack,
            credentials,
            retry,
            connect_timeout,
            read_timeout,
            attempt_timeout,
            operation_timeout,
            user_agent,
        })
    }
}

// SPDX-License-Identifier: Apache-2.0
// Client configuration: region, endpoint, credentials, retries, timeouts, and the face.

//! Client configuration, the same meaning in every face.

mod builder;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::CredentialsSource;
use crate::endpoint;
use crate::profile::Origin;
use crate::retry::RetryConfig;
use crate::tls::HttpSettings;

pub use builder::ConfigBuilder;

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
    pub(crate) app_id: Option<String>,
    pub(crate) ca_bundle: Option<PathBuf>,
    pub(crate) http: HttpSettings,
    pub(crate) profile: String,
    pub(crate) origins: Vec<(&'static str, Origin)>,
    pub(crate) attempt_observer: Option<AttemptObserver>,
}

/// A face's receiver of attempt logs (see [`ConfigBuilder::attempt_observer`]).
pub type AttemptObserver = std::sync::Arc<dyn Fn(&crate::AttemptLog) + Send + Sync>;

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
    /// Whether the FIPS endpoint is used.
    pub fn use_fips(&self) -> bool {
        self.use_fips
    }
    /// Whether the dual-stack endpoint is used.
    pub fn use_dual_stack(&self) -> bool {
        self.use_dual_stack
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
    /// The user-agent app id (`app/<id>` in the User-Agent).
    pub fn app_id(&self) -> Option<&str> {
        self.app_id.as_deref()
    }
    /// The CA bundle trusted instead of the platform's roots.
    pub fn ca_bundle(&self) -> Option<&std::path::Path> {
        self.ca_bundle.as_deref()
    }
    /// The proxy for `https://` endpoints, with any password in it replaced by `***`.
    pub fn https_proxy(&self) -> Option<String> {
        self.http
            .https_proxy
            .as_deref()
            .map(|u| endpoint::redact_userinfo(u).into_owned())
    }
    /// The proxy for `http://` endpoints, with any password in it replaced by `***`.
    pub fn http_proxy(&self) -> Option<String> {
        self.http
            .http_proxy
            .as_deref()
            .map(|u| endpoint::redact_userinfo(u).into_owned())
    }
    /// The hosts reached without a proxy (`NO_PROXY`'s syntax).
    pub fn no_proxy(&self) -> Option<&str> {
        self.http.no_proxy.as_deref()
    }
    /// The receiver of attempt logs a face set, if any.
    pub fn attempt_observer(&self) -> Option<&AttemptObserver> {
        self.attempt_observer.as_ref()
    }
    /// The selected profile of the shared config file (`default` when none was named).
    pub fn profile_name(&self) -> &str {
        &self.profile
    }
    /// Where a resolved setting came from: `setting` is the builder's name for it
    /// (`region`, `endpoint_url`, `use_fips`, `use_dual_stack`, `retry_mode`, `max_attempts`,
    /// `ca_bundle`, `app_id`, `https_proxy`, `http_proxy`, `no_proxy`).
    pub fn origin(&self, setting: &str) -> Origin {
        self.origins
            .iter()
            .find(|(k, _)| *k == setting)
            .map_or(Origin::Default, |(_, o)| o.clone())
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
            .field("app_id", &self.app_id)
            .field("ca_bundle", &self.ca_bundle)
            .field("https_proxy", &self.https_proxy())
            .field("http_proxy", &self.http_proxy())
            .field("no_proxy", &self.http.no_proxy)
            .finish()
    }
}

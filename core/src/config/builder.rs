// SPDX-License-Identifier: Apache-2.0
// `ConfigBuilder`: the settings from code, the environment and the profile, checked and resolved into a `Config`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::CredentialsSource;
use crate::endpoint::{self, EndpointParams};
use crate::profile::{invalid, parse_bool, Origin, Sources};
use crate::retry::{RetryConfig, RetryMode};
use crate::tls::HttpSettings;
use crate::{Credentials, Error};

use super::{
    AttemptObserver, Config, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT,
};

/// Builds a [`Config`].
///
/// Every setting left unset here is read from the environment, then from the selected profile
/// of the shared config file, as the AWS SDKs read them (see the README's configuration table):
/// code beats environment beats profile beats default.
#[derive(Clone, Default)]
pub struct ConfigBuilder {
    region: Option<String>,
    endpoint_url: Option<String>,
    use_fips: Option<bool>,
    use_dual_stack: Option<bool>,
    ignore_configured_endpoint_urls: Option<bool>,
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
    ca_bundle: Option<PathBuf>,
    extra_ca_bundle: Option<PathBuf>,
    https_proxy: Option<String>,
    http_proxy: Option<String>,
    no_proxy: Option<String>,
    app_id: Option<String>,
    user_agent_extra: Option<String>,
    environment: Option<HashMap<String, String>>,
    verify: Option<bool>,
    attempt_observer: Option<AttemptObserver>,
    key_parts: Option<(Option<String>, Option<String>, Option<String>)>,
    user_agent_suffix: Option<String>,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |u: &Option<String>| {
            u.as_deref()
                .map(|u| endpoint::redact_userinfo(u).into_owned())
        };
        let redact_proxy =
            |u: &Option<String>| u.as_deref().map(|u| endpoint::redact_proxy(u).into_owned());
        f.debug_struct("ConfigBuilder")
            .field("region", &self.region)
            .field("endpoint_url", &redact(&self.endpoint_url))
            .field("credentials", &self.credentials)
            .field("profile", &self.profile)
            .field("https_proxy", &redact_proxy(&self.https_proxy))
            .field("http_proxy", &redact_proxy(&self.http_proxy))
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
        /// or dual-stack. Without it, `AWS_ENDPOINT_URL_MARKETPLACE_METERING`,
        /// `AWS_ENDPOINT_URL`, the profile's `services` section and `endpoint_url` are used.
        endpoint_url, set_endpoint_url, get_endpoint_url: String;
        /// Use the FIPS endpoint (else `AWS_USE_FIPS_ENDPOINT`, profile `use_fips_endpoint`).
        use_fips, set_use_fips, get_use_fips: bool;
        /// Use the dual-stack endpoint (else `AWS_USE_DUALSTACK_ENDPOINT`, profile
        /// `use_dualstack_endpoint`).
        use_dual_stack, set_use_dual_stack, get_use_dual_stack: bool;
        /// Ignore endpoint URLs from the environment and the profile (else
        /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`, profile `ignore_configured_endpoint_urls`).
        ignore_configured_endpoint_urls, set_ignore_configured_endpoint_urls,
            get_ignore_configured_endpoint_urls: bool;
        /// Static credentials. Without them the default chain is used.
        credentials, set_credentials, get_credentials: Credentials;
        /// The shared config/credentials profile (else `AWS_PROFILE`, else `default`).
        profile, set_profile, get_profile: String;
        /// `standard` (default), `adaptive` or `legacy` (else `AWS_RETRY_MODE`, profile
        /// `retry_mode`).
        retry_mode, set_retry_mode, get_retry_mode: RetryMode;
        /// Attempts per call, the first included (else `AWS_MAX_ATTEMPTS`, profile
        /// `max_attempts`; default 3, 5 in legacy mode; 1 disables retries).
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
        /// A PEM CA bundle trusted instead of the platform's roots (else `AWS_CA_BUNDLE`,
        /// profile `ca_bundle`). TLS verification itself can never be turned off.
        ca_bundle, set_ca_bundle, get_ca_bundle: PathBuf;
        /// A PEM bundle whose certificates are trusted in addition to the platform's roots
        /// (the Node face passes `NODE_EXTRA_CA_CERTS` here).
        extra_ca_bundle, set_extra_ca_bundle, get_extra_ca_bundle: PathBuf;
        /// The proxy for `https://` endpoints (else `HTTPS_PROXY` / `https_proxy`).
        https_proxy, set_https_proxy, get_https_proxy: String;
        /// The proxy for `http://` endpoints (else `HTTP_PROXY` / `http_proxy`).
        http_proxy, set_http_proxy, get_http_proxy: String;
        /// Hosts reached without a proxy, comma-separated (else `NO_PROXY` / `no_proxy`).
        no_proxy, set_no_proxy, get_no_proxy: String;
        /// The user-agent app id, at most 50 characters (else `AWS_SDK_UA_APP_ID`, profile
        /// `sdk_ua_app_id`).
        app_id, set_app_id, get_app_id: String;
        /// Text appended to the User-Agent (botocore's `user_agent_extra`).
        user_agent_extra, set_user_agent_extra, get_user_agent_extra: String;
    }

    /// Resolves against these variables instead of the process environment (the profile files
    /// are still read from disk, found through `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`
    /// and `HOME` of this map). For tests, and hosts that keep settings apart from the
    /// environment. The default credential chain still reads the process environment.
    pub fn environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
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

    /// Static credentials as a face receives them, each part possibly missing: all three
    /// `None` means the default chain; a key id without a secret (or the reverse), or a
    /// session token alone, fails [`ConfigBuilder::build`] naming the missing part.
    pub fn credentials_from_parts(
        mut self,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    ) -> Self {
        self.key_parts = Some((access_key_id, secret_access_key, session_token));
        self
    }

    /// A receiver for each attempt's log entry, kept with the configuration. The client never
    /// calls it: a face calls it on the caller's thread after a call returns, with the
    /// entries of [`crate::ResponseMetadata::attempt_log`] (the C face's log callback).
    pub fn attempt_observer(mut self, f: AttemptObserver) -> Self {
        self.attempt_observer = Some(f);
        self
    }

    /// TLS certificate verification. It can never be turned off: `false` fails
    /// [`ConfigBuilder::build`] with a clear error (use [`ConfigBuilder::ca_bundle`] to trust
    /// a private CA).
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = Some(on);
        self
    }

    /// Who uses the client, for the User-Agent's `lang/` part: `python/0.1.0` gives
    /// `marketplace-metering/0.1.0 lang/python/0.1.0 os/linux`. Each face passes its own
    /// name and version; the default is `rust/` and this crate's version.
    pub fn user_agent_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.user_agent_suffix = Some(suffix.into());
        self
    }

    /// Resolves every setting (code, then environment, then profile, then default) and checks
    /// it.
    ///
    /// Fails with [`crate::ErrorCode::InvalidConfig`], naming the setting and where its value
    /// came from ([`crate::Error::field`] is the variable, profile key or code name), when no
    /// region can be found, when a value cannot be parsed or is out of range, when FIPS or
    /// dual-stack is combined with a custom endpoint, or when a CA bundle cannot be read.
    pub fn build(mut self) -> Result<Config, Error> {
        if self.verify == Some(false) {
            return Err(invalid(
                &Origin::Code("verify"),
                "TLS certificate verification cannot be turned off; to trust a private CA, \
                 pass its PEM bundle as the CA bundle (verify=\"ca.pem\", AWS_CA_BUNDLE)",
            ));
        }
        if let Some((key, secret, token)) = self.key_parts.take() {
            let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
            match (blank(&key), blank(&secret)) {
                (false, false) => {
                    self = self.static_credentials(
                        key.unwrap_or_default(),
                        secret.unwrap_or_default(),
                        token.filter(|t| !t.is_empty()),
                    )
                }
                (true, true) if blank(&token) => {}
                (true, true) => {
                    return Err(invalid(
                        &Origin::Code("aws_session_token"),
                        "a session token needs an access key id and a secret access key",
                    ))
                }
                (false, true) => {
                    return Err(invalid(
                        &Origin::Code("aws_secret_access_key"),
                        "missing: an access key id needs its secret access key",
                    ))
                }
                (true, false) => {
                    return Err(invalid(
                        &Origin::Code("aws_access_key_id"),
                        "missing: a secret access key needs its access key id",
                    ))
                }
            }
        }
        let src = Sources::load(self.environment.clone(), self.profile.as_deref())?;
        let mut origins: Vec<(&'static str, Origin)> = Vec::new();
        let code = |v: Option<String>, name: &'static str| {
            v.filter(|s| !s.trim().is_empty())
                .map(|s| (s, Origin::Code(name)))
        };

        // Region.
        let mut region = code(self.region.clone(), "region")
            .or_else(|| src.lookup(&["AWS_REGION", "AWS_DEFAULT_REGION"], "region"));
        if let Some((_, o)) = &region {
            origins.push(("region", o.clone()));
        }
        // A FIPS pseudo-region (`fips-us-gov-west-1`, `us-east-1-fips`) is, as SDK v3 and the
        // SDK for Java read it, the region without the marker with FIPS on: taken whole, it
        // signed for a region that does not exist and sent to a host that does not either.
        let fips_region = region.as_mut().and_then(|(r, o)| {
            let real = r
                .strip_prefix("fips-")
                .or_else(|| r.strip_suffix("-fips"))
                .filter(|real| !real.is_empty())?;
            *r = real.to_owned();
            Some(o.clone())
        });

        // Booleans.
        let flag = |v: Option<bool>,
                    name: &'static str,
                    env: &'static str,
                    key: &str|
         -> Result<Option<(bool, Origin)>, Error> {
            if let Some(v) = v {
                return Ok(Some((v, Origin::Code(name))));
            }
            match src.lookup(&[env], key) {
                Some((v, o)) => Ok(Some((parse_bool(&v, &o)?, o))),
                None => Ok(None),
            }
        };
        let fips = match fips_region {
            Some(o) => Some((true, o)),
            None => flag(
                self.use_fips,
                "use_fips",
                "AWS_USE_FIPS_ENDPOINT",
                "use_fips_endpoint",
            )?,
        };
        let dual = flag(
            self.use_dual_stack,
            "use_dual_stack",
            "AWS_USE_DUALSTACK_ENDPOINT",
            "use_dualstack_endpoint",
        )?;
        let ignore = flag(
            self.ignore_configured_endpoint_urls,
            "ignore_configured_endpoint_urls",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "ignore_configured_endpoint_urls",
        )?
        .is_some_and(|(v, _)| v);
        for (k, v) in [("use_fips", &fips), ("use_dual_stack", &dual)] {
            if let Some((_, o)) = v {
                origins.push((k, o.clone()));
            }
        }
        let use_fips = fips.as_ref().is_some_and(|(v, _)| *v);
        let use_dual_stack = dual.as_ref().is_some_and(|(v, _)| *v);

        // Endpoint: code, then (unless ignored) the service's variable, the global one, the
        // profile's services section, the profile's endpoint_url.
        let endpoint_url = code(self.endpoint_url.clone(), "endpoint_url").or_else(|| {
            if ignore {
                return None;
            }
            src.first_env(&["AWS_ENDPOINT_URL_MARKETPLACE_METERING", "AWS_ENDPOINT_URL"])
                .or_else(|| src.service_profile("endpoint_url"))
                .or_else(|| src.profile("endpoint_url"))
        });
        if let Some((_, o)) = &endpoint_url {
            origins.push(("endpoint_url", o.clone()));
        }
        let missing_region = || {
            Error::invalid_setting(
                "region".to_owned(),
                "a region is required: pass region, set AWS_REGION or the profile's region",
            )
        };
        if region.is_none() {
            return Err(missing_region());
        }
        let endpoint = endpoint::resolve_endpoint(&EndpointParams {
            region: region.as_ref().map(|(r, _)| r.as_str()),
            use_fips,
            use_dual_stack,
            endpoint: endpoint_url.as_ref().map(|(u, _)| u.as_str()),
        })
        .map_err(|e| {
            // Name where the conflicting values came from.
            let mut from = Vec::new();
            if let Some((_, o)) = &endpoint_url {
                from.push(format!("endpoint URL from {o}"));
            }
            if let Some((true, o)) = &fips {
                from.push(format!("FIPS from {o}"));
            }
            if let Some((true, o)) = &dual {
                from.push(format!("dual-stack from {o}"));
            }
            if let Some((_, o)) = &region {
                from.push(format!("region from {o}"));
            }
            let field = endpoint_url
                .as_ref()
                .map(|(_, o)| o.name().to_owned())
                .or_else(|| region.as_ref().map(|(_, o)| o.name().to_owned()))
                .unwrap_or_else(|| "region".to_owned());
            if from.is_empty() {
                Error::invalid_setting(field, e.message().to_owned())
            } else {
                Error::invalid_setting(field, format!("{} ({})", e.message(), from.join(", ")))
            }
        })?;
        let Some((region, _)) = region else {
            return Err(missing_region());
        };

        // Retries.
        let mode = match self.retry_mode {
            Some(m) => {
                origins.push(("retry_mode", Origin::Code("retry_mode")));
                m
            }
            None => match src.lookup(&["AWS_RETRY_MODE"], "retry_mode") {
                Some((v, o)) => {
                    let m = v.parse::<RetryMode>().map_err(|_| {
                        invalid(
                            &o,
                            format!("must be `standard`, `adaptive` or `legacy`, got {v:?}"),
                        )
                    })?;
                    origins.push(("retry_mode", o));
                    m
                }
                None => RetryMode::default(),
            },
        };
        let max_attempts = match self.max_attempts {
            Some(0) => {
                return Err(invalid(
                    &Origin::Code("max_attempts"),
                    // A face passes a negative count as 0: no number is quoted.
                    "must be at least 1",
                ));
            }
            Some(n) => {
                origins.push(("max_attempts", Origin::Code("max_attempts")));
                n
            }
            None => match src.lookup(&["AWS_MAX_ATTEMPTS"], "max_attempts") {
                Some((v, o)) => {
                    let n = v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        invalid(
                            &o,
                            format!("must be a whole number of at least 1, got {v:?}"),
                        )
                    })?;
                    origins.push(("max_attempts", o));
                    n
                }
                None => mode.default_max_attempts(),
            },
        };
        let retry = RetryConfig {
            mode,
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
                return Err(invalid(&Origin::Code(name), "must be greater than zero"));
            }
        }

        // CA bundles.
        let ca = self
            .ca_bundle
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| (p, Origin::Code("ca_bundle")))
            .or_else(|| {
                src.lookup(&["AWS_CA_BUNDLE"], "ca_bundle")
                    .map(|(v, o)| (PathBuf::from(v), o))
            });
        let mut http = HttpSettings::default();
        let mut only = None;
        if let Some((path, o)) = &ca {
            only = Some(
                crate::tls::read_pem_bundle(path)
                    .map_err(|e| invalid(o, e))?
                    .1,
            );
            origins.push(("ca_bundle", o.clone()));
        }
        let mut extra = Vec::new();
        if let Some(path) = self
            .extra_ca_bundle
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            extra = crate::tls::read_pem_bundle(path)
                .map_err(|e| invalid(&Origin::Code("extra_ca_bundle"), e))?
                .0;
        }
        http.roots = crate::tls::TrustRoots::new(only, extra);

        // Proxies.
        for (name, vars, slot) in [
            (
                "https_proxy",
                ["HTTPS_PROXY", "https_proxy"],
                &self.https_proxy,
            ),
            ("http_proxy", ["HTTP_PROXY", "http_proxy"], &self.http_proxy),
        ] {
            // Under CGI, HTTP_PROXY is the client's `Proxy:` request header (httpoxy): only the
            // lower-case variable counts there, as curl and reqwest do.
            let vars: &[&'static str] =
                if name == "http_proxy" && src.env("REQUEST_METHOD").is_some() {
                    &vars[1..]
                } else {
                    &vars
                };
            let Some((url, o)) = code(slot.clone(), name).or_else(|| src.first_env(vars)) else {
                continue;
            };
            check_proxy(&url).map_err(|why| invalid(&o, why))?;
            match name {
                "https_proxy" => http.https_proxy = Some(url),
                _ => http.http_proxy = Some(url),
            }
            origins.push((name, o));
        }
        if let Some((v, o)) = code(self.no_proxy.clone(), "no_proxy")
            .or_else(|| src.first_env(&["NO_PROXY", "no_proxy"]))
        {
            http.no_proxy = Some(v);
            origins.push(("no_proxy", o));
        }

        // User agent.
        let app_id = code(self.app_id.clone(), "app_id")
            .or_else(|| src.lookup(&["AWS_SDK_UA_APP_ID"], "sdk_ua_app_id"));
        if let Some((id, o)) = &app_id {
            check_app_id(id).map_err(|why| invalid(o, why))?;
            origins.push(("app_id", o.clone()));
        }
        let lang = match &self.user_agent_suffix {
            Some(s) if s.is_empty() || s.chars().any(|c| !('!'..='~').contains(&c)) => {
                return Err(invalid(
                    &Origin::Code("user_agent_suffix"),
                    "must be printable ASCII without spaces",
                ));
            }
            Some(s) => s.clone(),
            None => format!("rust/{}", crate::VERSION),
        };
        let mut user_agent = format!(
            "marketplace-metering/{} lang/{lang} os/{}",
            crate::VERSION,
            std::env::consts::OS
        );
        if let Some((id, _)) = &app_id {
            user_agent.push_str(" app/");
            user_agent.push_str(id);
        }
        if let Some(extra) = self
            .user_agent_extra
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            if extra.chars().any(|c| !(' '..='~').contains(&c)) {
                return Err(invalid(
                    &Origin::Code("user_agent_extra"),
                    "must be printable ASCII",
                ));
            }
            user_agent.push(' ');
            user_agent.push_str(extra.trim());
        }

        let credentials = match self.credentials {
            Some(c) => CredentialsSource::Static(c),
            None => {
                CredentialsSource::default_chain(self.profile.filter(|p| !p.trim().is_empty()))?
            }
        };
        Ok(Config {
            region,
            endpoint,
            use_fips,
            use_dual_stack,
            credentials,
            retry,
            connect_timeout,
            read_timeout,
            attempt_timeout,
            operation_timeout,
            user_agent,
            app_id: app_id.map(|(id, _)| id),
            ca_bundle: ca.map(|(p, _)| p),
            http,
            profile: src.profile_name().to_owned(),
            origins,
            attempt_observer: self.attempt_observer,
        })
    }
}

/// A proxy URL must be `http://` or `https://` with a host.
pub(super) fn check_proxy(url: &str) -> Result<(), String> {
    let shown = crate::endpoint::redact_proxy(url);
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{shown:?} is not a proxy URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("{shown:?} is not an http:// or https:// proxy URL"));
    }
    // `http://user:12/34@proxy:3128` parses as host `user`, port 12: a password with an
    // unescaped `/`, `?` or `#` would send every request to another proxy.
    if url[url.find("://").map_or(0, |i| i + 3)..]
        .split_once(['/', '?', '#'])
        .is_some_and(|(_, after)| after.contains('@'))
    {
        return Err(format!(
            "{shown:?} is not a proxy URL: an '@' after its host (percent-encode '/', '?', \
             '#' and '@' in a user name or password)"
        ));
    }
    reqwest::Proxy::all(url).map_err(|e| format!("{shown:?} is not a proxy URL: {e}"))?;
    Ok(())
}

/// The SDKs' rule for an app id: at most 50 characters a User-Agent token may hold.
pub(super) fn check_app_id(id: &str) -> Result<(), String> {
    if id.chars().count() > 50 {
        return Err(format!(
            "must be at most 50 characters, got {}",
            id.chars().count()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c)))
    {
        return Err(format!(
            "{id:?} has {c:?}; only letters, digits and !#$%&'*+-.^_`|~ are allowed"
        ));
    }
    Ok(())
}

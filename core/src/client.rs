// SPDX-License-Identifier: Apache-2.0
// The async client: validate, serialize, sign, send, retry, parse — once for every face.

mod attempt;
mod sign;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue};

use crate::credentials::CredentialsProvider;
use crate::error::{
    BatchMeterUsageError, MeterUsageError, RegisterUsageError, ResolveCustomerError,
};
use crate::operation::batch_meter_usage::{
    BatchMeterUsage, BatchMeterUsageFluentBuilder, BatchMeterUsageInput, BatchMeterUsageOutput,
};
use crate::operation::meter_usage::{
    MeterUsage, MeterUsageFluentBuilder, MeterUsageInput, MeterUsageOutput,
};
use crate::operation::register_usage::{
    RegisterUsage, RegisterUsageFluentBuilder, RegisterUsageInput, RegisterUsageOutput,
};
use crate::operation::resolve_customer::{
    ResolveCustomer, ResolveCustomerFluentBuilder, ResolveCustomerInput, ResolveCustomerOutput,
};
use crate::retry::RetryState;

use crate::{runtime, Config, Credentials, Error};

/// The signing name of the service.
const SIGNING_NAME: &str = "aws-marketplace";

/// A service `Date` further than this from the client's clock means the client's is skewed.
const CLOCK_SKEW_THRESHOLD_MS: i64 = 4 * 60 * 1000;

/// How far from a request's signing time the service's clock can be when it accepts the
/// request: its 5 minutes, and a minute for the answer's way back.
const ACCEPTED_SKEW_MS: i64 = 6 * 60 * 1000;

/// The largest offset a `Date` can show and be a clock: 30 days (a clock further off fails
/// TLS's certificate dates before any signature). Past it, an answer's `Date` is a broken or
/// hostile server's: year 9999 made every later signature's time unrepresentable, and the
/// signer panicked at every call.
const MAX_CLOCK_OFFSET_MS: i64 = 30 * 24 * 3600 * 1000;

/// Logs a warning for a plain `http://` endpoint beyond this host: the signed requests and
/// any session token would cross the network in clear text. Allowed, as in the AWS SDKs (a
/// proxy or a test server may need it).
fn warn_if_clear_text(endpoint: &str) {
    let Ok(url) = reqwest::Url::parse(endpoint) else {
        return;
    };
    let host = url.host_str().unwrap_or("localhost");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() == "http" && !loopback {
        tracing::warn!(
            endpoint = %crate::endpoint::redact_userinfo(endpoint),
            "the endpoint is plain http: signed requests and any session token cross the \
             network unencrypted"
        );
    }
}

/// The service's clock minus the local clock, in milliseconds, that an HTTP `Date` shows.
fn date_offset_ms(date: &str) -> Option<i64> {
    let server_ms =
        aws_smithy_types::DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate)
            .ok()?
            .to_millis()
            .ok()?;
    let local_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Some(server_ms.saturating_sub(local_ms)).filter(|o| o.abs() <= MAX_CLOCK_OFFSET_MS)
}

/// [`Inner::clock_candidate_ms`] when no answer awaits confirmation.
const NO_CANDIDATE: i64 = i64::MIN;

/// The codes a service answers a request signed at a skewed time with (as botocore and SDK v3
/// list them).
pub(crate) const CLOCK_SKEW_CODES: &[&str] = &[
    "RequestTimeTooSkewed",
    "RequestExpired",
    "RequestInTheFuture",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
];

/// The codes a service answers credentials it no longer accepts with (a session revoked or
/// expired before the time the issuer stated, a key deleted or rotated, a role's permissions
/// withdrawn): the cached credentials are loaded again (see
/// `CredentialsProvider::refused`), and the refusal concerns every call of the client.
pub(crate) const REFUSED_CREDENTIALS_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AccessDeniedException",
    "AccessDenied",
    "AuthFailure",
];

/// A client for the AWS Marketplace Metering Service.
///
/// Cheap to clone (an `Arc` inside) and safe to share between tasks and threads. Its HTTP
/// connection pool, credentials cache and retry quota are shared by all clones.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// The HTTP client of calls on a shared runtime's workers (or the caller's own runtime).
    /// Connection pools belong to one runtime, so a child process after fork() builds its
    /// own, and never drops its parent's (see [`runtime::PerProcess`]).
    http: runtime::PerProcess<Option<reqwest::Client>>,
    /// The same for blocking calls, whose connections are served by the blocking runtime
    /// (see [`runtime::block_on`]): only a blocking call drives it, so a connection of its
    /// pool handed to a call on a worker could stall until the next blocking call.
    blocking_http: runtime::PerProcess<Option<reqwest::Client>>,
    credentials: CredentialsProvider,
    retry: RetryState,
    /// The endpoint, parsed once (an unparseable one fails every call with its reason).
    url: Result<reqwest::Url, String>,
    /// The endpoint as errors show it: user info redacted.
    shown_endpoint: String,
    /// The service's clock minus the local clock, in milliseconds, as learnt from a `Date`
    /// header that differed by more than [`CLOCK_SKEW_THRESHOLD_MS`] (0 until then).
    clock_offset_ms: AtomicI64,
    /// An offset one answer's `Date` showed and no second answer has confirmed yet
    /// ([`NO_CANDIDATE`]: none).
    clock_candidate_ms: AtomicI64,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Client {
    /// A client with this configuration. Nothing is sent or loaded until the first call.
    pub fn new(config: Config) -> Client {
        warn_if_clear_text(&config.endpoint);
        let credentials = CredentialsProvider::for_client(&config);
        let retry = RetryState::new(config.retry.clone());
        Client {
            inner: Arc::new(Inner {
                http: runtime::PerProcess::new(),
                blocking_http: runtime::PerProcess::new(),
                credentials,
                retry,
                url: reqwest::Url::parse(&config.endpoint).map_err(|e| {
                    format!(
                        "the endpoint {:?} is not a URL: {e}",
                        crate::endpoint::redact_userinfo(&config.endpoint)
                    )
                }),
                shown_endpoint: crate::endpoint::redact_userinfo(&config.endpoint).into_owned(),
                clock_offset_ms: AtomicI64::new(0),
                clock_candidate_ms: AtomicI64::new(NO_CANDIDATE),
                user_agent: HeaderValue::from_str(&config.user_agent)
                    .unwrap_or_else(|_| HeaderValue::from_static("marketplace-metering")),
                config,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Releases the connection pools: idle connections close now, calls in flight keep theirs
    /// until they finish. A later call opens a new pool (as boto3's client after `close()`).
    /// Returns how many pools were released (0, 1 or 2).
    pub fn close(&self) -> usize {
        [&self.inner.http, &self.inner.blocking_http]
            .into_iter()
            .filter(|slot| slot.lock().take().is_some())
            .count()
    }

    /// The service's clock as this client knows it: the local clock, corrected by the offset
    /// learnt from the service's `Date` header when the two were more than 4 minutes apart.
    /// Requests are signed with it; the usage meter judges its window with it.
    pub fn now(&self) -> SystemTime {
        Self::local_plus(self.clock_offset_ms())
    }

    /// The local clock corrected by `offset` milliseconds.
    pub(crate) fn local_plus(offset: i64) -> SystemTime {
        let magnitude = Duration::from_millis(offset.unsigned_abs());
        let local = SystemTime::now();
        if offset >= 0 {
            local + magnitude
        } else {
            local.checked_sub(magnitude).unwrap_or(local)
        }
    }

    /// The correction [`Client::now`] applies to the local clock, in milliseconds (service
    /// minus local; 0 until a skew was seen). Shared by all clones.
    pub fn clock_offset_ms(&self) -> i64 {
        self.inner.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Notes the offset a response's `Date` shows when it is further than the threshold from
    /// [`Client::now`]. One answer does not move the clock (the usage meter files events by
    /// it, so one bad `Date` from a broken load balancer or an intermediary would put them in
    /// another hour): the offset is learnt when a second answer agrees with it, or from an
    /// answer that says the signature's time was wrong once the call re-signed with its `Date`
    /// is accepted ([`Client::skew_offset`]).
    ///
    /// The answer is to a request the service accepted signed with `signed_with`, so its
    /// clock was within its 5 minutes of that: a `Date` further off is not its clock (a hop
    /// that rewrites it). Learnt, it would make every later signature refused, through that
    /// hop for good.
    fn observe_date(&self, headers: &HeaderMap, signed_with: i64) {
        let Some(seen) = headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(date_offset_ms)
            .filter(|seen| seen.abs_diff(signed_with) <= ACCEPTED_SKEW_MS as u64)
        else {
            return;
        };
        let candidate = &self.inner.clock_candidate_ms;
        if seen.abs_diff(self.clock_offset_ms()) <= CLOCK_SKEW_THRESHOLD_MS as u64 {
            // Read first: every answer comes here, and a store would make the calls in flight
            // on other threads pass the cache line around.
            if candidate.load(Ordering::Relaxed) != NO_CANDIDATE {
                candidate.store(NO_CANDIDATE, Ordering::Relaxed);
            }
            return;
        }
        let before = candidate.swap(seen, Ordering::Relaxed);
        if before != NO_CANDIDATE && before.abs_diff(seen) <= CLOCK_SKEW_THRESHOLD_MS as u64 {
            candidate.store(NO_CANDIDATE, Ordering::Relaxed);
            self.learn_offset(seen);
        }
    }

    /// The offset `date` (the `Date` of an answer refusing the signature's time) shows, when
    /// it is further than the threshold from the offset the request was signed with
    /// (`signed_with`): the clock to re-sign that call
    /// with. Only that answer's own `Date` counts (another call's, seen meanwhile, may be the
    /// stray one), and it is learnt for the client by [`Client::learn_offset`] only once the
    /// service accepts a request signed with it: a server that refuses every signature with a
    /// wrong `Date` moves nothing.
    pub(crate) fn skew_offset(date: Option<&str>, signed_with: i64) -> Option<i64> {
        date.and_then(date_offset_ms)
            .filter(|seen| seen.abs_diff(signed_with) > CLOCK_SKEW_THRESHOLD_MS as u64)
    }

    /// Whether an answer's `Date` is within the threshold of `offset_ms` (an answer with no
    /// `Date` does not agree).
    pub(crate) fn date_agrees(headers: &HeaderMap, offset_ms: i64) -> bool {
        headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(date_offset_ms)
            .is_some_and(|seen| seen.abs_diff(offset_ms) <= CLOCK_SKEW_THRESHOLD_MS as u64)
    }

    pub(crate) fn learn_offset(&self, offset_ms: i64) {
        self.inner
            .clock_offset_ms
            .store(offset_ms, Ordering::Relaxed);
        tracing::debug!(offset_ms, "clock skew: signing with the service's clock");
    }

    /// Sends `BatchMeterUsage`: up to 25 usage records for SaaS customers.
    pub fn batch_meter_usage(&self) -> BatchMeterUsageFluentBuilder {
        BatchMeterUsageFluentBuilder::new(self.clone())
    }

    /// Sends `MeterUsage`: one dimension's usage for AMI and container products.
    pub fn meter_usage(&self) -> MeterUsageFluentBuilder {
        MeterUsageFluentBuilder::new(self.clone())
    }

    /// Sends `ResolveCustomer`: the customer behind a SaaS registration token.
    pub fn resolve_customer(&self) -> ResolveCustomerFluentBuilder {
        ResolveCustomerFluentBuilder::new(self.clone())
    }

    /// Sends `RegisterUsage`: entitlement check for paid container products.
    pub fn register_usage(&self) -> RegisterUsageFluentBuilder {
        RegisterUsageFluentBuilder::new(self.clone())
    }

    /// `BatchMeterUsage` with a built input.
    pub async fn send_batch_meter_usage(
        &self,
        input: BatchMeterUsageInput,
    ) -> Result<BatchMeterUsageOutput, BatchMeterUsageError> {
        self.invoke::<BatchMeterUsage>(input)
            .await
            .map_err(Into::into)
    }

    /// `MeterUsage` with a built input. A missing `ClientToken` is filled with a UUID that
    /// every retry of this call reuses.
    pub async fn send_meter_usage(
        &self,
        input: MeterUsageInput,
    ) -> Result<MeterUsageOutput, MeterUsageError> {
        self.invoke::<MeterUsage>(input).await.map_err(Into::into)
    }

    /// `ResolveCustomer` with a built input.
    pub async fn send_resolve_customer(
        &self,
        input: ResolveCustomerInput,
    ) -> Result<ResolveCustomerOutput, ResolveCustomerError> {
        self.invoke::<ResolveCustomer>(input)
            .await
            .map_err(Into::into)
    }

    /// `RegisterUsage` with a built input.
    pub async fn send_register_usage(
        &self,
        input: RegisterUsageInput,
    ) -> Result<RegisterUsageOutput, RegisterUsageError> {
        self.invoke::<RegisterUsage>(input)
            .await
            .map_err(Into::into)
    }

    /// Loads credentials (if not cached) and says which provider supplied them
    /// (`"Static"`, `"EnvironmentVariable"`, `"WebIdentityToken"`, …), never the credentials.
    pub async fn credentials_provider_name(&self) -> Result<String, Error> {
        let offset = self.clock_offset_ms();
        self.inner.credentials.credentials_at(offset).await?;
        Ok(self
            .inner
            .credentials
            .provider_name()
            .unwrap_or_else(|| "unknown".to_owned()))
    }

    /// Signs every later call — of this client and all its clones — with `credentials`,
    /// instead of the configured ones or the default chain. Calls already signed are not
    /// affected.
    ///
    /// For credentials that come from a provider of the caller's own (Node's async
    /// `credentials` provider, a secrets manager): the client keeps its connection pool and
    /// retry quota, where building a new client would drop them.
    pub fn set_credentials(&self, credentials: Credentials) {
        self.inner.credentials.set(credentials);
    }

    /// The HTTP client (and so the connection pool) for a call made here: blocking calls
    /// share one, calls on any other runtime another.
    fn http(&self) -> Result<reqwest::Client, Error> {
        let slot = if runtime::on_blocking_runtime() {
            &self.inner.blocking_http
        } else {
            &self.inner.http
        };
        let mut slot = slot.lock();
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let cfg = &self.inner.config;
        let c = crate::tls::http_client(cfg.connect_timeout, cfg.read_timeout, &cfg.http)?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::date_time::Format;

    fn http_date(secs: i64) -> String {
        aws_smithy_types::DateTime::from_secs(secs)
            .fmt(Format::HttpDate)
            .unwrap()
    }

    /// An answer refusing the signature's time adopts its own `Date`, not the one another
    /// call stored as a candidate meanwhile (a stray one, from a broken load balancer).
    #[test]
    fn a_skew_answer_adopts_its_own_date_not_another_calls() {
        let c = Client::new(
            Config::builder()
                .region("us-east-1")
                .static_credentials("AKID", "secret", None)
                .build()
                .unwrap(),
        );
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut h = HeaderMap::new();
        h.insert(http::header::DATE, http_date(now - 290).parse().unwrap());
        c.observe_date(&h, 0);
        assert_eq!(c.clock_offset_ms(), 0, "one answer moves nothing");
        assert_eq!(
            Client::skew_offset(Some(&http_date(now)), 0),
            None,
            "the skew answer's own Date is the local time"
        );
        assert_eq!(c.clock_offset_ms(), 0);
        let learnt = Client::skew_offset(Some(&http_date(now + 1200)), 0).unwrap();
        assert_eq!(
            c.clock_offset_ms(),
            0,
            "learnt only once a re-signed call is accepted"
        );
        assert!((learnt - 1_200_000).abs() < 3000, "{learnt}");
    }
}

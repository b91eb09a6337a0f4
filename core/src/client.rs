// SPDX-License-Identifier: Apache-2.0
// The async client: validate, serialize, sign, send, retry, parse — once for every face.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};

use crate::credentials::CredentialsProvider;
use crate::error::AttemptLog;
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
use crate::operation::Operation;
use crate::retry::{classify, RetryClass, RetryState};
use crate::tls::BodyError;

/// Fills an attempt's span, and the call's with the latest answer.
fn record_attempt(span: &tracing::Span, call: &tracing::Span, e: &AttemptLog) {
    if let Some(s) = e.status {
        span.record("status", s);
        call.record("status", s);
    }
    if let Some(id) = &e.request_id {
        span.record("request_id", id.as_str());
        call.record("request_id", id.as_str());
    }
    span.record("latency_ms", e.latency.as_secs_f64() * 1000.0);
    span.record("outcome", e.outcome.as_str());
    if let Some(r) = e.retry_reason {
        span.record("retry_reason", r);
    }
    call.record("attempts", e.attempt);
}
use crate::{runtime, wire, Config, Credentials, Error, ErrorCode, ResponseMetadata};

/// The signing name of the service.
const SIGNING_NAME: &str = "aws-marketplace";

/// A service `Date` further than this from the client's clock means the client's is skewed.
const CLOCK_SKEW_THRESHOLD_MS: i64 = 4 * 60 * 1000;

/// The codes a service answers a request signed at a skewed time with (as botocore and SDK v3
/// list them).
const CLOCK_SKEW_CODES: &[&str] = &[
    "RequestTimeTooSkewed",
    "RequestExpired",
    "RequestInTheFuture",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
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
    /// The HTTP client of calls on a shared runtime's workers (or the caller's own runtime),
    /// and the pid it was built in: connection pools belong to one runtime, so a child
    /// process after fork() builds its own.
    http: Mutex<Option<(u32, reqwest::Client)>>,
    /// The same for blocking calls, whose connections are served by the blocking runtime
    /// (see [`runtime::block_on`]): only a blocking call drives it, so a connection of its
    /// pool handed to a call on a worker could stall until the next blocking call.
    blocking_http: Mutex<Option<(u32, reqwest::Client)>>,
    credentials: CredentialsProvider,
    retry: RetryState,
    /// The endpoint, parsed once (an unparseable one fails every call with its reason).
    url: Result<reqwest::Url, String>,
    /// The endpoint as errors show it: user info redacted.
    shown_endpoint: String,
    /// The service's clock minus the local clock, in milliseconds, as learnt from a `Date`
    /// header that differed by more than [`CLOCK_SKEW_THRESHOLD_MS`] (0 until then).
    clock_offset_ms: AtomicI64,
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
        let credentials = CredentialsProvider::new(config.credentials.clone())
            .with_region(config.region.clone())
            .with_http(config.http.clone());
        let retry = RetryState::new(config.retry.clone());
        Client {
            inner: Arc::new(Inner {
                http: Mutex::new(None),
                blocking_http: Mutex::new(None),
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
        let pid = runtime::pid();
        let mut released = 0;
        for slot in [&self.inner.http, &self.inner.blocking_http] {
            let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            match taken {
                Some((p, c)) if p == pid => {
                    drop(c);
                    released += 1;
                }
                // Built before fork(): its connections belong to the parent.
                Some(inherited) => runtime::keep_inherited(inherited),
                None => {}
            }
        }
        released
    }

    /// The service's clock as this client knows it: the local clock, corrected by the offset
    /// learnt from the service's `Date` header when the two were more than 4 minutes apart.
    /// Requests are signed with it; the usage meter judges its window with it.
    pub fn now(&self) -> SystemTime {
        let offset = self.clock_offset_ms();
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

    /// Learns the offset from a response's `Date` when it is further than the threshold from
    /// [`Client::now`].
    fn observe_date(&self, headers: &HeaderMap) {
        let Some(server_ms) = headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                aws_smithy_types::DateTime::from_str(
                    v,
                    aws_smithy_types::date_time::Format::HttpDate,
                )
                .ok()
            })
            .and_then(|d| d.to_millis().ok())
        else {
            return;
        };
        let local_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let offset = self.clock_offset_ms();
        if (server_ms - (local_ms + offset)).abs() <= CLOCK_SKEW_THRESHOLD_MS {
            return;
        }
        let learnt = server_ms - local_ms;
        self.inner.clock_offset_ms.store(learnt, Ordering::Relaxed);
        tracing::debug!(
            offset_ms = learnt,
            "clock skew: signing with the service's clock"
        );
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
        self.inner.credentials.credentials().await?;
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
        let pid = runtime::pid();
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((p, c)) = slot.as_ref() {
            if *p == pid {
                return Ok(c.clone());
            }
            // Built before fork(): its pooled connections belong to the parent.
            runtime::keep_inherited(slot.take());
        }
        let cfg = &self.inner.config;
        let c = crate::tls::http_client(cfg.connect_timeout, cfg.read_timeout, &cfg.http)?;
        *slot = Some((pid, c.clone()));
        Ok(c)
    }

    async fn invoke<O: Operation>(&self, mut input: O::Input) -> Result<O::Output, Error> {
        O::validate(&input)?;
        O::prepare(&mut input);
        let mut buf = Vec::with_capacity(O::size_hint(&input));
        serde_json::to_writer(&mut buf, &input)
            .map_err(|e| Error::invalid_input("<request>", format!("cannot be serialized: {e}")))?;
        let body = Bytes::from(buf);
        if body.len() > crate::validate::MAX_REQUEST_BYTES {
            return Err(Error::invalid_input(
                "<request>",
                format!(
                    "is {} bytes; the service accepts at most {}",
                    body.len(),
                    crate::validate::MAX_REQUEST_BYTES
                ),
            ));
        }
        let http = self.http()?;
        let mut attempts = 0u32;
        let mut total_delay = Duration::ZERO;
        let mut log = Vec::new();
        let span = tracing::debug_span!(
            "marketplace_metering.call",
            operation = O::NAME,
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        let run = tracing::Instrument::instrument(
            self.attempts::<O>(
                &http,
                &body,
                &mut attempts,
                &mut total_delay,
                &mut log,
                &span,
            ),
            span.clone(),
        );
        let Some(limit) = self.inner.config.operation_timeout else {
            return run.await;
        };
        let result = tokio::time::timeout(limit, run).await;
        span.record("attempts", attempts);
        match result {
            Ok(result) => result,
            Err(_) => {
                let mut err = Error::new(
                    ErrorCode::ReadTimeout,
                    format!(
                        "timed out: the call to {} took longer than the operation timeout ({limit:?})",
                        self.inner.shown_endpoint
                    ),
                );
                let m = err.meta_mut();
                m.attempts = attempts;
                m.total_retry_delay = total_delay;
                m.attempt_log = log;
                tracing::debug!(operation = O::NAME, attempts, "operation timeout");
                Err(err)
            }
        }
    }

    /// Attempts until one succeeds or retrying stops, counting in `attempt` and `total_delay`
    /// (read back when the operation timeout cuts this short).
    async fn attempts<O: Operation>(
        &self,
        http: &reqwest::Client,
        body: &Bytes,
        attempt: &mut u32,
        total_delay: &mut Duration,
        log: &mut Vec<AttemptLog>,
        call_span: &tracing::Span,
    ) -> Result<O::Output, Error> {
        let retry = &self.inner.retry;
        let max = self.inner.config.retry.max_attempts;
        let attempt_timeout = self.inner.config.attempt_timeout;
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let mut paid: Vec<RetryClass> = Vec::new();
        let mut skew_corrected = false;
        loop {
            *attempt += 1;
            let attempt = *attempt;
            retry.before_attempt().await;
            let signed_with = self.clock_offset_ms();
            let span = tracing::debug_span!(
                "attempt",
                operation = O::NAME,
                attempt,
                status = tracing::field::Empty,
                request_id = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
                outcome = tracing::field::Empty,
                retry_reason = tracing::field::Empty,
            );
            let started = std::time::Instant::now();
            let result = match tokio::time::timeout(
                attempt_timeout,
                tracing::Instrument::instrument(
                    self.attempt::<O>(http, body, &invocation_id, attempt, max),
                    span.clone(),
                ),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(Error::new(
                    ErrorCode::ReadTimeout,
                    format!(
                        "timed out: the attempt on {} took longer than the attempt timeout \
                         ({attempt_timeout:?})",
                        self.inner.shown_endpoint
                    ),
                )),
            };
            let latency = started.elapsed();
            let mut err = match result {
                Ok(mut out) => {
                    retry.after_attempt(false);
                    retry.on_success(&paid);
                    let entry = AttemptLog {
                        operation: O::NAME,
                        attempt,
                        status: out.1.http_status,
                        request_id: out.1.request_id.clone(),
                        latency,
                        outcome: "ok".to_owned(),
                        retry_reason: None,
                        retry_delay: None,
                    };
                    record_attempt(&span, call_span, &entry);
                    log.push(entry);
                    out.1.attempts = attempt;
                    out.1.total_retry_delay = *total_delay;
                    out.1.attempt_log = std::mem::take(log);
                    O::set_meta(&mut out.0, out.1);
                    return Ok(out.0);
                }
                Err(e) => e,
            };
            let mut entry = AttemptLog {
                operation: O::NAME,
                attempt,
                status: err.http_status(),
                request_id: err.request_id().map(str::to_owned),
                latency,
                outcome: err.code().to_owned(),
                retry_reason: None,
                retry_delay: None,
            };
            // Signed with a clock the service's Date showed to be skewed: re-sign with the
            // corrected one and try again at once, once per call (as botocore and SDK v3).
            if !skew_corrected
                && CLOCK_SKEW_CODES.contains(&err.code())
                && self.clock_offset_ms() != signed_with
            {
                skew_corrected = true;
                entry.retry_reason = Some("clock skew");
                entry.retry_delay = Some(Duration::ZERO);
                record_attempt(&span, call_span, &entry);
                log.push(entry);
                tracing::debug!(
                    operation = O::NAME,
                    attempt,
                    code = err.code(),
                    "re-signing"
                );
                continue;
            }
            let class = if err.error_code() == ErrorCode::Credentials {
                None
            } else {
                classify(
                    err.metadata().http_status.map(|_| err.code()),
                    err.http_status(),
                    match err.error_code() {
                        c @ (ErrorCode::Dispatch
                        | ErrorCode::ConnectTimeout
                        | ErrorCode::ReadTimeout) => Some(c),
                        ErrorCode::InvalidResponse => Some(ErrorCode::InvalidResponse),
                        _ => None,
                    },
                )
            };
            retry.after_attempt(class == Some(RetryClass::Throttling));
            let delay = class.and_then(|c| {
                let d = retry.retry_after(c, attempt);
                if d.is_some() {
                    paid.push(c);
                }
                d
            });
            err = err.with_retryable(class.is_some());
            if let (Some(c), Some(d)) = (class, delay) {
                entry.retry_reason = Some(match c {
                    RetryClass::Throttling => "throttling",
                    RetryClass::Transient => "transient",
                    RetryClass::Timeout => "timeout",
                });
                entry.retry_delay = Some(d);
            }
            record_attempt(&span, call_span, &entry);
            log.push(entry);
            {
                let m = err.meta_mut();
                m.attempts = attempt;
                m.total_retry_delay = *total_delay;
                if delay.is_none() {
                    m.attempt_log = std::mem::take(log);
                }
            }
            match delay {
                Some(d) => {
                    tracing::debug!(
                        operation = O::NAME,
                        attempt,
                        code = err.code(),
                        delay_ms = d.as_millis() as u64,
                        "retrying"
                    );
                    *total_delay += d;
                    tokio::time::sleep(d).await;
                }
                None => {
                    tracing::debug!(operation = O::NAME, attempt, code = err.code(), "failed");
                    return Err(err);
                }
            }
        }
    }

    /// One signed HTTP exchange.
    async fn attempt<O: Operation>(
        &self,
        http: &reqwest::Client,
        body: &Bytes,
        invocation_id: &str,
        attempt: u32,
        max: u32,
    ) -> Result<(O::Output, ResponseMetadata), Error> {
        let cfg = &self.inner.config;
        let creds = self.inner.credentials.credentials().await?;
        let url = self
            .inner
            .url
            .as_ref()
            .map_err(|e| Error::invalid_config(e.clone()))?;
        // The request is built once as reqwest's own type: no http::Request, no URL re-parse.
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(wire::CONTENT_TYPE));
        headers.insert("x-amz-target", HeaderValue::from_static(O::TARGET));
        headers.insert(USER_AGENT, self.inner.user_agent.clone());
        headers.insert(
            "amz-sdk-invocation-id",
            HeaderValue::from_str(invocation_id)
                .map_err(|e| Error::invalid_state(e.to_string()))?,
        );
        headers.insert(
            "amz-sdk-request",
            HeaderValue::from_str(&format!("attempt={attempt}; max={max}"))
                .map_err(|e| Error::invalid_state(e.to_string()))?,
        );
        let identity: Identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&cfg.region)
            .name(SIGNING_NAME)
            .time(self.now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::invalid_config(format!("cannot sign: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Error::invalid_config(format!("cannot sign: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Error::invalid_config(format!("cannot sign: {e}")))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?;
            // The session token and signature are credentials: keep them out of any Debug.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut req = reqwest::Request::new(http::Method::POST, url.clone());
        *req.headers_mut() = headers;
        *req.body_mut() = Some(reqwest::Body::from(body.clone()));
        let shown = &self.inner.shown_endpoint;
        let (status, headers, body) = exchange(http, req)
            .await?
            .map_err(|e| transport_error(e, shown, false))?;
        let request_id = wire::request_id(&headers);
        self.observe_date(&headers);
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                let mut err = match e {
                    BodyError::Read(e) => transport_error(e, shown, true),
                    BodyError::TooLarge => Error::new(
                        ErrorCode::InvalidResponse,
                        format!(
                            "the response from {shown} is larger than {} bytes",
                            crate::tls::MAX_RESPONSE_BYTES
                        ),
                    ),
                };
                err.meta_mut().http_status = Some(status);
                err.meta_mut().request_id = request_id;
                return Err(err);
            }
        };
        tracing::debug!(
            operation = O::NAME,
            attempt,
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            "response"
        );
        let error = if (200..300).contains(&status) {
            None
        } else if (300..400).contains(&status) {
            Some(redirect_error(status, &headers))
        } else {
            Some(wire::parse_error(status, &headers, &body))
        };
        let meta = ResponseMetadata {
            request_id,
            http_status: Some(status),
            http_headers: headers,
            attempts: attempt,
            total_retry_delay: Duration::ZERO,
            attempt_log: Vec::new(),
        };
        match error {
            Some(e) => Err(e.with_meta(meta)),
            None => match wire::parse_output::<O::Output>(O::NAME, &body) {
                Ok(out) => Ok((out, meta)),
                Err(e) => Err(e.with_meta(meta)),
            },
        }
    }
}

/// A response: status, headers and the body (or why it could not be read).
type Exchanged = (u16, HeaderMap, Result<Bytes, BodyError>);

/// Sends `req` and reads the whole response.
///
/// Where the exchange runs decides how many threads a call wakes. The connection's task
/// (hyper's) is spawned on the runtime that opened the connection and the call's future
/// hands it the request and waits for its answer. Inside a task, both sit on the same
/// worker, so the exchange runs right here. Outside any task (the future given to a
/// multi-thread runtime's `block_on`, which `#[tokio::main]` is) every hand-off between the
/// caller's thread and the connection's worker is a cross-thread wake-up, several per call,
/// and an idle worker woken for nothing on top: such calls run the exchange on
/// [`runtime::io`]'s single thread, which owns their connections, so a call costs one
/// hand-off each way (measured on a 2-core VM against a canned server: 8.0 context
/// switches and 14.7 system calls per sequential call before, 3.2 and 9.1 after).
async fn exchange(
    http: &reqwest::Client,
    req: reqwest::Request,
) -> Result<Result<Exchanged, reqwest::Error>, Error> {
    async fn run(
        http: reqwest::Client,
        req: reqwest::Request,
    ) -> Result<Exchanged, reqwest::Error> {
        let mut resp = http.execute(req).await?;
        let status = resp.status().as_u16();
        // Taken, not cloned: the body does not need them once the response has arrived.
        let headers = std::mem::take(resp.headers_mut());
        Ok((status, headers, crate::tls::read_body(resp).await))
    }
    if !runtime::outside_any_task() {
        return Ok(run(http.clone(), req).await);
    }
    /// Aborts the exchange when the call stops waiting for it (a timeout, a dropped future).
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(runtime::spawn_io(run(http.clone(), req))?);
    (&mut task.0)
        .await
        .map_err(|e| Error::invalid_state(format!("the HTTP exchange did not finish: {e}")))
}

/// A 3xx answer: redirects are never followed (the signed request and its session token
/// stay with the configured endpoint), so it is an error that names where it pointed.
fn redirect_error(status: u16, headers: &HeaderMap) -> Error {
    let location = headers
        .get(http::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let to = match &location {
        Some(l) => format!("to {:?}", crate::endpoint::redact_userinfo(l)),
        None => "with no Location".to_owned(),
    };
    Error::service(
        &status.to_string(),
        format!("HTTP {status} redirect {to}: redirects are never followed"),
    )
}

/// Maps a reqwest failure to `Dispatch`, `ConnectTimeout` or `ReadTimeout`, with the cause
/// chain in the message (it never holds credentials: they travel only in headers, and the
/// URL, which may carry user info, is dropped from it). `in_body`: the response had
/// started, and its body could not be read to the end.
fn transport_error(e: reqwest::Error, endpoint: &str, in_body: bool) -> Error {
    let e = e.without_url();
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let code = if e.is_connect() {
        if e.is_timeout() || chain.contains("timed out") {
            ErrorCode::ConnectTimeout
        } else {
            ErrorCode::Dispatch
        }
    } else if e.is_timeout() {
        ErrorCode::ReadTimeout
    } else {
        ErrorCode::Dispatch
    };
    let message = match code {
        ErrorCode::ConnectTimeout => format!("timed out connecting to {endpoint}: {chain}"),
        ErrorCode::ReadTimeout => format!("timed out reading from {endpoint}: {chain}"),
        _ if in_body => {
            format!("the response body from {endpoint} ended early or could not be read: {chain}")
        }
        _ => format!("could not reach {endpoint}: {chain}"),
    };
    Error::new(code, message).with_source(e)
}

// SPDX-License-Identifier: Apache-2.0
// One call's attempts: sign, send, read, classify and retry; transport errors.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};

use crate::error::AttemptLog;
use crate::operation::Operation;
use crate::retry::{classify, RetryClass};
use crate::tls::BodyError;
use crate::{runtime, wire, Error, ErrorCode, ResponseMetadata};

use super::{Client, CLOCK_SKEW_CODES, REFUSED_CREDENTIALS_CODES, SIGNING_NAME};

// Header names made once: a name given as a string is copied into a new allocation at
// every insert.
const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const AMZ_SDK_INVOCATION_ID: HeaderName = HeaderName::from_static("amz-sdk-invocation-id");
const AMZ_SDK_REQUEST: HeaderName = HeaderName::from_static("amz-sdk-request");
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Fills an attempt's span, and the call's with the latest answer.
pub(super) fn record_attempt(span: &tracing::Span, call: &tracing::Span, e: &AttemptLog) {
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

impl Client {
    /// Every operation's call. Boxed once here: a call's future is moved whole at every layer
    /// on its way to a runtime (a face's wrappers, the task, `block_on`), and the attempt
    /// loop inside is kilobytes, so each face holds a pointer instead of copying it.
    pub(super) fn invoke<O: Operation + 'static>(
        &self,
        input: O::Input,
    ) -> Pin<Box<impl Future<Output = Result<O::Output, Error>> + Send + '_>> {
        Box::pin(self.invoke_inline::<O>(input))
    }

    async fn invoke_inline<O: Operation>(&self, mut input: O::Input) -> Result<O::Output, Error> {
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
        let mut progress = Progress::default();
        let span = tracing::debug_span!(
            "marketplace_metering.call",
            operation = O::NAME,
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        let run = tracing::Instrument::instrument(
            self.attempts::<O>(&http, &body, &mut progress, &span),
            span.clone(),
        );
        let Some(limit) = self.inner.config.operation_timeout else {
            return run.await;
        };
        let result = tokio::time::timeout(limit, run).await;
        let Progress {
            attempts,
            sent,
            loading,
            total_delay,
            log,
        } = progress;
        span.record("attempts", attempts);
        match result {
            Ok(result) => result,
            Err(_) if !sent && !loading => {
                // Held by the adaptive mode's rate limiter: no attempt reached the service,
                // which a meter reads in `attempts()` (0) and puts the buckets back to sealed.
                let mut err = Error::new(
                    ErrorCode::ReadTimeout,
                    format!(
                        "timed out: the operation timeout ({limit:?}) passed before a request \
                         was sent (the adaptive retry mode's rate limiter held it)"
                    ),
                )
                .with_retryable(true);
                err.meta_mut().attempt_log = log;
                Err(err)
            }
            Err(_) if !sent => {
                // A retryable credentials error, as a load's own timeout is: a meter puts
                // the call's buckets back to sealed, certain the service never saw them.
                let err = Error::credentials(format!(
                    "loading credentials took longer than the operation timeout ({limit:?}); \
                     nothing was sent"
                ))
                .with_retryable(true);
                tracing::debug!(
                    operation = O::NAME,
                    "operation timeout while loading credentials"
                );
                Err(err)
            }
            Err(_) => {
                let mut err = Error::new(
                    ErrorCode::ReadTimeout,
                    format!(
                        "timed out: the call to {} took longer than the operation timeout ({limit:?})",
                        self.inner.shown_endpoint
                    ),
                )
                // As every timeout: the call may succeed if made again (a meter's flush
                // defers its buckets for the next one instead of reporting a refusal).
                .with_retryable(true);
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
        progress: &mut Progress,
        call_span: &tracing::Span,
    ) -> Result<O::Output, Error> {
        let Progress {
            attempts: attempt,
            sent,
            loading,
            total_delay,
            log,
        } = progress;
        let retry = &self.inner.retry;
        let max = self.inner.config.retry.max_attempts;
        let attempt_timeout = self.inner.config.attempt_timeout;
        let mut id_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let invocation_id = &*invocation_id().hyphenated().encode_lower(&mut id_text);
        let mut paid: Vec<RetryClass> = Vec::new();
        let mut skew_corrected = false;
        // The offset a skew answer's `Date` showed: this call signs with it, and the client
        // learns it once a request signed with it is accepted.
        let mut skew_offset: Option<i64> = None;
        loop {
            *attempt += 1;
            let attempt = *attempt;
            retry.before_attempt().await;
            let signed_with = skew_offset.unwrap_or_else(|| self.clock_offset_ms());
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
            // Loaded before the attempt's clock starts: a load (IMDS, SSO, a container's
            // endpoint) has its own limit, and an attempt timeout shorter than a slow load
            // cancelled it at every attempt, so it never finished.
            *loading = true;
            let creds = self.inner.credentials.credentials_at(signed_with).await;
            *loading = false;
            let started = std::time::Instant::now();
            // What the attempt signs with, told to the chain if the service refuses it (a
            // clone of an `Arc`).
            let mut used = None;
            let timed = match creds {
                Ok(creds) => {
                    *sent = true;
                    used = Some(creds.clone());
                    tokio::time::timeout(
                        attempt_timeout,
                        tracing::Instrument::instrument(
                            self.attempt::<O>(
                                http,
                                body,
                                SignWith {
                                    creds,
                                    offset_ms: signed_with,
                                },
                                invocation_id,
                                attempt,
                                max,
                            ),
                            span.clone(),
                        ),
                    )
                    .await
                }
                Err(e) => Ok(Err(e)),
            };
            let result = match timed {
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
            if let Some(offset) = skew_offset {
                // Accepted: an answer of the service itself but a refusal of the time, whose
                // own `Date` agrees (a proxy's or a firewall's 403 page proves nothing).
                // A success without the operation's own members is a hop's as easily (see
                // `attempt`).
                let accepted = match &result {
                    Ok((_, meta, answered)) => {
                        *answered && Client::date_agrees(&meta.http_headers, offset)
                    }
                    Err(e) => {
                        service_refusal(e) && Client::date_agrees(&e.meta().http_headers, offset)
                    }
                };
                if accepted {
                    self.learn_offset(offset);
                    skew_offset = None;
                }
            }
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
            let refused_time = CLOCK_SKEW_CODES.contains(&err.code());
            if !skew_corrected && refused_time {
                // The service refused the signature's time: its Date is the clock to sign with.
                let date = err
                    .meta()
                    .http_headers()
                    .find(|(k, _)| *k == "date")
                    .map(|(_, v)| v);
                skew_offset = Self::skew_offset(date, signed_with).or_else(|| {
                    (self.clock_offset_ms() != signed_with).then(|| self.clock_offset_ms())
                });
            }
            if !skew_corrected && refused_time && skew_offset.is_some() {
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
            // Refused credentials (not a skew this call re-signs for, above): the chain
            // loads them again at the next call instead of keeping them until their expiry.
            if let Some(creds) = &used {
                if refuses_credentials(O::NAME, &err) {
                    self.inner.credentials.refused(creds, signed_with);
                }
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
            // Credentials are not loaded again within a call (as botocore's): a load that
            // timed out keeps its own "retryable", for the caller's next call.
            let retryable = class.is_some()
                || (err.error_code() == ErrorCode::Credentials && err.is_retryable());
            err = err.with_retryable(retryable);
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
                    m.max_attempts_reached = attempt >= max
                        && (self.inner.config.retry.mode != crate::RetryMode::Legacy
                            || class.is_some());
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
    /// aws-sigv4's general signer, for a request [`super::sign::sign`] does not sign (an
    /// endpoint with a path or query, a session token with spaces): adds its headers.
    fn sign_general(
        &self,
        url: &reqwest::Url,
        creds: &aws_credential_types::Credentials,
        time: std::time::SystemTime,
        body: &Bytes,
        headers: &mut HeaderMap,
    ) -> Result<(), Error> {
        let cfg = &self.inner.config;
        // Only on this rare path: the credentials are an `Arc`'s clone.
        let identity: Identity = creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&cfg.region)
            .name(SIGNING_NAME)
            .time(time)
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
            let name = match name {
                "authorization" => http::header::AUTHORIZATION,
                "x-amz-date" => X_AMZ_DATE,
                "x-amz-security-token" => X_AMZ_SECURITY_TOKEN,
                other => http::HeaderName::from_bytes(other.as_bytes())
                    .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?,
            };
            let mut value = HeaderValue::from_str(value)
                .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?;
            // The session token and signature are credentials: keep them out of any Debug.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(())
    }

    /// One attempt: its output and metadata, and whether the success carries the operation's
    /// own members ([`Operation::answered`]; another does not tell the service's clock).
    async fn attempt<O: Operation>(
        &self,
        http: &reqwest::Client,
        body: &Bytes,
        sign_with: SignWith,
        invocation_id: &str,
        attempt: u32,
        max: u32,
    ) -> Result<(O::Output, ResponseMetadata, bool), Error> {
        let cfg = &self.inner.config;
        let SignWith { creds, offset_ms } = sign_with;
        let url = self
            .inner
            .url
            .as_ref()
            .map_err(|e| Error::invalid_config(e.clone()))?;
        // The request is built once as reqwest's own type: no http::Request, no URL re-parse.
        // Signed: what the service reads. `user-agent` (which proxies rewrite) and
        // `amz-sdk-request` (which only counts attempts) are added after signing, as the AWS
        // SDKs do: fewer headers to canonicalize.
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(wire::CONTENT_TYPE));
        headers.insert(X_AMZ_TARGET, HeaderValue::from_static(O::TARGET));
        headers.insert(
            AMZ_SDK_INVOCATION_ID,
            HeaderValue::from_str(invocation_id)
                .map_err(|e| Error::invalid_state(e.to_string()))?,
        );
        let time = Self::local_plus(offset_ms);
        let quick = super::sign::sign(
            url,
            &cfg.region,
            SIGNING_NAME,
            &creds,
            time,
            &super::sign::Headers {
                invocation_id,
                content_type: wire::CONTENT_TYPE,
                target: O::TARGET,
            },
            body,
        );
        match quick {
            Some(signed) => {
                let mut value = HeaderValue::from_str(&signed.authorization)
                    .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?;
                value.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, value);
                headers.insert(
                    X_AMZ_DATE,
                    HeaderValue::from_str(&signed.date_time)
                        .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?,
                );
                if let Some(token) = creds.session_token() {
                    let mut value = HeaderValue::from_str(token)
                        .map_err(|e| Error::invalid_state(format!("signing header: {e}")))?;
                    value.set_sensitive(true);
                    headers.insert(X_AMZ_SECURITY_TOKEN, value);
                }
            }
            None => self.sign_general(url, &creds, time, body, &mut headers)?,
        }
        headers.insert(USER_AGENT, self.inner.user_agent.clone());
        headers.insert(
            AMZ_SDK_REQUEST,
            HeaderValue::from_maybe_shared(Bytes::from(format!("attempt={attempt}; max={max}")))
                .map_err(|e| Error::invalid_state(e.to_string()))?,
        );
        let mut req = reqwest::Request::new(http::Method::POST, url.clone());
        *req.headers_mut() = headers;
        *req.body_mut() = Some(reqwest::Body::from(body.clone()));
        let shown = &self.inner.shown_endpoint;
        let (status, headers, body) = exchange(http, req)
            .await?
            .map_err(|e| transport_error(e, shown, false))?;
        let request_id = wire::request_id(&headers);
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
            max_attempts_reached: false,
        };
        let result = match error {
            Some(e) => Err(scrubbed(e, &creds).with_meta(meta)),
            None => match wire::parse_output::<O::Output>(O::NAME, &body) {
                Ok(out) => {
                    let answered = O::answered(&out);
                    Ok((out, meta, answered))
                }
                Err(e) => Err(e.with_meta(meta)),
            },
        };
        // Only the service's own answers tell its clock: a success it sent, or a refusal
        // with one of its codes. A hop's error page (a load balancer's 503, a proxy's 403)
        // proves nothing, and its retries go through the same hop, so two of them agree.
        // An answer refusing the signature's time has its `Date` weighed by the call
        // ([`Client::skew_offset`]), learnt only once a request signed with it is accepted.
        match &result {
            // An empty success (`{}`, or no body), or one without the operation's own
            // members (`{"ok":1}`), is a hop's as easily as the service's.
            Ok((_, meta, true)) => self.observe_date(&meta.http_headers, offset_ms),
            Err(e) if service_refusal(e) => self.observe_date(&e.meta().http_headers, offset_ms),
            _ => {}
        }
        result
    }
}

/// An error answer to a request signed with `creds`, its message keeping none of them when
/// it refuses them: a signature mismatch's may print the canonical request the service
/// computed, whose signed headers hold the session token.
fn scrubbed(mut e: Error, creds: &aws_credential_types::Credentials) -> Error {
    if REFUSED_CREDENTIALS_CODES.contains(&e.code()) || CLOCK_SKEW_CODES.contains(&e.code()) {
        e.rewrite_message(|m| scrub_signed(m, creds));
    }
    e
}

/// Whether `e`, an answer to operation `op`, refuses the credentials it was signed with
/// (see [`REFUSED_CREDENTIALS_CODES`]). `ExpiredTokenException` answering `ResolveCustomer`
/// is the operation's own, of the buyer's registration token.
fn refuses_credentials(op: &str, e: &Error) -> bool {
    e.http_status().is_some()
        && REFUSED_CREDENTIALS_CODES.contains(&e.code())
        && !(op == "ResolveCustomer" && e.code() == "ExpiredTokenException")
}

/// `message` without what a request signed with `creds` echoes: the canonical request or
/// string to sign a signature mismatch prints (cut), the session token and the secret
/// (replaced). `None`: nothing to take out.
fn scrub_signed(message: &str, creds: &aws_credential_types::Credentials) -> Option<String> {
    let mut out: Option<String> = None;
    for marker in [
        "The Canonical String",
        "The String-to-Sign",
        "Canonical String",
    ] {
        let text = out.as_deref().unwrap_or(message);
        if let Some(i) = text.find(marker) {
            out = Some(format!(
                "{} (the canonical request the service printed is left out)",
                text[..i].trim_end()
            ));
        }
    }
    let secrets = [creds.session_token(), Some(creds.secret_access_key())];
    for secret in secrets.into_iter().flatten().filter(|s| s.len() >= 8) {
        let text = out.as_deref().unwrap_or(message);
        if text.contains(secret) {
            out = Some(text.replace(secret, "** redacted **"));
        }
    }
    out
}

/// What a call's attempts have done so far, read back when the operation timeout cuts them
/// short.
#[derive(Default)]
struct Progress {
    /// Attempts begun.
    attempts: u32,
    /// Whether a request was signed and handed to the connection: until then, an operation
    /// timeout cut a credential load (or the adaptive rate limiter's wait) short, and nothing
    /// reached the service.
    sent: bool,
    /// Whether credentials are being loaded.
    loading: bool,
    /// Time spent waiting between attempts.
    total_delay: Duration,
    log: Vec<AttemptLog>,
}

/// A version-4 UUID for a call's `amz-sdk-invocation-id`, which only ties its attempts
/// together in the service's logs. Drawn from the OS once per thread (and again in a child
/// after `fork()`, which would otherwise repeat its parent's), then counted on: asking the
/// OS at every call was a system call per call.
fn invocation_id() -> uuid::Uuid {
    use std::cell::Cell;
    /// Splitmix64's finalizer: a bijection, so distinct counts give distinct halves.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    thread_local! {
        /// The process generation it was seeded in (0: never), the seed, the count.
        static STATE: Cell<(u64, u64, u64, u64)> = const { Cell::new((0, 0, 0, 0)) };
    }
    STATE.with(|state| {
        let generation = runtime::process_generation() + 1;
        let (seeded, mut a, mut b, mut n) = state.get();
        if seeded != generation {
            (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            n = 0;
        }
        n = n.wrapping_add(1);
        state.set((generation, a, b, n));
        let step = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (hi, lo) = (mix(a.wrapping_add(step)), mix(b ^ step));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

/// Whether `e` is a refusal by the service itself, not by a hop in front of it, nor of the
/// signature's time: a 4xx answer with an error code the service uses.
fn service_refusal(e: &Error) -> bool {
    e.http_status().is_some_and(|s| (400..500).contains(&s))
        && e.error_code() != ErrorCode::Unhandled
        && !CLOCK_SKEW_CODES.contains(&e.code())
}

/// What an attempt signs with: the credentials, and the clock's offset from the local one.
struct SignWith {
    creds: aws_credential_types::Credentials,
    offset_ms: i64,
}

/// A response: status, headers and the body (or why it could not be read).
pub(super) type Exchanged = (u16, HeaderMap, Result<Bytes, BodyError>);

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
/// hand-off each way (the figures are in bench/README.md).
pub(super) async fn exchange(
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
    // Aborted when the call stops waiting for it (a timeout, a dropped future).
    runtime::AbortOnDrop(runtime::spawn_io(run(http.clone(), req))?)
        .await
        .map_err(|e| Error::invalid_state(format!("the HTTP exchange did not finish: {e}")))
}

/// A 3xx answer: redirects are never followed (the signed request and its session token
/// stay with the configured endpoint), so it is an error that names where it pointed.
pub(super) fn redirect_error(status: u16, headers: &HeaderMap) -> Error {
    let location = headers
        .get(http::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let to = match &location {
        // Bounded, as a server's error messages are: the header may be tens of kilobytes.
        Some(l) => format!(
            "to {:?}",
            crate::wire::printable(&crate::endpoint::redact_userinfo(l), 512)
        ),
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
pub(super) fn transport_error(e: reqwest::Error, endpoint: &str, in_body: bool) -> Error {
    let e = e.without_url();
    let chain = crate::error::with_causes(&e);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::batch_meter_usage::{BatchMeterUsage, BatchMeterUsageInput};

    fn answer(code: &str) -> Error {
        let mut e = Error::service(code, "m".into());
        e.meta_mut().http_status = Some(400);
        e
    }

    /// `ExpiredTokenException` answering `ResolveCustomer` is the buyer's registration token's
    /// (a stale one from a landing page), not the credentials': the chain is not asked again
    /// for it. Answering another operation, it is the session's.
    #[test]
    fn which_answers_refuse_the_credentials() {
        assert!(!refuses_credentials(
            "ResolveCustomer",
            &answer("ExpiredTokenException")
        ));
        assert!(refuses_credentials(
            "BatchMeterUsage",
            &answer("ExpiredTokenException")
        ));
        assert!(refuses_credentials(
            "ResolveCustomer",
            &answer("UnrecognizedClientException")
        ));
        assert!(!refuses_credentials(
            "MeterUsage",
            &answer("ThrottlingException")
        ));
        // A local error never does.
        assert!(!refuses_credentials(
            "MeterUsage",
            &Error::credentials("UnrecognizedClientException")
        ));
    }

    /// A call's future is moved (a memcpy of its whole size) at every layer on its way to a
    /// runtime: into a face's wrapper, into the task, into `block_on`. When the credential
    /// chain's loading future sat inline in every call's, a call's future was 6.5 kB and the
    /// Node face's spawned future 53 kB, copied three times per call on the JS thread. The
    /// attempt loop (`invoke_inline`) is boxed; it and the credentials future stay small.
    #[test]
    fn invocation_ids_are_version_4_and_differ_by_call_thread_and_process() {
        let mine: Vec<uuid::Uuid> = (0..1000).map(|_| invocation_id()).collect();
        let theirs = std::thread::spawn(invocation_id).join().unwrap();
        let mut all: std::collections::HashSet<uuid::Uuid> = mine.iter().copied().collect();
        assert!(all.insert(theirs));
        assert_eq!(all.len(), 1001);
        assert!(mine
            .iter()
            .all(|u| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122));
        // A child after fork() draws anew: the parent's next id is not the child's.
        let got = crate::runtime::in_forked_child(|| invocation_id().into_bytes());
        assert_ne!(uuid::Uuid::from_bytes(got), invocation_id());
    }

    #[test]
    fn a_call_future_stays_small() {
        let c = Client::new(
            crate::Config::builder()
                .region("us-east-1")
                .static_credentials("AKIDEXAMPLE", "secret", None)
                .endpoint_url("http://127.0.0.1:9")
                .build()
                .unwrap(),
        );
        let input = BatchMeterUsageInput::builder()
            .product_code("p")
            .set_usage_records(Some(vec![]))
            .build()
            .unwrap();
        let call = std::mem::size_of_val(&c.send_batch_meter_usage(input.clone()));
        let invoke = std::mem::size_of_val(&c.invoke_inline::<BatchMeterUsage>(input));
        let credentials = std::mem::size_of_val(&c.inner.credentials.credentials());
        assert!(
            credentials <= 256,
            "credentials() future: {credentials} bytes"
        );
        assert!(call <= 4096, "send_batch_meter_usage future: {call} bytes");
        assert!(invoke <= 4096, "invoke future: {invoke} bytes");
    }
}

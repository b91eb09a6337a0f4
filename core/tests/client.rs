// SPDX-License-Identifier: Apache-2.0
// End-to-end tests of the core client against the in-process emulator on 127.0.0.1.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::operation::meter_usage::MeterUsageInput;
use marketplace_metering::operation::register_usage::RegisterUsageInput;
use marketplace_metering::operation::resolve_customer::ResolveCustomerInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{Tag, UsageAllocation, UsageRecord, UsageRecordResultStatus};
use marketplace_metering::{blocking, Client, Config, ErrorCode, RetryMode};
use metering_emulator::{Emulator, EmulatorConfig, Fault};

mod support;
use support::emulator;

fn config(emu: &Emulator) -> marketplace_metering::ConfigBuilder {
    support::config(emu.endpoint())
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(20))
}

fn client(emu: &Emulator) -> Client {
    Client::new(config(emu).build().unwrap())
}

fn now() -> DateTime {
    DateTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    )
}

fn record(customer: &str, quantity: i32) -> UsageRecord {
    UsageRecord::builder()
        .timestamp(now())
        .customer_identifier(customer)
        .dimension("users")
        .quantity(quantity)
        .build()
        .unwrap()
}

fn batch(records: Vec<UsageRecord>) -> BatchMeterUsageInput {
    BatchMeterUsageInput::builder()
        .product_code(metering_emulator::PRODUCT_CODE)
        .set_usage_records(Some(records))
        .build()
        .unwrap()
}

#[tokio::test]
async fn batch_meter_usage_bills_each_record_once() {
    let emu = emulator();
    let c = client(&emu);
    let records: Vec<_> = (1..=25).map(|i| record(&format!("cust-{i}"), i)).collect();
    let out = c
        .send_batch_meter_usage(batch(records.clone()))
        .await
        .unwrap();
    assert_eq!(out.results().len(), 25);
    assert!(out.unprocessed_records().is_empty());
    for (r, sent) in out.results().iter().zip(&records) {
        assert_eq!(r.status(), Some(&UsageRecordResultStatus::Success));
        assert!(r.metering_record_id().is_some());
        assert_eq!(r.usage_record(), Some(sent));
    }
    let meta = out.metadata();
    assert_eq!(meta.http_status(), Some(200));
    assert_eq!(meta.attempts(), 1);
    assert!(meta.request_id().is_some());
    assert_eq!(emu.ledger().len(), 25);

    // The same records again: same ids, billed once. Another quantity: DuplicateRecord.
    let again = c
        .send_batch_meter_usage(batch(records.clone()))
        .await
        .unwrap();
    assert_eq!(
        again.results()[0].metering_record_id(),
        out.results()[0].metering_record_id()
    );
    let mut changed = records[0].clone();
    changed = UsageRecord::builder()
        .timestamp(*changed.timestamp())
        .customer_identifier(changed.customer_identifier().unwrap())
        .dimension("users")
        .quantity(999)
        .build()
        .unwrap();
    let dup = c
        .send_batch_meter_usage(batch(vec![changed]))
        .await
        .unwrap();
    assert_eq!(
        dup.results()[0].status(),
        Some(&UsageRecordResultStatus::DuplicateRecord)
    );
    assert_eq!(emu.ledger().len(), 25);
}

#[tokio::test]
async fn fluent_builders_and_allocations_and_license_customers() {
    let emu = emulator();
    let c = client(&emu);
    let out = c
        .batch_meter_usage()
        .usage_records(
            UsageRecord::builder()
                .timestamp(now())
                .customer_aws_account_id(metering_emulator::CUSTOMER_AWS_ACCOUNT_ID)
                .license_arn(metering_emulator::LICENSE_ARN)
                .dimension("gb")
                .quantity(5)
                .usage_allocations(
                    UsageAllocation::builder()
                        .allocated_usage_quantity(2)
                        .tags(Tag::builder().key("team").value("a").build().unwrap())
                        .build()
                        .unwrap(),
                )
                .usage_allocations(
                    UsageAllocation::builder()
                        .allocated_usage_quantity(3)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    let ledger = emu.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0].license_arn.as_deref(),
        Some(metering_emulator::LICENSE_ARN)
    );
    assert_eq!(ledger[0].quantity, 5);
}

#[tokio::test]
async fn unsubscribed_customer_is_a_per_record_status() {
    let emu = emulator();
    let out = client(&emu)
        .send_batch_meter_usage(batch(vec![
            record("cust-unsubscribed", 1),
            record("cust-1", 1),
        ]))
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::CustomerNotSubscribed)
    );
    assert_eq!(
        out.results()[1].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    assert_eq!(emu.ledger().len(), 1);
}

#[tokio::test]
async fn meter_usage_fills_and_reuses_a_client_token_across_retries() {
    let emu = emulator();
    let c = client(&emu);
    emu.push_fault(Fault::InternalError);
    let input = MeterUsageInput::builder()
        .product_code(metering_emulator::PRODUCT_CODE)
        .timestamp(now())
        .usage_dimension("requests")
        .usage_quantity(7)
        .build()
        .unwrap();
    let out = c.send_meter_usage(input).await.unwrap();
    assert!(out.metering_record_id().is_some());
    assert_eq!(out.metadata().attempts(), 2);
    assert!(out.metadata().total_retry_delay() <= Duration::from_millis(5));
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 2);
    let token = |i: usize| -> String {
        let body: serde_json::Value = serde_json::from_slice(reqs[i].body.as_bytes()).unwrap();
        body["ClientToken"].as_str().unwrap().to_owned()
    };
    assert_eq!(token(0), token(1));
    assert_eq!(token(0).len(), 36, "a UUID");
    assert_eq!(emu.ledger().len(), 1);
}

#[tokio::test]
async fn meter_usage_dry_run_and_duplicates() {
    let emu = emulator();
    let c = client(&emu);
    let t = now();
    let dry = c
        .meter_usage()
        .product_code(metering_emulator::PRODUCT_CODE)
        .timestamp(t)
        .usage_dimension("users")
        .usage_quantity(1)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(dry.error_code(), ErrorCode::DryRunOperation);
    assert!(emu.ledger().is_empty());
    let send = |q: i32| {
        c.meter_usage()
            .product_code(metering_emulator::PRODUCT_CODE)
            .timestamp(t)
            .usage_dimension("users")
            .usage_quantity(q)
            .send()
    };
    send(1).await.unwrap();
    let dup = send(2).await.unwrap_err();
    assert!(dup.is(ErrorCode::DuplicateRequestException), "{dup}");
    assert!(matches!(
        dup,
        marketplace_metering::error::MeterUsageError::DuplicateRequestException(_)
    ));
    assert!(!dup.is_retryable());
}

#[tokio::test]
async fn resolve_customer_and_register_usage() {
    let emu = emulator();
    let c = client(&emu);
    let out = c
        .send_resolve_customer(
            ResolveCustomerInput::builder()
                .registration_token("reg-token-valid")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(out.customer_identifier(), Some("cust-1"));
    assert_eq!(out.product_code(), Some(metering_emulator::PRODUCT_CODE));
    assert_eq!(
        out.customer_aws_account_id(),
        Some(metering_emulator::CUSTOMER_AWS_ACCOUNT_ID)
    );
    assert_eq!(out.license_arn(), Some(metering_emulator::LICENSE_ARN));
    for (token, code) in [
        ("reg-token-expired", ErrorCode::ExpiredTokenException),
        ("nope", ErrorCode::InvalidTokenException),
    ] {
        let e = c
            .resolve_customer()
            .registration_token(token)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.error_code(), code);
        assert_eq!(e.http_status(), Some(400));
        assert!(e.request_id().is_some());
        assert!(!e.message().is_empty());
    }
    let reg = c
        .send_register_usage(
            RegisterUsageInput::builder()
                .product_code(metering_emulator::PRODUCT_CODE)
                .public_key_version(1)
                .nonce("n-1")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        reg.signature().map(|s| s.split('.').count()),
        Some(3),
        "JWT-shaped"
    );
    assert!(reg.public_key_rotation_timestamp().is_some());
    let e = c
        .register_usage()
        .product_code("prod-not-entitled")
        .public_key_version(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::CustomerNotEntitledException);
}

#[tokio::test]
async fn invalid_input_is_rejected_before_sending() {
    let emu = emulator();
    let c = client(&emu);
    let e = c
        .send_batch_meter_usage(batch((0..26).map(|_| record("cust-1", 1)).collect()))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidInput);
    assert_eq!(e.as_error().field(), Some("UsageRecords"));
    assert_eq!(e.attempts(), 0);
    let e = c.resolve_customer().send().await.unwrap_err();
    assert_eq!(e.as_error().field(), Some("RegistrationToken"));
    assert!(emu.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn retries_throttling_500_html_503_reset_truncated_and_garbage() {
    let emu = emulator();
    let c = Client::new(config(&emu).max_attempts(8u32).build().unwrap());
    for f in [
        Fault::Throttle,
        Fault::InternalError,
        Fault::Unavailable,
        Fault::Reset,
        Fault::Truncated,
        Fault::Garbage,
    ] {
        emu.push_fault(f);
    }
    let out = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap();
    assert_eq!(out.metadata().attempts(), 7);
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    // Truncated/garbage answers came after billing: the re-sent record is deduplicated.
    assert_eq!(emu.ledger().len(), 1);
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 7);
    let header = |i: usize, name: &str| -> String {
        reqs[i]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // One invocation id per call, the attempt counted in amz-sdk-request, as the AWS SDKs do.
    for i in 0..7 {
        assert_eq!(
            header(i, "amz-sdk-invocation-id"),
            header(0, "amz-sdk-invocation-id")
        );
        assert_eq!(
            header(i, "amz-sdk-request"),
            format!("attempt={}; max=8", i + 1)
        );
        assert!(header(i, "user-agent").starts_with("marketplace-metering/"));
        assert!(header(i, "user-agent").contains("lang/rust"));
        // Signed: what the service reads, not what a proxy rewrites (user-agent) or what
        // only counts attempts (amz-sdk-request), as the AWS SDKs sign.
        let auth = header(i, "authorization");
        let signed = auth
            .split(", ")
            .find_map(|p| p.strip_prefix("SignedHeaders="))
            .unwrap_or_default();
        assert_eq!(
            signed, "amz-sdk-invocation-id;content-type;host;x-amz-date;x-amz-target",
            "{auth}"
        );
    }
    assert!(reqs[6].signature_ok, "the successful attempt verified");
}

#[tokio::test]
async fn errors_after_the_last_attempt_keep_status_and_request_id() {
    let emu = emulator();
    let c = client(&emu);
    for _ in 0..3 {
        emu.push_fault(Fault::Unavailable);
    }
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.attempts(), 3);
    assert!(
        e.as_error().max_attempts_reached(),
        "botocore's MaxAttemptsReached"
    );
    assert_eq!(e.http_status(), Some(503));
    assert_eq!(e.code(), "503");
    assert!(e.request_id().is_some());
    assert!(e.is_retryable());
    assert!(e.message().contains("not JSON"), "{}", e.message());
    assert!(e.as_error().total_retry_delay() > Duration::ZERO);

    // A code outside the table keeps the service's string; a namespaced __type is sanitized.
    emu.push_fault(Fault::Error {
        status: 400,
        code: "SomethingNewException".into(),
        message: "new".into(),
        namespaced: true,
    });
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Unhandled);
    assert_eq!(e.code(), "SomethingNewException");
    assert_eq!(e.attempts(), 1);
    assert!(
        !e.as_error().max_attempts_reached(),
        "one of three, not retried"
    );

    for _ in 0..3 {
        emu.push_fault(Fault::Throttle);
    }
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::ThrottlingException));
    assert!(matches!(
        e,
        marketplace_metering::error::BatchMeterUsageError::ThrottlingException(_)
    ));
}

#[tokio::test]
async fn retry_quota_runs_out() {
    let emu = emulator();
    let c = Client::new(config(&emu).max_attempts(200u32).build().unwrap());
    // 500 tokens at 5 per retry: 100 retries, then the quota refuses the next one.
    for _ in 0..150 {
        emu.push_fault(Fault::InternalError);
    }
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InternalServiceErrorException);
    assert_eq!(e.attempts(), 101);
    assert!(!e.as_error().max_attempts_reached(), "the quota ended it");
    // With the quota empty, the next failure is not retried at all.
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.attempts(), 1);
}

#[tokio::test]
async fn adaptive_mode_retries_throttling() {
    let emu = emulator();
    let c = Client::new(
        config(&emu)
            .retry_mode(RetryMode::Adaptive)
            .build()
            .unwrap(),
    );
    emu.push_fault(Fault::Throttle);
    emu.push_fault(Fault::Throttle);
    let out = c
        .send_batch_meter_usage(batch(vec![record("cust-2", 1)]))
        .await
        .unwrap();
    assert_eq!(out.metadata().attempts(), 3);
}

#[tokio::test]
async fn read_timeout_is_retried_then_reported() {
    let emu = emulator();
    let c = Client::new(
        config(&emu)
            .read_timeout(Duration::from_millis(200))
            .max_attempts(2u32)
            .build()
            .unwrap(),
    );
    emu.push_fault(Fault::Delay { seconds: 1.0 });
    emu.push_fault(Fault::Delay { seconds: 1.0 });
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-3", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::ReadTimeout, "{e}");
    assert_eq!(e.attempts(), 2);
    assert!(e.is_retryable());
}

#[tokio::test]
async fn connection_refused_is_dispatch() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Client::new(
        Config::builder()
            .region("us-east-1")
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .static_credentials("AK", "SK", None)
            .initial_backoff(Duration::from_millis(1))
            .build()
            .unwrap(),
    );
    let e = c
        .resolve_customer()
        .registration_token("t")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Dispatch, "{e}");
    assert_eq!(e.attempts(), 3);
    assert_eq!(e.http_status(), None);
}

#[tokio::test]
async fn signing_failures_come_back_as_service_errors() {
    let emu = emulator();
    let wrong = Client::new(
        config(&emu)
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                "wrong-secret",
                None,
            )
            .build()
            .unwrap(),
    );
    let e = wrong
        .resolve_customer()
        .registration_token("reg-token-valid")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidSignatureException);
    assert_eq!(e.http_status(), Some(403));
    assert!(!format!("{e:?}{e}").contains("wrong-secret"));

    let unknown = Client::new(
        config(&emu)
            .static_credentials("NOBODY", "x", None)
            .build()
            .unwrap(),
    );
    let e = unknown
        .resolve_customer()
        .registration_token("reg-token-valid")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::UnrecognizedClientException);

    // Session credentials: the token is sent and signed.
    let session = Client::new(
        config(&emu)
            .static_credentials(
                metering_emulator::SESSION_ACCESS_KEY_ID,
                metering_emulator::SESSION_SECRET_ACCESS_KEY,
                Some(metering_emulator::SESSION_TOKEN.to_owned()),
            )
            .build()
            .unwrap(),
    );
    session
        .resolve_customer()
        .registration_token("reg-token-valid")
        .send()
        .await
        .unwrap();
    let no_token = Client::new(
        config(&emu)
            .static_credentials(
                metering_emulator::SESSION_ACCESS_KEY_ID,
                metering_emulator::SESSION_SECRET_ACCESS_KEY,
                None,
            )
            .build()
            .unwrap(),
    );
    assert!(no_token
        .resolve_customer()
        .registration_token("reg-token-valid")
        .send()
        .await
        .is_err());
}

/// TLS is on (rustls with *ring*): https to a plain-HTTP port fails the handshake, as a
/// transport error that names the cause, after the retries.
#[tokio::test]
async fn https_speaks_tls() {
    let emu = emulator();
    let https = emu.endpoint().replacen("http://", "https://", 1);
    let c = Client::new(
        config(&emu)
            .endpoint_url(https)
            .max_attempts(2u32)
            .build()
            .unwrap(),
    );
    let e = c
        .resolve_customer()
        .registration_token("reg-token-valid")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Dispatch, "{e}");
    assert_eq!(e.attempts(), 2);
    let chain = format!("{e} {:?}", std::error::Error::source(&e));
    assert!(
        chain.to_ascii_lowercase().contains("tls")
            || chain.contains("InvalidContentType")
            || chain.contains("corrupt"),
        "{chain}"
    );
}

#[tokio::test]
async fn set_credentials_re_signs_later_calls_and_keeps_the_client() {
    let emu = emulator();
    let c = Client::new(
        config(&emu)
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                "stale-secret",
                None,
            )
            .build()
            .unwrap(),
    );
    let clone = c.clone();
    let resolve = |c: &Client| {
        c.resolve_customer()
            .registration_token("reg-token-valid")
            .send()
    };
    assert_eq!(
        resolve(&c).await.unwrap_err().error_code(),
        ErrorCode::InvalidSignatureException
    );
    // Rotated credentials (a session), named by their provider, reach every clone.
    c.set_credentials(marketplace_metering::Credentials::new(
        metering_emulator::SESSION_ACCESS_KEY_ID,
        metering_emulator::SESSION_SECRET_ACCESS_KEY,
        Some(metering_emulator::SESSION_TOKEN.to_owned()),
        None,
        "NodeProvider",
    ));
    resolve(&clone).await.unwrap();
    assert_eq!(c.credentials_provider_name().await.unwrap(), "NodeProvider");
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(metering_emulator::SESSION_SECRET_ACCESS_KEY),
        "{shown}"
    );
}

#[test]
fn secrets_never_show_in_debug() {
    let cfg = Config::builder()
        .region("us-east-1")
        .static_credentials(
            "AKIDPUBLIC",
            "TOPSECRETVALUE",
            Some("SESSIONTOKENVALUE".into()),
        )
        .build()
        .unwrap();
    let client = Client::new(cfg.clone());
    let shown = format!(
        "{cfg:?} {client:?} {:?}",
        blocking::Client::new(cfg.clone())
    );
    assert!(!shown.contains("TOPSECRETVALUE"), "{shown}");
    assert!(!shown.contains("SESSIONTOKENVALUE"), "{shown}");
}

#[test]
fn blocking_client_works_and_refuses_inside_a_runtime() {
    let emu = emulator();
    let c = blocking::Client::new(config(&emu).build().unwrap());
    let out = c
        .batch_meter_usage(batch(vec![record("cust-1", 2)]))
        .unwrap();
    assert_eq!(out.results().len(), 1);
    assert_eq!(c.credentials_provider_name().unwrap(), "Static");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(async { c.batch_meter_usage(batch(vec![record("cust-1", 2)])) })
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidState);
}

/// Blocking calls share pooled connections, and a connection opened by a thread that is now
/// idle must still be served: thread A calls, then idles while B calls 20 times with one
/// attempt and a short read timeout; a connection only A's call could drive would time out.
#[test]
fn blocking_calls_from_threads_that_take_turns() {
    let emu = emulator();
    let cfg = config(&emu)
        .max_attempts(1u32)
        .read_timeout(Duration::from_secs(2));
    let c = blocking::Client::new(cfg.build().unwrap());
    let (a_done, b_may_start) = std::sync::mpsc::channel();
    let (b_done, a_may_go_on) = std::sync::mpsc::channel();
    let c = &c;
    std::thread::scope(|s| {
        s.spawn(move || {
            c.batch_meter_usage(batch(vec![record("cust-1", 1)]))
                .unwrap();
            a_done.send(()).unwrap();
            a_may_go_on.recv().unwrap();
            c.batch_meter_usage(batch(vec![record("cust-2", 1)]))
                .unwrap();
        });
        s.spawn(move || {
            b_may_start.recv().unwrap();
            let t0 = std::time::Instant::now();
            for i in 0..20 {
                c.batch_meter_usage(batch(vec![record(&format!("cust-{}", i + 3), 1)]))
                    .unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
            b_done.send(()).unwrap();
        });
    });
    assert_eq!(emu.ledger().len(), 22);
}

/// Short-lived threads leave nothing behind: 300 of them that each make a blocking call
/// leave no file descriptors (epoll, eventfd, sockets) beyond what the shared pool keeps.
#[test]
fn threads_that_exit_leave_no_descriptors_behind() {
    let emu = emulator();
    let c = blocking::Client::new(config(&emu).build().unwrap());
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    c.batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .unwrap();
    let before = fds();
    for _ in 0..100 {
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    c.batch_meter_usage(batch(vec![record("cust-1", 1)]))
                        .unwrap()
                });
            }
        });
    }
    // The emulator may still be closing the last connections' server ends.
    let mut after = fds();
    for _ in 0..50 {
        if after <= before + 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        after = fds();
    }
    assert!(
        after <= before + 6,
        "{before} descriptors before, {after} after"
    );
}

/// A blocking client of one attempt for a raw test server on 127.0.0.1:`port`.
fn raw_client(port: u16) -> blocking::Client {
    blocking::Client::new(
        Config::builder()
            .region("us-east-1")
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .static_credentials("AKIDEXAMPLE", "secret", None)
            .max_attempts(1u32)
            .build()
            .unwrap(),
    )
}

/// A thread's pooled connection that the server closed while the thread was idle (its
/// runtime not running, so nobody saw the close) is not reused: the next call, with a single
/// attempt, goes out on a new connection and succeeds.
#[test]
fn a_connection_closed_while_its_thread_was_idle_is_not_reused() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut accepted = 0;
        for conn in listener.incoming().take(2) {
            let mut conn = conn.unwrap();
            accepted += 1;
            support::read_request(&mut conn);
            let body = br#"{"Results":[],"UnprocessedRecords":[]}"#;
            write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
                 x-amzn-requestid: r{accepted}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .unwrap();
            conn.write_all(body).unwrap();
            // The first connection is closed by the server while the client is idle.
            if accepted == 1 {
                std::thread::sleep(Duration::from_millis(50));
                drop(conn);
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        accepted
    });
    let c = raw_client(port);
    let first = c
        .batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .unwrap();
    assert_eq!(first.metadata().request_id(), Some("r1"));
    std::thread::sleep(Duration::from_millis(500));
    let second = c
        .batch_meter_usage(batch(vec![record("cust-2", 1)]))
        .unwrap();
    assert_eq!(second.metadata().request_id(), Some("r2"));
    assert_eq!(second.metadata().attempts(), 1);
    assert_eq!(server.join().unwrap(), 2);
}

#[test]
fn config_errors() {
    let e = Config::builder()
        .region("us-east-1")
        .endpoint_url("http://127.0.0.1:1")
        .use_fips(true)
        .static_credentials("a", "b", None)
        .build()
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
    let e = Config::builder()
        .region("not a host")
        .static_credentials("a", "b", None)
        .build()
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
    let e = Config::builder()
        .region("us-east-1")
        .max_attempts(0u32)
        .static_credentials("a", "b", None)
        .build()
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
    let cfg = Config::builder()
        .region("eu-west-1")
        .static_credentials("a", "b", None)
        .build()
        .unwrap();
    assert_eq!(
        cfg.endpoint_url(),
        "https://metering.marketplace.eu-west-1.amazonaws.com"
    );
    assert!(cfg.user_agent().starts_with("marketplace-metering/"));
}

/// The User-Agent each face sends, byte for byte as before the core knew no faces: the face
/// passes `<name>/<version>` and the core puts it after `lang/`.
#[test]
fn each_face_sends_the_same_user_agent_through_its_suffix() {
    let v = marketplace_metering::VERSION;
    let os = std::env::consts::OS;
    let ua = |suffix: Option<&str>| {
        let mut b = Config::builder()
            .region("us-east-1")
            .static_credentials("a", "b", None);
        if let Some(s) = suffix {
            b = b.user_agent_suffix(s);
        }
        b.build().map(|c| c.user_agent().to_owned())
    };
    assert_eq!(
        ua(None).unwrap(),
        format!("marketplace-metering/{v} lang/rust/{v} os/{os}")
    );
    for face in ["python", "node", "c", "jvm"] {
        assert_eq!(
            ua(Some(&format!("{face}/1.2.3"))).unwrap(),
            format!("marketplace-metering/{v} lang/{face}/1.2.3 os/{os}")
        );
    }
    for bad in ["", "py thon/1", "python/\n1"] {
        let e = ua(Some(bad)).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidConfig, "{bad:?}");
        assert_eq!(e.field(), Some("user_agent_suffix"), "{bad:?}");
    }
}

/// A client built in the parent keeps working in a forked child, and so does a new one;
/// the parent is unharmed afterwards.
#[test]
fn works_after_fork() {
    let emu = emulator();
    let c = blocking::Client::new(config(&emu).build().unwrap());
    c.batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .unwrap();
    let endpoint = emu.endpoint();
    // SAFETY: the child only runs Rust code of this crate and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok_inherited = c
            .batch_meter_usage(batch(vec![record("cust-2", 1)]))
            .is_ok();
        let fresh = blocking::Client::new(support::config(endpoint).build().unwrap());
        let ok_fresh = fresh
            .batch_meter_usage(batch(vec![record("cust-3", 1)]))
            .is_ok();
        // SAFETY: terminate the child without running the parent's destructors.
        unsafe { libc::_exit(if ok_inherited && ok_fresh { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    for i in 4..14 {
        c.batch_meter_usage(batch(vec![record(&format!("cust-{i}"), 1)]))
            .unwrap();
    }
    assert_eq!(emu.ledger().len(), 13);
}

#[tokio::test]
async fn redirects_are_not_followed_and_name_the_location() {
    let emu = emulator();
    let elsewhere = emulator();
    let c = client(&emu);
    for status in [301u16, 302, 303, 307, 308] {
        emu.push_fault(Fault::Redirect {
            status,
            location: format!("{}/", elsewhere.endpoint()),
        });
        let e = c
            .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), Some(status));
        assert_eq!(e.code(), status.to_string());
        assert_eq!(e.attempts(), 1, "a redirect is not retried");
        assert!(!e.is_retryable());
        assert!(
            e.message().contains(&elsewhere.endpoint()) && e.message().contains("redirect"),
            "{}",
            e.message()
        );
    }
    // A Location of 30 kB is named bounded (it went into every log line whole).
    let far = format!("{}/{}", elsewhere.endpoint(), "x".repeat(30_000));
    emu.push_fault(Fault::Redirect {
        status: 302,
        location: far,
    });
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert!(
        e.message().contains(&elsewhere.endpoint()),
        "{}",
        e.message()
    );
    assert!(e.message().len() < 1024, "{} bytes", e.message().len());
    assert!(elsewhere.requests().is_empty(), "the body went elsewhere");
    assert!(elsewhere.ledger().is_empty());
    assert!(emu.ledger().is_empty());
}

#[tokio::test]
async fn the_attempt_timeout_bounds_a_trickled_answer() {
    let emu = emulator();
    let c = Client::new(
        config(&emu)
            .read_timeout(Duration::from_secs(1))
            .attempt_timeout(Duration::from_millis(700))
            .max_attempts(2u32)
            .build()
            .unwrap(),
    );
    // One byte every 0.3 s: every read is well inside read_timeout, the whole answer is not.
    emu.push_fault(Fault::Trickle { interval: 0.3 });
    emu.push_fault(Fault::Trickle { interval: 0.3 });
    let started = std::time::Instant::now();
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.error_code(), ErrorCode::ReadTimeout, "{e}");
    assert_eq!(e.attempts(), 2, "retried as a timeout is");
    assert!(e.is_retryable());
    assert!(e.message().contains("attempt timeout"), "{}", e.message());
}

#[tokio::test]
async fn the_operation_timeout_bounds_the_whole_call() {
    let emu = emulator();
    let c = Client::new(
        config(&emu)
            .operation_timeout(Duration::from_millis(900))
            .max_attempts(5u32)
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        emu.push_fault(Fault::Trickle { interval: 0.3 });
    }
    let started = std::time::Instant::now();
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.error_code(), ErrorCode::ReadTimeout, "{e}");
    assert!(e.message().contains("operation timeout"), "{}", e.message());
    assert_eq!(e.attempts(), 1);
    // Retryable, as every timeout: a meter took it for a refusal of the call.
    assert!(e.is_retryable());
    for bad in [
        config(&emu).operation_timeout(Duration::ZERO),
        config(&emu).attempt_timeout(Duration::ZERO),
    ] {
        let e = bad.build().unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
        assert!(
            e.message().contains("_timeout (set in code): must be"),
            "{}",
            e.message()
        );
    }
}

#[tokio::test]
async fn an_oversized_answer_is_an_invalid_response() {
    let emu = emulator();
    let c = Client::new(config(&emu).max_attempts(2u32).build().unwrap());
    emu.push_fault(Fault::Oversize { bytes: 6 << 20 });
    emu.push_fault(Fault::Oversize { bytes: 6 << 20 });
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidResponse, "{e}");
    assert!(e.message().contains("larger than"), "{}", e.message());
    assert_eq!(e.attempts(), 2, "retried as an unreadable answer is");
    assert_eq!(e.http_status(), Some(200));
}

#[tokio::test]
async fn a_body_that_ends_early_is_a_read_error() {
    let emu = emulator();
    let c = Client::new(config(&emu).max_attempts(2u32).build().unwrap());
    emu.push_fault(Fault::ShortBody);
    emu.push_fault(Fault::ShortBody);
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Dispatch, "{e}");
    assert_eq!(e.attempts(), 2, "still retried");
    assert_eq!(e.http_status(), Some(200));
    assert!(!e.message().contains("could not reach"), "{}", e.message());
    assert!(e.message().contains("ended early"), "{}", e.message());
}

#[test]
fn user_info_in_the_endpoint_is_redacted() {
    // Refused (the service takes no user info), and neither the refusal nor a Debug of the
    // builder shows it.
    for url in [
        "http://alice:hunter2@127.0.0.1:1/",
        "ftp://alice:hunter2@h/",
    ] {
        let builder = Config::builder()
            .region("us-east-1")
            .endpoint_url(url)
            .static_credentials("AK", "SK", None);
        let debug = format!("{builder:?}");
        let e = builder.build().unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
        for shown in [debug, format!("{e}"), format!("{e:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("alice"),
                "{shown}"
            );
            assert!(shown.contains("***@"), "{shown}");
        }
    }
}

#[tokio::test]
async fn only_the_models_rules_are_checked_before_sending() {
    let emu = emulator();
    let c = client(&emu);
    // A boto3 user's working call: ProductCode, CustomerAWSAccountId, no LicenseArn.
    let by_account = UsageRecord::builder()
        .timestamp(now())
        .customer_aws_account_id(metering_emulator::CUSTOMER_AWS_ACCOUNT_ID)
        .dimension("users")
        .quantity(4)
        .build()
        .unwrap();
    let out = c
        .send_batch_meter_usage(batch(vec![by_account]))
        .await
        .unwrap();
    assert_eq!(
        out.results()[0].status(),
        Some(&UsageRecordResultStatus::Success)
    );
    assert_eq!(emu.ledger().len(), 1);

    // Both customer members, or none: the model allows it; the service judges (and here
    // refuses) it.
    let both = UsageRecord::builder()
        .timestamp(now())
        .customer_identifier("cust-1")
        .customer_aws_account_id(metering_emulator::CUSTOMER_AWS_ACCOUNT_ID)
        .dimension("users")
        .quantity(1)
        .build()
        .unwrap();
    let sent = emu.requests().len();
    let e = c
        .send_batch_meter_usage(batch(vec![both]))
        .await
        .unwrap_err();
    assert_ne!(e.error_code(), ErrorCode::InvalidInput, "{e}");
    assert_eq!(emu.requests().len(), sent + 1, "it was sent");

    // Allocations that do not sum to the quantity: the service's own exception, not sent.
    let sent = emu.requests().len();
    let bad_sum = UsageRecord::builder()
        .timestamp(now())
        .customer_identifier("cust-1")
        .dimension("users")
        .quantity(5)
        .usage_allocations(
            UsageAllocation::builder()
                .allocated_usage_quantity(2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = c
        .send_batch_meter_usage(batch(vec![bad_sum]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            marketplace_metering::error::BatchMeterUsageError::InvalidUsageAllocationsException(_)
        ),
        "{e:?}"
    );
    assert_eq!(e.attempts(), 0);
    assert_eq!(emu.requests().len(), sent, "nothing was sent");
}

#[tokio::test]
async fn a_skewed_clock_is_corrected_from_the_services_date_and_the_call_re_signed() {
    // 10 minutes is past the 5 AWS accepts (the emulator took 15 until a review).
    for offset_secs in [1200i64, -1200, 600] {
        let emu = Emulator::start(EmulatorConfig {
            clock_offset_secs: offset_secs,
            ..EmulatorConfig::default()
        })
        .unwrap();
        // One attempt allowed: the correction is not a retry of a failure, it happens once.
        let c = Client::new(config(&emu).max_attempts(1u32).build().unwrap());
        assert_eq!(c.clock_offset_ms(), 0);
        let an_hour_ago = DateTime::from_secs(now().secs() - 3600);
        let rec = UsageRecord::builder()
            .timestamp(an_hour_ago)
            .customer_identifier("cust-1")
            .dimension("users")
            .quantity(1)
            .build()
            .unwrap();
        let out = c
            .send_batch_meter_usage(batch(vec![rec.clone()]))
            .await
            .unwrap();
        assert_eq!(out.metadata().attempts(), 2);
        let reqs = emu.requests();
        assert_eq!(reqs.len(), 2);
        assert!(!reqs[0].signature_ok && reqs[1].signature_ok);
        let learnt = c.clock_offset_ms();
        assert!(
            (learnt - offset_secs * 1000).abs() < 3000,
            "{learnt} ms for {offset_secs} s"
        );
        let seen = c.now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((seen - (now().secs() + offset_secs)).abs() < 3);
        // Later calls (and clones) sign with the corrected clock at once.
        let out = c
            .clone()
            .send_batch_meter_usage(batch(vec![rec]))
            .await
            .unwrap();
        assert_eq!(out.metadata().attempts(), 1);
    }
    // A bad signature with no skew is not retried.
    let emu = emulator();
    let c = Client::new(
        config(&emu)
            .static_credentials(metering_emulator::DEFAULT_ACCESS_KEY_ID, "wrong", None)
            .build()
            .unwrap(),
    );
    let e = c
        .send_batch_meter_usage(batch(vec![record("cust-1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidSignatureException);
    assert_eq!(e.attempts(), 1);
    assert_eq!(c.clock_offset_ms(), 0);
}

/// A successful BatchMeterUsage answer, with one result: what only the service answers.
const ONE_RESULT: &str = r#"{"Results":[{"UsageRecord":{"Timestamp":1700000000,"CustomerIdentifier":"cust-1","Dimension":"users","Quantity":1},"MeteringRecordId":"0b2c6e7e-1111-4a8f-9a55-123456789abc","Status":"Success"}],"UnprocessedRecords":[]}"#;

/// A server on 127.0.0.1 answering each request (one connection each) with a successful
/// BatchMeterUsage and the next of `dates` as its `Date`.
fn serve_dates(dates: Vec<String>) -> u16 {
    serve_answers(dates.into_iter().map(|d| (200, ONE_RESULT, d)).collect()).0
}

/// A server on 127.0.0.1 answering each request (one connection each) with the next of
/// `answers`: status, body and `Date`. Returns its port and each request's `X-Amz-Date`.
fn serve_answers(
    answers: Vec<(u16, &'static str, String)>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let signed: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log = signed.clone();
    std::thread::spawn(move || {
        for (conn, (status, body, date)) in listener.incoming().zip(answers) {
            let mut conn = conn.unwrap();
            let req = String::from_utf8_lossy(&support::read_request(&mut conn)).to_lowercase();
            let at = req
                .lines()
                .find_map(|l| l.strip_prefix("x-amz-date:"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            log.lock().unwrap().push(at);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\n\
                 date: {date}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, signed)
}

/// A signature mismatch's message prints the canonical request the service computed, whose
/// signed headers hold the session token (AWS's text). Before, up to 1,024 characters of it
/// were kept in the error and reached logs through a meter's flush reports.
#[test]
fn a_signature_mismatch_shows_no_session_token() {
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENabcdefghijklmnopqrstuvwxyz0123456789";
    let secs = now().secs();
    let body: &'static str = Box::leak(
        format!(
            r#"{{"__type":"InvalidSignatureException","message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/\n\ncontent-type:application/x-amz-json-1.1\nx-amz-security-token:{TOKEN}\n'"}}"#
        )
        .into_boxed_str(),
    );
    let answers = (0..2)
        .map(|_| (403, body, support::http_date(secs)))
        .collect();
    let (port, _) = serve_answers(answers);
    let c = blocking::Client::new(
        Config::builder()
            .region("us-east-1")
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .static_credentials(
                "ASIAEXAMPLE",
                "secret-access-key-example",
                Some(TOKEN.into()),
            )
            .max_attempts(1u32)
            .build()
            .unwrap(),
    );
    let e = c
        .meter_usage(
            MeterUsageInput::builder()
                .product_code("p")
                .timestamp(now())
                .usage_dimension("d")
                .usage_quantity(1)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException", "{e}");
    let shown = format!("{e} {e:?} {}", e.message());
    assert!(shown.contains("does not match the signature"), "{shown}");
    assert!(!shown.contains(&TOKEN[..20]), "{shown}");
    assert!(!shown.contains("x-amz-security-token"), "{shown}");
}

/// A server that refuses the signature's time with a wrong `Date` (here ten days off) is not the
/// clock: the call re-signs with that `Date` once, and the client learns it only if the
/// re-signed request is accepted. Before, the first such answer moved the client's clock by
/// 56 years, and the usage meter filed the next events in hour 0 (found by a review).
#[test]
fn a_refusal_with_a_wrong_date_does_not_move_the_clock() {
    let now = now().secs();
    let skewed = r#"{"__type":"InvalidSignatureException","message":"Signature expired"}"#;
    let ok = ONE_RESULT;
    let ahead = now + 3600;
    // Ten days off: a wrong clock, not one past any clock (which is not even tried).
    let wrong = now - 10 * 86_400;
    let (port, signed) = serve_answers(vec![
        (400, skewed, support::http_date(wrong)),
        (400, skewed, support::http_date(wrong)),
        (200, ok, support::http_date(now)),
        // A refusal, then a firewall's page (no error code) with the same Date: that proves
        // nothing about the signature.
        (403, skewed, support::http_date(ahead)),
        (403, "<html>Forbidden</html>", support::http_date(ahead)),
        // A real skew: the re-signed request is accepted, and the client learns it.
        (403, skewed, support::http_date(ahead)),
        (200, ok, support::http_date(ahead)),
    ]);
    let c = raw_client(port);
    let send = || c.batch_meter_usage(batch(vec![record("cust-1", 1)]));
    let e = send().unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidSignatureException);
    assert_eq!(e.attempts(), 2, "re-signed once with the answer's Date");
    assert_eq!(
        c.as_async().clock_offset_ms(),
        0,
        "ten days off, refused twice"
    );
    send().unwrap();
    assert_eq!(c.as_async().clock_offset_ms(), 0);
    let e = send().unwrap_err();
    assert_eq!(e.attempts(), 2, "{e}");
    assert_eq!(
        c.as_async().clock_offset_ms(),
        0,
        "a page with no error code"
    );
    let out = send().unwrap();
    assert_eq!(out.metadata().attempts(), 2);
    let learnt = c.as_async().clock_offset_ms();
    assert!((learnt - 3_600_000).abs() < 3000, "{learnt}");
    // Each re-sign carried the refusal's own Date.
    let signed = signed.lock().unwrap().clone();
    assert_eq!(signed.len(), 7);
    let tag = |t: i64| {
        aws_smithy_types::DateTime::from_secs(t)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap()
            .replace(['-', ':'], "")
            .to_lowercase()
    };
    assert_eq!(signed[1][..9], tag(wrong)[..9], "{signed:?}");
    let ahead_tag = aws_smithy_types::DateTime::from_secs(ahead)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap()
        .replace(['-', ':'], "")
        .to_lowercase();
    // X-Amz-Date is yyyymmddThhmmssZ: the hour tells an hour ahead from now.
    assert_eq!(signed[4][..11], ahead_tag[..11], "{signed:?}");
    assert_eq!(signed[6][..11], ahead_tag[..11], "{signed:?}");
}

/// A refusal of the signature's time whose re-signed request gets an empty success (`{}`, or
/// no body), or one without the operation's own members (a hop's `{"ok":1}`), is not the
/// service's clock: a hop answers that as easily, and one forged pair moved the client's
/// clock, and the usage meter's, by days (a hostile review found it).
#[test]
fn an_empty_success_after_a_refusal_does_not_move_the_clock() {
    let now = now().secs();
    let skewed = r#"{"__type":"InvalidSignatureException","message":"Signature expired"}"#;
    let behind = support::http_date(now - 2 * 86_400);
    let (port, _) = serve_answers(vec![
        (403, skewed, behind.clone()),
        (200, "{}", behind.clone()),
        (403, skewed, behind.clone()),
        (200, "", behind.clone()),
        (403, skewed, behind.clone()),
        (200, r#"{"ok":1}"#, behind.clone()),
        (403, skewed, behind.clone()),
        (200, r#"{"Results":[],"UnprocessedRecords":[]}"#, behind),
    ]);
    let c = raw_client(port);
    for _ in 0..4 {
        let out = c
            .batch_meter_usage(batch(vec![record("cust-1", 1)]))
            .unwrap();
        assert_eq!(out.metadata().attempts(), 2, "re-signed once");
        assert_eq!(c.as_async().clock_offset_ms(), 0);
    }
}

/// A `Date` past any clock (9999-12-31) is not learnt, not even through a refusal of the
/// signature's time whose re-signed request is accepted: it was, and every later call
/// panicked in the signer (a time past year 9999), for the life of the client (found by a
/// hostile review). A `Date` two days off an accepted request's signature is not the
/// service's clock either.
#[test]
fn a_date_past_any_clock_is_not_learnt() {
    let now = now().secs();
    let skewed = r#"{"__type":"InvalidSignatureException","message":"Signature expired"}"#;
    let ok = ONE_RESULT;
    let end = support::http_date(253_402_300_799);
    let (port, _) = serve_answers(vec![
        (403, skewed, end.clone()),
        (200, ok, end.clone()),
        (200, ok, end),
        (200, ok, support::http_date(now + 2 * 86_400)),
        (200, ok, support::http_date(now + 2 * 86_400)),
        (200, ok, support::http_date(now)),
    ]);
    let c = raw_client(port);
    let send = || c.batch_meter_usage(batch(vec![record("cust-1", 1)]));
    assert_eq!(
        send().unwrap_err().error_code(),
        ErrorCode::InvalidSignatureException
    );
    for _ in 0..4 {
        send().unwrap();
        assert_eq!(c.as_async().clock_offset_ms(), 0);
    }
    std::thread::sleep(Duration::from_millis(1100));
    send().unwrap();
}

/// A broken hop's error pages are not the service's clock: two 503 pages (a load balancer in
/// front of the endpoint, a retry of the same call through the same hop) with a `Date` seven
/// hours behind moved the client's clock, and the usage meter filed the next events in an
/// hour seven hours old, past the window once the clock was right again (found by a hostile
/// review). Only an answer of the service itself counts: a success it sent (with a body: an
/// empty 200 is a hop's too), or a refusal with one of its error codes. Two such answers
/// that agree still move it.
#[test]
fn a_broken_hops_error_pages_do_not_move_the_clock() {
    let now = now().secs();
    let behind = now - 7 * 3600;
    let page = "<html>503 Service Temporarily Unavailable</html>";
    let denied = r#"{"__type":"AccessDeniedException","message":"no"}"#;
    let ok = ONE_RESULT;
    let (port, _) = serve_answers(vec![
        (503, page, support::http_date(behind)),
        (503, page, support::http_date(behind)),
        (502, page, support::http_date(behind)),
        (200, ok, support::http_date(now)),
        // A hop's empty 200s (read as `{}`), one call after another: nothing of the service.
        (200, "{}", support::http_date(behind)),
        (200, "", support::http_date(behind)),
        // The service's own answers, a refusal then a success, agree, within the 5 minutes
        // the service accepts a signature in: learnt.
        (400, denied, support::http_date(now - 290)),
        (200, ok, support::http_date(now - 290)),
    ]);
    let c = blocking::Client::new(
        support::config(format!("http://127.0.0.1:{port}"))
            .max_attempts(3u32)
            .initial_backoff(Duration::from_millis(1))
            .max_backoff(Duration::from_millis(2))
            .build()
            .unwrap(),
    );
    let send = || c.batch_meter_usage(batch(vec![record("cust-1", 1)]));
    let e = send().unwrap_err();
    assert_eq!(e.attempts(), 3, "{e}");
    assert_eq!(c.as_async().clock_offset_ms(), 0, "three pages from a hop");
    send().unwrap();
    assert_eq!(c.as_async().clock_offset_ms(), 0);
    send().unwrap();
    send().unwrap();
    assert_eq!(c.as_async().clock_offset_ms(), 0, "two empty 200s");
    let e = send().unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::AccessDeniedException);
    send().unwrap();
    let learnt = c.as_async().clock_offset_ms();
    assert!((learnt + 290_000).abs() < 3000, "{learnt}");
}

/// One answer's `Date` (a broken load balancer, an intermediary) cannot move the client's
/// clock, which the usage meter buckets by: an offset is learnt at once only from an answer
/// that says the signature's time was wrong, otherwise from two answers in a row that agree
/// (found by a review: one `Date: Thu, 01 Jan 1970` put the next events in hour 0, which the
/// service then refused as too old, and the meter expired them).
#[test]
fn one_answers_date_does_not_move_the_clock() {
    let now = now().secs();
    assert_eq!(support::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        support::http_date(951_782_400),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
    let ahead = now + 3600;
    let port = serve_dates(vec![
        support::http_date(0),
        support::http_date(now),
        support::http_date(253_402_300_799), // 9999-12-31
        support::http_date(now),
        support::http_date(ahead),
        support::http_date(ahead),
        support::http_date(now + 290),
        support::http_date(now + 290),
    ]);
    let c = raw_client(port);
    let call = || {
        c.batch_meter_usage(batch(vec![record("cust-1", 1)]))
            .unwrap();
        c.as_async().clock_offset_ms()
    };
    assert_eq!(call(), 0, "1970");
    assert_eq!(call(), 0);
    assert_eq!(call(), 0, "9999");
    assert_eq!(call(), 0);
    assert_eq!(call(), 0, "an hour ahead, once");
    assert_eq!(
        call(),
        0,
        "an hour ahead twice: the service accepted signatures an hour off its Date"
    );
    assert_eq!(call(), 0, "290 s ahead, once");
    let learnt = call();
    assert!((learnt - 290_000).abs() < 3000, "{learnt}");
}

/// gunicorn `--preload`: each worker inherits the master's client, whose pooled connections
/// are tasks of the master's runtime. A worker that drops it (a request handler's client, a
/// meter it may not use) must not touch that runtime: the worker hung for good.
#[test]
fn a_client_inherited_across_fork_is_dropped_without_touching_the_parents_runtime() {
    let emu = emulator();
    let c = client(&emu);
    let rt = marketplace_metering::runtime::handle().unwrap();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            rt.spawn(async move {
                c.send_batch_meter_usage(batch(vec![record(&format!("cust-{}", i + 1), 1)]))
                    .await
            })
        })
        .collect();
    for call in calls {
        rt.block_on(call).unwrap().unwrap();
    }
    // SAFETY: the child leaves with `_exit`, never dropping its `c`: this is its last drop.
    let hung = support::children_that_hung(200, || drop(unsafe { std::ptr::read(&c) }));
    assert_eq!(hung, 0, "children hung dropping an inherited client");
    // The parent's pool is unharmed.
    rt.block_on(c.send_batch_meter_usage(batch(vec![record("cust-9", 1)])))
        .unwrap();
}

/// A worker forked while a thread of its parent was inside the library's runtimes (every
/// fleet flush spawns on the shared one; every blocking call takes the blocking one) hung at
/// its first call, or at exit, where Python's `atexit` and C's `mm_shutdown()` stop the
/// runtimes: the lock that thread held stayed locked in the child.
#[test]
fn a_child_forked_while_the_runtimes_are_busy_calls_and_exits() {
    use marketplace_metering::runtime;
    let emu = emulator();
    let endpoint = emu.endpoint();
    // What those threads do to the runtimes' slots, without the rest of their work.
    let busy = || {
        drop(runtime::handle().unwrap());
        drop(runtime::blocking_handle().unwrap());
    };
    let hung = support::children_that_hung_beside(200, busy, || {
        let c = blocking::Client::new(support::config(endpoint.clone()).build().unwrap());
        c.batch_meter_usage(batch(vec![record("cust-1", 1)]))
            .unwrap();
        drop(runtime::handle().unwrap().spawn(async {}));
        runtime::shutdown();
    });
    assert_eq!(hung, 0, "children hung in the runtimes they inherited");
}

/// A worker forked while its parent's threads used a client, which the worker then uses (the
/// README's gunicorn pattern makes a meter of the master's client in each worker): the
/// client's pool lock, held at the fork by a parent's thread, stayed locked in the worker,
/// and its first call hung.
#[test]
fn a_child_forked_while_its_parent_uses_a_client_can_use_it() {
    let emu = emulator();
    let hung = children_calling_beside(&client(&emu), |c| {
        c.close();
    });
    assert_eq!(hung, 0, "children hung calling an inherited client");
}

/// [`support::children_that_hung_beside`] with a parent's thread running `busy` on a clone of
/// `c` and each of 200 children making one call with `c`.
fn children_calling_beside(c: &Client, busy: impl Fn(&Client) + Send + 'static) -> usize {
    let theirs = c.clone();
    support::children_that_hung_beside(
        200,
        move || busy(&theirs),
        || {
            marketplace_metering::runtime::block_on(
                c.send_batch_meter_usage(batch(vec![record("cust-1", 1)])),
            )
            .unwrap()
            .unwrap();
        },
    )
}

/// A worker forked while its parent's threads set a client's credentials (a provider of the
/// seller's own, refreshing them) or read them (every call does): the child's first call
/// waited for good on the lock such a thread held at the fork.
#[test]
fn a_child_forked_while_its_parent_sets_credentials_can_call() {
    let emu = emulator();
    let hung = children_calling_beside(&client(&emu), |c| {
        c.set_credentials(marketplace_metering::Credentials::new(
            metering_emulator::DEFAULT_ACCESS_KEY_ID,
            metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ));
    });
    assert_eq!(
        hung, 0,
        "children hung reading the credentials they inherited"
    );
}

// SPDX-License-Identifier: Apache-2.0
// Fault injection: every Fault kind, FIFO order, and what each one bills.

mod common;

use std::time::Instant;

use common::*;
use metering_emulator::*;
use serde_json::json;

fn five() -> serde_json::Value {
    batch(
        (1..=5)
            .map(|i| record(&format!("cust-{i}"), "users", i))
            .collect(),
    )
}

#[tokio::test]
async fn error_faults_answer_without_processing() {
    let emu = start();
    emu.push_fault(Fault::Throttle);
    emu.push_fault(Fault::InternalError);
    emu.push_fault(Fault::Unavailable);
    emu.push_fault(Fault::Error {
        status: 418,
        code: "TeapotException".into(),
        message: "short and stout".into(),
        namespaced: false,
    });
    emu.push_fault(Fault::Error {
        status: 400,
        code: "ThrottlingException".into(),
        message: "slow down".into(),
        namespaced: true,
    });
    emu.push_fault(Fault::Garbage);

    let r = call(&emu, "BatchMeterUsage", five()).await;
    r.expect_error(400, "ThrottlingException");
    let r = call(&emu, "BatchMeterUsage", five()).await;
    r.expect_error(500, "InternalServiceErrorException");
    let r = call(&emu, "BatchMeterUsage", five()).await;
    assert_eq!(r.status, 503);
    assert!(r.text.contains("<html>"));
    assert!(r.content_type.as_deref().unwrap().starts_with("text/html"));
    assert!(r.request_id.is_some());
    let r = call(&emu, "BatchMeterUsage", five()).await;
    r.expect_error(418, "TeapotException");
    assert_eq!(r.message(), "short and stout");
    let r = call(&emu, "BatchMeterUsage", five()).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_type(),
        "com.amazonaws.marketplace.metering#ThrottlingException"
    );
    let r = call(&emu, "BatchMeterUsage", five()).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    assert!(r.request_id.is_some());
    assert!(emu.ledger().is_empty());
    // Queue drained: back to normal.
    call(&emu, "BatchMeterUsage", five()).await.expect_ok();
    assert_eq!(emu.ledger().len(), 5);
    let log = emu.requests();
    assert_eq!(log.len(), 7);
    assert_eq!(log[0].fault, Some(Fault::Throttle));
    assert_eq!(log[0].error_code.as_deref(), Some("ThrottlingException"));
    assert_eq!(log[6].fault, None);
}

#[tokio::test]
async fn partial_leaves_last_records_unprocessed_and_unbilled() {
    let emu = start();
    emu.push_fault(Fault::Partial { count: 2 });
    let body = five();
    let r = call(&emu, "BatchMeterUsage", body.clone()).await;
    let out = r.expect_ok();
    assert_eq!(out["Results"].as_array().unwrap().len(), 3);
    assert_eq!(
        out["UnprocessedRecords"],
        json!(body["UsageRecords"].as_array().unwrap()[3..])
    );
    assert_eq!(emu.ledger().len(), 3);
    // Retrying the unprocessed ones bills them.
    let retry = json!({"ProductCode": PRODUCT_CODE, "UsageRecords": out["UnprocessedRecords"]});
    let r = call(&emu, "BatchMeterUsage", retry).await;
    assert!(r.expect_ok()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["Status"] == "Success"));
    assert_eq!(emu.ledger().len(), 5);
}

#[tokio::test]
async fn truncated_is_processed_then_cut() {
    let emu = start();
    emu.push_fault(Fault::Truncated);
    let r = call(&emu, "BatchMeterUsage", five()).await;
    assert_eq!(r.status, 200);
    assert!(r.text.starts_with('{'));
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    assert_eq!(emu.ledger().len(), 5);
    // The retry gets the same ids and bills nothing more.
    let r = call(&emu, "BatchMeterUsage", five()).await;
    let ids: Vec<_> = r.expect_ok()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["MeteringRecordId"].clone())
        .collect();
    let billed: Vec<_> = emu
        .ledger()
        .iter()
        .map(|e| json!(e.metering_record_id))
        .collect();
    assert_eq!(ids, billed);
}

#[tokio::test]
async fn reset_drops_the_connection_and_delay_waits() {
    let emu = start();
    emu.push_fault(Fault::Reset);
    let port = emu.port();
    let req = Req::op(port, "BatchMeterUsage", &five()).sign(port, &Signer::default());
    let err = send(&client(), req)
        .await
        .expect_err("the connection should be dropped");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(emu.ledger().is_empty());
    assert_eq!(emu.requests()[0].status, 0);

    emu.push_fault(Fault::Delay { seconds: 0.6 });
    let started = Instant::now();
    let r = call(&emu, "BatchMeterUsage", five()).await;
    assert!(started.elapsed().as_secs_f64() >= 0.6);
    r.expect_ok();
    assert_eq!(emu.ledger().len(), 5);
}

#[tokio::test]
async fn faults_are_consumed_even_by_failing_requests_but_not_by_control_calls() {
    let emu = start();
    emu.push_fault(Fault::Throttle);
    emu.push_fault(Fault::Partial { count: 1 });
    control(&emu, "GET", "/_emulator/health", None).await;
    assert_eq!(emu.pending_faults().len(), 2);
    call(
        &emu,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-valid"}),
    )
    .await
    .expect_error(400, "ThrottlingException");
    // Partial on another operation is consumed without effect.
    call(
        &emu,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-valid"}),
    )
    .await
    .expect_ok();
    assert!(emu.pending_faults().is_empty());
    let r = call(&emu, "BatchMeterUsage", five()).await;
    assert_eq!(r.expect_ok()["UnprocessedRecords"], json!([]));
}

// SPDX-License-Identifier: Apache-2.0
// Operation semantics: successes, modeled errors, validation, de-duplication, idempotency, windows.

mod common;

use common::*;
use metering_emulator::*;
use serde_json::{json, Value};

fn is_uuid(v: &Value) -> bool {
    v.as_str()
        .map(|s| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4)
        .unwrap_or(false)
}

#[tokio::test]
async fn batch_meter_usage_success_echoes_records_and_bills() {
    let emu = start();
    let t = now() as i64;
    let rec = json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 3,
        "UsageAllocations": [{"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "a"}]},
                             {"AllocatedUsageQuantity": 1}]});
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![rec.clone(), record("cust-2", "gb", 7)]),
    )
    .await;
    let out = r.expect_ok();
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-amz-json-1.1")
    );
    let results = out["Results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["UsageRecord"], rec);
    assert_eq!(results[0]["Status"], "Success");
    assert!(is_uuid(&results[0]["MeteringRecordId"]));
    assert_eq!(out["UnprocessedRecords"], json!([]));
    let ledger = emu.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].operation, "BatchMeterUsage");
    assert_eq!(ledger[0].product_code.as_deref(), Some(PRODUCT_CODE));
    assert_eq!(ledger[0].customer_identifier.as_deref(), Some("cust-1"));
    assert_eq!(ledger[0].quantity, 3);
    assert_eq!(ledger[0].hour, t / 3600 * 3600);
    assert_eq!(ledger[0].timestamp, t as f64);
    assert_eq!(ledger[0].allocations, rec["UsageAllocations"]);
    assert_eq!(ledger[0].metering_record_id, results[0]["MeteringRecordId"]);
    assert_eq!(ledger[1].dimension, "gb");
    assert_eq!(ledger[1].allocations, Value::Null);
}

#[tokio::test]
async fn batch_meter_usage_statuses_and_license_records() {
    let emu = start();
    let t = now();
    let license = json!({"Timestamp": t, "CustomerAWSAccountId": CUSTOMER_AWS_ACCOUNT_ID,
        "LicenseArn": LICENSE_ARN, "Dimension": "requests", "Quantity": 5});
    let r = call(&emu, "BatchMeterUsage", json!({"UsageRecords": [license]})).await;
    assert_eq!(r.expect_ok()["Results"][0]["Status"], "Success");
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![
            record("cust-unsubscribed", "users", 1),
            record("cust-3", "users", 1),
        ]),
    )
    .await;
    let out = r.expect_ok();
    assert_eq!(out["Results"][0]["Status"], "CustomerNotSubscribed");
    assert_eq!(out["Results"][1]["Status"], "Success");
    let ledger = emu.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].license_arn.as_deref(), Some(LICENSE_ARN));
    assert_eq!(
        ledger[0].customer_aws_account_id.as_deref(),
        Some(CUSTOMER_AWS_ACCOUNT_ID)
    );
    assert_eq!(ledger[0].product_code.as_deref(), Some(PRODUCT_CODE));
    assert_eq!(ledger[1].customer_identifier.as_deref(), Some("cust-3"));
    // Empty batch is fine.
    let r = call(&emu, "BatchMeterUsage", batch(vec![])).await;
    assert_eq!(r.expect_ok()["Results"], json!([]));
}

#[tokio::test]
async fn batch_meter_usage_modeled_errors() {
    let emu = start();
    let t = now();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"ProductCode": "prod-unknown", "UsageRecords": [record("cust-1", "users", 1)]}),
            "InvalidProductCodeException",
        ),
        (
            batch(vec![record("cust-1", "cpu", 1)]),
            "InvalidUsageDimensionException",
        ),
        (
            batch(vec![record("cust-nobody", "users", 1)]),
            "InvalidCustomerIdentifierException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerAWSAccountId": "999999999999", "LicenseArn": "arn:aws:license-manager::999999999999:license:l-0000", "Dimension": "users"}),
            ]),
            "InvalidLicenseException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerAWSAccountId": "999999999999", "LicenseArn": LICENSE_ARN, "Dimension": "users"}),
            ]),
            "InvalidLicenseException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 3,
            "UsageAllocations": [{"AllocatedUsageQuantity": 2}]}),
            ]),
            "InvalidUsageAllocationsException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users",
            "UsageAllocations": [{"AllocatedUsageQuantity": 1}]}),
            ]),
            "InvalidUsageAllocationsException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 2,
            "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}]},
                                 {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}]}]}),
            ]),
            "InvalidUsageAllocationsException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1,
            "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}, {"Key": "k", "Value": "w"}]}]}),
            ]),
            "InvalidTagException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "CustomerAWSAccountId": "111122223333", "LicenseArn": LICENSE_ARN, "Dimension": "users"}),
            ]),
            "ValidationException",
        ),
        (
            batch(vec![
                json!({"Timestamp": t, "CustomerAWSAccountId": "999988887777", "Dimension": "users"}),
            ]),
            "InvalidCustomerIdentifierException",
        ),
        (
            batch(vec![json!({"Timestamp": t, "Dimension": "users"})]),
            "ValidationException",
        ),
        (
            json!({"UsageRecords": [record("cust-1", "users", 1)]}),
            "ValidationException",
        ),
    ];
    for (body, code) in cases {
        let r = call(&emu, "BatchMeterUsage", body.clone()).await;
        assert_eq!((r.status, r.error_type()), (400, code), "{body} -> {r:?}");
        assert!(!r.message().is_empty());
    }
    // A CustomerAWSAccountId without LicenseArn is billed to the product (the model allows it).
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![
            json!({"Timestamp": t, "CustomerAWSAccountId": "111122223333", "Dimension": "users", "Quantity": 1}),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // A valid record next to an invalid one is not billed either.
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![
            record("cust-1", "users", 1),
            record("cust-1", "cpu", 1),
        ]),
    )
    .await;
    r.expect_error(400, "InvalidUsageDimensionException");
    assert_eq!(emu.ledger().len(), 1, "only the account record above");
    // Zero quantity with zero allocations is consistent.
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![
            json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users",
        "UsageAllocations": [{"AllocatedUsageQuantity": 0}]}),
        ]),
    )
    .await;
    assert_eq!(r.expect_ok()["Results"][0]["Status"], "Success");
}

#[tokio::test]
async fn model_constraints_are_validation_exceptions() {
    let emu = start();
    let t = now();
    let rec = |extra: Value| {
        let mut r = json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                r.as_object_mut().unwrap().remove(k);
            } else {
                r[k] = v.clone();
            }
        }
        r
    };
    let tags = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
            .collect()
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            batch(
                (0..26)
                    .map(|i| record(&format!("cust-{}", i + 1), "users", 1))
                    .collect(),
            ),
            "usageRecords",
        ),
        (
            batch(vec![rec(json!({"Quantity": -1}))]),
            "usageRecords.1.member.quantity",
        ),
        (
            batch(vec![rec(json!({"Quantity": 2147483648i64}))]),
            "usageRecords.1.member.quantity",
        ),
        (
            batch(vec![rec(json!({"Dimension": ""}))]),
            "usageRecords.1.member.dimension",
        ),
        (
            batch(vec![rec(json!({"Dimension": "d".repeat(256)}))]),
            "usageRecords.1.member.dimension",
        ),
        (
            batch(vec![rec(json!({"Dimension": null}))]),
            "usageRecords.1.member.dimension",
        ),
        (
            batch(vec![rec(json!({"Timestamp": null}))]),
            "usageRecords.1.member.timestamp",
        ),
        (
            batch(vec![rec(json!({"CustomerIdentifier": "c".repeat(256)}))]),
            "usageRecords.1.member.customerIdentifier",
        ),
        (
            batch(vec![rec(
                json!({"CustomerIdentifier": null, "CustomerAWSAccountId": "12ab", "LicenseArn": LICENSE_ARN}),
            )]),
            "customerAWSAccountId",
        ),
        (
            batch(vec![rec(json!({"LicenseArn": "arn:nope"}))]),
            "licenseArn",
        ),
        (
            batch(vec![rec(json!({"UsageAllocations": []}))]),
            "usageAllocations",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": -1}]}),
            )]),
            "allocatedUsageQuantity",
        ),
        (
            batch(vec![rec(json!({"UsageAllocations": [{"Tags": tags(1)}]}))]),
            "allocatedUsageQuantity",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": tags(6)}]}),
            )]),
            "tags",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": []}]}),
            )]),
            "tags",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "bad\tkey", "Value": "v"}]}]}),
            )]),
            "tags.1.member.key",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": ""}]}]}),
            )]),
            "tags.1.member.value",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k".repeat(101), "Value": "v"}]}]}),
            )]),
            "tags.1.member.key",
        ),
        (
            batch(vec![rec(
                json!({"UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k"}]}]}),
            )]),
            "tags.1.member.value",
        ),
        (
            json!({"ProductCode": "prod 1234", "UsageRecords": []}),
            "productCode",
        ),
        (
            json!({"ProductCode": "p".repeat(256), "UsageRecords": []}),
            "productCode",
        ),
        (json!({"ProductCode": PRODUCT_CODE}), "usageRecords"),
    ];
    for (body, path) in cases {
        let r = call(&emu, "BatchMeterUsage", body.clone()).await;
        r.expect_error(400, "ValidationException");
        assert!(r.message().contains("validation error"), "{}", r.message());
        assert!(r.message().contains(path), "{path} not in {}", r.message());
    }
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![rec(json!({"Quantity": -1, "Dimension": ""}))]),
    )
    .await;
    r.expect_error(400, "ValidationException");
    assert!(
        r.message().starts_with("2 validation errors detected"),
        "{}",
        r.message()
    );
    // MeterUsage, ResolveCustomer, RegisterUsage constraints.
    let mu = |extra: Value| {
        let mut b = json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "users", "UsageQuantity": 1});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    for (op, body) in [
        ("MeterUsage", mu(json!({"ProductCode": null}))),
        ("MeterUsage", mu(json!({"Timestamp": null}))),
        ("MeterUsage", mu(json!({"UsageDimension": null}))),
        ("MeterUsage", mu(json!({"UsageQuantity": -5}))),
        ("MeterUsage", mu(json!({"ClientToken": ""}))),
        ("MeterUsage", mu(json!({"ClientToken": "t".repeat(65)}))),
        ("MeterUsage", mu(json!({"UsageAllocations": []}))),
        ("ResolveCustomer", json!({})),
        ("ResolveCustomer", json!({"RegistrationToken": ""})),
        ("RegisterUsage", json!({"ProductCode": PRODUCT_CODE})),
        ("RegisterUsage", json!({"PublicKeyVersion": 1})),
        (
            "RegisterUsage",
            json!({"ProductCode": PRODUCT_CODE, "PublicKeyVersion": 1, "Nonce": "n".repeat(256)}),
        ),
    ] {
        let r = call(&emu, op, body.clone()).await;
        assert_eq!(
            (r.status, r.error_type()),
            (400, "ValidationException"),
            "{op} {body} -> {r:?}"
        );
    }
    assert!(emu.ledger().is_empty());
}

#[tokio::test]
async fn serialization_errors() {
    let emu = start();
    let port = emu.port();
    let http = client();
    let t = now();
    for body in [
        b"{not json".to_vec(),
        b"[1,2]".to_vec(),
        serde_json::to_vec(&json!({"ProductCode": PRODUCT_CODE, "UsageRecords": [], "Extra": 1})).unwrap(),
        serde_json::to_vec(&batch(vec![json!({"Timestamp": "2024-01-01T00:00:00Z", "CustomerIdentifier": "cust-1", "Dimension": "users"})])).unwrap(),
        serde_json::to_vec(&batch(vec![json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": "3"})])).unwrap(),
        serde_json::to_vec(&batch(vec![json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1.5})])).unwrap(),
        serde_json::to_vec(&batch(vec![json!({"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Bogus": true})])).unwrap(),
        serde_json::to_vec(&json!({"ProductCode": 5, "UsageRecords": []})).unwrap(),
    ] {
        let req = Req::op(port, "BatchMeterUsage", &json!({})).raw_body(&body).sign(port, &Signer::default());
        let r = send(&http, req).await.unwrap();
        r.expect_error(400, "SerializationException");
    }
    let req = Req::op(port, "MeterUsage", &json!({}))
        .raw_body(
            br#"{"ProductCode":"prod-1234","Timestamp":1,"UsageDimension":"users","DryRun":"yes"}"#,
        )
        .sign(port, &Signer::default());
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "SerializationException");
    // An empty body reads as {} and fails validation instead.
    let req = Req::op(port, "ResolveCustomer", &json!({}))
        .raw_body(b"")
        .sign(port, &Signer::default());
    send(&http, req)
        .await
        .unwrap()
        .expect_error(400, "ValidationException");
}

#[tokio::test]
async fn batch_dedup_same_quantity_is_billed_once_other_quantity_is_duplicate() {
    let emu = start();
    let t = now() as i64;
    let rec = |q: i64, ts: i64| json!({"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": q});
    let first = call(&emu, "BatchMeterUsage", batch(vec![rec(3, t)])).await;
    let id = first.expect_ok()["Results"][0]["MeteringRecordId"].clone();
    // Same hour, same quantity (even another timestamp in the hour): same id, not billed again.
    let t2 = if t % 3600 == 0 { t + 1 } else { t - 1 };
    let again = call(&emu, "BatchMeterUsage", batch(vec![rec(3, t2)])).await;
    assert_eq!(again.expect_ok()["Results"][0]["Status"], "Success");
    assert_eq!(again.json["Results"][0]["MeteringRecordId"], id);
    assert_eq!(emu.ledger().len(), 1);
    // Another quantity: DuplicateRecord, not billed.
    let dup = call(&emu, "BatchMeterUsage", batch(vec![rec(4, t)])).await;
    assert_eq!(dup.expect_ok()["Results"][0]["Status"], "DuplicateRecord");
    assert_eq!(emu.ledger().len(), 1);
    // The refused record is kept apart, with the id of the record billed first.
    let rejected = emu.rejected_duplicates();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].quantity, 4);
    assert_eq!(rejected[0].customer_identifier.as_deref(), Some("cust-1"));
    assert_eq!(
        serde_json::Value::from(rejected[0].metering_record_id.clone()),
        id
    );
    // Within one batch.
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![
            record("cust-2", "gb", 1),
            record("cust-2", "gb", 1),
            record("cust-2", "gb", 2),
        ]),
    )
    .await;
    let res = r.expect_ok()["Results"].as_array().unwrap().clone();
    assert_eq!(res[0]["Status"], "Success");
    assert_eq!(res[1]["Status"], "Success");
    assert_eq!(res[1]["MeteringRecordId"], res[0]["MeteringRecordId"]);
    assert_eq!(res[2]["Status"], "DuplicateRecord");
    assert_eq!(emu.ledger().len(), 2);
    // Other dimension, other customer, other hour: new records.
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![
            record("cust-1", "gb", 3),
            record("cust-4", "users", 3),
            rec(3, t - 3600),
        ]),
    )
    .await;
    let res = r.expect_ok()["Results"].as_array().unwrap().clone();
    assert!(res.iter().all(|x| x["Status"] == "Success"));
    assert_eq!(emu.ledger().len(), 5);
}

#[tokio::test]
async fn timestamp_window_rejects_the_whole_batch() {
    let emu = start();
    let t = now();
    let old = json!({"Timestamp": t - 6.0 * 3600.0 - 5.0, "CustomerIdentifier": "cust-2", "Dimension": "users", "Quantity": 1});
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-1", "users", 1), old]),
    )
    .await;
    r.expect_error(400, "TimestampOutOfBoundsException");
    let future = json!({"Timestamp": t + 600.0, "CustomerIdentifier": "cust-2", "Dimension": "users", "Quantity": 1});
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![future, record("cust-1", "users", 1)]),
    )
    .await;
    r.expect_error(400, "TimestampOutOfBoundsException");
    assert!(emu.ledger().is_empty());
    // Inside the window, with fractional seconds: fine.
    let ok = vec![
        json!({"Timestamp": t - 5.5 * 3600.0, "CustomerIdentifier": "cust-2", "Dimension": "users", "Quantity": 1}),
        json!({"Timestamp": t + 200.25, "CustomerIdentifier": "cust-3", "Dimension": "users", "Quantity": 1}),
    ];
    let r = call(&emu, "BatchMeterUsage", batch(ok)).await;
    assert_eq!(r.expect_ok()["Results"].as_array().unwrap().len(), 2);
    assert_eq!(emu.ledger().len(), 2);
    let r = call(&emu, "MeterUsage", json!({"ProductCode": PRODUCT_CODE, "Timestamp": t - 7.0 * 3600.0, "UsageDimension": "users"})).await;
    r.expect_error(400, "TimestampOutOfBoundsException");
}

#[tokio::test]
async fn meter_usage_dedup_idempotency_and_dry_run() {
    let emu = start();
    let t = now() as i64;
    let body = |q: i64, token: Option<&str>| {
        let mut b = json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "users", "UsageQuantity": q});
        if let Some(tok) = token {
            b["ClientToken"] = tok.into();
        }
        b
    };
    // DryRun on a valid request: DryRunOperation, nothing billed.
    let mut dry = body(5, None);
    dry["DryRun"] = true.into();
    call(&emu, "MeterUsage", dry.clone())
        .await
        .expect_error(400, "DryRunOperation");
    assert!(emu.ledger().is_empty());
    // DryRun=false is an ordinary call.
    dry["DryRun"] = false.into();
    let r = call(&emu, "MeterUsage", dry).await;
    let id = r.expect_ok()["MeteringRecordId"].clone();
    assert!(is_uuid(&id));
    assert_eq!(emu.ledger().len(), 1);
    assert_eq!(emu.ledger()[0].operation, "MeterUsage");
    assert_eq!(emu.ledger()[0].quantity, 5);
    // Same hour and quantity: same id.
    let r = call(&emu, "MeterUsage", body(5, None)).await;
    assert_eq!(r.expect_ok()["MeteringRecordId"], id);
    // Other quantity: DuplicateRequestException.
    call(&emu, "MeterUsage", body(6, None))
        .await
        .expect_error(400, "DuplicateRequestException");
    assert_eq!(emu.ledger().len(), 1);
    assert_eq!(emu.rejected_duplicates().len(), 1);
    assert_eq!(emu.rejected_duplicates()[0].quantity, 6);
    // Another identity is another caller.
    let r = call_as(&emu, "MeterUsage", body(6, None), &Signer::session()).await;
    assert_ne!(r.expect_ok()["MeteringRecordId"], id);
    assert_eq!(emu.ledger().len(), 2);
    // Unless it is the same instance's (its role's credentials rotated within the hour): the
    // service takes one quantity an hour per instance, whatever key signs. Before, every key
    // was an instance of its own, and a second quantity after a rotation was billed.
    let mut cfg = EmulatorConfig::default();
    for c in &mut cfg.credentials {
        c.instance = Some("i-0123456789abcdef0".into());
    }
    let one = Emulator::start(cfg).unwrap();
    let first = call(&one, "MeterUsage", body(5, None)).await;
    let first = first.expect_ok()["MeteringRecordId"].clone();
    call_as(&one, "MeterUsage", body(7, None), &Signer::session())
        .await
        .expect_error(400, "DuplicateRequestException");
    let again = call_as(&one, "MeterUsage", body(5, None), &Signer::session()).await;
    assert_eq!(again.expect_ok()["MeteringRecordId"], first);
    assert_eq!(one.ledger().len(), 1);

    // ClientToken: same token and params -> same id; other params -> IdempotencyConflictException.
    let gb = |q: i64, token: &str| json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "gb", "UsageQuantity": q, "ClientToken": token});
    let a = call(&emu, "MeterUsage", gb(1, "tok-1")).await;
    let a_id = a.expect_ok()["MeteringRecordId"].clone();
    let b = call(&emu, "MeterUsage", gb(1, "tok-1")).await;
    assert_eq!(b.expect_ok()["MeteringRecordId"], a_id);
    call(&emu, "MeterUsage", gb(2, "tok-1"))
        .await
        .expect_error(400, "IdempotencyConflictException");
    assert_eq!(emu.ledger().len(), 3);
    // Tokens are per seller account: another identity of the same account meets them too.
    call_as(&emu, "MeterUsage", gb(2, "tok-1"), &Signer::session())
        .await
        .expect_error(400, "IdempotencyConflictException");
    assert_eq!(emu.ledger().len(), 3);
    // A DryRun meets the conflict too, and, making no request, records nothing.
    let rejected = emu.rejected_duplicates().len();
    let mut dry = gb(2, "tok-1");
    dry["DryRun"] = true.into();
    call(&emu, "MeterUsage", dry)
        .await
        .expect_error(400, "IdempotencyConflictException");
    assert_eq!(emu.rejected_duplicates().len(), rejected);

    // Semantic errors.
    let t = now();
    call(
        &emu,
        "MeterUsage",
        json!({"ProductCode": "prod-unknown", "Timestamp": t, "UsageDimension": "users"}),
    )
    .await
    .expect_error(400, "InvalidProductCodeException");
    call(
        &emu,
        "MeterUsage",
        json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "cpu"}),
    )
    .await
    .expect_error(400, "InvalidUsageDimensionException");
    call(
        &emu,
        "MeterUsage",
        json!({"ProductCode": "prod-not-entitled", "Timestamp": t, "UsageDimension": "users"}),
    )
    .await
    .expect_error(400, "CustomerNotEntitledException");
    call(&emu, "MeterUsage", json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "requests", "UsageQuantity": 2,
        "UsageAllocations": [{"AllocatedUsageQuantity": 1}]})).await.expect_error(400, "InvalidUsageAllocationsException");
    call(&emu, "MeterUsage", json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "requests", "UsageQuantity": 1,
        "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "aws:x", "Value": "v"}]}]})).await.expect_error(400, "InvalidTagException");
    let r = call(&emu, "MeterUsage", json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "requests", "UsageQuantity": 2,
        "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "a"}]}, {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "b"}]}]})).await;
    r.expect_ok();
    assert_eq!(emu.ledger().len(), 4);
}

#[tokio::test]
async fn resolve_customer() {
    let emu = start();
    let r = call(
        &emu,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-valid"}),
    )
    .await;
    assert_eq!(
        r.expect_ok(),
        &json!({"CustomerIdentifier": "cust-1", "ProductCode": PRODUCT_CODE,
                "CustomerAWSAccountId": CUSTOMER_AWS_ACCOUNT_ID, "LicenseArn": LICENSE_ARN})
    );
    // A product registered for license-based metering: the answer names the account and
    // the license only (every member of the result is optional), and a seller's code that
    // takes CustomerIdentifier for granted must meet that here, not in production.
    let r = call(
        &emu,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-license"}),
    )
    .await;
    assert_eq!(
        r.expect_ok(),
        &json!({"CustomerAWSAccountId": CUSTOMER_AWS_ACCOUNT_ID, "LicenseArn": LICENSE_ARN})
    );
    call(
        &emu,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-expired"}),
    )
    .await
    .expect_error(400, "ExpiredTokenException");
    call(
        &emu,
        "ResolveCustomer",
        json!({"RegistrationToken": "nonsense"}),
    )
    .await
    .expect_error(400, "InvalidTokenException");
}

#[tokio::test]
async fn register_usage() {
    use base64::Engine as _;
    let emu = start();
    let r = call(
        &emu,
        "RegisterUsage",
        json!({"ProductCode": PRODUCT_CODE, "PublicKeyVersion": 1, "Nonce": "abc"}),
    )
    .await;
    let out = r.expect_ok();
    assert!(out["PublicKeyRotationTimestamp"].is_number());
    let jwt = out["Signature"].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(payload["productCode"], PRODUCT_CODE);
    assert_eq!(payload["nonce"], "abc");
    assert_eq!(b64.decode(parts[2]).unwrap().len(), 32);
    // The model: the rotation timestamp is "only included when public key version has
    // expired"; the current version (2 by default) has none, and a newer one is invalid.
    let current = call(
        &emu,
        "RegisterUsage",
        json!({"ProductCode": PRODUCT_CODE, "PublicKeyVersion": 2}),
    )
    .await;
    let current = current.expect_ok();
    assert!(
        current.get("PublicKeyRotationTimestamp").is_none(),
        "{current}"
    );
    assert!(current["Signature"].is_string());
    for version in [0i64, 3, 1 << 40] {
        call(
            &emu,
            "RegisterUsage",
            json!({"ProductCode": PRODUCT_CODE, "PublicKeyVersion": version}),
        )
        .await
        .expect_error(400, "InvalidPublicKeyVersionException");
    }
    call(
        &emu,
        "RegisterUsage",
        json!({"ProductCode": "prod-not-entitled", "PublicKeyVersion": 1}),
    )
    .await
    .expect_error(400, "CustomerNotEntitledException");
    call(
        &emu,
        "RegisterUsage",
        json!({"ProductCode": "prod-unknown", "PublicKeyVersion": 1}),
    )
    .await
    .expect_error(400, "InvalidProductCodeException");
    assert!(emu.ledger().is_empty());
}

#[tokio::test]
async fn an_inactive_license_gets_customer_not_subscribed() {
    let mut cfg = EmulatorConfig::default();
    let mut other = cfg.licenses[0].clone();
    other.license_arn = format!("{LICENSE_ARN}-inactive");
    other.subscribed = false;
    cfg.licenses.push(other.clone());
    let emu = Emulator::start(cfg).unwrap();
    let t = now();
    let rec = |arn: &str| {
        json!({"Timestamp": t, "CustomerAWSAccountId": CUSTOMER_AWS_ACCOUNT_ID,
        "LicenseArn": arn, "Dimension": "users", "Quantity": 2})
    };
    let r = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![rec(LICENSE_ARN), rec(&other.license_arn)]),
    )
    .await;
    let out = r.expect_ok();
    let results = out["Results"].as_array().unwrap();
    assert_eq!(results[0]["Status"], "Success");
    assert_eq!(results[1]["Status"], "CustomerNotSubscribed");
    assert_eq!(
        results[1]["UsageRecord"]["LicenseArn"],
        other.license_arn.as_str()
    );
    assert_eq!(emu.ledger().len(), 1);
}

/// A license on a `CustomerIdentifier` record is checked as on an account's: it must be the
/// customer's, and an inactive one is `CustomerNotSubscribed` (the emulator billed another
/// customer's license, and an inactive one, when the record named a customer identifier).
#[tokio::test]
async fn a_license_must_be_the_identified_customers_and_active() {
    let mut cfg = EmulatorConfig::default();
    let mut inactive = cfg.licenses[0].clone();
    inactive.license_arn = format!("{LICENSE_ARN}-inactive");
    inactive.subscribed = false;
    cfg.licenses.push(inactive.clone());
    let emu = Emulator::start(cfg).unwrap();
    let t = now();
    let rec = |customer: &str, arn: &str| {
        json!({"Timestamp": t, "CustomerIdentifier": customer, "LicenseArn": arn,
        "Dimension": "users", "Quantity": 2})
    };
    // cust-1 holds the license; cust-2 (another customer, no account known) does not.
    let out = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![rec("cust-1", LICENSE_ARN)]),
    )
    .await;
    assert_eq!(out.expect_ok()["Results"][0]["Status"], "Success");
    call(
        &emu,
        "BatchMeterUsage",
        batch(vec![rec("cust-2", LICENSE_ARN)]),
    )
    .await
    .expect_error(400, "InvalidLicenseException");
    let out = call(
        &emu,
        "BatchMeterUsage",
        batch(vec![rec("cust-1", &inactive.license_arn)]),
    )
    .await;
    assert_eq!(
        out.expect_ok()["Results"][0]["Status"],
        "CustomerNotSubscribed"
    );
    assert_eq!(emu.ledger().len(), 1);
}

/// "Each BatchMeterUsage request is for only one product": license records without a product
/// code whose licenses are for two products are refused, none billed.
#[tokio::test]
async fn a_batch_of_licenses_for_two_products_is_refused() {
    let mut cfg = EmulatorConfig::default();
    let mut other = cfg.licenses[0].clone();
    other.license_arn = format!("{LICENSE_ARN}-second-product");
    other.product_code = "prod-second".into();
    cfg.licenses.push(other.clone());
    let mut product = cfg.products[0].clone();
    product.product_code = "prod-second".into();
    cfg.products.push(product);
    let emu = Emulator::start(cfg).unwrap();
    let t = now();
    let rec = |arn: &str| {
        json!({"Timestamp": t, "CustomerAWSAccountId": CUSTOMER_AWS_ACCOUNT_ID,
        "LicenseArn": arn, "Dimension": "users", "Quantity": 2})
    };
    let two = json!({"UsageRecords": [rec(LICENSE_ARN), rec(&other.license_arn)]});
    call(&emu, "BatchMeterUsage", two)
        .await
        .expect_error(400, "ValidationException");
    assert!(emu.ledger().is_empty());
    let one = json!({"UsageRecords": [rec(&other.license_arn)]});
    let out = call(&emu, "BatchMeterUsage", one).await;
    assert_eq!(out.expect_ok()["Results"][0]["Status"], "Success");
}

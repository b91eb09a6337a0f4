// SPDX-License-Identifier: Apache-2.0
// Control API, request log, keep-alive, port selection and starting from different contexts.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use metering_emulator::*;
use serde_json::{json, Value};

#[tokio::test]
async fn control_api() {
    let emu = start();
    let r = control(&emu, "GET", "/_emulator/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["status"], "ok");
    assert_eq!(r.json["port"], emu.port());
    assert!(r.request_id.is_some());

    call(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-1", "users", 2)]),
    )
    .await
    .expect_ok();
    let r = control(&emu, "GET", "/_emulator/ledger", None).await;
    let ledger: Vec<LedgerEntry> = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!(ledger, emu.ledger());
    assert_eq!(ledger.len(), 1);

    let r = control(&emu, "GET", "/_emulator/requests", None).await;
    let log: Vec<RequestLogEntry> = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!(log.len(), 1, "control calls are not logged");
    assert_eq!(log[0].operation.as_deref(), Some("BatchMeterUsage"));
    assert_eq!(
        log[0].target.as_deref(),
        Some("AWSMPMeteringService.BatchMeterUsage")
    );
    assert_eq!(log[0].status, 200);
    assert!(log[0].signature_ok);
    assert!(log[0].header_names.contains(&"authorization".to_string()));
    assert!(log[0].body.contains("cust-1"));
    assert_eq!(log[0].request_id.len(), 36);

    // Faults: one or an array.
    let r = control(
        &emu,
        "POST",
        "/_emulator/faults",
        Some(json!({"kind": "throttle"})),
    )
    .await;
    assert_eq!(r.json["queued"], 1);
    let r = control(
        &emu,
        "POST",
        "/_emulator/faults",
        Some(
            json!([{"kind": "delay", "seconds": 0.01}, {"kind": "partial", "count": 1},
        {"kind": "error", "status": 400, "code": "X", "message": "m", "namespaced": true}]),
        ),
    )
    .await;
    assert_eq!(r.json["queued"], 3);
    let pending = emu.pending_faults();
    assert_eq!(pending[0], Fault::Throttle);
    assert_eq!(pending[1], Fault::Delay { seconds: 0.01 });
    assert_eq!(
        pending[3],
        Fault::Error {
            status: 400,
            code: "X".into(),
            message: "m".into(),
            namespaced: true
        }
    );
    let r = control(
        &emu,
        "POST",
        "/_emulator/faults",
        Some(json!({"kind": "nope"})),
    )
    .await;
    assert_eq!(r.status, 400);

    // Reset.
    let r = control(&emu, "POST", "/_emulator/reset", None).await;
    assert_eq!(r.status, 200);
    assert!(emu.ledger().is_empty());
    assert!(emu.requests().is_empty());
    assert!(emu.pending_faults().is_empty());
    // Dedup tables are gone too: the same record bills again with a new id.
    call(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-1", "users", 2)]),
    )
    .await
    .expect_ok();
    assert_eq!(emu.ledger().len(), 1);
    assert_ne!(
        emu.ledger()[0].metering_record_id,
        ledger[0].metering_record_id
    );

    // State replacement.
    let mut cfg = EmulatorConfig::default();
    cfg.products[0].dimensions = vec!["cpu".into()];
    cfg.credentials = vec![CredentialConfig {
        access_key_id: "NEWKEY".into(),
        secret_access_key: "newsecret".into(),
        session_token: None,
        account_id: None,
        expires_at: None,
        instance: None,
    }];
    let r = control(
        &emu,
        "PUT",
        "/_emulator/state",
        Some(serde_json::to_value(&cfg).unwrap()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["port"], emu.port());
    call(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-1", "cpu", 1)]),
    )
    .await
    .expect_error(400, "UnrecognizedClientException");
    let new = Signer {
        access_key_id: "NEWKEY".into(),
        secret_access_key: "newsecret".into(),
        ..Default::default()
    };
    call_as(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-1", "cpu", 1)]),
        &new,
    )
    .await
    .expect_ok();
    call_as(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-1", "users", 1)]),
        &new,
    )
    .await
    .expect_error(400, "InvalidUsageDimensionException");
    let r = control(&emu, "GET", "/_emulator/state", None).await;
    assert_eq!(r.json["products"][0]["dimensions"], json!(["cpu"]));
    let r = control(
        &emu,
        "PUT",
        "/_emulator/state",
        Some(json!({"products": 5})),
    )
    .await;
    assert_eq!(r.status, 400);
    // Partial JSON takes defaults for the rest.
    let r = control(
        &emu,
        "PUT",
        "/_emulator/state",
        Some(json!({"max_past_secs": 60})),
    )
    .await;
    assert_eq!(r.status, 200);
    call(&emu, "BatchMeterUsage", batch(vec![json!({"Timestamp": now() - 120.0, "CustomerIdentifier": "cust-9", "Dimension": "users"})])).await
        .expect_error(400, "TimestampOutOfBoundsException");

    // Unknown control paths and methods.
    assert_eq!(
        control(&emu, "GET", "/_emulator/nothing", None)
            .await
            .status,
        404
    );
    let r = control(&emu, "DELETE", "/_emulator/ledger", None).await;
    assert_eq!(r.status, 405);
    assert!(r.request_id.is_some());
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let emu = start();
    let port = emu.port();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..5 {
        let req = Req::op(
            port,
            "BatchMeterUsage",
            &batch(vec![record(&format!("cust-{}", i + 1), "users", 1)]),
        )
        .sign(port, &Signer::default());
        stream.write_all(&to_wire(&req)).unwrap();
        let (status, head, body) = read_response(&mut stream).unwrap();
        assert_eq!(status, 200, "{head}{body}");
        assert!(head.to_ascii_lowercase().contains("x-amzn-requestid:"));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["Results"][0]["Status"], "Success");
    }
    // An error answer keeps the connection open too.
    let req = Req::op(port, "Nope", &json!({})).sign(port, &Signer::default());
    stream.write_all(&to_wire(&req)).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().0, 400);
    let req = Req::op(
        port,
        "ResolveCustomer",
        &json!({"RegistrationToken": "reg-token-valid"}),
    )
    .sign(port, &Signer::default());
    stream.write_all(&to_wire(&req)).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().0, 200);
    assert_eq!(emu.ledger().len(), 5);
}

#[test]
fn port_zero_picks_distinct_free_ports_and_a_fixed_port_works() {
    let a = start();
    let b = start();
    assert_ne!(a.port(), 0);
    assert_ne!(a.port(), b.port());
    assert_eq!(a.endpoint(), format!("http://127.0.0.1:{}", a.port()));
    let port = b.port();
    b.shutdown();
    // The port is free again after shutdown.
    let cfg = EmulatorConfig {
        port,
        ..Default::default()
    };
    let c = Emulator::start(cfg).unwrap();
    assert_eq!(c.port(), port);
    // Binding a busy port fails cleanly.
    let busy = EmulatorConfig {
        port: a.port(),
        ..Default::default()
    };
    assert!(Emulator::start(busy).is_err());
}

#[test]
fn starts_from_plain_threads_and_inside_a_runtime() {
    let handles: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let emu = start();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    call(
                        &emu,
                        "ResolveCustomer",
                        json!({"RegistrationToken": "reg-token-valid"}),
                    )
                    .await
                    .expect_ok();
                });
                drop(emu);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        call(
            &emu,
            "ResolveCustomer",
            json!({"RegistrationToken": "reg-token-valid"}),
        )
        .await
        .expect_ok();
        drop(emu); // dropping inside the runtime is fine
        let emu = tokio::task::spawn_blocking(start).await.unwrap();
        call(
            &emu,
            "ResolveCustomer",
            json!({"RegistrationToken": "reg-token-valid"}),
        )
        .await
        .expect_ok();
        emu.shutdown();
    });
}

#[tokio::test(flavor = "current_thread")]
async fn request_log_is_bounded() {
    let cfg = EmulatorConfig {
        request_log_limit: 3,
        ..Default::default()
    };
    let emu = Emulator::start(cfg).unwrap();
    for _ in 0..5 {
        call(
            &emu,
            "ResolveCustomer",
            json!({"RegistrationToken": "reg-token-valid"}),
        )
        .await;
    }
    assert_eq!(emu.requests().len(), 3);
}

#[test]
fn config_from_json_file() {
    let dir = std::env::temp_dir().join(format!("emu-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        r#"{"region": "eu-central-1", "products": [{"product_code": "p-x", "dimensions": ["d"]}]}"#,
    )
    .unwrap();
    let cfg = EmulatorConfig::from_json_file(&path).unwrap();
    assert_eq!(cfg.region, "eu-central-1");
    assert_eq!(cfg.products.len(), 1);
    assert!(cfg.products[0].entitled);
    assert_eq!(cfg.credentials, EmulatorConfig::default().credentials);
    std::fs::write(&path, "{nope").unwrap();
    assert!(EmulatorConfig::from_json_file(&path).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

// SPDX-License-Identifier: Apache-2.0
// The metering-emulator binary: port line, flags, SIGTERM and persistence across restarts.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use metering_emulator::*;
use serde_json::json;

struct Proc {
    child: Child,
    port: u16,
}

fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_metering-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("METERING_EMULATOR_PORT=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Proc { child, port }
}

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "emulator did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call_port(port: u16, op: &str, body: serde_json::Value, signer: &Signer) -> Resp {
    send(&client(), Req::op(port, op, &body).sign(port, signer))
        .await
        .unwrap()
}

async fn ledger(port: u16) -> Vec<LedgerEntry> {
    control_list(port, "ledger").await
}

async fn control_list(port: u16, what: &str) -> Vec<LedgerEntry> {
    let text = client()
        .get(format!("http://127.0.0.1:{port}/_emulator/{what}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn binary_prints_port_serves_and_exits_cleanly_on_sigterm_and_sigint() {
    let mut p = spawn(&["--port", "0"]);
    call_port(
        p.port,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-valid"}),
        &Signer::default(),
    )
    .await
    .expect_ok();
    p.signal("-TERM");
    assert!(p.wait_exit().success());

    let mut p = spawn(&[]);
    p.signal("-INT");
    assert!(p.wait_exit().success());
}

#[tokio::test]
async fn binary_flags_and_config_file() {
    let dir = tempdir("flags");
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"products": [{"product_code": "p-file", "dimensions": ["seats"]}]}"#,
    )
    .unwrap();
    let p = spawn(&[
        "--config",
        cfg.to_str().unwrap(),
        "--region",
        "eu-west-1",
        "--access-key-id",
        "AKIDFLAG",
        "--secret-access-key",
        "flagsecret",
        "--max-past-secs",
        "100",
    ]);
    let s = Signer {
        access_key_id: "AKIDFLAG".into(),
        secret_access_key: "flagsecret".into(),
        region: "eu-west-1".into(),
        ..Default::default()
    };
    let rec = |ts: f64| json!({"ProductCode": "p-file", "UsageRecords": [{"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "seats"}]});
    // Customers come from defaults; cust-1 is not subscribed to p-file.
    let r = call_port(p.port, "BatchMeterUsage", rec(now()), &s).await;
    assert_eq!(
        r.expect_ok()["Results"][0]["Status"],
        "CustomerNotSubscribed"
    );
    call_port(p.port, "BatchMeterUsage", rec(now() - 200.0), &s)
        .await
        .expect_error(400, "TimestampOutOfBoundsException");
    // The default identity still works, but only in the configured region.
    let d = Signer {
        region: "eu-west-1".into(),
        ..Default::default()
    };
    call_port(
        p.port,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-valid"}),
        &d,
    )
    .await
    .expect_ok();
    call_port(
        p.port,
        "ResolveCustomer",
        json!({"RegistrationToken": "reg-token-valid"}),
        &Signer::default(),
    )
    .await
    .expect_error(403, "InvalidSignatureException");

    let out = Command::new(env!("CARGO_BIN_EXE_metering-emulator"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_metering-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--state-dir"));
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "emu-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn state_dir_keeps_ledger_dedup_and_tokens_across_restarts() {
    let dir = tempdir("state");
    let d = dir.to_str().unwrap();
    let s = Signer::default();
    let t = now() as i64;
    let recs = json!({"ProductCode": PRODUCT_CODE, "UsageRecords": [
        {"Timestamp": t, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 3},
        {"Timestamp": t, "CustomerAWSAccountId": CUSTOMER_AWS_ACCOUNT_ID, "LicenseArn": LICENSE_ARN, "Dimension": "gb", "Quantity": 4}]});
    let mu = json!({"ProductCode": PRODUCT_CODE, "Timestamp": t, "UsageDimension": "requests", "UsageQuantity": 9, "ClientToken": "tok-persist"});

    let mut p = spawn(&["--port", "0", "--state-dir", d]);
    let first = call_port(p.port, "BatchMeterUsage", recs.clone(), &s).await;
    let ids: Vec<_> = first.expect_ok()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["MeteringRecordId"].clone())
        .collect();
    let mu_id = call_port(p.port, "MeterUsage", mu.clone(), &s)
        .await
        .expect_ok()["MeteringRecordId"]
        .clone();
    let before = ledger(p.port).await;
    assert_eq!(before.len(), 3);
    p.signal("-TERM");
    assert!(p.wait_exit().success());

    // Restart (after a clean exit): same ledger, same ids for repeats, conflicts still detected.
    let p = spawn(&["--state-dir", d]);
    assert_eq!(ledger(p.port).await, before);
    let again = call_port(p.port, "BatchMeterUsage", recs.clone(), &s).await;
    let ids2: Vec<_> = again.expect_ok()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["MeteringRecordId"].clone())
        .collect();
    assert_eq!(ids, ids2);
    assert_eq!(
        call_port(p.port, "MeterUsage", mu.clone(), &s)
            .await
            .expect_ok()["MeteringRecordId"],
        mu_id
    );
    let mut conflict = mu.clone();
    conflict["UsageQuantity"] = 10.into();
    call_port(p.port, "MeterUsage", conflict, &s)
        .await
        .expect_error(400, "IdempotencyConflictException");
    let mut dup = recs.clone();
    dup["UsageRecords"][0]["Quantity"] = 5.into();
    let r = call_port(p.port, "BatchMeterUsage", dup, &s).await;
    assert_eq!(r.expect_ok()["Results"][0]["Status"], "DuplicateRecord");
    call_port(
        p.port,
        "BatchMeterUsage",
        batch(vec![record("cust-7", "users", 1)]),
        &s,
    )
    .await
    .expect_ok();
    let after = ledger(p.port).await;
    assert_eq!(after.len(), 4);
    // The idempotency conflict (10) and the duplicate (5) were refused and kept apart.
    let refused = control_list(p.port, "duplicates").await;
    let quantities: Vec<i64> = refused.iter().map(|e| e.quantity).collect();
    assert_eq!(quantities, [10, 5]);
    drop(p); // SIGKILL: nothing is lost, every billed batch was fsync'd

    // A torn last line (crash mid-write) is dropped on load.
    let journal = Path::new(d).join("journal.jsonl");
    let mut text = std::fs::read(&journal).unwrap();
    text.extend_from_slice(b"{\"ledger\":[{\"operation\":\"Batch");
    std::fs::write(&journal, text).unwrap();
    let p = spawn(&["--state-dir", d]);
    assert_eq!(ledger(p.port).await, after);
    assert_eq!(control_list(p.port, "duplicates").await, refused);
    // Reset clears the persisted state too.
    client()
        .post(format!("http://127.0.0.1:{}/_emulator/reset", p.port))
        .send()
        .await
        .unwrap();
    drop(p);
    let p = spawn(&["--state-dir", d]);
    assert!(ledger(p.port).await.is_empty());
    drop(p);

    // In-process with config.state_dir as well.
    let cfg = EmulatorConfig {
        state_dir: Some(dir.clone()),
        ..Default::default()
    };
    let emu = Emulator::start(cfg.clone()).unwrap();
    call(
        &emu,
        "BatchMeterUsage",
        batch(vec![record("cust-8", "users", 1)]),
    )
    .await
    .expect_ok();
    let l = emu.ledger();
    emu.shutdown();
    let emu = Emulator::start(cfg).unwrap();
    assert_eq!(emu.ledger(), l);
    drop(emu);
    let _ = std::fs::remove_dir_all(dir);
}

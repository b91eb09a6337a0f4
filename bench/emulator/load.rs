// SPDX-License-Identifier: Apache-2.0
// Load generator: one signed 25-record BatchMeterUsage blasted over N keep-alive connections.

//! Measures BatchMeterUsage calls per second against the emulator.
//!
//! ```text
//! cargo run --release -p metering-emulator --example load -- --connections 8 --seconds 5
//! ```
//!
//! Without `--port` it starts an emulator in-process (its own two-worker runtime);
//! with `--port N` it targets an emulator already listening on 127.0.0.1:N (default
//! credentials and region). The request is signed once; its 25 records (cust-1..cust-25,
//! dimension `users`) are billed by the first call and de-duplicated afterwards, which is
//! the cost of a client retrying. Every answer is checked for status 200.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use metering_emulator::{
    Emulator, EmulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_REGION, DEFAULT_SECRET_ACCESS_KEY,
    PRODUCT_CODE,
};

// The same allocator as the metering-emulator binary, so the in-process figure matches it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    connections: usize,
    seconds: f64,
    port: Option<u16>,
    client_threads: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        connections: 8,
        seconds: 5.0,
        port: None,
        client_threads: 1,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--port" => a.port = Some(v.parse().expect("--port N")),
            "--client-threads" => a.client_threads = v.parse().expect("--client-threads N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn signed_request(port: u16) -> http::Request<Bytes> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let records: Vec<_> = (1..=25)
        .map(|i| {
            serde_json::json!({"Timestamp": now, "CustomerIdentifier": format!("cust-{i}"),
                "Dimension": "users", "Quantity": i})
        })
        .collect();
    let body = serde_json::to_vec(
        &serde_json::json!({"ProductCode": PRODUCT_CODE, "UsageRecords": records}),
    )
    .unwrap();
    let host = format!("127.0.0.1:{port}");
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "AWSMPMeteringService.BatchMeterUsage"),
    ];
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "load",
        )
        .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(DEFAULT_REGION)
        .name("aws-marketplace")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://{host}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(&body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut b = http::Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        b = b.header(k, v);
    }
    let mut req = b.body(Bytes::from(body)).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    req
}

async fn worker(
    port: u16,
    template: Arc<http::Request<Bytes>>,
    deadline: Instant,
    ok: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    while Instant::now() < deadline {
        let mut req = http::Request::new(Full::new(template.body().clone()));
        *req.method_mut() = template.method().clone();
        *req.uri_mut() = template.uri().clone();
        *req.headers_mut() = template.headers().clone();
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(_) => {
                bad.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|c| c.to_bytes());
        if status == 200 && body.is_ok() {
            ok.fetch_add(1, Ordering::Relaxed);
        } else {
            bad.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() {
    let args = parse_args();
    let emulator = match args.port {
        Some(_) => None,
        None => Some(Emulator::start(EmulatorConfig::default()).expect("start emulator")),
    };
    let port = args
        .port
        .unwrap_or_else(|| emulator.as_ref().map(Emulator::port).unwrap_or(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .unwrap();
    let template = Arc::new(signed_request(port));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let run = |secs: f64, ok: Arc<AtomicU64>, bad: Arc<AtomicU64>| {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let started = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..args.connections)
                .map(|_| {
                    tokio::spawn(worker(
                        port,
                        template.clone(),
                        deadline,
                        ok.clone(),
                        bad.clone(),
                    ))
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        started.elapsed().as_secs_f64()
    };
    // Warm-up (also bills the 25 records once).
    run(
        0.5,
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let elapsed = run(args.seconds, ok.clone(), bad.clone());
    let n = ok.load(Ordering::Relaxed);
    println!(
        "BatchMeterUsage x25: {n} calls in {elapsed:.2}s over {} keep-alive connections = {:.0} calls/s ({:.0} records/s), {} non-200",
        args.connections,
        n as f64 / elapsed,
        25.0 * n as f64 / elapsed,
        bad.load(Ordering::Relaxed)
    );
    if let Some(e) = emulator {
        assert_eq!(e.ledger().len(), 25, "only the first call bills");
    }
}

// Bench client for aws-sdk-marketplacemetering (Rust). Follows the contract in
// bench/peers/README.md: env BENCH_ENDPOINT, BENCH_CALLS, BENCH_CONCURRENCY,
// BENCH_WARMUP; prints one JSON line on stdout.
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_marketplacemetering::config::Credentials;
use aws_sdk_marketplacemetering::primitives::DateTime;
use aws_sdk_marketplacemetering::types::UsageRecord;
use aws_sdk_marketplacemetering::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn records() -> Vec<UsageRecord> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let ts = DateTime::from_secs(now - now % 3600);
    (0..25)
        .map(|i| {
            UsageRecord::builder()
                .timestamp(ts)
                .customer_identifier(format!("c-{i}"))
                .dimension("users")
                .quantity(1)
                .build()
                .expect("usage record")
        })
        .collect()
}

async fn one_call(client: &Client, recs: &[UsageRecord]) {
    let out = client
        .batch_meter_usage()
        .product_code("prod-123")
        .set_usage_records(Some(recs.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| {
            eprintln!("call failed: {:?}", e);
            std::process::exit(1)
        });
    if out.results().len() != 25 {
        eprintln!("unexpected result count {}", out.results().len());
        std::process::exit(1);
    }
}

async fn run(client: &Client, recs: &Arc<Vec<UsageRecord>>, calls: usize, conc: usize) {
    if conc <= 1 {
        for _ in 0..calls {
            one_call(client, recs).await;
        }
        return;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(conc);
    for _ in 0..conc {
        let (client, recs, next) = (client.clone(), recs.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                one_call(&client, &recs).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--info") {
        // Footprint is measured by the wrapper script (binary size).
        println!("{{\"client\":\"aws-sdk-rust\"}}");
        return;
    }
    let endpoint = std::env::var("BENCH_ENDPOINT").expect("BENCH_ENDPOINT");
    let calls = env_usize("BENCH_CALLS", 2000);
    let conc = env_usize("BENCH_CONCURRENCY", 1).max(1);
    let warmup = env_usize("BENCH_WARMUP", 50);

    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLEBENCH0000",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "bench-static",
        ))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let client = Client::new(&conf);
    let recs = Arc::new(records());

    if warmup > 0 {
        run(&client, &recs, warmup, conc).await;
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    run(&client, &recs, calls, conc).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"calls\":{},\"seconds\":{:.6},\"calls_per_sec\":{:.2},\"concurrency\":{},\"warmup\":{},\"cpu_seconds\":{:.6}}}",
        calls,
        secs,
        calls as f64 / secs,
        conc,
        warmup,
        cpu
    );
}

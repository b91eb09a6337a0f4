// SPDX-License-Identifier: Apache-2.0
//! The fleet store's benchmark: `record()` from 8 replica processes into one private
//! PostgreSQL (fsync on), then 10,000 customer-hours flushed against the emulator.
//!
//! ```text
//! MM_BENCH_SECONDS=5 MM_BENCH_THREADS=8 cargo run --release -p marketplace-metering --features fleet --example fleet_bench
//! ```
//!
//! `MM_BENCH_THREADS` (default 8) is how many threads of each replica call `record()` at
//! once: a replica serving requests concurrently (a threaded web server) has many callers
//! waiting on one group commit, and a group commit's throughput is callers / commit latency.
//!
//! Prints events/s and p50/p99 `record()` latency for group commit (uniform customers and one
//! hot customer) and durable commits, and the flush time. Each replica is this binary run
//! again with `MM_BENCH_ROLE=replica`.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marketplace_metering::meter::{Customer, Durability, MeterConfig, Store};
use marketplace_metering::{Client, Config, UsageMeter};
use metering_emulator::{Emulator, EmulatorConfig};

const REPLICAS: usize = 8;

fn threads() -> usize {
    std::env::var("MM_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}
const H: i64 = 3600;

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/private-postgres.sh")
}

fn pg(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn client(endpoint: &str) -> Client {
    Client::new(
        Config::builder()
            .region(metering_emulator::DEFAULT_REGION)
            .endpoint_url(endpoint)
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
                None,
            )
            .build()
            .unwrap(),
    )
}

fn hour_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / H
        * H
}

/// A replica: `threads()` threads call record() for `secs`; prints "count p50_us p99_us".
fn replica() {
    let env = |k: &str| std::env::var(k).unwrap();
    let durability: Durability = env("MM_BENCH_DURABILITY").parse().unwrap();
    let hot = env("MM_BENCH_HOT") == "1";
    let secs: u64 = env("MM_BENCH_SECONDS").parse().unwrap();
    let id = env("MM_BENCH_REPLICA");
    let at = hour_now() + 60;
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(client("http://127.0.0.1:9"))
            .store(Store::postgres(env("MM_BENCH_URL")))
            .product_code(metering_emulator::PRODUCT_CODE)
            .replica_id(id.clone())
            .durability(durability)
            .flush_interval(Duration::ZERO)
            .clock(Arc::new(move || at))
            .build()
            .unwrap(),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..threads() {
        let (m, stop) = (meter.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut rng = fastrand::Rng::with_seed(t as u64);
            while !stop.load(Ordering::Relaxed) {
                let c = if hot { 1 } else { 1 + rng.usize(..1000) };
                let s = Instant::now();
                m.record(
                    Customer::identifier(format!("c{c}")),
                    "users",
                    1,
                    None,
                    None,
                )
                .unwrap();
                lat.push(s.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let p = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!("{} {} {}", all.len(), p(0.5), p(0.99));
}

fn run(url: &str, durability: &str, hot: bool, secs: u64) -> (f64, u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..REPLICAS)
        .map(|i| {
            Command::new(&exe)
                .env("MM_BENCH_ROLE", "replica")
                .env("MM_BENCH_URL", url)
                .env("MM_BENCH_DURABILITY", durability)
                .env("MM_BENCH_HOT", if hot { "1" } else { "0" })
                .env("MM_BENCH_SECONDS", secs.to_string())
                .env("MM_BENCH_REPLICA", format!("{durability}-{hot}-{i}"))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut n, mut p50, mut p99) = (0u64, 0u64, 0u64);
    for c in children {
        let out = c.wait_with_output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
        n += v[0];
        p50 = p50.max(v[1]);
        p99 = p99.max(v[2]);
    }
    (n as f64 / secs as f64, p50, p99)
}

/// What PostgreSQL alone commits on this machine, with the replicas' 8 concurrent commit
/// streams (pgbench, 8 clients, prepared statements, the same cluster and settings): a
/// one-row INSERT per commit (the floor of any durable write), and the store's writes of 8
/// entries for 8 of 1,000 customers, a group commit's batch at 8 threads: into partial rows
/// (`mm_add_v1`, two releases back) and into the journal (`mm_add_v2`, the previous
/// release's; this release's `mm_add_v3` journals as it does).
fn postgres_alone(d: &str, secs: u64) {
    let url = pg(&["createdb", d, "alone"]);
    drop(
        UsageMeter::new(
            MeterConfig::builder()
                .client(client("http://127.0.0.1:9"))
                .store(Store::postgres(&url))
                .product_code(metering_emulator::PRODUCT_CODE)
                .build()
                .unwrap(),
        )
        .unwrap(),
    );
    let n = 8;
    let list = |f: &dyn Fn(usize) -> String| {
        format!("ARRAY[{}]", (0..n).map(f).collect::<Vec<_>>().join(","))
    };
    let add = |call: &str, extra: &str| {
        let mut add = String::from("\\set seq random(1, 1000000000000)\n");
        for i in 0..n {
            add += &format!("\\set c{i} random(1, 1000)\n");
        }
        add += &format!(
            "SELECT {call}('alone' || :client_id, 's', :seq, 'p', 3600, '{{3600}}', '{{1}}', \
             {}, {}, {}, {}, \
             {}::int8[], {}::int8[], '{{}}'::int4[], '{{}}'::text[], '{{}}'::int8[]{extra});\n",
            list(&|_| "''".into()),
            list(&|_| "'C'".into()),
            list(&|i| format!("'c' || :c{i}")),
            list(&|_| "'users'".into()),
            list(&|_| "3600".into()),
            list(&|_| "1".into()),
        );
        add
    };
    let scripts = [
        (
            "one-row INSERT",
            1,
            "\\set seq random(1, 1000000000000)\n\
             INSERT INTO mm_commits (replica, session, seq) \
             VALUES ('floor' || :client_id, 's', :seq) ON CONFLICT DO NOTHING;\n"
                .to_owned(),
        ),
        ("mm_add_v1 of 8 entries", n, add("mm_add_v1", "")),
        (
            "mm_add_v2 journal of 8",
            n,
            add("mm_add_v2", ", true, '{}'::int8[]"),
        ),
    ];
    for (name, events, script) in scripts {
        let file = std::path::Path::new(d).join("pgbench.sql");
        std::fs::write(&file, script).unwrap();
        let out = pg(&[
            "pgbench",
            d,
            "alone",
            "-n",
            "-c",
            "8",
            "-j",
            "2",
            "-M",
            "prepared",
            "-T",
            &secs.to_string(),
            "-f",
            file.to_str().unwrap(),
        ]);
        let tps: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        println!(
            "PostgreSQL alone, {name:22} {:>7.0} commits/s = {:>7.0} events/s (pgbench, 8 clients)",
            tps,
            tps * events as f64
        );
    }
}

fn main() {
    if std::env::var("MM_BENCH_ROLE").as_deref() == Ok("replica") {
        replica();
        return;
    }
    let secs: u64 = std::env::var("MM_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("mm-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_owned();
    pg(&["start", &d]);
    let result = std::panic::catch_unwind(|| {
        let bin = pg(&["bin"]);
        let fsync = Command::new(format!("{bin}/pg_test_fsync"))
            .args(["-s", "1", "-f"])
            .arg(dir.join("fsync.test"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if let Some(line) = fsync
            .lines()
            .find(|l| l.contains("fdatasync") && l.contains("ops/sec"))
        {
            println!("pg_test_fsync: {}", line.trim());
        }
        println!(
            "{REPLICAS} replica processes x {} threads, {secs} s each",
            threads()
        );
        for (name, durability, hot) in [
            ("group, uniform", "group", false),
            ("group, one hot customer", "group", true),
            ("durable, uniform", "durable", false),
        ] {
            let db = format!("b{}", name.len() + hot as usize);
            let url = pg(&["createdb", &d, &db]);
            let (rate, p50, p99) = run(&url, durability, hot, secs);
            // Each write transaction leaves one commit key: events per commit is the batch.
            let commits: f64 = pg(&["psql", &d, &db, "-tAc", "SELECT count(*) FROM mm_commits"])
                .parse()
                .unwrap_or(f64::NAN);
            println!(
                "{name:26} {rate:>9.0} events/s  p50 {:.2} ms  p99 {:.2} ms  {:.1} events/commit",
                p50 as f64 / 1000.0,
                p99 as f64 / 1000.0,
                rate * secs as f64 / commits
            );
        }
        postgres_alone(&d, secs);
        // 10,000 customer-hours flushed against the emulator.
        let url = pg(&["createdb", &d, "flush"]);
        // 5,000 subscribed customers x 2 dimensions, one hour: 10,000 customer-hours.
        let mut cfg = EmulatorConfig::default();
        for i in 0..5000 {
            cfg.customers.push(metering_emulator::CustomerConfig {
                customer_identifier: format!("bench-{i}"),
                customer_aws_account_id: None,
                subscribed_products: vec![metering_emulator::PRODUCT_CODE.into()],
            });
        }
        let emu = Emulator::start(cfg).unwrap();
        let b = hour_now() - H;
        let clock = Arc::new(std::sync::atomic::AtomicI64::new(b + 60));
        let c2 = clock.clone();
        let meter = UsageMeter::new(
            MeterConfig::builder()
                .client(client(&emu.endpoint()))
                .store(Store::postgres(&url))
                .product_code(metering_emulator::PRODUCT_CODE)
                .durability(Durability::Memory)
                .flush_interval(Duration::ZERO)
                .clock(Arc::new(move || c2.load(Ordering::SeqCst)))
                .build()
                .unwrap(),
        )
        .unwrap();
        for i in 0..5000 {
            for dim in ["users", "gb"] {
                meter
                    .record(
                        Customer::identifier(format!("bench-{i}")),
                        dim,
                        1,
                        None,
                        None,
                    )
                    .unwrap();
            }
        }
        meter.write_buffered().unwrap();
        clock.store(hour_now() + 600, Ordering::SeqCst);
        let started = Instant::now();
        let s = meter.flush_blocking().unwrap();
        println!(
            "flush: {} buckets sealed, {} acked in {} calls, {:.2} s",
            s.sealed,
            s.acked,
            s.calls,
            started.elapsed().as_secs_f64()
        );
    });
    pg(&["stop", &d]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

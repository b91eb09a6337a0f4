// SPDX-License-Identifier: Apache-2.0
// Fleet chaos: 8 replica processes record a seeded event stream into one PostgreSQL across
// several (simulated) hours while replicas are SIGKILLed and restarted, their connections
// are terminated and the server is restarted in immediate mode once. After a drain the
// emulator's ledger must match what record() acknowledged.
//
// Replicas are this test binary run again (`replica_process`, selected by MM_FLEET_ROLE);
// each journals every acknowledged record() to its own file, fsynced, before the next.
// MM_FLEET_KILLS sets how many SIGKILLs (default 12).
//
// With MM_FLEET_PYTHON naming an interpreter that imports `marketplace_metering`, replicas
// 1 and 5 are `fleet_replica.py` instead: the Python face's fleet meter, same environment,
// same seeded stream, same clock and journal, SIGKILLed and restarted like the others (every
// third kill targets one of them), so the ledger-vs-journal check below covers them.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{Customer, Durability, MeterConfig, Store};
use marketplace_metering::{Client, UsageMeter};
use metering_emulator::{Emulator, EmulatorConfig};

mod support;
use support::pg;

const H: i64 = 3600;
/// Simulated seconds per real second (`MM_FLEET_SPEED`, default 600: an hour passes in
/// 6 s). A long run slows it so kills are spread over more time.
fn speed() -> i64 {
    std::env::var("MM_FLEET_SPEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(600)
}
/// Simulated hours the stream covers.
const HOURS: i64 = 4;
const REPLICAS: usize = 8;
/// The replicas run by `MM_FLEET_PYTHON` when it is set.
const PYTHON_REPLICAS: [usize; 2] = [1, 5];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn client(endpoint: &str) -> Client {
    Client::new(support::config(endpoint).build().unwrap())
}

/// The simulated clock every replica shares: `start` (epoch seconds) at `t0_ms`, then
/// [`SPEED`] times real time.
fn sim_clock(start: i64, t0_ms: i64) -> impl Fn() -> i64 + Send + Sync {
    let speed = speed();
    move || start + (now_ms() - t0_ms) * speed / 1000
}

/// One replica: records until its clock passes the stream's end, journaling each
/// acknowledged event ("customer hour quantity", fsynced) before the next.
#[test]
fn replica_process() {
    if std::env::var("MM_FLEET_ROLE").as_deref() != Ok("replica") {
        return; // only as a child of the chaos test
    }
    let env = |k: &str| std::env::var(k).unwrap();
    let start: i64 = env("MM_FLEET_START").parse().unwrap();
    let t0: i64 = env("MM_FLEET_T0").parse().unwrap();
    let end: i64 = env("MM_FLEET_END").parse().unwrap();
    let seed: u64 = env("MM_FLEET_SEED").parse().unwrap();
    let clock = Arc::new(sim_clock(start, t0));
    let c2 = clock.clone();
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(client(&env("MM_FLEET_ENDPOINT")))
            .store(Store::postgres(env("MM_FLEET_URL")))
            .product_code(metering_emulator::PRODUCT_CODE)
            .replica_id(env("MM_FLEET_REPLICA"))
            .durability(Durability::Durable)
            .grace(Duration::from_secs(300))
            .fleet_lease(Duration::from_secs(1))
            .flush_interval(Duration::from_millis(200))
            .clock(Arc::new(move || c2()))
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env("MM_FLEET_JOURNAL"))
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    while clock() < end {
        let c = 1 + rng.usize(..10);
        let q = rng.i64(1..=5);
        let t = clock();
        match meter.record(
            Customer::identifier(format!("cust-{c}")),
            "users",
            q,
            None,
            None,
        ) {
            Ok(()) => {
                writeln!(journal, "cust-{c} {} {q}", t / H * H).unwrap();
                journal.sync_data().unwrap();
            }
            Err(e) => panic!("record() failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Replica {
    child: Child,
    generation: usize,
}

#[test]
fn eight_replicas_survive_kills_cut_connections_and_a_server_restart() {
    if std::env::var("MM_FLEET_ROLE").is_ok() {
        return;
    }
    let kills: usize = std::env::var("MM_FLEET_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let cluster = pg::Cluster::start();
    let url = cluster.database();
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = cluster.dir.join("journals");
    std::fs::create_dir_all(&dir).unwrap();
    let real_hour = (now_ms() / 1000) / H * H;
    let start = real_hour - (HOURS + 1) * H + 60;
    let end = real_hour - H - 600;
    let t0 = now_ms();
    // The stream lasts (end - start) / SPEED real seconds; kills are spread over it.
    let run_ms = (end - start) * 1000 / speed();
    let exe = std::env::current_exe().unwrap();
    let python = std::env::var_os("MM_FLEET_PYTHON").filter(|p| !p.is_empty());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fleet_replica.py");
    let spawn = |i: usize, generation: usize| -> Replica {
        let mut cmd = match &python {
            Some(py) if PYTHON_REPLICAS.contains(&i) => {
                let mut c = Command::new(py);
                c.arg(&script)
                    .env("MM_FLEET_REGION", metering_emulator::DEFAULT_REGION)
                    .env("MM_FLEET_KEY_ID", metering_emulator::DEFAULT_ACCESS_KEY_ID)
                    .env(
                        "MM_FLEET_SECRET",
                        metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
                    )
                    .env("MM_FLEET_PRODUCT", metering_emulator::PRODUCT_CODE);
                c
            }
            _ => {
                let mut c = Command::new(&exe);
                c.args([
                    "--exact",
                    "replica_process",
                    "--nocapture",
                    "--test-threads=1",
                ]);
                c
            }
        };
        let child = cmd
            .env("MM_FLEET_ROLE", "replica")
            .env("MM_FLEET_URL", &url)
            .env("MM_FLEET_ENDPOINT", emu.endpoint())
            .env("MM_FLEET_START", start.to_string())
            .env("MM_FLEET_T0", t0.to_string())
            .env("MM_FLEET_END", end.to_string())
            .env("MM_FLEET_SEED", (i * 1000 + generation).to_string())
            .env("MM_FLEET_REPLICA", format!("r{i}-{generation}"))
            .env(
                "MM_FLEET_JOURNAL",
                dir.join(format!("r{i}-{generation}.log")),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Replica { child, generation }
    };
    let mut replicas: Vec<Replica> = (0..REPLICAS).map(|i| spawn(i, 0)).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let started = Instant::now();
    let run = Duration::from_millis(run_ms as u64);
    let (mut killed, mut python_kills) = (0usize, 0usize);
    let terminated = AtomicUsize::new(0);
    let restarted = AtomicBool::new(false);
    let stream_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Connection cuts (about one per four kills) and the server restart at half time run
        // beside the kills, so a slow psql never delays a kill.
        scope.spawn(|| {
            let mut rng = fastrand::Rng::with_seed(11);
            let every = run_ms as u64 / (kills as u64 / 4 + 2);
            while !stream_done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(
                    (every / 2 + rng.u64(..every.max(1))).max(50),
                ));
                if stream_done.load(Ordering::SeqCst) {
                    break;
                }
                cluster.terminate_backends(&url);
                terminated.fetch_add(1, Ordering::SeqCst);
                if !restarted.load(Ordering::SeqCst)
                    && started.elapsed() > Duration::from_millis(run_ms as u64 / 2)
                {
                    cluster.restart();
                    restarted.store(true, Ordering::SeqCst);
                }
            }
        });
        while started.elapsed() < run && killed < kills {
            // The kills left spread over the time left: a kill and its respawn take time of
            // their own, which a fixed gap would not leave for the last kills.
            let left = (kills - killed) as u32;
            let gap = run.saturating_sub(started.elapsed()) / (left + 1);
            std::thread::sleep(gap.max(Duration::from_millis(5)));
            let i = match python {
                Some(_) if killed % 3 == 0 => PYTHON_REPLICAS[killed / 3 % 2],
                _ => rng.usize(..REPLICAS),
            };
            if python.is_some() && PYTHON_REPLICAS.contains(&i) {
                python_kills += 1;
            }
            let r = &mut replicas[i];
            let _ = r.child.kill(); // SIGKILL
            let _ = r.child.wait();
            let g = r.generation + 1;
            replicas[i] = spawn(i, g);
            killed += 1;
        }
        if let Some(rest) = run.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        stream_done.store(true, Ordering::SeqCst);
    });
    let (terminated, restarted) = (terminated.into_inner(), restarted.into_inner());
    for r in &mut replicas {
        let status = r.child.wait().unwrap();
        if !status.success() {
            let mut err = String::new();
            use std::io::Read;
            let _ = r.child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("a replica failed: {status}\n{err}");
        }
    }
    assert!(restarted, "the server restart did not happen");
    assert_eq!(
        killed, kills,
        "the event stream ended before every kill happened"
    );
    // Drain: a meter whose clock is past every hour's grace flushes until nothing is left
    // (claims of killed senders expire after their 1 s lease).
    let drain_at = real_hour + 600;
    let drain = UsageMeter::new(
        MeterConfig::builder()
            .client(client(&emu.endpoint()))
            .store(Store::postgres(&url))
            .product_code(metering_emulator::PRODUCT_CODE)
            .replica_id("drain")
            .flush_interval(Duration::ZERO)
            .clock(Arc::new(move || drain_at))
            .build()
            .unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        drain.flush_blocking().unwrap();
        let s = drain.status().unwrap();
        if s.pending == 0 && s.sealed == 0 {
            assert_eq!((s.dead_lettered, s.expired), (0, 0), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "still unsent: {s:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // What record() acknowledged, per customer.
    let mut acked: HashMap<String, i64> = HashMap::new();
    let (mut acked_total, mut python_acked) = (0i64, 0i64);
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().into_owned();
        let by_python = python.is_some()
            && PYTHON_REPLICAS
                .iter()
                .any(|i| name.starts_with(&format!("r{i}-")));
        for line in std::fs::read_to_string(f.path()).unwrap().lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() != 3 {
                continue; // a line cut by a kill was never acknowledged to the journal
            }
            let q: i64 = parts[2].parse().unwrap();
            *acked.entry(parts[0].to_owned()).or_default() += q;
            acked_total += q;
            if by_python {
                python_acked += q;
            }
        }
    }
    assert!(
        python.is_none() || python_acked > 0,
        "the Python replicas acknowledged nothing"
    );
    let ledger = emu.ledger();
    // Each customer-hour billed once, and never two quantities sent for one bucket.
    let mut seen: HashMap<(String, String, i64), usize> = HashMap::new();
    let mut billed: HashMap<String, i64> = HashMap::new();
    for e in &ledger {
        let who = e.customer_identifier.clone().unwrap_or_default();
        *seen
            .entry((who.clone(), e.dimension.clone(), e.hour))
            .or_default() += 1;
        *billed.entry(who).or_default() += e.quantity;
    }
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let mut sent: HashMap<(String, i64), std::collections::BTreeSet<i64>> = HashMap::new();
    let mut python_calls = 0usize;
    for r in emu.requests() {
        if r.operation.as_deref() != Some("BatchMeterUsage") {
            continue;
        }
        let ua = r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"));
        if ua.is_some_and(|(_, v)| v.contains(" lang/python/")) {
            python_calls += 1;
        }
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        for rec in v["UsageRecords"].as_array().unwrap() {
            sent.entry((
                rec["CustomerIdentifier"].as_str().unwrap().to_owned(),
                rec["Timestamp"].as_f64().map(|t| t as i64).unwrap_or(0),
            ))
            .or_default()
            .insert(rec["Quantity"].as_i64().unwrap());
        }
    }
    assert!(
        sent.values().all(|q| q.len() == 1),
        "a bucket sent with two quantities"
    );
    // Billed ≥ acknowledged per customer; the excess is at most the events in flight at a
    // kill (one per killed replica, quantity ≤ 5).
    let billed_total: i64 = billed.values().sum();
    for (c, q) in &acked {
        assert!(billed.get(c).copied().unwrap_or(0) >= *q, "{c}: lost usage");
    }
    let slack = billed_total - acked_total;
    assert!(
        (0..=5 * killed as i64).contains(&slack),
        "billed {billed_total}, acknowledged {acked_total}"
    );
    let faces = match python {
        Some(_) => format!("{} Python", PYTHON_REPLICAS.len()),
        None => "no Python".to_owned(),
    };
    eprintln!(
        "fleet chaos: {REPLICAS} replicas ({faces}), {killed} kills ({python_kills} of Python \
         replicas), {terminated} connection cuts, 1 server restart; {acked_total} units \
         acknowledged ({python_acked} by Python), {billed_total} billed in {} records \
         ({python_calls} BatchMeterUsage calls from Python replicas)",
        ledger.len()
    );
}

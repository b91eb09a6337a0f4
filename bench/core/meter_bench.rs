// SPDX-License-Identifier: Apache-2.0
// Benchmark of the usage meter: record() throughput and flushing 10,000 customer-hours.

//! Run with `cargo run --release -p marketplace-metering --example meter_bench`
//! (`MM_BENCH_ONLY="NORMAL, 8"` runs only the durable lines whose label contains the text).
//!
//! 1. `record()` calls/s into the in-memory store, one thread;
//! 2. `record()` calls/s durable with group commit (SQLite file, WAL) from 8 threads, and
//!    one commit per call from 1 thread, each with `synchronous=FULL` (power-loss safe) and
//!    `synchronous=NORMAL` (safe against kill -9 of the process only);
//! 3. flushing 10,000 customer-hours to the in-process emulator;
//! 4. where one group commit's time goes: this disk's fdatasync, one SQLite transaction of
//!    8 upserts (the meter's own statement and schema) with `synchronous` OFF, NORMAL and
//!    FULL, and a round of 8 thread wake-ups through a mutex and condition variables.
//!
//! With every caller blocked until its commit, group commit gives at most
//! `threads / commit latency` calls/s, so 8 threads reach 100,000 calls/s only if a commit
//! takes ≤ 80 µs: out of reach with an fsync per commit on a disk whose fdatasync takes
//! longer than that (section 4 prints it). The 16- and 64-thread lines show the same commits
//! serving more callers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{Customer, Durability, MeterConfig, Store};
use marketplace_metering::{Client, Config, UsageMeter};
use metering_emulator::{CustomerConfig, Emulator, EmulatorConfig};

const H: i64 = 3600;

fn client(emu: &Emulator) -> Client {
    Client::new(
        Config::builder()
            .region(metering_emulator::DEFAULT_REGION)
            .endpoint_url(emu.endpoint())
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
                None,
            )
            .build()
            .expect("config"),
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn temp_db(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mm-bench-{name}-{}.db", std::process::id()))
}

fn remove_db(p: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let customers = 5_000;
    let cfg = EmulatorConfig {
        customers: (1..=customers)
            .map(|i| CustomerConfig {
                customer_identifier: format!("cust-{i}"),
                customer_aws_account_id: None,
                subscribed_products: vec![metering_emulator::PRODUCT_CODE.to_string()],
            })
            .collect(),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(cfg)?;
    let names: Vec<Customer> = (1..=customers)
        .map(|i| Customer::identifier(format!("cust-{i}")))
        .collect();
    let dims = ["users", "gb", "requests"];

    // MM_BENCH_ONLY=<text>: only the durable lines whose label contains it (for A/B runs).
    let only = std::env::var("MM_BENCH_ONLY").ok();

    // 1. In-memory store, one thread.
    if only.is_none() {
        let meter = UsageMeter::new(
            MeterConfig::builder()
                .client(client(&emu))
                .store(Store::memory())
                .product_code(metering_emulator::PRODUCT_CODE)
                .build()?,
        )?;
        let n = 3_000_000usize;
        let t = Instant::now();
        for i in 0..n {
            meter.record(names[i % 1000].clone(), dims[i % 3], 1, None, None)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "record(), in-memory store, 1 thread:                  {:>10.0} calls/s ({n} calls in {secs:.2} s)",
            n as f64 / secs
        );
    }

    // 2. Durable group commit from 8 threads; durable per call from 1 thread.
    for (label, durability, safe, threads, per_thread) in [
        (
            "group commit, FULL, 8 threads",
            Durability::Group,
            true,
            8,
            5_000usize,
        ),
        (
            "group commit, NORMAL, 8 threads",
            Durability::Group,
            false,
            8,
            50_000,
        ),
        (
            "group commit, NORMAL, 16 threads",
            Durability::Group,
            false,
            16,
            25_000,
        ),
        (
            "group commit, FULL, 64 threads",
            Durability::Group,
            true,
            64,
            1_000,
        ),
        (
            "group commit, NORMAL, 64 threads",
            Durability::Group,
            false,
            64,
            8_000,
        ),
        (
            "one commit per call, FULL, 1 thread",
            Durability::Durable,
            true,
            1,
            2_000,
        ),
        (
            "one commit per call, NORMAL, 1 thread",
            Durability::Durable,
            false,
            1,
            20_000,
        ),
    ] {
        if only.as_deref().is_some_and(|o| !label.contains(o)) {
            continue;
        }
        let path = temp_db("durable");
        remove_db(&path);
        let meter = UsageMeter::new(
            MeterConfig::builder()
                .client(client(&emu))
                .store(Store::sqlite(&path))
                .product_code(metering_emulator::PRODUCT_CODE)
                .durability(durability)
                .power_loss_safe(safe)
                .build()?,
        )?;
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let (m, names) = (meter.clone(), &names);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let c = names[(th * 131 + i) % 1000].clone();
                        if let Err(e) = m.record(c, dims[i % 3], 1, None, None) {
                            eprintln!("record failed: {e}");
                            return;
                        }
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let n = threads * per_thread;
        println!(
            "record(), durable, {label:<38} {:>10.0} calls/s ({n} calls in {secs:.2} s)",
            n as f64 / secs
        );
        let status = meter.status()?;
        drop(meter);
        if status.pending == 0 {
            eprintln!("unexpected: nothing pending");
        }
        remove_db(&path);
    }

    if only.is_some() {
        return Ok(());
    }
    // 3. Flushing 10,000 customer-hours (5,000 customers × 2 hours) to the emulator.
    {
        let base = now() / H * H;
        let clock = Arc::new(AtomicI64::new(base - 2 * H + 1));
        let c2 = clock.clone();
        let path = temp_db("flush");
        remove_db(&path);
        let meter = UsageMeter::new(
            MeterConfig::builder()
                .client(client(&emu))
                .store(Store::sqlite(&path))
                .product_code(metering_emulator::PRODUCT_CODE)
                .durability(Durability::Memory)
                .clock(Arc::new(move || c2.load(Ordering::SeqCst)))
                .build()?,
        )?;
        for hour in [base - 2 * H, base - H] {
            clock.store(hour + 1, Ordering::SeqCst);
            for c in &names {
                meter.record(c.clone(), "users", 3, None, None)?;
            }
        }
        meter.status()?; // written to the store before timing the flush
        clock.store(base + 600, Ordering::SeqCst);
        let t = Instant::now();
        let sum = meter.flush_blocking()?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "flush of 10,000 customer-hours:                       {secs:>10.2} s ({} acked, {} calls, {} in the ledger)",
            sum.acked,
            sum.calls,
            emu.ledger().len()
        );
        drop(meter);
        remove_db(&path);
    }
    breakdown(&emu, &names)?;
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}

fn mean_us(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1e6 / n as f64
}

/// 4. The parts of one group commit, measured one by one.
fn breakdown(emu: &Emulator, names: &[Customer]) -> Result<(), Box<dyn std::error::Error>> {
    // The disk: append 4 KiB (about one WAL frame) and fdatasync.
    {
        use std::io::Write;
        let path = temp_db("fsync");
        let mut f = std::fs::File::create(&path)?;
        let page = [7u8; 4096];
        let n = 2_000;
        let mut lat = Vec::with_capacity(n);
        let t = Instant::now();
        for _ in 0..n {
            let a = Instant::now();
            f.write_all(&page)?;
            f.sync_data()?;
            lat.push(a.elapsed());
        }
        let total = t.elapsed();
        lat.sort();
        println!(
            "breakdown: write 4 KiB + fdatasync:                   {:>8.1} µs mean, {:.1} µs median, {:.1} µs p99",
            mean_us(total, n),
            lat[n / 2].as_secs_f64() * 1e6,
            lat[n * 99 / 100].as_secs_f64() * 1e6
        );
        drop(f);
        let _ = std::fs::remove_file(&path);
    }
    // One transaction of 8 upserts, the meter's statement on the meter's schema.
    {
        let path = temp_db("breakdown");
        remove_db(&path);
        let meter = UsageMeter::new(
            MeterConfig::builder()
                .client(client(emu))
                .store(Store::sqlite(&path))
                .product_code(metering_emulator::PRODUCT_CODE)
                .build()?,
        )?;
        meter.record(names[0].clone(), "users", 1, None, None)?;
        drop(meter);
        let mut conn = rusqlite::Connection::open(&path)?;
        let hour = now() / H * H;
        let dims = ["users", "gb", "requests"];
        for sync in ["OFF", "NORMAL", "FULL"] {
            conn.execute_batch(&format!("PRAGMA synchronous={sync};"))?;
            let n = if sync == "FULL" { 1_000 } else { 10_000 };
            let t = Instant::now();
            for i in 0..n {
                let tx = conn.transaction()?;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT INTO buckets (product_code, license_arn, customer_kind, customer, dimension, hour, quantity)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (product_code, license_arn, customer_kind, customer, dimension, hour)
                         DO UPDATE SET quantity = quantity + excluded.quantity WHERE state = 'pending'",
                    )?;
                    for k in 0..8 {
                        let c = (i * 8 + k) * 131 % 1000;
                        st.execute(rusqlite::params![
                            metering_emulator::PRODUCT_CODE,
                            "",
                            "C",
                            format!("cust-{}", c + 1),
                            dims[(i + k) % 3],
                            hour,
                            1
                        ])?;
                    }
                }
                tx.commit()?;
            }
            println!(
                "breakdown: 1 transaction of 8 upserts, {sync:<6}         {:>8.1} µs",
                mean_us(t.elapsed(), n)
            );
        }
        drop(conn);
        remove_db(&path);
    }
    // 8 callers and a committer: one round of wake-ups without any commit.
    {
        use std::sync::{Condvar, Mutex};
        struct Q {
            count: usize,
            round: u64,
        }
        let q = Arc::new((
            Mutex::new(Q { count: 0, round: 0 }),
            Condvar::new(),
            Condvar::new(),
        ));
        let rounds = 20_000u64;
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let q = q.clone();
                s.spawn(move || {
                    let (m, to_committer, to_callers) = &*q;
                    for r in 0..rounds {
                        let mut g = m.lock().unwrap();
                        g.count += 1;
                        if g.count == 8 {
                            to_committer.notify_one();
                        }
                        while g.round == r {
                            g = to_callers.wait(g).unwrap();
                        }
                    }
                });
            }
            let (m, to_committer, to_callers) = &*q;
            for _ in 0..rounds {
                let mut g = m.lock().unwrap();
                while g.count < 8 {
                    g = to_committer.wait(g).unwrap();
                }
                g.count = 0;
                g.round += 1;
                to_callers.notify_all();
            }
        });
        println!(
            "breakdown: 8 wake-ups, condvar (before):               {:>8.1} µs",
            mean_us(t.elapsed(), rounds as usize)
        );
    }
    // The same with park/unpark, as the meter's committer does now.
    {
        use std::sync::atomic::AtomicU64;
        use std::sync::{Condvar, Mutex};
        struct Q {
            count: usize,
            waiters: Vec<std::thread::Thread>,
        }
        let q = Arc::new((
            Mutex::new(Q {
                count: 0,
                waiters: Vec::new(),
            }),
            Condvar::new(),
        ));
        let round = Arc::new(AtomicU64::new(0));
        let rounds = 20_000u64;
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (q, round) = (q.clone(), round.clone());
                s.spawn(move || {
                    let (m, to_committer) = &*q;
                    for r in 0..rounds {
                        {
                            let mut g = m.lock().unwrap();
                            g.count += 1;
                            g.waiters.push(std::thread::current());
                            if g.count == 8 {
                                to_committer.notify_one();
                            }
                        }
                        while round.load(Ordering::Acquire) == r {
                            std::thread::park();
                        }
                    }
                });
            }
            let (m, to_committer) = &*q;
            for _ in 0..rounds {
                let waiters = {
                    let mut g = m.lock().unwrap();
                    while g.count < 8 {
                        g = to_committer.wait(g).unwrap();
                    }
                    g.count = 0;
                    std::mem::take(&mut g.waiters)
                };
                round.fetch_add(1, Ordering::Release);
                for w in waiters {
                    w.unpark();
                }
            }
        });
        println!(
            "breakdown: 8 wake-ups, park/unpark (now):              {:>8.1} µs",
            mean_us(t.elapsed(), rounds as usize)
        );
    }
    Ok(())
}

// SPDX-License-Identifier: Apache-2.0
// Benchmark of the usage meter: record() throughput and flushing 10,000 customer-hours.

//! Run with `cargo run --release -p marketplace-metering --example meter_bench`.
//!
//! 1. `record()` calls/s into the in-memory store, one thread;
//! 2. `record()` calls/s durable with group commit (SQLite file, WAL) from 8 threads, and
//!    one commit per call from 1 thread, each with `synchronous=FULL` (power-loss safe) and
//!    `synchronous=NORMAL` (safe against kill -9 of the process only);
//! 3. flushing 10,000 customer-hours to the in-process emulator.

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
    for suffix in ["", "-wal", "-shm"] {
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

    // 1. In-memory store, one thread.
    {
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
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}

// SPDX-License-Identifier: Apache-2.0
// Meters usage through the UsageMeter against the embedded emulator.

//! The Rust usage-meter example of the README's main job.
//!
//! Records billable events for several customers into a durable SQLite store, restarts the
//! meter half-way (the store keeps the events), lets the hour seal, flushes, and checks that
//! the emulator billed every customer-hour exactly once with exactly the recorded quantity.
//! A [`ManualClock`] stands in for the wall clock so the example does not wait an hour;
//! against AWS, leave the clock out and set `flush_interval`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{
    Customer, ManualClock, MeterConfig, MeterEvent, MeterEventKind, Store,
};
use marketplace_metering::{Client, Config, UsageMeter};
use metering_emulator::{Emulator, EmulatorConfig};

const HOUR: i64 = 3600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start(EmulatorConfig::default())?;
    let client = Client::new(
        Config::builder()
            .region(metering_emulator::DEFAULT_REGION)
            .endpoint_url(emulator.endpoint())
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
                None,
            )
            .build()?,
    );
    // Two real hours ago: the service (and the emulator) take past hours up to 6 hours old.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let hour = now / HOUR * HOUR - 2 * HOUR;
    let clock = ManualClock::new(hour + 60);
    let store = std::env::temp_dir().join(format!("mm-example-{}.db", std::process::id()));
    let events: Arc<Mutex<Vec<MeterEvent>>> = Arc::default();
    let open = || {
        let events = events.clone();
        UsageMeter::new(
            MeterConfig::builder()
                .client(client.clone())
                .store(Store::sqlite(&store))
                .product_code(metering_emulator::PRODUCT_CODE)
                .clock(clock.clock())
                .on_event(move |e| events.lock().unwrap_or_else(|p| p.into_inner()).push(e))
                .build()?,
        )
    };

    let mut recorded: HashMap<(String, &str), i64> = HashMap::new();
    let meter = open()?;
    for i in 0..200 {
        let (customer, dimension, quantity) = (
            format!("cust-{}", i % 12 + 1),
            ["users", "gb"][i % 2],
            (i % 5 + 1) as i64,
        );
        meter.record(
            Customer::identifier(&customer),
            dimension,
            quantity,
            None,
            None,
        )?;
        *recorded.entry((customer, dimension)).or_default() += quantity;
    }
    // The service refuses this customer: the bucket is dead-lettered, never dropped.
    meter.record(
        Customer::identifier("cust-unsubscribed"),
        "users",
        1,
        None,
        None,
    )?;
    meter.close_blocking()?; // a restart: the hour is still open, its events wait in the store
    drop(meter);

    clock.advance(30 * 60);
    let meter = open()?;
    for i in 0..50 {
        let customer = format!("cust-{}", i % 3 + 1);
        meter.record(Customer::identifier(&customer), "users", 2, None, None)?;
        *recorded.entry((customer, "users")).or_default() += 2;
    }
    clock.advance(36 * 60); // the hour ended 6 minutes ago: past the 5-minute grace, sealed
    let summary = meter.flush_blocking()?;
    let status = meter.status()?;
    let dead = meter.dead_letters()?;
    meter.close_blocking()?;
    let _ = std::fs::remove_file(&store);

    let ledger = emulator.ledger();
    let mut billed: HashMap<(String, String), (i64, usize)> = HashMap::new();
    for e in &ledger {
        let key = (
            e.customer_identifier.clone().unwrap_or_default(),
            e.dimension.clone(),
        );
        let v = billed.entry(key).or_default();
        v.0 += e.quantity;
        v.1 += 1;
    }
    let acked = events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|e| matches!(e.kind, MeterEventKind::Acked { .. }))
        .count();
    println!(
        "rust meter: recorded {} units in {} customer-hours; flush: {} call(s), {} acked, {} \
         dead-lettered ({}); status: {} acked, {} dead-lettered, {} sealed",
        recorded.values().sum::<i64>(),
        recorded.len(),
        summary.calls,
        summary.acked,
        summary.dead_lettered,
        dead.first().map_or("-", |d| d.reason.as_str()),
        status.acked,
        status.dead_lettered,
        status.sealed,
    );
    let exact = recorded.len() == billed.len()
        && recorded
            .iter()
            .all(|((c, d), q)| billed.get(&(c.clone(), (*d).to_owned())) == Some(&(*q, 1)));
    if !exact || acked != recorded.len() || dead.len() != 1 || status.sealed != 0 {
        return Err(format!("the ledger does not match what was recorded: {billed:?}").into());
    }
    println!("rust meter: every customer-hour billed exactly once, with its recorded quantity");
    Ok(())
}

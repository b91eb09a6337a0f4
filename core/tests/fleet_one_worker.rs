// SPDX-License-Identifier: Apache-2.0
// The fleet store when the shared runtime has one worker (`MM_RUNTIME_WORKERS=1`) and a
// meter's last handle is dropped on it, as the JVM's and Python's async flushes do: the
// buffer's write needs the database connections' tasks, which run on that same worker.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{Customer, Durability, MeterConfig, Store};
use marketplace_metering::{Client, UsageMeter};
use metering_emulator::{Emulator, EmulatorConfig};

mod support;
use support::pg;

const H: i64 = 3600;

#[test]
fn a_last_handle_dropped_on_the_only_worker_writes_the_buffer() {
    // Before the runtime is first built; the only test in this binary.
    unsafe { std::env::set_var("MM_RUNTIME_WORKERS", "1") };
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let url = pg::fresh_url();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hour = now / H * H - H;
    let clock = Arc::new(AtomicI64::new(hour + 1));
    let c = clock.clone();
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(Client::new(
                support::config(emu.endpoint())
                    .max_attempts(1u32)
                    .build()
                    .unwrap(),
            ))
            .store(Store::postgres(&url))
            .product_code(metering_emulator::PRODUCT_CODE)
            .flush_interval(Duration::ZERO)
            .clock(Arc::new(move || c.load(Ordering::SeqCst)))
            .durability(Durability::Memory)
            .build()
            .unwrap(),
    )
    .unwrap();
    // The worker is running and has opened the store's connections.
    meter
        .record(Customer::identifier("cust-1"), "users", 5, None, None)
        .unwrap();
    meter.write_buffered().unwrap();
    meter
        .record(Customer::identifier("cust-1"), "users", 7, None, None)
        .unwrap();

    let t = Instant::now();
    let task = marketplace_metering::runtime::spawn(async move { drop(meter) }).unwrap();
    marketplace_metering::runtime::block_on(task)
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    let held = pg::shared().psql(
        &url,
        &format!(
            "SELECT (SELECT coalesce(sum(u.q), 0) FROM mm_journal j,
                            unnest(j.hour, j.quantity) AS u(h, q) WHERE u.h = {hour})
                  + (SELECT coalesce(sum(quantity), 0) FROM mm_partials WHERE hour = {hour})
                  + (SELECT coalesce(sum(quantity), 0) FROM mm_buckets WHERE hour = {hour})"
        ),
    );
    assert_eq!(
        held.trim(),
        "12",
        "the store holds {held} units of 12 (drop took {took:?})"
    );
    assert!(
        took < Duration::from_secs(15),
        "the drop held the only worker for {took:?}"
    );
}

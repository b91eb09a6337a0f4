// SPDX-License-Identifier: Apache-2.0
// The shared runtime's shutdown (C's mm_shutdown) never stops a live meter's background
// flusher for good. Its own test binary: shutting the runtime down is process-wide.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{MeterConfig, Store};
use marketplace_metering::{Client, UsageMeter};
use metering_emulator::{Emulator, EmulatorConfig};

mod support;

const H: i64 = 3600;

#[test]
fn the_background_flusher_survives_a_runtime_shutdown() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let client = Client::new(support::config(emu.endpoint()).build().unwrap());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let b = now / H * H;
    let clock = Arc::new(AtomicI64::new(b - H + 1));
    let c2 = clock.clone();
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(client)
            .store(Store::memory())
            .product_code(metering_emulator::PRODUCT_CODE)
            .clock(Arc::new(move || c2.load(Ordering::SeqCst)))
            .flush_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .unwrap();
    // The flusher runs (a flush of nothing) before the shutdown.
    std::thread::sleep(Duration::from_millis(200));
    marketplace_metering::runtime::shutdown();
    meter
        .record(
            marketplace_metering::meter::Customer::identifier("cust-1"),
            "users",
            4,
            None,
            None,
        )
        .unwrap();
    clock.store(b + 600, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.ledger().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        emu.ledger().len(),
        1,
        "no background flush after the runtime was shut down"
    );
    // Once the meter is gone, a shutdown leaves nothing to restart.
    meter.close_blocking().unwrap();
    drop(meter);
    marketplace_metering::runtime::shutdown();
}

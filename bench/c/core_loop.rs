// SPDX-License-Identifier: Apache-2.0
// The bench's reference: the same 25-record BatchMeterUsage loop through the Rust core's blocking client.
//   cargo run --release -p marketplace-metering-c --example core_loop -- ENDPOINT_URL SECONDS

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::blocking::Client;
use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{UsageRecord, UsageRecordResultStatus};
use marketplace_metering::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (endpoint, seconds) = match (args.get(1), args.get(2)) {
        (Some(e), Some(s)) => (e.clone(), s.parse::<f64>()?),
        _ => return Err("usage: core_loop ENDPOINT_URL SECONDS".into()),
    };
    let client = Client::new(
        Config::builder()
            .region("us-east-1")
            .endpoint_url(endpoint)
            .static_credentials("EMULATORKEYID0000001", "emulator-secret-access-key", None)
            .build()?,
    );
    let ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64 - 60;
    let mut input = BatchMeterUsageInput::builder().product_code("prod-1234");
    for i in 1..=25 {
        input = input.usage_records(
            UsageRecord::builder()
                .timestamp(DateTime::from_secs(ts))
                .customer_identifier(format!("cust-{i}"))
                .dimension("requests")
                .quantity(1)
                .build()?,
        );
    }
    let input = input.build()?;
    let (mut calls, mut failed) = (0u64, 0u64);
    let start = Instant::now();
    let end = Duration::from_secs_f64(seconds);
    while start.elapsed() < end {
        match client.batch_meter_usage(input.clone()) {
            Ok(out) => {
                let ok = out
                    .results()
                    .iter()
                    .filter(|r| r.status() == Some(&UsageRecordResultStatus::Success))
                    .count();
                if ok != 25 {
                    failed += 1;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
        calls += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "rust : {calls} calls in {elapsed:.2} s = {:.1} calls/s ({failed} failures)",
        calls as f64 / elapsed
    );
    marketplace_metering::runtime::shutdown();
    if failed > 0 {
        return Err("some calls failed".into());
    }
    Ok(())
}

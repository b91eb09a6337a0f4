// SPDX-License-Identifier: Apache-2.0
// Meters usage from Rust against the embedded emulator (or METERING_ENDPOINT_URL if set).

//! The Rust example of the README's main job.
//!
//! Starts the emulator in-process, then does what a SaaS seller's hourly job does: resolve a
//! customer from a registration token, send one hour of usage for 25 customers with
//! `BatchMeterUsage`, check every record's status and re-send unprocessed records, and report
//! what was billed.

use std::time::{SystemTime, UNIX_EPOCH};

use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::{UsageRecord, UsageRecordResultStatus};
use marketplace_metering::{Client, Config, Error};
use metering_emulator::{Emulator, EmulatorConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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

    let customer = client
        .resolve_customer()
        .registration_token("reg-token-valid")
        .send()
        .await?;
    println!(
        "resolved customer {} for product {}",
        customer.customer_identifier().unwrap_or("?"),
        customer.product_code().unwrap_or("?")
    );

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let hour = DateTime::from_secs(now - now % 3600);
    let mut pending: Vec<UsageRecord> = (1..=25)
        .map(|i| {
            UsageRecord::builder()
                .timestamp(hour)
                .customer_identifier(format!("cust-{i}"))
                .dimension("users")
                .quantity(i)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let mut billed = 0;
    while !pending.is_empty() {
        let out = client
            .batch_meter_usage()
            .product_code(metering_emulator::PRODUCT_CODE)
            .set_usage_records(Some(std::mem::take(&mut pending)))
            .send()
            .await
            .map_err(Error::from)?;
        for r in out.results() {
            match r.status() {
                Some(UsageRecordResultStatus::Success) => billed += 1,
                other => eprintln!("record not billed: {other:?} {:?}", r.usage_record()),
            }
        }
        // Unprocessed records are not errors: send them again.
        pending = out.unprocessed_records().to_vec();
    }
    println!(
        "rust: billed {billed} records; emulator ledger holds {}",
        emulator.ledger().len()
    );
    if billed != 25 || emulator.ledger().len() != 25 {
        return Err("not every record was billed".into());
    }
    Ok(())
}

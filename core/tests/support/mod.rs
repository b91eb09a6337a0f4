// SPDX-License-Identifier: Apache-2.0
// Test support shared by the integration tests: the emulator and a client config for it
// (here), a private PostgreSQL cluster (`pg`).

// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod pg;
pub mod pg_proxy;

use marketplace_metering::{Config, ConfigBuilder};
use metering_emulator::{Emulator, EmulatorConfig};

/// An emulator on 127.0.0.1 with its default settings.
pub fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("emulator starts")
}

/// A client config for the emulator at `endpoint`: its region and its default keys. Tests
/// add what they vary (attempts, backoffs, timeouts) and build it.
pub fn config(endpoint: impl Into<String>) -> ConfigBuilder {
    Config::builder()
        .region(metering_emulator::DEFAULT_REGION)
        .endpoint_url(endpoint)
        .static_credentials(
            metering_emulator::DEFAULT_ACCESS_KEY_ID,
            metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
            None,
        )
}

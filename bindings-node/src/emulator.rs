// SPDX-License-Identifier: Apache-2.0
// The in-process metering emulator, for tests (index.js `startEmulator()`).

//! The emulator runs on its own thread and runtime (see `metering_emulator::Emulator::start`),
//! so it serves requests while the JS thread awaits the client.

use metering_emulator::{Emulator, EmulatorConfig, Fault};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Fixed facts of the default emulator configuration.
#[napi(object)]
pub struct EmulatorDefaults {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_access_key_id: String,
    pub session_secret_access_key: String,
    pub session_token: String,
    pub product_code: String,
    pub customer_aws_account_id: String,
    pub license_arn: String,
}

/// The emulator's defaults.
#[napi]
pub fn emulator_defaults() -> EmulatorDefaults {
    use metering_emulator as m;
    EmulatorDefaults {
        region: m::DEFAULT_REGION.into(),
        access_key_id: m::DEFAULT_ACCESS_KEY_ID.into(),
        secret_access_key: m::DEFAULT_SECRET_ACCESS_KEY.into(),
        session_access_key_id: m::SESSION_ACCESS_KEY_ID.into(),
        session_secret_access_key: m::SESSION_SECRET_ACCESS_KEY.into(),
        session_token: m::SESSION_TOKEN.into(),
        product_code: m::PRODUCT_CODE.into(),
        customer_aws_account_id: m::CUSTOMER_AWS_ACCOUNT_ID.into(),
        license_arn: m::LICENSE_ARN.into(),
    }
}

/// A running emulator on 127.0.0.1.
#[napi]
pub struct NativeEmulator {
    inner: Option<Emulator>,
}

fn stopped() -> napi::Error {
    napi::Error::new(Status::GenericFailure, "the emulator has been stopped")
}

#[napi]
impl NativeEmulator {
    /// Starts an emulator with the default configuration on a free port.
    #[napi(constructor)]
    pub fn new() -> Result<Self> {
        let emu = Emulator::start(EmulatorConfig::default()).map_err(|e| {
            napi::Error::new(
                Status::GenericFailure,
                format!("cannot start the emulator: {e}"),
            )
        })?;
        Ok(NativeEmulator { inner: Some(emu) })
    }

    fn emu(&self) -> Result<&Emulator> {
        self.inner.as_ref().ok_or_else(stopped)
    }

    /// `http://127.0.0.1:<port>`.
    #[napi(getter)]
    pub fn endpoint(&self) -> Result<String> {
        Ok(self.emu()?.endpoint())
    }

    /// The port.
    #[napi(getter)]
    pub fn port(&self) -> Result<u32> {
        Ok(self.emu()?.port().into())
    }

    /// The billed records, as JSON.
    #[napi]
    pub fn ledger_json(&self) -> Result<String> {
        serde_json::to_string(&self.emu()?.ledger())
            .map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))
    }

    /// The request log, as JSON.
    #[napi]
    pub fn requests_json(&self) -> Result<String> {
        serde_json::to_string(&self.emu()?.requests())
            .map_err(|e| napi::Error::new(Status::GenericFailure, e.to_string()))
    }

    /// Queues a fault given as JSON (`{"kind":"throttle"}`, `{"kind":"delay","seconds":0.5}`).
    #[napi]
    pub fn push_fault_json(&self, fault: String) -> Result<()> {
        let f: Fault = serde_json::from_str(&fault).map_err(|e| {
            napi::Error::new(Status::InvalidArg, format!("not a fault: {e}: {fault}"))
        })?;
        self.emu()?.push_fault(f);
        Ok(())
    }

    /// Clears ledger, de-duplication tables, request log and queued faults.
    #[napi]
    pub fn reset(&self) -> Result<()> {
        self.emu()?.reset();
        Ok(())
    }

    /// Stops the server (idempotent).
    #[napi]
    pub fn stop(&mut self) {
        if let Some(e) = self.inner.take() {
            e.shutdown();
        }
    }
}

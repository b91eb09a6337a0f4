// SPDX-License-Identifier: Apache-2.0
// `NativeEmulator`: the metering-emulator crate, started in-process for tests
// (`dev.marketplacemetering.testing.Emulator`).

use std::sync::Mutex;

use metering_emulator::{Emulator as Inner, EmulatorConfig, Fault};

/// A failure of the emulator itself (not of the service it emulates).
#[derive(Debug, uniffi::Error)]
pub enum EmulatorError {
    Failure { detail: String },
}

impl std::fmt::Display for EmulatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let EmulatorError::Failure { detail } = self;
        f.write_str(detail)
    }
}

impl std::error::Error for EmulatorError {}

fn fail(message: impl Into<String>) -> EmulatorError {
    EmulatorError::Failure {
        detail: message.into(),
    }
}

/// One billed record.
#[derive(Clone, Debug, uniffi::Record)]
pub struct LedgerEntry {
    pub operation: String,
    pub product_code: Option<String>,
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: String,
    /// Epoch seconds floored to the hour.
    pub hour: i64,
    pub quantity: i64,
    pub metering_record_id: String,
}

/// One service request the emulator answered.
#[derive(Clone, Debug, uniffi::Record)]
pub struct RequestEntry {
    pub request_id: String,
    pub operation: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    pub signature_ok: bool,
    pub user_agent: Option<String>,
    pub connection: u64,
}

/// The emulator's fixed identities and catalog.
#[derive(Clone, Debug, uniffi::Record)]
pub struct EmulatorDefaults {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub product_code: String,
    pub license_arn: String,
    pub customer_aws_account_id: String,
}

#[uniffi::export]
pub fn emulator_defaults() -> EmulatorDefaults {
    EmulatorDefaults {
        region: metering_emulator::DEFAULT_REGION.to_owned(),
        access_key_id: metering_emulator::DEFAULT_ACCESS_KEY_ID.to_owned(),
        secret_access_key: metering_emulator::DEFAULT_SECRET_ACCESS_KEY.to_owned(),
        product_code: metering_emulator::PRODUCT_CODE.to_owned(),
        license_arn: metering_emulator::LICENSE_ARN.to_owned(),
        customer_aws_account_id: metering_emulator::CUSTOMER_AWS_ACCOUNT_ID.to_owned(),
    }
}

/// A local Metering Service on `127.0.0.1` (its own thread and runtime).
#[derive(uniffi::Object)]
pub struct NativeEmulator {
    inner: Mutex<Option<Inner>>,
    port: u16,
}

impl NativeEmulator {
    fn with<T>(&self, f: impl FnOnce(&Inner) -> T) -> Result<T, EmulatorError> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(e) => Ok(f(e)),
            None => Err(fail("the emulator has been shut down")),
        }
    }
}

#[uniffi::export]
impl NativeEmulator {
    /// Starts an emulator with the default catalog on `port` (0: a free port).
    #[uniffi::constructor]
    pub fn new(port: u16) -> Result<std::sync::Arc<Self>, EmulatorError> {
        let config = EmulatorConfig {
            port,
            ..EmulatorConfig::default()
        };
        let inner =
            Inner::start(config).map_err(|e| fail(format!("cannot start the emulator: {e}")))?;
        Ok(std::sync::Arc::new(NativeEmulator {
            port: inner.port(),
            inner: Mutex::new(Some(inner)),
        }))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Billed records, in billing order.
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>, EmulatorError> {
        let l = self.with(|e| e.ledger())?;
        Ok(l.into_iter()
            .map(|e| LedgerEntry {
                operation: e.operation,
                product_code: e.product_code,
                customer_identifier: e.customer_identifier,
                customer_aws_account_id: e.customer_aws_account_id,
                license_arn: e.license_arn,
                dimension: e.dimension,
                hour: e.hour,
                quantity: e.quantity,
                metering_record_id: e.metering_record_id,
            })
            .collect())
    }

    /// Service requests answered, oldest first.
    pub fn requests(&self) -> Result<Vec<RequestEntry>, EmulatorError> {
        let r = self.with(|e| e.requests())?;
        Ok(r.into_iter()
            .map(|r| RequestEntry {
                user_agent: r
                    .headers
                    .iter()
                    .find(|(k, _)| k == "user-agent")
                    .map(|(_, v)| v.clone()),
                request_id: r.request_id,
                operation: r.operation,
                status: r.status,
                error_code: r.error_code,
                signature_ok: r.signature_ok,
                connection: r.connection,
            })
            .collect())
    }

    /// Queues a fault, as JSON: `{"kind": "throttle"}`, `{"kind": "delay", "seconds": 0.5}`,
    /// `{"kind": "error", "status": 400, "code": "InvalidTokenException"}`, …
    pub fn push_fault(&self, fault_json: String) -> Result<(), EmulatorError> {
        let f: Fault =
            serde_json::from_str(&fault_json).map_err(|e| fail(format!("bad fault: {e}")))?;
        self.with(|e| e.push_fault(f))
    }

    /// How many faults are still queued.
    pub fn pending_faults(&self) -> Result<u32, EmulatorError> {
        self.with(|e| e.pending_faults().len() as u32)
    }

    /// Clears the ledger, de-duplication tables, request log and queued faults.
    pub fn reset(&self) -> Result<(), EmulatorError> {
        self.with(|e| e.reset())
    }

    /// Stops the server and joins its thread. Idempotent.
    pub fn shutdown(&self) {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(e) = taken {
            e.shutdown();
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
// metering-emulator: a strict local stand-in for the AWS Marketplace Metering Service.

//! A strict local stand-in for the AWS Marketplace Metering Service (API 2016-01-14,
//! awsJson1.1), for tests of clients.
//!
//! It verifies SigV4 with its own implementation (so it can catch a client's signing
//! bugs), validates every request against the model's constraints, de-duplicates usage
//! per customer, dimension and hour, keeps a ledger of what was billed, injects faults
//! on demand and can persist its state across restarts.
//!
//! ```no_run
//! use metering_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).unwrap();
//! println!("endpoint: {}", emu.endpoint());
//! // ... point a client at emu.endpoint(), then inspect emu.ledger() ...
//! emu.shutdown();
//! ```
//!
//! [`Emulator::start`] runs the server on its own thread with its own two-worker tokio
//! runtime, so it works the same from plain threads, from `#[test]`s and from inside
//! another tokio runtime.
#![warn(missing_docs)]

mod config;
mod error;
mod model;
mod server;
mod service;
mod sigv4;
mod time;
mod types;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::{
    CredentialConfig, CustomerConfig, EmulatorConfig, LicenseConfig, ProductConfig,
    RegistrationTokenConfig,
};
pub use types::{Fault, LedgerEntry, RequestLogEntry};

use server::Shared;

/// Region requests are signed for by default.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Access key id of the default identity.
pub const DEFAULT_ACCESS_KEY_ID: &str = "EMULATORKEYID0000001";
/// Secret of the default identity.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "emulator-secret-access-key";
/// Access key id of a second identity that requires [`SESSION_TOKEN`].
pub const SESSION_ACCESS_KEY_ID: &str = "EMULATORSESSIONKEY01";
/// Secret of the session identity.
pub const SESSION_SECRET_ACCESS_KEY: &str = "emulator-session-secret";
/// Session token the session identity must send (signed) in `X-Amz-Security-Token`.
pub const SESSION_TOKEN: &str = "emulator-session-token";
/// The default product; its dimensions are `users`, `gb` and `requests`.
pub const PRODUCT_CODE: &str = "prod-1234";
/// The default license, held by [`CUSTOMER_AWS_ACCOUNT_ID`] for [`PRODUCT_CODE`].
pub const LICENSE_ARN: &str =
    "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef";
/// The account subscribed to [`PRODUCT_CODE`] through [`LICENSE_ARN`].
pub const CUSTOMER_AWS_ACCOUNT_ID: &str = "111122223333";

/// A running emulator. Dropping it shuts it down.
pub struct Emulator {
    port: u16,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The process that started it: a forked child has none of its threads.
    pid: u32,
}

impl Emulator {
    /// Binds `127.0.0.1:config.port` (0 picks a free port), starts serving on a thread of
    /// its own with a two-worker tokio runtime, and returns once the socket is listening.
    ///
    /// When `config.state_dir` is set, the ledger and the de-duplication and idempotency
    /// tables are loaded from it and every change is written there durably.
    pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let mut config = config;
        config.port = port;
        let shared = Arc::new(Shared::new(config)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("metering-emulator")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serve_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("metering-emulator-main".into())
            .spawn(move || {
                runtime.block_on(server::serve(listener, serve_shared, rx));
                runtime.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(Emulator {
            port,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
            pid: std::process::id(),
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Billed records, in billing order.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.shared.service.ledger()
    }

    /// Usage records refused because their (product or license, customer, dimension, hour)
    /// was already billed with another quantity (`DuplicateRecord` from BatchMeterUsage,
    /// `DuplicateRequestException` or an `IdempotencyConflictException` from MeterUsage), in
    /// arrival order. Nothing here was billed; `metering_record_id` is the id of the record
    /// billed first. Persisted with the ledger when a state directory is set.
    pub fn rejected_duplicates(&self) -> Vec<LedgerEntry> {
        self.shared.service.rejected_duplicates()
    }

    /// Every service request answered (oldest first, up to `request_log_limit`).
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.shared.requests()
    }

    /// Queues a fault; each service request consumes the front one.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.push_fault(fault);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.faults()
    }

    /// Clears the ledger, de-duplication tables, idempotency tokens, request log and
    /// queued faults (and the persisted journal, if any).
    pub fn reset(&self) {
        if let Err(e) = self.shared.reset() {
            tracing::warn!("could not clear the persisted journal: {e}");
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> EmulatorConfig {
        self.shared.service.catalog().config.clone()
    }

    /// Replaces credentials, region, products, customers, licenses, tokens and windows
    /// (the port and state directory are kept). Billing state is untouched.
    pub fn set_config(&self, config: EmulatorConfig) {
        self.shared.service.set_config(config);
    }

    /// Stops accepting connections and waits for the server thread to finish.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if std::process::id() != self.pid {
            // A forked child (a test's worker that ends as a process does): the server and its
            // thread are the parent's. Joining a thread the child does not have panicked, and
            // the shutdown signal would wake the parent's runtime through their shared file
            // descriptors. Both are left as they are; the parent's emulator keeps serving.
            std::mem::forget(self.shutdown.take());
            std::mem::forget(self.thread.take());
            return;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("port", &self.port)
            .finish()
    }
}

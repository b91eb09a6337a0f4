// SPDX-License-Identifier: Apache-2.0
// marketplace-metering: the Rust core every face (Python, Node.js, C, C++) translates.

//! A fast, careful client for the AWS Marketplace Metering Service.
//!
//! The four operations of API version 2016-01-14 — `BatchMeterUsage`, `MeterUsage`,
//! `ResolveCustomer` and `RegisterUsage` — with the model's validation before anything is
//! sent, SigV4 signing, the standard and adaptive retry modes, endpoint resolution from the
//! service's rule set and the standard credential chains.
//!
//! ```no_run
//! # async fn f() -> Result<(), marketplace_metering::Error> {
//! use marketplace_metering::{Client, Config, types::UsageRecord, primitives::DateTime};
//! let client = Client::new(Config::builder().region("us-east-1").build()?);
//! let out = client
//!     .batch_meter_usage()
//!     .product_code("prod-1234")
//!     .usage_records(
//!         UsageRecord::builder()
//!             .timestamp(DateTime::from_secs(1_700_000_000))
//!             .customer_identifier("cust-1")
//!             .dimension("users")
//!             .quantity(3)
//!             .build()?,
//!     )
//!     .send()
//!     .await?;
//! for r in out.results() { println!("{:?}", r.status()); }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod blocking;
mod client;
pub mod config;
pub mod credentials;
pub mod endpoint;
pub mod error;
mod field;
#[cfg(feature = "meter")]
pub mod meter;
pub mod operation;
pub mod profile;
pub mod retry;
pub mod runtime;
mod tls;
pub mod types;
pub mod validate;
mod wire;

pub use client::Client;
pub use config::{Config, ConfigBuilder};
pub use credentials::Credentials;
pub use error::{
    AttemptLog, BuildError, Error, ErrorCode, ErrorKind, FieldPath, FieldStyle, LocalCode,
    ResponseMetadata,
};
#[cfg(feature = "meter")]
pub use meter::UsageMeter;
pub use retry::{RetryConfig, RetryMode};

/// Primitive types shared with the AWS SDK for Rust.
pub mod primitives {
    pub use aws_smithy_types::DateTime;
}

/// The crate version, as the faces report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

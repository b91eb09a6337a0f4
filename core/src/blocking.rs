// SPDX-License-Identifier: Apache-2.0
// A synchronous client for callers without an async runtime, run on the calling thread.

//! The blocking client.
//!
//! Each call runs on the calling thread, on the runtime all blocking callers share (see
//! [`runtime::block_on`](crate::runtime::block_on)); many threads may call one client at once,
//! and they share its pooled connections: a connection outlives the thread that opened it.
//! Called from inside an async runtime thread it returns
//! [`ErrorCode::InvalidState`](crate::ErrorCode::InvalidState) instead of panicking. After
//! `fork()` a client made in the parent keeps working in the child.

use crate::error::{
    BatchMeterUsageError, MeterUsageError, RegisterUsageError, ResolveCustomerError,
};
use crate::operation::batch_meter_usage::{BatchMeterUsageInput, BatchMeterUsageOutput};
use crate::operation::meter_usage::{MeterUsageInput, MeterUsageOutput};
use crate::operation::register_usage::{RegisterUsageInput, RegisterUsageOutput};
use crate::operation::resolve_customer::{ResolveCustomerInput, ResolveCustomerOutput};
use crate::{runtime, Config, Error};

/// A blocking client; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
}

impl Client {
    /// A client with this configuration.
    pub fn new(config: Config) -> Client {
        Client {
            inner: crate::Client::new(config),
        }
    }

    /// Wraps an async client (sharing its connection pool, credentials and retry quota).
    pub fn from_async(inner: crate::Client) -> Client {
        Client { inner }
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// Releases the connection pools (see [`crate::Client::close`]).
    pub fn close(&self) -> usize {
        self.inner.close()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.inner.config()
    }

    /// `BatchMeterUsage`.
    pub fn batch_meter_usage(
        &self,
        input: BatchMeterUsageInput,
    ) -> Result<BatchMeterUsageOutput, BatchMeterUsageError> {
        runtime::block_on(self.inner.send_batch_meter_usage(input))?
    }

    /// `MeterUsage`.
    pub fn meter_usage(&self, input: MeterUsageInput) -> Result<MeterUsageOutput, MeterUsageError> {
        runtime::block_on(self.inner.send_meter_usage(input))?
    }

    /// `ResolveCustomer`.
    pub fn resolve_customer(
        &self,
        input: ResolveCustomerInput,
    ) -> Result<ResolveCustomerOutput, ResolveCustomerError> {
        runtime::block_on(self.inner.send_resolve_customer(input))?
    }

    /// `RegisterUsage`.
    pub fn register_usage(
        &self,
        input: RegisterUsageInput,
    ) -> Result<RegisterUsageOutput, RegisterUsageError> {
        runtime::block_on(self.inner.send_register_usage(input))?
    }

    /// Which provider supplied the credentials; see [`crate::Client::credentials_provider_name`].
    pub fn credentials_provider_name(&self) -> Result<String, Error> {
        runtime::block_on(self.inner.credentials_provider_name())?
    }
}

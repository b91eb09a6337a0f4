// SPDX-License-Identifier: Apache-2.0
// `NativeClient`: the core's client. Each operation has a blocking form (the calling thread
// waits on the core's runtime: Java's blocking API) and an `async` form (the work runs on the
// core's runtime; the JVM side suspends, no thread of it waits: Kotlin `suspend` and
// `CompletableFuture`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use marketplace_metering::{runtime, Config, Error, RetryMode};

use crate::error::{invalid_state, NativeError};
use crate::model::{self, *};

type R<T> = Result<T, NativeError>;

/// Everything a client is configured with except credentials (those are separate arguments,
/// so that no generated `toString()` can print a secret). `None`: the environment, the shared
/// config file, then the default.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct ClientConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    pub use_fips: Option<bool>,
    pub use_dual_stack: Option<bool>,
    /// `standard` or `adaptive`.
    pub retry_mode: Option<String>,
    pub max_attempts: Option<i32>,
    pub initial_backoff_millis: Option<i64>,
    pub max_backoff_millis: Option<i64>,
    pub connect_timeout_millis: Option<i64>,
    pub read_timeout_millis: Option<i64>,
    pub attempt_timeout_millis: Option<i64>,
    pub operation_timeout_millis: Option<i64>,
    /// The Kotlin package's version, for the User-Agent.
    pub face_version: Option<String>,
}

/// A client setting the core cannot take: `InvalidConfig` naming it, as every face says it.
fn setting(field: &str, problem: &str) -> NativeError {
    Error::invalid_setting(
        field.to_owned(),
        format!("{field} (set in code): {problem}"),
    )
    .into()
}

/// The longest duration a client setting takes, as in the Python face (10^9 s): longer is a
/// mistake (a `Duration` saturated from a unit error), not a timeout.
const MAX_MILLIS: i64 = 1_000_000_000_000;

fn millis(field: &str, v: Option<i64>) -> R<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(ms) if ms > 0 && ms < MAX_MILLIS => Ok(Some(Duration::from_millis(ms as u64))),
        Some(ms) => Err(setting(
            field,
            &format!("must be a positive duration under 10^9 s, got {ms} ms"),
        )),
    }
}

fn build_config(
    c: ClientConfig,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
) -> R<Config> {
    let mut b = Config::builder().user_agent_suffix(format!(
        "jvm/{}",
        c.face_version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
    ));
    b.set_region(c.region);
    b.set_endpoint_url(c.endpoint_url);
    b.set_profile(c.profile);
    if let Some(on) = c.use_fips {
        b = b.use_fips(on);
    }
    if let Some(on) = c.use_dual_stack {
        b = b.use_dual_stack(on);
    }
    match (access_key_id, secret_access_key) {
        // Refused here as the other faces refuse them, not signed with and refused by the
        // service at the first call.
        (Some(k), _) if k.trim().is_empty() => {
            return Err(setting("accessKeyId", "must not be empty"))
        }
        (_, Some(s)) if s.is_empty() => {
            return Err(setting("secretAccessKey", "must not be empty"))
        }
        (Some(k), Some(s)) => {
            b = b.static_credentials(k, s, session_token.filter(|t| !t.is_empty()))
        }
        (None, None) => {}
        (None, Some(_)) => return Err(setting("accessKeyId", "is required with secretAccessKey")),
        (Some(_), None) => return Err(setting("secretAccessKey", "is required with accessKeyId")),
    }
    if let Some(m) = c.retry_mode {
        b.set_retry_mode(Some(m.parse::<RetryMode>().map_err(NativeError::from)?));
    }
    if let Some(n) = c.max_attempts {
        let n = u32::try_from(n)
            .map_err(|_| setting("maxAttempts", &format!("must be at least 1, got {n}")))?;
        b.set_max_attempts(Some(n));
    }
    b.set_initial_backoff(millis("initialBackoff", c.initial_backoff_millis)?);
    b.set_max_backoff(millis("maxBackoff", c.max_backoff_millis)?);
    b.set_connect_timeout(millis("connectTimeout", c.connect_timeout_millis)?);
    b.set_read_timeout(millis("readTimeout", c.read_timeout_millis)?);
    b.set_attempt_timeout(millis("attemptTimeout", c.attempt_timeout_millis)?);
    b.set_operation_timeout(millis("operationTimeout", c.operation_timeout_millis)?);
    Ok(b.build()?)
}

/// The resolved configuration, as the client uses it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ResolvedConfig {
    pub region: String,
    pub endpoint_url: String,
    pub retry_mode: String,
    pub max_attempts: u32,
    pub user_agent: String,
}

#[derive(uniffi::Object)]
pub struct NativeClient {
    inner: marketplace_metering::Client,
}

/// Runs `fut` on the core's runtime and waits for it (a blocking call).
fn blocking<O, E: Into<Error>>(fut: impl Future<Output = Result<O, E>>) -> R<O> {
    match runtime::block_on(fut) {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(e.into().into()),
        Err(e) => Err(e.into()),
    }
}

/// What ends a blocking call early: its Java thread's `interrupt()`, which the JVM side
/// passes on (`mm_jvm_direct_interrupt` in `direct.rs`).
#[derive(Default)]
pub(crate) struct Interrupt {
    raised: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        // One waiter at most; its permit is kept when the call has not started waiting yet.
        self.notify.notify_one();
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        if !self.is_raised() {
            self.notify.notified().await;
        }
    }
}

/// [`blocking`], ended by `stop` once it is raised: `Ok(None)`, the call's future dropped
/// (its request aborted, as a cancelled async form's is; a flush keeps what it had not sent
/// for the next one). A call whose outcome is ready when the interrupt comes keeps it, and a
/// `stop` raised before the call starts it not at all.
pub(crate) fn blocking_until<O, E: Into<Error>>(
    fut: impl Future<Output = Result<O, E>>,
    stop: Option<&Interrupt>,
) -> R<Option<O>> {
    let Some(stop) = stop else {
        return blocking(fut).map(Some);
    };
    if stop.is_raised() {
        return Ok(None);
    }
    let run = async {
        tokio::select! {
            biased;
            r = fut => Some(r),
            () = stop.wait() => None,
        }
    };
    match runtime::block_on(run) {
        Ok(Some(Ok(o))) => Ok(Some(o)),
        Ok(Some(Err(e))) => Err(e.into().into()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A call made without an interrupt cannot have been interrupted.
fn not_interruptible() -> NativeError {
    invalid_state("a call without an interrupt was interrupted")
}

/// Runs `fut` on the core's runtime; the returned future only waits for its result, so the
/// foreign side's polling never drives the HTTP exchange itself. Dropped (a cancelled
/// coroutine or `CompletableFuture`: uniffi frees the future), it aborts the call.
async fn on_runtime<O, E>(fut: impl Future<Output = Result<O, E>> + Send + 'static) -> R<O>
where
    O: Send + 'static,
    E: Into<Error> + Send + 'static,
{
    let handle = runtime::AbortOnDrop(runtime::spawn_call(fut)?);
    match handle.await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(e.into().into()),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(invalid_state(
            "the call was cancelled: the runtime shut down",
        )),
    }
}

impl NativeClient {
    pub fn core(&self) -> &marketplace_metering::Client {
        &self.inner
    }

    // The blocking operations, ended early by `stop` (the direct calls' Java thread interrupts).

    pub(crate) fn batch_meter_usage_until(
        &self,
        product_code: Option<String>,
        usage_records: Option<Vec<Option<UsageRecord>>>,
        stop: Option<&Interrupt>,
    ) -> R<Option<BatchMeterUsageResult>> {
        let input = model::batch_meter_usage_input(product_code, usage_records)?;
        let out = blocking_until(self.inner.send_batch_meter_usage(input), stop)?;
        Ok(out.map(|o| model::batch_meter_usage_output(&o)))
    }

    pub(crate) fn meter_usage_until(
        &self,
        params: MeterUsageParams,
        stop: Option<&Interrupt>,
    ) -> R<Option<MeterUsageResult>> {
        let input = model::meter_usage_input(params)?;
        let out = blocking_until(self.inner.send_meter_usage(input), stop)?;
        Ok(out.map(|o| model::meter_usage_output(&o)))
    }

    pub(crate) fn resolve_customer_until(
        &self,
        registration_token: Option<String>,
        stop: Option<&Interrupt>,
    ) -> R<Option<ResolveCustomerResult>> {
        let input = model::resolve_customer_input(registration_token)?;
        let out = blocking_until(self.inner.send_resolve_customer(input), stop)?;
        Ok(out.map(|o| model::resolve_customer_output(&o)))
    }

    pub(crate) fn register_usage_until(
        &self,
        product_code: Option<String>,
        public_key_version: Option<i32>,
        nonce: Option<String>,
        stop: Option<&Interrupt>,
    ) -> R<Option<RegisterUsageResult>> {
        let input = model::register_usage_input(product_code, public_key_version, nonce)?;
        let out = blocking_until(self.inner.send_register_usage(input), stop)?;
        Ok(out.map(|o| model::register_usage_output(&o)))
    }
}

#[uniffi::export]
impl NativeClient {
    /// Builds a client. `access_key_id` and `secret_access_key` go together; without them the
    /// default credential chain is used.
    #[uniffi::constructor]
    pub fn new(
        config: ClientConfig,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    ) -> R<Arc<Self>> {
        let config = build_config(config, access_key_id, secret_access_key, session_token)?;
        Ok(Arc::new(NativeClient {
            inner: marketplace_metering::Client::new(config),
        }))
    }

    pub fn resolved_config(&self) -> ResolvedConfig {
        let c = self.inner.config();
        ResolvedConfig {
            region: c.region().to_owned(),
            endpoint_url: c.endpoint_url().to_owned(),
            retry_mode: c.retry_config().mode.as_str().to_owned(),
            max_attempts: c.retry_config().max_attempts,
            user_agent: c.user_agent().to_owned(),
        }
    }

    /// Where the credentials come from (`Static`, `Environment`, …), resolving them if needed.
    pub fn credentials_provider_name(&self) -> R<String> {
        blocking(self.inner.credentials_provider_name())
    }

    pub fn batch_meter_usage(
        &self,
        product_code: Option<String>,
        usage_records: Option<Vec<Option<UsageRecord>>>,
    ) -> R<BatchMeterUsageResult> {
        self.batch_meter_usage_until(product_code, usage_records, None)?
            .ok_or_else(not_interruptible)
    }

    pub async fn batch_meter_usage_async(
        &self,
        product_code: Option<String>,
        usage_records: Option<Vec<Option<UsageRecord>>>,
    ) -> R<BatchMeterUsageResult> {
        let input = model::batch_meter_usage_input(product_code, usage_records)?;
        let c = self.inner.clone();
        let out = on_runtime(async move { c.send_batch_meter_usage(input).await }).await?;
        Ok(model::batch_meter_usage_output(&out))
    }

    pub fn meter_usage(&self, params: MeterUsageParams) -> R<MeterUsageResult> {
        self.meter_usage_until(params, None)?
            .ok_or_else(not_interruptible)
    }

    pub async fn meter_usage_async(&self, params: MeterUsageParams) -> R<MeterUsageResult> {
        let input = model::meter_usage_input(params)?;
        let c = self.inner.clone();
        let out = on_runtime(async move { c.send_meter_usage(input).await }).await?;
        Ok(model::meter_usage_output(&out))
    }

    pub fn resolve_customer(&self, registration_token: Option<String>) -> R<ResolveCustomerResult> {
        self.resolve_customer_until(registration_token, None)?
            .ok_or_else(not_interruptible)
    }

    pub async fn resolve_customer_async(
        &self,
        registration_token: Option<String>,
    ) -> R<ResolveCustomerResult> {
        let input = model::resolve_customer_input(registration_token)?;
        let c = self.inner.clone();
        let out = on_runtime(async move { c.send_resolve_customer(input).await }).await?;
        Ok(model::resolve_customer_output(&out))
    }

    pub fn register_usage(
        &self,
        product_code: Option<String>,
        public_key_version: Option<i32>,
        nonce: Option<String>,
    ) -> R<RegisterUsageResult> {
        self.register_usage_until(product_code, public_key_version, nonce, None)?
            .ok_or_else(not_interruptible)
    }

    pub async fn register_usage_async(
        &self,
        product_code: Option<String>,
        public_key_version: Option<i32>,
        nonce: Option<String>,
    ) -> R<RegisterUsageResult> {
        let input = model::register_usage_input(product_code, public_key_version, nonce)?;
        let c = self.inner.clone();
        let out = on_runtime(async move { c.send_register_usage(input).await }).await?;
        Ok(model::register_usage_output(&out))
    }

    /// The client's clock, corrected by the skew measured against the service's `Date`.
    pub fn now(&self) -> SystemTime {
        self.inner.now()
    }
}

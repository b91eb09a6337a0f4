// SPDX-License-Identifier: Apache-2.0
// NativeClient: the core's async Client behind four promise-returning methods.

//! The native client. The JS class `MarketplaceMeteringClient` (index.js) owns one and calls
//! one method per command; each converts its input on the JS thread, then runs the core's
//! future on the shared runtime and settles the promise on the JS thread.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use marketplace_metering::{Client, Config, RetryMode};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert::{self, ConvError};

/// Client settings, already normalized by the JS layer.
#[napi(object)]
#[derive(Default)]
pub struct NativeClientOptions {
    /// Signing region.
    pub region: Option<String>,
    /// Endpoint URL override.
    pub endpoint: Option<String>,
    /// Static credentials; all three absent means the core's default chain.
    pub access_key_id: Option<String>,
    /// Static secret.
    pub secret_access_key: Option<String>,
    /// Static session token.
    pub session_token: Option<String>,
    /// Shared config profile for the default chains.
    pub profile: Option<String>,
    /// All attempts, the first included (SDK v3 meaning).
    pub max_attempts: Option<i64>,
    /// `"standard"` or `"adaptive"`.
    pub retry_mode: Option<String>,
    /// Connect timeout in milliseconds.
    pub connect_timeout_ms: Option<f64>,
    /// Read timeout in milliseconds.
    pub read_timeout_ms: Option<f64>,
    /// Bound on one attempt, response body included, in milliseconds.
    pub attempt_timeout_ms: Option<f64>,
    /// Bound on a whole call, retries included, in milliseconds.
    pub operation_timeout_ms: Option<f64>,
    /// FIPS endpoint.
    pub use_fips: Option<bool>,
    /// Dual-stack endpoint.
    pub use_dual_stack: Option<bool>,
    /// A PEM CA bundle that replaces the platform's roots.
    pub ca_bundle: Option<String>,
    /// A PEM bundle added to the platform's roots (`NODE_EXTRA_CA_CERTS`).
    pub extra_ca_bundle: Option<String>,
    /// The proxy for https endpoints.
    pub https_proxy: Option<String>,
    /// The proxy for http endpoints.
    pub http_proxy: Option<String>,
    /// Hosts reached without a proxy.
    pub no_proxy: Option<String>,
    /// The user-agent app id.
    pub app_id: Option<String>,
    /// The npm package version, for the User-Agent.
    pub package_version: Option<String>,
}

/// Milliseconds as a `Duration`; one no `Duration` can hold is the core's `InvalidConfig`
/// error (the core itself refuses zero).
fn duration(ms: f64, field: &str) -> std::result::Result<Duration, marketplace_metering::Error> {
    if ms.is_finite() && (0.0..1.0e12).contains(&ms) {
        Ok(Duration::from_secs_f64(ms / 1000.0))
    } else {
        Err(marketplace_metering::Error::invalid_setting(
            field.to_owned(),
            format!("{field} (set in code): must be a positive number of milliseconds, got {ms}"),
        ))
    }
}

fn build_config(
    o: NativeClientOptions,
) -> std::result::Result<Config, marketplace_metering::Error> {
    let mut b = Config::builder().user_agent_suffix(format!(
        "node/{}",
        o.package_version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
    ));
    if let Some(r) = o.region {
        b = b.region(r);
    }
    if let Some(e) = o.endpoint {
        b = b.endpoint_url(e);
    }
    b = b.credentials_from_parts(o.access_key_id, o.secret_access_key, o.session_token);
    if let Some(p) = o.profile {
        b = b.profile(p);
    }
    if let Some(n) = o.max_attempts {
        // The core checks the range: a negative count is as invalid as zero, and one past
        // u32 is as many attempts as u32 holds.
        b = b.max_attempts(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
    }
    if let Some(m) = o.retry_mode {
        b = b.retry_mode(m.parse::<RetryMode>()?);
    }
    if let Some(ms) = o.connect_timeout_ms {
        b = b.connect_timeout(duration(ms, "connectionTimeout")?);
    }
    if let Some(ms) = o.read_timeout_ms {
        b = b.read_timeout(duration(ms, "requestTimeout")?);
    }
    if let Some(ms) = o.attempt_timeout_ms {
        b = b.attempt_timeout(duration(ms, "requestTimeout")?);
    }
    if let Some(ms) = o.operation_timeout_ms {
        b = b.operation_timeout(duration(ms, "operationTimeout")?);
    }
    b.set_use_fips(o.use_fips);
    b.set_use_dual_stack(o.use_dual_stack);
    b.set_ca_bundle(o.ca_bundle.map(Into::into));
    b.set_extra_ca_bundle(o.extra_ca_bundle.map(Into::into));
    b.set_https_proxy(o.https_proxy);
    b.set_http_proxy(o.http_proxy);
    b.set_no_proxy(o.no_proxy);
    b.set_app_id(o.app_id);
    b.build()
}

/// The core client. Cheap to share; all calls run concurrently on the shared runtime.
#[napi]
pub struct NativeClient {
    inner: Client,
}

/// Runs `fut` on the shared runtime; resolves with the output's JSON, or rejects with the
/// core error as built by [`crate::errors::to_js`].
fn spawn<'env, T, E, F>(
    env: &'env Env,
    fut: F,
    cancel: Option<&CallCancel>,
    to_json: fn(&T) -> String,
) -> Result<PromiseRaw<'env, String>>
where
    T: Send + 'static,
    E: Into<marketplace_metering::Error> + Send + 'static,
    F: Future<Output = std::result::Result<T, E>> + Send + 'static,
{
    let cancel = cancel.map(|c| c.0.clone());
    let run = async move {
        match cancel {
            None => Some(fut.await),
            Some(c) if c.cancelled.load(Ordering::Acquire) => None,
            // Dropping the future drops the attempt's connection and any retry still to come.
            Some(c) => tokio::select! {
                r = fut => Some(r),
                () = c.notify.notified() => None,
            },
        }
    };
    env.spawn_future_with_callback(async move { Ok(run.await) }, move |env, r| match r {
        Some(Ok(out)) => Ok(to_json(&out)),
        Some(Err(e)) => Err(crate::errors::to_js(env, &e.into())),
        None => Err(Error::new(Status::Cancelled, "Request aborted")),
    })
}

#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    notify: Notify,
}

/// Cancels one call: the JS layer makes one per `send(cmd, { abortSignal })` and cancels it
/// when the signal aborts, so the attempt in flight is dropped and no retry follows.
#[napi]
pub struct CallCancel(Arc<CancelState>);

#[napi]
impl CallCancel {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CallCancel(Arc::default())
    }

    /// Cancels the call; later calls of this method do nothing.
    #[napi]
    pub fn cancel(&self) {
        if !self.0.cancelled.swap(true, Ordering::AcqRel) {
            // A stored permit: wakes the call even if it has not started waiting yet.
            self.0.notify.notify_one();
        }
    }
}

/// A `BatchMeterUsage` input: from `encoded` when given and accepted, else read from `input`;
/// and which of the two made it (`"encoded"` or `"object"`).
fn batch_input(
    input: Unknown<'_>,
    encoded: Option<&str>,
) -> std::result::Result<
    (
        marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput,
        &'static str,
    ),
    ConvError,
> {
    match encoded.and_then(convert::batch_meter_usage_encoded) {
        Some(input) => Ok((input, "encoded")),
        None => convert::batch_meter_usage_input(input).map(|input| (input, "object")),
    }
}

/// For the tests and bench/node/convert.mjs: which reader made the `BatchMeterUsage` input a
/// call would send (`"encoded"` or `"object"`) and, unless `describe` is `false`, that input's
/// `Debug` form; or the error the call would throw. The tests compare it with and without the
/// encoded text over many odd inputs.
#[napi(ts_return_type = "[string, string]")]
pub fn batch_meter_usage_input_debug(
    env: Env,
    input: Unknown<'_>,
    encoded: Option<String>,
    describe: Option<bool>,
) -> Result<Vec<String>> {
    let (input, from) = batch_input(input, encoded.as_deref()).map_err(|e| e.into_napi(&env))?;
    let debug = match describe {
        Some(false) => String::new(),
        _ => format!("{input:?}"),
    };
    Ok(vec![from.to_owned(), debug])
}

impl NativeClient {
    /// The core client (a cheap clone), for the usage meter.
    pub(crate) fn core_client(&self) -> Client {
        self.inner.clone()
    }
}

#[napi]
impl NativeClient {
    /// Resolves region and endpoint and checks every setting; throws `InvalidConfig` /
    /// `InvalidInput` errors (with `nativeError` details) when something is wrong.
    #[napi(constructor)]
    pub fn new(env: Env, options: Option<NativeClientOptions>) -> Result<Self> {
        let config = build_config(options.unwrap_or_default())
            .map_err(|e| crate::errors::to_js(&env, &e))?;
        Ok(NativeClient {
            inner: Client::new(config),
        })
    }

    /// Signs later calls with these credentials, from the JS `credentials` provider; the
    /// client keeps its connection pool and retry quota.
    #[napi]
    pub fn set_credentials(
        &self,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        expiration_ms: Option<f64>,
    ) {
        let expiry = expiration_ms
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64));
        self.inner
            .set_credentials(marketplace_metering::Credentials::new(
                access_key_id,
                secret_access_key,
                session_token,
                expiry,
                "NodeProvider",
            ));
    }

    /// The resolved region.
    #[napi(getter)]
    pub fn region(&self) -> String {
        self.inner.config().region().to_owned()
    }

    /// The resolved endpoint URL.
    #[napi(getter)]
    pub fn endpoint(&self) -> String {
        self.inner.config().endpoint_url().to_owned()
    }

    /// Releases the connection pools (`destroy()`); returns how many were released.
    #[napi]
    pub fn close(&self) -> u32 {
        self.inner.close() as u32
    }

    /// What the core resolved (code, environment, profile), for `client.config`: region,
    /// endpoint, useFipsEndpoint, useDualstackEndpoint, maxAttempts, retryMode, userAgentAppId,
    /// caBundle, proxies (passwords replaced by `***`), userAgent, and each setting's origin.
    #[napi(ts_return_type = "string")]
    pub fn resolved_config(&self) -> String {
        use marketplace_metering::profile::Origin;
        let c = self.inner.config();
        let origin = |k: &str| match c.origin(k) {
            Origin::Code(_) => "code".to_owned(),
            Origin::Env(v) => format!("env:{v}"),
            Origin::Profile { profile, key } => format!("profile:{profile}:{key}"),
            Origin::Default => "default".to_owned(),
        };
        serde_json::json!({
            "region": c.region(),
            "endpoint": c.endpoint_url(),
            "useFipsEndpoint": c.use_fips(),
            "useDualstackEndpoint": c.use_dual_stack(),
            "maxAttempts": c.retry_config().max_attempts,
            "retryMode": c.retry_config().mode.as_str(),
            "userAgentAppId": c.app_id(),
            "userAgent": c.user_agent(),
            "caBundle": c.ca_bundle().map(|p| p.display().to_string()),
            "httpsProxy": c.https_proxy(),
            "httpProxy": c.http_proxy(),
            "noProxy": c.no_proxy(),
            "profile": c.profile_name(),
            "origins": {
                "region": origin("region"),
                "endpoint": origin("endpoint_url"),
                "useFipsEndpoint": origin("use_fips"),
                "useDualstackEndpoint": origin("use_dual_stack"),
                "maxAttempts": origin("max_attempts"),
                "retryMode": origin("retry_mode"),
                "userAgentAppId": origin("app_id"),
                "caBundle": origin("ca_bundle"),
                "httpsProxy": origin("https_proxy"),
                "httpProxy": origin("http_proxy"),
            },
        })
        .to_string()
    }

    /// `BatchMeterUsage`; resolves with the output as JSON. `encoded` is the input as
    /// encode.js writes it when it can; the object is read whenever the text is absent or
    /// declined.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn batch_meter_usage<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
        cancel: Option<&CallCancel>,
        encoded: Option<String>,
    ) -> Result<PromiseRaw<'env, String>> {
        let (input, _) = batch_input(input, encoded.as_deref()).map_err(|e| e.into_napi(env))?;
        let c = self.inner.clone();
        spawn(
            env,
            async move { c.send_batch_meter_usage(input).await },
            cancel,
            convert::batch_meter_usage_output,
        )
    }

    /// `MeterUsage`; resolves with the output as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn meter_usage<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
        cancel: Option<&CallCancel>,
    ) -> Result<PromiseRaw<'env, String>> {
        let input = convert::meter_usage_input(input).map_err(|e| e.into_napi(env))?;
        let c = self.inner.clone();
        spawn(
            env,
            async move { c.send_meter_usage(input).await },
            cancel,
            convert::meter_usage_output,
        )
    }

    /// `ResolveCustomer`; resolves with the output as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn resolve_customer<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
        cancel: Option<&CallCancel>,
    ) -> Result<PromiseRaw<'env, String>> {
        let input = convert::resolve_customer_input(input).map_err(|e| e.into_napi(env))?;
        let c = self.inner.clone();
        spawn(
            env,
            async move { c.send_resolve_customer(input).await },
            cancel,
            convert::resolve_customer_output,
        )
    }

    /// `RegisterUsage`; resolves with the output as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn register_usage<'env>(
        &self,
        env: &'env Env,
        input: Unknown<'env>,
        cancel: Option<&CallCancel>,
    ) -> Result<PromiseRaw<'env, String>> {
        let input = convert::register_usage_input(input).map_err(|e| e.into_napi(env))?;
        let c = self.inner.clone();
        spawn(
            env,
            async move { c.send_register_usage(input).await },
            cancel,
            convert::register_usage_output,
        )
    }
}

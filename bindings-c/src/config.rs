// SPDX-License-Identifier: Apache-2.0
// mm_config: the client configuration builder (region, endpoint, credentials, retries, timeouts).

//! `mm_config`.

use std::ffi::c_char;
use std::time::Duration;

use marketplace_metering::{ConfigBuilder, RetryMode};

use crate::error::{mm_status, ErrorData};
use crate::ffi::{self, Castable};

/// A client configuration being built. Make it with `mm_config_new`, set what you need, pass
/// it to `mm_client_new` (which copies it), free it with `mm_config_free`.
///
/// Setters are not thread-safe on one config; reading it in `mm_client_new` from several
/// threads at once is.
pub struct mm_config {
    _private: [u8; 0],
}

impl Castable for mm_config {
    type Rust = ConfigBuilder;
}

/// Retry modes for `mm_config_set_retry_mode`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mm_retry_mode {
    /// Up to max-attempts tries with jittered exponential backoff (the default, 3 attempts).
    Standard = 0,
    /// Standard plus a client-side rate limiter that engages on throttling.
    Adaptive = 1,
    /// boto3's default: 5 attempts unless set, `rand * 2^n` s between them, no retry quota.
    Legacy = 2,
}

/// A new configuration with the defaults: region from the environment/profile, the default
/// credential chain, `standard` retries with 3 attempts, 5 s connect and 30 s read timeouts.
///
/// Free it with `mm_config_free`. Returns NULL only if allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_config_new() -> *mut mm_config {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_config>(ConfigBuilder::default()))
}

/// Frees a configuration. NULL does nothing. Clients made from it are unaffected.
/// No other thread may use `config` during or after the call.
#[no_mangle]
pub extern "C" fn mm_config_free(config: *mut mm_config) {
    ffi_boundary!(() => {
        // SAFETY: NULL or a config made by mm_config_new, freed once.
        unsafe { ffi::free(config) }
    })
}

fn set(
    config: *mut mm_config,
    f: impl FnOnce(&mut ConfigBuilder) -> Result<(), ErrorData>,
) -> mm_status {
    ffi::set(config, "config", f)
}

fn set_string(
    config: *mut mm_config,
    value: *const c_char,
    what: &str,
    apply: impl FnOnce(ConfigBuilder, String) -> ConfigBuilder,
) -> mm_status {
    set(config, |c| {
        // SAFETY: NULL or a NUL-terminated string.
        let v = unsafe { ffi::str_arg(value, what) }?.to_owned();
        *c = apply(std::mem::take(c), v);
        Ok(())
    })
}

/// Sets the AWS Region (`"us-east-1"`). Without it, `AWS_REGION`, `AWS_DEFAULT_REGION`, then
/// the profile's region are used.
///
/// The string is copied. Returns `MM_STATUS_NULL_PARAMETER` if an argument is NULL,
/// `MM_STATUS_INVALID_INPUT` if `region` is not UTF-8 (the region itself is checked by
/// `mm_client_new`). Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_region(config: *mut mm_config, region: *const c_char) -> mm_status {
    set_string(config, region, "region", |c, v| c.region(v))
}

/// Sets a custom endpoint URL (the emulator: `"http://127.0.0.1:<port>"`, a VPC endpoint).
/// Cannot be combined with FIPS or dual-stack.
///
/// The string is copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_endpoint_url(
    config: *mut mm_config,
    url: *const c_char,
) -> mm_status {
    set_string(config, url, "endpoint_url", |c, v| c.endpoint_url(v))
}

/// Sets static credentials; without them the default chain is used (environment, shared
/// files and profiles, web identity, ECS, IMDSv2, assume-role).
///
/// `session_token` may be NULL (none). The strings are copied. `config`, `access_key_id` or
/// `secret_access_key` NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_credentials(
    config: *mut mm_config,
    access_key_id: *const c_char,
    secret_access_key: *const c_char,
    session_token: *const c_char,
) -> mm_status {
    set(config, |c| {
        // SAFETY: NULL or NUL-terminated strings.
        let (ak, sk, token) = unsafe {
            (
                ffi::str_arg(access_key_id, "access_key_id")?,
                ffi::str_arg(secret_access_key, "secret_access_key")?,
                ffi::opt_str_arg(session_token, "session_token")?,
            )
        };
        *c = std::mem::take(c).static_credentials(ak, sk, token.map(str::to_owned));
        Ok(())
    })
}

/// Sets the shared config/credentials profile used by the default chains.
///
/// The string is copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
/// `MM_STATUS_INVALID_INPUT`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_profile(
    config: *mut mm_config,
    profile: *const c_char,
) -> mm_status {
    set_string(config, profile, "profile", |c, v| c.profile(v))
}

/// Sets the retry mode: `MM_RETRY_MODE_STANDARD`, `MM_RETRY_MODE_ADAPTIVE` or
/// `MM_RETRY_MODE_LEGACY` (else `AWS_RETRY_MODE`, then the profile's `retry_mode`).
///
/// Another number → `MM_STATUS_INVALID_CONFIG`; `config` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_retry_mode(config: *mut mm_config, mode: u32) -> mm_status {
    set(config, |c| {
        let m = match mode {
            m if m == mm_retry_mode::Standard as u32 => RetryMode::Standard,
            m if m == mm_retry_mode::Adaptive as u32 => RetryMode::Adaptive,
            m if m == mm_retry_mode::Legacy as u32 => RetryMode::Legacy,
            _ => {
                return Err(ErrorData::from(
                    marketplace_metering::Error::invalid_setting(
                        "retry_mode".to_owned(),
                        "retry_mode (set in code): must be MM_RETRY_MODE_STANDARD, \
                         MM_RETRY_MODE_ADAPTIVE or MM_RETRY_MODE_LEGACY",
                    ),
                ))
            }
        };
        *c = std::mem::take(c).retry_mode(m);
        Ok(())
    })
}

/// Sets the attempts per call, the first included (default 3; 1 disables retries; 0 is
/// rejected by `mm_client_new`). `config` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_max_attempts(
    config: *mut mm_config,
    max_attempts: u32,
) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).max_attempts(max_attempts);
        Ok(())
    })
}

/// Sets the time allowed to open a connection, in milliseconds (default 5000; 0 is rejected
/// by `mm_client_new`). `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_connect_timeout_ms(config: *mut mm_config, ms: u64) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).connect_timeout(Duration::from_millis(ms));
        Ok(())
    })
}

/// Sets the time allowed between bytes of a response, in milliseconds (default 30000; 0 is
/// rejected by `mm_client_new`). `config` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_read_timeout_ms(config: *mut mm_config, ms: u64) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).read_timeout(Duration::from_millis(ms));
        Ok(())
    })
}

/// Sets the time allowed for one attempt, response body included, in milliseconds (default
/// 60000; 0 is rejected by `mm_client_new`). An attempt that runs out is retried as a read
/// timeout is. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_attempt_timeout_ms(config: *mut mm_config, ms: u64) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).attempt_timeout(Duration::from_millis(ms));
        Ok(())
    })
}

/// Sets the time allowed for a whole call, every retry included, in milliseconds (default:
/// no bound; 0 is rejected by `mm_client_new`). Past it the call fails with
/// `MM_STATUS_READ_TIMEOUT`. `config` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_operation_timeout_ms(config: *mut mm_config, ms: u64) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).operation_timeout(Duration::from_millis(ms));
        Ok(())
    })
}

/// Uses (or not) the FIPS endpoint. `config` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_use_fips(config: *mut mm_config, on: bool) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).use_fips(on);
        Ok(())
    })
}

/// Uses (or not) the dual-stack (IPv4 and IPv6) endpoint. `config` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_config_set_use_dual_stack(config: *mut mm_config, on: bool) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).use_dual_stack(on);
        Ok(())
    })
}

/// Ignores (or not) endpoint URLs from the environment (`AWS_ENDPOINT_URL…`) and the shared
/// config file; an endpoint set with `mm_config_set_endpoint_url` is still used. Without this
/// call, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` and the profile's
/// `ignore_configured_endpoint_urls` decide. `config` NULL → `MM_STATUS_NULL_PARAMETER`.
#[no_mangle]
pub extern "C" fn mm_config_set_ignore_configured_endpoint_urls(
    config: *mut mm_config,
    on: bool,
) -> mm_status {
    set(config, |c| {
        *c = std::mem::take(c).ignore_configured_endpoint_urls(on);
        Ok(())
    })
}

/// Trusts the PEM CA bundle at `path` instead of the platform's roots (else `AWS_CA_BUNDLE`,
/// then the profile's `ca_bundle`). The file is read when the client is created; one that
/// cannot be read or holds no certificate fails `mm_client_new` with
/// `MM_STATUS_INVALID_CONFIG`. TLS verification itself can never be turned off.
#[no_mangle]
pub extern "C" fn mm_config_set_ca_bundle(
    config: *mut mm_config,
    path: *const c_char,
) -> mm_status {
    set_string(config, path, "ca_bundle", |c, v| c.ca_bundle(v))
}

/// The proxy for `https://` endpoints, `http://host:port` (else `HTTPS_PROXY` /
/// `https_proxy`). Checked when the client is created.
#[no_mangle]
pub extern "C" fn mm_config_set_https_proxy(
    config: *mut mm_config,
    url: *const c_char,
) -> mm_status {
    set_string(config, url, "https_proxy", |c, v| c.https_proxy(v))
}

/// The proxy for `http://` endpoints (else `HTTP_PROXY` / `http_proxy`).
#[no_mangle]
pub extern "C" fn mm_config_set_http_proxy(
    config: *mut mm_config,
    url: *const c_char,
) -> mm_status {
    set_string(config, url, "http_proxy", |c, v| c.http_proxy(v))
}

/// Hosts reached without a proxy, comma-separated, `NO_PROXY`'s syntax (else `NO_PROXY` /
/// `no_proxy`).
#[no_mangle]
pub extern "C" fn mm_config_set_no_proxy(
    config: *mut mm_config,
    hosts: *const c_char,
) -> mm_status {
    set_string(config, hosts, "no_proxy", |c, v| c.no_proxy(v))
}

/// The user-agent app id, at most 50 characters (else `AWS_SDK_UA_APP_ID`, then the
/// profile's `sdk_ua_app_id`). Checked when the client is created.
#[no_mangle]
pub extern "C" fn mm_config_set_app_id(config: *mut mm_config, app_id: *const c_char) -> mm_status {
    set_string(config, app_id, "app_id", |c, v| c.app_id(v))
}

/// Receives one attempt of a call: the operation (`"BatchMeterUsage"`), the attempt number
/// (1 first), the HTTP status (0 when no response arrived), the request id (NULL when none),
/// the latency in milliseconds, the outcome (`"ok"` or the error code), and why it was
/// retried (`"throttling"`, `"transient"`, `"timeout"`, `"clock skew"`; NULL when it was not).
/// The strings live until the callback returns. Nothing secret is passed.
pub type mm_log_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut std::ffi::c_void,
        operation: *const c_char,
        attempt: u32,
        http_status: u16,
        request_id: *const c_char,
        latency_ms: f64,
        outcome: *const c_char,
        retry_reason: *const c_char,
    ),
>;

/// `user_data` as the callback gets it; the caller vouches it may be used from any thread.
struct UserData(*mut std::ffi::c_void);
// SAFETY: documented on mm_config_set_log_callback: user_data must be usable from any thread.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

/// Sets a callback called once per attempt of every call of clients made from this config,
/// on the calling thread, after the call returns and before the operation function does
/// (so in order, never concurrently for one call; calls on other threads may call it at the
/// same time). `user_data` is passed back as is and must be usable from those threads; it
/// must stay valid until every client made from this config is freed (freeing the config does
/// not end them). The callback must return: it must not unwind (a C++ exception) or
/// `longjmp` out. Calls a meter makes are not passed to it. NULL `callback` removes it.
/// `config` NULL → `MM_STATUS_NULL_PARAMETER`.
#[no_mangle]
pub extern "C" fn mm_config_set_log_callback(
    config: *mut mm_config,
    callback: mm_log_callback,
    user_data: *mut std::ffi::c_void,
) -> mm_status {
    set(config, |c| {
        let Some(cb) = callback else {
            *c = std::mem::take(c).attempt_observer(std::sync::Arc::new(|_| {}));
            return Ok(());
        };
        let data = UserData(user_data);
        let observer = move |e: &marketplace_metering::AttemptLog| {
            let data = &data;
            let op = ffi::cstring(e.operation);
            let id = e.request_id.as_deref().map(ffi::cstring);
            let outcome = ffi::cstring(&e.outcome);
            let reason = e.retry_reason.map(ffi::cstring);
            // SAFETY: the caller's function, with the arguments its type names; the strings
            // outlive the call.
            unsafe {
                cb(
                    data.0,
                    op.as_ptr(),
                    e.attempt,
                    e.status.unwrap_or(0),
                    id.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                    e.latency.as_secs_f64() * 1000.0,
                    outcome.as_ptr(),
                    reason.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                )
            }
        };
        *c = std::mem::take(c).attempt_observer(std::sync::Arc::new(observer));
        Ok(())
    })
}

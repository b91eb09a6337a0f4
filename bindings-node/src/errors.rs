// SPDX-License-Identifier: Apache-2.0
// The ErrorCode → JS error class table, and core errors turned into JS Error objects.

//! Errors crossing into JavaScript.
//!
//! [`class_of`] names a service code's class after the code and maps each local code by hand
//! (no wildcard arm: a new local code breaks this build until mapped). The JS layer builds its
//! exception classes from [`error_codes`] at load time, so there is no second hand-kept list.

use marketplace_metering::{Error, ErrorCode, ErrorKind, FieldStyle, LocalCode};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// One row of the error table, as the JS layer reads it.
#[napi(object)]
pub struct ErrorCodeInfo {
    /// The core's code string (`"ThrottlingException"`, `"InvalidInput"`); `err.code`.
    pub code: String,
    /// The stable number (the C face's `mm_status`).
    pub number: u32,
    /// The JS class the error is an instance of (`err.name` unless the service sent another code).
    pub class_name: String,
    /// `"client"` or `"server"` (SDK v3's `$fault`).
    pub fault: String,
    /// `"local"`, `"modeled"` or `"common"`.
    pub kind: String,
    /// `true` when the class derives from `MarketplaceMeteringServiceException`.
    pub service: bool,
}

/// The JS class name for a code, and whether it is a service exception.
///
/// Modeled and common codes keep their AWS names, as AWS SDK v3 exports them. Local codes get
/// the names a Node user expects; `Unhandled` (a service code the core does not know) is the
/// base `MarketplaceMeteringServiceException`, whose `name` is then the service's code.
pub fn class_of(code: ErrorCode) -> (&'static str, bool) {
    use LocalCode::*;
    let Some(local) = code.local() else {
        return (code.as_str(), true);
    };
    match local {
        InvalidInput => ("ValidationError", false),
        InvalidState => ("InvalidStateError", false),
        InvalidConfig => ("InvalidConfigError", false),
        Credentials => ("CredentialsProviderError", false),
        Dispatch => ("NetworkingError", false),
        ConnectTimeout => ("ConnectTimeoutError", false),
        ReadTimeout => ("TimeoutError", false),
        InvalidResponse => ("InvalidResponseError", false),
        Unhandled => ("MarketplaceMeteringServiceException", true),
        OutcomeUnknown => ("OutcomeUnknownError", false),
    }
}

fn fault_of(code: ErrorCode) -> &'static str {
    // A response the service could not form (5xx, garbage) is the server's fault.
    if code.is_server_fault() || code == ErrorCode::InvalidResponse {
        "server"
    } else {
        "client"
    }
}

fn kind_str(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Local => "local",
        ErrorKind::Modeled => "modeled",
        ErrorKind::Common => "common",
    }
}

/// The error table: one row per core [`ErrorCode`], in the core's order.
/// `url` as it may be shown, user info as `***` (the core's rule, the one every face's
/// messages use): the face shows its settings before the core has read them.
#[napi]
pub fn redact_url(url: String) -> String {
    marketplace_metering::endpoint::redact_userinfo(&url).into_owned()
}

#[napi]
pub fn error_codes() -> Vec<ErrorCodeInfo> {
    ErrorCode::ALL
        .iter()
        .map(|&c| {
            let (class_name, service) = class_of(c);
            ErrorCodeInfo {
                code: c.as_str().to_owned(),
                number: c.as_u32(),
                class_name: class_name.to_owned(),
                fault: fault_of(c).to_owned(),
                kind: kind_str(c.kind()).to_owned(),
                service,
            }
        })
        .collect()
}

/// Turns a core error into a JS `Error` whose `code` is the core's code string and whose
/// `nativeError` property holds the rest (class, fault, metadata, field) as JSON; the JS layer
/// rebuilds it as an instance of the right class.
pub fn to_js(env: &Env, e: &Error) -> napi::Error {
    match build_js(env, e) {
        Ok(err) => err,
        // Building the object failed (out of memory?): a plain error still carries the text.
        Err(_) => napi::Error::new(Status::GenericFailure, e.to_string()),
    }
}

/// The details the JS layer rebuilds an error from (`nativeError`): class, fault, metadata,
/// field. Also how a flush summary carries the error that interrupted it.
pub fn detail_json(e: &Error) -> String {
    let code = e.error_code();
    let (class_name, _) = class_of(code);
    serde_json::json!({
        "code": code.as_str(),
        "serviceCode": e.code(),
        "className": class_name,
        "fault": fault_of(code),
        "message": e.message_in(FieldStyle::Camel),
        "field": e.field_in(FieldStyle::Camel),
        "retryable": e.is_retryable(),
        "httpStatusCode": e.http_status(),
        "requestId": e.request_id(),
        "attempts": e.attempts(),
        "totalRetryDelay": e.total_retry_delay().as_millis() as u64,
        "attemptLog": crate::convert::attempt_log(e.metadata()),
        "retryReason": e.metadata().attempt_log().last().and_then(|a| a.retry_reason)
            .or_else(|| crate::errors::throttling(e).then_some("throttling")),
        "headers": e.metadata().http_headers().collect::<std::collections::HashMap<_, _>>(),
    })
    .to_string()
}

/// Whether the error is a throttling error (SDK v3's `$retryable.throttling`).
pub fn throttling(e: &Error) -> bool {
    e.is_retryable() && (e.http_status() == Some(429) || e.code().contains("Throttl"))
}

fn build_js(env: &Env, e: &Error) -> Result<napi::Error> {
    let code = e.error_code();
    let text = format!("{}: {}", e.code(), e.message_in(FieldStyle::Camel));
    let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, text))?;
    obj.set_named_property("code", code.as_str())?;
    obj.set_named_property("nativeError", detail_json(e))?;
    Ok(napi::Error::from(obj.to_unknown()))
}

// SPDX-License-Identifier: Apache-2.0
// Errors: one stable `ErrorCode` table, the crate `Error`, and per-operation views of it.

//! Errors.
//!
//! Every failure, local or from the service, is an [`Error`]. It carries a stable
//! [`ErrorCode`], the service's own code string, a message, the request id, the HTTP status,
//! the number of attempts made and whether retrying could help.
//!
//! [`ErrorCode`] is the one table every face maps from (`error/codes.rs`). Service codes are
//! made into each face's classes and statuses from [`ErrorCode::ALL`], so adding one is one
//! edit of the table; local codes are mapped by hand through [`LocalCode`], which the faces
//! match without a wildcard arm, so adding one breaks their builds until each one maps it.
//!
//! Each operation also has its own enum ([`BatchMeterUsageError`], …) whose variants are
//! named after the exceptions the model lists for that operation, as in the AWS SDK for Rust.

use std::fmt;
use std::time::Duration;

pub use crate::field::{FieldPath, FieldStyle, Segment};

// `Blame` is the usage meter's (bindings-c's build script reads this file too, so no
// `cfg(feature)` inside it).
#[cfg_attr(not(feature = "meter"), allow(dead_code))]
mod codes;
#[cfg(feature = "meter")]
pub(crate) use codes::Blame;
pub use codes::{ErrorCode, ErrorKind, LocalCode};

impl ErrorCode {
    /// `true` for the modeled exceptions of the service model.
    pub const fn is_modeled(self) -> bool {
        matches!(self.kind(), ErrorKind::Modeled)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// `e` and its causes on one line, `: ` between them (messages that keep what a wrapper's
/// own text leaves out: "error performing TLS handshake: invalid peer certificate: …").
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// What came back with a response, successful or not: request id, HTTP status and headers,
/// and how many attempts and how much retry delay the call took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMetadata {
    pub(crate) request_id: Option<String>,
    pub(crate) http_status: Option<u16>,
    pub(crate) http_headers: http::HeaderMap,
    pub(crate) attempts: u32,
    pub(crate) total_retry_delay: Duration,
    pub(crate) attempt_log: Vec<AttemptLog>,
    pub(crate) max_attempts_reached: bool,
}

/// One attempt of a call, as the call's `tracing` span and the faces' logs report it. Nothing
/// secret is in it: no credentials, headers or bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptLog {
    /// The operation (`BatchMeterUsage`).
    pub operation: &'static str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The service's request id, when a response carried one.
    pub request_id: Option<String>,
    /// From sending to the end of the response (or the failure).
    pub latency: Duration,
    /// `"ok"`, or the error's code (`ThrottlingException`, `Dispatch`, …).
    pub outcome: String,
    /// Why it was retried (`throttling`, `transient`, `timeout`, `clock skew`), when it was.
    pub retry_reason: Option<&'static str>,
    /// The wait before the next attempt, when it was retried.
    pub retry_delay: Option<Duration>,
}

impl ResponseMetadata {
    /// The service's request id (`x-amzn-RequestId`), when a response was received.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The HTTP status of the last response, when one was received.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }
    /// The headers of the last response: lower-cased names, in order (values that are not
    /// visible ASCII are skipped).
    pub fn http_headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.http_headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
    }
    /// Attempts made, the first included (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    /// Time spent waiting between attempts.
    pub fn total_retry_delay(&self) -> Duration {
        self.total_retry_delay
    }
    /// Whether a failed call's last attempt was the last one allowed, as botocore marks it
    /// (`MaxAttemptsReached`): in the standard and adaptive modes whatever the error, in the
    /// legacy mode only for an error it would have retried. Not when the retry quota or the
    /// operation timeout ended the retries early.
    pub fn max_attempts_reached(&self) -> bool {
        self.max_attempts_reached
    }
    /// Every attempt of the call, in order: what the faces log after the call returns.
    pub fn attempt_log(&self) -> &[AttemptLog] {
        &self.attempt_log
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's error: every failure of every operation.
///
/// One pointer wide (the details are boxed), so `Result<T, Error>` stays small on the
/// happy path.
pub struct Error(Box<Inner>);

struct Inner {
    code: ErrorCode,
    service_code: Option<String>,
    /// The message: for an error naming a field, `"{field}: {problem}"` in the default style.
    message: String,
    /// The field at fault, with its text in the default style.
    field: Option<(FieldPath, String)>,
    /// The message without the field, when the error names one.
    problem: Option<String>,
    retryable: bool,
    meta: ResponseMetadata,
    source: Option<BoxError>,
}

impl Error {
    /// Replaces the message with `f`'s text when it returns one (a service's message that
    /// echoes what the request was signed with).
    pub(crate) fn rewrite_message(&mut self, f: impl FnOnce(&str) -> Option<String>) {
        if let Some(m) = f(&self.0.message) {
            self.0.message = m;
        }
    }

    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            code,
            service_code: None,
            message: message.into(),
            field: None,
            problem: None,
            retryable: false,
            meta: ResponseMetadata::default(),
            source: None,
        }))
    }

    /// An input that violates the model: `field` is the path (`UsageRecords[3].Quantity`),
    /// `problem` what is wrong with it (`must be between 0 and 2147483647, got -1`).
    pub fn invalid_input(field: impl Into<FieldPath>, problem: impl fmt::Display) -> Self {
        Error::new(ErrorCode::InvalidInput, String::new()).with_field(field.into(), problem)
    }

    /// A modeled exception raised before sending, for a rule the model only documents and the
    /// service enforces with that very exception: nothing was sent; `field` names where.
    pub(crate) fn modeled_early(
        code: ErrorCode,
        field: FieldPath,
        problem: impl fmt::Display,
    ) -> Self {
        let mut e = Error::new(code, String::new()).with_field(field, problem);
        e.0.service_code = Some(code.as_str().to_owned());
        e
    }

    fn with_field(mut self, field: FieldPath, problem: impl fmt::Display) -> Self {
        let text = field.render(FieldStyle::default());
        let problem = problem.to_string();
        self.0.message = format!("{text}: {problem}");
        self.0.field = Some((field, text));
        self.0.problem = Some(problem);
        self
    }

    /// An unusable setting: `field` names it as its source spells it (`AWS_MAX_ATTEMPTS`,
    /// `max_attempts`), `message` says where it came from and what is wrong.
    pub fn invalid_setting(field: String, message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorCode::InvalidConfig, message);
        let path = FieldPath::member(field.clone());
        e.0.field = Some((path, field));
        e
    }

    pub(crate) fn invalid_config(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidConfig, message)
    }

    pub(crate) fn invalid_state(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidState, message)
    }

    /// The error of a call that panicked inside the library (`InvalidState`, with what the
    /// panic said): a face raises it as any other error, never as a panic its caller's
    /// error handling misses (Python's `PanicException` is a `BaseException`).
    pub fn from_panic(panic: &(dyn std::any::Any + Send)) -> Self {
        Error::invalid_state(format!("the call panicked: {}", panic_message(panic)))
    }

    pub(crate) fn credentials(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Credentials, message)
    }

    /// An error answered by the service: `service_code` is the sanitized code string.
    pub(crate) fn service(service_code: &str, message: String) -> Self {
        let code = ErrorCode::from_service_code(service_code).unwrap_or(ErrorCode::Unhandled);
        let mut e = Error::new(code, message);
        e.0.service_code = Some(service_code.to_owned());
        e
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    pub(crate) fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    pub(crate) fn with_meta(mut self, meta: ResponseMetadata) -> Self {
        self.0.meta = meta;
        self
    }

    pub(crate) fn meta(&self) -> &ResponseMetadata {
        &self.0.meta
    }
    pub(crate) fn meta_mut(&mut self) -> &mut ResponseMetadata {
        &mut self.0.meta
    }

    /// The stable code.
    pub fn error_code(&self) -> ErrorCode {
        self.0.code
    }

    /// The code string: the service's own code when the service answered
    /// (`"ThrottlingException"`, or an unknown one for [`ErrorCode::Unhandled`]), the local
    /// name otherwise (`"InvalidInput"`, `"ReadTimeout"`, …).
    pub fn code(&self) -> &str {
        self.0
            .service_code
            .as_deref()
            .unwrap_or(self.0.code.as_str())
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The message in a face's spelling of the field (`customerIdentifier: must not be
    /// empty` in [`FieldStyle::Camel`]); [`Error::message`] is [`FieldStyle::Snake`].
    pub fn message_in(&self, style: FieldStyle) -> String {
        match (&self.0.field, &self.0.problem) {
            (Some((path, _)), Some(problem)) => format!("{}: {problem}", path.render(style)),
            _ => self.0.message.clone(),
        }
    }

    /// The message without its field path (`must not be empty` of `dimension: must not be
    /// empty`), for a face that renders the path itself.
    pub fn problem(&self) -> &str {
        self.0.problem.as_deref().unwrap_or(&self.0.message)
    }

    /// For [`ErrorCode::InvalidInput`] (and a modeled exception raised before sending), the
    /// path of the offending field; for [`ErrorCode::InvalidConfig`], the setting as its
    /// source spells it (`AWS_MAX_ATTEMPTS`, `max_attempts`), when one setting is at fault.
    /// In [`FieldStyle::Snake`]; see [`Error::field_in`].
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_ref().map(|(_, text)| text.as_str())
    }

    /// [`Error::field`] in a face's spelling (`customerAwsAccountId` in [`FieldStyle::Camel`]).
    pub fn field_in(&self, style: FieldStyle) -> Option<String> {
        self.0.field.as_ref().map(|(path, _)| path.render(style))
    }

    /// [`Error::field`]'s structured path.
    pub fn field_path(&self) -> Option<&FieldPath> {
        self.0.field.as_ref().map(|(path, _)| path)
    }

    /// The service's request id, when a response was received.
    pub fn request_id(&self) -> Option<&str> {
        self.0.meta.request_id()
    }

    /// The HTTP status of the last response, when one was received.
    pub fn http_status(&self) -> Option<u16> {
        self.0.meta.http_status()
    }

    /// Attempts made, the first included (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        self.0.meta.attempts()
    }

    /// Time spent waiting between attempts.
    pub fn total_retry_delay(&self) -> Duration {
        self.0.meta.total_retry_delay()
    }

    /// Whether the last attempt was the last one allowed (see
    /// [`ResponseMetadata::max_attempts_reached`]).
    pub fn max_attempts_reached(&self) -> bool {
        self.0.meta.max_attempts_reached()
    }

    /// Everything known about the last response.
    pub fn metadata(&self) -> &ResponseMetadata {
        &self.0.meta
    }

    /// `true` when the same call could succeed if made again later (throttling, transient
    /// server errors, connection failures and timeouts).
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    /// `true` when the fault is the server's rather than the caller's.
    pub fn is_server_fault(&self) -> bool {
        self.0.code.is_server_fault() || self.0.meta.http_status.is_some_and(|s| s >= 500)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code())
            .field("message", &self.0.message)
            .field("request_id", &self.0.meta.request_id)
            .field("http_status", &self.0.meta.http_status)
            .field("attempts", &self.0.meta.attempts)
            .field("retryable", &self.0.retryable)
            .field("source", &self.0.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.0.message)?;
        if let Some(id) = &self.0.meta.request_id {
            write!(f, " (request id: {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|e| e as _)
    }
}

/// A builder was asked to `build()` without a required field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    field: &'static str,
}

impl BuildError {
    pub(crate) fn missing(field: &'static str) -> Self {
        BuildError { field }
    }
    /// The missing field's model name.
    pub fn field(&self) -> &str {
        self.field
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is required", self.field)
    }
}

impl std::error::Error for BuildError {}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Error::invalid_input(FieldPath::member(e.field), "is required")
    }
}

macro_rules! operation_errors {
    ($( $(#[doc = $doc:literal])* $op:ident { $($variant:ident),* $(,)? } )*) => {$(
        $(#[doc = $doc])*
        ///
        /// Each variant holds the full [`Error`] with its metadata; `Unhandled` holds every
        /// failure the model does not list for this operation (local, transport, other codes).
        #[non_exhaustive]
        #[derive(Debug)]
        pub enum $op {
            $(
                #[doc = concat!("The service answered `", stringify!($variant), "`.")]
                $variant(Error),
            )*
            /// Any other failure.
            Unhandled(Error),
        }

        impl $op {
            /// The underlying crate error.
            pub fn as_error(&self) -> &Error {
                match self { $( $op::$variant(e) => e, )* $op::Unhandled(e) => e }
            }
            /// The stable code. See [`Error::error_code`].
            pub fn error_code(&self) -> ErrorCode { self.as_error().error_code() }
            /// See [`Error::code`].
            pub fn code(&self) -> &str { self.as_error().code() }
            /// See [`Error::message`].
            pub fn message(&self) -> &str { self.as_error().message() }
            /// See [`Error::request_id`].
            pub fn request_id(&self) -> Option<&str> { self.as_error().request_id() }
            /// See [`Error::http_status`].
            pub fn http_status(&self) -> Option<u16> { self.as_error().http_status() }
            /// See [`Error::attempts`].
            pub fn attempts(&self) -> u32 { self.as_error().attempts() }
            /// See [`Error::is_retryable`].
            pub fn is_retryable(&self) -> bool { self.as_error().is_retryable() }
        }

        impl From<Error> for $op {
            fn from(e: Error) -> Self {
                match e.error_code() {
                    $( ErrorCode::$variant => $op::$variant(e), )*
                    _ => $op::Unhandled(e),
                }
            }
        }

        impl From<$op> for Error {
            fn from(e: $op) -> Self {
                match e { $( $op::$variant(e) => e, )* $op::Unhandled(e) => e }
            }
        }

        impl fmt::Display for $op {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.as_error().fmt(f) }
        }

        impl std::error::Error for $op {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(self.as_error())
            }
        }
    )*};
}

// One `is(code)` predicate instead of an `is_<variant>()` per variant (no proc-macro needed).
macro_rules! op_is {
    ($($op:ident),*) => {$(
        impl $op {
            /// `true` when this is the given code (`err.is(ErrorCode::ThrottlingException)`).
            pub fn is(&self, code: ErrorCode) -> bool { self.error_code() == code }
        }
    )*};
}

operation_errors! {
    /// Errors of `BatchMeterUsage`.
    BatchMeterUsageError {
        InternalServiceErrorException, InvalidProductCodeException, InvalidUsageDimensionException,
        InvalidTagException, InvalidUsageAllocationsException, InvalidCustomerIdentifierException,
        TimestampOutOfBoundsException, ThrottlingException, DisabledApiException, InvalidLicenseException,
    }
    /// Errors of `MeterUsage`.
    MeterUsageError {
        InternalServiceErrorException, InvalidProductCodeException, InvalidUsageDimensionException,
        InvalidTagException, InvalidUsageAllocationsException, InvalidEndpointRegionException,
        TimestampOutOfBoundsException, DuplicateRequestException, IdempotencyConflictException,
        ThrottlingException, CustomerNotEntitledException,
    }
    /// Errors of `ResolveCustomer`.
    ResolveCustomerError {
        InvalidTokenException, ExpiredTokenException, ThrottlingException,
        InternalServiceErrorException, DisabledApiException,
    }
    /// Errors of `RegisterUsage`.
    RegisterUsageError {
        InvalidProductCodeException, InvalidRegionException, InvalidPublicKeyVersionException,
        PlatformNotSupportedException, CustomerNotEntitledException, ThrottlingException,
        InternalServiceErrorException, DisabledApiException,
    }
}

op_is!(
    BatchMeterUsageError,
    MeterUsageError,
    ResolveCustomerError,
    RegisterUsageError
);

/// What a panic said, if it said it in text.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_u32()), "duplicate number {}", c.as_u32());
            assert!(c.as_u32() > 2, "0..=2 are reserved for the C face");
            assert_eq!(ErrorCode::from_u32(c.as_u32()), Some(c));
        }
    }

    #[test]
    fn service_codes_map_and_local_names_do_not() {
        assert_eq!(
            ErrorCode::from_service_code("ThrottlingException"),
            Some(ErrorCode::ThrottlingException)
        );
        assert_eq!(ErrorCode::from_service_code("InvalidInput"), None);
        assert_eq!(ErrorCode::from_service_code("SlowDown"), None);
        let e = Error::service("SlowDown", "slow".into());
        assert_eq!(e.error_code(), ErrorCode::Unhandled);
        assert_eq!(e.code(), "SlowDown");
    }

    #[test]
    fn model_exceptions_are_all_in_the_table() {
        let model: serde_json::Value = serde_json::from_str(include_str!(
            "../model/meteringmarketplace-2016-01-14.service-2.json"
        ))
        .unwrap();
        let shapes = model["shapes"].as_object().unwrap();
        let mut n = 0;
        for (name, shape) in shapes {
            if shape.get("exception").and_then(|v| v.as_bool()) == Some(true) {
                let code = ErrorCode::from_service_code(name)
                    .unwrap_or_else(|| panic!("{name} is not in ErrorCode"));
                assert!(code.is_modeled(), "{name}");
                assert_eq!(
                    code.is_server_fault(),
                    shape.get("fault").is_some(),
                    "{name} fault"
                );
                n += 1;
            }
        }
        let modeled = ErrorCode::ALL.iter().filter(|c| c.is_modeled()).count();
        assert_eq!(n, modeled);
    }

    #[test]
    fn operation_error_variants_follow_the_code() {
        let e = MeterUsageError::from(Error::service("DuplicateRequestException", "dup".into()));
        assert!(matches!(e, MeterUsageError::DuplicateRequestException(_)));
        assert!(e.is(ErrorCode::DuplicateRequestException));
        let e = MeterUsageError::from(Error::service("InvalidTokenException", "x".into()));
        assert!(matches!(e, MeterUsageError::Unhandled(_)));
    }
}

// SPDX-License-Identifier: Apache-2.0
// The core's `Error` as one uniffi error carrying every structured part.

use std::fmt;

use marketplace_metering::{Error, ErrorCode, FieldStyle};

/// Every code of the core's table. `from_core` matches without a wildcard arm: a code added
/// to the core breaks this build until it is mapped here, and the Kotlin `when` over this
/// enum (no `else`) breaks the Kotlin build until it has an exception class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum NativeErrorCode {
    InvalidInput,
    InvalidState,
    InvalidConfig,
    Credentials,
    Dispatch,
    ConnectTimeout,
    ReadTimeout,
    InvalidResponse,
    Unhandled,
    InternalServiceErrorException,
    InvalidProductCodeException,
    InvalidUsageDimensionException,
    InvalidTagException,
    InvalidUsageAllocationsException,
    InvalidCustomerIdentifierException,
    TimestampOutOfBoundsException,
    ThrottlingException,
    DisabledApiException,
    InvalidLicenseException,
    InvalidEndpointRegionException,
    DuplicateRequestException,
    IdempotencyConflictException,
    CustomerNotEntitledException,
    InvalidRegionException,
    InvalidPublicKeyVersionException,
    PlatformNotSupportedException,
    InvalidTokenException,
    ExpiredTokenException,
    UnrecognizedClientException,
    InvalidSignatureException,
    AccessDeniedException,
    ValidationException,
    SerializationException,
    UnknownOperationException,
    DryRunOperation,
    UnauthorizedException,
    IncompleteSignatureException,
    MissingAuthenticationTokenException,
    RequestExpired,
    ServiceUnavailableException,
}

impl NativeErrorCode {
    pub fn from_core(code: ErrorCode) -> Self {
        use NativeErrorCode as N;
        match code {
            ErrorCode::InvalidInput => N::InvalidInput,
            ErrorCode::InvalidState => N::InvalidState,
            ErrorCode::InvalidConfig => N::InvalidConfig,
            ErrorCode::Credentials => N::Credentials,
            ErrorCode::Dispatch => N::Dispatch,
            ErrorCode::ConnectTimeout => N::ConnectTimeout,
            ErrorCode::ReadTimeout => N::ReadTimeout,
            ErrorCode::InvalidResponse => N::InvalidResponse,
            ErrorCode::Unhandled => N::Unhandled,
            ErrorCode::InternalServiceErrorException => N::InternalServiceErrorException,
            ErrorCode::InvalidProductCodeException => N::InvalidProductCodeException,
            ErrorCode::InvalidUsageDimensionException => N::InvalidUsageDimensionException,
            ErrorCode::InvalidTagException => N::InvalidTagException,
            ErrorCode::InvalidUsageAllocationsException => N::InvalidUsageAllocationsException,
            ErrorCode::InvalidCustomerIdentifierException => N::InvalidCustomerIdentifierException,
            ErrorCode::TimestampOutOfBoundsException => N::TimestampOutOfBoundsException,
            ErrorCode::ThrottlingException => N::ThrottlingException,
            ErrorCode::DisabledApiException => N::DisabledApiException,
            ErrorCode::InvalidLicenseException => N::InvalidLicenseException,
            ErrorCode::InvalidEndpointRegionException => N::InvalidEndpointRegionException,
            ErrorCode::DuplicateRequestException => N::DuplicateRequestException,
            ErrorCode::IdempotencyConflictException => N::IdempotencyConflictException,
            ErrorCode::CustomerNotEntitledException => N::CustomerNotEntitledException,
            ErrorCode::InvalidRegionException => N::InvalidRegionException,
            ErrorCode::InvalidPublicKeyVersionException => N::InvalidPublicKeyVersionException,
            ErrorCode::PlatformNotSupportedException => N::PlatformNotSupportedException,
            ErrorCode::InvalidTokenException => N::InvalidTokenException,
            ErrorCode::ExpiredTokenException => N::ExpiredTokenException,
            ErrorCode::UnrecognizedClientException => N::UnrecognizedClientException,
            ErrorCode::InvalidSignatureException => N::InvalidSignatureException,
            ErrorCode::AccessDeniedException => N::AccessDeniedException,
            ErrorCode::ValidationException => N::ValidationException,
            ErrorCode::SerializationException => N::SerializationException,
            ErrorCode::UnknownOperationException => N::UnknownOperationException,
            ErrorCode::DryRunOperation => N::DryRunOperation,
            ErrorCode::UnauthorizedException => N::UnauthorizedException,
            ErrorCode::IncompleteSignatureException => N::IncompleteSignatureException,
            ErrorCode::MissingAuthenticationTokenException => {
                N::MissingAuthenticationTokenException
            }
            ErrorCode::RequestExpired => N::RequestExpired,
            ErrorCode::ServiceUnavailableException => N::ServiceUnavailableException,
        }
    }
}

/// Every code, in the core's table order (the Kotlin tests check one exception class each).
#[uniffi::export]
pub fn native_error_codes() -> Vec<NativeErrorCode> {
    ErrorCode::ALL
        .iter()
        .map(|c| NativeErrorCode::from_core(*c))
        .collect()
}

/// A failure, with everything the core's `Error` carries (never a secret: the core's
/// messages hold none).
#[derive(Debug, uniffi::Error)]
pub enum NativeError {
    Failure {
        error_code: NativeErrorCode,
        /// The service's code string, or the local code's name.
        code: String,
        /// The message (`message` would clash with Kotlin's `Throwable.message`).
        detail: String,
        /// The invalid field's path (`UsageRecords[3].Quantity`), for `InvalidInput`.
        field: Option<String>,
        request_id: Option<String>,
        http_status: Option<u16>,
        attempts: u32,
        retryable: bool,
    },
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NativeError::Failure { code, detail, .. } = self;
        write!(f, "{code}: {detail}")
    }
}

impl std::error::Error for NativeError {}

impl From<Error> for NativeError {
    fn from(e: Error) -> Self {
        NativeError::Failure {
            error_code: NativeErrorCode::from_core(e.error_code()),
            code: e.code().to_owned(),
            detail: e.message_in(FieldStyle::Camel),
            field: e.field_in(FieldStyle::Camel),
            request_id: e.request_id().map(str::to_owned),
            http_status: e.http_status(),
            attempts: e.attempts(),
            retryable: e.is_retryable(),
        }
    }
}

impl From<marketplace_metering::BuildError> for NativeError {
    fn from(e: marketplace_metering::BuildError) -> Self {
        Error::from(e).into()
    }
}

/// An `InvalidInput` naming `field`.
pub fn invalid(field: impl Into<String>, problem: &str) -> NativeError {
    Error::invalid_input(field.into(), problem).into()
}

/// An `InvalidState` of the face itself (a closed meter, a call cut by a runtime shutdown).
pub fn invalid_state(detail: &str) -> NativeError {
    NativeError::Failure {
        error_code: NativeErrorCode::InvalidState,
        code: "InvalidState".to_owned(),
        detail: detail.to_owned(),
        field: None,
        request_id: None,
        http_status: None,
        attempts: 0,
        retryable: false,
    }
}

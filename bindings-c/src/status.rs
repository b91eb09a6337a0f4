// SPDX-License-Identifier: Apache-2.0
// generated; do not edit: written by bindings-c/build.rs from core/src/error/codes.rs

use marketplace_metering::ErrorCode;

/// The result of every fallible call: `MM_STATUS_OK` (0) or why it failed.
///
/// Numbers are stable and never reused. 0–2 are this library's own; every other value is one
/// of the core's error codes with the same number (`mm_status_str` gives its name, the same
/// string as the Python and Node faces' `code`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum mm_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A Rust panic was caught at the boundary (a bug; please report it).
    Panic = 2,
    /// The input violates the model's constraints; nothing was sent. The message names the field.
    InvalidInput = 3,
    /// The library was used in a state that cannot work (for example a blocking call from
    /// inside an async runtime thread).
    InvalidState = 4,
    /// The configuration cannot produce an endpoint or a client (no region, FIPS with a
    /// custom endpoint, a malformed URL, …).
    InvalidConfig = 5,
    /// No credentials could be loaded.
    Credentials = 6,
    /// The request could not be sent or its response could not be read (connection refused,
    /// reset, DNS, TLS).
    Dispatch = 7,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout = 8,
    /// Waiting for the response took longer than the read timeout.
    ReadTimeout = 9,
    /// The service answered with a body that is not the JSON the protocol promises
    /// (truncated, HTML, garbage).
    InvalidResponse = 10,
    /// The service answered with an error code this library does not know; `Error::code()`
    /// gives the service's string.
    Unhandled = 11,
    /// A usage meter's write to the fleet store may or may not have committed: its answer
    /// was lost and the database stayed out of reach until the meter gave up. The meter
    /// keeps the event and writes it again under the same commit key at the next flush, so
    /// it is counted once either way: do not record it again. Only the end of the process
    /// before the database answers again loses it.
    OutcomeUnknown = 12,
    /// An internal error occurred; retry your request.
    InternalServiceErrorException = 100,
    /// The product code passed does not match the product code of the caller.
    InvalidProductCodeException = 101,
    /// The usage dimension does not match one of the product's dimensions.
    InvalidUsageDimensionException = 102,
    /// The tag is invalid, or the number of tags is greater than 5.
    InvalidTagException = 103,
    /// Sum of allocated usage quantities is not equal to the usage quantity.
    InvalidUsageAllocationsException = 104,
    /// You have metered usage for a CustomerIdentifier that does not exist.
    InvalidCustomerIdentifierException = 105,
    /// The timestamp value passed in the request is older than allowed.
    TimestampOutOfBoundsException = 106,
    /// The calls to the API are throttled.
    ThrottlingException = 107,
    /// The API is disabled in the Region.
    DisabledApiException = 108,
    /// The license is invalid.
    InvalidLicenseException = 109,
    /// The endpoint being called is in a Region different from your EC2 instance, ECS task or EKS pod.
    InvalidEndpointRegionException = 110,
    /// A metering record has already been emitted for the same resource, usage dimension and
    /// time, with a different quantity.
    DuplicateRequestException = 111,
    /// The ClientToken is being used for multiple requests with different parameters.
    IdempotencyConflictException = 112,
    /// The customer is not entitled to the product.
    CustomerNotEntitledException = 113,
    /// RegisterUsage must be called in the same Region the ECS task was launched in.
    InvalidRegionException = 114,
    /// The public key version is invalid.
    InvalidPublicKeyVersionException = 115,
    /// AWS Marketplace does not support metering usage from the underlying platform.
    PlatformNotSupportedException = 116,
    /// The registration token is invalid.
    InvalidTokenException = 117,
    /// The submitted registration token has expired.
    ExpiredTokenException = 118,
    /// The access key id is not known to the service.
    UnrecognizedClientException = 200,
    /// The request signature does not match.
    InvalidSignatureException = 201,
    /// The caller is not allowed to call this operation.
    AccessDeniedException = 202,
    /// The service rejected the input (server-side validation).
    ValidationException = 203,
    /// The service could not read the request body.
    SerializationException = 204,
    /// The `X-Amz-Target` names no operation of this service.
    UnknownOperationException = 205,
    /// A DryRun request would have succeeded.
    DryRunOperation = 206,
    /// A DryRun request would have failed for lack of permission.
    UnauthorizedException = 207,
    /// The Authorization header is malformed or incomplete.
    IncompleteSignatureException = 208,
    /// The request carries no credentials.
    MissingAuthenticationTokenException = 209,
    /// The signed request is too old or too far in the future.
    RequestExpired = 210,
    /// The service is unavailable; retry.
    ServiceUnavailableException = 211,
}

/// The `mm_status` of a core error code.
pub const fn status_of(code: ErrorCode) -> mm_status {
    use mm_status as S;
    use ErrorCode as C;
    match code {
        C::InvalidInput => S::InvalidInput,
        C::InvalidState => S::InvalidState,
        C::InvalidConfig => S::InvalidConfig,
        C::Credentials => S::Credentials,
        C::Dispatch => S::Dispatch,
        C::ConnectTimeout => S::ConnectTimeout,
        C::ReadTimeout => S::ReadTimeout,
        C::InvalidResponse => S::InvalidResponse,
        C::Unhandled => S::Unhandled,
        C::OutcomeUnknown => S::OutcomeUnknown,
        C::InternalServiceErrorException => S::InternalServiceErrorException,
        C::InvalidProductCodeException => S::InvalidProductCodeException,
        C::InvalidUsageDimensionException => S::InvalidUsageDimensionException,
        C::InvalidTagException => S::InvalidTagException,
        C::InvalidUsageAllocationsException => S::InvalidUsageAllocationsException,
        C::InvalidCustomerIdentifierException => S::InvalidCustomerIdentifierException,
        C::TimestampOutOfBoundsException => S::TimestampOutOfBoundsException,
        C::ThrottlingException => S::ThrottlingException,
        C::DisabledApiException => S::DisabledApiException,
        C::InvalidLicenseException => S::InvalidLicenseException,
        C::InvalidEndpointRegionException => S::InvalidEndpointRegionException,
        C::DuplicateRequestException => S::DuplicateRequestException,
        C::IdempotencyConflictException => S::IdempotencyConflictException,
        C::CustomerNotEntitledException => S::CustomerNotEntitledException,
        C::InvalidRegionException => S::InvalidRegionException,
        C::InvalidPublicKeyVersionException => S::InvalidPublicKeyVersionException,
        C::PlatformNotSupportedException => S::PlatformNotSupportedException,
        C::InvalidTokenException => S::InvalidTokenException,
        C::ExpiredTokenException => S::ExpiredTokenException,
        C::UnrecognizedClientException => S::UnrecognizedClientException,
        C::InvalidSignatureException => S::InvalidSignatureException,
        C::AccessDeniedException => S::AccessDeniedException,
        C::ValidationException => S::ValidationException,
        C::SerializationException => S::SerializationException,
        C::UnknownOperationException => S::UnknownOperationException,
        C::DryRunOperation => S::DryRunOperation,
        C::UnauthorizedException => S::UnauthorizedException,
        C::IncompleteSignatureException => S::IncompleteSignatureException,
        C::MissingAuthenticationTokenException => S::MissingAuthenticationTokenException,
        C::RequestExpired => S::RequestExpired,
        C::ServiceUnavailableException => S::ServiceUnavailableException,
    }
}

// SPDX-License-Identifier: Apache-2.0
// One exception class per code of the core's error table, under MarketplaceMeteringException.

package dev.marketplacemetering

import dev.marketplacemetering.internal.NativeErrorCode
import dev.marketplacemetering.internal.NativeException

/**
 * Every failure of this library, local or from the service: one subclass per error code.
 *
 * [code] is the service's exception name (`ThrottlingException`) or the local code's name
 * (`InvalidInput`); [field] names the invalid member for [InvalidInputException]
 * (`UsageRecords[3].Quantity`); [requestId], [httpStatus] and [attempts] say what happened on
 * the wire; [isRetryable] whether retrying could help. Messages never contain a secret.
 */
open class MarketplaceMeteringException internal constructor(
    /** The service's exception name, or the local code's name. */
    val code: String,
    message: String,
    /** The invalid field's path, for [InvalidInputException]. */
    val field: String?,
    /** The service's request id (`x-amzn-RequestId`), when a response was received. */
    val requestId: String?,
    /** The HTTP status of the last response, when one was received. */
    val httpStatus: Int?,
    /** Attempts made, the first included (0 when nothing was sent). */
    val attempts: Int,
    /** Whether retrying the call could succeed. */
    val isRetryable: Boolean,
) : RuntimeException(message) {
    internal constructor(e: NativeException.Failure) : this(
        e.code, e.detail, e.field, e.requestId, e.httpStatus?.toInt(), e.attempts.toInt(), e.retryable,
    )

    override fun toString(): String = "${javaClass.name}: $message"
}

/** `InvalidInput` (local): The input violates the model's constraints; nothing was sent. The message names the field. */
class InvalidInputException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidState` (local): The library was used in a state that cannot work (for example a blocking call from inside an async runtime thread). */
class InvalidStateException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidConfig` (local): The configuration cannot produce an endpoint or a client (no region, FIPS with a custom endpoint, a malformed URL, …). */
class InvalidConfigException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `Credentials` (local): No credentials could be loaded. */
class CredentialsException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `Dispatch` (local): The request could not be sent or its response could not be read (connection refused, reset, DNS, TLS). */
class DispatchException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `ConnectTimeout` (local): Connecting took longer than the connect timeout. */
class ConnectTimeoutException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `ReadTimeout` (local): Waiting for the response took longer than the read timeout. */
class ReadTimeoutException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidResponse` (local): The service answered with a body that is not the JSON the protocol promises (truncated, HTML, garbage). */
class InvalidResponseException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `Unhandled` (local): The service answered with an error code this library does not know; `Error::code()` gives the service's string. */
class UnhandledException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InternalServiceErrorException` (modeled): An internal error occurred; retry your request. */
class InternalServiceErrorException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidProductCodeException` (modeled): The product code passed does not match the product code of the caller. */
class InvalidProductCodeException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidUsageDimensionException` (modeled): The usage dimension does not match one of the product's dimensions. */
class InvalidUsageDimensionException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidTagException` (modeled): The tag is invalid, or the number of tags is greater than 5. */
class InvalidTagException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidUsageAllocationsException` (modeled): Sum of allocated usage quantities is not equal to the usage quantity. */
class InvalidUsageAllocationsException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidCustomerIdentifierException` (modeled): You have metered usage for a CustomerIdentifier that does not exist. */
class InvalidCustomerIdentifierException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `TimestampOutOfBoundsException` (modeled): The timestamp value passed in the request is older than allowed. */
class TimestampOutOfBoundsException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `ThrottlingException` (modeled): The calls to the API are throttled. */
class ThrottlingException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `DisabledApiException` (modeled): The API is disabled in the Region. */
class DisabledApiException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidLicenseException` (modeled): The license is invalid. */
class InvalidLicenseException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidEndpointRegionException` (modeled): The endpoint being called is in a Region different from your EC2 instance, ECS task or EKS pod. */
class InvalidEndpointRegionException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `DuplicateRequestException` (modeled): A metering record has already been emitted for the same resource, usage dimension and time, with a different quantity. */
class DuplicateRequestException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `IdempotencyConflictException` (modeled): The ClientToken is being used for multiple requests with different parameters. */
class IdempotencyConflictException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `CustomerNotEntitledException` (modeled): The customer is not entitled to the product. */
class CustomerNotEntitledException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidRegionException` (modeled): RegisterUsage must be called in the same Region the ECS task was launched in. */
class InvalidRegionException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidPublicKeyVersionException` (modeled): The public key version is invalid. */
class InvalidPublicKeyVersionException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `PlatformNotSupportedException` (modeled): AWS Marketplace does not support metering usage from the underlying platform. */
class PlatformNotSupportedException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidTokenException` (modeled): The registration token is invalid. */
class InvalidTokenException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `ExpiredTokenException` (modeled): The submitted registration token has expired. */
class ExpiredTokenException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `UnrecognizedClientException` (common): The access key id is not known to the service. */
class UnrecognizedClientException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `InvalidSignatureException` (common): The request signature does not match. */
class InvalidSignatureException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `AccessDeniedException` (common): The caller is not allowed to call this operation. */
class AccessDeniedException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `ValidationException` (common): The service rejected the input (server-side validation). */
class ValidationException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `SerializationException` (common): The service could not read the request body. */
class SerializationException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `UnknownOperationException` (common): The `X-Amz-Target` names no operation of this service. */
class UnknownOperationException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `DryRunOperation` (common): A DryRun request would have succeeded. */
class DryRunOperationException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `UnauthorizedException` (common): A DryRun request would have failed for lack of permission. */
class UnauthorizedException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `IncompleteSignatureException` (common): The Authorization header is malformed or incomplete. */
class IncompleteSignatureException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `MissingAuthenticationTokenException` (common): The request carries no credentials. */
class MissingAuthenticationTokenException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `RequestExpired` (common): The signed request is too old or too far in the future. */
class RequestExpiredException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/** `ServiceUnavailableException` (common): The service is unavailable; retry. */
class ServiceUnavailableException internal constructor(e: NativeException.Failure) : MarketplaceMeteringException(e)

/**
 * The face's exception for a native failure. A `when` with no `else`: a code added to the
 * core (and so to [NativeErrorCode]) does not compile until it has its class here.
 */
internal fun NativeException.toPublic(): MarketplaceMeteringException = when (this) {
    is NativeException.Failure -> when (errorCode) {
        NativeErrorCode.INVALID_INPUT -> InvalidInputException(this)
        NativeErrorCode.INVALID_STATE -> InvalidStateException(this)
        NativeErrorCode.INVALID_CONFIG -> InvalidConfigException(this)
        NativeErrorCode.CREDENTIALS -> CredentialsException(this)
        NativeErrorCode.DISPATCH -> DispatchException(this)
        NativeErrorCode.CONNECT_TIMEOUT -> ConnectTimeoutException(this)
        NativeErrorCode.READ_TIMEOUT -> ReadTimeoutException(this)
        NativeErrorCode.INVALID_RESPONSE -> InvalidResponseException(this)
        NativeErrorCode.UNHANDLED -> UnhandledException(this)
        NativeErrorCode.INTERNAL_SERVICE_ERROR_EXCEPTION -> InternalServiceErrorException(this)
        NativeErrorCode.INVALID_PRODUCT_CODE_EXCEPTION -> InvalidProductCodeException(this)
        NativeErrorCode.INVALID_USAGE_DIMENSION_EXCEPTION -> InvalidUsageDimensionException(this)
        NativeErrorCode.INVALID_TAG_EXCEPTION -> InvalidTagException(this)
        NativeErrorCode.INVALID_USAGE_ALLOCATIONS_EXCEPTION -> InvalidUsageAllocationsException(this)
        NativeErrorCode.INVALID_CUSTOMER_IDENTIFIER_EXCEPTION -> InvalidCustomerIdentifierException(this)
        NativeErrorCode.TIMESTAMP_OUT_OF_BOUNDS_EXCEPTION -> TimestampOutOfBoundsException(this)
        NativeErrorCode.THROTTLING_EXCEPTION -> ThrottlingException(this)
        NativeErrorCode.DISABLED_API_EXCEPTION -> DisabledApiException(this)
        NativeErrorCode.INVALID_LICENSE_EXCEPTION -> InvalidLicenseException(this)
        NativeErrorCode.INVALID_ENDPOINT_REGION_EXCEPTION -> InvalidEndpointRegionException(this)
        NativeErrorCode.DUPLICATE_REQUEST_EXCEPTION -> DuplicateRequestException(this)
        NativeErrorCode.IDEMPOTENCY_CONFLICT_EXCEPTION -> IdempotencyConflictException(this)
        NativeErrorCode.CUSTOMER_NOT_ENTITLED_EXCEPTION -> CustomerNotEntitledException(this)
        NativeErrorCode.INVALID_REGION_EXCEPTION -> InvalidRegionException(this)
        NativeErrorCode.INVALID_PUBLIC_KEY_VERSION_EXCEPTION -> InvalidPublicKeyVersionException(this)
        NativeErrorCode.PLATFORM_NOT_SUPPORTED_EXCEPTION -> PlatformNotSupportedException(this)
        NativeErrorCode.INVALID_TOKEN_EXCEPTION -> InvalidTokenException(this)
        NativeErrorCode.EXPIRED_TOKEN_EXCEPTION -> ExpiredTokenException(this)
        NativeErrorCode.UNRECOGNIZED_CLIENT_EXCEPTION -> UnrecognizedClientException(this)
        NativeErrorCode.INVALID_SIGNATURE_EXCEPTION -> InvalidSignatureException(this)
        NativeErrorCode.ACCESS_DENIED_EXCEPTION -> AccessDeniedException(this)
        NativeErrorCode.VALIDATION_EXCEPTION -> ValidationException(this)
        NativeErrorCode.SERIALIZATION_EXCEPTION -> SerializationException(this)
        NativeErrorCode.UNKNOWN_OPERATION_EXCEPTION -> UnknownOperationException(this)
        NativeErrorCode.DRY_RUN_OPERATION -> DryRunOperationException(this)
        NativeErrorCode.UNAUTHORIZED_EXCEPTION -> UnauthorizedException(this)
        NativeErrorCode.INCOMPLETE_SIGNATURE_EXCEPTION -> IncompleteSignatureException(this)
        NativeErrorCode.MISSING_AUTHENTICATION_TOKEN_EXCEPTION -> MissingAuthenticationTokenException(this)
        NativeErrorCode.REQUEST_EXPIRED -> RequestExpiredException(this)
        NativeErrorCode.SERVICE_UNAVAILABLE_EXCEPTION -> ServiceUnavailableException(this)
    }
}

/** Runs [block], translating a native failure into the face's exception. */
internal inline fun <T> translating(block: () -> T): T =
    try {
        block()
    } catch (e: NativeException) {
        throw e.toPublic()
    }

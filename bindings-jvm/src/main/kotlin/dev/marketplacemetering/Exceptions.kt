// SPDX-License-Identifier: Apache-2.0
// MarketplaceMeteringException; its subclasses, one per code, are generated in ErrorClasses.kt.

package dev.marketplacemetering

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

/** Runs [block], translating a native failure into the face's exception. */
internal inline fun <T> translating(block: () -> T): T =
    try {
        block()
    } catch (e: NativeException) {
        throw e.toPublic()
    }

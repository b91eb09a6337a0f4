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

/**
 * Runs [block] like [translating]; a string that UTF-8 cannot encode (Java strings may hold an
 * unpaired surrogate; the generated converters then throw [java.nio.charset.CharacterCodingException])
 * becomes an [InvalidInputException] naming the first such string of [strings] (path to value).
 */
internal inline fun <T> translating(strings: () -> Sequence<Pair<String, String?>>, block: () -> T): T =
    try {
        translating(block)
    } catch (e: java.nio.charset.CharacterCodingException) {
        throw unencodable(strings().firstOrNull { it.second?.isWellFormedUtf16() == false }?.first, e)
    }

/** Whether every surrogate of this string is one of a pair (what UTF-8 can encode). */
internal fun String.isWellFormedUtf16(): Boolean {
    var i = 0
    while (i < length) {
        val c = this[i]
        if (Character.isHighSurrogate(c)) {
            if (i + 1 >= length || !Character.isLowSurrogate(this[i + 1])) return false
            i += 2
        } else if (Character.isLowSurrogate(c)) {
            return false
        } else {
            i++
        }
    }
    return true
}

/** The face's InvalidInputException for a string of [field] that UTF-8 cannot encode. */
internal fun unencodable(field: String?, cause: Throwable): MarketplaceMeteringException {
    val problem = "is not valid Unicode (an unpaired UTF-16 surrogate)"
    val number = dev.marketplacemetering.internal.nativeErrorCodes().first { it.code == "InvalidInput" }.number
    return NativeException.Failure(
        number, "InvalidInput", if (field != null) "$field: $problem" else "a string $problem",
        field, null, null, 0u, false,
    ).toPublic().also { it.initCause(cause) }
}

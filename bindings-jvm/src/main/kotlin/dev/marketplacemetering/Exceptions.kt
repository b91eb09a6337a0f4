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
        throw unencodable(strings(), e)
    }

/**
 * Runs [block] like [translating] for a client's or a meter's settings: a string of
 * [strings] (setting to value) that UTF-8 cannot encode is an [InvalidConfigException] naming
 * the setting, as every other refused setting is (its value is never shown).
 */
internal inline fun <T> translatingSettings(strings: () -> Sequence<Pair<String, String?>>, block: () -> T): T =
    try {
        translating(block)
    } catch (e: java.nio.charset.CharacterCodingException) {
        val (field, index) = strings().firstNotNullOfOrNull { (name, value) ->
            value?.loneSurrogateIndex()?.takeIf { it >= 0 }?.let { name to it }
        } ?: throw unencodable(emptySequence(), e)
        val number = dev.marketplacemetering.internal.nativeErrorCodes().first { it.code == "InvalidConfig" }.number
        throw NativeException.Failure(
            number, "InvalidConfig", "$field: is not well-formed Unicode: a lone surrogate at index $index",
            field, null, null, 0u, false,
        ).toPublic().also { it.initCause(e) }
    }

/** The index of this string's first surrogate that is not one of a pair (what UTF-8 cannot encode), or -1. */
internal fun String.loneSurrogateIndex(): Int {
    var i = 0
    while (i < length) {
        val c = this[i]
        if (Character.isHighSurrogate(c)) {
            if (i + 1 >= length || !Character.isLowSurrogate(this[i + 1])) return i
            i += 2
        } else if (Character.isLowSurrogate(c)) {
            return i
        } else {
            i++
        }
    }
    return -1
}

/**
 * The core's InvalidInputException for the first string of [strings] (path to value) that
 * UTF-8 cannot encode, naming it and the index of its lone surrogate.
 */
internal fun unencodable(strings: Sequence<Pair<String, String?>>, cause: Throwable): MarketplaceMeteringException {
    val (field, index) = strings.firstNotNullOfOrNull { (path, value) ->
        value?.loneSurrogateIndex()?.takeIf { it >= 0 }?.let { path to it }
    } ?: run {
        // A string the call does not list: no field or index to name.
        val number = dev.marketplacemetering.internal.nativeErrorCodes().first { it.code == "InvalidInput" }.number
        return NativeException.Failure(
            number, "InvalidInput", "a string is not well-formed Unicode: a lone surrogate",
            null, null, null, 0u, false,
        ).toPublic().also { it.initCause(cause) }
    }
    return try {
        dev.marketplacemetering.internal.nativeLoneSurrogate(field, index.toUInt())
        throw IllegalStateException("the core did not refuse a lone surrogate")
    } catch (e: NativeException) {
        e.toPublic().also { it.initCause(cause) }
    }
}

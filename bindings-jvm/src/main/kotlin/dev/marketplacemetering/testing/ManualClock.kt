// SPDX-License-Identifier: Apache-2.0
package dev.marketplacemetering.testing

import dev.marketplacemetering.NativeLibrary
import dev.marketplacemetering.internal.NativeManualClock
import java.time.Duration
import java.time.Instant

/**
 * A clock set by hand for a [dev.marketplacemetering.UsageMeter] in tests: hours seal when
 * the test moves it, not when real time passes.
 */
class ManualClock(start: Instant) {
    internal val native = NativeLibrary.ensurePrepared().let { NativeManualClock(start.epochSecond) }

    /** The clock's time (whole seconds). */
    fun now(): Instant = Instant.ofEpochSecond(native.now())

    /** Sets the time. */
    fun set(time: Instant) = native.set(time.epochSecond)

    /** Moves the time by [delta] (negative: back). */
    fun advance(delta: Duration) = native.advance(delta.seconds)
}

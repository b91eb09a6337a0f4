// SPDX-License-Identifier: Apache-2.0
// What the interrupt tests of the client's and the meter's blocking calls share.

package dev.marketplacemetering

import dev.marketplacemetering.testing.Emulator
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import java.util.concurrent.CancellationException

/**
 * Runs [call] on a thread of its own while [emulator] holds its answer for [delaySeconds],
 * interrupts that thread once the request has reached the emulator, and asserts that [call]
 * ended within [joinMillis] with [CancellationException], its thread still interrupted.
 */
internal fun assertAnInterruptEnds(
    emulator: Emulator,
    delaySeconds: Double,
    joinMillis: Long,
    what: String,
    call: () -> Unit,
) {
    emulator.pushFault("""{"kind":"delay","seconds":$delaySeconds}""")
    var thrown: Throwable? = null
    var stillInterrupted = false
    val worker = Thread {
        try {
            call()
        } catch (e: Throwable) {
            thrown = e
        }
        stillInterrupted = Thread.currentThread().isInterrupted
    }
    worker.start()
    val deadline = System.nanoTime() + 10_000_000_000
    while (emulator.pendingFaults() > 0 && System.nanoTime() < deadline) Thread.sleep(1)
    worker.interrupt()
    worker.join(joinMillis)
    assertFalse(worker.isAlive, "the $what outlived its thread's interrupt")
    assertTrue(thrown is CancellationException, "$thrown")
    assertTrue(stillInterrupted, "the thread lost its interrupt status")
}

/** Asserts that [call], made by a thread interrupted before it, throws [CancellationException]; the status is kept, then cleared. */
internal fun assertRefusedWhenInterrupted(call: () -> Unit) {
    Thread.currentThread().interrupt()
    try {
        assertThrows(CancellationException::class.java) { call() }
    } finally {
        assertTrue(Thread.interrupted(), "the thread lost its interrupt status")
    }
}

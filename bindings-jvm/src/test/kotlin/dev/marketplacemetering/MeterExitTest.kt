// SPDX-License-Identifier: Apache-2.0
// A JVM that ends while its application still records (Spring's graceful shutdown drains
// requests in its own shutdown hook): what a memory meter acknowledged is in its store.

package dev.marketplacemetering

import dev.marketplacemetering.testing.Emulator
import dev.marketplacemetering.testing.ManualClock
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import java.time.Duration
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.concurrent.TimeUnit

/** The child JVM: a memory meter never closed, recording before and during shutdown. */
object MeterExitChild {
    @JvmStatic
    fun main(args: Array<String>) {
        val (endpoint, path, baseText) = args
        val client = MarketplaceMeteringClient {
            region = Emulator.REGION
            endpointUrl = endpoint
            credentialsProvider = StaticCredentialsProvider(Emulator.ACCESS_KEY_ID, Emulator.SECRET_ACCESS_KEY)
        }
        val meter = UsageMeter(client) {
            this.path = Path.of(path)
            productCode = Emulator.PRODUCT_CODE
            durability = Durability.MEMORY
            flushInterval = Duration.ZERO
            clock = ManualClock(Instant.ofEpochSecond(baseText.toLong() + 600))
        }
        meter.record("cust-1", "users", 2)
        // An application's hook, still serving: it records after the library's hook ran.
        Runtime.getRuntime().addShutdownHook(Thread {
            Thread.sleep(500)
            meter.record("cust-1", "users", 5)
        })
        System.exit(0)
    }
}

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MeterExitTest {
    private val emulator = Emulator()
    private val client = emulator.client()

    @AfterAll
    fun stop() {
        client.close()
        emulator.close()
    }

    // The library's shutdown hook wrote each buffer once, as the JVM's shutdown began: what an
    // application's hook recorded afterwards (Spring draining its requests) was acknowledged
    // and lost with the process. From that hook on, every record is written as it is made.
    @Test
    fun `a record made while the JVM shuts down is written to the store`(@TempDir dir: Path) {
        val base = Instant.now().truncatedTo(ChronoUnit.HOURS).minus(Duration.ofHours(2)).epochSecond
        val db = dir.resolve("exit.db")
        val java = ProcessHandle.current().info().command().orElse("java")
        val proc = ProcessBuilder(
            java, "-cp", System.getProperty("java.class.path"), MeterExitChild::class.java.name,
            emulator.endpoint, db.toString(), base.toString(),
        ).redirectError(ProcessBuilder.Redirect.INHERIT).redirectOutput(ProcessBuilder.Redirect.DISCARD).start()
        try {
            assertTrue(proc.waitFor(60, TimeUnit.SECONDS), "the child JVM did not end")
        } finally {
            proc.destroyForcibly()
        }
        assertEquals(0, proc.exitValue())
        UsageMeter(client) {
            path = db
            productCode = Emulator.PRODUCT_CODE
            flushInterval = Duration.ZERO
            clock = ManualClock(Instant.ofEpochSecond(base + 3600 + 400))
        }.use { m -> assertEquals(1L, m.flush().acked) }
        assertEquals(listOf(7L), emulator.ledger().map { it.quantity })
    }
}

// SPDX-License-Identifier: Apache-2.0
// kill -9 of a JVM recording into a SQLite store (while recording, and around a flush), then
// a restart on the same file: every customer-hour is billed exactly once, with every usage
// the dead JVM had recorded, checked against the emulator's ledger. And a JVM that ends while
// its application still records (Spring's graceful shutdown drains requests in its own
// shutdown hook): what a memory meter acknowledged is in its store.

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

/** The child JVM: three hours of usage, each hour sealed and flushed as the clock moves on. */
object MeterCrashChild {
    const val ROUNDS = 3
    const val PER_ROUND = 40

    @JvmStatic
    fun main(args: Array<String>) {
        val (endpoint, path, baseText) = args
        val base = baseText.toLong()
        // "no-fsync": commits that survive a killed process but not a failed machine.
        val powerLossSafe = args.getOrNull(3) != "no-fsync"
        val client = MarketplaceMeteringClient {
            region = Emulator.REGION
            endpointUrl = endpoint
            credentialsProvider = StaticCredentialsProvider(Emulator.ACCESS_KEY_ID, Emulator.SECRET_ACCESS_KEY)
        }
        val clock = ManualClock(Instant.ofEpochSecond(base + 600))
        val meter = UsageMeter(client) {
            this.path = Path.of(path)
            productCode = Emulator.PRODUCT_CODE
            grace = Duration.ofSeconds(60)
            flushInterval = Duration.ZERO
            this.clock = clock
            this.powerLossSafe = powerLossSafe
        }
        println("ready")
        for (round in 0 until ROUNDS) {
            clock.set(Instant.ofEpochSecond(base + round * 3600L + 600))
            for (i in 0 until PER_ROUND) {
                meter.record("cust-${1 + i % 5}", "users", 1)
                println("R $round")
            }
            clock.set(Instant.ofEpochSecond(base + (round + 1) * 3600L + 120))
            meter.flush()
            println("F $round")
        }
        println("done")
        Thread.sleep(60_000)
    }
}

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
class MeterCrashTest {
    private val emulator = Emulator()
    private val client = emulator.client()

    @AfterAll
    fun stop() {
        client.close()
        emulator.close()
    }

    /** A child JVM running `main`'s class with the emulator's endpoint and `args`. */
    private fun javaChild(main: Any, vararg args: String): ProcessBuilder {
        val java = ProcessHandle.current().info().command().orElse("java")
        return ProcessBuilder(
            java, "-cp", System.getProperty("java.class.path"), main::class.java.name, emulator.endpoint, *args,
        ).redirectError(ProcessBuilder.Redirect.INHERIT)
    }

    private fun child(db: Path, base: Long, out: Path, fsync: Boolean): Process =
        javaChild(MeterCrashChild, db.toString(), base.toString(), if (fsync) "fsync" else "no-fsync")
            .redirectOutput(out.toFile()).start()

    @Test
    fun `kill -9 then restart bills each customer-hour exactly once`(@TempDir dir: Path) {
        val base = Instant.now().truncatedTo(ChronoUnit.HOURS).minus(Duration.ofHours(4)).epochSecond
        // Kill points: mid-recording; inside the first flush, after the service billed the hour
        // but before its answer arrived (the emulator trickles the response); in the third hour;
        // and mid-recording again with powerLossSafe = false (no fsync per commit, which must
        // lose nothing to a killed process).
        for ((trial, killAfter) in listOf(15, 40, 95, 60).withIndex()) {
            emulator.reset()
            val billedBeforeAck = trial == 1
            if (billedBeforeAck) emulator.pushFault("""{"kind":"trickle","interval":0.5}""")
            val db = dir.resolve("crash-$trial.db")
            val log = dir.resolve("child-$trial.out")
            val proc = child(db, base, log, fsync = trial != 3)
            // The child's lines, from its output file (a pipe's reader races the exit reaper).
            fun lines() = if (java.nio.file.Files.exists(log)) java.nio.file.Files.readAllLines(log).filter { it != "ready" } else emptyList()
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
            while (lines().size < killAfter && proc.isAlive && System.nanoTime() < deadline) Thread.sleep(2)
            if (billedBeforeAck) {
                while (emulator.ledger().isEmpty() && System.nanoTime() < deadline) Thread.sleep(2)
                assertEquals(5, emulator.ledger().size, "billed, the answer still on its way")
            }
            if (trial == 0) {
                // While the child holds the store, a second meter on it fails at once.
                val e = runCatching { UsageMeter(client) { path = db; productCode = Emulator.PRODUCT_CODE } }.exceptionOrNull()
                assertTrue(e is MarketplaceMeteringException, "$e")
                assertTrue(e!!.message!!.contains(proc.pid().toString()), e.message)
            }
            proc.destroyForcibly() // SIGKILL
            assertTrue(proc.waitFor(30, TimeUnit.SECONDS))
            assertEquals(137, proc.exitValue(), "killed by SIGKILL")
            val printed = lines().filter { !it.isEmpty() && (it.startsWith("R ") || it.startsWith("F ")) }
            // A line cut by the kill is not counted: its record is the one "in flight".
            val recorded = IntArray(MeterCrashChild.ROUNDS)
            printed.filter { it.matches(Regex("R \\d+")) }.forEach { recorded[it.substring(2).toInt()]++ }
            val flushed = printed.count { it.matches(Regex("F \\d+")) }

            // Restart on the same file, the clock past every hour the child used.
            val clock = ManualClock(Instant.ofEpochSecond(base + MeterCrashChild.ROUNDS * 3600L + 120))
            UsageMeter(client) {
                path = db
                productCode = Emulator.PRODUCT_CODE
                grace = Duration.ofSeconds(60)
                flushInterval = Duration.ZERO
                this.clock = clock
            }.use { m ->
                m.flush()
                val s = m.status()
                assertEquals(0L, s.pending + s.sealed, "$s")
            }

            val ledger = emulator.ledger()
            val keys = ledger.map { Triple(it.customerIdentifier, it.dimension, it.hour) }
            assertEquals(keys.size, keys.toSet().size, "one bill per customer-hour: $ledger")
            for (round in 0 until MeterCrashChild.ROUNDS) {
                val hour = base + round * 3600L
                val billed = ledger.filter { it.hour == hour }.sumOf { it.quantity }
                // Every record the child saw return is billed; the one in flight at the kill
                // may be too (it can be durable before the child printed it).
                assertTrue(
                    billed == recorded[round].toLong() || billed == recorded[round] + 1L,
                    "trial $trial hour $round: billed $billed, recorded ${recorded[round]}",
                )
            }
            assertTrue(ledger.isNotEmpty())
            println("crash trial $trial: killed after $killAfter lines, $flushed flushes, recorded ${recorded.toList()}, billed ${ledger.size} customer-hours")
        }
    }

    // The library's shutdown hook wrote each buffer once, as the JVM's shutdown began: what an
    // application's hook recorded afterwards (Spring draining its requests) was acknowledged
    // and lost with the process. From that hook on, every record is written as it is made.
    @Test
    fun `a record made while the JVM shuts down is written to the store`(@TempDir dir: Path) {
        emulator.reset() // the crash trials' ledger is not this test's
        val base = Instant.now().truncatedTo(ChronoUnit.HOURS).minus(Duration.ofHours(2)).epochSecond
        val db = dir.resolve("exit.db")
        val proc = javaChild(MeterExitChild, db.toString(), base.toString())
            .redirectOutput(ProcessBuilder.Redirect.DISCARD).start()
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

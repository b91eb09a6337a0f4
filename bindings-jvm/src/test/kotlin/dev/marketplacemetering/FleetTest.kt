// SPDX-License-Identifier: Apache-2.0
// The fleet store through the JVM face: two replicas record the same customer-hour into one
// private PostgreSQL (started by scripts/private-postgres.sh, as the core's fleet tests do; a
// test that cannot start it fails) and the hour is billed once, with both replicas' usage.

package dev.marketplacemetering

import dev.marketplacemetering.testing.Emulator
import dev.marketplacemetering.testing.ManualClock
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.concurrent.CompletableFuture
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit

/**
 * The child JVM of the exit test below: a fleet meter, then a SQLite one, both with memory
 * durability; once told (a line on standard input), records into both and exits.
 */
object FleetExitChild {
    @JvmStatic
    fun main(args: Array<String>) {
        val (endpoint, url, path, baseText) = args
        val client = MarketplaceMeteringClient {
            region = Emulator.REGION
            endpointUrl = endpoint
            credentialsProvider = StaticCredentialsProvider(Emulator.ACCESS_KEY_ID, Emulator.SECRET_ACCESS_KEY)
        }
        val clock = ManualClock(Instant.ofEpochSecond(baseText.toLong() + 600))
        val fleet = UsageMeter(client) {
            databaseUrl = url
            productCode = Emulator.PRODUCT_CODE
            durability = Durability.MEMORY
            flushInterval = Duration.ZERO
            this.clock = clock
        }
        val local = UsageMeter(client) {
            this.path = Path.of(path)
            productCode = Emulator.PRODUCT_CODE
            durability = Durability.MEMORY
            flushInterval = Duration.ZERO
            this.clock = clock
        }
        println("opened")
        System.out.flush()
        readLine()
        // A customer of its own: the other tests bill cust-1 and cust-2 in the same hour.
        fleet.record("cust-40", "users", 3)
        local.record("cust-40", "users", 5)
        System.exit(0)
    }
}

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FleetTest {
    private val emulator = Emulator()
    private val client = emulator.client()
    private val script: Path = Path.of(System.getProperty("user.dir")).resolve("../scripts/private-postgres.sh").normalize()
    private val pgDir: Path = Files.createTempDirectory("mm-jvm-fleet-")
    private lateinit var url: String
    private val hour: Instant = Instant.now().truncatedTo(ChronoUnit.HOURS).minus(Duration.ofHours(2))

    private fun pg(vararg args: String): String {
        val p = ProcessBuilder(listOf("bash", script.toString()) + args)
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .apply { environment()["PG_FSYNC"] = "off" }
            .start()
        val out = p.inputStream.bufferedReader().readText().trim()
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "private-postgres.sh ${args.first()} timed out")
        assertEquals(0, p.exitValue(), "private-postgres.sh ${args.first()} failed")
        return out
    }

    @BeforeAll
    fun start() {
        pg("start", pgDir.toString())
        url = pg("createdb", pgDir.toString(), "jvm_fleet")
    }

    @AfterAll
    fun stop() {
        pg("stop", pgDir.toString())
        client.close()
        emulator.close()
    }

    private fun replica(name: String, clock: ManualClock, events: MutableList<MeterEvent>) = UsageMeter(client) {
        databaseUrl = url
        replicaId = name
        productCode = Emulator.PRODUCT_CODE
        grace = Duration.ofSeconds(60)
        flushInterval = Duration.ZERO
        durability = Durability.GROUP
        this.clock = clock
        listener = MeterListener { events.add(it) }
    }

    @Test
    fun `two replicas, one customer-hour, billed once with both replicas' usage`() {
        val clock = ManualClock(hour.plusSeconds(600))
        val events = CopyOnWriteArrayList<MeterEvent>()
        replica("jvm-a", clock, events).use { a ->
            replica("jvm-b", clock, events).use { b ->
                repeat(5) { a.record("cust-1", "users", 2) }
                repeat(3) { b.record("cust-1", "users", 7) }
                b.record("cust-2", "gb", 4)
                assertEquals(0L, a.flush().sent, "the hour is still open")
                clock.set(hour.plus(Duration.ofMinutes(62)))
                val sent = a.flush().acked + b.flush().acked
                assertEquals(2L, sent, "one record per customer-hour across the fleet")
                assertEquals(0L, a.flush().sent + b.flush().sent, "nothing is sent twice")
                assertEquals("jvm-a", a.status().replicaId)
                assertEquals("jvm-b", b.status().replicaId)
            }
        }
        val ledger = emulator.ledger().associate { it.customerIdentifier to it.quantity }
        assertEquals(mapOf("cust-1" to 31L, "cust-2" to 4L), ledger)
        assertFalse(emulator.requests().any { it.errorCode == "DuplicateRecord" })
        assertEquals(2, events.count { it.kind == "acked" })
        assertTrue(events.all { it.replicaId == "jvm-a" || it.replicaId == "jvm-b" }, "events name their replica")
    }

    // The library's exit hook wrote the meters' buffers one at a time: a fleet store that
    // did not answer (its table held here) held up the SQLite meter after it, and the JVM's
    // exit with it, until a container's stop timeout would have killed it and lost both
    // buffers (found by a review of the JVM face). Each meter is written on a thread of its
    // own now, within 10 s, as in the other faces.
    @Test
    fun `the exit hook writes each meter on its own, within 10 s, while one store holds it up`(@TempDir dir: Path) {
        val exitUrl = pg("createdb", pgDir.toString(), "jvm_fleet_exit")
        val base = hour.epochSecond
        val db = dir.resolve("exit.db")
        val java = ProcessHandle.current().info().command().orElse("java")
        val child = ProcessBuilder(
            java, "-cp", System.getProperty("java.class.path"), FleetExitChild::class.java.name,
            emulator.endpoint, exitUrl, db.toString(), base.toString(),
        ).redirectError(ProcessBuilder.Redirect.INHERIT).start()
        var holder: Process? = null
        try {
            val opened = CompletableFuture.supplyAsync { child.inputStream.bufferedReader().readLine() }
            assertEquals("opened", opened.get(60, TimeUnit.SECONDS))
            holder = ProcessBuilder(
                "bash", script.toString(), "psql", pgDir.toString(), "jvm_fleet_exit", "-c",
                "BEGIN; LOCK TABLE mm_commits IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(45); COMMIT;",
            ).redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.INHERIT).start()
            val held = "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND granted " +
                "AND mode = 'AccessExclusiveLock' AND relation = 'mm_commits'::regclass"
            val waited = System.nanoTime()
            while (pg("psql", pgDir.toString(), "jvm_fleet_exit", "-tAc", held) == "0") {
                assertTrue(System.nanoTime() - waited < 30_000_000_000L, "the lock was never taken")
                Thread.sleep(50)
            }
            val started = System.nanoTime()
            child.outputStream.write("go\n".toByteArray())
            child.outputStream.flush()
            assertTrue(child.waitFor(90, TimeUnit.SECONDS), "the child JVM did not end")
            val took = Duration.ofNanos(System.nanoTime() - started)
            assertTrue(took < Duration.ofSeconds(25), "the exit took $took")
            assertEquals(0, child.exitValue())
        } finally {
            child.destroyForcibly()
            // psql runs under the script's shell (and runuser as root): its session ends too.
            holder?.descendants()?.forEach { it.destroyForcibly() }
            holder?.destroyForcibly()
        }
        UsageMeter(client) {
            path = db
            productCode = Emulator.PRODUCT_CODE
            flushInterval = Duration.ZERO
            clock = ManualClock(Instant.ofEpochSecond(base + 3600 + 400))
        }.use { m -> assertEquals(1L, m.flush().acked) }
    }

    // A meter collected unclosed is dropped by whichever of its two cleaners runs last; when
    // that was the direct handle's release, the drop (which writes a memory meter's buffer)
    // ran under the lock of the handle table every direct call reads: a fleet store slow to
    // answer stalled every record() and client call of the JVM meanwhile, and a listener the
    // write called that made a direct call waited for that lock for good (found by a review).
    // The meter is now dropped after the lock is let go.
    @Test
    fun `a meter its handle's release drops may call the library from its listener`() {
        val releaseUrl = pg("createdb", pgDir.toString(), "jvm_release")
        val base = hour.epochSecond
        val clock = dev.marketplacemetering.internal.NativeManualClock(base + 600)
        val called = java.util.concurrent.CountDownLatch(1)
        val listener = object : dev.marketplacemetering.internal.MeterListener {
            override fun onEvent(event: dev.marketplacemetering.internal.MeterEventRecord) {
                // The late event the drop's write reports (the flush's acked one comes first).
                if (event.kind != "late_event") return
                dev.marketplacemetering.internal.directHandles()
                called.countDown()
            }
        }
        // An emulator of its own: the other tests check the whole ledger of the shared one.
        val own = Emulator()
        val ownClient = own.client()
        try {
            val meter = dev.marketplacemetering.internal.NativeMeter(
                ownClient.core,
                dev.marketplacemetering.internal.MeterOptions(
                    null, releaseUrl, null, null, null, null, Emulator.PRODUCT_CODE, null, "memory",
                    null, null, 0L, clock, null,
                ),
                listener,
            )
            meter.record("cust-1", null, null, "users", 3L, null, null)
            clock.advance(3600 + 400)
            assertEquals(1uL, meter.flush().acked)
            // Late: counted in the next hour, which the fleet's write reports when it lands.
            meter.record("cust-1", null, null, "users", 2L, Instant.ofEpochSecond(base + 5), null)
            val handle = meter.directHandle()
            meter.destroy() // the handle is now the meter's last owner
            val release = Thread { dev.marketplacemetering.internal.directRelease(handle) }
            release.isDaemon = true
            release.start()
            assertTrue(called.await(30, TimeUnit.SECONDS), "the listener never ran")
            release.join(30_000)
            assertFalse(release.isAlive, "the release never ended")
        } finally {
            ownClient.close()
            own.close()
        }
    }

    @Test
    fun `a path and a databaseUrl together are refused naming databaseUrl`() {
        val e = assertThrows(InvalidInputException::class.java) {
            UsageMeter(client) {
                path = pgDir.resolve("m.db")
                databaseUrl = url
                productCode = Emulator.PRODUCT_CODE
            }
        }
        assertEquals("databaseUrl", e.field)
        assertFalse(e.message!!.contains("postgresql://"), "the URL (it may carry a password) is not echoed")
    }

    @Test
    fun `fleet tuning reaches the core, which refuses what would stop billing`() {
        val cases: List<Pair<(UsageMeter.Builder) -> Unit, String>> = listOf(
            { b: UsageMeter.Builder -> b.fleetSenders = 0 } to "fleetSenders",
            { b: UsageMeter.Builder -> b.fleetSenders = -1 } to "fleetSenders",
            { b: UsageMeter.Builder -> b.fleetLease = Duration.ZERO } to "fleetLease",
            { b: UsageMeter.Builder -> b.fleetLease = Duration.ofSeconds(-1) } to "fleetLease",
            // "Forever": no timestamp ended it, and every claim failed (past half an hour is refused).
            { b: UsageMeter.Builder -> b.fleetLease = Duration.ofMillis(Long.MAX_VALUE) } to "fleetLease",
            // Commits without an fsync are a SQLite setting: the database's durability is its own.
            { b: UsageMeter.Builder -> b.powerLossSafe = false } to "powerLossSafe",
        )
        for ((tune, field) in cases) {
            val e = assertThrows(InvalidInputException::class.java) {
                UsageMeter(client) {
                    databaseUrl = url
                    productCode = Emulator.PRODUCT_CODE
                    tune(this)
                }
            }
            assertEquals(field, e.field)
        }
    }

    @Test
    fun `the cut-over from SQLite - startHour refuses the hour before it`() {
        val t = hour.minus(Duration.ofHours(1))
        val clock = ManualClock(t.plusSeconds(10))
        UsageMeter(client) {
            databaseUrl = url
            replicaId = "cut-over"
            productCode = Emulator.PRODUCT_CODE
            flushInterval = Duration.ZERO
            fleetSenders = 2
            fleetLease = Duration.ofSeconds(30)
            startHour = t.plusSeconds(1234)
            this.clock = clock
        }.use { m ->
            val e = assertThrows(InvalidInputException::class.java) {
                m.record("cust-9", "users", 1, t.minusSeconds(60))
            }
            assertEquals("timestamp", e.field)
            m.record("cust-9", "users", 1, t.plusSeconds(60))
        }
    }
}

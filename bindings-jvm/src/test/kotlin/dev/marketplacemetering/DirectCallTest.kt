// SPDX-License-Identifier: Apache-2.0
// The blocking forms' single native call (Direct.kt, src/direct.rs): requests and answers around
// and far beyond the calling thread's buffer, closing a client under calls in flight, a client
// left unclosed, and the meter's record() on its own handle.

package dev.marketplacemetering

import dev.marketplacemetering.internal.directHandles
import dev.marketplacemetering.model.BatchMeterUsageRequest
import dev.marketplacemetering.model.ResolveCustomerRequest
import dev.marketplacemetering.model.Tag
import dev.marketplacemetering.model.UsageAllocation
import dev.marketplacemetering.model.UsageRecord
import dev.marketplacemetering.model.UsageRecordResultStatus
import dev.marketplacemetering.testing.Emulator
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.concurrent.CountDownLatch
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DirectCallTest {
    private val emulator = Emulator()
    private val client = emulator.client()
    private val hour: Instant = Instant.now().truncatedTo(ChronoUnit.HOURS)

    @AfterAll
    fun stop() {
        client.close()
        emulator.close()
    }

    /** 25 records, each with [allocations] allocations of 5 tags whose values are [valueLength] long. */
    private fun batch(allocations: Int, valueLength: Int): BatchMeterUsageRequest {
        val records = (1..25).map { i ->
            UsageRecord(
                timestamp = hour,
                customerIdentifier = "cust-$i",
                dimension = "users",
                quantity = allocations,
                usageAllocations = if (allocations == 0) null else (1..allocations).map { a ->
                    UsageAllocation(1, (1..5).map { t -> Tag("k$a-$t", "v".repeat(valueLength)) })
                },
            )
        }
        return BatchMeterUsageRequest(Emulator.PRODUCT_CODE, records)
    }

    /** Runs [block] on a new thread, its call starting with the smallest buffer. */
    private fun <T> onNewThread(block: () -> T): T {
        Direct.drainPool()
        var out: Result<T>? = null
        thread { out = runCatching(block) }.join()
        return out!!.getOrThrow()
    }

    @Test
    fun `requests and answers of every size around the buffer round-trip exactly`() {
        // 25 records of 1 allocation of 5 tags: from about 6 kB to 40 kB of arguments, in steps
        // of about 600 bytes, each starting with a 16 kB buffer: the arguments overflow it,
        // or fit while the answer (the records echoed, plus ids) does not, or both fit.
        for (valueLength in 4..256 step 5) {
            emulator.reset()
            val req = batch(1, valueLength)
            val out = onNewThread { client.batchMeterUsageBlocking(req) }
            assertEquals(25, out.results.size, "value length $valueLength")
            assertEquals(req.usageRecords, out.results.map { it.usageRecord }, "value length $valueLength")
            assertTrue(out.results.all { it.status == UsageRecordResultStatus.Success })
        }
        // Far beyond: 25 records x 20 allocations x 5 tags of 256 bytes (about 700 kB each way,
        // below the service's 1 MB request limit), twice on one thread (such a buffer is not pooled).
        emulator.reset()
        val big = batch(20, 256)
        onNewThread {
            repeat(2) {
                val out = client.batchMeterUsageBlocking(big)
                assertEquals(big.usageRecords, out.results.map { it.usageRecord })
            }
        }
    }

    @Test
    fun `closing a client under calls in flight fails them cleanly, never a crash`() {
        val c = emulator.client()
        val ok = AtomicInteger()
        val refused = AtomicInteger()
        val unexpected = mutableListOf<Throwable>()
        val started = CountDownLatch(8)
        val threads = (1..8).map {
            thread {
                started.countDown()
                // Until this thread's first refusal (the client closed under it).
                var closed = false
                var calls = 0
                while (!closed && calls++ < 5000) {
                    try {
                        c.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
                        ok.incrementAndGet()
                    } catch (e: IllegalStateException) {
                        if (e.message?.contains("destroyed") != true) synchronized(unexpected) { unexpected.add(e) }
                        refused.incrementAndGet()
                        closed = true
                    } catch (e: Throwable) {
                        synchronized(unexpected) { unexpected.add(e) }
                        closed = true
                    }
                }
            }
        }
        started.await()
        Thread.sleep(50)
        c.close()
        threads.forEach { it.join() }
        assertEquals(emptyList<Throwable>(), unexpected)
        assertEquals(8, refused.get(), "every thread saw the close ($ok calls succeeded before it)")
        assertTrue(ok.get() > 0)
        assertThrows(IllegalStateException::class.java) {
            c.batchMeterUsageBlocking(BatchMeterUsageRequest(Emulator.PRODUCT_CODE, emptyList()))
        }
    }

    @Test
    fun `an unclosed client that becomes unreachable releases its native client`() {
        val before = settledDirectHandles()
        val held = emulator.client()
        assertEquals(before + 1, liveDirectHandles())
        held.close()
        assertEquals(before, liveDirectHandles())
        repeat(50) { emulator.client().resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN)) }
        val deadline = System.nanoTime() + 10_000_000_000L
        while (liveDirectHandles() > before && System.nanoTime() < deadline) {
            System.gc()
            Thread.sleep(20)
        }
        assertEquals(before, liveDirectHandles(), "handles of unreachable clients were not released")
    }

    @Test
    fun `a meter records in one call, fails as before once closed, and releases its handle`() {
        val before = settledDirectHandles()
        val m = meter()
        assertEquals(before + 1, liveDirectHandles())
        // An event far larger than the first buffer, on a thread starting with the smallest one.
        val allocations = (1..100).map { UsageAllocation(1, listOf(Tag("k$it", "v".repeat(250)))) }
        onNewThread { m.record("cust-1", "users", 100L, hour, allocations) }
        m.record("cust-1", "users", 2L)
        val bad = assertThrows(InvalidInputException::class.java) { m.record("cust-1", "users", 3L, hour, allocations) }
        assertTrue(bad.message!!.contains("allocations"), bad.message)
        m.close()
        assertThrows(InvalidStateException::class.java) { m.record("cust-1", "users", 1L) }
        recordOnMetersThenDropThem()
        val deadline = System.nanoTime() + 10_000_000_000L
        while (liveDirectHandles() > before + 1 && System.nanoTime() < deadline) {
            System.gc()
            Thread.sleep(20)
        }
        assertEquals(before + 1, liveDirectHandles(), "handles of unreachable meters were not released")
        java.lang.ref.Reference.reachabilityFence(m)
    }

    private fun meter() = UsageMeter(client) {
        productCode = Emulator.PRODUCT_CODE
        flushInterval = java.time.Duration.ZERO
    }

    // A method of its own: an interpreted frame may keep its last local reachable.
    private fun recordOnMetersThenDropThem() {
        repeat(10) { meter().use { it.record("cust-2", "gb", 1L) } }
        repeat(10) { meter().record("cust-3", "gb", 1L) } // never closed
    }

    private fun liveDirectHandles(): Long = directHandles().toLong()

    /** The live handles once the objects other tests left unreachable have released theirs. */
    private fun settledDirectHandles(): Long {
        var last = -1L
        var same = 0
        val deadline = System.nanoTime() + 10_000_000_000L
        while (same < 3 && System.nanoTime() < deadline) {
            System.gc()
            Thread.sleep(20)
            val now = liveDirectHandles()
            same = if (now == last) same + 1 else 0
            last = now
        }
        return last
    }
}

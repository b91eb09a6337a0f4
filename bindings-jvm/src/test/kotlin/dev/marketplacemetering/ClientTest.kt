// SPDX-License-Identifier: Apache-2.0
// Every operation, in each of its three forms, against the in-process emulator.

package dev.marketplacemetering

import dev.marketplacemetering.model.BatchMeterUsageRequest
import dev.marketplacemetering.model.MeterUsageRequest
import dev.marketplacemetering.model.RegisterUsageRequest
import dev.marketplacemetering.model.ResolveCustomerRequest
import dev.marketplacemetering.model.Tag
import dev.marketplacemetering.model.UsageAllocation
import dev.marketplacemetering.model.UsageRecord
import dev.marketplacemetering.model.UsageRecordResultStatus
import dev.marketplacemetering.testing.Emulator
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClientTest {
    private val emulator = Emulator()
    private val client = emulator.client()
    private val hour: Instant = Instant.now().truncatedTo(ChronoUnit.HOURS)

    @BeforeEach
    fun reset() = emulator.reset()

    @AfterAll
    fun stop() {
        client.close()
        emulator.close()
    }

    private fun record(customer: String, quantity: Int, dimension: String = "users") = UsageRecord {
        timestamp = hour
        customerIdentifier = customer
        this.dimension = dimension
        this.quantity = quantity
    }

    @Test
    fun `batchMeterUsage bills each record once and returns its result`() = runBlocking {
        val out = client.batchMeterUsage {
            productCode = Emulator.PRODUCT_CODE
            usageRecords = listOf(
                record("cust-1", 3),
                record("cust-2", 5, "gb").copy(
                    usageAllocations = listOf(
                        UsageAllocation(2, listOf(Tag("team", "a"))),
                        UsageAllocation(3, listOf(Tag("team", "b"))),
                    ),
                ),
                record("cust-unsubscribed", 1),
            )
        }
        assertEquals(
            listOf(
                UsageRecordResultStatus.Success,
                UsageRecordResultStatus.Success,
                UsageRecordResultStatus.CustomerNotSubscribed,
            ),
            out.results.map { it.status },
        )
        assertNotNull(out.results[0].meteringRecordId)
        assertEquals(hour, out.results[0].usageRecord?.timestamp)
        assertEquals(listOf(Tag("team", "a")), out.results[1].usageRecord?.usageAllocations?.get(0)?.tags)
        assertTrue(out.unprocessedRecords.isEmpty())
        assertEquals(200, out.responseMetadata.httpStatus)
        assertEquals(1, out.responseMetadata.attempts)
        assertNotNull(out.responseMetadata.requestId)
        val ledger = emulator.ledger()
        assertEquals(listOf("cust-1" to 3L, "cust-2" to 5L), ledger.map { it.customerIdentifier to it.quantity })
        assertEquals(hour.epochSecond, ledger[0].hour)
    }

    @Test
    fun `unprocessed records come back`() = runBlocking {
        emulator.pushFault("""{"kind":"partial","count":1}""")
        val out = client.batchMeterUsage(
            BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(record("cust-1", 1), record("cust-2", 1))),
        )
        assertEquals(1, out.results.size)
        assertEquals("cust-2", out.unprocessedRecords.single().customerIdentifier)
    }

    @Test
    fun `meterUsage, resolveCustomer and registerUsage`() = runBlocking {
        val m = client.meterUsage {
            productCode = Emulator.PRODUCT_CODE
            timestamp = hour
            usageDimension = "requests"
            usageQuantity = 7
            clientToken = "token-1"
        }
        assertNotNull(m.meteringRecordId)
        assertEquals(7L, emulator.ledger().single().quantity)

        val c = client.resolveCustomer { registrationToken = Emulator.REGISTRATION_TOKEN }
        assertEquals("cust-1", c.customerIdentifier)
        assertEquals(Emulator.PRODUCT_CODE, c.productCode)
        assertEquals(Emulator.CUSTOMER_AWS_ACCOUNT_ID, c.customerAwsAccountId)
        assertEquals(Emulator.LICENSE_ARN, c.licenseArn)

        val r = client.registerUsage {
            productCode = Emulator.PRODUCT_CODE
            publicKeyVersion = 1
            nonce = "n-1"
        }
        assertNotNull(r.signature)
        assertNotNull(r.publicKeyRotationTimestamp)
    }

    @Test
    fun `blocking and CompletableFuture forms`() {
        val b = client.batchMeterUsageBlocking(BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(record("cust-1", 1))))
        assertEquals(UsageRecordResultStatus.Success, b.results.single().status)
        val f = client.batchMeterUsageAsync(BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(record("cust-2", 1))))
        assertEquals(UsageRecordResultStatus.Success, f.get(10, TimeUnit.SECONDS).results.single().status)
        val m = client.meterUsageAsync(MeterUsageRequest(Emulator.PRODUCT_CODE, hour, "gb", 1)).get(10, TimeUnit.SECONDS)
        assertNotNull(m.meteringRecordId)
        assertEquals("cust-1", client.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN)).customerIdentifier)
        // A product metered by license: the answer names the account and the license only.
        val byLicense = client.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.LICENSE_REGISTRATION_TOKEN))
        assertEquals(listOf(null, null), listOf(byLicense.customerIdentifier, byLicense.productCode))
        assertEquals(Emulator.LICENSE_ARN, byLicense.licenseArn)
        assertNotNull(client.registerUsageAsync(RegisterUsageRequest(Emulator.PRODUCT_CODE, 1)).get(10, TimeUnit.SECONDS).signature)
        assertEquals(3, emulator.ledger().size)
    }

    @Test
    fun `a blocking call chained on a future does not deadlock`() {
        val chained = client.resolveCustomerAsync(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
            .thenApply { client.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN)) }
        assertEquals("cust-1", chained.get(10, TimeUnit.SECONDS).customerIdentifier)
    }

    @OptIn(ExperimentalCoroutinesApi::class)
    @Test
    fun `suspend calls never block the dispatcher thread`() = runBlocking {
        // 20 calls the emulator answers after 300 ms each, on a dispatcher of ONE thread:
        // blocking it would take 6 s; suspending takes about 300 ms.
        repeat(20) { emulator.pushFault("""{"kind":"delay","seconds":0.3}""") }
        val one = Dispatchers.Default.limitedParallelism(1)
        val started = System.nanoTime()
        val tokens = withContext(one) {
            (1..20).map { async { client.resolveCustomer { registrationToken = Emulator.REGISTRATION_TOKEN } } }.awaitAll()
        }
        val ms = (System.nanoTime() - started) / 1_000_000
        assertEquals(20, tokens.size)
        assertTrue(ms < 4500, "20 delayed calls took $ms ms on one dispatcher thread (6 s if it blocked)")
    }

    /**
     * A caller that gives up on a call (a coroutine cancelled, a `CompletableFuture`
     * cancelled) stops it: the call ran on, unobserved, retrying against a throttling server.
     * Each call is throttled 4 times with 5 attempts allowed; once the first throttled attempt
     * is seen, the caller cancels, and in the 3.5 s after, the backoffs (under 1, 2, 4 s) would
     * have let an abandoned call send at least 2 more attempts.
     */
    @Test
    fun `a cancelled call stops its retries`() = runBlocking {
        emulator.client { maxAttempts = 5 }.use { c ->
            val forms: List<Pair<String, () -> () -> Unit>> = listOf(
                "suspend" to {
                    val job = CoroutineScope(Dispatchers.Default).launch {
                        c.resolveCustomer { registrationToken = Emulator.REGISTRATION_TOKEN }
                    }
                    val cancel: () -> Unit = { job.cancel() }
                    cancel
                },
                "CompletableFuture" to {
                    val f = c.resolveCustomerAsync(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
                    val cancel: () -> Unit = { f.cancel(true) }
                    cancel
                },
            )
            for ((form, start) in forms) {
                emulator.reset()
                repeat(4) { emulator.pushFault("""{"kind":"throttle"}""") }
                val cancel = start()
                val deadline = System.nanoTime() + 10_000_000_000
                while (emulator.requests().isEmpty() && System.nanoTime() < deadline) Thread.sleep(1)
                val seen = emulator.requests().size
                cancel()
                Thread.sleep(3500)
                val more = emulator.requests().size - seen
                // The second too, rarely: its backoff is a random part of a second.
                assertTrue(seen in 1..2, "$form: $seen")
                // One more at most: an attempt already on its way as the caller cancelled.
                assertTrue(more <= 1, "$form: $more attempts after the call was cancelled")
            }
        }
    }

    /**
     * The JVM runs shutdown hooks at once, in no order: the library's (which stops the native
     * runtime) ran beside an application hook still waiting on a call, and cancelled it ("the
     * runtime shut down"). It now lets calls in flight finish first.
     */
    @Test
    fun `the library's exit hook lets a call in flight finish`() {
        emulator.pushFault("""{"kind":"delay","seconds":1.0}""")
        val call = client.batchMeterUsageAsync(
            BatchMeterUsageRequest(productCode = Emulator.PRODUCT_CODE, usageRecords = listOf(record("cust-1", 3))),
        )
        val deadline = System.nanoTime() + 10_000_000_000
        while (emulator.pendingFaults() > 0 && System.nanoTime() < deadline) Thread.sleep(1)
        dev.marketplacemetering.internal.nativeShutdown()
        val out = call.get(10, TimeUnit.SECONDS)
        assertEquals(UsageRecordResultStatus.Success, out.results.single().status)
        assertEquals(listOf(3L), emulator.ledger().map { it.quantity })
    }

    /**
     * `Thread.interrupt()` (an executor's `shutdownNow()`, a pod stopping) ends a blocking call
     * waiting for a slow answer, as it ends a channel's blocking I/O: it ran to its timeout
     * and retries. The thread keeps its interrupt status; one interrupted before its call
     * sends nothing; the client works on, and no interrupt is left held.
     */
    @Test
    fun `Thread interrupt ends a blocking call`() {
        assertAnInterruptEnds(emulator, 30.0, 5_000, "call") {
            client.batchMeterUsageBlocking(
                BatchMeterUsageRequest(productCode = Emulator.PRODUCT_CODE, usageRecords = listOf(record("cust-1", 3))),
            )
        }

        val sent = emulator.requests().size
        assertRefusedWhenInterrupted { client.resolveCustomerBlocking(ResolveCustomerRequest("reg-token-valid")) }
        assertEquals(sent, emulator.requests().size, "an interrupted thread's call was sent")
        assertEquals("cust-1", client.resolveCustomerBlocking(ResolveCustomerRequest("reg-token-valid")).customerIdentifier)
        assertEquals(0uL, dev.marketplacemetering.internal.directInterruptsHeld())
    }

    @Test
    fun `many threads share one client`() {
        val threads = 16
        val perThread = 20
        val pool = Executors.newFixedThreadPool(threads)
        val go = CountDownLatch(1)
        val futures = (0 until threads).map { t ->
            pool.submit<Int> {
                go.await()
                var ok = 0
                repeat(perThread) { i ->
                    // Distinct (customer, dimension) pairs: each record is billed once.
                    val dim = listOf("users", "gb", "requests")[i % 3]
                    val customer = "cust-${1 + (t * perThread + i) / 3 % 50}"
                    val out = if (i % 2 == 0) {
                        client.batchMeterUsageBlocking(BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(record(customer, 1, dim))))
                    } else {
                        client.batchMeterUsageAsync(BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(record(customer, 1, dim)))).get()
                    }
                    if (out.results.single().status == UsageRecordResultStatus.Success) ok++
                }
                ok
            }
        }
        go.countDown()
        assertEquals(threads * perThread, futures.sumOf { it.get(60, TimeUnit.SECONDS) })
        pool.shutdown()
        assertEquals(150, emulator.ledger().size) // 50 customers x 3 dimensions, same hour
        assertTrue(emulator.requests().all { it.signatureOk })
    }

    @Test
    fun `a closed client refuses calls without crashing`() {
        val c = emulator.client()
        c.close()
        c.close()
        val e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException::class.java) {
            c.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
        }
        assertTrue(e.message!!.contains("destroyed"), e.message)
    }

    @Test
    fun `configuration reaches the core`() {
        val c = emulator.client {
            maxAttempts = 5
            retryMode = RetryMode.ADAPTIVE
        }
        c.use {
            assertEquals(5, it.maxAttempts)
            assertEquals(Emulator.REGION, it.region)
            assertEquals(emulator.endpoint, it.endpointUrl)
            assertTrue(it.userAgent.contains("jvm"), it.userAgent)
            assertEquals("Static", it.credentialsProviderName())
        }
        client.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
        val ua = emulator.requests().last().userAgent ?: ""
        assertTrue(ua.contains("jvm"), ua)
    }

    @Test
    fun `secrets never reach toString or messages`() {
        val secret = "wJalrXUtnFEMI-SECRET-VALUE"
        val c = MarketplaceMeteringClient {
            region = "us-east-1"
            endpointUrl = emulator.endpoint
            credentialsProvider = StaticCredentialsProvider("AKIDEXAMPLE", secret, "SESSION-TOKEN-VALUE")
            maxAttempts = 1
        }
        c.use {
            val e = runCatching { it.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN)) }.exceptionOrNull()
            assertTrue(e is MarketplaceMeteringException, "$e")
            for (s in listOf(e.toString(), e?.message ?: "", it.toString(), it.config.toString())) {
                assertFalse(s.contains(secret), s)
                assertFalse(s.contains("SESSION-TOKEN-VALUE"), s)
            }
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
// Every error code has its exception class, and real failures arrive as them with the
// request id, HTTP status, attempts and field.

package dev.marketplacemetering

import dev.marketplacemetering.internal.NativeException
import dev.marketplacemetering.internal.nativeErrorCodes
import dev.marketplacemetering.model.BatchMeterUsageRequest
import dev.marketplacemetering.model.MeterUsageRequest
import dev.marketplacemetering.model.ResolveCustomerRequest
import dev.marketplacemetering.model.UsageRecord
import dev.marketplacemetering.testing.Emulator
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.net.ServerSocket
import java.time.Instant

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ErrorsTest {
    private val emulator = Emulator()
    private val client = emulator.client { maxAttempts = 1 }

    @BeforeEach
    fun reset() = emulator.reset()

    @AfterAll
    fun stop() {
        client.close()
        emulator.close()
    }

    private fun resolve() = client.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))

    @Test
    fun `every code of the core's table has its own exception class`() {
        val codes = nativeErrorCodes()
        val classes = codes.map { row ->
            val e = NativeException.Failure(row.number, row.code, "m", null, null, null, 0u, false).toPublic()
            val name = e.javaClass.simpleName
            // The class is named after the code: ThrottlingException, InvalidInputException, …
            assertTrue(name == row.code || name == row.code + "Exception", "${row.code} -> $name")
            e.javaClass
        }
        assertEquals(codes.size, classes.toSet().size)
    }

    @Test
    fun `service errors arrive as their class with the wire details`() {
        // The emulator answers each modeled and common code as the service would.
        val wire = listOf(
            "InternalServiceErrorException" to 500, "InvalidProductCodeException" to 400,
            "InvalidUsageDimensionException" to 400, "InvalidTagException" to 400,
            "InvalidUsageAllocationsException" to 400, "InvalidCustomerIdentifierException" to 400,
            "TimestampOutOfBoundsException" to 400, "ThrottlingException" to 400,
            "DisabledApiException" to 400, "InvalidLicenseException" to 400,
            "InvalidEndpointRegionException" to 400, "DuplicateRequestException" to 400,
            "IdempotencyConflictException" to 400, "CustomerNotEntitledException" to 400,
            "InvalidRegionException" to 400, "InvalidPublicKeyVersionException" to 400,
            "PlatformNotSupportedException" to 400, "InvalidTokenException" to 400,
            "ExpiredTokenException" to 400, "UnrecognizedClientException" to 403,
            "InvalidSignatureException" to 403, "AccessDeniedException" to 403,
            "ValidationException" to 400, "SerializationException" to 400,
            "UnknownOperationException" to 400, "DryRunOperation" to 412,
            "UnauthorizedException" to 401, "IncompleteSignatureException" to 403,
            "MissingAuthenticationTokenException" to 403, "RequestExpired" to 400,
            "ServiceUnavailableException" to 503,
        )
        for ((code, status) in wire) {
            emulator.pushFault("""{"kind":"error","status":$status,"code":"$code","message":"m-$code"}""")
            val e = assertThrows(MarketplaceMeteringException::class.java) { resolve() }
            val expected = if (code.endsWith("Exception")) code else code + "Exception"
            assertEquals(expected, e.javaClass.simpleName, code)
            assertEquals(code, e.code)
            assertEquals(status, e.httpStatus)
            assertNotNull(e.requestId)
            assertEquals(1, e.attempts)
            assertTrue(e.message!!.contains("m-$code"), e.message)
        }
        emulator.pushFault("""{"kind":"error","status":400,"code":"BrandNewException","message":"new"}""")
        val u = assertThrows(UnhandledException::class.java) { resolve() }
        assertEquals("BrandNewException", u.code)
    }

    @Test
    fun `local failures have their classes`() {
        emulator.pushFault("""{"kind":"reset"}""")
        assertThrows(DispatchException::class.java) { resolve() }
        emulator.pushFault("""{"kind":"garbage"}""")
        assertThrows(InvalidResponseException::class.java) { resolve() }
        emulator.pushFault("""{"kind":"delay","seconds":2}""")
        emulator.client { maxAttempts = 1; readTimeout = java.time.Duration.ofMillis(300) }.use { c ->
            val e = assertThrows(ReadTimeoutException::class.java) {
                c.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
            }
            assertTrue(e.isRetryable)
        }
        val closedPort = ServerSocket(0).use { it.localPort }
        MarketplaceMeteringClient {
            region = "us-east-1"
            endpointUrl = "http://127.0.0.1:$closedPort"
            credentialsProvider = StaticCredentialsProvider("AKID", "secret")
            maxAttempts = 1
        }.use { c ->
            val e = assertThrows(DispatchException::class.java) {
                c.resolveCustomerBlocking(ResolveCustomerRequest("t"))
            }
            assertNull(e.httpStatus)
        }
        val cfg = assertThrows(InvalidConfigException::class.java) {
            MarketplaceMeteringClient { region = "us-east-1"; endpointUrl = emulator.endpoint; useFips = true }
        }
        assertTrue(cfg.message!!.isNotEmpty())
        // A client's settings are its configuration: InvalidConfig naming the setting, as in
        // the core, Python and Node, and as Builder.build() says (they were InvalidInput, and
        // a duration past Long's milliseconds was taken as no limit at all).
        for ((field, setting) in listOf<Pair<String, MarketplaceMeteringClient.Builder.() -> Unit>>(
            "connectTimeout" to { connectTimeout = java.time.Duration.ofSeconds(-1) },
            "readTimeout" to { readTimeout = java.time.Duration.ofSeconds(Long.MIN_VALUE) },
            "readTimeout" to { readTimeout = java.time.Duration.ofSeconds(Long.MAX_VALUE) },
            "maxAttempts" to { maxAttempts = -1 },
        )) {
            val e = assertThrows(InvalidConfigException::class.java) { emulator.client(setting) }
            assertEquals(field, e.field, e.message)
        }
        // Under a millisecond is not zero.
        emulator.client { attemptTimeout = java.time.Duration.ofNanos(500) }.close()
        // Empty keys are refused when the client is made, naming the field, as in Python and
        // Node (they were signed with, and refused by the service at the first call).
        for ((key, secret, field) in listOf(Triple("", "secret", "accessKeyId"), Triple("AKID", "", "secretAccessKey"))) {
            val e = assertThrows(InvalidConfigException::class.java) {
                MarketplaceMeteringClient {
                    region = "us-east-1"
                    endpointUrl = emulator.endpoint
                    credentialsProvider = StaticCredentialsProvider(key, secret)
                }
            }
            assertEquals(field, e.field, e.message)
        }
        // A lone surrogate in a setting: InvalidConfig naming the setting, never its value
        // (it was a raw CharacterCodingException).
        for ((field, setting) in listOf<Pair<String, MarketplaceMeteringClient.Builder.() -> Unit>>(
            "region" to { region = "us-east-1\uD800" },
            "profile" to { profile = "p\uDC00" },
            "secretAccessKey" to { credentialsProvider = StaticCredentialsProvider("AKID", "zqzq\uD800zq") },
        )) {
            val e = assertThrows(InvalidConfigException::class.java) { emulator.client(setting) }
            assertEquals(field, e.field, e.message)
            assertTrue(!e.message!!.contains("zq") && !e.message!!.contains("us-east-1"), e.message)
        }
    }

    @Test
    fun `throttling is retried, then reported with the attempts made`() {
        emulator.client { maxAttempts = 2; initialBackoff = java.time.Duration.ofMillis(10) }.use { c ->
            repeat(2) { emulator.pushFault("""{"kind":"throttle"}""") }
            val e = assertThrows(ThrottlingException::class.java) {
                c.resolveCustomerBlocking(ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
            }
            assertEquals(2, e.attempts)
            assertTrue(e.isRetryable)
            assertEquals(400, e.httpStatus)
        }
    }

    @Test
    fun `invalid input names the field and sends nothing`() = runBlocking {
        val t = Instant.now()
        val cases = listOf(
            BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(UsageRecord(t, "cust-1", null, 1))) to "UsageRecords[0].Dimension",
            BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(UsageRecord(null, "cust-1", "users", 1))) to "UsageRecords[0].Timestamp",
            BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(UsageRecord(t, "cust-1", "users", -1))) to "UsageRecords[0].Quantity",
            BatchMeterUsageRequest(Emulator.PRODUCT_CODE, List(26) { UsageRecord(t, "cust-1", "users", 1) }) to "UsageRecords",
            BatchMeterUsageRequest(Emulator.PRODUCT_CODE, listOf(UsageRecord(t, "cust-1", "users", 1, emptyList()))) to "UsageRecords[0].UsageAllocations",
            BatchMeterUsageRequest("bad product!", listOf(UsageRecord(t, "cust-1", "users", 1))) to "ProductCode",
        )
        for ((input, field) in cases) {
            val e = assertThrows(InvalidInputException::class.java) { runBlocking { client.batchMeterUsage(input) } }
            assertEquals(field, e.field, e.message)
            assertTrue(e.message!!.startsWith(field), e.message)
            assertEquals(0, e.attempts)
        }
        val m = assertThrows(InvalidInputException::class.java) { runBlocking { client.meterUsage(MeterUsageRequest()) } }
        assertEquals("ProductCode", m.field)
        assertTrue(emulator.requests().isEmpty())
    }
}

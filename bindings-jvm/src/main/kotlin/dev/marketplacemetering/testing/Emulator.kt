// SPDX-License-Identifier: Apache-2.0
// The in-process emulator for sellers' tests: a strict local Metering Service on 127.0.0.1.

package dev.marketplacemetering.testing

import dev.marketplacemetering.MarketplaceMeteringClient
import dev.marketplacemetering.NativeLibrary
import dev.marketplacemetering.StaticCredentialsProvider
import dev.marketplacemetering.internal.EmulatorException
import dev.marketplacemetering.internal.NativeEmulator
import dev.marketplacemetering.internal.emulatorDefaults

/** One billed record of the emulator's ledger. */
data class LedgerEntry(
    val operation: String,
    val productCode: String?,
    val customerIdentifier: String?,
    val customerAwsAccountId: String?,
    val licenseArn: String?,
    val dimension: String,
    /** Epoch seconds floored to the hour. */
    val hour: Long,
    val quantity: Long,
    val meteringRecordId: String,
)

/** One service request the emulator answered. */
data class RequestEntry(
    val requestId: String,
    val operation: String?,
    val status: Int,
    val errorCode: String?,
    val signatureOk: Boolean,
    val userAgent: String?,
    /** Which TCP connection carried it (numbered from 1). */
    val connection: Long,
)

/** Thrown when the emulator itself cannot do what it was asked (start, bad fault). */
class EmulatorFailure(message: String) : RuntimeException(message)

/**
 * A local Metering Service (the `metering-emulator`) on its own thread: all four operations
 * with the service's validation, SigV4 verification, de-duplication, the timestamp window,
 * injected faults and a ledger of what was billed. [client] returns a client configured
 * for it. Close it (or use `use {}` / try-with-resources) to stop it.
 */
class Emulator @JvmOverloads constructor(port: Int = 0) : AutoCloseable {
    private val native: NativeEmulator = emulating {
        require(port in 0..65535) { "port must be between 0 and 65535, got $port" }
        NativeLibrary.ensurePrepared()
        NativeEmulator(port.toUShort())
    }

    /** The TCP port on 127.0.0.1. */
    val port: Int = native.port().toInt()

    /** `http://127.0.0.1:<port>`. */
    val endpoint: String = native.endpoint()

    /** A client for this emulator, with its credentials and region. */
    fun client(): MarketplaceMeteringClient = client {}

    /** A client for this emulator, with further settings. */
    fun client(block: MarketplaceMeteringClient.Builder.() -> Unit): MarketplaceMeteringClient =
        MarketplaceMeteringClient.builder()
            .region(REGION)
            .endpointUrl(endpoint)
            .credentialsProvider(StaticCredentialsProvider(ACCESS_KEY_ID, SECRET_ACCESS_KEY))
            .apply(block)
            .build()

    /** A builder already set for this emulator (Java: add settings, then `build()`). */
    fun clientBuilder(): MarketplaceMeteringClient.Builder =
        MarketplaceMeteringClient.builder()
            .region(REGION)
            .endpointUrl(endpoint)
            .credentialsProvider(StaticCredentialsProvider(ACCESS_KEY_ID, SECRET_ACCESS_KEY))

    /** Billed records, in billing order. */
    fun ledger(): List<LedgerEntry> = emulating {
        native.ledger().map {
            LedgerEntry(
                it.operation, it.productCode, it.customerIdentifier, it.customerAwsAccountId,
                it.licenseArn, it.dimension, it.hour, it.quantity, it.meteringRecordId,
            )
        }
    }

    /** Service requests answered, oldest first. */
    fun requests(): List<RequestEntry> = emulating {
        native.requests().map {
            RequestEntry(
                it.requestId, it.operation, it.status.toInt(), it.errorCode, it.signatureOk,
                it.userAgent, it.connection.toLong(),
            )
        }
    }

    /**
     * Queues a fault for the next request, as the emulator's JSON: `{"kind":"throttle"}`,
     * `{"kind":"internal_error"}`, `{"kind":"unavailable"}`, `{"kind":"reset"}`,
     * `{"kind":"delay","seconds":0.5}`, `{"kind":"partial","count":1}`, `{"kind":"garbage"}`,
     * `{"kind":"error","status":400,"code":"AccessDeniedException"}`, …
     */
    fun pushFault(faultJson: String) = emulating { native.pushFault(faultJson) }

    /** How many queued faults no request has taken yet. */
    fun pendingFaults(): Int = emulating { native.pendingFaults().toInt() }

    /** Clears the ledger, de-duplication tables, request log and queued faults. */
    fun reset() = emulating { native.reset() }

    /** Stops the server. Idempotent. */
    override fun close() {
        native.shutdown()
        native.close()
    }

    companion object {
        private val defaults = NativeLibrary.ensurePrepared().let { emulatorDefaults() }

        /** The emulator's region. */
        @JvmField val REGION: String = defaults.region

        /** The access key id the emulator accepts. */
        @JvmField val ACCESS_KEY_ID: String = defaults.accessKeyId

        /** Its secret (a test value, not a secret). */
        @JvmField val SECRET_ACCESS_KEY: String = defaults.secretAccessKey

        /** The default product; dimensions `users`, `gb` and `requests`. */
        @JvmField val PRODUCT_CODE: String = defaults.productCode

        /** The default license, held by [CUSTOMER_AWS_ACCOUNT_ID]. */
        @JvmField val LICENSE_ARN: String = defaults.licenseArn

        /** The account subscribed to [PRODUCT_CODE] through [LICENSE_ARN]. */
        @JvmField val CUSTOMER_AWS_ACCOUNT_ID: String = defaults.customerAwsAccountId

        /** A subscribed customer identifier (`cust-1` … `cust-50` are subscribed; `cust-unsubscribed` is not). */
        const val CUSTOMER: String = "cust-1"

        /** A registration token that resolves to [CUSTOMER]. */
        const val REGISTRATION_TOKEN: String = "reg-token-valid"

        /** A registration token that has expired. */
        const val EXPIRED_REGISTRATION_TOKEN: String = "reg-token-expired"

        /**
         * A registration token of a product metered by license: it resolves to the account and
         * the license only, with no customer identifier or product code.
         */
        const val LICENSE_REGISTRATION_TOKEN: String = "reg-token-license"
    }
}

private inline fun <T> emulating(block: () -> T): T =
    try {
        block()
    } catch (e: EmulatorException) {
        throw EmulatorFailure((e as EmulatorException.Failure).detail)
    }

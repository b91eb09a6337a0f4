// SPDX-License-Identifier: Apache-2.0
// The client, shaped like the AWS SDK for Kotlin's: `MarketplaceMeteringClient { region = ... }`,
// `suspend` operations, plus blocking and CompletableFuture forms for Java.

package dev.marketplacemetering

import dev.marketplacemetering.internal.ClientConfig
import dev.marketplacemetering.internal.FfiConverterOptionalInt
import dev.marketplacemetering.internal.FfiConverterOptionalSequenceOptionalTypeUsageRecord
import dev.marketplacemetering.internal.FfiConverterOptionalString
import dev.marketplacemetering.internal.FfiConverterTypeBatchMeterUsageResult
import dev.marketplacemetering.internal.FfiConverterTypeMeterUsageParams
import dev.marketplacemetering.internal.FfiConverterTypeMeterUsageResult
import dev.marketplacemetering.internal.FfiConverterTypeRegisterUsageResult
import dev.marketplacemetering.internal.FfiConverterTypeResolveCustomerResult
import dev.marketplacemetering.internal.NativeClient
import dev.marketplacemetering.internal.UniffiLib
import dev.marketplacemetering.internal.directRelease
import dev.marketplacemetering.internal.nativeShutdown
import dev.marketplacemetering.internal.nativeVersion as ffiNativeVersion
import dev.marketplacemetering.model.BatchMeterUsageRequest
import dev.marketplacemetering.model.BatchMeterUsageResponse
import dev.marketplacemetering.model.MeterUsageRequest
import dev.marketplacemetering.model.MeterUsageResponse
import dev.marketplacemetering.model.RegisterUsageRequest
import dev.marketplacemetering.model.RegisterUsageResponse
import dev.marketplacemetering.model.ResolveCustomerRequest
import dev.marketplacemetering.model.ResolveCustomerResponse
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.future.future
import java.lang.ref.Reference
import java.time.Duration
import java.util.concurrent.CompletableFuture

/** Where the client's credentials come from. */
sealed interface CredentialsProvider

/**
 * Fixed credentials. [toString] never shows the secret or the session token.
 */
class StaticCredentialsProvider @JvmOverloads constructor(
    val accessKeyId: String,
    internal val secretAccessKey: String,
    internal val sessionToken: String? = null,
) : CredentialsProvider {
    override fun toString(): String = "StaticCredentialsProvider(accessKeyId=$accessKeyId, secretAccessKey=****)"
}

/**
 * The standard chain: environment, shared config and credentials files (profiles, SSO,
 * `credential_process`, assume-role), web identity, ECS/EKS container credentials, EC2
 * instance metadata (IMDSv2). What a client uses when no provider is given.
 */
class DefaultChainCredentialsProvider @JvmOverloads constructor(
    /** The shared config profile (default: `AWS_PROFILE`, then `default`). */
    val profile: String? = null,
) : CredentialsProvider {
    override fun toString(): String = "DefaultChainCredentialsProvider(profile=$profile)"
}

/** The retry mode. */
enum class RetryMode {
    /** Up to `maxAttempts`, full-jitter exponential backoff, a retry quota (the default). */
    STANDARD,

    /** Standard plus a client-side rate limiter that engages on throttling. */
    ADAPTIVE,

    /** boto3's default: 5 attempts, `rand * 2^(n-1)` s between them, no retry quota. */
    LEGACY,
}

/**
 * A client for the AWS Marketplace Metering Service. Thread-safe: share one per process.
 *
 * Kotlin: `MarketplaceMeteringClient { region = "us-east-1" }` and the `suspend` operations
 * (the HTTP exchange runs on the library's native runtime; the coroutine suspends, no
 * dispatcher thread waits). Java: `MarketplaceMeteringClient.builder().region("us-east-1").build()`,
 * then the `...Blocking` forms or the `...Async` forms returning a [CompletableFuture].
 *
 * Every failure is a [MarketplaceMeteringException] subclass. Close the client when done.
 *
 * A `...Blocking` call ends when its thread is interrupted (`Thread.interrupt()`, an
 * executor's `shutdownNow()`), as a channel's blocking I/O does: its request is abandoned,
 * it throws [java.util.concurrent.CancellationException] and the thread stays interrupted. A
 * thread interrupted before the call sends nothing.
 */
class MarketplaceMeteringClient private constructor(
    /** The configuration as given. */
    val config: Config,
) : AutoCloseable {
    private val native: NativeClient = translatingSettings({ settingStrings() }) {
        NativeLibrary.ensurePrepared()
        val creds = config.credentialsProvider
        val profile = (creds as? DefaultChainCredentialsProvider)?.profile ?: config.profile
        NativeClient(
            ClientConfig(
                region = config.region,
                endpointUrl = config.endpointUrl,
                profile = profile,
                useFips = config.useFips,
                useDualStack = config.useDualStack,
                retryMode = config.retryMode?.name?.lowercase(),
                maxAttempts = config.maxAttempts,
                initialBackoffMillis = config.initialBackoff?.toMillisOrNull(),
                maxBackoffMillis = config.maxBackoff?.toMillisOrNull(),
                connectTimeoutMillis = config.connectTimeout?.toMillisOrNull(),
                readTimeoutMillis = config.readTimeout?.toMillisOrNull(),
                attemptTimeoutMillis = config.attemptTimeout?.toMillisOrNull(),
                operationTimeoutMillis = config.operationTimeout?.toMillisOrNull(),
                faceVersion = VERSION,
            ),
            (creds as? StaticCredentialsProvider)?.accessKeyId,
            (creds as? StaticCredentialsProvider)?.secretAccessKey,
            (creds as? StaticCredentialsProvider)?.sessionToken,
        )
    }

    private val resolved = native.resolvedConfig()

    /** The settings' strings, for an error naming one that UTF-8 cannot encode (never its value). */
    private fun settingStrings(): Sequence<Pair<String, String?>> {
        val creds = config.credentialsProvider
        return sequenceOf(
            "region" to config.region,
            "endpointUrl" to config.endpointUrl,
            "profile" to ((creds as? DefaultChainCredentialsProvider)?.profile ?: config.profile),
            "accessKeyId" to (creds as? StaticCredentialsProvider)?.accessKeyId,
            "secretAccessKey" to (creds as? StaticCredentialsProvider)?.secretAccessKey,
            "sessionToken" to (creds as? StaticCredentialsProvider)?.sessionToken,
        )
    }

    // The blocking forms' way in: one direct native call per operation (Direct.kt). Released by
    // close(), or when the client becomes unreachable unclosed.
    private val direct: Long = native.directHandle().toLong()
    private val directCleanup = UniffiLib.CLEANER.register(this, ReleaseDirect(direct))

    /** The signing region, resolved (code, then environment, then profile). */
    val region: String get() = resolved.region

    /** The endpoint URL requests go to. */
    val endpointUrl: String get() = resolved.endpointUrl

    /** The User-Agent sent with each request. */
    val userAgent: String get() = resolved.userAgent

    /** Attempts per call, the first included. */
    val maxAttempts: Int get() = resolved.maxAttempts.toInt()

    internal val core: NativeClient get() = native

    /** The name of the credentials' source (`Static`, `Environment`, …), loading them if needed. */
    fun credentialsProviderName(): String = translating { native.credentialsProviderName() }

    // ------------------------------------------------------------------ suspend forms

    /** BatchMeterUsage: up to 25 usage records in one call. */
    suspend fun batchMeterUsage(input: BatchMeterUsageRequest): BatchMeterUsageResponse = translating(input::strings) {
        native.batchMeterUsageAsync(input.productCode, input.usageRecords?.toNativeRecords())
    }.toPublic()

    /** `batchMeterUsage(BatchMeterUsageRequest { ... })`. */
    suspend fun batchMeterUsage(block: BatchMeterUsageRequest.Builder.() -> Unit): BatchMeterUsageResponse =
        batchMeterUsage(BatchMeterUsageRequest(block))

    /** MeterUsage: one usage record. */
    suspend fun meterUsage(input: MeterUsageRequest): MeterUsageResponse =
        translating(input::strings) { native.meterUsageAsync(input.toNative()) }.toPublic()

    /** `meterUsage(MeterUsageRequest { ... })`. */
    suspend fun meterUsage(block: MeterUsageRequest.Builder.() -> Unit): MeterUsageResponse =
        meterUsage(MeterUsageRequest(block))

    /** ResolveCustomer: a registration token to the customer it belongs to. */
    suspend fun resolveCustomer(input: ResolveCustomerRequest): ResolveCustomerResponse =
        translating({ sequenceOf("RegistrationToken" to input.registrationToken) }) {
            native.resolveCustomerAsync(input.registrationToken)
        }.toPublic()

    /** `resolveCustomer(ResolveCustomerRequest { ... })`. */
    suspend fun resolveCustomer(block: ResolveCustomerRequest.Builder.() -> Unit): ResolveCustomerResponse =
        resolveCustomer(ResolveCustomerRequest(block))

    /** RegisterUsage: the entitlement check of a paid container product. */
    suspend fun registerUsage(input: RegisterUsageRequest): RegisterUsageResponse = translating(input::strings) {
        native.registerUsageAsync(input.productCode, input.publicKeyVersion, input.nonce)
    }.toPublic()

    /** `registerUsage(RegisterUsageRequest { ... })`. */
    suspend fun registerUsage(block: RegisterUsageRequest.Builder.() -> Unit): RegisterUsageResponse =
        registerUsage(RegisterUsageRequest(block))

    // ----------------------------------------------------------------- blocking forms

    /** [batchMeterUsage], blocking the calling thread (not for coroutines). */
    fun batchMeterUsageBlocking(input: BatchMeterUsageRequest): BatchMeterUsageResponse = blocking(
        Direct.BATCH_METER_USAGE,
        input::strings,
        { buf ->
            FfiConverterOptionalString.write(input.productCode, buf)
            FfiConverterOptionalSequenceOptionalTypeUsageRecord.write(input.usageRecords?.toNativeRecords(), buf)
        },
    ) { FfiConverterTypeBatchMeterUsageResult.read(it) }.toPublic()

    /** [meterUsage], blocking the calling thread. */
    fun meterUsageBlocking(input: MeterUsageRequest): MeterUsageResponse = blocking(
        Direct.METER_USAGE,
        input::strings,
        { buf -> FfiConverterTypeMeterUsageParams.write(input.toNative(), buf) },
    ) { FfiConverterTypeMeterUsageResult.read(it) }.toPublic()

    /** [resolveCustomer], blocking the calling thread. */
    fun resolveCustomerBlocking(input: ResolveCustomerRequest): ResolveCustomerResponse = blocking(
        Direct.RESOLVE_CUSTOMER,
        { sequenceOf("RegistrationToken" to input.registrationToken) },
        { buf -> FfiConverterOptionalString.write(input.registrationToken, buf) },
    ) { FfiConverterTypeResolveCustomerResult.read(it) }.toPublic()

    /** [registerUsage], blocking the calling thread. */
    fun registerUsageBlocking(input: RegisterUsageRequest): RegisterUsageResponse = blocking(
        Direct.REGISTER_USAGE,
        input::strings,
        { buf ->
            FfiConverterOptionalString.write(input.productCode, buf)
            FfiConverterOptionalInt.write(input.publicKeyVersion, buf)
            FfiConverterOptionalString.write(input.nonce, buf)
        },
    ) { FfiConverterTypeRegisterUsageResult.read(it) }.toPublic()

    private fun <T> blocking(
        op: Int,
        strings: () -> Sequence<Pair<String, String?>>,
        write: (java.nio.ByteBuffer) -> Unit,
        read: (java.nio.ByteBuffer) -> T,
    ): T =
        try {
            translating(strings) { Direct.call(direct, op, true, write, read) }
        } finally {
            // The cleaner must not release the handle while a call made with it runs.
            Reference.reachabilityFence(this)
        }

    // --------------------------------------------------------- CompletableFuture forms

    /** [batchMeterUsage] as a [CompletableFuture] (completed on a `Dispatchers.Default` thread). */
    fun batchMeterUsageAsync(input: BatchMeterUsageRequest): CompletableFuture<BatchMeterUsageResponse> =
        futures.future { batchMeterUsage(input) }

    /** [meterUsage] as a [CompletableFuture]. */
    fun meterUsageAsync(input: MeterUsageRequest): CompletableFuture<MeterUsageResponse> =
        futures.future { meterUsage(input) }

    /** [resolveCustomer] as a [CompletableFuture]. */
    fun resolveCustomerAsync(input: ResolveCustomerRequest): CompletableFuture<ResolveCustomerResponse> =
        futures.future { resolveCustomer(input) }

    /** [registerUsage] as a [CompletableFuture]. */
    fun registerUsageAsync(input: RegisterUsageRequest): CompletableFuture<RegisterUsageResponse> =
        futures.future { registerUsage(input) }

    /** Releases the native client (pooled connections). Calls after this fail. */
    override fun close() {
        directCleanup.clean()
        native.close()
    }

    override fun toString(): String = "MarketplaceMeteringClient(region=$region, endpointUrl=$endpointUrl)"

    /**
     * The client's settings. Unset values come from the environment and the shared config
     * file as the AWS SDKs read them (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL_MARKETPLACE_METERING`,
     * `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, `AWS_USE_FIPS_ENDPOINT`, …), then the defaults.
     */
    data class Config(
        val region: String? = null,
        val endpointUrl: String? = null,
        /** `null`: the default chain. */
        val credentialsProvider: CredentialsProvider? = null,
        val profile: String? = null,
        val useFips: Boolean? = null,
        val useDualStack: Boolean? = null,
        val retryMode: RetryMode? = null,
        val maxAttempts: Int? = null,
        val initialBackoff: Duration? = null,
        val maxBackoff: Duration? = null,
        val connectTimeout: Duration? = null,
        val readTimeout: Duration? = null,
        val attemptTimeout: Duration? = null,
        val operationTimeout: Duration? = null,
    ) {
        /** Every setting; an endpoint URL with user info (a password) is not shown. */
        override fun toString(): String =
            "Config(region=$region, endpointUrl=${endpointUrl?.let { if ('@' in it) "(hidden: it holds user info)" else it }}, " +
                "credentialsProvider=$credentialsProvider, profile=$profile, useFips=$useFips, useDualStack=$useDualStack, " +
                "retryMode=$retryMode, maxAttempts=$maxAttempts, initialBackoff=$initialBackoff, maxBackoff=$maxBackoff, " +
                "connectTimeout=$connectTimeout, readTimeout=$readTimeout, attemptTimeout=$attemptTimeout, " +
                "operationTimeout=$operationTimeout)"
    }

    /** Builds a client: properties for the Kotlin DSL, fluent methods for Java. */
    class Builder internal constructor() {
        var region: String? = null
        var endpointUrl: String? = null
        var credentialsProvider: CredentialsProvider? = null
        var profile: String? = null
        var useFips: Boolean? = null
        var useDualStack: Boolean? = null
        var retryMode: RetryMode? = null
        var maxAttempts: Int? = null
        var initialBackoff: Duration? = null
        var maxBackoff: Duration? = null
        var connectTimeout: Duration? = null
        var readTimeout: Duration? = null
        var attemptTimeout: Duration? = null
        var operationTimeout: Duration? = null

        fun region(v: String?) = apply { region = v }
        fun endpointUrl(v: String?) = apply { endpointUrl = v }
        fun credentialsProvider(v: CredentialsProvider?) = apply { credentialsProvider = v }
        fun profile(v: String?) = apply { profile = v }
        fun useFips(v: Boolean?) = apply { useFips = v }
        fun useDualStack(v: Boolean?) = apply { useDualStack = v }
        fun retryMode(v: RetryMode?) = apply { retryMode = v }
        fun maxAttempts(v: Int?) = apply { maxAttempts = v }
        fun initialBackoff(v: Duration?) = apply { initialBackoff = v }
        fun maxBackoff(v: Duration?) = apply { maxBackoff = v }
        fun connectTimeout(v: Duration?) = apply { connectTimeout = v }
        fun readTimeout(v: Duration?) = apply { readTimeout = v }
        fun attemptTimeout(v: Duration?) = apply { attemptTimeout = v }
        fun operationTimeout(v: Duration?) = apply { operationTimeout = v }

        /** The client; fails with [InvalidConfigException] (no region, FIPS with an endpoint, …). */
        fun build(): MarketplaceMeteringClient = MarketplaceMeteringClient(
            Config(
                region, endpointUrl, credentialsProvider, profile, useFips, useDualStack, retryMode,
                maxAttempts, initialBackoff, maxBackoff, connectTimeout, readTimeout, attemptTimeout,
                operationTimeout,
            ),
        )
    }

    companion object {
        /** This package's version. */
        const val VERSION: String = "0.1.0"

        /** `MarketplaceMeteringClient { region = "us-east-1" }`. */
        operator fun invoke(block: Builder.() -> Unit): MarketplaceMeteringClient = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()

        /** A client configured entirely from the environment and shared config. */
        @JvmStatic
        fun fromEnvironment(): MarketplaceMeteringClient = Builder().build()

        /** The native library's version. */
        @JvmStatic
        fun nativeVersion(): String {
            // Before the generated bindings load the library: loaded under its plain name
            // first, a second copy (the cached one) would then serve the blocking calls,
            // which would not know this copy's clients.
            NativeLibrary.ensurePrepared()
            return ffiNativeVersion()
        }

        // Completes CompletableFutures off the native runtime's threads, so that callbacks
        // chained on them may block. Lazy: a process that never asks for a CompletableFuture
        // does not load kotlinx.coroutines at start (about 50 classes, 0.1-0.2 s of a cold start).
        private val futures by lazy { CoroutineScope(SupervisorJob() + Dispatchers.Default) }

        init {
            // At JVM exit: writes live meters' memory buffers (the meters stay open for the
            // application's own hooks) and joins the native runtime's threads.
            // A client first made inside a shutdown hook: the JVM is exiting and takes no more
            // hooks; the class must still load (its calls work; the hook's work is the
            // caller's own close()).
            try {
                Runtime.getRuntime().addShutdownHook(Thread({ nativeShutdown() }, "marketplace-metering-shutdown"))
            } catch (_: IllegalStateException) {
            }
        }
    }
}

private fun RegisterUsageRequest.strings() = sequenceOf("ProductCode" to productCode, "Nonce" to nonce)

/** Releases a client's or a meter's direct handle (a static class: it must not hold its owner). */
internal class ReleaseDirect(private val handle: Long) : Runnable {
    override fun run() = directRelease(handle.toULong())
}

/**
 * Milliseconds, saturated by sign past Long's range (the native side bounds every value and
 * names the field; a huge negative one was taken as Long.MAX_VALUE, no limit at all), and a
 * positive duration under a millisecond is 1 ms, not 0.
 */
private fun Duration.toMillisOrNull(): Long = when {
    isNegative -> try { toMillis() } catch (e: ArithmeticException) { Long.MIN_VALUE }
    isZero -> 0L
    else -> try { maxOf(1L, toMillis()) } catch (e: ArithmeticException) { Long.MAX_VALUE }
}

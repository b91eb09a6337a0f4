// SPDX-License-Identifier: Apache-2.0
// The durable usage meter: record usage as it happens, bill each customer-hour exactly once.

package dev.marketplacemetering

import dev.marketplacemetering.internal.FfiConverterOptionalLong
import dev.marketplacemetering.internal.FfiConverterOptionalSequenceOptionalTypeUsageAllocation
import dev.marketplacemetering.internal.FfiConverterOptionalString
import dev.marketplacemetering.internal.FfiConverterOptionalTimestamp
import dev.marketplacemetering.internal.MeterEventRecord
import dev.marketplacemetering.internal.MeterOptions
import dev.marketplacemetering.internal.NativeMeter
import dev.marketplacemetering.internal.UniffiLib
import dev.marketplacemetering.model.UsageAllocation
import dev.marketplacemetering.testing.ManualClock
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.future.future
import java.lang.ref.Reference
import java.nio.file.Path
import java.time.Duration
import java.time.Instant
import java.util.concurrent.CompletableFuture
import dev.marketplacemetering.internal.MeterListener as NativeListener

/** Which operation sends the buckets. */
enum class MeterMode(internal val wire: String) {
    /** BatchMeterUsage, 25 customer-hours a call (SaaS). The default. */
    BATCH("batch"),

    /** MeterUsage, one call per dimension-hour (AMI and container products; no customer). */
    METER_USAGE("meter_usage"),
}

/** When `record()` returns. */
enum class Durability(internal val wire: String) {
    /** Once the event is on disk (fsync). The default. */
    DURABLE("durable"),

    /** Once a group commit shared with concurrent records is on disk. */
    GROUP("group"),

    /** At once; buffered events are written at flush and close (a crash loses them). */
    MEMORY("memory"),
}

/**
 * What happened to a bucket. [kind] is `acked`, `dead_lettered`, `late_event`,
 * `window_alarm` or `expired`; [hour] is the bucket's hour.
 */
data class MeterEvent(
    val kind: String,
    val customerIdentifier: String?,
    val customerAwsAccountId: String?,
    val licenseArn: String?,
    val dimension: String,
    val hour: Instant,
    val quantity: Long,
    /** `acked`: the service's id for the record. */
    val meteringRecordId: String?,
    /**
     * `dead_lettered`: why: the record's Status (`CustomerNotSubscribed`, …) or the error code;
     * the dead letter's `reason` and `requeue(reason = …)`'s filter. `expired`:
     * `OutcomeUnknown` when an earlier send of the bucket got no answer, so the service may
     * have metered it then (check its records before billing it another way); `null` when every
     * earlier send, if any, was answered (refused or throttled).
     */
    val reason: String?,
    /** `dead_lettered`, and `expired` with a [reason]: details. */
    val message: String?,
    /** `late_event`: the hour the quantity was counted in. */
    val countedInHour: Instant?,
    /** `window_alarm`: when the service stops accepting the bucket. */
    val windowEnd: Instant?,
    /** On the fleet store (`databaseUrl`), the `replicaId` of the meter that emitted the event; null on a local store. */
    val replicaId: String? = null,
)

/**
 * Receives the meter's events. Called on the meter's own threads (the one flushing, or the
 * background flusher's): return quickly, and do not call the meter from it (such calls fail
 * with [InvalidStateException]). An exception it throws is logged and dropped.
 */
fun interface MeterListener {
    fun onEvent(event: MeterEvent)
}

/** Bucket counts per state. */
data class MeterStatus @JvmOverloads constructor(
    val pending: Long,
    val sealed: Long,
    val acked: Long,
    val deadLettered: Long,
    val expired: Long,
    val oldestUnsentHour: Instant?,
    /** On the fleet store, this meter's `replicaId` (the counts are the whole fleet's for the product); null on a local store. */
    val replicaId: String? = null,
    /** When this meter's last flush ended (a caller's, [UsageMeter.close]'s or the background flusher's); null before the first. */
    val lastFlushAt: Instant? = null,
    /**
     * `"Code: message"` of what failed or stopped this meter's last flush (an error, or throttling, a transport
     * failure); null when it went well. A background flush has no caller to throw to: a health check reads it here.
     */
    val lastFlushError: String? = null,
)

/** What one flush did. [interruptedCode] is set when throttling or transport failures stopped it early. */
data class FlushSummary(
    val sealed: Long,
    val sent: Long,
    val calls: Long,
    val acked: Long,
    val deadLettered: Long,
    val expired: Long,
    val resentUnprocessed: Long,
    val deferred: Long,
    val interruptedCode: String?,
    val interruptedMessage: String?,
)

/** A bucket the service did not meter. */
data class DeadLetter(
    val customerIdentifier: String?,
    val customerAwsAccountId: String?,
    val licenseArn: String?,
    val dimension: String,
    val hour: Instant,
    val quantity: Long,
    val reason: String,
    val message: String,
    val at: Instant,
)

/**
 * Records usage as it happens into hourly buckets in a local store (SQLite) and sends each
 * sealed customer-hour exactly once, surviving crashes and restarts. The same store file is
 * readable by every face. One meter owns a store at a time: a second one, in this process or
 * another, fails at once naming the holder.
 *
 * ```kotlin
 * UsageMeter(client) { path = Path.of("metering.db"); productCode = "prod-1" }.use { meter ->
 *     meter.record("cust-1", "users", 3)
 * }
 * ```
 */
class UsageMeter private constructor(
    client: MarketplaceMeteringClient,
    config: Config,
) : AutoCloseable {
    /** The meter's settings. `null`: the default. */
    data class Config(
        /** The SQLite store; `null` (and no [databaseUrl]): in memory (tests). */
        val path: Path? = null,
        val productCode: String? = null,
        val mode: MeterMode? = null,
        val durability: Durability? = null,
        /**
         * How long after its hour a bucket waits for late events before it is sealed (default
         * 5 min); at most 4 hours (the service's window less two hours, so an hour is left to
         * send in).
         */
        val grace: Duration? = null,
        /** Report registered customers' dimensions as 0 in hours without usage. */
        val zeroFill: Boolean? = null,
        /**
         * The background flusher's period (default 60 s, at most 30 minutes: window alarms are
         * raised by flushes); [Duration.ZERO]: no background flusher.
         */
        val flushInterval: Duration? = null,
        val listener: MeterListener? = null,
        /** A clock set by hand (tests). */
        val clock: ManualClock? = null,
        /**
         * The fleet store: PostgreSQL shared by every replica of a service
         * (`postgresql://user@host/db`, or `?host=/socket/dir`); each customer-hour is billed
         * once across the fleet. Not with [path].
         */
        val databaseUrl: String? = null,
        /** This replica's name in the fleet store (default: host name and process id). */
        val replicaId: String? = null,
        /** Fleet store: how many replicas send at a time per product (default 1). */
        val fleetSenders: Int? = null,
        /** Fleet store: how long a sender's claim lasts (default 2 minutes, at most 30). */
        val fleetLease: Duration? = null,
        /**
         * Fleet store: the cut-over from a SQLite meter, the first hour this store counts
         * (rounded down). Before it every event, and after it an event of an earlier hour
         * still within its grace, are refused naming `timestamp` (they belong to the SQLite
         * meter); a late event of an earlier hour is counted in the current hour.
         */
        val startHour: Instant? = null,
        /**
         * The SQLite store's commits: `true` (default) fsyncs each one, which survives the
         * machine losing power; `false` commits without an fsync (SQLite's `synchronous=NORMAL`
         * in WAL mode): a commit survives the process being killed, but the last commits
         * before the machine itself fails may be lost, and commits are several times faster.
         * For a store on a disk that does not outlive its machine (a container's ephemeral
         * storage) `true` protects nothing. The fleet store refuses `false`: its commits are
         * as durable as the database makes them.
         */
        val powerLossSafe: Boolean? = null,
    ) {
        /** Every setting but the database URL's text, which may hold a password (as the core never prints it). */
        override fun toString(): String =
            "Config(path=$path, productCode=$productCode, mode=$mode, durability=$durability, grace=$grace, " +
                "zeroFill=$zeroFill, flushInterval=$flushInterval, listener=$listener, clock=$clock, " +
                "databaseUrl=${databaseUrl?.let { "(hidden)" }}, replicaId=$replicaId, fleetSenders=$fleetSenders, " +
                "fleetLease=$fleetLease, startHour=$startHour, powerLossSafe=$powerLossSafe)"
    }

    /** Builds a meter: Kotlin DSL properties, fluent methods for Java. */
    class Builder internal constructor(private val client: MarketplaceMeteringClient) {
        var path: Path? = null
        var productCode: String? = null
        var mode: MeterMode? = null
        var durability: Durability? = null
        var grace: Duration? = null
        var zeroFill: Boolean? = null
        var flushInterval: Duration? = null
        var listener: MeterListener? = null
        var clock: ManualClock? = null
        var databaseUrl: String? = null
        var replicaId: String? = null
        var fleetSenders: Int? = null
        var fleetLease: Duration? = null
        var startHour: Instant? = null
        var powerLossSafe: Boolean? = null

        fun path(v: Path?) = apply { path = v }
        fun productCode(v: String?) = apply { productCode = v }
        fun mode(v: MeterMode?) = apply { mode = v }
        fun durability(v: Durability?) = apply { durability = v }
        fun grace(v: Duration?) = apply { grace = v }
        fun zeroFill(v: Boolean?) = apply { zeroFill = v }
        fun flushInterval(v: Duration?) = apply { flushInterval = v }
        fun listener(v: MeterListener?) = apply { listener = v }
        fun clock(v: ManualClock?) = apply { clock = v }
        fun databaseUrl(v: String?) = apply { databaseUrl = v }
        fun replicaId(v: String?) = apply { replicaId = v }
        fun fleetSenders(v: Int?) = apply { fleetSenders = v }
        fun fleetLease(v: Duration?) = apply { fleetLease = v }
        fun startHour(v: Instant?) = apply { startHour = v }
        fun powerLossSafe(v: Boolean?) = apply { powerLossSafe = v }

        fun build(): UsageMeter = UsageMeter(
            client,
            Config(
                path, productCode, mode, durability, grace, zeroFill, flushInterval, listener, clock,
                databaseUrl, replicaId, fleetSenders, fleetLease, startHour, powerLossSafe,
            ),
        )
    }

    private val native: NativeMeter = translatingSettings({
        sequenceOf(
            "path" to config.path?.toString(),
            "databaseUrl" to config.databaseUrl,
            "replicaId" to config.replicaId,
            "productCode" to config.productCode,
        )
    }) {
        NativeLibrary.ensurePrepared()
        NativeMeter(
            client.core,
            MeterOptions(
                path = config.path?.toString(),
                databaseUrl = config.databaseUrl,
                replicaId = config.replicaId,
                fleetSenders = config.fleetSenders?.let { if (it < 0) 0u else it.toUInt() },
                fleetLeaseMillis = config.fleetLease?.meterMillis(),
                startHour = config.startHour?.epochSecond,
                productCode = config.productCode,
                mode = config.mode?.wire,
                durability = config.durability?.wire,
                graceMillis = config.grace?.meterMillis(),
                zeroFill = config.zeroFill,
                flushIntervalMillis = config.flushInterval?.meterMillis(),
                clock = config.clock?.native,
                powerLossSafe = config.powerLossSafe,
            ),
            config.listener?.let(::Relay),
        )
    }

    /** Adds [quantity] of [dimension] used by a SaaS customer to its hour's bucket (now, or [timestamp]). */
    @JvmOverloads
    fun record(
        customerIdentifier: String?,
        dimension: String?,
        quantity: Long?,
        timestamp: Instant? = null,
        allocations: List<UsageAllocation>? = null,
    ) = recordDirect({
        sequenceOf("customerIdentifier" to customerIdentifier, "dimension" to dimension) +
            allocations?.allocationStrings("allocations").orEmpty()
    }, customerIdentifier, null, null, dimension, quantity, timestamp, allocations)

    /** [record] for a customer known by AWS account id and license ARN. */
    @JvmOverloads
    fun recordForAccount(
        customerAwsAccountId: String?,
        licenseArn: String?,
        dimension: String?,
        quantity: Long?,
        timestamp: Instant? = null,
        allocations: List<UsageAllocation>? = null,
    ) = recordDirect({
        sequenceOf("customerAwsAccountId" to customerAwsAccountId, "licenseArn" to licenseArn, "dimension" to dimension) +
            allocations?.allocationStrings("allocations").orEmpty()
    }, null, customerAwsAccountId, licenseArn, dimension, quantity, timestamp, allocations)

    /** In METER_USAGE mode, where buckets have no customer. */
    @JvmOverloads
    fun recordUsage(dimension: String?, quantity: Long?, timestamp: Instant? = null) =
        recordDirect({ sequenceOf("dimension" to dimension) }, null, null, null, dimension, quantity, timestamp, null)

    // record() in one direct native call (Direct.kt): through the generated call it made nine
    // (a buffer per argument), about 170 µs a record. The handle lives as long as this object
    // (a closed meter's record fails in the core, as before); the cleaner releases it.
    private val direct: Long = native.directHandle().toLong()
    private val directCleanup = UniffiLib.CLEANER.register(this, ReleaseDirect(direct))

    private fun recordDirect(
        strings: () -> Sequence<Pair<String, String?>>,
        customerIdentifier: String?,
        customerAwsAccountId: String?,
        licenseArn: String?,
        dimension: String?,
        quantity: Long?,
        timestamp: Instant?,
        allocations: List<UsageAllocation>?,
    ) {
        try {
            translating(strings) {
                Direct.call(direct, Direct.RECORD, false, { buf ->
                    FfiConverterOptionalString.write(customerIdentifier, buf)
                    FfiConverterOptionalString.write(customerAwsAccountId, buf)
                    FfiConverterOptionalString.write(licenseArn, buf)
                    FfiConverterOptionalString.write(dimension, buf)
                    FfiConverterOptionalLong.write(quantity, buf)
                    FfiConverterOptionalTimestamp.write(timestamp, buf)
                    FfiConverterOptionalSequenceOptionalTypeUsageAllocation.write(allocations?.toNativeAllocations(), buf)
                }) { }
            }
        } finally {
            // The cleaner must not release the handle while a call made with it runs.
            Reference.reachabilityFence(this)
        }
    }

    /** With zero-fill on: from the current hour, each of [dimensions] is reported every hour. */
    fun registerCustomer(customerIdentifier: String?, dimensions: List<String?>?) = translating({
        sequenceOf("customerIdentifier" to customerIdentifier) +
            dimensions.orEmpty().asSequence().mapIndexed { i, d -> "dimensions[$i]" to d }
    }) {
        native.registerCustomer(customerIdentifier, null, null, dimensions)
    }

    /** [registerCustomer] for a customer known by AWS account id and license ARN. */
    fun registerCustomerForAccount(customerAwsAccountId: String?, licenseArn: String?, dimensions: List<String?>?) =
        translating({
            sequenceOf("customerAwsAccountId" to customerAwsAccountId, "licenseArn" to licenseArn) +
                dimensions.orEmpty().asSequence().mapIndexed { i, d -> "dimensions[$i]" to d }
        }) {
            native.registerCustomer(null, customerAwsAccountId, licenseArn, dimensions)
        }

    /**
     * Stops zero-filling a customer that churned: its registrations for [dimensions] (every
     * dimension when null) are removed at once, so no zero is made for an hour not zero-filled
     * yet; usage recorded is still sent. Returns how many registrations were removed.
     */
    @JvmOverloads
    fun unregisterCustomer(customerIdentifier: String?, dimensions: List<String?>? = null): Long = translating({
        sequenceOf("customerIdentifier" to customerIdentifier) +
            dimensions.orEmpty().asSequence().mapIndexed { i, d -> "dimensions[$i]" to d }
    }) {
        native.unregisterCustomer(customerIdentifier, null, null, dimensions).toLong()
    }

    /** [unregisterCustomer] for a customer known by AWS account id and license ARN. */
    @JvmOverloads
    fun unregisterCustomerForAccount(
        customerAwsAccountId: String?,
        licenseArn: String?,
        dimensions: List<String?>? = null,
    ): Long = translating({
        sequenceOf("customerAwsAccountId" to customerAwsAccountId, "licenseArn" to licenseArn) +
            dimensions.orEmpty().asSequence().mapIndexed { i, d -> "dimensions[$i]" to d }
    }) {
        native.unregisterCustomer(null, customerAwsAccountId, licenseArn, dimensions).toLong()
    }

    /**
     * Seals what may be sealed and sends every sealed bucket now (blocking, on the calling
     * thread: the listener runs there).
     *
     * An interrupt of the calling thread (`Thread.interrupt()`) stops it, throwing
     * [java.util.concurrent.CancellationException], the thread staying interrupted: what it
     * had not sent stays sealed for the next flush, and nothing it took is dropped. A thread
     * interrupted before the call sends nothing.
     */
    fun flush(): FlushSummary =
        Direct.interruptibly { call -> translating { native.flushUntil(call.toULong()) } }?.toPublic()
            ?: throw java.util.concurrent.CancellationException(
                "the calling thread was interrupted: the flush stopped; what it had not sent is sent by the next flush",
            )

    /**
     * [flush] as a suspend function (runs on the native runtime). Cancelling the coroutine
     * stops the flush, as an interrupt stops [flush]: what it had not settled is sent by the
     * next flush. So does cancelling [flushAsync]'s future.
     */
    suspend fun flushSuspend(): FlushSummary {
        refuseInListener()
        return flushOnRuntime()
    }

    /** [flush] as a [CompletableFuture]. */
    fun flushAsync(): CompletableFuture<FlushSummary> =
        try {
            refuseInListener()
            scope.future { flushOnRuntime() }
        } catch (e: MarketplaceMeteringException) {
            CompletableFuture.failedFuture(e)
        }

    private suspend fun flushOnRuntime(): FlushSummary = translating { native.flushAsync() }.toPublic()

    /**
     * From this meter's own listener, a flush that runs elsewhere would wait for the flush
     * delivering the event (it holds the meter's flush): the meter would hang for good. The
     * core refuses it there, as it refuses [flush].
     */
    private fun refuseInListener() = translating { native.refuseInListener("flush()") }

    /** Bucket counts per state. */
    fun status(): MeterStatus = translating { native.status() }.let {
        MeterStatus(
            it.pending.toLong(), it.sealed.toLong(), it.acked.toLong(), it.deadLettered.toLong(),
            it.expired.toLong(), it.oldestUnsentHour?.let(Instant::ofEpochSecond), it.replicaId,
            it.lastFlushAt?.let(Instant::ofEpochSecond), it.lastFlushError,
        )
    }

    /** Every dead letter, oldest first. */
    fun deadLetters(): List<DeadLetter> = translating { native.deadLetters() }.map {
        DeadLetter(
            it.customerIdentifier, it.customerAwsAccountId, it.licenseArn, it.dimension,
            Instant.ofEpochSecond(it.hour), it.quantity, it.reason, it.detail, Instant.ofEpochSecond(it.at),
        )
    }

    /** Sends chosen dead letters again while their hour is inside the window; `null` matches all. */
    @JvmOverloads
    fun requeue(
        reason: String? = null,
        customerIdentifier: String? = null,
        customerAwsAccountId: String? = null,
        licenseArn: String? = null,
        hour: Instant? = null,
    ): Long = translating({
        sequenceOf(
            "reason" to reason,
            "customerIdentifier" to customerIdentifier,
            "customerAwsAccountId" to customerAwsAccountId,
            "licenseArn" to licenseArn,
        )
    }) {
        native.requeue(reason, customerIdentifier, customerAwsAccountId, licenseArn, hour).toLong()
    }

    /** Stops the background flusher and flushes what may be flushed; returns that flush's summary. */
    fun closeAndFlush(): FlushSummary = translating { native.closeAndFlush() }.toPublic()

    /**
     * [closeAndFlush]; a second close after one that succeeded does nothing. An error of the
     * final flush is thrown (a `use {}` block must not end normally when its usage was not
     * saved), and the meter keeps its store: a later close flushes again. (The native handle
     * itself is freed when this object is collected: the core meter is released by the first
     * close that succeeds.)
     */
    override fun close() {
        translating { native.closeOnce() }
    }

    companion object {
        /** `UsageMeter(client) { path = ...; productCode = ... }`. */
        operator fun invoke(client: MarketplaceMeteringClient, block: Builder.() -> Unit): UsageMeter =
            Builder(client).apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(client: MarketplaceMeteringClient): Builder = Builder(client)

        // Lazy: only flushAsync needs it (kotlinx.coroutines is not loaded otherwise).
        private val scope by lazy { CoroutineScope(SupervisorJob() + Dispatchers.Default) }
        private val log: System.Logger = System.getLogger("dev.marketplacemetering.UsageMeter")
    }

    private class Relay(private val listener: MeterListener) : NativeListener {
        override fun onEvent(event: MeterEventRecord) {
            try {
                listener.onEvent(
                    MeterEvent(
                        event.kind, event.customerIdentifier, event.customerAwsAccountId, event.licenseArn,
                        event.dimension, Instant.ofEpochSecond(event.hour), event.quantity,
                        event.meteringRecordId, event.reason, event.detail,
                        event.countedInHour?.let(Instant::ofEpochSecond), event.windowEnd?.let(Instant::ofEpochSecond),
                        event.replicaId,
                    ),
                )
            } catch (t: Throwable) {
                // Never into the native meter's thread.
                log.log(System.Logger.Level.ERROR, "UsageMeter: the listener threw", t)
            }
        }
    }
}

private fun dev.marketplacemetering.internal.FlushSummaryRecord.toPublic() = FlushSummary(
    sealed.toLong(), sent.toLong(), calls.toLong(), acked.toLong(), deadLettered.toLong(),
    expired.toLong(), resentUnprocessed.toLong(), deferred.toLong(), interrupted?.code, interrupted?.detail,
)

/**
 * Milliseconds for the meter's settings: a positive duration under a millisecond is 1 ms, not
 * 0 (which is "off" for the flusher), and one past Long's milliseconds saturates by sign (the
 * core bounds every value and names the field) instead of throwing ArithmeticException.
 */
private fun Duration.meterMillis(): Long = when {
    isZero -> 0L
    isNegative -> try { toMillis() } catch (e: ArithmeticException) { Long.MIN_VALUE }
    else -> try {
        maxOf(1L, Math.addExact(toMillis(), if (toNanosPart() % 1_000_000 != 0) 1L else 0L))
    } catch (e: ArithmeticException) {
        Long.MAX_VALUE
    }
}

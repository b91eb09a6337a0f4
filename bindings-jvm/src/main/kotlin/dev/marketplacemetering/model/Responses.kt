// SPDX-License-Identifier: Apache-2.0
// What the service answers, as data classes.

package dev.marketplacemetering.model

import java.time.Instant

/** What came back with a response: request id, HTTP status and the attempts the call took. */
data class ResponseMetadata(
    val requestId: String?,
    val httpStatus: Int?,
    val attempts: Int,
)

/** The per-record status of BatchMeterUsage; a value this version does not know is [SdkUnknown]. */
sealed class UsageRecordResultStatus {
    abstract val value: String

    object Success : UsageRecordResultStatus() {
        override val value = "Success"
        override fun toString() = value
    }

    object CustomerNotSubscribed : UsageRecordResultStatus() {
        override val value = "CustomerNotSubscribed"
        override fun toString() = value
    }

    object DuplicateRecord : UsageRecordResultStatus() {
        override val value = "DuplicateRecord"
        override fun toString() = value
    }

    data class SdkUnknown(override val value: String) : UsageRecordResultStatus() {
        override fun toString() = "SdkUnknown($value)"
    }

    companion object {
        /** The status for a wire value. */
        @JvmStatic
        fun fromValue(value: String): UsageRecordResultStatus = when (value) {
            "Success" -> Success
            "CustomerNotSubscribed" -> CustomerNotSubscribed
            "DuplicateRecord" -> DuplicateRecord
            else -> SdkUnknown(value)
        }

        /** Every value this version knows. */
        @JvmStatic
        fun values(): List<UsageRecordResultStatus> = listOf(Success, CustomerNotSubscribed, DuplicateRecord)
    }
}

/** The outcome of one record of a BatchMeterUsage call. */
data class UsageRecordResult(
    val usageRecord: UsageRecord?,
    val meteringRecordId: String?,
    val status: UsageRecordResultStatus?,
)

/**
 * The output of BatchMeterUsage. Check every result's status and send [unprocessedRecords]
 * again: a call that succeeds can still leave records unmetered.
 */
data class BatchMeterUsageResponse(
    val results: List<UsageRecordResult>,
    val unprocessedRecords: List<UsageRecord>,
    val responseMetadata: ResponseMetadata,
)

/** The output of MeterUsage. */
data class MeterUsageResponse(
    val meteringRecordId: String?,
    val responseMetadata: ResponseMetadata,
)

/** The output of ResolveCustomer. */
data class ResolveCustomerResponse(
    val customerIdentifier: String?,
    val productCode: String?,
    val customerAwsAccountId: String?,
    val licenseArn: String?,
    val responseMetadata: ResponseMetadata,
)

/** The output of RegisterUsage. */
data class RegisterUsageResponse(
    val publicKeyRotationTimestamp: Instant?,
    val signature: String?,
    val responseMetadata: ResponseMetadata,
)

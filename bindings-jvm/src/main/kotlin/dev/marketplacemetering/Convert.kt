// SPDX-License-Identifier: Apache-2.0
// The public model to the generated records and back: field for field, no rules (the core
// validates). List items stay nullable so that a `null` item from Java reaches the core.

package dev.marketplacemetering

import dev.marketplacemetering.model.BatchMeterUsageRequest
import dev.marketplacemetering.model.BatchMeterUsageResponse
import dev.marketplacemetering.model.MeterUsageRequest
import dev.marketplacemetering.model.MeterUsageResponse
import dev.marketplacemetering.model.RegisterUsageResponse
import dev.marketplacemetering.model.ResolveCustomerResponse
import dev.marketplacemetering.model.ResponseMetadata
import dev.marketplacemetering.model.Tag
import dev.marketplacemetering.model.UsageAllocation
import dev.marketplacemetering.model.UsageRecord
import dev.marketplacemetering.model.UsageRecordResult
import dev.marketplacemetering.model.UsageRecordResultStatus
import dev.marketplacemetering.internal.BatchMeterUsageResult as NBatchResult
import dev.marketplacemetering.internal.Metadata as NMetadata
import dev.marketplacemetering.internal.MeterUsageParams as NMeterUsageParams
import dev.marketplacemetering.internal.MeterUsageResult as NMeterUsageResult
import dev.marketplacemetering.internal.RegisterUsageResult as NRegisterUsageResult
import dev.marketplacemetering.internal.ResolveCustomerResult as NResolveCustomerResult
import dev.marketplacemetering.internal.Tag as NTag
import dev.marketplacemetering.internal.UsageAllocation as NUsageAllocation
import dev.marketplacemetering.internal.UsageRecord as NUsageRecord
import dev.marketplacemetering.internal.UsageRecordResultRecord as NUsageRecordResult

// Items typed nullable: Java lists may hold null, which Kotlin's generics do not check.
internal fun List<Tag?>.toNativeTags(): List<NTag?> = map { t -> t?.let { NTag(it.key, it.value) } }

internal fun List<UsageAllocation?>.toNativeAllocations(): List<NUsageAllocation?> =
    map { a -> a?.let { NUsageAllocation(it.allocatedUsageQuantity, it.tags?.toNativeTags()) } }

internal fun UsageRecord.toNative(): NUsageRecord = NUsageRecord(
    timestamp = timestamp,
    customerIdentifier = customerIdentifier,
    dimension = dimension,
    quantity = quantity,
    usageAllocations = usageAllocations?.toNativeAllocations(),
    customerAwsAccountId = customerAwsAccountId,
    licenseArn = licenseArn,
)

internal fun List<UsageRecord?>.toNativeRecords(): List<NUsageRecord?> = map { r -> r?.toNative() }

internal fun MeterUsageRequest.toNative(): NMeterUsageParams = NMeterUsageParams(
    productCode = productCode,
    timestamp = timestamp,
    usageDimension = usageDimension,
    usageQuantity = usageQuantity,
    dryRun = dryRun,
    usageAllocations = usageAllocations?.toNativeAllocations(),
    clientToken = clientToken,
)

internal fun NMetadata.toPublic() = ResponseMetadata(requestId, httpStatus?.toInt(), attempts.toInt())

internal fun NUsageRecord.toPublic() = UsageRecord(
    timestamp = timestamp,
    customerIdentifier = customerIdentifier,
    dimension = dimension,
    quantity = quantity,
    usageAllocations = usageAllocations?.map { a ->
        UsageAllocation(a?.allocatedUsageQuantity, a?.tags?.map { t -> Tag(t?.key, t?.value) })
    },
    customerAwsAccountId = customerAwsAccountId,
    licenseArn = licenseArn,
)

internal fun NUsageRecordResult.toPublic() = UsageRecordResult(
    usageRecord = usageRecord?.toPublic(),
    meteringRecordId = meteringRecordId,
    status = status?.let(UsageRecordResultStatus::fromValue),
)

internal fun NBatchResult.toPublic() = BatchMeterUsageResponse(
    results = results.map { it.toPublic() },
    unprocessedRecords = unprocessedRecords.map { it.toPublic() },
    responseMetadata = metadata.toPublic(),
)

internal fun NMeterUsageResult.toPublic() = MeterUsageResponse(meteringRecordId, metadata.toPublic())

internal fun NResolveCustomerResult.toPublic() = ResolveCustomerResponse(
    customerIdentifier, productCode, customerAwsAccountId, licenseArn, metadata.toPublic(),
)

internal fun NRegisterUsageResult.toPublic() =
    RegisterUsageResponse(publicKeyRotationTimestamp, signature, metadata.toPublic())

// The strings of each input with their field paths (the core's spelling), for the rare input
// UTF-8 cannot encode (`translating(strings) { ... }`). Items typed nullable, as above.

private typealias Strings = Sequence<Pair<String, String?>>

private fun List<Tag?>.tagStrings(path: String): Strings = asSequence().flatMapIndexed { k, t ->
    sequenceOf("$path[$k].Key" to t?.key, "$path[$k].Value" to t?.value)
}

internal fun List<UsageAllocation?>.allocationStrings(path: String): Strings =
    asSequence().flatMapIndexed { j, a -> a?.tags?.tagStrings("$path[$j].Tags").orEmpty() }

private fun List<UsageRecord?>.recordStrings(path: String): Strings = asSequence().flatMapIndexed { i, r ->
    val p = "$path[$i]"
    if (r == null) return@flatMapIndexed emptySequence()
    sequenceOf(
        "$p.CustomerIdentifier" to r.customerIdentifier,
        "$p.Dimension" to r.dimension,
        "$p.CustomerAWSAccountId" to r.customerAwsAccountId,
        "$p.LicenseArn" to r.licenseArn,
    ) + r.usageAllocations?.allocationStrings("$p.UsageAllocations").orEmpty()
}

internal fun BatchMeterUsageRequest.strings(): Strings =
    sequenceOf("ProductCode" to productCode) + usageRecords?.recordStrings("UsageRecords").orEmpty()

internal fun MeterUsageRequest.strings(): Strings = sequenceOf(
    "ProductCode" to productCode,
    "UsageDimension" to usageDimension,
    "ClientToken" to clientToken,
) + usageAllocations?.allocationStrings("UsageAllocations").orEmpty()

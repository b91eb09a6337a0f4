// SPDX-License-Identifier: Apache-2.0
// The model's shapes, as the AWS SDK for Kotlin shapes them: data classes whose members are
// all nullable (a missing required member is refused by the core with an
// InvalidInputException naming it), a Kotlin DSL (`UsageRecord { dimension = "users" }`) and
// a fluent builder for Java (`UsageRecord.builder().dimension("users").build()`).
@file:Suppress("MemberVisibilityCanBePrivate")

package dev.marketplacemetering.model

import java.time.Instant

/** A key-value pair of a usage allocation. */
data class Tag @JvmOverloads constructor(
    val key: String? = null,
    val value: String? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var key: String? = null
        var value: String? = null
        fun key(key: String?): Builder = apply { this.key = key }
        fun value(value: String?): Builder = apply { this.value = value }
        fun build(): Tag = Tag(key, value)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.key = key; b.value = value }

    companion object {
        /** `Tag { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): Tag = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

/** A share of a record's quantity, with the tags it is allocated to. */
data class UsageAllocation @JvmOverloads constructor(
    val allocatedUsageQuantity: Int? = null,
    val tags: List<Tag>? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var allocatedUsageQuantity: Int? = null
        var tags: List<Tag>? = null
        fun allocatedUsageQuantity(allocatedUsageQuantity: Int?): Builder = apply { this.allocatedUsageQuantity = allocatedUsageQuantity }
        fun tags(tags: List<Tag>?): Builder = apply { this.tags = tags }
        fun build(): UsageAllocation = UsageAllocation(allocatedUsageQuantity, tags)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.allocatedUsageQuantity = allocatedUsageQuantity; b.tags = tags }

    companion object {
        /** `UsageAllocation { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): UsageAllocation = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

/** One usage record of BatchMeterUsage. */
data class UsageRecord @JvmOverloads constructor(
    val timestamp: Instant? = null,
    val customerIdentifier: String? = null,
    val dimension: String? = null,
    val quantity: Int? = null,
    val usageAllocations: List<UsageAllocation>? = null,
    val customerAwsAccountId: String? = null,
    val licenseArn: String? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var timestamp: Instant? = null
        var customerIdentifier: String? = null
        var dimension: String? = null
        var quantity: Int? = null
        var usageAllocations: List<UsageAllocation>? = null
        var customerAwsAccountId: String? = null
        var licenseArn: String? = null
        fun timestamp(timestamp: Instant?): Builder = apply { this.timestamp = timestamp }
        fun customerIdentifier(customerIdentifier: String?): Builder = apply { this.customerIdentifier = customerIdentifier }
        fun dimension(dimension: String?): Builder = apply { this.dimension = dimension }
        fun quantity(quantity: Int?): Builder = apply { this.quantity = quantity }
        fun usageAllocations(usageAllocations: List<UsageAllocation>?): Builder = apply { this.usageAllocations = usageAllocations }
        fun customerAwsAccountId(customerAwsAccountId: String?): Builder = apply { this.customerAwsAccountId = customerAwsAccountId }
        fun licenseArn(licenseArn: String?): Builder = apply { this.licenseArn = licenseArn }
        fun build(): UsageRecord = UsageRecord(timestamp, customerIdentifier, dimension, quantity, usageAllocations, customerAwsAccountId, licenseArn)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.timestamp = timestamp; b.customerIdentifier = customerIdentifier; b.dimension = dimension; b.quantity = quantity; b.usageAllocations = usageAllocations; b.customerAwsAccountId = customerAwsAccountId; b.licenseArn = licenseArn }

    companion object {
        /** `UsageRecord { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): UsageRecord = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

/** The input of BatchMeterUsage: up to 25 usage records. */
data class BatchMeterUsageRequest @JvmOverloads constructor(
    val productCode: String? = null,
    val usageRecords: List<UsageRecord>? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var productCode: String? = null
        var usageRecords: List<UsageRecord>? = null
        fun productCode(productCode: String?): Builder = apply { this.productCode = productCode }
        fun usageRecords(usageRecords: List<UsageRecord>?): Builder = apply { this.usageRecords = usageRecords }
        fun build(): BatchMeterUsageRequest = BatchMeterUsageRequest(productCode, usageRecords)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.productCode = productCode; b.usageRecords = usageRecords }

    companion object {
        /** `BatchMeterUsageRequest { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): BatchMeterUsageRequest = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

/** The input of MeterUsage. */
data class MeterUsageRequest @JvmOverloads constructor(
    val productCode: String? = null,
    val timestamp: Instant? = null,
    val usageDimension: String? = null,
    val usageQuantity: Int? = null,
    val dryRun: Boolean? = null,
    val usageAllocations: List<UsageAllocation>? = null,
    val clientToken: String? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var productCode: String? = null
        var timestamp: Instant? = null
        var usageDimension: String? = null
        var usageQuantity: Int? = null
        var dryRun: Boolean? = null
        var usageAllocations: List<UsageAllocation>? = null
        var clientToken: String? = null
        fun productCode(productCode: String?): Builder = apply { this.productCode = productCode }
        fun timestamp(timestamp: Instant?): Builder = apply { this.timestamp = timestamp }
        fun usageDimension(usageDimension: String?): Builder = apply { this.usageDimension = usageDimension }
        fun usageQuantity(usageQuantity: Int?): Builder = apply { this.usageQuantity = usageQuantity }
        fun dryRun(dryRun: Boolean?): Builder = apply { this.dryRun = dryRun }
        fun usageAllocations(usageAllocations: List<UsageAllocation>?): Builder = apply { this.usageAllocations = usageAllocations }
        fun clientToken(clientToken: String?): Builder = apply { this.clientToken = clientToken }
        fun build(): MeterUsageRequest = MeterUsageRequest(productCode, timestamp, usageDimension, usageQuantity, dryRun, usageAllocations, clientToken)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.productCode = productCode; b.timestamp = timestamp; b.usageDimension = usageDimension; b.usageQuantity = usageQuantity; b.dryRun = dryRun; b.usageAllocations = usageAllocations; b.clientToken = clientToken }

    companion object {
        /** `MeterUsageRequest { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): MeterUsageRequest = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

/** The input of ResolveCustomer. */
data class ResolveCustomerRequest @JvmOverloads constructor(
    val registrationToken: String? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var registrationToken: String? = null
        fun registrationToken(registrationToken: String?): Builder = apply { this.registrationToken = registrationToken }
        fun build(): ResolveCustomerRequest = ResolveCustomerRequest(registrationToken)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.registrationToken = registrationToken }

    companion object {
        /** `ResolveCustomerRequest { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): ResolveCustomerRequest = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

/** The input of RegisterUsage. */
data class RegisterUsageRequest @JvmOverloads constructor(
    val productCode: String? = null,
    val publicKeyVersion: Int? = null,
    val nonce: String? = null,
) {
    /** A mutable builder: Kotlin DSL properties, fluent methods for Java. */
    class Builder {
        var productCode: String? = null
        var publicKeyVersion: Int? = null
        var nonce: String? = null
        fun productCode(productCode: String?): Builder = apply { this.productCode = productCode }
        fun publicKeyVersion(publicKeyVersion: Int?): Builder = apply { this.publicKeyVersion = publicKeyVersion }
        fun nonce(nonce: String?): Builder = apply { this.nonce = nonce }
        fun build(): RegisterUsageRequest = RegisterUsageRequest(productCode, publicKeyVersion, nonce)
    }

    /** A builder holding this value's members. */
    fun toBuilder(): Builder = Builder().also { b -> b.productCode = productCode; b.publicKeyVersion = publicKeyVersion; b.nonce = nonce }

    companion object {
        /** `RegisterUsageRequest { ... }`. */
        operator fun invoke(block: Builder.() -> Unit): RegisterUsageRequest = Builder().apply(block).build()

        /** A builder, for Java. */
        @JvmStatic
        fun builder(): Builder = Builder()
    }
}

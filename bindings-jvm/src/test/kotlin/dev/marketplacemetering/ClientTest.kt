// SPDX-License-Identifier: Apache-2.0
package dev.marketplacemetering

import dev.marketplacemetering.model.BatchMeterUsageRequest
import dev.marketplacemetering.model.UsageRecord
import dev.marketplacemetering.model.UsageRecordResultStatus
import dev.marketplacemetering.testing.Emulator
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.time.Instant

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClientTest {
    private val emulator = Emulator()
    private val client = emulator.client()

    @AfterAll
    fun stop() {
        client.close()
        emulator.close()
    }

    @Test
    fun `batchMeterUsage bills records`() = runBlocking {
        val out = client.batchMeterUsage {
            productCode = Emulator.PRODUCT_CODE
            usageRecords = listOf(
                UsageRecord {
                    timestamp = Instant.now()
                    customerIdentifier = Emulator.CUSTOMER
                    dimension = "users"
                    quantity = 3
                },
            )
        }
        assertEquals(UsageRecordResultStatus.Success, out.results.single().status)
        assertEquals(1, emulator.ledger().size)
    }
}

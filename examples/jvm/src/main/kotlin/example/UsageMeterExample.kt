// SPDX-License-Identifier: Apache-2.0
// Meter usage with the UsageMeter against the in-process emulator, from Kotlin.
//
// Records billable events for several customers into a durable SQLite store, restarts the
// meter half-way (the store keeps the events), lets the hour seal, flushes, and checks that
// the emulator billed every customer-hour exactly once with exactly the recorded quantity.
// Also one call of each suspend operation. Exits non-zero on any mismatch.
//
// A ManualClock stands in for the wall clock so the example does not wait for the hour to
// end. Against AWS: MarketplaceMeteringClient { region = "us-east-1" } and no clock.
package example

import dev.marketplacemetering.MeterEvent
import dev.marketplacemetering.MeterListener
import dev.marketplacemetering.UsageMeter
import dev.marketplacemetering.model.UsageRecord
import dev.marketplacemetering.testing.Emulator
import dev.marketplacemetering.testing.ManualClock
import kotlinx.coroutines.runBlocking
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.system.exitProcess

fun main() {
    val ok = Emulator().use { emulator ->
        emulator.client().use { client ->
            // The suspend API: one BatchMeterUsage and one ResolveCustomer.
            runBlocking {
                val customer = client.resolveCustomer { registrationToken = Emulator.REGISTRATION_TOKEN }
                val out = client.batchMeterUsage {
                    productCode = Emulator.PRODUCT_CODE
                    usageRecords = listOf(
                        UsageRecord {
                            timestamp = Instant.now()
                            customerIdentifier = customer.customerIdentifier
                            dimension = "requests"
                            quantity = 1
                        },
                    )
                }
                println("kotlin: ${customer.customerIdentifier} resolved, batch status ${out.results.single().status}")
            }
            emulator.reset()

            // Two real hours ago: the service takes past hours up to 6 hours old.
            val start = Instant.now().truncatedTo(ChronoUnit.HOURS).minus(Duration.ofHours(2))
            val clock = ManualClock(start)
            val events = CopyOnWriteArrayList<MeterEvent>()
            val recorded = HashMap<Pair<String, String>, Long>()
            val dir = Files.createTempDirectory("mm-example")
            val store = dir.resolve("metering.db")
            fun open() = UsageMeter(client) {
                path = store
                productCode = Emulator.PRODUCT_CODE
                listener = MeterListener { events.add(it) }
                this.clock = clock
            }

            open().use { meter ->
                for (i in 0 until 200) {
                    val key = "cust-${i % 12 + 1}" to listOf("users", "gb")[i % 2]
                    val quantity = (i % 5 + 1).toLong()
                    meter.record(key.first, key.second, quantity)
                    recorded.merge(key, quantity, Long::plus)
                }
                meter.record("cust-unsubscribed", "users", 1) // the service will refuse this customer
            } // a restart: the hour is still open, its events wait in the store

            clock.advance(Duration.ofMinutes(30))
            val (summary, status, dead) = open().use { meter ->
                repeat(50) { i ->
                    meter.record("cust-${i % 3 + 1}", "users", 2)
                    recorded.merge("cust-${i % 3 + 1}" to "users", 2, Long::plus)
                }
                clock.advance(Duration.ofMinutes(36)) // the hour ended 6 minutes ago: sealed
                Triple(meter.flush(), meter.status(), meter.deadLetters())
            }
            dir.toFile().deleteRecursively()

            val ledger = emulator.ledger()
            val billed = ledger.associate { (it.customerIdentifier!! to it.dimension) to it.quantity }
            println(
                "kotlin: recorded ${recorded.values.sum()} units in ${recorded.size} customer-hours; " +
                    "flush: ${summary.calls} call(s), ${summary.acked} acked, ${summary.deadLettered} dead-lettered",
            )
            println(
                "kotlin: billed ${ledger.size} records, ${billed.values.sum()} units; status: ${status.acked} acked, " +
                    "${status.deadLettered} dead-lettered (${dead.joinToString { "${it.customerIdentifier}: ${it.reason}" }}); " +
                    "${events.count { it.kind == "acked" }} acked events",
            )
            billed == recorded && ledger.size == billed.size && dead.size == 1 &&
                events.count { it.kind == "acked" } == recorded.size
        }
    }
    exitProcess(if (ok) 0 else 1)
}

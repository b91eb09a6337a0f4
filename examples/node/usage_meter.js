// SPDX-License-Identifier: Apache-2.0
// Example: meter usage with the UsageMeter against the in-process emulator. Record billable
// events as they happen, let the hour close, flush, and check that the service billed every
// customer-hour exactly once with the recorded quantity; exit 1 on failure.
//
// Run after `npm install` in bindings-node:   node examples/node/usage_meter.js
//
// A real service just records and lets the meter's background flusher send each hour once it is
// sealed. Here a ManualClock stands in for the wall clock so the example need not wait an hour.
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { MarketplaceMeteringClient, UsageMeter, ManualClock, startEmulator } = require('../../bindings-node')

const HOUR = 3600

async function main() {
  const emu = startEmulator()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-usage-meter-'))
  try {
    const client = new MarketplaceMeteringClient({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
    // The previous hour (inside the service's 6-hour window), and a clock that reads it.
    const thisHour = Math.floor(Date.now() / 1000 / HOUR) * HOUR
    const lastHour = thisHour - HOUR
    const clock = new ManualClock(lastHour + 60)

    const meter = new UsageMeter(client, {
      path: path.join(dir, 'metering.db'), // durable: every record() is committed before it resolves
      productCode: emu.productCode,
      clock,
    })
    meter.on('acked', (e) => console.log(`acked ${e.customerIdentifier}/${e.dimension} ${e.hour.toISOString()}: ${e.quantity} (${e.meteringRecordId})`))
    meter.on('dead_lettered', (e) => console.error(`dead letter ${e.customerIdentifier}/${e.dimension}: ${e.reason} ${e.message}`))
    meter.on('window_alarm', (e) => console.error(`hurry: ${e.customerIdentifier}/${e.dimension} must be sent before ${e.windowEnd.toISOString()}`))

    // Billable events during the hour: API calls by three customers.
    const expected = new Map()
    for (let i = 0; i < 60; i++) {
      const customer = `cust-${1 + (i % 3)}`
      const quantity = 1 + (i % 7)
      await meter.record({ customerIdentifier: customer, dimension: 'requests', quantity })
      expected.set(customer, (expected.get(customer) ?? 0) + quantity)
      clock.advance(50)
    }
    console.log('status while the hour is open:', await meter.status())

    // The hour ends; five minutes of grace later it is sealed and may be sent.
    clock.set(thisHour + 6 * 60)
    const summary = await meter.close()
    console.log(`flush: ${summary.acked} acked, ${summary.deadLettered} dead-lettered in ${summary.calls} call(s)`)

    let ok = summary.acked === expected.size && summary.interrupted === null
    const ledger = emu.ledger()
    for (const [customer, quantity] of expected) {
      const rows = ledger.filter((e) => e.customer_identifier === customer && e.hour === lastHour)
      const billed = rows.reduce((a, e) => a + e.quantity, 0)
      console.log(`${customer}: recorded ${quantity}, billed ${billed} in ${rows.length} record(s)`)
      if (rows.length !== 1 || billed !== quantity) ok = false
    }
    if (ledger.length !== expected.size) ok = false
    if (!ok) {
      console.error('FAILED: the ledger does not match what was recorded')
      process.exitCode = 1
    } else {
      console.log(`summary: ${expected.size} customer-hours billed exactly once`)
    }
  } catch (err) {
    console.error('FAILED:', err)
    process.exitCode = 1
  } finally {
    emu.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main()

// SPDX-License-Identifier: Apache-2.0
// Example: meter 25 records with BatchMeterUsageCommand against the in-process emulator,
// check every Status, re-send UnprocessedRecords, print a summary; exit 1 on failure.
//
// Run after `npm install` in bindings-node:   node examples/node/meter.js
'use strict'

const {
  MarketplaceMeteringClient,
  BatchMeterUsageCommand,
  MarketplaceMeteringServiceException,
  startEmulator,
} = require('../../bindings-node')

const MAX_ROUNDS = 5

async function main() {
  const emu = startEmulator()
  try {
    const client = new MarketplaceMeteringClient({
      region: emu.region,
      endpoint: emu.endpoint,
      credentials: emu.credentials,
      maxAttempts: 3,
    })
    // Make the service leave the last 5 records unprocessed once, to exercise the re-send.
    emu.pushFault({ kind: 'partial', count: 5 })

    const hour = new Date()
    let pending = Array.from({ length: 25 }, (_, i) => ({
      Timestamp: hour,
      CustomerIdentifier: `cust-${i + 1}`,
      Dimension: 'users',
      Quantity: i + 1,
    }))
    const statuses = {}
    let calls = 0
    for (let round = 1; pending.length > 0 && round <= MAX_ROUNDS; round++) {
      const out = await client.send(new BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: pending }))
      calls++
      for (const r of out.Results) {
        statuses[r.Status] = (statuses[r.Status] ?? 0) + 1
        if (r.Status !== 'Success') {
          console.error(`record for ${r.UsageRecord.CustomerIdentifier} was not metered: ${r.Status}`)
        }
      }
      console.log(
        `call ${calls}: ${out.Results.length} results, ${out.UnprocessedRecords.length} unprocessed ` +
          `(request ${out.$metadata.requestId}, ${out.$metadata.attempts} attempt(s))`,
      )
      pending = out.UnprocessedRecords
    }

    const metered = statuses.Success ?? 0
    const billed = emu.ledger().length
    console.log(`summary: ${metered}/25 metered in ${calls} call(s); statuses ${JSON.stringify(statuses)}; ledger holds ${billed}`)
    if (metered !== 25 || pending.length > 0 || billed !== 25) {
      console.error('FAILED: not every record was metered')
      process.exitCode = 1
    }
  } catch (err) {
    if (err instanceof MarketplaceMeteringServiceException) {
      console.error(`FAILED: ${err.name} (${err.$fault}, request ${err.$metadata.requestId}): ${err.message}`)
    } else {
      console.error('FAILED:', err)
    }
    process.exitCode = 1
  } finally {
    emu.stop()
  }
}

main()

// SPDX-License-Identifier: Apache-2.0
// Smoke test of the installed npm tarballs (scripts/test-all.sh): ES modules, through the
// package's `import` exports. A UsageMeter bills an hour through the in-process emulator.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MarketplaceMeteringClient, UsageMeter } from 'marketplace-metering'
import { ManualClock, startEmulator } from 'marketplace-metering/testing'

const HOUR = 3600
const emu = startEmulator()
const dir = mkdtempSync(join(tmpdir(), 'mm-smoke-'))
try {
  const client = new MarketplaceMeteringClient({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
  const lastHour = (Math.floor(Date.now() / 1000 / HOUR) - 1) * HOUR
  const clock = new ManualClock(lastHour + 60)
  const meter = new UsageMeter(client, { path: join(dir, 'metering.db'), productCode: emu.productCode, clock })
  for (let i = 0; i < 3; i++) await meter.record({ customerIdentifier: 'cust-2', dimension: 'gb', quantity: 5 })
  clock.set(lastHour + HOUR + 6 * 60) // six minutes after the hour: past the grace, sealed
  const summary = await meter.close()
  assert.equal(summary.acked, 1)
  assert.deepEqual(emu.ledger().map((e) => [e.customer_identifier, e.dimension, e.quantity]), [['cust-2', 'gb', 15]])
} finally {
  emu.stop()
  rmSync(dir, { recursive: true, force: true })
}
console.log('node smoke test (ES modules) passed')

// SPDX-License-Identifier: Apache-2.0
// `import` loads the package; every runtime error class is a named ESM export.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import * as esm from 'marketplace-metering'
import mmDefault, { MarketplaceMeteringClient, ResolveCustomerCommand, ExpiredTokenException, startEmulator } from 'marketplace-metering'
import { startEmulator as startFromTesting, ManualClock as TestingClock } from 'marketplace-metering/testing'
import { UsageMeter, ManualClock } from 'marketplace-metering'

const cjs = createRequire(import.meta.url)('marketplace-metering')

test('ESM and CommonJS see the same classes', () => {
  assert.equal(esm.MarketplaceMeteringClient, cjs.MarketplaceMeteringClient)
  assert.equal(mmDefault, cjs)
  assert.equal(startFromTesting, startEmulator)
  assert.equal(UsageMeter, cjs.UsageMeter)
  assert.equal(typeof UsageMeter, 'function')
  assert.equal(ManualClock, cjs.ManualClock)
  assert.equal(TestingClock, ManualClock)
})

test('every class of the error table is a named ESM export', () => {
  for (const row of esm.errorCodes()) {
    assert.equal(typeof esm[row.className], 'function', `missing named export ${row.className}`)
    assert.equal(esm[row.className], cjs[row.className])
  }
})

test('a call through the ESM entry point', async () => {
  const emu = startEmulator()
  after(() => emu.stop())
  const c = new MarketplaceMeteringClient({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
  const out = await c.send(new ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(out.CustomerIdentifier, 'cust-1')
  await assert.rejects(c.send(new ResolveCustomerCommand({ RegistrationToken: 'reg-token-expired' })), ExpiredTokenException)
})

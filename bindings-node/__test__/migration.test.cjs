// SPDX-License-Identifier: Apache-2.0
// Migration: one scenario through @aws-sdk/client-marketplace-metering and through this
// package against the same emulator; same output shapes, same error names.
'use strict'
const { test, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const sdk = require('@aws-sdk/client-marketplace-metering')
const { mm, setup, now, record } = require('./helpers.cjs')

const { emu } = setup()
after(() => emu.stop())
beforeEach(() => emu.reset())

const config = () => ({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials, maxAttempts: 3 })

/** The shape of a value: keys and types, values aside (ids, timestamps differ). */
function shape(v) {
  if (v instanceof Date) return 'Date'
  if (Array.isArray(v)) return v.map(shape)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).filter((k) => v[k] !== undefined).sort().map((k) => [k, shape(v[k])]))
  }
  return typeof v
}

/** Runs the scenario with one library (module + its client/command classes). */
async function scenario(lib) {
  const client = new lib.MarketplaceMeteringClient(config())
  const ts = now()
  const out = {}
  out.batch = await client.send(
    new lib.BatchMeterUsageCommand({
      ProductCode: emu.productCode,
      UsageRecords: [
        record(1, { Timestamp: ts }),
        { Timestamp: ts, CustomerIdentifier: 'cust-unsubscribed', Dimension: 'gb', Quantity: 1 },
      ],
    }),
  )
  out.meter = await client.send(new lib.MeterUsageCommand({ ProductCode: emu.productCode, Timestamp: ts, UsageDimension: 'gb', UsageQuantity: 2 }))
  out.resolve = await client.send(new lib.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  out.register = await client.send(new lib.RegisterUsageCommand({ ProductCode: emu.productCode, PublicKeyVersion: 1 }))
  emu.pushFault({ kind: 'throttle' })
  out.retried = await client.send(new lib.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  const errors = {}
  const err = async (key, cmd) => {
    try {
      await client.send(cmd)
      errors[key] = 'no error'
    } catch (e) {
      errors[key] = { name: e.name, fault: e.$fault, status: e.$metadata?.httpStatusCode, attempts: e.$metadata?.attempts, serviceBase: e instanceof lib.MarketplaceMeteringServiceException }
    }
  }
  await err('expired', new lib.ResolveCustomerCommand({ RegistrationToken: 'reg-token-expired' }))
  await err('invalidToken', new lib.ResolveCustomerCommand({ RegistrationToken: 'no-such-token' }))
  await err('badDimension', new lib.MeterUsageCommand({ ProductCode: emu.productCode, Timestamp: ts, UsageDimension: 'cpus', UsageQuantity: 1 }))
  for (let i = 0; i < 3; i++) emu.pushFault({ kind: 'internal_error' })
  await err('internal', new lib.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  emu.reset()
  client.destroy()
  return { out, errors }
}

test('the same scenario through SDK v3 and marketplace-metering', async () => {
  const theirs = await scenario(sdk)
  const ours = await scenario(mm)
  for (const key of Object.keys(theirs.out)) {
    const t = shape(theirs.out[key])
    const o = shape(ours.out[key])
    // SDK v3 adds no keys we lack and vice versa (in the outputs and $metadata).
    assert.deepEqual(o, t, `output shape of ${key}`)
  }
  assert.deepEqual(
    ours.out.batch.Results.map((r) => r.Status),
    theirs.out.batch.Results.map((r) => r.Status),
  )
  assert.equal(theirs.out.retried.$metadata.attempts, 2)
  assert.equal(ours.out.retried.$metadata.attempts, 2)
  assert.deepEqual(ours.errors, theirs.errors)
})

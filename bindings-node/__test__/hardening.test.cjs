// SPDX-License-Identifier: Apache-2.0
// What leaves the process: no redirects, bounded calls, accurate read errors, no secrets shown.
'use strict'
const { test, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const { mm, setup, record } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())
beforeEach(() => emu.reset())

const batch = () => new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: [record(1)] })

test('a redirect is not followed: the error names the Location', async () => {
  const elsewhere = mm.startEmulator()
  try {
    for (const status of [301, 302, 307, 308]) {
      emu.pushFault({ kind: 'redirect', status, location: `${elsewhere.endpoint}/` })
      const err = await client().send(batch()).then(() => null, (e) => e)
      assert.ok(err instanceof mm.MarketplaceMeteringServiceException, String(err))
      assert.equal(err.name, String(status))
      assert.equal(err.$metadata.httpStatusCode, status)
      assert.equal(err.$metadata.attempts, 1)
      assert.ok(err.message.includes(elsewhere.endpoint), err.message)
    }
    assert.deepEqual(elsewhere.requests(), [])
    assert.deepEqual(elsewhere.ledger(), [])
    assert.deepEqual(emu.ledger(), [])
  } finally {
    elsewhere.stop()
  }
})

test('requestTimeout bounds a trickled answer; operationTimeout bounds the call', async () => {
  emu.pushFault({ kind: 'trickle', interval: 0.3 })
  emu.pushFault({ kind: 'trickle', interval: 0.3 })
  let started = Date.now()
  let err = await client({ requestTimeout: 700, maxAttempts: 2 }).send(batch()).then(() => null, (e) => e)
  assert.ok(err instanceof mm.TimeoutError, String(err))
  assert.equal(err.$metadata.attempts, 2)
  assert.ok(Date.now() - started < 4000, `${Date.now() - started} ms`)

  emu.reset()
  for (let i = 0; i < 5; i++) emu.pushFault({ kind: 'trickle', interval: 0.3 })
  started = Date.now()
  err = await client({ operationTimeout: 900, maxAttempts: 5 }).send(batch()).then(() => null, (e) => e)
  assert.ok(err instanceof mm.TimeoutError, String(err))
  assert.ok(err.message.includes('operation timeout'), err.message)
  assert.ok(Date.now() - started < 3000, `${Date.now() - started} ms`)

  for (const bad of [{ operationTimeout: 0 }, { operationTimeout: -1 }, { requestTimeout: 0 }]) {
    await assert.rejects(client(bad).send(batch()), (e) => e instanceof mm.MarketplaceMeteringError)
  }
})

test('an oversized or cut-short answer is reported as what it is', async () => {
  emu.pushFault({ kind: 'oversize', bytes: 6 << 20 })
  let err = await client({ maxAttempts: 1 }).send(batch()).then(() => null, (e) => e)
  assert.ok(err.message.includes('larger than'), err.message)
  emu.pushFault({ kind: 'short_body' })
  err = await client({ maxAttempts: 1 }).send(batch()).then(() => null, (e) => e)
  assert.ok(err.message.includes('ended early') && !err.message.includes('could not reach'), err.message)
})

test('no public object shows a secret: inspect, console.log, JSON.stringify', async () => {
  const secret = 'SECRET-do-not-print-0123456789'
  const token = 'TOKEN-do-not-print-9876543210'
  const clients = [
    new mm.MarketplaceMeteringClient({ region: 'us-east-1', endpoint: emu.endpoint, credentials: { accessKeyId: 'AKIDSHOWN', secretAccessKey: secret, sessionToken: token } }),
    new mm.MarketplaceMetering({ region: 'us-east-1', endpoint: emu.endpoint, credentials: { accessKeyId: 'AKIDSHOWN', secretAccessKey: secret, sessionToken: token } }),
    new mm.MarketplaceMeteringClient({
      region: 'us-east-1',
      endpoint: emu.endpoint,
      credentials: async () => ({ accessKeyId: 'AKIDSHOWN', secretAccessKey: secret, sessionToken: token }),
    }),
  ]
  // After a call, so every cache (the provider's answer, the native client) is filled.
  for (const c of clients) await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'x' })).catch(() => {})
  const meter = new mm.UsageMeter(clients[0], { productCode: emu.productCode, flushIntervalSeconds: 0 })
  try {
    for (const o of [...clients, meter]) {
      const shown = [
        util.inspect(o, { depth: Infinity, showHidden: false }),
        util.inspect(o, { depth: Infinity, showHidden: true }),
        util.format('%o', o),
        util.format('%O', o),
        JSON.stringify(o) ?? '',
      ]
      for (const s of shown) {
        assert.ok(!s.includes(secret) && !s.includes(token), s)
      }
    }
    // The resolved config keeps SDK v3's shape: credentials is a provider.
    const creds = await clients[0].config.credentials()
    assert.equal(creds.secretAccessKey, secret)
  } finally {
    await meter.close()
  }
})

test('a sparse array is refused by its length before anything is reserved', async () => {
  const huge = () => {
    const a = []
    a.length = 2 ** 32 - 1
    return a
  }
  const alloc = (extra) => ({ AllocatedUsageQuantity: 1, ...extra })
  const cases = [
    [{ ProductCode: emu.productCode, UsageRecords: huge() }, 'UsageRecords'],
    [{ ProductCode: emu.productCode, UsageRecords: [record(1, { UsageAllocations: huge() })] }, 'UsageRecords[0].UsageAllocations'],
    [{ ProductCode: emu.productCode, UsageRecords: [record(1, { UsageAllocations: [alloc({ Tags: huge() })] })] }, 'UsageRecords[0].UsageAllocations[0].Tags'],
  ]
  for (const [input, field] of cases) {
    const err = await client().send(new mm.BatchMeterUsageCommand(input)).then(() => null, (e) => e)
    assert.ok(err instanceof mm.ValidationError, String(err))
    assert.equal(err.field, field)
  }
  const err = await client()
    .send(new mm.MeterUsageCommand({ ProductCode: emu.productCode, Timestamp: new Date(), UsageDimension: 'users', UsageAllocations: huge() }))
    .then(() => null, (e) => e)
  assert.ok(err instanceof mm.ValidationError && err.field === 'UsageAllocations', String(err))
  const meter = new mm.UsageMeter(client(), { productCode: emu.productCode, flushIntervalSeconds: 0 })
  try {
    await assert.rejects(meter.registerCustomer({ customerIdentifier: 'cust-1', dimensions: huge() }), (e) => e instanceof mm.ValidationError && e.field === 'dimensions')
    await assert.rejects(meter.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1, allocations: huge() }), (e) => e instanceof mm.ValidationError && /^allocations/.test(e.field))
  } finally {
    await meter.close()
  }
  assert.deepEqual(emu.requests(), [])
})

test('arrays wrapped in a Proxy (Vue reactive, MobX observable) are read as arrays', async () => {
  // Array.isArray() says a Proxy of an array is one; napi's is_array does not: the addon
  // refused them wherever the input's compact text was declined (here, allocations).
  const reactive = (a) => new Proxy(a, {})
  const tags = reactive([{ Key: 'team', Value: 'a' }])
  const records = reactive([
    record(1, { Quantity: 3, UsageAllocations: reactive([{ AllocatedUsageQuantity: 3, Tags: tags }]) }),
    record(2),
  ])
  const out = await client().send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: records }))
  assert.deepEqual(out.Results.map((r) => r.Status), ['Success', 'Success'])
  const m = await client().send(
    new mm.MeterUsageCommand({
      ProductCode: emu.productCode,
      Timestamp: new Date(),
      UsageDimension: 'users',
      UsageQuantity: 2,
      UsageAllocations: reactive([{ AllocatedUsageQuantity: 2 }]),
    }),
  )
  assert.ok(m.MeteringRecordId)
  const meter = new mm.UsageMeter(client(), { productCode: emu.productCode, flushIntervalSeconds: 0 })
  try {
    await meter.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1, allocations: reactive([{ AllocatedUsageQuantity: 1, Tags: tags }]) })
    await meter.registerCustomer({ customerIdentifier: 'cust-1', dimensions: reactive(['users']) })
  } finally {
    await meter.close()
  }
  // Still refused, naming the field: a Proxy of something else, and one past the maximum.
  const notArray = new Proxy({ length: 1, 0: record(3) }, {})
  let err = await client().send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: notArray })).then(() => null, (e) => e)
  assert.ok(err instanceof mm.ValidationError && err.field === 'UsageRecords', String(err))
  const revocable = Proxy.revocable([record(3)], {})
  revocable.revoke()
  err = await client().send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: revocable.proxy })).then(() => null, (e) => e)
  assert.ok(err instanceof mm.ValidationError && err.field === 'UsageRecords', String(err))
  const throwing = new Proxy([record(3, { UsageAllocations: [{ AllocatedUsageQuantity: 1 }] })], { get: (t, k) => { if (k === 'length') throw new Error('trap'); return t[k] } })
  err = await client().send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: throwing })).then(() => null, (e) => e)
  assert.ok(err instanceof mm.ValidationError && err.field === 'UsageRecords', String(err))
  const many = reactive(Array.from({ length: 26 }, (_, i) => record(i)))
  many[0] = record(0, { UsageAllocations: [{ AllocatedUsageQuantity: 1 }] })
  err = await client().send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: many })).then(() => null, (e) => e)
  assert.ok(err instanceof mm.ValidationError && err.field === 'UsageRecords', String(err))
})

test('only the model is checked: a CustomerAWSAccountId without LicenseArn is sent', async () => {
  const out = await client().send(
    new mm.BatchMeterUsageCommand({
      ProductCode: emu.productCode,
      UsageRecords: [{ Timestamp: new Date(), CustomerAWSAccountId: emu.customerAWSAccountId, Dimension: 'users', Quantity: 2 }],
    }),
  )
  assert.equal(out.Results[0].Status, 'Success')
  assert.equal(emu.ledger().length, 1)
  // Allocations that do not sum to the quantity: the service's own exception, nothing sent.
  const before = emu.requests().length
  const err = await client()
    .send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: [record(1, { Quantity: 5, UsageAllocations: [{ AllocatedUsageQuantity: 2 }] })] }))
    .then(() => null, (e) => e)
  assert.ok(err instanceof mm.InvalidUsageAllocationsException, String(err))
  assert.equal(err.name, 'InvalidUsageAllocationsException')
  assert.equal(err.$metadata.attempts, 0)
  assert.equal(emu.requests().length, before)
})

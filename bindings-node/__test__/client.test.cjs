// SPDX-License-Identifier: Apache-2.0
// The four operations against the in-process emulator, shaped as SDK v3's outputs.
'use strict'
const { test, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { mm, setup, now, record } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())
beforeEach(() => emu.reset())

function assertMetadata(m, attempts = 1) {
  assert.equal(m.httpStatusCode, 200)
  assert.equal(typeof m.requestId, 'string')
  assert.ok(m.requestId.length > 0)
  assert.equal(m.attempts, attempts)
  assert.equal(typeof m.totalRetryDelay, 'number')
}

test('BatchMeterUsage: 25 records, per-record statuses, Dates out, $metadata', async () => {
  const c = client()
  const records = Array.from({ length: 25 }, (_, i) => record(i + 1))
  const out = await c.send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: records }))
  assertMetadata(out.$metadata)
  assert.equal(out.Results.length, 25)
  assert.deepEqual(out.UnprocessedRecords, [])
  for (const [i, r] of out.Results.entries()) {
    assert.equal(r.Status, 'Success')
    assert.equal(typeof r.MeteringRecordId, 'string')
    assert.ok(r.UsageRecord.Timestamp instanceof Date)
    assert.equal(r.UsageRecord.Timestamp.getTime(), records[i].Timestamp.getTime())
    assert.equal(r.UsageRecord.CustomerIdentifier, `cust-${i + 1}`)
    assert.equal(r.UsageRecord.Quantity, i + 1)
  }
  assert.equal(emu.ledger().length, 25)
  const req = emu.requests()
  assert.equal(req.length, 1)
  assert.ok(req[0].signature_ok)
  assert.match(req[0].headers.find(([k]) => k === 'user-agent')[1], /lang\/node/)
})

test('BatchMeterUsage: CustomerNotSubscribed and DuplicateRecord statuses', async () => {
  const c = client()
  const ts = now()
  await c.send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: [record(1, { Timestamp: ts })] }))
  const out = await c.send(
    new mm.BatchMeterUsageCommand({
      ProductCode: emu.productCode,
      UsageRecords: [
        record(1, { Timestamp: ts, Quantity: 99 }),
        { Timestamp: ts, CustomerIdentifier: 'cust-unsubscribed', Dimension: 'gb', Quantity: 1 },
        record(2, { Timestamp: ts }),
      ],
    }),
  )
  assert.deepEqual(
    out.Results.map((r) => r.Status),
    [mm.UsageRecordResultStatus.DuplicateRecord, 'CustomerNotSubscribed', 'Success'],
  )
})

test('BatchMeterUsage: partial fault leaves UnprocessedRecords (with Dates) to re-send', async () => {
  const c = client()
  emu.pushFault({ kind: 'partial', count: 2 })
  const records = [record(1), record(2), record(3)]
  const out = await c.send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: records }))
  assert.equal(out.Results.length, 1)
  assert.equal(out.UnprocessedRecords.length, 2)
  assert.ok(out.UnprocessedRecords[0].Timestamp instanceof Date)
  const again = await c.send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: out.UnprocessedRecords }))
  assert.deepEqual(again.Results.map((r) => r.Status), ['Success', 'Success'])
  assert.equal(emu.ledger().length, 3)
})

test('BatchMeterUsage: license records (CustomerAWSAccountId + LicenseArn), epoch-seconds and ISO timestamps', async () => {
  const c = client()
  const secs = Math.floor(Date.now() / 1000)
  const out = await c.send(
    new mm.BatchMeterUsageCommand({
      UsageRecords: [
        { Timestamp: secs, CustomerAWSAccountId: emu.customerAWSAccountId, LicenseArn: emu.licenseArn, Dimension: 'users', Quantity: 2 },
      ],
    }),
  )
  assert.equal(out.Results[0].Status, 'Success')
  assert.equal(out.Results[0].UsageRecord.Timestamp.getTime(), secs * 1000)
  assert.equal(out.Results[0].UsageRecord.LicenseArn, emu.licenseArn)
  const iso = await c.send(
    new mm.BatchMeterUsageCommand({
      ProductCode: emu.productCode,
      UsageRecords: [{ Timestamp: new Date(secs * 1000).toISOString(), CustomerIdentifier: 'cust-3', Dimension: 'gb', Quantity: 1 }],
    }),
  )
  assert.equal(iso.Results[0].Status, 'Success')
  assert.equal(iso.Results[0].UsageRecord.Timestamp.getTime(), secs * 1000)
  // An offset, as `new Date(string)` and Python's `fromisoformat` read it: the same instant.
  const shifted = new Date((secs + 2 * 3600) * 1000).toISOString().replace('Z', '+02:00')
  assert.equal(new Date(shifted).getTime(), secs * 1000)
  const offset = await c.send(
    new mm.BatchMeterUsageCommand({
      ProductCode: emu.productCode,
      UsageRecords: [{ Timestamp: shifted, CustomerIdentifier: 'cust-4', Dimension: 'gb', Quantity: 1 }],
    }),
  )
  assert.equal(offset.Results[0].Status, 'Success')
  assert.equal(offset.Results[0].UsageRecord.Timestamp.getTime(), secs * 1000)
})

test('MeterUsage with allocations; DryRun', async () => {
  const c = client()
  const out = await c.send(
    new mm.MeterUsageCommand({
      ProductCode: emu.productCode,
      Timestamp: now(),
      UsageDimension: 'requests',
      UsageQuantity: 5,
      UsageAllocations: [
        { AllocatedUsageQuantity: 3, Tags: [{ Key: 'team', Value: 'a' }] },
        { AllocatedUsageQuantity: 2, Tags: [{ Key: 'team', Value: 'b' }] },
      ],
    }),
  )
  assertMetadata(out.$metadata)
  assert.equal(typeof out.MeteringRecordId, 'string')
  const body = JSON.parse(emu.requests()[0].body)
  assert.equal(typeof body.ClientToken, 'string', 'the core fills a ClientToken')
  await assert.rejects(
    c.send(new mm.MeterUsageCommand({ ProductCode: emu.productCode, Timestamp: now(), UsageDimension: 'users', DryRun: true })),
    (e) => e instanceof mm.DryRunOperation && e.name === 'DryRunOperation',
  )
})

test('ResolveCustomer', async () => {
  const out = await client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assertMetadata(out.$metadata)
  assert.equal(out.CustomerIdentifier, 'cust-1')
  assert.equal(out.ProductCode, emu.productCode)
  assert.equal(out.CustomerAWSAccountId, emu.customerAWSAccountId)
  assert.equal(out.LicenseArn, emu.licenseArn)
})

test('RegisterUsage', async () => {
  const out = await client().send(new mm.RegisterUsageCommand({ ProductCode: emu.productCode, PublicKeyVersion: 1, Nonce: 'n-1' }))
  assertMetadata(out.$metadata)
  assert.ok(out.PublicKeyRotationTimestamp instanceof Date)
  assert.ok(!Number.isNaN(out.PublicKeyRotationTimestamp.getTime()))
  assert.equal(typeof out.Signature, 'string')
})

test('aggregated MarketplaceMetering class and callbacks', async () => {
  const agg = new mm.MarketplaceMetering({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
  assert.ok(agg instanceof mm.MarketplaceMeteringClient)
  const r = await agg.resolveCustomer({ RegistrationToken: 'reg-token-valid' })
  assert.equal(r.CustomerIdentifier, 'cust-1')
  // A product metered by license: the answer names the account and the license only.
  const byLicense = await agg.resolveCustomer({ RegistrationToken: 'reg-token-license' })
  assert.ok(!('CustomerIdentifier' in byLicense) && !('ProductCode' in byLicense), JSON.stringify(byLicense))
  assert.equal(byLicense.LicenseArn, emu.licenseArn)
  const m = await agg.meterUsage({ ProductCode: emu.productCode, Timestamp: now(), UsageDimension: 'gb', UsageQuantity: 1 })
  assert.equal(typeof m.MeteringRecordId, 'string')
  const b = await agg.batchMeterUsage({ ProductCode: emu.productCode, UsageRecords: [record(4)] })
  assert.equal(b.Results[0].Status, 'Success')
  const g = await agg.registerUsage({ ProductCode: emu.productCode, PublicKeyVersion: 1 })
  assert.equal(typeof g.Signature, 'string')
  const viaCb = await new Promise((resolve, reject) =>
    agg.resolveCustomer({ RegistrationToken: 'reg-token-valid' }, (err, data) => (err ? reject(err) : resolve(data))),
  )
  assert.equal(viaCb.CustomerIdentifier, 'cust-1')
})

test('async credentials provider: resolved before calls, cached until expiration - 5 min', async () => {
  let calls = 0
  const c = client({
    credentials: async () => {
      calls++
      return { ...emu.credentials, expiration: new Date(Date.now() + 60 * 60 * 1000) }
    },
  })
  await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(calls, 1)

  let n = 0
  const soon = client({
    credentials: async () => {
      n++
      // Expires within 5 minutes: refreshed before every call.
      return { ...emu.sessionCredentials, expiration: new Date(Date.now() + 60 * 1000) }
    },
  })
  await soon.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  await soon.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(n, 2)
  const reqs = emu.requests()
  assert.equal(reqs.at(-1).access_key_id, emu.sessionCredentials.accessKeyId)
  assert.ok(reqs.at(-1).signature_ok)

  // Rotation re-signs on the same native client (its pool and retry quota survive).
  let turn = 0
  const rotating = client({
    credentials: async () => {
      turn++
      const c = turn === 1 ? emu.credentials : emu.sessionCredentials
      return { ...c, expiration: new Date(Date.now() + 60 * 1000) }
    },
  })
  await rotating.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  const first = rotating._native
  await rotating.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(turn, 2)
  assert.strictEqual(rotating._native, first)
  const last = emu.requests().at(-1)
  assert.equal(last.access_key_id, emu.sessionCredentials.accessKeyId)
  assert.ok(last.signature_ok)

  const failing = client({ credentials: async () => { throw new Error('no creds here') } })
  await assert.rejects(failing.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })), /no creds here/)
})

test('endpoint as URL object; destroy() closes the pool and a later call opens another, as SDK v3', async () => {
  // A client destroyed in a `finally` and used again (a module-level client) kept failing
  // with InvalidStateError; SDK v3's destroy() closes sockets and later sends work.
  const c = client({ endpoint: new URL(emu.endpoint) })
  await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  c.destroy()
  const out = await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.ok(out.CustomerIdentifier)
  c.destroy()
  c.destroy()
})

test('a throwing send() callback is not an unhandled rejection, as SDK v3', async () => {
  const unhandled = []
  const seen = (r) => unhandled.push(r)
  process.on('unhandledRejection', seen)
  try {
    let called = 0
    await new Promise((resolve) => {
      client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }), () => {
        called++
        setImmediate(resolve)
        throw new Error('the callback failed')
      })
    })
    await new Promise((r) => setTimeout(r, 20))
    assert.equal(called, 1)
    assert.deepEqual(unhandled, [])
  } finally {
    process.off('unhandledRejection', seen)
  }
})

test('concurrent first calls with a credentials provider build one native client', async () => {
  const c = client({ credentials: async () => { await new Promise((r) => setTimeout(r, 10)); return emu.credentials } })
  let built = 0
  const build = c._buildNative.bind(c)
  c._buildNative = (...args) => { built++; return build(...args) }
  const cmd = () => new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })
  await Promise.all([c.send(cmd()), c.send(cmd()), c.send(cmd())])
  assert.equal(built, 1)
})

test('send() rejects something that is not a command', async () => {
  await assert.rejects(client().send({ input: {} }), TypeError)
})

// SPDX-License-Identifier: Apache-2.0
// A BatchMeterUsage output holds exactly what the server said, member by member: absent members
// stay absent, unknown statuses and every optional member come through, timestamps to the ms.
'use strict'
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const mm = require('..')

const T = 1767225600 // 2026-01-01T00:00:00Z
const alloc = [{ AllocatedUsageQuantity: 2, Tags: [{ Key: 'team', Value: 'é😀' }] }]
const body = {
  Results: [
    { UsageRecord: { Timestamp: T, CustomerIdentifier: 'c-0', Dimension: 'users', Quantity: 3 }, MeteringRecordId: 'm-0', Status: 'Success' },
    { UsageRecord: { Timestamp: T + 0.125, CustomerAWSAccountId: '123456789012', LicenseArn: 'arn:aws:license-manager::1:license:l-1', Dimension: 'gb', Quantity: 0, UsageAllocations: alloc }, MeteringRecordId: 'm-1', Status: 'CustomerNotSubscribed' },
    { UsageRecord: { Timestamp: T, CustomerIdentifier: 'c-2 "quoted" \\ é', Dimension: 'users' }, Status: 'SomeFutureStatus' },
    { MeteringRecordId: 'm-3', Status: 'DuplicateRecord' },
    { UsageRecord: { Timestamp: T - 1.5, CustomerIdentifier: 'c-4', Dimension: 'users', Quantity: 2147483647 } },
  ],
  UnprocessedRecords: [
    { Timestamp: T + 59.999, CustomerIdentifier: 'c-5', Dimension: 'users', Quantity: 1 },
    { Timestamp: T, CustomerAWSAccountId: '210987654321', Dimension: 'gb', UsageAllocations: alloc },
  ],
}

const server = http.createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'req-1' })
    res.end(JSON.stringify(body))
  })
})
const listening = new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
after(() => server.close())

/** `body` as the output should hold it: epoch seconds as Dates, nothing added. */
function expected() {
  const dated = (r) => ({ ...r, Timestamp: new Date(Math.round(r.Timestamp * 1000)) })
  return {
    Results: body.Results.map((r) => (r.UsageRecord ? { ...r, UsageRecord: dated(r.UsageRecord) } : { ...r })),
    UnprocessedRecords: body.UnprocessedRecords.map(dated),
  }
}

test('every member the server sent, and only those, with Dates to the millisecond', async () => {
  await listening
  const c = new mm.MarketplaceMeteringClient({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${server.address().port}`,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' },
    maxAttempts: 1,
  })
  const hour = new Date(T * 1000)
  const out = await c.send(
    new mm.BatchMeterUsageCommand({
      ProductCode: 'prod-1234',
      UsageRecords: [{ Timestamp: hour, CustomerIdentifier: 'c-0', Dimension: 'users', Quantity: 3 }],
    }),
  )
  c.destroy()
  const { $metadata, ...rest } = out
  assert.deepStrictEqual(rest, expected())
  assert.equal($metadata.httpStatusCode, 200)
  assert.equal($metadata.requestId, 'req-1')
  // Absent members are absent keys, not undefined ones (SDK v3 leaves them out).
  assert.deepStrictEqual(Object.keys(out.Results[3]).sort(), ['MeteringRecordId', 'Status'])
  assert.deepStrictEqual(Object.keys(out.Results[2].UsageRecord).sort(), ['CustomerIdentifier', 'Dimension', 'Timestamp'])
  assert.equal(out.Results[1].UsageRecord.Timestamp.getTime(), (T + 0.125) * 1000)
  assert.equal(out.UnprocessedRecords[0].Timestamp.getTime(), T * 1000 + 59999)
  assert.equal(out.Results[4].UsageRecord.Timestamp.getTime(), T * 1000 - 1500)
})

test('a timestamp no Date can hold, from a broken server, is an Invalid Date, not another date', async () => {
  // 9e15 s (past a Date's ±8.64e15 ms) and an i64 near its limit (seconds × 1000 overflows i64).
  const odd = [9e15, 9223372036854775000, -9223372036854775000]
  const s = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const records = odd.map((t) => `{"Timestamp":${BigInt(t)},"CustomerIdentifier":"c","Dimension":"d"}`)
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' })
      res.end(`{"Results":[],"UnprocessedRecords":[${records.join(',')}]}`)
    })
  })
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve))
  const c = new mm.MarketplaceMeteringClient({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${s.address().port}`,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' },
    maxAttempts: 1,
  })
  try {
    const out = await c.send(
      new mm.BatchMeterUsageCommand({
        ProductCode: 'prod-1234',
        UsageRecords: [{ Timestamp: new Date(T * 1000), CustomerIdentifier: 'c', Dimension: 'd', Quantity: 1 }],
      }),
    )
    assert.equal(out.UnprocessedRecords.length, odd.length)
    for (const r of out.UnprocessedRecords) {
      assert.ok(r.Timestamp instanceof Date)
      assert.ok(Number.isNaN(r.Timestamp.getTime()), `read as ${r.Timestamp.getTime()}`)
    }
  } finally {
    c.destroy()
    s.close()
  }
})

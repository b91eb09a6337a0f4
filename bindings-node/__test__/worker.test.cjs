// SPDX-License-Identifier: Apache-2.0
// The addon loads and runs in worker_threads (and in the main thread at the same time).
'use strict'
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { Worker } = require('node:worker_threads')
const { mm, setup, workerData } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads')
const mm = require(workerData.pkg)
const c = new mm.MarketplaceMeteringClient({ region: workerData.region, endpoint: workerData.endpoint, credentials: workerData.credentials })
;(async () => {
  const out = await c.send(new mm.BatchMeterUsageCommand({ ProductCode: workerData.productCode,
    UsageRecords: [{ Timestamp: new Date(), CustomerIdentifier: workerData.customer, Dimension: 'gb', Quantity: 1 }] }))
  let errName
  try { await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-expired' })) } catch (e) { errName = e.name + ':' + (e instanceof mm.ExpiredTokenException) }
  parentPort.postMessage({ status: out.Results[0].Status, attempts: out.$metadata.attempts, errName })
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack) }))
`

function runWorker(customer) {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerSource, {
      eval: true,
      workerData: workerData(emu, { customer }),
    })
    w.once('message', resolve)
    w.once('error', reject)
  }).then((m) => {
    if (m.error) throw new Error(m.error)
    return m
  })
}

test('two workers and the main thread call concurrently', async () => {
  const [a, b, main] = await Promise.all([
    runWorker('cust-11'),
    runWorker('cust-12'),
    client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })),
  ])
  assert.deepEqual(a, { status: 'Success', attempts: 1, errName: 'ExpiredTokenException:true' })
  assert.deepEqual(b, { status: 'Success', attempts: 1, errName: 'ExpiredTokenException:true' })
  assert.equal(main.CustomerIdentifier, 'cust-1')
  // The main thread still works after the workers have exited.
  await new Promise((r) => setTimeout(r, 50))
  const again = await client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(again.CustomerIdentifier, 'cust-1')
})

// SPDX-License-Identifier: Apache-2.0
// Calls never block the event loop: 8 delayed calls in flight while a timer keeps ticking.
'use strict'
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { mm, setup } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())

test('8 calls with a 0.5 s delay run concurrently and the timer keeps ticking', async () => {
  const c = client()
  await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })) // warm up
  for (let i = 0; i < 8; i++) emu.pushFault({ kind: 'delay', seconds: 0.5 })
  const ticks = []
  const timer = setInterval(() => ticks.push(performance.now()), 10)
  const start = performance.now()
  const outs = await Promise.all(
    Array.from({ length: 8 }, () => c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))),
  )
  const elapsed = performance.now() - start
  clearInterval(timer)
  assert.equal(outs.length, 8)
  for (const o of outs) assert.equal(o.CustomerIdentifier, 'cust-1')
  // One after another they take 4 s; a loaded 2-core machine (CI) may add a second to 0.5 s.
  assert.ok(elapsed >= 450 && elapsed <= 3000, `8 calls took ${elapsed.toFixed(0)} ms`)
  // ~50 ticks expected in 500 ms; allow a loaded machine.
  assert.ok(ticks.length >= 20, `only ${ticks.length} ticks`)
  const gaps = ticks.slice(1).map((t, i) => t - ticks[i])
  // A call that blocked the loop would stall it for its 500 ms delay; a garbage collection
  // or a busy CPU may take 200.
  assert.ok(Math.max(...gaps) < 400, `the event loop stalled for ${Math.max(...gaps).toFixed(0)} ms`)
})

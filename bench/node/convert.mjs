// SPDX-License-Identifier: Apache-2.0
// Benchmark: the JS-thread cost of turning a 25-record BatchMeterUsage input into the core's
// input, with no network, both ways the addon can: from the compact text bindings-node/encode.js
// writes (the encoding included), and by walking the object with napi (what it does when the
// text is declined). Both go through the addon's test hook, asked not to describe the result.
//
//   (cd bindings-node && npm install) && node bench/node/convert.mjs [--calls 20000]
//
// Prints the CPU per conversion of each way (best and median of 5 rounds).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings-node')
const require = createRequire(path.join(root, 'package.json'))
const native = require('./addon.js').loadAddon()
const { encodeBatchMeterUsage } = require('./encode.js')

const i = process.argv.indexOf('--calls')
const CALLS = i > 0 ? Number(process.argv[i + 1]) : 20000

const hour = new Date(Math.floor(Date.now() / 3600e3) * 3600e3)
const input = {
  ProductCode: 'prod-1234',
  UsageRecords: Array.from({ length: 25 }, (_, i) => ({
    Timestamp: hour,
    CustomerIdentifier: `cust-${i + 1}`,
    Dimension: 'users',
    Quantity: 1,
  })),
}

const ways = {
  'encoded text': () => native.batchMeterUsageInputDebug(input, encodeBatchMeterUsage(input), false),
  'object walk ': () => native.batchMeterUsageInputDebug(input, undefined, false),
}
const expect = { 'encoded text': 'encoded', 'object walk ': 'object' }

const round = (f) => {
  const t0 = process.cpuUsage()
  for (let n = 0; n < CALLS; n++) f()
  const d = process.cpuUsage(t0)
  return (d.user + d.system) / CALLS
}
for (const [name, f] of Object.entries(ways)) {
  if (f()[0] !== expect[name]) throw new Error(`${name} did not take its path`)
  round(f) // warm up: JIT, napi
  const us = Array.from({ length: 5 }, () => round(f)).sort((a, b) => a - b)
  console.log(`converting 25 records, ${name}: ${us[0].toFixed(1)} µs best, ${us[2].toFixed(1)} µs median (${CALLS} calls a round)`)
}

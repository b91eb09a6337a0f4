// SPDX-License-Identifier: Apache-2.0
// Benchmark: the JS-thread cost of converting a 25-record BatchMeterUsage input to the core's
// types, with no network: the last record carries an unknown key, so the native call walks
// every record and then throws that key's validation error.
//
//   cd bindings-node && npm install && node bench/convert.mjs [--calls 20000]
//
// Prints the CPU per conversion (best and median of 5 rounds), the thrown error included.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings-node')
const require = createRequire(path.join(root, 'package.json'))
const mm = require(root)

const i = process.argv.indexOf('--calls')
const CALLS = i > 0 ? Number(process.argv[i + 1]) : 20000

// Port 9 (discard): nothing is ever sent, the conversion fails first.
const client = new mm.MarketplaceMeteringClient({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'bench-secret' },
})
const native = await client._client()
const hour = new Date()
const input = {
  ProductCode: 'prod-1234',
  UsageRecords: Array.from({ length: 25 }, (_, i) => ({
    Timestamp: hour,
    CustomerIdentifier: `cust-${i + 1}`,
    Dimension: 'users',
    Quantity: 1,
  })),
}
input.UsageRecords[24].Bogus = 1

let error
const round = () => {
  const t0 = process.cpuUsage()
  for (let n = 0; n < CALLS; n++) {
    try {
      native.batchMeterUsage(input)
    } catch (e) {
      error = e
    }
  }
  const d = process.cpuUsage(t0)
  return (d.user + d.system) / CALLS
}
round() // warm up: JIT, napi
const us = Array.from({ length: 5 }, round).sort((a, b) => a - b)
if (!String(error?.message).includes('UsageRecords[24].Bogus')) throw new Error(`unexpected: ${error}`)
console.log(`converting 25 records: ${us[0].toFixed(1)} µs best, ${us[2].toFixed(1)} µs median (${CALLS} calls a round)`)
client.destroy()

// SPDX-License-Identifier: Apache-2.0
// Benchmark: BatchMeterUsage with 25 records on loopback against the in-process emulator,
// marketplace-metering vs @aws-sdk/client-marketplace-metering in the same run.
//
//   cd bindings-node && npm install && node bench/bench.mjs [--seconds 3] [--cold 7]
//
// Reports calls/s sequentially and with 8 calls in flight for both, and cold start (a fresh
// `node -e` process: node + require + client + one call; median of --cold runs) for both.
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

// Resolved from the Node face's folder: its node_modules hold the peer SDK (a dev dependency).
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings-node')
const require = createRequire(path.join(root, 'package.json'))
const mm = require(root)
const sdk = require('@aws-sdk/client-marketplace-metering')

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}
const SECONDS = arg('seconds', 3)
const COLD_RUNS = arg('cold', 7)

const emu = mm.startEmulator()
const config = { region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials }
const hour = new Date()
const input = () => ({
  ProductCode: emu.productCode,
  UsageRecords: Array.from({ length: 25 }, (_, i) => ({
    Timestamp: hour,
    CustomerIdentifier: `cust-${i + 1}`,
    Dimension: 'users',
    Quantity: 1,
  })),
})

async function rate(lib, inFlight) {
  const client = new lib.MarketplaceMeteringClient(config)
  const call = async () => {
    const out = await client.send(new lib.BatchMeterUsageCommand(input()))
    if (out.Results.length !== 25) throw new Error('short result')
  }
  for (let i = 0; i < 20; i++) await call() // warm up: connections, JIT
  let calls = 0
  const deadline = performance.now() + SECONDS * 1000
  const start = performance.now()
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await call()
        calls++
      }
    }),
  )
  const secs = (performance.now() - start) / 1000
  client.destroy()
  emu.reset()
  return calls / secs
}

function cold(code) {
  const times = []
  for (let i = 0; i < COLD_RUNS; i++) {
    const t0 = performance.now()
    const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' })
    const ms = performance.now() - t0
    if (r.status !== 0) throw new Error(`cold start failed: ${r.stderr}`)
    times.push(ms)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

const coldCode = (pkg) => `
const m = require(${JSON.stringify(pkg)});
const c = new m.MarketplaceMeteringClient(${JSON.stringify(config)});
c.send(new m.BatchMeterUsageCommand({ ProductCode: ${JSON.stringify(emu.productCode)},
  UsageRecords: [{ Timestamp: new Date(), CustomerIdentifier: 'cust-1', Dimension: 'users', Quantity: 1 }] }))
 .then((o) => { if (o.Results[0].Status !== 'Success') process.exit(2) }, (e) => { console.error(e); process.exit(1) });`

const fmt = (n) => n.toFixed(0).padStart(8)
const rows = []
for (const [label, inFlight] of [['sequential', 1], ['8 in flight', 8]]) {
  const ours = await rate(mm, inFlight)
  const theirs = await rate(sdk, inFlight)
  rows.push([label, ours, theirs])
}
console.log(`BatchMeterUsage, 25 records, loopback, ${SECONDS} s per figure (node ${process.version}, core ${mm.coreVersion})`)
console.log('                      marketplace-metering   @aws-sdk v3     ratio')
for (const [label, ours, theirs] of rows) {
  console.log(`calls/s ${label.padEnd(12)}        ${fmt(ours)}       ${fmt(theirs)}    ${(ours / theirs).toFixed(1)}x`)
}
const base = cold('0')
const oursCold = cold(coldCode(root))
const theirsCold = cold(coldCode('@aws-sdk/client-marketplace-metering'))
console.log(`cold start (median of ${COLD_RUNS}; node + require + client + 1 call):`)
console.log(`  marketplace-metering ${oursCold.toFixed(1)} ms, @aws-sdk v3 ${theirsCold.toFixed(1)} ms, bare \`node -e 0\` ${base.toFixed(1)} ms`)
console.log(`  above bare node: marketplace-metering ${(oursCold - base).toFixed(1)} ms, @aws-sdk v3 ${(theirsCold - base).toFixed(1)} ms`)
emu.stop()

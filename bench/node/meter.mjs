// SPDX-License-Identifier: Apache-2.0
// Benchmark: UsageMeter.record() calls/s from Node, per durability, and one flush to the
// in-process emulator.
//
//   cd bindings-node && npm install && node bench/meter.mjs [--seconds 2] [--in-flight 256]
//
// "memory store" is the in-memory store (record() buffers inline and returns a resolved
// promise; measured awaiting each call, and 1000 calls per Promise.all); "durable" commits each record to an SQLite file before its promise resolves;
// "group" lets concurrent records share one commit; "memory" buffers in memory with a file
// store; "no fsync" is `powerLossSafe: false`. Durable modes keep --in-flight records pending
// at once (commits run off the JS thread). The flush line sends every customer-hour recorded by the memory-store run.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const require = createRequire(import.meta.url)
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings-node')
const mm = require(root)

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}
const SECONDS = arg('seconds', 2)
const IN_FLIGHT = arg('in-flight', 256)
const H = 3600

const emu = mm.startEmulator()
const client = new mm.MarketplaceMeteringClient({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-meter-bench-'))
const lastHour = Math.floor(Date.now() / 1000 / H) * H - H

function newMeter(options) {
  const clock = new mm.ManualClock(lastHour + 1)
  return { clock, meter: new mm.UsageMeter(client, { productCode: emu.productCode, clock, flushIntervalSeconds: null, ...options }) }
}

// 50 customers (the emulator's) × 2 dimensions: 100 customer-hours.
const input = (i) => ({ customerIdentifier: `cust-${1 + (i % 50)}`, dimension: Math.floor(i / 50) % 2 ? 'users' : 'gb', quantity: 1 })

async function inline(meter, awaitEach) {
  let n = 0
  const end = performance.now() + SECONDS * 1000
  const start = performance.now()
  while (performance.now() < end) {
    if (awaitEach) {
      for (let k = 0; k < 1000; k++) await meter.record(input(n++))
    } else {
      const batch = []
      for (let k = 0; k < 1000; k++) batch.push(meter.record(input(n++)))
      await Promise.all(batch)
    }
  }
  return n / ((performance.now() - start) / 1000)
}

async function inFlight(meter) {
  let n = 0
  const end = performance.now() + SECONDS * 1000
  const start = performance.now()
  const worker = async () => {
    while (performance.now() < end) await meter.record(input(n++))
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  return n / ((performance.now() - start) / 1000)
}

const rows = []
const fmt = (x) => Math.round(x).toLocaleString('en-US')
try {
  const { meter: mem, clock } = newMeter({})
  rows.push(['memory store, each record() awaited', fmt(await inline(mem, true))])
  rows.push(['memory store, 1000 records per await', fmt(await inline(mem, false))])
  for (const [durability, powerLossSafe] of [['durable', true], ['group', true], ['memory', true], ['group', false], ['durable', false]]) {
    const { meter } = newMeter({ path: path.join(dir, `${durability}-${powerLossSafe}.db`), durability, powerLossSafe })
    const how = powerLossSafe ? '' : ', no fsync'
    rows.push([`file store, durability "${durability}"${how}, ${IN_FLIGHT} in flight`, fmt(await inFlight(meter))])
    await meter.close()
  }
  clock.set(lastHour + H + 600)
  const t = performance.now()
  const sum = await mem.close()
  rows.push([`flush ${sum.acked} customer-hours (${sum.calls} calls)`, `${(performance.now() - t).toFixed(0)} ms`])
  console.log(`record() calls/s (node ${process.version}, ${os.cpus().length} cpus, ${SECONDS} s each)`)
  for (const [k, v] of rows) console.log(`  ${k.padEnd(62)} ${v}`)
} finally {
  emu.stop()
  fs.rmSync(dir, { recursive: true, force: true })
}

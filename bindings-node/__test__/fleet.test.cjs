// SPDX-License-Identifier: Apache-2.0
// The fleet store from Node: two replicas record into one private PostgreSQL (started by
// scripts/private-postgres.sh; a test that cannot start it fails) and the emulator's ledger
// bills each customer-hour once.
'use strict'
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { mm, setup } = require('./helpers.cjs')

const { emu, client } = setup()
const script = path.join(__dirname, '..', '..', 'scripts', 'private-postgres.sh')
const pg = (...args) =>
  execFileSync('bash', [script, ...args], { env: { ...process.env, PG_FSYNC: 'off' }, encoding: 'utf8' }).trim()
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-pg-node-'))
pg('start', dir)
let n = 0
const databaseUrl = () => pg('createdb', dir, `node${n++}`)
after(() => {
  emu.stop()
  pg('stop', dir)
})

const H = 3600
const base = () => Math.floor(Date.now() / 1000 / H) * H - 2 * H

// A proxy in a process of its own in front of the database of `url`: `src` gets the
// database's socket, its own socket and `extra(dir)` as arguments, and prints once it
// listens. Resolves to the process, its directory and the URL through it; stop() ends both.
async function startProxy(url, prefix, src, extra = () => []) {
  const { spawn } = require('node:child_process')
  const sockDir = decodeURIComponent(url.split('?host=')[1])
  const sockName = fs.readdirSync(sockDir).find((f) => f.startsWith('.s.PGSQL.') && !f.endsWith('.lock'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  const proxy = spawn(process.execPath, ['-e', src, path.join(sockDir, sockName), path.join(dir, sockName), ...extra(dir)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const stop = () => {
    proxy.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await new Promise((resolve, reject) => {
      proxy.stdout.once('data', resolve)
      proxy.once('exit', (code) => reject(new Error(`proxy exited ${code}`)))
    })
  } catch (e) {
    stop()
    throw e
  }
  return { proxy, dir, url: url.replace(/\?host=.*/, `?host=${encodeURIComponent(dir)}`), stop }
}

test('two replicas bill each customer-hour once', async () => {
  emu.reset()
  const url = databaseUrl()
  const clock = new mm.ManualClock(base() + 10)
  const replicas = [0, 1].map(
    (i) =>
      new mm.UsageMeter(client(), {
        productCode: emu.productCode,
        clock,
        flushIntervalSeconds: null,
        databaseUrl: url,
        replicaId: `node-${i}`,
      }),
  )
  for (const [i, m] of replicas.entries()) {
    for (const c of [1, 2, 3]) await m.record({ customerIdentifier: `cust-${c}`, dimension: 'users', quantity: c + i })
  }
  // Every event names the replica whose meter emitted it.
  const acked = []
  for (const [i, m] of replicas.entries()) {
    m.on('event', (e) => {
      assert.equal(e.replicaId, `node-${i}`)
      if (e.kind === 'acked') acked.push(e)
    })
  }
  clock.advance(H + 400)
  for (const m of replicas) await m.flush()
  assert.equal(acked.length, 3)
  const seen = new Map()
  for (const e of emu.ledger()) {
    const k = `${e.customer_identifier}|${e.dimension}|${e.hour}`
    assert.ok(!seen.has(k), `billed twice: ${k}`)
    seen.set(k, e.quantity)
  }
  assert.deepEqual(
    [...seen.entries()].sort(),
    [1, 2, 3].map((c) => [`cust-${c}|users|${base()}`, 2 * c + 1]).sort(),
  )
  const s = await replicas[0].status()
  assert.deepEqual([s.pending, s.sealed, s.acked], [0, 0, 3])
  assert.equal(s.replicaId, 'node-0')
  for (const m of replicas) await m.close()
})

test('bad fleet options name the field', () => {
  assert.throws(
    () => new mm.UsageMeter(client(), { path: '/tmp/x.db', databaseUrl: 'postgresql://u@h/db' }),
    (e) => e.field === 'databaseUrl' && !/postgresql:/.test(e.message),
  )
  assert.throws(
    () => new mm.UsageMeter(client(), { databaseUrl: 42 }),
    (e) => /databaseUrl/.test(e.message),
  )
  assert.throws(
    () => new mm.UsageMeter(client(), { databaseUrl: 'postgresql://u@h/db?sslmode=nonsense' }),
    (e) => e.field === 'databaseUrl',
  )
  assert.throws(() => new mm.UsageMeter(client(), { replicaId: 'web-1' }), (e) => e.field === 'replicaId')
})

test('the cut-over from a SQLite meter: startHour T refuses earlier hours, each hour billed once', async () => {
  emu.reset()
  const url = databaseUrl()
  const t = base()
  const clock = new mm.ManualClock(t - H + 60)
  const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-cutover-node-'))
  const common = { productCode: emu.productCode, clock, flushIntervalSeconds: null }
  const old = new mm.UsageMeter(client(), { ...common, path: path.join(dbDir, 'old.db') })
  const fleet = new mm.UsageMeter(client(), { ...common, databaseUrl: url, startHour: new Date((t + 1234) * 1000) })
  await old.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 5 })
  await assert.rejects(fleet.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 7 }), (e) => e.field === 'timestamp')
  clock.set(t + 60)
  await fleet.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 7 })
  clock.set(t + H + 400)
  await fleet.flush()
  await old.close()
  await fleet.close()
  const billed = emu.ledger().map((e) => [Number(e.hour), e.quantity]).sort((a, b) => a[0] - b[0])
  assert.deepEqual(billed, [[t - H, 5], [t, 7]])
  fs.rmSync(dbDir, { recursive: true, force: true })
})

test('fleet tuning is passed to the core, which checks it', async () => {
  const url = databaseUrl()
  for (const [opts, field] of [
    [{ fleetSenders: 0 }, 'fleetSenders'],
    [{ fleetSenders: -2 }, 'fleetSenders'],
    [{ fleetSenders: '2' }, 'fleetSenders'],
    [{ fleetLeaseSeconds: 0 }, 'fleetLeaseSeconds'],
    [{ fleetLeaseSeconds: -1 }, 'fleetLeaseSeconds'],
    [{ fleetLeaseSeconds: 1801 }, 'fleetLeaseSeconds'], // past half an hour: a dead sender's claim
    [{ fleetLeaseSeconds: Infinity }, 'fleetLeaseSeconds'], // the face's own reading of seconds
    [{ startHour: 'soon' }, 'startHour'],
    [{ powerLossSafe: false }, 'powerLossSafe'], // the database's durability, not ours
  ]) {
    assert.throws(() => new mm.UsageMeter(client(), { databaseUrl: url, ...opts }), (e) => e.field === field, JSON.stringify(opts))
  }
  const m = new mm.UsageMeter(client(), { productCode: emu.productCode, databaseUrl: url, fleetSenders: 3, fleetLeaseSeconds: 30, flushIntervalSeconds: null })
  await m.close()
})

// `new UsageMeter(...)` on the fleet store connects on the JS thread: a database slow to
// answer (starting up, far away, down until the retries give up) freezes the event loop
// (health checks, every other request) for as long. `UsageMeter.open(...)` connects off the
// JS thread and resolves with the meter; its errors are the constructor's.
test('UsageMeter.open connects without blocking the event loop', async () => {
  emu.reset()
  const url = databaseUrl()
  // A proxy in another process that holds each new connection for 1.5 s before it reaches
  // the database (in this process it could not run while the loop is blocked).
  const src = `
    const net = require('node:net')
    const [up, down] = process.argv.slice(1)
    net.createServer((c) => {
      c.pause()
      c.on('error', () => {})
      setTimeout(() => {
        const s = net.connect(up)
        s.on('error', () => c.destroy())
        c.pipe(s); s.pipe(c); c.resume()
      }, 1500)
    }).listen(down, () => console.log('ready'))`
  const slow = await startProxy(url, 'mm-pg-slow-', src)
  try {
    const slowUrl = slow.url
    let ticks = 0
    const timer = setInterval(() => ticks++, 50)
    const clock = new mm.ManualClock(base() + 10)
    const pending = mm.UsageMeter.open(client(), {
      productCode: emu.productCode,
      databaseUrl: slowUrl,
      flushIntervalSeconds: null,
      clock,
    })
    assert.ok(pending instanceof Promise)
    const m = await pending
    clearInterval(timer)
    assert.ok(ticks >= 10, `the event loop ran ${ticks} times while the meter connected`)
    assert.ok(m instanceof mm.UsageMeter)
    const acked = []
    m.on('acked', (e) => acked.push(e))
    await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 2 })
    clock.advance(H + 400)
    const s = await m.close()
    assert.equal(s.acked, 1)
    assert.equal(acked.length, 1)
    // Bad options are refused as by the constructor (before any connection).
    await assert.rejects(mm.UsageMeter.open(client(), { databaseUrl: slowUrl, fleetSenders: 0 }), (e) => {
      assert.equal(e.name, 'ValidationError')
      assert.equal(e.field, 'fleetSenders')
      return true
    })
    await assert.rejects(mm.UsageMeter.open({}, {}), (e) => e.field === 'client')
    // A subclass opens as itself.
    class Mine extends mm.UsageMeter {
      tag() {
        return 'mine'
      }
    }
    const mine = await Mine.open(client(), { productCode: emu.productCode, flushIntervalSeconds: null })
    assert.ok(mine instanceof Mine)
    assert.equal(mine.tag(), 'mine')
    await mine.close()
  } finally {
    slow.stop()
  }
})

test('durability "memory" on the fleet store: process.exit() writes the buffer and exits cleanly', async () => {
  // The addon's atexit write of memory buffers reached the runtime from the exiting thread,
  // whose thread-locals glibc has destroyed by then: the process aborted (SIGABRT) instead
  // of exiting with its code, and a buffer left to that write was lost.
  const { spawnSync } = require('node:child_process')
  const url = databaseUrl()
  const src = `
    process.on('exit', () => { throw new Error('another library') })
    const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const meter = new mm.UsageMeter(client, { productCode: ${JSON.stringify(emu.productCode)}, databaseUrl: ${JSON.stringify(url)}, durability: 'memory', flushIntervalSeconds: null })
    ;(async () => {
      await meter.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 5 })
      process.exit(0)
    })()
  `
  const child = spawnSync(process.execPath, ['-e', src], { encoding: 'utf8', timeout: 60000 })
  assert.equal(child.signal, null, child.stderr)
  assert.match(child.stderr, /another library/)
  const m = new mm.UsageMeter(client(), { productCode: emu.productCode, flushIntervalSeconds: null, databaseUrl: url })
  assert.equal((await m.status()).pending, 1, 'the buffer reached the fleet store')
  await m.close()
})

test('process.exit() settles a durable write whose outcome was unknown', async () => {
  // record() rejected with OutcomeUnknown (the database unreachable mid-write) says the meter
  // keeps the event and writes it again at the next flush: do not record it again. A process
  // that exits before that flush lost it, as only `memory` meters were written at exit.
  const { spawnSync } = require('node:child_process')
  emu.reset()
  const url = databaseUrl()
  // A proxy in a process of its own (it must outlive the child's exit): SIGUSR2 loses the next
  // bytes each client sends, ends that connection and refuses new ones; SIGHUP carries again.
  const proxySrc = `
    const fs = require('node:fs'), net = require('node:net')
    const [up, down, modeFile] = process.argv.slice(1)
    let mode = 'pass'
    const set = (m) => { mode = m; fs.writeFileSync(modeFile, m) }
    process.on('SIGUSR2', () => set('lose'))
    process.on('SIGHUP', () => set('pass'))
    net.createServer((c) => {
      c.on('error', () => {})
      if (mode === 'lose') return c.destroy()
      const s = net.connect(up)
      s.on('error', () => c.destroy())
      s.on('data', (d) => c.write(d))
      s.on('close', () => c.destroy())
      c.on('data', (d) => (mode === 'lose' ? (c.destroy(), s.destroy()) : s.write(d)))
      c.on('close', () => s.destroy())
    }).listen(down, () => { set('pass'); console.log('ready') })`
  const lossy = await startProxy(url, 'mm-pg-lose-', proxySrc, (dir) => [path.join(dir, 'mode')])
  const modeFile = path.join(lossy.dir, 'mode')
  try {
    const lossyUrl = lossy.url
    const src = `
      const fs = require('node:fs')
      const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
      const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
      const meter = new mm.UsageMeter(client, { productCode: ${JSON.stringify(emu.productCode)}, databaseUrl: ${JSON.stringify(lossyUrl)}, flushIntervalSeconds: null, clock: new mm.ManualClock(${base() + 10}) })
      const mode = async (signal, want) => {
        process.kill(${lossy.proxy.pid}, signal)
        while (fs.readFileSync(${JSON.stringify(modeFile)}, 'utf8') !== want) await new Promise((r) => setTimeout(r, 10))
      }
      ;(async () => {
        await meter.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 2 })
        await mode('SIGUSR2', 'lose')
        const e = await meter.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 5 }).then(() => null, (e) => e)
        console.log(e && e.code)
        await mode('SIGHUP', 'pass')
        process.exit(0)
      })()
    `
    const child = spawnSync(process.execPath, ['-e', src], { encoding: 'utf8', timeout: 120000 })
    assert.equal(child.status, 0, child.stderr)
    assert.equal(child.stdout.trim(), 'OutcomeUnknown', child.stderr)
    const clock = new mm.ManualClock(base() + H + 400)
    const m = new mm.UsageMeter(client(), { productCode: emu.productCode, flushIntervalSeconds: null, databaseUrl: url, clock })
    await m.flush()
    await m.close()
    const billed = emu.ledger().filter((e) => e.customer_identifier === 'cust-1' && e.hour === base())
    assert.deepEqual(billed.map((e) => e.quantity), [7], 'the kept event was written at exit, once')
  } finally {
    lossy.stop()
  }
})

// SPDX-License-Identifier: Apache-2.0
// UsageMeter end to end against the in-process emulator: billing, store, events, errors, threads.
//
// A ManualClock makes hours seal when the test moves it. The emulator's 6-hour window is real
// time, so the clock is set to recent real hours: `base()` is the start of the current hour.
'use strict'
const { test, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { spawn } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { mm, setup, workerData } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())
// The emulator knows customers cust-1 … cust-50 and de-duplicates per customer-hour: start
// every test from an empty ledger.
beforeEach(() => emu.reset())

const H = 3600
const base = () => Math.floor(Date.now() / 1000 / H) * H
let dbCounter = 0
const tempDb = (name) => path.join(os.tmpdir(), `mm-node-meter-${name}-${process.pid}-${Date.now()}-${dbCounter++}.db`)
function removeDb(p) {
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(p + suffix, { force: true })
}

/** Runs `src` in a fresh node process; resolves with its exit code and its output (both streams). */
async function runNode(src) {
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const [code] = await once(child, 'exit')
  return { code, out }
}

/** A meter on the emulator's product with a hand-set clock; collects its events. */
function meter(options = {}, clientOptions = {}) {
  const clock = new mm.ManualClock(base())
  const m = new mm.UsageMeter(client(clientOptions), {
    productCode: emu.productCode,
    clock,
    flushIntervalSeconds: null,
    ...options,
  })
  const events = []
  m.on('event', (e) => events.push(e))
  return { m, clock, events }
}

/** The ledger as `customer|dimension|hour` → { quantity, entries }. */
function billed() {
  const m = new Map()
  for (const e of emu.ledger()) {
    const who = e.customer_identifier ?? e.customer_aws_account_id ?? ''
    const k = `${who}|${e.dimension}|${e.hour}`
    const v = m.get(k) ?? { quantity: 0, entries: 0 }
    v.quantity += e.quantity
    v.entries += 1
    m.set(k, v)
  }
  return m
}

function assertBilledOnce(expected) {
  const got = billed()
  assert.equal(got.size, expected.size, `billed ${JSON.stringify([...got])}`)
  for (const [k, q] of expected) assert.deepEqual(got.get(k), { quantity: q, entries: 1 }, k)
}

test('ManualClock: set, advance, now', () => {
  const c = new mm.ManualClock(7200)
  assert.equal(c.now().getTime(), 7200 * 1000)
  c.advance(3600)
  assert.equal(c.now().getTime(), 10800 * 1000)
  c.set(new Date('2026-11-26T10:00:00Z'))
  assert.equal(c.now().toISOString(), '2026-11-26T10:00:00.000Z')
  c.set('2026-11-26T11:00:00Z')
  assert.equal(c.now().toISOString(), '2026-11-26T11:00:00.000Z')
  assert.ok(Math.abs(new mm.ManualClock().now().getTime() - Date.now()) < 5000)
  assert.throws(() => c.advance(1.5), (e) => e.code === 'InvalidInput' && /seconds/.test(e.message))
  assert.throws(() => c.set(new Date(NaN)), (e) => e.code === 'InvalidInput' && /at/.test(e.message))
  assert.equal(require('../testing.js').ManualClock, mm.ManualClock)
})

test('record + flush bills exactly what was recorded, once, and never an open hour', async () => {
  const { m, clock, events } = meter()
  const b = base()
  const expected = new Map()
  for (const hour of [b - 3 * H, b - 2 * H, b - H]) {
    clock.set(hour + 10)
    for (let i = 1; i <= 12; i++) {
      for (const dim of ['users', 'gb']) {
        for (let k = 0; k < 3; k++) {
          const q = i + k
          await m.record({ customerIdentifier: `cust-${i}`, dimension: dim, quantity: q, timestamp: new Date((hour + 60 * k) * 1000) })
          const key = `cust-${i}|${dim}|${hour}`
          expected.set(key, (expected.get(key) ?? 0) + q)
        }
      }
    }
  }
  clock.set(b + 600)
  await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 5 }) // the open hour
  let s = await m.status()
  assert.equal(s.pending, 73)
  assert.equal(s.replicaId, null, 'a local store has no replica id')
  assert.equal(s.oldestUnsentHour.getTime(), (b - 3 * H) * 1000)

  const sum = await m.flush()
  assert.equal(sum.sealed, 72)
  assert.equal(sum.acked, 72)
  assert.equal(sum.calls, 3, '72 records in batches of 25')
  assert.equal(sum.interrupted, null)
  assertBilledOnce(expected)
  // flush() resolves after the events it caused were emitted.
  const acked = events.filter((e) => e.kind === 'acked')
  assert.equal(acked.length, 72)
  const e = acked[0]
  assert.equal(typeof e.meteringRecordId, 'string')
  assert.ok(e.hour instanceof Date)
  assert.match(e.customerIdentifier, /^cust-/)
  s = await m.status()
  assert.deepEqual(s, {
    pending: 1,
    sealed: 0,
    acked: 72,
    deadLettered: 0,
    expired: 0,
    oldestUnsentHour: new Date(b * 1000),
    replicaId: null,
    lastFlushAt: new Date((b + 600) * 1000),
    lastFlushError: null,
  })
  const again = await m.flush()
  assert.equal(again.calls, 0, 'a second flush sends nothing')
  assert.equal(again.sent, 0)
  await m.close()
  await assert.rejects(m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1 }), mm.InvalidStateError)
  await assert.rejects(m.status().then(() => m.flush()), mm.InvalidStateError)
})

// A positive interval below a nanosecond rounded to zero, which turned the flusher off.
for (const [every, who] of [[0.05, 'cust-41'], [1e-10, 'cust-42']]) {
  test(`the background flusher runs every ${every} s`, async () => {
    const { m, clock } = meter({ flushIntervalSeconds: every })
    const b = base()
    clock.set(b - H + 10)
    await m.record({ customerIdentifier: who, dimension: 'gb', quantity: 4 })
    clock.set(b + 600)
    const deadline = Date.now() + 10_000
    while (!billed().has(`${who}|gb|${b - H}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(billed().get(`${who}|gb|${b - H}`), { quantity: 4, entries: 1 })
    await m.close()
  })
}

test('a file store survives closing and reopening', async () => {
  const p = tempDb('reopen')
  after(() => removeDb(p))
  const b = base()
  {
    const { m, clock } = meter({ path: p })
    clock.set(b - H + 1)
    for (let i = 1; i <= 5; i++) await m.record({ customerIdentifier: `cust-${i}`, dimension: 'gb', quantity: i * 2 })
    const sum = await m.close() // hour b-1h is not sealed yet: nothing sent
    assert.equal(sum.sent, 0)
    await assert.rejects(m.record({ customerIdentifier: 'cust-1', dimension: 'gb', quantity: 1 }), mm.InvalidStateError)
    await assert.rejects(m.flush(), (err) => err.code === 'InvalidState')
  }
  const { m, clock } = meter({ path: p })
  clock.set(b + 600)
  assert.equal((await m.status()).pending, 5)
  const sum = await m.flush()
  assert.equal(sum.acked, 5)
  assertBilledOnce(new Map(Array.from({ length: 5 }, (_, i) => [`cust-${i + 1}|gb|${b - H}`, (i + 1) * 2])))
  await m.close()
  assert.equal(m.close(), m.close(), 'close() is idempotent')
})

test('a refused record is dead-lettered, emitted, and listed', async () => {
  const { m, clock, events } = meter()
  const b = base()
  clock.set(b - H + 1)
  const dead = once(m, 'dead_lettered')
  await m.record({ customerIdentifier: 'cust-unsubscribed', dimension: 'users', quantity: 2 })
  await m.record({ customerIdentifier: 'cust-3', dimension: 'users', quantity: 2 })
  clock.set(b + 600)
  const sum = await m.flush()
  assert.equal(sum.acked, 1)
  assert.equal(sum.deadLettered, 1)
  const [ev] = await dead
  assert.equal(ev.kind, 'dead_lettered')
  assert.equal(ev.customerIdentifier, 'cust-unsubscribed')
  assert.equal(ev.reason, 'CustomerNotSubscribed')
  assert.equal(ev.quantity, 2)
  assert.equal(ev.hour.getTime(), (b - H) * 1000)
  assert.equal(typeof ev.message, 'string')
  assert.ok(events.includes(ev), 'the catch-all "event" saw it too')
  const list = await m.deadLetters()
  assert.equal(list.length, 1)
  assert.equal(list[0].customerIdentifier, 'cust-unsubscribed')
  assert.equal(list[0].reason, 'CustomerNotSubscribed')
  assert.equal(list[0].hour.getTime(), (b - H) * 1000)
  assert.ok(list[0].at instanceof Date)
  const s = await m.status()
  assert.equal(s.deadLettered, 1)
  assert.equal((await m.flush()).calls, 0, 'never retried')
  await m.close()
})

test('an event for a sealed hour is counted in the current hour and reported', async () => {
  const { m, clock } = meter()
  const b = base()
  clock.set(b - 2 * H + 5)
  await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 4 })
  clock.set(b + 600)
  await m.flush()
  const late = once(m, 'late_event')
  await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 3, timestamp: new Date((b - 2 * H + 100) * 1000) })
  const [ev] = await late
  assert.equal(ev.hour.getTime(), (b - 2 * H) * 1000)
  assert.equal(ev.countedInHour.getTime(), b * 1000)
  assert.equal(ev.quantity, 3)
  clock.set(b + H + 400)
  await m.flush()
  assertBilledOnce(
    new Map([
      [`cust-1|users|${b - 2 * H}`, 4],
      [`cust-1|users|${b}`, 3],
    ]),
  )
  await m.close()
})

test('window alarm and expiry follow the clock', async () => {
  const { m, clock, events } = meter()
  const b = base()
  clock.set(b - 7 * H + 1)
  await m.record({ customerIdentifier: 'cust-2', dimension: 'users', quantity: 9 })
  clock.set(b - 5 * H + 1)
  await m.record({ customerIdentifier: 'cust-2', dimension: 'users', quantity: 8 })
  clock.set(b + 600)
  const sum = await m.flush()
  assert.equal(sum.expired, 1)
  assert.equal(sum.acked, 1)
  const expired = events.filter((e) => e.kind === 'expired')
  assert.equal(expired.length, 1)
  assert.equal(expired[0].hour.getTime(), (b - 7 * H) * 1000)
  // The expired hour was alarmed too: the local clock alone never makes it final.
  const alarm = events.find((e) => e.kind === 'window_alarm' && e.hour.getTime() === (b - 5 * H) * 1000)
  assert.ok(alarm, JSON.stringify(events))
  assert.equal(alarm.windowEnd.getTime(), (b + H) * 1000)
  assert.equal((await m.status()).expired, 1)
  await m.close()
})

test('a close that failed keeps the events of the close that follows', async () => {
  // A failed close() keeps the store, and a close() again flushes again (as the types say);
  // the first one released the event queue anyway, and the second one's dead letter was
  // never emitted (found by a review).
  const { m, clock, events } = meter({}, { maxAttempts: 1 })
  const b = base()
  clock.set(b - H + 1)
  await m.record({ customerIdentifier: 'cust-unsubscribed', dimension: 'users', quantity: 2 })
  clock.set(b + 600)
  emu.pushFault({ kind: 'redirect', status: 301, location: 'http://127.0.0.1:9/' })
  await assert.rejects(m.close())
  const sum = await m.close()
  assert.equal(sum.deadLettered, 1)
  assert.deepEqual(events.map((e) => e.kind), ['dead_lettered'])
})

test('a throttled flush is interrupted, not rejected, and the next flush sends', async () => {
  const { m, clock } = meter({}, { maxAttempts: 1 })
  const b = base()
  clock.set(b - H + 1)
  for (let i = 1; i <= 3; i++) await m.record({ customerIdentifier: `cust-${i}`, dimension: 'users', quantity: 1 })
  clock.set(b + 600)
  emu.pushFault({ kind: 'throttle' })
  const sum = await m.flush()
  assert.ok(sum.interrupted instanceof mm.ThrottlingException, String(sum.interrupted))
  assert.equal(sum.interrupted.$fault, 'client')
  assert.equal(sum.acked, 0)
  const st = await m.status()
  assert.equal(st.sealed, 3)
  // What stopped the last flush, for a health check (a background flush rejects nowhere).
  assert.match(st.lastFlushError, /^ThrottlingException: /)
  assert.equal(st.lastFlushAt.getTime(), (b + 600) * 1000)
  assert.equal((await m.flush()).acked, 3)
  assert.equal((await m.status()).lastFlushError, null)
  await m.close()
})

test('zero-fill reports registered customers hours without usage', async () => {
  const { m, clock } = meter({ zeroFill: true })
  const b = base()
  clock.set(b - 2 * H + 10)
  await m.registerCustomer({ customerIdentifier: 'cust-5', dimensions: ['users', 'gb'] })
  await m.record({ customerIdentifier: 'cust-5', dimension: 'users', quantity: 7 })
  clock.set(b + 600)
  const sum = await m.flush()
  assert.equal(sum.acked, 4)
  assertBilledOnce(
    new Map([
      [`cust-5|users|${b - 2 * H}`, 7],
      [`cust-5|gb|${b - 2 * H}`, 0],
      [`cust-5|users|${b - H}`, 0],
      [`cust-5|gb|${b - H}`, 0],
    ]),
  )
  await assert.rejects(m.registerCustomer({ customerIdentifier: 'cust-5', dimensions: 'users' }), (e) => e.field === 'dimensions')
  await m.close()
})

test('unregisterCustomer stops a churned customer zero-fill', async () => {
  const { m, clock } = meter({ zeroFill: true })
  const b = base()
  clock.set(b - 2 * H + 10)
  await m.registerCustomer({ customerIdentifier: 'cust-5', dimensions: ['users', 'gb'] })
  await m.registerCustomer({ customerIdentifier: 'cust-6', dimensions: ['users'] })
  assert.equal(await m.unregisterCustomer({ customerIdentifier: 'cust-5', dimensions: ['gb', 'cpu'] }), 1)
  assert.equal(await m.unregisterCustomer({ customerIdentifier: 'cust-5' }), 1)
  assert.equal(await m.unregisterCustomer({ customerIdentifier: 'cust-5', dimensions: undefined }), 0)
  await assert.rejects(m.unregisterCustomer({ customerIdentifier: 'cust-5', dimensions: 'users' }), (e) => e instanceof mm.ValidationError && e.field === 'dimensions')
  await assert.rejects(m.unregisterCustomer({ dimensions: ['users'] }), (e) => e instanceof mm.ValidationError)
  await assert.rejects(m.unregisterCustomer({ customerIdentifier: 'cust-5', dimension: 'users' }), (e) => e instanceof mm.ValidationError)
  clock.set(b + 600)
  assert.equal((await m.flush()).acked, 2)
  assertBilledOnce(
    new Map([
      [`cust-6|users|${b - 2 * H}`, 0],
      [`cust-6|users|${b - H}`, 0],
    ]),
  )
  await m.close()
})

test('license customers with allocations, and no product code', async () => {
  const b = base() // once: the hour may turn during the test
  const clock = new mm.ManualClock(b - H + 1)
  const m = new mm.UsageMeter(client(), { clock, flushIntervalSeconds: 0 })
  const who = { customerAwsAccountId: emu.customerAWSAccountId, licenseArn: emu.licenseArn }
  const alloc = (q, v) => ({ AllocatedUsageQuantity: q, Tags: [{ Key: 'team', Value: v }] })
  await m.record({ ...who, dimension: 'users', quantity: 5, allocations: [alloc(2, 'a'), alloc(3, 'b')] })
  await m.record({ ...who, dimension: 'users', quantity: 1 })
  // Identifier customers need the meter's product code.
  await assert.rejects(m.record({ customerIdentifier: 'x', dimension: 'users', quantity: 1 }), (e) => e instanceof mm.ValidationError && e.field === 'customerIdentifier')
  // Allocations must sum to the quantity.
  await assert.rejects(m.record({ ...who, dimension: 'users', quantity: 9, allocations: [alloc(2, 'a')] }), (e) => e instanceof mm.ValidationError && /^allocations/.test(e.field))
  const acked = once(m, 'acked')
  clock.set(b + 600)
  assert.equal((await m.flush()).acked, 1)
  const [ev] = await acked
  assert.equal(ev.customerAwsAccountId, emu.customerAWSAccountId)
  assert.equal(ev.licenseArn, emu.licenseArn)
  assert.equal(ev.customerIdentifier, undefined)
  assert.equal(ev.quantity, 6)
  const mine = emu.ledger().filter((e) => e.license_arn === emu.licenseArn && e.hour === b - H)
  assert.equal(mine.length, 1)
  assert.equal(mine[0].quantity, 6)
  await m.close()
})

test('a bad dimension names the same field, once, for every customer kind and mode', async () => {
  // Each customer kind and mode takes its own validation path in the core.
  const { m: batch } = meter()
  const { m: single } = meter({ mode: 'meter_usage' })
  const alloc = [{ AllocatedUsageQuantity: 1 }]
  const account = { customerAwsAccountId: emu.customerAWSAccountId, licenseArn: emu.licenseArn }
  for (const dimension of ['', 'd'.repeat(256)]) {
    const cases = [
      () => batch.record({ customerIdentifier: 'cust-1', dimension, quantity: 1 }),
      () => batch.record({ customerIdentifier: 'cust-1', dimension, quantity: 1, allocations: alloc }),
      () => batch.record({ ...account, dimension, quantity: 1 }),
      () => single.record({ dimension, quantity: 1 }),
      () => single.record({ dimension, quantity: 1, allocations: alloc }),
    ]
    for (const [i, call] of cases.entries()) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof mm.ValidationError, `${i}: ${e}`)
        assert.equal(e.field, 'dimension', `${i}: ${e.message}`)
        assert.equal(e.message.split('imension').length, 2, `${i}: ${e.message}`)
        assert.ok(e.message.startsWith('dimension: length must be'), `${i}: ${e.message}`)
        return true
      })
    }
  }
  await assert.rejects(
    batch.record({ customerAwsAccountId: '', licenseArn: emu.licenseArn, dimension: 'users', quantity: 1 }),
    (e) => e.field === 'customerAwsAccountId' && e.message.startsWith('customerAwsAccountId: '),
  )
  await batch.close()
  await single.close()
})

test('the common record() shape and the general one give the same outcome for every value', async () => {
  // { customerIdentifier, dimension, quantity } alone goes to the addon as arguments; with one
  // more (absent) member it takes the general conversion. Both must apply the same rules.
  for (const mode of ['batch', 'meter_usage']) {
    const { m } = meter({ mode })
    const buckets = new Set()
    const values = [
      ['cust-1', 'users', 2],
      ['cust-1', '', 1],
      ['cust-1', 'd'.repeat(256), 1],
      ['', 'users', 1],
      ['c'.repeat(300), 'users', 1],
      ['cust-1', 'users', -1],
      ['cust-1', 'users', 0],
      ['cust-1', 'users', 1.5],
      ['cust-1', 'users', NaN],
      ['cust-1', 'users', Infinity],
      ['cust-1', 'users', 2 ** 31],
      ['cust-1', 'users', 2 ** 60],
      ['cust-\ud800', 'users', 1],
      // Around the plain path's 256-byte buffers: UTF-8 that fits, that may not, multi-byte
      // characters and a lone surrogate at the edge, the longest valid strings.
      ['c'.repeat(251), 'users', 1],
      ['c'.repeat(252), 'users', 1],
      ['c'.repeat(248) + '\ud800', 'users', 1],
      ['c'.repeat(255), 'd'.repeat(255), 1],
      ['\u00e9'.repeat(125), 'users', 1],
      ['\u00e9'.repeat(126), '\u00e9'.repeat(255), 1],
      ['\u{1f600}'.repeat(63), '\u{1f600}'.repeat(255), 1],
      ['cust-1', 'users\udc00', 1],
    ]
    for (const [customerIdentifier, dimension, quantity] of values) {
      const plain = { customerIdentifier, dimension, quantity }
      const outcome = async (input) => {
        try {
          await m.record(input)
          return 'ok'
        } catch (e) {
          assert.ok(e instanceof mm.MarketplaceMeteringError, String(e))
          return `${e.code} ${e.field} ${e.message}`
        }
      }
      const a = await outcome(plain)
      const b = await outcome({ ...plain, timestamp: undefined })
      assert.equal(a, b, `${mode} ${JSON.stringify(plain)}`)
      if (a === 'ok') buckets.add(mode === 'meter_usage' ? dimension : `${customerIdentifier}/${dimension}`)
    }
    assert.ok(buckets.size > 0)
    const s = await m.status()
    assert.equal(s.pending, buckets.size, `${mode}: ${JSON.stringify(s)} ${[...buckets]}`)
    await m.close()
  }
})

test('a store path that is not a regular file is refused, untouched, naming the field', () => {
  // A directory left a stray "-lock" file beside it; a device was made owner-only.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-not-a-file-'))
  assert.throws(() => meter({ path: dir }), (e) => e.name === 'ValidationError' && e.field === 'path')
  assert.equal(fs.existsSync(`${dir}-lock`), false)
  fs.rmdirSync(dir)
})

test('bad input rejects with a ValidationError naming the field', async () => {
  const { m } = meter()
  const cases = [
    [undefined, 'input'],
    [{ dimension: 'users', quantity: 1 }, 'customerIdentifier'],
    [{ customerIdentifier: 'c', customerAwsAccountId: '111122223333', licenseArn: 'arn', dimension: 'users', quantity: 1 }, 'customerIdentifier'],
    [{ customerAwsAccountId: '111122223333', dimension: 'users', quantity: 1 }, 'licenseArn'],
    [{ customerIdentifier: 'c', licenseArn: 'arn', dimension: 'users', quantity: 1 }, 'licenseArn'],
    [{ customerIdentifier: 7, dimension: 'users', quantity: 1 }, 'customerIdentifier'],
    [{ customerIdentifier: 'c', quantity: 1 }, 'dimension'],
    [{ customerIdentifier: 'c', dimension: '', quantity: 1 }, 'dimension'],
    [{ customerIdentifier: 'c', dimension: 'users' }, 'quantity'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: -1 }, 'quantity'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 1.5 }, 'quantity'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: '3' }, 'quantity'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 2 ** 31 }, 'quantity'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 1, timestamp: new Date(NaN) }, 'timestamp'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 1, timestamp: {} }, 'timestamp'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 1, allocations: {} }, 'allocations'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 1, allocations: [{ AllocatedUsageQuantity: 1, Tags: [{ Key: 'k' }] }] }, 'allocations[0].Tags[0].Value'],
    [{ customerIdentifier: 'c', dimension: 'users', quantity: 1, Quantity: 1 }, 'Quantity'],
    // Lone surrogates (read by napi as U+FFFD: another customer or dimension) are refused, on
    // the plain path (these three) and the general one.
    [{ customerIdentifier: 'cust-\ud800', dimension: 'users', quantity: 1 }, 'customerIdentifier'],
    [{ customerIdentifier: 'c'.repeat(248) + '\ud800', dimension: 'users', quantity: 1 }, 'customerIdentifier'],
    [{ customerIdentifier: 'c', dimension: 'users\udc00', quantity: 1 }, 'dimension'],
    [{ customerIdentifier: 'c', dimension: 'users\udc00', quantity: 1, timestamp: undefined }, 'dimension'],
    [{ customerAwsAccountId: '11112222333\ud800', licenseArn: 'arn', dimension: 'users', quantity: 1 }, 'customerAwsAccountId'],
    // A NUL, which a fleet store's PostgreSQL cannot hold: refused from every store.
    [{ customerIdentifier: 'cust\u0000x', dimension: 'users', quantity: 1 }, 'customerIdentifier'],
    [{ customerIdentifier: 'c', dimension: 'us\u0000ers', quantity: 1 }, 'dimension'],
  ]
  for (const [input, field] of cases) {
    const p = m.record(input)
    assert.ok(p instanceof Promise, 'record() returns a promise even for bad input')
    await assert.rejects(
      p,
      (e) => {
        assert.ok(e instanceof mm.ValidationError, `${JSON.stringify(input)}: ${e}`)
        assert.equal(e.code, 'InvalidInput')
        assert.equal(e.field, field, `${JSON.stringify(input)}: ${e.message}`)
        assert.ok(e.message.includes(field), e.message)
        return true
      },
      JSON.stringify(input),
    )
  }
  assert.equal((await m.status()).pending, 0, 'nothing was recorded')

  // Constructor options throw synchronously.
  const c = client()
  const bad = [
    [() => new mm.UsageMeter({}, {}), 'client'],
    [() => new mm.UsageMeter(c, 'x'), 'options'],
    [() => new mm.UsageMeter(c, { mode: 'nope' }), 'mode'],
    [() => new mm.UsageMeter(c, { durability: 'fast' }), 'durability'],
    [() => new mm.UsageMeter(c, { graceSeconds: -1 }), 'graceSeconds'],
    // A grace that leaves no time to send before the service's window closes.
    [() => new mm.UsageMeter(c, { graceSeconds: 5 * 3600 }), 'graceSeconds'],
    [() => new mm.UsageMeter(c, { zeroFill: 'yes' }), 'zeroFill'],
    [() => new mm.UsageMeter(c, { powerLossSafe: 0 }), 'powerLossSafe'],
    [() => new mm.UsageMeter(c, { powerLossSafe: 'no' }), 'powerLossSafe'],
    [() => new mm.UsageMeter(c, { flushIntervalSeconds: NaN }), 'flushIntervalSeconds'],
    // A background flusher too slow to raise a window alarm in time.
    [() => new mm.UsageMeter(c, { flushIntervalSeconds: 3600 }), 'flushIntervalSeconds'],
    [() => new mm.UsageMeter(c, { path: 3 }), 'path'],
    [() => new mm.UsageMeter(c, { productCode: '' }), 'productCode'],
    [() => new mm.UsageMeter(c, { clock: Date.now }), 'clock'],
    [() => new mm.UsageMeter(c, { prodcutCode: 'p' }), 'prodcutCode'],
    [() => new mm.UsageMeter(client({ credentials: async () => emu.credentials }), {}), 'client.credentials'],
  ]
  for (const [f, field] of bad) {
    assert.throws(f, (e) => e instanceof mm.ValidationError && e.field === field, field)
  }
  assert.throws(() => new mm.UsageMeter(c, { mode: 'meter_usage' }), (e) => e.code === 'InvalidConfig')
  assert.throws(() => new mm.UsageMeter(c, { path: path.join(os.tmpdir(), 'no-such-dir-mm', 'x', 'm.db') }), mm.MarketplaceMeteringError)
  await m.close()
})

test('Date.now() as a timestamp and a bucket past the maximum are refused, naming the field', async () => {
  const { m } = meter()
  const refused = async (input, field) =>
    assert.rejects(m.record(input), (e) => e instanceof mm.ValidationError && e.field === field && e.message.includes(field))
  await refused({ customerIdentifier: 'c', dimension: 'users', quantity: 1, timestamp: Date.now() }, 'timestamp')
  await m.record({ customerIdentifier: 'c', dimension: 'users', quantity: 2 ** 31 - 1 })
  await refused({ customerIdentifier: 'c', dimension: 'users', quantity: 1 }, 'quantity')
  assert.equal((await m.status()).pending, 1)
  await m.close()
})

test('group commit: records in flight together never sum a bucket past the maximum', async () => {
  // One group commit sums the records in flight: each fits alone, their sum does not. The
  // ones that fit are kept, the rest refused naming quantity; the bucket never passes it.
  const p = tempDb('group-max')
  after(() => removeDb(p))
  const { m, clock } = meter({ path: p, durability: 'group' })
  const b = base()
  clock.set(b - H + 1)
  const big = 2 ** 30 // one fits in a bucket (2^31 - 1), two do not
  const settled = await Promise.allSettled(
    Array.from({ length: 6 }, () => m.record({ customerIdentifier: 'cust-3', dimension: 'users', quantity: big })),
  )
  const kept = settled.filter((r) => r.status === 'fulfilled').length
  assert.equal(kept, 1, JSON.stringify(settled.map((r) => r.status)))
  for (const r of settled.filter((r) => r.status === 'rejected')) {
    assert.ok(r.reason instanceof mm.ValidationError && r.reason.field === 'quantity', String(r.reason))
  }
  clock.set(b + 600)
  assert.equal((await m.close()).acked, 1)
  assert.deepEqual(billed().get(`cust-3|users|${b - H}`), { quantity: big, entries: 1 })
})

test('group commit: close() with records in flight loses none; a record after it rejects', async () => {
  // A service shutting down: records not yet awaited when close() is called. Each was queued
  // when record() was called, so each resolves and is in the store for the next meter.
  const p = tempDb('group-close')
  after(() => removeDb(p))
  const { m, clock } = meter({ path: p, durability: 'group' })
  const b = base()
  clock.set(b - H + 1)
  const inFlight = Array.from({ length: 300 }, (_, i) => m.record({ customerIdentifier: `cust-${1 + (i % 5)}`, dimension: 'users', quantity: 1 }))
  const closing = m.close()
  const settled = await Promise.allSettled(inFlight)
  assert.deepEqual(settled.filter((r) => r.status === 'rejected'), [])
  await closing
  await assert.rejects(m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1 }), (e) => e.code === 'InvalidState')
  const again = meter({ path: p })
  again.clock.set(b + 600)
  await again.m.close()
  const total = emu.ledger().reduce((a, e) => a + e.quantity, 0)
  assert.equal(total, 300)
})

test('one meter owns a store file; a second one names the holder until the first closes', async () => {
  const p = tempDb('owner')
  const first = new mm.UsageMeter(client(), { path: p, productCode: emu.productCode, flushIntervalSeconds: 0 })
  assert.throws(
    () => new mm.UsageMeter(client(), { path: p, productCode: emu.productCode }),
    (e) => e.code === 'InvalidState' && e.message.includes(`pid ${process.pid} on host`),
  )
  await first.close()
  const second = new mm.UsageMeter(client(), { path: p, productCode: emu.productCode, flushIntervalSeconds: 0 })
  await second.record({ customerIdentifier: 'c', dimension: 'users', quantity: 1 })
  await second.close()
  for (const suffix of ['', '-wal', '-shm', '-lock']) {
    if (fs.existsSync(p + suffix)) assert.equal(fs.statSync(p + suffix).mode & 0o077, 0, suffix)
    fs.rmSync(p + suffix, { force: true })
  }
})

for (const durability of ['durable', 'group', 'memory']) {
  test(`durability "${durability}": concurrent records all land, once`, async () => {
    const p = tempDb(durability)
    after(() => removeDb(p))
    const { m, clock } = meter({ path: p, durability, flushIntervalSeconds: 1800 })
    const b = base()
    clock.set(b - H + 1)
    const pending = []
    for (let i = 0; i < 200; i++) pending.push(m.record({ customerIdentifier: `cust-${1 + (i % 10)}`, dimension: 'requests', quantity: 1 + (i % 4) }))
    await Promise.all(pending)
    assert.equal((await m.status()).pending, 10)
    clock.set(b + 600)
    const sum = await m.close()
    assert.equal(sum.acked, 10)
    const total = emu.ledger().reduce((a, e) => a + e.quantity, 0)
    assert.equal(total, 50 * (1 + 2 + 3 + 4))
    assert.equal(emu.ledger().length, 10)
  })
}

test('meter_usage mode: one MeterUsage call per dimension-hour (through the aggregated client)', async () => {
  const clock = new mm.ManualClock(base())
  const agg = new mm.MarketplaceMetering({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
  const m = new mm.UsageMeter(agg, { mode: 'meter_usage', productCode: emu.productCode, clock, flushIntervalSeconds: null })
  const b = base()
  clock.set(b - 4 * H + 1)
  await m.record({ dimension: 'users', quantity: 3 })
  await m.record({ dimension: 'users', quantity: 4 })
  await m.record({ dimension: 'gb', quantity: 1 })
  await m.record({ dimension: 'nope', quantity: 1 }) // refused by the service: dead-lettered
  const events = []
  m.on('event', (e) => events.push(e))
  clock.set(b + 600)
  const sum = await m.flush()
  assert.equal(sum.acked, 2)
  assert.equal(sum.deadLettered, 1)
  assert.equal(sum.calls, 3)
  const mine = emu.ledger().filter((e) => e.operation === 'MeterUsage' && e.hour === b - 4 * H)
  const byDim = Object.fromEntries(mine.map((e) => [e.dimension, e.quantity]))
  assert.deepEqual(byDim, { users: 7, gb: 1 })
  // These buckets have no customer: no customer key on any event or dead letter.
  const dead = await m.deadLetters()
  assert.deepEqual(dead.map((d) => d.dimension), ['nope'])
  assert.deepEqual(events.map((e) => e.kind).sort(), ['acked', 'acked', 'dead_lettered'])
  for (const row of [...events, ...dead]) {
    for (const k of ['customerIdentifier', 'customerAwsAccountId', 'licenseArn']) assert.ok(!(k in row), `${k} in ${JSON.stringify(row)}`)
  }
  await m.close()
})

test('durable records never block the event loop', async () => {
  const p = tempDb('eventloop')
  after(() => removeDb(p))
  const { m, clock } = meter({ path: p, durability: 'durable' })
  clock.set(base() - H + 1)
  await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1 }) // warm up
  const ticks = []
  const timer = setInterval(() => ticks.push(performance.now()), 5)
  const start = performance.now()
  const all = []
  for (let i = 0; i < 1000; i++) all.push(m.record({ customerIdentifier: `cust-${1 + (i % 20)}`, dimension: 'users', quantity: 1 }))
  const queued = performance.now() - start
  await Promise.all(all)
  const elapsed = performance.now() - start
  clearInterval(timer)
  const gaps = ticks.slice(1).map((t, i) => t - ticks[i])
  const worst = Math.max(0, ...gaps)
  assert.ok(elapsed > 0)
  // Queuing 1000 records is JS-side conversion only; commits happen elsewhere. Committed on
  // the loop, they would stall it for all 1000 commits (seconds of fsync), not a busy CPU's
  // few hundred milliseconds.
  assert.ok(queued < 1000, `queuing took ${queued.toFixed(0)} ms`)
  assert.ok(worst < 400, `the event loop stalled for ${worst.toFixed(0)} ms (${ticks.length} ticks in ${elapsed.toFixed(0)} ms)`)
  assert.equal((await m.status()).pending, 20)
  await m.close()
})

const workerSource = `
const { parentPort, workerData: w } = require('node:worker_threads')
const mm = require(w.pkg)
;(async () => {
  const client = new mm.MarketplaceMeteringClient({ region: w.region, endpoint: w.endpoint, credentials: w.credentials })
  const clock = new mm.ManualClock(w.base - 3600 + 1)
  const meter = new mm.UsageMeter(client, { productCode: w.productCode, clock, path: w.path, durability: 'group' })
  const acked = []
  meter.on('acked', (e) => acked.push(e.customerIdentifier))
  await Promise.all(Array.from({ length: 50 }, (_, i) => meter.record({ customerIdentifier: 'cust-' + (1 + (i % 5)), dimension: 'gb', quantity: 2 })))
  clock.set(w.base + 600)
  const sum = await meter.close()
  parentPort.postMessage({ acked: sum.acked, events: acked.length })
  // Left open on purpose: an unclosed meter must not keep the worker alive.
  const other = new mm.UsageMeter(client, { productCode: w.productCode, durability: 'group', path: w.path + '-2', flushIntervalSeconds: 1 })
  await other.record({ customerIdentifier: 'cust-20', dimension: 'gb', quantity: 1 })
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack) }))
`

test('a meter in a worker thread, alongside one in the main thread', async () => {
  const p = tempDb('worker')
  after(() => {
    removeDb(p)
    removeDb(p + '-2')
  })
  const b = base()
  const w = new Worker(workerSource, {
    eval: true,
    workerData: workerData(emu, { path: p, base: b }),
  })
  const exited = once(w, 'exit')
  const { m, clock } = meter()
  clock.set(b - H + 1)
  await Promise.all(Array.from({ length: 20 }, (_, i) => m.record({ customerIdentifier: `cust-${10 + (i % 4)}`, dimension: 'gb', quantity: 1 })))
  const [msg] = await once(w, 'message')
  if (msg.error) throw new Error(msg.error)
  assert.deepEqual(msg, { acked: 5, events: 5 })
  const [code] = await exited
  assert.equal(code, 0)
  clock.set(b + 600)
  assert.equal((await m.close()).acked, 4)
  const worker = emu.ledger().filter((e) => ['cust-1', 'cust-2', 'cust-3', 'cust-4', 'cust-5'].includes(e.customer_identifier))
  assert.equal(worker.reduce((a, e) => a + e.quantity, 0), 100)
  assert.equal(emu.ledger().length, 9)
})

test('an unclosed meter does not keep the process alive', async () => {
  const p = tempDb('exit')
  after(() => removeDb(p))
  const src = `
    const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const meter = new mm.UsageMeter(client, { productCode: ${JSON.stringify(emu.productCode)}, path: ${JSON.stringify(p)}, durability: 'group', flushIntervalSeconds: 1 })
    meter.on('event', () => {})
    meter.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1 }).then(() => console.log('recorded'))
  `
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000)
  const [code, signal] = await once(child, 'exit')
  clearTimeout(timer)
  assert.equal(signal, null, `the process hung: ${out}`)
  assert.equal(code, 0, out)
  assert.match(out, /recorded/)
})

test('a throwing listener surfaces as an uncaught exception and the meter keeps working', async () => {
  const src = `
    const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const H = 3600, b = Math.floor(Date.now() / 1000 / H) * H
    const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const clock = new mm.ManualClock(b - H + 1)
    const meter = new mm.UsageMeter(client, { productCode: ${JSON.stringify(emu.productCode)}, clock, flushIntervalSeconds: null })
    const caught = []
    process.on('uncaughtException', (e) => caught.push(e.message))
    let acked = 0
    let all = 0
    meter.on('acked', () => { acked++; throw new Error('listener boom') })
    meter.on('event', () => all++)
    ;(async () => {
      await meter.record({ customerIdentifier: 'cust-30', dimension: 'users', quantity: 1 })
      await meter.record({ customerIdentifier: 'cust-31', dimension: 'users', quantity: 1 })
      clock.set(b + 600)
      const sum = await meter.close()
      await new Promise((r) => setTimeout(r, 20))
      console.log(JSON.stringify({ acked: sum.acked, seen: acked, all, caught }))
    })()
  `
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const [code] = await once(child, 'exit')
  assert.equal(code, 0, err)
  assert.deepEqual(JSON.parse(out), { acked: 2, seen: 2, all: 2, caught: ['listener boom', 'listener boom'] })
})

test('requeue sends chosen dead letters again, by reason, customer and hour', async () => {
  const { m, clock } = meter()
  const b = base() - 2 * H
  clock.set(new Date((b + 10) * 1000))
  await m.record({ customerIdentifier: 'cust-unsubscribed', dimension: 'users', quantity: 4 })
  await m.record({ customerIdentifier: 'cust-2', dimension: 'nope', quantity: 1 })
  clock.set(new Date((b + H + 400) * 1000))
  assert.equal((await m.flush()).deadLettered, 2)
  assert.equal(await m.requeue({ reason: 'DuplicateRecord' }), 0)
  assert.equal(await m.requeue({ customerIdentifier: 'cust-9' }), 0)
  assert.equal(await m.requeue({ hour: new Date((b + H) * 1000) }), 0)
  await assert.rejects(m.requeue({ customerAwsAccountId: '111122223333' }), (e) => e.field === 'licenseArn')
  await assert.rejects(m.requeue({ hour: 'soon' }), (e) => e.field === 'hour')
  await assert.rejects(m.requeue({ nope: 1 }), (e) => e.name === 'ValidationError')
  assert.equal(await m.requeue({ reason: 'CustomerNotSubscribed', customerIdentifier: 'cust-unsubscribed', hour: b + 59 }), 1)
  assert.deepEqual((await m.deadLetters()).map((d) => d.reason), ['InvalidUsageDimensionException'])
  assert.equal((await m.status()).sealed, 1)
  const s = await m.flush() // still not subscribed: dead-lettered again
  assert.equal(s.sent, 1)
  assert.equal(s.deadLettered, 1)
  assert.equal(await m.requeue(), 2)
  await m.close()
})

test('group commit without power-loss safety: every resolved record survives kill -9, billed once', async () => {
  // powerLossSafe: false gives up the fsync per commit, never a commit: what resolved before
  // the process was killed is in the file.
  const p = tempDb('killed')
  const src = `
    const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const meter = new mm.UsageMeter(client, { path: ${JSON.stringify(p)}, productCode: ${JSON.stringify(emu.productCode)}, durability: 'group', powerLossSafe: false, flushIntervalSeconds: null })
    // 4 writers, each one record in flight; one line per record that resolved.
    for (let k = 1; k <= 4; k++) {
      ;(async () => {
        for (;;) {
          await meter.record({ customerIdentifier: 'cust-' + k, dimension: 'users', quantity: 1 })
          process.stdout.write(k + '\\n')
        }
      })()
    }
  `
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] })
  const acked = [0, 0, 0, 0, 0]
  let total = 0
  let rest = ''
  const done = new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      const lines = (rest + d).split('\n')
      rest = lines.pop()
      for (const l of lines) {
        acked[Number(l)] += 1
        if (++total === 3000) child.kill('SIGKILL')
      }
    })
    child.stdout.on('end', resolve)
  })
  const [code, signal] = await once(child, 'exit')
  await done
  assert.equal(code, null)
  assert.equal(signal, 'SIGKILL')
  assert.ok(total >= 3000, `only ${total} records before the child ended`)
  const { m, clock } = meter({ path: p })
  clock.set(new Date((base() + H + 400) * 1000)) // seals the hour (or two) the child recorded in
  await m.flush()
  await m.close()
  const got = [0, 0, 0, 0, 0]
  for (const e of emu.ledger()) got[Number(e.customer_identifier.slice(5))] += e.quantity
  for (let k = 1; k <= 4; k++) {
    const q = got[k]
    // At most the one record in flight per writer was committed without resolving.
    assert.ok(acked[k] <= q && q <= acked[k] + 1, `cust-${k}: ${acked[k]} resolved, ${q} billed`)
  }
  removeDb(p)
})

test('durability "memory": process.exit() on the main thread writes the buffers of meters in workers', async () => {
  // A worker's own 'exit' hook does not run when the main thread ends the process: its
  // meter's buffer was written, if at all, by a detached thread that the exit cut off.
  const p = tempDb('worker-exit')
  const pkg = JSON.stringify(path.join(__dirname, '..'))
  const src = `
    const { Worker } = require('node:worker_threads')
    const w = new Worker(\`
      const { parentPort } = require('node:worker_threads')
      const mm = require(${pkg})
      const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
      const meter = new mm.UsageMeter(client, { path: ${JSON.stringify(p)}, productCode: ${JSON.stringify(emu.productCode)}, durability: 'memory', flushIntervalSeconds: null })
      ;(async () => {
        // Enough buckets that writing them takes a while.
        for (let i = 0; i < 20000; i++) await meter.record({ customerIdentifier: 'bulk-' + i, dimension: 'gb', quantity: 1 })
        parentPort.postMessage('ready')
        setInterval(() => {}, 1000)
      })()
    \`, { eval: true })
    w.once('message', () => process.exit(0))
    w.once('error', (e) => { console.error(e); process.exit(3) })
  `
  const { code, out } = await runNode(src)
  assert.equal(code, 0, out)
  const { m } = meter({ path: p })
  assert.equal((await m.status()).pending, 20000, 'the worker meter\'s buffer was written')
  await m.close()
  removeDb(p)
})

test('durability "memory": process.exit() writes the buffered events to the store', async () => {
  const p = tempDb('exit')
  const hour = base() // the child's clock: the real hour may turn while it runs
  const src = `
    const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const meter = new mm.UsageMeter(client, { path: ${JSON.stringify(p)}, productCode: ${JSON.stringify(emu.productCode)}, durability: 'memory', flushIntervalSeconds: null, clock: new mm.ManualClock(${hour + 10}) })
    ;(async () => {
      for (const q of [1, 2, 3]) await meter.record({ customerIdentifier: 'cust-7', dimension: 'gb', quantity: q })
      process.exit(0) // no close(): the exit hook writes the buffer
    })()
  `
  const { code, out } = await runNode(src)
  assert.equal(code, 0, out)
  const { m, clock } = meter({ path: p })
  assert.equal((await m.status()).pending, 1)
  clock.set(new Date((hour + H + 400) * 1000))
  assert.equal((await m.flush()).acked, 1)
  await m.close()
  assert.deepEqual(billed().get(`cust-7|gb|${hour}`), { quantity: 6, entries: 1 })
  removeDb(p)
})

/**
 * A child script's opening: the package, a client of the emulator, a memory meter on `p`
 * whose clock is in `hour` (not the real one, which may turn to the next hour meanwhile).
 */
function memoryMeterScript(p, hour, extra = '') {
  return `
    const mm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const client = new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const meter = new mm.UsageMeter(client, { path: ${JSON.stringify(p)}, productCode: ${JSON.stringify(emu.productCode)}, durability: 'memory', flushIntervalSeconds: null, clock: new mm.ManualClock(${hour + 10})${extra} })
  `
}

/** What `cust` was billed for `gb` in `hour`, once the store at `p` is flushed. */
async function billedFromStore(p, cust, hour) {
  const { m, clock } = meter({ path: p })
  clock.set(new Date((hour + H + 400) * 1000))
  await m.flush()
  await m.close()
  removeDb(p)
  return billed().get(`${cust}|gb|${hour}`)
}

test('durability "memory": an exit listener that throws before the meter\'s loses none of its buffer', async () => {
  // Node stops at the first 'exit' listener that throws: the meter's own, registered later
  // (another library's logger went first), never ran, and the buffer was lost.
  const p = tempDb('exit-throws')
  const hour = base()
  const src = `
    process.on('exit', () => { throw new Error('another library') })
    ${memoryMeterScript(p, hour)}
    ;(async () => {
      await meter.record({ customerIdentifier: 'cust-8', dimension: 'gb', quantity: 5 })
      process.exit(0)
    })()
  `
  const { out } = await runNode(src)
  assert.match(out, /another library/)
  assert.deepEqual(await billedFromStore(p, 'cust-8', hour), { quantity: 5, entries: 1 })
})

test('durability "memory": a record() in an exit listener after the meter\'s is written too', async () => {
  // The meter's 'exit' hook had written the buffer already: what a later listener recorded
  // (a final count of the process's work) stayed in memory and went with the process.
  const p = tempDb('exit-late-record')
  const hour = base()
  const src = `
    ${memoryMeterScript(p, hour)}
    process.on('exit', () => { meter.record({ customerIdentifier: 'cust-9', dimension: 'gb', quantity: 4 }) })
    ;(async () => {
      await meter.record({ customerIdentifier: 'cust-9', dimension: 'gb', quantity: 1 })
      process.exit(0)
    })()
  `
  const { code, out } = await runNode(src)
  assert.equal(code, 0, out)
  assert.deepEqual(await billedFromStore(p, 'cust-9', hour), { quantity: 5, entries: 1 })
})

test('record() reads each member of its input once (a getter is not asked twice)', async () => {
  // Found by a review: the fast path checked each member's type, then read it again; a
  // getter that answered differently the second time gave an error naming no field.
  const { m } = meter()
  let reads = 0
  const input = { customerIdentifier: 'cust-getter', dimension: 'users', get quantity() { return reads++ ? 5n : 1 } }
  await m.record(input)
  assert.equal(reads, 1)
  const s = await m.status()
  assert.equal(s.pending, 1)
  await m.close()
})

test('UsageMeter.open called unbound opens a UsageMeter', async () => {
  // Found by a review: `this` undefined threw after the store was opened and locked, so a
  // corrected retry found the store in use.
  const { open } = mm.UsageMeter
  const path = tempDb('unbound')
  try {
    const m = await open(client(), { productCode: emu.productCode, path, flushIntervalSeconds: null })
    assert.ok(m instanceof mm.UsageMeter)
    await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1 })
    await m.close()
  } finally {
    removeDb(path)
  }
})

test('a close whose final flush failed keeps the store, and close() again ends it', async () => {
  const b = base()
  const clock = new mm.ManualClock(b - H + 10)
  const path = tempDb('close-failed')
  const opts = { productCode: emu.productCode, clock, flushIntervalSeconds: null, path }
  try {
    const m = new mm.UsageMeter(client(), opts)
    await m.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 2 })
    fs.renameSync(path, path + '.moved')
    clock.set(b + 600)
    await assert.rejects(m.close(), /removed or replaced/)
    fs.renameSync(path + '.moved', path)
    assert.throws(() => new mm.UsageMeter(client(), opts), /in use/)
    await m.close()
    const again = new mm.UsageMeter(client(), opts)
    await again.close()
  } finally {
    removeDb(path)
  }
})

test('a closed meter of a second copy of the package does not take the next meter\'s commits with it', async () => {
  // Two copies of the package in one process (two versions in node_modules) each load their
  // own native library, with its own SQLite. A closed meter keeps its connection for reads;
  // when it is collected, its SQLite, which knows of no other connection to the store,
  // checkpoints and deletes the -wal the other copy's meter is writing into. A review of
  // Node hosts expected that meter's acknowledged records to be lost at a crash; the meter's
  // check of its -wal, made for a file removed under it, finds it gone at the next write and
  // opens the store anew, so nothing is lost: this pins it.
  const p = tempDb('copies')
  after(() => removeDb(p))
  const pkg = path.join(__dirname, '..')
  const copies = [1, 2].map((i) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mm-node-copy${i}-`))
    for (const f of fs.readdirSync(pkg)) {
      if (f.endsWith('.js') || f.endsWith('.node') || f === 'package.json') fs.copyFileSync(path.join(pkg, f), path.join(dir, f))
    }
    return dir
  })
  after(() => copies.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))
  const options = { productCode: emu.productCode, path: p, durability: 'durable', flushIntervalSeconds: 0 }
  const src = `
    const [A, B] = ${JSON.stringify(copies)}.map((d) => require(d))
    const clientOf = (mm) => new mm.MarketplaceMeteringClient(${JSON.stringify({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })})
    const options = ${JSON.stringify(options)}
    ;(async () => {
      let a = new A.UsageMeter(clientOf(A), options)
      await a.record({ customerIdentifier: 'cust-1', dimension: 'users', quantity: 1 })
      await a.close()
      const b = new B.UsageMeter(clientOf(B), options)
      a = null
      for (let i = 0; i < 5; i++) global.gc()
      await new Promise((r) => setTimeout(r, 300))
      for (let i = 2; i <= 6; i++) await b.record({ customerIdentifier: 'cust-' + i, dimension: 'users', quantity: i })
      console.log('recorded')
      process.kill(process.pid, 'SIGKILL')
    })().catch((e) => { console.log(String(e)); process.exit(3) })
  `
  const child = spawn(process.execPath, ['--expose-gc', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const [, signal] = await once(child, 'exit')
  assert.equal(signal, 'SIGKILL', out)
  assert.match(out, /recorded/)
  const m = new mm.UsageMeter(client(), { ...options, clock: new mm.ManualClock(base()) })
  try {
    assert.equal((await m.status()).pending, 6)
  } finally {
    await m.close()
  }
})

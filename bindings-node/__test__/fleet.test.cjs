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
  clock.advance(H + 400)
  for (const m of replicas) await m.flush()
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
  for (const m of replicas) await m.close()
})

test('bad fleet options name the field', () => {
  assert.throws(
    () => new mm.UsageMeter(client(), { path: '/tmp/x.db', databaseUrl: 'postgresql://u@h/db' }),
    (e) => e.field === 'databaseUrl' || /databaseUrl/.test(e.message),
  )
  assert.throws(
    () => new mm.UsageMeter(client(), { databaseUrl: 42 }),
    (e) => /databaseUrl/.test(e.message),
  )
  assert.throws(
    () => new mm.UsageMeter(client(), { databaseUrl: 'postgresql://u@h/db?sslmode=nonsense' }),
    (e) => /database_url|databaseUrl/.test(e.message),
  )
})

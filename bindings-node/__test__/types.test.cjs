// SPDX-License-Identifier: Apache-2.0
// index.d.ts and index.mjs declare exactly the error classes of the runtime table (the service
// ones written by tools/gen-errors.cjs).
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const mm = require('..')

const root = path.join(__dirname, '..')
const runtime = new Map(mm.errorCodes().map((r) => [r.className, r]))

test('index.d.ts declares one class per error class, with the right base, code and $fault', () => {
  const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')
  const declared = new Map()
  const re = /export declare class (\w+) extends (MarketplaceMeteringServiceException|MarketplaceMeteringError) \{([^}]*)\}/g
  for (const m of dts.matchAll(re)) declared.set(m[1], { base: m[2], body: m[3] })
  const expected = [...runtime.keys()].filter((n) => n !== 'MarketplaceMeteringServiceException').sort()
  assert.deepEqual([...declared.keys()].sort(), expected)
  for (const [name, d] of declared) {
    const row = runtime.get(name)
    assert.equal(d.base, row.service ? 'MarketplaceMeteringServiceException' : 'MarketplaceMeteringError', name)
    assert.match(d.body, new RegExp(`readonly code: "${row.code}"`), name)
    assert.match(d.body, new RegExp(`readonly \\$fault: "${row.fault}"`), name)
  }
})

test('index.mjs names every error class', () => {
  const src = fs.readFileSync(path.join(root, 'index.mjs'), 'utf8')
  for (const name of runtime.keys()) assert.match(src, new RegExp(`^  ${name},$`, 'm'), name)
})

test('the service error classes of index.d.ts and index.mjs are current (tools/gen-errors.cjs)', () => {
  const { spawnSync } = require('node:child_process')
  const r = spawnSync(process.execPath, [path.join(root, 'tools', 'gen-errors.cjs'), '--check'], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
})

// SPDX-License-Identifier: Apache-2.0
// BatchMeterUsage's compact text (encode.js) only ever makes a call cheaper: for any input the
// addon builds the same core input, or throws the same error, with the text as without it.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const vm = require('node:vm')
const { encodeBatchMeterUsage } = require('../encode.js')
const { loadAddon } = require('../addon.js')

const native = loadAddon()

/** What the addon builds from `input`, with or without the text: the reader, and the input or the error. */
function convert(input, encoded) {
  try {
    const [from, debug] = native.batchMeterUsageInputDebug(input, encoded)
    return { from, result: debug }
  } catch (e) {
    return { from: 'error', result: `${e?.name}: ${e?.message}` }
  }
}

/** Asserts both readers agree on `input`; returns which one the text path used. */
function agree(input, label) {
  const encoded = encodeBatchMeterUsage(input)
  const withText = convert(input, encoded)
  const without = convert(input, undefined)
  assert.equal(withText.result, without.result, `${label}: ${encoded}`)
  return encoded === undefined ? 'declined' : withText.from
}

const hour = new Date(Date.UTC(2026, 11, 4, 15))
const rec = (i, extra = {}) => ({
  Timestamp: hour,
  CustomerIdentifier: `cust-${i}`,
  Dimension: 'users',
  Quantity: i,
  ...extra,
})

test('the shapes callers send take the text path and read the same', () => {
  const inputs = [
    { ProductCode: 'prod-1234', UsageRecords: Array.from({ length: 25 }, (_, i) => rec(i)) },
    { UsageRecords: [rec(1)] },
    { ProductCode: 'p', UsageRecords: [] },
    { ProductCode: 'p', UsageRecords: [rec(1, { CustomerIdentifier: undefined, CustomerAWSAccountId: '123456789012', LicenseArn: 'arn:aws:license-manager::1:license:l-1' })] },
    { ProductCode: 'p', UsageRecords: [rec(1, { Timestamp: new Date(Date.UTC(2026, 11, 4, 15, 0, 0, 123)) })] },
    { ProductCode: 'p', UsageRecords: [rec(0, { Quantity: -0 }), rec(1, { Quantity: 2 ** 31 - 1 }), rec(2, { Quantity: null })] },
    { ProductCode: 'p', UsageRecords: [rec(1, { CustomerIdentifier: 'é "quoted" \\ \n \u0000 😀' })] },
    Object.assign(Object.create(null), { ProductCode: 'p', UsageRecords: [Object.assign(Object.create(null), rec(1))] }),
  ]
  for (const [i, input] of inputs.entries()) assert.equal(agree(input, `input ${i}`), 'encoded', `input ${i}`)
})

test('an input the text cannot carry exactly is read from the object, with the same result', () => {
  class SlowDate extends Date {
    getTime() {
      return 0
    }
  }
  const foreignDate = vm.runInNewContext('new Date(Date.UTC(2026, 11, 4, 15))')
  const inherited = Object.create({ Quantity: 7 })
  Object.assign(inherited, { Timestamp: hour, CustomerIdentifier: 'c', Dimension: 'd' })
  // A member only a prototype getter has is not one of the record's keys: neither reader sees it.
  class WithGetter {
    constructor() {
      Object.assign(this, { Timestamp: hour, CustomerIdentifier: 'c', Dimension: 'd' })
    }
    get Quantity() {
      return 5
    }
  }
  const cases = [
    ['a non-enumerable prototype getter', new WithGetter()],
    ['a subclass overriding getTime', rec(1, { Timestamp: new SlowDate(hour.getTime()) })],
    ['a Date from another realm', rec(1, { Timestamp: foreignDate })],
    ['an inherited member', inherited],
    ['epoch seconds', rec(1, { Timestamp: hour.getTime() / 1000 })],
    ['an ISO string', rec(1, { Timestamp: '2026-12-04T15:00:00.5Z' })],
    ['UsageAllocations', rec(1, { UsageAllocations: [{ AllocatedUsageQuantity: 1, Tags: [{ Key: 'k', Value: 'v' }] }] })],
  ]
  for (const [label, r] of cases) {
    const input = { ProductCode: 'p', UsageRecords: [r] }
    agree(input, label)
    // And the object's reading is the one the call uses: a successful result.
    assert.equal(convert(input, encodeBatchMeterUsage(input)).from === 'error', false, label)
  }
  // A lone surrogate: the text (JSON escapes it) is declined, and the object's reading refuses
  // it, naming the member, rather than reading it as U+FFFD.
  const lone = { ProductCode: 'p', UsageRecords: [rec(1, { CustomerIdentifier: 'a\ud800b' })] }
  agree(lone, 'a lone surrogate')
  const out = convert(lone, encodeBatchMeterUsage(lone))
  assert.equal(out.from, 'error', 'a lone surrogate')
  assert.match(out.result, /UsageRecords\[0\]\.CustomerIdentifier: is not well-formed Unicode: a lone surrogate at index 1/)
})

test('a getter is read once on the text path, and its error is the one thrown', () => {
  let reads = 0
  const r = rec(1)
  Object.defineProperty(r, 'CustomerIdentifier', { enumerable: true, get: () => `c-${++reads}` })
  const input = { ProductCode: 'p', UsageRecords: [r] }
  const encoded = encodeBatchMeterUsage(input)
  assert.equal(reads, 1)
  assert.match(native.batchMeterUsageInputDebug(input, encoded)[1], /"c-1"/)
  assert.equal(reads, 1)

  const boom = new Error('getter failed')
  const bad = rec(1)
  Object.defineProperty(bad, 'Dimension', { enumerable: true, get: () => { throw boom } })
  assert.throws(() => encodeBatchMeterUsage({ ProductCode: 'p', UsageRecords: [bad] }), (e) => e === boom)
  assert.throws(() => native.batchMeterUsageInputDebug({ ProductCode: 'p', UsageRecords: [bad] }), (e) => e === boom)
})

// A small seeded generator (mulberry32) so a failure names an input that can be made again.
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('random inputs: the same input or the same error with the text as without it', () => {
  const rand = rng(20261204)
  const pick = (xs) => xs[Math.floor(rand() * xs.length)]
  const maybe = (p) => rand() < p
  const strings = ['cust-1', '', 'x'.repeat(70), 'é😀', 'a\ud800', '"\\', 'users', 'prod-1234', 'bad code!']
  const odd = [undefined, null, 0, 1.5, -1, NaN, Infinity, 2 ** 31, 2 ** 53, 2 ** 53 + 2, -0, '5', 5n, true, {}, [], new Date(NaN), Symbol('s'), () => 1]
  const stringish = () => (maybe(0.8) ? pick(strings) : pick(odd))
  const timestamp = () =>
    maybe(0.7)
      ? new Date(hour.getTime() + Math.floor(rand() * 7200e3) - 3600e3)
      : pick([...odd, new Date(8.64e15), new Date(-8.64e15), 1.7e9, '2026-12-04T15:00:00Z', 'nope'])
  const quantity = () => (maybe(0.7) ? Math.floor(rand() * 100) : pick([...odd, 2 ** 31 - 1, -(2 ** 53)]))
  const record = () => {
    if (maybe(0.03)) return pick(odd)
    const r = {}
    const members = [
      ['Timestamp', timestamp, 0.95],
      ['CustomerIdentifier', stringish, 0.8],
      ['CustomerAWSAccountId', stringish, 0.15],
      ['LicenseArn', stringish, 0.1],
      ['Dimension', stringish, 0.95],
      ['Quantity', quantity, 0.9],
    ]
    // Key order varies: the object reader walks the keys as they come.
    for (const [k, gen, p] of members.sort(() => rand() - 0.5)) if (maybe(p)) r[k] = gen()
    if (maybe(0.03)) r[pick(['Bogus', 'quantity', 'UsageAllocations'])] = pick([undefined, 1, []])
    return r
  }
  let encoded = 0
  const N = 4000
  for (let n = 0; n < N; n++) {
    let input
    if (maybe(0.02)) {
      input = pick([...odd, [rec(1)], new Date()])
    } else {
      input = {}
      if (maybe(0.9)) input.ProductCode = stringish()
      if (maybe(0.97)) {
        input.UsageRecords = maybe(0.03) ? pick(odd) : Array.from({ length: pick([0, 1, 2, 5, 25, 26]) }, record)
        if (maybe(0.02) && Array.isArray(input.UsageRecords)) input.UsageRecords.length += 2
      }
      if (maybe(0.02)) input.Extra = pick([undefined, 1])
    }
    if (agree(input, `input ${n}`) === 'encoded') encoded++
  }
  // The generator must exercise both paths, or the comparison proves nothing.
  assert.ok(encoded > N / 10 && encoded < N, `${encoded} of ${N} took the text path`)
})

// SPDX-License-Identifier: Apache-2.0
// Bad input rejects with a ValidationError naming the field, and nothing is sent.
'use strict'
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { mm, setup, now, record } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())
const c = client()

const batch = (input) => new mm.BatchMeterUsageCommand(input)
const P = () => emu.productCode

const cases = [
  // [description, command, field]
  ['26 records', () => batch({ ProductCode: P(), UsageRecords: Array.from({ length: 26 }, (_, i) => record((i % 25) + 1)) }), 'UsageRecords'],
  ['negative Quantity', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantity: -1 })] }), 'UsageRecords[0].Quantity'],
  ['fractional Quantity', () => batch({ ProductCode: P(), UsageRecords: [record(1), record(2, { Quantity: 1.5 })] }), 'UsageRecords[1].Quantity'],
  ['Quantity as a string', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantity: '3' })] }), 'UsageRecords[0].Quantity'],
  ['Quantity above int32', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantity: 2 ** 31 })] }), 'UsageRecords[0].Quantity'],
  ['missing Dimension', () => batch({ ProductCode: P(), UsageRecords: [{ Timestamp: now(), CustomerIdentifier: 'cust-1' }] }), 'UsageRecords[0].Dimension'],
  ['missing Timestamp', () => batch({ ProductCode: P(), UsageRecords: [{ CustomerIdentifier: 'cust-1', Dimension: 'users' }] }), 'UsageRecords[0].Timestamp'],
  ['missing UsageRecords', () => batch({ ProductCode: P() }), 'UsageRecords'],
  ['UsageRecords not an array', () => batch({ ProductCode: P(), UsageRecords: record(1) }), 'UsageRecords'],
  ['record not an object', () => batch({ ProductCode: P(), UsageRecords: ['cust-1'] }), 'UsageRecords[0]'],
  ['invalid Date', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Timestamp: new Date('nope') })] }), 'UsageRecords[0].Timestamp'],
  ['NaN Timestamp', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Timestamp: NaN })] }), 'UsageRecords[0].Timestamp'],
  ['unparsable Timestamp string', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Timestamp: 'yesterday' })] }), 'UsageRecords[0].Timestamp'],
  ['Timestamp as an object', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Timestamp: {} })] }), 'UsageRecords[0].Timestamp'],
  ['unknown key in a record', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantty: 3 })] }), 'UsageRecords[0].Quantty'],
  ['unknown top-level key', () => batch({ ProductCode: P(), UsageRecords: [record(1)], Extra: 1 }), 'Extra'],
  // Keys are read into a 64-byte buffer: one that fills it is read again whole.
  ['long unknown key', () => batch({ ProductCode: P(), UsageRecords: [record(1, { ['Q'.repeat(63) + 'x']: 3 })] }), `UsageRecords[0].${'Q'.repeat(63)}x`],
  ['non-ASCII unknown key', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantité: 3 })] }), 'UsageRecords[0].Quantité'],
  ['unknown key with an undefined value', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Extra: undefined })] }), 'UsageRecords[0].Extra'],
  ['ProductCode not a string', () => batch({ ProductCode: 42, UsageRecords: [record(1)] }), 'ProductCode'],
  ['ProductCode pattern', () => batch({ ProductCode: 'bad code!', UsageRecords: [record(1)] }), 'ProductCode'],
  ['CustomerIdentifier too long', () => batch({ ProductCode: P(), UsageRecords: [record(1, { CustomerIdentifier: 'x'.repeat(256) })] }), 'UsageRecords[0].CustomerIdentifier'],
  ['tag not an object', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantity: 1, UsageAllocations: [{ AllocatedUsageQuantity: 1, Tags: ['k=v'] }] })] }), 'UsageRecords[0].UsageAllocations[0].Tags[0]'],
  ['input not an object', () => batch('records'), '<input>'],
  // A lone surrogate has no UTF-8: napi would read it as U+FFFD and the call would bill
  // another customer id or dimension than the caller's. It is refused, named.
  ['lone surrogate in CustomerIdentifier', () => batch({ ProductCode: P(), UsageRecords: [record(1), record(2, { CustomerIdentifier: 'cust-\ud800' })] }), 'UsageRecords[1].CustomerIdentifier'],
  ['lone surrogate in Dimension', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Dimension: '\udc00users' })] }), 'UsageRecords[0].Dimension'],
  ['lone surrogate in a tag', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Quantity: 1, UsageAllocations: [{ AllocatedUsageQuantity: 1, Tags: [{ Key: 'k', Value: 'v\udfff' }] }] })] }), 'UsageRecords[0].UsageAllocations[0].Tags[0].Value'],
  ['lone surrogate in a Timestamp string', () => batch({ ProductCode: P(), UsageRecords: [record(1, { Timestamp: '2026-01-01T00:00:00Z\ud800' })] }), 'UsageRecords[0].Timestamp'],
  ['lone surrogate in ProductCode', () => batch({ ProductCode: 'p\ud83d', UsageRecords: [record(1)] }), 'ProductCode'],
  ['lone surrogate in UsageDimension', () => new mm.MeterUsageCommand({ ProductCode: P(), Timestamp: now(), UsageDimension: 'users\ud800' }), 'UsageDimension'],
  ['lone surrogate in RegistrationToken', () => new mm.ResolveCustomerCommand({ RegistrationToken: '\udc00' }), 'RegistrationToken'],
  ['MeterUsage missing UsageDimension', () => new mm.MeterUsageCommand({ ProductCode: P(), Timestamp: now() }), 'UsageDimension'],
  ['MeterUsage DryRun not a boolean', () => new mm.MeterUsageCommand({ ProductCode: P(), Timestamp: now(), UsageDimension: 'users', DryRun: 'yes' }), 'DryRun'],
  ['ResolveCustomer missing token', () => new mm.ResolveCustomerCommand({}), 'RegistrationToken'],
  ['ResolveCustomer undefined input', () => new mm.ResolveCustomerCommand(undefined), 'RegistrationToken'],
  ['RegisterUsage PublicKeyVersion 0', () => new mm.RegisterUsageCommand({ ProductCode: P(), PublicKeyVersion: 0 }), 'PublicKeyVersion'],
  ['RegisterUsage PublicKeyVersion as string', () => new mm.RegisterUsageCommand({ ProductCode: P(), PublicKeyVersion: '1' }), 'PublicKeyVersion'],
]

for (const [name, make, field] of cases) {
  test(`rejects ${name}, naming ${field}, sending nothing`, async () => {
    const before = emu.requests().length
    const err = await c.send(make()).catch((e) => e)
    assert.ok(err instanceof mm.ValidationError, `${name}: ${err && err.stack}`)
    assert.ok(err instanceof mm.MarketplaceMeteringError)
    assert.equal(err.name, 'ValidationError')
    assert.equal(err.code, 'InvalidInput')
    assert.equal(err.$fault, 'client')
    assert.equal(err.$metadata.attempts, 0)
    assert.ok(err.field === field || err.field.startsWith(field), `${name}: field ${err.field}, expected ${field}`)
    assert.ok(err.message.includes(err.field), err.message)
    assert.equal(emu.requests().length, before, 'nothing reached the emulator')
  })
}

test('null and undefined optional members are ignored (as in SDK v3)', async () => {
  const out = await c.send(batch({ ProductCode: P(), UsageRecords: [record(7, { UsageAllocations: undefined, LicenseArn: null })] }))
  assert.equal(out.Results[0].Status, 'Success')
})

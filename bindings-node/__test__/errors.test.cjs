// SPDX-License-Identifier: Apache-2.0
// Errors: classes built from the core's table, fields, $fault, $metadata, retries.
'use strict'
const { test, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { mm, setup, now, record } = require('./helpers.cjs')

const { emu, client } = setup()
after(() => emu.stop())
beforeEach(() => emu.reset())

test('every core ErrorCode has an exported class of the right base', () => {
  const rows = mm.errorCodes()
  assert.ok(rows.length >= 30)
  for (const row of rows) {
    const cls = mm[row.className]
    assert.equal(typeof cls, 'function', row.className)
    const base = row.service ? mm.MarketplaceMeteringServiceException : mm.MarketplaceMeteringError
    assert.ok(cls === base || cls.prototype instanceof base, row.className)
    assert.ok(['client', 'server'].includes(row.fault))
    if (row.kind !== 'local') assert.equal(row.className, row.code)
  }
  assert.equal(rows.find((r) => r.code === 'InvalidInput').className, 'ValidationError')
  assert.equal(rows.find((r) => r.code === 'InternalServiceErrorException').fault, 'server')
})

test('modeled exception: class, name, message, code, $fault, $metadata', async () => {
  const err = await client()
    .send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-expired' }))
    .catch((e) => e)
  assert.ok(err instanceof mm.ExpiredTokenException)
  assert.ok(err instanceof mm.MarketplaceMeteringServiceException)
  assert.ok(err instanceof Error)
  assert.equal(err.name, 'ExpiredTokenException')
  assert.equal(err.code, 'ExpiredTokenException')
  assert.equal(err.$fault, 'client')
  assert.equal(typeof err.message, 'string')
  assert.equal(err.$metadata.httpStatusCode, 400)
  assert.equal(err.$metadata.requestId, emu.requests()[0].request_id)
  assert.equal(err.$metadata.attempts, 1)
})

test('InvalidTokenException, InvalidProductCodeException, InvalidUsageDimensionException', async () => {
  const c = client()
  await assert.rejects(c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'nope' })), mm.InvalidTokenException)
  await assert.rejects(
    c.send(new mm.MeterUsageCommand({ ProductCode: 'prod-unknown', Timestamp: now(), UsageDimension: 'users' })),
    mm.InvalidProductCodeException,
  )
  await assert.rejects(
    c.send(new mm.MeterUsageCommand({ ProductCode: emu.productCode, Timestamp: now(), UsageDimension: 'cpus' })),
    mm.InvalidUsageDimensionException,
  )
})

test('throttling is retried; $metadata.attempts counts every attempt', async () => {
  emu.pushFault({ kind: 'throttle' })
  emu.pushFault({ kind: 'internal_error' })
  const out = await client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(out.$metadata.attempts, 3)
  assert.ok(out.$metadata.totalRetryDelay > 0)
  assert.equal(emu.requests().length, 3)
})

test('retries exhausted: the last error, with attempts = maxAttempts', async () => {
  for (let i = 0; i < 3; i++) emu.pushFault({ kind: 'internal_error' })
  const err = await client({ maxAttempts: 2 })
    .send(new mm.BatchMeterUsageCommand({ ProductCode: emu.productCode, UsageRecords: [record(1)] }))
    .catch((e) => e)
  assert.ok(err instanceof mm.InternalServiceErrorException)
  assert.equal(err.$fault, 'server')
  assert.equal(err.$metadata.httpStatusCode, 500)
  assert.equal(err.$metadata.attempts, 2)
  assert.equal(err.retryable, true)
  assert.equal(emu.requests().length, 2)
})

test('maxAttempts: 1 disables retries', async () => {
  emu.pushFault({ kind: 'throttle' })
  const err = await client({ maxAttempts: 1 })
    .send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
    .catch((e) => e)
  assert.ok(err instanceof mm.ThrottlingException)
  assert.equal(err.$metadata.attempts, 1)
})

test('503 HTML, connection reset and garbage are retried, then succeed', async () => {
  emu.pushFault({ kind: 'unavailable' })
  emu.pushFault({ kind: 'reset' })
  const out = await client({ maxAttempts: 3 }).send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  assert.equal(out.$metadata.attempts, 3)
  emu.pushFault({ kind: 'garbage' })
  const err = await client({ maxAttempts: 1 })
    .send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
    .catch((e) => e)
  assert.ok(err instanceof mm.InvalidResponseError, err)
  assert.equal(err.code, 'InvalidResponse')
})

test('an unknown service code is a MarketplaceMeteringServiceException named after it', async () => {
  emu.pushFault({ kind: 'error', status: 400, code: 'SomethingNewException', message: 'brand new' })
  const err = await client()
    .send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
    .catch((e) => e)
  assert.equal(err.constructor, mm.MarketplaceMeteringServiceException)
  assert.equal(err.name, 'SomethingNewException')
  assert.equal(err.code, 'Unhandled')
  assert.equal(err.serviceCode, 'SomethingNewException')
  assert.match(err.message, /brand new/)
})

test('namespaced common error (AccessDeniedException)', async () => {
  emu.pushFault({ kind: 'error', status: 400, code: 'AccessDeniedException', message: 'denied', namespaced: true })
  await assert.rejects(
    client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })),
    (e) => e instanceof mm.AccessDeniedException && e.$fault === 'client' && e.message.includes('denied'),
  )
})

test('bad credentials: UnrecognizedClientException / InvalidSignatureException', async () => {
  await assert.rejects(
    client({ credentials: { accessKeyId: 'AKIDUNKNOWN000000000', secretAccessKey: 'x' } }).send(
      new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }),
    ),
    mm.UnrecognizedClientException,
  )
  await assert.rejects(
    client({ credentials: { ...emu.credentials, secretAccessKey: 'wrong' } }).send(
      new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }),
    ),
    mm.InvalidSignatureException,
  )
})

test('connection refused is a NetworkingError; read timeout is a TimeoutError', async () => {
  const dead = mm.startEmulator()
  const endpoint = dead.endpoint
  dead.stop()
  const err = await new mm.MarketplaceMeteringClient({ region: 'us-east-1', endpoint, credentials: emu.credentials, maxAttempts: 1 })
    .send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
    .catch((e) => e)
  assert.ok(err instanceof mm.NetworkingError, err)
  assert.equal(err.code, 'Dispatch')
  assert.ok(err instanceof mm.MarketplaceMeteringError)

  emu.pushFault({ kind: 'delay', seconds: 1 })
  const slow = await client({ requestTimeout: 200, maxAttempts: 1 })
    .send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
    .catch((e) => e)
  assert.ok(slow instanceof mm.TimeoutError, slow)
  assert.equal(slow.code, 'ReadTimeout')
})

test('configuration errors', async () => {
  await assert.rejects(
    client({ retryMode: 'sometimes' }).send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })),
    (e) => e instanceof mm.InvalidConfigError && e.field === 'retry_mode',
  )
  await assert.rejects(
    client({ maxAttempts: 0 }).send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })),
    (e) => e instanceof mm.InvalidConfigError && e.field === 'max_attempts',
  )
  await assert.rejects(
    client({ endpoint: 'not a url' }).send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })),
    mm.InvalidConfigError,
  )
})

// SPDX-License-Identifier: Apache-2.0
// The `logger` option (SDK v3's interface) receives one debug entry per attempt, with the
// core's fields and nothing secret.
'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { mm, setup } = require('./helpers.cjs')

test('one logger.debug per attempt, on success and on failure, nothing secret', async () => {
  const { emu } = setup()
  const seen = []
  const logger = { debug: (x) => seen.push(x), info() {}, warn() {}, error() {} }
  // The emulator's session credentials (metering_emulator::SESSION_*).
  const secret = 'emulator-session-secret'
  const token = 'emulator-session-token'
  const client = new mm.MarketplaceMeteringClient({
    region: emu.region,
    endpoint: emu.endpoint,
    credentials: { accessKeyId: 'EMULATORSESSIONKEY01', secretAccessKey: secret, sessionToken: token },
    logger,
  })
  try {
    emu.pushFault({ kind: 'throttle' })
    const out = await client.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
    assert.equal(out.$metadata.attemptLog, undefined)
    for (let i = 0; i < 3; i++) emu.pushFault({ kind: 'throttle' })
    const err = await client.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })).catch((e) => e)
    assert.ok(err instanceof mm.ThrottlingException)
    assert.ok(!Object.keys(err).includes('$attemptLog'))
    assert.deepEqual(
      seen.map((e) => [e.attempt, e.status, e.outcome, e.retryReason]),
      [
        [1, 400, 'ThrottlingException', 'throttling'],
        [2, 200, 'ok', undefined],
        [1, 400, 'ThrottlingException', 'throttling'],
        [2, 400, 'ThrottlingException', 'throttling'],
        [3, 400, 'ThrottlingException', undefined],
      ],
    )
    assert.equal(seen[1].requestId, out.$metadata.requestId)
    assert.ok(seen.every((e) => e.commandName === 'ResolveCustomerCommand' && e.latencyMs >= 0))
    const text = JSON.stringify(seen)
    for (const s of [secret, token, 'Signature', 'uthorization']) assert.ok(!text.includes(s), s)
    // A logger that throws does not fail the call.
    const broken = new mm.MarketplaceMeteringClient({
      region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials,
      logger: { debug() { throw new Error('boom') }, info() {}, warn() {}, error() {} },
    })
    await broken.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))
  } finally {
    emu.stop()
  }
})

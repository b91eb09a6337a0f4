// SPDX-License-Identifier: Apache-2.0
// `require()` loads the package (by name and by path) and the testing entry point.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

test('require by name, by path, and marketplace-metering/testing', () => {
  const byName = require('marketplace-metering')
  const byPath = require(path.join(__dirname, '..'))
  assert.equal(byName, byPath)
  for (const k of ['MarketplaceMeteringClient', 'MarketplaceMetering', 'BatchMeterUsageCommand', 'MeterUsageCommand',
    'ResolveCustomerCommand', 'RegisterUsageCommand', 'MarketplaceMeteringServiceException', 'ThrottlingException',
    'ValidationError', 'startEmulator', 'errorCodes']) {
    assert.equal(typeof byName[k], 'function', k)
  }
  assert.equal(require('marketplace-metering/testing').startEmulator, byName.startEmulator)
  assert.match(byName.coreVersion, /^\d+\.\d+\.\d+/)
})

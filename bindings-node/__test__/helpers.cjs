// SPDX-License-Identifier: Apache-2.0
// Shared test helpers: one emulator per test file, clients pointed at it.
'use strict'
const path = require('node:path')
const mm = require('..')

function setup() {
  const emu = mm.startEmulator()
  const client = (extra = {}) =>
    new mm.MarketplaceMeteringClient({
      region: emu.region,
      endpoint: emu.endpoint,
      credentials: emu.credentials,
      ...extra,
    })
  return { emu, client }
}

/** `workerData` for a worker thread that loads this package and calls `emu`, plus `extra`. */
const workerData = (emu, extra = {}) => ({
  pkg: path.join(__dirname, '..'),
  region: emu.region,
  endpoint: emu.endpoint,
  credentials: emu.credentials,
  productCode: emu.productCode,
  ...extra,
})

/** A timestamp inside the service's window: now, to the second. */
const now = () => new Date(Math.floor(Date.now() / 1000) * 1000)

const record = (i, extra = {}) => ({
  Timestamp: now(),
  CustomerIdentifier: `cust-${i}`,
  Dimension: 'users',
  Quantity: i,
  ...extra,
})

module.exports = { mm, setup, now, record, workerData }

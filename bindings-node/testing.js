// SPDX-License-Identifier: Apache-2.0
// marketplace-metering/testing: the in-process emulator starter.
'use strict'
const { startEmulator } = require('./index.js')
module.exports = { startEmulator }

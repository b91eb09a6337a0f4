// SPDX-License-Identifier: Apache-2.0
// marketplace-metering/testing: the in-process emulator starter and the meter's hand-set clock.
'use strict'
const { startEmulator, ManualClock } = require('./index.js')
module.exports = { startEmulator, ManualClock }

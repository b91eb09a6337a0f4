// SPDX-License-Identifier: Apache-2.0
// marketplace-metering/testing (ESM).
import cjs from './index.js'
export const { startEmulator, ManualClock } = cjs

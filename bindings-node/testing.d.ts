// SPDX-License-Identifier: Apache-2.0
export { startEmulator, RunningEmulator, EmulatorFault, EmulatorLedgerEntry, EmulatorRequest, ManualClock } from './index';

// SPDX-License-Identifier: Apache-2.0
// Smoke test of the installed npm tarballs (scripts/test-all.sh): TypeScript, type-checked
// strictly against the package's own typings, then run.
import assert from 'node:assert/strict'
import {
  MarketplaceMeteringClient,
  MeterUsageCommand,
  MarketplaceMeteringServiceException,
  type BatchMeterUsageCommandInput,
  BatchMeterUsageCommand,
} from 'marketplace-metering'
import { startEmulator, type RunningEmulator } from 'marketplace-metering/testing'

async function main(emu: RunningEmulator): Promise<void> {
  const client = new MarketplaceMeteringClient({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
  const input: BatchMeterUsageCommandInput = {
    ProductCode: emu.productCode,
    UsageRecords: [{ Timestamp: new Date(), CustomerIdentifier: 'cust-3', Dimension: 'requests', Quantity: 7 }],
  }
  const out = await client.send(new BatchMeterUsageCommand(input))
  const status: string | undefined = out.Results?.[0]?.Status
  assert.equal(status, 'Success')
  // A typed service error: this product is not an AMI/container product.
  const err = await client
    .send(new MeterUsageCommand({ ProductCode: 'prod-unknown', Timestamp: new Date(), UsageDimension: 'users' }))
    .then(() => null, (e: unknown) => e)
  assert.ok(err instanceof MarketplaceMeteringServiceException, `a service exception, got ${String(err)}`)
}

const emu = startEmulator()
main(emu)
  .then(() => console.log('node smoke test (TypeScript) passed'))
  .catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => emu.stop())

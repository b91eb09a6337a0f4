// SPDX-License-Identifier: Apache-2.0
// Smoke test of the packed npm tarballs, installed into an empty folder with no cargo or rustc
// on PATH (scripts/test-all.sh): CommonJS. The addon must come from the platform package.
'use strict'

const assert = require('node:assert/strict')
const { existsSync } = require('node:fs')
const path = require('node:path')
const { MarketplaceMeteringClient, BatchMeterUsageCommand } = require('marketplace-metering')
const { startEmulator } = require('marketplace-metering/testing')

for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
  for (const tool of ['cargo', 'rustc']) assert.ok(!existsSync(path.join(dir, tool)), `${tool} is on PATH (${dir})`)
}
// A registry install runs no scripts (npm asks users to approve each package's install scripts).
const { scripts = {} } = require('marketplace-metering/package.json')
for (const hook of ['preinstall', 'install', 'postinstall']) assert.equal(scripts[hook], undefined, `${hook} script`)
const addons = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
assert.equal(addons.length, 1, `one addon loaded, not ${addons}`)
assert.match(addons[0], /node_modules[\\/]marketplace-metering-[a-z0-9-]+[\\/]marketplace-metering\.[a-z0-9-]+\.node$/)

async function main() {
  const emu = startEmulator()
  try {
    const client = new MarketplaceMeteringClient({ region: emu.region, endpoint: emu.endpoint, credentials: emu.credentials })
    const hour = new Date(Math.floor(Date.now() / 3_600_000 - 1) * 3_600_000)
    const out = await client.send(
      new BatchMeterUsageCommand({
        ProductCode: emu.productCode,
        UsageRecords: [{ Timestamp: hour, CustomerIdentifier: 'cust-1', Dimension: 'users', Quantity: 2 }],
      }),
    )
    assert.deepEqual(out.Results.map((r) => r.Status), ['Success'])
    assert.equal(emu.ledger().length, 1)
  } finally {
    emu.stop()
  }
  console.log(`node smoke test (CommonJS) passed: addon ${path.relative(process.cwd(), addons[0])}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})

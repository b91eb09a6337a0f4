// SPDX-License-Identifier: Apache-2.0
// One Node replica of a service: records its share of the usage into the fleet store.
// Usage: node replica.js DATABASE_URL ENDPOINT REPLICA_ID HOUR (credentials in MM_REGION,
// MM_AKID, MM_SECRET, MM_PRODUCT); prints the total it recorded.
'use strict'
const { MarketplaceMeteringClient, UsageMeter, ManualClock } = require('../../bindings-node')

async function main() {
  const [url, endpoint, replicaId, hour] = process.argv.slice(2)
  const env = process.env
  const client = new MarketplaceMeteringClient({
    region: env.MM_REGION,
    endpoint,
    credentials: { accessKeyId: env.MM_AKID, secretAccessKey: env.MM_SECRET },
  })
  const meter = new UsageMeter(client, {
    productCode: env.MM_PRODUCT,
    databaseUrl: url,
    replicaId,
    clock: new ManualClock(Number(hour) + 1200),
    flushIntervalSeconds: null,
  })
  let total = 0
  for (let i = 0; i < 60; i++) {
    await meter.record({ customerIdentifier: `cust-${(i % 4) + 1}`, dimension: 'users', quantity: 1 + (i % 3) })
    total += 1 + (i % 3)
  }
  await meter.close()
  console.log(total)
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})

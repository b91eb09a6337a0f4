'use strict';
// Bench client for @aws-sdk/client-marketplace-metering (AWS SDK for JS v3).
// Contract (bench/peers/README.md): env BENCH_ENDPOINT, BENCH_CALLS,
// BENCH_CONCURRENCY, BENCH_WARMUP; prints one JSON line on stdout.
// The SDK is resolved through NODE_PATH (set by the clients/aws-sdk-js-v3 wrapper).

function main() {
  const endpoint = process.env.BENCH_ENDPOINT;
  if (!endpoint) throw new Error('BENCH_ENDPOINT is not set');
  const calls = parseInt(process.env.BENCH_CALLS || '2000', 10);
  const conc = Math.max(1, parseInt(process.env.BENCH_CONCURRENCY || '1', 10));
  const warmup = parseInt(process.env.BENCH_WARMUP || '50', 10);

  const {
    MarketplaceMeteringClient,
    BatchMeterUsageCommand,
  } = require('@aws-sdk/client-marketplace-metering');

  const client = new MarketplaceMeteringClient({
    region: 'us-east-1',
    endpoint,
    credentials: {
      accessKeyId: 'AKIDEXAMPLEBENCH0000',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    },
    maxAttempts: 1,
  });
  const now = Math.floor(Date.now() / 1000);
  const ts = new Date((now - (now % 3600)) * 1000);
  const records = [];
  for (let i = 0; i < 25; i++) {
    records.push({ Timestamp: ts, CustomerIdentifier: `c-${i}`, Dimension: 'users', Quantity: 1 });
  }

  async function one() {
    const out = await client.send(
      new BatchMeterUsageCommand({ UsageRecords: records, ProductCode: 'prod-123' }),
    );
    if (!out.Results || out.Results.length !== 25) {
      throw new Error(`unexpected result count ${out.Results && out.Results.length}`);
    }
  }

  async function run(n) {
    let next = 0;
    const worker = async () => {
      while (next++ < n) await one();
    };
    const ws = [];
    for (let i = 0; i < conc; i++) ws.push(worker());
    await Promise.all(ws);
  }

  return (async () => {
    if (warmup > 0) await run(warmup);
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await run(calls);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    process.stdout.write(JSON.stringify({
      calls,
      seconds: +secs.toFixed(6),
      calls_per_sec: +(calls / secs).toFixed(2),
      concurrency: conc,
      warmup,
      cpu_seconds: (c.user + c.system) / 1e6,
    }) + '\n');
    client.destroy();
  })();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

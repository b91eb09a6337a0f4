// SPDX-License-Identifier: Apache-2.0
// Typed usage of the public surface; `tsc --noEmit` (npm test) checks it against index.d.ts.
import {
  MarketplaceMeteringClient,
  MarketplaceMetering,
  BatchMeterUsageCommand,
  MeterUsageCommand,
  ResolveCustomerCommand,
  RegisterUsageCommand,
  MarketplaceMeteringServiceException,
  MarketplaceMeteringError,
  ThrottlingException,
  ValidationError,
  UsageRecordResultStatus,
  startEmulator,
  errorCodes,
  type BatchMeterUsageCommandOutput,
  type MeterUsageCommandInput,
  type UsageRecordResult,
  UsageMeter,
  ManualClock,
  type UsageMeterOptions,
  type MeterEvent,
  type FlushSummary,
  type MeterStatus,
  type DeadLetter,
} from "marketplace-metering";
import { startEmulator as fromTesting, ManualClock as TestingClock } from "marketplace-metering/testing";

async function main(): Promise<void> {
  const emu = startEmulator();
  const emu2 = fromTesting();
  emu2.stop();
  emu.pushFault({ kind: "delay", seconds: 0.1 });
  emu.pushFault({ kind: "error", status: 400, code: "X", message: "m" });
  const client = new MarketplaceMeteringClient({
    region: emu.region,
    endpoint: emu.endpoint,
    credentials: { accessKeyId: emu.credentials.accessKeyId, secretAccessKey: emu.credentials.secretAccessKey },
    maxAttempts: 3,
    retryMode: "standard",
    requestTimeout: 5000,
    operationTimeout: 20000,
  });
  const out: BatchMeterUsageCommandOutput = await client.send(
    new BatchMeterUsageCommand({
      ProductCode: emu.productCode,
      UsageRecords: [{ Timestamp: new Date(), CustomerIdentifier: "cust-1", Dimension: "users", Quantity: 3 }],
    }),
  );
  const results: UsageRecordResult[] = out.Results ?? [];
  for (const r of results) {
    if (r.Status === UsageRecordResultStatus.Success) {
      const when: Date | undefined = r.UsageRecord?.Timestamp;
      void when;
    }
  }
  const id: string | undefined = out.$metadata.requestId;
  const attempts: number | undefined = out.$metadata.attempts;
  void id;
  void attempts;

  const input: MeterUsageCommandInput = { ProductCode: "p", Timestamp: new Date(), UsageDimension: "users", UsageQuantity: 1 };
  const m = await client.send(new MeterUsageCommand(input));
  const recordId: string | undefined = m.MeteringRecordId;
  void recordId;
  const rc = await client.send(new ResolveCustomerCommand({ RegistrationToken: "t" }));
  const cust: string | undefined = rc.CustomerIdentifier;
  void cust;
  const ru = await client.send(new RegisterUsageCommand({ ProductCode: "p", PublicKeyVersion: 1 }));
  const rotated: Date | undefined = ru.PublicKeyRotationTimestamp;
  void rotated;

  const agg = new MarketplaceMetering({
    region: "us-east-1",
    credentials: async () => ({ accessKeyId: "a", secretAccessKey: "b", expiration: new Date() }),
  });
  const b2 = await agg.batchMeterUsage({ UsageRecords: [] });
  void b2.UnprocessedRecords;

  try {
    await agg.resolveCustomer({ RegistrationToken: "t" });
  } catch (e) {
    if (e instanceof ThrottlingException) {
      const fault: "client" | "server" = e.$fault;
      const name: "ThrottlingException" = e.name;
      void fault;
      void name;
    } else if (e instanceof ValidationError) {
      const field: string | undefined = e.field;
      void field;
    } else if (e instanceof MarketplaceMeteringServiceException || e instanceof MarketplaceMeteringError) {
      const code: string = e.code;
      void e.$metadata.httpStatusCode;
      void code;
    }
  }
  for (const row of errorCodes()) {
    const k: "local" | "modeled" | "common" = row.kind;
    void k;
  }
  // ---- usage meter ----
  const clock: ManualClock = new TestingClock(new Date());
  clock.set(1_700_000_000);
  clock.advance(3600);
  const now: Date = clock.now();
  void now;
  const options: UsageMeterOptions = {
    path: "metering.db",
    productCode: emu.productCode,
    mode: "batch",
    durability: "group",
    graceSeconds: 300,
    zeroFill: false,
    flushIntervalSeconds: null,
    clock,
  };
  const meter = new UsageMeter(client, options);
  const opened: Promise<UsageMeter> = UsageMeter.open(client, options);
  void opened;
  const fromAgg = new UsageMeter(agg, { mode: "meter_usage", productCode: "p", clock: new ManualClock(0) });
  void fromAgg;
  meter.on("acked", (e) => {
    const recordId: string = e.meteringRecordId;
    const hour: Date = e.hour;
    void recordId;
    void hour;
  });
  meter.on("dead_lettered", (e) => void e.reason);
  meter.on("late_event", (e) => void e.countedInHour.getTime());
  meter.on("window_alarm", (e) => void e.windowEnd.getTime());
  meter.on("event", (e: MeterEvent) => {
    if (e.kind === "expired") void e.quantity;
  });
  await meter.record({ customerIdentifier: "cust-1", dimension: "users", quantity: 3 });
  await meter.record({
    customerAwsAccountId: "111122223333",
    licenseArn: "arn:aws:license-manager::111122223333:license:l-1",
    dimension: "users",
    quantity: 3,
    timestamp: new Date(),
    allocations: [{ AllocatedUsageQuantity: 3, Tags: [{ Key: "k", Value: "v" }] }],
  });
  await meter.registerCustomer({ customerIdentifier: "cust-1", dimensions: ["users"] });
  const removed: number = await meter.unregisterCustomer({ customerIdentifier: "cust-1" });
  void removed;
  const summary: FlushSummary = await meter.flush();
  if (summary.interrupted !== null) void summary.interrupted.code;
  const status: MeterStatus = await meter.status();
  const oldest: Date | null = status.oldestUnsentHour;
  void oldest;
  const dead: DeadLetter[] = await meter.deadLetters();
  const requeued: number = await meter.requeue({ reason: "CustomerNotSubscribed", hour: new Date() });
  await meter.requeue({ hour: "2026-01-01T10:00:00Z" }); // an ISO-8601 string, as the runtime reads it
  void requeued;
  void dead[0]?.reason;
  const closed: FlushSummary = await meter.close();
  void closed.acked;

  agg.destroy();
  client.destroy();
  emu.stop();
}

void main;

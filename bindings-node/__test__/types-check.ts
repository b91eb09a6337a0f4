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
} from "marketplace-metering";
import { startEmulator as fromTesting } from "marketplace-metering/testing";

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
  agg.destroy();
  client.destroy();
  emu.stop();
}

void main;

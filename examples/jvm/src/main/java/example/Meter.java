// SPDX-License-Identifier: Apache-2.0
// Meter 25 records with BatchMeterUsage against the in-process emulator, from Java.
//
// Checks each record's Status, re-sends UnprocessedRecords, prints a summary and exits
// non-zero on failure. Against AWS, build the client with
// MarketplaceMeteringClient.builder().region("us-east-1").build() instead of emulator.client().
package example;

import dev.marketplacemetering.MarketplaceMeteringClient;
import dev.marketplacemetering.MarketplaceMeteringException;
import dev.marketplacemetering.model.BatchMeterUsageRequest;
import dev.marketplacemetering.model.BatchMeterUsageResponse;
import dev.marketplacemetering.model.UsageRecord;
import dev.marketplacemetering.model.UsageRecordResult;
import dev.marketplacemetering.model.UsageRecordResultStatus;
import dev.marketplacemetering.testing.Emulator;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

public final class Meter {
  public static void main(String[] args) {
    System.out.println("marketplace-metering " + MarketplaceMeteringClient.nativeVersion());
    int status;
    try (Emulator emulator = new Emulator();
        MarketplaceMeteringClient client = emulator.client()) {
      emulator.pushFault("{\"kind\":\"partial\",\"count\":3}"); // the service may leave records unprocessed
      Instant now = Instant.now();
      List<UsageRecord> pending = new ArrayList<>();
      for (int i = 1; i <= 25; i++) {
        pending.add(
            UsageRecord.builder()
                .timestamp(now)
                .customerIdentifier("cust-" + i)
                .dimension("users")
                .quantity(i)
                .build());
      }
      Map<String, String> statuses = new TreeMap<>();
      for (int attempt = 1; attempt <= 5 && !pending.isEmpty(); attempt++) {
        BatchMeterUsageResponse out;
        try {
          out =
              client.batchMeterUsageBlocking(
                  BatchMeterUsageRequest.builder()
                      .productCode(Emulator.PRODUCT_CODE)
                      .usageRecords(pending)
                      .build());
        } catch (MarketplaceMeteringException e) {
          System.err.printf(
              "BatchMeterUsage failed: %s: %s (request id %s)%n", e.getCode(), e.getMessage(), e.getRequestId());
          System.exit(1);
          return;
        }
        for (UsageRecordResult r : out.getResults()) {
          UsageRecordResultStatus s = r.getStatus();
          statuses.put(r.getUsageRecord().getCustomerIdentifier(), s == null ? "?" : s.getValue());
        }
        pending = out.getUnprocessedRecords();
        if (!pending.isEmpty()) {
          System.out.printf("attempt %d: %d unprocessed record(s), re-sending%n", attempt, pending.size());
        }
      }
      long ok = statuses.values().stream().filter("Success"::equals).count();
      System.out.printf(
          "java: metered %d/25 records, %d billed, %d unprocessed%n", ok, emulator.ledger().size(), pending.size());
      statuses.forEach((c, s) -> {
        if (!s.equals("Success")) System.err.printf("  %s: %s%n", c, s);
      });
      status = ok == 25 && pending.isEmpty() ? 0 : 1;
    }
    System.exit(status);
  }
}

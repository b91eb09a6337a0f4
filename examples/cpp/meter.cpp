// SPDX-License-Identifier: Apache-2.0
// Example: resolve a customer, meter 25 records, check every status, re-send unprocessed records.
// Endpoint: $METERING_ENDPOINT_URL, else spawns $METERING_EMULATOR_BIN. Exits non-zero on failure.
#include <chrono>
#include <cstdio>
#include <string>

#include "emulator.h"
#include "marketplace_metering.hpp"

namespace mm = marketplace_metering;

int main() {
  example_endpoint ep;
  if (example_endpoint_open(&ep) != 0) return 1;
  int rc = 1;
  try {
    mm::Client client(mm::Config()
                          .region("us-east-1")
                          .endpoint_url(ep.url)
                          .credentials("EMULATORKEYID0000001", "emulator-secret-access-key"));
    auto who = client.resolve_customer("reg-token-valid");
    std::printf("resolved customer %s for product %s\n", who.customer_identifier().c_str(),
                who.product_code().c_str());

    auto ts = std::chrono::system_clock::now() - std::chrono::minutes(1);
    mm::BatchMeterUsageInput input{who.product_code(), {}};
    for (int i = 1; i <= 25; i++) {
      std::string cust = i == 1 ? who.customer_identifier() : "cust-" + std::to_string(i);
      input.usage_records.push_back(mm::UsageRecord{ts, cust, "", "", "gb", i, {}});
    }
    size_t metered = 0, rejected = 0, left = 0;
    auto out = client.batch_meter_usage(input);
    for (int round = 1;; round++) {
      for (const auto &r : out.results()) {
        if (r.status == mm::UsageRecordStatus::Success) {
          metered++;
        } else {
          rejected++;
          std::fprintf(stderr, "record for %s: %s\n", r.usage_record.customer_identifier.c_str(),
                       r.status_str.c_str());
        }
      }
      left = out.unprocessed_count();
      std::printf("round %d: %zu unprocessed (request id %s)\n", round, left, out.metadata().request_id.c_str());
      if (left == 0 || round == 3) break;
      out = client.resend_unprocessed(out);
    }
    std::printf("summary: %zu metered, %zu rejected, %zu still unprocessed\n", metered, rejected, left);
    rc = (metered == 25 && rejected == 0 && left == 0) ? 0 : 1;
  } catch (const mm::Error &e) {
    std::fprintf(stderr, "failed: %s (HTTP %u, %u attempt(s))\n", e.what(), (unsigned)e.http_status(),
                 (unsigned)e.attempts());
  }
  mm::shutdown();
  example_endpoint_close(&ep);
  return rc;
}

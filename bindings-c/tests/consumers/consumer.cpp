// SPDX-License-Identifier: Apache-2.0
// An installed-library consumer in C++ (the .hpp): meters one record against argv[1].
#include <chrono>
#include <cstdio>

#include <marketplace_metering.hpp>

namespace mm = marketplace_metering;

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int rc = 1;
  try {
    mm::Client client(mm::Config().region("us-east-1").endpoint_url(argv[1])
                          .credentials("EMULATORKEYID0000001", "emulator-secret-access-key"));
    auto ts = std::chrono::system_clock::now() - std::chrono::minutes(1);
    auto out = client.batch_meter_usage({"prod-1234", {mm::UsageRecord{ts, "cust-3", "", "", "users", 1, {}}}});
    auto results = out.results();
    if (results.size() == 1 && results[0].status == mm::UsageRecordStatus::Success) {
      std::printf("metered (C++ %s): %s\n", mm::version().c_str(), results[0].metering_record_id.c_str());
      rc = 0;
    }
  } catch (const mm::Error &e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  mm::shutdown();
  return rc;
}

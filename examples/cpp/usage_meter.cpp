// SPDX-License-Identifier: Apache-2.0
// Example: the usage meter from C++. record() every billable event from several threads; a
// hand-set clock ends the hour now; one flush bills each customer-hour once, and the emulator's
// ledger shows exactly what was recorded.
// Endpoint: $METERING_ENDPOINT_URL, else spawns $METERING_EMULATOR_BIN. Exits non-zero on failure.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "emulator.h"
#include "marketplace_metering.hpp"

namespace mm = marketplace_metering;
using namespace std::chrono;

// GET the emulator's ledger (its control API).
static std::string get_ledger(const std::string &url) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(url.substr(url.rfind(':') + 1).c_str())));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  const std::string req = "GET /_emulator/ledger HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(r));
  }
  if (fd >= 0) close(fd);
  return out;
}

// (quantity billed, ledger entries) for a customer, dimension and hour.
static std::pair<long long, int> billed(const std::string &ledger, const std::string &customer,
                                        const std::string &dimension, long long hour) {
  long long sum = 0;
  int entries = 0;
  for (size_t p = ledger.find("{\"operation\""); p != std::string::npos;) {
    size_t next = ledger.find("{\"operation\"", p + 1);
    std::string e = ledger.substr(p, next == std::string::npos ? std::string::npos : next - p);
    size_t q = e.find("\"quantity\":");
    if (e.find("\"customer_identifier\":\"" + customer + "\"") != std::string::npos &&
        e.find("\"dimension\":\"" + dimension + "\"") != std::string::npos &&
        e.find("\"hour\":" + std::to_string(hour) + ",") != std::string::npos && q != std::string::npos) {
      sum += std::atoll(e.c_str() + q + 11);
      entries++;
    }
    p = next;
  }
  return {sum, entries};
}

int main() {
  example_endpoint ep;
  if (example_endpoint_open(&ep) != 0) return 1;
  int rc = 1;
  try {
    mm::Client client(mm::Config()
                          .region("us-east-1")
                          .endpoint_url(ep.url)
                          .credentials("EMULATORKEYID0000001", "emulator-secret-access-key"));
    // Two hours ago, inside the service's 6-hour window; in production leave the clock out.
    const auto hour = time_point_cast<hours>(system_clock::now()) - hours(2);
    mm::ManualClock clock(hour + minutes(1));

    std::mutex mu;
    std::map<std::string, int> seen;  // event kind -> count
    mm::MeterOptions opts;
    opts.product_code = "prod-1234";
    opts.durability = mm::Durability::Group;  // concurrent record() calls share one commit
    opts.grace = minutes(5);
    opts.clock = &clock;
    opts.on_event = [&](const mm::MeterEvent &ev) {  // any thread: keep it thread-safe
      std::lock_guard<std::mutex> g(mu);
      seen[ev.kind_str]++;
      if (ev.kind == mm::MeterEventKind::DeadLettered)
        std::printf("  dead letter: %s %s %lld (%s)\n", ev.customer.customer_identifier.c_str(), ev.dimension.c_str(),
                    static_cast<long long>(ev.quantity), ev.reason.c_str());
    };
    char dir[] = "/tmp/mm-usage-meter-cpp.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const std::string path = std::string(dir) + "/metering.db";
    opts.path = path;  // SQLite (WAL): survives kill -9; no path: in memory, for tests
    mm::UsageMeter meter(client, opts);

    // 1. Every billable event, from 4 threads at once.
    const std::vector<std::string> customers = {"cust-3", "cust-4", "cust-5", "cust-6"};
    std::vector<std::thread> threads;
    std::atomic<long long> recorded{0};
    for (const auto &c : customers) {
      threads.emplace_back([&, c] {
        for (int i = 0; i < 25; i++) {
          meter.record(mm::Customer::identifier(c), "gb", 2);
          recorded += 2;
        }
      });
    }
    for (auto &t : threads) t.join();
    meter.record(mm::Customer::identifier("cust-unsubscribed"), "gb", 1);
    try {
      meter.record(mm::Customer::identifier("cust-3"), "gb", 1, hour, {mm::UsageAllocation{2, {{"team", "red"}}}});
    } catch (const mm::Error &e) {
      std::printf("allocations that do not sum to the quantity: %s, field %s\n", e.code_str().c_str(),
                  e.field().c_str());
    }

    // 2. The hour ends, grace passes, one flush.
    clock.set(hour + hours(1) + minutes(5) + seconds(1));
    mm::FlushSummary sum = meter.flush();
    std::printf("flush: %llu sealed, %llu sent in %llu call(s), %llu acked, %llu dead-lettered\n",
                static_cast<unsigned long long>(sum.sealed), static_cast<unsigned long long>(sum.sent),
                static_cast<unsigned long long>(sum.calls), static_cast<unsigned long long>(sum.acked),
                static_cast<unsigned long long>(sum.dead_lettered));
    mm::MeterStatus st = meter.status();
    std::printf("status: %llu acked, %llu dead-lettered, %llu pending\n", static_cast<unsigned long long>(st.acked),
                static_cast<unsigned long long>(st.dead_lettered), static_cast<unsigned long long>(st.pending));
    meter.close();

    // 3. The ledger: exactly what was recorded, once per customer-hour.
    const std::string ledger = get_ledger(ep.url);
    const long long h = duration_cast<seconds>(hour.time_since_epoch()).count();
    bool ok = sum.acked == 4 && sum.dead_lettered == 1 && recorded == 200;
    for (const auto &c : customers) {
      auto [q, n] = billed(ledger, c, "gb", h);
      std::printf("ledger: %s recorded 50, billed %lld in %d entr%s\n", c.c_str(), q, n, n == 1 ? "y" : "ies");
      ok = ok && q == 50 && n == 1;
    }
    ok = ok && billed(ledger, "cust-unsubscribed", "gb", h).second == 0;
    {
      std::lock_guard<std::mutex> g(mu);
      ok = ok && seen["acked"] == 4 && seen["dead_lettered"] == 1;
    }
    std::printf("%s\n", ok ? "usage meter: every customer-hour billed exactly once" : "usage meter: MISMATCH");
    rc = ok ? 0 : 1;
    for (const char *suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    rmdir(dir);
  } catch (const mm::Error &e) {
    std::fprintf(stderr, "%s (field %s)\n", e.what(), e.field().c_str());
  }
  mm::shutdown();
  example_endpoint_close(&ep);
  return rc;
}

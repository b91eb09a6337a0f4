// SPDX-License-Identifier: Apache-2.0
// The C++ UsageMeter against the emulator process: record + flush bills what was recorded,
// dead letters reach the std::function callback, bad input throws an Error naming the field.
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "marketplace_metering.hpp"
#include "support/mm_test.h"

namespace mm = marketplace_metering;
using std::chrono::hours;
using std::chrono::seconds;
using std::chrono::system_clock;

int main() {
  mm_test_emulator e;
  if (mm_test_emulator_start(&e) != 0) return 2;
  {
    mm::Client client(mm::Config()
                          .region(MM_TEST_REGION)
                          .endpoint_url(e.endpoint)
                          .credentials(MM_TEST_ACCESS_KEY, MM_TEST_SECRET_KEY)
                          .max_attempts(3));
    // An hour inside the service's window, by a clock we move by hand.
    auto hour = system_clock::time_point(std::chrono::duration_cast<hours>(system_clock::now().time_since_epoch())) -
                hours(2);
    mm::ManualClock clock(hour + seconds(10));
    CHECK(clock.now() == hour + seconds(10));
    {
      // Past what system_clock can hold (2262 on libstdc++): saturated, not a signed overflow
      // (UBSan stops the test; found by a review).
      mm::ManualClock far(hour);
      far.advance(seconds(int64_t(1) << 40));
      CHECK(far.now() == system_clock::time_point::max());
      far.advance(-seconds(int64_t(1) << 41));
      CHECK(far.now() == system_clock::time_point::min());
    }

    std::mutex mu;
    std::vector<mm::MeterEvent> events;
    std::atomic<int> off_main{0};
    const auto main_id = std::this_thread::get_id();
    mm::MeterOptions opts;
    opts.product_code = MM_TEST_PRODUCT;
    opts.grace = seconds(60);
    opts.clock = &clock;
    opts.on_event = [&](const mm::MeterEvent &ev) {
      if (std::this_thread::get_id() != main_id) off_main++;
      std::lock_guard<std::mutex> g(mu);
      events.push_back(ev);
      if (ev.kind == mm::MeterEventKind::LateEvent) throw std::runtime_error("caught by the wrapper");
    };
    {
      mm::UsageMeter meter(client, opts);
      meter.record(mm::Customer::identifier("cust-11"), "users", 4);
      meter.record(mm::Customer::identifier("cust-11"), "users", 6, hour + seconds(120));
      meter.record(mm::Customer::identifier("cust-12"), "gb", 5, std::nullopt,
                   {mm::UsageAllocation{2, {{"team", "red"}}}, mm::UsageAllocation{3, {}}});
      meter.record(mm::Customer::identifier("cust-unsubscribed"), "users", 1);
      meter.record(mm::Customer::aws_account("111122223333",
                                             "arn:aws:license-manager::111122223333:license:"
                                             "l-0123456789abcdef0123456789abcdef"),
                   "requests", 9);
      auto st = meter.status();
      CHECK(st.pending == 4 && st.sealed == 0);
      CHECK(st.oldest_unsent_hour == hour);
      // Zero-fill registrations: an empty list removes none (never "every dimension").
      meter.register_customer(mm::Customer::identifier("cust-11"), {"users", "gb"});
      CHECK(meter.unregister_customer(mm::Customer::identifier("cust-11"), std::vector<std::string>{}) == 0);
      CHECK(meter.unregister_customer(mm::Customer::identifier("cust-11"), std::vector<std::string>{"gb"}) == 1);
      CHECK(meter.unregister_customer(mm::Customer::identifier("cust-11")) == 1);

      // Bad input: an Error that names the field; nothing recorded.
      bool thrown = false;
      try {
        meter.record(mm::Customer::identifier("cust-11"), "users", -1);
      } catch (const mm::Error &err) {
        thrown = err.code() == MM_STATUS_INVALID_INPUT && err.field() == "quantity" && !err.message().empty();
      }
      CHECK(thrown);
      thrown = false;
      try {
        meter.record(mm::Customer::aws_account("111122223333", ""), "users", 1);
      } catch (const mm::Error &err) {
        thrown = err.code() == MM_STATUS_INVALID_INPUT && err.field() == "license_arn";
      }
      CHECK(thrown);
      // A NUL inside a std::string would record the text before it (another customer).
      for (int which = 0; which < 2; which++) {
        thrown = false;
        try {
          if (which == 0) meter.record(mm::Customer::identifier(std::string("cust-11\0x", 9)), "users", 1);
          else meter.record(mm::Customer::identifier("cust-11"), std::string("users\0gb", 8), 1);
        } catch (const mm::Error &err) {
          thrown = err.code() == MM_STATUS_INVALID_INPUT &&
                   err.field() == (which == 0 ? "customer_identifier" : "dimension");
        }
        CHECK(thrown);
      }
      CHECK(meter.status().pending == 4);

      clock.advance(hours(1) + seconds(60));
      auto sum = meter.flush();
      CHECK(sum.sealed == 4 && sum.sent == 4 && sum.calls == 1);
      CHECK(sum.acked == 3 && sum.dead_lettered == 1 && !sum.interrupted);
      {
        // A flush that went well: when it ended, and no error (a dead letter is no failure).
        auto st = meter.status();
        CHECK(st.last_flush_at.has_value() && !st.last_flush_error.has_value());
      }
      auto dl = meter.dead_letters();
      CHECK(dl.size() == 1);
      CHECK(dl.at(0).customer.customer_identifier == "cust-unsubscribed");
      CHECK(dl.at(0).reason == "CustomerNotSubscribed");
      CHECK(dl.at(0).hour == hour && dl.at(0).quantity == 1);

      // requeue: by reason, customer and hour; still unsubscribed, it is dead-lettered again.
      CHECK(meter.requeue({std::string("DuplicateRecord"), std::nullopt, std::nullopt}) == 0);
      CHECK(meter.requeue({std::string("CustomerNotSubscribed"), mm::Customer::identifier("cust-unsubscribed"),
                           hour + seconds(59)}) == 1);
      CHECK(meter.status().sealed == 1 && meter.dead_letters().empty());
      sum = meter.flush();
      CHECK(sum.sent == 1 && sum.dead_lettered == 1);

      // A late event: counted in the current hour, reported (the callback's throw is contained).
      meter.record(mm::Customer::identifier("cust-13"), "users", 2, hour);
      auto closed = meter.close();
      CHECK(closed.sent == 0);
      thrown = false;
      try {
        meter.record(mm::Customer::identifier("cust-11"), "users", 1);
      } catch (const mm::Error &err) {
        thrown = err.code() == MM_STATUS_INVALID_STATE;
      }
      CHECK(thrown);
    }
    {
      std::lock_guard<std::mutex> g(mu);
      int acked = 0, dead = 0, late = 0;
      for (const auto &ev : events) {
        if (ev.kind == mm::MeterEventKind::Acked) {
          acked++;
          CHECK(!ev.metering_record_id.empty() && ev.kind_str == "acked");
        } else if (ev.kind == mm::MeterEventKind::DeadLettered) {
          dead++;
          CHECK(ev.customer.customer_identifier == "cust-unsubscribed");
          CHECK(ev.reason == "CustomerNotSubscribed");
        } else if (ev.kind == mm::MeterEventKind::LateEvent) {
          late++;
          CHECK(ev.counted_in_hour == hour + hours(1));
          CHECK(ev.hour == hour && ev.quantity == 2);
        }
      }
      CHECK(acked == 3 && dead == 2 && late == 1);
      CHECK(off_main == 0);  // flush() and record() ran their callbacks on this thread
    }

    // The ledger: exactly what was recorded, once.
    static char ledger[1 << 20];
    CHECK(mm_test_control(&e, "GET", "/_emulator/ledger", nullptr, ledger, sizeof ledger) == 200);
    std::string l(ledger);
    auto count = [&](const std::string &s) {
      size_t n = 0;
      for (size_t p = l.find(s); p != std::string::npos; p = l.find(s, p + 1)) n++;
      return n;
    };
    CHECK(count("\"customer_identifier\":\"cust-11\"") == 1);
    CHECK(count("\"customer_identifier\":\"cust-12\"") == 1);
    CHECK(count("\"customer_aws_account_id\":\"111122223333\"") == 1);
    CHECK(count("\"customer_identifier\":\"cust-unsubscribed\"") == 0);
    CHECK(count("\"customer_identifier\":\"cust-13\"") == 0);  // its hour is not sealed yet
    CHECK(count("\"quantity\":10,") == 1);                       // cust-11: 4 + 6
    CHECK(count("\"AllocatedUsageQuantity\":2") == 1);

    // Moving a meter keeps its callback; assigning over one frees the old meter first.
    {
      std::atomic<int> a{0}, b{0};
      mm::MeterOptions oa;
      oa.product_code = MM_TEST_PRODUCT;
      oa.clock = &clock;
      oa.grace = seconds(60);
      oa.on_event = [&](const mm::MeterEvent &) { a++; };
      mm::MeterOptions ob = oa;
      ob.on_event = [&](const mm::MeterEvent &) { b++; };
      mm::UsageMeter ma(client, oa);
      mm::UsageMeter moved(std::move(ma));
      mm::UsageMeter mb(client, ob);
      mb = std::move(moved);
      mb.record(mm::Customer::identifier("cust-14"), "users", 1, hour);  // late: reported
      CHECK(a == 1 && b == 0);
    }

    // A callback calling flush()/close() of its own meter: an Error, not a deadlock.
    {
      std::atomic<const mm::UsageMeter *> self{nullptr};
      std::atomic<int> refused{0};
      mm::MeterOptions o;
      o.product_code = MM_TEST_PRODUCT;
      o.clock = &clock;
      o.grace = seconds(60);
      o.on_event = [&](const mm::MeterEvent &ev) {
        if (ev.kind != mm::MeterEventKind::LateEvent || !self) return;
        try {
          self.load()->flush();
        } catch (const mm::Error &err) {
          if (err.code() == MM_STATUS_INVALID_STATE) refused++;
        }
        try {
          self.load()->close();
        } catch (const mm::Error &err) {
          if (err.code() == MM_STATUS_INVALID_STATE) refused++;
        }
      };
      mm::UsageMeter m(client, o);
      self = &m;
      m.record(mm::Customer::identifier("cust-15"), "users", 1, hour);  // late: reported
      CHECK(refused == 2);
      m.record(mm::Customer::identifier("cust-15"), "users", 1);  // still open
    }

    // A callback destroying its own meter (reset() of the pointer holding it), here from the
    // background flusher's thread: the meter and the callback are freed once the callback has
    // returned (found by a review: the callback was destroyed under itself, a use after free
    // that ASan reports on the capture read after the reset; LSan and valgrind report a leak
    // if they are never freed).
    {
      std::unique_ptr<mm::UsageMeter> owner;
      std::atomic<int> after{0};
      mm::MeterOptions o;
      o.product_code = MM_TEST_PRODUCT;
      o.clock = &clock;
      o.grace = seconds(60);
      o.flush_interval = seconds(1);
      o.on_event = [&owner, &after](const mm::MeterEvent &ev) {
        if (ev.kind != mm::MeterEventKind::Acked || after > 0) return;
        owner.reset();
        after++;  // reads this closure's capture after the reset
      };
      owner = std::make_unique<mm::UsageMeter>(client, o);
      owner->record(mm::Customer::identifier("cust-16"), "users", 1);
      clock.advance(hours(1) + seconds(120));
      for (int i = 0; i < 100 && after == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      CHECK(after == 1 && !owner);
    }

    // The same from the thread of a blocking call on that meter (its flush delivering the
    // Acked event): the flush goes on after the callback returns, so the meter must outlive
    // the callback until the flush returns (found by a review: the deferred free dropped the
    // core meter under the running flush, a use after free: the ASan run reports it; a plain
    // build may run on through the freed memory).
    {
      std::unique_ptr<mm::UsageMeter> owner;
      int acked = 0;
      mm::MeterOptions o;
      o.product_code = MM_TEST_PRODUCT;
      o.clock = &clock;
      o.grace = seconds(60);
      o.on_event = [&owner, &acked](const mm::MeterEvent &ev) {
        if (ev.kind != mm::MeterEventKind::Acked || acked++ > 0) return;
        owner.reset();
        // Work after the reset: the deferred free runs meanwhile.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      };
      owner = std::make_unique<mm::UsageMeter>(client, o);
      owner->record(mm::Customer::identifier("cust-17"), "users", 1);
      owner->record(mm::Customer::identifier("cust-18"), "users", 1);
      clock.advance(hours(1) + seconds(120));
      mm::UsageMeter *raw = owner.get();
      mm::FlushSummary s = raw->flush();  // `*raw` is destroyed during this call
      CHECK(s.acked == 2 && !owner);
    }

    // A configuration the core refuses: the Error carries the status.
    bool thrown = false;
    try {
      mm::MeterOptions bad;
      bad.mode = mm::MeterMode::MeterUsage;
      mm::UsageMeter m(client, bad);
    } catch (const mm::Error &err) {
      thrown = err.code() == MM_STATUS_INVALID_CONFIG;
    }
    CHECK(thrown);

    // A negative duration would reach the C API's unsigned setters as an enormous one (a grace
    // that never seals, no flusher, a claim that never expires): refused, naming the option.
    // So is a grace that leaves no time to send before the service's window closes.
    // And a background flusher too slow to raise a window alarm in time.
    for (int which = 0; which < 5; which++) {
      thrown = false;
      const char *field = which == 0 ? "grace" : which == 1 || which == 4 ? "flush_interval" : which == 2 ? "fleet_lease" : "grace";
      try {
        mm::MeterOptions neg;
        neg.product_code = MM_TEST_PRODUCT;
        if (which == 0) neg.grace = seconds(-1);
        if (which == 1) neg.flush_interval = seconds(-1);
        if (which == 2) {
          neg.database_url = "postgresql://meter@127.0.0.1:1/db";
          neg.fleet_lease = std::chrono::milliseconds(-1);
        }
        if (which == 3) neg.grace = hours(5);
        if (which == 4) neg.flush_interval = hours(1);
        mm::UsageMeter m(client, neg);
      } catch (const mm::Error &err) {
        thrown = err.code() == MM_STATUS_INVALID_INPUT && err.field() == field;
      }
      CHECK(thrown);
    }

    // The fleet store's options reach the C config: both a path and a database URL are refused
    // naming `database_url`, and the URL is not in the message.
    thrown = false;
    try {
      mm::MeterOptions both;
      both.product_code = MM_TEST_PRODUCT;
      both.path = "/tmp/never-created.db";
      both.database_url = "postgresql://meter:s3cret-pw@127.0.0.1:1/db";
      both.replica_id = "replica-a";
      mm::UsageMeter m(client, both);
    } catch (const mm::Error &err) {
      thrown = err.code() == MM_STATUS_INVALID_INPUT && err.field() == "database_url" &&
               std::string(err.what()).find("s3cret-pw") == std::string::npos;
    }
    CHECK(thrown);
  }

  // The log callback: one AttemptLog per attempt, with no secret in it. The Config is a
  // temporary, gone before the first call: the client keeps the callback alive (ASan and
  // valgrind report a use after free if it does not). Calls a UsageMeter makes are not logged.
  {
    std::mutex mu;
    std::vector<mm::AttemptLog> logs;
    mm::Client client(mm::Config()
                          .region(MM_TEST_REGION)
                          .endpoint_url(e.endpoint)
                          .credentials(MM_TEST_ACCESS_KEY, MM_TEST_SECRET_KEY)
                          .max_attempts(2)
                          .log_callback([&](const mm::AttemptLog &l) {
                            std::lock_guard<std::mutex> g(mu);
                            logs.push_back(l);
                            throw std::runtime_error("caught by the wrapper");
                          }));
    CHECK(mm_test_control(&e, "POST", "/_emulator/faults", "{\"kind\":\"throttle\"}", nullptr, 0) == 200);
    CHECK(client.resolve_customer("reg-token-valid").customer_identifier() == "cust-1");
    std::lock_guard<std::mutex> g(mu);
    CHECK(logs.size() == 2);
    if (logs.size() == 2) {
      CHECK(logs[0].operation == "ResolveCustomer" && logs[0].attempt == 1);
      CHECK(logs[0].outcome == "ThrottlingException" && logs[0].retry_reason == "throttling");
      CHECK(logs[1].attempt == 2 && logs[1].outcome == "ok" && logs[1].retry_reason.empty());
      CHECK(logs[1].http_status == 200 && !logs[1].request_id.empty() && logs[1].latency_ms >= 0);
    }
  }
  {
    // An empty function removes the callback.
    mm::Config c;
    c.log_callback([](const mm::AttemptLog &) {}).log_callback(nullptr);
  }
  mm::shutdown();
  mm_test_emulator_stop(&e);
  std::printf("test_meter_cpp: %d failure(s)\n", mm_test_failures);
  return mm_test_failures ? 1 : 0;
}

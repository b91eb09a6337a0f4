// SPDX-License-Identifier: Apache-2.0
// marketplace_metering.hpp: header-only C++17 wrapper of the C API (RAII, exceptions, std types).

/**
 * @file marketplace_metering.hpp
 *
 * The C++ face of marketplace-metering: RAII handles, exceptions carrying the same fields as
 * `mm_error`, `std::string`, `std::vector` and `std::chrono`. Header-only; link the C library
 * (`marketplace_metering::shared` / `::static`, or pkg-config `marketplace_metering`).
 *
 * @code
 * namespace mm = marketplace_metering;
 * mm::Client client(mm::Config().region("us-east-1"));
 * auto out = client.batch_meter_usage({"prod-1234",
 *     {mm::UsageRecord{std::chrono::system_clock::now(), "cust-1", "", "", "users", 3, {}}}});
 * for (const auto &r : out.results()) if (r.status != mm::UsageRecordStatus::Success) ...
 * @endcode
 *
 * Thread-safety is the C library's: a `Client` may be used from many threads at once; calls
 * block. Every failure throws `marketplace_metering::Error`.
 */
#ifndef MARKETPLACE_METERING_HPP
#define MARKETPLACE_METERING_HPP

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "marketplace_metering.h"

namespace marketplace_metering {

/// The status codes: the C enum (`MM_STATUS_THROTTLING_EXCEPTION`, …).
using Status = mm_status;

/// Every failure: the code (enum and string), message, request id, HTTP status and attempts.
class Error : public std::runtime_error {
 public:
  Error(Status code, std::string code_str, std::string message, std::string request_id = {},
        std::string field = {}, uint16_t http_status = 0, uint32_t attempts = 0,
        bool retryable = false)
      : std::runtime_error(code_str + ": " + message +
                           (request_id.empty() ? "" : " (request id: " + request_id + ")")),
        code_(code),
        code_str_(std::move(code_str)),
        message_(std::move(message)),
        request_id_(std::move(request_id)),
        field_(std::move(field)),
        http_status_(http_status),
        attempts_(attempts),
        retryable_(retryable) {}

  /// The status (`MM_STATUS_THROTTLING_EXCEPTION`, `MM_STATUS_UNHANDLED`, …).
  Status code() const noexcept { return code_; }
  /// The code string: the service's (`"ThrottlingException"`) or a local one (`"InvalidInput"`).
  const std::string &code_str() const noexcept { return code_str_; }
  /// The message.
  const std::string &message() const noexcept { return message_; }
  /// The request id; empty when no response was received.
  const std::string &request_id() const noexcept { return request_id_; }
  /// For `MM_STATUS_INVALID_INPUT`, the offending field path; empty otherwise.
  const std::string &field() const noexcept { return field_; }
  /// The HTTP status of the last response; 0 when none.
  uint16_t http_status() const noexcept { return http_status_; }
  /// Attempts made, the first included.
  uint32_t attempts() const noexcept { return attempts_; }
  /// Whether the same call could succeed later.
  bool retryable() const noexcept { return retryable_; }

 private:
  Status code_;
  std::string code_str_, message_, request_id_, field_;
  uint16_t http_status_;
  uint32_t attempts_;
  bool retryable_;
};

namespace detail {

inline std::string str(const char *s) { return s ? std::string(s) : std::string(); }
/// `s` for the C API, which reads a string up to its first NUL: a `std::string` holding one
/// would reach the service cut short (another customer, another dimension), so it is refused,
/// naming `what` and the byte, never the value (it may be a secret).
inline const char *cstr(const std::string &s, const char *what) {
  auto nul = s.find('\0');
  if (nul != std::string::npos) {
    throw Error(MM_STATUS_INVALID_INPUT, str(mm_status_str(MM_STATUS_INVALID_INPUT)),
                std::string(what) + ": contains a NUL character at byte " + std::to_string(nul), {}, what);
  }
  return s.c_str();
}
/// A duration's count for the C API, which takes it unsigned: a negative one (a computed
/// duration that went below zero) would arrive as an enormous value (a grace that never
/// seals, a flusher that never runs, a claim that never expires), so it is refused, naming
/// `what`.
template <class Rep, class Period>
inline uint64_t count(std::chrono::duration<Rep, Period> d, const char *what) {
  if (d.count() < 0) {
    throw Error(MM_STATUS_INVALID_INPUT, str(mm_status_str(MM_STATUS_INVALID_INPUT)),
                std::string(what) + ": must not be negative, got " + std::to_string(d.count()), {}, what);
  }
  return static_cast<uint64_t>(d.count());
}
/// `s` for the C API, or NULL when it is empty (absent).
inline const char *opt(const std::string &s, const char *what) { return s.empty() ? nullptr : cstr(s, what); }

/// Throws the error behind a failed call (taking ownership of `err`).
[[noreturn]] inline void raise(Status st, mm_error *err, const char *what) {
  if (err == nullptr) {
    throw Error(st, str(mm_status_str(st)), std::string(what) + ": " + str(mm_status_str(st)));
  }
  Error e(mm_error_code(err), str(mm_error_code_str(err)), str(mm_error_message(err)),
          str(mm_error_request_id(err)), str(mm_error_field(err)), mm_error_http_status(err),
          mm_error_attempts(err), mm_error_is_retryable(err));
  mm_error_free(err);
  throw e;
}

inline void check(Status st, const char *what, mm_error *err = nullptr) {
  if (st != MM_STATUS_OK) raise(st, err, what);
}

template <class T, void (*Free)(T *)>
struct Deleter {
  void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

template <class T>
T *not_null(T *p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

inline int64_t millis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
/// Seconds since 1970 as a `system_clock` time point, saturating: the clock counts in
/// nanoseconds on libstdc++, whose range ends in 2262, and a clock set by hand or a dead
/// letter's time can be later.
inline std::chrono::system_clock::time_point from_secs(int64_t s) {
  using tp = std::chrono::system_clock::time_point;
  constexpr int64_t limit = std::chrono::duration_cast<std::chrono::seconds>(tp::duration::max()).count();
  if (s > limit) return tp::max();
  if (s < -limit) return tp::min();
  return tp(std::chrono::seconds(s));
}

}  // namespace detail

/// The library version.
inline std::string version() { return mm_version(); }
/// Joins the shared runtime's threads (call once at exit; see `mm_shutdown`).
inline void shutdown() noexcept { mm_shutdown(); }

/// Retry modes.
enum class RetryMode : uint32_t { Standard = MM_RETRY_MODE_STANDARD, Adaptive = MM_RETRY_MODE_ADAPTIVE, Legacy = MM_RETRY_MODE_LEGACY };

/// One attempt of a call, as `Config::log_callback` receives it. Nothing secret is in it.
struct AttemptLog {
  std::string operation;     ///< "BatchMeterUsage", …
  uint32_t attempt = 0;      ///< 1 for the first
  uint16_t http_status = 0;  ///< 0 when no response arrived
  std::string request_id;    ///< empty when none
  double latency_ms = 0;
  std::string outcome;       ///< "ok" or the error code
  std::string retry_reason;  ///< "throttling", "transient", "timeout", "clock skew"; empty when not retried
};

/// The function a `Config::log_callback` holds; shared by the config and its clients, so it
/// lives as long as the last of them.
using LogCallback = std::function<void(const AttemptLog &)>;

namespace detail {
inline void log_trampoline(void *user_data, const char *operation, uint32_t attempt, uint16_t http_status,
                           const char *request_id, double latency_ms, const char *outcome,
                           const char *retry_reason) noexcept {
  try {
    const auto &f = *static_cast<const LogCallback *>(user_data);
    f(AttemptLog{str(operation), attempt, http_status, str(request_id), latency_ms, str(outcome), str(retry_reason)});
  } catch (...) {
    // Nothing may unwind into the library.
  }
}
}  // namespace detail

/// Client configuration (a builder; setters return `*this`). Not thread-safe to modify.
class Config {
 public:
  Config() : h_(detail::not_null(mm_config_new())) {}
  /// The AWS Region.
  Config &region(const std::string &v) { return set(mm_config_set_region(h_.get(), detail::cstr(v, "region")), "region"); }
  /// A custom endpoint URL.
  Config &endpoint_url(const std::string &v) {
    return set(mm_config_set_endpoint_url(h_.get(), detail::cstr(v, "endpoint_url")), "endpoint_url");
  }
  /// Static credentials (empty session token: none). Without them the default chain is used.
  Config &credentials(const std::string &access_key_id, const std::string &secret_access_key,
                      const std::string &session_token = {}) {
    return set(mm_config_set_credentials(h_.get(), detail::cstr(access_key_id, "access_key_id"), detail::cstr(secret_access_key, "secret_access_key"),
                                         detail::opt(session_token, "session_token")),
               "credentials");
  }
  /// The shared config/credentials profile.
  Config &profile(const std::string &v) { return set(mm_config_set_profile(h_.get(), detail::cstr(v, "profile")), "profile"); }
  /// `standard` (default) or `adaptive`.
  Config &retry_mode(RetryMode m) {
    return set(mm_config_set_retry_mode(h_.get(), static_cast<uint32_t>(m)), "retry_mode");
  }
  /// Attempts per call, the first included.
  Config &max_attempts(uint32_t n) { return set(mm_config_set_max_attempts(h_.get(), n), "max_attempts"); }
  /// Time allowed to connect.
  Config &connect_timeout(std::chrono::milliseconds d) {
    return set(mm_config_set_connect_timeout_ms(h_.get(), detail::count(d, "connect_timeout")), "connect_timeout");
  }
  /// Time allowed between bytes of a response.
  Config &read_timeout(std::chrono::milliseconds d) {
    return set(mm_config_set_read_timeout_ms(h_.get(), detail::count(d, "read_timeout")), "read_timeout");
  }
  /// Time allowed for one attempt, response body included.
  Config &attempt_timeout(std::chrono::milliseconds d) {
    return set(mm_config_set_attempt_timeout_ms(h_.get(), detail::count(d, "attempt_timeout")), "attempt_timeout");
  }
  /// Time allowed for a whole call, every retry included.
  Config &operation_timeout(std::chrono::milliseconds d) {
    return set(mm_config_set_operation_timeout_ms(h_.get(), detail::count(d, "operation_timeout")), "operation_timeout");
  }
  /// The FIPS endpoint.
  Config &use_fips(bool on) { return set(mm_config_set_use_fips(h_.get(), on), "use_fips"); }
  /// The dual-stack endpoint.
  Config &use_dual_stack(bool on) { return set(mm_config_set_use_dual_stack(h_.get(), on), "use_dual_stack"); }
  /// Ignore endpoint URLs from the environment and the shared config file.
  Config &ignore_configured_endpoint_urls(bool on) {
    return set(mm_config_set_ignore_configured_endpoint_urls(h_.get(), on), "ignore_configured_endpoint_urls");
  }
  /// A PEM CA bundle trusted instead of the platform's roots (else AWS_CA_BUNDLE).
  Config &ca_bundle(const std::string &path) { return set(mm_config_set_ca_bundle(h_.get(), detail::cstr(path, "ca_bundle")), "ca_bundle"); }
  /// The proxy for https:// endpoints (else HTTPS_PROXY).
  Config &https_proxy(const std::string &url) { return set(mm_config_set_https_proxy(h_.get(), detail::cstr(url, "https_proxy")), "https_proxy"); }
  /// The proxy for http:// endpoints (else HTTP_PROXY).
  Config &http_proxy(const std::string &url) { return set(mm_config_set_http_proxy(h_.get(), detail::cstr(url, "http_proxy")), "http_proxy"); }
  /// Hosts reached without a proxy, comma-separated (else NO_PROXY).
  Config &no_proxy(const std::string &hosts) { return set(mm_config_set_no_proxy(h_.get(), detail::cstr(hosts, "no_proxy")), "no_proxy"); }
  /// The user-agent app id (else AWS_SDK_UA_APP_ID).
  Config &app_id(const std::string &id) { return set(mm_config_set_app_id(h_.get(), detail::cstr(id, "app_id")), "app_id"); }
  /// Calls `f` once per attempt of every call of clients made from this config, on the
  /// calling thread (see `mm_config_set_log_callback`); an exception it throws is caught and
  /// dropped. An empty `f` removes it. Clients made from this config keep `f` alive. Calls a
  /// `UsageMeter` makes are not logged.
  Config &log_callback(LogCallback f) {
    if (!f) {
      log_.reset();
      return set(mm_config_set_log_callback(h_.get(), nullptr, nullptr), "log_callback");
    }
    auto held = std::make_shared<const LogCallback>(std::move(f));
    set(mm_config_set_log_callback(h_.get(), detail::log_trampoline, const_cast<LogCallback *>(held.get())),
        "log_callback");
    log_ = std::move(held);
    return *this;
  }
  /// The C handle (owned by this object).
  const mm_config *get() const noexcept { return h_.get(); }
  /// What clients made from this config must keep alive (the log callback; may be null).
  std::shared_ptr<const void> keep_alive() const noexcept { return log_; }

 private:
  Config &set(Status st, const char *what) {
    detail::check(st, what);
    return *this;
  }
  std::shared_ptr<const LogCallback> log_;
  detail::Handle<mm_config, mm_config_free> h_;
};

/// A tag of a usage allocation.
struct Tag {
  std::string key;
  std::string value;
};

/// A share of a record's usage, tagged.
struct UsageAllocation {
  int64_t allocated_usage_quantity = 0;
  std::vector<Tag> tags;
};

/// One usage record of BatchMeterUsage. Empty strings are "absent".
struct UsageRecord {
  std::chrono::system_clock::time_point timestamp;
  std::string customer_identifier;
  std::string customer_aws_account_id;
  std::string license_arn;
  std::string dimension;
  std::optional<int64_t> quantity;
  std::vector<UsageAllocation> allocations;
};

/// The input of BatchMeterUsage.
struct BatchMeterUsageInput {
  std::string product_code;  ///< empty: absent (every record then needs a license ARN)
  std::vector<UsageRecord> usage_records;
};

/// The input of MeterUsage.
struct MeterUsageInput {
  std::string product_code;
  std::chrono::system_clock::time_point timestamp;
  std::string usage_dimension;
  std::optional<int64_t> usage_quantity;
  std::vector<UsageAllocation> usage_allocations;
  bool dry_run = false;
  std::string client_token;  ///< empty: generated per call
};

/// The input of RegisterUsage.
struct RegisterUsageInput {
  std::string product_code;
  int64_t public_key_version = 1;
  std::string nonce;  ///< empty: none
};

/// The status of one BatchMeterUsage record.
enum class UsageRecordStatus : uint32_t {
  Success = MM_USAGE_RECORD_STATUS_SUCCESS,
  CustomerNotSubscribed = MM_USAGE_RECORD_STATUS_CUSTOMER_NOT_SUBSCRIBED,
  DuplicateRecord = MM_USAGE_RECORD_STATUS_DUPLICATE_RECORD,
  Unknown = MM_USAGE_RECORD_STATUS_UNKNOWN,
};

/// One BatchMeterUsage result (allocations of the echoed record are not copied).
struct UsageRecordResult {
  UsageRecord usage_record;
  std::string metering_record_id;  ///< empty when none
  UsageRecordStatus status = UsageRecordStatus::Unknown;
  std::string status_str;  ///< as the service sent it
};

/// Request id, HTTP status and attempts of a response.
struct ResponseMetadata {
  std::string request_id;
  uint16_t http_status = 0;
  uint32_t attempts = 0;
};

/// The output of BatchMeterUsage (owns the C output; move-only).
class BatchMeterUsageOutput {
 public:
  explicit BatchMeterUsageOutput(mm_batch_meter_usage_output *h) : h_(h) {}
  /// One result per processed record.
  std::vector<UsageRecordResult> results() const {
    std::vector<UsageRecordResult> v;
    const mm_batch_meter_usage_output *o = h_.get();
    size_t n = mm_batch_meter_usage_output_result_count(o);
    v.reserve(n);
    for (size_t i = 0; i < n; i++) {
      UsageRecordResult r;
      r.usage_record.timestamp = detail::from_secs(mm_batch_meter_usage_output_result_timestamp(o, i));
      r.usage_record.customer_identifier = detail::str(mm_batch_meter_usage_output_result_customer_identifier(o, i));
      r.usage_record.customer_aws_account_id =
          detail::str(mm_batch_meter_usage_output_result_customer_aws_account_id(o, i));
      r.usage_record.license_arn = detail::str(mm_batch_meter_usage_output_result_license_arn(o, i));
      r.usage_record.dimension = detail::str(mm_batch_meter_usage_output_result_dimension(o, i));
      r.usage_record.quantity = mm_batch_meter_usage_output_result_quantity(o, i);
      r.metering_record_id = detail::str(mm_batch_meter_usage_output_result_metering_record_id(o, i));
      r.status = static_cast<UsageRecordStatus>(mm_batch_meter_usage_output_result_status(o, i));
      r.status_str = detail::str(mm_batch_meter_usage_output_result_status_str(o, i));
      v.push_back(std::move(r));
    }
    return v;
  }
  /// Records the service did not process, every field and allocation as sent (send them
  /// again; see `Client::resend_unprocessed`).
  std::vector<UsageRecord> unprocessed_records() const {
    std::vector<UsageRecord> v;
    const mm_batch_meter_usage_output *o = h_.get();
    size_t n = mm_batch_meter_usage_output_unprocessed_count(o);
    for (size_t i = 0; i < n; i++) {
      UsageRecord r;
      r.timestamp = detail::from_secs(mm_batch_meter_usage_output_unprocessed_timestamp(o, i));
      r.customer_identifier = detail::str(mm_batch_meter_usage_output_unprocessed_customer_identifier(o, i));
      r.customer_aws_account_id =
          detail::str(mm_batch_meter_usage_output_unprocessed_customer_aws_account_id(o, i));
      r.license_arn = detail::str(mm_batch_meter_usage_output_unprocessed_license_arn(o, i));
      r.dimension = detail::str(mm_batch_meter_usage_output_unprocessed_dimension(o, i));
      if (mm_batch_meter_usage_output_unprocessed_has_quantity(o, i)) {
        r.quantity = mm_batch_meter_usage_output_unprocessed_quantity(o, i);
      }
      size_t na = mm_batch_meter_usage_output_unprocessed_allocation_count(o, i);
      for (size_t j = 0; j < na; j++) {
        UsageAllocation a;
        a.allocated_usage_quantity = mm_batch_meter_usage_output_unprocessed_allocation_quantity(o, i, j);
        size_t nt = mm_batch_meter_usage_output_unprocessed_allocation_tag_count(o, i, j);
        for (size_t k = 0; k < nt; k++) {
          a.tags.push_back({detail::str(mm_batch_meter_usage_output_unprocessed_allocation_tag_key(o, i, j, k)),
                            detail::str(mm_batch_meter_usage_output_unprocessed_allocation_tag_value(o, i, j, k))});
        }
        r.allocations.push_back(std::move(a));
      }
      v.push_back(std::move(r));
    }
    return v;
  }
  /// The number of unprocessed records.
  size_t unprocessed_count() const noexcept { return mm_batch_meter_usage_output_unprocessed_count(h_.get()); }
  /// Request id, HTTP status, attempts.
  ResponseMetadata metadata() const {
    return {detail::str(mm_batch_meter_usage_output_request_id(h_.get())),
            mm_batch_meter_usage_output_http_status(h_.get()), mm_batch_meter_usage_output_attempts(h_.get())};
  }
  /// The C handle (owned by this object).
  const mm_batch_meter_usage_output *get() const noexcept { return h_.get(); }

 private:
  detail::Handle<mm_batch_meter_usage_output, mm_batch_meter_usage_output_free> h_;
};

/// The output of MeterUsage.
class MeterUsageOutput {
 public:
  explicit MeterUsageOutput(mm_meter_usage_output *h) : h_(h) {}
  /// The metering record id.
  std::string metering_record_id() const { return detail::str(mm_meter_usage_output_metering_record_id(h_.get())); }
  /// Request id, HTTP status, attempts.
  ResponseMetadata metadata() const {
    return {detail::str(mm_meter_usage_output_request_id(h_.get())), mm_meter_usage_output_http_status(h_.get()),
            mm_meter_usage_output_attempts(h_.get())};
  }

 private:
  detail::Handle<mm_meter_usage_output, mm_meter_usage_output_free> h_;
};

/// The output of ResolveCustomer.
class ResolveCustomerOutput {
 public:
  explicit ResolveCustomerOutput(mm_resolve_customer_output *h) : h_(h) {}
  /// The customer identifier to meter against; empty when the answer has none (a product
  /// metered by license names the account and the license only).
  std::string customer_identifier() const {
    return detail::str(mm_resolve_customer_output_customer_identifier(h_.get()));
  }
  /// The product code; empty when the answer has none.
  std::string product_code() const { return detail::str(mm_resolve_customer_output_product_code(h_.get())); }
  /// The customer's AWS account id.
  std::string customer_aws_account_id() const {
    return detail::str(mm_resolve_customer_output_customer_aws_account_id(h_.get()));
  }
  /// The customer's license ARN.
  std::string license_arn() const { return detail::str(mm_resolve_customer_output_license_arn(h_.get())); }
  /// Request id, HTTP status, attempts.
  ResponseMetadata metadata() const {
    return {detail::str(mm_resolve_customer_output_request_id(h_.get())),
            mm_resolve_customer_output_http_status(h_.get()), mm_resolve_customer_output_attempts(h_.get())};
  }

 private:
  detail::Handle<mm_resolve_customer_output, mm_resolve_customer_output_free> h_;
};

/// The output of RegisterUsage.
class RegisterUsageOutput {
 public:
  explicit RegisterUsageOutput(mm_register_usage_output *h) : h_(h) {}
  /// The signed token.
  std::string signature() const { return detail::str(mm_register_usage_output_signature(h_.get())); }
  /// When the public key rotates, if the service said.
  std::optional<std::chrono::system_clock::time_point> public_key_rotation_timestamp() const {
    int64_t s = 0;
    if (!mm_register_usage_output_public_key_rotation_timestamp(h_.get(), &s)) return std::nullopt;
    return detail::from_secs(s);
  }
  /// Request id, HTTP status, attempts.
  ResponseMetadata metadata() const {
    return {detail::str(mm_register_usage_output_request_id(h_.get())),
            mm_register_usage_output_http_status(h_.get()), mm_register_usage_output_attempts(h_.get())};
  }

 private:
  detail::Handle<mm_register_usage_output, mm_register_usage_output_free> h_;
};

namespace detail {

inline void add_allocations(const std::vector<UsageAllocation> &list,
                            Status (*add)(void *, int64_t, const mm_tag *, size_t), void *target) {
  for (const auto &a : list) {
    std::vector<mm_tag> tags;
    tags.reserve(a.tags.size());
    for (const auto &t : a.tags) tags.push_back(mm_tag{detail::cstr(t.key, "tag_key"), detail::cstr(t.value, "tag_value")});
    check(add(target, a.allocated_usage_quantity, tags.data(), tags.size()), "allocation");
  }
}

inline Status add_record_allocation(void *r, int64_t q, const mm_tag *t, size_t n) {
  return mm_usage_record_add_allocation(static_cast<mm_usage_record *>(r), q, t, n);
}
inline Status add_meter_allocation(void *r, int64_t q, const mm_tag *t, size_t n) {
  return mm_meter_usage_input_add_allocation(static_cast<mm_meter_usage_input *>(r), q, t, n);
}

inline Handle<mm_batch_meter_usage_input, mm_batch_meter_usage_input_free> batch_input(
    const BatchMeterUsageInput &in) {
  Handle<mm_batch_meter_usage_input, mm_batch_meter_usage_input_free> h(not_null(mm_batch_meter_usage_input_new()));
  if (!in.product_code.empty())
    check(mm_batch_meter_usage_input_set_product_code(h.get(), detail::cstr(in.product_code, "product_code")), "product_code");
  for (const auto &r : in.usage_records) {
    Handle<mm_usage_record, mm_usage_record_free> rec(not_null(mm_usage_record_new()));
    check(mm_usage_record_set_timestamp_ms(rec.get(), millis(r.timestamp)), "timestamp");
    if (!r.customer_identifier.empty())
      check(mm_usage_record_set_customer_identifier(rec.get(), detail::cstr(r.customer_identifier, "customer_identifier")), "customer_identifier");
    if (!r.customer_aws_account_id.empty())
      check(mm_usage_record_set_customer_aws_account_id(rec.get(), detail::cstr(r.customer_aws_account_id, "customer_aws_account_id")),
            "customer_aws_account_id");
    if (!r.license_arn.empty())
      check(mm_usage_record_set_license_arn(rec.get(), detail::cstr(r.license_arn, "license_arn")), "license_arn");
    check(mm_usage_record_set_dimension(rec.get(), detail::cstr(r.dimension, "dimension")), "dimension");
    if (r.quantity) check(mm_usage_record_set_quantity(rec.get(), *r.quantity), "quantity");
    add_allocations(r.allocations, add_record_allocation, rec.get());
    check(mm_batch_meter_usage_input_add_record(h.get(), rec.get()), "record");
  }
  return h;
}

}  // namespace detail

/// A Metering Service client. Copyable handles are not provided: share one `Client` (it is
/// thread-safe; every method is `const`) or move it. Calls block.
class Client {
 public:
  /// Makes a client; throws `Error` (`MM_STATUS_INVALID_CONFIG`, `MM_STATUS_CREDENTIALS`, …).
  explicit Client(const Config &config) : keep_(config.keep_alive()) {
    mm_client *c = nullptr;
    mm_error *err = nullptr;
    Status st = mm_client_new(config.get(), &c, &err);
    detail::check(st, "mm_client_new", err);
    h_.reset(c);
  }

  /// BatchMeterUsage. Check every result's status and re-send unprocessed records.
  BatchMeterUsageOutput batch_meter_usage(const BatchMeterUsageInput &input) const {
    auto in = detail::batch_input(input);
    return send_batch(in.get());
  }

  /// Re-sends the unprocessed records of an earlier output (same product code).
  BatchMeterUsageOutput resend_unprocessed(const BatchMeterUsageOutput &previous) const {
    detail::Handle<mm_batch_meter_usage_input, mm_batch_meter_usage_input_free> in(
        detail::not_null(mm_batch_meter_usage_output_unprocessed_input(previous.get())));
    return send_batch(in.get());
  }

  /// MeterUsage.
  MeterUsageOutput meter_usage(const MeterUsageInput &input) const {
    detail::Handle<mm_meter_usage_input, mm_meter_usage_input_free> in(detail::not_null(mm_meter_usage_input_new()));
    detail::check(mm_meter_usage_input_set_product_code(in.get(), detail::cstr(input.product_code, "product_code")), "product_code");
    detail::check(mm_meter_usage_input_set_timestamp_ms(in.get(), detail::millis(input.timestamp)), "timestamp");
    detail::check(mm_meter_usage_input_set_usage_dimension(in.get(), detail::cstr(input.usage_dimension, "usage_dimension")),
                  "usage_dimension");
    if (input.usage_quantity)
      detail::check(mm_meter_usage_input_set_usage_quantity(in.get(), *input.usage_quantity), "usage_quantity");
    if (input.dry_run) detail::check(mm_meter_usage_input_set_dry_run(in.get(), true), "dry_run");
    if (!input.client_token.empty())
      detail::check(mm_meter_usage_input_set_client_token(in.get(), detail::cstr(input.client_token, "client_token")), "client_token");
    detail::add_allocations(input.usage_allocations, detail::add_meter_allocation, in.get());
    mm_meter_usage_output *out = nullptr;
    mm_error *err = nullptr;
    Status st = mm_client_meter_usage(h_.get(), in.get(), &out, &err);
    detail::check(st, "meter_usage", err);
    return MeterUsageOutput(out);
  }

  /// ResolveCustomer.
  ResolveCustomerOutput resolve_customer(const std::string &registration_token) const {
    detail::Handle<mm_resolve_customer_input, mm_resolve_customer_input_free> in(
        detail::not_null(mm_resolve_customer_input_new()));
    detail::check(mm_resolve_customer_input_set_registration_token(in.get(), detail::cstr(registration_token, "registration_token")),
                  "registration_token");
    mm_resolve_customer_output *out = nullptr;
    mm_error *err = nullptr;
    Status st = mm_client_resolve_customer(h_.get(), in.get(), &out, &err);
    detail::check(st, "resolve_customer", err);
    return ResolveCustomerOutput(out);
  }

  /// RegisterUsage.
  RegisterUsageOutput register_usage(const RegisterUsageInput &input) const {
    detail::Handle<mm_register_usage_input, mm_register_usage_input_free> in(
        detail::not_null(mm_register_usage_input_new()));
    detail::check(mm_register_usage_input_set_product_code(in.get(), detail::cstr(input.product_code, "product_code")), "product_code");
    detail::check(mm_register_usage_input_set_public_key_version(in.get(), input.public_key_version),
                  "public_key_version");
    if (!input.nonce.empty()) detail::check(mm_register_usage_input_set_nonce(in.get(), detail::cstr(input.nonce, "nonce")), "nonce");
    mm_register_usage_output *out = nullptr;
    mm_error *err = nullptr;
    Status st = mm_client_register_usage(h_.get(), in.get(), &out, &err);
    detail::check(st, "register_usage", err);
    return RegisterUsageOutput(out);
  }

  /// The C handle (owned by this object).
  const mm_client *get() const noexcept { return h_.get(); }

 private:
  BatchMeterUsageOutput send_batch(const mm_batch_meter_usage_input *in) const {
    mm_batch_meter_usage_output *out = nullptr;
    mm_error *err = nullptr;
    Status st = mm_client_batch_meter_usage(h_.get(), in, &out, &err);
    detail::check(st, "batch_meter_usage", err);
    return BatchMeterUsageOutput(out);
  }
  // Declared first, destroyed last: the C client calls the log callback until it is freed.
  std::shared_ptr<const void> keep_;
  detail::Handle<mm_client, mm_client_free> h_;
};


// ---- usage meter ----------------------------------------------------------------------------

/// A clock set by hand (`mm_clock`), for tests: hours seal when you move it. Thread-safe.
class ManualClock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point t)
      : h_(detail::not_null(mm_clock_new(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count()))) {}
  /// The time it reads.
  std::chrono::system_clock::time_point now() const { return detail::from_secs(mm_clock_now(h_.get())); }
  /// Sets it.
  void set(std::chrono::system_clock::time_point t) const {
    detail::check(mm_clock_set(h_.get(), std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count()),
                  "clock_set");
  }
  /// Moves it (negative: back).
  void advance(std::chrono::seconds d) const { detail::check(mm_clock_advance(h_.get(), d.count()), "clock_advance"); }
  /// The C handle (owned by this object).
  const mm_clock *get() const noexcept { return h_.get(); }

 private:
  detail::Handle<mm_clock, mm_clock_free> h_;
};

/// Which operation a meter sends with.
enum class MeterMode : uint32_t { Batch = MM_METER_MODE_BATCH, MeterUsage = MM_METER_MODE_METER_USAGE };
/// When `UsageMeter::record` returns.
enum class Durability : uint32_t {
  Durable = MM_METER_DURABILITY_DURABLE,
  Group = MM_METER_DURABILITY_GROUP,
  Memory = MM_METER_DURABILITY_MEMORY,
};
/// What happened to a bucket.
enum class MeterEventKind : uint32_t {
  Acked = MM_METER_EVENT_KIND_ACKED,
  DeadLettered = MM_METER_EVENT_KIND_DEAD_LETTERED,
  LateEvent = MM_METER_EVENT_KIND_LATE_EVENT,
  WindowAlarm = MM_METER_EVENT_KIND_WINDOW_ALARM,
  Expired = MM_METER_EVENT_KIND_EXPIRED,
  Unknown = MM_METER_EVENT_KIND_UNKNOWN,
};

/// Who usage is for: a customer identifier, or an AWS account id with its license ARN.
struct Customer {
  std::string customer_identifier;
  std::string customer_aws_account_id;
  std::string license_arn;
  /// A `CustomerIdentifier` customer (needs the meter's product code).
  static Customer identifier(std::string id) { return Customer{std::move(id), {}, {}}; }
  /// A `CustomerAWSAccountId` + `LicenseArn` customer.
  static Customer aws_account(std::string account_id, std::string license_arn) {
    return Customer{{}, std::move(account_id), std::move(license_arn)};
  }
};

/// A meter event (a copy: it may be kept).
struct MeterEvent {
  MeterEventKind kind = MeterEventKind::Unknown;
  std::string kind_str;  ///< "acked", "dead_lettered", "late_event", "window_alarm", "expired"
  Customer customer;
  std::string dimension;
  std::chrono::system_clock::time_point hour;
  int64_t quantity = 0;
  std::string metering_record_id;                                           ///< Acked
  std::string reason, message;                                     ///< DeadLettered
  std::optional<std::chrono::system_clock::time_point> counted_in_hour;      ///< LateEvent
  std::optional<std::chrono::system_clock::time_point> window_end;           ///< WindowAlarm
  std::optional<std::string> replica_id;  ///< fleet store: the emitting meter's replica id
};

/// What one flush did.
struct FlushSummary {
  uint64_t sealed = 0, sent = 0, calls = 0, acked = 0, dead_lettered = 0, expired = 0, resent_unprocessed = 0,
           deferred = 0;
  /// The retryable error status that stopped the flush early, if any.
  std::optional<Status> interrupted;
  /// That error's message (empty when not interrupted).
  std::string interrupted_message;
};

/// Bucket counts per state.
struct MeterStatus {
  uint64_t pending = 0, sealed = 0, acked = 0, dead_lettered = 0, expired = 0;
  std::optional<std::chrono::system_clock::time_point> oldest_unsent_hour;
  /// On the fleet store, this meter's replica id (the counts are the whole fleet's).
  std::optional<std::string> replica_id;
  /// When this meter's last flush ended; empty before the first.
  std::optional<std::chrono::system_clock::time_point> last_flush_at;
  /// "Code: message" of what failed or stopped this meter's last flush; empty when it went well.
  std::optional<std::string> last_flush_error;
};

/// A bucket the service did not meter.
struct DeadLetter {
  Customer customer;
  std::string dimension;
  std::chrono::system_clock::time_point hour;
  int64_t quantity = 0;
  std::string reason;  ///< the record's Status or the error code
  std::string message;
  std::chrono::system_clock::time_point at;
};

/// The settings of a `UsageMeter`.
struct MeterOptions {
  std::optional<std::string> path;          ///< SQLite file; none: in memory (tests only)
  std::optional<std::string> product_code;  ///< none: every customer needs a license ARN
  MeterMode mode = MeterMode::Batch;
  Durability durability = Durability::Durable;
  /// Time after an hour's end before it is sealed; at most 4 hours (the service's window
  /// less two hours, so an hour is left to send in).
  std::chrono::seconds grace{300};
  bool zero_fill = false;
  /// SQLite store: false commits without an fsync (survives a killed process, not a failed
  /// machine; several times faster). See `mm_meter_config_set_power_loss_safe`.
  bool power_loss_safe = true;
  /// The background flusher's period; none: the default (60 s); zero: no background flusher.
  std::optional<std::chrono::seconds> flush_interval;
  /// Called from the meter's and the runtime's threads (see `mm_meter_config_set_event_callback`):
  /// must be thread-safe. An exception it throws is caught and dropped.
  std::function<void(const MeterEvent &)> on_event;
  const ManualClock *clock = nullptr;  ///< none: the system clock
  /// The fleet store instead of `path`: one PostgreSQL shared by every replica
  /// ("postgresql://user@host:5432/db"); each customer-hour is billed once across the fleet.
  /// Never logged or put in an error.
  std::optional<std::string> database_url;
  std::optional<std::string> replica_id;  ///< the fleet store's name for this writer (default: host and pid)
  std::optional<uint32_t> fleet_senders;   ///< replicas sending at a time per product (default 1)
  std::optional<std::chrono::milliseconds> fleet_lease;  ///< a sender's claim (default 2 min)
  /// The cut-over from a SQLite meter: the first hour the fleet store counts; events of
  /// earlier hours are refused (field `timestamp`).
  std::optional<std::chrono::system_clock::time_point> start_hour;
};

namespace detail {

inline std::chrono::seconds secs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch());
}

inline Customer customer_of(const char *ci, const char *acct, const char *lic) {
  return Customer{str(ci), str(acct), str(lic)};
}

inline void meter_trampoline(const mm_meter_event *ev, void *user_data) noexcept {
  try {
    const auto &f = *static_cast<const std::function<void(const MeterEvent &)> *>(user_data);
    MeterEvent e;
    e.kind = static_cast<MeterEventKind>(ev->kind);
    e.kind_str = str(ev->kind_str);
    e.customer = customer_of(ev->customer_identifier, ev->customer_aws_account_id, ev->license_arn);
    e.dimension = str(ev->dimension);
    e.hour = from_secs(ev->hour);
    e.quantity = ev->quantity;
    e.metering_record_id = str(ev->metering_record_id);
    e.reason = str(ev->reason);
    e.message = str(ev->message);
    if (e.kind == MeterEventKind::LateEvent) e.counted_in_hour = from_secs(ev->counted_in_hour);
    if (e.kind == MeterEventKind::WindowAlarm) e.window_end = from_secs(ev->window_end);
    if (ev->replica_id) e.replica_id = std::string(ev->replica_id);
    f(e);
  } catch (...) {
    // Nothing may unwind into the library's threads.
  }
}

/// Reads (and frees) a summary made by `mm_meter_flush` / `mm_meter_close`.
inline FlushSummary summary_of(mm_flush_summary *raw) {
  Handle<mm_flush_summary, mm_flush_summary_free> s(raw);
  FlushSummary f;
  f.sealed = mm_flush_summary_sealed_count(s.get());
  f.sent = mm_flush_summary_sent_count(s.get());
  f.calls = mm_flush_summary_call_count(s.get());
  f.acked = mm_flush_summary_acked_count(s.get());
  f.dead_lettered = mm_flush_summary_dead_lettered_count(s.get());
  f.expired = mm_flush_summary_expired_count(s.get());
  f.resent_unprocessed = mm_flush_summary_resent_unprocessed_count(s.get());
  f.deferred = mm_flush_summary_deferred_count(s.get());
  Status st = mm_flush_summary_interrupted(s.get());
  if (st != MM_STATUS_OK) {
    f.interrupted = st;
    f.interrupted_message = str(mm_flush_summary_interrupted_message(s.get()));
  }
  return f;
}

/// `mm_meter_free` for `Handle`: it returns `MM_STATUS_INVALID_STATE`, freeing nothing, only
/// when called from the meter's own event callback (see `~UsageMeter`).
inline void meter_free(mm_meter *m) noexcept { (void)mm_meter_free(m); }

}  // namespace detail

/// Which dead letters `UsageMeter::requeue` sends again; what is left empty matches all.
struct RequeueFilter {
  std::optional<std::string> reason;  ///< "CustomerNotSubscribed", an error code, …
  std::optional<Customer> customer;
  std::optional<std::chrono::system_clock::time_point> hour;  ///< any time within the hour
};

/// The usage meter: `record()` every billable event; every customer-hour is billed once.
///
/// Thread-safe: every method is `const` and may run from many threads at once. Move-only. The
/// destructor does not flush (call `close()`); no event callback runs after it returns.
/// From the meter's own `on_event`, `flush()`, `close()` and (with `Durability::Group`)
/// `record()` throw `Error` with `MM_STATUS_INVALID_STATE` (they would wait for the
/// callback), and destroying the meter
/// there frees nothing (the C handle is leaked rather than deadlocked): destroy it after the
/// callback returns.
class UsageMeter {
 public:
  /// Opens the store and starts the meter; throws `Error` (`MM_STATUS_INVALID_CONFIG`, …).
  UsageMeter(const Client &client, MeterOptions options)
      : on_event_(options.on_event ? std::make_unique<std::function<void(const MeterEvent &)>>(std::move(options.on_event))
                                   : nullptr) {
    detail::Handle<mm_meter_config, mm_meter_config_free> cfg(detail::not_null(mm_meter_config_new()));
    if (options.path) detail::check(mm_meter_config_set_path(cfg.get(), detail::cstr(*options.path, "path")), "path");
    if (options.product_code)
      detail::check(mm_meter_config_set_product_code(cfg.get(), detail::cstr(*options.product_code, "product_code")), "product_code");
    detail::check(mm_meter_config_set_mode(cfg.get(), static_cast<uint32_t>(options.mode)), "mode");
    detail::check(mm_meter_config_set_durability(cfg.get(), static_cast<uint32_t>(options.durability)), "durability");
    detail::check(mm_meter_config_set_grace_seconds(cfg.get(), detail::count(options.grace, "grace")), "grace");
    detail::check(mm_meter_config_set_zero_fill(cfg.get(), options.zero_fill), "zero_fill");
    detail::check(mm_meter_config_set_power_loss_safe(cfg.get(), options.power_loss_safe), "power_loss_safe");
    if (options.flush_interval)
      detail::check(mm_meter_config_set_flush_interval_seconds(cfg.get(), detail::count(*options.flush_interval, "flush_interval")),
                    "flush_interval");
    if (options.clock) detail::check(mm_meter_config_set_clock(cfg.get(), options.clock->get()), "clock");
    if (options.database_url)
      detail::check(mm_meter_config_set_database_url(cfg.get(), detail::cstr(*options.database_url, "database_url")), "database_url");
    if (options.replica_id)
      detail::check(mm_meter_config_set_replica_id(cfg.get(), detail::cstr(*options.replica_id, "replica_id")), "replica_id");
    if (options.fleet_senders)
      detail::check(mm_meter_config_set_fleet_senders(cfg.get(), *options.fleet_senders), "fleet_senders");
    if (options.fleet_lease)
      detail::check(mm_meter_config_set_fleet_lease_millis(cfg.get(), detail::count(*options.fleet_lease, "fleet_lease")),
                    "fleet_lease");
    if (options.start_hour)
      detail::check(mm_meter_config_set_start_hour(cfg.get(), detail::secs(*options.start_hour).count()),
                    "start_hour");
    if (on_event_)
      detail::check(mm_meter_config_set_event_callback(cfg.get(), detail::meter_trampoline, on_event_.get()), "on_event");
    mm_meter *m = nullptr;
    mm_error *err = nullptr;
    Status st = mm_meter_new(client.get(), cfg.get(), &m, &err);
    detail::check(st, "mm_meter_new", err);
    h_.reset(m);
  }

  /// Records `quantity` of `dimension` for `customer` at `at` (default: now, by the meter's clock).
  /// Throws `Error` (`MM_STATUS_INVALID_INPUT` with `field()`, `MM_STATUS_INVALID_STATE` once closed).
  void record(const Customer &customer, const std::string &dimension, int64_t quantity,
              std::optional<std::chrono::system_clock::time_point> at = std::nullopt,
              const std::vector<UsageAllocation> &allocations = {}) const {
    detail::Handle<mm_usage_event, mm_usage_event_free> ev(detail::not_null(mm_usage_event_new()));
    if (!customer.customer_identifier.empty())
      detail::check(mm_usage_event_set_customer_identifier(ev.get(), detail::cstr(customer.customer_identifier, "customer_identifier")),
                    "customer_identifier");
    if (!customer.customer_aws_account_id.empty())
      detail::check(mm_usage_event_set_customer_aws_account_id(ev.get(), detail::cstr(customer.customer_aws_account_id, "customer_aws_account_id")),
                    "customer_aws_account_id");
    if (!customer.license_arn.empty())
      detail::check(mm_usage_event_set_license_arn(ev.get(), detail::cstr(customer.license_arn, "license_arn")), "license_arn");
    detail::check(mm_usage_event_set_dimension(ev.get(), detail::cstr(dimension, "dimension")), "dimension");
    detail::check(mm_usage_event_set_quantity(ev.get(), quantity), "quantity");
    if (at) detail::check(mm_usage_event_set_timestamp(ev.get(), detail::secs(*at).count()), "timestamp");
    for (const auto &a : allocations) {
      std::vector<mm_tag> tags;
      tags.reserve(a.tags.size());
      for (const auto &t : a.tags) tags.push_back(mm_tag{detail::cstr(t.key, "tag_key"), detail::cstr(t.value, "tag_value")});
      detail::check(mm_usage_event_add_allocation(ev.get(), a.allocated_usage_quantity, tags.empty() ? nullptr : tags.data(),
                                                  tags.size()),
                    "allocations");
    }
    mm_error *err = nullptr;
    Status st = mm_meter_record(h_.get(), ev.get(), &err);
    detail::check(st, "record", err);
  }

  /// Registers a customer for zero fill with its dimensions.
  void register_customer(const Customer &customer, const std::vector<std::string> &dimensions) const {
    std::vector<const char *> dims;
    dims.reserve(dimensions.size());
    for (const auto &d : dimensions) dims.push_back(detail::cstr(d, "dimensions"));
    mm_error *err = nullptr;
    Status st = mm_meter_register_customer(h_.get(), detail::opt(customer.customer_identifier, "customer_identifier"),
                                           detail::opt(customer.customer_aws_account_id, "customer_aws_account_id"),
                                           detail::opt(customer.license_arn, "license_arn"), dims.data(), dims.size(), &err);
    detail::check(st, "register_customer", err);
  }

  /// Stops zero-filling a customer that churned: its registrations for `dimensions` (every
  /// dimension when `std::nullopt`) are removed at once. Returns how many were removed.
  std::size_t unregister_customer(const Customer &customer,
                                  const std::optional<std::vector<std::string>> &dimensions = std::nullopt) const {
    std::vector<const char *> dims;
    const char *const none[1] = {nullptr};
    const char *const *given = nullptr;  // NULL: every dimension
    if (dimensions) {
      dims.reserve(dimensions->size());
      for (const auto &d : *dimensions) dims.push_back(detail::cstr(d, "dimensions"));
      // An empty list removes nothing: never NULL, which would mean every dimension.
      given = dims.empty() ? none : dims.data();
    }
    std::size_t removed = 0;
    mm_error *err = nullptr;
    Status st = mm_meter_unregister_customer(h_.get(), detail::opt(customer.customer_identifier, "customer_identifier"),
                                             detail::opt(customer.customer_aws_account_id, "customer_aws_account_id"),
                                             detail::opt(customer.license_arn, "license_arn"), given, dims.size(),
                                             &removed, &err);
    detail::check(st, "unregister_customer", err);
    return removed;
  }

  /// Seals what may be sealed and sends every sealed bucket now (blocks). Not from `on_event`.
  FlushSummary flush() const {
    mm_flush_summary *s = nullptr;
    mm_error *err = nullptr;
    Status st = mm_meter_flush(h_.get(), &s, &err);
    detail::check(st, "flush", err);
    return detail::summary_of(s);
  }

  /// Stops the background flusher and flushes; later `record()`/`flush()` throw. Not from `on_event`.
  FlushSummary close() const {
    mm_flush_summary *s = nullptr;
    mm_error *err = nullptr;
    Status st = mm_meter_close(h_.get(), &s, &err);
    detail::check(st, "close", err);
    return detail::summary_of(s);
  }

  /// Bucket counts per state.
  MeterStatus status() const {
    mm_meter_status *raw = nullptr;
    mm_error *err = nullptr;
    Status st = mm_meter_get_status(h_.get(), &raw, &err);
    detail::check(st, "status", err);
    detail::Handle<mm_meter_status, mm_meter_status_free> c(raw);
    MeterStatus s;
    s.pending = mm_meter_status_pending_count(c.get());
    s.sealed = mm_meter_status_sealed_count(c.get());
    s.acked = mm_meter_status_acked_count(c.get());
    s.dead_lettered = mm_meter_status_dead_lettered_count(c.get());
    s.expired = mm_meter_status_expired_count(c.get());
    int64_t hour = 0;
    if (mm_meter_status_oldest_unsent_hour(c.get(), &hour)) s.oldest_unsent_hour = detail::from_secs(hour);
    if (const char *r = mm_meter_status_replica_id(c.get())) s.replica_id = std::string(r);
    int64_t at = 0;
    if (mm_meter_status_last_flush_at(c.get(), &at)) s.last_flush_at = detail::from_secs(at);
    if (const char *e = mm_meter_status_last_flush_error(c.get())) s.last_flush_error = std::string(e);
    return s;
  }

  /// Every dead letter, oldest first.
  std::vector<DeadLetter> dead_letters() const {
    mm_dead_letters *l = nullptr;
    mm_error *err = nullptr;
    Status st = mm_meter_get_dead_letters(h_.get(), &l, &err);
    detail::check(st, "dead_letters", err);
    detail::Handle<mm_dead_letters, mm_dead_letters_free> list(l);
    std::vector<DeadLetter> v;
    size_t n = mm_dead_letters_count(l);
    v.reserve(n);
    for (size_t i = 0; i < n; i++) {
      DeadLetter d;
      d.customer = detail::customer_of(mm_dead_letters_customer_identifier(l, i),
                                       mm_dead_letters_customer_aws_account_id(l, i), mm_dead_letters_license_arn(l, i));
      d.dimension = detail::str(mm_dead_letters_dimension(l, i));
      d.hour = detail::from_secs(mm_dead_letters_hour(l, i));
      d.quantity = mm_dead_letters_quantity(l, i);
      d.reason = detail::str(mm_dead_letters_reason(l, i));
      d.message = detail::str(mm_dead_letters_message(l, i));
      d.at = detail::from_secs(mm_dead_letters_at(l, i));
      v.push_back(std::move(d));
    }
    return v;
  }

  /// Sends the dead letters `filter` selects again, while their hour is inside the service's
  /// window: they go back to sealed and the next flush sends them. Returns how many.
  uint64_t requeue(const RequeueFilter &filter = {}) const {
    detail::Handle<mm_requeue_filter, mm_requeue_filter_free> f(detail::not_null(mm_requeue_filter_new()));
    if (filter.reason) detail::check(mm_requeue_filter_set_reason(f.get(), detail::cstr(*filter.reason, "reason")), "reason");
    if (filter.customer) {
      const Customer &c = *filter.customer;
      if (!c.customer_identifier.empty())
        detail::check(mm_requeue_filter_set_customer_identifier(f.get(), detail::cstr(c.customer_identifier, "customer_identifier")),
                      "customer_identifier");
      if (!c.customer_aws_account_id.empty())
        detail::check(mm_requeue_filter_set_customer_aws_account_id(f.get(), detail::cstr(c.customer_aws_account_id, "customer_aws_account_id")),
                      "customer_aws_account_id");
      if (!c.license_arn.empty())
        detail::check(mm_requeue_filter_set_license_arn(f.get(), detail::cstr(c.license_arn, "license_arn")), "license_arn");
    }
    if (filter.hour) detail::check(mm_requeue_filter_set_hour(f.get(), detail::secs(*filter.hour).count()), "hour");
    uint64_t n = 0;
    mm_error *err = nullptr;
    Status st = mm_meter_requeue(h_.get(), f.get(), &n, &err);
    detail::check(st, "requeue", err);
    return n;
  }

  UsageMeter(UsageMeter &&) noexcept = default;
  /// Frees the meter held (waiting for its callbacks) before its callback is destroyed.
  UsageMeter &operator=(UsageMeter &&other) noexcept {
    if (this != &other) {
      free_meter();
      h_ = std::move(other.h_);
      on_event_ = std::move(other.on_event_);
    }
    return *this;
  }
  UsageMeter(const UsageMeter &) = delete;
  UsageMeter &operator=(const UsageMeter &) = delete;
  ~UsageMeter() { free_meter(); }

  /// The C handle (owned by this object).
  const mm_meter *get() const noexcept { return h_.get(); }

 private:
  /// Frees the meter (waiting for its callbacks in flight), then its callback. From the
  /// meter's own `on_event` (the only time `mm_meter_free` refuses) the callback is running:
  /// both are freed by another thread once it has returned (`mm_meter_free` waits for it),
  /// not under it; without a thread, both stay, leaked.
  void free_meter() noexcept {
    mm_meter *m = h_.release();
    if (!m) return;
    mm_status st = mm_meter_free(m);
    if (st == MM_STATUS_OK) return;
    auto *callback = on_event_.release();
    // Any other failure (a caught panic) has freed the handle already: it is not freed again,
    // and the callback it may still reach is left, leaked.
    if (st != MM_STATUS_INVALID_STATE) return;
    try {
      std::thread([m, callback] {
        (void)mm_meter_free(m);
        delete callback;
      }).detach();
    } catch (...) {
    }
  }

  // Declared first, destroyed last: mm_meter_free (h_) waits for callbacks in flight.
  std::unique_ptr<std::function<void(const MeterEvent &)>> on_event_;
  detail::Handle<mm_meter, detail::meter_free> h_;
};

}  // namespace marketplace_metering

#endif  // MARKETPLACE_METERING_HPP

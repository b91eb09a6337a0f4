/*
 * SPDX-License-Identifier: Apache-2.0
 * marketplace_metering.h: the C API of marketplace-metering (AWS Marketplace Metering Service).
 *
 * Conventions:
 *  - Every object is an opaque handle made by mm_<thing>_new (or returned by a call) and
 *    released by mm_<thing>_free, which accepts NULL.
 *  - Fallible calls return mm_status (MM_STATUS_OK == 0). Calls that talk to the service or
 *    build a client also take an optional `mm_error **err_out` (NULL allowed): on failure it
 *    receives a new mm_error (free it with mm_error_free). Outputs are written only on success.
 *  - Input strings are NUL-terminated UTF-8; NULL gives MM_STATUS_NULL_PARAMETER and invalid
 *    UTF-8 gives MM_STATUS_INVALID_INPUT. No Rust panic crosses the boundary
 *    (MM_STATUS_PANIC instead).
 *  - Strings returned by accessors are owned by the object they were read from and stay valid
 *    until that object is freed.
 *  - Functions are named mm_<type>_<verb>. Inputs are built with setters, results are read
 *    with accessors (0 / false / NULL for a NULL handle): no result is a struct the caller
 *    allocates, so later versions can add fields. Counts are uint64_t; lengths of indexed lists size_t.
 *  - Use-after-free-safe habits: set a pointer to NULL after freeing it (every _free accepts
 *    NULL, so one cleanup path frees everything); copy a string you keep beyond its owner;
 *    free a handle once, after every call using it has returned.
 */

#ifndef MARKETPLACE_METERING_H
#define MARKETPLACE_METERING_H

/* generated; do not edit: written by bindings-c/build.rs from src/ with cbindgen */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The library version this header was generated for (see also mm_version()). */
#define MM_VERSION "0.1.0"
/** Major version. */
#define MM_VERSION_MAJOR 0
/** Minor version. */
#define MM_VERSION_MINOR 1
/** Patch version. */
#define MM_VERSION_PATCH 0


/**
 * The result of every fallible call: `MM_STATUS_OK` (0) or why it failed.
 *
 * Numbers are stable and never reused. 0–2 are this library's own; every other value is one
 * of the core's error codes with the same number (`mm_status_str` gives its name, the same
 * string as the Python and Node faces' `code`).
 */
enum mm_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Success.
   */
  MM_STATUS_OK = 0,
  /**
   * A required pointer argument was NULL.
   */
  MM_STATUS_NULL_PARAMETER = 1,
  /**
   * A Rust panic was caught at the boundary (a bug; please report it).
   */
  MM_STATUS_PANIC = 2,
  /**
   * The input violates the model's constraints; nothing was sent. The message names the field.
   */
  MM_STATUS_INVALID_INPUT = 3,
  /**
   * The library was used in a state that cannot work (for example a blocking call from
   * inside an async runtime thread).
   */
  MM_STATUS_INVALID_STATE = 4,
  /**
   * The configuration cannot produce an endpoint or a client (no region, FIPS with a
   * custom endpoint, a malformed URL, …).
   */
  MM_STATUS_INVALID_CONFIG = 5,
  /**
   * No credentials could be loaded.
   */
  MM_STATUS_CREDENTIALS = 6,
  /**
   * The request could not be sent or its response could not be read (connection refused,
   * reset, DNS, TLS).
   */
  MM_STATUS_DISPATCH = 7,
  /**
   * Connecting took longer than the connect timeout.
   */
  MM_STATUS_CONNECT_TIMEOUT = 8,
  /**
   * Waiting for the response took longer than the read timeout.
   */
  MM_STATUS_READ_TIMEOUT = 9,
  /**
   * The service answered with a body that is not the JSON the protocol promises
   * (truncated, HTML, garbage).
   */
  MM_STATUS_INVALID_RESPONSE = 10,
  /**
   * The service answered with an error code this library does not know; `Error::code()`
   * gives the service's string.
   */
  MM_STATUS_UNHANDLED = 11,
  /**
   * A usage meter's write to the fleet store may or may not have committed: its answer
   * was lost and the database stayed out of reach until the meter gave up. The meter
   * keeps the event and writes it again under the same commit key at the next flush, so
   * it is counted once either way: do not record it again. Only the end of the process
   * before the database answers again loses it.
   */
  MM_STATUS_OUTCOME_UNKNOWN = 12,
  /**
   * An internal error occurred; retry your request.
   */
  MM_STATUS_INTERNAL_SERVICE_ERROR_EXCEPTION = 100,
  /**
   * The product code passed does not match the product code of the caller.
   */
  MM_STATUS_INVALID_PRODUCT_CODE_EXCEPTION = 101,
  /**
   * The usage dimension does not match one of the product's dimensions.
   */
  MM_STATUS_INVALID_USAGE_DIMENSION_EXCEPTION = 102,
  /**
   * The tag is invalid, or the number of tags is greater than 5.
   */
  MM_STATUS_INVALID_TAG_EXCEPTION = 103,
  /**
   * Sum of allocated usage quantities is not equal to the usage quantity.
   */
  MM_STATUS_INVALID_USAGE_ALLOCATIONS_EXCEPTION = 104,
  /**
   * You have metered usage for a CustomerIdentifier that does not exist.
   */
  MM_STATUS_INVALID_CUSTOMER_IDENTIFIER_EXCEPTION = 105,
  /**
   * The timestamp value passed in the request is older than allowed.
   */
  MM_STATUS_TIMESTAMP_OUT_OF_BOUNDS_EXCEPTION = 106,
  /**
   * The calls to the API are throttled.
   */
  MM_STATUS_THROTTLING_EXCEPTION = 107,
  /**
   * The API is disabled in the Region.
   */
  MM_STATUS_DISABLED_API_EXCEPTION = 108,
  /**
   * The license is invalid.
   */
  MM_STATUS_INVALID_LICENSE_EXCEPTION = 109,
  /**
   * The endpoint being called is in a Region different from your EC2 instance, ECS task or EKS pod.
   */
  MM_STATUS_INVALID_ENDPOINT_REGION_EXCEPTION = 110,
  /**
   * A metering record has already been emitted for the same resource, usage dimension and
   * time, with a different quantity.
   */
  MM_STATUS_DUPLICATE_REQUEST_EXCEPTION = 111,
  /**
   * The ClientToken is being used for multiple requests with different parameters.
   */
  MM_STATUS_IDEMPOTENCY_CONFLICT_EXCEPTION = 112,
  /**
   * The customer is not entitled to the product.
   */
  MM_STATUS_CUSTOMER_NOT_ENTITLED_EXCEPTION = 113,
  /**
   * RegisterUsage must be called in the same Region the ECS task was launched in.
   */
  MM_STATUS_INVALID_REGION_EXCEPTION = 114,
  /**
   * The public key version is invalid.
   */
  MM_STATUS_INVALID_PUBLIC_KEY_VERSION_EXCEPTION = 115,
  /**
   * AWS Marketplace does not support metering usage from the underlying platform.
   */
  MM_STATUS_PLATFORM_NOT_SUPPORTED_EXCEPTION = 116,
  /**
   * The registration token is invalid.
   */
  MM_STATUS_INVALID_TOKEN_EXCEPTION = 117,
  /**
   * The submitted registration token has expired.
   */
  MM_STATUS_EXPIRED_TOKEN_EXCEPTION = 118,
  /**
   * The access key id is not known to the service.
   */
  MM_STATUS_UNRECOGNIZED_CLIENT_EXCEPTION = 200,
  /**
   * The request signature does not match.
   */
  MM_STATUS_INVALID_SIGNATURE_EXCEPTION = 201,
  /**
   * The caller is not allowed to call this operation.
   */
  MM_STATUS_ACCESS_DENIED_EXCEPTION = 202,
  /**
   * The service rejected the input (server-side validation).
   */
  MM_STATUS_VALIDATION_EXCEPTION = 203,
  /**
   * The service could not read the request body.
   */
  MM_STATUS_SERIALIZATION_EXCEPTION = 204,
  /**
   * The `X-Amz-Target` names no operation of this service.
   */
  MM_STATUS_UNKNOWN_OPERATION_EXCEPTION = 205,
  /**
   * A DryRun request would have succeeded.
   */
  MM_STATUS_DRY_RUN_OPERATION = 206,
  /**
   * A DryRun request would have failed for lack of permission.
   */
  MM_STATUS_UNAUTHORIZED_EXCEPTION = 207,
  /**
   * The Authorization header is malformed or incomplete.
   */
  MM_STATUS_INCOMPLETE_SIGNATURE_EXCEPTION = 208,
  /**
   * The request carries no credentials.
   */
  MM_STATUS_MISSING_AUTHENTICATION_TOKEN_EXCEPTION = 209,
  /**
   * The signed request is too old or too far in the future.
   */
  MM_STATUS_REQUEST_EXPIRED = 210,
  /**
   * The service is unavailable; retry.
   */
  MM_STATUS_SERVICE_UNAVAILABLE_EXCEPTION = 211,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum mm_status mm_status;
#else
typedef uint32_t mm_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * What happened to a bucket (`mm_meter_event.kind`).
 */
enum mm_meter_event_kind
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * The service metered the bucket (`metering_record_id` is set).
   */
  MM_METER_EVENT_KIND_ACKED = 0,
  /**
   * The service refused the bucket; it is kept in the dead letters (`reason`,
   * `message` are set).
   */
  MM_METER_EVENT_KIND_DEAD_LETTERED = 1,
  /**
   * An event for an hour already sealed was counted in `counted_in_hour` instead (`hour` is
   * the event's own hour, `quantity` the event's quantity).
   */
  MM_METER_EVENT_KIND_LATE_EVENT = 2,
  /**
   * The bucket is unsent and the service's window for it ends at `window_end`.
   */
  MM_METER_EVENT_KIND_WINDOW_ALARM = 3,
  /**
   * The service refused the bucket as past its window; it will not be sent again. With
   * `reason` `"OutcomeUnknown"`, an earlier send of it got no answer and the service may
   * have metered it then (check its records before billing it another way).
   */
  MM_METER_EVENT_KIND_EXPIRED = 4,
  /**
   * A kind this version of the header does not know (read `kind_str`).
   */
  MM_METER_EVENT_KIND_UNKNOWN = 5,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum mm_meter_event_kind mm_meter_event_kind;
#else
typedef uint32_t mm_meter_event_kind;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The status of one `BatchMeterUsage` record.
 */
enum mm_usage_record_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * The record was metered.
   */
  MM_USAGE_RECORD_STATUS_SUCCESS = 0,
  /**
   * The customer has not subscribed to the product; the record was not metered.
   */
  MM_USAGE_RECORD_STATUS_CUSTOMER_NOT_SUBSCRIBED = 1,
  /**
   * A record with another quantity exists for this customer, dimension and hour.
   */
  MM_USAGE_RECORD_STATUS_DUPLICATE_RECORD = 2,
  /**
   * A status this version does not know (or none): read `..._result_status_str`.
   */
  MM_USAGE_RECORD_STATUS_UNKNOWN = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum mm_usage_record_status mm_usage_record_status;
#else
typedef uint32_t mm_usage_record_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Retry modes for `mm_config_set_retry_mode`.
 */
enum mm_retry_mode
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Up to max-attempts tries with jittered exponential backoff (the default, 3 attempts).
   */
  MM_RETRY_MODE_STANDARD = 0,
  /**
   * Standard plus a client-side rate limiter that engages on throttling.
   */
  MM_RETRY_MODE_ADAPTIVE = 1,
  /**
   * boto3's default: 5 attempts unless set, `rand * 2^n` s between them, no retry quota.
   */
  MM_RETRY_MODE_LEGACY = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum mm_retry_mode mm_retry_mode;
#else
typedef uint32_t mm_retry_mode;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Which operation a meter sends its buckets with (`mm_meter_config_set_mode`).
 */
enum mm_meter_mode
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * `BatchMeterUsage`, up to 25 buckets per call (SaaS products; the default).
   */
  MM_METER_MODE_BATCH = 0,
  /**
   * `MeterUsage`, one call per (dimension, hour) with a `ClientToken` derived from the
   * bucket (AMI and container products). Needs a product code; customers are ignored.
   */
  MM_METER_MODE_METER_USAGE = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum mm_meter_mode mm_meter_mode;
#else
typedef uint32_t mm_meter_mode;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * When `mm_meter_record` returns (`mm_meter_config_set_durability`).
 */
enum mm_meter_durability
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * After the event is committed to the store (the default).
   */
  MM_METER_DURABILITY_DURABLE = 0,
  /**
   * After a group commit that batches concurrent callers into one transaction.
   */
  MM_METER_DURABILITY_GROUP = 1,
  /**
   * At once, buffered in memory and written at every flush, at `mm_meter_free`, and at
   * `exit()` (a return from `main`) for a meter not yet freed: a crash, a signal that kills
   * the process, or `_exit()` loses the events recorded since the last of those.
   */
  MM_METER_DURABILITY_MEMORY = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum mm_meter_durability mm_meter_durability;
#else
typedef uint32_t mm_meter_durability;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The input of `BatchMeterUsage`: an optional product code and 0 to 25 usage records.
 * Not thread-safe to modify; sending it from several threads at once is safe.
 * Free with `mm_batch_meter_usage_input_free`.
 */
typedef struct mm_batch_meter_usage_input mm_batch_meter_usage_input;

/**
 * The output of `BatchMeterUsage`: one result per processed record and the records the
 * service did not process (send them again: see `mm_batch_meter_usage_output_unprocessed_input`).
 * Free with `mm_batch_meter_usage_output_free`. Immutable; thread-safe to read.
 */
typedef struct mm_batch_meter_usage_output mm_batch_meter_usage_output;

/**
 * A Metering Service client.
 *
 * Thread-safe: one client may be used from many threads at once (every call takes a
 * `const mm_client *`). Each call blocks the calling thread until the response (retries
 * included) or the error; do not call from inside a signal handler. Free it with
 * `mm_client_free` once no call is running on it.
 */
typedef struct mm_client mm_client;

/**
 * A clock set by hand (the core's `ManualClock`), for tests and examples: give it to
 * `mm_meter_config_set_clock` and hours seal when you move it, not when real time passes.
 *
 * Thread-safe: it may be read, set and advanced from many threads at once. The meter keeps
 * its own reference, so the clock may be freed before the meter (it then stops moving).
 */
typedef struct mm_clock mm_clock;

/**
 * A client configuration being built. Make it with `mm_config_new`, set what you need, pass
 * it to `mm_client_new` (which copies it), free it with `mm_config_free`.
 *
 * Setters are not thread-safe on one config; reading it in `mm_client_new` from several
 * threads at once is.
 */
typedef struct mm_config mm_config;

/**
 * The buckets the service did not meter, oldest first (a snapshot made by
 * `mm_meter_get_dead_letters`). Read with the `mm_dead_letters_*` accessors (an index out of
 * range gives NULL / 0); free with `mm_dead_letters_free`. Immutable; thread-safe to read.
 */
typedef struct mm_dead_letters mm_dead_letters;

/**
 * The details of a failed call. Made by the library on failure (through `mm_error **`);
 * read it with the `mm_error_*` accessors; free it with `mm_error_free`.
 *
 * Immutable: it may be read from many threads at once.
 */
typedef struct mm_error mm_error;

/**
 * What one flush did: made by `mm_meter_flush` and `mm_meter_close`, read with the
 * `mm_flush_summary_*` accessors (each gives 0 / NULL for a NULL summary), freed with
 * `mm_flush_summary_free`. Opaque so that later versions can report more without changing
 * the size of anything the caller allocates. Immutable; thread-safe to read.
 */
typedef struct mm_flush_summary mm_flush_summary;

/**
 * A usage meter: records billable events and bills every customer-hour exactly once (see the
 * "Usage meter" section of the README). Made by `mm_meter_new`, freed by `mm_meter_free`.
 *
 * Thread-safe: every call takes a `const mm_meter *` and may run from many threads at once.
 * `mm_meter_record` blocks until the event is as durable as the configured durability says;
 * `mm_meter_flush` and `mm_meter_close` block on the library's runtime while they send.
 */
typedef struct mm_meter mm_meter;

/**
 * A meter configuration being built: `mm_meter_config_new`, the setters, then
 * `mm_meter_new` (which copies it); free it with `mm_meter_config_free`.
 *
 * Defaults: in-memory store (tests only: nothing survives the process), no product code,
 * `MM_METER_MODE_BATCH`, `MM_METER_DURABILITY_DURABLE`, 300 s grace, no zero fill, a
 * background flush every 60 s on the library's runtime (0 seconds turns it off), no callback,
 * the system clock. Setters are not thread-safe on one
 * config; `mm_meter_new` from several threads at once is.
 */
typedef struct mm_meter_config mm_meter_config;

/**
 * Bucket counts per state and the oldest unsent hour: made by `mm_meter_get_status`, read
 * with the `mm_meter_status_*` accessors (0 / false for a NULL status), freed with
 * `mm_meter_status_free`. Opaque, like `mm_flush_summary`. Immutable; thread-safe to read.
 */
typedef struct mm_meter_status mm_meter_status;

/**
 * The input of `MeterUsage`. Required: product code, timestamp, usage dimension.
 * Not thread-safe to modify; sending it from several threads at once is safe.
 * Free with `mm_meter_usage_input_free`.
 */
typedef struct mm_meter_usage_input mm_meter_usage_input;

/**
 * The output of `MeterUsage`. Free with `mm_meter_usage_output_free`. Immutable;
 * thread-safe to read.
 */
typedef struct mm_meter_usage_output mm_meter_usage_output;

/**
 * The input of `RegisterUsage`. Required: product code and public key version.
 * Not thread-safe to modify; sending it from several threads at once is safe.
 * Free with `mm_register_usage_input_free`.
 */
typedef struct mm_register_usage_input mm_register_usage_input;

/**
 * The output of `RegisterUsage`. Free with `mm_register_usage_output_free`. Immutable;
 * thread-safe to read.
 */
typedef struct mm_register_usage_output mm_register_usage_output;

/**
 * Which dead letters `mm_meter_requeue` sends again: those matching every part set (none set:
 * every dead letter). Built with `mm_requeue_filter_new` and the setters, freed with
 * `mm_requeue_filter_free`; setters only copy, and the customer's combination is checked by
 * `mm_meter_requeue` (an identifier, or an account id with its license ARN). Not consumed by
 * `mm_meter_requeue`. Setters are not thread-safe on one filter; using one filter from
 * several threads at once (with no setter running) is.
 */
typedef struct mm_requeue_filter mm_requeue_filter;

/**
 * The input of `ResolveCustomer`: the registration token. Not thread-safe to modify;
 * sending it from several threads at once is safe. Free with `mm_resolve_customer_input_free`.
 */
typedef struct mm_resolve_customer_input mm_resolve_customer_input;

/**
 * The output of `ResolveCustomer`. Free with `mm_resolve_customer_output_free`. Immutable;
 * thread-safe to read.
 */
typedef struct mm_resolve_customer_output mm_resolve_customer_output;

/**
 * One billable event for `mm_meter_record`, built with setters: `mm_usage_event_new`, a
 * customer (`mm_usage_event_set_customer_identifier`, or `mm_usage_event_set_customer_aws_account_id`
 * with `mm_usage_event_set_license_arn`), `mm_usage_event_set_dimension`,
 * `mm_usage_event_set_quantity`, and optionally `mm_usage_event_set_timestamp` (absent: now,
 * by the meter's clock) and `mm_usage_event_add_allocation`. Free with `mm_usage_event_free`.
 *
 * Setters only copy (NULL → `MM_STATUS_NULL_PARAMETER`, not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`); everything else is checked by `mm_meter_record`. An event is
 * not consumed by `mm_meter_record`: it may be recorded again, or changed and recorded.
 * Setters are not thread-safe on one event; recording one event from several threads at
 * once (with no setter running) is.
 */
typedef struct mm_usage_event mm_usage_event;

/**
 * One usage record for `BatchMeterUsage`, built field by field and added to an input with
 * `mm_batch_meter_usage_input_add_record` (which copies it).
 *
 * Required: a timestamp and a dimension, and either a customer identifier or a customer AWS
 * account id with a license ARN. Not thread-safe to modify; free with `mm_usage_record_free`.
 */
typedef struct mm_usage_record mm_usage_record;

/**
 * Receives one attempt of a call: the operation (`"BatchMeterUsage"`), the attempt number
 * (1 first), the HTTP status (0 when no response arrived), the request id (NULL when none),
 * the latency in milliseconds, the outcome (`"ok"` or the error code), and why it was
 * retried (`"throttling"`, `"transient"`, `"timeout"`, `"clock skew"`; NULL when it was not).
 * The strings live until the callback returns. Nothing secret is passed.
 */
typedef void (*mm_log_callback)(void *user_data,
                                const char *operation,
                                uint32_t attempt,
                                uint16_t http_status,
                                const char *request_id,
                                double latency_ms,
                                const char *outcome,
                                const char *retry_reason);

/**
 * A tag of a usage allocation: two NUL-terminated UTF-8 strings, borrowed for the duration
 * of the call that receives the array (they are copied).
 */
typedef struct mm_tag {
  /**
   * The tag key (1–100 characters).
   */
  const char *key;
  /**
   * The tag value (1–256 characters).
   */
  const char *value;
} mm_tag;

/**
 * One meter event, passed to the event callback.
 *
 * Valid only during the callback: copy what you keep. Strings are NUL-terminated UTF-8;
 * a field that does not apply to the kind is NULL (strings) or 0 (numbers). The library may
 * add fields at the end in a later version; never allocate one yourself.
 */
typedef struct mm_meter_event {
  /**
   * What happened.
   */
  mm_meter_event_kind kind;
  /**
   * The kind as the other faces name it: `"acked"`, `"dead_lettered"`, `"late_event"`,
   * `"window_alarm"`, `"expired"`.
   */
  const char *kind_str;
  /**
   * The bucket's customer identifier (NULL for an account customer, and in the
   * MeterUsage mode, where buckets have no customer).
   */
  const char *customer_identifier;
  /**
   * The bucket's customer AWS account id (NULL for a customer identifier).
   */
  const char *customer_aws_account_id;
  /**
   * The bucket's license ARN (NULL for a customer identifier).
   */
  const char *license_arn;
  /**
   * The bucket's dimension.
   */
  const char *dimension;
  /**
   * The bucket's hour, epoch seconds (a multiple of 3600).
   */
  int64_t hour;
  /**
   * The bucket's quantity (for a late event, the event's quantity).
   */
  int64_t quantity;
  /**
   * `ACKED`: the service's MeteringRecordId.
   */
  const char *metering_record_id;
  /**
   * `DEAD_LETTERED`: the record's Status (`"CustomerNotSubscribed"`, `"DuplicateRecord"`, …)
   * or the error code. `EXPIRED`: `"OutcomeUnknown"` after a send that got no answer, NULL
   * when every earlier send of the bucket, if any, was answered (refused or throttled).
   */
  const char *reason;
  /**
   * `DEAD_LETTERED`, and `EXPIRED` with a `reason`: details.
   */
  const char *message;
  /**
   * `LATE_EVENT`: the hour the quantity was added to (epoch seconds).
   */
  int64_t counted_in_hour;
  /**
   * `WINDOW_ALARM`: when the service stops accepting the bucket (epoch seconds).
   */
  int64_t window_end;
  /**
   * On the fleet store, the replica id of the meter that emitted the event; NULL on a
   * local store.
   */
  const char *replica_id;
} mm_meter_event;

/**
 * The event callback: `ev` and its strings are valid only during the call; `user_data` is
 * the pointer given to `mm_meter_config_set_event_callback`.
 *
 * Called from the meter's and the runtime's threads (see `mm_meter_config_set_event_callback`
 * for what it may do); it must be thread-safe, return quickly and never unwind (no C++
 * exception, no longjmp) out of the call.
 */
typedef void (*mm_meter_event_callback)(const struct mm_meter_event *ev, void *user_data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library version (`"0.1.0"`), as a static NUL-terminated string.
 *
 * Never NULL; the caller must not free it. Thread-safe.
 */
const char *mm_version(void);

/**
 * Stops the library's shared runtime, joining its worker threads (waits up to 2 s for work
 * in flight).
 *
 * Call it once at exit, after every call has returned, so leak checkers (valgrind, LSan)
 * see a clean process. Clients stay usable: the next call starts a new runtime. Takes no
 * pointer; thread-safe, but calls still running on other threads keep the old runtime alive
 * until they finish.
 *
 * Meters are not stopped: the background flusher (`mm_meter_config_set_flush_interval_seconds`)
 * of every meter not yet freed is started again at once on a new runtime, so it keeps
 * sending. Free (after `mm_meter_close`) every meter before `mm_shutdown()` to end every
 * library thread. Called from a callback (a meter's event callback runs on the library's
 * threads), it does nothing: a runtime cannot stop from its own thread.
 */
void mm_shutdown(void);

/**
 * Makes a client from a configuration (copied; `config` may be freed afterwards). Without
 * credentials in `config` the default chain is used.
 *
 * On success stores a new client in `*client_out` (free it with `mm_client_free`) and returns
 * `MM_STATUS_OK`. Fails with `MM_STATUS_INVALID_CONFIG` (no region, FIPS with a custom
 * endpoint, a malformed URL, 0 attempts or timeouts) or `MM_STATUS_CREDENTIALS`, filling
 * `*err_out` when `err_out` is not NULL. `config` or `client_out` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Thread-safe.
 */
mm_status mm_client_new(const struct mm_config *config,
                        struct mm_client **client_out,
                        struct mm_error **err_out);

/**
 * Frees a client. NULL does nothing. No call may be running on it, and it may not be used
 * afterwards; other clients are unaffected.
 */
void mm_client_free(struct mm_client *client);

/**
 * Sends `BatchMeterUsage` (validating the input first; nothing is sent if it is invalid).
 *
 * On success stores a new output in `*output_out` (free it with
 * `mm_batch_meter_usage_output_free`): check every result's status and re-send the
 * unprocessed records. On failure returns the error's status and, if `err_out` is not NULL,
 * stores a new `mm_error` there. `client`, `input` or `output_out` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Blocks; thread-safe (one client, many threads; the input is
 * only read).
 */
mm_status mm_client_batch_meter_usage(const struct mm_client *client,
                                      const struct mm_batch_meter_usage_input *input,
                                      struct mm_batch_meter_usage_output **output_out,
                                      struct mm_error **err_out);

/**
 * Sends `MeterUsage` (validating the input first). A dry run that would succeed fails with
 * `MM_STATUS_DRY_RUN_OPERATION`.
 *
 * On success stores a new output in `*output_out` (free it with `mm_meter_usage_output_free`).
 * On failure returns the error's status and, if `err_out` is not NULL, stores a new
 * `mm_error` there. `client`, `input` or `output_out` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Blocks; thread-safe.
 */
mm_status mm_client_meter_usage(const struct mm_client *client,
                                const struct mm_meter_usage_input *input,
                                struct mm_meter_usage_output **output_out,
                                struct mm_error **err_out);

/**
 * Sends `ResolveCustomer` with a registration token.
 *
 * On success stores a new output in `*output_out` (free it with
 * `mm_resolve_customer_output_free`). On failure (`MM_STATUS_INVALID_TOKEN_EXCEPTION`,
 * `MM_STATUS_EXPIRED_TOKEN_EXCEPTION`, …) returns the error's status and, if `err_out` is not
 * NULL, stores a new `mm_error` there. `client`, `input` or `output_out` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Blocks; thread-safe.
 */
mm_status mm_client_resolve_customer(const struct mm_client *client,
                                     const struct mm_resolve_customer_input *input,
                                     struct mm_resolve_customer_output **output_out,
                                     struct mm_error **err_out);

/**
 * Sends `RegisterUsage`.
 *
 * On success stores a new output in `*output_out` (free it with
 * `mm_register_usage_output_free`). On failure (`MM_STATUS_CUSTOMER_NOT_ENTITLED_EXCEPTION`,
 * `MM_STATUS_INVALID_INPUT` for a public key version below 1, …) returns the error's status
 * and, if `err_out` is not NULL, stores a new `mm_error` there. `client`, `input` or
 * `output_out` NULL → `MM_STATUS_NULL_PARAMETER`. Blocks; thread-safe.
 */
mm_status mm_client_register_usage(const struct mm_client *client,
                                   const struct mm_register_usage_input *input,
                                   struct mm_register_usage_output **output_out,
                                   struct mm_error **err_out);

/**
 * A new configuration with the defaults: region from the environment/profile, the default
 * credential chain, `standard` retries with 3 attempts, 5 s connect and 30 s read timeouts.
 *
 * Free it with `mm_config_free`. Returns NULL only if allocation fails. Thread-safe.
 */
struct mm_config *mm_config_new(void);

/**
 * Frees a configuration. NULL does nothing. Clients made from it are unaffected.
 * No other thread may use `config` during or after the call.
 */
void mm_config_free(struct mm_config *config);

/**
 * Sets the AWS Region (`"us-east-1"`). Without it, `AWS_REGION`, `AWS_DEFAULT_REGION`, then
 * the profile's region are used.
 *
 * The string is copied. Returns `MM_STATUS_NULL_PARAMETER` if an argument is NULL,
 * `MM_STATUS_INVALID_INPUT` if `region` is not UTF-8 (the region itself is checked by
 * `mm_client_new`). Not thread-safe on one config.
 */
mm_status mm_config_set_region(struct mm_config *config, const char *region);

/**
 * Sets a custom endpoint URL (the emulator: `"http://127.0.0.1:<port>"`, a VPC endpoint).
 * Cannot be combined with FIPS or dual-stack.
 *
 * The string is copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one config.
 */
mm_status mm_config_set_endpoint_url(struct mm_config *config, const char *url);

/**
 * Sets static credentials; without them the default chain is used (environment, shared
 * files and profiles, web identity, ECS, IMDSv2, assume-role).
 *
 * `session_token` may be NULL (none). The strings are copied. `config`, `access_key_id` or
 * `secret_access_key` NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one config.
 */
mm_status mm_config_set_credentials(struct mm_config *config,
                                    const char *access_key_id,
                                    const char *secret_access_key,
                                    const char *session_token);

/**
 * Sets the shared config/credentials profile used by the default chains.
 *
 * The string is copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one config.
 */
mm_status mm_config_set_profile(struct mm_config *config, const char *profile);

/**
 * Sets the retry mode: `MM_RETRY_MODE_STANDARD`, `MM_RETRY_MODE_ADAPTIVE` or
 * `MM_RETRY_MODE_LEGACY` (else `AWS_RETRY_MODE`, then the profile's `retry_mode`).
 *
 * Another number → `MM_STATUS_INVALID_CONFIG`; `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Not thread-safe on one config.
 */
mm_status mm_config_set_retry_mode(struct mm_config *config, uint32_t mode);

/**
 * Sets the attempts per call, the first included (default 3; 1 disables retries; 0 is
 * rejected by `mm_client_new`). `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Not thread-safe on one config.
 */
mm_status mm_config_set_max_attempts(struct mm_config *config, uint32_t max_attempts);

/**
 * Sets the time allowed to open a connection, in milliseconds (default 5000; 0 is rejected
 * by `mm_client_new`). `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_config_set_connect_timeout_ms(struct mm_config *config, uint64_t ms);

/**
 * Sets the time allowed between bytes of a response, in milliseconds (default 30000; 0 is
 * rejected by `mm_client_new`). `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Not thread-safe on one config.
 */
mm_status mm_config_set_read_timeout_ms(struct mm_config *config, uint64_t ms);

/**
 * Sets the time allowed for one attempt, response body included, in milliseconds (default
 * 60000; 0 is rejected by `mm_client_new`). An attempt that runs out is retried as a read
 * timeout is. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_config_set_attempt_timeout_ms(struct mm_config *config, uint64_t ms);

/**
 * Sets the time allowed for a whole call, every retry included, in milliseconds (default:
 * no bound; 0 is rejected by `mm_client_new`). Past it the call fails with
 * `MM_STATUS_READ_TIMEOUT`. `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Not thread-safe on one config.
 */
mm_status mm_config_set_operation_timeout_ms(struct mm_config *config, uint64_t ms);

/**
 * Uses (or not) the FIPS endpoint. `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Not thread-safe on one config.
 */
mm_status mm_config_set_use_fips(struct mm_config *config, bool on);

/**
 * Uses (or not) the dual-stack (IPv4 and IPv6) endpoint. `config` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_config_set_use_dual_stack(struct mm_config *config, bool on);

/**
 * Ignores (or not) endpoint URLs from the environment (`AWS_ENDPOINT_URL…`) and the shared
 * config file; an endpoint set with `mm_config_set_endpoint_url` is still used. Without this
 * call, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` and the profile's
 * `ignore_configured_endpoint_urls` decide. `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 */
mm_status mm_config_set_ignore_configured_endpoint_urls(struct mm_config *config, bool on);

/**
 * Trusts the PEM CA bundle at `path` instead of the platform's roots (else `AWS_CA_BUNDLE`,
 * then the profile's `ca_bundle`). The file is read when the client is created; one that
 * cannot be read or holds no certificate fails `mm_client_new` with
 * `MM_STATUS_INVALID_CONFIG`. TLS verification itself can never be turned off.
 */
mm_status mm_config_set_ca_bundle(struct mm_config *config, const char *path);

/**
 * The proxy for `https://` endpoints, `http://host:port` (else `HTTPS_PROXY` /
 * `https_proxy`). Checked when the client is created.
 */
mm_status mm_config_set_https_proxy(struct mm_config *config, const char *url);

/**
 * The proxy for `http://` endpoints (else `HTTP_PROXY` / `http_proxy`).
 */
mm_status mm_config_set_http_proxy(struct mm_config *config, const char *url);

/**
 * Hosts reached without a proxy, comma-separated, `NO_PROXY`'s syntax (else `NO_PROXY` /
 * `no_proxy`).
 */
mm_status mm_config_set_no_proxy(struct mm_config *config, const char *hosts);

/**
 * The user-agent app id, at most 50 characters (else `AWS_SDK_UA_APP_ID`, then the
 * profile's `sdk_ua_app_id`). Checked when the client is created.
 */
mm_status mm_config_set_app_id(struct mm_config *config, const char *app_id);

/**
 * Sets a callback called once per attempt of every call of clients made from this config,
 * on the calling thread, after the call returns and before the operation function does
 * (so in order, never concurrently for one call; calls on other threads may call it at the
 * same time). `user_data` is passed back as is and must be usable from those threads; it
 * must stay valid until every client made from this config is freed (freeing the config does
 * not end them). The callback must return: it must not unwind (a C++ exception) or
 * `longjmp` out. Calls a meter makes are not passed to it. NULL `callback` removes it.
 * `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 */
mm_status mm_config_set_log_callback(struct mm_config *config,
                                     mm_log_callback callback,
                                     void *user_data);

/**
 * The name of a status (`"OK"`, `"NullParameter"`, `"Panic"`, `"ThrottlingException"`, …),
 * the same string as `mm_error_code_str` for errors the library raised itself.
 *
 * `status` is a `mm_status` value; an unknown number gives `"Unknown"`. Returns a static
 * string (never NULL; do not free). Thread-safe.
 */
const char *mm_status_str(uint32_t status);

/**
 * The status of the failed call (`MM_STATUS_THROTTLING_EXCEPTION`, …).
 *
 * `err` NULL gives `MM_STATUS_NULL_PARAMETER`. Thread-safe.
 */
mm_status mm_error_code(const struct mm_error *err);

/**
 * The error code as a string: the service's own code when it answered
 * (`"ThrottlingException"`, or a code this version does not know, with status
 * `MM_STATUS_UNHANDLED`), else the local name (`"InvalidInput"`, `"ReadTimeout"`, …).
 *
 * Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
 */
const char *mm_error_code_str(const struct mm_error *err);

/**
 * The human-readable message.
 *
 * Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
 */
const char *mm_error_message(const struct mm_error *err);

/**
 * The service's request id, or NULL when no response was received.
 *
 * Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
 */
const char *mm_error_request_id(const struct mm_error *err);

/**
 * For `MM_STATUS_INVALID_INPUT`, the path of the offending field
 * (`"UsageRecords[3].Quantity"`); NULL otherwise.
 *
 * Owned by `err`, valid until `mm_error_free(err)`. `err` NULL gives NULL. Thread-safe.
 */
const char *mm_error_field(const struct mm_error *err);

/**
 * The HTTP status of the last response, 0 when none was received (or `err` is NULL).
 * Thread-safe.
 */
uint16_t mm_error_http_status(const struct mm_error *err);

/**
 * Attempts made, the first included (0 when nothing was sent, or `err` is NULL).
 * Thread-safe.
 */
uint32_t mm_error_attempts(const struct mm_error *err);

/**
 * `true` when the same call could succeed if made again later (throttling, transient server
 * errors, timeouts). `err` NULL gives `false`. Thread-safe.
 */
bool mm_error_is_retryable(const struct mm_error *err);

/**
 * Frees an error and every string read from it. NULL does nothing.
 *
 * Not thread-safe with respect to `err`: no other thread may use it during or after the call.
 */
void mm_error_free(struct mm_error *err);

/**
 * A new, empty usage record. Free it with `mm_usage_record_free`. NULL only if allocation
 * fails. Thread-safe.
 */
struct mm_usage_record *mm_usage_record_new(void);

/**
 * Frees a usage record. NULL does nothing. No other thread may use it during or after.
 */
void mm_usage_record_free(struct mm_usage_record *record);

/**
 * Sets the customer identifier (from `ResolveCustomer`). Copied. NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_customer_identifier(struct mm_usage_record *record,
                                                  const char *customer_identifier);

/**
 * Sets the customer's AWS account id (use with a license ARN instead of a customer
 * identifier). Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_customer_aws_account_id(struct mm_usage_record *record,
                                                      const char *customer_aws_account_id);

/**
 * Sets the customer's license ARN. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_license_arn(struct mm_usage_record *record, const char *license_arn);

/**
 * Sets the dimension (as defined in the product listing). Copied. NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_dimension(struct mm_usage_record *record,
                                        const char *dimension);

/**
 * Sets the quantity; the call fails with `MM_STATUS_INVALID_INPUT` (field
 * `UsageRecords[i].Quantity`) unless it is within 0..=2147483647. `record` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_quantity(struct mm_usage_record *record, int64_t quantity);

/**
 * Sets when the usage happened, in seconds since the Unix epoch (UTC; the service accepts
 * the past 6 hours). `record` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_timestamp(struct mm_usage_record *record, int64_t epoch_seconds);

/**
 * Sets when the usage happened, in milliseconds since the Unix epoch. `record` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one record.
 */
mm_status mm_usage_record_set_timestamp_ms(struct mm_usage_record *record, int64_t epoch_millis);

/**
 * Appends a usage allocation: `quantity` of the record's usage tagged with `n_tags` tags
 * (`tags` may be NULL when `n_tags` is 0). The tags are copied.
 *
 * `record` NULL, `tags` NULL with `n_tags > 0`, or a NULL key/value →
 * `MM_STATUS_NULL_PARAMETER`; a string not UTF-8 → `MM_STATUS_INVALID_INPUT`. Nothing is
 * appended on failure. Not thread-safe on one record.
 */
mm_status mm_usage_record_add_allocation(struct mm_usage_record *record,
                                         int64_t quantity,
                                         const struct mm_tag *tags,
                                         size_t n_tags);

/**
 * A new, empty `BatchMeterUsage` input. Free it with `mm_batch_meter_usage_input_free`.
 * NULL only if allocation fails. Thread-safe.
 */
struct mm_batch_meter_usage_input *mm_batch_meter_usage_input_new(void);

/**
 * Frees the input. NULL does nothing. No other thread may use it during or after.
 */
void mm_batch_meter_usage_input_free(struct mm_batch_meter_usage_input *input);

/**
 * Sets the product code (optional when every record carries a license ARN). Copied. NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
 */
mm_status mm_batch_meter_usage_input_set_product_code(struct mm_batch_meter_usage_input *input,
                                                      const char *product_code);

/**
 * Appends a copy of `record` (the caller keeps and frees `record`). More than 25 records
 * fail when the call is made. NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
 */
mm_status mm_batch_meter_usage_input_add_record(struct mm_batch_meter_usage_input *input,
                                                const struct mm_usage_record *record);

/**
 * Appends the common SaaS record in one call: `customer_identifier` used `quantity` of
 * `dimension` at `epoch_seconds`. The strings are copied.
 *
 * NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT` (nothing is
 * appended on failure). Not thread-safe on one input.
 */
mm_status mm_batch_meter_usage_input_add_usage(struct mm_batch_meter_usage_input *input,
                                               int64_t epoch_seconds,
                                               const char *customer_identifier,
                                               const char *dimension,
                                               int64_t quantity);

/**
 * The number of records in the input (0 if `input` is NULL). Thread-safe.
 */
size_t mm_batch_meter_usage_input_record_count(const struct mm_batch_meter_usage_input *input);

/**
 * A new, empty `MeterUsage` input. Free it with `mm_meter_usage_input_free`. NULL only if
 * allocation fails. Thread-safe.
 */
struct mm_meter_usage_input *mm_meter_usage_input_new(void);

/**
 * Frees the input. NULL does nothing. No other thread may use it during or after.
 */
void mm_meter_usage_input_free(struct mm_meter_usage_input *input);

/**
 * Sets the product code. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_product_code(struct mm_meter_usage_input *input,
                                                const char *product_code);

/**
 * Sets when the usage happened, in seconds since the Unix epoch. `input` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_timestamp(struct mm_meter_usage_input *input,
                                             int64_t epoch_seconds);

/**
 * Sets when the usage happened, in milliseconds since the Unix epoch. `input` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_timestamp_ms(struct mm_meter_usage_input *input,
                                                int64_t epoch_millis);

/**
 * Sets the usage dimension. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_usage_dimension(struct mm_meter_usage_input *input,
                                                   const char *usage_dimension);

/**
 * Sets the quantity (checked when the call is made: 0..=2147483647, field `UsageQuantity`).
 * `input` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_usage_quantity(struct mm_meter_usage_input *input,
                                                  int64_t quantity);

/**
 * Asks for a permission check only: nothing is metered and the call fails with
 * `MM_STATUS_DRY_RUN_OPERATION` when it would have succeeded. `input` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_dry_run(struct mm_meter_usage_input *input, bool dry_run);

/**
 * Appends a usage allocation (see `mm_usage_record_add_allocation`). The tags are copied.
 * NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`.
 * Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_add_allocation(struct mm_meter_usage_input *input,
                                              int64_t quantity,
                                              const struct mm_tag *tags,
                                              size_t n_tags);

/**
 * Sets the idempotency token (without one, each call generates a UUID that its retries
 * reuse). Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`.
 * Not thread-safe on one input.
 */
mm_status mm_meter_usage_input_set_client_token(struct mm_meter_usage_input *input,
                                                const char *client_token);

/**
 * A new, empty `ResolveCustomer` input. Free it with `mm_resolve_customer_input_free`.
 * NULL only if allocation fails. Thread-safe.
 */
struct mm_resolve_customer_input *mm_resolve_customer_input_new(void);

/**
 * Frees the input. NULL does nothing. No other thread may use it during or after.
 */
void mm_resolve_customer_input_free(struct mm_resolve_customer_input *input);

/**
 * Sets the registration token (the `x-amzn-marketplace-token` form field). Copied. NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
 */
mm_status mm_resolve_customer_input_set_registration_token(struct mm_resolve_customer_input *input,
                                                           const char *registration_token);

/**
 * A new, empty `RegisterUsage` input. Free it with `mm_register_usage_input_free`. NULL only
 * if allocation fails. Thread-safe.
 */
struct mm_register_usage_input *mm_register_usage_input_new(void);

/**
 * Frees the input. NULL does nothing. No other thread may use it during or after.
 */
void mm_register_usage_input_free(struct mm_register_usage_input *input);

/**
 * Sets the product code. Copied. NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
 */
mm_status mm_register_usage_input_set_product_code(struct mm_register_usage_input *input,
                                                   const char *product_code);

/**
 * Sets the public key version (checked when the call is made: 1..=2147483647, field
 * `PublicKeyVersion`). `input` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one input.
 */
mm_status mm_register_usage_input_set_public_key_version(struct mm_register_usage_input *input,
                                                         int64_t public_key_version);

/**
 * Sets the nonce echoed in the signed token. Copied. NULL → `MM_STATUS_NULL_PARAMETER`;
 * not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one input.
 */
mm_status mm_register_usage_input_set_nonce(struct mm_register_usage_input *input,
                                            const char *nonce);

/**
 * Makes a meter sending through `client` with `config` (copied; both may be freed afterwards
 * — the meter keeps its own reference to the client). Opens (creating or migrating) the store
 * and starts the group-commit thread and the background flusher when configured.
 *
 * On success stores a new meter in `*meter_out` (free it with `mm_meter_free`). Fails with
 * `MM_STATUS_INVALID_CONFIG` (MeterUsage mode without a product code), `MM_STATUS_INVALID_INPUT`
 * (an empty product code) or `MM_STATUS_INVALID_STATE` (the store cannot be opened, or
 * another meter owns it: the message names its pid and host), filling `*err_out` when it is
 * not NULL. `client`, `config` or `meter_out` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Thread-safe.
 *
 * One meter owns a store file at a time, from `mm_meter_new` to a successful
 * `mm_meter_close` (or `mm_meter_free`). A meter belongs to the process that created it: after `fork()` every
 * call on it in the child returns `MM_STATUS_INVALID_STATE` ("create the UsageMeter after
 * fork"), and `mm_meter_free` there releases only the child's memory.
 */
mm_status mm_meter_new(const struct mm_client *client,
                       const struct mm_meter_config *config,
                       struct mm_meter **meter_out,
                       struct mm_error **err_out);

/**
 * Frees a meter. NULL does nothing (`MM_STATUS_OK`). Does not flush: call `mm_meter_close`
 * first to send what may be sent (a file store keeps everything else for the next meter on
 * the same file; events buffered by `MM_METER_DURABILITY_MEMORY` are written to the store
 * here).
 *
 * Waits for event callbacks in flight; none runs after it returns. No other call may be
 * running on `meter`, but one: a call whose event callback had another thread free the
 * meter (as the C++ wrapper's destructor does from `on_event`) keeps what it uses alive
 * until it returns. Called from the meter's own event callback it frees nothing and
 * returns `MM_STATUS_INVALID_STATE` (it would wait for that callback): free the meter after
 * the callback returns.
 */
mm_status mm_meter_free(struct mm_meter *meter);

/**
 * Seals what may be sealed and sends every sealed bucket now; blocks until done.
 *
 * On success stores a new summary in `*summary_out` (free it with `mm_flush_summary_free`).
 * A retryable failure that outlasted the client's retries (throttling, transport) is not a
 * failure of the call: it stops the flush early and is reported by
 * `mm_flush_summary_interrupted`; the buckets stay sealed for the next flush. So the summary
 * is required: `summary_out` NULL → `MM_STATUS_NULL_PARAMETER` and nothing is flushed. Other
 * failures (credentials, access, a closed meter: `MM_STATUS_INVALID_STATE`; a store busy,
 * full or failing I/O, which `mm_error_is_retryable` says may succeed later) return their
 * status and fill `*err_out` when it is not NULL. `meter` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Thread-safe (flushes of one meter run one at a time); not from an event callback.
 */
mm_status mm_meter_flush(const struct mm_meter *meter,
                         struct mm_flush_summary **summary_out,
                         struct mm_error **err_out);

/**
 * Stops the background flusher and flushes what may be flushed (as `mm_meter_flush`, with
 * the same required `summary_out`); later `mm_meter_record` and `mm_meter_flush` calls fail
 * with `MM_STATUS_INVALID_STATE`. Unsealed hours stay in the store (a file store sends them
 * after a restart). The meter must still be freed with `mm_meter_free`. A later call waits
 * for the first and stores an empty summary; after a failed final flush the meter still
 * owns the store and a later call flushes again. `meter` or `summary_out` NULL →
 * `MM_STATUS_NULL_PARAMETER` (nothing is closed). Thread-safe; not from an event callback.
 */
mm_status mm_meter_close(const struct mm_meter *meter,
                         struct mm_flush_summary **summary_out,
                         struct mm_error **err_out);

/**
 * Stores the bucket counts per state and the oldest unsent hour in a new `*status_out`
 * (writing events buffered in memory to the store first; free it with
 * `mm_meter_status_free`). `meter` or `status_out` NULL → `MM_STATUS_NULL_PARAMETER`; a store
 * failure fills `*err_out`. Thread-safe.
 */
mm_status mm_meter_get_status(const struct mm_meter *meter,
                              struct mm_meter_status **status_out,
                              struct mm_error **err_out);

/**
 * A new clock reading `epoch_seconds`. Free it with `mm_clock_free`. NULL only if allocation
 * fails. Thread-safe.
 */
struct mm_clock *mm_clock_new(int64_t epoch_seconds);

/**
 * Sets the clock to `epoch_seconds`. `clock` NULL → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
 */
mm_status mm_clock_set(const struct mm_clock *clock, int64_t epoch_seconds);

/**
 * Moves the clock by `seconds` (negative moves it back). `clock` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Thread-safe.
 */
mm_status mm_clock_advance(const struct mm_clock *clock, int64_t seconds);

/**
 * The time the clock reads (epoch seconds); 0 if `clock` is NULL. Thread-safe.
 */
int64_t mm_clock_now(const struct mm_clock *clock);

/**
 * Frees the caller's reference to a clock (meters using it keep theirs). NULL does nothing.
 * No other thread may use this handle during or after the call.
 */
void mm_clock_free(struct mm_clock *clock);

/**
 * A new meter configuration with the defaults. Free it with `mm_meter_config_free`. NULL
 * only if allocation fails. Thread-safe.
 */
struct mm_meter_config *mm_meter_config_new(void);

/**
 * Frees a meter configuration. NULL does nothing. Meters made from it are unaffected.
 */
void mm_meter_config_free(struct mm_meter_config *config);

/**
 * Sets the SQLite store file (created when missing; WAL mode). NULL: the in-memory store
 * (the default; for tests — nothing survives the process). The path is copied as bytes (it
 * need not be UTF-8). `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_path(struct mm_meter_config *config, const char *path);

/**
 * Puts the meter on the fleet store instead of a SQLite file: one PostgreSQL shared by every
 * replica of a service (`"postgresql://user@host:5432/db"`, or `?host=/socket/dir`), each
 * customer-hour billed once across the fleet. Copied. NULL: back to `path` (or memory). Not
 * UTF-8 → `MM_STATUS_INVALID_INPUT`; a URL that does not parse, or both a path and a URL,
 * are refused by `mm_meter_new` (field `database_url`). The URL (and any password in it) is
 * never logged or put in an error. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_database_url(struct mm_meter_config *config,
                                           const char *database_url);

/**
 * The fleet store's name for this writer (default: host name and process id). Copied.
 * NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`; an empty one is
 * refused by `mm_meter_new` (field `replica_id`). Not thread-safe on one config.
 */
mm_status mm_meter_config_set_replica_id(struct mm_meter_config *config, const char *replica_id);

/**
 * Fleet store: how many replicas send at a time per product (default 1, so the fleet
 * calls the service at the rate one meter does). 0 is refused by `mm_meter_new` (field
 * `fleet_senders`): nobody would send. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not
 * thread-safe on one config.
 */
mm_status mm_meter_config_set_fleet_senders(struct mm_meter_config *config, uint32_t senders);

/**
 * Fleet store: how long a sender's claim on buckets lasts, in milliseconds (default
 * 120,000); a dead sender's buckets are sent again, identical, by another replica after
 * it. 0 and more than 1,800,000 (30 minutes) are refused by `mm_meter_new` (field
 * `fleet_lease`). `config` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_fleet_lease_millis(struct mm_meter_config *config, uint64_t millis);

/**
 * Fleet store: the cut-over from a SQLite meter. The first hour this store counts (epoch
 * seconds, rounded down to the hour). Before it `mm_meter_record` refuses every event, and
 * after it an event of an earlier hour still within its grace (`MM_STATUS_INVALID_INPUT`,
 * field `timestamp`): they belong to the SQLite meter. A late event of an earlier hour is
 * counted in the current hour, as any late event.
 * `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_start_hour(struct mm_meter_config *config, int64_t epoch_seconds);

/**
 * Sets the product code of every bucket (required for customer identifiers and the MeterUsage
 * mode; without it every record needs an account id and a license ARN). Copied. NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT` (an empty code is refused
 * by `mm_meter_new`). Not thread-safe on one config.
 */
mm_status mm_meter_config_set_product_code(struct mm_meter_config *config,
                                           const char *product_code);

/**
 * Sets the mode: `MM_METER_MODE_BATCH` (default) or `MM_METER_MODE_METER_USAGE`. Another
 * number → `MM_STATUS_INVALID_INPUT` (field `mode`); `config` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_mode(struct mm_meter_config *config, uint32_t mode);

/**
 * Sets when `mm_meter_record` returns: `MM_METER_DURABILITY_DURABLE` (default),
 * `MM_METER_DURABILITY_GROUP` or `MM_METER_DURABILITY_MEMORY`. Another number →
 * `MM_STATUS_INVALID_INPUT` (field `durability`); `config` NULL → `MM_STATUS_NULL_PARAMETER`.
 * Not thread-safe on one config.
 */
mm_status mm_meter_config_set_durability(struct mm_meter_config *config, uint32_t durability);

/**
 * Sets the time after an hour's end before it is sealed, in seconds (default 300). At most
 * 14400 (the service's window less two hours, so an hour is left to send in): more makes
 * `mm_meter_new` fail with `MM_STATUS_INVALID_INPUT` naming `grace`.
 * `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_grace_seconds(struct mm_meter_config *config, uint64_t seconds);

/**
 * Turns zero fill on or off (default off): the hours of customers registered with
 * `mm_meter_register_customer` are reported as 0 when they had no usage. `config` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_zero_fill(struct mm_meter_config *config, bool zero_fill);

/**
 * The SQLite store's commits: `true` (default) fsyncs each one, which survives the machine
 * losing power; `false` commits without an fsync (SQLite's `synchronous=NORMAL` in WAL
 * mode): a commit survives the process being killed, but the last commits before the
 * machine itself fails may be lost, and commits are several times faster. For a store on a
 * disk that does not outlive its machine (a container's ephemeral storage) `true` protects
 * nothing. `mm_meter_new` refuses `false` with the fleet store
 * (`MM_STATUS_INVALID_INPUT`, field `power_loss_safe`): its commits are as durable as the
 * database makes them. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one
 * config.
 */
mm_status mm_meter_config_set_power_loss_safe(struct mm_meter_config *config, bool power_loss_safe);

/**
 * Flushes in the background on the library's runtime every `seconds` (default 60, as in
 * every face; 0: never). More than 1800 makes `mm_meter_new` fail with
 * `MM_STATUS_INVALID_INPUT` naming `flush_interval`: window alarms are raised by flushes. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on
 * one config.
 */
mm_status mm_meter_config_set_flush_interval_seconds(struct mm_meter_config *config,
                                                     uint64_t seconds);

/**
 * Sets the event callback (NULL: none) and the `user_data` passed to it.
 *
 * The callback is called on the thread that caused the event: a `mm_meter_record` caller
 * (late events), the group-commit thread (`MM_METER_DURABILITY_GROUP`), the thread inside
 * `mm_meter_flush`/`mm_meter_close`/`mm_meter_get_status`, or the meter's event thread
 * (`mm-events`), which delivers the background flush's events in order as they come (they
 * may arrive after events reported on the other threads). So it and `user_data` must be
 * thread-safe, and it must return quickly
 * and never unwind (no C++ exception, no longjmp). While calling it the meter holds no lock
 * that `mm_meter_get_status`, `mm_meter_get_dead_letters`, `mm_meter_requeue` or
 * `mm_meter_register_customer` take, so the callback may call them. Calls that could wait
 * for the callback itself are refused when made from the meter's own callback, and return
 * `MM_STATUS_INVALID_STATE` without doing anything: `mm_meter_record` with
 * `MM_METER_DURABILITY_GROUP` (a late event is reported on the group-commit thread, and a
 * record there would wait for that thread; with the other durabilities it works),
 * `mm_meter_flush`, `mm_meter_close` and `mm_meter_free` (the meter is not freed; free it
 * after the callback returns).
 *
 * No callback runs after `mm_meter_free` returns. `config` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_event_callback(struct mm_meter_config *config,
                                             mm_meter_event_callback callback,
                                             void *user_data);

/**
 * Sets the meter's clock (NULL: the system clock, the default). The meter keeps its own
 * reference to `clock`. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
 */
mm_status mm_meter_config_set_clock(struct mm_meter_config *config,
                                    const struct mm_clock *clock);

/**
 * A new, empty usage event. Free it with `mm_usage_event_free`. NULL only if allocation
 * fails. Thread-safe.
 */
struct mm_usage_event *mm_usage_event_new(void);

/**
 * Frees a usage event. NULL does nothing. No other thread may use `event` during or after
 * the call.
 */
void mm_usage_event_free(struct mm_usage_event *event);

/**
 * Bills the event to a `CustomerIdentifier` (with the meter's product code). Copied. An event
 * bills one customer: an identifier, or an AWS account id with its license ARN; any other
 * combination is refused by `mm_meter_record` naming the field. `event` or
 * `customer_identifier` NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 →
 * `MM_STATUS_INVALID_INPUT`. Not thread-safe on one event.
 */
mm_status mm_usage_event_set_customer_identifier(struct mm_usage_event *event,
                                                 const char *customer_identifier);

/**
 * Bills the event to an AWS account (`CustomerAWSAccountId`); needs
 * `mm_usage_event_set_license_arn` too. Copied. `event` or `customer_aws_account_id` NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
 * event.
 */
mm_status mm_usage_event_set_customer_aws_account_id(struct mm_usage_event *event,
                                                     const char *customer_aws_account_id);

/**
 * The license (`LicenseArn`) of an AWS account customer. Copied. `event` or `license_arn`
 * NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on
 * one event.
 */
mm_status mm_usage_event_set_license_arn(struct mm_usage_event *event, const char *license_arn);

/**
 * Sets the dimension (required). Copied. `event` or `dimension` NULL →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
 * event.
 */
mm_status mm_usage_event_set_dimension(struct mm_usage_event *event, const char *dimension);

/**
 * Sets the quantity (required; its range is checked by `mm_meter_record`). `event` NULL →
 * `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one event.
 */
mm_status mm_usage_event_set_quantity(struct mm_usage_event *event, int64_t quantity);

/**
 * Sets when the usage happened (epoch seconds). Without it the event is recorded at the
 * meter clock's now. `event` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one event.
 */
mm_status mm_usage_event_set_timestamp(struct mm_usage_event *event, int64_t epoch_seconds);

/**
 * Removes the timestamp: the event is recorded at the meter clock's now again. `event` NULL
 * → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one event.
 */
mm_status mm_usage_event_clear_timestamp(struct mm_usage_event *event);

/**
 * Appends a usage allocation: `quantity` of the event's usage tagged with `n_tags` tags
 * (`tags` may be NULL when `n_tags` is 0). The tags are copied. The allocations of an event
 * must sum to its quantity (checked by `mm_meter_record`).
 *
 * `event` NULL, `tags` NULL with `n_tags > 0`, or a NULL key/value →
 * `MM_STATUS_NULL_PARAMETER`; a string not UTF-8, too many tags or too many allocations →
 * `MM_STATUS_INVALID_INPUT`. Nothing is appended on failure. Not thread-safe on one event.
 */
mm_status mm_usage_event_add_allocation(struct mm_usage_event *event,
                                        int64_t quantity,
                                        const struct mm_tag *tags,
                                        size_t n_tags);

/**
 * Removes every allocation. `event` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on
 * one event.
 */
mm_status mm_usage_event_clear_allocations(struct mm_usage_event *event);

/**
 * Records `event` and returns once it is as durable as the meter's durability says. The
 * event is copied; it may be freed or changed afterwards.
 *
 * The customer is required except in the MeterUsage mode, which ignores it. An event whose
 * hour is already sealed is counted in the current hour and reported as
 * `MM_METER_EVENT_KIND_LATE_EVENT`.
 *
 * Bad input fails with `MM_STATUS_INVALID_INPUT` and an error whose field names what is
 * wrong (`dimension` when it is missing or invalid, `quantity`, `customer_identifier`,
 * `license_arn`, `allocations[0].AllocatedUsageQuantity`, …); nothing is recorded. A closed
 * meter gives `MM_STATUS_INVALID_STATE`. `meter` or `event` NULL →
 * `MM_STATUS_NULL_PARAMETER` (the message names which). Thread-safe.
 */
mm_status mm_meter_record(const struct mm_meter *meter,
                          const struct mm_usage_event *event,
                          struct mm_error **err_out);

/**
 * Registers a customer for zero fill: from the current hour on, each of `dimensions`
 * (`n_dimensions` strings) is reported every hour, as 0 when there was no usage (only when
 * zero fill is on). The customer is `customer_identifier`, or `customer_aws_account_id` with `license_arn`
 * (NULL for the others; all NULL in the MeterUsage mode).
 *
 * Bad input → `MM_STATUS_INVALID_INPUT` naming the field. `meter` NULL, or `dimensions` NULL
 * with `n_dimensions` > 0, or a NULL dimension → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
 */
mm_status mm_meter_register_customer(const struct mm_meter *meter,
                                     const char *customer_identifier,
                                     const char *customer_aws_account_id,
                                     const char *license_arn,
                                     const char *const *dimensions,
                                     size_t n_dimensions,
                                     struct mm_error **err_out);

/**
 * Stops zero-filling a customer (one that churned): its registrations for `dimensions`
 * (`n_dimensions` strings), or for every dimension when `dimensions` is NULL and
 * `n_dimensions` 0, are removed at once, so no zero is made for an hour not zero-filled yet
 * (usage recorded is still sent). The customer is given as to `mm_meter_register_customer`.
 * `removed_out` (may be NULL) receives how many registrations were removed.
 *
 * Bad input → `MM_STATUS_INVALID_INPUT` naming the field. `meter` NULL, or `dimensions` NULL
 * with `n_dimensions` > 0, or a NULL dimension → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
 */
mm_status mm_meter_unregister_customer(const struct mm_meter *meter,
                                       const char *customer_identifier,
                                       const char *customer_aws_account_id,
                                       const char *license_arn,
                                       const char *const *dimensions,
                                       size_t n_dimensions,
                                       size_t *removed_out,
                                       struct mm_error **err_out);

/**
 * A new filter matching every dead letter. Free it with `mm_requeue_filter_free`. NULL only
 * if allocation fails. Thread-safe.
 */
struct mm_requeue_filter *mm_requeue_filter_new(void);

/**
 * Frees a filter. NULL does nothing. No other thread may use `filter` during or after the
 * call.
 */
void mm_requeue_filter_free(struct mm_requeue_filter *filter);

/**
 * Only dead letters with this reason: the record's Status (`"CustomerNotSubscribed"`, …) or
 * the error code. Copied. `filter` or `reason` NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8
 * → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one filter.
 */
mm_status mm_requeue_filter_set_reason(struct mm_requeue_filter *filter, const char *reason);

/**
 * Only dead letters of this customer identifier. Copied. NULL arguments →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
 * filter.
 */
mm_status mm_requeue_filter_set_customer_identifier(struct mm_requeue_filter *filter,
                                                    const char *customer_identifier);

/**
 * Only dead letters of this AWS account (with `mm_requeue_filter_set_license_arn`). Copied.
 * NULL arguments → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not
 * thread-safe on one filter.
 */
mm_status mm_requeue_filter_set_customer_aws_account_id(struct mm_requeue_filter *filter,
                                                        const char *customer_aws_account_id);

/**
 * The license ARN of the account customer to match. Copied. NULL arguments →
 * `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`. Not thread-safe on one
 * filter.
 */
mm_status mm_requeue_filter_set_license_arn(struct mm_requeue_filter *filter,
                                            const char *license_arn);

/**
 * Only dead letters of the hour containing `epoch_seconds` (any second of it). `filter` NULL
 * → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one filter.
 */
mm_status mm_requeue_filter_set_hour(struct mm_requeue_filter *filter, int64_t epoch_seconds);

/**
 * Sends chosen dead letters again: those `filter` matches whose hour is still inside the
 * service's window go back to sealed, with their frozen quantity, and leave the dead-letter
 * list; the next flush sends them. Writes how many to `*count_out` when it is not NULL.
 *
 * A customer combination other than an identifier, or an account id with its license ARN →
 * `MM_STATUS_INVALID_INPUT` naming the field; a store failure → `MM_STATUS_INVALID_STATE`.
 * `meter` or `filter` NULL → `MM_STATUS_NULL_PARAMETER` (an empty filter matches every dead
 * letter). Thread-safe.
 */
mm_status mm_meter_requeue(const struct mm_meter *meter,
                           const struct mm_requeue_filter *filter,
                           uint64_t *count_out,
                           struct mm_error **err_out);

/**
 * Frees a flush summary and the strings read from it. NULL does nothing.
 */
void mm_flush_summary_free(struct mm_flush_summary *summary);

/**
 * Buckets sealed by this flush. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_sealed_count(const struct mm_flush_summary *summary);

/**
 * Records sent (re-sends included). 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_sent_count(const struct mm_flush_summary *summary);

/**
 * Calls made to the service. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_call_count(const struct mm_flush_summary *summary);

/**
 * Buckets acknowledged. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_acked_count(const struct mm_flush_summary *summary);

/**
 * Buckets dead-lettered. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_dead_lettered_count(const struct mm_flush_summary *summary);

/**
 * Buckets that passed the service's window unsent. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_expired_count(const struct mm_flush_summary *summary);

/**
 * Records the service returned unprocessed that were sent again. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_resent_unprocessed_count(const struct mm_flush_summary *summary);

/**
 * Buckets left for a later flush. 0 if `summary` is NULL. Thread-safe.
 */
uint64_t mm_flush_summary_deferred_count(const struct mm_flush_summary *summary);

/**
 * `MM_STATUS_OK`, or the retryable error (throttling, transport) that stopped this flush
 * early; its buckets stay sealed for the next flush. `MM_STATUS_NULL_PARAMETER` for a NULL
 * summary.
 */
mm_status mm_flush_summary_interrupted(const struct mm_flush_summary *summary);

/**
 * The message of the error that stopped this flush early; NULL when it was not interrupted
 * (or `summary` is NULL). Owned by `summary`.
 */
const char *mm_flush_summary_interrupted_message(const struct mm_flush_summary *summary);

/**
 * Frees a meter status. NULL does nothing.
 */
void mm_meter_status_free(struct mm_meter_status *status);

/**
 * Buckets whose hour is still open (or within grace). 0 if `status` is NULL. Thread-safe.
 */
uint64_t mm_meter_status_pending_count(const struct mm_meter_status *status);

/**
 * Buckets sealed and not yet acknowledged (those being sent included). 0 if `status` is NULL. Thread-safe.
 */
uint64_t mm_meter_status_sealed_count(const struct mm_meter_status *status);

/**
 * Buckets metered by the service. 0 if `status` is NULL. Thread-safe.
 */
uint64_t mm_meter_status_acked_count(const struct mm_meter_status *status);

/**
 * Buckets refused by the service (see `mm_meter_get_dead_letters`). 0 if `status` is NULL. Thread-safe.
 */
uint64_t mm_meter_status_dead_lettered_count(const struct mm_meter_status *status);

/**
 * Buckets that passed the service's window unsent. 0 if `status` is NULL. Thread-safe.
 */
uint64_t mm_meter_status_expired_count(const struct mm_meter_status *status);

/**
 * The oldest hour not yet acknowledged, dead-lettered or expired: returns `true` and stores
 * it (epoch seconds) in `*hour_out` when there is one; returns `false` and writes nothing
 * when there is none, or when `status` or `hour_out` is NULL.
 */
bool mm_meter_status_oldest_unsent_hour(const struct mm_meter_status *status, int64_t *hour_out);

/**
 * On the fleet store, this meter's replica id (NUL-terminated UTF-8, valid until
 * `mm_meter_status_free`; the counts are the whole fleet's for the product). NULL on a local
 * store, or when `status` is NULL. Thread-safe.
 */
const char *mm_meter_status_replica_id(const struct mm_meter_status *status);

/**
 * When this meter's last flush ended (a caller's, `mm_meter_close`'s, or the background
 * flusher's), by the meter's clock: returns `true` and stores it (epoch
 * seconds) in `*at_out`; returns `false` and writes nothing before the first flush, or when
 * `status` or `at_out` is NULL.
 */
bool mm_meter_status_last_flush_at(const struct mm_meter_status *status, int64_t *at_out);

/**
 * What failed or stopped this meter's last flush (`"Code: message"`: an error, or throttling,
 * a transport failure), NUL-terminated UTF-8 valid until `mm_meter_status_free`. NULL when it
 * went well, before the first flush, or when `status` is NULL. A background flush has no
 * caller to return its error to: a health check reads it here. Thread-safe.
 */
const char *mm_meter_status_last_flush_error(const struct mm_meter_status *status);

/**
 * Stores a snapshot of every dead letter in `*list_out` (free it with
 * `mm_dead_letters_free`). `meter` or `list_out` NULL → `MM_STATUS_NULL_PARAMETER`; a store
 * failure fills `*err_out`. Thread-safe.
 */
mm_status mm_meter_get_dead_letters(const struct mm_meter *meter,
                                    struct mm_dead_letters **list_out,
                                    struct mm_error **err_out);

/**
 * Frees a dead-letter list and every string read from it. NULL does nothing.
 */
void mm_dead_letters_free(struct mm_dead_letters *list);

/**
 * The number of dead letters (0 if `list` is NULL). Thread-safe.
 */
size_t mm_dead_letters_count(const struct mm_dead_letters *list);

/**
 * Dead letter `i`'s customer identifier (NULL for an account customer). Owned by `list`.
 */
const char *mm_dead_letters_customer_identifier(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s customer AWS account id (NULL for a customer identifier). Owned by `list`.
 */
const char *mm_dead_letters_customer_aws_account_id(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s license ARN (NULL for a customer identifier). Owned by `list`.
 */
const char *mm_dead_letters_license_arn(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s dimension. Owned by `list`; NULL if out of range.
 */
const char *mm_dead_letters_dimension(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s hour (epoch seconds); 0 if out of range.
 */
int64_t mm_dead_letters_hour(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s frozen quantity; 0 if out of range.
 */
int64_t mm_dead_letters_quantity(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s reason: the record's Status (`"CustomerNotSubscribed"`, …) or the error
 * code. Owned by `list`; NULL if out of range.
 */
const char *mm_dead_letters_reason(const struct mm_dead_letters *list, size_t i);

/**
 * Dead letter `i`'s details. Owned by `list`; NULL if out of range.
 */
const char *mm_dead_letters_message(const struct mm_dead_letters *list, size_t i);

/**
 * When dead letter `i` was dead-lettered (epoch seconds, meter clock); 0 if out of range.
 */
int64_t mm_dead_letters_at(const struct mm_dead_letters *list, size_t i);

/**
 * Frees the output and every string read from it. NULL does nothing. No other thread may use
 * it during or after.
 */
void mm_batch_meter_usage_output_free(struct mm_batch_meter_usage_output *out);

/**
 * The number of results (processed records). 0 if `out` is NULL. Thread-safe.
 */
size_t mm_batch_meter_usage_output_result_count(const struct mm_batch_meter_usage_output *out);

/**
 * The status of result `i`; `MM_USAGE_RECORD_STATUS_UNKNOWN` for a status this version does
 * not know (see `..._result_status_str`), for `out` NULL or `i` out of range. Thread-safe.
 */
mm_usage_record_status mm_batch_meter_usage_output_result_status(const struct mm_batch_meter_usage_output *out,
                                                                 size_t i);

/**
 * The status of result `i` as the service sent it (`"Success"`, …; `""` when absent). Owned
 * by `out`. NULL if `out` is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_result_status_str(const struct mm_batch_meter_usage_output *out,
                                                          size_t i);

/**
 * The metering record id of result `i` (NULL when the service gave none, e.g.
 * `CustomerNotSubscribed`). Owned by `out`. NULL if `out` is NULL or `i` out of range.
 * Thread-safe.
 */
const char *mm_batch_meter_usage_output_result_metering_record_id(const struct mm_batch_meter_usage_output *out,
                                                                  size_t i);

/**
 * The customer identifier of result `i`'s record (NULL when absent). Owned by `out`. NULL if
 * `out` is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_result_customer_identifier(const struct mm_batch_meter_usage_output *out,
                                                                   size_t i);

/**
 * The customer AWS account id of result `i`'s record (NULL when absent). Owned by `out`.
 * NULL if `out` is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_result_customer_aws_account_id(const struct mm_batch_meter_usage_output *out,
                                                                       size_t i);

/**
 * The license ARN of result `i`'s record (NULL when absent). Owned by `out`. NULL if `out`
 * is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_result_license_arn(const struct mm_batch_meter_usage_output *out,
                                                           size_t i);

/**
 * The dimension of result `i`'s record. Owned by `out`. NULL if `out` is NULL, `i` out of
 * range or the service echoed no record. Thread-safe.
 */
const char *mm_batch_meter_usage_output_result_dimension(const struct mm_batch_meter_usage_output *out,
                                                         size_t i);

/**
 * The quantity of result `i`'s record (0 when absent, `out` NULL or `i` out of range).
 * Thread-safe.
 */
int64_t mm_batch_meter_usage_output_result_quantity(const struct mm_batch_meter_usage_output *out,
                                                    size_t i);

/**
 * The timestamp of result `i`'s record, seconds since the Unix epoch (0 when `out` is NULL
 * or `i` out of range). Thread-safe.
 */
int64_t mm_batch_meter_usage_output_result_timestamp(const struct mm_batch_meter_usage_output *out,
                                                     size_t i);

/**
 * The number of records the service did not process (send them again). 0 if `out` is NULL.
 * Thread-safe.
 */
size_t mm_batch_meter_usage_output_unprocessed_count(const struct mm_batch_meter_usage_output *out);

/**
 * The customer identifier of unprocessed record `i` (NULL when absent). Owned by `out`. NULL
 * if `out` is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_unprocessed_customer_identifier(const struct mm_batch_meter_usage_output *out,
                                                                        size_t i);

/**
 * The customer AWS account id of unprocessed record `i` (NULL when absent). Owned by `out`.
 * NULL if `out` is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_unprocessed_customer_aws_account_id(const struct mm_batch_meter_usage_output *out,
                                                                            size_t i);

/**
 * The license ARN of unprocessed record `i` (NULL when absent). Owned by `out`. NULL if
 * `out` is NULL or `i` out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_unprocessed_license_arn(const struct mm_batch_meter_usage_output *out,
                                                                size_t i);

/**
 * The dimension of unprocessed record `i`. Owned by `out`. NULL if `out` is NULL or `i` out
 * of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_unprocessed_dimension(const struct mm_batch_meter_usage_output *out,
                                                              size_t i);

/**
 * The quantity of unprocessed record `i` (0 when absent, `out` NULL or `i` out of range).
 * Thread-safe.
 */
int64_t mm_batch_meter_usage_output_unprocessed_quantity(const struct mm_batch_meter_usage_output *out,
                                                         size_t i);

/**
 * Whether unprocessed record `i` has a quantity (false when `out` is NULL or `i` out of
 * range). Thread-safe.
 */
bool mm_batch_meter_usage_output_unprocessed_has_quantity(const struct mm_batch_meter_usage_output *out,
                                                          size_t i);

/**
 * The number of usage allocations of unprocessed record `i` (0 when `out` is NULL or `i` out
 * of range). Thread-safe.
 */
size_t mm_batch_meter_usage_output_unprocessed_allocation_count(const struct mm_batch_meter_usage_output *out,
                                                                size_t i);

/**
 * The allocated quantity of allocation `j` of unprocessed record `i` (0 when `out` is NULL
 * or an index out of range). Thread-safe.
 */
int64_t mm_batch_meter_usage_output_unprocessed_allocation_quantity(const struct mm_batch_meter_usage_output *out,
                                                                    size_t i,
                                                                    size_t j);

/**
 * The number of tags of allocation `j` of unprocessed record `i` (0 when `out` is NULL or an
 * index out of range). Thread-safe.
 */
size_t mm_batch_meter_usage_output_unprocessed_allocation_tag_count(const struct mm_batch_meter_usage_output *out,
                                                                    size_t i,
                                                                    size_t j);

/**
 * The key of tag `k` of allocation `j` of unprocessed record `i`. Owned by `out`. NULL if
 * `out` is NULL or an index out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_unprocessed_allocation_tag_key(const struct mm_batch_meter_usage_output *out,
                                                                       size_t i,
                                                                       size_t j,
                                                                       size_t k);

/**
 * The value of tag `k` of allocation `j` of unprocessed record `i`. Owned by `out`. NULL if
 * `out` is NULL or an index out of range. Thread-safe.
 */
const char *mm_batch_meter_usage_output_unprocessed_allocation_tag_value(const struct mm_batch_meter_usage_output *out,
                                                                         size_t i,
                                                                         size_t j,
                                                                         size_t k);

/**
 * The timestamp of unprocessed record `i`, seconds since the Unix epoch (0 when `out` is
 * NULL or `i` out of range). Thread-safe.
 */
int64_t mm_batch_meter_usage_output_unprocessed_timestamp(const struct mm_batch_meter_usage_output *out,
                                                          size_t i);

/**
 * A new input holding the unprocessed records (all their fields, allocations included) and
 * the product code of the call, ready to send again.
 *
 * The caller owns it: free it with `mm_batch_meter_usage_input_free`. NULL if `out` is NULL.
 * Thread-safe.
 */
struct mm_batch_meter_usage_input *mm_batch_meter_usage_output_unprocessed_input(const struct mm_batch_meter_usage_output *out);

/**
 * The request id (`x-amzn-RequestId`), or NULL when none. Owned by `out`. NULL if `out` is
 * NULL. Thread-safe.
 */
const char *mm_batch_meter_usage_output_request_id(const struct mm_batch_meter_usage_output *out);

/**
 * The HTTP status of the response (0 if `out` is NULL). Thread-safe.
 */
uint16_t mm_batch_meter_usage_output_http_status(const struct mm_batch_meter_usage_output *out);

/**
 * Attempts made, the first included (0 if `out` is NULL). Thread-safe.
 */
uint32_t mm_batch_meter_usage_output_attempts(const struct mm_batch_meter_usage_output *out);

/**
 * Frees the output and every string read from it. NULL does nothing. No other thread may use
 * it during or after.
 */
void mm_meter_usage_output_free(struct mm_meter_usage_output *out);

/**
 * The metering record id (NULL when none, or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_meter_usage_output_metering_record_id(const struct mm_meter_usage_output *out);

/**
 * The request id, or NULL when none (or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_meter_usage_output_request_id(const struct mm_meter_usage_output *out);

/**
 * The HTTP status of the response (0 if `out` is NULL). Thread-safe.
 */
uint16_t mm_meter_usage_output_http_status(const struct mm_meter_usage_output *out);

/**
 * Attempts made, the first included (0 if `out` is NULL). Thread-safe.
 */
uint32_t mm_meter_usage_output_attempts(const struct mm_meter_usage_output *out);

/**
 * Frees the output and every string read from it. NULL does nothing. No other thread may use
 * it during or after.
 */
void mm_resolve_customer_output_free(struct mm_resolve_customer_output *out);

/**
 * The customer identifier to meter against (NULL when absent or `out` NULL). Owned by `out`.
 * Thread-safe.
 */
const char *mm_resolve_customer_output_customer_identifier(const struct mm_resolve_customer_output *out);

/**
 * The product code (NULL when absent or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_resolve_customer_output_product_code(const struct mm_resolve_customer_output *out);

/**
 * The customer's AWS account id (NULL when absent or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_resolve_customer_output_customer_aws_account_id(const struct mm_resolve_customer_output *out);

/**
 * The customer's license ARN (NULL when absent or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_resolve_customer_output_license_arn(const struct mm_resolve_customer_output *out);

/**
 * The request id, or NULL when none (or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_resolve_customer_output_request_id(const struct mm_resolve_customer_output *out);

/**
 * The HTTP status of the response (0 if `out` is NULL). Thread-safe.
 */
uint16_t mm_resolve_customer_output_http_status(const struct mm_resolve_customer_output *out);

/**
 * Attempts made, the first included (0 if `out` is NULL). Thread-safe.
 */
uint32_t mm_resolve_customer_output_attempts(const struct mm_resolve_customer_output *out);

/**
 * Frees the output and every string read from it. NULL does nothing. No other thread may use
 * it during or after.
 */
void mm_register_usage_output_free(struct mm_register_usage_output *out);

/**
 * The JWT signed by AWS Marketplace (NULL when absent or `out` NULL). Owned by `out`.
 * Thread-safe.
 */
const char *mm_register_usage_output_signature(const struct mm_register_usage_output *out);

/**
 * When the public key rotates: returns `true` and stores seconds since the Unix epoch in
 * `*epoch_seconds_out` when the service sent it; returns `false` (and writes nothing) when it
 * did not, or when `out` or `epoch_seconds_out` is NULL. Thread-safe.
 */
bool mm_register_usage_output_public_key_rotation_timestamp(const struct mm_register_usage_output *out,
                                                            int64_t *epoch_seconds_out);

/**
 * The request id, or NULL when none (or `out` NULL). Owned by `out`. Thread-safe.
 */
const char *mm_register_usage_output_request_id(const struct mm_register_usage_output *out);

/**
 * The HTTP status of the response (0 if `out` is NULL). Thread-safe.
 */
uint16_t mm_register_usage_output_http_status(const struct mm_register_usage_output *out);

/**
 * Attempts made, the first included (0 if `out` is NULL). Thread-safe.
 */
uint32_t mm_register_usage_output_attempts(const struct mm_register_usage_output *out);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* MARKETPLACE_METERING_H */

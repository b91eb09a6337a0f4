/* SPDX-License-Identifier: Apache-2.0
 * All four operations and their error paths against the emulator process. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "support/mm_test.h"

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static void test_resolve_customer(const mm_client *c) {
  mm_resolve_customer_input *in = mm_resolve_customer_input_new();
  mm_resolve_customer_output *out = NULL;
  mm_error *err = NULL;
  CHECK_OK(mm_resolve_customer_input_set_registration_token(in, "reg-token-valid"), err);
  CHECK_OK(mm_client_resolve_customer(c, in, &out, &err), err);
  CHECK(streq(mm_resolve_customer_output_customer_identifier(out), "cust-1"));
  CHECK(streq(mm_resolve_customer_output_product_code(out), MM_TEST_PRODUCT));
  CHECK(mm_resolve_customer_output_request_id(out) != NULL);
  CHECK(mm_resolve_customer_output_http_status(out) == 200);
  CHECK(mm_resolve_customer_output_attempts(out) == 1);
  mm_resolve_customer_output_free(out);

  /* A product metered by license: the answer names the account and the license only. */
  out = NULL;
  CHECK_OK(mm_resolve_customer_input_set_registration_token(in, "reg-token-license"), err);
  CHECK_OK(mm_client_resolve_customer(c, in, &out, &err), err);
  CHECK(mm_resolve_customer_output_customer_identifier(out) == NULL);
  CHECK(mm_resolve_customer_output_product_code(out) == NULL);
  CHECK(mm_resolve_customer_output_customer_aws_account_id(out) != NULL);
  CHECK(mm_resolve_customer_output_license_arn(out) != NULL);
  mm_resolve_customer_output_free(out);

  out = NULL;
  CHECK_OK(mm_resolve_customer_input_set_registration_token(in, "reg-token-expired"), err);
  CHECK(mm_client_resolve_customer(c, in, &out, &err) == MM_STATUS_EXPIRED_TOKEN_EXCEPTION);
  CHECK(out == NULL);
  CHECK(mm_error_code(err) == MM_STATUS_EXPIRED_TOKEN_EXCEPTION);
  CHECK(streq(mm_error_code_str(err), "ExpiredTokenException"));
  CHECK(mm_error_http_status(err) == 400);
  CHECK(mm_error_request_id(err) != NULL);
  CHECK(mm_error_attempts(err) == 1);
  CHECK(mm_error_message(err) != NULL);
  mm_error_free(err);
  err = NULL;

  CHECK_OK(mm_resolve_customer_input_set_registration_token(in, "reg-token-bogus"), err);
  CHECK(mm_client_resolve_customer(c, in, &out, NULL) == MM_STATUS_INVALID_TOKEN_EXCEPTION);
  mm_resolve_customer_input_free(in);
}

static mm_batch_meter_usage_input *batch_of(int n, int64_t ts, int unsubscribed_at) {
  mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT);
  for (int i = 0; i < n; i++) {
    char cust[32];
    if (i == unsubscribed_at)
      snprintf(cust, sizeof cust, "cust-unsubscribed");
    else
      snprintf(cust, sizeof cust, "cust-%d", i + 1);
    mm_batch_meter_usage_input_add_usage(in, ts, cust, "users", 3);
  }
  return in;
}

static void test_batch_meter_usage(const mm_client *c) {
  int64_t ts = mm_test_now(60);
  mm_batch_meter_usage_input *in = batch_of(25, ts, 3);
  mm_batch_meter_usage_output *out = NULL;
  mm_error *err = NULL;
  CHECK_OK(mm_client_batch_meter_usage(c, in, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_result_count(out) == 25);
  CHECK(mm_batch_meter_usage_output_unprocessed_count(out) == 0);
  CHECK(mm_batch_meter_usage_output_http_status(out) == 200);
  CHECK(mm_batch_meter_usage_output_attempts(out) == 1);
  CHECK(mm_batch_meter_usage_output_request_id(out) != NULL);
  size_t ok = 0, unsub = 0;
  for (size_t i = 0; i < mm_batch_meter_usage_output_result_count(out); i++) {
    mm_usage_record_status s = mm_batch_meter_usage_output_result_status(out, i);
    const char *cust = mm_batch_meter_usage_output_result_customer_identifier(out, i);
    if (s == MM_USAGE_RECORD_STATUS_SUCCESS) {
      ok++;
      CHECK(mm_batch_meter_usage_output_result_metering_record_id(out, i) != NULL);
      CHECK(streq(mm_batch_meter_usage_output_result_status_str(out, i), "Success"));
    } else if (s == MM_USAGE_RECORD_STATUS_CUSTOMER_NOT_SUBSCRIBED) {
      unsub++;
      CHECK(streq(cust, "cust-unsubscribed"));
    }
    CHECK(streq(mm_batch_meter_usage_output_result_dimension(out, i), "users"));
    CHECK(mm_batch_meter_usage_output_result_quantity(out, i) == 3);
    CHECK(mm_batch_meter_usage_output_result_timestamp(out, i) == ts);
  }
  CHECK(ok == 24 && unsub == 1);
  /* Out of range gives NULL / UNKNOWN, never a crash. */
  CHECK(mm_batch_meter_usage_output_result_metering_record_id(out, 99) == NULL);
  CHECK(mm_batch_meter_usage_output_result_status(out, 99) == MM_USAGE_RECORD_STATUS_UNKNOWN);
  mm_batch_meter_usage_output_free(out);

  /* Same customer, dimension and hour with another quantity: DuplicateRecord. */
  mm_batch_meter_usage_input *dup = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(dup, MM_TEST_PRODUCT);
  mm_batch_meter_usage_input_add_usage(dup, ts, "cust-1", "users", 4);
  out = NULL;
  CHECK_OK(mm_client_batch_meter_usage(c, dup, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_result_status(out, 0) == MM_USAGE_RECORD_STATUS_DUPLICATE_RECORD);
  mm_batch_meter_usage_output_free(out);
  mm_batch_meter_usage_input_free(dup);
  mm_batch_meter_usage_input_free(in);

  /* A record built field by field, with an allocation and tags. */
  mm_usage_record *r = mm_usage_record_new();
  mm_tag tags[2] = {{"team", "blue"}, {"env", "prod"}};
  CHECK_OK(mm_usage_record_set_customer_identifier(r, "cust-7"), err);
  CHECK_OK(mm_usage_record_set_dimension(r, "gb"), err);
  CHECK_OK(mm_usage_record_set_quantity(r, 10), err);
  CHECK_OK(mm_usage_record_set_timestamp(r, ts), err);
  CHECK_OK(mm_usage_record_add_allocation(r, 6, tags, 2), err);
  CHECK_OK(mm_usage_record_add_allocation(r, 4, tags, 1), err);
  in = mm_batch_meter_usage_input_new();
  CHECK_OK(mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_batch_meter_usage_input_add_record(in, r), err);
  mm_usage_record_free(r); /* the input holds a copy */
  out = NULL;
  CHECK_OK(mm_client_batch_meter_usage(c, in, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_result_status(out, 0) == MM_USAGE_RECORD_STATUS_SUCCESS);
  mm_batch_meter_usage_output_free(out);
  mm_batch_meter_usage_input_free(in);

  /* 26 records: rejected before sending, with the field named. */
  in = batch_of(26, ts, -1);
  out = NULL;
  CHECK(mm_client_batch_meter_usage(c, in, &out, &err) == MM_STATUS_INVALID_INPUT);
  CHECK(out == NULL);
  CHECK(streq(mm_error_field(err), "UsageRecords"));
  CHECK(mm_error_attempts(err) == 0 && mm_error_http_status(err) == 0);
  mm_error_free(err);
  err = NULL;
  mm_batch_meter_usage_input_free(in);

  /* Quantity out of range. */
  in = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT);
  mm_batch_meter_usage_input_add_usage(in, ts, "cust-2", "users", -5);
  CHECK(mm_client_batch_meter_usage(c, in, &out, &err) == MM_STATUS_INVALID_INPUT);
  CHECK(streq(mm_error_field(err), "UsageRecords[0].Quantity"));
  CHECK(streq(mm_error_code_str(err), "InvalidInput"));
  mm_error_free(err);
  err = NULL;
  mm_batch_meter_usage_input_free(in);
}

static void test_faults(const mm_test_emulator *e, const mm_client *c1, const mm_client *c3) {
  int64_t ts = mm_test_now(120);
  mm_batch_meter_usage_input *in = batch_of(10, ts, -1);
  mm_batch_meter_usage_output *out = NULL;
  mm_error *err = NULL;

  /* Throttled, one attempt allowed. */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"throttle\"}", NULL, 0) == 200);
  CHECK(mm_client_batch_meter_usage(c1, in, &out, &err) == MM_STATUS_THROTTLING_EXCEPTION);
  CHECK(out == NULL);
  CHECK(streq(mm_error_code_str(err), "ThrottlingException"));
  CHECK(mm_error_http_status(err) == 400);
  CHECK(mm_error_attempts(err) == 1);
  CHECK(mm_error_is_retryable(err));
  CHECK(mm_error_request_id(err) != NULL);
  mm_error_free(err);
  err = NULL;

  /* Throttled once, retried: succeeds on attempt 2. */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"throttle\"}", NULL, 0) == 200);
  CHECK_OK(mm_client_batch_meter_usage(c3, in, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_attempts(out) == 2);
  mm_batch_meter_usage_output_free(out);
  out = NULL;

  /* 500. */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"internal_error\"}", NULL, 0) == 200);
  CHECK(mm_client_batch_meter_usage(c1, in, &out, &err) == MM_STATUS_INTERNAL_SERVICE_ERROR_EXCEPTION);
  CHECK(mm_error_http_status(err) == 500);
  mm_error_free(err);
  err = NULL;

  /* A code this version does not know: UNHANDLED, with the service's string. */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults",
                        "{\"kind\":\"error\",\"status\":400,\"code\":\"BrandNewException\",\"message\":\"new\"}",
                        NULL, 0) == 200);
  CHECK(mm_client_batch_meter_usage(c1, in, &out, &err) == MM_STATUS_UNHANDLED);
  CHECK(streq(mm_error_code_str(err), "BrandNewException"));
  CHECK(streq(mm_status_str(mm_error_code(err)), "Unhandled"));
  mm_error_free(err);
  err = NULL;

  /* Partial: the last 4 come back unprocessed; re-send them. */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"partial\",\"count\":4}", NULL, 0) == 200);
  CHECK_OK(mm_client_batch_meter_usage(c1, in, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_result_count(out) == 6);
  CHECK(mm_batch_meter_usage_output_unprocessed_count(out) == 4);
  CHECK(streq(mm_batch_meter_usage_output_unprocessed_customer_identifier(out, 0), "cust-7"));
  CHECK(streq(mm_batch_meter_usage_output_unprocessed_dimension(out, 0), "users"));
  CHECK(mm_batch_meter_usage_output_unprocessed_quantity(out, 0) == 3);
  CHECK(mm_batch_meter_usage_output_unprocessed_timestamp(out, 0) == ts);
  mm_batch_meter_usage_input *again = mm_batch_meter_usage_output_unprocessed_input(out);
  CHECK(mm_batch_meter_usage_input_record_count(again) == 4);
  mm_batch_meter_usage_output_free(out);
  out = NULL;
  CHECK_OK(mm_client_batch_meter_usage(c1, again, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_result_count(out) == 4);
  for (size_t i = 0; i < mm_batch_meter_usage_output_result_count(out); i++)
    CHECK(mm_batch_meter_usage_output_result_status(out, i) == MM_USAGE_RECORD_STATUS_SUCCESS);
  mm_batch_meter_usage_output_free(out);
  mm_batch_meter_usage_input_free(again);
  mm_batch_meter_usage_input_free(in);

  static char ledger[1 << 16];
  CHECK(mm_test_control(e, "GET", "/_emulator/ledger", NULL, ledger, sizeof ledger) == 200);
  CHECK(strstr(ledger, "cust-10") != NULL);
}

static double seconds_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static mm_client *timed_client(const mm_test_emulator *e, uint32_t attempts, uint64_t attempt_ms,
                               uint64_t operation_ms) {
  mm_config *cfg = mm_config_new();
  mm_client *client = NULL;
  mm_error *err = NULL;
  CHECK(mm_config_set_region(cfg, MM_TEST_REGION) == MM_STATUS_OK);
  CHECK(mm_config_set_endpoint_url(cfg, e->endpoint) == MM_STATUS_OK);
  CHECK(mm_config_set_credentials(cfg, MM_TEST_ACCESS_KEY, MM_TEST_SECRET_KEY, NULL) == MM_STATUS_OK);
  CHECK(mm_config_set_max_attempts(cfg, attempts) == MM_STATUS_OK);
  if (attempt_ms) CHECK(mm_config_set_attempt_timeout_ms(cfg, attempt_ms) == MM_STATUS_OK);
  if (operation_ms) CHECK(mm_config_set_operation_timeout_ms(cfg, operation_ms) == MM_STATUS_OK);
  CHECK_OK(mm_client_new(cfg, &client, &err), err);
  mm_config_free(cfg);
  return client;
}

/* Redirects are not followed; each attempt and the whole call are bounded in time; a count
 * above the model's maximum is refused before any memory is touched. */
static void test_hardening(const mm_test_emulator *e, const mm_client *c1) {
  int64_t ts = mm_test_now(120);
  mm_batch_meter_usage_input *in = batch_of(1, ts, -1);
  mm_batch_meter_usage_output *out = NULL;
  mm_error *err = NULL;

  CHECK(mm_test_control(e, "POST", "/_emulator/faults",
                        "{\"kind\":\"redirect\",\"status\":307,\"location\":\"http://127.0.0.1:9/elsewhere\"}",
                        NULL, 0) == 200);
  CHECK(mm_client_batch_meter_usage(c1, in, &out, &err) == MM_STATUS_UNHANDLED);
  CHECK(mm_error_http_status(err) == 307);
  CHECK(streq(mm_error_code_str(err), "307"));
  CHECK(strstr(mm_error_message(err), "http://127.0.0.1:9/elsewhere") != NULL);
  mm_error_free(err);
  err = NULL;

  /* A body that ends early is a read error that says so, not "could not reach". */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"short_body\"}", NULL, 0) == 200);
  CHECK(mm_client_batch_meter_usage(c1, in, &out, &err) == MM_STATUS_DISPATCH);
  CHECK(strstr(mm_error_message(err), "ended early") != NULL);
  CHECK(strstr(mm_error_message(err), "could not reach") == NULL);
  mm_error_free(err);
  err = NULL;

  /* Unbounded, a trickled answer (a few hundred bytes, one every 0.3 s) takes over a minute;
   * the limits below leave room for valgrind's slowdown. */
  struct timespec t0;
  mm_client *c = timed_client(e, 2, 700, 0);
  for (int i = 0; i < 2; i++)
    CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"trickle\",\"interval\":0.3}", NULL, 0) == 200);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(mm_client_batch_meter_usage(c, in, &out, &err) == MM_STATUS_READ_TIMEOUT);
  CHECK(seconds_since(&t0) < 20.0);
  CHECK(mm_error_attempts(err) == 2);
  mm_error_free(err);
  err = NULL;
  mm_client_free(c);

  c = timed_client(e, 5, 0, 900);
  for (int i = 0; i < 5; i++)
    CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"trickle\",\"interval\":0.3}", NULL, 0) == 200);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(mm_client_batch_meter_usage(c, in, &out, &err) == MM_STATUS_READ_TIMEOUT);
  CHECK(seconds_since(&t0) < 20.0);
  CHECK(strstr(mm_error_message(err), "operation timeout") != NULL);
  mm_error_free(err);
  err = NULL;
  mm_client_free(c);
  CHECK(mm_test_control(e, "POST", "/_emulator/reset", "", NULL, 0) == 200);

  mm_usage_record *r = mm_usage_record_new();
  mm_tag tags[1] = {{"team", "red"}};
  CHECK(mm_usage_record_add_allocation(r, 1, tags, (size_t)1 << 40) == MM_STATUS_INVALID_INPUT);
  CHECK(mm_usage_record_add_allocation(r, 1, tags, SIZE_MAX) == MM_STATUS_INVALID_INPUT);
  mm_usage_record_free(r);
  mm_batch_meter_usage_input_free(in);

  /* Only the model's rules: a CustomerAWSAccountId without a LicenseArn is sent (and billed). */
  r = mm_usage_record_new();
  CHECK_OK(mm_usage_record_set_customer_aws_account_id(r, "111122223333"), err);
  CHECK_OK(mm_usage_record_set_dimension(r, "users"), err);
  CHECK_OK(mm_usage_record_set_quantity(r, 2), err);
  CHECK_OK(mm_usage_record_set_timestamp(r, ts), err);
  in = mm_batch_meter_usage_input_new();
  CHECK_OK(mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_batch_meter_usage_input_add_record(in, r), err);
  CHECK_OK(mm_client_batch_meter_usage(c1, in, &out, &err), err);
  CHECK(mm_batch_meter_usage_output_result_status(out, 0) == MM_USAGE_RECORD_STATUS_SUCCESS);
  mm_batch_meter_usage_output_free(out);
  out = NULL;
  mm_batch_meter_usage_input_free(in);
  /* Allocations that do not sum to the quantity: the service's own exception, nothing sent. */
  CHECK_OK(mm_usage_record_add_allocation(r, 1, tags, 1), err);
  in = mm_batch_meter_usage_input_new();
  CHECK_OK(mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_batch_meter_usage_input_add_record(in, r), err);
  CHECK(mm_client_batch_meter_usage(c1, in, &out, &err) == MM_STATUS_INVALID_USAGE_ALLOCATIONS_EXCEPTION);
  CHECK(streq(mm_error_code_str(err), "InvalidUsageAllocationsException"));
  CHECK(mm_error_attempts(err) == 0 && mm_error_http_status(err) == 0);
  mm_error_free(err);
  err = NULL;
  mm_usage_record_free(r);
  mm_batch_meter_usage_input_free(in);
}

static void test_meter_usage(const mm_client *c) {
  mm_meter_usage_input *in = mm_meter_usage_input_new();
  mm_meter_usage_output *out = NULL;
  mm_error *err = NULL;
  mm_tag tag = {"k", "v"};
  CHECK_OK(mm_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_usage_input_set_timestamp(in, mm_test_now(30)), err);
  CHECK_OK(mm_meter_usage_input_set_usage_dimension(in, "requests"), err);
  CHECK_OK(mm_meter_usage_input_set_usage_quantity(in, 5), err);
  CHECK_OK(mm_meter_usage_input_add_allocation(in, 5, &tag, 1), err);
  CHECK_OK(mm_meter_usage_input_set_client_token(in, "token-c-1"), err);
  CHECK_OK(mm_client_meter_usage(c, in, &out, &err), err);
  CHECK(mm_meter_usage_output_metering_record_id(out) != NULL);
  CHECK(mm_meter_usage_output_http_status(out) == 200);
  CHECK(mm_meter_usage_output_request_id(out) != NULL);
  CHECK(mm_meter_usage_output_attempts(out) == 1);
  mm_meter_usage_output_free(out);
  out = NULL;

  CHECK_OK(mm_meter_usage_input_set_dry_run(in, true), err);
  CHECK_OK(mm_meter_usage_input_set_client_token(in, "token-c-2"), err);
  CHECK(mm_client_meter_usage(c, in, &out, &err) == MM_STATUS_DRY_RUN_OPERATION);
  CHECK(out == NULL);
  CHECK(streq(mm_error_code_str(err), "DryRunOperation"));
  mm_error_free(err);
  err = NULL;
  mm_meter_usage_input_free(in);

  in = mm_meter_usage_input_new();
  mm_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT);
  mm_meter_usage_input_set_timestamp(in, mm_test_now(30));
  mm_meter_usage_input_set_usage_dimension(in, "no-such-dimension");
  CHECK(mm_client_meter_usage(c, in, &out, &err) == MM_STATUS_INVALID_USAGE_DIMENSION_EXCEPTION);
  mm_error_free(err);
  err = NULL;
  mm_meter_usage_input_free(in);

  in = mm_meter_usage_input_new(); /* missing fields */
  CHECK(mm_client_meter_usage(c, in, &out, &err) == MM_STATUS_INVALID_INPUT);
  CHECK(streq(mm_error_field(err), "ProductCode"));
  mm_error_free(err);
  mm_meter_usage_input_free(in);
}

static void test_register_usage(const mm_client *c) {
  mm_register_usage_input *in = mm_register_usage_input_new();
  mm_register_usage_output *out = NULL;
  mm_error *err = NULL;
  CHECK_OK(mm_register_usage_input_set_product_code(in, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_register_usage_input_set_public_key_version(in, 1), err);
  CHECK_OK(mm_register_usage_input_set_nonce(in, "nonce-1"), err);
  CHECK_OK(mm_client_register_usage(c, in, &out, &err), err);
  CHECK(mm_register_usage_output_signature(out) != NULL);
  int64_t rot = 0;
  CHECK(mm_register_usage_output_public_key_rotation_timestamp(out, &rot));
  CHECK(rot > 0);
  CHECK(mm_register_usage_output_http_status(out) == 200);
  mm_register_usage_output_free(out);
  out = NULL;

  CHECK_OK(mm_register_usage_input_set_product_code(in, "prod-not-entitled"), err);
  CHECK(mm_client_register_usage(c, in, &out, &err) == MM_STATUS_CUSTOMER_NOT_ENTITLED_EXCEPTION);
  mm_error_free(err);
  err = NULL;

  CHECK_OK(mm_register_usage_input_set_public_key_version(in, 0), err);
  CHECK(mm_client_register_usage(c, in, &out, &err) == MM_STATUS_INVALID_INPUT);
  CHECK(streq(mm_error_field(err), "PublicKeyVersion"));
  CHECK(mm_error_attempts(err) == 0);
  mm_error_free(err);
  mm_register_usage_input_free(in);
}

int main(void) {
  mm_test_emulator e;
  if (mm_test_emulator_start(&e) != 0) return 2;
  mm_client *c1 = mm_test_client(&e, 1);
  mm_client *c3 = mm_test_client(&e, 3);
  if (!c1 || !c3) {
    mm_test_emulator_stop(&e);
    return 2;
  }
  CHECK(streq(mm_version(), MM_VERSION));
  test_resolve_customer(c1);
  test_batch_meter_usage(c1);
  test_faults(&e, c1, c3);
  test_hardening(&e, c1);
  test_meter_usage(c1);
  test_register_usage(c1);
  mm_client_free(c1);
  mm_client_free(c3);
  mm_shutdown();
  mm_test_emulator_stop(&e);
  printf("test_operations: %d failure(s)\n", mm_test_failures);
  return mm_test_failures ? 1 : 0;
}

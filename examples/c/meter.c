/* SPDX-License-Identifier: Apache-2.0
 * Example: resolve a customer, meter 25 records, check every status, re-send unprocessed records.
 * Endpoint: $METERING_ENDPOINT_URL, else spawns $METERING_EMULATOR_BIN. Exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#include "emulator.h"
#include "marketplace_metering.h"

static int fail(const char *what, mm_status st, mm_error *err) {
  fprintf(stderr, "%s failed: %s (%s) request id %s, HTTP %u, %u attempt(s)\n", what,
          err ? mm_error_code_str(err) : mm_status_str(st), err ? mm_error_message(err) : "",
          err && mm_error_request_id(err) ? mm_error_request_id(err) : "-",
          (unsigned)mm_error_http_status(err), (unsigned)mm_error_attempts(err));
  mm_error_free(err);
  return 1;
}

int main(void) {
  example_endpoint ep;
  if (example_endpoint_open(&ep) != 0) return 1;
  int rc = 1;
  mm_error *err = NULL;
  mm_status st;
  mm_client *client = NULL;
  mm_config *cfg = mm_config_new();
  mm_config_set_region(cfg, "us-east-1");
  mm_config_set_endpoint_url(cfg, ep.url);
  mm_config_set_credentials(cfg, "EMULATORKEYID0000001", "emulator-secret-access-key", NULL);
  st = mm_client_new(cfg, &client, &err);
  mm_config_free(cfg);
  if (st != MM_STATUS_OK) {
    rc = fail("mm_client_new", st, err);
    goto done;
  }

  /* 1. A SaaS registration token to the customer behind it. */
  mm_resolve_customer_input *rin = mm_resolve_customer_input_new();
  mm_resolve_customer_output *who = NULL;
  mm_resolve_customer_input_set_registration_token(rin, "reg-token-valid");
  st = mm_client_resolve_customer(client, rin, &who, &err);
  mm_resolve_customer_input_free(rin);
  if (st != MM_STATUS_OK) {
    rc = fail("ResolveCustomer", st, err);
    goto done;
  }
  printf("resolved customer %s for product %s\n", mm_resolve_customer_output_customer_identifier(who),
         mm_resolve_customer_output_product_code(who));

  /* 2. 25 records: the resolved customer and 24 others. */
  int64_t ts = (int64_t)time(NULL) - 60;
  mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(in, mm_resolve_customer_output_product_code(who));
  for (int i = 1; i <= 25; i++) {
    char cust[32];
    snprintf(cust, sizeof cust, "cust-%d", i);
    mm_batch_meter_usage_input_add_usage(in, ts, i == 1 ? mm_resolve_customer_output_customer_identifier(who) : cust,
                                         "users", i);
  }
  mm_resolve_customer_output_free(who);

  /* 3. Send; check every status; re-send what was not processed (up to 3 rounds). */
  size_t metered = 0, rejected = 0;
  for (int round = 0; round < 3 && in && mm_batch_meter_usage_input_record_count(in) > 0; round++) {
    mm_batch_meter_usage_output *out = NULL;
    st = mm_client_batch_meter_usage(client, in, &out, &err);
    mm_batch_meter_usage_input_free(in);
    in = NULL;
    if (st != MM_STATUS_OK) {
      rc = fail("BatchMeterUsage", st, err);
      goto done;
    }
    for (size_t i = 0; i < mm_batch_meter_usage_output_result_count(out); i++) {
      if (mm_batch_meter_usage_output_result_status(out, i) == MM_USAGE_RECORD_STATUS_SUCCESS) {
        metered++;
      } else {
        rejected++;
        fprintf(stderr, "record for %s: %s\n", mm_batch_meter_usage_output_result_customer_identifier(out, i),
                mm_batch_meter_usage_output_result_status_str(out, i));
      }
    }
    printf("round %d: %zu results, %zu unprocessed (request id %s)\n", round + 1,
           mm_batch_meter_usage_output_result_count(out), mm_batch_meter_usage_output_unprocessed_count(out),
           mm_batch_meter_usage_output_request_id(out));
    in = mm_batch_meter_usage_output_unprocessed_input(out);
    mm_batch_meter_usage_output_free(out);
  }
  size_t left = in ? mm_batch_meter_usage_input_record_count(in) : 0;
  mm_batch_meter_usage_input_free(in);
  printf("summary: %zu metered, %zu rejected, %zu still unprocessed\n", metered, rejected, left);
  rc = (metered == 25 && rejected == 0 && left == 0) ? 0 : 1;

done:
  mm_client_free(client);
  mm_shutdown();
  example_endpoint_close(&ep);
  return rc;
}

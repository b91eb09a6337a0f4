/* SPDX-License-Identifier: Apache-2.0
 * Sequential 25-record BatchMeterUsage loop through the C API, for N seconds; prints calls/s.
 *   bench ENDPOINT_URL SECONDS */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "marketplace_metering.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ENDPOINT_URL SECONDS\n", argv[0]);
    return 2;
  }
  double seconds = atof(argv[2]);
  mm_config *cfg = mm_config_new();
  mm_config_set_region(cfg, "us-east-1");
  mm_config_set_endpoint_url(cfg, argv[1]);
  mm_config_set_credentials(cfg, "EMULATORKEYID0000001", "emulator-secret-access-key", NULL);
  mm_client *client = NULL;
  mm_error *err = NULL;
  if (mm_client_new(cfg, &client, &err) != MM_STATUS_OK) {
    fprintf(stderr, "%s\n", mm_error_message(err));
    return 1;
  }
  mm_config_free(cfg);
  int64_t ts = (int64_t)time(NULL) - 60;
  mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(in, "prod-1234");
  for (int i = 1; i <= 25; i++) {
    char cust[16];
    snprintf(cust, sizeof cust, "cust-%d", i);
    mm_batch_meter_usage_input_add_usage(in, ts, cust, "requests", 1);
  }
  long calls = 0, failed = 0;
  double start = now_s(), end = start + seconds, t = start;
  while (t < end) {
    mm_batch_meter_usage_output *out = NULL;
    if (mm_client_batch_meter_usage(client, in, &out, &err) != MM_STATUS_OK) {
      fprintf(stderr, "%s: %s\n", mm_error_code_str(err), mm_error_message(err));
      mm_error_free(err);
      err = NULL;
      failed++;
    } else {
      size_t n = mm_batch_meter_usage_output_result_count(out);
      for (size_t i = 0; i < n; i++)
        if (mm_batch_meter_usage_output_result_status(out, i) != MM_USAGE_RECORD_STATUS_SUCCESS) failed++;
      if (n != 25) failed++;
    }
    mm_batch_meter_usage_output_free(out);
    calls++;
    t = now_s();
  }
  double elapsed = t - start;
  printf("c    : %ld calls in %.2f s = %.1f calls/s (%ld failures)\n", calls, elapsed, (double)calls / elapsed,
         failed);
  mm_batch_meter_usage_input_free(in);
  mm_client_free(client);
  mm_shutdown();
  return failed ? 1 : 0;
}

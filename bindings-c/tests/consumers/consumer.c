/* SPDX-License-Identifier: Apache-2.0
 * An installed-library consumer: meters one record against the endpoint in argv[1]. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <marketplace_metering.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s ENDPOINT_URL\n", argv[0]);
    return 2;
  }
  printf("libmarketplace_metering %s (header %s)\n", mm_version(), MM_VERSION);
  mm_config *cfg = mm_config_new();
  mm_config_set_region(cfg, "us-east-1");
  mm_config_set_endpoint_url(cfg, argv[1]);
  mm_config_set_credentials(cfg, "EMULATORKEYID0000001", "emulator-secret-access-key", NULL);
  mm_client *client = NULL;
  mm_error *err = NULL;
  int rc = 1;
  if (mm_client_new(cfg, &client, &err) == MM_STATUS_OK) {
    mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
    mm_batch_meter_usage_input_set_product_code(in, "prod-1234");
    mm_batch_meter_usage_input_add_usage(in, (int64_t)time(NULL) - 60, "cust-2", "users", 1);
    mm_batch_meter_usage_output *out = NULL;
    if (mm_client_batch_meter_usage(client, in, &out, &err) == MM_STATUS_OK &&
        mm_batch_meter_usage_output_result_status(out, 0) == MM_USAGE_RECORD_STATUS_SUCCESS) {
      printf("metered: %s\n", mm_batch_meter_usage_output_result_metering_record_id(out, 0));
      rc = 0;
    }
    mm_batch_meter_usage_output_free(out);
    mm_batch_meter_usage_input_free(in);
  }
  if (err) fprintf(stderr, "%s: %s\n", mm_error_code_str(err), mm_error_message(err));
  mm_error_free(err);
  mm_client_free(client);
  mm_config_free(cfg);
  mm_shutdown();
  return rc;
}

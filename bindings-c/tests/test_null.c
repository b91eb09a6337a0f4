/* SPDX-License-Identifier: Apache-2.0
 * NULL pointers and invalid UTF-8 give errors, never a crash (also compiled as C++). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "marketplace_metering.h"

static int failures = 0;
#define EXPECT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const char bad_utf8[] = {(char)0xff, (char)0xfe, 'x', 0};

int main(void) {
  mm_config *cfg = mm_config_new();
  mm_client *client = NULL;
  mm_error *err = NULL;
  EXPECT(cfg != NULL);
  EXPECT(mm_config_set_region(NULL, "us-east-1") == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_config_set_region(cfg, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_config_set_region(cfg, bad_utf8) == MM_STATUS_INVALID_INPUT);
  EXPECT(mm_config_set_credentials(cfg, NULL, "s", NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_config_set_credentials(cfg, "a", bad_utf8, NULL) == MM_STATUS_INVALID_INPUT);
  EXPECT(mm_config_set_retry_mode(cfg, 42) == MM_STATUS_INVALID_CONFIG);
  EXPECT(mm_config_set_retry_mode(cfg, MM_RETRY_MODE_ADAPTIVE) == MM_STATUS_OK);

  EXPECT(mm_client_new(NULL, &client, &err) == MM_STATUS_NULL_PARAMETER);
  EXPECT(client == NULL);
  EXPECT(mm_error_code(err) == MM_STATUS_NULL_PARAMETER);
  EXPECT(strcmp(mm_error_code_str(err), "NullParameter") == 0);
  EXPECT(mm_error_http_status(err) == 0);
  EXPECT(mm_error_request_id(err) == NULL);
  mm_error_free(err);
  err = NULL;
  EXPECT(mm_client_new(cfg, NULL, NULL) == MM_STATUS_NULL_PARAMETER);

  /* FIPS with a custom endpoint: InvalidConfig, with an error. */
  mm_config_set_region(cfg, "us-east-1");
  mm_config_set_endpoint_url(cfg, "http://127.0.0.1:9");
  mm_config_set_credentials(cfg, "a", "b", NULL);
  mm_config_set_use_fips(cfg, true);
  EXPECT(mm_client_new(cfg, &client, &err) == MM_STATUS_INVALID_CONFIG);
  EXPECT(client == NULL);
  EXPECT(strcmp(mm_error_code_str(err), "InvalidConfig") == 0);
  mm_error_free(err);
  err = NULL;
  mm_config_set_use_fips(cfg, false);
  EXPECT(mm_client_new(cfg, &client, &err) == MM_STATUS_OK);

  mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
  mm_usage_record *rec = mm_usage_record_new();
  mm_tag tags[1];
  tags[0].key = "k";
  tags[0].value = bad_utf8;
  EXPECT(mm_usage_record_set_dimension(rec, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_usage_record_set_dimension(rec, bad_utf8) == MM_STATUS_INVALID_INPUT);
  EXPECT(mm_usage_record_add_allocation(rec, 1, NULL, 1) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_usage_record_add_allocation(rec, 1, tags, 1) == MM_STATUS_INVALID_INPUT);
  EXPECT(mm_batch_meter_usage_input_add_record(in, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_batch_meter_usage_input_add_usage(in, 0, bad_utf8, "users", 1) == MM_STATUS_INVALID_INPUT);
  EXPECT(mm_batch_meter_usage_input_add_usage(in, 0, "c", NULL, 1) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_batch_meter_usage_input_record_count(in) == 0);
  EXPECT(mm_meter_usage_input_set_product_code(NULL, "p") == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_resolve_customer_input_set_registration_token(NULL, "t") == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_register_usage_input_set_nonce(NULL, "n") == MM_STATUS_NULL_PARAMETER);

  mm_batch_meter_usage_output *out = NULL;
  EXPECT(mm_client_batch_meter_usage(NULL, in, &out, &err) == MM_STATUS_NULL_PARAMETER);
  EXPECT(out == NULL);
  EXPECT(strstr(mm_error_message(err), "client") != NULL);
  mm_error_free(err);
  err = NULL;
  EXPECT(mm_client_batch_meter_usage(client, NULL, &out, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_client_batch_meter_usage(client, in, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_client_meter_usage(client, NULL, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_client_resolve_customer(client, NULL, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_client_register_usage(NULL, NULL, NULL, NULL) == MM_STATUS_NULL_PARAMETER);

  EXPECT(mm_error_message(NULL) == NULL);
  EXPECT(mm_error_code(NULL) == MM_STATUS_NULL_PARAMETER);
  EXPECT(mm_batch_meter_usage_output_result_count(NULL) == 0);
  EXPECT(mm_batch_meter_usage_output_result_status_str(NULL, 0) == NULL);
  EXPECT(mm_meter_usage_output_metering_record_id(NULL) == NULL);
  EXPECT(mm_resolve_customer_output_license_arn(NULL) == NULL);
  EXPECT(mm_register_usage_output_public_key_rotation_timestamp(NULL, NULL) == false);
  EXPECT(strcmp(mm_status_str(MM_STATUS_OK), "OK") == 0);
  EXPECT(strcmp(mm_status_str(MM_STATUS_THROTTLING_EXCEPTION), "ThrottlingException") == 0);
  EXPECT(strcmp(mm_status_str(123456u), "Unknown") == 0);
  EXPECT(strcmp(mm_version(), MM_VERSION) == 0);
  EXPECT(MM_STATUS_THROTTLING_EXCEPTION == 107 && MM_STATUS_PANIC == 2);

  /* The usage meter: NULL handles, NULL outputs, unknown enum numbers. */
  {
    mm_meter_config *mc = mm_meter_config_new();
    mm_meter *meter = NULL;
    mm_meter_status *status = NULL;
    mm_flush_summary *summary = NULL;
    mm_dead_letters *dl = NULL;
    mm_usage_event *ev = mm_usage_event_new();
    int64_t hour = 42;
    uint64_t n = 42;
    EXPECT(mc != NULL && ev != NULL);
    EXPECT(mm_meter_config_set_path(NULL, "x.db") == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_config_set_path(mc, NULL) == MM_STATUS_OK); /* NULL: the memory store */
    EXPECT(mm_meter_config_set_product_code(mc, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_config_set_product_code(mc, bad_utf8) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_meter_config_set_mode(mc, 2) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_meter_config_set_durability(mc, 3) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_meter_config_set_event_callback(NULL, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_config_set_event_callback(mc, NULL, NULL) == MM_STATUS_OK);
    EXPECT(mm_meter_config_set_clock(mc, NULL) == MM_STATUS_OK);
    EXPECT(mm_meter_new(NULL, mc, &meter, &err) == MM_STATUS_NULL_PARAMETER);
    EXPECT(meter == NULL && strstr(mm_error_message(err), "client") != NULL);
    mm_error_free(err);
    err = NULL;
    EXPECT(mm_meter_new(client, NULL, &meter, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_new(client, mc, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_config_set_product_code(mc, "prod-1234") == MM_STATUS_OK);
    EXPECT(mm_meter_new(client, mc, &meter, &err) == MM_STATUS_OK);

    /* mm_usage_event: every pointer argument NULL, one at a time. */
    EXPECT(mm_usage_event_set_customer_identifier(NULL, "c") == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_customer_identifier(ev, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_customer_identifier(ev, bad_utf8) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_usage_event_set_customer_aws_account_id(NULL, "1") == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_customer_aws_account_id(ev, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_customer_aws_account_id(ev, bad_utf8) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_usage_event_set_license_arn(NULL, "arn") == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_license_arn(ev, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_license_arn(ev, bad_utf8) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_usage_event_set_dimension(NULL, "users") == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_dimension(ev, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_dimension(ev, bad_utf8) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_usage_event_set_quantity(NULL, 1) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_set_timestamp(NULL, 1) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_clear_timestamp(NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_add_allocation(NULL, 1, NULL, 0) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_add_allocation(ev, 1, NULL, 2) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_usage_event_add_allocation(ev, 1, tags, 1) == MM_STATUS_INVALID_INPUT); /* bad UTF-8 */
    EXPECT(mm_usage_event_clear_allocations(NULL) == MM_STATUS_NULL_PARAMETER);
    /* An event with no dimension is refused naming `dimension`; nothing is recorded. */
    EXPECT(mm_usage_event_set_customer_identifier(ev, "c") == MM_STATUS_OK);
    EXPECT(mm_usage_event_set_quantity(ev, 1) == MM_STATUS_OK);
    EXPECT(mm_meter_record(meter, ev, &err) == MM_STATUS_INVALID_INPUT);
    EXPECT(mm_error_field(err) != NULL && strcmp(mm_error_field(err), "dimension") == 0);
    mm_error_free(err);
    err = NULL;
    EXPECT(mm_meter_record(NULL, ev, &err) == MM_STATUS_NULL_PARAMETER);
    EXPECT(strstr(mm_error_message(err), "meter") != NULL);
    mm_error_free(err);
    err = NULL;
    EXPECT(mm_meter_record(meter, NULL, &err) == MM_STATUS_NULL_PARAMETER);
    EXPECT(strstr(mm_error_message(err), "event") != NULL);
    mm_error_free(err);
    err = NULL;
    EXPECT(mm_usage_event_set_dimension(ev, "users") == MM_STATUS_OK);
    EXPECT(mm_meter_record(meter, ev, NULL) == MM_STATUS_OK);

    EXPECT(mm_meter_register_customer(meter, "c", NULL, NULL, NULL, 1, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_register_customer(NULL, "c", NULL, NULL, NULL, 0, NULL) == MM_STATUS_NULL_PARAMETER);
    {
      size_t removed = 7;
      const char *null_dim[1] = {NULL};
      EXPECT(mm_meter_unregister_customer(NULL, "c", NULL, NULL, NULL, 0, &removed, NULL) ==
             MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_meter_unregister_customer(meter, "c", NULL, NULL, NULL, 1, &removed, NULL) ==
             MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_meter_unregister_customer(meter, "c", NULL, NULL, null_dim, 1, &removed, NULL) ==
             MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_meter_unregister_customer(meter, bad_utf8, NULL, NULL, NULL, 0, &removed, NULL) ==
             MM_STATUS_INVALID_INPUT);
      EXPECT(removed == 7); /* written only on success */
      EXPECT(mm_meter_unregister_customer(meter, "c", NULL, NULL, NULL, 0, NULL, NULL) == MM_STATUS_OK);
    }

    /* Results: NULL meter or NULL out-pointer, and accessors of a NULL result. */
    EXPECT(mm_meter_get_status(meter, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_get_status(NULL, &status, NULL) == MM_STATUS_NULL_PARAMETER && status == NULL);
    EXPECT(mm_meter_get_status(meter, &status, NULL) == MM_STATUS_OK);
    EXPECT(mm_meter_status_pending_count(status) == 1 && mm_meter_status_acked_count(status) == 0);
    EXPECT(mm_meter_status_oldest_unsent_hour(status, &hour) && hour % 3600 == 0);
    EXPECT(!mm_meter_status_oldest_unsent_hour(status, NULL));
    EXPECT(!mm_meter_status_last_flush_at(status, &hour)); /* no flush yet */
    EXPECT(mm_meter_status_last_flush_error(status) == NULL);
    mm_meter_status_free(status);
    status = NULL; /* the use-after-free-safe pattern: a freed handle's pointer is cleared */
    EXPECT(mm_meter_status_pending_count(NULL) == 0 && mm_meter_status_sealed_count(NULL) == 0);
    EXPECT(mm_meter_status_acked_count(NULL) == 0 && mm_meter_status_dead_lettered_count(NULL) == 0);
    EXPECT(mm_meter_status_expired_count(NULL) == 0);
    EXPECT(!mm_meter_status_oldest_unsent_hour(NULL, &hour));
    EXPECT(!mm_meter_status_last_flush_at(NULL, &hour) && mm_meter_status_last_flush_error(NULL) == NULL);
    EXPECT(mm_meter_get_dead_letters(meter, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_get_dead_letters(NULL, &dl, NULL) == MM_STATUS_NULL_PARAMETER && dl == NULL);
    {
      mm_requeue_filter *rf = mm_requeue_filter_new();
      EXPECT(rf != NULL);
      EXPECT(mm_meter_requeue(NULL, rf, &n, NULL) == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_meter_requeue(meter, NULL, &n, NULL) == MM_STATUS_NULL_PARAMETER);
      EXPECT(n == 42);
      EXPECT(mm_requeue_filter_set_reason(NULL, "r") == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_requeue_filter_set_reason(rf, NULL) == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_requeue_filter_set_reason(rf, bad_utf8) == MM_STATUS_INVALID_INPUT);
      EXPECT(mm_requeue_filter_set_customer_identifier(rf, NULL) == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_requeue_filter_set_customer_aws_account_id(rf, NULL) == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_requeue_filter_set_license_arn(rf, NULL) == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_requeue_filter_set_hour(NULL, 0) == MM_STATUS_NULL_PARAMETER);
      EXPECT(mm_meter_requeue(meter, rf, &n, NULL) == MM_STATUS_OK && n == 0);
      mm_requeue_filter_free(rf);
      mm_requeue_filter_free(NULL);
    }
    EXPECT(mm_meter_flush(NULL, &summary, NULL) == MM_STATUS_NULL_PARAMETER && summary == NULL);
    EXPECT(mm_meter_flush(meter, NULL, NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_meter_close(NULL, &summary, NULL) == MM_STATUS_NULL_PARAMETER && summary == NULL);
    EXPECT(mm_meter_close(meter, NULL, &err) == MM_STATUS_NULL_PARAMETER);
    EXPECT(strstr(mm_error_message(err), "summary_out") != NULL);
    mm_error_free(err);
    err = NULL;
    EXPECT(mm_flush_summary_sealed_count(NULL) == 0 && mm_flush_summary_sent_count(NULL) == 0);
    EXPECT(mm_flush_summary_call_count(NULL) == 0 && mm_flush_summary_acked_count(NULL) == 0);
    EXPECT(mm_flush_summary_dead_lettered_count(NULL) == 0 && mm_flush_summary_expired_count(NULL) == 0);
    EXPECT(mm_flush_summary_resent_unprocessed_count(NULL) == 0 && mm_flush_summary_deferred_count(NULL) == 0);
    EXPECT(mm_flush_summary_interrupted(NULL) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_flush_summary_interrupted_message(NULL) == NULL);
    EXPECT(mm_dead_letters_count(NULL) == 0);
    EXPECT(mm_dead_letters_dimension(NULL, 0) == NULL && mm_dead_letters_reason(NULL, 0) == NULL);
    EXPECT(mm_dead_letters_hour(NULL, 0) == 0 && mm_dead_letters_quantity(NULL, 0) == 0);
    EXPECT(mm_clock_set(NULL, 1) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_clock_advance(NULL, 1) == MM_STATUS_NULL_PARAMETER);
    EXPECT(mm_clock_now(NULL) == 0);
    mm_meter_free(meter);
    mm_meter_free(NULL);
    mm_meter_config_free(mc);
    mm_meter_config_free(NULL);
    mm_usage_event_free(ev);
    mm_usage_event_free(NULL);
    mm_meter_status_free(NULL);
    mm_flush_summary_free(NULL);
    mm_dead_letters_free(NULL);
    mm_clock_free(NULL);
  }

  mm_error_free(NULL);
  mm_config_free(NULL);
  mm_client_free(NULL);
  mm_usage_record_free(NULL);
  mm_batch_meter_usage_input_free(NULL);
  mm_batch_meter_usage_output_free(NULL);
  mm_meter_usage_input_free(NULL);
  mm_meter_usage_output_free(NULL);
  mm_resolve_customer_input_free(NULL);
  mm_resolve_customer_output_free(NULL);
  mm_register_usage_input_free(NULL);
  mm_register_usage_output_free(NULL);

  mm_usage_record_free(rec);
  mm_batch_meter_usage_input_free(in);
  mm_client_free(client);
  mm_config_free(cfg);
  mm_shutdown();
  printf("test_null: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}

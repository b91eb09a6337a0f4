/* SPDX-License-Identifier: Apache-2.0
 * One client, 8 threads, 20 BatchMeterUsage calls of 25 records each: all succeed. */
#include <pthread.h>
#include <stdio.h>

#include "support/mm_test.h"

#define THREADS 8
#define CALLS 20

typedef struct {
  const mm_client *client; /* shared: calls take const mm_client * */
  int id;
  int ok_calls;
  int ok_records;
} worker;

static void *run(void *arg) {
  worker *w = (worker *)arg;
  int64_t ts = mm_test_now(60);
  for (int call = 0; call < CALLS; call++) {
    mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
    mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT);
    for (int r = 0; r < 25; r++) {
      char cust[16];
      snprintf(cust, sizeof cust, "cust-%d", r + 1);
      /* Same quantity for the same customer/dimension/hour: de-duplicated, still Success. */
      mm_batch_meter_usage_input_add_usage(in, ts, cust, "requests", 1);
    }
    mm_batch_meter_usage_output *out = NULL;
    mm_error *err = NULL;
    if (mm_client_batch_meter_usage(w->client, in, &out, &err) == MM_STATUS_OK) {
      w->ok_calls++;
      for (size_t i = 0; i < mm_batch_meter_usage_output_result_count(out); i++)
        if (mm_batch_meter_usage_output_result_status(out, i) == MM_USAGE_RECORD_STATUS_SUCCESS)
          w->ok_records++;
    } else {
      fprintf(stderr, "thread %d call %d: %s: %s\n", w->id, call, mm_error_code_str(err),
              mm_error_message(err));
    }
    mm_batch_meter_usage_output_free(out);
    mm_error_free(err);
    mm_batch_meter_usage_input_free(in);
  }
  return NULL;
}

int main(void) {
  mm_test_emulator e;
  if (mm_test_emulator_start(&e) != 0) return 2;
  mm_client *client = mm_test_client(&e, 3);
  if (!client) {
    mm_test_emulator_stop(&e);
    return 2;
  }
  pthread_t t[THREADS];
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i].client = client;
    w[i].id = i;
    w[i].ok_calls = 0;
    w[i].ok_records = 0;
    CHECK(pthread_create(&t[i], NULL, run, &w[i]) == 0);
  }
  int calls = 0, records = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    calls += w[i].ok_calls;
    records += w[i].ok_records;
  }
  CHECK(calls == THREADS * CALLS);
  CHECK(records == THREADS * CALLS * 25);
  mm_client_free(client);
  mm_shutdown();
  mm_test_emulator_stop(&e);
  printf("test_threads: %d/%d calls, %d records ok, %d failure(s)\n", calls, THREADS * CALLS,
         records, mm_test_failures);
  return mm_test_failures ? 1 : 0;
}

/* SPDX-License-Identifier: Apache-2.0
 * A host thread with a small stack (64 KiB; musl's default is 128 KiB): a call and a meter's
 * record, flush and close. The calls' futures run on the caller's stack, and a thread of
 * 96 KiB (128 KiB with a debug build) died of SIGSEGV; with too little room left, a blocking
 * call now runs on a stack made for it, on the same thread. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "support/mm_test.h"

static mm_test_emulator emu;
static int billed;

static void *run(void *arg) {
  (void)arg;
  mm_error *err = NULL;
  mm_client *client = mm_test_client(&emu, 3);
  CHECK(client != NULL);
  if (!client) return NULL;
  int64_t hour = mm_test_now(0) / 3600 * 3600 - 3 * 3600;
  mm_clock *clock = mm_clock_new(hour + 10);
  char path[] = "/tmp/mm-small-stack-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  unlink(path);
  mm_meter_config *cfg = mm_meter_config_new();
  CHECK_OK(mm_meter_config_set_path(cfg, path), err);
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_flush_interval_seconds(cfg, 0), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  mm_meter *meter = NULL;
  CHECK_OK(mm_meter_new(client, cfg, &meter, &err), err);
  mm_meter_config_free(cfg);
  mm_usage_event *ev = mm_usage_event_new();
  CHECK_OK(mm_usage_event_set_customer_identifier(ev, "cust-7"), err);
  CHECK_OK(mm_usage_event_set_dimension(ev, "users"), err);
  CHECK_OK(mm_usage_event_set_quantity(ev, 3), err);
  CHECK_OK(mm_meter_record(meter, ev, &err), err);
  mm_usage_event_free(ev);
  CHECK_OK(mm_clock_set(clock, hour + 3600 + 600), err);
  mm_flush_summary *sum = NULL;
  CHECK_OK(mm_meter_flush(meter, &sum, &err), err);
  billed = (int)mm_flush_summary_acked_count(sum);
  mm_flush_summary_free(sum);
  mm_flush_summary *closing = NULL;
  CHECK_OK(mm_meter_close(meter, &closing, &err), err);
  mm_flush_summary_free(closing);
  mm_meter_free(meter);
  mm_clock_free(clock);
  mm_client_free(client);
  unlink(path);
  return NULL;
}

int main(void) {
  if (mm_test_emulator_start(&emu) != 0) return 2;
  /* 64 KiB, or the platform's least (128 KiB on aarch64 glibc). */
  long least = sysconf(_SC_THREAD_STACK_MIN);
  size_t size = least > 64 * 1024 ? (size_t)least : 64 * 1024;
  if (size >= 256 * 1024) {
    printf("test_small_stack: skipped, the least thread stack here is %zu bytes\n", size);
    mm_test_emulator_stop(&emu);
    return 0;
  }
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, size) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, &attr, run, NULL) == 0);
  pthread_join(t, NULL);
  CHECK(billed == 1);
  mm_shutdown();
  mm_test_emulator_stop(&emu);
  printf("test_small_stack: %d billed, %d failure(s)\n", billed, mm_test_failures);
  return mm_test_failures ? 1 : 0;
}

/* SPDX-License-Identifier: Apache-2.0
 * Two benchmarks through the C API, against the emulator at ENDPOINT_URL:
 *   bench ENDPOINT_URL SECONDS
 *     a sequential 25-record BatchMeterUsage loop for SECONDS; prints calls/s.
 *   bench ENDPOINT_URL meter SECONDS THREADS DIR [no-fsync]
 *     UsageMeter record() calls/s per store and durability, then one flush of what was
 *     recorded: the same cases as bench/python/meter_bench.py (the in-memory store from 1 and
 *     THREADS threads, a file store in DIR with durability memory from 1, group from THREADS
 *     threads sharing commits, durable from 1). Each case records for SECONDS into 50
 *     customers x 3 dimensions of one hour (1 to 5 hours back, one per case), moves the
 *     meter's clock past the hour and flushes: every bucket must be acknowledged. One JSON line per
 *     case. "no-fsync": the file-store cases commit without an fsync
 *     (mm_meter_config_set_power_loss_safe(cfg, false)). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "marketplace_metering.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static mm_client *new_client(const char *endpoint) {
  mm_config *cfg = mm_config_new();
  mm_config_set_region(cfg, "us-east-1");
  mm_config_set_endpoint_url(cfg, endpoint);
  mm_config_set_credentials(cfg, "EMULATORKEYID0000001", "emulator-secret-access-key", NULL);
  mm_client *client = NULL;
  mm_error *err = NULL;
  if (mm_client_new(cfg, &client, &err) != MM_STATUS_OK) {
    fprintf(stderr, "%s\n", mm_error_message(err));
    exit(1);
  }
  mm_config_free(cfg);
  return client;
}

enum { CUSTOMERS = 50, DIMENSIONS = 3, MAX_THREADS = 64 };
static const char *const dimensions[DIMENSIONS] = {"users", "gb", "requests"};

static void die(const char *what, mm_error *err) {
  fprintf(stderr, "%s: %s: %s\n", what, mm_error_code_str(err), mm_error_message(err));
  exit(1);
}

struct worker {
  const mm_meter *meter;
  int k;
  atomic_bool *stop;
  long count;
};

/* One event per customer and dimension, built once: record() copies what it is given. */
static void *work(void *arg) {
  struct worker *w = arg;
  mm_usage_event *events[CUSTOMERS * DIMENSIONS];
  for (int i = 0; i < CUSTOMERS * DIMENSIONS; i++) {
    char cust[16];
    snprintf(cust, sizeof cust, "cust-%d", 1 + (i + w->k) % CUSTOMERS);
    events[i] = mm_usage_event_new();
    mm_usage_event_set_customer_identifier(events[i], cust);
    mm_usage_event_set_dimension(events[i], dimensions[i % DIMENSIONS]);
    mm_usage_event_set_quantity(events[i], 1);
  }
  long n = 0;
  mm_error *err = NULL;
  while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
    for (int i = 0; i < 600; i++)
      if (mm_meter_record(w->meter, events[i % (CUSTOMERS * DIMENSIONS)], &err) != MM_STATUS_OK)
        die("record", err);
    n += 600;
  }
  for (int i = 0; i < CUSTOMERS * DIMENSIONS; i++) mm_usage_event_free(events[i]);
  w->count = n;
  return NULL;
}

/* Case `n` records into the hour n + 1 hours back: the emulator bills a customer-hour once,
 * so each case has hours of its own, all inside the service's six-hour window. */
static bool power_loss_safe = true;

static void run(const mm_client *client, int n, const char *name, const char *path,
                uint32_t durability, int threads, double seconds) {
  int64_t start = (int64_t)time(NULL) / 3600 * 3600 - (n + 1) * 3600;
  mm_clock *clock = mm_clock_new(start);
  mm_meter_config *cfg = mm_meter_config_new();
  mm_meter_config_set_product_code(cfg, "prod-1234");
  if (path) mm_meter_config_set_path(cfg, path);
  mm_meter_config_set_durability(cfg, durability);
  if (path) mm_meter_config_set_power_loss_safe(cfg, power_loss_safe);
  mm_meter_config_set_flush_interval_seconds(cfg, 0);
  mm_meter_config_set_clock(cfg, clock);
  mm_meter *meter = NULL;
  mm_error *err = NULL;
  if (mm_meter_new(client, cfg, &meter, &err) != MM_STATUS_OK) die("meter", err);
  mm_meter_config_free(cfg);

  atomic_bool stop = false;
  struct worker workers[MAX_THREADS];
  pthread_t tids[MAX_THREADS];
  double t0 = now_s();
  for (int k = 0; k < threads; k++) {
    workers[k] = (struct worker){meter, k, &stop, 0};
    pthread_create(&tids[k], NULL, work, &workers[k]);
  }
  struct timespec nap = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&nap, NULL);
  atomic_store(&stop, true);
  long total = 0;
  for (int k = 0; k < threads; k++) {
    pthread_join(tids[k], NULL);
    total += workers[k].count;
  }
  double elapsed = now_s() - t0;

  mm_clock_advance(clock, 3600 + 360);
  mm_flush_summary *sum = NULL;
  double f0 = now_s();
  if (mm_meter_flush(meter, &sum, &err) != MM_STATUS_OK) die("flush", err);
  double flush_s = now_s() - f0;
  uint64_t acked = mm_flush_summary_acked_count(sum);
  if (mm_flush_summary_interrupted(sum) != MM_STATUS_OK || acked != CUSTOMERS * DIMENSIONS ||
      mm_flush_summary_dead_lettered_count(sum) != 0) {
    fprintf(stderr, "%s: flush acked %llu of %d buckets\n", name, (unsigned long long)acked,
            CUSTOMERS * DIMENSIONS);
    exit(1);
  }
  mm_flush_summary_free(sum);
  if (mm_meter_close(meter, &sum, &err) != MM_STATUS_OK) die("close", err);
  mm_flush_summary_free(sum);
  mm_meter_free(meter);
  mm_clock_free(clock);
  printf("{\"case\": \"%s%s\", \"threads\": %d, \"calls\": %ld, \"calls_per_s\": %.0f, "
         "\"flushed_buckets\": %llu, \"flush_s\": %.3f}\n",
         name, path && !power_loss_safe ? ", no fsync" : "", threads, total, (double)total / elapsed, (unsigned long long)acked, flush_s);
  fflush(stdout);
}


static int meter_cases(const char *endpoint, double seconds, int threads, const char *dir) {
  if (threads < 1 || threads > MAX_THREADS) {
    fprintf(stderr, "THREADS: 1..%d\n", MAX_THREADS);
    return 2;
  }
  mm_client *client = new_client(endpoint);
  char m[4096], g[4096], d[4096];
  snprintf(m, sizeof m, "%s/m.db", dir);
  snprintf(g, sizeof g, "%s/g.db", dir);
  snprintf(d, sizeof d, "%s/d.db", dir);
  run(client, 0, "memory store", NULL, MM_METER_DURABILITY_DURABLE, 1, seconds);
  run(client, 1, "memory store", NULL, MM_METER_DURABILITY_DURABLE, threads, seconds);
  run(client, 2, "file, durability=memory", m, MM_METER_DURABILITY_MEMORY, 1, seconds);
  run(client, 3, "file, durability=group", g, MM_METER_DURABILITY_GROUP, threads, seconds);
  run(client, 4, "file, durability=durable", d, MM_METER_DURABILITY_DURABLE, 1, seconds);
  mm_client_free(client);
  mm_shutdown();
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && strcmp(argv[2], "meter") == 0) {
    power_loss_safe = !(argc >= 7 && strcmp(argv[6], "no-fsync") == 0);
    return meter_cases(argv[1], atof(argv[3]), atoi(argv[4]), argv[5]);
  }
  if (argc < 3) {
    fprintf(stderr, "usage: %s ENDPOINT_URL SECONDS | ENDPOINT_URL meter SECONDS THREADS DIR\n", argv[0]);
    return 2;
  }
  double seconds = atof(argv[2]);
  mm_client *client = new_client(argv[1]);
  mm_error *err = NULL;
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

#define _POSIX_C_SOURCE 200809L
/* Bench client for the project's C face, same contract as the others (bench/peers/README.md):
 * env BENCH_ENDPOINT, BENCH_CALLS, BENCH_CONCURRENCY (threads, one shared client), BENCH_WARMUP;
 * one JSON line on stdout. */
#include <marketplace_metering.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static mm_client *client;
static mm_batch_meter_usage_input *input;
static atomic_long next_call;
static long limit;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) {
  struct rusage r; getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}
static void one(void) {
  mm_batch_meter_usage_output *out = NULL; mm_error *err = NULL;
  if (mm_client_batch_meter_usage(client, input, &out, &err) != MM_STATUS_OK) {
    fprintf(stderr, "call failed: %s\n", err ? mm_error_message(err) : "?"); exit(1);
  }
  if (mm_batch_meter_usage_output_result_count(out) != 25) { fprintf(stderr, "unexpected result count\n"); exit(1); }
  mm_batch_meter_usage_output_free(out);
}
static void *worker(void *arg) { (void)arg; while (atomic_fetch_add(&next_call, 1) < limit) one(); return NULL; }
static void run(long calls, int conc) {
  atomic_store(&next_call, 0); limit = calls;
  if (conc <= 1) { for (long i = 0; i < calls; i++) one(); return; }
  pthread_t t[256];
  for (int i = 0; i < conc; i++) pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < conc; i++) pthread_join(t[i], NULL);
}
int main(void) {
  const char *ep = getenv("BENCH_ENDPOINT");
  long calls = getenv("BENCH_CALLS") ? atol(getenv("BENCH_CALLS")) : 2000;
  int conc = getenv("BENCH_CONCURRENCY") ? atoi(getenv("BENCH_CONCURRENCY")) : 1;
  long warm = getenv("BENCH_WARMUP") ? atol(getenv("BENCH_WARMUP")) : 50;
  if (!ep) return 2;
  if (conc < 1) conc = 1; if (conc > 256) conc = 256;
  mm_config *cfg = mm_config_new();
  mm_config_set_region(cfg, "us-east-1");
  mm_config_set_endpoint_url(cfg, ep);
  mm_config_set_credentials(cfg, "AKIDEXAMPLEBENCH0000", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL);
  mm_config_set_max_attempts(cfg, 1);
  mm_error *err = NULL;
  if (mm_client_new(cfg, &client, &err) != MM_STATUS_OK) { fprintf(stderr, "client: %s\n", mm_error_message(err)); return 1; }
  mm_config_free(cfg);
  long ts = (long)time(NULL); ts -= ts % 3600;
  input = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(input, "prod-123");
  char cust[16];
  for (int i = 0; i < 25; i++) { snprintf(cust, sizeof cust, "c-%d", i); mm_batch_meter_usage_input_add_usage(input, ts, cust, "users", 1); }
  if (warm > 0) run(warm, conc);
  double c0 = cpu(), t0 = now();
  run(calls, conc);
  double secs = now() - t0, c = cpu() - c0;
  printf("{\"calls\":%ld,\"seconds\":%.6f,\"calls_per_sec\":%.2f,\"concurrency\":%d,\"warmup\":%ld,\"cpu_seconds\":%.6f}\n",
         calls, secs, calls / secs, conc, warm, c);
  mm_batch_meter_usage_input_free(input);
  mm_client_free(client);
  return 0;
}

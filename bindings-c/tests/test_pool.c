/* SPDX-License-Identifier: Apache-2.0
 * Blocking calls share one connection pool per client: connections are bounded by the calls in
 * flight, not by the threads that ever called (a thread pool that recycles its threads). The
 * emulator numbers the TCP connections it accepts and logs each request with its number. */
#define _GNU_SOURCE /* pthread_barrier_t, fork, alarm under -std=c11 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/mm_test.h"

#define PARALLEL 8
#define ROUNDS 3
#define MAX_CONNECTIONS 256

static mm_test_emulator emu;
static mm_client *client;

/* One BatchMeterUsage call with one record; 1 when it succeeded. */
static int call(int customer) {
  char cust[16];
  snprintf(cust, sizeof cust, "cust-%d", customer);
  mm_batch_meter_usage_input *in = mm_batch_meter_usage_input_new();
  mm_batch_meter_usage_input_set_product_code(in, MM_TEST_PRODUCT);
  mm_batch_meter_usage_input_add_usage(in, mm_test_now(60), cust, "users", 1);
  mm_batch_meter_usage_output *out = NULL;
  mm_error *err = NULL;
  int ok = mm_client_batch_meter_usage(client, in, &out, &err) == MM_STATUS_OK &&
           mm_batch_meter_usage_output_result_count(out) == 1 &&
           mm_batch_meter_usage_output_result_status(out, 0) == MM_USAGE_RECORD_STATUS_SUCCESS;
  if (err) fprintf(stderr, "call for %s: %s: %s\n", cust, mm_error_code_str(err), mm_error_message(err));
  mm_batch_meter_usage_output_free(out);
  mm_error_free(err);
  mm_batch_meter_usage_input_free(in);
  return ok;
}

typedef struct {
  int customer;
  int ok;
  pthread_barrier_t *start; /* NULL: go at once */
} job;

static void *run(void *arg) {
  job *j = (job *)arg;
  if (j->start) pthread_barrier_wait(j->start);
  j->ok = call(j->customer);
  return NULL;
}

/* One call from a thread of its own, started and joined here; 1 when it succeeded. */
static int call_in_fresh_thread(int customer) {
  job j = {customer, 0, NULL};
  pthread_t t;
  if (pthread_create(&t, NULL, run, &j) != 0) return 0;
  pthread_join(t, NULL);
  return j.ok;
}

/* The requests the emulator logged, and the distinct connections they came on. */
static int count_log(int *requests) {
  static char log[1 << 20];
  static long seen[MAX_CONNECTIONS];
  int distinct = 0;
  *requests = 0;
  if (mm_test_control(&emu, "GET", "/_emulator/requests", NULL, log, sizeof log) != 200) return -1;
  for (const char *p = strstr(log, "\"connection\":"); p; p = strstr(p + 1, "\"connection\":")) {
    long id = strtol(p + strlen("\"connection\":"), NULL, 10);
    int known = 0;
    for (int i = 0; i < distinct; i++) known |= seen[i] == id;
    if (!known && distinct < MAX_CONNECTIONS) seen[distinct++] = id;
    (*requests)++;
  }
  return distinct;
}

static void reset(void) { CHECK(mm_test_control(&emu, "POST", "/_emulator/reset", NULL, NULL, 0) == 200); }

static void fresh_threads_one_at_a_time_reuse_one_connection(void) {
  reset();
  for (int i = 0; i < 16; i++) CHECK(call_in_fresh_thread(i + 1));
  int requests = 0;
  int used = count_log(&requests);
  CHECK(requests == 16);
  if (used != 1) fprintf(stderr, "16 fresh threads one at a time used %d connections\n", used);
  CHECK(used == 1);
}

static void parallel_fresh_threads_open_at_most_one_connection_per_call_in_flight(void) {
  reset();
  for (int round = 0; round < ROUNDS; round++) {
    /* Each call held 50 ms by the emulator: all 8 are in flight together. */
    for (int i = 0; i < PARALLEL; i++)
      CHECK(mm_test_control(&emu, "POST", "/_emulator/faults", "{\"kind\":\"delay\",\"seconds\":0.05}",
                            NULL, 0) == 200);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, PARALLEL);
    pthread_t t[PARALLEL];
    job j[PARALLEL];
    for (int i = 0; i < PARALLEL; i++) {
      j[i] = (job){round * PARALLEL + i + 1, 0, &start};
      CHECK(pthread_create(&t[i], NULL, run, &j[i]) == 0);
    }
    for (int i = 0; i < PARALLEL; i++) {
      pthread_join(t[i], NULL);
      CHECK(j[i].ok);
    }
    pthread_barrier_destroy(&start);
  }
  int requests = 0;
  int used = count_log(&requests);
  CHECK(requests == ROUNDS * PARALLEL);
  if (used < 1 || used > PARALLEL)
    fprintf(stderr, "%d rounds of %d parallel fresh threads used %d connections\n", ROUNDS, PARALLEL, used);
  CHECK(used >= 1 && used <= PARALLEL);
}

static void works_after_fork(void) {
  reset();
  CHECK(call_in_fresh_thread(1));
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    alarm(20); /* a hang in the child fails the test instead of hanging it */
    int ok = call(2) && call_in_fresh_thread(3);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int i = 4; i < 8; i++) CHECK(call_in_fresh_thread(i));
  int requests = 0;
  count_log(&requests);
  CHECK(requests == 7);
}

int main(void) {
  if (mm_test_emulator_start(&emu) != 0) return 2;
  client = mm_test_client(&emu, 1);
  if (!client) {
    mm_test_emulator_stop(&emu);
    return 2;
  }
  fresh_threads_one_at_a_time_reuse_one_connection();
  parallel_fresh_threads_open_at_most_one_connection_per_call_in_flight();
  works_after_fork();
  mm_client_free(client);
  mm_shutdown();
  mm_test_emulator_stop(&emu);
  if (mm_test_failures) {
    fprintf(stderr, "%d check(s) failed\n", mm_test_failures);
    return 1;
  }
  printf("test_pool: ok\n");
  return 0;
}

/* SPDX-License-Identifier: Apache-2.0
 * The usage meter (mm_meter_*) against the emulator process: exactly what was recorded is billed
 * once, dead letters reach the callback, a file store survives reopening, bad input names the
 * field, callbacks arrive from other threads, throttling interrupts a flush without losing anything,
 * two replicas on the fleet store (a private PostgreSQL) bill a customer-hour once. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/mm_test.h"

#define H 3600

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The start of the real hour the run began in, taken once: tests that each took the hour anew
 * used one another's hours when the hour turned between them (test 6 counted test 1's entries).
 * The hours before it stay inside the emulator's window, widened in main() to cover a run that
 * crosses the hour. */
static int64_t base_hour(void) {
  static int64_t base = 0;
  if (base == 0) base = mm_test_now(0) / H * H;
  return base;
}

/* ---- the emulator's ledger --------------------------------------------------------------- */

static char ledger_buf[1 << 20];

/* Reads a JSON string value `"key":"..."` inside [obj, end) into out; 0 if absent. */
static int json_str(const char *obj, const char *end, const char *key, char *out, size_t n) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(obj, pat);
  if (!p || p >= end) return 0;
  p += strlen(pat);
  size_t i = 0;
  while (p < end && *p != '"' && i + 1 < n) out[i++] = *p++;
  out[i] = '\0';
  return 1;
}

static int json_int(const char *obj, const char *end, const char *key, long long *out) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(obj, pat);
  if (!p || p >= end) return 0;
  *out = strtoll(p + strlen(pat), NULL, 10);
  return 1;
}

/* Fetches the ledger; returns 0 on success. */
static int ledger_fetch(const mm_test_emulator *e) {
  return mm_test_control(e, "GET", "/_emulator/ledger", NULL, ledger_buf, sizeof ledger_buf) == 200 ? 0 : -1;
}

/* Sum of the quantities billed and number of ledger entries for (customer, dimension, hour). */
static long long ledger_sum(const char *customer, const char *dimension, int64_t hour, int *entries) {
  long long sum = 0;
  *entries = 0;
  const char *p = ledger_buf;
  while ((p = strstr(p, "{\"operation\"")) != NULL) {
    const char *next = strstr(p + 1, "{\"operation\"");
    const char *end = next ? next : p + strlen(p);
    char cust[128] = "", dim[128] = "";
    long long h = 0, q = 0;
    if (!json_str(p, end, "customer_identifier", cust, sizeof cust))
      json_str(p, end, "customer_aws_account_id", cust, sizeof cust);
    json_str(p, end, "dimension", dim, sizeof dim);
    json_int(p, end, "hour", &h);
    json_int(p, end, "quantity", &q);
    if (streq(cust, customer) && streq(dim, dimension) && h == hour) {
      sum += q;
      (*entries)++;
    }
    p = end;
  }
  return sum;
}

/* Number of ledger entries for `hour`. */
static int ledger_entries_in_hour(int64_t hour) {
  int n = 0;
  const char *p = ledger_buf;
  while ((p = strstr(p, "{\"operation\"")) != NULL) {
    const char *next = strstr(p + 1, "{\"operation\"");
    const char *end = next ? next : p + strlen(p);
    long long h = 0;
    if (json_int(p, end, "hour", &h) && h == hour) n++;
    p = end;
  }
  return n;
}

/* ---- events ------------------------------------------------------------------------------ */

typedef struct events {
  pthread_mutex_t mu;
  pthread_t main_thread;
  int acked, dead, late, other;
  int off_main; /* callbacks that ran on another thread than main() */
  int with_customer; /* events with any of the three customer fields set */
  char dead_customer[64];
  char dead_status[64];
  char acked_id[128];
  int64_t late_counted_in;
} events;

static void on_event(const mm_meter_event *ev, void *user_data) {
  events *s = (events *)user_data;
  pthread_mutex_lock(&s->mu);
  if (!pthread_equal(pthread_self(), s->main_thread)) s->off_main++;
  if (ev->customer_identifier || ev->customer_aws_account_id || ev->license_arn) s->with_customer++;
  switch (ev->kind) {
    case MM_METER_EVENT_KIND_ACKED:
      s->acked++;
      if (ev->metering_record_id) snprintf(s->acked_id, sizeof s->acked_id, "%s", ev->metering_record_id);
      if (!streq(ev->kind_str, "acked")) mm_test_failures++;
      break;
    case MM_METER_EVENT_KIND_DEAD_LETTERED:
      s->dead++;
      snprintf(s->dead_customer, sizeof s->dead_customer, "%s",
               ev->customer_identifier ? ev->customer_identifier : "(null)");
      snprintf(s->dead_status, sizeof s->dead_status, "%s", ev->reason ? ev->reason : "(null)");
      if (!streq(ev->kind_str, "dead_lettered") || ev->message == NULL) mm_test_failures++;
      break;
    case MM_METER_EVENT_KIND_LATE_EVENT:
      s->late++;
      s->late_counted_in = ev->counted_in_hour;
      break;
    default:
      s->other++;
      break;
  }
  pthread_mutex_unlock(&s->mu);
}

static void events_init(events *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->main_thread = pthread_self();
}

/* A meter in `mode` on `client` with product prod-1234, grace 60 s, the clock and the callback. */
static mm_meter *new_meter_in(uint32_t mode, const mm_client *client, const char *path, uint32_t durability,
                              const mm_clock *clock, events *ev, uint64_t flush_interval) {
  mm_meter_config *cfg = mm_meter_config_new();
  mm_meter *meter = NULL;
  mm_error *err = NULL;
  CHECK_OK(mm_meter_config_set_path(cfg, path), err);
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_mode(cfg, mode), err);
  CHECK_OK(mm_meter_config_set_durability(cfg, durability), err);
  CHECK_OK(mm_meter_config_set_grace_seconds(cfg, 60), err);
  CHECK_OK(mm_meter_config_set_zero_fill(cfg, false), err);
  CHECK_OK(mm_meter_config_set_flush_interval_seconds(cfg, flush_interval), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  if (ev) CHECK_OK(mm_meter_config_set_event_callback(cfg, on_event, ev), err);
  CHECK_OK(mm_meter_new(client, cfg, &meter, &err), err);
  mm_meter_config_free(cfg);
  return meter;
}

/* new_meter_in the batch mode. */
static mm_meter *new_meter(const mm_client *client, const char *path, uint32_t durability, const mm_clock *clock,
                           events *ev, uint64_t flush_interval) {
  return new_meter_in(MM_METER_MODE_BATCH, client, path, durability, clock, ev, flush_interval);
}

/* An event of `q` `dim` for `customer` (NULL: none; `dim` NULL: unset), at now unless
 * `ts` is given with `has_ts`. Exits the test on allocation failure. */
static mm_usage_event *usage_event(const char *customer, const char *dim, int64_t q) {
  mm_usage_event *ev = mm_usage_event_new();
  if (!ev) abort();
  mm_error *err = NULL;
  if (customer) CHECK_OK(mm_usage_event_set_customer_identifier(ev, customer), err);
  if (dim) CHECK_OK(mm_usage_event_set_dimension(ev, dim), err);
  CHECK_OK(mm_usage_event_set_quantity(ev, q), err);
  return ev;
}

static int record_event(const mm_meter *m, mm_usage_event *ev, const char *customer, const char *dim,
                        int64_t q) {
  mm_error *err = NULL;
  mm_status st = mm_meter_record(m, ev, &err);
  if (st != MM_STATUS_OK) {
    fprintf(stderr, "record %s %s %lld: %s: %s\n", customer, dim, (long long)q, mm_status_str(st),
            mm_error_message(err));
    mm_test_failures++;
  }
  mm_error_free(err);
  mm_usage_event_free(ev);
  return st == MM_STATUS_OK;
}

/* Records `q` of `dim` for `customer` now (by the meter's clock). */
static int record(const mm_meter *m, const char *customer, const char *dim, int64_t q) {
  return record_event(m, usage_event(customer, dim, q), customer, dim, q);
}

/* Records `q` of `dim` for `customer` at `ts` (epoch seconds). */
static int record_at(const mm_meter *m, const char *customer, const char *dim, int64_t q, int64_t ts) {
  mm_usage_event *ev = usage_event(customer, dim, q);
  mm_error *err = NULL;
  CHECK_OK(mm_usage_event_set_timestamp(ev, ts), err);
  return record_event(m, ev, customer, dim, q);
}

/* An mm_flush_summary read into a struct, so checks read like the numbers they compare. */
typedef struct flush_result {
  uint64_t sealed, sent, calls, acked, dead_lettered, expired, resent_unprocessed, deferred;
  mm_status interrupted;
} flush_result;

static void read_summary(mm_flush_summary *s, flush_result *r) {
  r->sealed = mm_flush_summary_sealed_count(s);
  r->sent = mm_flush_summary_sent_count(s);
  r->calls = mm_flush_summary_call_count(s);
  r->acked = mm_flush_summary_acked_count(s);
  r->dead_lettered = mm_flush_summary_dead_lettered_count(s);
  r->expired = mm_flush_summary_expired_count(s);
  r->resent_unprocessed = mm_flush_summary_resent_unprocessed_count(s);
  r->deferred = mm_flush_summary_deferred_count(s);
  r->interrupted = mm_flush_summary_interrupted(s);
  /* A message exactly when interrupted. */
  CHECK((r->interrupted == MM_STATUS_OK) == (mm_flush_summary_interrupted_message(s) == NULL));
  mm_flush_summary_free(s);
}

/* mm_meter_flush, the summary read into `r` (NULL: discarded after reading). */
static mm_status flush(const mm_meter *m, flush_result *r, mm_error **err) {
  mm_flush_summary *s = NULL;
  flush_result ignored;
  mm_status st = mm_meter_flush(m, &s, err);
  CHECK((st == MM_STATUS_OK) == (s != NULL));
  if (st == MM_STATUS_OK) read_summary(s, r ? r : &ignored);
  return st;
}

/* mm_meter_close, the summary discarded. */
static mm_status close_meter(const mm_meter *m, mm_error **err) {
  mm_flush_summary *s = NULL;
  flush_result ignored;
  mm_status st = mm_meter_close(m, &s, err);
  if (st == MM_STATUS_OK) read_summary(s, &ignored);
  return st;
}

/* An mm_meter_status read into a struct. */
typedef struct status_result {
  uint64_t pending, sealed, acked, dead_lettered, expired;
  bool has_oldest_unsent_hour;
  int64_t oldest_unsent_hour;
  char replica_id[64]; /* "" on a local store */
  bool has_last_flush_at;
  int64_t last_flush_at;
  char last_flush_error[256]; /* "" when the last flush went well */
} status_result;

static mm_status get_status(const mm_meter *m, status_result *r, mm_error **err) {
  mm_meter_status *s = NULL;
  mm_status st = mm_meter_get_status(m, &s, err);
  if (st != MM_STATUS_OK) return st;
  r->pending = mm_meter_status_pending_count(s);
  r->sealed = mm_meter_status_sealed_count(s);
  r->acked = mm_meter_status_acked_count(s);
  r->dead_lettered = mm_meter_status_dead_lettered_count(s);
  r->expired = mm_meter_status_expired_count(s);
  r->oldest_unsent_hour = 0;
  r->has_oldest_unsent_hour = mm_meter_status_oldest_unsent_hour(s, &r->oldest_unsent_hour);
  const char *replica = mm_meter_status_replica_id(s);
  snprintf(r->replica_id, sizeof r->replica_id, "%s", replica ? replica : "");
  r->last_flush_at = 0;
  r->has_last_flush_at = mm_meter_status_last_flush_at(s, &r->last_flush_at);
  const char *last = mm_meter_status_last_flush_error(s);
  snprintf(r->last_flush_error, sizeof r->last_flush_error, "%s", last ? last : "");
  mm_meter_status_free(s);
  return st;
}

/* ---- 1. record + flush bills exactly what was recorded, once ----------------------------- */

static void test_bills_exactly_what_was_recorded(const mm_test_emulator *e, const mm_client *client) {
  const int64_t hour = base_hour() - 4 * H;
  mm_clock *clock = mm_clock_new(hour + 30);
  events ev;
  events_init(&ev);
  mm_meter *m = new_meter(client, NULL, MM_METER_DURABILITY_DURABLE, clock, &ev, 0);
  long long expect[30][2];
  const char *dims[2] = {"users", "gb"};
  for (int c = 0; c < 30; c++) {
    char cust[32];
    snprintf(cust, sizeof cust, "cust-%d", c + 1);
    for (int d = 0; d < 2; d++) {
      expect[c][d] = 0;
      for (int k = 0; k < 3; k++) {
        int64_t q = c + d + k + 1;
        /* Timestamps inside the hour, and once "now" (by the meter's clock). */
        if (k == 2)
          record(m, cust, dims[d], q);
        else
          record_at(m, cust, dims[d], q, hour + 60 * k);
        expect[c][d] += q;
      }
    }
  }
  mm_error *err = NULL;
  flush_result sum;
  memset(&sum, 0xff, sizeof sum);
  /* The hour is still open: nothing is sent. */
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.sent == 0 && sum.calls == 0 && sum.sealed == 0 && sum.interrupted == MM_STATUS_OK);
  status_result counts;
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.pending == 60 && counts.sealed == 0 && counts.acked == 0);
  CHECK(counts.has_oldest_unsent_hour && counts.oldest_unsent_hour == hour);

  /* The hour ends, grace passes: sealed and sent in ceil(60/25) = 3 calls. */
  CHECK_OK(mm_clock_set(clock, hour + H + 61), err);
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.sealed == 60);
  CHECK(sum.sent == 60);
  CHECK(sum.calls == 3);
  CHECK(sum.acked == 60);
  CHECK(sum.dead_lettered == 0 && sum.expired == 0 && sum.deferred == 0);
  CHECK(sum.interrupted == MM_STATUS_OK);
  CHECK(ev.acked == 60 && ev.dead == 0 && ev.late == 0);
  CHECK(ev.acked_id[0] != '\0');
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.acked == 60 && counts.pending == 0 && counts.sealed == 0 && !counts.has_oldest_unsent_hour);

  /* A second flush sends nothing more. */
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.sent == 0 && sum.calls == 0);

  CHECK(ledger_fetch(e) == 0);
  for (int c = 0; c < 30; c++) {
    char cust[32];
    snprintf(cust, sizeof cust, "cust-%d", c + 1);
    for (int d = 0; d < 2; d++) {
      int n = 0;
      long long got = ledger_sum(cust, dims[d], hour, &n);
      if (got != expect[c][d] || n != 1) {
        fprintf(stderr, "ledger %s %s: %lld in %d entries, expected %lld in 1\n", cust, dims[d], got, n,
                expect[c][d]);
        mm_test_failures++;
      }
    }
  }
  CHECK(ledger_entries_in_hour(hour) == 60);

  /* close: later records fail with InvalidState. */
  CHECK_OK(close_meter(m, &err), err);
  mm_usage_event *late = usage_event("cust-1", "users", 1);
  CHECK(mm_meter_record(m, late, &err) == MM_STATUS_INVALID_STATE);
  mm_usage_event_free(late);
  CHECK(mm_error_code(err) == MM_STATUS_INVALID_STATE);
  mm_error_free(err);
  mm_meter_free(m);
  mm_clock_free(clock);
  pthread_mutex_destroy(&ev.mu);
}

/* ---- 2. a dead letter reaches the callback and the dead-letter table ---------------------- */

static void test_dead_letter(const mm_test_emulator *e, const mm_client *client) {
  const int64_t hour = base_hour() - 3 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  events ev;
  events_init(&ev);
  mm_meter *m = new_meter(client, NULL, MM_METER_DURABILITY_MEMORY, clock, &ev, 0);
  record(m, "cust-unsubscribed", "users", 5);
  record(m, "cust-2", "users", 7);
  mm_error *err = NULL;
  flush_result sum;
  CHECK_OK(mm_clock_advance(clock, H + 60), err);
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.acked == 1 && sum.dead_lettered == 1);
  CHECK(ev.dead == 1 && ev.acked == 1);
  CHECK(streq(ev.dead_customer, "cust-unsubscribed"));
  CHECK(streq(ev.dead_status, "CustomerNotSubscribed"));

  mm_dead_letters *dl = NULL;
  CHECK_OK(mm_meter_get_dead_letters(m, &dl, &err), err);
  CHECK(mm_dead_letters_count(dl) == 1);
  CHECK(streq(mm_dead_letters_customer_identifier(dl, 0), "cust-unsubscribed"));
  CHECK(mm_dead_letters_customer_aws_account_id(dl, 0) == NULL);
  CHECK(mm_dead_letters_license_arn(dl, 0) == NULL);
  CHECK(streq(mm_dead_letters_dimension(dl, 0), "users"));
  CHECK(mm_dead_letters_hour(dl, 0) == hour);
  CHECK(mm_dead_letters_quantity(dl, 0) == 5);
  CHECK(streq(mm_dead_letters_reason(dl, 0), "CustomerNotSubscribed"));
  CHECK(mm_dead_letters_message(dl, 0) != NULL);
  CHECK(mm_dead_letters_at(dl, 0) == mm_clock_now(clock));
  CHECK(mm_dead_letters_dimension(dl, 1) == NULL && mm_dead_letters_quantity(dl, 1) == 0);
  mm_dead_letters_free(dl);

  status_result counts;
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.dead_lettered == 1 && counts.acked == 1);
  CHECK(ledger_fetch(e) == 0);
  int n = 0;
  CHECK(ledger_sum("cust-unsubscribed", "users", hour, &n) == 0 && n == 0);
  CHECK(ledger_sum("cust-2", "users", hour, &n) == 7 && n == 1);
  mm_meter_free(m);
  mm_clock_free(clock);
  pthread_mutex_destroy(&ev.mu);
}

/* ---- 2b. a MeterUsage-mode bucket has no customer: NULL in events and dead letters -------- */

static void test_meter_usage_has_no_customer(const mm_client *client, const char *dir) {
  const int64_t hour = base_hour() - 3 * H;
  char path[512];
  snprintf(path, sizeof path, "%s/nocustomer.db", dir);
  mm_clock *clock = mm_clock_new(hour + 10);
  events ev;
  events_init(&ev);
  mm_meter *m = new_meter_in(MM_METER_MODE_METER_USAGE, client, path, MM_METER_DURABILITY_DURABLE, clock, &ev, 0);
  record(m, NULL, "users", 5);
  record(m, "ignored-in-this-mode", "users", 1);
  record(m, NULL, "nope", 2); /* refused by the service: dead-lettered */
  mm_error *err = NULL;
  flush_result sum;
  CHECK_OK(mm_clock_advance(clock, H + 60), err);
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.acked == 1 && sum.dead_lettered == 1);
  CHECK(ev.acked == 1 && ev.dead == 1);
  CHECK(ev.with_customer == 0);
  CHECK(streq(ev.dead_customer, "(null)"));
  mm_dead_letters *dl = NULL;
  CHECK_OK(mm_meter_get_dead_letters(m, &dl, &err), err);
  CHECK(mm_dead_letters_count(dl) == 1);
  CHECK(streq(mm_dead_letters_dimension(dl, 0), "nope"));
  CHECK(mm_dead_letters_customer_identifier(dl, 0) == NULL);
  CHECK(mm_dead_letters_customer_aws_account_id(dl, 0) == NULL);
  CHECK(mm_dead_letters_license_arn(dl, 0) == NULL);
  mm_dead_letters_free(dl);
  mm_meter_free(m);
  mm_clock_free(clock);
  pthread_mutex_destroy(&ev.mu);
}

/* ---- 3. a file store survives reopening --------------------------------------------------- */

static void remove_db(const char *path) {
  char p[512];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static void test_file_store_survives_reopening(const mm_test_emulator *e, const mm_client *client,
                                               const char *dir) {
  const int64_t hour = base_hour() - 2 * H;
  char path[512];
  snprintf(path, sizeof path, "%s/meter.db", dir);
  mm_clock *clock = mm_clock_new(hour + 100);
  mm_error *err = NULL;

  /* First life: record durably, then free without flushing (as a crash would lose the process). */
  mm_meter *m = new_meter(client, path, MM_METER_DURABILITY_DURABLE, clock, NULL, 0);
  record(m, "cust-7", "requests", 11);
  record_at(m, "cust-7", "requests", 4, hour + 200);
  mm_meter_free(m);

  /* Second life on the same file, after the hour ended. */
  CHECK_OK(mm_clock_set(clock, hour + H + 61), err);
  events ev;
  events_init(&ev);
  m = new_meter(client, path, MM_METER_DURABILITY_DURABLE, clock, &ev, 0);
  status_result counts;
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.pending + counts.sealed == 1);
  flush_result sum;
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.acked == 1);
  CHECK(ev.acked == 1);
  mm_meter_free(m);

  /* Third life: already acked, nothing is sent again. */
  m = new_meter(client, path, MM_METER_DURABILITY_DURABLE, clock, NULL, 0);
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.acked == 1 && counts.pending == 0 && counts.sealed == 0);
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.sent == 0);
  mm_meter_free(m);

  CHECK(ledger_fetch(e) == 0);
  int n = 0;
  CHECK(ledger_sum("cust-7", "requests", hour, &n) == 15 && n == 1);
  remove_db(path);
  mm_clock_free(clock);
  pthread_mutex_destroy(&ev.mu);
}

/* ---- 3b. a program that exits without mm_meter_free keeps what memory durability buffered ---- */

static const char *self_path;

/* A child's memory-durability meter on WHERE (a file, or a PostgreSQL URL: the fleet store,
 * as replica REPLICA), with CLOCK unless NULL, for the emulator at ENDPOINT; NULL if it could
 * not be made. It makes a blocking call first, as a program does: that leaves the thread's
 * runtime context, whose thread-locals exit() destroys before the atexit handlers run. */
static mm_meter *exiting_meter(const char *where, const char *endpoint, const char *replica,
                               const mm_clock *clock) {
  mm_test_emulator fake;
  memset(&fake, 0, sizeof fake);
  snprintf(fake.endpoint, sizeof fake.endpoint, "%s", endpoint);
  mm_client *client = mm_test_client(&fake, 1);
  if (!client) return NULL;
  int fleet = strncmp(where, "postgresql://", 13) == 0;
  mm_meter_config *cfg = mm_meter_config_new();
  mm_error *err = NULL;
  mm_meter *m = NULL;
  CHECK_OK(fleet ? mm_meter_config_set_database_url(cfg, where) : mm_meter_config_set_path(cfg, where), err);
  if (fleet) CHECK_OK(mm_meter_config_set_replica_id(cfg, replica), err);
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_durability(cfg, MM_METER_DURABILITY_MEMORY), err);
  CHECK_OK(mm_meter_config_set_flush_interval_seconds(cfg, 0), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  CHECK_OK(mm_meter_new(client, cfg, &m, &err), err);
  mm_meter_config_free(cfg);
  if (!m) return NULL;
  status_result counts;
  CHECK_OK(get_status(m, &counts, &err), err);
  return m;
}

/* The child's side (this program run again with --record-and-exit WHERE ENDPOINT): records
 * into a memory-durability meter on WHERE and returns from main without freeing anything. */
static int record_and_exit(const char *where, const char *endpoint) {
  mm_meter *m = exiting_meter(where, endpoint, "exiting", NULL);
  if (!m) return 2;
  record(m, "cust-exit", "users", 6);
  return mm_test_failures ? 3 : 0; /* exit(): no mm_meter_free, no mm_shutdown */
}

/* A meter never freed (a program's "never destroyed" singleton), recorded into by an atexit
 * handler registered before the library's own hook, which therefore runs after it, as a
 * static destructor or another thread still recording would. */
static mm_meter *late_meter;
static const char *late_customer;
static void record_late(void) { record(late_meter, late_customer, "users", 4); }

/* The customer the late child records for on WHERE: one per store kind. */
static const char *late_customer_of(const char *where) {
  return strncmp(where, "postgresql://", 13) == 0 ? "cust-38" : "cust-39";
}

/* The child's side of --record-late-and-exit WHERE ENDPOINT HOUR. */
static int record_late_and_exit(const char *where, const char *endpoint, const char *hour) {
  atexit(record_late);
  /* Leaked with the meter: the parent's hour, not the real one, which may turn meanwhile. */
  mm_clock *clock = mm_clock_new(strtoll(hour, NULL, 10) + 10);
  late_meter = exiting_meter(where, endpoint, "exiting-late", clock);
  if (!late_meter) return 2;
  late_customer = late_customer_of(where);
  record(late_meter, late_customer, "users", 1);
  return mm_test_failures ? 3 : 0; /* exit(): the library's hook, then record_late */
}

/* Runs the child (MODE) on WHERE, with an extra argument unless NULL; returns whether it
 * exited 0. */
static int run_child(const mm_test_emulator *e, const char *mode, const char *where, const char *extra) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1); /* it leaks the meter on purpose */
    execl(self_path, self_path, mode, where, e->endpoint, extra, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int run_record_and_exit(const mm_test_emulator *e, const char *where) {
  return run_child(e, "--record-and-exit", where, NULL);
}

/* Runs the late child on the fleet store WHERE, then flushes it with METER (its clock past the
 * hour): the late record is billed with the first. */
static void check_late_record(const mm_test_emulator *e, const char *where, const mm_meter *meter) {
  char hour_arg[32];
  snprintf(hour_arg, sizeof hour_arg, "%lld", (long long)base_hour());
  CHECK(run_child(e, "--record-late-and-exit", where, hour_arg));
  mm_error *err = NULL;
  flush_result sum;
  CHECK_OK(flush(meter, &sum, &err), err);
  CHECK(ledger_fetch(e) == 0);
  int n = 0;
  long long billed = ledger_sum(late_customer_of(where), "users", base_hour(), &n);
  if (billed != 5) {
    fprintf(stderr, "late record on the fleet store: %lld billed\n", billed);
    mm_test_failures++;
  }
}

static void test_exit_keeps_the_memory_buffer(const mm_test_emulator *e, const mm_client *client,
                                              const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/exit.db", dir);
  CHECK(run_record_and_exit(e, path));
  mm_meter *m = new_meter(client, path, MM_METER_DURABILITY_DURABLE, NULL, NULL, 0);
  status_result counts;
  mm_error *err = NULL;
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.pending == 1);
  mm_meter_free(m);
  remove_db(path);

  /* The hook wrote each buffer once, and a record made after it (a later atexit handler, a
   * static destructor, another thread) was acknowledged and lost with the process. Records
   * made after the hook are written as they are made. */
  snprintf(path, sizeof path, "%s/exit-late.db", dir);
  char hour_arg[32];
  snprintf(hour_arg, sizeof hour_arg, "%lld", (long long)base_hour());
  CHECK(run_child(e, "--record-late-and-exit", path, hour_arg));
  mm_clock *clock = mm_clock_new(base_hour() + H + 60);
  m = new_meter(client, path, MM_METER_DURABILITY_DURABLE, clock, NULL, 0); /* the child's store */
  flush_result sum;
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(ledger_fetch(e) == 0);
  int n = 0;
  if (ledger_sum(late_customer_of(path), "users", base_hour(), &n) != 5) {
    fprintf(stderr, "late record on SQLite: %lld billed\n", ledger_sum(late_customer_of(path), "users", base_hour(), &n));
    mm_test_failures++;
  }
  mm_meter_free(m);
  mm_clock_free(clock);
  remove_db(path);
}

/* ---- 4. bad input names the field --------------------------------------------------------- */

static void expect_field(mm_status st, mm_error *err, mm_status want, const char *field, int line) {
  if (st != want || mm_error_code(err) != want || !streq(mm_error_field(err), field)) {
    fprintf(stderr, "line %d: got %s field %s, expected %s field %s\n", line, mm_status_str(st),
            err ? mm_error_field(err) : "(no error)", mm_status_str(want), field);
    mm_test_failures++;
  }
  mm_error_free(err);
}

static void test_bad_input(const mm_client *client) {
  mm_clock *clock = mm_clock_new(base_hour() + 10);
  {
    /* A store path that is not a regular file is refused untouched: a directory left a stray
     * "-lock" file beside it, and a device was made owner-only. */
    char dir[] = "/tmp/mm-c-not-a-file-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    mm_meter_config *cfg = mm_meter_config_new();
    mm_meter *bad = NULL;
    mm_error *e = NULL;
    CHECK_OK(mm_meter_config_set_path(cfg, dir), e);
    CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), e);
    mm_status s = mm_meter_new(client, cfg, &bad, &e);
    CHECK(bad == NULL);
    expect_field(s, e, MM_STATUS_INVALID_INPUT, "path", __LINE__);
    mm_meter_config_free(cfg);
    char lock[sizeof dir + 8];
    snprintf(lock, sizeof lock, "%s-lock", dir);
    CHECK(access(lock, F_OK) != 0);
    CHECK(rmdir(dir) == 0);
  }
  mm_meter *m = new_meter(client, NULL, MM_METER_DURABILITY_DURABLE, clock, NULL, 0);
  mm_error *err = NULL;
  mm_usage_event *ev = usage_event("cust-1", "users", -5);
  mm_status st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "quantity", __LINE__);
  err = NULL;
  CHECK_OK(mm_usage_event_set_quantity(ev, 3000000000LL), err);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "quantity", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  /* Each required part missing is refused naming it. */
  ev = usage_event(NULL, "users", 1);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "customer_identifier", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  ev = usage_event("cust-1", NULL, 1);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "dimension", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  ev = mm_usage_event_new();
  CHECK_OK(mm_usage_event_set_customer_identifier(ev, "cust-1"), err);
  CHECK_OK(mm_usage_event_set_dimension(ev, "users"), err);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "quantity", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  ev = usage_event("cust-1", "", 1);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "dimension", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  /* An account customer needs both parts: each alone is refused naming the missing one. */
  ev = usage_event(NULL, "users", 1);
  CHECK_OK(mm_usage_event_set_customer_aws_account_id(ev, "111122223333"), err);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "license_arn", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  ev = usage_event(NULL, "users", 1);
  CHECK_OK(mm_usage_event_set_license_arn(ev, "arn:x"), err);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "customer_aws_account_id", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  mm_tag tags[1] = {{"team", "red"}};
  ev = usage_event("cust-1", "users", 1);
  CHECK_OK(mm_usage_event_add_allocation(ev, 1, tags, 1), err);
  CHECK_OK(mm_usage_event_add_allocation(ev, -1, tags, 1), err);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "allocations[1].AllocatedUsageQuantity", __LINE__);
  err = NULL;
  /* A tag count above the model's maximum is refused before any memory is read or reserved
   * (a huge count used to reach the allocator and abort the process). */
  CHECK(mm_usage_event_add_allocation(ev, 1, tags, (size_t)1 << 40) == MM_STATUS_INVALID_INPUT);
  mm_usage_event_free(ev);
  const char *one_dim[1] = {"users"};
  st = mm_meter_register_customer(m, "cust-1", NULL, NULL, one_dim, (size_t)1 << 40, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "n_dimensions", __LINE__);
  err = NULL;
  /* Which element is wrong, and a NULL array is NULL whatever its count. */
  const char *bad_dims[2] = {"users", "\xff"};
  st = mm_meter_register_customer(m, "cust-1", NULL, NULL, bad_dims, 2, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "dimensions[1]", __LINE__);
  err = NULL;
  CHECK(mm_meter_register_customer(m, "cust-1", NULL, NULL, NULL, (size_t)1 << 40, NULL) ==
        MM_STATUS_NULL_PARAMETER);
  ev = usage_event("cust-1", "users", 1);
  CHECK(mm_usage_event_set_dimension(ev, "\xff\xfe") == MM_STATUS_INVALID_INPUT);
  CHECK(mm_usage_event_set_dimension(ev, NULL) == MM_STATUS_NULL_PARAMETER);
  CHECK(mm_meter_record(m, NULL, &err) == MM_STATUS_NULL_PARAMETER);
  CHECK(mm_error_message(err) && strstr(mm_error_message(err), "event") != NULL);
  mm_error_free(err);
  err = NULL;
  CHECK(mm_meter_record(NULL, ev, &err) == MM_STATUS_NULL_PARAMETER);
  CHECK(mm_error_message(err) && strstr(mm_error_message(err), "meter") != NULL);
  mm_error_free(err);
  err = NULL;
  mm_usage_event_free(ev);
  /* Allocations that sum to the quantity are accepted; the account + license form too. */
  ev = usage_event("cust-1", "users", 3);
  CHECK_OK(mm_usage_event_add_allocation(ev, 1, tags, 1), err);
  CHECK_OK(mm_usage_event_add_allocation(ev, 2, NULL, 0), err);
  CHECK_OK(mm_meter_record(m, ev, &err), err);
  CHECK_OK(mm_usage_event_clear_allocations(ev), err);
  const char *lic = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef";
  /* Both customer kinds on one event: refused, not one of them dropped. */
  CHECK_OK(mm_usage_event_set_customer_aws_account_id(ev, "111122223333"), err);
  CHECK_OK(mm_usage_event_set_license_arn(ev, lic), err);
  st = mm_meter_record(m, ev, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "customer_identifier", __LINE__);
  err = NULL;
  mm_usage_event_free(ev);
  ev = usage_event(NULL, "users", 3);
  CHECK_OK(mm_usage_event_set_customer_aws_account_id(ev, "111122223333"), err);
  CHECK_OK(mm_usage_event_set_license_arn(ev, lic), err);
  CHECK_OK(mm_meter_record(m, ev, &err), err);
  mm_usage_event_free(ev);
  status_result s;
  CHECK_OK(get_status(m, &s, &err), err);
  CHECK(s.pending == 2);
  const char *dims[2] = {"users", "gb"};
  CHECK_OK(mm_meter_register_customer(m, "cust-3", NULL, NULL, dims, 2, &err), err);
  st = mm_meter_register_customer(m, NULL, NULL, "arn:x", dims, 2, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "customer_aws_account_id", __LINE__);
  err = NULL;
  /* Unregistering: the dimensions named, then every dimension (NULL and 0), then none left. */
  const char *gone[2] = {"gb", "cpu"};
  size_t removed = 99;
  CHECK_OK(mm_meter_unregister_customer(m, "cust-3", NULL, NULL, gone, 2, &removed, &err), err);
  CHECK(removed == 1);
  CHECK_OK(mm_meter_unregister_customer(m, "cust-3", NULL, NULL, NULL, 0, &removed, &err), err);
  CHECK(removed == 1);
  CHECK_OK(mm_meter_unregister_customer(m, "cust-3", NULL, NULL, NULL, 0, NULL, &err), err);
  CHECK_OK(mm_meter_unregister_customer(m, "cust-3", NULL, NULL, dims, 0, &removed, &err), err);
  CHECK(removed == 0);
  st = mm_meter_unregister_customer(m, "cust-3", NULL, NULL, NULL, 2, &removed, &err);
  CHECK(st == MM_STATUS_NULL_PARAMETER);
  mm_error_free(err);
  err = NULL;
  st = mm_meter_unregister_customer(m, NULL, NULL, NULL, NULL, 0, &removed, &err);
  CHECK(st == MM_STATUS_INVALID_INPUT);
  mm_error_free(err);
  err = NULL;

  /* Config errors: an unknown enum value names its field. */
  mm_meter_config *cfg = mm_meter_config_new();
  CHECK(mm_meter_config_set_mode(cfg, 9) == MM_STATUS_INVALID_INPUT);
  CHECK(mm_meter_config_set_durability(cfg, 9) == MM_STATUS_INVALID_INPUT);
  CHECK_OK(mm_meter_config_set_mode(cfg, MM_METER_MODE_METER_USAGE), err);
  mm_meter *bad = NULL;
  CHECK(mm_meter_new(client, cfg, &bad, &err) == MM_STATUS_INVALID_CONFIG);
  CHECK(bad == NULL);
  CHECK(mm_error_message(err) != NULL);
  mm_error_free(err);
  mm_meter_config_free(cfg);
  mm_meter_free(m);
  mm_clock_free(clock);
}

/* ---- 5. callbacks from other threads ------------------------------------------------------ */

typedef struct recorder {
  const mm_meter *meter;
  int id;
  int64_t late_ts;
  int ok;
} recorder;

#define THREADS 8
#define PER_THREAD 40

static void *record_many(void *arg) {
  recorder *r = (recorder *)arg;
  char cust[32];
  snprintf(cust, sizeof cust, "cust-%d", 20 + r->id);
  for (int i = 0; i < PER_THREAD; i++) r->ok += record(r->meter, cust, "gb", 1);
  /* One event for an hour already sealed: a late event, reported on this thread. */
  r->ok += record_at(r->meter, cust, "gb", 2, r->late_ts);
  return NULL;
}

static void test_callbacks_from_other_threads(const mm_test_emulator *e, const mm_client *client,
                                              const char *dir) {
  const int64_t hour = base_hour() - H;
  char path[512];
  snprintf(path, sizeof path, "%s/group.db", dir);
  mm_clock *clock = mm_clock_new(hour + 5);
  events ev;
  events_init(&ev);
  /* Group commit from 8 threads, and a background flusher every second. */
  mm_meter *m = new_meter(client, path, MM_METER_DURABILITY_GROUP, clock, &ev, 1);
  pthread_t t[THREADS];
  recorder r[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i].meter = m;
    r[i].id = i;
    r[i].late_ts = hour - 2 * H;
    r[i].ok = 0;
    CHECK(pthread_create(&t[i], NULL, record_many, &r[i]) == 0);
  }
  int ok = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    ok += r[i].ok;
  }
  CHECK(ok == THREADS * (PER_THREAD + 1));
  pthread_mutex_lock(&ev.mu);
  CHECK(ev.late == THREADS);
  CHECK(ev.late_counted_in == hour);
  CHECK(ev.off_main == THREADS); /* every late event was reported on its recording thread */
  pthread_mutex_unlock(&ev.mu);

  /* Seal the hour and let the background flusher (a runtime worker) send it. */
  mm_error *err = NULL;
  CHECK_OK(mm_clock_advance(clock, H + 60), err);
  int acked = 0;
  for (int i = 0; i < 1200 && acked < THREADS; i++) { /* 60 s: valgrind is slow */
    usleep(50 * 1000);
    pthread_mutex_lock(&ev.mu);
    acked = ev.acked;
    pthread_mutex_unlock(&ev.mu);
  }
  CHECK(acked == THREADS);
  pthread_mutex_lock(&ev.mu);
  CHECK(ev.off_main == 2 * THREADS); /* the acks came from the background flusher's thread */
  pthread_mutex_unlock(&ev.mu);
  mm_meter_free(m); /* no callback runs after this */
  int after = ev.acked + ev.late + ev.dead + ev.other;
  usleep(100 * 1000);
  CHECK(after == ev.acked + ev.late + ev.dead + ev.other);

  CHECK(ledger_fetch(e) == 0);
  for (int i = 0; i < THREADS; i++) {
    char cust[32];
    int n = 0;
    snprintf(cust, sizeof cust, "cust-%d", 20 + i);
    long long got = ledger_sum(cust, "gb", hour, &n);
    if (got != PER_THREAD + 2 || n != 1) {
      fprintf(stderr, "ledger %s gb: %lld in %d entries\n", cust, got, n);
      mm_test_failures++;
    }
  }
  remove_db(path);
  mm_clock_free(clock);
  pthread_mutex_destroy(&ev.mu);
}

/* ---- 6. throttling interrupts a flush; unprocessed records are re-sent -------------------- */

static void test_interrupted_and_unprocessed(const mm_test_emulator *e, const mm_client *client) {
  const int64_t hour = base_hour() - 5 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  mm_meter *m = new_meter(client, NULL, MM_METER_DURABILITY_DURABLE, clock, NULL, 0);
  for (int c = 0; c < 5; c++) {
    char cust[32];
    snprintf(cust, sizeof cust, "cust-%d", 40 + c);
    record(m, cust, "users", c + 1);
  }
  mm_error *err = NULL;
  CHECK_OK(mm_clock_advance(clock, H + 60), err);
  /* Every attempt of the client (3) is throttled: not a failure of the call, but reported. */
  for (int i = 0; i < 3; i++)
    CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"throttle\"}", NULL, 0) == 200);
  flush_result sum;
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.interrupted == MM_STATUS_THROTTLING_EXCEPTION);
  CHECK(sum.acked == 0);
  status_result counts;
  CHECK_OK(get_status(m, &counts, &err), err);
  CHECK(counts.sealed == 5 && counts.acked == 0);
  /* What stopped it is the last flush's, for a health check; when it ended, by the clock. */
  CHECK(strncmp(counts.last_flush_error, "ThrottlingException: ", 21) == 0);
  CHECK(counts.has_last_flush_at && counts.last_flush_at == hour + H + 70);
  CHECK(!mm_meter_status_last_flush_at(NULL, &counts.last_flush_at));
  CHECK(mm_meter_status_last_flush_error(NULL) == NULL);
  /* Next time 2 of the 5 come back unprocessed and are sent again in the same flush. */
  CHECK(mm_test_control(e, "POST", "/_emulator/faults", "{\"kind\":\"partial\",\"count\":2}", NULL, 0) == 200);
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.interrupted == MM_STATUS_OK);
  if (!(sum.acked == 5 && sum.resent_unprocessed == 2 && sum.calls == 2)) {
    fprintf(stderr,
            "second flush: sealed %" PRIu64 " sent %" PRIu64 " calls %" PRIu64 " acked %" PRIu64
            " dead %" PRIu64 " expired %" PRIu64 " resent %" PRIu64 " deferred %" PRIu64 " interrupted %s\n",
            sum.sealed, sum.sent, sum.calls, sum.acked, sum.dead_lettered, sum.expired,
            sum.resent_unprocessed, sum.deferred, mm_status_str(sum.interrupted));
    static char faults[4096];
    if (mm_test_control(e, "GET", "/_emulator/faults", NULL, faults, sizeof faults) == 200)
      fprintf(stderr, "faults left: %s\n", faults);
    mm_test_failures++;
  }
  CHECK(ledger_fetch(e) == 0);
  if (ledger_entries_in_hour(hour) != 5) {
    fprintf(stderr, "ledger: %d entries in hour %lld\n", ledger_entries_in_hour(hour), (long long)hour);
    mm_test_failures++;
  }
  for (int c = 0; c < 5; c++) {
    char cust[32];
    int n = 0;
    snprintf(cust, sizeof cust, "cust-%d", 40 + c);
    CHECK(ledger_sum(cust, "users", hour, &n) == c + 1 && n == 1);
  }
  mm_meter_free(m);
  mm_clock_free(clock);
}

/* ---- 7. what a callback may call (as mm_meter_config_set_event_callback documents) -------- */

typedef struct reentry {
  mm_meter *meter;
  int calls, status_ok, record_ok, flush_invalid_state, close_invalid_state, free_invalid_state;
  int on_event; /* the kind that triggers the calls */
} reentry;

/* Calls made from the callback that would wait for it: refused, and the meter stays usable. */
static void reenter_waiting_calls(reentry *r) {
  mm_error *err = NULL;
  mm_flush_summary *s = NULL;
  r->flush_invalid_state = mm_meter_flush(r->meter, &s, &err) == MM_STATUS_INVALID_STATE &&
                           mm_error_code(err) == MM_STATUS_INVALID_STATE && s == NULL;
  mm_error_free(err);
  r->close_invalid_state = mm_meter_close(r->meter, &s, NULL) == MM_STATUS_INVALID_STATE && s == NULL;
  r->free_invalid_state = mm_meter_free(r->meter) == MM_STATUS_INVALID_STATE;
}

static void reenter(const mm_meter_event *ev, void *user_data) {
  reentry *r = (reentry *)user_data;
  if (ev->kind != MM_METER_EVENT_KIND_ACKED || r->calls++ > 0) return;
  status_result c;
  mm_error *err = NULL;
  r->status_ok = get_status(r->meter, &c, NULL) == MM_STATUS_OK;
  mm_usage_event *e = usage_event("cust-48", "users", 1);
  r->record_ok = mm_meter_record(r->meter, e, NULL) == MM_STATUS_OK;
  mm_usage_event_free(e);
  (void)err;
  reenter_waiting_calls(r);
}

static void test_callback_reentry(const mm_client *client) {
  const int64_t hour = base_hour() - 4 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  reentry r;
  memset(&r, 0, sizeof r);
  mm_meter_config *cfg = mm_meter_config_new();
  mm_error *err = NULL;
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  CHECK_OK(mm_meter_config_set_event_callback(cfg, reenter, &r), err);
  mm_meter *m = NULL;
  CHECK_OK(mm_meter_new(client, cfg, &m, &err), err);
  mm_meter_config_free(cfg);
  r.meter = m;
  record(m, "cust-47", "users", 2);
  CHECK_OK(mm_clock_advance(clock, H + 400), err);
  CHECK_OK(flush(m, NULL, &err), err);
  CHECK(r.calls == 1 && r.status_ok && r.record_ok && r.flush_invalid_state);
  CHECK(r.close_invalid_state && r.free_invalid_state);
  status_result c;
  CHECK_OK(get_status(m, &c, &err), err);
  CHECK(c.acked == 1 && c.pending == 1); /* the record made inside the callback, current hour */
  CHECK(mm_meter_free(m) == MM_STATUS_OK);
  mm_clock_free(clock);
}

/* ---- 8. group mode: a callback on the group-commit thread calling its meter --------------- */

typedef struct group_reentry {
  reentry r;
  mm_status record_status;
  int done; /* set last by the callback (atomically) */
} group_reentry;

static void reenter_group(const mm_meter_event *ev, void *user_data) {
  group_reentry *g = (group_reentry *)user_data;
  if (ev->kind != MM_METER_EVENT_KIND_LATE_EVENT || g->r.calls++ > 0) return;
  /* On the group-commit thread: a group record here would wait for this very thread. */
  mm_usage_event *e = usage_event("cust-46", "users", 1);
  g->record_status = mm_meter_record(g->r.meter, e, NULL);
  mm_usage_event_free(e);
  reenter_waiting_calls(&g->r);
  __atomic_store_n(&g->done, 1, __ATOMIC_SEQ_CST);
}

static void test_group_callback_reentry(const mm_client *client, const char *dir) {
  const int64_t hour = base_hour() - 3 * H;
  char path[512];
  snprintf(path, sizeof path, "%s/group-reentry.db", dir);
  mm_clock *clock = mm_clock_new(hour + 10);
  group_reentry g;
  memset(&g, 0, sizeof g);
  g.record_status = MM_STATUS_OK;
  mm_meter_config *cfg = mm_meter_config_new();
  mm_error *err = NULL;
  CHECK_OK(mm_meter_config_set_path(cfg, path), err);
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_durability(cfg, MM_METER_DURABILITY_GROUP), err);
  CHECK_OK(mm_meter_config_set_grace_seconds(cfg, 300), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  CHECK_OK(mm_meter_config_set_event_callback(cfg, reenter_group, &g), err);
  mm_meter *m = NULL;
  CHECK_OK(mm_meter_new(client, cfg, &m, &err), err);
  mm_meter_config_free(cfg);
  g.r.meter = m;
  record(m, "cust-45", "users", 2);
  /* The hour is sealed by a flush after its grace ... */
  CHECK_OK(mm_clock_set(clock, hour + H + 400), err);
  CHECK_OK(flush(m, NULL, &err), err);
  /* ... and the clock steps back inside the grace: the group-commit thread finds the hour
   * sealed and reports the late event from there. */
  CHECK_OK(mm_clock_set(clock, hour + H + 100), err);
  record_at(m, "cust-45", "users", 1, hour + 20);
  /* The committer releases the recorders before it reports the late event. */
  for (int i = 0; i < 1200 && !__atomic_load_n(&g.done, __ATOMIC_SEQ_CST); i++) usleep(50 * 1000);
  CHECK(__atomic_load_n(&g.done, __ATOMIC_SEQ_CST) == 1);
  CHECK(g.r.calls == 1);
  CHECK(g.record_status == MM_STATUS_INVALID_STATE);
  CHECK(g.r.flush_invalid_state && g.r.close_invalid_state && g.r.free_invalid_state);
  /* Outside the callback the meter works. */
  record(m, "cust-46", "users", 1);
  status_result c;
  CHECK_OK(get_status(m, &c, &err), err);
  CHECK(c.acked == 1 && c.pending == 2); /* the late event and this one, in the current hour */
  CHECK(mm_meter_free(m) == MM_STATUS_OK);
  mm_clock_free(clock);
  remove_db(path);
}

/* ---- 9. requeue: chosen dead letters go back to sealed and are sent again ----------------- */

/* mm_meter_requeue with a filter of the parts given (NULL: not set). */
static mm_status requeue(const mm_meter *m, const char *reason, const char *customer, const int64_t *hour,
                         uint64_t *n, mm_error **err) {
  mm_requeue_filter *f = mm_requeue_filter_new();
  mm_error *e = NULL;
  if (reason) CHECK_OK(mm_requeue_filter_set_reason(f, reason), e);
  if (customer) CHECK_OK(mm_requeue_filter_set_customer_identifier(f, customer), e);
  if (hour) CHECK_OK(mm_requeue_filter_set_hour(f, *hour), e);
  mm_status st = mm_meter_requeue(m, f, n, err);
  mm_requeue_filter_free(f);
  return st;
}

static void test_requeue(const mm_client *client) {
  const int64_t hour = base_hour() - 2 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  mm_meter *m = new_meter(client, NULL, MM_METER_DURABILITY_DURABLE, clock, NULL, 0);
  record(m, "cust-unsubscribed", "users", 3);
  mm_error *err = NULL;
  flush_result sum;
  CHECK_OK(mm_clock_advance(clock, H + 60), err);
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.dead_lettered == 1);
  uint64_t n = 99;
  /* Filters that match nothing move nothing. */
  const int64_t next_hour = hour + H, in_hour = hour + 59;
  CHECK_OK(requeue(m, "DuplicateRecord", NULL, NULL, &n, &err), err);
  CHECK(n == 0);
  CHECK_OK(requeue(m, NULL, "cust-9", NULL, &n, &err), err);
  CHECK(n == 0);
  CHECK_OK(requeue(m, NULL, NULL, &next_hour, &n, &err), err);
  CHECK(n == 0);
  /* Bad input names the argument: an account id without its license. */
  mm_requeue_filter *f = mm_requeue_filter_new();
  CHECK_OK(mm_requeue_filter_set_customer_aws_account_id(f, "111122223333"), err);
  CHECK(mm_meter_requeue(m, f, &n, &err) == MM_STATUS_INVALID_INPUT);
  CHECK(streq(mm_error_field(err), "license_arn"));
  mm_error_free(err);
  err = NULL;
  /* NULL meter or filter: refused, naming it; nothing written. */
  n = 99;
  CHECK(mm_meter_requeue(NULL, f, &n, NULL) == MM_STATUS_NULL_PARAMETER);
  CHECK(mm_meter_requeue(m, NULL, &n, &err) == MM_STATUS_NULL_PARAMETER && n == 99);
  CHECK(mm_error_message(err) && strstr(mm_error_message(err), "filter") != NULL);
  mm_error_free(err);
  err = NULL;
  mm_requeue_filter_free(f);
  /* By reason, customer and hour (any second of it). */
  CHECK_OK(requeue(m, "CustomerNotSubscribed", "cust-unsubscribed", &in_hour, &n, &err), err);
  CHECK(n == 1);
  status_result c;
  CHECK_OK(get_status(m, &c, &err), err);
  CHECK(c.sealed == 1 && c.dead_lettered == 0);
  /* Still not subscribed: sent again, and dead-lettered again with its reason. */
  CHECK_OK(flush(m, &sum, &err), err);
  CHECK(sum.sent == 1 && sum.dead_lettered == 1);
  /* An empty filter matches every dead letter. */
  CHECK_OK(requeue(m, NULL, NULL, NULL, &n, &err), err);
  CHECK(n == 1);
  CHECK(mm_meter_free(m) == MM_STATUS_OK);
  mm_clock_free(clock);
}

/* ---- 10. mm_shutdown() does not end a live meter's background flusher ---------------------- */

static void test_flusher_survives_shutdown(const mm_test_emulator *e, const mm_client *client) {
  const int64_t hour = base_hour() - 1 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  mm_meter *m = new_meter(client, NULL, MM_METER_DURABILITY_DURABLE, clock, NULL, 1);
  mm_shutdown();
  record(m, "cust-44", "gb", 6);
  mm_error *err = NULL;
  CHECK_OK(mm_clock_advance(clock, H + 60), err);
  int n = 0;
  for (int i = 0; i < 600 && n == 0; i++) { /* 60 s: valgrind is slow */
    usleep(100 * 1000);
    if (ledger_fetch(e) == 0) ledger_sum("cust-44", "gb", hour, &n);
  }
  CHECK(n == 1);
  CHECK(mm_meter_free(m) == MM_STATUS_OK);
  mm_clock_free(clock);
}

/* ---- 10b. fork() while a callback runs on another thread: the child can free the meter ------ */

/* The parent's callback holds until released; the child inherits "one callback running" from a
 * thread it does not have. Found by a review: mm_meter_free in the child waited for it forever. */
typedef struct fork_gate {
  int entered[2], release[2];
  int calls;
} fork_gate;

static void hold_in_callback(const mm_meter_event *ev, void *user_data) {
  fork_gate *g = (fork_gate *)user_data;
  if (ev->kind != MM_METER_EVENT_KIND_ACKED || g->calls++ > 0) return;
  char c = 1;
  if (write(g->entered[1], &c, 1) != 1 || read(g->release[0], &c, 1) != 1) abort();
}

static void *flush_in_thread(void *arg) {
  mm_flush_summary *s = NULL;
  (void)mm_meter_flush((const mm_meter *)arg, &s, NULL);
  mm_flush_summary_free(s);
  return NULL;
}

static void test_fork_while_a_callback_runs(const mm_client *client) {
  const int64_t hour = base_hour() - 3 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  fork_gate g;
  memset(&g, 0, sizeof g);
  if (pipe(g.entered) != 0 || pipe(g.release) != 0) abort();
  mm_meter_config *cfg = mm_meter_config_new();
  mm_error *err = NULL;
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  CHECK_OK(mm_meter_config_set_event_callback(cfg, hold_in_callback, &g), err);
  mm_meter *m = NULL;
  CHECK_OK(mm_meter_new(client, cfg, &m, &err), err);
  mm_meter_config_free(cfg);
  record(m, "cust-49", "users", 1);
  CHECK_OK(mm_clock_advance(clock, H + 400), err);
  pthread_t t;
  if (pthread_create(&t, NULL, flush_in_thread, m) != 0) abort();
  char c = 0;
  if (read(g.entered[0], &c, 1) != 1) abort(); /* the callback is running */
  pid_t pid = fork();
  if (pid == 0) {
    alarm(60); /* a hang; valgrind is slow */
    int rc = mm_meter_free(m) == MM_STATUS_OK ? 0 : 7;
    alarm(0); /* valgrind's leak check at exit may take long: not a hang */
    _exit(rc);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  /* Not killed by the alarm, and freed. Under valgrind the child's exit reports the parent's
   * memory it never frees as leaked, with exit code 3 (--error-exitcode). */
  CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3));
  if (write(g.release[1], &c, 1) != 1) abort();
  pthread_join(t, NULL);
  CHECK(g.calls == 1);
  CHECK(mm_meter_free(m) == MM_STATUS_OK);
  mm_clock_free(clock);
  close(g.entered[0]);
  close(g.entered[1]);
  close(g.release[0]);
  close(g.release[1]);
}

/* ---- 11. the fleet store: two replicas on one PostgreSQL bill each customer-hour once ------ */

/* Runs scripts/private-postgres.sh CMD DIR; its last output line (the URL for start) in out. */
static int private_postgres(const char *cmd, const char *dir, char *out, size_t n) {
  char line[2048];
  snprintf(line, sizeof line, "bash '%s/private-postgres.sh' %s '%s'", MM_SCRIPTS, cmd, dir);
  FILE *p = popen(line, "r");
  if (!p) return -1;
  if (out && n) out[0] = '\0';
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = '\0';
    if (out && n) snprintf(out, n, "%s", line);
  }
  return pclose(p) == 0 ? 0 : -1;
}

static mm_meter *fleet_meter(const mm_client *client, const char *url, const char *replica, const mm_clock *clock) {
  mm_meter_config *cfg = mm_meter_config_new();
  mm_error *err = NULL;
  mm_meter *meter = NULL;
  CHECK_OK(mm_meter_config_set_database_url(cfg, url), err);
  CHECK_OK(mm_meter_config_set_replica_id(cfg, replica), err);
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_clock(cfg, clock), err);
  CHECK_OK(mm_meter_new(client, cfg, &meter, &err), err);
  mm_meter_config_free(cfg);
  return meter;
}

static void test_fleet(const mm_test_emulator *e, const mm_client *client, const char *dir) {
  char pg[600], url[1024];
  snprintf(pg, sizeof pg, "%s/pg", dir);
  if (private_postgres("start", pg, url, sizeof url) != 0 || strncmp(url, "postgresql://", 13) != 0) {
    fprintf(stderr, "cannot start PostgreSQL with scripts/private-postgres.sh (got \"%s\")\n", url);
    mm_test_failures++;
    private_postgres("stop", pg, NULL, 0);
    return;
  }
  /* A URL that does not parse, or a path with a URL, is refused naming database_url, and the
   * password is not in the message. */
  mm_meter_config *cfg = mm_meter_config_new();
  mm_meter *bad = NULL;
  mm_error *err = NULL;
  CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
  CHECK_OK(mm_meter_config_set_database_url(cfg, "postgresql://meter:s3cret-pw@[::1:5432/db"), err);
  mm_status st = mm_meter_new(client, cfg, &bad, &err);
  CHECK(bad == NULL);
  CHECK(mm_error_message(err) == NULL || strstr(mm_error_message(err), "s3cret-pw") == NULL);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "database_url", __LINE__);
  err = NULL;
  CHECK_OK(mm_meter_config_set_database_url(cfg, url), err);
  CHECK_OK(mm_meter_config_set_path(cfg, "/tmp/never-created.db"), err);
  st = mm_meter_new(client, cfg, &bad, &err);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "database_url", __LINE__);
  err = NULL;
  /* Commits without an fsync are a SQLite setting: the fleet store refuses it. */
  CHECK_OK(mm_meter_config_set_path(cfg, NULL), err);
  CHECK_OK(mm_meter_config_set_power_loss_safe(cfg, false), err);
  st = mm_meter_new(client, cfg, &bad, &err);
  CHECK(bad == NULL);
  expect_field(st, err, MM_STATUS_INVALID_INPUT, "power_loss_safe", __LINE__);
  err = NULL;
  mm_meter_config_free(cfg);

  /* The fleet tuning reaches the core, which refuses what would stop billing: no sender, a
   * lease that expires as it is taken, one no timestamp can end (UINT64_MAX, "forever"). */
  const struct {
    int what;
    const char *field;
  } tuning[] = {{0, "fleet_senders"}, {1, "fleet_lease"}, {2, "fleet_lease"}};
  for (size_t i = 0; i < sizeof tuning / sizeof tuning[0]; i++) {
    cfg = mm_meter_config_new();
    CHECK_OK(mm_meter_config_set_database_url(cfg, url), err);
    if (tuning[i].what == 0) CHECK_OK(mm_meter_config_set_fleet_senders(cfg, 0), err);
    if (tuning[i].what == 1) CHECK_OK(mm_meter_config_set_fleet_lease_millis(cfg, 0), err);
    if (tuning[i].what == 2) CHECK_OK(mm_meter_config_set_fleet_lease_millis(cfg, UINT64_MAX), err);
    st = mm_meter_new(client, cfg, &bad, &err);
    CHECK(bad == NULL);
    expect_field(st, err, MM_STATUS_INVALID_INPUT, tuning[i].field, __LINE__);
    err = NULL;
    mm_meter_config_free(cfg);
  }
  CHECK(mm_meter_config_set_fleet_senders(NULL, 1) == MM_STATUS_NULL_PARAMETER);
  CHECK(mm_meter_config_set_fleet_lease_millis(NULL, 1) == MM_STATUS_NULL_PARAMETER);
  CHECK(mm_meter_config_set_start_hour(NULL, 0) == MM_STATUS_NULL_PARAMETER);

  /* Two replicas record for the same customer-hour; each flushes; the hour is billed once. (The
   * hour of test 6, which has counted its ledger entries by now.) */
  const int64_t hour = base_hour() - 5 * H;
  mm_clock *clock = mm_clock_new(hour + 10);
  mm_meter *a = fleet_meter(client, url, "replica-a", clock);
  mm_meter *b = fleet_meter(client, url, "replica-b", clock);
  if (a && b) {
    record(a, "cust-49", "users", 3);
    record(b, "cust-49", "users", 4);
    record(b, "cust-50", "gb", 5);
    status_result s;
    CHECK_OK(get_status(a, &s, &err), err);
    CHECK(s.pending == 2); /* one store: replica a sees replica b's buckets */
    CHECK(strcmp(s.replica_id, "replica-a") == 0);
    CHECK_OK(mm_clock_advance(clock, H + 400), err);
    flush_result fa, fb;
    memset(&fa, 0, sizeof fa);
    memset(&fb, 0, sizeof fb);
    CHECK_OK(flush(a, &fa, &err), err);
    CHECK_OK(flush(b, &fb, &err), err);
    CHECK(fa.acked + fb.acked == 2 && fa.interrupted == MM_STATUS_OK && fb.interrupted == MM_STATUS_OK);
    CHECK_OK(get_status(b, &s, &err), err);
    CHECK(s.acked == 2 && s.pending == 0 && s.sealed == 0);
    CHECK(strcmp(s.replica_id, "replica-b") == 0);
    CHECK(ledger_fetch(e) == 0);
    int n = 0;
    CHECK(ledger_sum("cust-49", "users", hour, &n) == 7 && n == 1);
    CHECK(ledger_sum("cust-50", "gb", hour, &n) == 5 && n == 1);
  } else {
    mm_test_failures++;
  }
  mm_meter_free(a);
  mm_meter_free(b);
  mm_clock_free(clock);
  /* The cut-over: a fleet meter starting at hour T refuses an event of the hour before,
   * naming timestamp (it belongs to the SQLite meter), and takes one of hour T. */
  {
    const int64_t t = base_hour() - 3 * H;
    mm_clock *c2 = mm_clock_new(t + 10);
    cfg = mm_meter_config_new();
    mm_meter *cut = NULL;
    CHECK_OK(mm_meter_config_set_database_url(cfg, url), err);
    CHECK_OK(mm_meter_config_set_replica_id(cfg, "cut-over"), err);
    CHECK_OK(mm_meter_config_set_product_code(cfg, MM_TEST_PRODUCT), err);
    CHECK_OK(mm_meter_config_set_clock(cfg, c2), err);
    CHECK_OK(mm_meter_config_set_fleet_senders(cfg, 2), err);
    CHECK_OK(mm_meter_config_set_fleet_lease_millis(cfg, 30000), err);
    CHECK_OK(mm_meter_config_set_start_hour(cfg, t + 1234), err);
    CHECK_OK(mm_meter_new(client, cfg, &cut, &err), err);
    mm_meter_config_free(cfg);
    if (cut) {
      mm_usage_event *ev = usage_event("cust-51", "users", 1);
      CHECK_OK(mm_usage_event_set_timestamp(ev, t - 60), err);
      st = mm_meter_record(cut, ev, &err);
      expect_field(st, err, MM_STATUS_INVALID_INPUT, "timestamp", __LINE__);
      err = NULL;
      mm_usage_event_free(ev);
      CHECK(record_at(cut, "cust-51", "users", 1, t + 60));
    } else {
      mm_test_failures++;
    }
    mm_meter_free(cut);
    mm_clock_free(c2);
  }
  /* A program that exits without freeing its memory-durability meter keeps its buffer on the
   * fleet store too (the write runs on the runtime, which the exiting thread can no longer
   * enter). */
  {
    mm_clock *c3 = mm_clock_new(mm_test_now(0));
    mm_meter *check = fleet_meter(client, url, "exit-check", c3);
    status_result before, after;
    CHECK_OK(get_status(check, &before, &err), err);
    CHECK(run_record_and_exit(e, url));
    CHECK_OK(get_status(check, &after, &err), err);
    CHECK(after.pending == before.pending + 1);
    mm_meter_free(check);
    mm_clock_free(c3);
  }
  /* A record after the exit hook, from an atexit handler registered before it, on a thread
   * whose runtime context exit() destroyed: written on a thread of its own. */
  {
    mm_clock *c4 = mm_clock_new(base_hour() + H + 400);
    mm_meter *check = fleet_meter(client, url, "late-check", c4);
    check_late_record(e, url, check);
    mm_meter_free(check);
    mm_clock_free(c4);
  }
  CHECK(private_postgres("stop", pg, NULL, 0) == 0);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--record-and-exit") == 0) return record_and_exit(argv[2], argv[3]);
  if (argc == 5 && strcmp(argv[1], "--record-late-and-exit") == 0)
    return record_late_and_exit(argv[2], argv[3], argv[4]);
  self_path = argv[0];
  mm_test_emulator e;
  if (mm_test_emulator_start(&e) != 0) return 2;
  /* A day of past hours accepted (not six): a run that crosses the hour still has its oldest
   * hour, base_hour() - 5 h, inside the window. No test here is about the window. */
  if (mm_test_control(&e, "PUT", "/_emulator/state", "{\"max_past_secs\":86400}", NULL, 0) != 200) {
    mm_test_emulator_stop(&e);
    return 2;
  }
  mm_client *client = mm_test_client(&e, 3);
  if (!client) {
    mm_test_emulator_stop(&e);
    return 2;
  }
  char dir[] = "/tmp/mm-meter-test.XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  test_bills_exactly_what_was_recorded(&e, client);
  test_dead_letter(&e, client);
  test_meter_usage_has_no_customer(client, dir);
  test_file_store_survives_reopening(&e, client, dir);
  test_exit_keeps_the_memory_buffer(&e, client, dir);
  test_bad_input(client);
  test_callbacks_from_other_threads(&e, client, dir);
  test_interrupted_and_unprocessed(&e, client);
  test_callback_reentry(client);
  test_group_callback_reentry(client, dir);
  test_requeue(client);
  test_flusher_survives_shutdown(&e, client);
  test_fork_while_a_callback_runs(client);
  test_fleet(&e, client, dir);
  rmdir(dir);
  mm_client_free(client);
  mm_shutdown();
  mm_test_emulator_stop(&e);
  printf("test_meter: %d failure(s)\n", mm_test_failures);
  return mm_test_failures ? 1 : 0;
}

/* SPDX-License-Identifier: Apache-2.0
 * Example: the usage meter. Record every billable event; the meter bills each customer-hour once.
 * A hand-set clock (mm_clock) makes an hour end now instead of in an hour; then one flush sends
 * it and the emulator's ledger shows exactly what was recorded.
 * Endpoint: $METERING_ENDPOINT_URL, else spawns $METERING_EMULATOR_BIN. Exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "emulator.h"
#include "marketplace_metering.h"

#define HOUR 3600

/* The event callback: runs on the thread that caused the event (here: this one, inside flush).
 * It must be thread-safe; `ev` and its strings are valid only during the call. */
static void on_event(const mm_meter_event *ev, void *user_data) {
  int *dead_letters = (int *)user_data;
  switch (ev->kind) {
    case MM_METER_EVENT_KIND_ACKED:
      printf("  acked        %-18s %-6s %3lld  (record id %s)\n", ev->customer_identifier, ev->dimension,
             (long long)ev->quantity, ev->metering_record_id);
      break;
    case MM_METER_EVENT_KIND_DEAD_LETTERED:
      (*dead_letters)++;
      printf("  dead letter  %-18s %-6s %3lld  (%s)\n", ev->customer_identifier, ev->dimension,
             (long long)ev->quantity, ev->reason);
      break;
    default:
      printf("  %s for %s %s\n", ev->kind_str, ev->customer_identifier ? ev->customer_identifier : "-",
             ev->dimension);
      break;
  }
}

static int fail(const char *what, mm_status st, mm_error *err) {
  fprintf(stderr, "%s failed: %s (%s), field %s\n", what, err ? mm_error_code_str(err) : mm_status_str(st),
          err ? mm_error_message(err) : "", err && mm_error_field(err) ? mm_error_field(err) : "-");
  mm_error_free(err);
  return 1;
}

/* GET the emulator's ledger (its control API) into buf; returns 0 on success. */
static int get_ledger(const char *url, char *buf, size_t len) {
  const char *colon = strrchr(url, ':');
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (!colon || fd < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(colon + 1));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const char req[] = "GET /_emulator/ledger HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
    close(fd);
    return -1;
  }
  size_t got = 0;
  ssize_t r;
  while (got + 1 < len && (r = read(fd, buf + got, len - 1 - got)) > 0) got += (size_t)r;
  close(fd);
  buf[got] = '\0';
  return strstr(buf, " 200 ") ? 0 : -1;
}

/* Quantity billed for (customer, dimension, hour) and how many ledger entries say so. */
static long long billed(const char *ledger, const char *customer, const char *dimension, int64_t hour, int *entries) {
  char who[96], dim[96], h[48];
  snprintf(who, sizeof who, "\"customer_identifier\":\"%s\"", customer);
  snprintf(dim, sizeof dim, "\"dimension\":\"%s\"", dimension);
  snprintf(h, sizeof h, "\"hour\":%lld,", (long long)hour);
  long long sum = 0;
  *entries = 0;
  for (const char *p = strstr(ledger, "{\"operation\""); p; ) {
    const char *next = strstr(p + 1, "{\"operation\"");
    size_t n = next ? (size_t)(next - p) : strlen(p);
    char entry[2048];
    snprintf(entry, sizeof entry, "%.*s", (int)(n < sizeof entry ? n : sizeof entry - 1), p);
    const char *q = strstr(entry, "\"quantity\":");
    if (strstr(entry, who) && strstr(entry, dim) && strstr(entry, h) && q) {
      sum += atoll(q + strlen("\"quantity\":"));
      (*entries)++;
    }
    p = next;
  }
  return sum;
}

int main(void) {
  example_endpoint ep;
  if (example_endpoint_open(&ep) != 0) return 1;
  int rc = 1, dead_letters = 0;
  mm_error *err = NULL;
  mm_status st;
  mm_client *client = NULL;
  mm_meter *meter = NULL;
  mm_meter_config *mc = NULL;
  mm_usage_event *ev = NULL;
  mm_flush_summary *sum = NULL;
  mm_meter_status *status = NULL;
  char dir[] = "/tmp/mm-usage-meter.XXXXXX", path[64] = "";

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

  /* The meter keeps its buckets in an SQLite file: kill -9 at any moment and nothing is lost or
   * billed twice. The clock starts two hours ago, inside the service's 6-hour window. */
  if (!mkdtemp(dir)) goto done;
  snprintf(path, sizeof path, "%s/metering.db", dir);
  const int64_t hour = (int64_t)time(NULL) / HOUR * HOUR - 2 * HOUR;
  mm_clock *clock = mm_clock_new(hour + 60);
  mc = mm_meter_config_new();
  mm_meter_config_set_path(mc, path);
  mm_meter_config_set_product_code(mc, "prod-1234");
  mm_meter_config_set_durability(mc, MM_METER_DURABILITY_DURABLE);
  mm_meter_config_set_grace_seconds(mc, 300);
  mm_meter_config_set_clock(mc, clock); /* omit in production: the system clock */
  mm_meter_config_set_event_callback(mc, on_event, &dead_letters);
  st = mm_meter_new(client, mc, &meter, &err);
  if (st != MM_STATUS_OK) {
    rc = fail("mm_meter_new", st, err);
    mm_clock_free(clock);
    goto done;
  }

  /* 1. Every billable event, as it happens: 3 customers x 20 API calls, one customer we cannot bill.
   * One mm_usage_event is reused: mm_meter_record copies it. No timestamp: now, by the meter's clock. */
  const char *customers[3] = {"cust-1", "cust-2", "cust-unsubscribed"};
  long long expected[3] = {0, 0, 0};
  ev = mm_usage_event_new();
  if (!ev || mm_usage_event_set_dimension(ev, "requests") != MM_STATUS_OK) {
    mm_clock_free(clock);
    goto done;
  }
  for (int i = 0; i < 20; i++) {
    for (int c = 0; c < 3; c++) {
      int64_t q = 1 + (i + c) % 3;
      mm_usage_event_set_customer_identifier(ev, customers[c]);
      mm_usage_event_set_quantity(ev, q);
      st = mm_meter_record(meter, ev, &err);
      if (st != MM_STATUS_OK) {
        rc = fail("mm_meter_record", st, err);
        mm_clock_free(clock);
        goto done;
      }
      expected[c] += q;
    }
    mm_clock_advance(clock, 60);
  }
  /* Bad input is refused with the field's name, and nothing is recorded. */
  mm_usage_event_set_quantity(ev, -3);
  st = mm_meter_record(meter, ev, &err);
  printf("a negative quantity: %s, field %s\n", mm_status_str(st), mm_error_field(err));
  mm_error_free(err);
  err = NULL;
  mm_usage_event_free(ev);
  ev = NULL; /* freed: clear the pointer, so the cleanup below cannot free it twice */

  /* 2. The hour ends and its grace passes: one flush bills each customer-hour once. */
  mm_clock_set(clock, hour + HOUR + 301);
  mm_clock_free(clock); /* the meter keeps its own reference */
  st = mm_meter_flush(meter, &sum, &err);
  if (st != MM_STATUS_OK) {
    rc = fail("mm_meter_flush", st, err);
    goto done;
  }
  /* A throttled or unreachable service does not fail the flush: it stops it early, and says so. */
  if (mm_flush_summary_interrupted(sum) != MM_STATUS_OK)
    printf("flush interrupted: %s (sent at the next flush)\n", mm_flush_summary_interrupted_message(sum));
  printf("flush: %llu sealed, %llu sent in %llu call(s), %llu acked, %llu dead-lettered\n",
         (unsigned long long)mm_flush_summary_sealed_count(sum), (unsigned long long)mm_flush_summary_sent_count(sum),
         (unsigned long long)mm_flush_summary_call_count(sum), (unsigned long long)mm_flush_summary_acked_count(sum),
         (unsigned long long)mm_flush_summary_dead_lettered_count(sum));
  st = mm_meter_get_status(meter, &status, &err);
  if (st != MM_STATUS_OK) {
    rc = fail("mm_meter_get_status", st, err);
    goto done;
  }
  printf("status: %llu pending, %llu sealed, %llu acked, %llu dead-lettered\n",
         (unsigned long long)mm_meter_status_pending_count(status), (unsigned long long)mm_meter_status_sealed_count(status),
         (unsigned long long)mm_meter_status_acked_count(status),
         (unsigned long long)mm_meter_status_dead_lettered_count(status));
  mm_dead_letters *dl = NULL;
  if (mm_meter_get_dead_letters(meter, &dl, &err) == MM_STATUS_OK) {
    for (size_t i = 0; i < mm_dead_letters_count(dl); i++)
      printf("dead letter: %s %s %lld (%s)\n", mm_dead_letters_customer_identifier(dl, i),
             mm_dead_letters_dimension(dl, i), (long long)mm_dead_letters_quantity(dl, i), mm_dead_letters_reason(dl, i));
    mm_dead_letters_free(dl);
  }
  mm_flush_summary *closing = NULL;
  if (mm_meter_close(meter, &closing, NULL) == MM_STATUS_OK)
    printf("close: %llu sent\n", (unsigned long long)mm_flush_summary_sent_count(closing));
  mm_flush_summary_free(closing);

  /* 3. The ledger: exactly what was recorded, billed once; nothing for the unsubscribed customer. */
  static char ledger[1 << 20];
  if (get_ledger(ep.url, ledger, sizeof ledger) != 0) {
    fprintf(stderr, "cannot read the emulator's ledger\n");
    goto done;
  }
  int ok = mm_flush_summary_acked_count(sum) == 2 && mm_flush_summary_dead_lettered_count(sum) == 1 &&
           dead_letters == 1 && mm_meter_status_acked_count(status) == 2;
  for (int c = 0; c < 3; c++) {
    int entries = 0;
    long long got = billed(ledger, customers[c], "requests", hour, &entries);
    long long want = c < 2 ? expected[c] : 0;
    printf("ledger: %-18s recorded %3lld, billed %3lld in %d entr%s\n", customers[c], expected[c], got, entries,
           entries == 1 ? "y" : "ies");
    ok = ok && got == want && entries == (c < 2 ? 1 : 0);
  }
  rc = ok ? 0 : 1;
  printf("%s\n", ok ? "usage meter: every customer-hour billed exactly once" : "usage meter: MISMATCH");

done:
  /* Every free function accepts NULL, so one cleanup path frees whatever was made. */
  mm_meter_status_free(status);
  mm_flush_summary_free(sum);
  mm_usage_event_free(ev);
  mm_meter_free(meter);
  mm_meter_config_free(mc);
  mm_client_free(client);
  mm_shutdown();
  if (path[0]) {
    char p[96];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
  }
  example_endpoint_close(&ep);
  return rc;
}

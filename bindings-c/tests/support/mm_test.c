/* SPDX-License-Identifier: Apache-2.0
 * Test support: start the emulator (with the examples' launcher), talk to its control API. */
#define _GNU_SOURCE
#include "mm_test.h"

#include "emulator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int mm_test_failures = 0;

/* The emulator is started by the examples' launcher (examples/c/emulator.h): one copy. */
int mm_test_emulator_start(mm_test_emulator *e) {
  memset(e, 0, sizeof *e);
  example_endpoint ep;
  if (example_endpoint_open(&ep) != 0) return -1;
  e->pid = ep.pid;
  e->out = ep.out;
  snprintf(e->endpoint, sizeof e->endpoint, "%s", ep.url);
  const char *colon = strrchr(ep.url, ':');
  e->port = colon ? atoi(colon + 1) : 80;
  return 0;
}

void mm_test_emulator_stop(mm_test_emulator *e) {
  example_endpoint ep;
  memset(&ep, 0, sizeof ep);
  ep.pid = e->pid;
  ep.out = e->out;
  example_endpoint_close(&ep);
  e->pid = 0;
  e->out = NULL;
}

int mm_test_control(const mm_test_emulator *e, const char *method, const char *path,
                    const char *body, char *resp, size_t resp_len) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)e->port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  size_t blen = body ? strlen(body) : 0;
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   method, path, blen, body ? body : "");
  if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  static char buf[1 << 20];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
    if (r <= 0) break;
    got += (size_t)r;
    if (got == sizeof buf - 1) break;
  }
  close(fd);
  buf[got] = '\0';
  int status = -1;
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
  if (resp && resp_len) {
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(resp, resp_len, "%s", b ? b + 4 : "");
  }
  return status;
}

mm_client *mm_test_client(const mm_test_emulator *e, uint32_t max_attempts) {
  mm_config *cfg = mm_config_new();
  mm_client *client = NULL;
  mm_error *err = NULL;
  if (!cfg) return NULL;
  if (mm_config_set_region(cfg, MM_TEST_REGION) != MM_STATUS_OK ||
      mm_config_set_endpoint_url(cfg, e->endpoint) != MM_STATUS_OK ||
      mm_config_set_credentials(cfg, MM_TEST_ACCESS_KEY, MM_TEST_SECRET_KEY, NULL) != MM_STATUS_OK ||
      mm_config_set_max_attempts(cfg, max_attempts) != MM_STATUS_OK ||
      mm_config_set_read_timeout_ms(cfg, 10000) != MM_STATUS_OK) {
    fprintf(stderr, "config setters failed\n");
  } else if (mm_client_new(cfg, &client, &err) != MM_STATUS_OK) {
    fprintf(stderr, "mm_client_new: %s: %s\n", mm_error_code_str(err), mm_error_message(err));
    mm_error_free(err);
  }
  mm_config_free(cfg);
  return client;
}

int64_t mm_test_now(int64_t ago) { return (int64_t)time(NULL) - ago; }

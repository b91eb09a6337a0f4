/* SPDX-License-Identifier: Apache-2.0
 * The C face passes its settings to the core, which resolves them as every face does (code beats
 * environment beats profile; the core's table test covers every variable and key). Here: each
 * new setter reaches the core, bad values are MM_STATUS_INVALID_CONFIG naming the field, and a
 * proxy on 127.0.0.1 (set in code or in the environment) carries the calls unless NO_PROXY
 * names the host. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/mm_test.h"

#ifndef MM_TESTDATA
#error "MM_TESTDATA must name the repository's testdata directory"
#endif


/* A "proxy" that counts the requests it is sent and answers each with 502. */
static int proxy_fd = -1;
static int proxy_port = 0;
static int proxy_hits = 0;
static pthread_mutex_t proxy_lock = PTHREAD_MUTEX_INITIALIZER;

static void *proxy_loop(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(proxy_fd, NULL, NULL);
    if (c < 0) return NULL;
    char buf[8192];
    size_t have = 0;
    while (have < sizeof buf - 1) {
      ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
      if (n <= 0) break;
      have += (size_t)n;
      buf[have] = 0;
      if (strstr(buf, "\r\n\r\n")) break;
    }
    pthread_mutex_lock(&proxy_lock);
    proxy_hits++;
    pthread_mutex_unlock(&proxy_lock);
    const char *resp = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ssize_t w = write(c, resp, strlen(resp));
    (void)w;
    close(c);
  }
}

static int hits(void) {
  pthread_mutex_lock(&proxy_lock);
  int n = proxy_hits;
  pthread_mutex_unlock(&proxy_lock);
  return n;
}

static int start_proxy(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  proxy_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (proxy_fd < 0 || bind(proxy_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(proxy_fd, 16) != 0 ||
      getsockname(proxy_fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  proxy_port = ntohs(a.sin_port);
  pthread_t t;
  if (pthread_create(&t, NULL, proxy_loop, NULL) != 0) return -1;
  pthread_detach(t);
  return 0;
}

/* What the log callback saw. */
static char log_lines[8][256];
static int log_count = 0;
static void *log_user = NULL;

static void on_attempt(void *user_data, const char *operation, uint32_t attempt, uint16_t http_status,
                       const char *request_id, double latency_ms, const char *outcome,
                       const char *retry_reason) {
  log_user = user_data;
  if (log_count < 8) {
    snprintf(log_lines[log_count], sizeof log_lines[0], "%s %u %u %s %s %s", operation, attempt,
             (unsigned)http_status, request_id ? "id" : "noid", outcome, retry_reason ? retry_reason : "-");
  }
  log_count++;
  CHECK(latency_ms >= 0);
}

/* A config for the emulator, one attempt per call. */
static mm_config *emu_config(const mm_test_emulator *e) {
  mm_config *cfg = mm_config_new();
  mm_config_set_region(cfg, MM_TEST_REGION);
  mm_config_set_endpoint_url(cfg, e->endpoint);
  mm_config_set_credentials(cfg, MM_TEST_ACCESS_KEY, MM_TEST_SECRET_KEY, NULL);
  mm_config_set_max_attempts(cfg, 1);
  return cfg;
}

/* Builds a client from cfg (freed) and resolves a customer: the call's status. */
static mm_status call(mm_config *cfg) {
  mm_client *client = NULL;
  mm_error *err = NULL;
  mm_status st = mm_client_new(cfg, &client, &err);
  mm_config_free(cfg);
  if (st != MM_STATUS_OK) {
    fprintf(stderr, "mm_client_new: %s\n", mm_error_message(err));
    mm_error_free(err);
    return st;
  }
  mm_resolve_customer_input *in = mm_resolve_customer_input_new();
  mm_resolve_customer_input_set_registration_token(in, "reg-token-valid");
  mm_resolve_customer_output *out = NULL;
  st = mm_client_resolve_customer(client, in, &out, &err);
  mm_resolve_customer_output_free(out);
  mm_error_free(err);
  mm_resolve_customer_input_free(in);
  mm_client_free(client);
  return st;
}

/* mm_client_new fails with MM_STATUS_INVALID_CONFIG naming `field`. */
static void expect_invalid(mm_config *cfg, const char *field) {
  mm_client *client = NULL;
  mm_error *err = NULL;
  mm_status st = mm_client_new(cfg, &client, &err);
  mm_config_free(cfg);
  CHECK(st == MM_STATUS_INVALID_CONFIG);
  CHECK(client == NULL);
  if (err) {
    const char *got = mm_error_field(err);
    if (!got || strcmp(got, field) != 0) {
      fprintf(stderr, "want field %s, got %s: %s\n", field, got ? got : "(null)", mm_error_message(err));
      mm_test_failures++;
    }
    CHECK(strstr(mm_error_message(err), MM_TEST_SECRET_KEY) == NULL);
  } else {
    fprintf(stderr, "no error for %s\n", field);
    mm_test_failures++;
  }
  mm_error_free(err);
  mm_client_free(client);
}

int main(void) {
  mm_test_emulator emu;
  if (mm_test_emulator_start(&emu) != 0 || start_proxy() != 0) return 1;
  unsetenv("HTTP_PROXY");
  unsetenv("http_proxy");
  unsetenv("NO_PROXY");
  unsetenv("no_proxy");
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", proxy_port);

  /* Direct, then through the proxy set in code, then NO_PROXY from code. */
  CHECK(call(emu_config(&emu)) == MM_STATUS_OK);
  CHECK(hits() == 0);
  mm_config *cfg = emu_config(&emu);
  CHECK(mm_config_set_http_proxy(cfg, proxy) == MM_STATUS_OK);
  CHECK(call(cfg) != MM_STATUS_OK); /* the proxy answers 502 */
  CHECK(hits() == 1);
  cfg = emu_config(&emu);
  mm_config_set_http_proxy(cfg, proxy);
  CHECK(mm_config_set_no_proxy(cfg, "localhost,127.0.0.1") == MM_STATUS_OK);
  CHECK(call(cfg) == MM_STATUS_OK);
  CHECK(hits() == 1);
  /* From the environment, read by the core when the client is made. */
  setenv("HTTP_PROXY", proxy, 1);
  CHECK(call(emu_config(&emu)) != MM_STATUS_OK);
  CHECK(hits() == 2);
  setenv("no_proxy", "127.0.0.1", 1);
  CHECK(call(emu_config(&emu)) == MM_STATUS_OK);
  CHECK(hits() == 2);
  unsetenv("HTTP_PROXY");
  unsetenv("no_proxy");

  /* A CA bundle that is one, and one that is not. */
  cfg = emu_config(&emu);
  CHECK(mm_config_set_ca_bundle(cfg, MM_TESTDATA "/tls/ca.pem") == MM_STATUS_OK);
  CHECK(call(cfg) == MM_STATUS_OK);
  cfg = emu_config(&emu);
  mm_config_set_ca_bundle(cfg, MM_TESTDATA "/tls/README.md");
  expect_invalid(cfg, "ca_bundle");

  /* Each new setter reaches the core's checks. */
  cfg = emu_config(&emu);
  CHECK(mm_config_set_app_id(cfg, "has space") == MM_STATUS_OK);
  expect_invalid(cfg, "app_id");
  cfg = emu_config(&emu);
  CHECK(mm_config_set_https_proxy(cfg, "not a url") == MM_STATUS_OK);
  expect_invalid(cfg, "https_proxy");
  cfg = emu_config(&emu);
  CHECK(mm_config_set_retry_mode(cfg, 9) == MM_STATUS_INVALID_CONFIG);
  mm_config_free(cfg);
  cfg = emu_config(&emu);
  CHECK(mm_config_set_retry_mode(cfg, MM_RETRY_MODE_LEGACY) == MM_STATUS_OK);
  CHECK(call(cfg) == MM_STATUS_OK);
  cfg = emu_config(&emu);
  CHECK(mm_config_set_max_attempts(cfg, 0) == MM_STATUS_OK);
  expect_invalid(cfg, "max_attempts");

  /* The environment and the profile, resolved by the core. */
  setenv("AWS_MAX_ATTEMPTS", "abc", 1);
  cfg = mm_config_new();
  mm_config_set_region(cfg, MM_TEST_REGION);
  expect_invalid(cfg, "AWS_MAX_ATTEMPTS");
  unsetenv("AWS_MAX_ATTEMPTS");
  setenv("AWS_USE_FIPS_ENDPOINT", "true", 1);
  cfg = emu_config(&emu); /* a custom endpoint with FIPS from the environment */
  expect_invalid(cfg, "endpoint_url");
  cfg = emu_config(&emu);
  CHECK(mm_config_set_use_fips(cfg, false) == MM_STATUS_OK); /* code beats environment */
  CHECK(call(cfg) == MM_STATUS_OK);
  unsetenv("AWS_USE_FIPS_ENDPOINT");
  cfg = emu_config(&emu);
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
  CHECK(mm_config_set_ignore_configured_endpoint_urls(cfg, true) == MM_STATUS_OK);
  CHECK(call(cfg) == MM_STATUS_OK); /* the code's endpoint still wins */
  unsetenv("AWS_ENDPOINT_URL");

  /* The log callback: one call per attempt, after the call returns, nothing secret. */
  static int marker;
  cfg = emu_config(&emu);
  mm_config_set_max_attempts(cfg, 3);
  CHECK(mm_config_set_log_callback(cfg, on_attempt, &marker) == MM_STATUS_OK);
  CHECK(mm_test_control(&emu, "POST", "/_emulator/faults", "{\"kind\":\"throttle\"}", NULL, 0) == 200);
  CHECK(call(cfg) == MM_STATUS_OK);
  CHECK(log_count == 2);
  CHECK(log_user == &marker);
  CHECK(strcmp(log_lines[0], "ResolveCustomer 1 400 id ThrottlingException throttling") == 0);
  CHECK(strcmp(log_lines[1], "ResolveCustomer 2 200 id ok -") == 0);
  for (int i = 0; i < 2; i++) {
    if (strstr(log_lines[i], MM_TEST_SECRET_KEY)) mm_test_failures++;
    fprintf(stderr, "log: %s\n", log_lines[i]);
  }
  cfg = emu_config(&emu);
  CHECK(mm_config_set_log_callback(cfg, NULL, NULL) == MM_STATUS_OK);
  CHECK(call(cfg) == MM_STATUS_OK);
  CHECK(log_count == 2);

  mm_test_emulator_stop(&emu);
  close(proxy_fd);
  mm_shutdown();
  if (mm_test_failures) fprintf(stderr, "%d failure(s)\n", mm_test_failures);
  return mm_test_failures ? 1 : 0;
}

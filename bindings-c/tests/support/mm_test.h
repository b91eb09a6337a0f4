/* SPDX-License-Identifier: Apache-2.0
 * Test support shared by the C and C++ tests: spawn the emulator process, talk to its control API. */
#ifndef MM_TEST_H
#define MM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "marketplace_metering.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MM_TEST_ACCESS_KEY "EMULATORKEYID0000001"
#define MM_TEST_SECRET_KEY "emulator-secret-access-key"
#define MM_TEST_REGION "us-east-1"
#define MM_TEST_PRODUCT "prod-1234"

/** A running emulator (spawned) or an attached one (METERING_ENDPOINT_URL). */
typedef struct mm_test_emulator {
  pid_t pid;            /* 0 when attached */
  int port;
  FILE *out;            /* the child's stdout, kept open so it never gets SIGPIPE */
  char endpoint[128];
} mm_test_emulator;

/** Starts the emulator given by $METERING_EMULATOR_BIN with --port 0 (or attaches to
 * $METERING_ENDPOINT_URL when set). Returns 0 on success; prints why and returns -1 otherwise. */
int mm_test_emulator_start(mm_test_emulator *e);
/** Sends SIGTERM and waits for a spawned emulator. */
void mm_test_emulator_stop(mm_test_emulator *e);
/** An HTTP request to the emulator's control API; returns the HTTP status (or -1) and copies the
 * body into `resp` (NUL-terminated, may be NULL). */
int mm_test_control(const mm_test_emulator *e, const char *method, const char *path,
                    const char *body, char *resp, size_t resp_len);
/** A client for the emulator with the emulator's credentials; NULL on failure (printed). */
mm_client *mm_test_client(const mm_test_emulator *e, uint32_t max_attempts);
/** Now minus `ago` seconds, as epoch seconds. */
int64_t mm_test_now(int64_t ago);

extern int mm_test_failures;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
      mm_test_failures++;                                                           \
    }                                                                               \
  } while (0)

/* Checks a status; on failure prints the error and frees it. */
#define CHECK_OK(call, errp)                                                        \
  do {                                                                              \
    mm_status st_ = (call);                                                         \
    if (st_ != MM_STATUS_OK) {                                                      \
      fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,           \
              mm_status_str(st_), (errp) ? mm_error_message(errp) : "(no error)");  \
      mm_test_failures++;                                                           \
      mm_error_free(errp);                                                          \
      (errp) = NULL;                                                                \
    }                                                                               \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif

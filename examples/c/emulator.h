/* SPDX-License-Identifier: Apache-2.0
 * Example helper (C and C++): the endpoint from $METERING_ENDPOINT_URL, or spawn the emulator
 * binary named by $METERING_EMULATOR_BIN with --port 0 and read the port it prints.
 * The C and C++ tests (bindings-c/tests/support) start their emulator with it too. */
#ifndef MM_EXAMPLE_EMULATOR_H
#define MM_EXAMPLE_EMULATOR_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct example_endpoint {
  char url[128];
  pid_t pid; /* 0 when attached to $METERING_ENDPOINT_URL */
  FILE *out;
} example_endpoint;

static void example_endpoint_close(example_endpoint *e);

/* Returns 0 with e->url set, or prints why and returns -1 (nothing left running). */
static int example_endpoint_open(example_endpoint *e) {
  memset(e, 0, sizeof *e);
  const char *url = getenv("METERING_ENDPOINT_URL");
  if (url && *url) {
    snprintf(e->url, sizeof e->url, "%s", url);
    return 0;
  }
  const char *bin = getenv("METERING_EMULATOR_BIN");
  if (!bin || !*bin) {
    fprintf(stderr, "set METERING_ENDPOINT_URL, or METERING_EMULATOR_BIN to spawn the emulator\n");
    return -1;
  }
  int fds[2];
  if (pipe(fds) != 0) return -1;
  /* Close-on-exec: a process spawned later (a second emulator) must not hold this pipe open.
   * The child's stdout is a dup2 of the write end, which does not inherit the flag. */
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  char *argv[] = {(char *)bin, (char *)"--port", (char *)"0", NULL};
  int rc = posix_spawn(&e->pid, bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    fprintf(stderr, "cannot spawn %s: %s\n", bin, strerror(rc));
    close(fds[0]);
    e->pid = 0;
    return -1;
  }
  e->out = fdopen(fds[0], "r");
  char line[256];
  while (e->out && fgets(line, sizeof line, e->out)) {
    if (strncmp(line, "METERING_EMULATOR_PORT=", 23) == 0) {
      snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", atoi(line + 23));
      return 0;
    }
  }
  fprintf(stderr, "the emulator exited without printing its port\n");
  example_endpoint_close(e);
  return -1;
}

static void example_endpoint_close(example_endpoint *e) {
  if (e->pid > 0) {
    int status;
    kill(e->pid, SIGTERM);
    while (waitpid(e->pid, &status, 0) < 0 && errno == EINTR) {
    }
    e->pid = 0;
  }
  if (e->out) fclose(e->out);
  e->out = NULL;
}

#endif

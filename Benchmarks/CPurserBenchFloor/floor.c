#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CPurserBenchFloor.h"

#include <sched.h>
#include <sys/resource.h>

#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

// One line to the child and one back; then both pipes closed and the child reaped.
static int exchange(pid_t pid, int to_child, int from_child, int *status) {
    char line[64];
    int ok = write(to_child, "ping\n", 5) == 5 && read(from_child, line, sizeof line) > 0;
    close(to_child);
    close(from_child);
    waitpid(pid, status, 0);
    return ok ? 0 : -1;
}

static int round_trip(const char *path) {
    int in[2], out[2];
    if (pipe(in) < 0) return -1;
    if (pipe(out) < 0) return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, in[1]);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    char *argv[] = {(char *)path, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, path, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    if (rc != 0) return -1;
    int status;
    return exchange(pid, in[1], out[0], &status);
}

double purser_bench_floor(const char *path, int iterations) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < iterations; i++) {
        if (round_trip(path) < 0) return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
}

// The sandbox benchmark's floor: what a minimal isolating launcher does per run.
static int sandboxed_round_trip(const char *path) {
    int in[2], out[2];
    if (pipe(in) < 0) return -1;
    if (pipe(out) < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (unshare(CLONE_NEWNET) < 0) _exit(126);
        struct rlimit files = {1024, 1024};
        if (setrlimit(RLIMIT_NOFILE, &files) < 0) _exit(126);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        char *argv[] = {(char *)path, NULL};
        execve(path, argv, environ);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    int status;
    return exchange(pid, in[1], out[0], &status) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

double purser_bench_floor_sandbox(const char *path, int iterations) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < iterations; i++) {
        if (sandboxed_round_trip(path) < 0) return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
}

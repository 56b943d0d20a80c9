/*
 * argchild: the swarm benchmark's "floor" child, for xargs. Writes its first argument as
 * one line to stdout and exits 0. Nothing else: no budgets, no ledger, no protocol, so
 * `xargs -P N -n 1 argchild` measures process creation plus one line out, N at a time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char line[4096];
    size_t n = 0;
    if (argc > 1) {
        n = strlen(argv[1]);
        if (n > sizeof line - 1) n = sizeof line - 1;
        memcpy(line, argv[1], n);
    }
    line[n++] = '\n';
    while (write(1, line, n) < 0 && errno == EINTR) {
    }
    return 0;
}

/*
 * floorchild: the benchmark "floor" child. Reads one line from stdin (or up to EOF),
 * writes "ok\n" to stdout, exits 0. Nothing else, so spawning it measures the cost of
 * process creation plus one pipe round trip.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || memchr(buf, '\n', (size_t)n)) break;
    }
    while (write(1, "ok\n", 3) < 0 && errno == EINTR) {
    }
    return 0;
}

/*
 * cworker: the smallest fast, correct Purser worker (protocol v1), in C with libc only.
 *
 * Used by benchmarks and tests as "the fastest possible real worker":
 *   initialize -> {"capabilities":{"cancel":true},"plugin":{"name":"cworker","version":"1.0.0"},"protocolVersion":1}
 *   run        -> {"output":<params.input, copied verbatim>}
 *   ping       -> {}
 *   shutdown   -> {} then exit 0
 *   cancel     -> ignored (runs are answered at once, so there is never one to cancel)
 *   EOF        -> exit 0
 *
 * There is no general JSON parser. Each line is walked as a JSON object: top-level keys
 * are matched and their values skipped as balanced JSON (respecting strings and escapes),
 * so key order does not matter and a "method" key nested inside params.input is never
 * mistaken for the request's own. The request id is echoed back as its raw JSON token.
 *
 * I/O: read(2) into a growable buffer (lines up to maxLineBytes, 8 MiB by default or the
 * value sent in initialize params.limits.maxLineBytes), one write(2) per response line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "CWorkerScan.h"

#define DEFAULT_MAX_LINE ((size_t)8 << 20)
#define INITIAL_CAP ((size_t)64 << 10)

static size_t max_line = DEFAULT_MAX_LINE;

/* ---------- output ---------- */

static ws_buf out;

static void die(const char *msg) {
    (void)!write(2, msg, strlen(msg));
    _exit(1);
}

static void out_put(const char *s, size_t n) {
    if (ws_buf_put(&out, s, n) != 0) die("cworker: out of memory\n");
}

static void out_str(const char *s) { out_put(s, strlen(s)); }

/* Writes the accumulated line plus "\n"; normally a single write(2). */
static void out_flush(void) {
    out_put("\n", 1);
    size_t off = 0;
    while (off < out.len) {
        ssize_t n = write(1, out.data + off, out.len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("cworker: write to stdout failed\n");
        }
        off += (size_t)n;
    }
    out.len = 0;
}

static void begin_response(const char *id, size_t id_len) {
    out.len = 0;
    out_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out_put(id, id_len);
}

static void send_result(const char *id, size_t id_len, const char *result) {
    begin_response(id, id_len);
    out_str(",\"result\":");
    out_str(result);
    out_str("}");
    out_flush();
}

static void send_error(const char *id, size_t id_len, int code, const char *message) {
    char buf[64];
    begin_response(id, id_len);
    snprintf(buf, sizeof buf, ",\"error\":{\"code\":%d,\"message\":\"", code);
    out_str(buf);
    out_str(message); /* callers pass plain ASCII without quotes or backslashes */
    out_str("\"}}");
    out_flush();
}

/* ---------- tokens (the JSON scanning is in CWorkerScan) ---------- */

static int str_is(const char *s, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Parses a small non-negative integer token; returns -1 if it is not one. */
static long long parse_int(const char *s, const char *e) {
    long long v = 0;
    if (s >= e) return -1;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9' || v > (1LL << 50)) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* ---------- requests ---------- */

static void handle_initialize(const char *id, size_t id_len, const char *ps, const char *pe) {
    const char *vs, *ve;
    if (ps && ws_obj_get(ps, pe, "protocolVersion", &vs, &ve) && parse_int(vs, ve) != 1) {
        begin_response(id, id_len);
        out_str(",\"error\":{\"code\":-32001,\"message\":\"unsupported protocol version\","
                "\"data\":{\"supported\":[1]}}}");
        out_flush();
        return;
    }
    const char *ls, *le;
    if (ps && ws_obj_get(ps, pe, "limits", &ls, &le) &&
        ws_obj_get(ls, le, "maxLineBytes", &vs, &ve)) {
        long long v = parse_int(vs, ve);
        if (v >= 1024) max_line = (size_t)v;
    }
    send_result(id, id_len,
                "{\"capabilities\":{\"cancel\":true},"
                "\"plugin\":{\"name\":\"cworker\",\"version\":\"1.0.0\"},"
                "\"protocolVersion\":1}");
}

static void handle_run(const char *id, size_t id_len, const char *ps, const char *pe) {
    const char *vs, *ve;
    if (!ps || !ws_obj_get(ps, pe, "input", &vs, &ve)) {
        send_error(id, id_len, -32602, "run needs params.input");
        return;
    }
    begin_response(id, id_len);
    out_str(",\"result\":{\"output\":");
    out_put(vs, (size_t)(ve - vs));
    out_str("}}");
    if (out.len > max_line) {
        send_error(id, id_len, -32603, "output exceeds maxLineBytes");
        return;
    }
    out_flush();
}

static void handle_line(const char *line, size_t len) {
    const char *e = line + len;
    const char *p = ws_skip_ws(line, e);
    if (p == e) return; /* empty line */
    if (*p != '{') {
        (void)!write(2, "cworker: ignoring a line that is not a JSON object\n", 51);
        return;
    }
    /* One pass over the top-level members. */
    const char *m = NULL, *is = NULL, *ie = NULL, *ps = NULL, *pe = NULL;
    size_t mlen = 0;
    const char *ks, *vs, *ve;
    size_t kl;
    int first = 1;
    while (ws_obj_next(&p, e, &first, &ks, &kl, &vs, &ve)) {
        if (str_is(ks, kl, "method")) {
            if (*vs == '"' && ve - vs >= 2) {
                m = vs + 1;
                mlen = (size_t)(ve - vs - 2);
            }
        } else if (str_is(ks, kl, "id")) {
            is = vs;
            ie = ve;
        } else if (str_is(ks, kl, "params")) {
            ps = vs;
            pe = ve;
        }
    }
    if (!m) {
        /* Responses (we send no requests) and junk. */
        (void)!write(2, "cworker: ignoring a line without a method\n", 42);
        return;
    }
    if (!is) return; /* notifications: cancel (nothing to cancel) and others */
    size_t il = (size_t)(ie - is);
    if (str_is(m, mlen, "run")) {
        handle_run(is, il, ps, pe);
    } else if (str_is(m, mlen, "initialize")) {
        handle_initialize(is, il, ps, pe);
    } else if (str_is(m, mlen, "ping")) {
        send_result(is, il, "{}");
    } else if (str_is(m, mlen, "shutdown")) {
        send_result(is, il, "{}");
        exit(0);
    } else {
        send_error(is, il, -32601, "method not found");
    }
}

/* ---------- input loop ---------- */

int main(void) {
    size_t cap = INITIAL_CAP, start = 0, end = 0, scan = 0;
    int discarding = 0; /* inside a line longer than max_line */
    char *buf = malloc(cap);
    if (!buf) die("cworker: out of memory\n");

    for (;;) {
        char *nl = memchr(buf + scan, '\n', end - scan);
        if (nl) {
            size_t len = (size_t)(nl - (buf + start));
            if (discarding) {
                discarding = 0;
            } else {
                if (len > 0 && buf[start + len - 1] == '\r') len--;
                handle_line(buf + start, len);
            }
            start = scan = (size_t)(nl - buf) + 1;
            continue;
        }
        scan = end;
        if (end - start > max_line) {
            if (!discarding) (void)!write(2, "cworker: dropping an over-long line\n", 36);
            discarding = 1;
            start = end = scan = 0;
        } else if (start > 0) {
            memmove(buf, buf + start, end - start);
            end -= start;
            scan = end;
            start = 0;
        }
        if (end == cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) die("cworker: out of memory\n");
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(0, buf + end, cap - end);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("cworker: read from stdin failed\n");
        }
        if (n == 0) {
            /* EOF: a final unterminated line is still handled, then exit. */
            if (end > start && !discarding) handle_line(buf + start, end - start);
            return 0;
        }
        end += (size_t)n;
    }
}

/*
 * gatewayworker: a benchmark worker (protocol v1, C, libc only) that measures what one
 * gateway/call costs as seen from inside a worker: the supervisor's routing, the gateway and
 * the upstream, end to end.
 *
 *   initialize -> {"capabilities":{"cancel":true},"plugin":{"name":"gatewayworker",...},...}
 *   run        -> params.input {"n", "integration", "path", "concurrency" (1)}: sends n
 *                 gateway/call requests, `concurrency` of them outstanding at a time, then
 *                 answers {"output":{"calls","errors","seconds","medianUs","p90Us","p99Us",
 *                 "minUs"}}
 *   cancel     -> for the run in progress: stop sending, answer it -32800 "cancelled"
 *   ping       -> {}
 *   shutdown   -> {} then exit 0
 *   EOF        -> exit 0
 *
 * Each call's round trip runs from just before its request line's write(2) to the return of
 * the read(2) that completed its response line. Percentiles are nearest-rank over the
 * successful calls, in microseconds to 0.1; "seconds" runs from the first call's write to the
 * last answer's read. Calls answered with an error count in "errors" and not in the
 * percentiles (all of them are 0 if no call succeeded).
 *
 * The JSON scanning and the I/O are cworker's: no parser, top-level members are matched and
 * their values skipped as balanced JSON; read(2) into a growable buffer, one write(2) a line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "CWorkerScan.h"

#define DEFAULT_MAX_LINE ((size_t)8 << 20)
#define INITIAL_CAP ((size_t)64 << 10)

static size_t max_line = DEFAULT_MAX_LINE;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* When the latest read(2) returned. A response line is complete only once the read that
 * delivered its last byte returns, and the lines handled before it in the same chunk (each
 * possibly writing the next call) must not be charged to it. */
static uint64_t last_read_ns;

/* ---------- output ---------- */

static ws_buf out;

static void note(const char *msg) { (void)!write(2, msg, strlen(msg)); }

static void die(const char *msg) {
    note(msg);
    _exit(1);
}

static void out_put(const char *s, size_t n) {
    if (ws_buf_put(&out, s, n) != 0) die("gatewayworker: out of memory\n");
}

static void out_str(const char *s) { out_put(s, strlen(s)); }

/* Writes the accumulated bytes, normally in a single write(2); the caller ends the line. */
static void out_write(void) {
    size_t off = 0;
    while (off < out.len) {
        ssize_t n = write(1, out.data + off, out.len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("gatewayworker: write to stdout failed\n");
        }
        off += (size_t)n;
    }
    out.len = 0;
}

static void out_flush(void) {
    out_put("\n", 1);
    out_write();
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

/* ---------- the run ---------- */

/* Call ids keep increasing across runs, so a late answer to a cancelled run's call can never
 * be taken for an answer to a later run's. */
static uint64_t next_call_id = 1;

static struct {
    int active;
    ws_buf id;     /* the run request's id, raw JSON, echoed in the answer */
    ws_buf run_id; /* params.runId, raw JSON (empty if absent), matched against cancel's */
    ws_buf tail;   /* the call line after its id, the same for every call of the run */
    long long n, concurrency, sent, answered, errors;
    uint64_t first_id; /* the id of this run's first call; the rest follow it, one by one */
    uint64_t *sent_ns; /* by call index; 0 once answered */
    uint64_t *samples; /* round trips of successful calls, ns */
    size_t nsamples;
    uint64_t start_ns, end_ns;
} run;

static void end_run(void) {
    run.active = 0;
    free(run.sent_ns);
    free(run.samples);
    run.sent_ns = run.samples = NULL;
}

static void send_call(void) {
    char head[64];
    uint64_t id = next_call_id++;
    snprintf(head, sizeof head, "{\"jsonrpc\":\"2.0\",\"id\":%llu", (unsigned long long)id);
    out.len = 0;
    out_str(head);
    out_put(run.tail.data, run.tail.len);
    uint64_t t = now_ns();
    if (run.sent == 0) run.start_ns = t;
    run.sent_ns[run.sent++] = t;
    out_write();
}

/* Appends a C string; nonzero if memory ran out. */
static int buf_str(ws_buf *b, const char *s) { return ws_buf_put(b, s, strlen(s)) != 0; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least pct% of the samples at or below it. */
static double percentile_us(const uint64_t *sorted, size_t count, unsigned pct) {
    if (count == 0) return 0;
    size_t rank = (count * pct + 99) / 100;
    return (double)sorted[rank ? rank - 1 : 0] / 1000.0;
}

static void finish_run(void) {
    qsort(run.samples, run.nsamples, sizeof *run.samples, cmp_u64);
    const uint64_t *s = run.samples;
    size_t k = run.nsamples;
    double seconds = run.n > 0 ? (double)(run.end_ns - run.start_ns) / 1e9 : 0;
    char buf[320];
    snprintf(buf, sizeof buf,
             ",\"result\":{\"output\":{\"calls\":%lld,\"errors\":%lld,\"seconds\":%.6f,"
             "\"medianUs\":%.1f,\"p90Us\":%.1f,\"p99Us\":%.1f,\"minUs\":%.1f}}}",
             run.n, run.errors, seconds, percentile_us(s, k, 50), percentile_us(s, k, 90),
             percentile_us(s, k, 99), k ? (double)s[0] / 1000.0 : 0);
    begin_response(run.id.data, run.id.len);
    out_str(buf);
    out_flush();
    end_run();
}

/* Keeps `concurrency` calls outstanding until all n are sent; answers the run after the last. */
static void pump(void) {
    while (run.sent < run.n && run.sent - run.answered < run.concurrency) send_call();
    if (run.answered == run.n) finish_run();
}

/* Reads an optional non-negative integer member; returns def if absent, -1 if malformed. */
static long long input_int(const char *is, const char *ie, const char *key, long long def) {
    const char *vs, *ve;
    if (!ws_obj_get(is, ie, key, &vs, &ve)) return def;
    return parse_int(vs, ve);
}

static void handle_run(const char *id, size_t id_len, const char *ps, const char *pe) {
    if (run.active) {
        /* v1 sends one run per worker; answering keeps a second one from waiting forever. */
        send_error(id, id_len, -32603, "a run is already in progress");
        return;
    }
    const char *is, *ie, *gs, *ge, *ts, *te;
    if (!ps || !ws_obj_get(ps, pe, "input", &is, &ie) || *is != '{') {
        send_error(id, id_len, -32602, "run needs params.input, an object");
        return;
    }
    long long n = input_int(is, ie, "n", -1);
    long long concurrency = input_int(is, ie, "concurrency", 1);
    if (n < 0 || concurrency < 1) {
        send_error(id, id_len, -32602, "input.n must be an integer >= 0, input.concurrency >= 1");
        return;
    }
    if (!ws_obj_get(is, ie, "integration", &gs, &ge) || *gs != '"' ||
        !ws_obj_get(is, ie, "path", &ts, &te) || *ts != '"') {
        send_error(id, id_len, -32602, "input.integration and input.path must be strings");
        return;
    }

    run.id.len = run.run_id.len = run.tail.len = 0;
    const char *rs, *re;
    /* The string tokens are copied raw, escapes and all, so they reach the supervisor as sent. */
    int oom = ws_buf_put(&run.id, id, id_len) != 0 ||
              (ws_obj_get(ps, pe, "runId", &rs, &re) &&
               ws_buf_put(&run.run_id, rs, (size_t)(re - rs)) != 0) ||
              buf_str(&run.tail, ",\"method\":\"gateway/call\",\"params\":{\"integration\":") ||
              ws_buf_put(&run.tail, gs, (size_t)(ge - gs)) != 0 ||
              buf_str(&run.tail, ",\"path\":") ||
              ws_buf_put(&run.tail, ts, (size_t)(te - ts)) != 0 || buf_str(&run.tail, "}}\n");
    size_t slots = n > 0 ? (size_t)n : 1;
    run.sent_ns = oom ? NULL : calloc(slots, sizeof *run.sent_ns);
    run.samples = oom ? NULL : calloc(slots, sizeof *run.samples);
    if (!run.sent_ns || !run.samples) {
        end_run();
        send_error(id, id_len, -32603, "out of memory");
        return;
    }
    /* The id part of a call line is at most {"jsonrpc":"2.0","id": and 20 digits. */
    if (run.tail.len + 42 > max_line) {
        end_run();
        send_error(id, id_len, -32602, "a gateway/call line would exceed maxLineBytes");
        return;
    }
    run.active = 1;
    run.n = n;
    run.concurrency = concurrency;
    run.sent = run.answered = run.errors = 0;
    run.nsamples = 0;
    run.first_id = next_call_id;
    run.start_ns = run.end_ns = 0;
    pump();
}

static void handle_cancel(const char *ps, const char *pe) {
    if (!run.active) return; /* nothing in progress: the spec says ignore it */
    const char *rs, *re;
    if (run.run_id.len > 0 && ps && ws_obj_get(ps, pe, "runId", &rs, &re) &&
        ((size_t)(re - rs) != run.run_id.len || memcmp(rs, run.run_id.data, run.run_id.len) != 0))
        return; /* a cancel for some other run */
    /* Outstanding calls are abandoned: their ids are retired with the run, so late answers
     * to them are recognised and dropped. */
    begin_response(run.id.data, run.id.len);
    out_str(",\"error\":{\"code\":-32800,\"message\":\"cancelled\"}}");
    out_flush();
    end_run();
}

static void handle_response(const char *is, const char *ie, int is_error) {
    long long v = parse_int(is, ie);
    if (!run.active || v < 0 || (uint64_t)v < run.first_id ||
        (uint64_t)v - run.first_id >= (uint64_t)run.sent ||
        run.sent_ns[(uint64_t)v - run.first_id] == 0) {
        note("gatewayworker: ignoring a response to no outstanding call\n");
        return;
    }
    size_t k = (size_t)((uint64_t)v - run.first_id);
    uint64_t rtt = last_read_ns - run.sent_ns[k];
    run.sent_ns[k] = 0;
    run.answered++;
    run.end_ns = last_read_ns;
    if (is_error)
        run.errors++;
    else
        run.samples[run.nsamples++] = rtt;
    pump();
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
                "\"plugin\":{\"name\":\"gatewayworker\",\"version\":\"1.0.0\"},"
                "\"protocolVersion\":1}");
}

static void handle_line(const char *line, size_t len) {
    const char *e = line + len;
    const char *p = ws_skip_ws(line, e);
    if (p == e) return; /* empty line */
    if (*p != '{') {
        note("gatewayworker: ignoring a line that is not a JSON object\n");
        return;
    }
    /* One pass over the top-level members. */
    const char *m = NULL, *is = NULL, *ie = NULL, *ps = NULL, *pe = NULL;
    int has_result = 0, has_error = 0;
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
        } else if (str_is(ks, kl, "result")) {
            has_result = 1;
        } else if (str_is(ks, kl, "error")) {
            has_error = 1;
        }
    }
    if (!m) {
        if (is && (has_result || has_error)) {
            handle_response(is, ie, has_error);
        } else {
            note("gatewayworker: ignoring a line that is neither request nor response\n");
        }
        return;
    }
    if (!is) {
        if (str_is(m, mlen, "cancel")) handle_cancel(ps, pe);
        return; /* other notifications mean nothing to this worker */
    }
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
    if (!buf) die("gatewayworker: out of memory\n");

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
            if (!discarding) note("gatewayworker: dropping an over-long line\n");
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
            if (!nb) die("gatewayworker: out of memory\n");
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(0, buf + end, cap - end);
        last_read_ns = now_ns();
        if (n < 0) {
            if (errno == EINTR) continue;
            die("gatewayworker: read from stdin failed\n");
        }
        if (n == 0) {
            /* EOF: a final unterminated line is still handled, then exit; a run still
             * waiting for answers can get none now. */
            if (end > start && !discarding) handle_line(buf + start, end - start);
            return 0;
        }
        end += (size_t)n;
    }
}

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
 * The JSON scanning, the I/O and the answers to initialize, ping and shutdown are cworker's,
 * shared in CWorkerScan: no parser, top-level members are matched and their values skipped as
 * balanced JSON; read(2) into a growable buffer, one write(2) a line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "CWorkerScan.h"

static ws_out out = {.who = "gatewayworker"};

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* When the latest read(2) returned. A response line is complete only once the read that
 * delivered its last byte returns, and the lines handled before it in the same chunk (each
 * possibly writing the next call) must not be charged to it. */
static uint64_t last_read_ns;

static void stamp_read(void) { last_read_ns = now_ns(); }

static ws_lines in = {
    .max_line = WS_DEFAULT_MAX_LINE, .who = "gatewayworker", .after_read = stamp_read};

static void note(const char *msg) { (void)!write(2, msg, strlen(msg)); }

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
    out.buf.len = 0;
    ws_out_str(&out, head);
    ws_out_put(&out, run.tail.data, run.tail.len);
    uint64_t t = now_ns();
    if (run.sent == 0) run.start_ns = t;
    run.sent_ns[run.sent++] = t;
    ws_out_write(&out);
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
    ws_out_response(&out, run.id.data, run.id.len);
    ws_out_str(&out, buf);
    ws_out_line(&out);
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
    return ws_parse_uint(vs, ve);
}

static void handle_run(const char *id, size_t id_len, const char *ps, const char *pe) {
    if (run.active) {
        /* v1 sends one run per worker; answering keeps a second one from waiting forever. */
        ws_send_error(&out, id, id_len, -32603, "a run is already in progress");
        return;
    }
    const char *is, *ie, *gs, *ge, *ts, *te;
    if (!ps || !ws_obj_get(ps, pe, "input", &is, &ie) || *is != '{') {
        ws_send_error(&out, id, id_len, -32602, "run needs params.input, an object");
        return;
    }
    long long n = input_int(is, ie, "n", -1);
    long long concurrency = input_int(is, ie, "concurrency", 1);
    if (n < 0 || concurrency < 1) {
        ws_send_error(&out, id, id_len, -32602, "input.n must be an integer >= 0, input.concurrency >= 1");
        return;
    }
    if (!ws_obj_get(is, ie, "integration", &gs, &ge) || *gs != '"' ||
        !ws_obj_get(is, ie, "path", &ts, &te) || *ts != '"') {
        ws_send_error(&out, id, id_len, -32602, "input.integration and input.path must be strings");
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
        ws_send_error(&out, id, id_len, -32603, "out of memory");
        return;
    }
    /* The id part of a call line is at most {"jsonrpc":"2.0","id": and 20 digits. */
    if (run.tail.len + 42 > in.max_line) {
        end_run();
        ws_send_error(&out, id, id_len, -32602, "a gateway/call line would exceed maxLineBytes");
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
    ws_out_response(&out, run.id.data, run.id.len);
    ws_out_str(&out, ",\"error\":{\"code\":-32800,\"message\":\"cancelled\"}}");
    ws_out_line(&out);
    end_run();
}

static void handle_response(const char *line, size_t len, const char *is, const char *ie, int is_error) {
    long long v = ws_parse_uint(is, ie);
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
    if (!is_error) {
        run.samples[run.nsamples++] = rtt;
    } else if (run.errors++ == 0) {
        /* The first error says why, on stderr, where the report's stderr tail keeps it. */
        note("gatewayworker: first error: ");
        (void)!write(2, line, len);
        note("\n");
    }
    pump();
}

/* ---------- requests ---------- */

static void handle_line(const char *line, size_t len) {
    ws_msg m;
    int r = ws_msg_parse(line, len, &m);
    if (r == 0) return; /* empty line */
    if (r < 0) {
        note("gatewayworker: ignoring a line that is not a JSON object\n");
        return;
    }
    if (!m.method) {
        if (m.id && (m.has_result || m.has_error)) {
            handle_response(line, len, m.id, m.id + m.id_len, m.has_error);
        } else {
            note("gatewayworker: ignoring a line that is neither request nor response\n");
        }
        return;
    }
    if (!m.id) {
        if (ws_str_is(m.method, m.method_len, "cancel")) handle_cancel(m.params, m.params_end);
        return; /* other notifications mean nothing to this worker */
    }
    if (ws_str_is(m.method, m.method_len, "run")) {
        handle_run(m.id, m.id_len, m.params, m.params_end);
    } else {
        ws_answer_standard(&out, &m, "gatewayworker", "1.0.0", &in.max_line);
    }
}

int main(void) {
    const char *line;
    size_t len;
    while (ws_lines_get(&in, &line, &len)) handle_line(line, len);
    return 0; /* EOF: a run still waiting for answers can get none now */
}

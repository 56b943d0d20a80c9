/*
 * cworker: the smallest fast, correct Purser worker (protocol v1), in C with libc only.
 *
 * Used by benchmarks and tests as "the fastest possible real worker":
 *   initialize -> {"capabilities":{"cancel":true,"sequentialRuns":true},"plugin":{"name":"cworker","version":"1.0.0"},"protocolVersion":1}
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
 *
 * The scanning, the line reader, the output line and the answers to initialize, ping and
 * shutdown are CWorkerScan's, shared with gatewayworker; what is cworker's own is run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <unistd.h>

#include "CWorkerScan.h"

static ws_out out = {.who = "cworker"};
static ws_lines in = {.max_line = WS_DEFAULT_MAX_LINE, .who = "cworker"};

static void handle_run(const ws_msg *m) {
    const char *vs, *ve;
    if (!m->params || !ws_obj_get(m->params, m->params_end, "input", &vs, &ve)) {
        ws_send_error(&out, m->id, m->id_len, -32602, "run needs params.input");
        return;
    }
    ws_out_response(&out, m->id, m->id_len);
    ws_out_str(&out, ",\"result\":{\"output\":");
    ws_out_put(&out, vs, (size_t)(ve - vs));
    ws_out_str(&out, "}}");
    if (out.buf.len > in.max_line) {
        ws_send_error(&out, m->id, m->id_len, -32603, "output exceeds maxLineBytes");
        return;
    }
    ws_out_line(&out);
}

static void handle_line(const char *line, size_t len) {
    ws_msg m;
    int r = ws_msg_parse(line, len, &m);
    if (r == 0) return; /* empty line */
    if (r < 0) {
        (void)!write(2, "cworker: ignoring a line that is not a JSON object\n", 51);
        return;
    }
    if (!m.method) {
        /* Responses (we send no requests) and junk. */
        (void)!write(2, "cworker: ignoring a line without a method\n", 42);
        return;
    }
    if (!m.id) return; /* notifications: cancel (nothing to cancel) and others */
    if (ws_str_is(m.method, m.method_len, "run")) {
        handle_run(&m);
    } else {
        ws_answer_standard(&out, &m, "cworker", "1.0.0", &in.max_line);
    }
}

int main(void) {
    const char *line;
    size_t len;
    while (ws_lines_get(&in, &line, &len)) handle_line(line, len);
    return 0;
}

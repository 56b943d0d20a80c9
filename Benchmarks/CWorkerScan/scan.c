#include "CWorkerScan.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------- minimal JSON scanning ---------- */

const char *ws_skip_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

const char *ws_skip_string(const char *p, const char *e) {
    for (p++; p < e; p++) {
        if (*p == '\\') {
            if (++p >= e) return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

const char *ws_skip_value(const char *p, const char *e) {
    if (p >= e) return NULL;
    if (*p == '"') return ws_skip_string(p, e);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < e) {
            char c = *p;
            if (c == '"') {
                p = ws_skip_string(p, e);
                if (!p) return NULL;
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p; /* number, true, false, null */
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\r' && *p != '\n')
        p++;
    return p > s ? p : NULL;
}

int ws_obj_next(const char **pp, const char *e, int *first, const char **ks, size_t *klen,
                const char **vs, const char **ve) {
    const char *p = ws_skip_ws(*pp, e);
    if (p >= e) return 0;
    if (*first) {
        if (*p != '{') return 0;
        *first = 0;
    } else {
        if (*p != ',') return 0;
    }
    p = ws_skip_ws(p + 1, e);
    if (p >= e || *p != '"') return 0;
    const char *kend = ws_skip_string(p, e);
    if (!kend) return 0;
    *ks = p + 1;
    *klen = (size_t)(kend - 1 - *ks);
    p = ws_skip_ws(kend, e);
    if (p >= e || *p != ':') return 0;
    p = ws_skip_ws(p + 1, e);
    *vs = p;
    p = ws_skip_value(p, e);
    if (!p) return 0;
    *ve = p;
    *pp = p;
    return 1;
}

int ws_obj_get(const char *obj, const char *e, const char *key, const char **vs,
               const char **ve) {
    size_t klen = strlen(key), kl;
    const char *ks, *s, *t;
    int first = 1;
    while (ws_obj_next(&obj, e, &first, &ks, &kl, &s, &t)) {
        if (kl == klen && memcmp(ks, key, klen) == 0) {
            *vs = s; /* written only on a match */
            *ve = t;
            return 1;
        }
    }
    return 0;
}

/* ---------- output buffer ---------- */

int ws_buf_put(ws_buf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* ---------- failing ---------- */

void ws_fatal(const char *who, const char *what) {
    char msg[256];
    size_t n = 0, k;
    k = strnlen(who, 100);
    memcpy(msg + n, who, k);
    n += k;
    memcpy(msg + n, ": ", 2);
    n += 2;
    k = strnlen(what, sizeof msg - n - 1);
    memcpy(msg + n, what, k);
    n += k;
    msg[n++] = '\n';
    (void)!write(2, msg, n);
    _exit(1);
}

/* ---------- tokens ---------- */

long long ws_parse_uint(const char *s, const char *e) {
    long long v = 0;
    if (s >= e) return -1;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9' || v > (1LL << 50)) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* ---------- output lines ---------- */

void ws_out_put(ws_out *o, const char *s, size_t n) {
    if (ws_buf_put(&o->buf, s, n) != 0) ws_fatal(o->who, "out of memory");
}

void ws_out_str(ws_out *o, const char *s) { ws_out_put(o, s, strlen(s)); }

void ws_out_write(ws_out *o) {
    size_t off = 0;
    while (off < o->buf.len) {
        ssize_t n = write(1, o->buf.data + off, o->buf.len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            ws_fatal(o->who, "write to stdout failed");
        }
        off += (size_t)n;
    }
    o->buf.len = 0;
}

void ws_out_line(ws_out *o) {
    ws_out_put(o, "\n", 1);
    ws_out_write(o);
}

void ws_out_response(ws_out *o, const char *id, size_t id_len) {
    o->buf.len = 0;
    ws_out_str(o, "{\"jsonrpc\":\"2.0\",\"id\":");
    ws_out_put(o, id, id_len);
}

void ws_send_result(ws_out *o, const char *id, size_t id_len, const char *result) {
    ws_out_response(o, id, id_len);
    ws_out_str(o, ",\"result\":");
    ws_out_str(o, result);
    ws_out_str(o, "}");
    ws_out_line(o);
}

void ws_send_error(ws_out *o, const char *id, size_t id_len, int code, const char *message) {
    char buf[64];
    ws_out_response(o, id, id_len);
    snprintf(buf, sizeof buf, ",\"error\":{\"code\":%d,\"message\":\"", code);
    ws_out_str(o, buf);
    ws_out_str(o, message);
    ws_out_str(o, "\"}}");
    ws_out_line(o);
}

/* ---------- stdin lines ---------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ws_lines_next(ws_lines *in, long long timeout_ms, const char **line, size_t *len) {
    long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
    if (!in->data) {
        in->cap = (size_t)64 << 10;
        in->data = malloc(in->cap);
        if (!in->data) ws_fatal(in->who, "out of memory");
    }
    for (;;) {
        char *nl = memchr(in->data + in->scan, '\n', in->end - in->scan);
        if (nl) {
            size_t n = (size_t)(nl - (in->data + in->start));
            char *l = in->data + in->start;
            in->start = in->scan = (size_t)(nl - in->data) + 1;
            if (in->discarding) { /* the end of a dropped line */
                in->discarding = 0;
                continue;
            }
            if (n > 0 && l[n - 1] == '\r') n--;
            *line = l;
            *len = n;
            return WS_LINE;
        }
        if (in->eof) return WS_EOF;
        in->scan = in->end;
        if (in->end - in->start > in->max_line) {
            if (!in->discarding) {
                const char *what = ": dropping an over-long line\n";
                char msg[160];
                size_t k = strnlen(in->who, 100);
                memcpy(msg, in->who, k);
                memcpy(msg + k, what, strlen(what));
                (void)!write(2, msg, k + strlen(what));
            }
            in->discarding = 1;
            in->start = in->end = in->scan = 0;
        } else if (in->start > 0) { /* keep the partial line at the front, so it can grow */
            memmove(in->data, in->data + in->start, in->end - in->start);
            in->end -= in->start;
            in->scan = in->end;
            in->start = 0;
        }
        if (in->end == in->cap) {
            char *nb = realloc(in->data, in->cap * 2);
            if (!nb) ws_fatal(in->who, "out of memory");
            in->data = nb;
            in->cap *= 2;
        }
        if (timeout_ms >= 0) {
            long long left = deadline - now_ms();
            struct pollfd pfd = {.fd = 0, .events = POLLIN};
            int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) return WS_TIMEOUT;
        }
        ssize_t n = read(0, in->data + in->end, in->cap - in->end);
        if (in->after_read) in->after_read();
        if (n < 0) {
            if (errno == EINTR) continue;
            return WS_READ_ERROR;
        }
        if (n == 0) {
            in->eof = 1;
            if (in->end > in->start && !in->discarding) { /* a final unterminated line */
                *line = in->data + in->start;
                *len = in->end - in->start;
                in->start = in->end = in->scan = 0;
                return WS_LINE;
            }
            return WS_EOF;
        }
        in->end += (size_t)n;
    }
}

int ws_lines_get(ws_lines *in, const char **line, size_t *len) {
    int r = ws_lines_next(in, -1, line, len);
    if (r == WS_READ_ERROR) ws_fatal(in->who, "read from stdin failed");
    return r == WS_LINE;
}

/* ---------- requests ---------- */

int ws_msg_parse(const char *line, size_t len, ws_msg *m) {
    const char *e = line + len;
    const char *p = ws_skip_ws(line, e);
    if (p == e) return 0;
    if (*p != '{') return -1;
    memset(m, 0, sizeof *m);
    const char *ks, *vs, *ve;
    size_t kl;
    int first = 1;
    while (ws_obj_next(&p, e, &first, &ks, &kl, &vs, &ve)) {
        if (ws_str_is(ks, kl, "method")) {
            if (*vs == '"' && ve - vs >= 2) {
                m->method = vs + 1;
                m->method_len = (size_t)(ve - vs - 2);
            }
        } else if (ws_str_is(ks, kl, "id")) {
            m->id = vs;
            m->id_len = (size_t)(ve - vs);
        } else if (ws_str_is(ks, kl, "params")) {
            m->params = vs;
            m->params_end = ve;
        } else if (ws_str_is(ks, kl, "result")) {
            m->has_result = 1;
        } else if (ws_str_is(ks, kl, "error")) {
            m->has_error = 1;
        }
    }
    return 1;
}

void ws_answer_standard(ws_out *o, const ws_msg *m, const char *plugin_name,
                        const char *plugin_version, size_t *max_line) {
    const char *id = m->id, *ps = m->params, *pe = m->params_end;
    size_t il = m->id_len;
    if (ws_str_is(m->method, m->method_len, "initialize")) {
        const char *vs, *ve, *ls, *le;
        if (ps && ws_obj_get(ps, pe, "protocolVersion", &vs, &ve) && ws_parse_uint(vs, ve) != 1) {
            ws_out_response(o, id, il);
            ws_out_str(o, ",\"error\":{\"code\":-32001,\"message\":\"unsupported protocol version\","
                          "\"data\":{\"supported\":[1]}}}");
            ws_out_line(o);
            return;
        }
        if (ps && ws_obj_get(ps, pe, "limits", &ls, &le) &&
            ws_obj_get(ls, le, "maxLineBytes", &vs, &ve)) {
            long long v = ws_parse_uint(vs, ve);
            if (v >= 1024) *max_line = (size_t)v;
        }
        ws_out_response(o, id, il);
        ws_out_str(o, ",\"result\":{\"capabilities\":{\"cancel\":true,\"sequentialRuns\":true},\"plugin\":{\"name\":\"");
        ws_out_str(o, plugin_name);
        ws_out_str(o, "\",\"version\":\"");
        ws_out_str(o, plugin_version);
        ws_out_str(o, "\"},\"protocolVersion\":1}}");
        ws_out_line(o);
    } else if (ws_str_is(m->method, m->method_len, "ping")) {
        ws_send_result(o, id, il, "{}");
    } else if (ws_str_is(m->method, m->method_len, "shutdown")) {
        ws_send_result(o, id, il, "{}");
        exit(0);
    } else {
        ws_send_error(o, id, il, -32601, "method not found");
    }
}

#include "CWorkerScan.h"

#include <stdlib.h>
#include <string.h>

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

#ifndef CWORKERSCAN_H
#define CWORKERSCAN_H

/*
 * The small pieces the C workers (cworker, the hostile test plugin) share: minimal JSON
 * scanning over a byte range [p, e) and a growable output buffer. There is no JSON parser
 * here: values are skipped as balanced JSON (respecting strings and escapes) so that the
 * caller can find where a well-formed value ends. None of it is a validator.
 */

#include <stddef.h>

/* ---------- minimal JSON scanning ---------- */

/* Returns the first position at or after p that is not JSON whitespace (or e). */
const char *ws_skip_ws(const char *p, const char *e);

/* p at '"'; returns the position after the closing quote, or NULL. */
const char *ws_skip_string(const char *p, const char *e);

/* Returns the position just after the JSON value starting at p, or NULL. */
const char *ws_skip_value(const char *p, const char *e);

/* Member iterator over a JSON object. Start with *pp at (or before whitespace and) '{' and
 * *first = 1; each call sets the raw key text [*ks, *ks + *klen) and the value [*vs, *ve)
 * and returns 1, or returns 0 at the end of the object (or on malformed input). */
int ws_obj_next(const char **pp, const char *e, int *first, const char **ks, size_t *klen,
                const char **vs, const char **ve);

/* Finds the first member named key (compared byte for byte with the raw key text) of the
 * object at obj and sets [*vs, *ve) to its value. Returns 1 if found; if not, returns 0 and
 * leaves *vs and *ve alone. */
int ws_obj_get(const char *obj, const char *e, const char *key, const char **vs,
               const char **ve);

/* ---------- output buffer ---------- */

/* A growable byte buffer; zero-initialise it. Bytes are data[0, len). */
typedef struct {
    char *data;
    size_t len, cap;
} ws_buf;

/* Appends n bytes from s, growing the buffer (4 KiB first, then doubling) as needed.
 * Returns 0, or -1 if memory ran out (the buffer is then unchanged). */
int ws_buf_put(ws_buf *b, const char *s, size_t n);

#endif

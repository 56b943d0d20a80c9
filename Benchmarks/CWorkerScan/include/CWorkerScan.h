#ifndef CWORKERSCAN_H
#define CWORKERSCAN_H

/*
 * The small pieces the C workers (cworker, gatewayworker, the hostile test plugin) share:
 * minimal JSON scanning over a byte range [p, e), a growable output buffer, the stdin line
 * reader, the output line writer and the answers every v1 worker gives alike. There is no
 * JSON parser here: values are skipped as balanced JSON (respecting strings and escapes) so
 * that the caller can find where a well-formed value ends. None of it is a validator.
 *
 * cworker is the benchmarks' "fastest possible real worker", so nothing here copies a line
 * or a value: lines are handed out in place in the read buffer, tokens as pointer ranges.
 */

#include <stddef.h>
#include <string.h>

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

/* ---------- failing ---------- */

/* Writes "who: what\n" to stderr in one write(2) and _exits 1. A worker that cannot read its
 * requests, write its answers or find memory for them has nothing useful left to do, and the
 * supervisor reports the exit; _exit, because there is nothing worth flushing. */
_Noreturn void ws_fatal(const char *who, const char *what);

/* ---------- tokens ---------- */

/* Inline because it runs for every top-level member of every line, on cworker's hot path. */
static inline int ws_str_is(const char *s, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* The token [s, e) as a small non-negative integer, or -1. Strict (digits only, below about
 * 2^50) so that a fraction, a sign or a huge value is refused rather than misread as a count
 * or a limit. */
long long ws_parse_uint(const char *s, const char *e);

/* ---------- output lines ---------- */

/* The line being built for stdout. Every answer is assembled here first so that it leaves in
 * one write(2): the supervisor reads lines, and one write keeps a line whole and costs one
 * syscall. Zero-initialise it with who set; the bytes are buf.data[0, buf.len), and callers
 * may look at buf.len (e.g. to hold an answer to maxLineBytes) or set it to 0 to start over. */
typedef struct {
    ws_buf buf;
    const char *who; /* names the worker in fatal errors */
} ws_out;

/* Appending cannot fail for the caller: running out of memory is fatal (ws_fatal), because an
 * answer that cannot be built cannot be sent either. */
void ws_out_put(ws_out *o, const char *s, size_t n);
void ws_out_str(ws_out *o, const char *s);

/* Writes everything built so far to stdout and empties the buffer; a failed write is fatal.
 * Without a newline of its own, so that a caller can send a line it assembled itself (as
 * gatewayworker's calls do, with the newline in a prepared tail). */
void ws_out_write(ws_out *o);

/* Ends the line with "\n" and writes it (ws_out_write). */
void ws_out_line(ws_out *o);

/* Empties the buffer and starts a response to the request whose id is the raw JSON token
 * [id, id + id_len): ids are echoed exactly as sent (number or string, escapes and all), so
 * that the supervisor matches the answer with no parsing on either side. The caller appends
 * ",\"result\":..." or ",\"error\":..." and the closing "}". */
void ws_out_response(ws_out *o, const char *id, size_t id_len);

/* A whole response line: result is raw JSON. */
void ws_send_result(ws_out *o, const char *id, size_t id_len, const char *result);

/* A whole error line. message is copied without escaping: callers pass plain ASCII literals
 * with no quotes or backslashes, which spares every answer a pass over its text. */
void ws_send_error(ws_out *o, const char *id, size_t id_len, int code, const char *message);

/* ---------- stdin lines ---------- */

/* The protocol's default line limit, for when initialize sends none. */
#define WS_DEFAULT_MAX_LINE ((size_t)8 << 20)

/* Reads stdin into one growable buffer and hands out lines in place (no copy per line). A
 * line that outgrows max_line before its newline arrives is dropped whole, with one note on
 * stderr, rather than held: the limit is what keeps a peer from growing the worker without
 * bound. Zero-initialise it with max_line and who set; max_line may change between calls
 * (initialize sends the real one). */
typedef struct {
    size_t max_line;
    const char *who;          /* names the worker in the stderr note and fatal errors */
    void (*after_read)(void); /* if set, called as soon as each read(2) returns, for a worker
                               * that times answers by when their last byte arrived */
    /* The reader's own: */
    char *data;
    size_t cap, start, end, scan; /* unread line from start; scan: where '\n' was last sought */
    int discarding;               /* inside a line longer than max_line */
    int eof;                      /* EOF was read: it is final, there is no reading past it */
} ws_lines;

enum { WS_LINE = 1, WS_TIMEOUT = 0, WS_EOF = -1, WS_READ_ERROR = -2 };

/* The next line from stdin, without its "\n" (or "\r\n"), in [*line, *line + *len); it stays
 * valid until the next call. A final line without a newline still counts at EOF. timeout_ms
 * < 0 blocks; otherwise WS_TIMEOUT comes back if no line is complete by then (hostile's sleep
 * mode keeps serving stdin while it waits). Returns WS_LINE, WS_TIMEOUT, WS_EOF, or
 * WS_READ_ERROR with errno set (each worker decides if that is fatal); running out of memory
 * is fatal. */
int ws_lines_next(ws_lines *in, long long timeout_ms, const char **line, size_t *len);

/* ws_lines_next for a worker whose only input is stdin: blocks, returns 1 with a line or 0 at
 * EOF, and a read error is fatal, since a worker that cannot read its requests can do no more
 * than the supervisor's timeout would. */
int ws_lines_get(ws_lines *in, const char **line, size_t *len);

/* ---------- requests ---------- */

/* The top-level members of one message line that the workers act on, all raw and in place.
 * method is the string's contents (no quotes) or NULL; id is the raw JSON token or NULL (a
 * notification); params is the raw value or NULL; has_result/has_error tell a response (to a
 * request the worker sent) from junk. A repeated key counts as its last (string, for method)
 * value, as the workers always took it. */
typedef struct {
    const char *method;
    size_t method_len;
    const char *id;
    size_t id_len;
    const char *params, *params_end;
    int has_result, has_error;
} ws_msg;

/* Walks the line's top-level members once, so that a "method" or "id" nested inside
 * params.input is never taken for the message's own and key order does not matter. Returns 1
 * with *m filled in, 0 for a blank line, -1 for a line that is not a JSON object (which the
 * caller notes and ignores). */
int ws_msg_parse(const char *line, size_t len, ws_msg *m);

/* Answers a request (m->id set) that is not a run the way every v1 worker here does, so that
 * they cannot drift apart on the handshake:
 *   initialize -> -32001 if params.protocolVersion is given and is not 1; otherwise takes
 *                 params.limits.maxLineBytes (if >= 1024) into *max_line and answers the
 *                 capabilities (cancel, sequentialRuns) and plugin name and version (plain ASCII, no quotes)
 *   ping       -> {}
 *   shutdown   -> {}, then exit(0) here: the protocol ends the worker with its answer
 *   other      -> -32601 "method not found" */
void ws_answer_standard(ws_out *o, const ws_msg *m, const char *plugin_name,
                        const char *plugin_version, size_t *max_line);

#endif

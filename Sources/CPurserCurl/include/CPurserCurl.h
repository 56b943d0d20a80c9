#ifndef CPURSER_CURL_H
#define CPURSER_CURL_H

// The gateway's only way to HTTP: libcurl's multi interface driven by one dedicated
// thread (curl_multi_poll + curl_multi_wakeup), behind typed functions, because
// curl_easy_setopt is variadic and Swift cannot call it.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One HTTP request. Everything is copied by purser_http_submit before it returns.
typedef struct purser_http_request {
    const char *url;                 // absolute http:// or https:// URL, already checked
    const char *method;              // "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"
    const char *const *headers;      // "Name: value" lines, without CRLF (CR or LF makes submit fail).
                                     // libcurl's conventions apply: "Name:" with an empty value removes
                                     // a header libcurl would add, "Name;" sends it empty. Without an
                                     // Accept-Encoding line, "Accept-Encoding: identity" is sent.
    size_t header_count;
    const uint8_t *body;             // may be NULL when body_length is 0
    size_t body_length;
    long connect_timeout_ms;         // > 0
    long total_timeout_ms;           // > 0; includes time spent waiting for a connection under the
                                     // per-host limit
    size_t max_response_bytes;       // the body is never buffered past this
} purser_http_request;

/// What came back. Valid only during the callback.
typedef struct purser_http_response {
    int curl_code;                   // CURLcode; 0 is success (any HTTP status)
    long status;                     // HTTP status, 0 when there was none
    int request_sent;                // 1 once the request reached the wire (pretransfer passed)
    int too_large;                   // 1 when aborted because the body passed max_response_bytes
    int timed_out;                   // 1 on CURLE_OPERATION_TIMEDOUT
    const char *headers;             // raw header block of the last response ("HTTP/1.1 200 OK\r\nName: v\r\n...")
    size_t headers_length;
    const uint8_t *body;             // NULL when empty. Decoded: content and transfer codings undone
                                     // (a coding libcurl cannot undo fails the request, curl_code 61)
    size_t body_length;
    double total_seconds;
    const char *error;               // libcurl's error text, "" when none
} purser_http_response;

typedef void (*purser_http_callback)(void *context, const purser_http_response *response);

typedef struct purser_http_engine purser_http_engine;

/// Starts the engine's thread. Returns NULL on failure.
purser_http_engine *purser_http_engine_create(long max_host_connections);

/// Queues a request; `callback` runs once, on the engine's thread, and must return quickly.
/// Returns 0, or -1 when the engine cannot take it (callback then never runs).
/// The callback may submit further requests but must not destroy the engine.
int purser_http_submit(purser_http_engine *engine, const purser_http_request *request,
                       purser_http_callback callback, void *context);

/// Stops the thread after failing every request still in flight (curl_code
/// CURLE_ABORTED_BY_CALLBACK), then frees the engine. Those callbacks run before this returns;
/// submits racing with it get -1, and none may start once it has returned.
void purser_http_engine_destroy(purser_http_engine *engine);

/// Called on the engine's thread with the fd while it is readable (level-triggered: data
/// left unread calls it again), and once with fd -1 when the watch has ended: after
/// purser_http_unwatch, when the engine stops, or at once if the watch could not be set up.
/// After the -1 call it is never called again for that watch.
typedef void (*purser_http_fd_callback)(void *context, int fd);

/// Polls `fd` beside the engine's transfers, so whatever reads it runs on the engine's
/// thread: work it submits goes to the wire without a thread hop. One watch per fd.
/// Returns 0, or -1 when the engine cannot take it (the callback then never runs).
int purser_http_watch(purser_http_engine *engine, int fd, purser_http_fd_callback on_readable, void *context);

/// Ends the watch of `fd` (its callback's -1 call says when). Returns 0, or -1 when the
/// engine is stopping (it then ends every watch itself).
int purser_http_unwatch(purser_http_engine *engine, int fd);

/// Splits a URL with libcurl's own parser (CURLU), so the check and the request agree.
/// Scheme and host come back lower-cased; port is the explicit or the default port.
/// Returns 0, or -1 if the URL does not parse or a buffer is too small.
int purser_url_split(const char *url, char *scheme, size_t scheme_size, char *host, size_t host_size,
                     long *port, char *path_and_query, size_t path_size);

#ifdef __cplusplus
}
#endif

#endif

// libcurl's multi interface on one thread per engine. Swift only submits copies of
// requests and receives callbacks; every libcurl object is touched by the engine's
// thread alone, except curl_multi_wakeup, which libcurl documents as thread-safe.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE // pthread_setname_np
#endif

#include "CPurserCurl.h"

#include <curl/curl.h>
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    // Enough idle handles for a burst; beyond that creating one costs little.
    FREE_HANDLES_MAX = 32,
    // libcurl 7.88 puts no limit on the total size of a response head (curl 8.3 added
    // 300 KiB for CVE-2023-38039), so a hostile server could otherwise grow it forever.
    HEADERS_MAX = 256 * 1024,
    BUFFER_INITIAL = 16 * 1024,
    POLL_TIMEOUT_MS = 1000,
    // Our own deadline trails libcurl's so that libcurl, with its better message, times
    // out every request it is able to time out.
    DEADLINE_GRACE_MS = 20,
};

struct buffer {
    char *data;      // always NUL-terminated once allocated, so headers can be read as a C string
    size_t length;
    size_t capacity; // bytes usable for content; the allocation is one more
};

struct request {
    struct request *prev, *next; // the submit queue (next only), then the in-flight list
    CURL *easy;                  // NULL until the engine thread starts the request
    char *url;
    char *method;
    uint8_t *body;               // never NULL: POST with no body still needs POSTFIELDS,
    size_t body_length;          // or libcurl would read the body from stdin
    struct curl_slist *headers;
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_response_bytes;
    purser_http_callback callback;
    void *context;

    struct buffer response_headers;
    struct buffer response_body;
    int headers_complete; // the blank line after the head was seen; later lines are trailers
    int too_large;
    int headers_too_large;
    int out_of_memory;
    int64_t started_ms;  // monotonic
    int64_t deadline_ms; // monotonic, 0 for none
    char error[CURL_ERROR_SIZE];
};

// A change to the watched fds, applied by the engine thread in the order asked.
struct watch_change {
    struct watch_change *next;
    int fd;
    purser_http_fd_callback on_readable; // NULL: stop watching fd
    void *context;
};

struct watch {
    int fd;
    purser_http_fd_callback on_readable;
    void *context;
};

struct purser_http_engine {
    CURLM *multi;
    pthread_t thread;

    pthread_mutex_t lock;
    struct request *queue_head; // guarded by lock
    struct request *queue_tail; // guarded by lock
    struct watch_change *changes_head; // guarded by lock
    struct watch_change *changes_tail; // guarded by lock
    int stopping;               // guarded by lock

    // Owned by the engine thread: the fds it polls beside libcurl's.
    struct watch *watches;
    struct curl_waitfd *wait_fds;
    size_t watch_count;
    size_t watch_capacity;

    // Owned by the engine thread.
    struct request *active;
    int64_t next_deadline_ms; // earliest deadline in `active` or earlier (then stale), 0 for none
    CURL *free_handles[FREE_HANDLES_MAX];
    size_t free_count;
};

_Static_assert(sizeof(curl_off_t) == sizeof(int64_t), "curl_off_t is 64-bit on every Linux target");

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
// The engine whose thread this is, if any: its own submits need no wakeup.
static _Thread_local struct purser_http_engine *running_engine;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_result = curl_global_init(CURL_GLOBAL_ALL);
}

static int ensure_global_init(void)
{
    if (pthread_once(&global_once, global_init) != 0)
        return -1;
    return global_result == CURLE_OK ? 0 : -1;
}

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

// ---- Buffers ----

// Returns 0, -1 when `limit` would be passed, -2 when memory ran out.
static int buffer_append(struct buffer *b, const char *data, size_t n, size_t limit)
{
    if (b->length > limit || n > limit - b->length)
        return -1;
    size_t needed = b->length + n;
    if (needed > b->capacity || b->data == NULL) {
        size_t capacity = b->capacity > BUFFER_INITIAL ? b->capacity : BUFFER_INITIAL;
        // Doubling keeps appends amortised O(1); clamping keeps memory within the limit.
        while (capacity < needed)
            capacity = capacity > limit / 2 ? limit : capacity * 2;
        if (capacity > limit)
            capacity = limit;
        if (capacity == SIZE_MAX)
            return -2;
        char *grown = realloc(b->data, capacity + 1);
        if (grown == NULL)
            return -2;
        b->data = grown;
        b->capacity = capacity;
    }
    if (n > 0)
        memcpy(b->data + b->length, data, n);
    b->length = needed;
    b->data[b->length] = '\0';
    return 0;
}

static void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->length = b->capacity = 0;
}

// ---- Requests ----

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

static void request_free(struct request *r)
{
    free(r->url);
    free(r->method);
    free(r->body);
    curl_slist_free_all(r->headers);
    buffer_free(&r->response_headers);
    buffer_free(&r->response_body);
    free(r);
}

// RFC 9110 token: a method that is not one could smuggle text into the request line.
static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && strchr("!#$%&'*+-.^_`|~", c) == NULL)
            return 0;
    }
    return 1;
}

static int header_has_name(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

static struct request *request_copy(const purser_http_request *in)
{
    const char *method = in->method != NULL ? in->method : "GET";
    if (!is_token(method) || (in->body_length > 0 && in->body == NULL))
        return NULL;
    if (in->header_count > 0 && in->headers == NULL)
        return NULL;

    struct request *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->url = copy_string(in->url);
    r->method = copy_string(method);
    r->body = malloc(in->body_length > 0 ? in->body_length : 1);
    if (r->url == NULL || r->method == NULL || r->body == NULL)
        goto fail;
    if (in->body_length > 0)
        memcpy(r->body, in->body, in->body_length);
    r->body_length = in->body_length;

    int has_content_type = 0, has_accept_encoding = 0;
    for (size_t i = 0; i < in->header_count; i++) {
        const char *line = in->headers[i];
        // CR or LF would let one header line inject others, or a second request.
        if (line == NULL || strpbrk(line, "\r\n") != NULL)
            goto fail;
        has_content_type |= header_has_name(line, "Content-Type");
        has_accept_encoding |= header_has_name(line, "Accept-Encoding");
        struct curl_slist *grown = curl_slist_append(r->headers, line);
        if (grown == NULL)
            goto fail;
        r->headers = grown;
    }
    // "Expect:" stops libcurl from waiting for 100-continue on large bodies. An empty
    // "Content-Type:" stops it from inventing application/x-www-form-urlencoded for a
    // body whose type the caller did not state. Identity asks for the body uncoded, so
    // that there is nothing to decode (configure decodes what comes coded anyway), and
    // replaces the list of codings libcurl would offer.
    const char *extra[] = {
        "Expect:",
        has_content_type ? NULL : "Content-Type:",
        has_accept_encoding ? NULL : "Accept-Encoding: identity",
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        if (extra[i] == NULL)
            continue;
        struct curl_slist *grown = curl_slist_append(r->headers, extra[i]);
        if (grown == NULL)
            goto fail;
        r->headers = grown;
    }

    r->connect_timeout_ms = in->connect_timeout_ms;
    r->total_timeout_ms = in->total_timeout_ms;
    r->max_response_bytes = in->max_response_bytes;
    return r;

fail:
    request_free(r);
    return NULL;
}

// ---- libcurl callbacks (engine thread) ----

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
    struct request *r = userdata;
    size_t n = size * count;
    switch (buffer_append(&r->response_body, data, n, r->max_response_bytes)) {
    case 0:
        return n;
    case -1:
        r->too_large = 1;
        return 0; // a short count makes libcurl abort the transfer at once
    default:
        r->out_of_memory = 1;
        return 0;
    }
}

static size_t on_header(char *data, size_t size, size_t count, void *userdata)
{
    struct request *r = userdata;
    size_t n = size * count;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        // Each 1xx response comes before the final one; keep only the last head.
        r->response_headers.length = 0;
        r->headers_complete = 0;
    } else if (r->headers_complete) {
        return n; // chunked or HTTP/2 trailers, not part of the response head
    }
    if (n == 2 && data[0] == '\r' && data[1] == '\n')
        r->headers_complete = 1;
    switch (buffer_append(&r->response_headers, data, n, HEADERS_MAX)) {
    case 0:
        return n;
    case -1:
        r->headers_too_large = 1;
        return 0;
    default:
        r->out_of_memory = 1;
        return 0;
    }
}

// ---- Engine thread ----

static CURLcode configure(struct request *r, CURL *easy)
{
    CURLcode rc = CURLE_OK;
#define SET(option, value)                                                                         \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(easy, option, value);                                            \
    } while (0)

    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_PRIVATE, (void *)r);
    SET(CURLOPT_ERRORBUFFER, r->error);
    SET(CURLOPT_NOSIGNAL, 1L); // signals cannot be aimed at one thread of a Swift process
    SET(CURLOPT_TCP_NODELAY, 1L);
    // The caller checks every hop of a redirect itself, so libcurl must never follow one.
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    // An empty proxy disables proxies outright, so http_proxy and friends in the
    // environment cannot send traffic around the caller's checks.
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOPROXY, "*");
    // purser_url_split rejects credentials; this keeps an unchecked URL from sending them.
    SET(CURLOPT_DISALLOW_USERNAME_IN_URL, 1L);
    // The body the caller gets is the one the upstream meant: libcurl undoes every content
    // and transfer coding it was built with (gzip, deflate; br and zstd where linked), and
    // fails the transfer with CURLE_BAD_CONTENT_ENCODING on any other, so a coded body never
    // reaches a caller that reads it as plain bytes (the gateway's credential scrubber).
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_HTTP_CONTENT_DECODING, 1L);
    SET(CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    SET(CURLOPT_HTTPHEADER, r->headers);
    if (r->connect_timeout_ms > 0)
        SET(CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
    if (r->total_timeout_ms > 0)
        SET(CURLOPT_TIMEOUT_MS, r->total_timeout_ms);

    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)r);

    int head = strcmp(r->method, "HEAD") == 0;
    // A HEAD response announces the size of a body it never sends; it must not count.
    if (!head && r->max_response_bytes > 0) {
        curl_off_t max = r->max_response_bytes > (size_t)INT64_MAX ? INT64_MAX
                                                                  : (curl_off_t)r->max_response_bytes;
        SET(CURLOPT_MAXFILESIZE_LARGE, max);
    }

    if (strcmp(r->method, "GET") == 0) {
        // libcurl's default
    } else if (head) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "POST") == 0) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_length);
        SET(CURLOPT_POSTFIELDS, (const char *)r->body); // lives until the request is freed
    } else {
        SET(CURLOPT_CUSTOMREQUEST, r->method);
        if (r->body_length > 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_length);
            SET(CURLOPT_POSTFIELDS, (const char *)r->body);
        }
    }
#undef SET
    return rc;
}

static void recycle_handle(struct purser_http_engine *e, CURL *easy)
{
    // Reset drops pointers into the request about to be freed but keeps the handle's
    // TLS session cache; connections themselves stay in the multi handle's cache.
    curl_easy_reset(easy);
    if (e->free_count < FREE_HANDLES_MAX)
        e->free_handles[e->free_count++] = easy;
    else
        curl_easy_cleanup(easy);
}

static void list_remove(struct purser_http_engine *e, struct request *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        e->active = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

// Runs the callback exactly once, then frees the request. `stopped` marks requests
// failed by purser_http_engine_destroy, whose partial response must not be mistaken
// for a real one.
static void finish(struct purser_http_engine *e, struct request *r, CURLcode code, int stopped)
{
    long status = 0;
    long request_size = 0;
    curl_off_t pretransfer = 0;
    double total = 0;
    if (r->easy != NULL) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &request_size);
        curl_easy_getinfo(r->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
        curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &total);
    }
    // libcurl only sets the total when it finishes a transfer, not when we end one.
    if (total <= 0 && r->started_ms != 0)
        total = (double)(monotonic_ms() - r->started_ms) / 1000.0;

    purser_http_response response = {0};
    response.curl_code = (int)code;
    // Even an aborted request may have reached the server; retries depend on knowing.
    response.request_sent = pretransfer > 0 || request_size > 0;
    response.total_seconds = total;
    response.headers = "";
    if (stopped) {
        response.error = "engine stopped";
    } else {
        response.status = status;
        response.too_large = r->too_large || code == CURLE_FILESIZE_EXCEEDED;
        response.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        if (r->response_headers.length > 0) {
            response.headers = r->response_headers.data;
            response.headers_length = r->response_headers.length;
        }
        if (r->response_body.length > 0) {
            response.body = (const uint8_t *)r->response_body.data;
            response.body_length = r->response_body.length;
        }
        // libcurl reports our own aborts only as a failed write; say what happened.
        if (code == CURLE_OK)
            response.error = "";
        else if (r->too_large)
            response.error = "response body exceeds max_response_bytes";
        else if (r->headers_too_large)
            response.error = "response headers too large";
        else if (r->out_of_memory)
            response.error = "out of memory buffering the response";
        else if (r->error[0] != '\0')
            response.error = r->error;
        else
            response.error = curl_easy_strerror(code);
    }

    r->callback(r->context, &response);

    if (r->easy != NULL)
        recycle_handle(e, r->easy);
    request_free(r);
}

static void start(struct purser_http_engine *e, struct request *r)
{
    r->prev = r->next = NULL;
    r->easy = e->free_count > 0 ? e->free_handles[--e->free_count] : curl_easy_init();
    if (r->easy == NULL) {
        finish(e, r, CURLE_OUT_OF_MEMORY, 0);
        return;
    }
    CURLcode rc = configure(r, r->easy);
    if (rc != CURLE_OK) {
        finish(e, r, rc, 0);
        return;
    }
    if (curl_multi_add_handle(e->multi, r->easy) != CURLM_OK) {
        finish(e, r, CURLE_FAILED_INIT, 0);
        return;
    }
    r->next = e->active;
    if (e->active != NULL)
        e->active->prev = r;
    e->active = r;

    r->started_ms = monotonic_ms();
    if (r->total_timeout_ms > 0) {
        r->deadline_ms = r->started_ms + r->total_timeout_ms + DEADLINE_GRACE_MS;
        if (e->next_deadline_ms == 0 || r->deadline_ms < e->next_deadline_ms)
            e->next_deadline_ms = r->deadline_ms;
    }
}

static void collect(struct purser_http_engine *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        // msg is invalid once the handle is removed; take what is needed first.
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        char *private_data = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private_data);
        struct request *r = (void *)private_data;
        curl_multi_remove_handle(e->multi, easy);
        list_remove(e, r);
        finish(e, r, code, 0);
    }
}

// libcurl 7.88 does not time out a transfer while it waits in the multi handle's
// pending queue for a connection (CURLMOPT_MAX_HOST_CONNECTIONS): it stays there, past
// its deadline, until a connection frees up. Enforcing the deadline here bounds it.
// Only runs once the earliest known deadline has passed, so the scan stays rare.
static void expire_overdue(struct purser_http_engine *e, int64_t now)
{
    if (e->next_deadline_ms == 0 || now < e->next_deadline_ms)
        return;
    int64_t next_deadline = 0;
    struct request *next;
    for (struct request *r = e->active; r != NULL; r = next) {
        next = r->next;
        if (r->deadline_ms == 0)
            continue;
        if (now < r->deadline_ms) {
            if (next_deadline == 0 || r->deadline_ms < next_deadline)
                next_deadline = r->deadline_ms;
            continue;
        }
        curl_multi_remove_handle(e->multi, r->easy);
        list_remove(e, r);
        snprintf(r->error, sizeof r->error, "Operation timed out after %lld milliseconds",
                 (long long)(now - r->started_ms));
        finish(e, r, CURLE_OPERATION_TIMEDOUT, 0);
    }
    e->next_deadline_ms = next_deadline;
}

static int poll_timeout_ms(const struct purser_http_engine *e)
{
    if (e->next_deadline_ms == 0)
        return POLL_TIMEOUT_MS;
    int64_t wait = e->next_deadline_ms - monotonic_ms();
    if (wait < 0)
        return 0;
    return wait < POLL_TIMEOUT_MS ? (int)wait : POLL_TIMEOUT_MS;
}

static void stop_all(struct purser_http_engine *e, struct request *queued)
{
    while (queued != NULL) {
        struct request *next = queued->next;
        finish(e, queued, CURLE_ABORTED_BY_CALLBACK, 1);
        queued = next;
    }
    while (e->active != NULL) {
        struct request *r = e->active;
        curl_multi_remove_handle(e->multi, r->easy);
        list_remove(e, r);
        finish(e, r, CURLE_ABORTED_BY_CALLBACK, 1);
    }
}

// Fds still watched when the engine stops: each callback hears fd -1, once.
static void stop_watching(struct purser_http_engine *e)
{
    while (e->watch_count > 0) {
        struct watch w = e->watches[--e->watch_count];
        w.on_readable(w.context, -1);
    }
}

static size_t find_watch(const struct purser_http_engine *e, int fd)
{
    for (size_t i = 0; i < e->watch_count; i++)
        if (e->watches[i].fd == fd)
            return i;
    return SIZE_MAX;
}

static int grow_watches(struct purser_http_engine *e)
{
    if (e->watch_count < e->watch_capacity)
        return 0;
    size_t capacity = e->watch_capacity == 0 ? 16 : e->watch_capacity * 2;
    struct watch *watches = realloc(e->watches, capacity * sizeof *watches);
    if (watches == NULL)
        return -1;
    e->watches = watches;
    struct curl_waitfd *wait_fds = realloc(e->wait_fds, capacity * sizeof *wait_fds);
    if (wait_fds == NULL)
        return -1;
    e->wait_fds = wait_fds;
    e->watch_capacity = capacity;
    return 0;
}

// An add that finds no room ends at once (fd -1), as does a second watch of one fd.
static void apply_change(struct purser_http_engine *e, struct watch_change *c)
{
    size_t at = find_watch(e, c->fd);
    if (c->on_readable == NULL && at != SIZE_MAX) {
        struct watch ended = e->watches[at];
        e->watches[at] = e->watches[--e->watch_count];
        ended.on_readable(ended.context, -1);
    } else if (c->on_readable != NULL && at == SIZE_MAX && grow_watches(e) == 0) {
        e->watches[e->watch_count++] = (struct watch){c->fd, c->on_readable, c->context};
    } else if (c->on_readable != NULL) {
        c->on_readable(c->context, -1);
    }
    free(c);
}

static void apply_changes(struct purser_http_engine *e, struct watch_change *c)
{
    while (c != NULL) {
        struct watch_change *next = c->next;
        apply_change(e, c);
        c = next;
    }
}

static unsigned poll_fds(struct purser_http_engine *e)
{
    for (size_t i = 0; i < e->watch_count; i++)
        e->wait_fds[i] = (struct curl_waitfd){.fd = e->watches[i].fd, .events = CURL_WAIT_POLLIN, .revents = 0};
    return (unsigned)e->watch_count;
}

// Level-triggered: a callback that leaves data unread is called again next turn. The
// watches do not change until the next turn's changes, so wait_fds[i] is watches[i].
static void dispatch_readable(struct purser_http_engine *e, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        if (e->wait_fds[i].revents != 0)
            e->watches[i].on_readable(e->watches[i].context, e->watches[i].fd);
    }
}

static void *engine_main(void *arg)
{
    struct purser_http_engine *e = arg;
    running_engine = e;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        struct request *pending = e->queue_head;
        e->queue_head = e->queue_tail = NULL;
        struct watch_change *changes = e->changes_head;
        e->changes_head = e->changes_tail = NULL;
        int stopping = e->stopping;
        pthread_mutex_unlock(&e->lock);

        apply_changes(e, changes);
        // stopping is read under the same lock as the queue and submit refuses work
        // once it is set, so nothing can be queued after this last take.
        if (stopping) {
            stop_all(e, pending);
            stop_watching(e);
            break;
        }
        while (pending != NULL) {
            struct request *next = pending->next;
            start(e, pending);
            pending = next;
        }

        int running;
        curl_multi_perform(e->multi, &running);
        collect(e);
        expire_overdue(e, monotonic_ms());

        // Work queued from this thread (a callback's submit) needs no wakeup: it is taken
        // on the next turn, and the poll only looks.
        pthread_mutex_lock(&e->lock);
        int queued = e->queue_head != NULL || e->changes_head != NULL;
        pthread_mutex_unlock(&e->lock);
        unsigned count = poll_fds(e);
        int timeout = queued ? 0 : poll_timeout_ms(e);
        if (curl_multi_poll(e->multi, e->wait_fds, count, timeout, NULL) != CURLM_OK) {
            // Not expected; pausing keeps a persistent failure from spinning a core.
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
            continue;
        }
        dispatch_readable(e, count);
    }
    free(e->watches);
    free(e->wait_fds);

    for (size_t i = 0; i < e->free_count; i++)
        curl_easy_cleanup(e->free_handles[i]);
    e->free_count = 0;
    curl_multi_cleanup(e->multi);
    e->multi = NULL;
    return NULL;
}

// ---- Public API ----

purser_http_engine *purser_http_engine_create(long max_host_connections)
{
    if (ensure_global_init() != 0)
        return NULL;
    struct purser_http_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    if (pthread_mutex_init(&e->lock, NULL) != 0) {
        free(e);
        return NULL;
    }
    e->multi = curl_multi_init();
    if (e->multi == NULL)
        goto fail;

    // libcurl's default cache is 4 connections per added handle, which shrinks to
    // almost nothing between bursts; keep enough idle connections to reuse.
    long max_connects = 64;
    if (max_host_connections > 0) {
        curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
        if (max_host_connections <= 1024 / 4 && max_host_connections * 4 > max_connects)
            max_connects = max_host_connections * 4;
        else if (max_host_connections > 1024 / 4)
            max_connects = 1024;
    }
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, max_connects);

    // The thread inherits the mask. Process signals (SIGINT, SIGTERM) then go to the
    // threads Swift expects them on, and a SIGPIPE raised by a write to a closed peer
    // stays pending on this thread instead of killing the process (NOSIGNAL stops libcurl
    // from ignoring SIGPIPE itself). Faults stay unblocked so crashes still report.
    sigset_t blocked, previous;
    sigfillset(&blocked);
    sigdelset(&blocked, SIGSEGV);
    sigdelset(&blocked, SIGBUS);
    sigdelset(&blocked, SIGFPE);
    sigdelset(&blocked, SIGILL);
    sigdelset(&blocked, SIGTRAP);
    sigdelset(&blocked, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &blocked, &previous);
    int created = pthread_create(&e->thread, NULL, engine_main, e);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (created != 0)
        goto fail;
    pthread_setname_np(e->thread, "purser-http");
    return e;

fail:
    if (e->multi != NULL)
        curl_multi_cleanup(e->multi);
    pthread_mutex_destroy(&e->lock);
    free(e);
    return NULL;
}

int purser_http_submit(purser_http_engine *engine, const purser_http_request *request,
                       purser_http_callback callback, void *context)
{
    if (engine == NULL || request == NULL || request->url == NULL || callback == NULL)
        return -1;
    struct request *r = request_copy(request);
    if (r == NULL)
        return -1;
    r->callback = callback;
    r->context = context;

    pthread_mutex_lock(&engine->lock);
    if (engine->stopping) {
        pthread_mutex_unlock(&engine->lock);
        request_free(r);
        return -1;
    }
    int was_empty = engine->queue_head == NULL;
    if (was_empty)
        engine->queue_head = r;
    else
        engine->queue_tail->next = r;
    engine->queue_tail = r;
    // A non-empty queue already has a wakeup pending that the thread has not yet
    // answered by taking the queue; the engine's own thread looks at the queue before it
    // polls. Waking under the lock keeps the multi handle alive: destroy cannot set
    // stopping, and so cannot clean it up, until we let go.
    if (was_empty && running_engine != engine)
        curl_multi_wakeup(engine->multi);
    pthread_mutex_unlock(&engine->lock);
    return 0;
}

static int queue_change(purser_http_engine *engine, int fd, purser_http_fd_callback on_readable, void *context)
{
    if (engine == NULL || fd < 0)
        return -1;
    struct watch_change *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    *c = (struct watch_change){.fd = fd, .on_readable = on_readable, .context = context};
    pthread_mutex_lock(&engine->lock);
    if (engine->stopping) {
        pthread_mutex_unlock(&engine->lock);
        free(c);
        return -1;
    }
    if (engine->changes_head == NULL)
        engine->changes_head = c;
    else
        engine->changes_tail->next = c;
    engine->changes_tail = c;
    curl_multi_wakeup(engine->multi);
    pthread_mutex_unlock(&engine->lock);
    return 0;
}

int purser_http_watch(purser_http_engine *engine, int fd, purser_http_fd_callback on_readable, void *context)
{
    return on_readable == NULL ? -1 : queue_change(engine, fd, on_readable, context);
}

int purser_http_unwatch(purser_http_engine *engine, int fd)
{
    return queue_change(engine, fd, NULL, NULL);
}

void purser_http_engine_destroy(purser_http_engine *engine)
{
    if (engine == NULL)
        return;
    pthread_mutex_lock(&engine->lock);
    engine->stopping = 1;
    curl_multi_wakeup(engine->multi);
    pthread_mutex_unlock(&engine->lock);
    pthread_join(engine->thread, NULL);
    pthread_mutex_destroy(&engine->lock);
    free(engine);
}

// ---- URL splitting ----

static int copy_part(char *dst, size_t size, const char *src, int lower)
{
    size_t n = strlen(src);
    if (dst == NULL || n >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        dst[i] = lower ? (char)tolower((unsigned char)src[i]) : src[i];
    dst[n] = '\0';
    return 0;
}

int purser_url_split(const char *url, char *scheme, size_t scheme_size, char *host, size_t host_size,
                     long *port, char *path_and_query, size_t path_size)
{
    if (url == NULL || port == NULL || path_and_query == NULL || ensure_global_init() != 0)
        return -1;
    CURLU *u = curl_url();
    if (u == NULL)
        return -1;

    int result = -1;
    char *user = NULL, *password = NULL, *scheme_part = NULL, *host_part = NULL;
    char *port_part = NULL, *path_part = NULL, *query_part = NULL;
    // No CURLU_NON_SUPPORT_SCHEME: accept exactly what the transfer would accept.
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto done;
    // Credentials in a URL would be sent by libcurl as an Authorization header.
    if (curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER)
        goto done;
    if (curl_url_get(u, CURLUPART_PASSWORD, &password, 0) != CURLUE_NO_PASSWORD)
        goto done;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme_part, 0) != CURLUE_OK)
        goto done;
    // Punycode is the name libcurl resolves, so checks on the host see the same name.
    // libcurl 7.88 converts with the process locale: in the C locale a non-ASCII host
    // fails here, as it would fail the transfer.
    if (curl_url_get(u, CURLUPART_HOST, &host_part, CURLU_PUNYCODE) != CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_PORT, &port_part, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_PATH, &path_part, 0) != CURLUE_OK)
        goto done;
    CURLUcode query_rc = curl_url_get(u, CURLUPART_QUERY, &query_part, 0);
    if (query_rc != CURLUE_OK && query_rc != CURLUE_NO_QUERY)
        goto done;

    char *end;
    long port_number = strtol(port_part, &end, 10);
    if (*port_part == '\0' || *end != '\0' || port_number < 0 || port_number > 65535)
        goto done;

    size_t path_length = strlen(path_part);
    size_t query_length = query_part != NULL ? strlen(query_part) : 0;
    size_t needed = path_length + (query_part != NULL ? 1 + query_length : 0) + 1;
    if (needed > path_size)
        goto done;
    if (copy_part(scheme, scheme_size, scheme_part, 1) != 0 || copy_part(host, host_size, host_part, 1) != 0)
        goto done;

    memcpy(path_and_query, path_part, path_length);
    if (query_part != NULL) {
        path_and_query[path_length] = '?';
        memcpy(path_and_query + path_length + 1, query_part, query_length);
    }
    path_and_query[needed - 1] = '\0';
    *port = port_number;
    result = 0;

done:
    curl_free(user);
    curl_free(password);
    curl_free(scheme_part);
    curl_free(host_part);
    curl_free(port_part);
    curl_free(path_part);
    curl_free(query_part);
    curl_url_cleanup(u);
    return result;
}

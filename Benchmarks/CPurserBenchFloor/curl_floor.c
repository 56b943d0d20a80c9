#include "CPurserBenchFloor.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

// The gateway's engine calls curl_global_init too; pthread_once keeps this side to one call
// however many benchmarks run, and libcurl counts the two callers' inits itself.
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void) { global_result = curl_global_init(CURL_GLOBAL_ALL); }

static int ensure_global_init(void) {
    if (pthread_once(&global_once, global_init) != 0) return -1;
    return global_result == CURLE_OK ? 0 : -1;
}

static size_t discard(char *data, size_t size, size_t count, void *context) {
    (void)data;
    (void)context;
    return size * count;
}

// The options that shape a request's cost are the gateway engine's (no signals, no Nagle,
// no proxy from the environment), so the floor measures the same kind of transfer.
static CURL *new_handle(const char *url) {
    CURL *easy = curl_easy_init();
    if (!easy) return NULL;
    if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "*") != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK) {
        curl_easy_cleanup(easy);
        return NULL;
    }
    return easy;
}

static int status_is_200(CURL *easy) {
    long status = 0;
    return curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Sorts the samples; an even count gets the mean of the two middle ones.
static double median(double *samples, int count) {
    qsort(samples, (size_t)count, sizeof *samples, compare_doubles);
    int mid = count / 2;
    return count % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
}

// The gateway floor, one connection: a single easy handle keeps its connection alive across
// the sequential GETs, as a gateway reusing connections would.
double purser_bench_curl_floor(const char *url, int requests, double *median_us) {
    if (requests < 1 || ensure_global_init() != 0) return -1;
    double *latencies = malloc((size_t)requests * sizeof *latencies);
    CURL *easy = new_handle(url);
    double elapsed = -1;
    if (!latencies || !easy) goto done;
    double start = seconds();
    for (int i = 0; i < requests; i++) {
        double t0 = seconds();
        if (curl_easy_perform(easy) != CURLE_OK || !status_is_200(easy)) goto done;
        latencies[i] = (seconds() - t0) * 1e6;
    }
    elapsed = seconds() - start;
    *median_us = median(latencies, requests);
done:
    if (easy) curl_easy_cleanup(easy);
    free(latencies);
    return elapsed;
}

// The gateway floor under load: `handles` transfers always in flight on one multi handle (as
// the gateway's engine runs them), a finished handle going straight back in for the next GET.
// Each request's latency runs from its handle's (re-)adding to its completion.
double purser_bench_curl_floor_parallel(const char *url, int handles, int requests,
                                        double *median_us) {
    if (handles < 1 || requests < 1 || ensure_global_init() != 0) return -1;
    if (handles > requests) handles = requests;
    double elapsed = -1;
    double *latencies = malloc((size_t)requests * sizeof *latencies);
    double *started_at = calloc((size_t)handles, sizeof *started_at);
    CURL **easy = calloc((size_t)handles, sizeof *easy);
    int *in_multi = calloc((size_t)handles, sizeof *in_multi);
    CURLM *multi = curl_multi_init();
    if (!latencies || !started_at || !easy || !in_multi || !multi) goto done;
    for (int i = 0; i < handles; i++) {
        easy[i] = new_handle(url);
        // The index rides along as the private pointer, so a finished transfer finds its slot.
        if (!easy[i] || curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)(intptr_t)i) != CURLE_OK)
            goto done;
    }

    double start = seconds();
    int issued = 0, finished = 0;
    for (int i = 0; i < handles; i++) {
        started_at[i] = seconds();
        if (curl_multi_add_handle(multi, easy[i]) != CURLM_OK) goto done;
        in_multi[i] = 1;
        issued++;
    }
    while (finished < requests) {
        int running;
        if (curl_multi_perform(multi, &running) != CURLM_OK) goto done;
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(multi, &queued))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *done_easy = msg->easy_handle;
            CURLcode result = msg->data.result; // msg is invalid once the handle is removed
            char *slot = NULL;
            curl_easy_getinfo(done_easy, CURLINFO_PRIVATE, &slot);
            int i = (int)(intptr_t)slot;
            latencies[finished++] = (seconds() - started_at[i]) * 1e6;
            if (result != CURLE_OK || !status_is_200(done_easy)) goto done;
            curl_multi_remove_handle(multi, done_easy);
            in_multi[i] = 0;
            if (issued < requests) {
                started_at[i] = seconds();
                if (curl_multi_add_handle(multi, done_easy) != CURLM_OK) goto done;
                in_multi[i] = 1;
                issued++;
            }
        }
        // A newly added handle sets libcurl's timeout to zero, so this returns at once then.
        if (finished < requests && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
            goto done;
    }
    elapsed = seconds() - start;
    *median_us = median(latencies, requests);
done:
    for (int i = 0; easy && i < handles; i++) {
        if (!easy[i]) continue;
        if (in_multi && in_multi[i]) curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    if (multi) curl_multi_cleanup(multi);
    free(in_multi);
    free(easy);
    free(started_at);
    free(latencies);
    return elapsed;
}

#ifndef CPURSERBENCHFLOOR_H
#define CPURSERBENCHFLOOR_H

/// The floor a spawn benchmark is measured against: `iterations` times, posix_spawn the
/// child at `path` with piped stdin/stdout, write one line, read one line back, reap it.
/// Returns the elapsed seconds, or a negative value on failure.
double purser_bench_floor(const char *path, int iterations);

/// The sandbox benchmark's floor: fork, then in the child unshare(CLONE_NEWNET), setrlimit,
/// exec; one line round trip; reap. Returns the elapsed seconds, or a negative value.
double purser_bench_floor_sandbox(const char *path, int iterations);

/// The ledger benchmark's floor: `transactions` SQLite transactions, each one conditional
/// UPDATE plus one INSERT, WAL with synchronous=FULL. Returns the elapsed seconds.
double purser_bench_sqlite_floor(const char *path, int transactions);

/// The gateway benchmark's floor, one connection: GET `url` `requests` times in sequence on one
/// libcurl easy handle (so the connection is kept alive), discarding the bodies. Returns the
/// elapsed seconds and sets `*median_us` to the median request latency in microseconds, or
/// returns -1 if any request fails or answers other than 200.
double purser_bench_curl_floor(const char *url, int requests, double *median_us);

/// The same under load: `requests` GETs in total through libcurl's multi interface, with
/// `handles` easy handles kept busy (each re-added as soon as its transfer finishes). Returns
/// the elapsed seconds and sets `*median_us` as above, or returns -1 on any failure.
double purser_bench_curl_floor_parallel(const char *url, int handles, int requests,
                                        double *median_us);

#endif

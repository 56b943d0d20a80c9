#ifndef CPURSERBENCHFLOOR_H
#define CPURSERBENCHFLOOR_H

/// The floor a spawn benchmark is measured against: `iterations` times, posix_spawn the
/// child at `path` with piped stdin/stdout, write one line, read one line back, reap it.
/// Returns the elapsed seconds, or a negative value on failure.
double purser_bench_floor(const char *path, int iterations);

/// The ledger benchmark's floor: `transactions` SQLite transactions, each one conditional
/// UPDATE plus one INSERT, WAL with synchronous=FULL. Returns the elapsed seconds.
double purser_bench_sqlite_floor(const char *path, int transactions);

#endif

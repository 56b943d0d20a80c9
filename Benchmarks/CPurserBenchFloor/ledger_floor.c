#include "CPurserBenchFloor.h"

#include <sqlite3.h>
#include <stdio.h>
#include <time.h>

static double seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

// The ledger floor: per transaction, one conditional UPDATE and one INSERT, committed
// with the same durability as the ledger (WAL, synchronous=FULL).
double purser_bench_sqlite_floor(const char *path, int transactions) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return -1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS balance (id INTEGER PRIMARY KEY, available INTEGER NOT NULL);"
                     "CREATE TABLE IF NOT EXISTS moves (id INTEGER PRIMARY KEY AUTOINCREMENT, amount INTEGER, at INTEGER);"
                     "INSERT OR REPLACE INTO balance VALUES (1, 1000000000000);",
                 NULL, NULL, NULL);
    sqlite3_stmt *update, *insert;
    sqlite3_prepare_v2(db, "UPDATE balance SET available = available - ?1 WHERE id = 1 AND available >= ?1", -1, &update, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO moves (amount, at) VALUES (?1, ?2)", -1, &insert, NULL);
    double start = seconds();
    for (int i = 0; i < transactions; i++) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        sqlite3_bind_int64(update, 1, 1);
        sqlite3_step(update);
        sqlite3_reset(update);
        sqlite3_bind_int64(insert, 1, 1);
        sqlite3_bind_int64(insert, 2, i);
        sqlite3_step(insert);
        sqlite3_reset(insert);
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) return -1;
    }
    double elapsed = seconds() - start;
    sqlite3_finalize(update);
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return elapsed;
}

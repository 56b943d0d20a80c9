#!/bin/bash
# What a routine costs the PostgreSQL server through the fleet's queue, statement by
# statement: a private server with pg_stat_statements (otherwise set as the benchmarks'
# PostgresServer: fsync, synchronous_commit and full_page_writes off), a swarm of N cworker
# routines run by `purser run` and then by K `purser serve` processes, and for each run the
# statements by kind (calls and server time per routine), the transactions per routine
# (pg_stat_database) and the server's CPU per routine (its processes, from /proc).
#
#   swift build -c release --product purser
#   Benchmarks/fleet-statements.sh [N [HOSTS...]]     # default: 2000 routines, 1 host
#   IDLE=20 Benchmarks/fleet-statements.sh 0 2          # 2 idle hosts for 20 s: statements/s a host
#
# SERVE_ARGS: more options for each `purser serve` (e.g. "--poll 250ms --heartbeat 1s").
#
# Runs as root (the server then runs as the postgres user) or as a plain user.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2000}
shift || true
hosts=("${@:-1}")
slots_total=8
purser=${PURSER:-$PWD/.build/release/purser}
[ -x "$purser" ] || { echo "missing $purser: swift build -c release --product purser" >&2; exit 1; }
bin=${PURSER_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
work=$(mktemp -d /tmp/purser-statements-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$((20000 + RANDOM % 20000))
cc -O2 -I Benchmarks/CWorkerScan/include Benchmarks/cworker/main.c Benchmarks/CWorkerScan/scan.c -o "$work/cworker"

as_pg "$bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
cat >>"$work/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$work'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.max = 10000
EOF
as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null
postmaster=$(head -1 "$work/data/postmaster.pid")
stop() {
    as_pg "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
psql() { "$bin/psql" -h "$work" -p "$port" -U postgres -XAtq "$@"; }
psql -d postgres -c "CREATE EXTENSION pg_stat_statements"

# CPU seconds of the server: the postmaster's own and its reaped children's, and every
# live child's own.
server_cpu() {
    local tick total=0 pid
    tick=$(getconf CLK_TCK)
    total=$(awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$postmaster/stat")
    for pid in $(pgrep -P "$postmaster"); do
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "scale=6; $total / $tick" | bc
}

job() {
    printf 'team:\n  name: bench\n  budget: { credits: 1000000, time: 100000h, memory: 1024GiB }\n'
    printf 'swarm:\n  name: bench\n  reservation: { credits: 100000, time: 10000h, memory: 512GiB }\n'
    printf '  concurrency: %s\n  onConflict: queue\nroutines:\n' "$slots_total"
    for ((i = 0; i < count; i++)); do
        printf '  - { name: r%s, plugin: cworker, input: %s, estimate: { credits: 0.001, time: 10s, memory: 64MiB } }\n' "$i" "$i"
    done
}

# One run: K serve processes (0: purser run).
measure() {
    local k=$1 db home pids=() xacts_before xacts_after cpu_before cpu_after start end
    db=bench_${k}_$RANDOM$RANDOM
    psql -d postgres -c "CREATE DATABASE $db"
    home=$work/home-$db
    mkdir -p "$home"
    export PURSER_HOME=$home PURSER_LEDGER="host=$work port=$port dbname=$db user=postgres"
    printf 'trusted: true\nreuse: true\n' >"$home/cworker.yaml"
    "$purser" plugin add "$work/cworker" --name cworker --manifest "$home/cworker.yaml" >"$home/plugin.log" 2>&1
    job >"$home/bench.yaml"
    for ((i = 0; i < k; i++)); do
        "$purser" serve --name "h$i" --slots $((slots_total / k)) >"$home/serve-$i.log" 2>&1 &
        pids+=($!)
    done
    if ((k > 0)); then
        until [ "$(psql -d "$db" -c "SELECT count(*) FROM fleet_hosts WHERE state = 'live'" 2>/dev/null || echo 0)" = "$k" ]; do sleep 0.1; done
    fi
    sleep 1
    psql -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
    xacts_before=$(psql -d postgres -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'")
    cpu_before=$(server_cpu)
    # What the busy backends wait on, sampled every 20 ms by one session: lock waits
    # on the swarm's or the team's node row show as Lock:tuple or Lock:transactionid.
    echo "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, 'running') FROM pg_stat_activity
        WHERE datname = '$db' AND state = 'active' AND pid <> pg_backend_pid() \\watch 0.02" |
        psql -d "$db" >"$home/waits" 2>/dev/null &
    local sampler=$!
    start=$(date +%s.%N)
    if ((k == 0)); then
        "$purser" run "$home/bench.yaml" >"$home/run.log" 2>&1
    else
        id=$("$purser" submit "$home/bench.yaml")
        "$purser" watch "$id" >"$home/watch.log" 2>&1
    fi
    end=$(date +%s.%N)
    cpu_after=$(server_cpu)
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    sleep 1.5 # the backends report their counters within a second
    xacts_after=$(psql -d postgres -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'")
    for pid in "${pids[@]}"; do kill -TERM "$pid"; done
    for pid in "${pids[@]}"; do wait "$pid" || echo "serve $pid exited $?" >&2; done
    local what="purser run"
    ((k > 0)) && what="$k serve × $((slots_total / k)) slots"
    echo
    echo "## $what, $count routines: $(echo "scale=1; $count / ($end - $start)" | bc) routines/s," \
        "server CPU $(echo "scale=0; ($cpu_after - $cpu_before) * 1000000 / $count" | bc) µs/routine," \
        "transactions $(echo "scale=2; ($xacts_after - $xacts_before) / $count" | bc)/routine," \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| calls/routine | server µs/routine | mean µs | blocks/call | rows/call | statement |"
    echo "|---|---|---|---|---|---|"
    psql -d postgres -F ' | ' -c "
        SELECT round(s.calls::numeric / $count, 2), round((s.total_exec_time + s.total_plan_time)::numeric * 1000 / $count),
            round(((s.total_exec_time + s.total_plan_time) / s.calls)::numeric * 1000),
            round((s.shared_blks_hit + s.shared_blks_read)::numeric / s.calls, 1), round(s.rows::numeric / s.calls, 2),
            left(regexp_replace(s.query, '\s+', ' ', 'g'), 110)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = '$db' ORDER BY s.calls DESC, s.total_exec_time DESC LIMIT 40" | sed 's/^/| /; s/$/ |/'
    psql -d postgres -c "SELECT 'all statements: ' || round(sum(calls)::numeric / $count, 1) || ' a routine, '
            || round(sum(total_exec_time + total_plan_time)::numeric * 1000 / $count) || ' µs of server time a routine'
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$db'"
    echo
    echo "Busy backends, sampled every 20 ms ($(grep -c . "$home/waits") samples of a backend):"
    echo
    echo "| share | wait |"
    echo "|---|---|"
    grep . "$home/waits" | sort | uniq -c | sort -rn | head -8 |
        awk -v total="$(grep -c . "$home/waits")" '{ printf "| %.1f%% | %s |\n", 100 * $1 / total, $2 }'
}

# K idle serve processes for $IDLE seconds: what each runs a second, by statement.
idle() {
    local k=$1 db home pids=() xacts_before xacts_after span
    span=$(echo "$IDLE + 1.5" | bc)
    db=idle_${k}_$RANDOM$RANDOM
    psql -d postgres -c "CREATE DATABASE $db"
    home=$work/home-$db
    mkdir -p "$home"
    export PURSER_HOME=$home PURSER_LEDGER="host=$work port=$port dbname=$db user=postgres"
    for ((i = 0; i < k; i++)); do
        # shellcheck disable=SC2086
        "$purser" serve --name "h$i" --slots 2 ${SERVE_ARGS:-} >"$home/serve-$i.log" 2>&1 &
        pids+=($!)
    done
    until [ "$(psql -d "$db" -c "SELECT count(*) FROM fleet_hosts WHERE state = 'live'" 2>/dev/null || echo 0)" = "$k" ]; do sleep 0.1; done
    sleep 3 # started, and the backends' counters reported
    psql -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
    xacts_before=$(psql -d postgres -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'")
    sleep "$IDLE"
    sleep 1.5 # the backends report their counters within a second
    xacts_after=$(psql -d postgres -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'")
    echo
    echo "## $k idle serve ${SERVE_ARGS:-}, $IDLE s: $(echo "scale=2; ($xacts_after - $xacts_before) / $span / $k" | bc)" \
        "transactions a second a host (pg_stat_database)"
    echo
    echo "| calls/s a host | statement |"
    echo "|---|---|"
    psql -d postgres -F ' | ' -c "
        SELECT round(s.calls::numeric / $span / $k, 2), left(regexp_replace(s.query, '\s+', ' ', 'g'), 110)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = '$db' AND s.query NOT IN ('BEGIN', 'COMMIT') ORDER BY s.calls DESC LIMIT 20" | sed 's/^/| /; s/$/ |/'
    psql -d postgres -c "SELECT 'statements but BEGIN and COMMIT: ' || round(sum(calls)::numeric / $span / $k, 2) || ' a second a host'
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$db' AND s.query NOT IN ('BEGIN', 'COMMIT')"
    for pid in "${pids[@]}"; do kill -TERM "$pid"; done
    for pid in "${pids[@]}"; do wait "$pid" || echo "serve $pid exited $?" >&2; done
}

if [ -n "${IDLE:-}" ]; then
    for k in "${hosts[@]}"; do idle "$k"; done
    exit 0
fi

echo "fleet-statements: $count routines, PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
psql -d postgres -c "SELECT 'server: fsync ' || current_setting('fsync') || ', synchronous_commit ' || current_setting('synchronous_commit')
    || ', full_page_writes ' || current_setting('full_page_writes')"
[ -n "${SKIP_RUN:-}" ] || measure 0   # SKIP_RUN=1: the serve runs alone (to profile them)
for k in "${hosts[@]}"; do measure "$k"; done

#!/usr/bin/env bash
# A fleet on one machine: a private PostgreSQL, three `purser serve` hosts, a swarm of 300
# routines submitted and watched, and one host killed while it runs. Run it after the
# README's first command (it needs the release build and Debian's postgresql package).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PURSER_BIN:-$PWD/.build/release}   # PURSER_BIN: another build's products (the tests use the debug one)
[ -x "$bin/purser" ] && [ -x "$bin/wordcount" ] || { echo "build first: bash examples/quickstart.sh" >&2; exit 1; }
pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pg" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }

work=$(mktemp -d /tmp/purser-fleet-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
hosts=()
cleanup() {
    for pid in "${hosts[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$pg/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== a private PostgreSQL: its own port, its socket in $work"
port=$((20000 + RANDOM % 20000))
as_pg "$pg/initdb" -D "$work/data" -U postgres -A trust --no-sync >/dev/null
printf "listen_addresses = ''\nport = %s\nunix_socket_directories = '%s'\n" "$port" "$work" >>"$work/data/postgresql.conf"
as_pg "$pg/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null
export PURSER_LEDGER="host=$work port=$port dbname=postgres user=postgres"
export PURSER_HOME=$work/home
mkdir -p "$PURSER_HOME"

echo "== a plugin registered in the store: every host runs it from there"
"$bin/purser" plugin add "$bin/wordcount" --name wordcount

echo "== three hosts"
for h in a b c; do
    "$bin/purser" serve --name "$h" --slots 2 --heartbeat 500ms --dead-after 3s 2>"$work/serve-$h.log" &
    hosts+=($!)
done

{
    printf 'team: { name: fleet-demo, budget: { credits: 1000, workers: 16, memory: 16GiB } }\n'
    printf 'swarm:\n  name: words\n  reservation: { credits: 500, time: 10h, memory: 4GiB }\n  concurrency: 6\n'
    printf 'routines:\n'
    for i in $(seq 1 300); do
        printf '  - { name: count-%s, plugin: wordcount, input: { text: "routine %s of a fleet" }, estimate: { credits: 1, time: 10s, memory: 128MiB } }\n' "$i" "$i"
    done
} >"$work/words.yaml"

echo "== submit, then watch the swarm to its end; host a is killed (-9) a second in"
id=$("$bin/purser" submit "$work/words.yaml")
echo "swarm $id"
(sleep 1 && kill -9 "${hosts[0]}" && echo "-- killed host a") &
status=0
"$bin/purser" watch "$id" --json >"$work/report.json" || status=$?
python3 - "$work/report.json" <<'EOF'
import collections, json, sys
report = json.load(open(sys.argv[1]))
ran = collections.Counter(r["host"] for r in report["routines"])
lost = [a for a in report["attempts"] if a["verdict"] == "host_lost"]
print(f"verdict {report['verdict']}: {len(report['routines'])} routines, by host {dict(sorted(ran.items()))}")
print(f"{len(lost)} attempt{'' if len(lost) == 1 else 's'} lost with host a, run again on another host")
print(f"used {report['used']} credits of the swarm's 500, returned {report['returned']}")
EOF
echo
"$bin/purser" hosts
"$bin/purser" ledger verify
exit $status

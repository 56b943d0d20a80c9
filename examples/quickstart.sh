#!/usr/bin/env bash
# The README's first command: set up a fresh machine, build Purser, and run an example
# routine under a reservation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
swift build -c release
bin=.build/release
echo
echo "== purser doctor: the sandbox layers this host offers (plugins run untrusted by default)"
"$bin/purser" doctor
echo
echo "== purser exec: wordcount under a reservation of 2 credits, 10 s and 128 MiB"
"$bin/purser" exec "$bin/wordcount" --input-file examples/wordcount-input.json \
  --credits 2 --time 10s --memory 128MiB
echo
echo "== a team budget: reserve from it, run, return what was not used"
"$bin/purser" team show demo >/dev/null 2>&1 || "$bin/purser" team create demo --credits 100 --workers 4
"$bin/purser" exec "$bin/wordcount" --team demo --credits 5 --input '"reserve execute return"'
"$bin/purser" team show demo
"$bin/purser" ledger verify
echo
echo "== the same protocol from a Python plugin"
"$bin/purser" exec Plugins/shout/shout.py --input '{"text":"budgets are for keeping"}' --credits 1 --time 5s
echo
echo "== the gateway: a worker reaches an HTTP API only through the supervisor, which adds"
echo "   the credential, enforces limits and charges the call (local example server)"
work=$(mktemp -d)
python3 Tests/Fixtures/httpd/httpd.py --port 0 --log "$work/requests.log" --ready-file "$work/port" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
sed "s/8931/$(cat "$work/port")/" examples/gateway.yaml > "$work/gateway.yaml"
export EXAMPLE_TOKEN=example-secret-do-not-leak
"$bin/purser" gateway check "$work/gateway.yaml"
"$bin/purser" exec "$bin/fetch" --gateway "$work/gateway.yaml" --tools example --credits 1 \
  --input '{"integration":"example","path":"/usage","query":{"tokens":"1200"},"repeat":2}'
"$bin/purser" gateway status
echo
echo "== a swarm from a job file: fan-out, fan-in, a gateway call; reserved, used, returned per tier"
"$bin/purser" plugin add "$bin/wordcount"
sed "s#\\.\\./\\.build#$PWD/.build#" examples/swarm.yaml > "$work/swarm.yaml"
"$bin/purser" run "$work/swarm.yaml" --events "$work/events.ndjson"
echo "($(wc -l < "$work/events.ndjson") events in the NDJSON stream)"

#!/usr/bin/env bash
# The README's first command: set up a fresh machine, build Purser, and run an example
# routine under a reservation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
swift build -c release
bin=.build/release
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

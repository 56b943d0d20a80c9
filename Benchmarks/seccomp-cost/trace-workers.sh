#!/bin/sh
# The syscalls real workers make: runs the echo worker of each runtime (C, Swift, Python,
# Java, Node) once through `purser exec --trusted` under strace -f, and prints each one's
# distinct syscalls and their union (compare with allow_list.h).
# Usage, from the repository root after `swift build`: Benchmarks/seccomp-cost/trace-workers.sh
set -e
root=$(pwd); build=$root/.build/debug; out=$(mktemp -d)
cat > "$out/traced.sh" <<'WRAP'
#!/bin/sh
exec /usr/bin/strace -f -qq -o "$TRACE_OUT" -- $TRACE_WORKER
WRAP
chmod +x "$out/traced.sh"
for spec in "c:$build/cworker" "swift:$build/wordcount" "python:$root/Plugins/shout/shout.py" \
            "java:$root/Tests/Fixtures/java/echo-java" "node:$root/Benchmarks/seccomp-cost/node-echo.js"; do
    name=${spec%%:*}; path=${spec#*:}
    PURSER_HOME=$out/home "$build/purser" exec "$out/traced.sh" --trusted --time 60s --input '{"text":"one two"}' \
        --env "TRACE_WORKER=$path" --env "TRACE_OUT=$out/$name.txt" >/dev/null 2>&1
    grep -oE '^[0-9]+ +[a-z0-9_]+\(' "$out/$name.txt" | sed -E 's/^[0-9]+ +//; s/\($//' | sort -u > "$out/$name.set"
    echo "$name: $(grep -cE '^[0-9]+ +[a-z0-9_]+\(' "$out/$name.txt") calls, $(wc -l < "$out/$name.set") distinct"
done
sort -u "$out"/*.set > "$out/union"
echo "union: $(wc -l < "$out/union")"
tr '\n' ' ' < "$out/union"; echo

#!/usr/bin/env python3
"""Usage: supervisor-cpu.py BUILD_DIR PROCESSES MS (e.g. .build/debug 32 5000).

Runs `purser exec` on the hostile worker's deniedloop mode and prints the supervisor's own
CPU (utime+stime of the purser process, its reaped workers not counted), read from
/proc/PID/stat while it is a zombie (waitid WNOWAIT), plus the run's report."""
import json, os, subprocess, sys, tempfile
build = sys.argv[1]; procs = sys.argv[2]; ms = sys.argv[3]
home = tempfile.mkdtemp(prefix="purser-cpu-")
env = dict(os.environ, PURSER_HOME=home)
cmd = [build + "/purser", "exec", build + "/hostile", "--json", "--time", "60s", "--input", '"x"',
       "--env", "HOSTILE_MODE=deniedloop", "--env", "HOSTILE_PROCS=" + procs, "--env", "HOSTILE_LOOP_MS=" + ms]
p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE)
out = p.stdout.read()
os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
tick = os.sysconf("SC_CLK_TCK")
utime, stime, cutime, cstime = (int(fields[i]) / tick for i in (11, 12, 13, 14))
p.wait()
report = json.loads(out)
print(f"supervisor own CPU: {utime + stime:.2f} s (user {utime:.2f}, sys {stime:.2f}); its workers: {cutime + cstime:.2f} s")
print("worker output:", json.dumps(report.get("output")))
sb = report.get("sandbox", {})
print("sandbox:", {k: sb.get(k) for k in ("deniedSyscalls", "deniedCalls", "deniedCallsCapped")}, "wallMs", report["usage"]["wallMs"])

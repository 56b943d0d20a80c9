import Foundation

/// Stopping a test cluster's server: at `stop()`, at exit, and from a watchdog when the
/// test process is killed.
extension PostgresServer {
    /// Stops the postmaster `pid`, or the one `directory`'s postmaster.pid names, then
    /// removes `directory`.
    static func stop(pid: Int32?, directory: String) {
        let named = (try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.flatMap { Int32($0) }
        // The file first: a restart leaves the pid taken at start stale.
        if let pid = named ?? pid, isPostmaster(pid, directory) {
            kill(pid, SIGQUIT)
            // The postmaster is not our child (pg_ctl detached it): poll until it is gone.
            for _ in 0..<500 where kill(pid, 0) == 0 { usleep(10_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether `pid` is still this cluster's postmaster (and not a reused pid).
    static func isPostmaster(_ pid: Int32, _ directory: String) -> Bool {
        guard let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
        return String(decoding: command, as: UTF8.self).contains(directory)
    }

    /// A detached shell that stops the server and removes its directory if this process
    /// dies without running its atexit handlers (killed, or crashed), even part way through
    /// starting it: a pg_ctl it started may still be bringing the server up, so it looks
    /// for the postmaster for a few seconds. Once `stop()` has removed the directory, it
    /// just exits.
    static func watch(directory: String) {
        let script = """
            stop() {
                pid=$(head -n 1 '\(directory)/data/postmaster.pid' 2>/dev/null)
                [ -n "$pid" ] && grep -q '\(directory)' /proc/$pid/cmdline 2>/dev/null && kill -QUIT "$pid"
            }
            while [ -e /proc/\(getpid()) ]; do sleep 1; done
            for attempt in 1 2 3 4 5; do
                [ -d '\(directory)' ] || exit 0
                stop
                sleep 1
            done
            rm -rf '\(directory)'
            """
        _ = try? Spawn.start("/bin/sh", ["-c", script], directory: "/", stdout: "/dev/null")
    }
}

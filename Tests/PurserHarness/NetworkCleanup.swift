import Foundation

/// Deleting `NetworkHosts`' namespaces: at `tearDown()`, from a watchdog when the test
/// process is killed, and in a later run's sweep of what an earlier one left.
enum NetworkCleanup {
    /// Kills every process in `namespaces` (until none is left: a dying one may have just
    /// forked), then deletes them; a namespace that is not there is skipped.
    static func delete(namespaces: [String]) {
        for _ in 0..<100 {
            let pids = processes(in: namespaces)
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(10_000)
        }
        for namespace in namespaces where FileManager.default.fileExists(atPath: "/run/netns/" + namespace) {
            do {
                try NetworkHosts.ip("netns", "delete", namespace)
            } catch {
                FileHandle.standardError.write(Data("NetworkHosts: \(error)\n".utf8))
            }
        }
    }

    /// The processes whose network namespace is one of `namespaces`, as `ip netns pids`
    /// finds them: by the namespace file's inode, through every /proc/<pid>/ns/net.
    static func processes(in namespaces: [String]) -> [pid_t] {
        let wanted = Set(namespaces.compactMap { inode("/run/netns/" + $0) })
        guard !wanted.isEmpty else { return [] }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard let pid = pid_t(entry), pid != getpid(), let node = inode("/proc/\(entry)/ns/net") else { return nil }
            return wanted.contains(node) ? pid : nil
        }
    }

    private struct Inode: Hashable {
        let device: UInt64
        let number: UInt64
    }

    private static func inode(_ path: String) -> Inode? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Inode(device: UInt64(info.st_dev), number: UInt64(info.st_ino))
    }

    /// Deletes the namespaces named `prefix`<pid>-… whose process `pid` is gone.
    static func sweep(prefix: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        let orphans = names.filter { name in
            guard name.hasPrefix(prefix), let pid = pid_t(name.dropFirst(prefix.count).prefix { $0 != "-" }) else {
                return false
            }
            return pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
        }
        guard !orphans.isEmpty else { return }
        FileHandle.standardError.write(Data("NetworkHosts: deleting \(orphans.count) namespaces of dead runs: \(orphans)\n".utf8))
        delete(namespaces: orphans)
    }

    /// A detached shell that deletes `namespaces` if this process dies before it does (killed,
    /// or crashed), as `tearDown()` would; it stops once `last`, deleted last, is gone.
    static func watch(namespaces: [String], last: String) {
        let list = namespaces.joined(separator: " ")
        let script = """
            while [ -e /proc/\(getpid()) ] && [ -e /run/netns/\(last) ]; do sleep 1; done
            [ -e /run/netns/\(last) ] || exit 0
            for namespace in \(list); do
                for attempt in 1 2 3 4 5; do
                    pids=$('\(NetworkHosts.ipTool)' netns pids "$namespace" 2>/dev/null)
                    [ -z "$pids" ] && break
                    kill -9 $pids
                    sleep 0.2
                done
                '\(NetworkHosts.ipTool)' netns delete "$namespace"
            done
            """
        guard let pid = try? Spawn.start("/bin/sh", ["-c", script], directory: "/", stdout: "/dev/null") else { return }
        // Reaped when it ends (after a tearDown), so that it leaves no zombie meanwhile.
        Thread { _ = try? Spawn.wait(pid) }.start()
    }
}

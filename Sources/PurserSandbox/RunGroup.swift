import CPurserSys
import Glibc
import Synchronization

/// Holds every process of one run together, so that all of them can be killed however
/// they try to leave (setsid, double fork), and so that "is anything of this run left?"
/// has an answer.
protocol RunGroup: Sendable {
    /// What the run's report says about its containment.
    var description: String { get }
    /// An open cgroup.procs the child joins before exec, or -1.
    var procsFD: Int32 { get }
    func killAll(leader: pid_t)
    func isEmpty(leader: pid_t) -> Bool
    /// Releases the group once it is empty.
    func remove()
}

/// A cgroup v2 directory per run; `cgroup.kill` ends the whole tree in one write.
final class CgroupV2Group: RunGroup {
    let path: String
    let procsFD: Int32
    var description: String { "cgroup2:\(path)" }

    init(base: String, name: String) throws(SandboxError) {
        let path = base + "/" + name
        do {
            try syscall("mkdir \(path)") { mkdir(path, 0o755) }
            procsFD = try syscall("open \(path)/cgroup.procs") { open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC) }
        } catch {
            _ = rmdir(path)
            throw SandboxError(code: .cgroupFailed, errno: error.errno, message: error.message)
        }
        self.path = path
    }

    func killAll(leader: pid_t) {
        if !writeFile(path + "/cgroup.kill", "1") {
            // Kernels before 5.14 have no cgroup.kill: kill each member, repeatedly,
            // since a member may fork while we read the list.
            for _ in 0..<100 {
                let pids = members()
                if pids.isEmpty { break }
                for pid in pids { kill(pid, SIGKILL) }
            }
        }
    }

    func isEmpty(leader: pid_t) -> Bool {
        guard let events = readSmallFile(path + "/cgroup.events") else { return true }
        return events.contains("populated 0")
    }

    func remove() {
        close(procsFD)
        // rmdir fails with EBUSY until the last member is reaped by its parent.
        for attempt in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            if attempt % 20 == 0 { killAll(leader: 0) }
            usleep(5_000)
        }
    }

    private func members() -> [pid_t] {
        guard let text = readSmallFile(path + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Where this supervisor may create run groups, or nil when cgroup v2 is not writable here.
    static let base: String? = findBase()

    private static func findBase() -> String? {
        guard let mountinfo = readSmallFile("/proc/self/mountinfo", limit: 1 << 20),
            let cgroups = readSmallFile("/proc/self/cgroup")
        else { return nil }
        var mountPoint: String?
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { mountPoint = String(fields[4]); break }
        }
        guard let mountPoint else { return nil }
        var own = ""
        for line in cgroups.split(separator: "\n") where line.hasPrefix("0::") {
            own = String(line.dropFirst(3))
        }
        let base = mountPoint + (own == "/" ? "" : own) + "/purser"
        if mkdir(base, 0o755) != 0 && errno != EEXIST { return nil }
        // Probe: can we create and remove a group here?
        let probe = base + "/probe-\(getpid())"
        guard mkdir(probe, 0o755) == 0 else { return nil }
        let hasKill = access(probe + "/cgroup.kill", W_OK) == 0
        rmdir(probe)
        return hasKill ? base : nil
    }
}

/// The fallback: the worker leads its own process group, and the supervisor, as child
/// subreaper, inherits and kills whatever escapes that group by setsid.
final class ProcessGroupRunGroup: RunGroup {
    var procsFD: Int32 { -1 }
    var description: String { "process-group" }

    static let becameSubreaper: Bool = purser_set_child_subreaper() == 0

    func killAll(leader: pid_t) {
        if leader > 0 { kill(-leader, SIGKILL) }
        OrphanSweeper.sweep()
    }

    func isEmpty(leader: pid_t) -> Bool {
        leader <= 0 || (kill(-leader, 0) != 0 && errno == ESRCH)
    }

    func remove() {}
}

/// Live worker leaders, so that the sweep can tell a worker from an orphan it left.
enum OrphanSweeper {
    static let workers = Mutex<Set<pid_t>>([])

    static func register(_ pid: pid_t) { workers.withLock { _ = $0.insert(pid) } }
    static func unregister(_ pid: pid_t) { workers.withLock { _ = $0.remove(pid) } }

    /// Kills and reaps every child of the supervisor that is not a live worker: with the
    /// subreaper bit set, those are processes that outlived the worker that made them.
    static func sweep() {
        let me = getpid()
        for _ in 0..<50 {
            let known = workers.withLock { $0 }
            let orphans = childrenOf(me).filter { !known.contains($0) }
            if orphans.isEmpty { return }
            for pid in orphans {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
            }
        }
    }

    private static func childrenOf(_ parent: pid_t) -> [pid_t] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var result: [pid_t] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = pid_t(name), let stat = readSmallFile("/proc/\(pid)/stat") else { continue }
            // The command name may hold spaces and parentheses: parse after the last ')'.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == parent { result.append(pid) }
        }
        return result
    }
}

func makeRunGroup(_ containment: Containment, name: String) throws(SandboxError) -> any RunGroup {
    if containment == .automatic, let base = CgroupV2Group.base {
        return try CgroupV2Group(base: base, name: name)
    }
    _ = ProcessGroupRunGroup.becameSubreaper
    return ProcessGroupRunGroup()
}

func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

@discardableResult
func writeFile(_ path: String, _ text: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return text.withCString { write(fd, $0, strlen($0)) } == text.utf8.count
}

/// A cgroup v1 memory group per run: the run's memory limit, its true peak and whether
/// the OOM killer acted. (cgroup v2's memory controller comes with the full sandbox.)
final class MemoryCgroup: Sendable {
    let path: String
    let procsFD: Int32
    var description: String { "memory-cgroup1:\(path)" }

    private init(path: String, procsFD: Int32) {
        self.path = path
        self.procsFD = procsFD
    }

    static func make(name: String, limitBytes: UInt64?) -> MemoryCgroup? {
        guard let base else { return nil }
        let path = base + "/" + name
        guard mkdir(path, 0o755) == 0 else { return nil }
        if let limitBytes {
            writeFile(path + "/memory.limit_in_bytes", "\(limitBytes)")
            writeFile(path + "/memory.memsw.limit_in_bytes", "\(limitBytes)")  // no swap past the limit
        }
        let fd = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            rmdir(path)
            return nil
        }
        return MemoryCgroup(path: path, procsFD: fd)
    }

    func peakBytes() -> Int64 {
        Int64(readSmallFile(path + "/memory.max_usage_in_bytes")?.trimmingNewline() ?? "") ?? 0
    }

    func oomKills() -> Int {
        guard let text = readSmallFile(path + "/memory.oom_control") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count)) ?? 0
        }
        return 0
    }

    func remove() {
        close(procsFD)
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(5_000)
        }
    }

    static let base: String? = {
        guard let mountinfo = readSmallFile("/proc/self/mountinfo", limit: 1 << 20),
            let cgroups = readSmallFile("/proc/self/cgroup")
        else { return nil }
        var mountPoint: String?
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup "),
                halves[1].split(separator: " ").last?.split(separator: ",").contains("memory") == true
            else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { mountPoint = String(fields[4]) }
        }
        guard let mountPoint else { return nil }
        var own = ""
        for line in cgroups.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[1].split(separator: ",").contains("memory") { own = String(parts[2]) }
        }
        let base = mountPoint + (own == "/" ? "" : own) + "/purser"
        if mkdir(base, 0o755) != 0 && errno != EEXIST { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()
}

extension String {
    func trimmingNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}

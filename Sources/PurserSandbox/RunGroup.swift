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

/// The fallback where no cgroup can be made. The worker leads its own process group and
/// is a child subreaper, so that whatever its descendants do (setsid, double fork) they
/// stay in its tree while it lives. `snapshot` records that tree when the run starts to
/// end; `killAll` kills the group and every recorded process. A descendant that leaves
/// after the last snapshot, by outliving a worker that exits on its own, can escape:
/// this is why cgroups come first.
final class ProcessGroupRunGroup: RunGroup {
    var procsFD: Int32 { -1 }
    var description: String { "process-group" }
    private let known = Mutex<[pid_t: UInt64]>([:])

    func snapshot(leader: pid_t) {
        let found = ProcessTable.descendants(of: leader)
        known.withLock { $0.merge(found) { old, _ in old } }
    }

    func killAll(leader: pid_t) {
        if leader > 0 {
            snapshot(leader: leader)
            kill(-leader, SIGKILL)
        }
        for (pid, started) in known.withLock({ $0 }) where ProcessTable.startTime(of: pid) == started {
            kill(pid, SIGKILL)
        }
    }

    func isEmpty(leader: pid_t) -> Bool {
        let groupGone = leader <= 0 || (kill(-leader, 0) != 0 && errno == ESRCH)
        return groupGone && known.withLock({ $0 }).allSatisfy { ProcessTable.startTime(of: $0.key) != $0.value }
    }

    func remove() {}
}

/// Reads /proc; works without CONFIG_PROC_CHILDREN.
enum ProcessTable {
    struct Entry {
        let pid: pid_t
        let parent: pid_t
        let state: Character
        let startTime: UInt64
    }

    static func entry(_ pid: pid_t) -> Entry? {
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let parent = pid_t(fields[1]), let start = UInt64(fields[19]),
            let state = fields[0].first
        else { return nil }
        return Entry(pid: pid, parent: parent, state: state, startTime: start)
    }

    /// The start time identifies a process across pid reuse; nil once it is gone or a zombie.
    static func startTime(of pid: pid_t) -> UInt64? {
        guard let entry = entry(pid), entry.state != "Z", entry.state != "X" else { return nil }
        return entry.startTime
    }

    static func descendants(of root: pid_t) -> [pid_t: UInt64] {
        var children: [pid_t: [Entry]] = [:]
        for entry in all() { children[entry.parent, default: []].append(entry) }
        var result: [pid_t: UInt64] = [:]
        var queue = [root]
        while let next = queue.popLast() {
            for child in children[next] ?? [] where result[child.pid] == nil {
                result[child.pid] = child.startTime
                queue.append(child.pid)
            }
        }
        return result
    }

    static func all() -> [Entry] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var result: [Entry] = []
        while let item = readdir(dir) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let pid = pid_t(name), let entry = entry(pid) { result.append(entry) }
        }
        return result
    }
}

func makeRunGroup(_ containment: Containment, name: String) throws(SandboxError) -> any RunGroup {
    if containment == .automatic, let base = CgroupV2Group.base {
        return try CgroupV2Group(base: base, name: name)
    }
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

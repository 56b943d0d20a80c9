import Glibc
import Synchronization

/// The fallback where no cgroup can be made. The worker leads its own process group and
/// is a child subreaper, so that whatever its descendants do (setsid, double fork) they
/// stay in its tree while it lives. `snapshot` records that tree when the run starts to
/// end; `killAll` kills the group and every recorded process. A descendant that leaves
/// after the last snapshot, by outliving a worker that exits on its own, can escape:
/// this is why cgroups come first.
///
/// Where the memory and pids controllers are on cgroup v2, a process's limits can only be
/// in its one v2 group: the worker still joins a group of its own, `limits`, which holds
/// them and nothing else (it kills nothing until the run is over).
final class ProcessGroupRunGroup: RunGroup {
    let limits: CgroupV2Group?
    var procsFD: Int32 { limits?.procsFD ?? -1 }
    var description: String { "process-group" + (limits.map { ", limits in \($0.description)" } ?? "") }
    private let known = Mutex<[pid_t: UInt64]>([:])

    init(limits: CgroupV2Group? = nil) {
        self.limits = limits
    }

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

    func release() { limits?.release() }
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

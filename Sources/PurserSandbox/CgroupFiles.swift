import Glibc
import Logging
import Synchronization

/// Where this supervisor may make cgroups of one hierarchy, found from /proc/self.
enum CgroupHierarchy {
    /// The mount point of the cgroup2 hierarchy, or of the v1 hierarchy with `controller`.
    static func mountPoint(controller: String?) -> String? {
        guard let mountinfo = readSmallFile("/proc/self/mountinfo", limit: 1 << 20) else { return nil }
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let source = halves[1].split(separator: " ")
            let matches: Bool
            if let controller {
                matches = source.first == "cgroup" && source.last?.split(separator: ",").contains(Substring(controller)) == true
            } else {
                matches = source.first == "cgroup2"
            }
            let fields = halves[0].split(separator: " ")
            if matches && fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// This process's own group in that hierarchy ("0::" for cgroup2).
    static func ownPath(controller: String?) -> String? {
        guard let cgroups = readSmallFile("/proc/self/cgroup") else { return nil }
        for line in cgroups.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let found = controller.map { parts[1].split(separator: ",").contains(Substring($0)) } ?? (parts[0] == "0")
            if found { return String(parts[2]) }
        }
        return nil
    }

    /// `<mount><own group>/purser`, created if need be, with what dead supervisors left
    /// there killed and removed (`AbandonedGroups`); nil where it cannot be made. For
    /// cgroup2, the own group is the one that delegates (see `CgroupDelegation`).
    static func base(controller: String?) -> String? {
        guard let mount = mountPoint(controller: controller), let own = ownPath(controller: controller) else { return nil }
        let group = controller == nil ? CgroupDelegation.delegatingGroup(mount: mount, own: own) : mount + (own == "/" ? "" : own)
        let base = group + "/purser"
        if mkdir(base, 0o755) != 0 && errno != EEXIST { return nil }
        AbandonedGroups.clear(in: base)
        return base
    }

    private static let counter = Atomic<Int>(0)

    /// `s<owner>-<n>`, the owner being this supervisor's `SupervisorIdentity.local` (its pid
    /// alone where /proc cannot tell who it is: such groups are never taken for a dead one's).
    static func uniqueName() -> String {
        "s\(owner)-\(counter.add(1, ordering: .relaxed).newValue)"
    }

    private static let owner = SupervisorIdentity.current?.local ?? "\(getpid())"
}

/// Empty groups kept for the next run: making and removing a cgroup (a memory cgroup most
/// of all) costs the kernel more than the rest of a short run's setup.
/// The life of a pooled cgroup v1 run group (memory, pids, cpuacct): its directory and open
/// `cgroup.procs`, reused from a pool or made anew, and given back or removed. A step's
/// group is made inside its caller's (`base` is then the caller's group) and never pooled.
enum PooledGroup {
    /// `reused`'s directory and fd, or a new directory under `base`; `configure` sets the
    /// group up, and a group it fails for is removed.
    static func open(
        base: String, reused: (path: String, procsFD: Int32)?, configure: (String) -> Bool
    ) -> (path: String, procsFD: Int32)? {
        let path = reused?.path ?? base + "/" + CgroupHierarchy.uniqueName()
        if reused == nil && mkdir(path, 0o755) != 0 { return nil }
        let configured = configure(path)
        let fd = reused?.procsFD ?? Glibc.open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0, configured else {
            if fd >= 0 { close(fd) }
            removeDirectory(path)
            return nil
        }
        return (path, fd)
    }

    /// An empty group goes back to its pool when `giveBack` takes it; any other is closed
    /// and removed.
    static func release(path: String, procsFD: Int32, giveBack: () -> Bool) {
        let empty = readSmallFile(path + "/cgroup.procs")?.isEmpty ?? true
        if empty && giveBack() { return }
        close(procsFD)
        removeDirectory(path)
    }
}

/// Holds a group's release until the groups made inside it (its steps') are gone: a cgroup
/// with children can be neither removed nor given to another run.
final class ChildGroups: Sendable {
    private struct State {
        var count = 0
        var release: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func add() { state.withLock { $0.count += 1 } }

    /// A child group was removed: the last one lets a waiting release go.
    func remove() {
        let release = state.withLock { state -> (@Sendable () -> Void)? in
            state.count -= 1
            guard state.count == 0 else { return nil }
            defer { state.release = nil }
            return state.release
        }
        release?()
    }

    /// Runs `body` now, or once the last child group is removed; then tells `parent` (the
    /// caller's group, for a step's) that this one is gone.
    func release(then parent: ChildGroups?, _ body: @escaping @Sendable () -> Void) {
        let whole: @Sendable () -> Void = {
            body()
            parent?.remove()
        }
        let now = state.withLock { state -> Bool in
            guard state.count > 0 else { return true }
            state.release = whole
            return false
        }
        if now { whole() }
    }
}

/// A run's cgroup directory and its open `cgroup.procs`.
protocol CgroupDirectory: AnyObject, Sendable {
    var path: String { get }
    var procsFD: Int32 { get }
}

final class GroupPool<Group: AnyObject & Sendable>: Sendable {
    private let idle = Mutex<[Group]>([])
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func take() -> Group? { idle.withLock { $0.popLast() } }

    /// Removes the idle groups (a supervisor about to exit leaves none behind).
    func removeIdle() where Group: CgroupDirectory {
        for group in idle.withLock({ idle in defer { idle = [] }; return idle }) {
            close(group.procsFD)
            removeTree(group.path)
        }
    }

    /// False when the pool is full: the caller then removes the group.
    func give(_ group: Group) -> Bool {
        idle.withLock { idle in
            guard idle.count < capacity else { return false }
            idle.append(group)
            return true
        }
    }
}

func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return readAll(limit: limit) { buffer, _ in read(fd, buffer.baseAddress, buffer.count) }
}

/// The whole file from its start, through an fd kept open (as `memory.peak`'s must be).
func readSmallFile(fd: Int32, limit: Int = 64 * 1024) -> String? {
    guard fd >= 0 else { return nil }
    return readAll(limit: limit) { buffer, offset in pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
}

/// Reads chunks (`next` gets the buffer and how much is read so far) until end of file, an
/// error, or `limit`.
private func readAll(limit: Int, _ next: (UnsafeMutableRawBufferPointer, Int) -> Int) -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { next($0, bytes.count) }
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

/// Removes an empty group and the empty groups inside it, deepest first (a group left by a
/// supervisor that died may still hold its worker's leaf or its steps' groups).
func removeTree(_ path: String) {
    for entry in directoryEntries(path) where entry.isDirectory && entry.name != "." && entry.name != ".." {
        removeTree(path + "/" + entry.name)
    }
    if rmdir(path) != 0 && errno != ENOENT { logLeftBehind(path, errno: errno) }
}

/// The names in a directory (with "." and ".."); none if it cannot be read.
func directoryEntries(_ path: String) -> [(name: String, isDirectory: Bool)] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var entries: [(name: String, isDirectory: Bool)] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        entries.append((name, entry.pointee.d_type == UInt8(DT_DIR)))
    }
    return entries
}

/// rmdir fails with EBUSY until the last member is reaped by its parent.
func removeDirectory(_ path: String, whileBusy: () -> Void = {}) {
    for attempt in 0..<200 {
        if rmdir(path) == 0 || errno == ENOENT { return }
        if attempt % 20 == 0 { whileBusy() }
        usleep(5_000)
    }
    logLeftBehind(path, errno: errno)
}

/// A group that could not be removed stays on the host (the next start's sweep tries again).
private func logLeftBehind(_ path: String, errno code: Int32) {
    Logger(label: "purser.sandbox").warning(
        "cgroup not removed", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(code)))"])
}

extension String {
    func trimmingNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}

import CPurserSys
import Glibc
import Synchronization

/// One layer of the sandbox, as `purser doctor` and run reports name it.
public enum SandboxLayer: String, Sendable, Hashable, CaseIterable, Comparable {
    case memoryCgroup = "memory-cgroup"
    case pidsCgroup = "pids-cgroup"
    /// A cgroup that counts the CPU time of the run's whole tree, against its CPU limit.
    case cpuCgroup = "cpu-cgroup"
    case network
    case pidNamespace = "pid-namespace"
    case mountNamespace = "mount-namespace"
    case seccomp
    case unprivilegedUser = "unprivileged-user"
    /// A user namespace of the worker's own, which lets a supervisor that is not root make
    /// the other namespaces (through `purser-sandbox`); not needed under a root supervisor.
    case userNamespace = "user-namespace"

    /// The layers a run's cgroups make up.
    public static let cgroups: Set<SandboxLayer> = [.memoryCgroup, .pidsCgroup, .cpuCgroup]

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The layers a worker gets beyond what every worker gets (rlimits, a clean environment,
/// fds 0-2 only, no_new_privs, no capabilities, a non-dumpable supervisor).
public struct Isolation: Sendable {
    /// Its own network namespace: loopback only, and down. The gateway over stdio is the way out.
    public var network = false
    /// Its own PID and IPC namespaces, and a /proc that shows only them.
    public var processes = false
    /// Its own mount namespace and root, made from an allow-list (read-only, nosuid, nodev),
    /// `hiddenPaths` hidden, and a private, size-capped tmpfs at /tmp that is also the
    /// working directory.
    public var filesystem = false
    /// The deny-list filter; denied calls fail with EPERM and are named in the report (up to
    /// `watchedDeniedCalls` of them; the kernel refuses any later ones alone, with ENOSYS).
    public var seccomp = false
    /// Runs the worker as this uid and gid, with no supplementary groups (root supervisors only).
    public var user: (uid: UInt32, gid: UInt32)?
    /// Makes the namespaces inside a user namespace where the supervisor's own ids are
    /// `sandboxUser`'s, through the `purser-sandbox` helper (a supervisor that is not root).
    public var userNamespace = false
    /// The private /tmp's size (and the file-size limit) with `filesystem`.
    public var workingDirectoryBytes: UInt64 = Isolation.defaultWorkingDirectoryBytes
    /// Files and directories the worker must not see (the store, the gateway config, secrets).
    public var hiddenPaths: [String] = []
    /// Host directories the worker may read, at the same paths, besides its allow-listed root
    /// (with `filesystem`), canonical (see `SharedDirectory.resolve`).
    public var sharedPaths: [String] = []

    /// The host directories every worker's root is made of (see purser_isolate_mounts).
    public static let rootDirectories: [String] = {
        var list: UnsafePointer<UnsafePointer<CChar>?>?
        let count = Int(purser_root_directories(&list))
        return (0..<count).compactMap { list?[$0].map { String(cString: $0) } }
    }()

    public static let defaultWorkingDirectoryBytes: UInt64 = 64 << 20
    /// How many refused calls of a run the supervisor answers and counts.
    public static let watchedDeniedCalls = Int(PURSER_SECCOMP_WATCHED_CALLS)
    /// nobody:nogroup on Debian. Runs are kept apart by their PID namespaces, not by uids.
    public static let sandboxUser: (uid: UInt32, gid: UInt32) = (65534, 65534)

    public init() {}

    /// Only the given layers of this isolation.
    public func keeping(_ wanted: Set<SandboxLayer>) -> Isolation {
        var copy = self
        copy.network = network && wanted.contains(.network)
        copy.processes = processes && wanted.contains(.pidNamespace)
        copy.filesystem = filesystem && wanted.contains(.mountNamespace)
        copy.seccomp = seccomp && wanted.contains(.seccomp)
        if !wanted.contains(.unprivilegedUser) { copy.user = nil }
        copy.userNamespace = userNamespace && wanted.contains(.userNamespace)
        return copy
    }
}

/// Which layers this host can apply, tried for real once per process (a throwaway child
/// unshares each namespace, mounts a tmpfs, installs a filter). `PURSER_SANDBOX_DISABLE`
/// (a comma-separated list of layer names) takes layers away, to run as a lesser host would.
public struct HostSupport: Sendable {
    public var available: Set<SandboxLayer>
    /// Why each missing layer is missing, and what to do.
    public var reasons: [SandboxLayer: String]

    public static let current: HostSupport = probe()

    /// This host with `layers` switched off, as a lesser host would be.
    public func without(_ layers: Set<SandboxLayer>) -> HostSupport {
        var copy = self
        for layer in layers where copy.available.remove(layer) != nil {
            copy.reasons[layer] = "switched off by configuration"
        }
        return copy
    }

    static func probe() -> HostSupport {
        var probe = purser_layer_probe()
        purser_probe_layers(&probe)
        let root = geteuid() == 0
        var support = HostSupport(available: [], reasons: [:])
        let v2 = CgroupV2Group.controllers
        support.check(.memoryCgroup, MemoryCgroup.base != nil || v2.contains("memory") ? 0 : ENOENT,
            "no writable memory controller: mount cgroup v1 memory at /sys/fs/cgroup/memory (or delegate v2 memory)")
        support.check(.pidsCgroup, PidsCgroup.base != nil || v2.contains("pids") ? 0 : ENOENT,
            "no writable pids controller: mount cgroup v1 pids at /sys/fs/cgroup/pids (or delegate v2 pids)")
        support.check(.cpuCgroup, CpuCgroup.base != nil || CgroupV2Group.base != nil ? 0 : ENOENT,
            "no cgroup counts a run's CPU time: delegate a cgroup v2 subtree (Linux ≥ 5.14) or mount cgroup v1 cpuacct; until then RLIMIT_CPU holds each process on its own, not the run's tree")
        if !root { probe = probeThroughHelper(userNamespace: probe.user_ns) }
        let how = root ? "run as root" : "allow unprivileged user namespaces, or run as root"
        support.check(.network, probe.net_ns, "cannot make a network namespace: \(how)")
        support.check(.pidNamespace, probe.pid_ns != 0 ? probe.pid_ns : probe.ipc_ns, "cannot make PID and IPC namespaces: \(how)")
        support.check(.mountNamespace, [probe.mount_ns, probe.mount_setattr, probe.tmpfs].first { $0 != 0 } ?? 0,
            "cannot make a mount namespace with a root of its own (tmpfs, binds, pivot_root, mount_setattr: Linux ≥ 5.12): \(how)")
        support.check(.seccomp, probe.seccomp,
            "cannot install a seccomp filter with a listener: use Linux ≥ 5.0 with CONFIG_SECCOMP_FILTER")
        support.check(.userNamespace, probe.user_ns, Spawner.helperPath == nil && !root
            ? "purser-sandbox is not next to this executable (or at $PURSER_SANDBOX_HELPER): build or install it"
            : "cannot make a user namespace: enable unprivileged user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)")
        support.check(.unprivilegedUser, root ? 0 : EPERM,
            "the supervisor is not root, so workers run as its own uid: run it as root to give workers uid 65534")
        return support.without(Set(disabledByConfiguration()))
    }

    /// A supervisor that is not root makes the namespaces through `purser-sandbox`, so the
    /// helper tries them (its exit status has a bit for each that failed).
    private static func probeThroughHelper(userNamespace: Int32) -> purser_layer_probe {
        var probe = purser_layer_probe()
        let status = Spawner.helperPath.map { purser_run_probe($0) } ?? -1
        let user = status < 0 || status & 1 != 0 ? (userNamespace != 0 ? userNamespace : EPERM) : 0
        func bit(_ mask: Int32) -> Int32 { user != 0 ? user : status & mask != 0 ? EPERM : 0 }
        probe.user_ns = user
        probe.net_ns = bit(2)
        probe.pid_ns = bit(4)
        probe.ipc_ns = bit(4)
        probe.mount_ns = bit(8)
        probe.seccomp = bit(16)
        return probe
    }

    private mutating func check(_ layer: SandboxLayer, _ error: Int32, _ advice: String) {
        if error == 0 {
            available.insert(layer)
        } else {
            reasons[layer] = String(cString: strerror(error)) + ": " + advice
        }
    }

    private static func disabledByConfiguration() -> [SandboxLayer] {
        guard let value = getenv("PURSER_SANDBOX_DISABLE") else { return [] }
        return String(cString: value).split(separator: ",").compactMap {
            SandboxLayer(rawValue: $0.trimmingCharacters(in: " "))
        }
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}

/// Network namespaces kept for reuse: making one costs about a millisecond, joining one a
/// few microseconds. A namespace serves one run at a time, and goes back only once every
/// process of its run is gone, so what a run leaves in it (sockets, abstract names) dies
/// with the run. Workers hold no capabilities, so they cannot bring loopback up.
final class NetworkNamespaces: Sendable {
    static let shared = NetworkNamespaces()
    private let idle = Mutex<[Int32]>([])

    func take() throws(SandboxError) -> Int32 {
        if let fd = idle.withLock({ $0.popLast() }) { return fd }
        return try syscall("making a network namespace") { purser_netns_create() }
    }

    func drain() {
        for fd in idle.withLock({ idle in defer { idle = [] }; return idle }) { close(fd) }
    }

    func give(_ fd: Int32) {
        let kept = idle.withLock { idle in
            guard idle.count < 64 else { return false }
            idle.append(fd)
            return true
        }
        if !kept { close(fd) }
    }
}

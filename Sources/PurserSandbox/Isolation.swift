import CPurserSys
import Glibc
import Synchronization

/// One layer of the sandbox, as `purser doctor` and run reports name it.
public enum SandboxLayer: String, Sendable, Hashable, CaseIterable, Comparable {
    case memoryCgroup = "memory-cgroup"
    case pidsCgroup = "pids-cgroup"
    case network
    case pidNamespace = "pid-namespace"
    case mountNamespace = "mount-namespace"
    case seccomp
    case unprivilegedUser = "unprivileged-user"

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The layers a worker gets beyond what every worker gets (rlimits, a clean environment,
/// fds 0-2 only, no_new_privs, no capabilities, a non-dumpable supervisor).
public struct Isolation: Sendable, Hashable {
    /// Its own network namespace: loopback only, and down. The gateway over stdio is the way out.
    public var network = false
    /// Its own PID and IPC namespaces, and a /proc that shows only them.
    public var processes = false
    /// Its own mount namespace: the host read-only and nosuid, `/run` hidden, `hiddenPaths`
    /// hidden, and a private, size-capped tmpfs at /tmp that is also the working directory.
    public var filesystem = false
    /// The deny-list filter; denied calls fail with EPERM and are named in the report.
    public var seccomp = false
    /// Runs the worker as this uid and gid, with no supplementary groups (root supervisors only).
    public var user: (uid: UInt32, gid: UInt32)?
    /// The private /tmp's size (and the file-size limit) with `filesystem`.
    public var workingDirectoryBytes: UInt64 = Isolation.defaultWorkingDirectoryBytes
    /// Files and directories the worker must not see (the store, the gateway config, secrets).
    public var hiddenPaths: [String] = []

    public static let defaultWorkingDirectoryBytes: UInt64 = 64 << 20
    /// nobody:nogroup on Debian. Runs are kept apart by their PID namespaces, not by uids.
    public static let sandboxUser: (uid: UInt32, gid: UInt32) = (65534, 65534)

    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.network == b.network && a.processes == b.processes && a.filesystem == b.filesystem && a.seccomp == b.seccomp
            && a.user?.uid == b.user?.uid && a.user?.gid == b.user?.gid && a.workingDirectoryBytes == b.workingDirectoryBytes
            && a.hiddenPaths == b.hiddenPaths
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(network)
        hasher.combine(processes)
        hasher.combine(filesystem)
        hasher.combine(seccomp)
        hasher.combine(user?.uid)
    }

    /// The namespace layers this isolation turns on.
    public var layers: Set<SandboxLayer> {
        var layers: Set<SandboxLayer> = []
        if network { layers.insert(.network) }
        if processes { layers.insert(.pidNamespace) }
        if filesystem { layers.insert(.mountNamespace) }
        if seccomp { layers.insert(.seccomp) }
        if user != nil { layers.insert(.unprivilegedUser) }
        return layers
    }

    /// Only the given layers of this isolation.
    public func keeping(_ wanted: Set<SandboxLayer>) -> Isolation {
        var copy = self
        copy.network = network && wanted.contains(.network)
        copy.processes = processes && wanted.contains(.pidNamespace)
        copy.filesystem = filesystem && wanted.contains(.mountNamespace)
        copy.seccomp = seccomp && wanted.contains(.seccomp)
        if !wanted.contains(.unprivilegedUser) { copy.user = nil }
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
    /// Whether this user may make a user namespace (not used while the supervisor is root).
    public var userNamespace = false

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
        var support = HostSupport(available: [], reasons: [:], userNamespace: probe.user_ns == 0)
        let root = geteuid() == 0
        let v2 = CgroupV2Group.controllers
        support.check(.memoryCgroup, MemoryCgroup.base != nil || v2.contains("memory") ? 0 : ENOENT,
            "no writable memory controller: mount cgroup v1 memory at /sys/fs/cgroup/memory (or delegate v2 memory)")
        support.check(.pidsCgroup, PidsCgroup.base != nil || v2.contains("pids") ? 0 : ENOENT,
            "no writable pids controller: mount cgroup v1 pids at /sys/fs/cgroup/pids (or delegate v2 pids)")
        support.check(.network, probe.net_ns, "cannot make a network namespace: run as root (CAP_SYS_ADMIN)")
        support.check(.pidNamespace, probe.pid_ns != 0 ? probe.pid_ns : probe.ipc_ns,
            "cannot make PID and IPC namespaces: run as root (CAP_SYS_ADMIN)")
        support.check(.mountNamespace, [probe.mount_ns, probe.mount_setattr, probe.tmpfs].first { $0 != 0 } ?? 0,
            "cannot make a mount namespace with a read-only root and a tmpfs: run as root on Linux ≥ 5.12 (mount_setattr)")
        support.check(.seccomp, probe.seccomp,
            "cannot install a seccomp filter with a listener: use Linux ≥ 5.0 with CONFIG_SECCOMP_FILTER")
        support.check(.unprivilegedUser, root ? 0 : EPERM,
            "the supervisor is not root, so workers run as its own uid: run it as root to give workers uid 65534")
        return support.without(Set(disabledByConfiguration()))
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

import CPurserSys
import Glibc

/// What this host offers for isolating a worker, layer by layer, and what Purser applies
/// today to an untrusted plugin: `purser doctor`.
public struct HostLayer: Sendable, Hashable {
    public var name: String
    /// The sandbox layer this row is, where it is one a level can want.
    public var layer: SandboxLayer?
    public var available: Bool
    /// Whether untrusted runs get this layer on this host.
    public var applied: Bool
    public var detail: String
    /// What to do when it is missing.
    public var advice: String?
}

public enum HostLayers {
    public static func detect(_ host: HostSupport = .current) -> [HostLayer] {
        [root()] + cgroups(host) + namespaces(host) + privileges(host)
    }

    private static func root() -> HostLayer {
        let root = geteuid() == 0
        return HostLayer(
            name: "root", layer: nil, available: root, applied: false,
            detail: root ? "running as root (uid 0)" : "running as uid \(geteuid())",
            advice: root ? nil : "namespaces, cgroups and the sandbox user need a root supervisor")
    }

    private static func row(_ name: String, _ layer: SandboxLayer, _ host: HostSupport, _ detail: String) -> HostLayer {
        let available = host.available.contains(layer)
        return HostLayer(
            name: name, layer: layer, available: available, applied: available,
            detail: available ? detail : "missing", advice: available ? nil : host.reasons[layer])
    }

    private static func cgroups(_ host: HostSupport) -> [HostLayer] {
        let v2 = CgroupV2Group.base
        let v2Controllers = v2.flatMap { readSmallFile(String($0.dropLast("/purser".count)) + "/cgroup.controllers") }?
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init) ?? []
        func version(_ controller: String) -> String {
            let v1 = CgroupHierarchy.mountPoint(controller: controller)
            return (v2Controllers.contains(controller) ? "cgroup v2" : "cgroup v1") + (v1.map { " (v1 at \($0))" } ?? "")
        }
        return [
            HostLayer(
                name: "cgroup v2 group per run", layer: nil, available: v2 != nil, applied: v2 != nil,
                detail: v2.map { "at \($0), killed as a whole with cgroup.kill" } ?? "no writable cgroup2 hierarchy with cgroup.kill",
                advice: v2 == nil ? "mount cgroup2 and delegate a subtree (Linux ≥ 5.14 for cgroup.kill); until then runs are contained by process group" : nil),
            row("memory controller", .memoryCgroup, host, version("memory") + ": limit = reservation, peak, OOM kill"),
            row("pids controller", .pidsCgroup, host, version("pids") + ": processes and threads capped"),
            row("CPU accounting", .cpuCgroup, host,
                (v2 != nil ? "cgroup v2 (cpu.stat of the run's group)" : "cgroup v1 cpuacct")
                    + ": the CPU time of the run's whole tree, steps included, checked every \(VerdictClassifier.cpuCheckMs) ms against its limit"),
        ]
    }

    private static func namespaces(_ host: HostSupport) -> [HostLayer] {
        let root = geteuid() == 0
        return [
            row("network namespace", .network, host,
                "own namespace, loopback down; " + (root ? "pooled and reused one run at a time" : "one per run")),
            row("PID namespace", .pidNamespace, host, "own PID and IPC namespaces and /proc; the worker is their init"),
            row("mount namespace", .mountNamespace, host,
                "a root of its own from an allow-list (/usr /bin /sbin /lib* /etc /opt, six devices), read-only, pivot_root; private size-capped /tmp as working directory"),
            root
                ? HostLayer(
                    name: "user namespace", layer: .userNamespace, available: host.available.contains(.userNamespace),
                    applied: false, detail: "not needed: the supervisor is root", advice: nil)
                : row("user namespace", .userNamespace, host,
                    "the namespaces are made inside one, through purser-sandbox, where the supervisor's ids are 65534's"),
        ]
    }

    // From <linux/prctl.h>, which Glibc's module does not bring in.
    private static let getNoNewPrivs: Int32 = 39

    private static func privileges(_ host: HostSupport) -> [HostLayer] {
        let noNewPrivs = purser_prctl_query(getNoNewPrivs) >= 0
        let root = geteuid() == 0
        let user = Isolation.sandboxUser
        return [
            row("sandbox user", .unprivilegedUser, host, "untrusted workers run as uid \(user.uid), gid \(user.gid), no groups"),
            HostLayer(
                name: "capabilities dropped", layer: nil, available: true, applied: root,
                detail: root ? "workers start with none (trusted ones keep uid 0 in name only)" : "workers inherit none: the supervisor is not root",
                advice: nil),
            HostLayer(
                name: "supervisor non-dumpable", layer: nil, available: true, applied: true,
                detail: "its /proc environment and memory need CAP_SYS_PTRACE, which workers never have", advice: nil),
            HostLayer(
                name: "no_new_privs", layer: nil, available: noNewPrivs, applied: noNewPrivs,
                detail: noNewPrivs ? "supported" : "prctl(PR_GET_NO_NEW_PRIVS) failed",
                advice: noNewPrivs ? nil : "use Linux ≥ 3.5"),
            row("seccomp filter", .seccomp, host, "deny-list (keyctl, ptrace, io_uring, kexec, modules, mount, bpf, …), sockets Unix, TCP, UDP and netlink-route only; denied calls get EPERM, a run's first \(Isolation.watchedDeniedCalls) named in the report"),
            supervisorDeath(),
        ]
    }

    /// What the supervisor's death (kill -9, a crash) kills at once, and what the next start.
    private static func supervisorDeath() -> HostLayer {
        let problem = Watchdog.unavailable
        let atOnce = "kills at once the worker (its parent-death signal) and an untrusted run's PID namespace"
        let next = "the next purser to start here removes its groups and run directories and reclaims its holds"
        return HostLayer(
            name: "supervisor death", layer: nil, available: problem == nil, applied: problem == nil,
            detail: problem == nil
                ? atOnce + ", and through purser-watchdog every process in the run's cgroups (a trusted run's escaped descendants too); " + next
                : atOnce + "; a trusted run's escaped descendants live until the next purser to start here kills its groups, which also " + next.dropFirst("the next purser to start here ".count),
            advice: problem.map { $0 + ": build or install purser-watchdog next to purser" })
    }
}

public enum Sandbox {
    /// PR_SET_DUMPABLE 0 for this process: its /proc files (environ, mem, maps) then need
    /// CAP_SYS_PTRACE to read, which workers never have.
    public static func makeSupervisorNonDumpable() {
        _ = purser_prctl_set(4 /* PR_SET_DUMPABLE */, 0)
    }

    public static var supervisorIsDumpable: Bool { purser_prctl_query(3 /* PR_GET_DUMPABLE */) != 0 }
}

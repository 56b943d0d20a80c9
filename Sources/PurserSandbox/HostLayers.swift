import CPurserSys
import Glibc

/// What this host offers for isolating a worker, layer by layer, and what Purser applies
/// today to an untrusted plugin: `purser doctor`.
public struct HostLayer: Sendable, Hashable {
    public var name: String
    public var available: Bool
    /// Whether runs get this layer now (the full sandbox adds the rest).
    public var applied: Bool
    public var detail: String
    /// What to do when it is missing.
    public var advice: String?
}

public enum HostLayers {
    public static func detect() -> [HostLayer] {
        [root()] + cgroups() + namespaces() + privileges()
    }

    private static func root() -> HostLayer {
        let root = geteuid() == 0
        return HostLayer(
            name: "root", available: root, applied: false,
            detail: root ? "running as root (uid 0)" : "running as uid \(geteuid())",
            advice: root ? nil : "without root, namespaces need unprivileged user namespaces and cgroups a delegated subtree")
    }

    private static func cgroups() -> [HostLayer] {
        let v2 = CgroupV2Group.base
        var layers = [HostLayer(
            name: "cgroup v2 group per run", available: v2 != nil, applied: v2 != nil,
            detail: v2.map { "at \($0), killed as a whole with cgroup.kill" } ?? "no writable cgroup2 hierarchy with cgroup.kill",
            advice: v2 == nil ? "mount cgroup2 and delegate a subtree to this user (Linux ≥ 5.14 for cgroup.kill); until then runs are contained by process group" : nil)]
        let v2Controllers = v2.flatMap { readSmallFile(String($0.dropLast("/purser".count)) + "/cgroup.controllers") }?
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init) ?? []
        for controller in ["memory", "pids", "cpu"] {
            let v1 = CgroupHierarchy.mountPoint(controller: controller)
            let version = v2Controllers.contains(controller) ? "v2" : v1 != nil ? "v1" : nil
            let applied = (controller == "memory" && MemoryCgroup.base != nil) || (controller == "pids" && PidsCgroup.base != nil)
            layers.append(HostLayer(
                name: "\(controller) controller", available: version != nil, applied: applied,
                detail: version.map { "cgroup \($0)" + (v1.map { " (v1 at \($0))" } ?? "") } ?? "not mounted",
                advice: version == nil ? "mount the \(controller) controller (cgroup v2, or v1 at /sys/fs/cgroup/\(controller))" : nil))
        }
        return layers
    }

    private static func namespaces() -> [HostLayer] {
        let unprivileged = (readSmallFile("/proc/sys/user/max_user_namespaces").flatMap { Int($0.trimmingNewline()) } ?? 0) > 0
            && readSmallFile("/proc/sys/kernel/unprivileged_userns_clone").map { $0.trimmingNewline() == "1" } ?? true
        return [("net", "network"), ("pid", "PID"), ("mnt", "mount"), ("user", "user")].map { file, name in
            let kernel = access("/proc/self/ns/\(file)", F_OK) == 0
            let usable = kernel && (geteuid() == 0 || unprivileged)
            return HostLayer(
                name: "\(name) namespace", available: usable, applied: false,
                detail: kernel ? (usable ? "in this kernel, allowed for this user (not yet probed by a real unshare)"
                    : "in this kernel, not for this user") : "not in this kernel",
                advice: usable ? nil : kernel ? "enable unprivileged user namespaces (sysctl user.max_user_namespaces) or run as root"
                    : "use a kernel built with \(name) namespaces")
        }
    }

    // From <linux/prctl.h>, which Glibc's module does not bring in.
    private static let getNoNewPrivs: Int32 = 39
    private static let getSeccomp: Int32 = 21

    private static func privileges() -> [HostLayer] {
        let noNewPrivs = purser_prctl_query(getNoNewPrivs) >= 0
        let seccomp = purser_prctl_query(getSeccomp) >= 0
            && access("/proc/sys/kernel/seccomp/actions_avail", F_OK) == 0
        let root = geteuid() == 0
        return [
            HostLayer(
                name: "capabilities dropped", available: true, applied: root,
                detail: root ? "workers start with none (uid 0 in name only)" : "workers inherit none: the supervisor is not root",
                advice: nil),
            HostLayer(
                name: "supervisor non-dumpable", available: true, applied: true,
                detail: "its /proc environment and memory need CAP_SYS_PTRACE, which workers never have", advice: nil),
            HostLayer(
                name: "no_new_privs", available: noNewPrivs, applied: noNewPrivs,
                detail: noNewPrivs ? "supported" : "prctl(PR_GET_NO_NEW_PRIVS) failed",
                advice: noNewPrivs ? nil : "use Linux ≥ 3.5"),
            HostLayer(
                name: "seccomp filter", available: seccomp, applied: false,
                detail: seccomp ? "supported: " + (readSmallFile("/proc/sys/kernel/seccomp/actions_avail")?.trimmingNewline() ?? "")
                    : "not available",
                advice: seccomp ? nil : "use a kernel with CONFIG_SECCOMP_FILTER"),
        ]
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

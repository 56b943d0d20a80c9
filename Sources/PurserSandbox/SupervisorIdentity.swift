import Glibc

/// A supervisor process as a name that outlives it: its pid, its start time (which tells a
/// reused pid apart), its PID namespace and the kernel's boot. What a supervisor leaves on
/// the host (its cgroups, its ledger lease) is named with it, so that a later supervisor can
/// tell for certain that the owner is dead, and otherwise leaves it be.
public struct SupervisorIdentity: Sendable, Hashable {
    public let pid: Int32
    /// In clock ticks since boot (field 22 of /proc/PID/stat).
    public let startTime: UInt64
    /// The inode of its PID namespace (/proc/PID/ns/pid).
    public let pidNamespace: UInt64
    /// The kernel's boot id, without dashes; nil in a host-local name.
    public let boot: String?

    /// This process; nil where /proc does not show its own PID namespace (no answer about
    /// other processes could then be trusted).
    public static let current: SupervisorIdentity? = {
        let pid = getpid()
        guard let proc = readLink("/proc/self"), proc == "\(pid)", let start = ProcessTable.startTime(of: pid),
            let namespace = namespaceInode(of: "self")
        else { return nil }
        let boot = readSmallFile("/proc/sys/kernel/random/boot_id")?.filter(\.isHexDigit)
        return SupervisorIdentity(pid: pid, startTime: start, pidNamespace: namespace, boot: boot?.count == 32 ? boot : nil)
    }()

    init(pid: Int32, startTime: UInt64, pidNamespace: UInt64, boot: String?) {
        self.pid = pid
        self.startTime = startTime
        self.pidNamespace = pidNamespace
        self.boot = boot
    }

    /// "PID.START.PIDNS": for what lives only on this host (cgroups).
    public var local: String { "\(pid).\(startTime).\(pidNamespace)" }

    /// "PID.START.PIDNS.BOOT": for what other hosts see too (a shared ledger).
    public var global: String { local + (boot.map { "." + $0 } ?? "") }

    /// Reads `local` or `global`; nil for anything else.
    public init?(_ text: Substring) {
        let fields = text.split(separator: ".", omittingEmptySubsequences: false)
        guard fields.count == 3 || fields.count == 4, let pid = pid_t(fields[0]), pid > 0,
            let start = UInt64(fields[1]), let namespace = UInt64(fields[2])
        else { return nil }
        let boot = fields.count == 4 ? String(fields[3]) : nil
        if let boot, boot.count != 32 || !boot.allSatisfy(\.isHexDigit) { return nil }
        self.init(pid: pid, startTime: start, pidNamespace: namespace, boot: boot)
    }

    /// True only when certain: the name is of this boot (if it says) and of this process's
    /// PID namespace, where no live process has its pid and start time. A supervisor in
    /// another namespace or on another host is never taken for dead.
    public var isDead: Bool {
        guard let current = Self.current, pidNamespace == current.pidNamespace else { return false }
        if let boot, boot != current.boot { return false }
        return ProcessTable.startTime(of: pid) != startTime
    }

    private static func namespaceInode(of process: String) -> UInt64? {
        var status = stat()
        guard stat("/proc/\(process)/ns/pid", &status) == 0 else { return nil }
        return UInt64(status.st_ino)
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

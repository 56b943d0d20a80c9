/// Everything the sandbox needs to start one worker. It knows processes, not budgets:
/// the runtime turns a reservation into these limits.
public struct SandboxProfile: Sendable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    /// The run's private working directory; created by `RunDirectory`.
    public var workingDirectory: String?
    public var limits: ResourceLimits
    /// How the run's processes are held together and killed.
    public var containment: Containment
    /// An open, read-only fd of the file to execute. When set, the spawner executes this very
    /// file (execveat with AT_EMPTY_PATH), not whatever `executable` names, so a file that was
    /// hashed through the fd is the file that runs; `executable` is then not looked up and only
    /// serves for messages and argv[0]. The caller keeps ownership of the fd: the spawner
    /// neither closes it nor changes its flags, and the worker does not inherit it unless
    /// `keepExecutableFD` is set.
    public var executableFD: Int32?
    /// Keep `executableFD` open in the worker across exec. A script (`#!`) needs this: the
    /// kernel hands its interpreter `/dev/fd/N`, which fails if N is closed at exec. Leave it
    /// false for binaries, so the worker does not inherit the fd.
    public var keepExecutableFD: Bool
    /// Open files the worker gets as fds 3, 4, … in this order (at most 4), for a worker that
    /// runs a file it cannot reach by path (the MCP bridge runs its server's pinned file so).
    /// The caller keeps ownership, as with `executableFD`.
    public var passedFDs: [Int32] = []
    /// A TCP port on the worker's loopback where the supervisor listens (the run's egress
    /// proxy): the listener is made in the run's network namespace before the worker starts,
    /// and handed over as `WorkerProcess.egressListener`. Needs the network layer: made by a
    /// root supervisor, or by `purser-sandbox` in the namespaces it makes for one that is not.
    public var egressPort: UInt16?
    /// A supervisor running as root clears every capability of the worker before exec:
    /// the worker keeps uid 0 in name only.
    public var dropCapabilities = true
    /// Namespaces, seccomp and an unprivileged uid: see `Isolation`.
    public var isolation = Isolation()
    /// Cgroup layers the spawn must set up or fail (a plan that promised them).
    public var requiredCgroups: Set<SandboxLayer> = []
    /// A step's caller's groups (`WorkerProcess.cgroups`): the step's are made inside them.
    public var parentGroups: RunCgroups?

    public init(
        executable: String, arguments: [String] = [], environment: [String: String] = [:],
        workingDirectory: String? = nil, limits: ResourceLimits = .init(), containment: Containment = .automatic,
        executableFD: Int32? = nil, keepExecutableFD: Bool = false
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.limits = limits
        self.containment = containment
        self.executableFD = executableFD
        self.keepExecutableFD = keepExecutableFD
    }
}

public struct ResourceLimits: Sendable, Hashable {
    /// Whole seconds of user+system time: RLIMIT_CPU for each process, and, where a cgroup
    /// counts the run's CPU time, for the run's whole tree (see `CpuCgroup`).
    public var cpuSeconds: Int?
    /// RLIMIT_DATA. Not RLIMIT_AS, which breaks runtimes that reserve address space.
    public var dataBytes: UInt64?
    /// The memory cgroup's limit, where the host has one; peak memory is measured there.
    public var memoryBytes: UInt64?
    public var openFiles: UInt64 = 1024
    /// Processes and threads the run may have at once (a pids cgroup, where the host has one).
    public var processes: Int?
    public var fileSizeBytes: UInt64? = 1 << 30
    public var coreBytes: UInt64 = 0

    public init(cpuSeconds: Int? = nil, dataBytes: UInt64? = nil, memoryBytes: UInt64? = nil) {
        self.cpuSeconds = cpuSeconds
        self.dataBytes = dataBytes
        self.memoryBytes = memoryBytes
    }
}

public enum Containment: Sendable, Hashable {
    /// A cgroup v2 group per run where the host allows it, else a process group.
    case automatic
    /// Process group plus a child-subreaper sweep: works anywhere, weaker against setsid.
    case processGroup
}

import CPurserSys
import Glibc

/// How a worker process ended, as wait4 reports it.
public struct ExitInfo: Sendable, Hashable {
    public var exitCode: Int32?
    public var signal: Int32?
    /// User plus system time: the run's whole tree where a cgroup counts it (see
    /// `WorkerProcess.cleanUp`), else the worker's and the children it waited for.
    public var cpuMs: Int64
    /// Peak resident set of the worker or its largest waited-for descendant.
    public var peakMemoryBytes: Int64
    /// The kernel's OOM killer acted in the run's memory cgroup.
    public var outOfMemory: Bool

    public init(exitCode: Int32?, signal: Int32?, cpuMs: Int64, peakMemoryBytes: Int64, outOfMemory: Bool = false) {
        self.outOfMemory = outOfMemory
        self.exitCode = exitCode
        self.signal = signal
        self.cpuMs = cpuMs
        self.peakMemoryBytes = peakMemoryBytes
    }
}

/// A spawned worker: its pid, a pidfd that becomes readable when it exits, and the
/// supervisor's ends of its three pipes (non-blocking, close-on-exec). Whoever reads the
/// pipes and watches the pidfd closes them (a Dispatch source's fd may only be closed in
/// its cancel handler); `cleanUp()` ends the rest of the run.
public final class WorkerProcess: Sendable {
    public let pid: Int32
    public let pidFD: Int32
    public let stdinFD: Int32
    public let stdoutFD: Int32
    public let stderrFD: Int32
    /// The write ends of the stdout and stderr pipes, kept open by the supervisor (and
    /// never written) so that the read ends never hang up: close each only after the
    /// source reading its pipe is cancelled, in that source's cancel handler.
    ///
    /// Why: when a pipe's last writer goes, epoll reports EPOLLHUP, and libdispatch (as of
    /// Swift 6.3, event_epoll.c) handles a hangup by marking the source for deletion and
    /// then unregistering it, which frees its epoll "muxnote", on the source's own queue,
    /// while its event thread may still be using that muxnote (and its hash bucket).
    /// Under load that is a use-after-free in `_dispatch_event_loop_drain`
    /// (swift-corelibs-libdispatch#949). A pipe whose writer is still open never hangs
    /// up, so its source is only ever unregistered by `cancel()`, on the event thread.
    public let stdoutHoldFD: Int32
    public let stderrHoldFD: Int32
    /// The run's groups; a step's are made inside them (`SandboxProfile.parentGroups`).
    public let cgroups: RunCgroups
    private var group: any RunGroup { cgroups.group }
    private var memory: MemoryCgroup? { cgroups.memory }

    public var containment: String { cgroups.description }

    let isolation: WorkerIsolation
    /// The listener made for `SandboxProfile.egressPort` in the run's network namespace, or
    /// -1. The caller serves it and closes it before the run's end is reported.
    public let egressListener: Int32

    init(
        pid: pid_t, pidFD: Int32, stdin: Int32, stdout: Int32, stderr: Int32, stdoutHold: Int32,
        stderrHold: Int32, groups: RunCgroups, isolation: WorkerIsolation = WorkerIsolation(), egressListener: Int32 = -1
    ) {
        self.isolation = isolation
        self.egressListener = egressListener
        self.stdoutHoldFD = stdoutHold
        self.stderrHoldFD = stderrHold
        self.pid = pid
        self.pidFD = pidFD
        self.stdinFD = stdin
        self.stdoutFD = stdout
        self.stderrFD = stderr
        self.cgroups = groups
    }

    /// Signals the worker's process group (it is a session leader).
    public func signalProcessGroup(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// SIGTERM to the worker's process group. In its own PID namespace the worker is that
    /// namespace's init, which the kernel shields from every signal it has no handler for:
    /// a worker that does not catch SIGTERM gets SIGKILL instead (its namespace dies with it).
    public func terminate() {
        signalProcessGroup(SIGTERM)
        if isolation.pidNamespace, !catches(SIGTERM) { kill(pid, SIGKILL) }
    }

    private func catches(_ signal: Int32) -> Bool {
        let mask = statusField("SigCgt").flatMap { UInt64($0, radix: 16) } ?? 0
        return mask & (1 << UInt64(signal - 1)) != 0
    }

    /// A field of the worker's /proc status: what follows its name and the blanks after it.
    private func statusField(_ name: String) -> Substring? {
        guard let status = readSmallFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            return line.dropFirst(name.count + 1).drop(while: { $0 == "\t" || $0 == " " })
        }
        return nil
    }

    /// The cgroup layers this worker really got.
    public var attachedCgroups: Set<SandboxLayer> { cgroups.layers }

    /// The deny-listed calls the run made, as the supervisor saw them; call once, after the run.
    public func deniedCalls() -> DeniedCalls {
        guard let tag = isolation.seccompTag else { return DeniedCalls() }
        var numbers = [Int32](repeating: 0, count: 16)
        var calls: Int32 = 0
        var capped: Int32 = 0
        let count = Int(purser_seccomp_take(tag, &numbers, 16, &calls, &capped))
        return DeniedCalls(
            names: numbers.prefix(count).map { SpawnIsolation.deniedNames[$0] ?? "syscall \($0)" }.sorted(),
            calls: Int(calls), capped: capped != 0)
    }

    /// Records the run's process tree, where the containment needs that (process groups).
    public func snapshotTree() {
        (group as? ProcessGroupRunGroup)?.snapshot(leader: pid)
    }

    /// SIGKILL to every process of the run.
    public func killAll() {
        group.killAll(leader: pid)
    }

    /// Whether a cgroup counts the CPU time of the run's whole tree (`cpuNanoseconds`).
    public var countsTreeCPU: Bool { cgroups.cpu != nil }

    /// CPU time so far (user plus system): the run's whole tree where a cgroup counts it;
    /// else the worker's own (its children not counted), nil once it is gone.
    public func cpuNanoseconds() -> Int64? {
        if let cpu = cgroups.cpu { return cpu.usedNanoseconds() }
        var clock = clockid_t()
        var time = timespec()
        guard clock_getcpuclockid(pid, &clock) == 0, clock_gettime(clock, &time) == 0 else { return nil }
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// The run's peak memory so far: its memory cgroup's where it has one (and that peak
    /// is the run's), else the worker's own high-water mark.
    public func memoryPeakBytes() -> Int64 {
        if let memory, memory.peakIsThisRuns { return memory.peakBytes() }
        // "VmHWM:    1234 kB"
        let kilobytes = statusField("VmHWM")?.prefix(while: \.isNumber)
        return (kilobytes.flatMap { Int64($0) } ?? 0) * 1024
    }

    /// Starts the peak over from what is in use now, for the worker's next run.
    public func resetMemoryPeak() {
        if let memory, memory.resetPeak() { return }
        // 5: reset the peak resident set size (proc(5), clear_refs).
        writeFile("/proc/\(pid)/clear_refs", "5")
    }

    /// True once the worker has exited (without reaping it).
    public func hasExited() -> Bool {
        var info = siginfo_t()
        let result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        // A trace stop (a trusted worker may ask to be traced) is not an exit.
        let exited = [CLD_EXITED, CLD_KILLED, CLD_DUMPED].contains(Int(info.si_code))
        return result == 0 && info._sifields._sigchld.si_pid == pid && exited
    }

    /// Reaps the worker. Call once, after the pidfd became readable (or to block until exit).
    /// From Linux 6.9 a reaped worker's pidfd reports EPOLLHUP: stop watching it first
    /// (see `stdoutHoldFD` for why a hangup on a watched fd must not happen).
    public func reap() -> ExitInfo {
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        if let memory {
            // ru_maxrss is no measure here: a CLONE_VM child inherits the supervisor's
            // high-water mark at exec. The run's memory cgroup counts only the run.
            usage.ru_maxrss = Int(memory.peakBytes() / 1024)
        }
        let cpuMs = usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000
            + usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000
        let exited = status & 0x7f == 0
        return ExitInfo(
            exitCode: exited ? (status >> 8) & 0xff : nil,
            signal: exited ? nil : status & 0x7f,
            cpuMs: Int64(cpuMs),
            peakMemoryBytes: Int64(usage.ru_maxrss) * 1024,
            outOfMemory: memory?.outOfMemory ?? false)
    }

    /// After the worker was reaped: kills whatever of the run is left, waits until none
    /// is, and releases the group. No process of a run outlives it. Returns the CPU time
    /// the run's whole tree used, where a cgroup counts it (read before the group goes).
    @discardableResult
    public func cleanUp() -> Int64? {
        // Usually the worker was the run's only process and the group is empty already.
        if !group.isEmpty(leader: pid) {
            group.killAll(leader: pid)
            for _ in 0..<1000 where !group.isEmpty(leader: pid) {
                usleep(1_000)
            }
        }
        let cpu = cgroups.cpu?.usedNanoseconds()
        let groups = cgroups
        // A namespace goes back to the pool only when nothing of this run can be in it.
        let netns = isolation.netnsFD
        let emptied = group.isEmpty(leader: pid)
        Janitor.later {
            groups.release()
            if netns >= 0 {
                if emptied { NetworkNamespaces.shared.give(netns) } else { close(netns) }
            }
        }
        return cpu
    }
}

/// The namespaces and filter a worker was started with (see `Isolation`).
struct WorkerIsolation: Sendable {
    var netnsFD: Int32 = -1
    var seccompTag: UInt64?
    var pidNamespace = false
}

/// The deny-listed calls of one run that the supervisor was told of.
public struct DeniedCalls: Sendable, Hashable {
    /// Each syscall by name, once.
    public var names: [String] = []
    /// How many calls were refused with the supervisor watching.
    public var calls = 0
    /// The supervisor stopped watching once it had seen its share: later refused calls were
    /// answered by the kernel alone, and are not counted.
    public var capped = false

    public init(names: [String] = [], calls: Int = 0, capped: Bool = false) {
        self.names = names
        self.calls = calls
        self.capped = capped
    }
}

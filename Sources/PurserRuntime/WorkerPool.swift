import PurserSandbox
import Synchronization

/// Idle workers of trusted plugins, kept between the runs of one swarm (or one `mcp serve`
/// session); and of untrusted ones where both the plugin's manifest (`reuseUntrusted`) and
/// the team (`TeamPolicy.reuseUntrusted`) allow it.
///
/// Starting a worker costs far more than a trivial run: the exec, the dynamic loader, the
/// runtime's start-up, the handshake, the groups and the working directory. A trusted plugin
/// whose worker says it takes several runs one after another (`sequentialRuns`) is sent the
/// next run of the same plugin instead of a new process. Each run keeps its own reservation,
/// deadline, credits, gateway account and report; its CPU time and memory peak are measured
/// from the run's start. What stays from one run to the next is the worker's own state, its
/// working directory and its groups: that is why only trusted plugins are kept, and only with
/// everything that shaped the process the same (file, arguments, environment, limits, sandbox).
/// A kept untrusted worker stays in its own sandbox (namespaces, root, filter, groups); what
/// it may carry from one run to the next is what its manifest and its team accepted. A pool
/// belongs to one swarm or session, so to one team: no worker is shared between teams.
/// A run that ends any other way than answered (timeout, cancel, credits, a crash, a
/// protocol violation) ends its worker as it would without the pool.
///
/// An idle worker holds no reservation, so the pool keeps at most `capacity` of them (a
/// swarm's: twice as many as it runs at once): past that, the one idle longest is shut
/// down. A step's worker is never kept: it runs inside its caller's groups (`usable(by:)`).
public final class WorkerPool: Sendable {
    /// What shaped a worker process: a kept worker serves only runs that would have started
    /// the very same process.
    struct Key: Hashable, Sendable {
        /// A registered plugin's pinned file (a swarm names its routines, not the plugin,
        /// in `pluginName`, which a kept worker's handshake may therefore not match).
        var executable: String
        var arguments: [String]
        var environment: [String: String]
        var memoryBytes: Int64
        var maxProcesses: Int
        var maxLineBytes: Int
        var timing: SessionTiming
        var containment: Containment
        var sandbox: SandboxLevel
        var sandboxOptOut: Set<SandboxLayer>?
        var readOnlyPaths: [String]
        var allowDegraded: Bool
        var egress: [String]

        init(_ request: RunRequest) {
            executable = request.executable
            arguments = request.arguments
            environment = request.environment
            memoryBytes = request.memoryBytes
            maxProcesses = request.maxProcesses
            maxLineBytes = request.maxLineBytes
            timing = request.timing
            containment = request.containment
            sandbox = request.sandbox
            sandboxOptOut = request.sandboxOptOut
            readOnlyPaths = request.readOnlyPaths
            allowDegraded = request.allowDegraded
            egress = request.egress
        }
    }

    /// Oldest first.
    private let idle = Mutex<[(key: Key, session: WorkerSession)]>([])
    private let retired = Atomic<Bool>(false)
    private let untrustedAllowed = Atomic<Bool>(false)
    private let capacity: Int

    public init(capacity: Int, reuseUntrusted: Bool = false) {
        self.capacity = max(1, capacity)
        untrustedAllowed.store(reuseUntrusted, ordering: .relaxed)
    }

    /// The team's word on keeping untrusted workers (`TeamPolicy.reuseUntrusted`), once read.
    public func allowUntrusted(_ allowed: Bool) { untrustedAllowed.store(allowed, ordering: .releasing) }

    /// The pool a run may use: a trusted plugin's (or an untrusted one's the manifest and
    /// the team let be kept), with no CPU limit (RLIMIT_CPU counts a process's whole life, so
    /// a kept worker would carry earlier runs' time into later ones), and not a step's inside
    /// its caller's groups (a worker kept there would outlive the caller's run, and one kept
    /// elsewhere would stand outside the caller's limits).
    static func usable(by request: RunRequest) -> WorkerPool? {
        guard let pool = request.workerPool, request.cpuSeconds == nil, !request.handshakeOnly, request.parentGroups == nil
        else { return nil }
        let kept = request.sandbox == .trusted || (request.reuseUntrusted && pool.untrustedAllowed.load(ordering: .acquiring))
        return kept ? pool : nil
    }

    /// The most recently idle worker for `key`.
    func take(_ key: Key) -> WorkerSession? {
        idle.withLock { idle in
            guard let index = idle.lastIndex(where: { $0.key == key }) else { return nil }
            return idle.remove(at: index).session
        }
    }

    /// Keeps a worker its last run left idle; after `retireAll` began, shuts it down instead.
    func give(_ key: Key, _ session: WorkerSession) async {
        guard !retired.load(ordering: .acquiring) else { return await session.retire() }
        let evicted = idle.withLock { idle -> WorkerSession? in
            idle.append((key, session))
            return idle.count > capacity ? idle.removeFirst().session : nil
        }
        await evicted?.retire()
        // A give that raced with retireAll: whatever it left behind goes now.
        if retired.load(ordering: .acquiring) { await retireAll() }
    }

    /// Shuts every kept worker down and waits until they are gone; later gives shut theirs down.
    public func retireAll() async {
        retired.store(true, ordering: .releasing)
        let sessions = idle.withLock { idle in
            defer { idle = [] }
            return idle.map(\.session)
        }
        await withTaskGroup(of: Void.self) { group in
            for session in sessions { group.addTask { await session.retire() } }
        }
    }
}

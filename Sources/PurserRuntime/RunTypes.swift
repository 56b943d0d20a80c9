import Glibc
public import PurserGateway
import Synchronization
public import PurserLedger
public import PurserProtocol
public import PurserSandbox

/// The waits of a worker's life, in milliseconds (see protocol/SPEC.md, "Timeouts").
public struct SessionTiming: Sendable, Hashable {
    public var startupMs: Int64 = 10_000
    public var cancelGraceMs: Int64 = 1_000
    public var exitGraceMs: Int64 = 1_000
    public var termGraceMs: Int64 = 1_000

    public init() {}
}

/// One routine to run, with the reservation it runs under.
public struct RunRequest: Sendable {
    public var executable: String
    public var arguments: [String] = []
    public var pluginName: String
    public var input: JSONValue
    public var credits: Credits
    public var wallTimeMs: Int64
    public var memoryBytes: Int64
    public var cpuSeconds: Int?
    public var tools: [String] = []
    /// Variables the worker may see, beyond the clean base set.
    public var environment: [String: String] = [:]
    public var timing = SessionTiming()
    public var containment: Containment = .automatic
    public var maxLineBytes = defaultMaxLineBytes
    /// The team the reservation is drawn from; nil: the implicit local team.
    public var team: String?
    /// A hold already reserved for this run (a swarm's scheduler takes it first); the run
    /// settles it instead of reserving one.
    public var hold: LedgerHold?
    /// An open, read-only fd of the file to run; nil runs `executable` by path. With an fd the
    /// worker is this very file (a plugin hashed through the fd runs as hashed, whatever is at
    /// the path by then), and `executable` only names it in messages and argv[0]. The caller
    /// owns the fd and closes it after the run. See `SandboxProfile.executableFD`.
    public var executableFD: Int32?
    /// Keep `executableFD` open in the worker, as a script (`#!`) needs; false for binaries.
    public var keepExecutableFD = false
    /// Open files the worker gets as fds 3, 4, … (`SandboxProfile.passedFDs`); the caller closes them.
    public var passedFDs: [Int32] = []

    /// An MCP tool's price, charged by the supervisor for a call the server answered.
    public var price: ToolPrice?
    /// Gateway integrations the worker may reach through an HTTP proxy on its own loopback
    /// (`HTTP_PROXY`), for tools that fetch URLs themselves (see `EgressProxy`).
    public var egress: [String] = []

    /// Closes the files the request runs (`executableFD`, `passedFDs`), as its owner does after the run.
    public func closeFiles() {
        for fd in passedFDs + (executableFD.map { [$0] } ?? []) { close(fd) }
    }
    /// Only `initialize`, then shut down: the registry's check that a plugin speaks the protocol.
    public var handshakeOnly = false
    /// How deep in `routine/call`s this run is: 0 for a routine, 1 for its step, and so on.
    public var depth = 0
    /// Processes and threads the run may have at once (where the host has a pids cgroup).
    public var maxProcesses = RunRequest.defaultMaxProcesses
    public static let defaultMaxProcesses = 512
    /// Set before cancelling a run to make room for another: its verdict is then
    /// `preempted`, not `cancelled`.
    public var preemption: PreemptionFlag?
    /// Where the host looks at the run's worker while it runs (a fleet host's heartbeat).
    public var probe: WorkerProbe?
    /// Untrusted (the default) gets every sandbox layer; trusted opts out of namespaces,
    /// seccomp and the unprivileged uid (see `SandboxLevel`).
    public var sandbox = SandboxLevel.untrusted
    /// With `trusted`: the layers it opts out of (nil: every optional one; see `SandboxLevel`).
    public var sandboxOptOut: Set<SandboxLayer>?
    /// Host directories a worker with its own root may read, at the same paths.
    public var readOnlyPaths: [String] = []
    /// Run even where the host lacks a layer the level wants; the report names what was not enforced.
    public var allowDegraded = false
    /// Where a trusted plugin's worker may be kept between runs and taken from: set by a
    /// swarm for plugins that allow it. Only a worker that declares `sequentialRuns` is kept.
    var workerPool: WorkerPool?
    /// An untrusted plugin whose manifest lets its worker be kept (`reuseUntrusted`): kept
    /// only where the pool's team allows it too (`WorkerPool.usable(by:)`).
    var reuseUntrusted = false
    /// A step's caller's groups: the step's are made inside them, so its memory, processes
    /// and CPU time count against the caller's limits too (see `RunCgroups`).
    var parentGroups: RunCgroups?

    public init(
        executable: String, pluginName: String? = nil, input: JSONValue, credits: Credits, wallTimeMs: Int64,
        memoryBytes: Int64
    ) {
        self.executable = executable
        self.pluginName = pluginName ?? String(executable.split(separator: "/").last ?? "plugin")
        self.input = input
        self.credits = credits
        self.wallTimeMs = wallTimeMs
        self.memoryBytes = memoryBytes
    }
}

/// Amounts of the three resources a reservation holds.
public struct Amounts: Sendable, Hashable {
    public var credits: Credits
    public var timeMs: Int64
    public var memoryBytes: Int64

    public init(credits: Credits, timeMs: Int64, memoryBytes: Int64) {
        self.credits = credits
        self.timeMs = timeMs
        self.memoryBytes = memoryBytes
    }

    init(_ resources: Resources) {
        self.init(credits: Credits(micros: resources.credits), timeMs: resources.timeMs, memoryBytes: resources.memoryBytes)
    }

    var resources: Resources { Resources(credits: credits.micros, timeMs: timeMs, memoryBytes: memoryBytes) }

    public var json: JSONValue {
        ["credits": credits.json, "timeMs": .number(JSONNumber(timeMs)), "memoryBytes": .number(JSONNumber(memoryBytes))]
    }
}

public struct RunUsage: Sendable, Hashable {
    /// What the run is charged: never more than it reserved.
    public var credits: Credits
    /// What the worker said it spent, which may exceed the charge.
    public var reportedCredits: Credits
    /// What its gateway calls were charged (included in `credits`).
    public var gatewayCredits = Credits.zero
    /// What its child steps (`routine/call`) used (included in `credits`).
    public var stepCredits = Credits.zero
    /// An MCP tool's price for the call, from its manifest (included in `credits`).
    public var toolCredits = Credits.zero
    public var wallMs: Int64
    public var cpuMs: Int64
    public var memoryPeakBytes: Int64

    public var json: JSONValue {
        [
            "credits": credits.json, "reportedCredits": reportedCredits.json, "gatewayCredits": gatewayCredits.json, "stepCredits": stepCredits.json,
            "toolCredits": toolCredits.json,
            "wallMs": .number(JSONNumber(wallMs)), "cpuMs": .number(JSONNumber(cpuMs)),
            "memoryPeakBytes": .number(JSONNumber(memoryPeakBytes)),
        ]
    }
}

public struct RunReport: Sendable {
    public var runID: String
    /// The worker's pid, once it was spawned.
    public var pid: Int32?
    public var verdict: Verdict
    /// Why, in a sentence, when the verdict is not ok.
    public var message: String?
    public var output: JSONValue?
    public var error: RPCError?
    public var usage: RunUsage
    public var reserved: Amounts
    public var stderrTail: String
    public var exit: ExitInfo?
    public var plugin: InitializeResult?
    public var containment: String
    /// The ledger node the run's reservation was held in.
    public var ledgerNode: Int64?
    /// The sandbox the run had: its level, the layers applied, and what was not enforced.
    public var sandbox: SandboxReport?
    /// Which run of its worker process this was: 1 for a fresh worker, more for one kept
    /// from earlier runs (see `RunRequest.workerPool`); 0 if none was started.
    public var workerRun = 0
    /// Log messages, and progress messages' text, dropped past the run's allowance
    /// (`WorkerTextBudget`).
    public var droppedMessages = 0
    /// Why the ledger could not record the run's end (its store failed): nothing was
    /// returned then; the hold stays open in the store until a reclaim returns it.
    public var unsettled: String? = nil
    /// What the ledger gave back when it settled the run's node.
    public var settlement: Amounts? = nil

    /// What the ledger gave back; nothing while the run is unsettled; without a ledger, what
    /// the ledger's rule would have.
    public var returned: Amounts {
        if let settlement { return settlement }
        guard unsettled == nil else { return Amounts(credits: .zero, timeMs: 0, memoryBytes: 0) }
        return Amounts(ChargeRule.settle(cap: reserved.resources, declared: declaredUsage).returned)
    }

    /// What the run declares it used, for the ledger's settle.
    var declaredUsage: Usage {
        Usage(credits: usage.credits.micros, timeMs: usage.wallMs, memoryPeakBytes: usage.memoryPeakBytes)
    }

    /// What the ledger's rule charges for `declared` credits: never past the reservation.
    func charge(declared: Credits) -> Credits {
        var usage = declaredUsage
        usage.credits = declared.micros
        return Credits(micros: ChargeRule.settle(cap: reserved.resources, declared: usage).used.credits)
    }

    /// Takes the ledger's figures: what it charged and what it gave back.
    mutating func settled(_ settlement: Settlement) {
        usage.credits = Credits(micros: settlement.used.credits)
        self.settlement = Amounts(settlement.returned)
    }

    /// Which process ran it, and its how-manieth run that was (more than 1: a kept worker):
    /// `{"pid", "run"}`, as `purser run --json` and `purser mcp serve` show it; nil if no
    /// worker was started.
    public var worker: JSONValue? {
        guard let pid, workerRun > 0 else { return nil }
        return ["pid": .number(JSONNumber(Int64(pid))), "run": .number(JSONNumber(Int64(workerRun)))]
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "runId": .string(runID),
            "pid": pid.map { .number(JSONNumber(Int64($0))) } ?? .null,
            "verdict": .string(verdict.rawValue),
            "output": output ?? .null,
            "usage": usage.json,
            "reserved": reserved.json,
            "returned": returned.json,
            "stderrTail": .string(stderrTail),
            "containment": .string(containment),
        ]
        if let message { object["message"] = .string(message) }
        if let unsettled { object["unsettled"] = .string(unsettled) }
        if let ledgerNode { object["ledgerNode"] = .number(JSONNumber(ledgerNode)) }
        if workerRun > 0 { object["workerRun"] = .number(JSONNumber(Int64(workerRun))) }
        if droppedMessages > 0 { object["droppedMessages"] = .number(JSONNumber(Int64(droppedMessages))) }
        if let sandbox { object["sandbox"] = sandbox.json }
        if let error { object["error"] = error.json }
        if let exit {
            object["exit"] = [
                "code": exit.exitCode.map { .number(JSONNumber(Int64($0))) } ?? .null,
                "signal": exit.signal.map { .number(JSONNumber(Int64($0))) } ?? .null,
            ]
        }
        return .object(object)
    }
}

/// What a worker tells while it runs.
public enum RunEvent: Sendable {
    case progress(ProgressParams)
    case log(LogParams)
    case usage(Credits)
    /// Something the supervisor noticed about the worker (stray lines, unknown methods).
    case notice(String)
    /// A `gateway/call` ended (answered or refused); its charge is in `record.credits`.
    case gatewayCall(GatewayCallRecord)
}

extension RunReport {
    /// A run its team could not grant: nothing was spawned, nothing reserved.
    static func denied(runID: String, request: RunRequest, message: String) -> RunReport {
        RunReport(
            runID: runID, pid: nil, verdict: .denied, message: message, output: nil, error: nil,
            usage: RunUsage(credits: .zero, reportedCredits: .zero, wallMs: 0, cpuMs: 0, memoryPeakBytes: 0),
            reserved: Amounts(credits: .zero, timeMs: 0, memoryBytes: 0), stderrTail: "", exit: nil, plugin: nil,
            containment: "none", ledgerNode: nil)
    }
}

/// A ledger node reserved for a run, and the supervisor lease it is held under.
public struct LedgerHold: Sendable {
    public var node: Node
    public var holder: Holder?

    public init(node: Node, holder: Holder?) {
        self.node = node
        self.holder = holder
    }
}

/// Whether a run was cancelled to make room for another.
public final class PreemptionFlag: Sendable {
    private let raised = Mutex(false)
    public init() {}
    public func set() { raised.withLock { $0 = true } }
    public var isSet: Bool { raised.withLock { $0 } }
}

/// What a run's sandbox was, for its report.
public struct SandboxReport: Sendable, Hashable {
    public var level: SandboxLevel
    public var applied: [SandboxLayer]
    /// Layers the level wants that this host lacks: not enforced (a downgraded run).
    public var notEnforced: [SandboxLayer]
    /// Layers the level does not want (trusted plugins).
    public var optedOut: [SandboxLayer]
    /// Deny-listed syscalls the run tried; each failed with EPERM.
    public var deniedSyscalls: [String] = []
    /// How many deny-listed calls the supervisor saw refused.
    public var deniedCalls = 0
    /// The supervisor stopped watching after `deniedCalls`: the kernel refused any later
    /// ones alone (with ENOSYS), unseen and uncounted.
    public var deniedCallsCapped = false

    public init(_ plan: SandboxPlan) {
        level = plan.level
        applied = plan.applied
        notEnforced = plan.missing
        optedOut = plan.optedOut
    }

    public var json: JSONValue {
        [
            "level": .string(level.rawValue),
            "applied": .array(applied.map { .string($0.rawValue) }),
            "notEnforced": .array(notEnforced.map { .string($0.rawValue) }),
            "optedOut": .array(optedOut.map { .string($0.rawValue) }),
            "deniedSyscalls": .array(deniedSyscalls.map { .string($0) }),
            "deniedCalls": .number(JSONNumber(Int64(deniedCalls))),
            "deniedCallsCapped": .bool(deniedCallsCapped),
        ]
    }
}

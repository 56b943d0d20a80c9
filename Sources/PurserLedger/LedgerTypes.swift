/// An error from the ledger; `code` says whether the caller asked for too much, named
/// something unknown, was fenced off, or the store itself failed.
public struct LedgerError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The parent does not have enough available: nothing was taken.
        public static let insufficient = Code("insufficient")
        public static let unknownNode = Code("unknown node")
        public static let unknownTeam = Code("unknown team")
        public static let invalid = Code("invalid")
        public static let toolNotPermitted = Code("tool not permitted")
        public static let closed = Code("closed")
        /// The caller's lease was reclaimed: it may no longer settle what it held.
        public static let fenced = Code("fenced")
        public static let constraint = Code("constraint")
        public static let storeFailed = Code("store failed")
        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

public typealias NodeID = Int64

public enum NodeKind: String, Sendable, CaseIterable {
    case team, swarm, routine, step

    /// Routines and steps run a worker, so they count against the team's worker limit.
    var runsWorker: Bool { self == .routine || self == .step }
}

/// The three resources a hold has. Credits are micro-credits: integers, never floating point.
public struct Resources: Sendable, Hashable {
    public var credits: Int64
    public var timeMs: Int64
    public var memoryBytes: Int64

    public init(credits: Int64 = 0, timeMs: Int64 = 0, memoryBytes: Int64 = 0) {
        self.credits = credits
        self.timeMs = timeMs
        self.memoryBytes = memoryBytes
    }

    public static let zero = Resources()

    var isNonNegative: Bool { credits >= 0 && timeMs >= 0 && memoryBytes >= 0 }

    /// Every part at most the other's.
    func fits(in other: Resources) -> Bool {
        credits <= other.credits && timeMs <= other.timeMs && memoryBytes <= other.memoryBytes
    }

    public static func + (lhs: Resources, rhs: Resources) -> Resources {
        Resources(credits: lhs.credits + rhs.credits, timeMs: lhs.timeMs + rhs.timeMs, memoryBytes: lhs.memoryBytes + rhs.memoryBytes)
    }

    public static func - (lhs: Resources, rhs: Resources) -> Resources {
        Resources(credits: lhs.credits - rhs.credits, timeMs: lhs.timeMs - rhs.timeMs, memoryBytes: lhs.memoryBytes - rhs.memoryBytes)
    }
}

/// Who holds a node: a supervisor instance and the epoch of its lease.
public struct Holder: Sendable, Hashable {
    public var id: String
    public var epoch: Int64

    public init(id: String, epoch: Int64) {
        self.id = id
        self.epoch = epoch
    }
}

/// A node's balances. For credits and time: cap = available + reserved + consumed while
/// open, and cap = consumed + returned once closed. Memory is held, not spent: its whole
/// hold goes back to the parent when the node closes, and `peak` records what was used.
public struct Node: Sendable, Hashable {
    public var id: NodeID
    public var parent: NodeID?
    public var team: String
    public var kind: NodeKind
    public var name: String
    public var isOpen: Bool
    public var tools: [String]
    public var cap: Resources
    public var available: Resources
    public var reserved: Resources
    /// Credits and time; memoryBytes holds the peak.
    public var consumed: Resources
    public var returned: Resources
    public var workersCap: Int64?
    public var workersInUse: Int64
    public var holder: Holder?
    public var plugin: String?
    public var estimate: Int64?
    public var strategy: String?
    public var outcome: String?
}

extension Node {
    /// The tools a child asking for `tools` may not hold: "*" among this node's tools
    /// permits any tool (the implicit local team has it).
    func missingTools(_ tools: [String]) -> Set<String> {
        self.tools.contains("*") ? [] : Set(tools).subtracting(self.tools)
    }
}

/// One line of the append-only audit trail.
public struct AuditEvent: Sendable, Hashable {
    public var id: Int64
    public var node: NodeID
    public var team: String
    public var kind: String
    public var amounts: Resources
    public var detail: String
    public var atMs: Int64
}

/// What a node's work used, declared when it is settled: totals for the node, children
/// included. The ledger charges the larger of this and what it has recorded.
public struct Usage: Sendable, Hashable {
    public var credits: Int64
    public var timeMs: Int64
    public var memoryPeakBytes: Int64

    public init(credits: Int64, timeMs: Int64, memoryPeakBytes: Int64) {
        self.credits = credits
        self.timeMs = timeMs
        self.memoryPeakBytes = memoryPeakBytes
    }

    /// Nothing recorded: a hold that ends unused (never started, abandoned, reclaimed).
    public static let none = Usage(credits: 0, timeMs: 0, memoryPeakBytes: 0)
}

public struct Settlement: Sendable, Hashable {
    public var node: NodeID
    /// Credits and time charged; memory: the peak.
    public var used: Resources
    public var returned: Resources
    public var outcome: String
}

public struct ReserveRequest: Sendable, Hashable {
    public var parent: NodeID
    public var kind: NodeKind
    public var name: String
    public var amounts: Resources
    public var tools: [String]
    public var holder: Holder?
    public var plugin: String?
    /// The estimate the amount came from, for analytics (credits).
    public var estimate: Int64?
    public var strategy: String?

    public init(
        parent: NodeID, kind: NodeKind, name: String, amounts: Resources, tools: [String] = [], holder: Holder? = nil,
        plugin: String? = nil, estimate: Int64? = nil, strategy: String? = nil
    ) {
        self.parent = parent
        self.kind = kind
        self.name = name
        self.amounts = amounts
        self.tools = tools
        self.holder = holder
        self.plugin = plugin
        self.estimate = estimate
        self.strategy = strategy
    }
}

public struct TeamSpec: Sendable, Hashable {
    public var name: String
    public var caps: Resources
    public var workers: Int64?
    public var tools: [String]

    public init(name: String, caps: Resources, workers: Int64? = nil, tools: [String] = []) {
        self.name = name
        self.caps = caps
        self.workers = workers
        self.tools = tools
    }
}

/// A place where the ledger's invariant does not hold.
public struct Violation: Sendable, Hashable, CustomStringConvertible {
    public var node: NodeID
    public var message: String
    public var description: String { "node \(node): \(message)" }
}

/// Where budgets live. One conformance suite runs against every driver.
public protocol LedgerStore: Sendable {
    func createTeam(_ spec: TeamSpec) throws(LedgerError) -> Node
    func team(named name: String) throws(LedgerError) -> Node
    /// Adds tools to a team's set (never removes: holds below rely on them).
    func addTools(team name: String, tools: [String]) throws(LedgerError) -> Node
    func node(_ id: NodeID) throws(LedgerError) -> Node
    /// The team's nodes, parents before children.
    func tree(team: String) throws(LedgerError) -> [Node]

    /// Takes `amounts` from the parent's available balance, all resources or none.
    func reserve(_ request: ReserveRequest) throws(LedgerError) -> Node
    /// Records spending at a node; refused, not logged, when it exceeds what is available.
    func spend(_ node: NodeID, credits: Int64, holder: Holder?) throws(LedgerError)
    /// A spend recorded under its own event kind and detail (a gateway call, say).
    func charge(_ node: NodeID, credits: Int64, holder: Holder?, event: String, detail: String) throws(LedgerError)
    /// Several such spends in one transaction; returns those refused (each audited).
    func charges(_ node: NodeID, _ items: [(credits: Int64, detail: String)], holder: Holder?, event: String) throws(LedgerError) -> [LedgerError]
    /// Closes a node (its open descendants first), charges what was used and returns the
    /// rest to the parent, in one transaction. Settling twice returns the first settlement.
    func settle(_ node: NodeID, usage: Usage, outcome: String, holder: Holder?) throws(LedgerError) -> Settlement

    /// Starts a lease for a supervisor instance: a new epoch, valid for `ttlMs`.
    func acquireLease(holder id: String, ttlMs: Int64) throws(LedgerError) -> Holder
    func heartbeat(_ holder: Holder, ttlMs: Int64) throws(LedgerError)
    /// Closes every hold of every expired lease, keeping what was spent charged.
    func reclaimExpired() throws(LedgerError) -> [Settlement]
    /// The holders whose leases are live.
    func liveLeases() throws(LedgerError) -> [String]
    /// Ends these holders' leases now, as if they had expired, and closes their holds: for
    /// holders known to be dead (a supervisor of this host whose process is gone).
    func reclaim(leases holders: [String]) throws(LedgerError) -> [Settlement]

    func audit(node: NodeID?, team: String?) throws(LedgerError) -> [AuditEvent]
    func verify() throws(LedgerError) -> [Violation]
    /// Closed nodes, for analytics and the adaptive strategy.
    func history(plugin: String?, team: String?, limit: Int) throws(LedgerError) -> [Node]

    /// Registers or re-pins a plugin (by name).
    func savePlugin(_ plugin: PluginRecord) throws(LedgerError)
    func plugin(named name: String) throws(LedgerError) -> PluginRecord?
    func plugins() throws(LedgerError) -> [PluginRecord]
    /// Returns whether there was one.
    func removePlugin(named name: String) throws(LedgerError) -> Bool

    /// Keeps a swarm run's final report (JSON) for `purser runs`.
    func saveRun(_ run: RunRecord) throws(LedgerError)
    /// The latest runs, newest first; reports are left out.
    func runs(limit: Int) throws(LedgerError) -> [RunRecord]
    func run(id: String) throws(LedgerError) -> RunRecord?

    // The gateway's shared state (see PurserGateway's GatewayStore).
    func consumeQuota(key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?) throws(LedgerError) -> Bool
    func adjustQuota(key: String, requests: Int64, credits: Int64) throws(LedgerError)
    func quotaUsage(keys: [String]) throws(LedgerError) -> [String: (requests: Int64, credits: Int64)]
    func cachedValue(key: String, nowMs: Int64) throws(LedgerError) -> String?
    func storeCachedValue(key: String, value: String, expiresMs: Int64) throws(LedgerError)
    func saveState(name: String, value: String, nowMs: Int64) throws(LedgerError)
    func states() throws(LedgerError) -> [String: String]
}

/// One past swarm run.
public struct RunRecord: Sendable, Hashable {
    public var id: String
    public var swarm: String
    public var team: String
    public var ok: Bool
    public var startedMs: Int64
    /// The final report as JSON text; empty in listings.
    public var report: String

    public init(id: String, swarm: String, team: String, ok: Bool, startedMs: Int64, report: String) {
        self.id = id
        self.swarm = swarm
        self.team = team
        self.ok = ok
        self.startedMs = startedMs
        self.report = report
    }
}

/// A registered plugin: where it is, the SHA-256 it was pinned at, and what it said and
/// declared (handshake and manifest, as JSON text).
public struct PluginRecord: Sendable, Hashable {
    public var name: String
    public var path: String
    /// Lower-case hex.
    public var sha256: String
    public var info: String
    public var addedMs: Int64

    public init(name: String, path: String, sha256: String, info: String, addedMs: Int64) {
        self.name = name
        self.path = path
        self.sha256 = sha256
        self.info = info
        self.addedMs = addedMs
    }
}

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
        /// The team is frozen: nothing new is granted under it.
        public static let frozen = Code("frozen")
        /// No approval has that id (`ApprovalStore`).
        public static let unknownApproval = Code("unknown approval")
        /// The approval was decided already (approved, denied, timed out or withdrawn).
        public static let decided = Code("decided")
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

extension Node {
    /// A hold below the team with worker seats of its own: the runs under it sit in them.
    var hasSeats: Bool { kind != .team && workersCap != nil }
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
    /// Worker seats the hold takes from its team at once, for the runs that will be reserved
    /// under it (a host's chunk of a swarm): they sit in its seats and leave the team's row
    /// alone. Nil for a hold whose runs each take a seat at the team.
    public var seats: Int64?

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

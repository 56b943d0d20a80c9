/// What decides, when a routine's reservation does not fit, who goes first and what becomes
/// of the one that does not fit: one small type per `onConflict` policy, behind one
/// protocol. A policy holds no state and reads nothing itself: whoever schedules (a swarm
/// here) keeps the line and the budget, and asks. See docs/jobs.md, "Order and budget".
public protocol AdmissionPolicy: Sendable {
    /// Where a ready routine stands in line: the lowest rank is served first.
    func rank(_ candidate: AdmissionCandidate) -> AdmissionRank
    /// What becomes of the first in line when it does not fit in what is left.
    func misfit(_ candidate: AdmissionCandidate) -> Misfit
    /// Credits to grant some of the first routines in line (as many as may start) instead
    /// of what each asks, in their order; empty: each asks for its whole request.
    func shares(_ contenders: [AdmissionCandidate], budget: any AdmissionBudget) -> [AdmissionShare]
    /// Runs to stop so that `candidate`, waiting, fits; empty: none.
    func victims(for candidate: AdmissionCandidate, running: [AdmissionHolding], budget: any AdmissionBudget) -> [String]
}

extension AdmissionPolicy {
    public func shares(_ contenders: [AdmissionCandidate], budget: any AdmissionBudget) -> [AdmissionShare] { [] }

    public func victims(
        for candidate: AdmissionCandidate, running: [AdmissionHolding], budget: any AdmissionBudget
    ) -> [String] { [] }
}

/// What becomes of a routine whose reservation does not fit.
public enum Misfit: Sendable, Hashable {
    /// Denied at once.
    case deny
    /// It waits, holding nothing, and nobody behind it starts before it does.
    case wait
}

/// A ready routine, as a policy sees it.
public struct AdmissionCandidate: Sendable, Hashable {
    public var name: String
    public var priority: Int64
    /// The least credits it will run with; nil: all it asks.
    public var minimum: Int64?
    /// When it became ready, in ms since the epoch.
    public var readyMs: Int64
    /// Counts up as routines become ready: first come, first served.
    public var arrival: Int
    /// Its place in the job: the last tie-break.
    public var position: Int

    public init(name: String, priority: Int64, minimum: Int64? = nil, readyMs: Int64, arrival: Int, position: Int) {
        self.name = name
        self.priority = priority
        self.minimum = minimum
        self.readyMs = readyMs
        self.arrival = arrival
        self.position = position
    }
}

/// A run in flight, and the credits it holds: what stopping it would give back.
public struct AdmissionHolding: Sendable, Hashable {
    public var name: String
    public var priority: Int64
    public var credits: Int64

    public init(name: String, priority: Int64, credits: Int64) {
        self.name = name
        self.priority = priority
        self.credits = credits
    }
}

/// Less than a routine asked, granted in place of its request.
public struct AdmissionShare: Sendable, Hashable {
    public var name: String
    public var credits: Int64
    public var asked: Int64

    public init(name: String, credits: Int64, asked: Int64) {
        self.name = name
        self.credits = credits
        self.asked = asked
    }
}

/// A place in line, compared field by field. It does not change while a routine waits, so
/// a line can be a heap, not a list sorted again at every step.
public struct AdmissionRank: Comparable, Sendable, Hashable {
    public var first: Int64
    public var second: Int64
    public var third: Int64

    public static func < (a: AdmissionRank, b: AdmissionRank) -> Bool {
        (a.first, a.second, a.third) < (b.first, b.second, b.third)
    }
}

/// What a policy may ask of the budget; each answer may read the ledger, so a policy asks
/// only for what it needs.
public protocol AdmissionBudget {
    /// Credits left to reserve from; nil when the ledger could not say.
    func available() -> Int64?
    /// Credits the candidate's reservation asks for.
    func asked(_ candidate: AdmissionCandidate) -> Int64
}

extension AdmissionRank {
    /// First come, first served.
    public static func firstCome(_ candidate: AdmissionCandidate) -> AdmissionRank {
        AdmissionRank(first: Int64(candidate.arrival), second: 0, third: Int64(candidate.position))
    }

    /// Priority plus one point per `agingMs` waited since it became ready; then who was
    /// ready first, then the job's order. Comparing `priority + (now − readyMs) / agingMs`
    /// at any one `now` is comparing `readyMs − priority × agingMs`, which does not move.
    public static func aged(_ candidate: AdmissionCandidate, agingMs: Int64) -> AdmissionRank {
        let (lift, overflow) = candidate.priority.multipliedReportingOverflow(by: agingMs)
        let bounded = overflow ? (candidate.priority > 0 ? Int64.max / 2 : Int64.min / 2) : lift
        let (first, overflowed) = candidate.readyMs.subtractingReportingOverflow(bounded)
        return AdmissionRank(
            first: overflowed ? (bounded > 0 ? Int64.min : Int64.max) : first, second: candidate.readyMs,
            third: Int64(candidate.position))
    }
}

extension JobFile.ConflictPolicy {
    /// The policy that `onConflict` names.
    public func admission(agingMs: Int64) -> any AdmissionPolicy {
        switch self {
        case .fail: FailPolicy()
        case .queue: QueuePolicy()
        case .priority: PriorityPolicy(agingMs: agingMs)
        case .proportional: ProportionalPolicy()
        case .preempt: PreemptPolicy(agingMs: agingMs)
        }
    }
}

/// `fail`: a routine that does not fit is denied at once.
public struct FailPolicy: AdmissionPolicy {
    public init() {}
    public func rank(_ candidate: AdmissionCandidate) -> AdmissionRank { .firstCome(candidate) }
    public func misfit(_ candidate: AdmissionCandidate) -> Misfit { .deny }
}

/// `queue`: it waits, first come first served, until running routines return enough.
public struct QueuePolicy: AdmissionPolicy {
    public init() {}
    public func rank(_ candidate: AdmissionCandidate) -> AdmissionRank { .firstCome(candidate) }
    public func misfit(_ candidate: AdmissionCandidate) -> Misfit { .wait }
}

/// `priority`: it waits, in order of priority plus one point per `agingMs` waited, so a
/// stream of high-priority work cannot starve a low-priority routine.
public struct PriorityPolicy: AdmissionPolicy {
    public var agingMs: Int64

    public init(agingMs: Int64) { self.agingMs = max(1, agingMs) }
    public func rank(_ candidate: AdmissionCandidate) -> AdmissionRank { .aged(candidate, agingMs: agingMs) }
    public func misfit(_ candidate: AdmissionCandidate) -> Misfit { .wait }
}

/// `proportional`: when the first in line ask for more than is left, each gets the credits
/// left × its request ÷ all the requests, if that is at least its minimum; the others wait
/// for their whole request.
public struct ProportionalPolicy: AdmissionPolicy {
    public init() {}
    public func rank(_ candidate: AdmissionCandidate) -> AdmissionRank { .firstCome(candidate) }
    public func misfit(_ candidate: AdmissionCandidate) -> Misfit { .wait }

    public func shares(_ contenders: [AdmissionCandidate], budget: any AdmissionBudget) -> [AdmissionShare] {
        guard let available = budget.available(), available > 0 else { return [] }
        let asked = contenders.map { ($0, budget.asked($0)) }
        let total = asked.reduce(Int64(0)) { $0 + $1.1 }
        guard total > available else { return [] }
        return asked.compactMap { candidate, request in
            let share = Int64((Double(available) * Double(request) / Double(total)).rounded(.down))
            guard share >= (candidate.minimum ?? request), share > 0 else { return nil }
            return AdmissionShare(name: candidate.name, credits: share, asked: request)
        }
    }
}

/// `preempt`: in priority order, and a routine that does not fit stops the fewest running
/// routines of lower priority, lowest first (larger holds first among equals), whose holds
/// cover what it lacks. They go back in line; it is first in line for what they return.
public struct PreemptPolicy: AdmissionPolicy {
    public var agingMs: Int64

    public init(agingMs: Int64) { self.agingMs = max(1, agingMs) }
    public func rank(_ candidate: AdmissionCandidate) -> AdmissionRank { .aged(candidate, agingMs: agingMs) }
    public func misfit(_ candidate: AdmissionCandidate) -> Misfit { .wait }

    public func victims(
        for candidate: AdmissionCandidate, running: [AdmissionHolding], budget: any AdmissionBudget
    ) -> [String] {
        guard let available = budget.available() else { return [] }
        let lacking = budget.asked(candidate) - available
        guard lacking > 0 else { return [] }
        let lower = running.filter { $0.priority < candidate.priority }
            .sorted { $0.priority != $1.priority ? $0.priority < $1.priority : $0.credits > $1.credits }
        var covered: Int64 = 0
        var victims: [String] = []
        for holding in lower where covered < lacking {
            victims.append(holding.name)
            covered += holding.credits
        }
        return covered >= lacking ? victims : []
    }
}

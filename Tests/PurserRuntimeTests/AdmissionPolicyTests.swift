import PurserRuntime
import Testing

/// A budget with fixed answers, counting what it was asked.
final class FixedBudget: AdmissionBudget, @unchecked Sendable {
    let left: Int64?
    let requests: [String: Int64]
    var askedAvailable = 0
    var askedFor: [String] = []

    init(available: Int64?, requests: [String: Int64]) {
        left = available
        self.requests = requests
    }

    func available() -> Int64? {
        askedAvailable += 1
        return left
    }

    func asked(_ candidate: AdmissionCandidate) -> Int64 {
        askedFor.append(candidate.name)
        return requests[candidate.name] ?? 0
    }
}

func candidate(_ name: String, priority: Int64 = 0, minimum: Int64? = nil, readyMs: Int64 = 1_000_000, arrival: Int, position: Int? = nil)
    -> AdmissionCandidate
{
    AdmissionCandidate(name: name, priority: priority, minimum: minimum, readyMs: readyMs, arrival: arrival, position: position ?? arrival)
}

/// What every admission policy must do, whichever it is: run against each `onConflict`
/// policy, as the swarm builds it. The fleet's scheduler is to reuse the same policies.
@Suite("Admission policies: conformance")
struct AdmissionConformanceTests {
    static let policies = JobFile.ConflictPolicy.allCases

    func policy(_ name: JobFile.ConflictPolicy) -> any AdmissionPolicy { name.admission(agingMs: 1_000) }

    @Test(arguments: policies)
    func theLineIsATotalOrderThatDoesNotMoveWhileRoutinesWait(name: JobFile.ConflictPolicy) {
        let policy = policy(name)
        let all = (0..<40).map { candidate("r\($0)", priority: Int64($0 % 5) - 2, readyMs: 1_000_000 + Int64($0 % 7) * 300, arrival: $0) }
        let ranks = all.map(policy.rank)
        #expect(Set(ranks).count == ranks.count, "two routines may not share a place in line")
        // A rank is a function of the candidate alone: asked again, the same.
        #expect(all.map(policy.rank) == ranks)
    }

    @Test(arguments: policies)
    func amongEqualsTheFirstReadyGoesFirst(name: JobFile.ConflictPolicy) {
        let policy = policy(name)
        let earlier = candidate("a", priority: 3, readyMs: 1_000, arrival: 1)
        let later = candidate("b", priority: 3, readyMs: 2_000, arrival: 2)
        #expect(policy.rank(earlier) < policy.rank(later))
    }

    @Test(arguments: policies)
    func sharesNeverGiveMoreThanIsLeftNorLessThanAMinimum(name: JobFile.ConflictPolicy) {
        let policy = policy(name)
        let contenders = [
            candidate("a", minimum: 3_000, arrival: 1), candidate("b", minimum: 3_000, arrival: 2),
            candidate("c", minimum: 2_000, arrival: 3), candidate("d", minimum: 4_000, arrival: 4),
        ]
        let budget = FixedBudget(available: 12_000, requests: ["a": 6_000, "b": 6_000, "c": 4_000, "d": 4_000])
        let shares = policy.shares(contenders, budget: budget)
        #expect(shares.reduce(0) { $0 + $1.credits } <= 12_000)
        for share in shares {
            let minimum = contenders.first { $0.name == share.name }.map { $0.minimum ?? share.asked }
            #expect(minimum != nil, "a share for a routine not in line: \(share.name)")
            #expect(share.credits > 0 && share.credits >= minimum ?? 0 && share.credits < share.asked)
        }
        #expect(shares.map(\.name) == contenders.map(\.name).filter { name in shares.contains { $0.name == name } }, "in line order")
        // Enough for everyone: nobody gets less than asked.
        #expect(policy.shares(contenders, budget: FixedBudget(available: 20_000, requests: budget.requests)).isEmpty)
    }

    @Test(arguments: policies)
    func victimsAreOfLowerPriorityAndCoverWhatIsLacking(name: JobFile.ConflictPolicy) {
        let policy = policy(name)
        let waiting = candidate("high", priority: 5, arrival: 9)
        let running = [
            AdmissionHolding(name: "low", priority: 0, credits: 4_000), AdmissionHolding(name: "mid", priority: 3, credits: 6_000),
            AdmissionHolding(name: "peer", priority: 5, credits: 9_000), AdmissionHolding(name: "top", priority: 7, credits: 9_000),
        ]
        let budget = FixedBudget(available: 1_000, requests: ["high": 6_000])
        let victims = policy.victims(for: waiting, running: running, budget: budget)
        let stopped = running.filter { victims.contains($0.name) }
        #expect(stopped.count == victims.count, "only runs that are running")
        #expect(stopped.allSatisfy { $0.priority < waiting.priority })
        if !victims.isEmpty {
            #expect(stopped.reduce(0) { $0 + $1.credits } >= 6_000 - 1_000)
            #expect(policy.misfit(waiting) == .wait, "a policy that makes room keeps the routine waiting for it")
        }
        // Nothing lacking, nobody stopped; nobody of lower priority, nobody stopped.
        #expect(policy.victims(for: waiting, running: running, budget: FixedBudget(available: 7_000, requests: ["high": 6_000])).isEmpty)
        #expect(policy.victims(for: candidate("low2", priority: -1, arrival: 10), running: running, budget: budget).isEmpty)
    }

    @Test(arguments: policies)
    func aPolicyThatDoesNotNeedTheBudgetDoesNotReadIt(name: JobFile.ConflictPolicy) {
        let policy = policy(name)
        let budget = FixedBudget(available: 0, requests: [:])
        _ = policy.shares([candidate("a", arrival: 1)], budget: budget)
        _ = policy.victims(for: candidate("a", arrival: 1), running: [], budget: budget)
        let reads = budget.askedAvailable + budget.askedFor.count
        #expect(name == .proportional || name == .preempt || reads == 0, "\(reads) reads")
    }
}

/// What tells the five policies apart.
@Suite("Admission policies: each one")
struct AdmissionPolicyTests {
    @Test(arguments: [
        (JobFile.ConflictPolicy.fail, Misfit.deny), (.queue, .wait), (.priority, .wait), (.proportional, .wait), (.preempt, .wait),
    ])
    func whatBecomesOfARoutineThatDoesNotFit(name: JobFile.ConflictPolicy, expected: Misfit) {
        #expect(name.admission(agingMs: 1_000).misfit(candidate("a", arrival: 1)) == expected)
    }

    /// Ready first beats priority under the first-come policies; not under the others.
    @Test(arguments: [
        (JobFile.ConflictPolicy.fail, "low"), (.queue, "low"), (.proportional, "low"), (.priority, "high"), (.preempt, "high"),
    ])
    func whoIsServedFirst(name: JobFile.ConflictPolicy, first: String) {
        let policy = name.admission(agingMs: 1_000)
        let low = candidate("low", priority: 0, readyMs: 1_000, arrival: 1)
        let high = candidate("high", priority: 5, readyMs: 1_100, arrival: 2)
        #expect([low, high].min { policy.rank($0) < policy.rank($1) }?.name == first)
    }

    /// One point per `aging` waited: 5 points behind, 6 agings ahead, it goes first.
    @Test(arguments: [JobFile.ConflictPolicy.priority, .preempt])
    func agingLiftsALongWaitOverHigherPriority(name: JobFile.ConflictPolicy) {
        let policy = name.admission(agingMs: 1_000)
        let waited = candidate("waited", priority: 0, readyMs: 10_000, arrival: 1)
        #expect(policy.rank(waited) < policy.rank(candidate("high", priority: 5, readyMs: 16_000, arrival: 2)))
        #expect(policy.rank(waited) > policy.rank(candidate("high", priority: 5, readyMs: 14_000, arrival: 2)))
    }

    @Test func extremePrioritiesAndAgingsStayInOrder() {
        let policy = PriorityPolicy(agingMs: .max)
        let high = candidate("high", priority: 1_000, readyMs: 2_000, arrival: 2)
        let low = candidate("low", priority: -1_000, readyMs: 1_000, arrival: 1)
        #expect(policy.rank(high) < policy.rank(low))
    }

    /// 12 left for 6 + 6 + 4 + 4 asked: 3.6, 3.6, 2.4 and 2.4, but d's minimum is 4.
    @Test func proportionalSharesByRequestAboveTheMinimum() {
        let contenders = [
            candidate("a", minimum: 3_000, arrival: 1), candidate("b", minimum: 3_000, arrival: 2),
            candidate("c", minimum: 2_000, arrival: 3), candidate("d", minimum: 4_000, arrival: 4),
        ]
        let budget = FixedBudget(available: 12_000, requests: ["a": 6_000, "b": 6_000, "c": 4_000, "d": 4_000])
        let shares = ProportionalPolicy().shares(contenders, budget: budget)
        #expect(shares.map(\.name) == ["a", "b", "c"])
        #expect(shares.map(\.credits) == [3_600, 3_600, 2_400])
        #expect(shares.map(\.asked) == [6_000, 6_000, 4_000])
    }

    /// The fewest, lowest priority first and larger holds first among equals.
    @Test func preemptStopsTheFewestLowestFirst() {
        let running = [
            AdmissionHolding(name: "small", priority: 0, credits: 1_000), AdmissionHolding(name: "big", priority: 0, credits: 3_000),
            AdmissionHolding(name: "mid", priority: 2, credits: 5_000), AdmissionHolding(name: "equal", priority: 5, credits: 9_000),
        ]
        let policy = PreemptPolicy(agingMs: 1_000)
        let high = candidate("high", priority: 5, arrival: 9)
        #expect(policy.victims(for: high, running: running, budget: FixedBudget(available: 0, requests: ["high": 3_000])) == ["big"])
        #expect(policy.victims(for: high, running: running, budget: FixedBudget(available: 0, requests: ["high": 4_000])) == ["big", "small"])
        #expect(policy.victims(for: high, running: running, budget: FixedBudget(available: 0, requests: ["high": 6_000])) == ["big", "small", "mid"])
        #expect(policy.victims(for: high, running: running, budget: FixedBudget(available: 0, requests: ["high": 10_000])).isEmpty,
            "not enough below it: nobody is stopped for nothing")
    }
}

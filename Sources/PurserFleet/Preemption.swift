import PurserLedger
import PurserRuntime

/// `preempt` between a team's swarms: a swarm that does not fit takes back credits from
/// the team's swarms of lower rank (priority plus aging, as the queue orders them), lowest
/// first. First what they hold and have not reserved for a routine: nothing is stopped for
/// that. Then, if that is not enough, the fewest of their running routines whose holds cover
/// the rest (`PreemptPolicy`'s choice): their hosts stop them, they end `preempted`, their
/// unused credits return to their swarm and, on the next pass, from there to the team. A
/// swarm that gave back is paused: it claims nothing until its hold grows back by what it
/// gave, which it waits for in the team's line like a queued swarm.
struct Preemption {
    let host: FleetHost

    struct Taken: Sendable {
        var gave: [(swarm: String, credits: Int64)] = []
        var stopped: [(swarm: String, routine: String)] = []
        var isEmpty: Bool { gave.isEmpty && stopped.isEmpty }
    }

    /// Runs on a store thread. `asking`: the credits (µ) `candidate` needs from the team.
    func makeRoom(for candidate: QueuedSwarm, asking: Int64, agingMs: Int64) throws(LedgerError) -> Taken {
        let team = try host.ledger.team(named: candidate.team)
        var lacking = asking - team.available.credits
        var taken = Taken()
        guard lacking > 0 else { return taken }
        let (swarms, stopping) = try host.fleet.teamSwarms(team: candidate.team)
        let rank = { (swarm: QueuedSwarm) in Self.rank(swarm, agingMs: agingMs) }
        let lower = swarms.filter { swarm in
            swarm.state == "running" && swarm.id != candidate.id && swarm.node != nil && swarm.holder != nil
                && rank(swarm) < rank(candidate)
        }.sorted { rank($0) < rank($1) }
        for swarm in lower where lacking > 0 {
            let give = min(try host.ledger.node(swarm.node!).available.credits, lacking)
            guard give > 0 else { continue }
            // Paused first: a swarm that still claims would reserve what is being given back.
            try host.fleet.pause(swarm: swarm.id, gave: give, routines: [])
            do throws(LedgerError) {
                _ = try host.ledger.resize(swarm.node!, credits: -give, holder: swarm.holder)
            } catch {
                try host.fleet.pause(swarm: swarm.id, gave: -give, routines: [])
                throw error
            }
            lacking -= give
            taken.gave.append((swarm.id, give))
        }
        // Routines told to stop are still returning: wait for them before stopping more.
        guard lacking > 0, stopping == 0 else { return taken }
        let victims = try self.victims(among: lower, lacking: lacking)
        for (swarm, routines) in Dictionary(grouping: victims, by: \.swarm) {
            try host.fleet.pause(swarm: swarm, gave: 0, routines: routines.map(\.routine))
        }
        taken.stopped = victims
        return taken
    }

    /// The fewest running routines of `lower` (lowest first) whose holds cover `lacking`.
    private func victims(among lower: [QueuedSwarm], lacking: Int64) throws(LedgerError) -> [(swarm: String, routine: String)] {
        var holdings: [AdmissionHolding] = []
        var owners: [String: (swarm: String, routine: String)] = [:]
        for (place, swarm) in lower.enumerated() {
            for child in try host.ledger.openChildren(of: swarm.node!) where child.kind == .routine {
                let key = "\(swarm.id)/\(child.name)"
                owners[key] = (swarm.id, child.name)
                holdings.append(AdmissionHolding(name: key, priority: Int64(place), credits: child.cap.credits))
            }
        }
        let candidate = AdmissionCandidate(name: "", priority: Int64(lower.count), readyMs: 0, arrival: 0, position: 0)
        return PreemptPolicy(agingMs: 1).victims(for: candidate, running: holdings, budget: Lacking(credits: lacking))
            .compactMap { owners[$0] }
    }

    /// Higher is first in the team's line: priority plus one for every `agingMs` waited.
    /// Compared at one instant, that is `priority × agingMs − submitted`, which needs no clock.
    static func rank(_ swarm: QueuedSwarm, agingMs: Int64) -> Int64 {
        let (lift, overflow) = swarm.priority.multipliedReportingOverflow(by: max(agingMs, 1))
        return (overflow ? (swarm.priority > 0 ? Int64.max / 2 : Int64.min / 2) : lift) - swarm.submittedMs
    }

    private struct Lacking: AdmissionBudget {
        let credits: Int64
        func available() -> Int64? { 0 }
        func asked(_ candidate: AdmissionCandidate) -> Int64 { credits }
    }
}

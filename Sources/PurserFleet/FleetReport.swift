public import PurserLedger
public import PurserProtocol
public import PurserRuntime

/// A fleet swarm's final report: each routine's verdict, attempts and host, every attempt
/// (lost ones too), and what the ledger settled for the swarm.
public struct FleetReport: Sendable {
    public var swarm: QueuedSwarm
    public var verdict: String
    public var routines: [QueuedRoutine]
    public var attempts: [Attempt]
    public var settlement: Settlement?
    /// The swarm's hold by tier once settled, as `purser run` reports them.
    public var tiers: [TierSummary] = []

    /// Settles the swarm's hold (a second try returns the first settlement), ends its
    /// lease, and reads what the report shows.
    static func settle(_ row: QueuedSwarm, host: FleetHost) throws(RuntimeError) -> FleetReport {
        let (routines, attempts) = try RuntimeError.fromLedger { () throws(LedgerError) in
            (try host.fleet.routines(swarm: row.id), try host.fleet.attempts(swarm: row.id))
        }
        let verdict = Self.verdict(routines)
        var settlement: Settlement?
        var tiers: [TierSummary] = []
        if let node = row.node, let holder = row.holder {
            settlement = try FleetSwarm.settle(node: node, holder: holder, allOK: verdict == "ok", store: host.ledger)
            _ = try RuntimeError.fromLedger { () throws(LedgerError) in try host.ledger.reclaim(leases: [holder.id]) }
            tiers = TierSummary.tiers(of: node, in: try RuntimeError.fromLedger { () throws(LedgerError) in try host.ledger.subtree(of: node) }).tiers
        }
        return FleetReport(swarm: row, verdict: verdict, routines: routines, attempts: attempts, settlement: settlement, tiers: tiers)
    }

    static func verdict(_ routines: [QueuedRoutine]) -> String {
        if routines.allSatisfy({ $0.verdict == "ok" }) { return "ok" }
        return routines.contains { $0.verdict == "cancelled" } ? "cancelled" : "failed"
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "swarmId": .string(swarm.id), "swarm": .string(swarm.name), "team": .string(swarm.team), "verdict": .string(verdict),
            "submittedMs": .number(JSONNumber(swarm.submittedMs)),
            "routines": .array(routines.map { routine in
                .object([
                    "name": .string(routine.name), "verdict": routine.verdict.map(JSONValue.string) ?? .null,
                    "attempts": .number(JSONNumber(Int64(routine.attempt))), "host": routine.host.map(JSONValue.string) ?? .null,
                    "message": routine.message.map(JSONValue.string) ?? .null,
                    "ledgerNode": routine.node.map { .number(JSONNumber($0)) } ?? .null,
                ])
            }),
            "attempts": .array(attempts.map { attempt in
                .object([
                    "routine": .string(attempt.routine), "attempt": .number(JSONNumber(Int64(attempt.attempt))),
                    "host": .string(attempt.host), "startedMs": .number(JSONNumber(attempt.startedMs)),
                    "endedMs": attempt.endedMs.map { .number(JSONNumber($0)) } ?? .null,
                    "verdict": attempt.verdict.map(JSONValue.string) ?? .null,
                ])
            }),
        ]
        if let settlement {
            object["used"] = Credits(micros: settlement.used.credits).json
            object["returned"] = Credits(micros: settlement.returned.credits).json
        }
        if let node = swarm.node { object["swarmNode"] = .number(JSONNumber(node)) }
        if !tiers.isEmpty { object["tiers"] = .array(tiers.map(\.json)) }
        return .object(object)
    }

    /// The report as `purser runs` keeps it.
    var record: RunRecord {
        RunRecord(
            id: swarm.id, swarm: swarm.name, team: swarm.team, ok: verdict == "ok", startedMs: swarm.submittedMs,
            report: json.serialized())
    }
}


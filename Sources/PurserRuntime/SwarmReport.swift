public import PurserLedger
public import PurserProtocol
public import PurserSandbox

/// One line of a swarm's event stream (`purser run --events FILE`, NDJSON).
public struct SwarmEvent: Sendable {
    public var atMs: Int64
    /// reserve, grant, deny, queue, start, usage, gateway_call, progress, log, retry,
    /// verdict, skip, return.
    public var kind: String
    public var routine: String?
    public var fields: [String: JSONValue]

    public init(atMs: Int64, kind: String, routine: String?, fields: [String: JSONValue]) {
        self.atMs = atMs
        self.kind = kind
        self.routine = routine
        self.fields = fields
    }

    public var json: JSONValue {
        var object = fields
        object["at"] = .number(JSONNumber(atMs))
        object["event"] = .string(kind)
        if let routine { object["routine"] = .string(routine) }
        return .object(object)
    }
}

/// How one routine of a swarm ended.
public struct RoutineOutcome: Sendable {
    public var name: String
    /// Its run's verdict; `skipped` when a dependency did not succeed or it was not
    /// started, `ok` from the cache.
    public var verdict: Verdict
    public var attempts: Int
    public var message: String?
    public var output: JSONValue?
    public var ledgerNode: NodeID?
    public var report: RunReport?
    /// Served from the deterministic routine cache: no reservation, no spawn, no credits.
    public var cached = false
    /// Why the run's settle failed, if it did: its usage is in `report`, not in the ledger.
    public var settleError: String?

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "verdict": .string(verdict.rawValue), "attempts": .number(JSONNumber(Int64(attempts))),
        ]
        if let message { object["message"] = .string(message) }
        if let output { object["output"] = output }
        if let ledgerNode { object["ledgerNode"] = .number(JSONNumber(ledgerNode)) }
        if cached { object["cached"] = true }
        if let settleError {
            object["settled"] = false
            object["settleError"] = .string(settleError)
        }
        if let report { object["usage"] = report.usage.json }
        if let worker = report?.worker { object["worker"] = worker }
        return .object(object)
    }
}

/// Reserved, used and returned at one tier of the tree.
public struct TierSummary: Sendable {
    public var tier: String
    public var nodes: Int
    public var reserved: Resources
    public var used: Resources
    public var returned: Resources

    public init(tier: String, nodes: [Node]) {
        self.tier = tier
        self.nodes = nodes.count
        reserved = nodes.reduce(.zero) { $0 + $1.cap }
        used = nodes.reduce(.zero) { $0 + Resources(credits: $1.consumed.credits, timeMs: $1.consumed.timeMs, memoryBytes: $1.consumed.memoryBytes) }
        returned = nodes.reduce(.zero) { $0 + $1.returned }
    }

    public var json: JSONValue {
        func amounts(_ value: Resources) -> JSONValue {
            [
                "credits": Credits(micros: value.credits).json, "timeMs": .number(JSONNumber(value.timeMs)),
                "memoryBytes": .number(JSONNumber(value.memoryBytes)),
            ]
        }
        return [
            "tier": .string(tier), "nodes": .number(JSONNumber(Int64(nodes))), "reserved": amounts(reserved),
            "used": amounts(used), "returned": amounts(returned),
        ]
    }
}

public struct SwarmReport: Sendable {
    public var runID: String
    public var startedMs: Int64
    public var swarm: String
    public var team: String
    public var swarmNode: NodeID?
    /// Why the swarm itself could not start (its team could not grant its reservation).
    public var denied: String?
    /// The ledger's store stayed away past the store retry window: routines were left
    /// unstarted or unsettled (each says which), and the report holds what is known.
    public var storeError: String?
    public var routines: [RoutineOutcome]
    public var tiers: [TierSummary]
    public var analytics: Analytics?
    public var wallMs: Int64

    /// How many routines ended with each verdict, by its name (the report's `verdicts`).
    public var verdictCounts: [String: Int] {
        routines.reduce(into: [:]) { $0[$1.verdict.rawValue, default: 0] += 1 }
    }

    public var allOK: Bool {
        denied == nil && storeError == nil && routines.allSatisfy { $0.verdict == .ok && $0.settleError == nil }
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "runId": .string(runID), "startedMs": .number(JSONNumber(startedMs)),
            "swarm": .string(swarm), "team": .string(team), "ok": .bool(allOK),
            "routines": .array(routines.map(\.json)), "tiers": .array(tiers.map(\.json)),
            "verdicts": .object(verdictCounts.mapValues { .number(JSONNumber(Int64($0))) }),
            "wallMs": .number(JSONNumber(wallMs)),
        ]
        if let swarmNode { object["swarmNode"] = .number(JSONNumber(swarmNode)) }
        if let denied { object["denied"] = .string(denied) }
        if let storeError { object["storeError"] = .string(storeError) }
        if let analytics {
            object["analytics"] = [
                "reservationAccuracy": .number(JSONNumber(analytics.reservationAccuracy) ?? JSONNumber(0)),
                "utilizationEfficiency": .number(JSONNumber(analytics.utilizationEfficiency) ?? JSONNumber(0)),
                "returnRate": .number(JSONNumber(analytics.returnRate) ?? JSONNumber(0)),
            ]
        }
        return .object(object)
    }
}

/// What a swarm tells while it runs, and what it reports at the end.
extension SwarmRunner {
    /// A routine's own events, into the swarm's stream.
    func forward(_ event: RunEvent, routine: String) {
        let (kind, fields) = event.swarmEvent
        emit(kind, routine, fields)
    }

    func report(_ schedule: Schedule, store: any LedgerStore, swarm: Node, team: Node, started: ContinuousClock.Instant) -> SwarmReport {
        let routines = job.routines.map { schedule.outcomes[$0.name] ?? RoutineOutcome(name: $0.name, verdict: .skipped, attempts: 0) }
        let tree = logged("reading the team's tree for the report") { () throws(LedgerError) in try store.tree(team: job.team.name) } ?? []
        let (tiers, routineNodes) = TierSummary.tiers(of: swarm.id, in: tree)
        return SwarmReport(
            runID: "", startedMs: 0,
            swarm: job.swarm.name, team: job.team.name, swarmNode: swarm.id, denied: nil, routines: routines, tiers: tiers,
            analytics: routineNodes.isEmpty ? nil : Analytics(routineNodes), wallMs: milliseconds(since: started))
    }
}

extension RunEvent {
    /// The event a swarm's stream shows for a run's event: its kind and fields.
    public var swarmEvent: (kind: String, fields: [String: JSONValue]) {
        switch self {
        case .usage(let credits): return ("spend", ["credits": credits.json])
        case .gatewayCall(let record):
            var fields: [String: JSONValue] = [
                "integration": .string(record.integration), "credits": record.credits.json, "cached": .bool(record.cached),
                "latencyMicros": .number(JSONNumber(record.latencyMicros)),
            ]
            if let status = record.status { fields["status"] = .number(JSONNumber(status)) }
            if let reason = record.reason { fields["reason"] = .string(reason.rawValue) }
            if let tunnel = record.tunnel {
                fields["bytesUp"] = .number(JSONNumber(tunnel.bytesUp))
                fields["bytesDown"] = .number(JSONNumber(tunnel.bytesDown))
                fields["ended"] = .string(tunnel.ended.rawValue)
            }
            return ("gateway_call", fields)
        case .progress(let progress):
            return ("progress", ["fraction": progress.fraction.flatMap { JSONNumber($0) }.map(JSONValue.number) ?? .null,
                "message": progress.message.map(JSONValue.string) ?? .null])
        case .log(let log): return ("log", ["level": .string(log.level), "message": .string(log.message)])
        case .notice(let notice): return ("notice", ["message": .string(notice)])
        }
    }
}

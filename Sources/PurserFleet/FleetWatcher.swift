public import PurserLedger
public import PurserProtocol
public import PurserRuntime

/// `purser watch`: a swarm's events as hosts write them, in order, from the store; then
/// its final report. It polls (the store is the only thing the fleet shares): every
/// `pollMs` while the swarm runs.
public struct FleetWatcher: Sendable {
    let store: any QueueStore
    let swarm: String
    var pollMs: Int64 = 200

    public init(store: any QueueStore, swarm: String) {
        self.store = store
        self.swarm = swarm
    }

    /// Follows the swarm to its end; `onEvent` sees each event once.
    public func follow(_ onEvent: @escaping @Sendable (SwarmEvent) -> Void) async throws(RuntimeError) -> FleetReportView {
        try await follow(after: 0) { _, event in onEvent(event) }
    }

    /// The same from the event after `after` (an id `onEvent` was given): a watch taken up again.
    public func follow(after start: Int64, _ onEvent: @escaping @Sendable (Int64, SwarmEvent) -> Void) async throws(RuntimeError) -> FleetReportView {
        var after = start
        var sawDone = false
        var doneSince: ContinuousClock.Instant?
        while true {
            // A watcher whose client went away (the HTTP API's event stream) stops.
            if Task.isCancelled { throw RuntimeError(code: .invalidRequest, message: "the watch of \(swarm) was cancelled") }
            let (row, events) = try await read(after)
            guard let row else { throw RuntimeError(code: .invalidRequest, message: "no swarm \(swarm) in this store") }
            for event in events {
                after = event.id
                sawDone = sawDone || event.kind == "done"
                let fields = (try? JSONParser.parse(Array(event.fields.utf8)))?.objectValue ?? [:]
                onEvent(event.id, SwarmEvent(atMs: event.atMs, kind: event.kind, routine: event.routine, fields: fields))
            }
            // Hosts write events a moment after the queue's rows: the completing host's
            // `done` comes last. A swarm that never ran has none; two seconds is enough.
            if row.state == "done", events.isEmpty {
                doneSince = doneSince ?? .now
                if sawDone || row.node == nil || ContinuousClock.now - doneSince! > .seconds(2) { return FleetReportView(row) }
            }
            if events.isEmpty { try? await Task.sleep(for: .milliseconds(pollMs)) }
        }
    }

    private func read(_ after: Int64) async throws(RuntimeError) -> (QueuedSwarm?, [FleetEvent]) {
        do throws(LedgerError) {
            return try await StoreThreads.shared.run { () throws(LedgerError) in
                // The row first: a swarm seen done has written all its events before.
                let row = try store.swarm(id: swarm)
                return (row, try store.events(swarm: swarm, after: after, limit: 500))
            }
        } catch {
            throw RuntimeError(error)
        }
    }
}

/// A finished swarm as `watch` shows it.
public struct FleetReportView: Sendable {
    public var swarm: QueuedSwarm
    public var verdict: String
    /// The report as the completing host wrote it; nil for a swarm that never ran.
    public var report: JSONValue?

    init(_ row: QueuedSwarm) {
        swarm = row
        verdict = row.verdict ?? "failed"
        report = row.report.flatMap { try? JSONParser.parse(Array($0.utf8)) }
    }

    public var json: String {
        report?.serialized() ?? JSONValue.object([
            "swarmId": .string(swarm.id), "swarm": .string(swarm.name), "team": .string(swarm.team), "verdict": .string(verdict),
            "message": swarm.message.map(JSONValue.string) ?? .null,
        ]).serialized()
    }
}

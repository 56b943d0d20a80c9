import Logging
import PurserLedger
import PurserProtocol
import Synchronization

/// A host's events for `purser watch`, written to the store in order, in batches, on the
/// store's threads: a worker's flood of progress costs a few transactions, not one each,
/// and a run never waits for its events to be written.
final class EventLog: Sendable {
    private let store: any QueueStore
    private let logger: Logger
    private let pending = Mutex<(events: [FleetEvent], flushing: Bool)>(([], false))
    /// Beyond this many waiting events (a store that is away), the oldest are dropped, and said.
    static let maxPending = 10_000
    /// How long the first event of a batch waits for others: a host's routines each add a
    /// few events, and one write for several routines' costs the store a statement, not
    /// one a routine (`watch` learns of them this much later).
    static let gatherMs = 10

    init(store: any QueueStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func add(_ swarm: String, _ kind: String, _ routine: String?, _ fields: [String: JSONValue] = [:]) {
        let event = FleetEvent(
            swarm: swarm, atMs: unixMilliseconds(), kind: kind, routine: routine, fields: JSONValue.object(fields).serialized())
        let start = pending.withLock { state -> Bool in
            state.events.append(event)
            if state.events.count > Self.maxPending { state.events.removeFirst(state.events.count - Self.maxPending) }
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        guard start else { return }
        Task {
            try? await Task.sleep(for: .milliseconds(Self.gatherMs))
            StoreThreads.shared.submit { self.flush() }
        }
    }

    /// Writes what waits until nothing does; one writer at a time keeps the order.
    private func flush() {
        while true {
            let batch = pending.withLock { state -> [FleetEvent] in
                let batch = state.events
                state.events = []
                if batch.isEmpty { state.flushing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                try store.appendEvents(batch)
            } catch {
                logger.error("events not written", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            }
        }
    }

    /// Waits (off the pool) until what was added so far is written.
    func drain() async {
        while pending.withLock({ $0.flushing }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

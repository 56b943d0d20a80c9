import PurserAPI
import PurserFleet
import PurserProtocol
import PurserRuntime
import Synchronization

/// Follows a swarm to its report through a server, else the store. A stream the server cuts
/// (it drained, or died) is asked again, of the server found anew (the store's when none
/// answers), from the event after the last one shown.
struct SwarmFollower {
    let id: String
    let ledger: LedgerOptions
    let server: ServerOptions
    /// Cuts taken before `watch` gives up on the server.
    static let cutsAllowed = 5

    /// The swarm's report, once each event went to `show`.
    func report(from client: APIClient?, _ show: @escaping @Sendable (Int64, SwarmEvent) -> Void) async throws -> JSONValue {
        let shown = LastEvent()
        let showing: @Sendable (Int64, SwarmEvent) -> Void = { eventID, event in
            shown.set(eventID)
            show(eventID, event)
        }
        var client = client
        var cuts = 0
        while let asking = client {
            switch try await RemoteWatch(client: asking).follow(id, after: shown.value, showing) {
            case .ended(let end): return end
            case .cut:
                cuts += 1
                guard cuts <= Self.cutsAllowed else {
                    throw SupervisorFailure(message: "the server at \(asking.describe) cut the swarm's event stream \(cuts) times")
                }
                try await Task.sleep(for: .milliseconds(200 * cuts))
                client = try await server.client(ledger)
            }
        }
        return try await followStore(after: shown.value, showing)
    }

    private func followStore(after: Int64, _ show: @escaping @Sendable (Int64, SwarmEvent) -> Void) async throws -> JSONValue {
        let watcher = FleetWatcher(store: try fleetStore(try ledger.runtime()), swarm: id)
        do {
            let view = try await watcher.follow(after: after, show)
            return try JSONParser.parse(view.json)
        } catch let error as RuntimeError {
            throw commandFailure(error)
        }
    }
}

/// The id of the last event shown, set from a watcher's callback.
final class LastEvent: Sendable {
    private let id = Mutex<Int64>(0)
    func set(_ value: Int64) { id.withLock { $0 = value } }
    var value: Int64 { id.withLock { $0 } }
}

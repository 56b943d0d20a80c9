import HTTPTypes
import Hummingbird
import PurserFleet
import PurserLedger
import PurserProtocol
import PurserRuntime

/// `GET /v1/swarms/{id}/events`: the swarm's events as Server-Sent Events, each `data:` the
/// object `purser watch --events` writes, from its first event to its end; then an `end`
/// event with its report (as `watch --json` prints it), and the stream closes. A client that
/// goes away stops the watch.
struct EventStream: Sendable {
    let stores: APIStores
    let open: OpenStreams
    static let keepAlive = Duration.seconds(15)

    /// From the first event, or after the one a client names (`Last-Event-ID`, as a browser's
    /// EventSource sends it when it reconnects, or `?after=ID`).
    func events(_ id: String, _ request: Request) async throws -> Response {
        let named = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["after"].map(String.init)
        var after: Int64 = 0
        if let named {
            guard let value = Int64(named), value >= 0 else { throw APIError(.badRequest, "bad_parameter", "after: expected an event's id", field: "after") }
            after = value
        }
        let fleet = stores.fleet
        guard try await stores.call({ () throws(LedgerError) in try fleet.swarmState(id: id) }) != nil else {
            throw APIError.notFound("no swarm \(id)")
        }
        return try ServerSentEvents.respond(open: open) { continuation in
            [watch(id, after: after, into: continuation), ServerSentEvents.keepAlive(continuation, every: Self.keepAlive)]
        }
    }

    /// Writes the swarm's events, then its `end` (or an `error`), and closes the stream.
    private func watch(
        _ id: String, after: Int64, into continuation: AsyncStream<ByteBuffer>.Continuation
    ) -> Task<Void, Never> {
        let fleet = stores.fleet
        return Task {
            do throws(RuntimeError) {
                let report = try await FleetWatcher(store: fleet, swarm: id).follow(after: after) { eventID, event in
                    continuation.yield(Self.frame(event.json.serialized(), id: eventID))
                }
                continuation.yield(Self.frame(report.json, event: "end"))
            } catch {
                let failure = error.code == .store
                    ? APIError(.serviceUnavailable, "store_unavailable", error.message) : APIError(.internalServerError, "internal", error.message)
                continuation.yield(Self.frame(failure.json.serialized(), event: "error"))
            }
            continuation.finish()
        }
    }

    /// One event; serialized JSON holds no newline, so one `data:` line carries it.
    static func frame(_ data: String, event: String? = nil, id: Int64? = nil) -> ByteBuffer {
        ByteBuffer(string: (id.map { "id: \($0)\n" } ?? "") + (event.map { "event: \($0)\n" } ?? "") + "data: \(data)\n\n")
    }
}

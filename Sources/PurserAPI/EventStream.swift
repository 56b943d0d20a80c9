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

    func events(_ id: String) async throws -> Response {
        let fleet = stores.fleet
        guard try await stores.call({ () throws(LedgerError) in try fleet.swarmState(id: id) }) != nil else {
            throw APIError.notFound("no swarm \(id)")
        }
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
        let watch = Task {
            do throws(RuntimeError) {
                let report = try await FleetWatcher(store: fleet, swarm: id).follow { event in
                    continuation.yield(Self.frame(event.json.serialized()))
                }
                continuation.yield(Self.frame(report.json, event: "end"))
            } catch {
                continuation.yield(Self.frame(APIError(error, file: "").json.serialized(), event: "error"))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in watch.cancel() }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: ResponseBody(asyncSequence: stream))
    }

    /// One event; serialized JSON holds no newline, so one `data:` line carries it.
    static func frame(_ data: String, event: String? = nil) -> ByteBuffer {
        ByteBuffer(string: (event.map { "event: \($0)\n" } ?? "") + "data: \(data)\n\n")
    }
}

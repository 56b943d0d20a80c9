import Foundation
import PurserAPI
import PurserFleet
import PurserProtocol
import PurserRuntime

/// `watch` through a server's event stream, with the output of `watch` on the store.
struct RemoteWatch {
    let client: APIClient

    enum Outcome {
        /// The swarm ended; the `end` event's report.
        case ended(JSONValue)
        /// The stream closed without its end: the server stopped (a drain, a kill).
        case cut
    }

    /// Follows the swarm's events after the one with id `after` (0: from the first), passing
    /// each on with its id: a cut stream is asked again from the last one shown.
    func follow(_ id: String, after: Int64, _ onEvent: (Int64, SwarmEvent) -> Void) async throws -> Outcome {
        var end: JSONValue?
        let refused: APIAnswer?
        do {
            refused = try await client.events("/v1/swarms/\(APIClient.segment(id))/events?after=\(after)") { (name, data, eventID) throws(APIClientError) in
                switch name {
                case "end": end = try? JSONParser.parse(data)
                case "error":
                    let message = (try? JSONParser.parse(data))?["error"]?["message"]?.stringValue ?? data
                    throw APIClientError.server(message)
                default:
                    guard let event = Self.event(data), let number = eventID.flatMap({ Int64($0) }) else { return }
                    onEvent(number, event)
                }
            }
        } catch where error.code == .unreachable {
            return .cut
        } catch {
            throw commandFailure(error)
        }
        if let refused { throw commandFailure(refused) }
        return end.map(Outcome.ended) ?? .cut
    }

    /// An event object as `--events` writes it: `at`, `event`, `routine` and its fields.
    static func event(_ data: String) -> SwarmEvent? {
        guard case .object(var fields)? = try? JSONParser.parse(data), let kind = fields.removeValue(forKey: "event")?.stringValue,
            let at = fields.removeValue(forKey: "at")?.numberValue?.int64
        else { return nil }
        let routine = fields.removeValue(forKey: "routine")?.stringValue
        return SwarmEvent(atMs: at, kind: kind, routine: routine, fields: fields)
    }
}

extension APIClientError {
    static func server(_ message: String) -> APIClientError { APIClientError(code: .protocolError, message: message) }
}

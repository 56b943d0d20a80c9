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

    /// Follows the swarm's events, passing on each after the first `skip` (those shown
    /// already, before a cut stream was asked again).
    func follow(_ id: String, skip: Int, _ onEvent: (SwarmEvent) -> Void) async throws -> Outcome {
        var seen = 0
        var end: JSONValue?
        let refused: APIAnswer?
        do {
            refused = try await client.events("/v1/swarms/\(id)/events") { (name, data) throws(APIClientError) in
                switch name {
                case "end": end = try? JSONParser.parse(data)
                case "error":
                    let message = (try? JSONParser.parse(data))?["error"]?["message"]?.stringValue ?? data
                    throw APIClientError.server(message)
                default:
                    guard let event = Self.event(data) else { return }
                    seen += 1
                    if seen > skip { onEvent(event) }
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

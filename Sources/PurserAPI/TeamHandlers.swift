import Hummingbird
import NIOCore
import PurserLedger
import PurserProtocol

/// The emergency stop over HTTP: what `purser team freeze` and `thaw` do, for operators.
struct TeamHandlers: Sendable {
    let stores: APIStores
    /// A freeze's body is a reason and a flag.
    static let maxBodyBytes = 16 << 10

    /// Body (optional): `{"reason": "...", "cancelRunning": false}`.
    func freeze(_ name: String, _ request: Request, by actor: String) async throws -> Response {
        let (reason, cancelRunning) = try await Self.freezeBody(request)
        let (ledger, fleet) = (stores.ledger, stores.fleet)
        let (frozen, stopped) = try await stores.call { () throws(LedgerError) in
            _ = try ledger.team(named: name)
            let frozen = try ledger.freeze(team: name, by: actor, reason: reason)
            return (frozen, cancelRunning ? try fleet.stopRunning(team: name) : 0)
        }
        var answer: [String: JSONValue] = ["team": .string(name), "frozen": true, "already": .bool(!frozen)]
        if cancelRunning { answer["stopped"] = .number(JSONNumber(stopped)) }
        return .json(.object(answer))
    }

    func thaw(_ name: String, by actor: String) async throws -> Response {
        let ledger = stores.ledger
        let thawed = try await stores.call { () throws(LedgerError) in
            _ = try ledger.team(named: name)
            return try ledger.thaw(team: name, by: actor)
        }
        return .json(["team": .string(name), "frozen": false, "already": .bool(!thawed)])
    }

    private static func freezeBody(_ request: Request) async throws -> (reason: String, cancelRunning: Bool) {
        var request = request
        let body = try await request.collectBody(upTo: maxBodyBytes)
        let text = String(decoding: body.readableBytesView, as: UTF8.self)
        guard !text.allSatisfy(\.isWhitespace) else { return ("frozen through the API", false) }
        guard case .object(let fields)? = try? JSONParser.parse(Array(text.utf8)) else {
            throw APIError(.badRequest, "bad_request", "the body is not a JSON object")
        }
        if let unknown = fields.keys.first(where: { !["reason", "cancelRunning"].contains($0) }) {
            throw APIError(.badRequest, "bad_parameter", "\(unknown): not a field of a freeze (reason, cancelRunning)", field: unknown)
        }
        var reason = "frozen through the API"
        if let value = fields["reason"] {
            guard let given = value.stringValue, !given.isEmpty, given.utf8.count <= 1000 else {
                throw APIError(.badRequest, "bad_parameter", "reason: expected a string of 1 to 1000 bytes", field: "reason")
            }
            reason = given
        }
        var cancelRunning = false
        if let value = fields["cancelRunning"] {
            guard case .bool(let flag) = value else {
                throw APIError(.badRequest, "bad_parameter", "cancelRunning: expected true or false", field: "cancelRunning")
            }
            cancelRunning = flag
        }
        return (reason, cancelRunning)
    }
}

import Hummingbird
import PurserLedger
import PurserProtocol
import PurserRuntime

/// `purser approvals`, `approve` and `deny` over HTTP. The audit trail names who decided as
/// the emergency stop does: the token's holder, or the socket.
struct ApprovalHandlers: Sendable {
    let stores: APIStores

    /// Pending ones; `?all=true` also those decided.
    func list(_ request: Request) async throws -> Response {
        let all = request.uri.queryParameters["all"].map { $0 == "true" } ?? false
        let ledger = stores.ledger
        let approvals = try await stores.call { () throws(LedgerError) in try ledger.approvals(pendingOnly: !all, limit: 500) }
        return .json(["approvals": .array(approvals.map(\.json))])
    }

    /// The body: `{"reason": "..."}`; required to deny, optional to approve.
    func decide(_ request: Request, id: String, approve: Bool, by actor: String) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        let text = String(decoding: body.readableBytesView, as: UTF8.self)
        var reason: String?
        if !text.allSatisfy(\.isWhitespace) {
            guard let parsed = try? JSONParser.parse(text), parsed.objectValue != nil else {
                throw APIError(.badRequest, "bad_parameter", "the body must be a JSON object such as {\"reason\": \"...\"}")
            }
            if let given = parsed["reason"] {
                guard let string = given.stringValue else { throw APIError(.badRequest, "bad_parameter", "reason: expected a string", field: "reason") }
                reason = string
            }
        }
        if !approve && (reason ?? "").isEmpty {
            throw APIError(.badRequest, "bad_parameter", "reason: a denial needs a reason", field: "reason")
        }
        let (ledger, by, why) = (stores.ledger, actor, reason ?? "")
        let approval = try await stores.call { () throws(LedgerError) in
            try ledger.decideApproval(id: id, approve: approve, by: by, reason: why)
        }
        return .json(approval.json)
    }
}

import Hummingbird
import PurserLedger
import PurserProtocol
import PurserRuntime

/// `purser approvals`, `approve` and `deny` over HTTP. The API's tokens have no names, so
/// the audit trail names the way in: `api:socket` (the socket's file mode let the caller
/// in) or `api:operator-token`.
struct ApprovalHandlers: Sendable {
    let stores: APIStores
    let who: String

    /// Pending ones; `?all=true` also those decided.
    func list(_ request: Request) async throws -> Response {
        let all = request.uri.queryParameters["all"].map { $0 == "true" } ?? false
        let ledger = stores.ledger
        let approvals = try await stores.call { () throws(LedgerError) in try ledger.approvals(pendingOnly: !all, limit: 500) }
        return .json(["approvals": .array(approvals.map(\.json))])
    }

    /// The body: `{"reason": "..."}`; required to deny, optional to approve.
    func decide(_ request: Request, id: String, approve: Bool) async throws -> Response {
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
        let (ledger, by, why) = (stores.ledger, who, reason ?? "")
        let approval = try await stores.call { () throws(LedgerError) in
            try ledger.decideApproval(id: id, approve: approve, by: by, reason: why)
        }
        return .json(approval.json)
    }
}

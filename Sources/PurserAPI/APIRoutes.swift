/// Every route the API serves, as protocol/openapi.yaml names them: the server registers
/// these and no others, and the contract test checks this list against the document.
public enum APIRoute: String, CaseIterable, Sendable {
    case submitSwarm = "POST /v1/swarms"
    case listSwarms = "GET /v1/swarms"
    case getSwarm = "GET /v1/swarms/{id}"
    case cancelSwarm = "POST /v1/swarms/{id}/cancel"
    case swarmEvents = "GET /v1/swarms/{id}/events"
    case listHosts = "GET /v1/hosts"
    case getTeam = "GET /v1/teams/{name}"
    case freezeTeam = "POST /v1/teams/{name}/freeze"
    case thawTeam = "POST /v1/teams/{name}/thaw"
    case listIntegrations = "GET /v1/integrations"
    case verifyLedger = "GET /v1/ledger/verify"
    case listPlugins = "GET /v1/plugins"
    case listApprovals = "GET /v1/approvals"
    case approve = "POST /v1/approvals/{id}/approve"
    case deny = "POST /v1/approvals/{id}/deny"
    case metrics = "GET /metrics"

    public var method: String { String(rawValue.prefix { $0 != " " }) }
    /// The path with OpenAPI's `{parameter}`s.
    public var path: String { String(rawValue.drop { $0 != " " }.dropFirst()) }

    /// The path as Hummingbird's router reads it (`:parameter`).
    var routerPath: String {
        "/" + path.split(separator: "/").map { $0.hasPrefix("{") ? ":\($0.dropFirst().dropLast())" : String($0) }.joined(separator: "/")
    }

    /// Reading is for every token; what changes the queue (every method but GET) is for operators.
    public var needsOperator: Bool { method != "GET" }
}

extension APIRoute {
    /// The methods served on a request's path (`GET, POST`), for a 405's `Allow`: the router
    /// answers 404 to a known path asked with another method.
    static func methods(servedOn path: String) -> [String] {
        let asked = path.split(separator: "/", omittingEmptySubsequences: false)
        return allCases.filter { route in
            let pattern = route.routerPath.split(separator: "/", omittingEmptySubsequences: false)
            return pattern.count == asked.count && zip(pattern, asked).allSatisfy { $0.hasPrefix(":") ? !$1.isEmpty : $0 == $1 }
        }.map(\.method)
    }
}

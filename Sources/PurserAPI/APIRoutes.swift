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
    case listPlugins = "GET /v1/plugins"
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

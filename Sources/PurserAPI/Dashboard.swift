import Hummingbird
import PurserLedger

/// `purser serve`'s web dashboard (docs/api.md, "Dashboard"): the overview at `/`, a page a
/// swarm at `/swarms/{id}`, each with `?part=stream` for its live part as Server-Sent Events
/// (`?part=live` once, for a script without them), and the page's own stylesheet and script. Not in protocol/openapi.yaml: these are
/// pages for people, not the JSON API.
struct Dashboard: Sendable {
    let stores: APIStores
    /// The TCP listener's tokens; nil on the Unix socket, where the file's mode is the access.
    let tokens: Tokens?
    let streams: OpenStreams

    /// The paths a person opens in a browser (sent to `/login` when not logged in).
    static func isPage(_ path: String) -> Bool { path == "/" || path.hasPrefix("/swarms/") }

    func register(on router: Router<APIContext>) {
        router.get("/") { request, context in try await overview(request, context) }
        router.get("/swarms/:id") { request, context in try await swarm(context.parameters.require("id"), request, context) }
        for path in ["/dashboard.css", "/dashboard.js"] {
            router.get(RouterPath(path)) { _, _ in Self.asset(path)! }
        }
    }

    /// The stylesheet or the script at `path`: the same for everyone, so served without a
    /// login (the login page uses them too).
    static func asset(_ path: String) -> Response? {
        switch path {
        case "/dashboard.css": HTML.asset(DashboardAssets.style, type: "text/css; charset=utf-8")
        case "/dashboard.js": HTML.asset(DashboardAssets.script, type: "text/javascript; charset=utf-8")
        default: nil
        }
    }

    func overview(_ request: Request, _ context: APIContext) async throws -> Response {
        let (fleet, ledger, stores) = (stores.fleet, stores.ledger, stores)
        let operate = access(context) == .operate
        let render: @Sendable () async throws -> String = {
            let data = try await stores.call { () throws(LedgerError) in try DashboardOverview.read(fleet: fleet, ledger: ledger) }
            return OverviewPage(data: data, operate: operate).html
        }
        if request.uri.queryParameters["part"] == "stream" { return try DashboardStream(open: streams).respond(render) }
        return respond(request, context, title: "Dashboard", live: try await render())
    }

    func swarm(_ id: String, _ request: Request, _ context: APIContext) async throws -> Response {
        let (fleet, ledger, stores) = (stores.fleet, stores.ledger, stores)
        let operate = access(context) == .operate
        let read: @Sendable () async throws -> DashboardSwarm? = {
            try await stores.call { () throws(LedgerError) in try DashboardSwarm.read(id: id, fleet: fleet, ledger: ledger) }
        }
        guard let data = try await read() else {
            return HTML.response(HTML.page(title: "No such swarm", live: "<p class=\"empty\">No swarm \(HTML.escape(id)).</p>", user: nil), status: .notFound)
        }
        if request.uri.queryParameters["part"] == "stream" {
            return try DashboardStream(open: streams).respond { try await read().map { SwarmPage(data: $0, operate: operate).html } ?? "" }
        }
        return respond(request, context, title: data.swarm.name, live: SwarmPage(data: data, operate: operate).html)
    }

    /// The whole page, or its live part alone for the script.
    private func respond(_ request: Request, _ context: APIContext, title: String, live: String) -> Response {
        if request.uri.queryParameters["part"] == "live" { return HTML.response(live) }
        var user: String?
        if tokens != nil, DashboardSessions.id(inCookies: request.headers[.cookie]) != nil {
            user = access(context) == .operate ? "operator" : "reader"
        }
        return HTML.response(HTML.page(title: title, live: live, user: user))
    }

    /// On TCP, the bearer token's, as `BearerAuth` found it (`DashboardGate` put a session's
    /// token in the header); on the socket, everything.
    private func access(_ context: APIContext) -> Tokens.Access? {
        guard tokens != nil else { return .operate }
        return context.caller?.access
    }
}

import Glibc
import Hummingbird
public import Logging
import NIOCore
import PurserProtocol
import ServiceLifecycle

/// `purser serve`'s HTTP API: on a Unix socket (access by its mode, 0600: the user who runs
/// purser), and on TCP only with tokens. Both serve the same routes (`APIRoute`).
public final class APIServer: Sendable {
    public struct Settings: Sendable {
        /// The Unix socket's path (`$PURSER_HOME/purser.sock` by default); nil for none.
        public var socket: String?
        /// `HOST:PORT` for a TCP listener; port 0 takes a free one.
        public var listen: String?
        /// Required with `listen`.
        public var tokens: Tokens?
        /// The socket is the home's default, which another `serve` of the same home may
        /// serve already (several hosts on one machine), or whose path may be too long:
        /// then this one serves none, and says so.
        public var socketIsDefault: Bool

        public init(socket: String?, listen: String?, tokens: Tokens?, socketIsDefault: Bool = false) {
            self.socket = socket
            self.listen = listen
            self.tokens = tokens
            self.socketIsDefault = socketIsDefault
        }
    }

    /// Where it listens, for the log: `unix:PATH`, `http://HOST:PORT`.
    public let addresses: [String]
    /// What it does not serve, and why.
    public let notes: [String]
    private let task: Task<Void, Never>
    private let group: ServiceGroup
    private let streams: OpenStreams
    private let socket: (path: UnixSocketPath, inode: ino_t)?

    private init(
        addresses: [String], notes: [String], task: Task<Void, Never>, group: ServiceGroup, streams: OpenStreams, socket: (path: UnixSocketPath, inode: ino_t)?
    ) {
        self.addresses = addresses
        self.notes = notes
        self.task = task
        self.group = group
        self.streams = streams
        self.socket = socket
    }

    /// Starts the listeners; returns once every one accepts connections.
    public static func start(
        _ settings: Settings, stores: APIStores, logger: Logger, notes: [String] = []
    ) async throws(APIStartError) -> APIServer {
        var applications: [(application: any ApplicationProtocol, tcp: Bool)] = []
        let streams = OpenStreams()
        let (ready, readiness) = AsyncStream<Result<String, APIStartError>>.makeStream()
        var socketPath: UnixSocketPath?
        if let path = settings.socket {
            let socket: UnixSocketPath
            do {
                socket = try UnixSocketPath(path: path)
            } catch where error.code != .settings && settings.socketIsDefault {
                // The home's socket is a convenience: a long home, or another serve of it, is no reason not to serve.
                let why = error.code == .socketInUse ? "another purser serve of this home answers on \(path)" : error.message
                let note = "\(why); this one serves no socket (--socket PATH to choose one)"
                let rest = Settings(socket: nil, listen: settings.listen, tokens: settings.tokens)
                return try await start(rest, stores: stores, logger: logger, notes: notes + [note])
            }
            socketPath = socket
            applications.append((application(.unixDomainSocket(path: socket.bindPath), stores, streams, nil, logger) { _ in
                readiness.yield(Result { () throws(APIStartError) in
                    try socket.publish()
                    return "unix:\(path)"
                })
            }, false))
        }
        if let listen = settings.listen {
            guard let tokens = settings.tokens else { throw APIStartError("--listen needs --token-file: a TCP listener takes bearer tokens only") }
            let (host, port) = try parse(listen)
            applications.append((application(.hostname(host, port: port), stores, streams, tokens, logger) { channel in
                let bound = channel.localAddress?.port ?? port
                readiness.yield(.success("http://\(host.contains(":") ? "[\(host)]" : host):\(bound)"))
            }, true))
        }
        let listeners: [any Service] = applications.map { Listener(application: $0.application, tcp: $0.tcp, readiness: readiness) }
        let group = ServiceGroup(configuration: .init(services: listeners, logger: logger))
        let task = Task {
            guard !listeners.isEmpty else { return }
            try? await group.run()
        }
        var addresses: [String] = []
        if applications.isEmpty { readiness.finish() }
        for await result in ready {
            switch result {
            case .success(let address): addresses.append(address)
            case .failure(let error):
                await group.triggerGracefulShutdown()
                socketPath?.abandon()
                throw error
            }
            if addresses.count == applications.count { break }
        }
        var inode: ino_t = 0
        if let socketPath, let found = inodeOf(socketPath.path) { inode = found }
        return APIServer(addresses: addresses, notes: notes, task: task, group: group, streams: streams, socket: socketPath.map { ($0, inode) })
    }

    /// Stops the listeners and removes the socket. Event streams end first (without their
    /// `end` event), so that the shutdown does not wait for their swarms.
    public func stop() async {
        streams.closeAll()
        await group.triggerGracefulShutdown()
        await task.value
        if let socket { socket.path.remove(inode: socket.inode) }
    }

    private static func application(
        _ address: BindAddress, _ stores: APIStores, _ streams: OpenStreams, _ tokens: Tokens?, _ logger: Logger,
        running: @escaping @Sendable (any Channel) async -> Void
    ) -> some ApplicationProtocol {
        Application(
            router: router(stores: stores, streams: streams, tokens: tokens), configuration: .init(address: address, serverName: "purser"),
            onServerRunning: running, logger: logger)
    }

    /// Every `APIRoute`, behind the error shape and, on TCP, the bearer check.
    static func router(stores: APIStores, streams: OpenStreams, tokens: Tokens?) -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.add(middleware: ErrorMiddleware())
        if let tokens { router.add(middleware: DashboardGate(tokens: tokens, sessions: DashboardSessions())) }
        if let tokens { router.add(middleware: BearerAuth(tokens: tokens)) }
        let handlers = Handlers(
            swarms: SwarmHandlers(stores: stores), events: EventStream(stores: stores, open: streams), reads: ReadHandlers(stores: stores),
            teams: TeamHandlers(stores: stores), approvals: ApprovalHandlers(stores: stores), tokens: tokens)
        for route in APIRoute.allCases {
            router.on(RouterPath(route.routerPath), method: HTTPRequest.Method(route.method)!) { request, context in
                try await handlers.respond(route, request, context)
            }
        }
        Dashboard(stores: stores, tokens: tokens, streams: streams).register(on: router)
        return router
    }

    static func parse(_ listen: String) throws(APIStartError) -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw APIStartError("--listen: '\(listen)' is not HOST:PORT")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw APIStartError("--listen: '\(listen)' names no host (0.0.0.0 for every address)") }
        return (host, port)
    }

    private static func inodeOf(_ path: String) -> ino_t? {
        var status = stat()
        return lstat(path, &status) == 0 ? status.st_ino : nil
    }
}

/// Each route to its handler.
private struct Handlers: Sendable {
    let swarms: SwarmHandlers
    let events: EventStream
    let reads: ReadHandlers
    let teams: TeamHandlers
    let approvals: ApprovalHandlers
    /// nil on the Unix socket.
    let tokens: Tokens?

    func respond(_ route: APIRoute, _ request: Request, _ context: APIContext) async throws -> Response {
        switch route {
        case .submitSwarm: try await swarms.submit(request)
        case .listSwarms: try await swarms.list(request)
        case .getSwarm: try await swarms.show(context.parameters.require("id"))
        case .cancelSwarm: try await swarms.cancel(context.parameters.require("id"))
        case .swarmEvents: try await events.events(context.parameters.require("id"), request)
        case .listHosts: try await reads.hosts()
        case .getTeam: try await reads.team(context.parameters.require("name"))
        case .listPlugins: try await reads.plugins()
        case .freezeTeam: try await teams.freeze(context.parameters.require("name"), request, by: actor(context))
        case .thawTeam: try await teams.thaw(context.parameters.require("name"), by: actor(context))
        case .listIntegrations: try await reads.integrations()
        case .verifyLedger: try await reads.verify()
        case .listApprovals: try await approvals.list(request)
        case .approve: try await approvals.decide(request, id: context.parameters.require("id"), approve: true, by: actor(context))
        case .deny: try await approvals.decide(request, id: context.parameters.require("id"), approve: false, by: actor(context))
        case .metrics: try await MetricsRoute(stores: reads.stores).scrape()
        }
    }

    /// Who asked, for the audit trail: the token's holder on TCP (BearerAuth let it in),
    /// the socket's user otherwise (only they, or root, may connect to it).
    func actor(_ context: APIContext) -> String {
        guard tokens != nil else { return "api:socket (uid \(getuid()))" }
        return "api:" + (context.caller?.holder ?? "unknown token")
    }
}

/// One listener in the server's service group; a failure to start is told to `start`.
private struct Listener: Service {
    let application: any ApplicationProtocol
    let tcp: Bool
    let readiness: AsyncStream<Result<String, APIStartError>>.Continuation

    func run() async throws {
        do {
            try await application.run()
        } catch {
            readiness.yield(.failure(APIStartError("\(tcp ? "--listen" : "--socket"): \(error)")))
            throw error
        }
    }
}

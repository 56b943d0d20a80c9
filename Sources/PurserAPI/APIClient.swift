import NIOCore
import NIOHTTP1
import NIOPosix
public import PurserProtocol

/// The CLI's side of the API: `purser submit`, `watch`, `cancel` and `hosts` ask a server
/// (`--server`, or the home's socket) instead of opening the store themselves.
public struct APIClient: Sendable {
    public enum Target: Sendable, Equatable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }

    public let target: Target
    let token: String?

    public init(target: Target, token: String?) {
        self.target = target
        self.token = token
    }

    /// `unix:PATH`, `http://HOST:PORT` (IPv6 in brackets); the error says what is wrong.
    public static func target(_ text: String) throws(APIClientError) -> Target {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else { throw APIClientError(code: .settings, message: "--server: unix: needs an absolute path, as unix:/run/purser.sock") }
            return .unix(path: path)
        }
        guard text.hasPrefix("http://") else {
            throw APIClientError(code: .settings, message: "--server: '\(text)' is neither http://HOST:PORT nor unix:PATH (https: put a TLS proxy's plain side here)")
        }
        var authority = text.dropFirst(7)
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]), (1...65535).contains(port),
            !authority.contains("/")
        else { throw APIClientError(code: .settings, message: "--server: '\(text)' names no port, as http://127.0.0.1:8080") }
        var host = String(authority[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw APIClientError(code: .settings, message: "--server: '\(text)' names no host") }
        return .tcp(host: host, port: port)
    }

    /// How long a server may say nothing before the client gives up on it: longer than a
    /// store's retry window (30 s), in which the server may be waiting before it answers 503.
    public static let quiet = Duration.seconds(45)
    /// An event stream's server says something every 15 s at least (a comment line).
    public static let quietStream = Duration.seconds(60)

    /// A path segment (a swarm's id as the user typed it) percent-encoded: it cannot reach
    /// another route (`../`), nor break the request line.
    public static func segment(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            let plain = (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7a) || byte == 0x2d || byte == 0x5f
            encoded += plain ? String(UnicodeScalar(byte)) : "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }
        return encoded
    }

    /// One request; its answer whole (at most `limit` bytes), unless the server says nothing for `quiet`.
    public func send(
        _ method: String, _ path: String, body: [UInt8]? = nil, limit: Int = 64 << 20, quiet: Duration = APIClient.quiet
    ) async throws(APIClientError) -> APIAnswer {
        var answer = APIAnswer(status: 0, body: [])
        try await exchange(HTTPMethod(rawValue: method), path, body: body, quiet: quiet) { (part) throws(APIClientError) in
            switch part {
            case .head(let head): answer.status = Int(head.status.code)
            case .body(let bytes):
                guard answer.body.count + bytes.count <= limit else { throw APIClientError(code: .protocolError, message: "the server's answer is over \(limit) bytes") }
                answer.body += bytes
            }
        }
        return answer
    }

    /// A Server-Sent Events stream: each event's name (`message` when unnamed), data and last
    /// id, in order, until the server closes it. A non-200 answer is returned instead.
    public func events(_ path: String, _ onEvent: (String, String, String?) throws(APIClientError) -> Void) async throws(APIClientError) -> APIAnswer? {
        var status = 0
        var refused: [UInt8] = []
        var parser = EventStreamParser()
        try await exchange(.GET, path, body: nil, quiet: Self.quietStream) { (part) throws(APIClientError) in
            switch part {
            case .head(let head): status = Int(head.status.code)
            case .body(let bytes) where status != 200: refused += bytes.prefix(1 << 20)
            case .body(let bytes):
                for event in parser.take(bytes) { try onEvent(event.name, event.data, event.id) }
                if parser.overflowed { throw APIClientError(code: .protocolError, message: "the server sent an event over \(EventStreamParser.maxEvent) bytes") }
            }
        }
        return status == 200 ? nil : APIAnswer(status: status, body: refused)
    }

    enum Part {
        case head(HTTPResponseHead)
        case body([UInt8])
    }

    private func exchange(
        _ method: HTTPMethod, _ path: String, body: [UInt8]?, quiet: Duration, _ onPart: (Part) throws(APIClientError) -> Void
    ) async throws(APIClientError) {
        let channel = try await connect(quiet: quiet)
        var headers = HTTPHeaders([("Host", hostHeader), ("Connection", "close"), ("User-Agent", "purser")])
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            headers.add(name: "Content-Length", value: String(body.count))
            headers.add(name: "Content-Type", value: "application/yaml")
        }
        do {
            try await channel.executeThenClose { inbound, outbound in
                // A server may answer (a refusal, say) and close before the request's last write
                // is done: its answer, already on its way, decides; the failed write only when none came.
                var unwritten: (any Error)?
                do {
                    var parts: [HTTPClientRequestPart] = [.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers))]
                    if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                    parts.append(.end(nil))
                    try await outbound.write(contentsOf: parts)
                } catch {
                    unwritten = error
                }
                for try await part in inbound {
                    switch part {
                    case .head(let head): try onPart(.head(head))
                    case .body(let buffer): try onPart(.body(Array(buffer.readableBytesView)))
                    case .end: return
                    }
                }
                if let unwritten { throw unwritten }
                // A server that stopped, died, or said nothing for `quiet` (the connection was closed then).
                throw APIClientError(code: .unreachable, message: "\(describe) closed the connection before its answer ended (it stopped, or said nothing for \(quiet))")
            }
        } catch let error as APIClientError {
            throw error
        } catch {
            throw APIClientError(code: .unreachable, message: "\(describe): \(error)")
        }
    }

    private typealias HTTPChannel = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    private func connect(quiet: Duration) async throws(APIClientError) -> HTTPChannel {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(10))
        let idle = TimeAmount.nanoseconds(Int64(quiet.components.seconds) * 1_000_000_000)
        let initialize: @Sendable (any Channel) -> EventLoopFuture<HTTPChannel> = { channel in
            channel.eventLoop.makeCompletedFuture {
                // A server that accepts and then says nothing (stopped, stuck) must not hang the CLI.
                try channel.pipeline.syncOperations.addHandlers([IdleStateHandler(readTimeout: idle), CloseWhenQuiet()])
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try HTTPChannel(wrappingChannelSynchronously: channel)
            }
        }
        do {
            switch target {
            case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initialize)
            case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port, channelInitializer: initialize)
            }
        } catch {
            throw APIClientError(code: .unreachable, message: "cannot reach the server at \(describe): \(error)")
        }
    }

    private var hostHeader: String {
        switch target {
        case .unix: "purser"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    public var describe: String {
        switch target {
        case .unix(let path): "unix:\(path)"
        case .tcp: "http://\(hostHeader)"
        }
    }
}

/// A whole answer: its status and body.
public struct APIAnswer: Sendable {
    public var status: Int
    public var body: [UInt8]

    public var json: JSONValue? { try? JSONParser.parse(body) }

    /// The API's error object's message, else the body's first line.
    public var errorMessage: String {
        if let message = json?["error"]?["message"]?.stringValue { return message }
        return String(decoding: body.prefix(500), as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "HTTP \(status)"
    }

    public var errorCode: String? { json?["error"]?["code"]?.stringValue }
}

public struct APIClientError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable { case settings, unreachable, protocolError }
    public var code: Code
    public var message: String
    public var description: String { message }

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }
}

/// Closes the connection when `IdleStateHandler` says nothing was read for its time.
private final class CloseWhenQuiet: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case IdleStateHandler.IdleStateEvent.read = event {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

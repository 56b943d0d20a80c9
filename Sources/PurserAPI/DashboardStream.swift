import Hummingbird
import NIOCore

/// A page's live part as Server-Sent Events (`?part=stream`): rendered again every second,
/// sent when it changed, with a comment line now and then so that proxies keep the stream
/// open. The stream ends when the client goes, or when the server stops.
struct DashboardStream: Sendable {
    let open: OpenStreams
    static let every = Duration.seconds(1)
    /// Unchanged for this many renders: a comment line, so that idle proxies do not cut it.
    static let keepAlive = 15

    func respond(_ render: @escaping @Sendable () async throws -> String) throws -> Response {
        try ServerSentEvents.respond(open: open) { continuation in [push(render, into: continuation)] }
    }

    private func push(_ render: @escaping @Sendable () async throws -> String, into continuation: AsyncStream<ByteBuffer>.Continuation) -> Task<Void, Never> {
        Task {
            var last = ""
            var quiet = 0
            while !Task.isCancelled {
                if let html = try? await render(), html != last {
                    last = html
                    quiet = 0
                    continuation.yield(Self.frame(html))
                } else {
                    quiet += 1
                    if quiet % Self.keepAlive == 0 { continuation.yield(ServerSentEvents.stillHere) }
                }
                try? await Task.sleep(for: Self.every)
            }
        }
    }

    /// One `live` event: each line of the HTML a `data:` line (the client joins them with newlines).
    static func frame(_ html: String) -> ByteBuffer {
        let lines = html.split(separator: "\n", omittingEmptySubsequences: false).map { "data: \($0)" }
        return ByteBuffer(string: "event: live\n" + lines.joined(separator: "\n") + "\n\n")
    }
}

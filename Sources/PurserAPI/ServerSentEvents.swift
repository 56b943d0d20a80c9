import Hummingbird
import NIOCore
import Synchronization

/// A Server-Sent Events response: counted among the server's open streams, fed by tasks that
/// are cancelled when the client goes (or the server stops).
enum ServerSentEvents {
    /// A comment line: a client (and a proxy) can tell a quiet stream from a dead server.
    static let stillHere = ByteBuffer(string: ": still here\n\n")

    /// `start` is given the stream to write to, and returns the tasks that write to it.
    static func respond(
        open: OpenStreams, _ start: (AsyncStream<ByteBuffer>.Continuation) -> [Task<Void, Never>]
    ) throws -> Response {
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
        guard let key = open.add(continuation) else { throw APIError(.serviceUnavailable, "stopping", "the server is stopping") }
        let feeding = start(continuation)
        continuation.onTermination = { [open] _ in
            open.remove(key)
            for task in feeding { task.cancel() }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: ResponseBody(asyncSequence: stream))
    }

    /// A comment line after every `period`, until cancelled.
    static func keepAlive(_ stream: AsyncStream<ByteBuffer>.Continuation, every period: Duration) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                stream.yield(stillHere)
            }
        }
    }
}

/// The event streams open now: a stopping server ends them, and opens no more.
final class OpenStreams: Sendable {
    private struct State {
        var closed = false
        var next = 0
        var streams: [Int: AsyncStream<ByteBuffer>.Continuation] = [:]
    }

    private let state = Mutex(State())

    /// Its key, or nil when the server is stopping.
    func add(_ stream: AsyncStream<ByteBuffer>.Continuation) -> Int? {
        state.withLock { state in
            guard !state.closed else { return nil }
            state.next += 1
            state.streams[state.next] = stream
            return state.next
        }
    }

    func remove(_ key: Int) {
        _ = state.withLock { $0.streams.removeValue(forKey: key) }
    }

    func closeAll() {
        let streams = state.withLock { state in
            state.closed = true
            return Array(state.streams.values)
        }
        for stream in streams { stream.finish() }
    }
}

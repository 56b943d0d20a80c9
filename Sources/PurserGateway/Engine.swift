import CPurserCurl
import Dispatch
import Glibc

/// One request for libcurl, checked and complete: URL, credentials and all.
struct UpstreamRequest: Sendable {
    var url: String
    var method: String
    var headers: [String]
    var body: [UInt8]
    var connectTimeoutMs: Int64
    var totalTimeoutMs: Int64
    var maxResponseBytes: Int64
    /// What of the worker's request can change the answer: the URL as it asked for it
    /// (without the credentials, the same for every call) and the header lines it set,
    /// names lower-cased, sorted. What a GET's cached answer is kept under.
    var variant: [String] = []
}

struct UpstreamResponse: Sendable {
    var curlCode: Int32
    var status: Int64
    var requestSent: Bool
    var tooLarge: Bool
    var timedOut: Bool
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    var seconds: Double
    var error: String

    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
}

/// libcurl's multi interface, on a thread of its own (`CPurserCurl`): many calls in
/// flight at once over reused connections, none blocking another worker's messages.
final class HTTPEngine: @unchecked Sendable {
    private let engine: OpaquePointer

    init(maxHostConnections: Int = 64) throws(GatewayFailure) {
        guard let engine = purser_http_engine_create(maxHostConnections) else {
            throw GatewayFailure(.upstreamUnavailable, "cannot start the HTTP engine")
        }
        self.engine = engine
    }

    deinit {
        // The last reference may go on the engine's own thread (a completion holding the
        // gateway), and a thread cannot join itself.
        let engine = UncheckedPointer(engine)
        DispatchQueue.global().async { purser_http_engine_destroy(engine.pointer) }
    }

    /// `completion` runs once, on the engine's thread: it must hand heavy work elsewhere.
    func submit(_ request: UpstreamRequest, completion: @escaping @Sendable (UpstreamResponse) -> Void) {
        let box = Unmanaged.passRetained(CompletionBox(completion)).toOpaque()
        let status = withCStrings(request.headers) { headers in
            request.body.withUnsafeBufferPointer { body in
                var raw = purser_http_request(
                    url: nil, method: nil, headers: headers.baseAddress, header_count: headers.count,
                    body: body.baseAddress, body_length: body.count, connect_timeout_ms: Int(request.connectTimeoutMs),
                    total_timeout_ms: Int(max(1, request.totalTimeoutMs)), max_response_bytes: Int(request.maxResponseBytes))
                return request.url.withCString { url in
                    request.method.withCString { method in
                        raw.url = url
                        raw.method = method
                        return purser_http_submit(engine, &raw, { context, response in
                            let box = Unmanaged<CompletionBox>.fromOpaque(context!).takeRetainedValue()
                            box.completion(UpstreamResponse(response!.pointee))
                        }, box)
                    }
                }
            }
        }
        if status != 0 {
            Unmanaged<CompletionBox>.fromOpaque(box).release()
            completion(UpstreamResponse(failure: "the HTTP engine refused the request"))
        }
    }

    /// Calls `onReadable` on the engine's thread while `fd` is readable, until `unwatch`;
    /// `ended` runs once, on the engine's thread, when the watch is over (at once if it
    /// could not start).
    func watch(_ fd: Int32, onReadable: @escaping @Sendable () -> Void, ended: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(WatchBox(onReadable, ended)).toOpaque()
        let status = purser_http_watch(engine, fd, { context, fd in
            let box = Unmanaged<WatchBox>.fromOpaque(context!)
            guard fd < 0 else { return box.takeUnretainedValue().onReadable() }
            box.takeRetainedValue().ended()
        }, box)
        if status != 0 {
            Unmanaged<WatchBox>.fromOpaque(box).release()
            ended()
        }
    }

    /// Ends the watch of `fd`; its `ended` says when no more reads will run.
    func unwatch(_ fd: Int32) {
        _ = purser_http_unwatch(engine, fd)
    }

    private func withCStrings<T>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> T) -> T {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer(body)
    }
}

private final class WatchBox {
    let onReadable: @Sendable () -> Void
    let ended: @Sendable () -> Void
    init(_ onReadable: @escaping @Sendable () -> Void, _ ended: @escaping @Sendable () -> Void) {
        self.onReadable = onReadable
        self.ended = ended
    }
}

private final class CompletionBox {
    let completion: @Sendable (UpstreamResponse) -> Void
    init(_ completion: @escaping @Sendable (UpstreamResponse) -> Void) { self.completion = completion }
}

extension UpstreamResponse {
    init(_ raw: purser_http_response) {
        curlCode = raw.curl_code
        status = Int64(raw.status)
        requestSent = raw.request_sent != 0
        tooLarge = raw.too_large != 0
        timedOut = raw.timed_out != 0
        headers = HTTPHeaders.parse(UnsafeRawBufferPointer(start: raw.headers, count: raw.headers_length))
        body = raw.body.map { Array(UnsafeBufferPointer(start: $0, count: raw.body_length)) } ?? []
        seconds = raw.total_seconds
        error = raw.error.map { String(cString: $0) } ?? ""
    }

    init(failure: String) {
        curlCode = -1
        status = 0
        requestSent = false
        tooLarge = false
        timedOut = false
        headers = []
        body = []
        seconds = 0
        error = failure
    }
}

private struct UncheckedPointer: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

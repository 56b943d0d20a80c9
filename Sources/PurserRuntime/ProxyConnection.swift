import Glibc
import PurserGateway
import PurserProtocol

/// One connection to the egress proxy: a request head and body read within bounds and a
/// time limit, the answer written, the connection closed; or, for an admitted CONNECT,
/// `200 Connection established` and the tunnel spliced until it ends.
struct ProxyConnection {
    let fd: Int32

    enum Answer {
        case answered(GatewayCallResult)
        case refused(Int, String)
        case tunnel(ProxyTunnel)
    }

    /// Headers that describe this hop, not the request: never forwarded, never answered.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length",
    ]

    func serve(_ handle: (ProxyRequest, [UInt8]) -> Answer) {
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        do throws(ProxyRequest.Refusal) {
            let (head, rest) = try readHead()
            let request = try ProxyRequest.parse(head: head)
            // Bytes right after a CONNECT's head are the tunnel's first, not a body.
            let body = request.isConnect ? rest : try readBody(request, already: rest)
            switch handle(request, body) {
            case .answered(let result): write(Self.response(result))
            case .refused(let status, let message): Self.answer(fd, status: status, message: message)
            case .tunnel(var tunnel):
                write(Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8))
                _ = tunnel.run(client: fd)
            }
        } catch {
            Self.answer(fd, status: error.status, message: error.message)
        }
    }

    private func readHead() throws(ProxyRequest.Refusal) -> (head: [UInt8], rest: [UInt8]) {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        var headEnd = HeadEnd()
        while true {
            if let end = headEnd.find(bytes) { return (Array(bytes[..<end]), Array(bytes[(end + 4)...])) }
            guard bytes.count < ProxyRequest.maxHead else { throw .init(status: 431, message: "the request head is over 64 KiB") }
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .init(status: 400, message: "the request ended before its head did") }
            bytes += buffer[..<count]
        }
    }

    /// Where a request head ends (CRLF CRLF), found as its bytes arrive: each position is
    /// looked at once, so a head a worker sends a byte at a time costs the supervisor no
    /// scan of all it read so far after each byte (for 64 KiB, 2^31 comparisons).
    struct HeadEnd {
        /// Where the next look starts: an end cannot begin before the last 3 bytes looked at.
        private var from = 0
        /// Positions looked at so far.
        private(set) var examined = 0

        /// The index of the CRLF CRLF in `bytes` (what has arrived so far, growing), if it is there.
        mutating func find(_ bytes: [UInt8]) -> Int? {
            guard bytes.count - 4 >= from else { return nil }
            defer { from = bytes.count - 3 }
            for index in from...(bytes.count - 4) {
                examined += 1
                if bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 { return index }
            }
            return nil
        }
    }

    private func readBody(_ request: ProxyRequest, already: [UInt8]) throws(ProxyRequest.Refusal) -> [UInt8] {
        if request.header("transfer-encoding") != nil {
            throw .init(status: 411, message: "a chunked body is refused; send Content-Length")
        }
        guard let text = request.header("content-length") else { return [] }
        guard let length = Int(text), length >= 0 else { throw .init(status: 400, message: "a bad Content-Length") }
        guard length <= ProxyRequest.maxBody else { throw .init(status: 413, message: "a body over 8 MiB") }
        var body = Array(already.prefix(length))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while body.count < length {
            let count = read(fd, &buffer, min(buffer.count, length - body.count))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .init(status: 400, message: "the body ended before its Content-Length") }
            body += buffer[..<count]
        }
        return body
    }

    static func response(_ result: GatewayCallResult) -> [UInt8] {
        var head = "HTTP/1.1 \(result.status) \(reason(Int(result.status)))\r\n"
        for (name, value) in result.headers.sorted(by: { $0.key < $1.key }) where !hopByHop.contains(name) {
            head += "\(name): \(value)\r\n"
        }
        head += "content-length: \(result.body.count)\r\nconnection: close\r\n\r\n"
        return Array(head.utf8) + result.body
    }

    /// A refusal, in plain text, with the reason; then `linger`, as the request may not have
    /// been read to its end.
    static func answer(_ fd: Int32, status: Int, message: String) {
        let text = WorkerText.line(message)
        let body = Array(("purser egress: " + text + "\n").utf8)
        let head = "HTTP/1.1 \(status) \(reason(status))\r\ncontent-type: text/plain; charset=utf-8\r\n"
            + "content-length: \(body.count)\r\nconnection: close\r\n\r\n"
        ProxyConnection(fd: fd).write(Array(head.utf8) + body)
        linger(fd)
    }

    /// Closing a socket with unread bytes resets the connection, and the reset can discard
    /// the answer before the client reads it: so the answer is followed by the end of the
    /// stream, and what the client still sends is read and dropped, within bounds (a client
    /// that keeps sending gets its reset after all).
    static func linger(_ fd: Int32, ms: Int64 = 250, bytes: Int = 1 << 20) {
        shutdown(fd, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 16384)
        var left = bytes
        let deadline = monotonicMs() + ms
        while left > 0 {
            let wait = deadline - monotonicMs()
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard wait > 0, poll(&ready, 1, Int32(wait)) >= 0 || errno == EINTR else { return }
            let count = recv(fd, &buffer, min(buffer.count, left), Int32(MSG_DONTWAIT))
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { return }
            left -= count
        }
    }

    static func monotonicMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    private func write(_ bytes: [UInt8]) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return }
            written += count
        }
    }

    static func status(for reason: GatewayReason) -> Int {
        switch reason {
        case .permissionDenied: 403
        case .rateLimited, .quotaExceeded: 429
        case .budgetExhausted: 402
        case .upstreamUnavailable: 502
        case .timeout: 504
        case .responseTooLarge: 502
        case .invalidRequest: 400
        }
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }
}

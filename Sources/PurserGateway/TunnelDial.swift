import Glibc
import PurserProtocol

extension Tunnel {
    /// Connects to the integration's host and port (the config's, never the worker's text),
    /// each address in turn, within the connect timeout and the run's deadline. Returns a
    /// non-blocking socket; on failure the tunnel is finished as `unreachable`.
    public func dial() -> Result<Int32, GatewayFailure> {
        var timeoutMs = integration.connectTimeoutMs
        if let deadline = caller.deadlineMs { timeoutMs = min(timeoutMs, deadline - unixMilliseconds()) }
        let result = TunnelDial.connect(host: integration.base.host, port: integration.base.port, timeoutMs: timeoutMs)
        if case .failure = result { finish(.unreachable) }
        return result
    }
}

enum TunnelDial {
    static func connect(host: String, port: Int, timeoutMs: Int64) -> Result<Int32, GatewayFailure> {
        guard timeoutMs > 0 else { return .failure(GatewayFailure(.timeout, "the run's deadline has passed")) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return .failure(GatewayFailure(.upstreamUnavailable, "cannot resolve \(host): \(String(cString: gai_strerror(status)))"))
        }
        defer { freeaddrinfo(first) }
        var failure = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            switch attempt(address.pointee, timeoutMs: timeoutMs) {
            case .success(let fd): return .success(fd)
            case .failure(let why): failure = why.text
            }
            entry = address.pointee.ai_next
        }
        return .failure(GatewayFailure(.upstreamUnavailable, "cannot connect to \(host):\(port): \(failure)"))
    }

    private struct Why: Error { var text: String }

    private static func attempt(_ address: addrinfo, timeoutMs: Int64) -> Result<Int32, Why> {
        let fd = socket(address.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Why(text: String(cString: strerror(errno)))) }
        if Glibc.connect(fd, address.ai_addr, address.ai_addrlen) == 0 { return .success(fd) }
        guard errno == EINPROGRESS else { return fail(fd, errno) }
        var wait = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&wait, 1, Int32(min(timeoutMs, Int64(Int32.max))))
        guard ready > 0 else { return ready == 0 ? fail(fd, ETIMEDOUT) : fail(fd, errno) }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0 ? .success(fd) : fail(fd, error)
    }

    private static func fail(_ fd: Int32, _ code: Int32) -> Result<Int32, Why> {
        close(fd)
        return .failure(Why(text: String(cString: strerror(code))))
    }
}

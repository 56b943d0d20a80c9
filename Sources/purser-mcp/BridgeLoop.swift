import Glibc
import PurserMCP
import PurserProtocol

/// The bridge's I/O: one poll loop over the supervisor's stdin and the server's stdout.
struct BridgeLoop {
    let command: [String]
    let serverFD: Int32?
    var bridge = MCPBridge()
    var server: ServerChild?
    var fromSupervisor = LineFramer()
    var fromServer = LineFramer()
    var finished: Int32?
    /// When an unanswered `server/discover` gives way to `initialize` (monotonic ms).
    var discoverDeadline: Int64?

    init(command: [String], serverFD: Int32?) {
        self.command = command
        self.serverFD = serverFD
    }

    mutating func run() -> Int32 {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while finished == nil {
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            if let server { fds.append(pollfd(fd: server.output, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), pollTimeout())
            if ready < 0 {
                if errno == EINTR { continue }
                return 1
            }
            if ready == 0 {
                carry(bridge.discoverTimedOut())
                continue
            }
            if fds[0].revents != 0 { readSupervisor(&buffer) }
            if finished == nil, fds.count > 1, fds[1].revents != 0 { readServer(&buffer) }
        }
        server?.end()
        return finished ?? 0
    }

    /// No timeout, but while the handshake waits on `server/discover` alone.
    private func pollTimeout() -> Int32 {
        guard bridge.awaitingDiscover, let discoverDeadline else { return -1 }
        return Int32(clamping: max(0, discoverDeadline - Self.nowMs()))
    }

    static func nowMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    private mutating func readSupervisor(_ buffer: inout [UInt8]) {
        let count = read(0, &buffer, buffer.count)
        if count < 0 && errno == EINTR { return }
        guard count > 0 else { return carry(bridge.supervisorClosed()) }
        var messages: [RPCMessage] = []
        var oversized = false
        buffer.withUnsafeBytes { bytes in
            fromSupervisor.feed(UnsafeRawBufferPointer(rebasing: bytes[..<count])) { event in
                switch event {
                case .line(let line): if let message = try? RPCMessage(line: line) { messages.append(message) }
                case .oversized: oversized = true
                }
            }
        }
        for message in messages where finished == nil {
            if case .request(_, "initialize", let params) = message, let limit = params?["limits"]?["maxLineBytes"]?.numberValue?.int64, limit > 0 {
                fromServer = LineFramer(maxLineBytes: Int(limit))
            }
            carry(bridge.fromSupervisor(message))
        }
        if oversized { finished = 1 }
    }

    private mutating func readServer(_ buffer: inout [UInt8]) {
        guard let server else { return }
        let count = read(server.output, &buffer, buffer.count)
        if count < 0 && errno == EINTR { return }
        guard count > 0 else {
            // Its stdout closed: it is ending, or closed fd 1 and lives on; either way it gets
            // the stop sequence, not an unbounded wait.
            server.end()
            return carry(bridge.serverFailed("closed its stdout (\(server.waitStatus()))"))
        }
        var messages: [RPCMessage] = []
        var fault: String?
        let limit = fromServer.maxLineBytes
        buffer.withUnsafeBytes { bytes in
            fromServer.feed(UnsafeRawBufferPointer(rebasing: bytes[..<count])) { event in
                switch event {
                case .line(let line) where line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }): break
                case .line(let line):
                    do {
                        messages.append(try RPCMessage(line: line))
                    } catch {
                        fault = fault ?? "wrote a line that is not JSON-RPC on stdout (\(String(describing: error).prefix(200)))"
                    }
                case .oversized: fault = fault ?? "wrote a line past the limit of \(limit) bytes"
                }
            }
        }
        for message in messages where finished == nil { carry(bridge.fromServer(message)) }
        if let fault, finished == nil { carry(bridge.serverFailed(fault)) }
    }

    private mutating func carry(_ actions: [MCPBridge.Action]) {
        for action in actions {
            switch action {
            case .toSupervisor(let message): writeAll(1, message.line())
            case .toServer(let message): if let server { writeAll(server.input, message.line()) }
            case .startServer:
                discoverDeadline = Self.nowMs() + Int64(MCPBridge.discoverTimeoutMs)
                do {
                    server = try ServerChild(command, fd: serverFD)
                } catch {
                    carry(bridge.serverFailed("could not start: \(error)"))
                }
            case .finish(let status): finished = status
            }
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

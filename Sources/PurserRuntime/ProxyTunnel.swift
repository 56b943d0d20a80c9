import Glibc
import PurserGateway
import PurserProtocol

/// One HTTPS tunnel's bytes, on its connection's thread: the worker's socket and the
/// upstream's spliced both ways with poll, through one bounded buffer each way. A byte is
/// read only within the tunnel's allowance (its byte cap, what the run's hold pays for). It
/// ends when both sides have closed, when the allowance is spent and what was read is
/// written, after the idle timeout, at the run's deadline, when the proxy stops, or on a
/// socket error; then it is settled as one gateway call.
struct ProxyTunnel: Sendable {
    var meter: Tunnel
    let upstream: Int32
    /// What the worker sent after its CONNECT head: the first bytes up.
    let early: [UInt8]
    let stopped: @Sendable () -> Bool

    /// How often a tunnel waiting on nothing looks whether the proxy stopped.
    static let tickMs: Int64 = 500
    /// How long past the run's deadline a tunnel may last if the run's end never reached it.
    static let deadlineGraceMs: Int64 = 2_000

    /// One direction: bytes read from `from`, waiting to be written to `to`.
    private struct Flow {
        let from: Int32
        let to: Int32
        let up: Bool
        var buffer: [UInt8]
        var start = 0
        var end = 0
        /// `from` has closed.
        var eof = false
        /// `to` was told no more is coming.
        var shut = false

        init(from: Int32, to: Int32, up: Bool, size: Int = Tunnel.step) {
            self.from = from
            self.to = to
            self.up = up
            buffer = [UInt8](repeating: 0, count: size)
        }

        var pending: Bool { start < end }
        var done: Bool { eof && !pending }
    }

    private enum Step { case going, ended(TunnelEnd) }

    mutating func run(client: Int32) -> TunnelEnd {
        for fd in [client, upstream] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var flows = [
            Flow(from: client, to: upstream, up: true, size: max(Tunnel.step, early.count)), Flow(from: upstream, to: client, up: false),
        ]
        let ended = seed(&flows[0]) ?? splice(&flows, client: client)
        close(upstream)
        meter.finish(ended)
        return ended
    }

    /// The early bytes go up first, within the allowance.
    private mutating func seed(_ flow: inout Flow) -> TunnelEnd? {
        guard !early.isEmpty else { return nil }
        let allowed = meter.allowance(early.count)
        guard allowed == early.count else { return meter.exhausted ?? .failed }
        flow.buffer.replaceSubrange(0..<allowed, with: early)
        flow.end = allowed
        meter.count(allowed, up: true)
        return nil
    }

    private mutating func splice(_ flows: inout [Flow], client: Int32) -> TunnelEnd {
        var active = ProxyConnection.monotonicMs()
        while true {
            if stopped() { return .runEnded }
            if flows.allSatisfy(\.done) { return .closed }
            if let exhausted = meter.exhausted, !flows.contains(where: \.pending) { return exhausted }
            let now = ProxyConnection.monotonicMs()
            let idleLeft = meter.idleTimeoutMs - (now - active)
            guard idleLeft > 0 else { return .idle }
            // The run's own deadline ends it first (`stopped`): this is the floor, a grace past
            // it, so that a tunnel closing at the same instant never lets the worker answer
            // before its run is ended as timed out.
            let deadlineLeft = meter.deadlineMs.map { $0 + Self.deadlineGraceMs - unixMilliseconds() } ?? Int64.max
            guard deadlineLeft > 0 else { return .deadline }
            var fds = [pollfd(fd: client, events: 0, revents: 0), pollfd(fd: upstream, events: 0, revents: 0)]
            interest(flows, &fds)
            let ready = poll(&fds, 2, Int32(min(Self.tickMs, idleLeft, deadlineLeft)))
            if ready < 0 && errno != EINTR { return .failed }
            guard ready > 0 else { continue }
            for index in flows.indices {
                switch move(&flows[index], fds, &active) {
                case .going: continue
                case .ended(let ended): return ended
                }
            }
        }
    }

    /// What poll watches: a flow's source while its buffer is empty and bytes may pass,
    /// its destination while bytes wait. A socket watched for nothing is left out (a closed
    /// one would wake poll at once, again and again).
    private func interest(_ flows: [Flow], _ fds: inout [pollfd]) {
        for flow in flows {
            if !flow.eof && !flow.pending && meter.exhausted == nil { add(Int16(POLLIN), for: flow.from, &fds) }
            if flow.pending { add(Int16(POLLOUT), for: flow.to, &fds) }
        }
        for index in fds.indices where fds[index].events == 0 { fds[index].fd = -1 }
    }

    private func add(_ events: Int16, for fd: Int32, _ fds: inout [pollfd]) {
        for index in fds.indices where fds[index].fd == fd { fds[index].events |= events }
    }

    private func revents(_ fd: Int32, _ fds: [pollfd]) -> Int16 { fds.first { $0.fd == fd }?.revents ?? 0 }

    /// Reads into the flow or writes out of it, as poll said; shuts its destination for
    /// writing once its source closed and everything is written.
    private mutating func move(_ flow: inout Flow, _ fds: [pollfd], _ active: inout Int64) -> Step {
        let wake = Int16(POLLERR | POLLHUP)
        if !flow.eof, !flow.pending, revents(flow.from, fds) & (Int16(POLLIN) | wake) != 0 {
            if case .ended(let ended) = read(&flow, &active) { return .ended(ended) }
        }
        if flow.pending, revents(flow.to, fds) & (Int16(POLLOUT) | wake) != 0 {
            if case .ended(let ended) = write(&flow, &active) { return .ended(ended) }
        }
        if flow.done && !flow.shut {
            shutdown(flow.to, Int32(SHUT_WR))
            flow.shut = true
        }
        return .going
    }

    private mutating func read(_ flow: inout Flow, _ active: inout Int64) -> Step {
        let allowed = meter.allowance(flow.buffer.count)
        guard allowed > 0 else { return .going }
        let count = flow.buffer.withUnsafeMutableBytes { Glibc.read(flow.from, $0.baseAddress!, allowed) }
        if count > 0 {
            flow.start = 0
            flow.end = count
            meter.count(count, up: flow.up)
            active = ProxyConnection.monotonicMs()
        } else if count == 0 {
            flow.eof = true
        } else if errno != EAGAIN && errno != EINTR {
            return .ended(Self.ending(errno))
        }
        return .going
    }

    private func write(_ flow: inout Flow, _ active: inout Int64) -> Step {
        let count = flow.buffer.withUnsafeBytes { bytes in
            Glibc.send(flow.to, bytes.baseAddress! + flow.start, flow.end - flow.start, Int32(MSG_NOSIGNAL))
        }
        if count > 0 {
            flow.start += count
            active = ProxyConnection.monotonicMs()
        } else if count < 0 && errno != EAGAIN && errno != EINTR {
            return .ended(Self.ending(errno))
        }
        return .going
    }

    /// A reset or a broken pipe is a side closing; anything else a failure.
    private static func ending(_ code: Int32) -> TunnelEnd { code == ECONNRESET || code == EPIPE ? .closed : .failed }
}

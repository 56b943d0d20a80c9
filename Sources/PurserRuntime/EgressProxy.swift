import Dispatch
import Glibc
import Logging
import PurserGateway
import PurserProtocol
import Synchronization

/// The run's way out for tools that fetch URLs themselves: an HTTP proxy the supervisor
/// serves on the worker's own loopback (`egress:`; `HTTP_PROXY` points at it). A plain
/// `http://` request goes through the gateway's whole pipeline as one of the run's gateway
/// calls, to an integration of the run's `egress` only: allow-list by base URL, the
/// credential, rate limits, quotas, cost, cache, scrubbing. A `CONNECT` to the host and port
/// of an `https://` integration with `tunnel:` is a tunnel the gateway admits and meters
/// (`ProxyTunnel`); its content is TLS, never seen. Anything else is answered 403 or 400 with
/// the reason. One request or tunnel per connection; at most `maxConnections` at once.
final class EgressProxy: Sendable {
    static let port: UInt16 = 3128
    static let maxConnections = 16

    private let listener: Int32
    private let gateway: Gateway
    private let integrations: [Integration]
    private let caller: @Sendable () -> GatewayCaller?
    private let logger: Logger
    private let open = Mutex<Set<Int32>>([])
    private let stopped = Atomic<Bool>(false)
    private let acceptFailing = Atomic<Bool>(false)
    private let done = DispatchGroup()

    init(listener: Int32, gateway: Gateway, egress: [String], logger: Logger, caller: @escaping @Sendable () -> GatewayCaller?) {
        self.listener = listener
        self.gateway = gateway
        integrations = gateway.config.integrations.filter { egress.contains($0.name) }
        self.caller = caller
        self.logger = logger
    }

    func start() {
        done.enter()
        guard DetachedThread.start({ self.accept() }) else {
            logger.error("the egress proxy could not start a thread: the run has no way out")
            done.leave()
            return
        }
    }

    /// Closes the listener and every connection, and waits for their threads: after this,
    /// nothing of the proxy is left in the run's network namespace.
    func stop() {
        // Under the lock that `release` closes under: an fd shut down here is still the
        // connection's, not a number the supervisor reused since.
        let first = open.withLock { open -> Bool in
            guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return false }
            for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        done.wait()
        close(listener)
    }

    private func accept() {
        defer { done.leave() }
        while !stopped.load(ordering: .acquiring) {
            // The spawner closes every fd but the worker's own in its child: no CLOEXEC race.
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                acceptFailing.store(false, ordering: .relaxed)
            }
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                guard acceptFailed(errno) else { return }
                continue
            }
            let admitted = open.withLock { open -> Bool? in
                // A connection accepted as the proxy stops would miss stop's shutdown.
                guard !stopped.load(ordering: .acquiring) else { return nil }
                guard open.count < Self.maxConnections else { return false }
                open.insert(fd)
                return true
            }
            guard admitted == true else {
                if admitted == false { ProxyConnection.answer(fd, status: 503, message: "more than \(Self.maxConnections) connections at once") }
                close(fd)
                continue
            }
            done.enter()
            let started = DetachedThread.start {
                defer { self.release(fd) }
                ProxyConnection(fd: fd).serve(self.handle)
            }
            if !started {
                ProxyConnection.answer(fd, status: 503, message: "the proxy is out of threads")
                release(fd)
            }
        }
    }

    private func release(_ fd: Int32) {
        open.withLock { open in
            open.remove(fd)
            close(fd)
        }
        done.leave()
    }

    /// An accept that failed other than by a signal or an aborted connection: out of fds or
    /// memory waits a moment and tries again (the run keeps its way out once they free up);
    /// anything else, or a stopped proxy, ends the loop. Either is logged: a proxy that stops
    /// answering must say why. True to try again.
    private func acceptFailed(_ code: Int32) -> Bool {
        guard !stopped.load(ordering: .acquiring) else { return false }
        let transient = [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code)
        // Once a streak: a supervisor out of fds must not also flood its log.
        guard !acceptFailing.exchange(true, ordering: .relaxed) else {
            if transient { usleep(100_000) }
            return transient
        }
        logger.warning(
            transient ? "the egress proxy cannot accept a connection for now" : "the egress proxy stopped accepting connections",
            metadata: ["error": "\(String(cString: strerror(code)))"])
        if transient { usleep(100_000) }
        return transient
    }

    /// One request: the gateway's answer, or why not.
    private func handle(_ request: ProxyRequest, body: [UInt8]) -> ProxyConnection.Answer {
        if request.isConnect { return tunnel(request, early: body) }
        guard let (integration, path) = request.integration(among: integrations) else {
            let names = integrations.map(\.name).joined(separator: ", ")
            return .refused(403, "no integration of this run's egress (\(names.isEmpty ? "none" : names)) holds http://\(request.host):\(request.port)\(request.path)")
        }
        guard let caller = caller() else { return .refused(503, "the run takes no gateway calls now") }
        // An unmodified tool sends its client's usual headers: those the integration does not
        // let a worker set are left out (a gateway/call naming them would be refused).
        var headers: [String: String] = [:]
        for (name, value) in request.headers where integration.workerHeaders.contains(name) && !ProxyConnection.hopByHop.contains(name) {
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        let params = GatewayCallParams(integration: integration.name, method: request.method, path: path, headers: headers, body: body)
        let answered = DispatchSemaphore(value: 0)
        let result = Mutex<Result<GatewayCallResult, GatewayFailure>?>(nil)
        gateway.call(params, caller: caller) { outcome in
            result.withLock { $0 = outcome }
            answered.signal()
        }
        answered.wait()
        switch result.withLock({ $0 })! {
        case .success(let answer): return .answered(answer)
        case .failure(let failure): return refused(failure, "an egress request", target: integration.name)
        }
    }

    /// A CONNECT: the gateway admits the tunnel and dials the integration's host, or says why not.
    private func tunnel(_ request: ProxyRequest, early: [UInt8]) -> ProxyConnection.Answer {
        guard let caller = caller() else { return .refused(503, "the run takes no gateway calls now") }
        let admitted = gateway.admitTunnel(host: request.host, port: request.port, egress: integrations, caller: caller)
        switch admitted.flatMap({ tunnel in tunnel.dial().map { (tunnel, $0) } }) {
        case .success(let (meter, upstream)):
            // A kept worker's run ends without its proxy stopping: the tunnel ends with the run
            // that opened it, or the worker, idle or in its next run, would pass bytes on that
            // run's account (and keep it from being settled).
            return .tunnel(ProxyTunnel(meter: meter, upstream: upstream, early: early) {
                self.stopped.load(ordering: .acquiring) || self.caller()?.runID != caller.runID
            })
        case .failure(let failure):
            return refused(failure, "an egress tunnel", target: "\(request.host):\(request.port)")
        }
    }

    /// The worker is answered with the reason (and a known integration's refusal is a
    /// gateway_call event): the supervisor's log gets it at debug only, its target cut short,
    /// as a worker may repeat refused requests as fast as it likes, each with a 64 KiB target.
    private func refused(_ failure: GatewayFailure, _ what: String, target: String) -> ProxyConnection.Answer {
        logger.debug("\(what) was refused", metadata: ["target": "\(target.prefix(200))", "reason": "\(failure.reason.rawValue)"])
        return .refused(ProxyConnection.status(for: failure.reason), "\(failure.reason.rawValue): \(failure.message)")
    }
}

/// A detached thread for blocking socket work, which must stay off Swift's cooperative pool.
enum DetachedThread {
    /// False when the thread could not be made (the body does not run).
    @discardableResult
    static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        guard created == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            return false
        }
        return true
    }

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}

import Glibc
public import Logging
public import PurserGateway
import PurserLedger
import PurserProtocol
public import PurserSandbox

public struct RuntimeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let invalidRequest = Code("invalid request")
        public static let stateDirectory = Code("state directory")
        public static let ledger = Code("ledger")
        /// The ledger's store could not be reached, for the whole store retry window.
        public static let store = Code("store")
        /// The run's sandbox level needs a layer this host lacks.
        public static let sandbox = Code("sandbox")
    }

    public let code: Code
    public let message: String
    /// The run's report when the run ended but could not be settled: what it used is
    /// known, and must not be lost with the error.
    public var report: RunReport?

    public init(code: Code, message: String, report: RunReport? = nil) {
        self.code = code
        self.message = message
        self.report = report
    }

    public var description: String { message }
}

/// Puts the modules together: a reservation in, a sandboxed worker session, a report out.
public struct Runtime: Sendable {
    /// `$PURSER_HOME`, by default `./.purser`.
    public let home: String

    /// Where budgets are kept; nil runs without a ledger (benchmarks of the bare runtime).
    public let ledger: RuntimeLedger?

    /// Brokers workers' `gateway/call`s; nil answers them "not available".
    public var gateway: Gateway?

    /// Files an untrusted worker must not see, beyond `home` (which holds the SQLite store):
    /// the gateway config, its secrets file.
    public var hiddenPaths: [String] = []

    /// Every run may go without layers this host lacks (`--allow-degraded`); see `RunRequest.allowDegraded`.
    public var allowDegradedSandbox = false

    /// The layers this host offers (probed once per process; tests take some away).
    public var host = HostSupport.current

    /// What supervisors that died left and this one could not clear at its start.
    public let leftovers: [String]

    /// Runs' reservations and the failures no caller hears of (settles after a run, steps', swarms').
    public var logger: Logger

    public init(home: String = Runtime.defaultHome(), ledger: RuntimeLedger? = nil, gateway: Gateway? = nil) {
        self.home = home
        self.ledger = ledger
        self.gateway = gateway
        logger = Logger(label: "purser.runtime")
        Self.prepareProcess()
        leftovers = Self.clearDeadSupervisors(home: home)
    }

    /// Before any run, and before the ledger reclaims their holds: what supervisors that
    /// died left on this host is killed and removed (see `Janitor.clearDeadSupervisors`).
    private static func clearDeadSupervisors(home: String) -> [String] {
        Janitor.clearDeadSupervisors(runDirectories: home + "/work")
    }

    /// A gateway for `config`, sharing quotas and cache through this runtime's ledger store.
    public func makeGateway(config: GatewayConfig) throws(GatewayFailure) -> Gateway {
        try Gateway(config: config, store: ledger.map { LedgerGatewayStore(store: $0.store) })
    }

    /// A runtime with the ledger at `location` (default: `$PURSER_LEDGER`, else `$PURSER_HOME/purser.db`).
    public static func withLedger(home: String = Runtime.defaultHome(), location: String? = nil) throws(RuntimeError) -> Runtime {
        do {
            try makeDirectory(home)
        } catch {
            throw RuntimeError(code: .stateDirectory, message: "cannot prepare \(home): \(error)")
        }
        _ = clearDeadSupervisors(home: home)
        let ledger = try RuntimeLedger(location: location ?? RuntimeLedger.defaultLocation(home: home))
        return Runtime(home: home, ledger: ledger)
    }

    public static func defaultHome() -> String {
        if let value = getenv("PURSER_HOME"), value.pointee != 0 { return String(cString: value) }
        return "./.purser"
    }

    /// The variables every worker gets; anything else must be allowed explicitly.
    public static let baseEnvironment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PURSER_PROTOCOL": "1"]

    /// Runs one routine under its reservation and reports verdict, usage and returns.
    public func exec(
        _ request: RunRequest, onEvent: @escaping @Sendable (RunEvent) -> Void = { _ in }
    ) async throws(RuntimeError) -> RunReport {
        let request = try validated(request)
        let plan = try sandboxPlan(request)
        let runID = Self.makeRunID()
        try checkRunLine(request, runID: runID, budget: Self.budget(request))
        var held: (node: Node?, holder: Holder?, denial: String?)?
        if let hold = request.hold {
            held = (hold.node, hold.holder, nil)
        } else if let ledger {
            held = try await ledger.reserve(request)
        }
        if let denial = held?.denial {
            return RunReport.denied(runID: runID, request: request, message: denial)
        }
        // The run's wall time starts now, once it holds its reservation: a wait for the
        // store (busy, or away and being reconnected to) is the supervisor's, not the run's.
        let budget = Self.budget(request)
        if let node = held?.node {
            logger.debug("run reserved", metadata: LogMetadata.run(runID, node: node, plugin: request.pluginName))
        }
        if !plan.missing.isEmpty {
            onEvent(.notice("sandbox downgraded: \(plan.missing.map(\.rawValue).joined(separator: ", ")) not enforced"))
        }
        if let problem = Janitor.startWatchdog() {
            onEvent(.notice("no watchdog (\(problem)): if this supervisor is killed, its trusted runs' escaped processes live until the next start"))
        }
        let account = RunAccount(
            budget: request.credits, team: held?.node?.team ?? request.team, onRecord: { onEvent(.gatewayCall($0)) },
            writer: writer(held?.node, holder: held?.holder, onEvent))
        let steps = ledger.flatMap { _ in held?.node }.map { node in
            StepLauncher(
                runtime: self, parent: node, holder: held?.holder, account: account, depth: request.depth,
                tools: request.tools, deadlineMs: budget.deadlineMs, workers: request.workerPool)
        }
        let pool = WorkerPool.usable(by: request)
        let key = WorkerPool.Key(request)
        let (session, served) = try await serve(
            request, runID: runID, budget: budget, plan: plan, account: account, steps: steps, pool: pool, key: key, onEvent)
        var report = served
        if let pool, session.isIdle { await pool.give(key, session) }
        if report.verdict == .cancelled, request.preemption?.isSet == true { report.verdict = .preempted }
        // Calls still in flight end within their timeouts; their charges belong to this run.
        await account.drain()
        report.usage.gatewayCredits = account.charged
        report.usage.stepCredits = account.stepCredits
        report.usage.credits = report.charge(
            declared: report.usage.reportedCredits + account.charged + account.stepCredits + report.usage.toolCredits)
        if let ledger, let node = held?.node {
            report.ledgerNode = node.id
            do {
                report.settled(try await ledger.settle(node, holder: held?.holder, report: report))
            } catch {
                logger.failure("run not settled", LogMetadata.run(runID, node: node, plugin: request.pluginName), error)
                throw RuntimeError(code: error.code, message: error.message, report: report)
            }
        }
        return report
    }

    /// The run's budget, its deadline counted from now.
    private static func budget(_ request: RunRequest) -> Budget {
        Budget(
            credits: request.credits, deadlineMs: unixMilliseconds() + request.wallTimeMs, memoryBytes: request.memoryBytes,
            tools: request.tools)
    }

    /// Refuses, before anything is reserved, an input whose run message would not fit on
    /// one line. (A deadline taken later has as many digits.)
    private func checkRunLine(_ request: RunRequest, runID: String, budget: Budget) throws(RuntimeError) {
        let runLine = RPCMessage.request(
            id: .number(2), method: Method.run, params: RunParams(runID: runID, input: request.input, budget: budget).json
        ).line()
        guard runLine.count - 1 <= request.maxLineBytes else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "the input makes a run message of \(runLine.count - 1) bytes; the line limit is \(request.maxLineBytes)")
        }
    }

    /// Runs the request on a kept worker if one takes it, else on a worker of its own.
    private func serve(
        _ request: RunRequest, runID: String, budget: Budget, plan: SandboxPlan, account: RunAccount, steps: StepLauncher?,
        pool: WorkerPool?, key: WorkerPool.Key, _ onEvent: @escaping @Sendable (RunEvent) -> Void
    ) async throws(RuntimeError) -> (WorkerSession, RunReport) {
        // A kept worker that exited or misbehaved while idle says so, and the next one is tried.
        while let idle = pool?.take(key) {
            let report = await withTaskCancellationHandler {
                await idle.runAgain(request: request, runID: runID, budget: budget, account: account, steps: steps, onEvent: onEvent)
            } onCancel: {
                idle.cancel(runID: runID)
            }
            if let report { return (idle, report) }
        }
        let fresh = try newSession(
            request, runID: runID, budget: budget, plan: plan, account: account, steps: steps, reusable: pool != nil, onEvent)
        let report = await withTaskCancellationHandler {
            await fresh.run()
        } onCancel: {
            fresh.cancel(runID: runID)
        }
        return (fresh, report)
    }

    /// A session with a worker of its own, in a working directory of its own that goes when
    /// the worker does.
    private func newSession(
        _ request: RunRequest, runID: String, budget: Budget, plan: SandboxPlan, account: RunAccount, steps: StepLauncher?,
        reusable: Bool, _ onEvent: @escaping @Sendable (RunEvent) -> Void
    ) throws(RuntimeError) -> WorkerSession {
        let directory = try runDirectory(plan)
        return WorkerSession(
            request: request, runID: runID, budget: budget, profile: profile(request, directory: directory?.path, plan: plan),
            sandbox: plan, gateway: gateway.map { ($0, account) }, account: account, steps: steps, reusable: reusable,
            directory: directory, onEvent: onEvent)
    }

    /// A worker's working directory; none for one with its own mount namespace, which
    /// works in a private tmpfs instead.
    func runDirectory(_ plan: SandboxPlan) throws(RuntimeError) -> RunDirectory? {
        var directory: RunDirectory?
        do {
            try Self.makeDirectory(home)
            if !plan.isolation.filesystem { directory = try RunDirectory(parent: home + "/work") }
            // Without its own /tmp, a worker running as the sandbox user works in a directory it owns.
            if let directory, let user = plan.isolation.user, geteuid() == 0 { chown(directory.path, user.uid, user.gid) }
        } catch {
            throw RuntimeError(code: .stateDirectory, message: "cannot prepare \(home): \(error)")
        }
        return directory
    }

    /// Gateway calls' charges and audit events go to the run's ledger node in batches,
    /// behind the calls; the run is settled only once all are written.
    private func writer(
        _ node: Node?, holder: Holder?, _ onEvent: @escaping @Sendable (RunEvent) -> Void
    ) -> (@Sendable ([(record: GatewayCallRecord, charged: Credits)]) -> Void)? {
        guard let store = ledger?.store, let node else { return nil }
        return { batch in
            do {
                let refused = try store.charges(
                    node.id, batch.map { ($0.charged.micros, $0.record.detail) }, holder: holder, event: "gateway_call")
                for refusal in refused { onEvent(.notice("gateway call not recorded: \(refusal)")) }
            } catch {
                onEvent(.notice("could not record \(batch.count) gateway calls: \(error)"))
            }
        }
    }

    /// The run's level resolved on this host, hiding the supervisor's state from the worker.
    func sandboxPlan(_ request: RunRequest) throws(RuntimeError) -> SandboxPlan {
        try sandboxPlan(
            request.sandbox, optOut: request.sandboxOptOut, allowDegraded: request.allowDegraded, plugin: request.pluginName)
    }

    func sandboxPlan(
        _ level: SandboxLevel, optOut: Set<SandboxLayer>?, allowDegraded: Bool = false, plugin: String
    ) throws(RuntimeError) -> SandboxPlan {
        do {
            return try level.plan(
                host: host, hiddenPaths: supervisorFiles, allowDegraded: allowDegraded || allowDegradedSandbox, optOut: optOut)
        } catch {
            throw RuntimeError(code: .sandbox, message: "\(plugin): \(error.message)")
        }
    }

    func profile(_ request: RunRequest, directory: String?, plan: SandboxPlan) -> SandboxProfile {
        var environment = Self.baseEnvironment
        environment["HOME"] = directory ?? "/tmp"
        environment["TMPDIR"] = directory ?? "/tmp"
        environment.merge(request.environment) { _, allowed in allowed }
        var limits = ResourceLimits(
            cpuSeconds: request.cpuSeconds, dataBytes: UInt64(request.memoryBytes), memoryBytes: UInt64(request.memoryBytes))
        limits.openFiles = 1024
        limits.processes = request.maxProcesses
        var profile = SandboxProfile(
            executable: request.executable, arguments: request.arguments, environment: environment,
            workingDirectory: directory, limits: limits, containment: request.containment,
            executableFD: request.executableFD, keepExecutableFD: request.keepExecutableFD)
        profile.passedFDs = request.passedFDs
        if !request.egress.isEmpty {
            profile.egressPort = EgressProxy.port
            let proxy = "http://127.0.0.1:\(EgressProxy.port)"
            for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] { profile.environment[name] = proxy }
        }
        profile.isolation = plan.isolation
        profile.isolation.sharedPaths = request.readOnlyPaths
        profile.parentGroups = request.parentGroups
        // Unless the run may go without, a cgroup the plan counts on must really be there.
        if !(request.allowDegraded || allowDegradedSandbox) {
            profile.requiredCgroups = Set(plan.applied).intersection(SandboxLayer.cgroups)
        }
        return profile
    }

    /// What no worker may see: the state directory, the store, the gateway's config and secrets.
    var supervisorFiles: [String] { [home] + hiddenPaths + (ledger?.files ?? []) + (gateway?.config.files ?? []) }

    /// Nil when a run at `sandbox` may reach these integrations through egress, else why not.
    func egressProblem(_ egress: [String], sandbox: SandboxLevel) -> String? {
        guard !egress.isEmpty else { return nil }
        let known = Set(gateway?.config.integrations.map(\.name) ?? [])
        if let unknown = egress.first(where: { !known.contains($0) }) {
            return "no gateway integration named \(unknown)\(gateway == nil ? " (no gateway is configured)" : "")"
        }
        guard sandbox == .untrusted else { return "egress is for untrusted runs, in a network namespace of their own" }
        return nil
    }

    /// The request checked, its read-only directories made canonical.
    func validated(_ request: RunRequest) throws(RuntimeError) -> RunRequest {
        func invalid(_ message: String) -> RuntimeError { RuntimeError(code: .invalidRequest, message: message) }
        guard request.wallTimeMs > 0 else { throw invalid("time must be positive") }
        guard request.memoryBytes > 0 else { throw invalid("memory must be positive") }
        if let cpu = request.cpuSeconds, cpu <= 0 { throw invalid("cpu must be positive") }
        for key in request.environment.keys where key.isEmpty || key.contains("=") {
            throw invalid("bad environment variable name '\(key)'")
        }
        var request = request
        // An integration reached through egress is a tool the run holds, granted (or not) by
        // its parent like any other: asked for here, or already in a hold's tools.
        let unheld = request.egress.filter { !request.tools.contains($0) }
        if request.hold == nil {
            request.tools += unheld
        } else if !unheld.isEmpty {
            throw invalid("egress \(unheld.joined(separator: ", ")): not among the routine's tools")
        }
        do {
            request.readOnlyPaths = try request.readOnlyPaths.map { (path) throws(SharedDirectory.Problem) in
                try SharedDirectory.resolve(path, hiding: supervisorFiles)
            }
        } catch {
            throw invalid("read-only directory \(error.message)")
        }
        if let price = request.price, price.perCall > request.credits {
            throw invalid("the tool costs \(price.perCall) credits a call; the run holds \(request.credits)")
        }
        if let problem = egressProblem(request.egress, sandbox: request.sandbox) { throw invalid("egress: \(problem)") }
        guard request.passedFDs.count <= 4, request.passedFDs.allSatisfy({ $0 >= 0 }) else {
            throw invalid("bad passed fds \(request.passedFDs)")
        }
        if let fd = request.executableFD {
            guard fd >= 0 else { throw invalid("bad executable fd \(fd)") }
        } else {
            do {
                _ = try Spawner.resolveExecutable(request.executable)
            } catch {
                throw invalid(error.description)
            }
        }
        return request
    }

    static func makeDirectory(_ path: String) throws(SandboxError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw SandboxError(code: .syscallFailed, errno: errno, message: "mkdir \(path)")
        }
    }

    /// Waits until finished runs' directories and groups are removed; call before exiting.
    public static func finishCleanup() {
        Janitor.shutDown()
    }

    public static func makeRunID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return "r-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Once per supervisor: a worker's closed pipe must be EPIPE, not death by SIGPIPE,
    /// and fds 0-2 must be taken so that pipes never land on them.
    private static let preparedProcess: Bool = {
        signal(SIGPIPE, SIG_IGN)
        // Non-dumpable: a worker (capabilities dropped) cannot read this process's
        // environment or memory through /proc, though it may run as the same uid.
        Sandbox.makeSupervisorNonDumpable()
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) < 0 {
            _ = open("/dev/null", O_RDWR)
        }
        return true
    }()

    static func prepareProcess() { _ = preparedProcess }
}

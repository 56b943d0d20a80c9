import Glibc
import PurserLedger
import PurserProtocol
import PurserSandbox

/// What a job file asks for, checked before anything is reserved: each routine's plugin
/// (a path, or a registered plugin checked against its pin), that the host can sandbox it,
/// the order of the file, and who runs after whom. Templates and the graph were checked
/// when the file was loaded (`JobFile`).
struct SwarmPlan: Sendable {
    let job: JobFile
    /// Each routine's executable: a path, or a registered plugin (run through its pinned file).
    let plugins: [String: PluginSource]
    /// Routines by name, their place in the file, and who runs after each.
    let routines: [String: JobFile.Routine]
    let positions: [String: Int]
    let dependents: [String: [String]]
    /// Where registered plugins' files are fetched to when a host lacks them.
    let runtime: Runtime

    enum PluginSource: Sendable {
        case path(String)
        case registered(PluginCall)

        /// A path runs untrusted; a registered plugin as its manifest says.
        var sandbox: SandboxLevel {
            guard case .registered(let call) = self else { return .untrusted }
            return call.manifest.sandbox
        }

        var optOut: Set<SandboxLayer>? {
            guard case .registered(let call) = self else { return nil }
            return call.manifest.optOut
        }

        /// The name a sandbox refusal gives: the registered name, or the file's.
        var label: String {
            switch self {
            case .registered(let call): call.record.name
            case .path(let path): String(path.split(separator: "/").last ?? "")
            }
        }

        /// The integrations a routine reaches through egress: its own `egress:`, else its plugin's.
        func egress(of routine: JobFile.Routine) -> [String] {
            guard case .registered(let call) = self else { return routine.egress ?? [] }
            return routine.egress ?? call.manifest.egress
        }
    }

    init(job: JobFile, runtime: Runtime) throws(RuntimeError) {
        let registry = try PluginRegistry(runtime: runtime)
        var plugins: [String: PluginSource] = [:]
        // Each registered plugin is read from the store and checked once a plan, not once a
        // routine: a swarm of 2,000 routines of one plugin made 2,000 store transactions.
        var checked: [String: PluginCall] = [:]
        for routine in job.routines {
            plugins[routine.name] = try Self.resolve(routine, in: job, registry: registry, checked: &checked)
        }
        // A host that cannot sandbox a routine, or give it its egress, refuses the swarm before
        // anything is reserved.
        for routine in job.routines {
            let source = plugins[routine.name]!
            _ = try runtime.sandboxPlan(source.sandbox, optOut: source.optOut, plugin: source.label)
            try Self.checkEgress(routine, source: source, in: job, runtime: runtime)
        }
        self.job = job
        self.runtime = runtime
        self.plugins = plugins
        routines = Dictionary(uniqueKeysWithValues: job.routines.map { ($0.name, $0) })
        positions = Dictionary(uniqueKeysWithValues: job.routines.enumerated().map { ($1.name, $0) })
        var dependents: [String: [String]] = [:]
        for routine in job.routines { for before in routine.after { dependents[before, default: []].append(routine.name) } }
        self.dependents = dependents
    }

    /// A name is a registered plugin, checked against its pin now (and again at each run);
    /// a path is relative to the job file.
    static func resolve(
        _ routine: JobFile.Routine, in job: JobFile, registry: PluginRegistry, checked: inout [String: PluginCall]
    ) throws(RuntimeError) -> PluginSource {
        let field = job.field(routine)
        guard routine.plugin.contains("/") else {
            let call: PluginCall
            if let known = checked[routine.plugin] {
                call = known
            } else {
                call = try registered(routine, field: field, registry: registry)
                checked[routine.plugin] = call
            }
            // An input with templates is checked when it is filled, still before its hold.
            if Template.references(in: routine.input).isEmpty, let problem = call.inputProblem(routine.input) {
                throw RuntimeError(code: .invalidRequest, message: "\(field).input \(problem)")
            }
            let missing = Set(call.manifest.tools).subtracting(routine.tools)
            guard missing.isEmpty else {
                throw RuntimeError(
                    code: .invalidRequest,
                    message: "\(field).tools: plugin \(call.record.name) needs \(missing.sorted().joined(separator: ", "))")
            }
            return .registered(call)
        }
        var path = routine.plugin
        if !path.hasPrefix("/"), let slash = job.file.lastIndex(of: "/") { path = String(job.file[...slash]) + path }
        guard access(path, X_OK) == 0 else {
            throw RuntimeError(code: .invalidRequest, message: "\(field).plugin: no executable at \(path)")
        }
        return .path(path)
    }

    /// The registered plugin (or MCP tool) a routine names, read from the store and its file
    /// checked once a plan, not once a routine: a swarm of 2,000 routines of one plugin made
    /// 2,000 store transactions.
    private static func registered(_ routine: JobFile.Routine, field: String, registry: PluginRegistry) throws(RuntimeError) -> PluginCall {
        do throws(RuntimeError) {
            guard let call = try registry.resolve(routine.plugin) else {
                throw RuntimeError(
                    code: .invalidRequest, message: "no plugin named '\(routine.plugin)' is registered (purser plugin add), and it is not a path")
            }
            // A host without the file fetches it here, once, so that each run finds it in
            // the host's cache (a fleet host makes its plans on the store's threads).
            close(try PluginRegistry.openPinned(call.record, runtime: registry.runtime).fd)
            return call
        } catch {
            throw RuntimeError(code: .invalidRequest, message: "\(field).plugin: \(error.message)")
        }
    }

    /// Whether a routine's plugin asks that its untrusted worker be kept (`reuseUntrusted`):
    /// only then is the team's policy on it read.
    var asksUntrustedReuse: Bool {
        plugins.values.contains { source in
            guard case .registered(let call) = source else { return false }
            return call.manifest.reuseUntrusted
        }
    }

    private static func checkEgress(_ routine: JobFile.Routine, source: PluginSource, in job: JobFile, runtime: Runtime) throws(RuntimeError) {
        let egress = source.egress(of: routine)
        let field = job.field(routine)
        if let unheld = egress.first(where: { !routine.tools.contains($0) }) {
            throw RuntimeError(
                code: .invalidRequest, message: "\(field).tools: its plugin reaches \(unheld) through egress, so it must hold that tool")
        }
        if let problem = runtime.egressProblem(egress, sandbox: source.sandbox) {
            throw RuntimeError(code: .invalidRequest, message: "\(field).egress: \(problem)")
        }
    }

    /// A routine's filled input against its tool's schema; nil when fine or not a tool.
    func inputProblem(_ routine: JobFile.Routine, _ input: JSONValue) -> String? {
        guard case .registered(let call) = plugins[routine.name], let problem = call.inputProblem(input) else { return nil }
        return "input \(problem)"
    }

    /// The cache key of a routine whose plugin is registered as deterministic.
    func cacheKey(_ routine: JobFile.Routine, _ input: JSONValue) -> String? {
        guard case .registered(let call) = plugins[routine.name], call.manifest.deterministic else { return nil }
        return RoutineCache.key(digest: call.record.sha256, input: input)
    }

    /// A registered plugin's manifest: its default estimate when the job gives none, and
    /// its maximum as a cap on what is reserved.
    func planned(_ routine: JobFile.Routine) -> (estimate: Amounts, max: Amounts?) {
        guard case .registered(let call) = plugins[routine.name] else { return (routine.estimate, nil) }
        let estimate = routine.estimateGiven ? routine.estimate : call.manifest.defaultReservation ?? routine.estimate
        return (estimate, call.manifest.maxReservation)
    }

    /// A routine's hold from its swarm: `credits` as the strategy or a share made them,
    /// the job's estimate for the rest, all capped by the plugin's manifest.
    func holdRequest(_ routine: JobFile.Routine, credits: Int64, from swarm: NodeID, holder: Holder?) -> ReserveRequest {
        let strategy = ReservationStrategy(rawValue: job.swarm.strategy) ?? .conservative
        let (estimate, maximum) = planned(routine)
        var amounts = Amounts(credits: Credits(micros: credits), timeMs: estimate.timeMs, memoryBytes: estimate.memoryBytes)
        if let maximum {
            amounts.credits = Credits(micros: min(credits, maximum.credits.micros))
            amounts.timeMs = min(amounts.timeMs, maximum.timeMs)
            amounts.memoryBytes = min(amounts.memoryBytes, maximum.memoryBytes)
        }
        return .run(
            .routine, name: routine.name, plugin: routine.plugin, amounts: amounts, from: swarm, tools: routine.tools,
            holder: holder, estimate: estimate.credits, strategy: strategy)
    }

    /// The routine as a run under its hold; a registered plugin's file is opened through its
    /// pin (the caller closes the fd after the run).
    func runRequest(
        _ routine: JobFile.Routine, input: JSONValue, hold: LedgerHold, workers: WorkerPool
    ) throws(RuntimeError) -> RunRequest {
        var executable = ""
        var launch: PluginLaunch?
        switch plugins[routine.name]! {
        case .path(let path): executable = path
        case .registered(let call): launch = try PluginLaunch.open(call, runtime: runtime)
        }
        var request = RunRequest(
            executable: executable, pluginName: routine.name, input: input,
            credits: Credits(micros: hold.node.cap.credits), wallTimeMs: hold.node.cap.timeMs, memoryBytes: hold.node.cap.memoryBytes)
        request.tools = routine.tools
        request.hold = hold
        launch?.configure(&request, workers: workers)
        request.egress = plugins[routine.name]!.egress(of: routine)
        return request
    }
}

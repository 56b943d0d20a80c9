import Glibc
import PurserLedger
import PurserProtocol

/// What a job file asks for, checked before anything is reserved: each routine's plugin
/// (a path, or a registered plugin checked against its pin), that the host can sandbox it,
/// the order of the file, and who runs after whom. Templates and the graph were checked
/// when the file was loaded (`JobFile`).
struct SwarmPlan: Sendable {
    let job: JobFile
    /// Each routine's executable: a path, or a registered plugin (run through its pinned file).
    let plugins: [String: PluginSource]
    /// For routines whose plugin is `NAME.TOOL`, an MCP server's tool: the tool's name.
    let tools: [String: String]
    /// Routines by name, their place in the file, and who runs after each.
    let routines: [String: JobFile.Routine]
    let positions: [String: Int]
    let dependents: [String: [String]]
    /// Where registered plugins' files are fetched to when a host lacks them.
    let runtime: Runtime

    enum PluginSource: Sendable {
        case path(String)
        case registered(PluginRecord, PluginManifest)
    }

    init(job: JobFile, runtime: Runtime) throws(RuntimeError) {
        let registry = try PluginRegistry(runtime: runtime)
        var plugins: [String: PluginSource] = [:]
        // Each registered plugin is read from the store and checked once a plan, not once a
        // routine: a swarm of 2,000 routines of one plugin made 2,000 store transactions.
        var checked: [String: (record: PluginRecord, tool: String?)] = [:]
        var tools: [String: String] = [:]
        for routine in job.routines {
            let (source, tool) = try Self.resolve(routine, in: job, registry: registry, checked: &checked)
            plugins[routine.name] = source
            tools[routine.name] = tool
        }
        // A host that cannot sandbox a routine refuses the swarm before anything is reserved.
        for source in plugins.values {
            switch source {
            case .registered(let record, let manifest):
                _ = try runtime.sandboxPlan(manifest.sandbox, optOut: manifest.optOut, plugin: record.name)
            case .path(let path):
                _ = try runtime.sandboxPlan(.untrusted, optOut: nil, plugin: String(path.split(separator: "/").last ?? ""))
            }
        }
        self.job = job
        self.runtime = runtime
        self.plugins = plugins
        self.tools = tools
        routines = Dictionary(uniqueKeysWithValues: job.routines.map { ($0.name, $0) })
        positions = Dictionary(uniqueKeysWithValues: job.routines.enumerated().map { ($1.name, $0) })
        var dependents: [String: [String]] = [:]
        for routine in job.routines { for before in routine.after { dependents[before, default: []].append(routine.name) } }
        self.dependents = dependents
    }

    /// A name is a registered plugin, checked against its pin now (and again at each run);
    /// a path is relative to the job file.
    static func resolve(
        _ routine: JobFile.Routine, in job: JobFile, registry: PluginRegistry,
        checked: inout [String: (record: PluginRecord, tool: String?)]
    ) throws(RuntimeError) -> (PluginSource, tool: String?) {
        let field = "\(job.file):\(routine.line ?? 0): routines.\(routine.name).plugin"
        guard routine.plugin.contains("/") else {
            let resolved: (record: PluginRecord, tool: String?)
            if let known = checked[routine.plugin] {
                resolved = known
            } else {
                guard let found = try registry.resolve(routine.plugin) else {
                    throw RuntimeError(
                        code: .invalidRequest,
                        message: "\(field): no plugin named '\(routine.plugin)' is registered (purser plugin add), and it is not a path")
                }
                do {
                    // A host without the file fetches it here, once, so that each run finds it in
                    // the host's cache (a fleet host makes its plans on the store's threads).
                    close(try PluginRegistry.openPinned(found.record, runtime: registry.runtime).fd)
                } catch {
                    throw RuntimeError(code: .invalidRequest, message: "\(field): \(error.message)")
                }
                checked[routine.plugin] = found
                resolved = found
            }
            let record = resolved.record
            try checkTool(routine, in: job, record: record, tool: resolved.tool)
            let manifest = PluginManifest(record)
            let missing = Set(manifest.tools).subtracting(routine.tools)
            guard missing.isEmpty else {
                throw RuntimeError(
                    code: .invalidRequest,
                    message: "\(job.file):\(routine.line ?? 0): routines.\(routine.name).tools: plugin \(record.name) needs \(missing.sorted().joined(separator: ", "))")
            }
            return (.registered(record, manifest), resolved.tool)
        }
        var path = routine.plugin
        if !path.hasPrefix("/"), let slash = job.file.lastIndex(of: "/") { path = String(job.file[...slash]) + path }
        guard access(path, X_OK) == 0 else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(job.file):\(routine.line ?? 0): routines.\(routine.name).plugin: no executable at \(path)")
        }
        return (.path(path), nil)
    }

    /// A tool of an MCP server: it exists, and a routine's input without templates fits its
    /// schema (one with templates is checked when it is filled, still before its hold).
    private static func checkTool(_ routine: JobFile.Routine, in job: JobFile, record: PluginRecord, tool: String?) throws(RuntimeError) {
        guard let server = MCPServer(record) else { return }
        let field = "\(job.file):\(routine.line ?? 0): routines.\(routine.name)"
        guard let tool else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(field).plugin: \(record.name) is an MCP server: name one of its tools, \(record.name).TOOL (\(server.tools.map(\.name).joined(separator: ", ")))")
        }
        guard let found = server.tool(tool) else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(field).plugin: MCP server \(record.name) has no tool '\(tool)' (it has \(server.tools.map(\.name).joined(separator: ", ")))")
        }
        guard Template.references(in: routine.input).isEmpty else { return }
        let problems = found.problems(routine.input)
        guard problems.isEmpty else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(field).input does not fit \(routine.plugin)'s inputSchema: \(problems.joined(separator: "; "))")
        }
    }

    /// A routine's filled input against its tool's schema; nil when fine or not a tool.
    func inputProblem(_ routine: JobFile.Routine, _ input: JSONValue) -> String? {
        guard let tool = tools[routine.name], case .registered(let record, _) = plugins[routine.name],
            let found = MCPServer(record)?.tool(tool)
        else { return nil }
        let problems = found.problems(input)
        return problems.isEmpty ? nil : "input does not fit \(routine.plugin)'s inputSchema: \(problems.joined(separator: "; "))"
    }

    /// The cache key of a routine whose plugin is registered as deterministic.
    func cacheKey(_ routine: JobFile.Routine, _ input: JSONValue) -> String? {
        guard case .registered(let record, let manifest) = plugins[routine.name], manifest.deterministic else { return nil }
        return RoutineCache.key(digest: record.sha256, input: input)
    }

    /// A registered plugin's manifest: its default estimate when the job gives none, and
    /// its maximum as a cap on what is reserved.
    func planned(_ routine: JobFile.Routine) -> (estimate: Amounts, max: Amounts?) {
        guard case .registered(_, let manifest) = plugins[routine.name] else { return (routine.estimate, nil) }
        let estimate = routine.estimateGiven ? routine.estimate : manifest.defaultReservation ?? routine.estimate
        return (estimate, manifest.maxReservation)
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
        case .registered(let record, _): launch = try PluginLaunch.open(record, tool: tools[routine.name], runtime: runtime)
        }
        var request = RunRequest(
            executable: executable, pluginName: routine.name, input: input,
            credits: Credits(micros: hold.node.cap.credits), wallTimeMs: hold.node.cap.timeMs, memoryBytes: hold.node.cap.memoryBytes)
        request.tools = routine.tools
        request.hold = hold
        launch?.configure(&request)
        if case .registered(_, let manifest) = plugins[routine.name] {
            manifest.apply(to: &request, workers: workers)
            // Only the variables its manifest names, with the supervisor's values.
            for name in manifest.environment {
                if let value = getenv(name) { request.environment[name] = String(cString: value) }
            }
        }
        return request
    }
}

import Glibc
public import PurserConfig
public import PurserLedger
public import PurserProtocol
public import PurserSandbox

/// A plugin's manifest, in its one type: read from the operator's `plugin.yaml` (`load`),
/// kept in the registry as JSON (`json`), and read back from a registered plugin's record
/// (`init(stored:)`, once per plugin a plan or a call resolves: `PluginCall`).
public struct PluginManifest: Sendable, Hashable {
    public var name: String?
    public var defaultReservation: Amounts?
    public var maxReservation: Amounts?
    public var tools: [String] = []
    /// Of `tools`, those a routine of the plugin may hold only once a person approves it.
    public var approval: [String] = []
    /// Variables of the supervisor's environment the plugin may be given.
    public var environment: [String] = []
    /// Untrusted (the default) plugins get the full sandbox; trusted ones may opt out of layers.
    public var trusted = false
    /// With `trusted`: the layers it opts out of (nil: every optional one).
    public var optOut: Set<SandboxLayer>?
    /// Same input, same output: results may be cached.
    public var deterministic = false
    /// A trusted plugin's worker that declares `sequentialRuns` is kept for the swarm's next
    /// run of the plugin; false starts a new worker for every run.
    public var reuse = true
    /// An untrusted plugin's worker that declares `sequentialRuns` may be kept too, in its
    /// sandbox, for the same swarm's or `mcp serve` session's next run: only where the team
    /// allows it (`purser team create --reuse-untrusted`).
    public var reuseUntrusted = false
    /// Gateway integrations its runs reach through the egress proxy (`RunRequest.egress`).
    public var egress: [String] = []
    /// For an MCP server (`purser mcp add`): its start-up time and its tools' prices.
    public var mcp: MCPManifest?

    public init() {}

    /// The registry's form, as `json` writes it.
    public init(stored manifest: JSONValue) {
        deterministic = manifest["deterministic"]?.boolValue == true
        tools = manifest["tools"]?.arrayValue?.compactMap(\.stringValue) ?? []
        approval = manifest["approval"]?.arrayValue?.compactMap(\.stringValue) ?? []
        environment = manifest["environment"]?.arrayValue?.compactMap(\.stringValue) ?? []
        defaultReservation = Self.amounts(manifest["defaultReservation"])
        maxReservation = Self.amounts(manifest["maxReservation"])
        trusted = manifest["trusted"]?.boolValue == true
        reuse = manifest["reuse"]?.boolValue ?? true
        reuseUntrusted = manifest["reuseUntrusted"]?.boolValue == true
        optOut = manifest["optOut"]?.arrayValue.map { Set($0.compactMap { $0.stringValue.flatMap(SandboxLayer.init) }) }
        mcp = manifest["mcp"].map(MCPManifest.init(stored:))
        egress = manifest["egress"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Untrusted unless the manifest says `trusted: true`.
    public var sandbox: SandboxLevel { trusted ? .trusted : .untrusted }

    /// What a run of the plugin takes from its manifest: the sandbox, the variables it names
    /// (with the supervisor's values; nothing else of its environment), egress, and whether
    /// its worker may join `workers` (see `WorkerPool`).
    func apply(to request: inout RunRequest, workers: WorkerPool?) {
        request.sandbox = sandbox
        request.sandboxOptOut = optOut
        request.egress = egress
        for name in environment {
            if let value = getenv(name) { request.environment[name] = String(cString: value) }
        }
        if reuse { request.workerPool = workers }
        request.reuseUntrusted = reuse && reuseUntrusted
    }

    public static func load(path: String) throws(ConfigError) -> PluginManifest {
        let root = try ConfigValue.load(path: path)
        let fields = try root.mapping(allowed: [
            "name", "reservation", "tools", "approval", "environment", "trusted", "optOut", "deterministic", "reuse",
            "reuseUntrusted", "mcp", "egress",
        ])
        var manifest = PluginManifest()
        manifest.name = try fields["name"]?.nonEmptyString()
        if let reservation = fields["reservation"] {
            let parts = try reservation.mapping(allowed: ["default", "max"])
            manifest.defaultReservation = try parts["default"].map { (value) throws(ConfigError) in try amounts(value) }
            manifest.maxReservation = try parts["max"].map { (value) throws(ConfigError) in try amounts(value) }
        }
        manifest.tools = try fields["tools"]?.strings() ?? []
        if let approval = fields["approval"] { manifest.approval = try approvalTools(approval, among: manifest.tools) }
        manifest.environment = try fields["environment"]?.strings() ?? []
        manifest.trusted = try fields["trusted"]?.bool() ?? false
        if let optOut = fields["optOut"] { manifest.optOut = try layers(optOut, trusted: manifest.trusted) }
        manifest.deterministic = try fields["deterministic"]?.bool() ?? false
        manifest.reuse = try fields["reuse"]?.bool() ?? true
        manifest.reuseUntrusted = try fields["reuseUntrusted"]?.bool() ?? false
        if manifest.reuseUntrusted && !manifest.reuse, let field = fields["reuseUntrusted"] {
            throw field.error("reuseUntrusted keeps workers, and reuse: false says never to")
        }
        manifest.egress = try fields["egress"]?.strings() ?? []
        manifest.mcp = try fields["mcp"].map { (value) throws(ConfigError) in try MCPManifest.load(value) }
        return manifest
    }

    private static func layers(_ value: ConfigValue, trusted: Bool) throws(ConfigError) -> Set<SandboxLayer> {
        guard trusted else { throw value.error("only a trusted plugin (trusted: true) may opt out of sandbox layers") }
        var layers: Set<SandboxLayer> = []
        for name in try value.strings() {
            guard let layer = SandboxLayer(rawValue: name), SandboxLevel.optional.contains(layer) else {
                let known = SandboxLevel.optional.sorted().map(\.rawValue).joined(separator: ", ")
                throw value.error("'\(name)' is not a layer a plugin may opt out of (\(known))")
            }
            layers.insert(layer)
        }
        return layers
    }

    private static func amounts(_ value: ConfigValue) throws(ConfigError) -> Amounts {
        let parts = try value.mapping(allowed: ["credits", "time", "memory"])
        return Amounts(
            credits: try parts["credits"]?.credits() ?? Credits(whole: 1), timeMs: try parts["time"]?.duration() ?? 60_000,
            memoryBytes: try parts["memory"]?.size() ?? 256 << 20)
    }

    private static func amounts(_ value: JSONValue?) -> Amounts? {
        guard let value, let credits = value["credits"]?.numberValue.flatMap({ try? Credits($0, field: "credits") }),
            let time = value["timeMs"]?.numberValue?.int64, let memory = value["memoryBytes"]?.numberValue?.int64
        else { return nil }
        return Amounts(credits: credits, timeMs: time, memoryBytes: memory)
    }

    /// The registry's form (without `name`: the record has its own).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "tools": .array(tools.map(JSONValue.string)), "environment": .array(environment.map(JSONValue.string)),
            "trusted": .bool(trusted), "deterministic": .bool(deterministic), "reuse": .bool(reuse),
        ]
        if let defaultReservation { object["defaultReservation"] = defaultReservation.json }
        if let maxReservation { object["maxReservation"] = maxReservation.json }
        if let optOut { object["optOut"] = .array(optOut.sorted().map { .string($0.rawValue) }) }
        if !approval.isEmpty { object["approval"] = .array(approval.map(JSONValue.string)) }
        if let mcp { object["mcp"] = mcp.json }
        if !egress.isEmpty { object["egress"] = .array(egress.map(JSONValue.string)) }
        if reuseUntrusted { object["reuseUntrusted"] = true }
        return .object(object)
    }
}

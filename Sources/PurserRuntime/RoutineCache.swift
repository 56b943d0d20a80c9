import PurserCollections
import PurserLedger
import PurserProtocol
import PurserSandbox

/// Results of deterministic plugins, by (the plugin file's SHA-256, the input): a repeat
/// costs no credits and no spawn. An in-memory tier in front of the store's cache table,
/// which supervisors sharing a store share. Only `ok` outputs are kept; a plugin file that
/// changes has another digest, so its old results are never served for it.
final class RoutineCache: Sendable {
    static let capacity = 1024

    private let store: any RoutineCacheStore
    private let memory = SharedLRU<String, JSONValue>(capacity: capacity)

    init(store: any RoutineCacheStore) { self.store = store }

    static func key(digest: String, input: JSONValue) -> String {
        sha256Hex(Array((digest + "\n" + input.serialized()).utf8))
    }

    func lookUp(_ key: String) -> JSONValue? {
        if let hit = memory.get(key) { return hit }
        guard let text = try? store.cachedResult(key: key),
            let output = try? JSONParser.parse(Array(text.utf8))
        else { return nil }
        remember(key, output, persist: false)
        return output
    }

    func remember(_ key: String, _ output: JSONValue, persist: Bool = true) {
        memory.set(key, output)
        if persist { try? store.storeResult(key: key, value: output.serialized()) }
    }
}

/// What a registered plugin's manifest declared, as `purser plugin add` recorded it; read
/// once when a job is loaded, not at every scheduling step.
struct DeclaredManifest: Sendable {
    var deterministic = false
    var tools: [String] = []
    var environment: [String] = []
    var defaultReservation: Amounts?
    var maxReservation: Amounts?
    /// Untrusted unless the manifest says `trusted: true`.
    var sandbox = SandboxLevel.untrusted
    /// A trusted plugin's opted-out layers (nil: every optional one).
    var optOut: Set<SandboxLayer>?
    /// A trusted plugin's worker may serve several runs (when it says it takes them).
    var reuse = true

    init(_ record: PluginRecord) {
        guard let manifest = (try? JSONParser.parse(Array(record.info.utf8)))?["manifest"] else { return }
        deterministic = manifest["deterministic"]?.boolValue == true
        tools = manifest["tools"]?.arrayValue?.compactMap(\.stringValue) ?? []
        environment = manifest["environment"]?.arrayValue?.compactMap(\.stringValue) ?? []
        defaultReservation = Self.amounts(manifest["defaultReservation"])
        maxReservation = Self.amounts(manifest["maxReservation"])
        sandbox = manifest["trusted"]?.boolValue == true ? .trusted : .untrusted
        reuse = manifest["reuse"]?.boolValue ?? true
        optOut = manifest["optOut"]?.arrayValue.map { Set($0.compactMap { $0.stringValue.flatMap(SandboxLayer.init) }) }
    }

    /// What a run of the plugin takes from its manifest: the sandbox, and whether its worker
    /// may join `workers` (see `WorkerPool`).
    func apply(to request: inout RunRequest, workers: WorkerPool?) {
        request.sandbox = sandbox
        request.sandboxOptOut = optOut
        if reuse { request.workerPool = workers }
    }

    private static func amounts(_ value: JSONValue?) -> Amounts? {
        guard let value, let credits = value["credits"]?.numberValue.flatMap({ try? Credits($0, field: "credits") }),
            let time = value["timeMs"]?.numberValue?.int64, let memory = value["memoryBytes"]?.numberValue?.int64
        else { return nil }
        return Amounts(credits: credits, timeMs: time, memoryBytes: memory)
    }
}

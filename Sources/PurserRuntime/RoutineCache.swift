import Logging
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
    /// A cache that fails is a miss, or a result not kept: logged, and the swarm goes on.
    private let logger: Logger

    init(store: any RoutineCacheStore, logger: Logger = Logger(label: "purser.cache")) {
        self.store = store
        self.logger = logger
    }

    static func key(digest: String, input: JSONValue) -> String {
        sha256Hex(Array((digest + "\n" + input.serialized()).utf8))
    }

    func lookUp(_ key: String) -> JSONValue? {
        if let hit = memory.get(key) { return hit }
        let output: JSONValue
        do {
            guard let text = try store.cachedResult(key: key) else { return nil }
            output = try JSONParser.parse(Array(text.utf8))
        } catch {
            logger.warning("reading a cached result failed", metadata: ["key": "\(key)", "error": "\(error)"])
            return nil
        }
        remember(key, output, persist: false)
        return output
    }

    func remember(_ key: String, _ output: JSONValue, persist: Bool = true) {
        memory.set(key, output)
        guard persist else { return }
        do {
            try store.storeResult(key: key, value: output.serialized())
        } catch {
            logger.warning("keeping a cached result failed", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }
}

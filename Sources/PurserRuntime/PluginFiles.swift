import Glibc
public import PurserLedger
import PurserSandbox

/// Registered plugins' files in the store: `plugin add` keeps the pinned bytes there, by
/// SHA-256, and a host whose file at the registered path is gone or changed runs the pinned
/// bytes from its own cache, `$PURSER_HOME/plugins/<sha256>`, fetched from the store once.
/// Every open is checked against the pin through the fd it runs from, as at the path.
extension PluginRegistry {
    /// Files larger than this stay where they are, installed on each host at the same path.
    public static let storedFileLimit = 64 << 20

    /// Why a file is not kept in the store, or nil when it is.
    static func notStored(_ opened: OpenedPlugin) -> String? {
        if opened.isScript { return "a #! script needs its interpreter on each host" }
        var status = stat()
        guard fstat(opened.fd, &status) == 0 else { return "cannot stat it: \(String(cString: strerror(errno)))" }
        if Int(status.st_size) > storedFileLimit { return "larger than \(storedFileLimit >> 20) MiB" }
        return nil
    }

    /// Keeps the pinned file's bytes in the store, unless they are there already. Read
    /// through the fd that was hashed, and hashed again: a file changed meanwhile is not kept.
    func storeFile(_ opened: OpenedPlugin, label: String) throws(RuntimeError) {
        if try ledger({ () throws(LedgerError) in try store.hasPluginFile(sha256: opened.digest) }) { return }
        var status = stat()
        guard fstat(opened.fd, &status) == 0 else {
            throw RuntimeError(code: .invalidRequest, message: "\(label): cannot stat it: \(String(cString: strerror(errno)))")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var read = 0
        while read < bytes.count {
            let count = bytes.withUnsafeMutableBytes { pread(opened.fd, $0.baseAddress! + read, $0.count - read, off_t(read)) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 {
                throw RuntimeError(code: .invalidRequest, message: "\(label): cannot read it: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            read += count
        }
        guard read == bytes.count, sha256Hex(bytes) == opened.digest else {
            throw RuntimeError(code: .invalidRequest, message: "\(label): the file changed while it was read; add it again")
        }
        try ledger { () throws(LedgerError) in try store.putPluginFile(sha256: opened.digest, bytes: bytes) }
    }

    /// The plugin's pinned file, opened and checked against its pin: at its path, else this
    /// host's cached copy, else fetched from the store into the cache. Bytes that do not
    /// have the pinned digest are never run. The caller closes `fd`.
    public static func openPinned(_ record: PluginRecord, runtime: Runtime) throws(RuntimeError) -> OpenedPlugin {
        let atPath: RuntimeError
        do {
            return try openPinned(record)
        } catch {
            atPath = error
        }
        guard let store = runtime.ledger?.store, isDigest(record.sha256) else { throw atPath }
        let cached = runtime.home + "/plugins/" + record.sha256
        if let opened = try? open(cached, label: "plugin \(record.name)") {
            if opened.digest == record.sha256 { return opened }
            close(opened.fd)
        }
        let fetched: [UInt8]?
        do {
            fetched = try store.pluginFile(sha256: record.sha256)
        } catch {
            throw RuntimeError(
                code: error.code == .storeFailed ? .store : .ledger,
                message: "plugin \(record.name): \(atPath.message); fetching it from the store failed: \(error.message)")
        }
        guard let fetched else { throw atPath }
        let digest = sha256Hex(fetched)
        guard digest == record.sha256 else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "plugin \(record.name): the store's copy of its file has sha256 \(digest.prefix(12))…, not the pinned \(record.sha256.prefix(12))…; refused (run `purser plugin add` again from the file)")
        }
        do throws(SandboxError) {
            try Runtime.makeDirectory(runtime.home)
            try Runtime.makeDirectory(runtime.home + "/plugins")
            try writeFileAtomically(fetched, to: cached, mode: 0o755)
        } catch {
            throw RuntimeError(code: .stateDirectory, message: "plugin \(record.name): cannot cache its file from the store: \(error)")
        }
        runtime.logger.info(
            "fetched a plugin's file from the store",
            metadata: ["plugin": "\(record.name)", "sha256": "\(record.sha256)", "bytes": "\(fetched.count)", "file": "\(cached)"])
        let opened = try open(cached, label: "plugin \(record.name)")
        guard opened.digest == record.sha256 else {
            close(opened.fd)
            throw RuntimeError(
                code: .invalidRequest, message: "plugin \(record.name): \(cached) changed as it was written; refused")
        }
        return opened
    }

    /// A pin is 64 lower-case hex digits: nothing else may name a file in the cache.
    private static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

extension PluginRegistry {
    /// Nil when the store holds the plugin's pinned bytes (any host can fetch them); else
    /// why not, and so where it must be installed.
    public func whyNotStored(_ record: PluginRecord) throws(RuntimeError) -> String? {
        if try ledger({ () throws(LedgerError) in try store.hasPluginFile(sha256: record.sha256) }) { return nil }
        let reason: String
        do {
            let opened = try Self.openPinned(record)
            defer { close(opened.fd) }
            reason = Self.notStored(opened) ?? "its bytes are not in the store"
        } catch {
            reason = error.message
        }
        return "\(reason): install it at \(record.path) on every host"
    }
}

import Glibc
import Synchronization
public import PurserConfig
public import PurserLedger
public import PurserProtocol
public import PurserSandbox

/// Registered plugins, kept in the store so that supervisors sharing it share the registry.
/// Each is pinned by the SHA-256 of its file, and runs only as that file: the file is
/// opened once, hashed through the open fd, and executed through the same fd.
public struct PluginRegistry: Sendable {
    public enum Added: String, Sendable { case added, unchanged, repinned }

    public let runtime: Runtime
    var store: any LedgerStore { runtime.ledger!.store }

    public init(runtime: Runtime) throws(RuntimeError) {
        guard runtime.ledger != nil else { throw RuntimeError(code: .ledger, message: "the registry needs a ledger") }
        self.runtime = runtime
    }

    /// Pins the file, starts it once to check the `initialize` handshake, keeps its bytes in
    /// the store (`storedFileLimit`; not `#!` scripts), and records what it said.
    public func add(
        path: String, name: String?, manifest: PluginManifest?, allowDegraded: Bool = false
    ) async throws(RuntimeError) -> (PluginRecord, Added) {
        let absolute = realpath(path, nil).map { resolved in
            defer { free(resolved) }
            return String(cString: resolved)
        } ?? (path.hasPrefix("/") ? path : currentDirectory() + "/" + path)
        let opened = try Self.open(absolute, label: absolute)
        defer { close(opened.fd) }
        let level: SandboxLevel = manifest?.trusted == true ? .trusted : .untrusted
        let info = try await handshake(absolute, opened, level: level, optOut: manifest?.optOut, allowDegraded: allowDegraded)
        let pluginName = name ?? manifest?.name ?? info.pluginName
        guard !pluginName.isEmpty, !pluginName.contains("/") else {
            throw RuntimeError(code: .invalidRequest, message: "'\(pluginName)' cannot be a plugin's name (no '/')")
        }
        let details: JSONValue = [
            "version": .string(info.pluginVersion), "capabilities": .object(info.capabilities),
            "manifest": (manifest ?? PluginManifest()).json,
        ]
        let record = PluginRecord(
            name: pluginName, path: absolute, sha256: opened.digest, info: details.serialized(), addedMs: unixMilliseconds())
        return try save(record, opened: opened)
    }

    /// Keeps the file's bytes (before the record, so that no host reads a record whose bytes
    /// are still on their way), then the record, unless it is the one already saved.
    func save(_ record: PluginRecord, opened: OpenedPlugin) throws(RuntimeError) -> (PluginRecord, Added) {
        if Self.notStored(opened) == nil { try storeFile(opened, label: record.path) }
        let previous = try ledger { () throws(LedgerError) in try store.plugin(named: record.name) }
        if let previous, previous.sha256 == record.sha256, previous.path == record.path, previous.info == record.info {
            return (previous, .unchanged)
        }
        try ledger { () throws(LedgerError) in try store.savePlugin(record) }
        return (record, previous == nil ? .added : .repinned)
    }

    public func list() throws(RuntimeError) -> [PluginRecord] {
        try ledger { () throws(LedgerError) in try store.plugins() }
    }

    public func find(_ name: String) throws(RuntimeError) -> PluginRecord? {
        try ledger { () throws(LedgerError) in try store.plugin(named: name) }
    }

    public func remove(_ name: String) throws(RuntimeError) -> Bool {
        try ledger { () throws(LedgerError) in try store.removePlugin(named: name) }
    }

    /// Each plugin's file at its path checked against its pin: nil when it matches, else
    /// what is wrong (and whether runs use the store's copy instead).
    public func verify() throws(RuntimeError) -> [(PluginRecord, String?)] {
        try list().map { (record) throws(RuntimeError) in
            do throws(RuntimeError) {
                let opened = try Self.openPinned(record)
                close(opened.fd)
                return (record, nil)
            } catch {
                let stored = try ledger { () throws(LedgerError) in try store.hasPluginFile(sha256: record.sha256) }
                return (record, error.message + (stored ? "; runs use its pinned bytes from the store" : ""))
            }
        }
    }

    /// The plugin's file, opened and checked against its pin; the caller closes `fd`.
    public static func openPinned(_ record: PluginRecord) throws(RuntimeError) -> OpenedPlugin {
        let opened = try open(record.path, label: "plugin \(record.name)")
        guard opened.digest == record.sha256 else {
            close(opened.fd)
            throw RuntimeError(
                code: .invalidRequest,
                message: "plugin \(record.name): \(record.path) changed since it was pinned (sha256 \(record.sha256.prefix(12))…, now \(opened.digest.prefix(12))…); run `purser plugin add` again to accept it")
        }
        return opened
    }

    public struct OpenedPlugin: Sendable {
        public var fd: Int32
        public var digest: String
        /// A `#!` script: its fd must stay open for the interpreter.
        public var isScript: Bool
    }

    static func open(_ path: String, label: String) throws(RuntimeError) -> OpenedPlugin {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw RuntimeError(code: .invalidRequest, message: "\(label): cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_mode & 0o111 != 0 else {
            close(fd)
            throw RuntimeError(code: .invalidRequest, message: "\(label): \(path) is not an executable file")
        }
        do {
            let digest = try VerifiedFiles.digest(fd, status)
            var magic: [UInt8] = [0, 0]
            let read = pread(fd, &magic, 2, 0)
            return OpenedPlugin(fd: fd, digest: digest, isScript: read == 2 && magic == [0x23, 0x21])
        } catch {
            close(fd)
            throw RuntimeError(code: .invalidRequest, message: "\(label): \(error)")
        }
    }

    /// Starts the file (through its fd) for `initialize` only, with no reservation.
    private func handshake(
        _ path: String, _ opened: OpenedPlugin, level: SandboxLevel, optOut: Set<SandboxLayer>?, allowDegraded: Bool
    ) async throws(RuntimeError) -> InitializeResult {
        var request = RunRequest(
            executable: path, input: .null, credits: .zero, wallTimeMs: 10_000, memoryBytes: 256 << 20)
        request.executableFD = opened.fd
        request.keepExecutableFD = opened.isScript
        request.handshakeOnly = true
        request.sandbox = level
        request.sandboxOptOut = optOut
        request.allowDegraded = allowDegraded
        request.timing.startupMs = 5_000
        let bare = Runtime(home: runtime.home)
        let report = try await bare.exec(request)
        guard let info = report.plugin else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(path) failed the initialize handshake: \(report.message ?? report.verdict.rawValue)")
        }
        return info
    }

    func ledger<T>(_ body: () throws(LedgerError) -> T) throws(RuntimeError) -> T {
        do {
            return try body()
        } catch {
            throw RuntimeError(code: .ledger, message: "ledger: \(error)")
        }
    }

    private func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        return getcwd(&buffer, buffer.count).map { String(cString: $0) } ?? "."
    }
}

/// Digests of executables already hashed in this process, by file and status: a swarm of a
/// thousand routines of one registered plugin hashes its file once, not a thousand times
/// (libcrypto takes about 0.75 ms of CPU for each MiB here, more than the 0.7 ms a routine
/// on a kept worker costs the supervisor in all: `purser-bench sha256`, docs/benchmarks.md).
///
/// A digest is reused only while the file is the same inode with the same size and change
/// time; no write, truncate, rename over or chmod leaves the change time as it was, and no
/// user can set it. A file changed less than a second before it was hashed is not
/// remembered, since a change in the same clock tick could leave its change time equal.
enum VerifiedFiles {
    private struct Identity: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private struct Known {
        var size: Int64
        var changed: timespec
        var digest: String
    }

    private static let known = Mutex<[Identity: Known]>([:])
    /// How long a file must have been left alone before its digest is remembered.
    private static let settledNanoseconds: Int64 = 1_000_000_000

    static func digest(_ fd: Int32, _ status: stat) throws -> String {
        let identity = Identity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        if let known = known.withLock({ $0[identity] }), known.size == Int64(status.st_size),
            same(known.changed, status.st_ctim)
        {
            return known.digest
        }
        let digest = hexString(try sha256(fd: fd))
        var after = stat()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        guard fstat(fd, &after) == 0, after.st_size == status.st_size, same(after.st_ctim, status.st_ctim),
            nanoseconds(now) - nanoseconds(status.st_ctim) > settledNanoseconds
        else { return digest }
        known.withLock { $0[identity] = Known(size: Int64(status.st_size), changed: status.st_ctim, digest: digest) }
        return digest
    }

    private static func same(_ a: timespec, _ b: timespec) -> Bool { a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec }

    private static func nanoseconds(_ time: timespec) -> Int64 { Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec) }
}

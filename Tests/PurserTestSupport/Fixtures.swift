import Foundation
public import PurserProtocol
public import PurserRuntime

/// Paths to what the package built and to the repository's own files.
public enum Fixtures {
    /// The folder holding the test bundle, and so every product of the same build.
    public static let buildDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("echo").path) && url.path != "/" {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    public static func product(_ name: String) -> String { buildDirectory + "/" + name }
    public static func file(_ relative: String) -> String { repositoryRoot + "/" + relative }

    /// A `#!` script plugin that answers `initialize` and nothing else: enough for `plugin
    /// add`, and a plugin whose bytes the store does not carry.
    public static func writeScriptPlugin(at path: String, name: String) throws {
        try """
            #!/bin/sh
            read -r init
            echo '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"plugin":{"name":"\(name)","version":"1"},"capabilities":{}}}'
            """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    /// The benchmarks' C worker, built with cc against libc alone (`CChildren`), once per
    /// test process, beside the products (built under another name, then renamed: test
    /// processes running at once each get a whole file).
    public static func cworker() throws -> String { try builtCWorker.get() }

    private static let builtCWorker = Result { () throws -> String in
        let directory = buildDirectory + "/c-children"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try CChildren.build(["cworker/main.c", "CWorkerScan/scan.c"], to: directory + "/cworker")
        return directory + "/cworker"
    }

    /// A fresh `$PURSER_HOME` for one test, inside a folder of this test process's that is
    /// removed when the process exits (runs of the suite left tens of thousands behind).
    public static func temporaryHome() -> String {
        let path = temporaryRoot + "/home-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private static let temporaryRoot: String = {
        let path = temporaryRootPath()
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: temporaryRootPath()) }
        return path
    }()

    private static func temporaryRootPath() -> String {
        NSTemporaryDirectory() + "purser-tests-\(getpid())"
    }

    /// Short waits, so a test of the stop sequence takes a second, not several. The time a
    /// worker has to start is multiplied by PURSER_TEST_STARTUP_SCALE (software emulation
    /// under .ci/cgroup-v2 starts a Python or Swift worker several times slower).
    public static var quickTiming: SessionTiming {
        var timing = SessionTiming()
        let scale = ProcessInfo.processInfo.environment["PURSER_TEST_STARTUP_SCALE"].flatMap { Int64($0) } ?? 1
        timing.startupMs = 5_000 * max(scale, 1)
        timing.cancelGraceMs = 300
        timing.exitGraceMs = 300
        timing.termGraceMs = 300
        return timing
    }

    /// A run of any plugin with quick stop-sequence waits, 10 s and 256 MiB.
    public static func run(_ executable: String, input: JSONValue, credits: Int64 = 1) -> RunRequest {
        var request = RunRequest(
            executable: executable, input: input, credits: Credits(whole: credits), wallTimeMs: 10_000,
            memoryBytes: 256 << 20)
        request.timing = quickTiming
        return request
    }

    /// A run of the hostile test plugin in one of its modes.
    public static func hostile(
        _ mode: String, input: JSONValue = "x", credits: Int64 = 10, timeMs: Int64 = 10_000,
        memory: Int64 = 256 << 20, environment: [String: String] = [:]
    ) -> RunRequest {
        var request = RunRequest(
            executable: product("hostile"), input: input, credits: Credits(whole: credits), wallTimeMs: timeMs,
            memoryBytes: memory)
        // The tag finds the run's processes afterwards, whatever namespace they were in.
        request.environment = environment.merging(["HOSTILE_MODE": mode, "HOSTILE_TAG": UUID().uuidString]) { $1 }
        request.timing = quickTiming
        return request
    }

    /// Whether a user with no relation to the file's owner can reach and execute it: every
    /// directory on the way searchable by others, the file executable by others.
    public static func reachableByOthers(_ path: String) -> Bool {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            var info = stat()
            guard stat(prefix, &info) == 0, info.st_mode & 0o001 != 0 else { return false }
        }
        return true
    }

    /// Live processes (not zombies) whose environment holds HOSTILE_TAG=`tag`.
    public static func processes(tagged tag: String) -> [Int32] {
        let needle = Array("HOSTILE_TAG=\(tag)".utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard isAlive(pid), let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return data.split(separator: 0).contains { Array($0) == needle }
        }
    }

    /// The permission bits of `path` (not following a symlink), or -1.
    public static func mode(_ path: String) -> Int {
        var status = stat()
        guard lstat(path, &status) == 0 else { return -1 }
        return Int(status.st_mode & 0o7777)
    }

    /// True while a process with this pid exists (zombies count as gone).
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }
}

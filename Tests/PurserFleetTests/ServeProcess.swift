import Foundation
import PurserTestSupport

/// One `purser serve` host for a test: a child process whose log goes to a file, that the
/// test can drain (SIGTERM), kill (SIGKILL) and wait for.
final class ServeProcess: @unchecked Sendable {
    let name: String
    let log: String
    private let process = Process()

    /// `home`: a `$PURSER_HOME` of its own, as a host on another machine has (default: the fleet's).
    init(
        name: String, fleet: Fleet, slots: Int = 2, extra: [String] = [], home: String? = nil, heartbeat: String = "300ms",
        deadAfter: String = "6s"
    ) throws {
        self.name = name
        log = fleet.home + "/serve-\(name).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
        process.arguments = [
            "serve", "--name", name, "--slots", "\(slots)", "--heartbeat", heartbeat, "--dead-after", deadAfter, "--ledger", fleet.location,
        ] + extra
        var environment = fleet.environment
        if let home { environment["PURSER_HOME"] = home }
        process.environment = environment
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func kill(_ signal: Int32) { Glibc.kill(process.processIdentifier, signal) }

    /// Waits for it to exit (off the pool); its status.
    func exitStatus() async -> Int32 {
        await offPool { [process] in
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}

import Foundation
import Synchronization

/// Runs a command to its end and keeps what it printed.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        (self.status, self.stdout, self.stderr) = (status, stdout, stderr)
    }
}

/// Runs a command to its end on a thread of its own: a test waiting on the cooperative
/// pool (two threads on two cores) would stall every other test meanwhile. A cancelled
/// task (a test past its time limit) kills the command: a command that never ends (a watch
/// of a swarm that is stuck) must fail its test, not hang the whole run.
public func runCommand(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil
) async throws -> CommandResult {
    let child = RunningChild()
    return try await withTaskCancellationHandler {
        try await offPool {
            try runCommandBlocking(executable, arguments, environment: environment, directory: directory, child: child)
        }
    } onCancel: {
        child.kill()
    }
}

/// The pid of a command while it runs, for a cancel to kill.
public final class RunningChild: Sendable {
    private let state = Mutex<(pid: Int32?, killed: Bool)>((nil, false))

    public init() {}

    func started(_ pid: Int32) {
        if state.withLock({ state -> Bool in
            state.pid = pid
            return state.killed
        }) { Glibc.kill(pid, SIGKILL) }
    }

    func ended() { state.withLock { $0.pid = nil } }

    func kill() {
        if let pid = state.withLock({ state -> Int32? in
            state.killed = true
            return state.pid
        }) { Glibc.kill(pid, SIGKILL) }
    }
}

/// `runCommand` for code that is already off the pool (or not async at all).
public func runCommandBlocking(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
    child: RunningChild? = nil
) throws -> CommandResult {
    let process = Process()
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    child?.started(process.processIdentifier)
    defer { child?.ended() }
    // Read both pipes to the end before waiting, so a full pipe cannot block the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    // A thread of its own: a Dispatch thread blocked here for the command's whole life is
    // one the process's Dispatch work (timers, store calls) waits for, and Dispatch adds
    // threads slowly (about 10 s to get past a dozen blocked ones, measured).
    Thread {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

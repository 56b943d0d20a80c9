import Foundation
import Synchronization

/// A process running inside one of `NetworkHosts`' hosts (`spawn`): a test kills it (kill
/// -9 is a host dying), waits for it, and reads its stdout and stderr, which go to files,
/// while it runs.
public final class HostProcess: Sendable {
    public let host: String
    public let pid: Int32
    public let stdoutPath: String
    public let stderrPath: String
    /// The exit status once reaped (128 + the signal that ended it); nil while it runs.
    private let status = Mutex<Int32?>(nil)
    private let exited = DispatchGroup()

    init(
        host: String, command: [String], environment: [String: String]?, directory: String, stdout: String,
        stderr: String
    ) throws {
        self.host = host
        stdoutPath = stdout
        stderrPath = stderr
        do {
            pid = try Spawn.start(
                command[0], Array(command.dropFirst()), directory: directory, stdout: stdout, stderr: stderr,
                environment: environment)
        } catch {
            throw NetworkHostsError(code: "process", "in host \(host): \(error)")
        }
        exited.enter()
        Thread { [self] in reap() }.start()
    }

    /// Waits for the end without reaping, then reaps under the lock, so that `kill` never
    /// signals a pid the kernel has already given to another process.
    private func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        status.withLock { status in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            status = Spawn.exitCode(raw)
        }
        exited.leave()
    }

    /// The exit status, or nil while it runs.
    public var exitStatus: Int32? { status.withLock { $0 } }

    /// Sends `signal` (nil: SIGKILL) if it still runs.
    public func kill(_ signal: Int32? = nil) {
        status.withLock { status in
            if status == nil { _ = Glibc.kill(pid, signal ?? SIGKILL) }
        }
    }

    /// Waits for its end, off the cooperative pool; returns its exit status.
    public func wait() async -> Int32 {
        await offPool { self.waitBlocking() }
    }

    @discardableResult
    func waitBlocking() -> Int32 {
        exited.wait()
        return status.withLock { $0 ?? -1 }
    }

    /// What it wrote to stdout so far.
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    /// What it wrote to stderr so far.
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits until its stdout (or stderr) holds `text`; throws if it exits first, or after
    /// `limit` (a bound for a hung test, not a measure: keep it generous).
    public func waitForOutput(_ text: String, stderr inStderr: Bool = false, limit: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + limit
        while true {
            let output = inStderr ? stderr : stdout
            if output.contains(text) { return }
            if let status = exitStatus {
                throw NetworkHostsError(
                    code: "process", "\(host)'s process \(pid) exited (status \(status)) without printing '\(text)':\n\(stdout)\n\(stderr)")
            }
            guard ContinuousClock.now < deadline else {
                throw NetworkHostsError(code: "process", "\(host)'s process \(pid) printed no '\(text)' in \(limit):\n\(stdout)\n\(stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

import Foundation
import Synchronization

/// A real HTTP/1.1 upstream on 127.0.0.1 for the gateway's tests and benchmark:
/// Tests/Fixtures/httpd/httpd.py, run with `python3` (standard library only). Its routes
/// (/ok, /echo, /usage, /slow, /status/CODE, /flaky, /reset, /big, /redirect, /bytes,
/// /count, /hello) are described at the top of that file.
///
/// Each instance is a server process of its own, on a port the kernel picks, with its
/// request log in a fresh directory under /tmp. `stop()` ends it; the log stays readable
/// until the instance goes, which also removes the directory. If the test process dies
/// without stopping it, the server sees its parent is gone and exits by itself.
public final class HTTPTestServer: Sendable {
    public let port: Int
    /// Where it listens: 127.0.0.1, or the address it was started on (`start(listening:)`).
    public let address: String
    /// Whether it speaks HTTPS (`start(tls:)`).
    public let tls: Bool
    public var baseURL: String { "\(tls ? "https" : "http")://\(address):\(port)" }

    /// The server script, found from this file's place in the repository.
    public static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/httpd/httpd.py").path

    private let directory: String
    /// The server's pid; nil once stopped. Behind a lock so that two stops at once signal
    /// and wait for the server once.
    private let process: Mutex<pid_t?>

    private var logPath: String { directory + "/requests.jsonl" }

    /// Starts the server on a thread of its own (Python's start-up takes a while, and an
    /// async test must not wait on the cooperative pool) and returns once it listens.
    public static func start() async throws -> HTTPTestServer {
        try await offPool { try HTTPTestServer() }
    }

    /// Starts the server speaking HTTPS with `certificate` (a PEM file with its key, from `TestCertificate`).
    public static func start(tls certificate: TestCertificate) async throws -> HTTPTestServer {
        try await offPool { try HTTPTestServer(tls: certificate) }
    }

    /// Starts the server on `address` inside the network namespace at `networkNamespace` (a
    /// path for `nsenter --net=`, e.g. `NetworkHosts.serverNamespacePath`, whose bridge the
    /// fleet tests' hosts reach).
    public static func start(listening address: String, networkNamespace: String) async throws -> HTTPTestServer {
        try await offPool { try HTTPTestServer(address: address, networkNamespace: networkNamespace) }
    }

    /// Starts the server and returns once it listens (at most 30 s). Async tests use `start()`.
    public init(
        address: String = "127.0.0.1", networkNamespace: String? = nil, tls: TestCertificate? = nil
    ) throws(HTTPTestServerError) {
        let directory = try HTTPTestServer.makeDirectory()
        do {
            let (process, port) = try HTTPTestServer.launch(
                in: directory, address: address, networkNamespace: networkNamespace, tls: tls)
            self.address = address
            self.tls = tls != nil
            self.directory = directory
            self.port = port
            self.process = Mutex(process)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The requests the server has received so far, oldest first, as it logged them before
    /// answering.
    public func requests() -> [LoggedRequest] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        // Whole lines only: the server may be writing the next one now.
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        lines.removeLast()
        let decoder = JSONDecoder()
        return lines.compactMap { try? decoder.decode(LoggedRequest.self, from: Data($0)) }
    }

    /// Ends the server: SIGTERM, then SIGKILL if it is still there after 5 s. Anything it
    /// wrote to stderr (a traceback means a bug in httpd.py) goes to this process's stderr.
    /// Safe to call more than once; `requests()` still works afterwards.
    public func stop() {
        process.withLock { process in
            guard let running = process else { return }
            process = nil
            HTTPTestServer.end(running)
            let said = HTTPTestServer.stderr(in: directory)
            if !said.isEmpty {
                FileHandle.standardError.write(Data("HTTPTestServer: httpd.py wrote to stderr:\n\(said)\n".utf8))
            }
        }
    }

    // MARK: - Starting and stopping

    private static func makeDirectory() throws(HTTPTestServerError) -> String {
        var template = Array("/tmp/purser-httpd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw HTTPTestServerError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// Runs httpd.py and waits for the port it writes to its ready file.
    ///
    /// Not Foundation's Process: its `waitUntilExit` spins the calling thread's run loop, and
    /// from a deinit on the cooperative pool it once spun both of the pool's threads for 25
    /// minutes while the servers lived on. A pid, `kill` and `waitpid` cannot do that.
    private static func launch(
        in directory: String, address: String, networkNamespace: String?, tls: TestCertificate?
    ) throws(HTTPTestServerError) -> (pid_t, Int) {
        guard FileManager.default.fileExists(atPath: script) else {
            throw HTTPTestServerError("the test HTTP server script is missing: \(script)")
        }
        let ready = directory + "/ready"
        let errors = directory + "/stderr"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        // env finds python3 on PATH and execs it (as nsenter execs env), so the pid is the server's.
        var command = [
            "/usr/bin/env", "python3", script, "--port", "0", "--bind", address, "--log", directory + "/requests.jsonl",
            "--ready-file", ready, "--parent-pid", String(getpid()),
        ]
        if let tls { command += ["--tls-cert", tls.certificatePath, "--tls-key", tls.keyPath] }
        if let networkNamespace { command = [NetworkHosts.nsenter, "--net=" + networkNamespace, "--"] + command }
        let process: pid_t
        do {
            // The environment as a copy: `environ` itself may be rewritten under posix_spawn by a
            // test's setenv on another thread (a spawn once failed with EFAULT).
            process = try Spawn.start(
                command[0], Array(command.dropFirst()), directory: directory, stdout: "/dev/null", stderr: errors,
                environment: ProcessInfo.processInfo.environment)
        } catch {
            throw HTTPTestServerError("cannot run python3 \(script): \(error)")
        }

        // Python starts in tens of milliseconds, but a full suite on two cores starts dozens
        // of servers and databases at once: a CI run once missed 10 s.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            // The server renames the file into place, so a file that is there is whole.
            if let text = try? String(contentsOfFile: ready, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return (process, port)
            }
            if let status = exited(process) {
                let hint = status == 127 ? " (is python3 installed and on PATH?)" : ""
                throw HTTPTestServerError(
                    "the test HTTP server exited with status \(status) before listening\(hint): \(stderr(in: directory))")
            }
            usleep(10_000)
        }
        end(process)
        throw HTTPTestServerError(
            "the test HTTP server did not listen within 30 s (no port in \(ready)): \(stderr(in: directory))")
    }

    private static func end(_ process: pid_t) { endChild(process) }

    private static func exited(_ process: pid_t) -> Int32? { childExit(process) }

    private static func stderr(in directory: String) -> String {
        let text = (try? String(contentsOfFile: directory + "/stderr", encoding: .utf8)) ?? ""
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One line of the test HTTP server's log: a request as it arrived.
public struct LoggedRequest: Sendable, Hashable, Decodable {
    public var method: String
    /// The request target as received: the path and its query, if any.
    public var path: String
    /// Header names as the client sent them; a repeated header's values joined with ", ".
    public var headers: [String: String]
    /// Bytes of body, after undoing chunked transfer encoding.
    public var bodyLength: Int
    /// The client's address.
    public var client: String?
    /// When it arrived: seconds since the epoch, by the server's clock.
    public var time: Double?

    public init(method: String, path: String, headers: [String: String], bodyLength: Int) {
        self.method = method
        self.path = path
        self.headers = headers
        self.bodyLength = bodyLength
    }

    /// The value of header `name`, in whatever case the client spelled it.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.key.lowercased() == wanted }?.value
    }

    enum CodingKeys: String, CodingKey {
        case method, path, headers, client, time
        case bodyLength = "body_length"
    }
}

public struct HTTPTestServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

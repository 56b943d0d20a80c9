import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// Every API suite, one test at a time: each starts a `purser serve`, and two at once on a
/// 2-core machine slow each other's hosts into heartbeats they are not there to test.
@Suite("The HTTP API", .serialized)
enum APISuites {}

/// A home with a SQLite store and `scripted` registered, and the `purser serve` a test
/// starts on it: its API on the home's socket, and on TCP when asked.
final class APIServe: @unchecked Sendable {
    let home: String
    let log: String
    private let process = Process()

    /// `home`: one a previous serve used (default: a new one).
    /// `name`: the host's; another than the first on a home registers no plugin.
    init(extra: [String] = [], home: String = Fixtures.temporaryHome(), name: String = "api") async throws {
        self.home = home
        log = home + "/serve-\(name).log"
        if name == "api" {
            let added = try await runPurser(["plugin", "add", Fixtures.product("scripted"), "--name", "scripted"], home: home)
            try #require(added.status == 0, "\(added.stderr)")
        }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
        process.arguments = ["serve", "--name", name, "--slots", "2", "--heartbeat", "300ms", "--dead-after", "6s"] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment.removeValue(forKey: "PURSER_LEDGER")
        process.environment = environment
        (process.standardOutput, process.standardError, process.standardInput) = (output, output, FileHandle.nullDevice)
        try process.run()
        try await waitFor("purser: serving as \(name)")
    }

    var socket: String { home + "/purser.sock" }
    var pid: Int32 { process.processIdentifier }
    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// The TCP listener's base URL, as serve logged it.
    var tcpURL: String? {
        output.split(separator: "\n").compactMap { line in
            line.hasPrefix("purser: API on http://") ? String(line.dropFirst("purser: API on ".count)) : nil
        }.first
    }

    /// Waits (off the pool) for `text` in the log, or for serve to exit.
    func waitFor(_ text: String) async throws {
        let found = await offPool { [self] () -> Bool in
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline && process.isRunning {
                if output.contains(text) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return output.contains(text)
        }
        try #require(found, "serve did not log '\(text)': \(output)")
    }

    /// A job of `count` routines of `scripted`, each given `input`.
    func job(_ name: String, count: Int = 2, input: String = "{}") -> String {
        var lines = [
            "team:", "  name: api", "  budget: { credits: 1000, workers: 32, memory: 64GiB }",
            "swarm:", "  name: \(name)", "  reservation: { credits: 100, time: 10h, memory: 32GiB }", "  concurrency: 4",
            "routines:",
        ]
        for index in 0..<count {
            lines.append("  - { name: r\(index), plugin: scripted, input: \(input), estimate: { credits: 1, memory: 64MiB, time: 1m } }")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Kills it (SIGKILL: it leaves its socket behind) and waits for it, off the pool.
    func kill() async {
        Glibc.kill(process.processIdentifier, SIGKILL)
        await offPool { [process] in process.waitUntilExit() }
    }

    deinit {
        // Not waitUntilExit: a deinit may run on the cooperative pool (see endChild).
        if process.isRunning { endChild(process.processIdentifier) }
    }
}

extension APIServe {
    /// A token file of one read and one operator token (`AccessTests`'), with comments.
    static let tokenLines = "# tokens\nread \(APISuites.AccessTests.readToken)\noperate \(APISuites.AccessTests.operateToken)  # the CI's\n"

    /// A serve on a new home whose API also listens on TCP (a free port on 127.0.0.1) behind
    /// `tokens`, the token file's text (written to the home, mode 0600); and its base URL.
    static func onTCP(tokens: String = tokenLines) async throws -> (serve: APIServe, url: String) {
        let home = Fixtures.temporaryHome()
        let path = home + "/tokens"
        try tokens.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let serve = try await APIServe(extra: ["--listen", "127.0.0.1:0", "--token-file", path], home: home)
        try await serve.waitFor("purser: API on http://")
        return (serve, try #require(serve.tcpURL, "\(serve.output)"))
    }
}

/// One HTTP exchange through curl: over the serve's socket, or to a TCP URL.
struct HTTPAnswer: Sendable {
    let status: Int
    let body: String

    var json: JSONValue { (try? JSONParser.parse(body)) ?? .null }
    var errorCode: String? { json["error"]?["code"]?.stringValue }

    /// `target`: `unix:PATH` or a base URL. `body` is sent as the request's body.
    static func request(
        _ method: String, _ path: String, on target: String, token: String? = nil, body: String? = nil
    ) async throws -> HTTPAnswer {
        var arguments = ["-sS", "-N", "-X", method, "-w", "\n%{http_code}"]
        let base: String
        if target.hasPrefix("unix:") {
            arguments += ["--unix-socket", String(target.dropFirst(5))]
            base = "http://purser"
        } else {
            base = target
        }
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let body {
            let file = NSTemporaryDirectory() + "body-\(UUID().uuidString)"
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["-H", "Content-Type: application/yaml", "--data-binary", "@" + file]
        }
        let result = try await runCommand("/usr/bin/curl", arguments + [base + path])
        try #require(result.status == 0, "curl \(method) \(path): \(result.stderr)")
        let text = result.stdout
        let cut = text.lastIndex(of: "\n") ?? text.startIndex
        return HTTPAnswer(status: Int(text[text.index(after: cut)...]) ?? 0, body: String(text[..<cut]))
    }
}

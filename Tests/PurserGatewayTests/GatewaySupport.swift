import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserTestSupport
import Synchronization

/// A reservation for direct gateway calls: what a run's account does, observable.
final class TestAccount: GatewayAccount {
    private struct State {
        var held = Credits.zero
        var charged = Credits.zero
        var records: [GatewayCallRecord] = []
    }

    let budget: Credits
    private let state = Mutex(State())

    init(credits: Int64 = 1_000) { budget = Credits(whole: credits) }

    func hold(_ credits: Credits) -> Bool {
        state.withLock { state in
            guard state.held + state.charged + credits <= budget else { return false }
            state.held = state.held + credits
            return true
        }
    }

    func extend(_ credits: Credits) -> Bool { hold(credits) }

    func settle(held: Credits?, charged: Credits, record: GatewayCallRecord) {
        state.withLock { state in
            if let held {
                precondition(charged <= held, "charged \(charged) past the hold \(held)")
                state.held = state.held - held
            }
            state.charged = state.charged + charged
            state.records.append(record)
        }
    }

    var charged: Credits { state.withLock { $0.charged } }
    var held: Credits { state.withLock { $0.held } }
    var records: [GatewayCallRecord] { state.withLock { $0.records } }
}

let secretToken = "s3cr3t-T0KEN-do-not-leak-8c41"

/// A gateway config from YAML text, with `SECRET` set to `secretToken`.
func gatewayConfig(_ yaml: String) throws -> GatewayConfig {
    try GatewayConfig.parse(ConfigValue.parse(yaml, file: "test.yaml"), environment: ["SECRET": secretToken])
}

/// One integration, `api`, on the test server, with extra fields.
func apiConfig(_ server: HTTPTestServer, _ extra: String = "", base: String? = nil) throws -> GatewayConfig {
    try gatewayConfig("""
        integrations:
          api:
            baseURL: \(base ?? server.baseURL + "/")
            auth: { header: Authorization, value: "Bearer ${env:SECRET}" }
        \(extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        """)
}

extension Gateway {
    func call(
        _ path: String, method: String = "GET", query: [String: String] = [:], headers: [String: String] = [:],
        integration: String = "api", tools: Set<String> = ["api"], account: TestAccount, deadlineMs: Int64? = nil,
        team: String? = nil
    ) async -> Result<GatewayCallResult, GatewayFailure> {
        let params = GatewayCallParams(integration: integration, method: method, path: path, query: query, headers: headers)
        let caller = GatewayCaller(runID: "r-test", tools: tools, deadlineMs: deadlineMs, account: account, team: team)
        return await withCheckedContinuation { continuation in
            call(params, caller: caller) { continuation.resume(returning: $0) }
        }
    }
}

extension Result where Success == GatewayCallResult, Failure == GatewayFailure {
    var reason: GatewayReason? {
        if case .failure(let failure) = self { return failure.reason }
        return nil
    }

    var status: Int64? { try? get().status }

    var bodyText: String { (try? get()).map { String(decoding: $0.body, as: UTF8.self) } ?? "" }
}

func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
    let elapsed = ContinuousClock.now - start
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
}

/// What a worker could make of `pieces` (bytes it was given): for each secret it recovers,
/// how ("FILE: gunzip" ...), from Tests/Fixtures/httpd/reveal.py. Empty when none.
func revealed(_ secrets: [String], in pieces: [[UInt8]]) async throws -> [String] {
    let folder = Fixtures.temporaryHome()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var paths: [String] = []
    for (index, piece) in pieces.enumerated() {
        paths.append(folder + "/piece-\(index)")
        try Data(piece).write(to: URL(fileURLWithPath: paths[index]))
    }
    let script = Fixtures.file("Tests/Fixtures/httpd/reveal.py")
    let run = try await runCommand("/usr/bin/env", ["python3", script] + secrets.flatMap { ["-s", $0] } + paths)
    guard run.status == 0 || run.status == 1, run.stderr.isEmpty else { throw RevealError(description: run.stderr) }
    return run.stdout.split(separator: "\n").map(String.init)
}

struct RevealError: Error, CustomStringConvertible {
    var description: String
}

extension Result where Success == GatewayCallResult, Failure == GatewayFailure {
    /// Everything the worker gets from this answer: each header line and the body, or the
    /// error's message.
    var workerView: [[UInt8]] {
        switch self {
        case .success(let result): result.headers.sorted { $0.key < $1.key }.map { Array("\($0.key): \($0.value)".utf8) } + [result.body]
        case .failure(let failure): [Array(failure.message.utf8)]
        }
    }
}

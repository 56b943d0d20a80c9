import Foundation
import PurserLedger
import PurserTestSupport
import Testing

/// Every fleet suite, one test at a time: each starts several `purser serve` processes (and
/// some a PostgreSQL and network namespaces), and two at once on a 2-core machine starve
/// hosts' heartbeats into fencing they are not there to test.
@Suite("The fleet", .serialized)
enum FleetSuites {}

enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A fleet on this machine for one test: a store (a SQLite file, or a database of the tests'
/// PostgreSQL), a home, the `scripted` plugin registered, and the hosts the test starts.
struct Fleet: Sendable {
    let home: String
    let location: String

    init(_ kind: StoreKind) async throws {
        let home = Fixtures.temporaryHome()
        let location = switch kind {
        case .sqlite: home + "/purser.db"
        case .postgres: try await PostgresServer.database()
        }
        try await self.init(home: home, location: location)
    }

    init(home: String = Fixtures.temporaryHome(), location: String) async throws {
        self.home = home
        self.location = location
        let added = try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "scripted"])
        try #require(added.status == 0, "\(added.stderr)")
    }

    /// `scripted` again as `gated`, trusted: it sees the test's files, so it can wait on a gate.
    func addGated() async throws {
        let manifest = home + "/trusted.yaml"
        try "trusted: true\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        let added = try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "gated", "--manifest", manifest])
        try #require(added.status == 0, "\(added.stderr)")
    }

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment["PURSER_LEDGER"] = location
        return environment
    }

    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: home, extra: ["PURSER_LEDGER": location])
    }

    /// A job of independent routines, each of its plugin with its input, in order.
    func job(_ name: String, routines: [(plugin: String, input: String)], team: String = "fleet") throws -> String {
        var lines = [
            "team:", "  name: \(team)", "  budget: { credits: 1000, workers: 32, memory: 64GiB }",
            "swarm:", "  name: \(name)", "  reservation: { credits: 500, time: 10h, memory: 32GiB }", "  concurrency: 16",
            "routines:",
        ]
        for (index, routine) in routines.enumerated() {
            lines.append(
                "  - { name: r\(index), plugin: \(routine.plugin), input: \(routine.input), estimate: { credits: 1, memory: 64MiB, time: 1m } }")
        }
        let path = home + "/\(name).yaml"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A job of `count` independent routines of `scripted`, each given `input`.
    func job(
        _ name: String, count: Int, input: String, team: String = "fleet", concurrency: Int = 16, plugin: String = "scripted",
        credits: Int = 500, minimum: Int? = nil, priority: Int = 0, estimate: Int = 1
    ) throws -> String {
        let least = minimum.map { ", minimum: \($0)" } ?? ""
        var lines = [
            "team:", "  name: \(team)", "  budget: { credits: 1000, workers: 32, memory: 64GiB }",
            "swarm:", "  name: \(name)", "  reservation: { credits: \(credits)\(least), time: 10h, memory: 32GiB }",
            "  concurrency: \(concurrency)", "  priority: \(priority)",
            "routines:",
        ]
        for index in 0..<count {
            lines.append("  - { name: r\(index), plugin: \(plugin), input: \(input), estimate: { credits: \(estimate), memory: 64MiB, time: 1m } }")
        }
        let path = home + "/\(name).yaml"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func submit(_ job: String) async throws -> String {
        let submitted = try await purser(["submit", job])
        try #require(submitted.status == 0, "\(submitted.stderr)")
        return submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func store() throws -> any FleetStore { try LedgerLocation.openFleet(location) }
    func ledger() throws -> any LedgerStore { try LedgerLocation.open(location) }

    /// Waits (off the pool, up to `seconds`) until `condition` holds of the queue.
    func wait(seconds: Double = 60, _ what: String, _ condition: @escaping @Sendable (any FleetStore) throws -> Bool) async throws {
        let store = try store()
        let met = try await offPool { () throws -> Bool in
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition(store) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }
        try #require(met, "waited \(seconds) s for \(what)")
    }
}

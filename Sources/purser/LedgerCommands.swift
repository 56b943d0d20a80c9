import ArgumentParser
import Foundation
import PurserAPI
import PurserLedger
import PurserProtocol
import PurserConfig
import PurserRuntime

/// Where the ledger is: --ledger, else $PURSER_LEDGER, else $PURSER_HOME/purser.db.
struct LedgerOptions: ParsableArguments {
    @Option(name: .customLong("ledger"), help: "A postgres:// URL or a SQLite file (default: $PURSER_LEDGER, else $PURSER_HOME/purser.db).")
    var location: String?

    func runtime() throws -> Runtime {
        let runtime: Runtime
        do {
            runtime = try Runtime.withLedger(location: location)
        } catch where error.code == .invalidRequest {
            // A location that names no store: say where it came from.
            let source = location != nil ? "--ledger" : getenv("PURSER_LEDGER") != nil ? "$PURSER_LEDGER" : "$PURSER_HOME"
            throw CommandLineError(message: "\(source): \(error.message)")
        } catch {
            throw commandFailure(error)
        }
        for leftover in runtime.leftovers { printError("purser: a dead supervisor's \(leftover) could not be cleared") }
        return runtime
    }

    func store() throws -> any LedgerStore {
        guard let ledger = try runtime().ledger else { throw CommandLineError(message: "no ledger") }
        return ledger.store
    }
}

/// Runs a ledger call; its errors are bad input (exit 2), or a store failure (exit 1), with
/// the ledger's own message.
func ledgerCall<T>(_ body: () throws(LedgerError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw commandFailure(error)
    }
}

struct Team: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and inspect teams: the roots of budget trees.",
        subcommands: [Create.self, Show.self, Freeze.self, Thaw.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a team with its caps.")
        @Argument var name: String
        @Option(parsing: .unconditional, help: "Credits (decimal).") var credits: CreditsArgument
        @Option(parsing: .unconditional, help: "Concurrent workers at most.") var workers: Int64?
        @Option(parsing: .unconditional, help: "Memory in use at most, e.g. 8GiB.") var memory: SizeArgument = SizeArgument(bytes: 1 << 40)
        @Option(parsing: .unconditional, help: "Total time, e.g. 24h.") var time: DurationArgument = DurationArgument(milliseconds: 10 * 365 * 86_400_000)
        @Option(help: "Tool permissions, comma-separated.") var tools: String = ""
        @Option(help: "How the team's swarms in the fleet compete when one does not fit: queue (first come, first served), fail, or priority (with aging).")
        var onConflict: String = "queue"
        @Option(help: "Under priority, a waiting swarm gains one priority step per this much waiting.") var aging = "1m"
        @Flag(help: "Let untrusted plugins whose manifest asks for it (reuseUntrusted) keep their worker, in its sandbox, for the same swarm's or mcp serve session's next run.")
        var reuseUntrusted = false
        @OptionGroup var ledgerOptions: LedgerOptions

        func validate() throws {
            if let workers, workers < 0 { throw ValidationError("--workers must not be negative") }
            guard TeamPolicy.OnConflict(rawValue: onConflict) != nil else {
                throw ValidationError("--on-conflict must be one of \(TeamPolicy.OnConflict.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let ms = Units.parseDuration(aging), ms > 0 else { throw ValidationError("--aging: '\(aging)' is not a duration") }
        }

        func run() throws {
            let store = try ledgerOptions.store()
            let spec = TeamSpec(
                name: name, caps: Resources(credits: credits.value.micros, timeMs: time.milliseconds, memoryBytes: memory.bytes),
                workers: workers, tools: tools.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            let team = try ledgerCall { () throws(LedgerError) in try store.createTeam(spec) }
            let policy = TeamPolicy(
                team: name, onConflict: TeamPolicy.OnConflict(rawValue: onConflict) ?? .queue, agingMs: Units.parseDuration(aging) ?? 60_000,
                reuseUntrusted: reuseUntrusted)
            let fleet = try fleetStore(try ledgerOptions.runtime())
            try ledgerCall { () throws(LedgerError) in try fleet.setTeamPolicy(policy) }
            print("team \(team.name) created: \(Credits(micros: team.cap.credits)) credits, "
                + "\(Units.formatDuration(team.cap.timeMs)), \(Units.formatSize(team.cap.memoryBytes))"
                + (workers.map { ", \($0) workers" } ?? "") + (team.tools.isEmpty ? "" : ", tools \(team.tools.joined(separator: ","))"))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The team's live tree: available, reserved, consumed, returned per node.")
        @Argument var name: String
        @Flag var json = false
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            let store = try ledgerOptions.store()
            let nodes = try ledgerCall { () throws(LedgerError) in
                _ = try store.team(named: name)
                return try store.tree(team: name)
            }
            if json {
                print(JSONValue.array(nodes.map(\.json)).serialized())
                return
            }
            var depth: [Int64: Int] = [:]
            print("node".padding(toLength: 34, withPad: " ", startingAt: 0)
                + ["state", "available", "reserved", "consumed", "returned"].map { $0.leftPadded(12) }.joined())
            for node in nodes {
                let level = node.parent.flatMap { depth[$0] }.map { $0 + 1 } ?? 0
                depth[node.id] = level
                let label = String(repeating: "  ", count: level) + "\(node.kind.rawValue) \(node.name) #\(node.id)"
                let values = [node.available, node.reserved, node.consumed, node.returned].map {
                    "\(Credits(micros: $0.credits))".leftPadded(12)
                }
                print(label.padding(toLength: 34, withPad: " ", startingAt: 0)
                    + (node.isOpen ? "open" : node.outcome ?? "closed").leftPadded(12) + values.joined())
            }
            print("(credits; --json has time and memory too)")
            if let freeze = try ledgerCall({ () throws(LedgerError) in try store.freeze(of: name) }) {
                print("FROZEN by \(freeze.by): \(freeze.reason) (purser team thaw \(name))")
            }
        }
    }
}

struct Ledger: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit, verify and analyse the budget ledger.", subcommands: [Audit.self, Verify.self, Stats.self])

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The append-only trail of every movement.")
        @Option var node: Int64?
        @Option var team: String?
        @Flag var json = false
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            let store = try ledgerOptions.store()
            let events = try ledgerCall { () throws(LedgerError) in try store.audit(node: node, team: team) }
            for event in events {
                if json {
                    print(event.json.serialized())
                } else {
                    print("\(event.id)\t\(event.team)\tnode \(event.node)\t\(event.kind)\t\(Credits(micros: event.amounts.credits)) credits\t\(event.amounts.timeMs) ms\t\(event.amounts.memoryBytes) B\t\(event.detail)")
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that at every node cap = available + reserved + consumed, and closed nodes hold nothing.")
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            let store = try ledgerOptions.store()
            let violations = try ledgerCall { () throws(LedgerError) in try store.verify() }
            if violations.isEmpty {
                print("ledger verified: every node balances")
                return
            }
            for violation in violations { print(violation) }
            throw ExitCode(1)
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "reservationAccuracy, utilizationEfficiency and returnRate per plugin and team.",
            discussion: """
                Over settled nodes in the window (credits): utilizationEfficiency = used ÷ reserved,
                returnRate = returned ÷ reserved, reservationAccuracy = mean of
                min(estimate, used) ÷ max(estimate, used).
                """)
        @Option var team: String?
        @Option var plugin: String?
        @Option(parsing: .unconditional, help: "How many of the latest settled nodes to look at.") var window: Int = 1000
        @Flag var json = false
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            let store = try ledgerOptions.store()
            let nodes = try ledgerCall { () throws(LedgerError) in try store.history(plugin: plugin, team: team, limit: window) }
            var groups: [(String, [Node])] = [("all", nodes)]
            for key in Set(nodes.compactMap(\.plugin)).sorted() { groups.append(("plugin \(key)", nodes.filter { $0.plugin == key })) }
            for key in Set(nodes.map(\.team)).sorted() { groups.append(("team \(key)", nodes.filter { $0.team == key })) }
            for (label, members) in groups {
                let analytics = Analytics(members)
                if json {
                    print(JSONValue.object([
                        "scope": .string(label), "nodes": .number(JSONNumber(analytics.nodes)),
                        "reservationAccuracy": .number(JSONNumber(analytics.reservationAccuracy) ?? JSONNumber(0)),
                        "utilizationEfficiency": .number(JSONNumber(analytics.utilizationEfficiency) ?? JSONNumber(0)),
                        "returnRate": .number(JSONNumber(analytics.returnRate) ?? JSONNumber(0)),
                    ]).serialized())
                } else {
                    print(label.padding(toLength: 28, withPad: " ", startingAt: 0)
                        + String(format: "nodes %5d  accuracy %.3f  utilization %.3f  return rate %.3f", analytics.nodes,
                            analytics.reservationAccuracy, analytics.utilizationEfficiency, analytics.returnRate))
                }
            }
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}

extension AuditEvent {
    var json: JSONValue {
        [
            "id": .number(JSONNumber(id)), "node": .number(JSONNumber(node)), "team": .string(team), "kind": .string(kind),
            "amounts": amounts.json, "detail": .string(detail), "atMs": .number(JSONNumber(atMs)),
        ]
    }
}

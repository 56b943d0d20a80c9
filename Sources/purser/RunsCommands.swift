import ArgumentParser
import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Past swarm runs, from the store.", subcommands: [List.self, Show.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The latest swarm runs, newest first.")

        @OptionGroup var ledgerOptions: LedgerOptions

        @Option(help: "How many.")
        var limit = 20

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let store = try ledgerOptions.store()
            let runs = try ledgerCall { () throws(LedgerError) in try store.runs(limit: limit) }
            if json {
                print(JSONValue.array(runs.map { run in
                    [
                        "id": .string(run.id), "swarm": .string(run.swarm), "team": .string(run.team), "ok": .bool(run.ok),
                        "startedMs": .number(JSONNumber(run.startedMs)),
                    ]
                }).serialized())
                return
            }
            if runs.isEmpty { print("no swarm runs in this store yet") }
            let format = ISO8601DateFormatter()
            for run in runs {
                let when = format.string(from: Date(timeIntervalSince1970: Double(run.startedMs) / 1000))
                print("\(run.id)  \(when)  \(run.ok ? "ok    " : "failed")  swarm \(run.swarm), team \(run.team)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One run's final report.")

        @Argument(help: "The run's id (purser runs list).")
        var id: String

        @OptionGroup var ledgerOptions: LedgerOptions

        @Flag(help: "Print the report as JSON.")
        var json = false

        func run() throws {
            let store = try ledgerOptions.store()
            guard let run = try ledgerCall({ () throws(LedgerError) in try store.run(id: id) }) else {
                throw CommandLineError(message: "no run \(id) in this store")
            }
            if json {
                print(run.report)
                return
            }
            guard let report = try? JSONParser.parse(run.report) else { throw CommandLineError(message: "run \(id): unreadable report") }
            print("run \(run.id): swarm \(run.swarm) on team \(run.team), \(run.ok ? "ok" : "not all ok")")
            for routine in report["routines"]?.arrayValue ?? [] {
                let name = routine["name"]?.stringValue ?? ""
                let verdict = routine["verdict"]?.stringValue ?? ""
                let used = routine["usage"]?["credits"]?.serialized() ?? "-"
                print("  \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(verdict.padding(toLength: 12, withPad: " ", startingAt: 0)) used \(used)")
            }
            for tier in report["tiers"]?.arrayValue ?? [] {
                let name = tier["tier"]?.stringValue ?? ""
                func credits(_ key: String) -> String { tier[key]?["credits"]?.serialized() ?? "0" }
                print("  \(name): reserved \(credits("reserved")), used \(credits("used")), returned \(credits("returned"))")
            }
        }
    }
}

import ArgumentParser
import Foundation
import PurserLedger

extension Team {
    /// The emergency stop: nothing new is granted under the team, by any process sharing the
    /// store; a fleet's hosts admit and claim nothing of its swarms (they wait in line).
    struct Freeze: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop every grant under a team at once, across the fleet (until thaw).",
            discussion: """
                Holds already granted go on, and return what they do not use. With \
                --cancel-running, a fleet's hosts also stop the team's running routines: they \
                go back in line (attempt verdict frozen, not counted against their retries) and run again after thaw.
                """)
        @Argument var name: String
        @Option(help: "Why, for the audit trail.") var reason = "frozen by an operator"
        @Flag(help: "Also stop the team's routines running on the fleet's hosts.") var cancelRunning = false
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            let store = try ledgerOptions.store()
            let frozen = try ledgerCall { () throws(LedgerError) in try store.freeze(team: name, by: operatorName(), reason: reason) }
            print(frozen ? "team \(name) frozen: nothing new is granted under it" : "team \(name) was frozen already")
            guard cancelRunning else { return }
            let fleet = try fleetStore(try ledgerOptions.runtime())
            let told = try ledgerCall { () throws(LedgerError) in try fleet.stopRunning(team: name) }
            print("\(told) running routine\(told == 1 ? "" : "s") told to stop; they go back in line")
        }
    }

    struct Thaw: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a frozen team grant again.")
        @Argument var name: String
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            let store = try ledgerOptions.store()
            let thawed = try ledgerCall { () throws(LedgerError) in try store.thaw(team: name, by: operatorName()) }
            print(thawed ? "team \(name) thawed" : "team \(name) was not frozen")
        }
    }
}

/// Who ran the command, for the audit trail: the login name, else the uid.
func operatorName() -> String {
    if let user = ProcessInfo.processInfo.environment["USER"], !user.isEmpty { return user }
    return "uid \(getuid())"
}

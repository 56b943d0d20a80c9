import ArgumentParser
import PurserLedger
import PurserRuntime
import PurserSandbox

struct Purser: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purser",
        abstract: "Runs plugin workers under budgets: reserve, execute, return.",
        discussion: """
            Every command also takes --log-level (trace, debug, info, notice, warning, error, critical; \
            default info, or $PURSER_LOG_LEVEL) and --log-format (logfmt, the default, or json): \
            purser's log, on stderr.
            """,
        version: "0.1.0",
        subcommands: [Exec.self, Run.self, Submit.self, Serve.self, Watch.self, Cancel.self, Hosts.self, Runs.self, PluginCommand.self, MCPCommand.self, Team.self, Approvals.self, Approve.self, Deny.self, Ledger.self, GatewayCommand.self, Doctor.self, ConformanceCommand.self])
}

@main
enum Main {
    static func main() async {
        OpenFileLimit.raise()
        do {
            var arguments = Array(CommandLine.arguments.dropFirst())
            try LogSetup.bootstrap(&arguments)
            var command = try Purser.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CommandLineError {
            fail(error.message)
        } catch let error as SupervisorFailure {
            printError("purser: " + error.message)
            Purser.exit(withError: ExitCode(ExitCodes.supervisorFailure))
        } catch {
            // Argument parser errors: bad flags and values are exit code 2, not 64.
            if Purser.exitCode(for: error) == .validationFailure {
                fail(Purser.fullMessage(for: error))
            }
            Purser.exit(withError: error)
        }
    }

    static func fail(_ message: String) -> Never {
        printError("purser: " + message)
        Purser.exit(withError: ExitCode(ExitCodes.badInput))
    }
}

/// Bad input from the command line: named, and exit code 2.
struct CommandLineError: Error {
    let message: String
}

/// The supervisor itself failed (its store, its state directory), not its input: exit code 1.
struct SupervisorFailure: Error {
    let message: String
}

/// A runtime error as the command's failure: bad input (2) or the supervisor's own (1).
func commandFailure(_ error: RuntimeError) -> any Error {
    [.ledger, .store, .stateDirectory].contains(error.code)
        ? SupervisorFailure(message: error.message) : CommandLineError(message: error.message)
}

/// A ledger error as the command's failure: a failing store is the supervisor's (1), the
/// rest (an unknown team, a bad amount) bad input (2).
func commandFailure(_ error: LedgerError) -> any Error {
    error.code == .storeFailed ? SupervisorFailure(message: error.message) : CommandLineError(message: error.message)
}

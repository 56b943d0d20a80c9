import Foundation
public import PurserHarness

/// Runs the built `purser` with `home` as its `$PURSER_HOME` (its SQLite store there, not a
/// `PURSER_LEDGER` of the environment's), plus `extra` variables, to its end.
public func runPurser(
    _ arguments: [String], home: String, extra: [String: String] = [:], directory: String? = nil
) async throws -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    environment["PURSER_HOME"] = home
    environment.removeValue(forKey: "PURSER_LEDGER")
    environment.merge(extra) { $1 }
    return try await runCommand(Fixtures.product("purser"), arguments, environment: environment, directory: directory)
}

import ArgumentParser
import Foundation
import PurserConformance
import PurserProtocol
import PurserRuntime

struct ConformanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Check a worker executable against the protocol (protocol/SPEC.md), each rule with a fresh sandboxed worker; or, with --mcp, an MCP stdio server against MCP.",
        discussion: checkList + "\n\n" + ExitCodes.help(ExitCodes.conformance))

    @Argument(help: "The worker executable, or with --mcp the MCP server.")
    var executable: String

    @Flag(help: "Check an MCP stdio server instead (EXE, its arguments after --), unsandboxed, each check on a fresh process.")
    var mcp = false

    @Flag(help: "Print one JSON object: the executable, counts, and every check with its status.")
    var json = false

    @Option(help: "The input of the checker's runs, as JSON (default {\"text\":\"hello, conformance\"}).")
    var input: String?

    @Option(parsing: .unconditional, help: "Each run's wall time, and how long its answer is awaited, e.g. 30s.")
    var time: DurationArgument = DurationArgument(milliseconds: 30_000)

    @Option(parsing: .unconditional, help: "Memory of each worker, e.g. 512MiB.")
    var memory: SizeArgument = SizeArgument(bytes: 512 << 20)

    @Option(name: .customLong("env"), help: "Allow a variable: K=V sets it, K passes the supervisor's value.")
    var environment: [String] = []

    @Option(help: "Only these checks, comma-separated.")
    var only: String?

    @Flag(help: "Run the worker trusted: no namespaces, seccomp or sandbox user.")
    var trusted = false

    @OptionGroup var sandboxOptions: SandboxOptions

    @Argument(parsing: .postTerminator, help: "Arguments for the worker (or MCP server), after --.")
    var arguments: [String] = []

    func run() async throws {
        let options = try checkOptions()
        let only = try chosenChecks()
        let launch = try prepare(options)
        for notice in launch.notices { printError("[purser] \(notice)") }
        if !json {
            print(mcp ? "checking \(executable) as an MCP stdio server (unsandboxed)" : "checking \(executable) (sandbox: \(launch.plan.level.rawValue))")
        }
        let json = self.json
        let onOutcome: @Sendable (CheckOutcome) -> Void = { outcome in
            if !json { print(Self.line(outcome)) }
        }
        let outcomes = mcp
            ? await Conformance.checkMCP(launch, options: options, only: only, onOutcome: onOutcome)
            : await Conformance.check(launch, options: options, only: only, onOutcome: onOutcome)
        Runtime.finishCleanup()
        let failed = outcomes.filter { $0.result.status == .fail }.count
        if json {
            print(report(outcomes).serialized())
        } else {
            let skipped = outcomes.filter { $0.result.status == .skip }.count
            print("\(outcomes.count - failed - skipped) passed, \(failed) failed, \(skipped) skipped")
        }
        if failed > 0 { throw ExitCode(ExitCodes.conformanceFailed) }
    }

    /// The worker checks' waits and runs, from the flags; an MCP server's waits are its own.
    private func checkOptions() throws -> ConformanceOptions {
        var options = mcp ? ConformanceOptions.mcp : ConformanceOptions()
        options.runTimeMs = time.milliseconds
        options.memoryBytes = memory.bytes
        options.pluginName = URL(fileURLWithPath: executable).lastPathComponent
        if let input { options.input = try parse(input) }
        return options
    }

    private func prepare(_ options: ConformanceOptions) throws -> WorkerLaunch {
        var request = RunRequest(
            executable: executable, input: options.input, credits: options.credits, wallTimeMs: options.runTimeMs,
            memoryBytes: options.memoryBytes)
        request.arguments = arguments
        request.environment = try allowedEnvironment(environment)
        // An MCP server is checked for its protocol, not confined: it runs as the user would
        // run it by hand, with the files and repositories it is pointed at.
        request.sandbox = trusted || mcp ? .trusted : .untrusted
        request.allowDegraded = sandboxOptions.allowDegraded
        do {
            return try Runtime(home: Runtime.defaultHome()).launch(request)
        } catch {
            try refuseIfSandboxUnavailable(error)
            throw commandFailure(error)
        }
    }

    private func parse(_ text: String) throws -> JSONValue {
        do {
            return try JSONParser.parse(text)
        } catch {
            throw CommandLineError(message: "--input: \(error)")
        }
    }

    private func chosenChecks() throws -> Set<String>? {
        guard let only else { return nil }
        let names = Set(only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let unknown = names.subtracting((mcp ? Conformance.mcpChecks : Conformance.checks).map(\.name))
        guard unknown.isEmpty else {
            throw CommandLineError(message: "--only: no check named \(unknown.sorted().joined(separator: ", "))")
        }
        return names
    }

    private func report(_ outcomes: [CheckOutcome]) -> JSONValue {
        func count(_ status: CheckStatus) -> JSONValue {
            .number(JSONNumber(Int64(outcomes.filter { $0.result.status == status }.count)))
        }
        return [
            "executable": .string(executable), "passed": count(.pass), "failed": count(.fail), "skipped": count(.skip),
            "checks": .array(outcomes.map(\.json)),
        ]
    }

    private static func line(_ outcome: CheckOutcome) -> String {
        "\(pad(outcome.result.status.rawValue.uppercased(), 5)) \(pad(outcome.name, 15)) \(pad(outcome.section.description, 30)) \(outcome.result.detail)"
    }

    /// `text` widened to `width`; never cut.
    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text.padding(toLength: width, withPad: " ", startingAt: 0)
    }

    private static var checkList: String {
        func list(_ checks: [(name: String, section: SpecSection, summary: String)]) -> String {
            checks.map { "  \(pad($0.name, 18))\($0.section)" }.joined(separator: "\n")
        }
        return "Checks (docs/cli.md says what each passes on):\n" + list(Conformance.checks)
            + "\n\nWith --mcp (docs/mcp.md):\n" + list(Conformance.mcpChecks)
    }
}

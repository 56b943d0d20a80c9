import ArgumentParser
import Dispatch
import Foundation
import PurserProtocol
import PurserConfig
import PurserGateway
import PurserLedger
import PurserRuntime

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one routine under a reservation and report its verdict, usage and returns.",
        discussion: ExitCodes.help(ExitCodes.exec))

    @Argument(help: "The plugin executable.")
    var plugin: String

    @Option(help: "The run's input, as JSON.")
    var input: String?

    @Option(name: .customLong("input-file"), help: "Read the run's input, as JSON, from this file.")
    var inputFile: String?

    @Option(parsing: .unconditional, help: "Credits to reserve (decimal).")
    var credits: CreditsArgument = CreditsArgument(Credits(whole: 100))

    @Option(parsing: .unconditional, help: "Wall time to reserve, e.g. 500ms, 30s, 2m.")
    var time: DurationArgument = DurationArgument(milliseconds: 30_000)

    @Option(parsing: .unconditional, help: "Memory to reserve, e.g. 64MiB, 2GiB.")
    var memory: SizeArgument = SizeArgument(bytes: 512 << 20)

    @Option(parsing: .unconditional, help: "CPU time limit, e.g. 10s (whole seconds, rounded up).")
    var cpu: DurationArgument?

    @Option(name: .customLong("env"), help: "Allow a variable: K=V sets it, K passes the supervisor's value.")
    var environment: [String] = []

    @Option(help: "Draw the reservation from this team (default: the implicit team \"local\").")
    var team: String?

    @Option(help: "Tools the run may use, comma-separated (a gateway integration's name is a tool).")
    var tools: String?

    @Option(help: "Integrations the worker reaches through an HTTP proxy on its own loopback (HTTP_PROXY), comma-separated: for tools that fetch URLs themselves.")
    var egress: String?

    @Option(help: "A gateway config (YAML or JSON): the integrations the worker may call.")
    var gateway: String?

    @OptionGroup var ledgerOptions: LedgerOptions

    @Flag(help: "Run an unregistered executable trusted: no namespaces, seccomp or sandbox user (a registered plugin's manifest decides).")
    var trusted = false

    @OptionGroup var sandboxOptions: SandboxOptions

    @Option(name: .customLong("read-only"), help: "A host directory the worker may read, at the same path (untrusted workers see only their own root otherwise). Repeatable.")
    var readOnly: [String] = []

    @Flag(help: "Print one JSON object: verdict, output, usage, reserved, returned, stderrTail.")
    var json = false

    @Argument(parsing: .postTerminator, help: "Arguments for the plugin, after --.")
    var arguments: [String] = []

    func validate() throws {
        if input != nil && inputFile != nil {
            throw ValidationError("give --input or --input-file, not both")
        }
    }

    func run() async throws {
        var configured = try ledgerOptions.runtime()
        let registered = try registeredPlugin(configured)
        defer { registered?.close() }
        let input = try readInput()
        // An MCP tool's input is checked against its schema before anything is reserved.
        if let problem = registered?.call.inputProblem(input) { throw CommandLineError(message: "--input \(problem)") }
        var request = RunRequest(
            executable: plugin, pluginName: registered?.call.name, input: input,
            credits: credits.value, wallTimeMs: time.milliseconds, memoryBytes: memory.bytes)
        if registered?.call.tool != nil, !arguments.isEmpty {
            throw CommandLineError(message: "an MCP tool takes its input, not arguments after --")
        }
        request.arguments = arguments
        if let registered {
            registered.configure(&request)
        } else {
            request.sandbox = trusted ? .trusted : .untrusted
        }
        if let egress { request.egress = egress.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        request.allowDegraded = sandboxOptions.allowDegraded
        request.readOnlyPaths = readOnly.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        request.environment.merge(try allowedEnvironment(environment)) { _, given in given }
        request.cpuSeconds = cpu.map { Int(($0.milliseconds + 999) / 1000) }
        request.team = team
        request.tools = tools.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? []
        let json = self.json
        if let gateway { configured.gateway = try loadGateway(gateway, runtime: configured) }
        let runtime = configured
        let task = Task {
            try await runtime.exec(request) { event in Self.show(event, json: json) }
        }
        let interrupts = Interrupts { task.cancel() }
        let report: RunReport
        do {
            report = try await task.value
        } catch let error as RuntimeError {
            try refuseIfSandboxUnavailable(error)
            // It ran, but the store did not take its settle: what it used is still said, marked
            // unsettled (nothing was returned), then why that is the supervisor's failure.
            guard var ran = error.report else { throw commandFailure(error) }
            ran.unsettled = error.message
            show(ran)
            throw SupervisorFailure(
                message: error.message + "\npurser: its hold, if the store is still there, returns \(whenHoldsReturn).")
        }
        interrupts.stop()
        runtime.gateway?.saveStates()
        Runtime.finishCleanup()
        show(report)
        let code = ExitCodes.code(for: report.verdict)
        if code != 0 { throw ExitCode(code) }
    }

    /// A bare name (no "/") is a registered plugin if there is one, run through its pinned
    /// file; otherwise it is looked up on PATH, as a shell would.
    private func registeredPlugin(_ runtime: Runtime) throws -> PluginLaunch? {
        guard !plugin.contains("/") else { return nil }
        return try runtimeCall {
            guard let call = try PluginRegistry(runtime: runtime).resolve(plugin) else { return nil }
            return try PluginLaunch.open(call, runtime: runtime)
        }
    }

    private func readInput() throws -> JSONValue {
        if let input {
            do {
                return try JSONParser.parse(input)
            } catch {
                throw CommandLineError(message: "--input: \(error)")
            }
        }
        guard let inputFile else { return .null }
        guard let data = FileManager.default.contents(atPath: inputFile) else {
            throw CommandLineError(message: "--input-file: cannot read \(inputFile)")
        }
        do {
            return try JSONParser.parse([UInt8](data))
        } catch {
            throw CommandLineError(message: "--input-file \(inputFile): \(error)")
        }
    }

    private static func show(_ event: RunEvent, json: Bool) {
        switch event {
        case .log(let log): printError("[worker \(log.level)] \(log.message)")
        case .progress(let progress):
            guard !json else { return }
            let percent = progress.fraction.map { " \(Int($0 * 100))%" } ?? ""
            printError("[progress]\(percent) \(progress.message ?? "")")
        case .notice(let notice): printError("[purser] \(notice)")
        case .gatewayCall(let record): if !json { printError("[gateway] \(record.detail)") }
        case .usage: break
        }
    }

    static func describe(_ sandbox: SandboxReport) -> String {
        var text = "sandbox: \(sandbox.level.rawValue)"
        if !sandbox.notEnforced.isEmpty { text += "; NOT ENFORCED: " + sandbox.notEnforced.map(\.rawValue).joined(separator: ", ") }
        if !sandbox.optedOut.isEmpty { text += "; opted out: " + sandbox.optedOut.map(\.rawValue).joined(separator: ", ") }
        if !sandbox.deniedSyscalls.isEmpty {
            let count = "\(sandbox.deniedCalls)\(sandbox.deniedCallsCapped ? "+" : "") calls"
            text += "; denied syscalls: " + sandbox.deniedSyscalls.joined(separator: ", ") + " (\(count))"
        }
        return text
    }

    private func show(_ report: RunReport) {
        if json {
            print(report.json.serialized())
        } else {
            printHuman(report)
        }
    }

    private func printHuman(_ report: RunReport) {
        if let output = report.output { print("output: \(output.serialized())") }
        if report.verdict == .denied {
            print("verdict: denied (\(report.message ?? ""))")
            return
        }
        print("verdict: \(report.verdict.rawValue)" + (report.message.map { " (\($0))" } ?? ""))
        if let error = report.error { print("error: \(error.message) (code \(error.code))") }
        if let unsettled = report.unsettled { print("ledger: not settled, nothing returned yet (\(unsettled))") }
        if let sandbox = report.sandbox { print(Self.describe(sandbox)) }
        if report.droppedMessages > 0 {
            print("log: \(report.droppedMessages) messages dropped past the run's \(WorkerText.maxRunBytes / 1024) KiB of log and progress text")
        }
        let usage = report.usage
        print(
            "usage: credits \(usage.credits), wall \(Units.formatDuration(usage.wallMs)), "
                + "cpu \(Units.formatDuration(usage.cpuMs)), peak memory \(Units.formatSize(usage.memoryPeakBytes))")
        let rows = [
            ["", "reserved", "used", "returned"],
            ["credits", "\(report.reserved.credits)", "\(usage.credits)", "\(report.returned.credits)"],
            [
                "time", Units.formatDuration(report.reserved.timeMs), Units.formatDuration(usage.wallMs),
                Units.formatDuration(report.returned.timeMs),
            ],
            [
                "memory", Units.formatSize(report.reserved.memoryBytes), Units.formatSize(usage.memoryPeakBytes),
                Units.formatSize(report.returned.memoryBytes),
            ],
        ]
        for row in rows {
            print(row.enumerated().map { $0.element.padding(toLength: $0.offset == 0 ? 9 : 12, withPad: " ", startingAt: 0) }
                .joined())
        }
        if report.verdict != .ok && !report.stderrTail.isEmpty {
            print("stderr (last lines):")
            for line in report.stderrTail.split(separator: "\n").suffix(10) { print("  " + line) }
        }
    }
}

/// A gateway for `path`; a bad config is bad input that names its field.
func loadGateway(_ path: String, runtime: Runtime) throws -> Gateway {
    let config: GatewayConfig
    do {
        config = try GatewayConfig.load(path: path, environment: ProcessInfo.processInfo.environment)
    } catch {
        throw CommandLineError(message: "--gateway: \(error)")
    }
    do {
        return try runtime.makeGateway(config: config)
    } catch {
        throw CommandLineError(message: "--gateway: \(error)")
    }
}

struct SandboxOptions: ParsableArguments {
    @Flag(help: "Run even where this host lacks a sandbox layer the plugin's level wants; reports name what was not enforced.")
    var allowDegraded = false
}

/// A plugin its host cannot sandbox: the message names each missing layer; exit code 3.
func refuseIfSandboxUnavailable(_ error: RuntimeError) throws {
    guard error.code == .sandbox else { return }
    printError("purser: " + error.message)
    throw ExitCode(ExitCodes.sandboxUnavailable)
}

/// The variables `--env` allows a worker: K=V sets one, K passes purser's own value.
func allowedEnvironment(_ entries: [String]) throws -> [String: String] {
    var result: [String: String] = [:]
    for entry in entries {
        if let equals = entry.firstIndex(of: "=") {
            result[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        } else if let value = ProcessInfo.processInfo.environment[entry] {
            result[entry] = value
        } else {
            throw CommandLineError(message: "--env \(entry): not set in purser's environment")
        }
    }
    return result
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

struct CreditsArgument: ExpressibleByArgument {
    let value: Credits
    init(_ value: Credits) { self.value = value }
    init?(argument: String) {
        guard let credits = Credits(parsing: argument) else { return nil }
        value = credits
    }
    var defaultValueDescription: String { "\(value)" }
}

struct DurationArgument: ExpressibleByArgument {
    let milliseconds: Int64
    init(milliseconds: Int64) { self.milliseconds = milliseconds }
    init?(argument: String) {
        guard let value = Units.parseDuration(argument), value > 0 else { return nil }
        milliseconds = value
    }
    var defaultValueDescription: String { Units.formatDuration(milliseconds) }
}

struct SizeArgument: ExpressibleByArgument {
    let bytes: Int64
    init(bytes: Int64) { self.bytes = bytes }
    init?(argument: String) {
        guard let value = Units.parseSize(argument), value > 0 else { return nil }
        bytes = value
    }
    var defaultValueDescription: String { Units.formatSize(bytes) }
}

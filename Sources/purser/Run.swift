import ArgumentParser
import Foundation
import Logging
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserRuntime
import PurserTerminal

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a swarm of routines from a job file (YAML or JSON) under a team budget.",
        discussion: ExitCodes.help(ExitCodes.run))

    @Argument(help: "The job file.")
    var job: String

    @Option(help: "Write every event (reserve, grant, deny, queue, start, usage, gateway_call, verdict, return) as NDJSON to this file.")
    var events: String?

    @OptionGroup var ledgerOptions: LedgerOptions

    @OptionGroup var sandboxOptions: SandboxOptions

    @Flag(help: "Print one JSON report at the end instead of progress lines and tables.")
    var json = false

    func run() async throws {
        let parsed: JobFile
        do {
            parsed = try JobFile.load(path: job)
        } catch {
            throw CommandLineError(message: error.description)
        }
        var runtime = try ledgerOptions.runtime()
        runtime.allowDegradedSandbox = sandboxOptions.allowDegraded
        if let gateway = parsed.swarm.gateway {
            runtime.gateway = try loadGateway(resolve(gateway), runtime: runtime)
        }
        let sink = try events.map { path throws -> EventSink in try EventSink(path: path) }
        let json = self.json
        // On a terminal, a view redrawn in place; elsewhere, one line per event.
        let live = json ? nil : TerminalView.onTerminal(SwarmProgress(
            name: parsed.swarm.name, total: parsed.routines.count, reserved: parsed.swarm.credits))
        let report: SwarmReport
        let interrupts: Interrupts
        do throws(RuntimeError) {
            let runner = try SwarmRunner(runtime: runtime, job: parsed) { event in
                sink?.write(event)
                if let live { live.take(event) } else if !json { Self.show(event) }
                // The store's retries and give-ups reach stderr whatever the mode.
                if event.kind == "store", live == nil, json { printError("[purser] ledger: \(event.fields["message"]?.stringValue ?? "")") }
                // So is a routine's wait for a person, with the id to decide by.
                if event.kind == "await_approval", live == nil, json { Self.show(event) }
            }
            let task = Task { () -> Result<SwarmReport, RuntimeError> in
                do throws(RuntimeError) { return .success(try await runner.run()) } catch { return .failure(error) }
            }
            interrupts = Interrupts(say: { live?.note($0) ?? printError($0) }) { task.cancel() }
            report = try await task.value.get()
            interrupts.stop()
        } catch {
            live?.finish()
            try refuseIfSandboxUnavailable(error)
            guard error.code != .invalidRequest else { throw CommandLineError(message: error.message) }
            throw SupervisorFailure(message: error.message)
        }
        live?.finish()
        runtime.gateway?.saveStates()
        sink?.close()
        Runtime.finishCleanup()
        if json { print(report.json.serialized()) } else { SwarmTables.print(report) }
        if let storeError = report.storeError { throw Self.stopped(storeError) }
        if interrupts.fired { throw ExitCode(ExitCodes.code(for: .cancelled)) }
        if report.denied != nil { throw ExitCode(ExitCodes.swarmDenied) }
        if !report.allOK { throw ExitCode(ExitCodes.swarmFailed) }
    }

    /// The store failed under the swarm: what that costs, after the report of what ran.
    private static func stopped(_ failure: String) -> SupervisorFailure {
        SupervisorFailure(message: """
            the ledger's store failed, and the swarm stopped: \(failure)
            purser: the report above is what is known: routines not started, and runs the store did not settle \
            (settled: false, with what each used). Holds left open in a store that is still there (the swarm's, \
            and those of the unsettled runs) return \(whenHoldsReturn).
            """)
    }

    private func resolve(_ path: String) -> String {
        guard !path.hasPrefix("/"), let slash = job.lastIndex(of: "/") else { return path }
        return String(job[...slash]) + path
    }

    /// One plain line per event that a person watching wants to see.
    private static func show(_ event: SwarmEvent) {
        let name = event.routine ?? "swarm"
        let text: String? = switch event.kind {
        case "grant": "\(name): granted \(event.fields["credits"]?.serialized() ?? "") credits"
        case "queue": "\(name): waiting for budget"
        case "await_approval", "approval": FleetLines.approval(event)
        case "cache_hit": "\(name): ok from the cache (no spawn, no credits)"
        case "deny": "\(name): denied (\(event.fields["message"]?.stringValue ?? ""))"
        case "skip": "\(name): skipped (\(event.fields["because"]?.stringValue ?? "") did not succeed)"
        case "retry": "\(name): retrying (attempt \(event.fields["attempt"]?.serialized() ?? ""))"
        case "store": "ledger: \(event.fields["message"]?.stringValue ?? "")"
        case "settle": "\(name): settled at last, \(event.fields["used"]?.serialized() ?? "0") used"
        case "verdict":
            "\(name): \(event.fields["verdict"]?.stringValue ?? "") — used \(event.fields["used"]?.serialized() ?? "0"), returned \(event.fields["returned"]?.serialized() ?? "0")"
        default: nil
        }
        // Names, tools and reasons come from job files and workers: made inert on the terminal.
        if let text { printError("[run] " + WorkerText.line(text)) }
    }
}

/// When holds a failing store could not close come back.
var whenHoldsReturn: String {
    "at the first purser start after this supervisor's lease has run out (PURSER_LEASE_MS, "
        + "\(Units.formatDuration(RuntimeLedger.leaseMs))), keeping what was recorded as spent"
}

/// The NDJSON event stream of `--events`.
final class EventSink: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw CommandLineError(message: "--events: cannot write \(path)")
        }
        self.handle = handle
    }

    func write(_ event: SwarmEvent) {
        lock.lock()
        defer { lock.unlock() }
        handle.write(Data((event.json.serialized() + "\n").utf8))
    }

    func close() {
        do {
            try handle.close()
        } catch {
            // The last events may not have reached the file.
            Logger(label: "purser.events").error("closing the events file failed", metadata: ["error": "\(error)"])
        }
    }
}

enum SwarmTables {
    static func print(_ report: SwarmReport) {
        // The job file's names, made inert: the file may come from anyone.
        let (swarm, team) = (WorkerText.line(report.swarm), WorkerText.line(report.team))
        if let denied = report.denied {
            Swift.print("swarm \(swarm): denied (\(denied))")
            return
        }
        let state = report.allOK ? "ok" : report.storeError != nil ? "stopped (the ledger's store failed)" : "not all ok"
        Swift.print("swarm \(swarm) on team \(team): \(state) in \(Units.formatDuration(report.wallMs))")
        Swift.print("")
        Swift.print(row(["routine", "verdict", "attempts", "used", "message"]))
        for routine in report.routines {
            let used = routine.report.map { "\($0.usage.credits)" } ?? "-"
            let verdict = routine.cached ? "ok (cached)" : routine.verdict.rawValue + (routine.settleError != nil ? " (not settled)" : "")
            Swift.print(row([routine.name, verdict, "\(routine.attempts)", used, routine.settleError ?? routine.message ?? ""]))
        }
        Swift.print("")
        printTiers(report.tiers)
        if let storeError = report.storeError {
            Swift.print("ledger: the store is away (\(storeError)); the tiers show what it holds, the routines what each used")
        }
        Swift.print("verdicts: " + report.verdictCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        for routine in report.routines {
            // A sandbox that is not the whole untrusted profile is worth a line of its own.
            guard let sandbox = routine.report?.sandbox, sandbox.level != .untrusted || !sandbox.notEnforced.isEmpty
                || !sandbox.deniedSyscalls.isEmpty else { continue }
            Swift.print("\(routine.name): " + Exec.describe(sandbox))
        }
        if let analytics = report.analytics {
            Swift.print(String(
                format: "reservationAccuracy %.2f, utilizationEfficiency %.2f, returnRate %.2f",
                analytics.reservationAccuracy, analytics.utilizationEfficiency, analytics.returnRate))
        }
    }

    /// The two tier tables, each followed by a blank line (`purser run`'s and `watch`'s reports).
    static func printTiers(_ tiers: [TierSummary]) {
        for table in TierSummary.tables(tiers) {
            Swift.print(row(table.head))
            for cells in table.rows { Swift.print(row(cells)) }
            Swift.print("")
        }
    }

    static func row(_ cells: [String]) -> String {
        cells.enumerated().map { $0.element.padding(toLength: $0.offset == 0 ? 14 : 12, withPad: " ", startingAt: 0) }.joined(separator: " ")
    }
}

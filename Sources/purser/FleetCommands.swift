import ArgumentParser
import Foundation
import PurserAPI
import PurserConfig
import PurserFleet
import PurserLedger
import PurserProtocol
import PurserRuntime

/// `purser serve`: this host joins the fleet and runs what it claims.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the fleet's queue on this host: claim ready routines, run them, heartbeat, rescue lost hosts.",
        discussion: """
            SIGTERM or SIGINT drains: nothing more is claimed, running routines finish (or, after --drain-timeout, \
            are cancelled and go back in line), then purser leaves the fleet and exits 0. A second signal, or SIGHUP, \
            stops at once: the routines it ran are rescued by another host after --dead-after.
            """)

    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var sandboxOptions: SandboxOptions

    @Option(help: "This host's name in the fleet (default: the host name). Unique in the fleet, the same across restarts.")
    var name: String?

    @Option(help: "How many routines it runs at once.")
    var slots = 4

    @Option(help: "The memory its routines' holds may take together, e.g. 16GiB (default: 80% of its RAM).")
    var memory: String?

    @Option(help: "How often it renews its row in the hosts table.")
    var heartbeat = "1s"

    @Option(help: "How old a host's row may be before the host is lost and its routines rescued; a host fences itself at half of it.")
    var deadAfter = "10s"

    @Option(help: "How often it looks at the queue when nothing woke it, while PostgreSQL's wake-ups reach it (without them: every 250ms).")
    var poll = "2s"

    @Option(help: "How long a drain lets running routines finish.")
    var drainTimeout = "30s"

    @Option(help: "A gateway config for the routines it runs (their gateway/call).")
    var gateway: String?

    @OptionGroup var api: APIOptions

    func run() async throws {
        var settings = HostSettings(name: name ?? ProcessInfo.processInfo.hostName, slots: slots)
        settings.heartbeatMs = try duration(heartbeat, "--heartbeat")
        settings.deadAfterMs = try duration(deadAfter, "--dead-after")
        settings.drainTimeoutMs = try duration(drainTimeout, "--drain-timeout")
        settings.idlePollMs = try duration(poll, "--poll")
        if let memory {
            guard let bytes = Units.parseSize(memory), bytes > 0 else { throw CommandLineError(message: "--memory: '\(memory)' is not a size") }
            settings.memoryBytes = bytes
        }
        guard slots > 0, settings.deadAfterMs >= 2 * settings.heartbeatMs else {
            throw CommandLineError(message: "--slots must be positive, and --dead-after at least twice --heartbeat")
        }
        var runtime = try ledgerOptions.runtime()
        runtime.allowDegradedSandbox = sandboxOptions.allowDegraded
        if let gateway { runtime.gateway = try loadGateway(gateway, runtime: runtime) }
        let fleet = try fleetStore(runtime)
        // The API first: a socket in use or a bad token file stops serve before it joins.
        let server = try await api.start(runtime: runtime, fleet: fleet)
        let host: FleetHost
        do {
            host = try await FleetHost(settings: settings, runtime: runtime, fleet: fleet)
        } catch {
            await server?.stop()
            throw commandFailure(error)
        }
        printError("purser: serving as \(settings.name) (epoch \(host.lease.epoch), \(slots) slots)")
        let signals = Interrupts(firstMessage: "draining; a second one stops at once", stopAtOnce: [SIGHUP]) { host.drain() }
        await host.serve()
        signals.stop()
        await server?.stop()
        runtime.gateway?.saveStates()
        Runtime.finishCleanup()
        printError("purser: drained; left the fleet")
    }
}

func duration(_ text: String, _ option: String) throws -> Int64 {
    guard let ms = Units.parseDuration(text), ms > 0 else { throw CommandLineError(message: "\(option): '\(text)' is not a duration") }
    return ms
}

/// `purser submit`: a job file into the fleet's queue.
struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a swarm from a job file in the fleet's queue; prints its id.",
        discussion: "The file is checked as purser run checks it (exit 2, nothing written); its plugins must be registered.")

    @Argument(help: "The job file.")
    var job: String

    @Option(help: "The swarm's priority against the team's other swarms (default: the job's).")
    var priority: Int64?

    @Flag(help: "Wait for the swarm to end, showing its events, and exit as purser run would.")
    var wait = false

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var serverOptions: ServerOptions

    func run() async throws {
        let client = try await serverOptions.client(ledgerOptions)
        let id = if let client { try await submit(to: client) } else { try submitToStore() }
        if json && !wait { print(JSONValue.object(["swarmId": .string(id)]).serialized()) } else if !wait { print(id) }
        guard wait else { return }
        // As `purser run`: Ctrl-C cancels the swarm it started, and the watch goes on to its report.
        let (asking, ledger) = (client, ledgerOptions)
        let signals = Interrupts(
            firstMessage: "cancelling swarm \(id); a second one stops watching", secondMessage: "stopped watching (signal %d again)"
        ) {
            Task {
                do {
                    _ = try await Cancel.request(id, client: asking, ledger: ledger)
                } catch {
                    printError("purser: could not cancel swarm \(id): \(error)")
                }
            }
        }
        defer { signals.stop() }
        try await Watch.follow(id, client: client, ledger: ledgerOptions, server: serverOptions, json: json, events: nil)
    }

    private func submitToStore() throws -> String {
        let runtime = try ledgerOptions.runtime()
        let fleet = try fleetStore(runtime)
        do {
            return try FleetSubmission.submit(path: job, priority: priority, runtime: runtime, fleet: fleet)
        } catch {
            throw commandFailure(error)
        }
    }

    /// The job's text as the body; the server checks it as the store's submit would, and
    /// names this file in its errors.
    private func submit(to client: APIClient) async throws -> String {
        let source: String
        do {
            source = try ConfigValue.readFile(job)
        } catch {
            throw CommandLineError(message: error.description)
        }
        var query = "?file=" + (job.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "job")
        if let priority { query += "&priority=\(priority)" }
        let answer: APIAnswer
        do {
            answer = try await client.send("POST", "/v1/swarms" + query, body: Array(source.utf8))
        } catch {
            throw commandFailure(error)
        }
        guard answer.status == 201, let id = answer.json?["swarmId"]?.stringValue else { throw commandFailure(answer) }
        return id
    }
}

func fleetStore(_ runtime: Runtime) throws -> any FleetStore {
    do {
        return try runtime.ledger!.fleetStore()
    } catch {
        throw commandFailure(error)
    }
}

/// `purser watch`: a swarm's events and final report, wherever it runs.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a fleet swarm's events to its end, then print its report.")

    @Argument(help: "The swarm's id (purser submit printed it).")
    var id: String

    @Option(help: "Also write every event as NDJSON to this file.")
    var events: String?

    @Flag(help: "Print the final report as JSON instead of event lines and a table.")
    var json = false

    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var serverOptions: ServerOptions

    func run() async throws {
        let client = try await serverOptions.client(ledgerOptions)
        try await Self.follow(id, client: client, ledger: ledgerOptions, server: serverOptions, json: json, events: events)
    }

    /// Follows the swarm through `client`, else the store (`SwarmFollower`), showing its events.
    static func follow(
        _ id: String, client: APIClient?, ledger: LedgerOptions, server: ServerOptions, json: Bool, events: String?
    ) async throws {
        let sink = try events.map { path throws -> EventSink in try EventSink(path: path) }
        // On a terminal, the live view; it reads the swarm's size from the store when watching there.
        let live: TerminalView? = if json { nil } else if let client {
            await TerminalView.watching(id, client: client)
        } else {
            await TerminalView.watching(id, ledger: ledger)
        }
        let report: JSONValue
        do {
            report = try await SwarmFollower(id: id, ledger: ledger, server: server).report(from: client) { _, event in
                sink?.write(event)
                if let live { live.take(event) } else if !json { FleetLines.show(event) }
                // A routine's wait for a person reaches stderr whatever the mode, as in purser run.
                if event.kind == "await_approval", live == nil, json { FleetLines.show(event) }
            }
        } catch {
            live?.finish()
            throw error
        }
        live?.finish()
        sink?.close()
        try finish(report, json: json)
    }

    private static func finish(_ report: JSONValue, json: Bool) throws {
        if json { print(report.serialized()) } else { FleetLines.print(report: report) }
        switch report["verdict"]?.stringValue {
        case "ok": return
        case "denied": throw ExitCode(ExitCodes.swarmDenied)
        case "cancelled": throw ExitCode(ExitCodes.code(for: .cancelled))
        default: throw ExitCode(ExitCodes.swarmFailed)
        }
    }
}

/// `purser cancel`: stops a fleet swarm.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel a fleet swarm: waiting routines are withdrawn, running ones get cancel; what is unused returns.")

    @Argument(help: "The swarm's id.")
    var id: String

    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var serverOptions: ServerOptions

    func run() async throws {
        guard try await Self.request(id, client: try await serverOptions.client(ledgerOptions), ledger: ledgerOptions) else {
            throw CommandLineError(message: "no swarm \(id) that is still running or waiting")
        }
        print("cancelling \(id)")
    }

    /// Asks the server, else the store, to cancel the swarm; false when it is not running or waiting.
    static func request(_ id: String, client: APIClient?, ledger: LedgerOptions) async throws -> Bool {
        guard let client else {
            let fleet = try fleetStore(try ledger.runtime())
            return try ledgerCall { () throws(LedgerError) in try fleet.cancel(swarm: id) }
        }
        let answer: APIAnswer
        do {
            answer = try await client.send("POST", "/v1/swarms/\(APIClient.segment(id))/cancel")
        } catch {
            throw commandFailure(error)
        }
        guard [202, 404, 409].contains(answer.status) else { throw commandFailure(answer) }
        return answer.status == 202
    }
}

/// `purser hosts`: the fleet's hosts.
struct Hosts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The fleet's hosts: state, slots, running routines, last heartbeat.")

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var serverOptions: ServerOptions

    func run() async throws {
        guard let client = try await serverOptions.client(ledgerOptions) else {
            let fleet = try fleetStore(try ledgerOptions.runtime())
            let hosts = try ledgerCall { () throws(LedgerError) in try fleet.hosts() }
            return FleetLines.print(hosts: hosts.map(\.json), json: json)
        }
        let answer: APIAnswer
        do {
            answer = try await client.send("GET", "/v1/hosts")
        } catch {
            throw commandFailure(error)
        }
        guard answer.status == 200, let hosts = answer.json?["hosts"]?.arrayValue else { throw commandFailure(answer) }
        FleetLines.print(hosts: hosts, json: json)
    }
}

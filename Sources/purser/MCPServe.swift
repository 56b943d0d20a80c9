import ArgumentParser
import Glibc
import PurserLedger
import PurserMCP
import PurserProtocol
import PurserRuntime
import Synchronization

extension MCPCommand {
    /// `purser mcp serve`: Purser as an MCP stdio server. Every `tools/call` runs as a
    /// budgeted, sandboxed routine under the team; a verdict other than ok comes back as a
    /// tool error with its reason, never as the end of the session.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Speak MCP on stdin/stdout: registered plugins and MCP tools as tools, each call a budgeted routine.")

        @Option(help: "The team whose budget every call is drawn from.") var team: String?
        @Option(parsing: .upToNextOption, help: "The tools to offer: plugin names, MCP servers' names (all their tools) or NAME.TOOL (default: every registered one).")
        var tools: [String] = []
        @Option(help: "Credits a call reserves unless its plugin's manifest says (default 1).")
        var credits: CreditsArgument = CreditsArgument(Credits(whole: 1))
        @Option(help: "Wall time a call may take unless its manifest says (default 60s).")
        var time: DurationArgument = DurationArgument(milliseconds: 60_000)
        @Option(help: "Memory a call may use unless its manifest says (default 512MiB).")
        var memory: SizeArgument = SizeArgument(bytes: 512 << 20)
        @OptionGroup var ledgerOptions: LedgerOptions
        @OptionGroup var sandboxOptions: SandboxOptions

        func run() async throws {
            let runtime = try ledgerOptions.runtime()
            let offered = try runtimeCall { try MCPOffer.load(PluginRegistry(runtime: runtime), only: tools) }
            let defaults = Amounts(credits: credits.value, timeMs: time.milliseconds, memoryBytes: memory.bytes)
            let server = MCPServeLoop(
                runtime: runtime, offer: offered, team: team, defaults: defaults, allowDegraded: sandboxOptions.allowDegraded,
                reuseUntrusted: try reuseUntrusted(offered, runtime: runtime))
            await server.run()
            Runtime.finishCleanup()
        }

        /// The team's word on keeping untrusted workers, read only when an offered plugin
        /// asks for it; no team, no keeping.
        private func reuseUntrusted(_ offer: MCPOffer, runtime: Runtime) throws -> Bool {
            guard let team, offer.entries.values.contains(where: { $0.call.manifest.reuseUntrusted }) else { return false }
            let fleet = try fleetStore(runtime)
            return try ledgerCall { () throws(LedgerError) in try fleet.teamPolicy(team: team).reuseUntrusted }
        }
    }
}

/// What `purser mcp serve` offers: each tool's descriptor, and the plugin (and MCP tool) it runs.
struct MCPOffer: Sendable {
    struct Entry: Sendable {
        var call: PluginCall
        var descriptor: JSONValue
    }

    var entries: [String: Entry] = [:]
    var descriptors: [JSONValue] = []

    static func load(_ registry: PluginRegistry, only: [String]) throws(RuntimeError) -> MCPOffer {
        var offer = MCPOffer()
        for record in try registry.list() {
            for entry in offered(record) {
                let name = entry.descriptor["name"]?.stringValue ?? ""
                guard only.isEmpty || only.contains(name) || only.contains(record.name) else { continue }
                offer.entries[name] = entry
                offer.descriptors.append(entry.descriptor)
            }
        }
        let unknown = only.filter { name in offer.entries[name] == nil && !offer.entries.values.contains { $0.call.record.name == name } }
        guard unknown.isEmpty else {
            throw RuntimeError(code: .invalidRequest, message: "--tools: no registered tool or plugin named \(unknown.joined(separator: ", "))")
        }
        return offer
    }

    /// A plain plugin is offered under its name when MCP allows the name; a server's tools as
    /// NAME.TOOL, with their own descriptions and schemas.
    private static func offered(_ record: PluginRecord) -> [Entry] {
        PluginCall.offered(by: record).compactMap { call in
            guard let tool = call.tool else {
                guard MCPServer.isToolName(record.name) else { return nil }
                return Entry(call: call, descriptor: [
                    "name": .string(record.name), "description": .string("Purser plugin \(record.name), run as a budgeted, sandboxed routine."),
                    "inputSchema": ["type": "object"],
                ])
            }
            return Entry(call: call, descriptor: [
                "name": .string(call.name), "description": .string(tool.description), "inputSchema": tool.inputSchema,
            ])
        }
    }
}

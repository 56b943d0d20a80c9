import ArgumentParser
import PurserConfig
import PurserProtocol
import PurserRuntime

/// MCP stdio servers as plugins: each tool is a routine, `NAME.TOOL`.
struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp", abstract: "MCP stdio servers as plugins: each of their tools a budgeted, sandboxed routine (NAME.TOOL).",
        subcommands: [Add.self, Tools.self, Serve.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pin an MCP server's executable, list its tools in the sandbox, and record them.",
            discussion: "Its tools then run as NAME.TOOL: purser exec NAME.TOOL --input '{…}', or plugin: NAME.TOOL in a job file.")

        @Argument(help: "The name its tools go by (NAME.TOOL); no '.' or '/'.") var name: String
        @Option(help: "A plugin manifest (YAML or JSON): reservation default and max, environment, trusted, reuse.")
        var manifest: String?
        @OptionGroup var ledgerOptions: LedgerOptions
        @OptionGroup var sandboxOptions: SandboxOptions
        @Flag(help: "Print JSON.") var json = false
        @Argument(parsing: .postTerminator, help: "The server's command and arguments, after --.") var command: [String] = []

        func validate() throws {
            if command.isEmpty { throw ValidationError("give the server's command after --: purser mcp add NAME -- COMMAND [ARGS…]") }
        }

        func run() async throws {
            let declared = try PluginCommand.manifest(manifest)
            let registry = try PluginCommand.registry(ledgerOptions)
            do {
                let (record, added) = try await registry.addMCP(
                    name: name, command: command, manifest: declared, allowDegraded: sandboxOptions.allowDegraded)
                Runtime.finishCleanup()
                let server = PluginCall.offered(by: record).first?.server
                if json {
                    var object = record.json.objectValue ?? [:]
                    object["result"] = .string(added.rawValue)
                    return print(JSONValue.object(object).serialized())
                }
                print("\(added.rawValue): \(record.name) → \(record.path) (sha256 \(record.sha256.prefix(16))…), MCP \(server?.protocolVersion ?? "?")")
                for tool in server?.tools ?? [] { print("  \(record.name).\(tool.name)  \(WorkerText.line(String(tool.description.prefix(70))))") }
            } catch {
                throw commandFailure(error)
            }
        }
    }

    struct Tools: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tools of a registered MCP server, with their input schemas.")
        @Argument var name: String
        @OptionGroup var ledgerOptions: LedgerOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            guard let record = try runtimeCall({ try PluginCommand.registry(ledgerOptions).find(name) }),
                let server = PluginCall.offered(by: record).first?.server
            else {
                throw CommandLineError(message: "no MCP server named \(name) is registered (purser mcp add)")
            }
            if json { return print(JSONValue.array(server.tools.map(\.json)).serialized()) }
            for tool in server.tools {
                print("\(record.name).\(tool.name)  \(WorkerText.line(tool.description))")
                print("  input: \(WorkerText.line(tool.inputSchema.serialized()))")
            }
        }
    }
}

import Glibc
public import PurserLedger
public import PurserProtocol
import PurserSandbox

extension PluginRegistry {
    /// A routine's plugin as written: a registered plugin's name, or `NAME.TOOL`, a tool of the
    /// MCP server registered as `NAME` (whose name has no dot). Nil when neither is registered;
    /// throws when the tool is not the server's (see `PluginCall`).
    public func resolve(_ written: String) throws(RuntimeError) -> PluginCall? {
        if let record = try find(written) { return try PluginCall(record, tool: nil) }
        guard let dot = written.firstIndex(of: "."), let record = try find(String(written[..<dot])) else { return nil }
        return try PluginCall(record, tool: String(written[written.index(after: dot)...]))
    }

    /// Registers an MCP stdio server: pins `command[0]`'s file (run by fd, as any plugin's),
    /// starts it once through the bridge in the sandbox its manifest asks for, and records its
    /// tools (`tools/list`, every page) with their input schemas. A server that fails the MCP
    /// handshake or lists no usable tool is refused with the reason.
    public func addMCP(
        name: String, command: [String], manifest: PluginManifest?, allowDegraded: Bool = false
    ) async throws(RuntimeError) -> (PluginRecord, Added) {
        guard !name.isEmpty, !name.contains("/"), !name.contains("."), !command.isEmpty else {
            throw RuntimeError(code: .invalidRequest, message: "'\(name)' cannot name an MCP server (no '/' or '.': its tools are \(name).TOOL)")
        }
        let path = try Self.absoluteExecutable(command[0])
        let opened = try Self.open(path, label: command[0])
        defer { close(opened.fd) }
        let listed = try await listTools(path: path, opened: opened, command: command, manifest: manifest, allowDegraded: allowDegraded)
        let details: JSONValue = [
            "version": .string(listed.plugin?.pluginVersion ?? ""), "capabilities": .object(listed.plugin?.capabilities ?? [:]),
            "manifest": (manifest ?? PluginManifest()).json, "mcp": listed.server.json,
        ]
        let record = PluginRecord(name: name, path: path, sha256: opened.digest, info: details.serialized(), addedMs: unixMilliseconds())
        return try save(record, opened: opened)
    }

    /// A `{"list": true}` run of the bridge, with no reservation.
    private func listTools(
        path: String, opened: OpenedPlugin, command: [String], manifest: PluginManifest?, allowDegraded: Bool
    ) async throws(RuntimeError) -> (server: MCPServer, plugin: InitializeResult?) {
        let bridge = try MCPBridgeFile.open()
        defer { close(bridge.fd) }
        var request = RunRequest(
            executable: MCPBridgeFile.path ?? "purser-mcp", input: ["list": true], credits: .zero, wallTimeMs: 30_000,
            memoryBytes: 512 << 20)
        request.executableFD = bridge.fd
        request.passedFDs = [opened.fd]
        request.arguments = ["--server-fd", "3", "--", command[0]] + command.dropFirst()
        (manifest ?? PluginManifest()).apply(to: &request, workers: nil)
        // Listing tools needs no network, and this bare runtime has no gateway to give it.
        request.egress = []
        request.allowDegraded = allowDegraded
        request.timing.startupMs = manifest?.mcp?.startupMs ?? MCPManifest().startupMs
        let report = try await Runtime(home: runtime.home).exec(request)
        guard report.verdict == .ok else {
            let why = report.error?.message ?? report.message ?? report.verdict.rawValue
            let tail = report.stderrTail.isEmpty ? "" : "\n" + report.stderrTail
            throw RuntimeError(code: .invalidRequest, message: "\(command[0]) failed as an MCP server: \(why)\(tail)")
        }
        let tools: [MCPServer.MCPTool]
        do {
            tools = try MCPServer.checkedTools(listed: report.output)
        } catch {
            throw RuntimeError(code: .invalidRequest, message: "\(command[0]): \(error.message)")
        }
        let server = MCPServer(
            command: command, serverName: report.plugin?.pluginName ?? "",
            protocolVersion: report.plugin?.capabilities["mcpProtocolVersion"]?.stringValue ?? "", tools: tools)
        return (server, report.plugin)
    }

    /// A path as given (made absolute and canonical), or a bare name looked up on PATH.
    static func absoluteExecutable(_ command: String) throws(RuntimeError) -> String {
        let found: String
        do {
            found = try Spawner.resolveExecutable(command)
        } catch {
            throw RuntimeError(code: .invalidRequest, message: "\(command): \(error.description)")
        }
        guard let resolved = realpath(found, nil) else { return found }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

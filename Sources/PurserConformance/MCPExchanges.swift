import PurserMCP
import PurserProtocol

/// The exchanges of the MCP checks, each as an MCP client makes it over stdio.
extension WorkerConnection {
    static let mcpClientInfo: JSONValue = ["name": "purser-conformance", "version": "0.1.0"]

    func mcpInitializeParams(version: String = MCPVersions.latestHandshake) -> JSONValue {
        ["protocolVersion": .string(version), "capabilities": [:], "clientInfo": Self.mcpClientInfo]
    }

    /// `initialize`, answered with a result within the startup time, then
    /// `notifications/initialized`: the handshake the other checks start with.
    @discardableResult
    func mcpInitialize() throws(CheckFailure) -> [String: JSONValue] {
        let result = try ask("initialize", mcpInitializeParams(), within: options.startupMs)
            .object("initialize is answered with a result object")
        try notify("notifications/initialized", nil)
        return result
    }

    /// The answer to `id` if it came already, without waiting.
    func answerSoFar(_ id: RPCID) -> Answer? {
        try? answer(to: id, within: 0, "")
    }

    /// A short life: the handshake, a ping, the first page of tools, then stdin closed and
    /// the exit awaited, for the checks that judge everything the server wrote. Says why, if
    /// it was cut short.
    func mcpWholeSession() -> String? {
        wholeLife { () throws(CheckFailure) in
            try mcpInitialize()
            _ = try ask("ping")
            _ = try ask("tools/list")
        }
    }
}

extension ConformanceOptions {
    /// The waits for an MCP server: a start-up long enough for an interpreter that imports
    /// a framework (Python servers take seconds on a busy host), and 5 s to exit at end of input.
    public static var mcp: ConformanceOptions {
        var options = ConformanceOptions()
        options.startupMs = 20_000
        options.exitGraceMs = 5_000
        return options
    }
}

/// A rule of the MCP specification (revision 2025-11-25), checked against an MCP stdio
/// server of its own, started as the worker checks start theirs; its requests are answered
/// as a client that offers nothing but `ping`.
protocol MCPCheck: WorkerCheck {}

extension MCPCheck {
    var peer: Peer { .mcpServer }

    /// Start-up, a few exchanges, and the exit grace for those that await the end.
    func timeLimitMs(_ options: ConformanceOptions) -> Int64 {
        options.startupMs + 4 * options.answerMs + options.exitGraceMs
    }
}

extension SpecSection {
    static let mcpInitialization = SpecSection(mcp: "lifecycle/initialization", title: "Lifecycle: initialization")
    static let mcpVersionNegotiation = SpecSection(mcp: "lifecycle/version-negotiation", title: "Lifecycle: version negotiation")
    static let mcpShutdown = SpecSection(mcp: "lifecycle/shutdown", title: "Lifecycle: shutdown")
    static let mcpPing = SpecSection(mcp: "utilities/ping", title: "Ping")
    static let mcpCancellation = SpecSection(mcp: "utilities/cancellation", title: "Cancellation")
    static let mcpResponses = SpecSection(mcp: "basic#responses", title: "Messages: responses (JSON-RPC 2.0)")
    static let mcpStdio = SpecSection(mcp: "basic/transports#stdio", title: "Transports: stdio")
    static let mcpToolListing = SpecSection(mcp: "server/tools#listing", title: "Tools: listing")
    static let mcpToolErrors = SpecSection(mcp: "server/tools#error-handling", title: "Tools: error handling")
}

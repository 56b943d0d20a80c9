import PurserProtocol

/// utilities/ping: answered at once with an empty result.
struct MCPPingCheck: MCPCheck {
    let name = "ping"
    let section = SpecSection.mcpPing
    let summary = "ping answered with an empty result {}"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try server.mcpInitialize()
        let result = try server.ask("ping").object("ping is answered with the empty result {}")
        guard result.keys.allSatisfy({ $0 == "_meta" }) else {
            throw CheckFailure("ping is answered with the empty result {}, not \(WorkerConnection.preview(.object(result)))")
        }
        return .pass("answered {} within \(server.options.answerMs) ms")
    }
}

/// JSON-RPC 2.0, which MCP's messages are: a method the server does not have is -32601.
struct MCPUnknownMethodCheck: MCPCheck {
    static let method = "purser-conformance/no-such-method"

    let name = "unknown-method"
    let section = SpecSection.mcpResponses
    let summary = "a request for an unknown method answered with error -32601 (Method not found)"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try server.mcpInitialize()
        try server.ask(Self.method, [:]).error(ErrorCode.methodNotFound, Self.method, wants: "JSON-RPC wants error -32601")
        return .pass("answered -32601")
    }
}

/// utilities/cancellation: `notifications/cancelled` for a request in flight is taken in
/// stride; the server may or may not still answer the request.
struct MCPCancelCheck: MCPCheck {
    let name = "cancellation"
    let section = SpecSection.mcpCancellation
    let summary = "notifications/cancelled for a request in flight accepted: the server lives on and answers ping"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try server.mcpInitialize()
        let id = try server.request("tools/list", nil)
        try server.notify("notifications/cancelled", ["requestId": id.json, "reason": "purser conformance"])
        // Any answer to ping will do: whether ping is right is the ping check's business.
        _ = try server.ask("ping", nil, "ping after the cancel")
        let cancelled = server.answerSoFar(id) == nil ? "did not answer the cancelled tools/list" : "answered tools/list before the cancel reached it"
        return .pass("answered ping after the cancel; \(cancelled)")
    }
}

/// basic/transports#stdio: the server writes nothing to stdout that is not an MCP message.
struct MCPStrayStdoutCheck: MCPCheck {
    let name = "stray-stdout"
    let section = SpecSection.mcpStdio
    let summary = "every line on stdout is a JSON-RPC 2.0 message (logs go to stderr)"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let cut = server.mcpWholeSession()
        let transcript = server.transcript
        guard transcript.strayCount == 0 else {
            throw CheckFailure("\(transcript.strayCount) stray line(s) on stdout: " + transcript.strays.joined(separator: "; "))
        }
        return .pass("stdout carried MCP messages only", cut: cut)
    }
}

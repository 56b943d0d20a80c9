import PurserMCP
import PurserProtocol

/// lifecycle/initialization: `initialize` answered with a revision Purser speaks, the
/// server's name, and its tools capability (Purser uses servers for their tools).
struct MCPInitializeCheck: MCPCheck {
    let name = "initialize"
    let section = SpecSection.mcpInitialization
    let summary = "initialize answered within the startup time: a protocolVersion purser speaks, serverInfo.name, capabilities.tools"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let result = try server.mcpInitialize()
        guard let version = result["protocolVersion"]?.stringValue else {
            throw CheckFailure("result.protocolVersion is required, a string")
        }
        guard MCPVersions.handshake.contains(version) else {
            throw CheckFailure(
                "answered protocolVersion \(WorkerText.line(version, limit: 64)); purser speaks \(MCPVersions.handshake.joined(separator: ", "))")
        }
        guard let name = result["serverInfo"]?["name"]?.stringValue else {
            throw CheckFailure("result.serverInfo.name is required, a string")
        }
        guard result["capabilities"]?["tools"]?.objectValue != nil else {
            throw CheckFailure("result.capabilities.tools is required, an object: purser uses a server for its tools")
        }
        let serverVersion = result["serverInfo"]?["version"]?.stringValue ?? "?"
        return .pass("server \(WorkerText.line(name, limit: 80)) \(WorkerText.line(serverVersion, limit: 40)), protocolVersion \(version)")
    }
}

/// lifecycle/version-negotiation: a server that does not speak the client's revision
/// answers with one it does speak; it neither refuses nor echoes it.
struct MCPVersionCheck: MCPCheck {
    static let unknown = "1999-01-01"

    let name = "version"
    let section = SpecSection.mcpVersionNegotiation
    let summary = "initialize offering protocolVersion \(unknown) answered with a revision the server speaks, not an error or \(unknown)"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let result = try server.ask("initialize", server.mcpInitializeParams(version: Self.unknown), within: server.options.startupMs)
            .object("initialize offering \(Self.unknown) is answered with a result naming a revision the server speaks")
        guard let version = result["protocolVersion"]?.stringValue, !version.isEmpty else {
            throw CheckFailure("result.protocolVersion is required, a string")
        }
        guard version != Self.unknown else {
            throw CheckFailure("answered protocolVersion \(Self.unknown), the unknown revision it was offered; it answers one it speaks")
        }
        let spoken = MCPVersions.handshake.contains(version) ? "" : " (which purser does not speak)"
        return .pass("answered protocolVersion \(WorkerText.line(version, limit: 64))\(spoken)")
    }
}

/// lifecycle/initialization: a request before `initialize` (clients should not send one)
/// may be answered or refused, but the server lives on and still initializes.
struct MCPBeforeInitializeCheck: MCPCheck {
    let name = "before-initialize"
    let section = SpecSection.mcpInitialization
    let summary = "a request before initialize does not end the server: it initializes after it and answers ping"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let early = try server.request("tools/list", nil)
        try server.ask("initialize", server.mcpInitializeParams(), within: server.options.startupMs, "initialize after tools/list")
            .object("initialize after an early tools/list is answered with a result object")
        try server.notify("notifications/initialized", nil)
        _ = try server.ask("ping", nil, "ping after the early tools/list")
        let what = switch server.answerSoFar(early)?.result {
        case .failure(let error)?: "refused it with error \(WorkerConnection.text(error))"
        case .success?: "answered it"
        case nil: "left it unanswered"
        }
        return .pass("\(what), then initialized and answered ping")
    }
}

/// lifecycle/shutdown: over stdio, the client ends a session by closing the server's stdin.
struct MCPEndOfInputCheck: MCPCheck {
    let name = "stdin-eof"
    let section = SpecSection.mcpShutdown
    let summary = "end of file on stdin: the server exits within the exit grace (5 s)"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try server.mcpInitialize()
        server.closeStdin()
        let exit = try server.exits(within: server.options.exitGraceMs, after: "its stdin closed")
        return .pass("\(WorkerConnection.describe(exit)) at end of file")
    }
}

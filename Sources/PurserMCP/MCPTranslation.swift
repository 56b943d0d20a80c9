public import PurserProtocol

/// MCP's messages in Purser's words. Every value comes from the server, a program Purser
/// does not trust: codes it chooses are never passed on (a server answering -32800 must not
/// pass for a cancel), and texts are capped.
public enum MCPTranslation {
    /// The code of every failed call: the server's own code goes in `data`.
    public static let toolFailed = -32020
    static let maxText = 4096

    static func failure(_ message: String, data: JSONValue? = nil) -> RPCError {
        RPCError(code: toolFailed, message: String(message.prefix(maxText)), data: data)
    }

    /// The server's answer to `initialize`: its name, version and revision, or why not.
    static func serverInfo(_ result: Result<JSONValue, RPCError>) -> Result<(name: String, version: String, protocolVersion: String), RPCError> {
        switch result {
        case .failure(let error):
            if error.code == MCPVersions.unsupportedCode, let supported = supported(error) { return .failure(unspoken(supported)) }
            return .failure(RPCError(code: ErrorCode.internalError, message: "the MCP server refused initialize: \(error.message.prefix(maxText))"))
        case .success(let answer):
            guard let version = answer["protocolVersion"]?.stringValue else {
                return .failure(RPCError(code: ErrorCode.internalError, message: "the MCP server's initialize answer names no protocolVersion"))
            }
            guard MCPVersions.handshake.contains(version) else { return .failure(unspoken([version])) }
            return described(answer, serverInfo: answer["serverInfo"], version: version)
        }
    }

    /// The server's answer to `server/discover`, at the stateless revision `version` both
    /// speak: its name is in `_meta` (optional there).
    static func discovered(_ answer: JSONValue, version: String) -> Result<(name: String, version: String, protocolVersion: String), RPCError> {
        described(answer, serverInfo: answer["_meta"]?[MCPEnvelope.serverInfo], version: version)
    }

    private static func described(
        _ answer: JSONValue, serverInfo: JSONValue?, version: String
    ) -> Result<(name: String, version: String, protocolVersion: String), RPCError> {
        guard answer["capabilities"]?["tools"] != nil else {
            return .failure(RPCError(code: ErrorCode.internalError, message: "the MCP server offers no tools (capabilities.tools)"))
        }
        let name = serverInfo?["name"]?.stringValue ?? "mcp-server"
        let serverVersion = serverInfo?["version"]?.stringValue ?? "0"
        return .success((String(name.prefix(200)), String(serverVersion.prefix(200)), version))
    }

    /// The revisions a -32022 error says the server speaks (`data.supported`), if it says.
    static func supported(_ error: RPCError) -> [String]? {
        guard let list = error.data?["supported"]?.arrayValue else { return nil }
        return list.prefix(32).compactMap { $0.stringValue.map { String($0.prefix(64)) } }
    }

    /// The refusal of a server whose revisions Purser does not speak, naming both.
    static func unspoken(_ theirs: [String]) -> RPCError {
        let named = theirs.isEmpty ? "no revision" : "revision \(theirs.joined(separator: ", "))"
        return RPCError(code: ErrorCode.unsupportedProtocolVersion, message: "the MCP server speaks \(named); purser speaks \(MCPVersions.named)")
    }

    /// A `tools/call` answer as the run's: its result is the output; `isError: true` and
    /// JSON-RPC errors are the run's error (verdict `error`), with the tool's text.
    static func runResult(_ result: Result<JSONValue, RPCError>) -> Result<JSONValue, RPCError> {
        switch result {
        case .failure(let error):
            return .failure(failure("MCP error \(error.code): \(error.message)", data: ["mcpCode": .number(JSONNumber(error.code))]))
        case .success(let answer):
            guard answer.objectValue != nil else { return .failure(failure("the MCP server's tools/call result is not an object")) }
            if answer["isError"] == true { return .failure(failure(text(of: answer).isEmpty ? "the tool failed" : text(of: answer))) }
            // The same output whatever revision was spoken: a stateless result's envelope
            // (`resultType`, the server's name) is the protocol's, not the tool's.
            return .success(["output": MCPEnvelope.unstamped(answer)])
        }
    }

    /// The text parts of a result's content, joined.
    static func text(of answer: JSONValue) -> String {
        (answer["content"]?.arrayValue ?? []).compactMap { $0["type"] == "text" ? $0["text"]?.stringValue : nil }.joined(separator: "\n")
    }

    /// `notifications/progress` as Purser's `progress`: a fraction when a total is known.
    static func progress(_ params: JSONValue, runID: String) -> RPCMessage? {
        var fields: [String: JSONValue] = ["runId": .string(runID)]
        if let done = params["progress"]?.numberValue?.double, let total = params["total"]?.numberValue?.double, total > 0, done >= 0 {
            fields["fraction"] = .number(JSONNumber(min(done / total, 1)) ?? JSONNumber(0))
        }
        if let message = params["message"]?.stringValue { fields["message"] = .string(String(message.prefix(maxText))) }
        guard fields.count > 1 else { return nil }
        return .notification(method: "progress", params: .object(fields))
    }

    /// `notifications/message` (MCP logging, RFC 5424 levels) as Purser's `log`.
    static func log(_ params: JSONValue) -> RPCMessage {
        let level = switch params["level"]?.stringValue {
        case "debug": "debug"
        case "info", "notice": "info"
        case "warning": "warning"
        default: "error"
        }
        let data = params["data"].map { $0.stringValue ?? $0.serialized() } ?? ""
        let logger = params["logger"]?.stringValue.map { "\($0.prefix(100)): " } ?? ""
        return .notification(method: "log", params: ["level": .string(level), "message": .string(String((logger + data).prefix(maxText)))])
    }
}

public import PurserProtocol

/// The MCP revisions Purser speaks, on both sides. They come in two kinds: the handshake
/// revisions are agreed once by `initialize`; a stateless revision has no handshake, and
/// each request names its revision and client in `_meta` (`MCPEnvelope`), with
/// `server/discover` telling what a server speaks.
public enum MCPVersions {
    /// The revisions negotiated by `initialize`, oldest first.
    public static let handshake = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    /// The stateless revisions, oldest first.
    public static let stateless = ["2026-07-28"]
    public static var all: [String] { handshake + stateless }
    public static var latestHandshake: String { handshake.last! }
    public static var latestStateless: String { stateless.last! }

    /// MCP's error for a revision the receiver does not speak; its `data` is
    /// `{"supported": [...], "requested": "..."}`.
    public static let unsupportedCode = -32022

    /// Every revision, for messages: "2024-11-05, …, 2025-11-25 (initialize) and 2026-07-28 (stateless)".
    public static var named: String {
        "\(handshake.joined(separator: ", ")) (initialize) and \(stateless.joined(separator: ", ")) (stateless)"
    }

    /// The error for a request at `requested`, a revision Purser does not speak.
    public static func unsupported(_ requested: String) -> RPCError {
        RPCError(
            code: unsupportedCode, message: "Unsupported protocol version \(requested.prefix(64)): purser speaks \(named)",
            data: ["supported": .array(all.map(JSONValue.string)), "requested": .string(String(requested.prefix(64)))])
    }
}

/// The MCP revisions Purser speaks. As a client it offers the newest handshake revision and
/// accepts any of these in the server's answer; a server answering another is refused.
public enum MCPVersions {
    /// The revisions negotiated by `initialize`, oldest first.
    public static let handshake = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    public static var latest: String { handshake.last! }

    public static func supports(_ version: String) -> Bool { handshake.contains(version) }
}

public import PurserProtocol

/// The per-request `_meta` of the stateless revisions: a request carries its revision, its
/// client and the client's capabilities; a result carries `resultType` and the server's
/// name. Keys as the `mcp` package (2.3.0) spells them.
public enum MCPEnvelope {
    public static let protocolVersion = "io.modelcontextprotocol/protocolVersion"
    public static let clientInfo = "io.modelcontextprotocol/clientInfo"
    public static let clientCapabilities = "io.modelcontextprotocol/clientCapabilities"
    public static let serverInfo = "io.modelcontextprotocol/serverInfo"

    /// `params` with the client's envelope at `version` added to its `_meta` (a progress
    /// token there stays).
    static func stamped(_ params: JSONValue?, version: String, client: JSONValue) -> JSONValue {
        var fields = params?.objectValue ?? [:]
        var meta = fields["_meta"]?.objectValue ?? [:]
        meta[protocolVersion] = .string(version)
        meta[clientInfo] = client
        meta[clientCapabilities] = [:]
        fields["_meta"] = .object(meta)
        return .object(fields)
    }

    /// The revision a request names: nil when it carries no envelope (a handshake-era
    /// request), or the error for a malformed envelope or a revision Purser does not speak.
    static func revision(of params: JSONValue?) -> Result<String, RPCError>? {
        guard let meta = params?["_meta"]?.objectValue, let asked = meta[protocolVersion] else { return nil }
        guard let version = asked.stringValue else {
            return .failure(RPCError(code: ErrorCode.invalidParams, message: "params._meta.\(protocolVersion) must be a string"))
        }
        guard meta[clientCapabilities]?.objectValue != nil else {
            return .failure(RPCError(code: ErrorCode.invalidParams, message: "params._meta is missing the required envelope key \(clientCapabilities)"))
        }
        guard MCPVersions.stateless.contains(version) else { return .failure(MCPVersions.unsupported(version)) }
        return .success(version)
    }

    /// A stateless result: `resultType` (required from 2026-07-28 on) and the server's name
    /// in `_meta`, replacing what a passed-on result of another server said there.
    public static func result(_ result: JSONValue, server: JSONValue) -> JSONValue {
        var fields = result.objectValue ?? [:]
        var meta = fields["_meta"]?.objectValue ?? [:]
        meta[serverInfo] = server
        fields["_meta"] = .object(meta)
        fields["resultType"] = "complete"
        return .object(fields)
    }

    /// A result for a handshake-era request: without `resultType` and the server's name,
    /// which a passed-on result of a stateless server has and those revisions do not.
    static func unstamped(_ result: JSONValue) -> JSONValue {
        guard var fields = result.objectValue, fields["resultType"] != nil || fields["_meta"]?[serverInfo] != nil else { return result }
        fields.removeValue(forKey: "resultType")
        if var meta = fields["_meta"]?.objectValue {
            meta.removeValue(forKey: serverInfo)
            if meta.isEmpty { fields.removeValue(forKey: "_meta") } else { fields["_meta"] = .object(meta) }
        }
        return .object(fields)
    }
}

import PurserConfig

/// Which request headers a worker may set: an allow-list per integration (`headers:`), the
/// defaults when it has none. Some headers no list may name, because they would let the
/// upstream read the request differently from the gateway, or answer in a form the
/// scrubber cannot read.
enum HeaderPolicy {
    /// What everyday clients send, none of which changes how the request is routed or
    /// how the answer's bytes are encoded.
    static let defaults = [
        "Accept", "Accept-Language", "Content-Type", "User-Agent", "If-Match", "If-None-Match", "If-Modified-Since",
        "If-Unmodified-Since", "Idempotency-Key", "X-Request-Id",
    ]

    /// The gateway frames the request and owns the connection.
    private static let framing: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect",
        "proxy-connection", "http2-settings",
    ]
    /// Credentials come from the config only.
    private static let credentials: Set<String> = ["authorization", "proxy-authorization", "cookie"]
    /// These ask for the answer compressed, cut into ranges, re-encoded or as a delta:
    /// bytes in which a credential would not read as itself, or only in pieces.
    private static let transforming: Set<String> = ["accept-encoding", "accept-charset", "range", "if-range", "a-im"]
    /// These make a server or its framework read another method, path, host or client.
    private static let rerouting: Set<String> = [
        "x-http-method-override", "x-http-method", "x-method-override", "x-rewrite-url", "forwarded", "via", "x-real-ip",
        "x-host", "x-client-ip", "true-client-ip", "x-cluster-client-ip", "x-envoy-original-path",
    ]
    private static let reroutingPrefixes = ["x-forwarded-", "x-original-"]

    /// Why no worker may set `name` (lower-cased) on the calls of an integration with
    /// `configured` credentials, or nil.
    static func neverAllowed(_ name: String, credentials configured: [Credential]) -> String? {
        if framing.contains(name) { return "the gateway frames the request itself" }
        if credentials.contains(name) { return "it carries credentials" }
        if configured.contains(where: { $0.headerName?.lowercased() == name }) { return "it carries the integration's credential" }
        if transforming.contains(name) { return "it changes the answer's bytes in ways the credential scrubber cannot follow" }
        if rerouting.contains(name) || reroutingPrefixes.contains(where: name.hasPrefix) {
            return "it makes the upstream read another method, path, host or client than the gateway checked"
        }
        return nil
    }

    /// The `headers:` list, lower-cased, or the defaults.
    static func allowList(_ value: ConfigValue?, credentials: [Credential]) throws(ConfigError) -> Set<String> {
        guard let value else { return Set(defaults.map { $0.lowercased() }) }
        var names: Set<String> = []
        for item in try value.sequence() {
            let name = try item.nonEmptyString()
            guard HTTPHeaders.isToken(name) else { throw item.error("'\(name)' is not a header name") }
            if let reason = neverAllowed(name.lowercased(), credentials: credentials) {
                throw item.error("'\(name)' may never be set by a worker: \(reason)")
            }
            names.insert(name.lowercased())
        }
        return names
    }

    /// Refuses what `integration` does not let a worker send: a name off its list, or an
    /// Accept that asks for a charset (the answer re-encoded, as Accept-Charset would).
    static func check(_ name: String, _ value: String, _ integration: Integration) throws(GatewayFailure) {
        let lower = name.lowercased()
        guard integration.workerHeaders.contains(lower) else {
            throw GatewayFailure(.invalidRequest, "\(integration.name) does not let a worker set the header '\(name)'")
        }
        if lower == "accept", value.lowercased().contains("charset") {
            throw GatewayFailure(.invalidRequest, "Accept may not ask for a charset")
        }
    }
}

extension Credential {
    var headerName: String? {
        if case .header(let name, _) = self { return name }
        return nil
    }
}

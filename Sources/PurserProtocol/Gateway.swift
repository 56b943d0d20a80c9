/// `gateway/call`: a worker asks the supervisor to call an integration for it.
public struct GatewayCallParams: Sendable, Hashable {
    public var integration: String
    public var method: String
    /// Relative to the integration's base URL; may carry a query string.
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]
    public var body: [UInt8]

    public init(
        integration: String, method: String = "GET", path: String, query: [String: String] = [:],
        headers: [String: String] = [:], body: [UInt8] = []
    ) {
        self.integration = integration
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        integration = try fields.string("integration")
        method = try fields.optionalString("method") ?? "GET"
        path = try fields.string("path")
        query = try Self.stringMap(fields, "query")
        headers = try Self.stringMap(fields, "headers")
        let text = try fields.optionalString("body") ?? ""
        switch try fields.optionalString("bodyEncoding") ?? "utf8" {
        case "utf8": body = Array(text.utf8)
        case "base64":
            guard let bytes = Base64Text.decode(text) else { throw ProtocolError.invalid("params.body", "not valid base64") }
            body = bytes
        default: throw ProtocolError.invalid("params.bodyEncoding", "expected utf8 or base64")
        }
    }

    private static func stringMap(_ fields: Fields, _ key: String) throws(ProtocolError) -> [String: String] {
        guard let nested = try fields.optionalNested(key) else { return [:] }
        var map: [String: String] = [:]
        for (name, value) in nested.object {
            guard case .string(let text) = value else { throw ProtocolError.invalid("params.\(key).\(name)", "expected a string") }
            map[name] = text
        }
        return map
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "integration": .string(integration), "method": .string(method), "path": .string(path),
        ]
        if !query.isEmpty { object["query"] = .object(query.mapValues { .string($0) }) }
        if !headers.isEmpty { object["headers"] = .object(headers.mapValues { .string($0) }) }
        if !body.isEmpty {
            if let text = String(validating: body, as: UTF8.self) {
                object["body"] = .string(text)
            } else {
                object["body"] = .string(Base64Text.encode(body))
                object["bodyEncoding"] = "base64"
            }
        }
        return .object(object)
    }
}

/// The answer to `gateway/call`.
public struct GatewayCallResult: Sendable, Hashable {
    public var status: Int64
    /// Response headers, names lower-cased, repeated ones joined with ", ".
    public var headers: [String: String]
    public var body: [UInt8]
    /// What the call was charged.
    public var credits: Credits
    public var cached: Bool

    public init(status: Int64, headers: [String: String], body: [UInt8], credits: Credits, cached: Bool) {
        self.status = status
        self.headers = headers
        self.body = body
        self.credits = credits
        self.cached = cached
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "result")
        status = try fields.int("status")
        var headers: [String: String] = [:]
        for (name, value) in try fields.nested("headers").object {
            guard case .string(let text) = value else { throw ProtocolError.invalid("result.headers.\(name)", "expected a string") }
            headers[name] = text
        }
        self.headers = headers
        let text = try fields.string("body")
        if try fields.optionalString("bodyEncoding") == "base64" {
            guard let bytes = Base64Text.decode(text) else { throw ProtocolError.invalid("result.body", "not valid base64") }
            body = bytes
        } else {
            body = Array(text.utf8)
        }
        credits = try fields.credits("credits")
        guard case .bool(let cached)? = fields.object["cached"] else { throw ProtocolError.invalid("result.cached", "expected a boolean") }
        self.cached = cached
    }

    /// The body as text when it is UTF-8; otherwise base64 with `bodyEncoding: "base64"`.
    public var json: JSONValue {
        let text = String(validating: body, as: UTF8.self)
        return [
            "status": .number(JSONNumber(status)), "headers": .object(headers.mapValues { .string($0) }),
            "body": .string(text ?? Base64Text.encode(body)), "bodyEncoding": .string(text == nil ? "base64" : "utf8"),
            "credits": credits.json, "cached": .bool(cached),
        ]
    }
}

/// Why a gateway call was refused or failed: `error.data.reason` of its error answer.
public enum GatewayReason: String, Sendable, CaseIterable {
    case permissionDenied = "permission_denied"
    case rateLimited = "rate_limited"
    case quotaExceeded = "quota_exceeded"
    case budgetExhausted = "budget_exhausted"
    case upstreamUnavailable = "upstream_unavailable"
    case timeout
    case responseTooLarge = "response_too_large"
    case invalidRequest = "invalid_request"
}

/// Base64 (RFC 4648, with padding) for bodies that are not UTF-8.
public enum Base64Text {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var value: UInt32 = 0
            for offset in 0..<count { value |= UInt32(bytes[index + offset]) << (16 - 8 * UInt32(offset)) }
            for position in 0..<4 {
                output.append(position <= count ? alphabet[Int(value >> (18 - 6 * UInt32(position)) & 63)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var lookup = [UInt8](repeating: 255, count: 256)
        for (index, byte) in alphabet.enumerated() { lookup[Int(byte)] = UInt8(index) }
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        var padding = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            let value = lookup[Int(byte)]
            guard value != 255, padding == 0 else { return nil }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(buffer >> UInt32(bits) & 0xFF))
            }
        }
        guard padding <= 2 else { return nil }
        return output
    }
}

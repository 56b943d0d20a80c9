import PurserConfig
import PurserProtocol

/// How a call is authenticated. Values are resolved by the supervisor when it loads the
/// config; a worker never sees them.
public enum Credential: Sendable, Hashable {
    case header(name: String, value: String)
    case query(name: String, value: String)
    case basic(user: String, password: String)

    static func list(_ value: ConfigValue, resolver: SecretResolver) throws(ConfigError) -> [Credential] {
        let items = if case .sequence(let items) = value.kind { items } else { [value] }
        var credentials: [Credential] = []
        for item in items {
            let fields = try item.mapping(allowed: ["header", "query", "basic", "value"])
            if let basic = fields["basic"] {
                let parts = try basic.mapping(allowed: ["user", "password"])
                credentials.append(.basic(
                    user: try resolver.resolve(parts.required("user")), password: try resolver.resolve(parts.required("password"))))
            } else if let header = fields["header"] {
                let name = try header.nonEmptyString()
                guard HTTPHeaders.isToken(name) else { throw header.error("'\(name)' is not a header name") }
                credentials.append(.header(name: name, value: try resolver.resolve(fields.required("value"))))
            } else if let query = fields["query"] {
                credentials.append(.query(name: try query.nonEmptyString(), value: try resolver.resolve(fields.required("value"))))
            } else {
                throw item.error("auth needs one of header, query or basic")
            }
        }
        return credentials
    }

    /// The secrets in the credential, as the upstream receives them; `Scrubber` adds the
    /// encodings and escapes they could come back in.
    var secretForms: [String] {
        switch self {
        case .header(_, let value): [value] + Self.tokens(value)
        case .query(_, let value): [value]
        case .basic(let user, let password): [password, Base64Text.encode(Array("\(user):\(password)".utf8))]
        }
    }

    /// "Bearer abc" echoed back may be split: the secret part alone must go too.
    private static func tokens(_ value: String) -> [String] {
        value.split(separator: " ").map(String.init).filter { $0 != value }
    }
}

/// Expands `${env:NAME}` and `${secret:NAME}` in a config value.
struct SecretResolver {
    var environment: [String: String]
    var secrets: [String: String]

    func resolve(_ value: ConfigValue) throws(ConfigError) -> String {
        let text = try value.string()
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { throw value.error("unterminated ${") }
            let reference = rest[start.upperBound..<end]
            result += try lookup(reference, value)
            rest = rest[rest.index(after: end)...]
        }
        result += rest
        guard !result.contains("\r"), !result.contains("\n"), !result.contains("\0") else {
            throw value.error("a credential must not contain line breaks or NUL")
        }
        return result
    }

    private func lookup(_ reference: Substring, _ value: ConfigValue) throws(ConfigError) -> String {
        let parts = reference.split(separator: ":", maxSplits: 1)
        guard parts.count == 2 else { throw value.error("expected ${env:NAME} or ${secret:NAME}, found ${\(reference)}") }
        let name = String(parts[1])
        switch parts[0] {
        case "env":
            guard let found = environment[name], !found.isEmpty else {
                throw value.error("${env:\(name)}: the supervisor's environment has no \(name)")
            }
            return found
        case "secret":
            guard let found = secrets[name], !found.isEmpty else {
                throw value.error("${secret:\(name)}: the secrets file has no \(name)")
            }
            return found
        default:
            throw value.error("expected ${env:NAME} or ${secret:NAME}, found ${\(reference)}")
        }
    }
}

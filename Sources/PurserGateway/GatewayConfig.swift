public import PurserConfig
public import PurserProtocol

/// What a gateway config file says: the integrations workers may call. See protocol/GATEWAY.md
/// for the format.
public struct GatewayConfig: Sendable {
    public var integrations: [Integration]
    public var file: String
    /// The `secretsFile`, resolved.
    public var secretsFile: String?

    /// What no worker may read: the config and its secrets file.
    public var files: [String] { [file] + (secretsFile.map { [$0] } ?? []) }

    public func integration(named name: String) -> Integration? { integrations.first { $0.name == name } }

    /// Reads and checks a config; `${env:NAME}` come from `environment`, `${secret:NAME}`
    /// from the config's `secretsFile`.
    public static func load(path: String, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        try parse(ConfigValue.load(path: path), environment: environment)
    }

    public static func parse(_ root: ConfigValue, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        let top = try root.mapping(allowed: ["integrations", "secretsFile"])
        var secrets: [String: String] = [:]
        var secretsFile: String?
        if let file = top["secretsFile"] {
            secretsFile = try resolve(file, relativeTo: root.file)
            secrets = try readSecrets(path: secretsFile!)
        }
        let resolver = SecretResolver(environment: environment, secrets: secrets)
        var integrations: [Integration] = []
        for (name, value) in try top.required("integrations").mapping().entries {
            guard Integration.isValidName(name) else {
                throw value.error("an integration's name is also a tool name: letters, digits, '_', '-' and '.' only")
            }
            integrations.append(try Integration(name: name, value, resolver: resolver))
        }
        guard !integrations.isEmpty else { throw root.error("integrations: none defined") }
        return GatewayConfig(integrations: integrations, file: root.file, secretsFile: secretsFile)
    }

    private static func resolve(_ value: ConfigValue, relativeTo config: String) throws(ConfigError) -> String {
        let path = try value.nonEmptyString()
        guard !path.hasPrefix("/"), let slash = config.lastIndex(of: "/") else { return path }
        return String(config[...slash]) + path
    }

    private static func readSecrets(path: String) throws(ConfigError) -> [String: String] {
        let document = try ConfigValue.load(path: path)
        var secrets: [String: String] = [:]
        for (name, secret) in try document.mapping().entries { secrets[name] = try secret.string() }
        return secrets
    }
}

/// One external API a worker may call, by name. The name is also the tool permission a
/// reservation must hold.
public struct Integration: Sendable {
    public var name: String
    public var base: BaseURL
    public var methods: Set<String>
    public var credentials: [Credential]
    /// The request headers a worker may set, lower-cased: set only from the config, through
    /// `HeaderPolicy.allowList`, which refuses the names no worker may set.
    public internal(set) var workerHeaders: Set<String>
    public var rateLimit: RateLimit?
    public var maxConcurrent: Int?
    public var quotas: [Quota]
    public var cost: CostModel
    public var connectTimeoutMs: Int64
    public var totalTimeoutMs: Int64
    public var maxResponseBytes: Int64
    public var retries: RetryPolicy
    public var breaker: BreakerPolicy
    public var cache: CachePolicy?
    /// HTTPS tunnels to the base's host and port, for a run's egress; nil: none.
    public var tunnel: TunnelPolicy?

    static let fields: Set<String> = [
        "baseURL", "methods", "auth", "headers", "rateLimit", "maxConcurrent", "quotas", "cost", "timeouts",
        "maxResponseSize", "retries", "breaker", "cache", "tunnel",
    ]
    static let allMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0)) }
    }

    init(name: String, _ value: ConfigValue, resolver: SecretResolver) throws(ConfigError) {
        self.name = name
        let fields = try value.mapping(allowed: Self.fields)
        base = try BaseURL(fields.required("baseURL"))
        methods = try Self.methods(fields["methods"])
        credentials = try fields["auth"].map { (auth) throws(ConfigError) in try Credential.list(auth, resolver: resolver) } ?? []
        workerHeaders = try HeaderPolicy.allowList(fields["headers"], credentials: credentials)
        rateLimit = try fields["rateLimit"].map { (limit) throws(ConfigError) in try RateLimit(limit) }
        maxConcurrent = try fields["maxConcurrent"].map { (limit) throws(ConfigError) in Int(try limit.int(in: 1...100_000)) }
        quotas = try fields["quotas"].map { (quotas) throws(ConfigError) in try Quota.list(quotas) } ?? []
        cost = try fields["cost"].map { (cost) throws(ConfigError) in try CostModel(cost) } ?? CostModel()
        (connectTimeoutMs, totalTimeoutMs) = try Self.timeouts(fields["timeouts"])
        maxResponseBytes = try fields["maxResponseSize"].map { (size) throws(ConfigError) in
            let bytes = try size.size()
            guard bytes > 0 && bytes <= 1 << 30 else { throw size.error("must be between 1 byte and 1GiB") }
            return bytes
        } ?? 10 << 20
        retries = try fields["retries"].map { (retries) throws(ConfigError) in try RetryPolicy(retries) } ?? RetryPolicy()
        breaker = try fields["breaker"].map { (breaker) throws(ConfigError) in try BreakerPolicy(breaker) } ?? BreakerPolicy()
        cache = try fields["cache"].map { (cache) throws(ConfigError) in try CachePolicy(cache) }
        tunnel = try fields["tunnel"].map { [base] (tunnel) throws(ConfigError) in try TunnelPolicy(tunnel, base: base) }
    }

    private static func methods(_ value: ConfigValue?) throws(ConfigError) -> Set<String> {
        guard let value else { return allMethods }
        var methods: Set<String> = []
        for method in try value.strings() {
            guard allMethods.contains(method.uppercased()) else {
                throw value.error("'\(method)' is not one of \(allMethods.sorted().joined(separator: ", "))")
            }
            methods.insert(method.uppercased())
        }
        return methods
    }

    private static func timeouts(_ value: ConfigValue?) throws(ConfigError) -> (Int64, Int64) {
        guard let value else { return (5_000, 30_000) }
        let fields = try value.mapping(allowed: ["connect", "total"])
        let connect = try fields["connect"]?.duration() ?? 5_000
        let total = try fields["total"]?.duration() ?? 30_000
        guard connect > 0, total > 0 else { throw value.error("timeouts must be positive") }
        guard total <= 3_600_000 else { throw value.error("total: at most 1h") }
        return (connect, total)
    }
}

/// An integration's base: calls name a path under it, and nothing else is reachable.
public struct BaseURL: Sendable, Hashable, CustomStringConvertible {
    public let scheme: String
    public let host: String
    public let port: Int
    /// Without a trailing slash; "" for the root.
    public let path: String
    /// Scheme, host and port as a URL begins: every call's URL starts with it.
    public let origin: String

    init(_ value: ConfigValue) throws(ConfigError) {
        let text = try value.nonEmptyString()
        guard let parts = URLParts(text) else { throw value.error("'\(text)' is not an absolute http or https URL") }
        guard parts.scheme == "http" || parts.scheme == "https" else { throw value.error("only http and https are allowed") }
        guard !parts.pathAndQuery.contains("?"), !text.contains("#") else {
            throw value.error("a base URL has no query or fragment")
        }
        scheme = parts.scheme
        host = parts.host
        port = parts.port
        path = parts.pathAndQuery.hasSuffix("/") ? String(parts.pathAndQuery.dropLast()) : parts.pathAndQuery
        let defaultPort = scheme == "https" ? 443 : 80
        let bracketed = host.contains(":") ? "[\(host)]" : host
        origin = "\(scheme)://\(bracketed)" + (port == defaultPort ? "" : ":\(port)")
    }

    public var description: String { origin + path }

    /// `host:port`, an IPv6 literal in brackets: what a `CONNECT` to it names.
    public var authority: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
}

/// `count/unit` with a burst: GCRA admits `burst` calls at once, then one per `count/unit`.
public struct RateLimit: Sendable, Hashable {
    /// Nanoseconds between calls at the steady rate.
    public var intervalNs: Int64
    public var burst: Int64
    public var text: String

    public init(intervalNs: Int64, burst: Int64, text: String = "") {
        self.intervalNs = intervalNs
        self.burst = burst
        self.text = text
    }

    init(_ value: ConfigValue) throws(ConfigError) {
        let fields = try value.mapping(allowed: ["rate", "burst"])
        let rate = try fields.required("rate")
        let text = try rate.string()
        let parts = text.split(separator: "/")
        let units: [String: Double] = ["s": 1e9, "m": 60e9, "h": 3600e9, "d": 86400e9]
        guard parts.count == 2, let count = Double(parts[0]), count > 0, let unit = units[String(parts[1])] else {
            throw rate.error("expected a rate such as 10/s, 100/m or 1000/h")
        }
        let interval = (unit / count).rounded()
        guard interval >= 1000, interval < 9e18 else { throw rate.error("'\(text)' is out of range") }
        intervalNs = Int64(interval)
        burst = try fields["burst"]?.int(in: 1...1_000_000) ?? 1
        self.text = "\(text), burst \(burst)"
    }
}

/// A cap on requests and/or credits per calendar window (UTC).
public struct Quota: Sendable, Hashable {
    public enum Window: String, Sendable, CaseIterable { case hour, day, month }
    public var window: Window
    public var requests: Int64?
    public var credits: Credits?

    static func list(_ value: ConfigValue) throws(ConfigError) -> [Quota] {
        var quotas: [Quota] = []
        for item in try value.sequence() {
            let fields = try item.mapping(allowed: ["per", "requests", "credits"])
            let window = try Window(rawValue: fields.required("per").choice(Window.allCases.map(\.rawValue)))!
            let requests = try fields["requests"]?.int(in: 1...Int64.max)
            let credits = try fields["credits"]?.credits()
            guard requests != nil || credits != nil else { throw item.error("a quota needs requests, credits or both") }
            quotas.append(Quota(window: window, requests: requests, credits: credits))
        }
        return quotas
    }
}

/// Credits a call costs: fixed, by size, and from the response. `max` bounds it and is what
/// a call pre-authorises.
public struct CostModel: Sendable, Hashable {
    public var perRequest = Credits.zero
    public var perKiB = Credits.zero
    /// A number in the JSON response body, by dotted path, times a price.
    public var fromJSON: (field: [String], price: Credits)?
    /// A number in a response header, times a price.
    public var fromHeader: (name: String, price: Credits)?
    public var max: Credits
    /// What a cached answer costs.
    public var cacheHit = Credits.zero

    public init() { max = .zero }

    init(_ value: ConfigValue) throws(ConfigError) {
        let fields = try value.mapping(allowed: ["perRequest", "perKiB", "fromJSON", "fromHeader", "max", "cacheHit"])
        perRequest = try fields["perRequest"]?.credits() ?? .zero
        perKiB = try fields["perKiB"]?.credits() ?? .zero
        if let json = fields["fromJSON"] {
            let parts = try json.mapping(allowed: ["field", "price"])
            let field = try parts.required("field").nonEmptyString().split(separator: ".").map(String.init)
            fromJSON = (field, try parts.required("price").credits())
        }
        if let header = fields["fromHeader"] {
            let parts = try header.mapping(allowed: ["name", "price"])
            fromHeader = (try parts.required("name").nonEmptyString().lowercased(), try parts.required("price").credits())
        }
        cacheHit = try fields["cacheHit"]?.credits() ?? .zero
        let variable = perKiB > .zero || fromJSON != nil || fromHeader != nil
        if let limit = fields["max"] {
            max = try limit.credits()
            guard max >= perRequest, max >= cacheHit else { throw limit.error("must be at least perRequest and cacheHit") }
        } else if variable {
            throw value.error("max: required when a cost depends on the response (it is what a call pre-authorises)")
        } else {
            max = Swift.max(perRequest, cacheHit)
        }
    }

    public static func == (lhs: CostModel, rhs: CostModel) -> Bool {
        lhs.perRequest == rhs.perRequest && lhs.perKiB == rhs.perKiB && lhs.max == rhs.max && lhs.cacheHit == rhs.cacheHit
            && lhs.fromJSON?.field == rhs.fromJSON?.field && lhs.fromJSON?.price == rhs.fromJSON?.price
            && lhs.fromHeader?.name == rhs.fromHeader?.name && lhs.fromHeader?.price == rhs.fromHeader?.price
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(perRequest)
        hasher.combine(max)
    }
}

public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first attempt, for idempotent methods only.
    public var max = 2
    public var backoffMs: Int64 = 200
    public var maxBackoffMs: Int64 = 5_000

    public init() {}

    init(_ value: ConfigValue) throws(ConfigError) {
        let fields = try value.mapping(allowed: ["max", "backoff", "maxBackoff"])
        max = Int(try fields["max"]?.int(in: 0...10) ?? 2)
        backoffMs = try fields["backoff"]?.duration() ?? 200
        maxBackoffMs = try fields["maxBackoff"]?.duration() ?? 5_000
    }
}

public struct BreakerPolicy: Sendable, Hashable {
    /// Consecutive failures (connection errors, timeouts, 5xx) that open the breaker.
    public var failures = 5
    public var coolDownMs: Int64 = 30_000

    public init() {}

    init(_ value: ConfigValue) throws(ConfigError) {
        let fields = try value.mapping(allowed: ["failures", "coolDown"])
        failures = Int(try fields["failures"]?.int(in: 1...10_000) ?? 5)
        coolDownMs = try fields["coolDown"]?.duration() ?? 30_000
    }
}

public struct CachePolicy: Sendable, Hashable {
    public var ttlMs: Int64
    /// Entries kept in memory (L1); the store keeps the rest.
    public var maxEntries = 256
    /// Whether an answer cached for one team's run may answer another team's (`scope:
    /// shared`); by default (`scope: team`) each team has its own.
    public var shared = false

    init(_ value: ConfigValue) throws(ConfigError) {
        let fields = try value.mapping(allowed: ["ttl", "maxEntries", "scope"])
        ttlMs = try fields.required("ttl").duration()
        guard ttlMs > 0 else { throw value.error("ttl must be positive") }
        maxEntries = Int(try fields["maxEntries"]?.int(in: 1...1_000_000) ?? 256)
        shared = try fields["scope"]?.choice(["team", "shared"]) == "shared"
    }
}
